//! images, inspect, manifest inspect, rmi, tag, verify, protect/unprotect.

use e2e::{show, stderr, stdout, TestEnv};
use std::fs;

fn busybox(t: &TestEnv) -> String {
    let img = format!("{}/library/busybox:latest", t.fx.registry());
    t.ud_ok(&["pull", &img]);
    img
}

#[test]
fn images_output_formats() {
    let t = TestEnv::new();
    let out = t.ud_ok(&["images"]);
    assert_eq!(
        out.trim(),
        "REPOSITORY",
        "expected only the header in an empty repository, got:\n{out}"
    );
    let img = busybox(&t);
    let out = t.ud_ok(&["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "REPOSITORY",
        "expected the REPOSITORY header:\n{out}"
    );
    assert_eq!(
        lines.get(1).map(|l| l.trim_end()),
        Some(format!("{img}    .").as_str()),
        "expected `{img}    .` as the image line:\n{out}"
    );
    assert_eq!(lines.len(), 2, "expected one image line:\n{out}");

    let out = t.ud_ok(&["images", "-l"]);
    let layer = &t.fx.list("BUSYBOX_LAYERS")[0];
    assert!(
        out.contains(layer.as_str()),
        "expected images -l to list layer {layer}:\n{out}"
    );
    assert!(
        out.contains(
            t.tag_dir(&format!("{}/library/busybox", t.fx.registry()), "latest")
                .to_str()
                .unwrap()
        ),
        "expected images -l to show the image directory:\n{out}"
    );
    let out = t.ud_ok(&["images", "-p"]);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("linux/")),
        "expected images -p to show an os/arch:\n{out}"
    );

    t.ud_ok(&["protect", &img]);
    let out = t.ud_ok(&["images"]);
    assert!(
        out.lines().any(|l| l.trim_end() == format!("{img}    P")),
        "expected `{img}    P` for a protected image:\n{out}"
    );
    t.ud_ok(&["unprotect", &img]);
    let out = t.ud_ok(&["images"]);
    assert!(
        out.lines().any(|l| l.trim_end() == format!("{img}    .")),
        "expected `.` again after unprotect:\n{out}"
    );
}

#[test]
fn inspect_multilayer_config() {
    let t = TestEnv::new();
    let img = format!("{}/test/multilayer:latest", t.fx.registry());
    t.ud_ok(&["pull", &img]);
    let out = t.ud_ok(&["inspect", &img]);
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("expected JSON from inspect: {e}\n{out}"));
    let c = v.get("config").or_else(|| v.get("Config")).unwrap_or(&v);
    for k in ["Entrypoint", "Cmd", "Env", "WorkingDir"] {
        assert!(
            c.get(k).is_some_and(|x| !x.is_null()),
            "expected inspect to show {k} of test/multilayer, got:\n{out}"
        );
    }
    assert!(
        c["Env"].as_array().is_some_and(|e| !e.is_empty()),
        "expected a non-empty Env list:\n{out}"
    );
    // The printed config is the stored config blob.
    let cfg_blob = fs::read(t.layer(&t.fx.get("MULTILAYER_CONFIG"))).unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&cfg_blob).unwrap();
    assert_eq!(
        v, stored,
        "expected inspect to print the image's config blob"
    );

    let err = t.ud_fail(&["inspect", "no/such:image"]);
    assert!(
        err.contains("not found"),
        "expected inspect of an unknown image to say not found:\n{err}"
    );
}

#[test]
fn manifest_inspect_index_and_platform() {
    let t = TestEnv::new();
    let img = format!("{}/test/multiarch:latest", t.fx.registry());
    let out = t.ud_ok(&["manifest", "inspect", &img]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("manifest JSON");
    let ms = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("expected an index with manifests[]:\n{out}"));
    let archs: Vec<&str> = ms
        .iter()
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .collect();
    assert!(
        archs.contains(&"amd64") && archs.contains(&"arm64"),
        "expected amd64 and arm64 in the index, got {archs:?}"
    );
    let out = t.ud_ok(&["manifest", "inspect", "--platform=linux/arm64", &img]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("manifest JSON");
    assert!(
        v.get("manifests").is_none() && v["layers"].is_array() && v["config"].is_object(),
        "expected a single image manifest with --platform:\n{out}"
    );
    let raw = http_manifest(&t, "test/multiarch", &t.fx.get("MULTIARCH_ARM64_DIGEST"));
    assert_eq!(v, raw, "expected the arm64 manifest");
    assert!(
        !t.repos().join(t.fx.registry()).exists(),
        "expected manifest inspect to store nothing"
    );
}

fn http_manifest(t: &TestEnv, repo: &str, reference: &str) -> serde_json::Value {
    let r = e2e::http_request(
        &t.fx.registry(),
        "GET",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )],
    );
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).expect("json")
}

