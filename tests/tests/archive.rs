//! export, import (image, --tocontainer, --clone, --mv, stdin), load (skopeo-made docker-archive
//! and oci-archive, our own save output, hostile and non-archives), save (read back by skopeo).

use e2e::{file_sha256, sha256_hex, show, stderr, stdout, TestEnv};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn busybox(t: &TestEnv) -> String {
    let img = t.fx.get("BUSYBOX_REF");
    t.ud_ok(&["pull", &img]);
    img
}

fn create(t: &TestEnv, img: &str) -> String {
    let id = t.ud_ok(&["create", img]).trim().to_string();
    assert_eq!(
        id.len(),
        36,
        "expected a container id from create, got {id:?}"
    );
    id
}

fn root_of(t: &TestEnv, id: &str) -> PathBuf {
    t.udir.join("containers").join(id).join("ROOT")
}

/// Every entry below `root`: type, mode, link target or content digest.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
        let p = root.join(rel);
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ft = m.file_type();
        let mode = m.permissions().mode() & 0o7777;
        let desc = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                walk(root, &rel.join(e.unwrap().file_name()), out);
            }
            format!("dir {mode:o}")
        } else {
            format!("file {mode:o} {}", file_sha256(&p))
        };
        out.insert(rel.display().to_string(), desc);
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    assert!(
        ta.len() > 10,
        "expected a populated tree at {}",
        a.display()
    );
    let diff: Vec<String> = ta
        .iter()
        .filter(|(k, v)| tb.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {v} vs {:?}", tb.get(k)))
        .chain(
            tb.keys()
                .filter(|k| !ta.contains_key(*k))
                .map(|k| format!("{k}: only in {}", b.display())),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "expected {} and {} to hold the same tree, differences:\n  {}",
        a.display(),
        b.display(),
        diff.join("\n  ")
    );
}

/// A tar archive built by hand (the e2e crate has no tar dependency): ustar headers with raw
/// names, so hostile names such as `../x` can be written.
fn raw_tar(members: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in members {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let mode: &[u8] = if *kind == b'5' {
            b"0000755\0"
        } else {
            b"0000644\0"
        };
        h[100..108].copy_from_slice(mode);
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = *kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("running skopeo (installed by scripts/fixtures.sh)")
}

#[test]
fn export_import_create_round_trip() {
    let t = TestEnv::new();
    let img = busybox(&t);
    let c1 = create(&t, &img);
    let out = t.home.join("busybox.tar");
    t.ud_ok(&["export", "-o", out.to_str().unwrap(), &c1]);
    // Refuses to overwrite; the file is untouched.
    let before = file_sha256(&out);
    let err = t.ud_fail(&["export", "-o", out.to_str().unwrap(), &c1]);
    assert!(err.contains("exists"), "expected an 'exists' error:\n{err}");
    assert_eq!(file_sha256(&out), before);
    // `export - C` writes the same archive to stdout.
    let o = t.ud(&["export", "-", &c1]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        sha256_hex(&o.stdout),
        before,
        "stdout export differs from -o export"
    );

    t.ud_ok(&["import", out.to_str().unwrap(), "imported/busybox:v1"]);
    assert!(out.exists(), "import without --mv keeps the file");
    assert!(
        t.layer(&format!("sha256:{before}")).is_file(),
        "expected the tarball stored as layers/sha256:<its digest>"
    );
    let dir = t.tag_dir("imported/busybox", "v1");
    assert!(dir.join("v2").is_file(), "expected a v2 image");
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("manifest")).unwrap()).unwrap();
    assert_eq!(
        m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar",
        "{m}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&t.ud_ok(&["inspect", "imported/busybox:v1"])).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"][0], format!("sha256:{before}"));
    assert_eq!(cfg["comment"], "created by udocker import");
    let err = t.ud_fail(&["import", out.to_str().unwrap(), "imported/busybox:v1"]);
    assert!(err.contains("exists"), "expected an 'exists' error:\n{err}");

    let c2 = create(&t, "imported/busybox:v1");
    assert_same_tree(&root_of(&t, &c1), &root_of(&t, &c2));
    let o = t.ud_with_stdin(&fs::read(&out).unwrap(), &["import", "-", "fromstdin:1"]);
    assert!(o.status.success(), "{}", show(&o));
    let c3 = create(&t, "fromstdin:1");
    assert_same_tree(&root_of(&t, &c1), &root_of(&t, &c3));

    // --mv: the file moves into layers/.
    let mv = t.home.join("mv.tar");
    fs::copy(&out, &mv).unwrap();
    e2e::chown(&mv, t.user.map_or(0, |u| u.0), t.user.map_or(0, |u| u.1));
    t.ud_ok(&["import", "--mv", mv.to_str().unwrap(), "moved:1"]);
    assert!(!mv.exists(), "expected --mv to move the file away");
    t.assert_repo_consistent();
}

