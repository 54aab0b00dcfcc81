//! F3/F4: every ELF executable and shared library of a container re-rooted under its ROOT, so
//! that the kernel starts each program with the container's own loader and the loader finds
//! the container's own libraries without being told (`spec/udocker.md` §5 `patch_binaries`,
//! `spec/elf-fakechroot.md` §3).
//!
//! Upstream forks its patchelf once per file; we patch in process with the `elfpatch` crate,
//! on every core, each file written whole to a temporary and renamed over the original
//! (`elfpatch::patch_file`), so an interrupted setup never leaves a half-written binary.
//! What is patched: every regular file (symlinks are not followed, other file systems are not
//! entered) owned by the user, executable or named `lib*.so*`, whose first bytes are `\x7fELF`.
//! Static programs and scripts are left alone (a static ELF has nothing to re-root).
//! The root prefix used is recorded in `<container>/patch.path` and `patch.time` (upstream's
//! files), so a restore strips exactly what was added even after the container moved.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a walk did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PatchStats {
    /// ELF files looked at.
    pub elf: usize,
    /// Files rewritten.
    pub changed: usize,
    /// Files that could not be patched, with why (left as they were).
    pub failed: Vec<(PathBuf, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `--set-root-prefix PREFIX`
    Patch,
    /// `--restore-root-prefix PREFIX`
    Restore,
}

/// `lib\S+\.so(\.\d+)*` (upstream's name rule for libraries without an x bit).
fn is_library_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"lib") else {
        return false;
    };
    let Some(pos) = rest.windows(3).position(|w| w == b".so") else {
        return false;
    };
    if pos == 0 || rest[..pos].iter().any(|b| b.is_ascii_whitespace()) {
        return false;
    }
    // After the first ".so": nothing, or (".N")* — any later ".so" too ("libfoo.so.so" is odd
    // but harmless to check).
    let mut tail = &rest[pos + 3..];
    while !tail.is_empty() {
        let Some(t) = tail.strip_prefix(b".") else {
            return false;
        };
        let digits = t.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        tail = &t[digits..];
    }
    true
}

fn is_elf(p: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The candidate files under `root` (see the module comment).
pub fn candidates(root: &Path) -> Vec<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let Ok(top) = fs::symlink_metadata(root) else {
        return Vec::new();
    };
    let dev = top.dev();
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let ft = m.file_type();
            if ft.is_dir() {
                if m.dev() == dev {
                    stack.push(e.path());
                }
                continue;
            }
            if !ft.is_file() || m.uid() != uid {
                continue;
            }
            use std::os::unix::ffi::OsStrExt;
            let name = e.file_name();
            if m.mode() & 0o111 != 0 || is_library_name(name.as_bytes()) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Patch or restore every candidate ELF under `root` with `prefix` (the container's ROOT as a
/// host path, normally its realpath). Files that fail are reported, not fatal: a container
/// with one odd file should still run.
pub fn walk(root: &Path, prefix: &str, dir: Direction) -> PatchStats {
    let files = candidates(root);
    let stats = Mutex::new(PatchStats::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                if !is_elf(f) {
                    continue;
                }
                let r = elfpatch::patch_file(f, |elf| match dir {
                    Direction::Patch => elf.set_root_prefix(prefix),
                    Direction::Restore => elf.restore_root_prefix(prefix),
                });
                let mut st = stats.lock().unwrap_or_else(|e| e.into_inner());
                st.elf += 1;
                match r {
                    Ok(true) => st.changed += 1,
                    Ok(false) => {}
                    // Not a program we can patch (a core file, an object file, a foreign
                    // class): it keeps its bytes.
                    Err(e) => st.failed.push((f.clone(), e.to_string())),
                }
            });
        }
    });
    let mut st = stats.into_inner().unwrap_or_else(|e| e.into_inner());
    st.failed.sort();
    st
}

/// The recorded prefix of a patched container (`patch.path` holds the container directory, as
/// upstream writes it; ROOT is below it).
pub fn recorded_prefix(container_dir: &Path) -> Option<String> {
    let p = fs::read_to_string(container_dir.join("patch.path")).ok()?;
    let p = p.trim_end_matches('\n');
    (!p.is_empty()).then(|| format!("{p}/ROOT"))
}

