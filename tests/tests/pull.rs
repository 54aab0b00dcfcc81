//! pull: formats, layer sharing, platforms, digests, re-pulls.

use e2e::{
    file_sha256, image_routes, oci_image, registry_digest, show, ServerConfig, TestEnv, TestServer,
};
use std::fs;
use std::process::Command;

/// Check an image's tag directory: TAG/v2/manifest and one relative link per blob.
fn check_image(t: &TestEnv, name: &str, tag: &str, blobs: &[String]) {
    let d = t.tag_dir(name, tag);
    for f in ["TAG", "v2", "manifest"] {
        assert!(d.join(f).is_file(), "expected {} to have {f}", d.display());
    }
    let tagline = fs::read_to_string(d.join("TAG")).expect("TAG");
    assert!(
        tagline.contains(name) && tagline.contains(tag),
        "expected TAG to name {name}:{tag}, got {tagline:?}"
    );
    for b in blobs {
        let l = d.join(b);
        let target = fs::read_link(&l)
            .unwrap_or_else(|e| panic!("expected {} to be a symlink: {e}", l.display()));
        assert!(
            target.is_relative(),
            "expected a relative link, {} -> {}",
            l.display(),
            target.display()
        );
        let resolved = fs::canonicalize(&l).expect("link resolves");
        assert_eq!(
            resolved,
            fs::canonicalize(t.layer(b)).expect("layer exists"),
            "expected {} to point at layers/{b}",
            l.display()
        );
        assert_eq!(
            format!("sha256:{}", file_sha256(&t.layer(b))),
            *b,
            "expected layers/{b} to hash to its name"
        );
    }
}

fn blobs_of(t: &TestEnv, prefix: &str) -> Vec<String> {
    let mut v = t.fx.list(&format!("{prefix}_LAYERS"));
    v.push(t.fx.get(&format!("{prefix}_CONFIG")));
    v
}

#[test]
fn pull_busybox_v2s2_and_oci_share_layer() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    t.ud_ok(&["pull", &format!("{reg}/library/busybox:latest")]);
    let bb = blobs_of(&t, "BUSYBOX");
    check_image(&t, &format!("{reg}/library/busybox"), "latest", &bb);
    let manifest = fs::read(
        t.tag_dir(&format!("{reg}/library/busybox"), "latest")
            .join("manifest"),
    )
    .expect("manifest");
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
    assert_eq!(
        m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "expected busybox:latest to be stored as its docker v2s2 manifest"
    );
    let digest = registry_digest(&reg, "library/busybox", "latest");
    assert_eq!(
        format!("sha256:{}", e2e::sha256_hex(&manifest)),
        digest,
        "expected the stored manifest to be byte-identical to the registry's"
    );

    // Through a recording proxy, to see what the second pull downloads.
    let proxy = TestServer::proxy(&reg);
    let oci_name = format!("{}/library/busybox", proxy.addr);
    t.ud_ok(&["pull", &format!("{oci_name}:oci")]);
    let oci = blobs_of(&t, "BUSYBOX_OCI");
    check_image(&t, &oci_name, "oci", &oci);
    assert_eq!(
        blob_gets(&proxy),
        0,
        "expected busybox:oci (same layer and config as :latest) to download no blob"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(t.tag_dir(&oci_name, "oci").join("manifest")).unwrap())
            .unwrap();
    assert!(
        m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
            || m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json",
        "expected busybox:oci to be an OCI manifest, got {m}"
    );
    // The layer is shared: one file in layers/.
    let layer = &t.fx.list("BUSYBOX_LAYERS")[0];
    assert_eq!(
        &t.fx.list("BUSYBOX_OCI_LAYERS")[0],
        layer,
        "fixture: busybox latest and oci share their layer"
    );
    let count = t.layer_files().iter().filter(|f| *f == layer).count();
    assert_eq!(count, 1, "expected exactly one copy of the shared layer");
    t.assert_repo_consistent();
}

#[test]
fn pull_debian() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    t.ud_ok(&["pull", &format!("{reg}/library/debian:bookworm")]);
    check_image(
        &t,
        &format!("{reg}/library/debian"),
        "bookworm",
        &blobs_of(&t, "DEBIAN"),
    );
    t.assert_repo_consistent();
    let out = t.ud_ok(&["verify", &format!("{reg}/library/debian:bookworm")]);
    assert!(out.contains("ok"), "expected verify ok, got:\n{out}");
}