#[test]
fn tag_and_rmi_reference_counting() {
    let t = TestEnv::new();
    let img = busybox(&t);
    let blobs: Vec<String> = {
        let mut v = t.fx.list("BUSYBOX_LAYERS");
        v.push(t.fx.get("BUSYBOX_CONFIG"));
        v
    };
    t.ud_ok(&["tag", &img, "mine/box:v1"]);
    let d = t.tag_dir("mine/box", "v1");
    assert!(
        d.join("TAG").is_file(),
        "expected repos/mine/box/v1 after tag"
    );
    for b in &blobs {
        let l = d.join(b);
        assert!(
            fs::read_link(&l).is_ok_and(|p| p.is_relative()) && l.exists(),
            "expected the tag to link {b} relatively and resolvably"
        );
    }
    let out = t.ud_ok(&["images"]);
    assert!(
        out.contains("mine/box:v1"),
        "expected the new tag listed:\n{out}"
    );
    t.assert_repo_consistent();
    // Tagging onto an existing name fails.
    t.ud_fail(&["tag", &img, "mine/box:v1"]);

    t.ud_ok(&["rmi", &img]);
    for b in &blobs {
        assert!(
            t.layer(b).is_file(),
            "expected {b} kept: mine/box:v1 still uses it"
        );
    }
    assert!(
        !t.repos().join(t.fx.registry()).exists(),
        "expected rmi to prune the empty parent directories"
    );
    t.assert_repo_consistent();
    t.ud_ok(&["verify", "mine/box:v1"]);

    t.ud_ok(&["rmi", "mine/box:v1"]);
    for b in &blobs {
        assert!(
            !t.layer(b).exists(),
            "expected {b} deleted with its last image"
        );
    }
    assert!(
        t.tag_dirs().is_empty(),
        "expected no images: {:?}",
        t.tag_dirs()
    );
    let out = t.ud_ok(&["images"]);
    assert_eq!(
        out.trim(),
        "REPOSITORY",
        "expected an empty listing:\n{out}"
    );
    t.assert_repo_consistent();
}

#[test]
fn protected_image() {
    let t = TestEnv::new();
    let img = busybox(&t);
    t.ud_ok(&["protect", &img]);
    assert!(
        t.tag_dir(&format!("{}/library/busybox", t.fx.registry()), "latest")
            .join("PROTECT")
            .exists(),
        "expected protect to create PROTECT"
    );
    let err = t.ud_fail(&["rmi", &img]);
    assert!(
        err.contains("protected"),
        "expected rmi of a protected image to say so:\n{err}"
    );
    let err = t.ud_fail(&["tag", &img, "copy:1"]);
    assert!(
        err.contains("protected"),
        "expected tag from a protected image to fail saying so:\n{err}"
    );
    assert!(
        !t.tag_dir("copy", "1").exists(),
        "expected no copy tag created"
    );
    assert!(
        t.layer(&t.fx.list("BUSYBOX_LAYERS")[0]).is_file(),
        "expected the protected image's layer kept"
    );
    t.ud_ok(&["unprotect", &img]);
    t.ud_ok(&["rmi", &img]);
    assert!(
        t.tag_dirs().is_empty(),
        "expected rmi after unprotect to work"
    );
    t.assert_repo_consistent();
}

#[test]
fn verify_detects_corruption() {
    let t = TestEnv::new();
    let img = busybox(&t);
    let out = t.ud_ok(&["verify", &img]);
    assert!(
        out.contains(&format!("image ok: {img}")),
        "expected `image ok: {img}`:\n{out}"
    );
    let layer = t.layer(&t.fx.list("BUSYBOX_LAYERS")[0]);
    let len = fs::metadata(&layer).unwrap().len();
    // Overwrite one byte in the middle, as the owner of the file.
    let o = t.sh_as_user(&format!(
        "chmod u+w '{p}' && printf 'X' | dd of='{p}' bs=1 seek={off} conv=notrunc status=none",
        p = layer.display(),
        off = len / 2
    ));
    assert!(o.status.success(), "corrupting the layer\n{}", show(&o));
    assert_eq!(fs::metadata(&layer).unwrap().len(), len, "size kept");
    let o = t.ud(&["verify", &img]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected verify rc 1 on a corrupted layer\n{}",
        show(&o)
    );
    assert!(
        !stdout(&o).contains("image ok"),
        "expected no `image ok` for a corrupted image:\n{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(&t.fx.list("BUSYBOX_LAYERS")[0]) || stderr(&o).contains("mismatch"),
        "expected verify to name the bad layer:\n{}",
        stderr(&o)
    );

    // A missing layer file is also detected.
    let t2 = TestEnv::new();
    let img2 = busybox(&t2);
    fs::remove_file(t2.layer(&t2.fx.list("BUSYBOX_LAYERS")[0])).unwrap();
    let o = t2.ud(&["verify", &img2]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected verify rc 1 on a missing layer\n{}",
        show(&o)
    );
}

#[test]
fn rmi_unknown_image() {
    let t = TestEnv::new();
    busybox(&t);
    let err = t.ud_fail(&["rmi", "no/such:thing"]);
    assert!(err.contains("Error:"), "expected an Error: line:\n{err}");
    assert_eq!(t.tag_dirs().len(), 1, "expected the other image untouched");
    t.ud_fail(&["verify", "no/such:thing"]);
    t.ud_fail(&["protect", "no/such:thing"]);
    t.ud_fail(&["tag", "no/such:thing", "x:y"]);
    assert!(
        !t.tag_dir("x", "y").exists(),
        "expected no tag created from nothing"
    );
}
