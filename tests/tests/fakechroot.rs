//! Mode F1: the fakechroot shim (`preload/`, embedded in udocker and written to
//! `containers/<id>/libfakechroot.so`) with the container's own loader, on debian:bookworm.
//! The library's imports are checked on the file udocker writes out (`spec/elf-fakechroot.md`
//! §6.6): one versioned import, `dlsym@GLIBC_2.2.5`, and `NEEDED libdl.so.2` only.

use e2e::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh world with debian:bookworm in a container `deb` set to F1; its id and ROOT.
fn setup() -> (TestEnv, String, PathBuf) {
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    let id = t.ud_ok(&["create", "--name=deb", &img]).trim().to_string();
    let out = t.ud_ok(&["setup", "--execmode=F1", "deb"]);
    assert!(out.contains("execmode: F1"), "{out}");
    let root = PathBuf::from(t.ud_ok(&["inspect", "-p", "deb"]).trim());
    (t, id, root)
}

fn run(t: &TestEnv, args: &[&str]) -> Output {
    let mut a = vec!["run", "--nobanner"];
    a.extend_from_slice(args);
    t.ud(&a)
}

fn run_ok(t: &TestEnv, args: &[&str]) -> String {
    let o = run(t, args);
    assert!(
        o.status.success(),
        "expected `run {}` to succeed\n{}",
        args.join(" "),
        show(&o)
    );
    stdout(&o)
}

fn sh(t: &TestEnv, script: &str) -> String {
    run_ok(t, &["deb", "sh", "-c", script])
}

fn tool(prog: &str, args: &[&str], so: &Path) -> String {
    let o = Command::new(prog)
        .args(args)
        .arg(so)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(o.status.success(), "{prog} failed\n{}", show(&o));
    stdout(&o)
}

/// The import check on the library as udocker writes it out.
fn check_imports(so: &Path) {
    let syms = tool("objdump", &["-T"], so);
    let undefined: Vec<&str> = syms.lines().filter(|l| l.contains("*UND*")).collect();
    assert_eq!(
        undefined.len(),
        1,
        "exactly one undefined symbol expected:\n{syms}"
    );
    assert!(
        undefined[0].contains("(GLIBC_2.2.5)") && undefined[0].trim_end().ends_with(" dlsym"),
        "the one import must be dlsym@GLIBC_2.2.5:\n{syms}"
    );
    // The memory functions and the personality stub are private to the library: exporting them
    // would interpose the program's own.
    for private in [
        "memcpy",
        "memmove",
        "memset",
        "memcmp",
        "bcmp",
        "strlen",
        "rust_eh_personality",
    ] {
        assert!(
            !syms
                .lines()
                .any(|l| l.split_whitespace().last() == Some(private)),
            "{private} must be neither imported nor exported:\n{syms}"
        );
    }
    // Exported: the wrappers (both stat ABIs, FORTIFY names), nothing versioned.
    for w in [
        "open",
        "openat",
        "fopen",
        "stat",
        "__xstat",
        "statx",
        "execve",
        "execvp",
        "getcwd",
        "readlink",
        "realpath",
        "opendir",
        "dlopen",
        "posix_spawn",
        "__open_2",
    ] {
        assert!(
            syms.lines()
                .any(|l| l.contains(" g ") && l.split_whitespace().last() == Some(w)),
            "{w} is not exported:\n{syms}"
        );
    }
    let dynamic = tool("readelf", &["-d"], so);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert_eq!(needed.len(), 1, "NEEDED entries:\n{dynamic}");
    assert!(needed[0].contains("[libdl.so.2]"), "{dynamic}");
    assert!(!dynamic.contains("TEXTREL"), "{dynamic}");
    let versions = tool("objdump", &["-T"], so);
    let mut v: Vec<&str> = versions
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| w.starts_with("GLIBC_"))
        .collect();
    v.sort();
    v.dedup();
    assert_eq!(v, ["GLIBC_2.2.5"], "glibc versions referenced");
}

#[test]
fn library_imports_only_dlsym_at_the_baseline_version() {
    let (t, id, _) = setup();
    run_ok(&t, &["deb", "true"]);
    let so = t.udir.join("containers").join(&id).join("libfakechroot.so");
    assert!(so.is_file(), "{} not written", so.display());
    check_imports(&so);
    // Written once: a second run leaves the same file (same inode) in place.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let before = ino(&so);
    run_ok(&t, &["deb", "true"]);
    assert_eq!(ino(&so), before, "libfakechroot.so rewritten");
}