#[test]
fn import_tocontainer_and_clone() {
    let t = TestEnv::new();
    let img = busybox(&t);
    let c1 = create(&t, &img);
    let flat = t.home.join("flat.tar");
    t.ud_ok(&["export", "-o", flat.to_str().unwrap(), &c1]);
    let id = t
        .ud_ok(&[
            "import",
            "--tocontainer",
            "--name=tc",
            flat.to_str().unwrap(),
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 36, "expected a container id, got {id:?}");
    assert_same_tree(&root_of(&t, &c1), &root_of(&t, &id));
    let ps = t.ud_ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&id) && l.contains("'tc'") && l.contains("IMPORTED:unknown")),
        "expected ps to list {id} named tc from IMPORTED:unknown:\n{ps}"
    );
    assert!(
        t.tag_dirs().len() == 1,
        "--tocontainer makes no image: {:?}",
        t.tag_dirs()
    );

    t.ud_ok(&["setup", "--execmode=P2", "tc"]);
    let cl = t.home.join("clone.tar");
    t.ud_ok(&["export", "--clone", "-o", cl.to_str().unwrap(), "tc"]);
    let id2 = t
        .ud_ok(&["import", "--clone", "--name=cl", cl.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(id2.len(), 36);
    assert_ne!(id2, id);
    assert_same_tree(&root_of(&t, &c1), &root_of(&t, &id2));
    let s = t.ud_ok(&["setup", "cl"]);
    assert!(
        s.contains("execmode: P2"),
        "expected the clone to keep its execmode:\n{s}"
    );
    // A flat export is not a clone archive: refused, nothing left behind.
    let err = t.ud_fail(&["import", "--clone", flat.to_str().unwrap()]);
    assert!(
        err.starts_with("Error: ") && err.lines().count() == 1,
        "{err}"
    );
    let hidden: Vec<_> = fs::read_dir(t.udir.join("containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "leftover temporaries: {hidden:?}");
}

#[test]
fn load_skopeo_archives_keeps_names() {
    let t = TestEnv::new();
    let out = t.ud_ok(&["load", "-i", &t.fx.get("ARCHIVE_DOCKER")]);
    assert_eq!(
        out.trim(),
        "docker.io/library/busybox:latest",
        "load output:\n{out}"
    );
    let o = t.ud_with_stdin(&fs::read(t.fx.get("ARCHIVE_OCI")).unwrap(), &["load"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "busybox:latest", "{}", show(&o));
    let want = t.fx.get("BUSYBOX_LAYERS");
    for img in ["docker.io/library/busybox:latest", "busybox:latest"] {
        let id = create(&t, img);
        assert!(
            root_of(&t, &id).join("bin/busybox").is_file(),
            "{img}: no /bin/busybox"
        );
    }
    assert!(
        t.layer(&want).is_file(),
        "expected the oci-archive's layer stored under its digest {want}"
    );
    // Again: both exist, warnings, rc 0, nothing printed.
    let o = t.ud(&["load", "-i", &t.fx.get("ARCHIVE_DOCKER")]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stdout(&o).trim().is_empty() && stderr(&o).contains("exists"),
        "{}",
        show(&o)
    );
    // Renaming.
    let out = t.ud_ok(&["load", "-i", &t.fx.get("ARCHIVE_OCI"), "renamed/bb"]);
    assert_eq!(out.trim(), "renamed/bb:latest");
    t.assert_repo_consistent();
}

#[test]
fn save_load_round_trip_and_skopeo_reads_it() {
    let t = TestEnv::new();
    let img = busybox(&t);
    let multi = t.fx.get("MULTILAYER_REF");
    t.ud_ok(&["pull", &multi]);
    let saved = t.home.join("saved.tar");
    t.ud_ok(&["save", "-o", saved.to_str().unwrap(), &img, &multi]);
    let err = t.ud_fail(&["save", "-o", saved.to_str().unwrap(), &img]);
    assert!(err.contains("exists"), "{err}");
    let one = t.home.join("one.tar");
    t.ud_ok(&["save", "-o", one.to_str().unwrap(), &img]);
    let oci = t.home.join("one-oci.tar");
    t.ud_ok(&["save", "--oci", "-o", oci.to_str().unwrap(), &multi]);

    let dest = tempfile::tempdir().unwrap();
    let o = skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", one.display()),
        &format!("oci:{}/x:one", dest.path().display()),
    ]);
    assert!(
        o.status.success(),
        "skopeo refused our docker-archive:\n{}",
        show(&o)
    );
    let o = skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}:{multi}", saved.display()),
        &format!("oci:{}/y:multi", dest.path().display()),
    ]);
    assert!(
        o.status.success(),
        "skopeo refused our 2-image docker-archive:\n{}",
        show(&o)
    );
    let tag = multi.rsplit(':').next().unwrap();
    let o = skopeo(&[
        "copy",
        "-q",
        &format!("oci-archive:{}:{tag}", oci.display()),
        &format!("oci:{}/z:multi", dest.path().display()),
    ]);
    assert!(
        o.status.success(),
        "skopeo refused our --oci archive:\n{}",
        show(&o)
    );

    // Into a fresh repository: same names, same trees.
    let t2 = TestEnv::new();
    let tar = t2.home.join("in.tar");
    t2.write_file(&tar, &fs::read(&saved).unwrap());
    let out = t2.ud_ok(&["load", "-i", tar.to_str().unwrap()]);
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want = vec![img.as_str(), multi.as_str()];
    want.sort();
    assert_eq!(got, want, "load output:\n{out}");
    for i in [&img, &multi] {
        let a = create(&t, i);
        let b = create(&t2, i);
        assert_same_tree(&root_of(&t, &a), &root_of(&t2, &b));
    }
    t2.assert_repo_consistent();
    let t3 = TestEnv::new();
    let o = t3.ud_with_stdin(&fs::read(&oci).unwrap(), &["load", "-"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), multi);
    let a = create(&t, &multi);
    let b = create(&t3, &multi);
    assert_same_tree(&root_of(&t, &a), &root_of(&t3, &b));
}