#[test]
fn pull_multilayer_and_many_layers() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    t.ud_ok(&["pull", &format!("{reg}/test/multilayer:latest")]);
    let ml = blobs_of(&t, "MULTILAYER");
    assert!(ml.len() >= 4, "fixture: multilayer has several layers");
    check_image(&t, &format!("{reg}/test/multilayer"), "latest", &ml);

    t.ud_ok(&["pull", &format!("{reg}/test/many:latest")]);
    let many = blobs_of(&t, "MANY");
    let want: usize = t.fx.get("MANY_LAYERS_COUNT").parse().unwrap();
    assert!(
        many.len() > want,
        "fixture: MANY_LAYERS lists at least {want} layers"
    );
    check_image(&t, &format!("{reg}/test/many"), "latest", &many);
    t.assert_repo_consistent();
}

#[test]
fn pull_zstd() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let img = format!("{reg}/test/zstd:latest");
    t.ud_ok(&["pull", &img]);
    check_image(
        &t,
        &format!("{reg}/test/zstd"),
        "latest",
        &blobs_of(&t, "ZSTD"),
    );
    let out = t.ud_ok(&["verify", &img]);
    assert!(
        out.contains("ok"),
        "expected verify ok for zstd, got:\n{out}"
    );
    t.assert_repo_consistent();
}

#[test]
fn pull_multiarch_default_and_arm64() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let img = format!("{reg}/test/multiarch:latest");
    t.ud_ok(&["pull", &img]);
    let out = t.ud_ok(&["images", "-p"]);
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    assert!(
        out.contains(&format!("linux/{host}")),
        "expected the default pull to take this host's platform linux/{host}, images -p:\n{out}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&t.ud_ok(&["inspect", &img])).expect("inspect JSON");
    assert_eq!(
        cfg["architecture"], host,
        "expected the config's architecture to be {host}"
    );
    let manifest = fs::read(
        t.tag_dir(&format!("{reg}/test/multiarch"), "latest")
            .join("manifest"),
    )
    .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(
        m.get("manifests").is_none() && m.get("layers").is_some(),
        "expected the stored manifest to be the platform's image manifest, not the index"
    );
    if host == "amd64" {
        assert_eq!(
            format!("sha256:{}", e2e::sha256_hex(&manifest)),
            t.fx.get("MULTIARCH_AMD64_DIGEST"),
            "expected the amd64 manifest"
        );
    }

    let t2 = TestEnv::new();
    t2.ud_ok(&["pull", "--platform=linux/arm64", &img]);
    let out = t2.ud_ok(&["images", "-p"]);
    assert!(
        out.contains("linux/arm64"),
        "expected --platform=linux/arm64 to show linux/arm64 in images -p:\n{out}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&t2.ud_ok(&["inspect", &img])).expect("inspect JSON");
    assert_eq!(cfg["architecture"], "arm64", "expected an arm64 config");
    let manifest = fs::read(
        t2.tag_dir(&format!("{reg}/test/multiarch"), "latest")
            .join("manifest"),
    )
    .unwrap();
    assert_eq!(
        format!("sha256:{}", e2e::sha256_hex(&manifest)),
        t2.fx.get("MULTIARCH_ARM64_DIGEST"),
        "expected the arm64 manifest"
    );
    t2.assert_repo_consistent();

    // A platform the index lacks.
    let err = t2.ud_fail(&["pull", "--platform=linux/s390x", &img]);
    assert!(
        err.contains("s390x"),
        "expected the error to name the missing platform, got:\n{err}"
    );
}

#[test]
fn pull_twice_reuses_layers() {
    let t = TestEnv::new();
    let proxy = TestServer::proxy(&t.fx.registry());
    let img = format!("{}/test/multilayer:latest", proxy.addr);
    t.ud_ok(&["pull", &img]);
    let first = blob_gets(&proxy);
    let blobs = blobs_of(&t, "MULTILAYER");
    assert_eq!(
        first,
        blobs.len(),
        "expected the first pull to fetch each of the {} blobs once",
        blobs.len()
    );
    let inode = |d: &str| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(t.layer(d)).unwrap().ino()
    };
    let before: Vec<u64> = blobs.iter().map(|d| inode(d)).collect();
    let o = t.ud(&["pull", &img]);
    assert!(o.status.success(), "second pull\n{}", show(&o));
    let after: Vec<u64> = blobs.iter().map(|d| inode(d)).collect();
    assert_eq!(
        before, after,
        "expected the second pull to keep the existing layer files (same inodes)"
    );
    assert_eq!(
        blob_gets(&proxy),
        first,
        "expected the second pull to download no blob"
    );
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected one image: {:?}",
        t.tag_dirs()
    );
    t.assert_repo_consistent();
}

/// Blob downloads the proxy saw.
fn blob_gets(p: &TestServer) -> usize {
    p.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count()
}

