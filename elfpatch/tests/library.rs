//! Library-level tests on real host ELF files: edits through the API, byte-identical no-ops, and a
//! seeded mutation run (thousands of iterations in-process) in which no input may panic.

use elfpatch::{Elf, RpathOp};
use std::collections::BTreeSet;

fn host(path: &str) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(d) => Some(d),
        Err(_) => {
            eprintln!("skipped: {path} missing");
            None
        }
    }
}

#[test]
fn reads_match_the_host_loader() {
    let Some(d) = host("/bin/ls") else { return };
    let e = Elf::parse(d).unwrap();
    let i = e.interpreter().unwrap().unwrap();
    assert!(i.contains("ld-linux"), "{i}");
    assert!(e.needed().unwrap().iter().any(|n| n.starts_with("libc.so")));
    assert_eq!(e.soname().unwrap(), None); // an executable has no soname
}

#[test]
fn unchanged_edits_keep_bytes_and_changed_edits_reparse() {
    let Some(d) = host("/bin/true") else { return };
    let mut e = Elf::parse(d.clone()).unwrap();
    let i = e.interpreter().unwrap().unwrap();
    e.set_interpreter(&i).unwrap();
    e.modify_rpath(&RpathOp::Remove, false).unwrap();
    e.finish().unwrap();
    assert!(!e.is_changed());
    assert!(e.bytes() == &d[..]);

    let mut e = Elf::parse(d).unwrap();
    e.set_interpreter(&format!("/{}", "x".repeat(200))).unwrap();
    e.modify_rpath(&RpathOp::Set("/opt/lib".into()), false)
        .unwrap();
    e.add_needed(&BTreeSet::from(["libfoo.so".to_string()]))
        .unwrap();
    e.finish().unwrap();
    let again = Elf::parse(e.into_bytes()).unwrap();
    assert_eq!(
        again.interpreter().unwrap().unwrap(),
        format!("/{}", "x".repeat(200))
    );
    assert_eq!(again.rpath().unwrap().as_deref(), Some("/opt/lib"));
    assert_eq!(again.needed().unwrap()[0], "libfoo.so");
}

#[test]
fn force_rpath_and_conversion() {
    let Some(d) = host("/usr/lib/x86_64-linux-gnu/libz.so.1") else {
        return;
    };
    let mut e = Elf::parse(d).unwrap();
    e.modify_rpath(&RpathOp::Set("/a".into()), true).unwrap();
    e.finish().unwrap();
    let mut e = Elf::parse(e.into_bytes()).unwrap();
    assert_eq!(e.rpath().unwrap().as_deref(), Some("/a"));
    // Without --force-rpath, setting converts DT_RPATH to DT_RUNPATH (same string: in place).
    e.modify_rpath(&RpathOp::Add("/b".into()), false).unwrap();
    e.finish().unwrap();
    let e = Elf::parse(e.into_bytes()).unwrap();
    assert_eq!(e.rpath().unwrap().as_deref(), Some("/a:/b"));
}

#[test]
fn os_abi_names_round_trip() {
    for v in [0u8, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13] {
        let n = elfpatch::os_abi_name(v);
        assert_eq!(elfpatch::parse_os_abi(&n), Some(v), "{n}");
    }
    assert_eq!(elfpatch::os_abi_name(0x42), "0x42");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn seeded_mutations_never_panic() {
    let inputs: Vec<Vec<u8>> = [
        "/bin/true",
        "/bin/ls",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/bin/busybox",
    ]
    .iter()
    .filter_map(|p| host(p))
    .collect();
    if inputs.is_empty() {
        return;
    }
    let start = std::time::Instant::now();
    let mut n = 0u64;
    for seed in 1..=30000u64 {
        if start.elapsed().as_secs() > 5 {
            break;
        }
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut d = inputs[(r.next() % inputs.len() as u64) as usize].clone();
        for _ in 0..1 + r.next() % 8 {
            let lim = if !matches!(r.next() % 3, 0) {
                4096.min(d.len())
            } else {
                d.len()
            };
            let at = (r.next() % lim as u64) as usize;
            d[at] = match r.next() % 4 {
                0 => 0,
                1 => 0xff,
                _ => r.next() as u8,
            };
        }
        if matches!(r.next() % 10, 0) {
            let k = (r.next() % d.len() as u64) as usize;
            d.truncate(k);
        }
        n += 1;
        let Ok(mut e) = Elf::parse(d) else { continue };
        let _ = e.interpreter();
        let _ = e.rpath();
        let _ = e.needed();
        let _ = e.soname();
        let res = match r.next() % 8 {
            0 => e.set_interpreter("/a/much/longer/interpreter/path/than/before/ld.so"),
            1 => e.modify_rpath(&RpathOp::Set("/some/new/rpath/long:$ORIGIN".into()), false),
            2 => e.add_needed(&BTreeSet::from(["libextra.so".to_string()])),
            3 => e.replace_needed(&[("libc.so.6".into(), "libc-other.so.6".into())]),
            4 => e.set_root_prefix("/tmp/ROOT"),
            5 => e.rename_dynamic_symbols(&[
                ("free".into(), "free_renamed".into()),
                ("malloc".into(), "malloc_renamed".into()),
                ("deflate".into(), "deflate_renamed".into()),
                ("zlibVersion".into(), "zv".into()),
                ("__libc_start_main".into(), "start".into()),
            ]),
            6 => e.modify_rpath(&RpathOp::Remove, true),
            _ => e
                .modify_rpath(
                    &RpathOp::Set("/usr/lib/x86_64-linux-gnu:$ORIGIN".into()),
                    false,
                )
                .and_then(|()| e.build_resolution_cache().map(drop)),
        };
        if res.is_ok() && e.finish().is_ok() && e.is_changed() {
            // Our own output must parse again.
            let _ = Elf::parse(e.into_bytes()).map(|x| x.needed());
        }
    }
    assert!(n >= 100, "only {n} iterations");
}

#[test]
fn resolution_cache_binary_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let Some(d) = host("/bin/true") else { return };
    let libdir = "/usr/lib/x86_64-linux-gnu";
    if !std::path::Path::new(libdir).join("libc.so.6").exists() {
        return;
    }
    let mut e = Elf::parse(d).unwrap();
    e.modify_rpath(&RpathOp::Set(libdir.into()), false).unwrap();
    assert_eq!(
        e.build_resolution_cache().unwrap(),
        elfpatch::CacheOutcome::Built
    );
    e.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("true");
    std::fs::write(&p, e.bytes()).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = std::process::Command::new(&p).status().unwrap();
    assert!(st.success(), "{st}");
    // Reading it back: the cache is there and up to date.
    let mut again = Elf::parse(std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(
        again.build_resolution_cache().unwrap(),
        elfpatch::CacheOutcome::UpToDate
    );
}
