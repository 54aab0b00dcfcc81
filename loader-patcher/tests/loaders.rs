//! The patcher on real loaders: the fixture rootfs' glibc loaders (bullseye 2.31, bookworm 2.36,
//! trixie 2.41; `scripts/fixtures.sh`) and Debian's musl, when present on this machine. Each is
//! patched in a temporary copy, run, and restored byte for byte.

use loader_patcher::*;
use std::fs;
use std::path::{Path, PathBuf};

const FIX: &str = "/var/cache/udocker-rs-fixtures/rootfs";

fn loaders() -> Vec<(String, PathBuf, String)> {
    let mut v = Vec::new();
    for suite in ["bullseye", "bookworm", "trixie"] {
        let root = Path::new(FIX).join(suite);
        let ld = root.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
        if let Ok(p) = fs::canonicalize(&ld) {
            let dirs = format!(
                "{0}/lib/x86_64-linux-gnu:{0}/usr/lib/x86_64-linux-gnu",
                root.display()
            );
            v.push((suite.to_string(), p, dirs));
        }
    }
    if let Ok(p) = fs::canonicalize("/lib/ld-musl-x86_64.so.1") {
        v.push(("musl".into(), p, String::new()));
    }
    if v.is_empty() {
        eprintln!("skipped: no fixture rootfs and no musl on this machine");
    }
    v
}

#[test]
fn only_string_sections_change_and_restore_is_exact() {
    for (name, ld, _) in loaders() {
        let orig = fs::read(&ld).unwrap();
        let (patched, report) = patch_bytes(&orig).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(patched.len(), orig.len());
        assert!(report.renamed, "{name}: LD_LIBRARY_PATH not found");
        let regions = string_regions(&orig).unwrap();
        for (i, (a, b)) in orig.iter().zip(&patched).enumerate() {
            if a != b {
                assert!(
                    regions
                        .iter()
                        .any(|r| i >= r.offset && i < r.offset + r.len),
                    "{name}: byte {i:#x} changed outside the string sections"
                );
            }
        }
        let olds: Vec<String> = report
            .changes
            .iter()
            .map(|c| String::from_utf8_lossy(&c.old).into_owned())
            .collect();
        match report.flavor {
            Flavor::Glibc => {
                assert!(olds.iter().any(|s| s == "/etc/ld.so"), "{name}: {olds:?}");
                assert!(olds.iter().any(|s| s == "/lib"), "{name}: {olds:?}");
                assert!(olds.iter().any(|s| s == "/usr"), "{name}: {olds:?}");
            }
            Flavor::Musl => {
                // Only the loader's own strings; libc's zoneinfo and default PATH stay.
                assert_eq!(report.changes.len(), 3, "{name}: {olds:?}");
                let has = |n: &[u8]| patched.windows(n.len()).any(|w| w == n);
                assert!(has(b"/usr/share/zoneinfo/"), "{name}");
                assert!(has(b"/usr/local/bin:/bin:/usr/bin"), "{name}");
            }
        }
        // Patching is idempotent from the backup and restore gives the original bytes.
        let d = tempfile::tempdir().unwrap();
        let copy = d.path().join("ld.so");
        let backup = d.path().join(BACKUP_NAME);
        fs::write(&copy, &orig).unwrap();
        patch_file(&copy, &backup).unwrap();
        patch_file(&copy, &backup).unwrap();
        assert_eq!(fs::read(&copy).unwrap(), patched, "{name}");
        assert_eq!(fs::read(&backup).unwrap(), orig, "{name}");
        assert!(restore_file(&copy, &backup).unwrap());
        assert_eq!(fs::read(&copy).unwrap(), orig, "{name}");
    }
}

#[test]
fn patched_glibc_loaders_ignore_the_host_cache_and_dirs() {
    for (name, ld, dirs) in loaders() {
        if name == "musl" {
            continue;
        }
        let root = ld.ancestors().nth(3).unwrap().to_path_buf();
        let d = tempfile::tempdir().unwrap();
        let copy = d.path().join("ld.so");
        fs::copy(&ld, &copy).unwrap();
        patch_file(&copy, &d.path().join(BACKUP_NAME)).unwrap();
        let target = root.join("bin/true");
        // With no variable at all, nothing is found (no cache, no default directories).
        let o = std::process::Command::new(&copy)
            .arg("--list")
            .arg(&target)
            .env_clear()
            .output()
            .unwrap();
        // glibc opens "/" where a system directory was, and stops: EISDIR, exit 127.
        assert!(
            !o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        // The probe says whether the rename took effect; either way the container dirs work
        // through one of the two names.
        let effect = probe_rename(&copy, &target, &dirs).unwrap();
        eprintln!("{name}: {effect:?}");
        match effect {
            RenameEffect::Effective => {}
            RenameEffect::Ineffective { reads_path, .. } => assert!(reads_path, "{name}"),
        }
    }
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    assert!(patch_bytes(b"").is_err());
    assert!(patch_bytes(b"\x7fELF").is_err());
    let mut junk = vec![0u8; 4096];
    junk[..4].copy_from_slice(b"\x7fELF");
    junk[4] = 2;
    junk[5] = 1;
    // Headers pointing far outside the file.
    junk[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    junk[0x3c] = 0xff;
    assert!(patch_bytes(&junk).is_err());
    if let Some((_, ld, _)) = loaders().into_iter().next() {
        let mut b = fs::read(ld).unwrap();
        // Truncated loaders must not panic either.
        for cut in [64usize, 1000, b.len() / 2] {
            let _ = patch_bytes(&b[..cut]);
        }
        // A string that only looks like a loader's, outside any string section, stays.
        b.truncate(b.len() / 3);
        let _ = patch_bytes(&b);
    }
}
