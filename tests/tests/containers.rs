//! Containers: `create` compared with `umoci unpack` of the same image, hostile layers served by
//! a test registry, modes that would lock the user out, and the container commands.

use e2e::*;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What we compare between two trees: type, owner-execute bit, link target, content digest.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            let desc = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.is_file() {
                format!("file x={} {}", m.mode() & 0o100 != 0, file_sha256(&p))
            } else {
                "special".to_string()
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => d.push(format!("only in ours: {k} ({v})")),
            Some(w) if w != v => d.push(format!("{k}: ours {v}, reference {w}")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            d.push(format!("only in reference: {k} ({v})"));
        }
    }
    d
}

fn create(t: &TestEnv, img: &str) -> (String, PathBuf) {
    t.ud_ok(&["pull", img]);
    let id = t.ud_ok(&["create", img]).trim().to_string();
    assert_eq!(id.len(), 36, "expected a UUID on stdout, got {id:?}");
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", &id]).trim());
    assert!(
        root.ends_with(format!("containers/{id}/ROOT")),
        "unexpected ROOT {}",
        root.display()
    );
    (id, root)
}

/// `umoci unpack` of a tag of the fixtures' OCI layout: the reference tree.
fn umoci_rootfs(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let layout = Fixtures::load().get("OCI_LAYOUT");
    let d = tempfile::tempdir().unwrap();
    let bundle = d.path().join("bundle");
    let o = Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{layout}:{tag}"),
        ])
        .arg(&bundle)
        .output()
        .expect("running umoci (installed by scripts/fixtures.sh)");
    assert!(
        o.status.success(),
        "umoci unpack {tag} failed: {}",
        show(&o)
    );
    (d, bundle.join("rootfs"))
}

fn same_as_umoci(image: &str, tag: &str) {
    let t = TestEnv::new();
    let (_, root) = create(&t, &format!("{}/{image}", t.fx.registry()));
    let (_keep, reference) = umoci_rootfs(tag);
    let d = diff(&tree(&root), &tree(&reference));
    assert!(
        d.is_empty(),
        "create of {image} differs from umoci unpack:\n{}",
        d.join("\n")
    );
}

#[test]
fn create_busybox_matches_umoci() {
    same_as_umoci("library/busybox:latest", "busybox");
}

#[test]
fn create_multilayer_matches_umoci() {
    same_as_umoci("test/multilayer:latest", "multilayer");
}

#[test]
fn create_debian_matches_umoci() {
    same_as_umoci("library/debian:bookworm", "debian");
}

#[test]
fn create_many_layers_matches_umoci() {
    same_as_umoci("test/many:latest", "many");
}

#[test]
fn create_zstd_image() {
    let t = TestEnv::new();
    let (_, root) = create(&t, &format!("{}/test/zstd:latest", t.fx.registry()));
    assert!(
        root.join("bin/busybox").is_file(),
        "expected bin/busybox from the zstd layer"
    );
}

#[test]
fn multilayer_whiteouts_and_links() {
    let t = TestEnv::new();
    let (_, root) = create(&t, &format!("{}/test/multilayer:latest", t.fx.registry()));
    assert!(!root.join("data/a").exists(), "expected data/a whited out");
    assert!(root.join("data/b").exists(), "expected data/b kept");
    assert!(
        !root.join("data/dir/x").exists(),
        "expected the opaque dir to hide data/dir/x"
    );
    assert!(
        root.join("data/dir/y").exists(),
        "expected data/dir/y from the top layer"
    );
    assert!(
        !root.join("todelete").exists(),
        "expected the top-level whiteout applied"
    );
    let ino = |p: &str| fs::metadata(root.join(p)).unwrap().ino();
    assert_eq!(
        ino("data/c"),
        ino("data/c-hard"),
        "expected a hard link kept as a link"
    );
    assert_eq!(
        fs::read_link(root.join("data/c-sym")).unwrap(),
        PathBuf::from("c")
    );
}

