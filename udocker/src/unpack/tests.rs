//! Hostile and ordinary layers, built in memory, applied to a temporary ROOT. Each attack must
//! leave everything outside ROOT untouched.

use super::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// Raw tar builder: names are written byte for byte (the tar crate's helpers refuse `..`, which
/// is exactly what a hostile layer contains).
struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        mode: u32,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                g.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn file(&mut self, name: &str, data: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, 0o644, None, data.as_bytes())
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Directory, 0o755, None, b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Symlink, 0o777, Some(target), b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, tar::EntryType::Link, 0o644, Some(target), b"")
    }

    fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

struct Sandbox {
    _d: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn sandbox() -> Sandbox {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("c/ROOT");
    let outside = d.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), "host data").unwrap();
    Sandbox {
        _d: d,
        root,
        outside,
    }
}

fn apply(root: &Path, layers: &[Vec<u8>]) -> Stats {
    let mut u = Unpacker::new(root).unwrap();
    for l in layers {
        u.apply(Path::new("layer"), &l[..]).unwrap();
    }
    u.stats
}

fn outside_untouched(s: &Sandbox) {
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret")],
        "outside dir changed"
    );
    assert_eq!(
        fs::read_to_string(s.outside.join("secret")).unwrap(),
        "host data"
    );
    let parent: Vec<_> = fs::read_dir(s.root.parent().unwrap().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        parent.len(),
        2,
        "something written beside the container: {parent:?}"
    );
}

#[test]
fn dotdot_members_refused() {
    let s = sandbox();
    let st = apply(
        &s.root,
        &[Layer::new()
            .file("../../outside/secret", "pwned")
            .file("a/../../../outside/x", "pwned")
            .file("ok", "fine")
            .bytes()],
    );
    assert_eq!(st.refused.len(), 2, "{:?}", st.refused);
    assert_eq!(fs::read_to_string(s.root.join("ok")).unwrap(), "fine");
    outside_untouched(&s);
}

#[test]
fn absolute_names_made_relative() {
    let s = sandbox();
    apply(
        &s.root,
        &[Layer::new().file("/etc/hostname", "inside").bytes()],
    );
    assert_eq!(
        fs::read_to_string(s.root.join("etc/hostname")).unwrap(),
        "inside"
    );
}