#[test]
fn pull_with_registry_option() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    t.ud_ok(&["pull", &format!("--registry=http://{reg}"), "busybox"]);
    if let Some((uid, _)) = t.user {
        use std::os::unix::fs::MetadataExt;
        let layer = t.layer(&t.fx.list("BUSYBOX_LAYERS")[0]);
        assert_eq!(
            fs::metadata(&layer).unwrap().uid(),
            uid,
            "expected udocker to run as the fixture user (uid {uid}) and own what it writes"
        );
    }
    assert!(
        t.tag_dir("busybox", "latest").join("TAG").is_file(),
        "expected --registry=... busybox to be stored under repos/busybox/latest, have {:?}",
        t.tag_dirs()
    );
    let out = t.ud_ok(&["images"]);
    assert!(
        out.lines().any(|l| l.starts_with("busybox:latest")),
        "expected images to list busybox:latest, got:\n{out}"
    );
    t.assert_repo_consistent();
}

#[test]
fn pull_by_digest() {
    let t = TestEnv::new();
    let reg = t.fx.registry();
    let digest = registry_digest(&reg, "library/busybox", "latest");
    let img = format!("{reg}/library/busybox@{digest}");
    t.ud_ok(&["pull", &img]);
    let dirs = t.tag_dirs();
    assert_eq!(
        dirs.len(),
        1,
        "expected one image after a pull by digest: {dirs:?}"
    );
    let dir = t.repos().join(&dirs[0]);
    let manifest = fs::read(dir.join("manifest")).unwrap();
    assert_eq!(
        format!("sha256:{}", e2e::sha256_hex(&manifest)),
        digest,
        "expected the stored manifest to have the requested digest"
    );
    let out = t.ud_ok(&["images"]);
    assert!(
        out.contains("busybox"),
        "expected images to list the image pulled by digest:\n{out}"
    );
    t.ud_ok(&["verify", &img]);
    t.assert_repo_consistent();

    // A digest the registry does not have.
    let bad = format!("{reg}/library/busybox@sha256:{}", "0".repeat(64));
    t.ud_fail(&["pull", &bad]);
    assert_eq!(
        t.tag_dirs().len(),
        1,
        "expected no new tag dir: {:?}",
        t.tag_dirs()
    );
}

/// A zstd-compressed tar of one small file, made with the tar and zstd tools.
fn zstd_layer(dir: &std::path::Path) -> Vec<u8> {
    fs::write(dir.join("hello.txt"), b"hello from a zstd layer\n").unwrap();
    let ok = Command::new("sh")
        .arg("-c")
        .arg("tar -C \"$0\" -cf \"$0/layer.tar\" hello.txt && zstd -q -f \"$0/layer.tar\" -o \"$0/layer.tar.zst\"")
        .arg(dir)
        .status()
        .expect("tar and zstd (apt-get install zstd)");
    assert!(
        ok.success(),
        "building a zstd layer with tar and zstd failed"
    );
    fs::read(dir.join("layer.tar.zst")).unwrap()
}

#[test]
fn pull_real_zstd_layer() {
    // The fixture test/zstd may be stored gzip-compressed: serve a genuine zstd layer too.
    let t = TestEnv::new();
    let work = tempfile::tempdir().unwrap();
    let layer = zstd_layer(work.path());
    assert_eq!(&layer[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    let mt = "application/vnd.oci.image.layer.v1.tar+zstd";
    let (manifest, blobs) = oci_image(layer.clone(), mt);
    // The same archive cut short (digest of the cut bytes): stores, but verify must refuse it.
    let (bad_manifest, bad_blobs) = oci_image(layer[..layer.len() / 2].to_vec(), mt);
    let ct = "application/vnd.oci.image.manifest.v1+json";
    let mut routes = image_routes("z/good", "latest", &manifest, ct, &blobs);
    routes.splice(
        0..0,
        image_routes("z/bad", "latest", &bad_manifest, ct, &bad_blobs),
    );
    let srv = TestServer::start(ServerConfig {
        routes,
        ..Default::default()
    });
    let good = format!("{}/z/good:latest", srv.addr);
    t.ud_ok(&["pull", &good]);
    let ld = &blobs[1].0;
    assert_eq!(
        fs::read(t.layer(ld)).unwrap(),
        layer,
        "expected the zstd layer stored byte for byte"
    );
    let out = t.ud_ok(&["verify", &good]);
    assert!(
        out.contains(&format!("image ok: {good}")),
        "expected verify to accept the zstd layer:\n{out}"
    );
    let bad = format!("{}/z/bad:latest", srv.addr);
    let o = t.ud(&["pull", &bad]);
    if o.status.success() {
        let o = t.ud(&["verify", &bad]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "expected verify to reject a truncated zstd archive\n{}",
            show(&o)
        );
    }
    t.assert_repo_consistent();
}