#[test]
fn reads_the_container_files_not_the_hosts() {
    let (t, _, root) = setup();
    let want = fs::read_to_string(root.join("etc/debian_version")).unwrap();
    assert_eq!(run_ok(&t, &["deb", "cat", "/etc/debian_version"]), want);
    assert!(want.starts_with("12."), "{want}");
    // A marker that exists only in ROOT.
    let marker = format!("f1-marker-{}\n", std::process::id());
    t.write_file(&root.join("etc/f1-marker"), marker.as_bytes());
    assert!(!Path::new("/etc/f1-marker").exists());
    assert_eq!(run_ok(&t, &["deb", "cat", "/etc/f1-marker"]), marker);
    assert_eq!(
        run_ok(&t, &["deb", "cat", "/etc/os-release"]),
        fs::read_to_string(root.join("etc/os-release")).unwrap()
    );
    // `..` cannot climb out of the root.
    assert_eq!(
        sh(&t, "cd /usr/lib && cat ../../../../../etc/f1-marker"),
        marker
    );
    // The environment udocker sets for the shim.
    let env = run_ok(&t, &["deb", "env"]);
    let base = fs::canonicalize(&root).unwrap();
    assert!(
        env.lines()
            .any(|l| l == format!("FAKECHROOT_BASE={}", base.display())),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l.starts_with("LD_PRELOAD=") && l.ends_with("/libfakechroot.so")),
        "{env}"
    );
}

#[test]
fn ls_and_cwd_are_in_the_container() {
    let (t, _, root) = setup();
    fs::create_dir(root.join("f1-dir")).unwrap();
    let ls = run_ok(&t, &["deb", "ls", "/"]);
    let names: Vec<&str> = ls.lines().collect();
    for n in ["bin", "etc", "usr", "f1-dir"] {
        assert!(names.contains(&n), "{n} missing from `ls /`:\n{ls}");
    }
    assert_eq!(sh(&t, "cd /usr/lib && pwd"), "/usr/lib\n");
    assert_eq!(sh(&t, "cd /usr/lib && /bin/pwd"), "/usr/lib\n");
    assert_eq!(sh(&t, "cd / && cd .. && /bin/pwd"), "/\n");
    assert_eq!(run_ok(&t, &["-w", "/etc", "deb", "pwd"]), "/etc\n");
    assert_eq!(
        sh(
            &t,
            "cd /tmp && touch f1-file && ls /tmp && rm f1-file && ls -A /tmp"
        ),
        "f1-file\n"
    );
    assert!(!root.join("tmp/f1-file").exists());
}

#[test]
fn bash_scripts_and_exit_status() {
    let (t, _, root) = setup();
    t.write_file(
        &root.join("usr/local/bin/f1script"),
        b"#!/bin/bash\necho \"$0 $# $1\"\ncat /etc/debian_version >/dev/null && echo bash-ok\nexit 5\n",
    );
    fs::set_permissions(
        root.join("usr/local/bin/f1script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = run(&t, &["deb", "f1script", "arg1"]);
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert_eq!(stdout(&o), "/usr/local/bin/f1script 1 arg1\nbash-ok\n");
    // From a shell: PATH search, shebang, and $? of the child.
    assert_eq!(
        sh(&t, "f1script x; echo rc=$?"),
        "/usr/local/bin/f1script 1 x\nbash-ok\nrc=5\n"
    );
    assert_eq!(
        run(&t, &["deb", "sh", "-c", "exit 42"]).status.code(),
        Some(42)
    );
    assert_eq!(
        sh(
            &t,
            "bash -c 'echo ${BASH_VERSION%%.*}'; awk 'BEGIN{print 6*7}'"
        ),
        "5\n42\n"
    );
}

#[test]
fn readlink_and_symlinks_show_container_paths() {
    let (t, _, root) = setup();
    // F1 runs programs as `ld.so PROGRAM`; /proc/self/exe is still the program.
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "/proc/self/exe"]),
        "/usr/bin/readlink\n"
    );
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "-f", "/bin/sh"]),
        "/usr/bin/dash\n"
    );
    // setup F1 made absolute links point into ROOT; the container sees them as they were.
    let awk = root.join("etc/alternatives/awk");
    let host_target = fs::read_link(&awk).unwrap();
    assert!(
        host_target.starts_with(fs::canonicalize(&root).unwrap()),
        "{}",
        host_target.display()
    );
    assert_eq!(
        run_ok(&t, &["deb", "readlink", "/etc/alternatives/awk"]),
        "/usr/bin/mawk\n"
    );
    assert_eq!(
        sh(&t, "ln -s /etc/debian_version /tmp/l && readlink /tmp/l && cat /tmp/l >/dev/null && echo ok"),
        "/etc/debian_version\nok\n"
    );
    // Leaving F restores the original targets.
    t.ud_ok(&["setup", "--execmode=P1", "deb"]);
    assert_eq!(fs::read_link(&awk).unwrap(), Path::new("/usr/bin/mawk"));
}

#[test]
fn volumes_are_mapped() {
    let (t, _, _) = setup();
    let vol = t.home.join("vol");
    fs::create_dir(&vol).unwrap();
    t.write_file(&vol.join("data.txt"), b"volume data\n");
    let spec = format!("{}:/data", vol.display());
    assert_eq!(
        run_ok(&t, &["-v", &spec, "deb", "cat", "/data/data.txt"]),
        "volume data\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &["-v", &spec, "-w", "/data", "deb", "sh", "-c", "pwd; ls"]
        ),
        "/data\ndata.txt\n"
    );
    // Same-path volumes (sysdirs) are passed through: /proc is the host's.
    assert!(run_ok(&t, &["deb", "cat", "/proc/self/status"]).contains("Name:"));
}