#[test]
fn write_through_planted_symlink_stays_inside() {
    let s = sandbox();
    let out = s.outside.to_str().unwrap().to_string();
    // Same layer and next layer, absolute and relative link targets.
    let l1 = Layer::new()
        .symlink("abs", &out)
        .symlink("rel", "../../../outside")
        .file("abs/pwned1", "x")
        .bytes();
    let l2 = Layer::new()
        .file("rel/pwned2", "x")
        .file("abs/secret", "overwrite")
        .bytes();
    apply(&s.root, &[l1, l2]);
    outside_untouched(&s);
    // The links were followed as the container would: inside ROOT.
    assert!(s
        .root
        .join(out.trim_start_matches('/'))
        .join("pwned1")
        .is_file());
    assert!(s.root.join("outside/pwned2").is_file());
    assert!(fs::symlink_metadata(s.root.join("abs"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn final_symlink_is_replaced_not_followed() {
    let s = sandbox();
    let secret = s.outside.join("secret");
    let l1 = Layer::new().symlink("f", secret.to_str().unwrap()).bytes();
    let l2 = Layer::new().file("f", "new").bytes();
    apply(&s.root, &[l1, l2]);
    outside_untouched(&s);
    assert_eq!(fs::read_to_string(s.root.join("f")).unwrap(), "new");
}

#[test]
fn hardlinks_cannot_escape() {
    let s = sandbox();
    let secret = s.outside.join("secret");
    let st = apply(
        &s.root,
        &[Layer::new()
            .hardlink("h1", "../../outside/secret")
            .hardlink("h2", secret.to_str().unwrap())
            .symlink("up", "../../..")
            .hardlink("h3", "up/outside/secret")
            .file("real", "data")
            .hardlink("h4", "real")
            .bytes()],
    );
    outside_untouched(&s);
    assert_eq!(
        fs::metadata(&secret).unwrap().nlink(),
        1,
        "host file gained a link"
    );
    assert!(
        !s.root.join("h1").exists() && !s.root.join("h2").exists() && !s.root.join("h3").exists()
    );
    assert_eq!(st.refused.len(), 3, "{:?}", st.refused);
    assert_eq!(
        fs::metadata(s.root.join("h4")).unwrap().ino(),
        fs::metadata(s.root.join("real")).unwrap().ino()
    );
}

#[test]
fn symlink_loop_refused() {
    let s = sandbox();
    let st = apply(
        &s.root,
        &[Layer::new()
            .symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", "y")
            .bytes()],
    );
    assert_eq!(st.refused.len(), 1);
    assert!(st.refused[0].contains("symbolic links"), "{:?}", st.refused);
}

#[test]
fn whiteouts_every_depth() {
    let s = sandbox();
    let l1 = Layer::new()
        .file("top", "1")
        .dir("d")
        .file("d/a", "1")
        .file("d/b", "1")
        .dir("o")
        .file("o/old", "1")
        .dir("o/sub")
        .file("o/sub/deep", "1")
        .bytes();
    let l2 = Layer::new()
        .file(".wh.top", "")
        .file("d/.wh.a", "")
        .file("o/new", "2")
        .file("o/.wh..wh..opq", "")
        .bytes();
    let st = apply(&s.root, &[l1, l2]);
    assert_eq!(st.whiteouts, 3);
    assert!(!s.root.join("top").exists(), "top-level whiteout missed");
    assert!(!s.root.join("d/a").exists() && s.root.join("d/b").exists());
    assert!(!s.root.join("o/old").exists() && !s.root.join("o/sub").exists());
    assert_eq!(
        fs::read_to_string(s.root.join("o/new")).unwrap(),
        "2",
        "opaque dir removed this layer's file"
    );
    let mut stack = vec![s.root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            assert!(
                !e.file_name().to_string_lossy().starts_with(".wh."),
                "whiteout file left: {:?}",
                e.path()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn modes_fixed_and_devices_skipped() {
    let s = sandbox();
    let st = apply(
        &s.root,
        &[Layer::new()
            .raw("locked", tar::EntryType::Directory, 0o000, None, b"")
            .raw("locked/f", tar::EntryType::Regular, 0o000, None, b"x")
            .raw("suid", tar::EntryType::Regular, 0o4755, None, b"x")
            .raw("tmp", tar::EntryType::Directory, 0o1777, None, b"")
            .raw("dev/null", tar::EntryType::Char, 0o666, None, b"")
            .raw("fifo", tar::EntryType::Fifo, 0o644, None, b"")
            .bytes()],
    );
    assert_eq!(st.skipped_special, 2);
    let m = |p: &str| {
        fs::symlink_metadata(s.root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(m("locked") & 0o700, 0o700);
    assert_eq!(m("locked/f") & 0o600, 0o600);
    assert_eq!(m("suid"), 0o755, "setuid bit kept");
    assert_eq!(m("tmp"), 0o1777);
    assert!(!s.root.join("fifo").exists());
    crate::fsutil::remove_tree(s.root.parent().unwrap()).unwrap();
}

#[test]
fn type_changes_between_layers() {
    let s = sandbox();
    let l1 = Layer::new()
        .dir("x")
        .file("x/inner", "1")
        .file("y", "1")
        .bytes();
    let l2 = Layer::new()
        .file("x", "now a file")
        .dir("y")
        .file("y/z", "2")
        .bytes();
    apply(&s.root, &[l1, l2]);
    assert_eq!(fs::read_to_string(s.root.join("x")).unwrap(), "now a file");
    assert_eq!(fs::read_to_string(s.root.join("y/z")).unwrap(), "2");
}

#[test]
fn compressed_layers() {
    use std::io::Write;
    let s = sandbox();
    let tarball = Layer::new().file("hello", "world").bytes();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tarball).unwrap();
        e.finish().unwrap()
    };
    let p = s.root.parent().unwrap().join("layer.gz");
    fs::write(&p, gz).unwrap();
    let plain = s.root.parent().unwrap().join("layer.tar");
    fs::write(&plain, &tarball).unwrap();
    unpack_layers(&s.root, &[p.clone(), plain.clone()]).unwrap();
    assert_eq!(fs::read_to_string(s.root.join("hello")).unwrap(), "world");
    fs::write(&p, b"\x1f\x8bgarbage").unwrap();
    assert!(
        unpack_layers(&s.root, &[p]).is_err(),
        "corrupt gzip accepted"
    );
    fs::remove_file(&plain).unwrap();
}
