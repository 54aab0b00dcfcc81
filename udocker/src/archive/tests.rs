//! Unit tests of the archive module: formats written and read back, hostile archives.

use super::*;
use crate::container::Container;
use crate::repo::{Layout, LocalRepo};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn repo() -> (tempfile::TempDir, LocalRepo) {
    let d = tempfile::tempdir().unwrap();
    let (r, _) = LocalRepo::open_or_create(Layout::under(&d.path().join("u"))).unwrap();
    (d, r)
}

/// A tar built in memory: `(name, kind, data-or-link-target)`; kind `f` file, `d` dir, `l` symlink.
fn mktar(members: &[(&str, char, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_mode(if *kind == 'd' { 0o755 } else { 0o644 });
        h.set_mtime(1_700_000_000);
        match kind {
            'd' => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, name, io::empty()).unwrap();
            }
            'l' => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_link_name_literal(data).unwrap();
                // Raw name (may contain `..`, which append_data refuses).
                h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            }
            _ => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn hex(data: &[u8]) -> String {
    Digest::sha256_of(data).hex().to_string()
}

#[test]
fn rfc3339_and_names() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
    assert_eq!(
        split_name_tag("127.0.0.1:5000/a/b:v1"),
        ("127.0.0.1:5000/a/b".into(), Some("v1".into()))
    );
    assert_eq!(
        split_name_tag("127.0.0.1:5000/a/b"),
        ("127.0.0.1:5000/a/b".into(), None)
    );
    assert_eq!(split_name_tag("x@sha256:ab"), ("x".into(), None));
    let d1 = Digest::sha256_of(b"1");
    let d2 = Digest::sha256_of(b"2");
    let c = save::chain_ids(&[d1.clone(), d2.clone()]);
    assert_eq!(c[0], d1);
    assert_eq!(c[1], Digest::sha256_of(format!("{d1} {d2}").as_bytes()));
}

#[test]
fn resolve_member_stays_inside() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    fs::create_dir_all(r.join("blobs/sha256")).unwrap();
    fs::create_dir(r.join("id")).unwrap();
    fs::write(r.join("blobs/sha256/aa"), b"x").unwrap();
    std::os::unix::fs::symlink("../blobs/sha256/aa", r.join("id/layer.tar")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", r.join("id/up")).unwrap();
    std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
    assert_eq!(
        resolve_member(r, "id/layer.tar").unwrap(),
        r.join("blobs/sha256/aa")
    );
    assert_eq!(
        resolve_member(r, "./id/../blobs/sha256/aa").unwrap(),
        r.join("blobs/sha256/aa")
    );
    for bad in [
        "abs",
        "id/up",
        "loop",
        "/etc/passwd",
        "../x",
        "blobs",
        "missing",
    ] {
        assert!(resolve_member(r, bad).is_err(), "{bad}");
    }
}

#[test]
fn tar_out_long_names_and_raw_links() {
    let long = format!("./{}/{}", "d".repeat(120), "f".repeat(80));
    let target = format!("a/./{}", "t".repeat(150));
    let mut t = TarOut::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    t.append(
        &mut h,
        long.as_bytes(),
        Some(target.as_bytes()),
        &mut io::empty(),
    )
    .unwrap();
    t.bytes("short", b"hello").unwrap();
    let data = t.finish().unwrap();
    let mut ar = tar::Archive::new(&data[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut body = String::new();
        e.read_to_string(&mut body).unwrap();
        seen.push((name, link, body));
    }
    assert_eq!(seen[0].0, long);
    assert_eq!(
        seen[0].1.as_deref(),
        Some(target.as_str()),
        "target verbatim"
    );
    assert_eq!(seen[1], ("short".into(), None, "hello".into()));
}

/// `(relative path, kind, mode, content or link target)` of every entry under `root`.
fn tree(root: &Path) -> Vec<(String, char, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let (k, data) = if m.file_type().is_symlink() {
            ('l', path_bytes(&fs::read_link(&p).unwrap()).to_vec())
        } else if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(rel.join(e.unwrap().file_name()));
            }
            ('d', Vec::new())
        } else {
            ('f', fs::read(&p).unwrap())
        };
        let mode = if k == 'l' { 0 } else { m.mode() & 0o7777 };
        out.push((rel.display().to_string(), k, mode, data));
    }
    out.sort();
    out
}