/// A registry serving one image made of `layer` (an uncompressed tar).
fn serve_layer(layer: Vec<u8>) -> TestServer {
    let (manifest, blobs) = oci_image(layer, "application/vnd.oci.image.layer.v1.tar");
    TestServer::start(ServerConfig {
        routes: image_routes(
            "evil/img",
            "latest",
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
            &blobs,
        ),
        ..Default::default()
    })
}

fn raw_entry(b: &mut Vec<u8>, name: &str, kind: u8, mode: u32, link: &str, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(format!("{mode:07o}").as_bytes());
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    b.extend_from_slice(&h);
    b.extend_from_slice(data);
    b.resize(b.len().div_ceil(512) * 512, 0);
}

#[test]
fn hostile_layer_stays_inside_root() {
    let t = TestEnv::new();
    // A directory beside the repository that the layer tries to reach.
    let target = t.home.join("target");
    fs::create_dir(&target).unwrap();
    t.write_file(&target.join("secret"), b"host data");
    if let Some((u, g)) = t.user {
        chown(&target, u, g);
    }
    let tgt = target.to_str().unwrap();
    let mut l = Vec::new();
    raw_entry(
        &mut l,
        "../../../../../../../../../..",
        b'5',
        0o755,
        "",
        b"",
    );
    raw_entry(
        &mut l,
        &format!("../../../../../../../../../..{tgt}/slip"),
        b'0',
        0o644,
        "",
        b"pwned",
    );
    raw_entry(&mut l, "abs", b'2', 0o777, tgt, b"");
    raw_entry(&mut l, "abs/through-symlink", b'0', 0o644, "", b"pwned");
    raw_entry(
        &mut l,
        "rel",
        b'2',
        0o777,
        "../../../../../../../../../../..",
        b"",
    );
    raw_entry(
        &mut l,
        &format!("rel{tgt}/through-rel"),
        b'0',
        0o644,
        "",
        b"pwned",
    );
    raw_entry(&mut l, "hl", b'1', 0o644, &format!("{tgt}/secret"), b"");
    raw_entry(
        &mut l,
        "hl2",
        b'1',
        0o644,
        &format!("../../../../../../../../..{tgt}/secret"),
        b"",
    );
    raw_entry(&mut l, "abs/secret", b'0', 0o644, "", b"overwritten");
    raw_entry(&mut l, "dev-null", b'3', 0o666, "", b"");
    l.extend_from_slice(&[0u8; 1024]);
    let srv = serve_layer(l);
    let img = format!("{}/evil/img:latest", srv.addr);
    t.ud_ok(&["pull", &img]);
    let o = t.ud(&["create", &img]);
    assert!(
        o.status.success(),
        "expected create to neutralise the attacks, not fail: {}",
        show(&o)
    );
    let names: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["secret".to_string()],
        "files appeared outside ROOT"
    );
    assert_eq!(
        fs::read(target.join("secret")).unwrap(),
        b"host data",
        "host file changed"
    );
    assert_eq!(
        fs::metadata(target.join("secret")).unwrap().nlink(),
        1,
        "host file was hard-linked"
    );
    let id = stdout(&o).trim().to_string();
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", &id]).trim());
    // Followed inside ROOT, as the container sees it.
    assert!(root
        .join(tgt.trim_start_matches('/'))
        .join("through-symlink")
        .is_file());
    assert!(
        !root.join("dev-null").exists(),
        "expected the device node skipped"
    );
    assert!(
        stderr(&o).contains("refused"),
        "expected warnings about refused members: {}",
        stderr(&o)
    );
}