/// Record a finished patch: `patch.path` (container dir) and `patch.time` (seconds since the
/// epoch; F4 re-patches files modified after it).
pub fn record(container_dir: &Path, when: u64) -> std::io::Result<()> {
    let dir = fs::canonicalize(container_dir)?;
    crate::fsutil::write_atomic(
        &container_dir.join("patch.path"),
        format!("{}\n", dir.display()).as_bytes(),
        0o644,
    )?;
    crate::fsutil::write_atomic(
        &container_dir.join("patch.time"),
        format!("{when}\n").as_bytes(),
        0o644,
    )
}

/// Forget a patch (after a restore).
pub fn unrecord(container_dir: &Path) {
    let _ = fs::remove_file(container_dir.join("patch.path"));
    let _ = fs::remove_file(container_dir.join("patch.time"));
}

/// `patch.time`, if recorded.
pub fn recorded_time(container_dir: &Path) -> Option<u64> {
    fs::read_to_string(container_dir.join("patch.time"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_names_follow_upstreams_rule() {
        for ok in [
            &b"libc.so.6"[..],
            b"libfoo.so",
            b"libstdc++.so.6.0.30",
            b"libx.so.1.2",
        ] {
            assert!(is_library_name(ok), "{}", String::from_utf8_lossy(ok));
        }
        for no in [
            &b"libc.so.6a"[..],
            b"lib.so",
            b"foo.so",
            b"libfoo.a",
            b"libfoo.so.",
            b"libfoo.so.1.",
            b"libpython3.11.so.1.0.py",
            b"lib foo.so",
        ] {
            assert!(!is_library_name(no), "{}", String::from_utf8_lossy(no));
        }
    }

    fn host_elf(name: &str) -> Option<PathBuf> {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
    }

    #[test]
    fn patch_and_restore_round_trip_on_a_small_tree() {
        let Some(ls) = host_elf("ls") else { return };
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("ROOT");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("lib")).unwrap();
        fs::copy(&ls, root.join("bin/ls")).unwrap();
        fs::write(root.join("bin/script"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(
            root.join("bin/script"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        fs::write(root.join("lib/libnot.so.1"), "not an ELF").unwrap();
        std::os::unix::fs::symlink("/bin/ls", root.join("bin/dir")).unwrap();
        let orig = fs::read(root.join("bin/ls")).unwrap();
        let prefix = fs::canonicalize(&root).unwrap();
        let prefix = prefix.to_str().unwrap();

        let st = walk(&root, prefix, Direction::Patch);
        assert_eq!((st.elf, st.changed), (1, 1), "{st:?}");
        assert!(st.failed.is_empty(), "{st:?}");
        let e = elfpatch::Elf::parse(fs::read(root.join("bin/ls")).unwrap()).unwrap();
        let interp = e.interpreter().unwrap().unwrap();
        assert!(
            interp.starts_with(&format!("{prefix}//")),
            "upstream's `ROOT//ld.so` form: {interp}"
        );
        assert_eq!(
            fs::read_to_string(root.join("bin/script")).unwrap(),
            "#!/bin/sh\necho hi\n"
        );
        assert_eq!(
            fs::read(root.join("lib/libnot.so.1")).unwrap(),
            b"not an ELF"
        );
        // Idempotent: a second patch changes nothing.
        let again = walk(&root, prefix, Direction::Patch);
        assert_eq!(again.changed, 0, "{again:?}");

        let back = walk(&root, prefix, Direction::Restore);
        assert_eq!(back.changed, 1, "{back:?}");
        let e = elfpatch::Elf::parse(fs::read(root.join("bin/ls")).unwrap()).unwrap();
        assert_eq!(
            e.interpreter().unwrap(),
            elfpatch::Elf::parse(orig.clone())
                .unwrap()
                .interpreter()
                .unwrap()
        );
    }

    #[test]
    fn record_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(recorded_prefix(t.path()), None);
        record(t.path(), 1234).unwrap();
        let dir = fs::canonicalize(t.path()).unwrap();
        assert_eq!(
            recorded_prefix(t.path()),
            Some(format!("{}/ROOT", dir.display()))
        );
        assert_eq!(recorded_time(t.path()), Some(1234));
        unrecord(t.path());
        assert_eq!(recorded_time(t.path()), None);
    }
}
