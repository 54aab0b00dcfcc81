//! The static build (`scripts/build-static.sh`, path in `UDOCKER_STATIC_BIN`): no dynamic
//! dependencies, runs alone in an empty chroot.

use e2e::{is_root, show, stdout};
use std::path::PathBuf;
use std::process::Command;

fn static_bin() -> Option<PathBuf> {
    match std::env::var_os("UDOCKER_STATIC_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "UDOCKER_STATIC_BIN={} is not a file",
                p.display()
            );
            Some(p)
        }
        None => {
            eprintln!("skipped: UDOCKER_STATIC_BIN unset (set it to the path scripts/build-static.sh prints)");
            None
        }
    }
}

#[test]
fn static_binary_has_no_dynamic_dependencies() {
    let Some(bin) = static_bin() else { return };
    let o = Command::new("file")
        .arg("-L")
        .arg(&bin)
        .output()
        .expect("run file");
    let out = stdout(&o);
    assert!(
        out.contains("statically linked") || out.contains("static-pie"),
        "expected `file` to report a static binary, got:\n{out}"
    );
    let o = Command::new("ldd").arg(&bin).output().expect("run ldd");
    let all = format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(
        all.contains("not a dynamic executable") || all.contains("statically linked"),
        "expected ldd to find no dynamic dependencies, got:\n{all}"
    );
}

#[test]
fn static_binary_runs_in_empty_chroot() {
    let Some(bin) = static_bin() else { return };
    let o = Command::new(&bin)
        .arg("--allow-root")
        .arg("version")
        .output()
        .expect("run");
    assert!(
        o.status.success(),
        "expected the static binary to run\n{}",
        show(&o)
    );
    if !is_root() {
        eprintln!("not root: chroot check skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("udocker");
    std::fs::copy(&bin, &dest).expect("copy binary");
    let o = Command::new("chroot")
        .arg(dir.path())
        .arg("/udocker")
        .arg("--allow-root")
        .arg("version")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/")
        .output()
        .expect("run chroot");
    assert!(
        o.status.success() && stdout(&o).contains("version:"),
        "expected `chroot DIR /udocker --allow-root version` to work in an empty root\n{}",
        show(&o)
    );
}