#[test]
fn mode_000_does_not_lock_the_user_out() {
    let t = TestEnv::new();
    let mut l = Vec::new();
    raw_entry(&mut l, "locked/", b'5', 0o000, "", b"");
    raw_entry(&mut l, "locked/file", b'0', 0o000, "", b"data");
    raw_entry(&mut l, "locked/sub/", b'5', 0o000, "", b"");
    raw_entry(&mut l, "suid", b'0', 0o4755, "", b"x");
    l.extend_from_slice(&[0u8; 1024]);
    let srv = serve_layer(l);
    let img = format!("{}/evil/img:latest", srv.addr);
    t.ud_ok(&["pull", &img]);
    let id = t
        .ud_ok(&["create", "--name=locked", &img])
        .trim()
        .to_string();
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "locked"]).trim());
    let o = t.sh_as_user(&format!(
        "cat '{}/locked/file' && ls '{}/locked/sub'",
        root.display(),
        root.display()
    ));
    assert!(
        o.status.success(),
        "expected the user to read mode-000 entries: {}",
        show(&o)
    );
    assert_eq!(
        mode(&root.join("suid")) & 0o6000,
        0,
        "expected setuid dropped"
    );
    t.ud_ok(&["rm", &id]);
    assert!(
        !t.udir.join("containers").join(&id).exists(),
        "expected the container gone"
    );
    assert!(
        !t.udir.join("containers/locked").exists(),
        "expected the name gone"
    );
}

#[test]
fn container_commands() {
    let t = TestEnv::new();
    let img = format!("{}/library/busybox:latest", t.fx.registry());
    t.ud_ok(&["pull", &img]);
    let id = t.ud_ok(&["create", "--name=box", &img]).trim().to_string();
    let ps = t.ud_ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID"), "expected a header: {ps}");
    let line = ps
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in ps:\n{ps}"));
    assert!(
        line.contains("['box']") && line.contains(&img) && line.contains(" . W "),
        "unexpected ps line {line:?}"
    );
    let psm = t.ud_ok(&["ps", "-m", "-s", "-p"]);
    assert!(
        psm.contains("P1") && psm.contains("linux/amd64"),
        "expected mode and platform columns:\n{psm}"
    );
    // Names.
    t.ud_fail(&["create", "--name=box", &img]);
    let forced = t
        .ud_ok(&["create", "--force", "--name=box", &img])
        .trim()
        .to_string();
    assert_ne!(forced, id);
    for bad in ["a.b", "a/b", "a b", "x[1]"] {
        t.ud_fail(&["name", &id, bad]);
    }
    t.ud_ok(&["name", &id, "second"]);
    t.ud_ok(&["rename", "second", "third"]);
    assert!(t.ud_ok(&["ps"]).contains("'third'"));
    t.ud_ok(&["rmname", "third"]);
    t.ud_fail(&["rmname", "third"]);
    // Mode.
    assert!(t.ud_ok(&["setup", "box"]).contains("execmode: P1"));
    assert!(t
        .ud_ok(&["setup", "--execmode=P2", "box"])
        .contains("execmode: P2"));
    t.ud_fail(&["setup", "--execmode=Z9", "box"]);
    // Protection blocks rm and mode changes.
    t.ud_ok(&["protect", "box"]);
    assert!(t
        .ud_ok(&["ps"])
        .lines()
        .any(|l| l.starts_with(&id) && l.contains(" P W ")));
    t.ud_fail(&["rm", "box"]);
    t.ud_fail(&["setup", "--execmode=P2", "box"]);
    t.ud_ok(&["unprotect", "box"]);
    // Clone: same tree, new id, own name.
    let cl = t.ud_ok(&["clone", "--name=copy", "box"]).trim().to_string();
    let r1 = PathBuf::from(t.ud_ok(&["inspect", "-p", "box"]).trim());
    let r2 = PathBuf::from(t.ud_ok(&["inspect", "-p", "copy"]).trim());
    assert!(r2.to_string_lossy().contains(&cl));
    let d = diff(&tree(&r1), &tree(&r2));
    assert!(d.is_empty(), "clone differs:\n{}", d.join("\n"));
    let js: serde_json::Value =
        serde_json::from_str(&t.ud_ok(&["inspect", "box"])).expect("inspect prints JSON");
    assert_eq!(js["architecture"], "amd64");
    t.ud_ok(&["rm", "box", "copy", &forced]);
    assert_eq!(
        t.ud_ok(&["ps"]).lines().count(),
        1,
        "expected only the header left"
    );
    let left: Vec<_> = fs::read_dir(t.udir.join("containers")).unwrap().collect();
    assert!(
        left.is_empty(),
        "expected containers/ empty, found {left:?}"
    );
    t.ud_fail(&["rm", "nosuch"]);
}