#[test]
fn export_then_extract_gives_the_same_tree() {
    let d = tempfile::tempdir().unwrap();
    let cdir = d.path().join("c");
    let root = cdir.join("ROOT");
    fs::create_dir_all(root.join("etc/sub")).unwrap();
    fs::write(root.join("etc/a"), b"aaa").unwrap();
    fs::set_permissions(root.join("etc/a"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::hard_link(root.join("etc/a"), root.join("etc/sub/hard")).unwrap();
    std::os::unix::fs::symlink("../a", root.join("etc/sub/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/a", root.join("abs")).unwrap();
    fs::write(root.join("n".repeat(200)), b"long").unwrap();
    fs::write(cdir.join("container.json"), b"{}").unwrap();
    let c = Container {
        id: "x".into(),
        dir: cdir.clone(),
        names: vec![],
    };
    let mut out = Vec::new();
    let st = export_container(&c, false, &mut out).unwrap();
    assert!(st.skipped.is_empty());
    let back = d.path().join("back");
    fs::create_dir(&back).unwrap();
    let mut u = crate::unpack::Unpacker::new(&back).unwrap();
    u.apply(Path::new("x"), &out[..]).unwrap();
    assert!(u.stats.refused.is_empty(), "{:?}", u.stats.refused);
    assert_eq!(tree(&root), tree(&back));
    let a = fs::metadata(back.join("etc/a")).unwrap();
    assert_eq!(
        a.ino(),
        fs::metadata(back.join("etc/sub/hard")).unwrap().ino()
    );
    assert_eq!(a.mtime(), fs::metadata(root.join("etc/a")).unwrap().mtime());
    // --clone: the whole directory.
    let mut out = Vec::new();
    export_container(&c, true, &mut out).unwrap();
    let back2 = d.path().join("back2");
    fs::create_dir(&back2).unwrap();
    let mut u = crate::unpack::Unpacker::new(&back2).unwrap();
    u.apply(Path::new("x"), &out[..]).unwrap();
    assert_eq!(tree(&cdir), tree(&back2));
}

#[test]
fn import_image_and_container() {
    let (d, r) = repo();
    let layer = gzip(&mktar(&[
        ("etc/", 'd', b""),
        ("etc/hostname", 'f', b"imp\n"),
    ]));
    let f = d.path().join("rootfs.tar.gz");
    fs::write(&f, &layer).unwrap();
    let opts = ImportOptions {
        mv: false,
        platform: crate::platform::Platform::parse("linux/arm64").unwrap(),
    };
    let digest = import_image(&r, Source::File(&f), "imp/x", "v1", &opts).unwrap();
    assert_eq!(digest.hex(), hex(&layer));
    assert!(f.exists(), "copied, not moved");
    assert!(matches!(
        import_image(&r, Source::File(&f), "imp/x", "v1", &opts),
        Err(ArchiveError::Repo(crate::repo::RepoError::ImageExists(_)))
    ));
    let img = r.find_image("imp/x", "v1").unwrap();
    let files = r.image_files(&img).unwrap();
    let m = files.manifest.unwrap();
    assert_eq!(m["layers"][0]["mediaType"], OCI_LAYER_GZIP);
    let cfg = r.image_config(&img).unwrap();
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(cfg["comment"], "created by udocker import");
    let plain = mktar(&[("etc/", 'd', b""), ("etc/hostname", 'f', b"imp\n")]);
    assert_eq!(
        cfg["rootfs"]["diff_ids"][0],
        Digest::sha256_of(&plain).as_str()
    );
    let (c, _) = r.create_container(&img, None).unwrap();
    assert_eq!(fs::read(c.root().join("etc/hostname")).unwrap(), b"imp\n");

    // --mv: the file goes into layers/.
    let g = d.path().join("plain.tar");
    fs::write(&g, &plain).unwrap();
    let mv = ImportOptions { mv: true, ..opts };
    import_image(&r, Source::File(&g), "imp/y", "latest", &mv).unwrap();
    assert!(!g.exists());
    assert!(r.blob_path(&Digest::sha256_of(&plain)).is_file());
    // Not a tar: refused, the file given back, nothing installed.
    let bad = d.path().join("bad.tar");
    fs::write(&bad, vec![b'x'; 4000]).unwrap();
    assert!(matches!(
        import_image(&r, Source::File(&bad), "imp/z", "latest", &mv),
        Err(ArchiveError::Format(_))
    ));
    assert!(bad.exists());
    assert!(r.find_image("imp/z", "latest").is_err());

    // --tocontainer and --clone.
    let (c2, _) = import_to_container(
        &r,
        Source::File(&f),
        Some("tc"),
        "IMPORTED:unknown",
        &mv.platform,
    )
    .unwrap();
    assert_eq!(fs::read(c2.root().join("etc/hostname")).unwrap(), b"imp\n");
    assert_eq!(c2.image_name(), "IMPORTED:unknown");
    assert_eq!(r.find_container("tc").unwrap().id, c2.id);
    fs::write(c2.dir.join("execmode"), b"F3").unwrap();
    fs::write(c2.dir.join("PROTECT"), b"").unwrap();
    let mut out = Vec::new();
    export_container(&c2, true, &mut out).unwrap();
    let cl = d.path().join("clone.tar");
    fs::write(&cl, &out).unwrap();
    let (c3, _) = import_clone(&r, Source::File(&cl), Some("cl")).unwrap();
    assert_ne!(c3.id, c2.id);
    assert_eq!(c3.exec_mode().as_deref(), Some("F3"));
    assert!(!c3.protected());
    assert_eq!(fs::read(c3.root().join("etc/hostname")).unwrap(), b"imp\n");
    // A plain rootfs is not a clone archive; nothing is left behind.
    assert!(import_clone(&r, Source::File(&f), None).is_err());
    let hidden: Vec<_> = fs::read_dir(&r.layout.containers)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// A Docker ≥ 25 style archive: blobs/sha256 + manifest.json + `<id>/layer.tar` symlinks.
fn docker25_archive(layer: &[u8], tags: Value) -> Vec<u8> {
    let lh = hex(layer);
    let cfg = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux",
        "rootfs":{"type":"layers","diff_ids":[format!("sha256:{lh}")]}}))
    .unwrap();
    let ch = hex(&cfg);
    let manifest = serde_json::to_vec(&json!([{"Config": format!("blobs/sha256/{ch}"),
        "RepoTags": tags, "Layers": [format!("legacy/{lh}/layer.tar")]}]))
    .unwrap();
    let link = format!("../../blobs/sha256/{lh}");
    mktar(&[
        ("blobs/", 'd', b""),
        ("blobs/sha256/", 'd', b""),
        (&format!("blobs/sha256/{lh}"), 'f', layer),
        (&format!("blobs/sha256/{ch}"), 'f', &cfg),
        (&format!("legacy/{lh}/layer.tar"), 'l', link.as_bytes()),
        ("manifest.json", 'f', &manifest),
        ("oci-layout", 'f', br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", 'f', br#"{"schemaVersion":2,"manifests":[]}"#),
    ])
}

fn load_bytes(r: &LocalRepo, dir: &Path, data: &[u8], rename: Option<&str>) -> Result<LoadReport> {
    let p = dir.join(format!("in-{}.tar", hex(data)));
    fs::write(&p, data).unwrap();
    load(
        r,
        Source::File(&p),
        &LoadOptions {
            rename: rename.map(str::to_string),
        },
    )
}

#[test]
fn load_docker_archive_keeps_names_and_checks_digests() {
    let (d, r) = repo();
    let layer = mktar(&[("hello", 'f', b"world")]);
    let rep = load_bytes(
        &r,
        d.path(),
        &docker25_archive(&layer, json!(["docker.io/library/hello:1.0", "h:2"])),
        None,
    )
    .unwrap();
    assert_eq!(rep.loaded, vec!["docker.io/library/hello:1.0", "h:2"]);
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    let img = r.find_image("h", "2").unwrap();
    let m = r.image_files(&img).unwrap().manifest.unwrap();
    assert_eq!(m["layers"][0]["mediaType"], OCI_LAYER_TAR);
    let (c, _) = r.create_container(&img, None).unwrap();
    assert_eq!(fs::read(c.root().join("hello")).unwrap(), b"world");
    // Loading again: existing, skipped, not an error. No name: derived, not random.
    let rep = load_bytes(
        &r,
        d.path(),
        &docker25_archive(&layer, json!(["h:2"])),
        None,
    )
    .unwrap();
    assert_eq!(rep.existing, vec!["h:2"]);
    let rep = load_bytes(&r, d.path(), &docker25_archive(&layer, json!(null)), None).unwrap();
    assert_eq!(rep.loaded.len(), 1);
    assert!(rep.loaded[0].starts_with("loaded/") && rep.loaded[0].ends_with(":latest"));
    let rep = load_bytes(
        &r,
        d.path(),
        &docker25_archive(&layer, json!(["a:1"])),
        Some("ren"),
    )
    .unwrap();
    assert_eq!(rep.loaded, vec!["ren:1"]);

    // A layer whose content does not match the config's diff_id.
    let mut a = docker25_archive(&layer, json!(["bad:1"]));
    let pos = a
        .windows(5)
        .position(|w| w == b"world")
        .expect("layer content in archive");
    a[pos] = b'W';
    let rep = load_bytes(&r, d.path(), &a, None).unwrap();
    assert!(rep.loaded.is_empty());
    assert_eq!(rep.failed.len(), 1, "{:?}", rep.failed);
    assert!(r.find_image("bad", "1").is_err());
}

#[test]
fn load_refuses_escapes_and_non_archives() {
    let (d, r) = repo();
    let outside = d.path().join("secret");
    fs::write(&outside, b"secret").unwrap();
    // Layers naming a path outside, via `..` and via a symlink member.
    let cfg = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let ch = hex(cfg);
    for layers in [json!(["../secret"]), json!(["link"])] {
        let manifest = serde_json::to_vec(&json!([{"Config": format!("{ch}.json"),
            "RepoTags": ["x:1"], "Layers": layers}]))
        .unwrap();
        let a = mktar(&[
            (&format!("{ch}.json"), 'f', cfg),
            ("link", 'l', outside.to_str().unwrap().as_bytes()),
            ("../escape", 'f', b"x"),
            ("manifest.json", 'f', &manifest),
        ]);
        let rep = load_bytes(&r, d.path(), &a, None).unwrap();
        assert!(rep.loaded.is_empty());
        assert_eq!(rep.failed.len(), 1);
        assert!(!rep.refused.is_empty(), "../escape refused");
    }
    assert!(!d.path().join("escape").exists());
    assert_eq!(fs::read(&outside).unwrap(), b"secret");
    // Not an archive at all.
    for junk in [
        vec![b'j'; 3000],
        b"short".to_vec(),
        mktar(&[("a", 'f', b"b")]),
    ] {
        assert!(matches!(
            load_bytes(&r, d.path(), &junk, None),
            Err(ArchiveError::Format(_))
        ));
    }
    assert!(r.images().unwrap().is_empty());
    let stray: Vec<_> = fs::read_dir(r.partial_dir().unwrap())
        .unwrap()
        .flatten()
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn load_oci_layout_with_nested_platform_index() {
    let (d, r) = repo();
    let host = crate::platform::Platform::host();
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest_for = |content: &[u8], arch: &str| {
        let layer = gzip(&mktar(&[("f", 'f', content)]));
        let cfg = serde_json::to_vec(&json!({"architecture": arch, "os": "linux"})).unwrap();
        let m = serde_json::to_vec(&json!({"schemaVersion":2,"mediaType":crate::registry::manifest::OCI_MANIFEST,
            "config":{"mediaType":OCI_CONFIG,"digest":Digest::sha256_of(&cfg).as_str(),"size":cfg.len()},
            "layers":[{"mediaType":OCI_LAYER_GZIP,"digest":Digest::sha256_of(&layer).as_str(),"size":layer.len()}]}))
        .unwrap();
        for b in [&layer, &cfg, &m] {
            members.push((format!("blobs/sha256/{}", hex(b)), b.clone()));
        }
        m
    };
    let native = manifest_for(b"native", &host.architecture);
    let foreign = manifest_for(b"foreign", "s390x-not");
    let plain = manifest_for(b"plain", &host.architecture);
    let idx = serde_json::to_vec(&json!({"schemaVersion":2,"manifests":[
        {"mediaType":crate::registry::manifest::OCI_MANIFEST,"digest":Digest::sha256_of(&foreign).as_str(),"size":foreign.len(),
         "platform":{"os":"linux","architecture":"mips64le"}},
        {"mediaType":crate::registry::manifest::OCI_MANIFEST,"digest":Digest::sha256_of(&native).as_str(),"size":native.len(),
         "platform":{"os":"linux","architecture":host.architecture}}]}))
    .unwrap();
    members.push((format!("blobs/sha256/{}", hex(&idx)), idx.clone()));
    let top = serde_json::to_vec(&json!({"schemaVersion":2,"manifests":[
        {"mediaType":crate::registry::manifest::OCI_INDEX,"digest":Digest::sha256_of(&idx).as_str(),"size":idx.len(),
         "annotations":{"io.containerd.image.name":"reg.example:5000/multi:v2","org.opencontainers.image.ref.name":"v2"}},
        {"mediaType":crate::registry::manifest::OCI_MANIFEST,"digest":Digest::sha256_of(&plain).as_str(),"size":plain.len(),
         "annotations":{"org.opencontainers.image.ref.name":"onlytag"}}]}))
    .unwrap();
    let mut list: Vec<(&str, char, &[u8])> = vec![
        ("oci-layout", 'f', br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", 'f', &top),
    ];
    for (n, b) in &members {
        list.push((n, 'f', b));
    }
    let rep = load_bytes(&r, d.path(), &gzip(&mktar(&list)), None).unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(rep.loaded.len(), 2, "{:?}", rep.loaded);
    assert_eq!(rep.loaded[0], "reg.example:5000/multi:v2");
    assert!(rep.loaded[1].starts_with("loaded/") && rep.loaded[1].ends_with(":onlytag"));
    let img = r.find_image("reg.example:5000/multi", "v2").unwrap();
    let (c, _) = r.create_container(&img, None).unwrap();
    assert_eq!(fs::read(c.root().join("f")).unwrap(), b"native");
    // A corrupted blob is detected.
    let mut bad = list.clone();
    let bad_layer = gzip(&mktar(&[("f", 'f', b"tampered")]));
    let native_layer = members
        .iter()
        .position(|(_, b)| b.starts_with(&[0x1f, 0x8b]))
        .unwrap();
    bad[2 + native_layer].2 = &bad_layer;
    let (_d2, r2) = repo();
    let rep = load_bytes(&r2, d.path(), &mktar(&bad), None).unwrap();
    assert_eq!(rep.failed.len(), 1, "{:?}", rep);
}

#[test]
fn save_then_load_round_trip() {
    let (d, r) = repo();
    let l1 = gzip(&mktar(&[("a/", 'd', b""), ("a/one", 'f', b"1")]));
    let l2 = mktar(&[("a/two", 'f', b"2"), ("a/.wh.one", 'f', b"")]);
    let mut blobs = Vec::new();
    for l in [&l1, &l2] {
        blobs.push(store_bytes_blob(&r, l).unwrap());
    }
    // A config without rootfs (as a v1-era config): save must add diff_ids.
    let cfg = serde_json::to_vec(&json!({"architecture":"amd64","os":"linux"})).unwrap();
    let cd = store_bytes_blob(&r, &cfg).unwrap();
    let manifest = import::synth_manifest(
        (&cd, cfg.len() as u64),
        &[
            (blobs[0].clone(), l1.len() as u64, Compression::Gzip),
            (blobs[1].clone(), l2.len() as u64, Compression::None),
        ],
    );
    let mut all = blobs.clone();
    all.push(cd);
    {
        let _g = r.lock().unwrap();
        r.install_v2("127.0.0.1:5000/s/img", "t", &manifest, &all)
            .unwrap();
    }
    let img = r.find_image("127.0.0.1:5000/s/img", "t").unwrap();
    let (orig, _) = r.create_container(&img, None).unwrap();
    let mut out = Vec::new();
    save_docker(&r, &[img.clone(), img.clone()], &mut out).unwrap();
    let mut oci = Vec::new();
    save_oci(&r, &[img], &mut oci).unwrap();
    // docker-archive layout.
    let mut names = Vec::new();
    let mut mj = Vec::new();
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let n = e.path().unwrap().display().to_string();
        if n == "manifest.json" {
            e.read_to_end(&mut mj).unwrap();
        }
        names.push(n);
    }
    let mj: Value = serde_json::from_slice(&mj).unwrap();
    assert_eq!(mj.as_array().unwrap().len(), 1);
    assert_eq!(mj[0]["RepoTags"], json!(["127.0.0.1:5000/s/img:t"]));
    assert!(names.contains(&"repositories".to_string()));
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
        2
    );
    for (data, fmt) in [(&out, "docker-archive"), (&oci, "oci-layout")] {
        let (_d2, r2) = repo();
        let rep = load_bytes(&r2, d.path(), data, None).unwrap();
        assert_eq!(rep.format, fmt);
        assert_eq!(rep.loaded, vec!["127.0.0.1:5000/s/img:t"], "{rep:?}");
        let img2 = r2.find_image("127.0.0.1:5000/s/img", "t").unwrap();
        let (c, _) = r2.create_container(&img2, None).unwrap();
        assert_eq!(tree(&orig.root()), tree(&c.root()));
        assert!(!c.root().join("a/one").exists());
    }
}

#[test]
fn output_refuses_existing_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("out.tar");
    fs::write(&p, b"keep").unwrap();
    assert!(matches!(
        Output::create(Some(&p)),
        Err(ArchiveError::OutputExists(_))
    ));
    let q = d.path().join("new.tar");
    {
        let mut o = Output::create(Some(&q)).unwrap();
        o.write_all(b"partial").unwrap();
        // dropped without commit
    }
    assert!(!q.exists());
    let mut o = Output::create(Some(&q)).unwrap();
    o.write_all(b"done").unwrap();
    // Someone else creates it meanwhile: not overwritten.
    fs::write(&q, b"theirs").unwrap();
    assert!(matches!(o.commit(), Err(ArchiveError::OutputExists(_))));
    assert_eq!(fs::read(&q).unwrap(), b"theirs");
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
}