#[test]
fn hostile_and_non_archives_change_nothing() {
    let t = TestEnv::new();
    busybox(&t);
    let tags = t.tag_dirs();
    let layers = t.layer_files();
    // Not a tar at all, and a tar that is no image archive.
    let junk = t.home.join("junk.tar");
    t.write_file(&junk, &vec![b'x'; 5000]);
    let plain = t.home.join("plain.tar");
    t.write_file(&plain, &raw_tar(&[("hello", b'0', b"hi", "")]));
    for f in [&junk, &plain] {
        let o = t.ud(&["load", "-i", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        let err = stderr(&o);
        assert!(
            err.lines().count() == 1 && err.starts_with("Error: "),
            "expected a one-line error:\n{}",
            show(&o)
        );
    }
    let err = t.ud_fail(&["import", junk.to_str().unwrap(), "junk:1"]);
    assert!(
        err.starts_with("Error: ") && err.contains("not a tar archive"),
        "{err}"
    );
    assert!(junk.exists());
    // Members escaping with `..`, and manifest.json pointing outside (path and symlink).
    let secret = t.home.join("secret");
    t.write_file(&secret, b"secret");
    let cfg = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cname = format!("{}.json", sha256_hex(cfg));
    let manifest = format!(
        r#"[{{"Config":"{cname}","RepoTags":["evil:1"],"Layers":["../../secret"]}},{{"Config":"{cname}","RepoTags":["evil:2"],"Layers":["link"]}}]"#
    );
    let evil = t.home.join("evil.tar");
    t.write_file(
        &evil,
        &raw_tar(&[
            ("../x", b'0', b"escaped", ""),
            ("../../x", b'0', b"escaped", ""),
            (&cname, b'0', cfg, ""),
            ("link", b'2', b"", secret.to_str().unwrap()),
            ("manifest.json", b'0', manifest.as_bytes(), ""),
        ]),
    );
    let o = t.ud(&["load", "-i", evil.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(stdout(&o).trim().is_empty(), "{}", show(&o));
    for p in [
        t.home.join("x"),
        t.layers().join("x"),
        t.udir.join("x"),
        t.layers().join(".partial/x"),
    ] {
        assert!(
            !p.exists(),
            "{} was written by a hostile archive",
            p.display()
        );
    }
    assert_eq!(fs::read(&secret).unwrap(), b"secret");
    assert_eq!(t.tag_dirs(), tags, "images changed");
    assert_eq!(t.layer_files(), layers, "layers changed");
    let partial: Vec<_> = fs::read_dir(t.partial_dir())
        .map(|r| r.flatten().collect())
        .unwrap_or_default();
    assert!(partial.is_empty(), "leftovers in .partial: {partial:?}");
    t.assert_repo_consistent();
}