#[test]
fn failed_create_leaves_nothing() {
    let t = TestEnv::new();
    let img = format!("{}/library/busybox:latest", t.fx.registry());
    t.ud_ok(&["pull", &img]);
    // Truncate the stored layer: create must fail and leave no container.
    let layer = t.fx.list("BUSYBOX_LAYERS")[0].clone();
    let p = t.layer(&layer);
    let data = fs::read(&p).unwrap();
    let mut perm = fs::metadata(&p).unwrap().permissions();
    perm.set_mode(0o644);
    fs::set_permissions(&p, perm).unwrap();
    t.write_file(&p, &data[..data.len() / 2]);
    let err = t.ud_fail(&["create", "--name=broken", &img]);
    assert!(
        err.lines().count() == 1 && err.starts_with("Error:"),
        "expected one error line, got {err:?}"
    );
    let left: Vec<_> = fs::read_dir(t.udir.join("containers")).unwrap().collect();
    assert!(
        left.is_empty(),
        "expected no container after a failed create, found {left:?}"
    );
}

#[test]
fn setup_nvidia_copies_a_driver_like_tree() {
    let mut t = TestEnv::new();
    // A host "driver": libraries (a versioned file and its relative link) and nvidia-smi.
    let host = t.home.join("fakehost");
    let lib = host.join("usr/lib/x86_64-linux-gnu");
    fs::create_dir_all(&lib).unwrap();
    fs::create_dir_all(host.join("usr/bin")).unwrap();
    t.write_file(&lib.join("libcuda.so.550.54"), b"driver");
    std::os::unix::fs::symlink("libcuda.so.550.54", lib.join("libcuda.so.1")).unwrap();
    t.write_file(&lib.join("libnvidia-ml.so.550.54"), b"nvml");
    t.write_file(
        &host.join("usr/bin/nvidia-smi"),
        b"#!/bin/sh\necho fake-nvidia-smi \"$@\"\n",
    );
    fs::set_permissions(
        host.join("usr/bin/nvidia-smi"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    t.set_env("UDOCKER_NVIDIA_HOST_ROOT", host.to_str().unwrap());
    let img = format!("{}/library/debian:bookworm", t.fx.registry());
    t.ud_ok(&["pull", &img]);
    t.ud_ok(&["create", "--name=gpu", &img]);
    let out = t.ud_ok(&["setup", "--nvidia", "gpu"]);
    assert!(
        out.contains("nvidiamode: True"),
        "expected the mode shown: {out}"
    );
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "gpu"]).trim());
    let cl = root.join("usr/lib/x86_64-linux-gnu");
    assert_eq!(fs::read(cl.join("libcuda.so.550.54")).unwrap(), b"driver");
    assert_eq!(
        fs::read_link(cl.join("libcuda.so.1")).unwrap(),
        PathBuf::from("libcuda.so.550.54")
    );
    assert!(cl.join("libnvidia-ml.so.550.54").is_file());
    let run = t.ud_ok(&["run", "--nobanner", "gpu", "nvidia-smi", "-L"]);
    assert!(
        run.contains("fake-nvidia-smi -L"),
        "expected nvidia-smi to run in the container: {run}"
    );
    let err = t.ud_fail(&["setup", "--nvidia", "gpu"]);
    assert!(
        err.contains("--force"),
        "expected a refusal naming --force: {err}"
    );
    t.ud_ok(&["setup", "--nvidia", "--force", "gpu"]);
}
