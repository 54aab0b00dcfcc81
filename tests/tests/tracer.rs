//! The ptrace translator (`tracer`, modes P1 and P2) through `udocker proot`, run as the
//! unprivileged fixture user, compared with the kernel's own answer: the same programs run under
//! `chroot(8)` (as root, then with the fixture user's ids, so that permission checks agree) on an
//! identical copy of the same root directory.
//!
//! * `tests/probe/probe.c`: one line per path-carrying system call (stat family, *at calls with
//!   dirfds, AT_EMPTY_PATH, statx, faccessat2, openat2 incl. RESOLVE_IN_ROOT, rename/link/
//!   unlink/mkdir/rmdir/symlink/chmod/utimensat/truncate, execve of a static program, of a `#!`
//!   script, execveat, AF_UNIX bind/connect, /proc/self/{exe,cwd,root,fd}, `..` at `/`, ELOOP,
//!   long paths); the whole output must be identical to the chroot run's.
//! * real programs in every fixture rootfs (bookworm always; bullseye, trixie, busybox when
//!   `scripts/fixtures.sh` could build them, else skipped with the reason printed).
//! * processes, signals, exit status, fake ids, `-k`, bindings, apt-get from the Debian mirror.
//!
//! Needs root (chroot, setpriv), gcc with static glibc, and `scripts/fixtures.sh up`.

use e2e::*;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// seccomp filter + ptrace (the default).
    P1,
    /// ptrace only (`PROOT_NO_SECCOMP=1`).
    P2,
}

const MODES: [Mode; 2] = [Mode::P1, Mode::P2];

// ---------------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------------

/// Root is needed for chroot and for running as the fixture user; say so instead of failing
/// obscurely when a developer runs the file unprivileged.
fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIP {test}: needs root (chroot reference runs, setpriv to the fixture user)");
    false
}

fn fixture_ids() -> (u32, u32) {
    Fixtures::load().uid_gid()
}

/// A fixture root directory (`ROOTFS_<NAME>` in fixtures.env). bookworm and busybox are built
/// from local images and must exist; bullseye and trixie depend on the mirror: `None` (with the
/// reason printed) when fixtures.sh skipped them.
fn rootfs(name: &str) -> Option<PathBuf> {
    let fx = Fixtures::load();
    let key = format!("ROOTFS_{}", name.to_uppercase());
    match fx.opt(&key) {
        Some(p) if Path::new(&p).join("bin").exists() => Some(PathBuf::from(p)),
        other => {
            if name == "bookworm" || name == "busybox" {
                panic!("fixtures.env has no usable {key} ({other:?}): run scripts/fixtures.sh up");
            }
            eprintln!(
                "SKIP rootfs {name}: fixtures.env has no {key}: scripts/fixtures.sh could not \
                 build it (see its output: the mirror may not carry {name})"
            );
            None
        }
    }
}

/// A directory under /tmp the fixture user can reach (tempdir makes 0700 ones).
fn scratch(tag: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("udocker-tracer-{tag}-"))
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

fn chown_user(p: &Path) {
    let (u, g) = fixture_ids();
    chown_r(p, u, g);
}

fn chown_r(p: &Path, u: u32, g: u32) {
    let o = Command::new("chown")
        .arg("-R")
        .arg(format!("{u}:{g}"))
        .arg(p)
        .output()
        .expect("chown");
    assert!(o.status.success(), "chown -R {}: {}", p.display(), show(&o));
}

/// `cp -a SRC DST`.
fn copy_tree(src: &Path, dst: &Path) {
    let o = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .output()
        .expect("cp");
    assert!(o.status.success(), "cp -a {}: {}", src.display(), show(&o));
}

/// Compile `tests/probe/NAME.c` with `gcc -static -O2`, cached by content in the target dir.
fn probe_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("probe")
        .join(format!("{name}.c"));
    let text = fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tracer-probes");
    fs::create_dir_all(&dir).expect("probe dir");
    let out = dir.join(format!("{name}-{}", &sha256_hex(&text)[..16]));
    if !out.is_file() {
        let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
        let o = Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-pthread", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("gcc not runnable ({e}): apt-get install gcc libc6-dev"));
        assert!(
            o.status.success(),
            "gcc -static {} failed (needs gcc and libc6-dev):\n{}",
            src.display(),
            show(&o)
        );
        fs::rename(&tmp, &out).expect("rename probe");
    }
    fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).expect("chmod probe");
    built.insert(name.to_string(), out.clone());
    out
}

/// One guest run: `udocker proot -r ROOT -b /proc -b /dev OPTS... ARGV...` as the fixture user.
struct Guest<'a> {
    env: &'a TestEnv,
    root: PathBuf,
    mode: Mode,
    opts: Vec<String>,
    timeout: u64,
    vars: Vec<(String, String)>,
}

impl<'a> Guest<'a> {
    fn new(env: &'a TestEnv, root: &Path, mode: Mode) -> Guest<'a> {
        Guest {
            env,
            root: root.to_path_buf(),
            mode,
            opts: Vec::new(),
            timeout: 60,
            vars: Vec::new(),
        }
    }

    fn opt(mut self, o: &str) -> Self {
        self.opts.push(o.to_string());
        self
    }

    fn bind(self, host: &Path, guest: &str) -> Self {
        let spec = format!("{}:{guest}", host.display());
        self.opt("-b").opt(&spec)
    }

    fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    fn timeout(mut self, s: u64) -> Self {
        self.timeout = s;
        self
    }

    fn command(&self, argv: &[&str]) -> Command {
        let mut args: Vec<String> = vec![
            "proot".into(),
            "-r".into(),
            self.root.display().to_string(),
            "-b".into(),
            "/proc".into(),
            "-b".into(),
            "/dev".into(),
        ];
        args.extend(self.opts.iter().cloned());
        args.extend(argv.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut vars: Vec<(&str, &str)> = vec![("PATH", GUEST_PATH), ("HOME", "/root")];
        if self.mode == Mode::P2 {
            vars.push(("PROOT_NO_SECCOMP", "1"));
        }
        vars.extend(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.env.cmd_env(&vars, &args)
    }

    fn run(&self, argv: &[&str]) -> Output {
        let what = format!("{:?} guest {argv:?}", self.mode);
        run_timeout(self.command(argv), self.timeout, &what)
    }

    fn sh(&self, script: &str) -> Output {
        self.run(&["/bin/sh", "-c", script])
    }

    /// Run; assert exit 0; stdout.
    fn ok(&self, argv: &[&str]) -> String {
        let o = self.run(argv);
        assert!(
            o.status.success(),
            "{:?}: expected `proot ... {}` to succeed\n{}",
            self.mode,
            argv.join(" "),
            show(&o)
        );
        stdout(&o)
    }
}

/// Assert equal texts, failing with a unified diff (diff(1)) of reference → tracer.
fn assert_same(what: &str, reference: &str, got: &str) {
    if reference == got {
        return;
    }
    let d = scratch("diff");
    let a = d.path().join("chroot");
    let b = d.path().join("tracer");
    fs::write(&a, reference).expect("write");
    fs::write(&b, got).expect("write");
    let o = Command::new("diff")
        .args([
            "-u",
            "--label",
            "chroot (kernel)",
            "--label",
            "udocker proot",
        ])
        .arg(&a)
        .arg(&b)
        .output()
        .expect("diff");
    panic!(
        "{what}: the tracer's answers differ from the kernel's (- chroot, + tracer):\n{}",
        stdout(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// The system-call probe, differential
// ---------------------------------------------------------------------------------------------

/// A fresh copy of the busybox rootfs with /probe, /threads and a user-owned /w.
fn probe_root(parent: &Path, name: &str) -> PathBuf {
    let r = parent.join(name);
    copy_tree(&rootfs("busybox").expect("busybox rootfs"), &r);
    for p in ["probe", "threads"] {
        fs::copy(probe_bin(p), r.join(p)).expect("copy probe");
        fs::set_permissions(r.join(p), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    fs::create_dir(r.join("w")).expect("mkdir w");
    chown_user(&r.join("w"));
    r
}

fn probe_differential(mode: Mode) {
    if !need_root("probe") {
        return;
    }
    let env = TestEnv::new();
    let d = scratch("probe");
    let reference = probe_root(d.path(), "chroot");
    let traced = probe_root(d.path(), "traced");
    let want = chroot_run(&reference, &[], &["/probe", "/w"]);
    assert!(
        want.status.success() && stdout(&want).contains("== done"),
        "the probe must complete under chroot (the reference):\n{}",
        show(&want)
    );
    let got = Guest::new(&env, &traced, mode).run(&["/probe", "/w"]);
    assert_same(
        &format!("probe under {mode:?}"),
        &transcript(&want),
        &transcript(&got),
    );
}

#[test]
fn probe_p1_matches_chroot() {
    probe_differential(Mode::P1);
}

#[test]
fn probe_p2_matches_chroot() {
    probe_differential(Mode::P2);
}

/// 8 threads doing file I/O, then execve from a thread that is not the leader.
#[test]
fn threads_and_exec_from_a_thread() {
    if !need_root("threads") {
        return;
    }
    let env = TestEnv::new();
    let d = scratch("threads");
    let reference = probe_root(d.path(), "chroot");
    let want = chroot_run(&reference, &[], &["/threads", "/w", "8", "100"]);
    assert!(want.status.success(), "reference run:\n{}", show(&want));
    assert!(
        stdout(&want).contains("workers=8 ok=800 errors=0 leader=0")
            && stdout(&want).contains("[from-thread] exe=/probe"),
        "reference output unexpected:\n{}",
        show(&want)
    );
    for mode in MODES {
        let traced = probe_root(d.path(), &format!("{mode:?}"));
        let got = Guest::new(&env, &traced, mode).run(&["/threads", "/w", "8", "100"]);
        assert_same(
            &format!("threads under {mode:?}"),
            &transcript(&want),
            &transcript(&got),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Real programs, per rootfs
// ---------------------------------------------------------------------------------------------

/// Read-only commands whose whole output must equal the chroot run's on the same directory.
fn readonly_script(debian: bool) -> String {
    let mut s = String::from(
        "for f in /*; do [ $f = /proc ] || ls -ld $f; done\n\
         ls -la /etc | head -n 25\n\
         echo find: $(find / -xdev 2>&1 | wc -l)\n\
         find /etc -xdev -name '*.conf' 2>/dev/null | sort | head -n 20\n\
         echo 'hello world' | sed -e 's/world/guest/' -e 's/^/> /'\n\
         cat /etc/passwd | head -n 3\n\
         cd /etc && pwd && ls -d ./passwd\n\
         readlink /proc/self/exe\n\
         test -d /proc/self && echo proc-ok\n\
         echo exit-in-subshell: $(sh -c 'exit 3'; echo $?)\n",
    );
    if debian {
        s.push_str(
            "bash -c 'echo bash $((6 * 7)); echo ${BASH_VERSINFO[0]} >/dev/null'\n\
             perl -e 'print join(\",\", map { $_ * 2 } 1..5), \"\\n\"'\n\
             echo dpkg: $(dpkg -l | wc -l)\n\
             dpkg -l | tail -n 3\n\
             stat -c '%n %F %s %a' /etc/passwd /bin /usr/bin/env /etc/os-release\n\
             readlink -f /bin/sh /lib64/ld-linux-x86-64.so.2\n\
             head -n 2 /etc/os-release\n\
             id -u; id -un 2>&1\n\
             ls /usr/lib/x86_64-linux-gnu | wc -l\n\
             cd /lib && pwd && /bin/pwd\n",
        );
    }
    s
}

/// Writes in a host directory bound at /tmp: coreutils, links, tar + gzip round trip.
const WRITE_SCRIPT: &str = "set -e
cd /tmp
mkdir -p src/sub
echo alpha > src/a
echo beta > src/sub/b
cp -a src copy
mv copy/a copy/a2
ln -s a2 copy/link
cat copy/link
readlink copy/link
ls copy | tr '\\n' ' '; echo
tar -czf t.tgz src copy
mkdir x
cd x
tar -xzf ../t.tgz
cat copy/link src/sub/b
cd ..
gzip -k src/a
gzip -dc src/a.gz
tar -tzf t.tgz | sort | tr '\\n' ' '; echo
rm -r x copy
ls | tr '\\n' ' '; echo
echo done
";

fn programs_in(name: &str) {
    if !need_root(name) {
        return;
    }
    let Some(root) = rootfs(name) else { return };
    let debian = name != "busybox";
    let env = TestEnv::new();
    let ro = readonly_script(debian);
    let want = chroot_run(&root, &[], &["/bin/sh", "-c", &ro]);
    assert!(
        stdout(&want).contains("proc-ok"),
        "reference run in {name}:\n{}",
        show(&want)
    );
    let wtmp = scratch("wref");
    chown_user(wtmp.path());
    let want_w = chroot_run(
        &root,
        &[(wtmp.path(), "/tmp")],
        &["/bin/sh", "-c", WRITE_SCRIPT],
    );
    assert!(
        stdout(&want_w).ends_with("done\n") && stdout(&want_w).contains("alpha\nbeta\n"),
        "reference write run in {name}:\n{}",
        show(&want_w)
    );
    for mode in MODES {
        let got = Guest::new(&env, &root, mode).sh(&ro);
        assert_same(
            &format!("read-only programs in {name} under {mode:?}"),
            &transcript(&want),
            &transcript(&got),
        );
        let t = scratch("wtracer");
        chown_user(t.path());
        let got = Guest::new(&env, &root, mode)
            .bind(t.path(), "/tmp")
            .sh(WRITE_SCRIPT);
        assert_same(
            &format!("coreutils/tar/gzip in {name} under {mode:?}"),
            &transcript(&want_w),
            &transcript(&got),
        );
        assert!(
            t.path().join("src/sub/b").is_file() && t.path().join("t.tgz").is_file(),
            "the guest's writes must land in the bound host directory"
        );
    }
}

#[test]
fn programs_bookworm() {
    programs_in("bookworm");
}

#[test]
fn programs_bullseye() {
    programs_in("bullseye");
}

#[test]
fn programs_trixie() {
    programs_in("trixie");
}

#[test]
fn programs_busybox() {
    programs_in("busybox");
}

// ---------------------------------------------------------------------------------------------
// apt-get as fake root
// ---------------------------------------------------------------------------------------------

/// The mirror the bookworm rootfs names, if it answers from here.
fn reachable_mirror(root: &Path) -> Result<String, String> {
    let list = fs::read_to_string(root.join("etc/apt/sources.list")).unwrap_or_default();
    let url = list
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("deb")).then(|| w.next().map(str::to_string))?
        })
        .ok_or("the rootfs has no deb line in /etc/apt/sources.list")?;
    let o = Command::new("curl")
        .args(["-fsS", "-m", "15", "-o", "/dev/null"])
        .arg(format!("{url}/dists/bookworm/Release"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if o.status.success() {
        Ok(url)
    } else {
        Err(format!("{url} unreachable: {}", stderr(&o).trim()))
    }
}

#[test]
fn apt_get_install_as_fake_root() {
    if !need_root("apt-get") {
        return;
    }
    let pristine = rootfs("bookworm").expect("bookworm");
    let url = match reachable_mirror(&pristine) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("SKIP apt_get_install_as_fake_root: {e}");
            return;
        }
    };
    let env = TestEnv::new();
    let d = scratch("apt");
    let root = d.path().join("root");
    copy_tree(&pristine, &root);
    chown_user(&root);
    // apt's defaults: downloads run as _apt after setresuid/setresgid, which fake root must
    // emulate (PRoot's -0 does).
    let o = Guest::new(&env, &root, Mode::P1)
        .opt("-0")
        .opt("-b")
        .opt("/etc/resolv.conf")
        .var("DEBIAN_FRONTEND", "noninteractive")
        .timeout(240)
        .sh("apt-get update -q && apt-get install -y -q --no-install-recommends hello && hello && dpkg -s hello | grep Status");
    assert!(
        o.status.success()
            && stdout(&o).contains("Hello, world!")
            && stdout(&o).contains("install ok installed"),
        "apt-get install hello from {url} as fake root (-0, P1) must work:\n{}",
        show(&o)
    );
    assert!(root.join("usr/bin/hello").is_file());
}

/// set*id under -0 must be remembered (apt, su, setpriv, daemons dropping privileges).
#[test]
fn fake_root_remembers_set_ids() {
    if !need_root("setid") {
        return;
    }
    let env = TestEnv::new();
    let root = rootfs("bookworm").expect("bookworm");
    for mode in MODES {
        let o = Guest::new(&env, &root, mode).opt("-0").run(&[
            "/usr/bin/perl",
            "-e",
            r#"use POSIX; setgid(65534) or print "setgid failed\n";
               setuid(65534) or print "setuid failed\n";
               printf "%d %d %d\n", $<, $>, $( + 0;
               print setuid(0) ? "regained root\n" : "cannot regain root\n";"#,
        ]);
        assert_eq!(
            stdout(&o),
            "65534 65534 65534\ncannot regain root\n",
            "{mode:?}: after setgid/setuid(65534) as fake root the ids must be 65534 and root \
             must be gone, as with real root\n{}",
            show(&o)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Processes, signals, exit status
// ---------------------------------------------------------------------------------------------

fn bookworm_env() -> Option<(TestEnv, PathBuf)> {
    if !need_root("guest") {
        return None;
    }
    Some((TestEnv::new(), rootfs("bookworm").expect("bookworm")))
}

#[test]
fn exit_status_propagates() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        for (script, want) in [
            ("exit 0", 0),
            ("exit 3", 3),
            ("exit 255", 255),
            ("/bin/false", 1),
            ("kill -9 $$", 137),
            ("kill -TERM $$", 143),
            // The first process's status, not the last one to exit.
            ("(sleep 0.3; exit 7) & exit 0", 0),
        ] {
            let o = g.sh(script);
            assert_eq!(
                o.status.code(),
                Some(want),
                "{mode:?}: sh -c '{script}' must give {want}\n{}",
                show(&o)
            );
        }
        let o = g.run(&["/bin/sh", "-c", "exec /bin/sh -c 'exit 42'"]);
        assert_eq!(
            o.status.code(),
            Some(42),
            "{mode:?} exec chain\n{}",
            show(&o)
        );
    }
}

#[test]
fn pipelines_killed_by_signals() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        let o = g.run(&[
            "/bin/bash",
            "-c",
            "set -o pipefail; yes | head -n 1 > /dev/null; echo pipe=$?; \
             cat /dev/zero | sleep 30 & p=$!; kill -TERM $p; wait $p; echo term=$?; \
             yes > /dev/null & q=$!; kill -KILL $q; wait $q; echo kill=$?; \
             yes | head -c 1000 > /dev/null; kill -INT $$",
        ]);
        assert_eq!(
            stdout(&o),
            "pipe=141\nterm=143\nkill=137\n",
            "{mode:?}: guest-visible signal statuses\n{}",
            show(&o)
        );
        assert_eq!(
            o.status.code(),
            Some(130),
            "{mode:?}: a guest killed by SIGINT must give 128+2\n{}",
            show(&o)
        );
    }
}

#[test]
fn hundred_children() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let start = Instant::now();
        let out = Guest::new(&env, &root, mode).ok(&[
            "/bin/sh",
            "-c",
            "n=0; for i in $(seq 100); do /bin/true && n=$((n + 1)); done; echo $n",
        ]);
        assert_eq!(out, "100\n", "{mode:?}");
        eprintln!("{mode:?}: 100 fork+exec in {:?}", start.elapsed());
    }
}

fn process_alive(pid: i32) -> bool {
    // A zombie is not alive; /proc/PID/stat's third field is the state.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[test]
fn kill_on_exit_leaves_no_process() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let start = Instant::now();
        let o = Guest::new(&env, &root, mode)
            .opt("--kill-on-exit")
            .sh("sleep 301 & echo $!; sleep 302 & echo $!; exit 0");
        assert!(
            o.status.success(),
            "{mode:?}: --kill-on-exit run\n{}",
            show(&o)
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{mode:?}: --kill-on-exit must not wait for the background sleeps"
        );
        let pids: Vec<i32> = stdout(&o)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert_eq!(pids.len(), 2, "{}", show(&o));
        let deadline = Instant::now() + Duration::from_secs(3);
        while pids.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        for p in pids {
            assert!(
                !process_alive(p),
                "{mode:?}: guest process {p} (sleep) survived --kill-on-exit"
            );
        }
    }
}

/// Without --kill-on-exit the tracer waits for the guest's orphans (PRoot does), so their
/// work is done when it returns.
#[test]
fn orphans_finish_without_kill_on_exit() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let t = scratch("orphan");
        chown_user(t.path());
        let o = Guest::new(&env, &root, mode)
            .bind(t.path(), "/tmp")
            .sh("(sleep 0.5; echo late > /tmp/late) & exit 0");
        assert_eq!(o.status.code(), Some(0), "{mode:?}\n{}", show(&o));
        assert_eq!(
            fs::read_to_string(t.path().join("late")).ok().as_deref(),
            Some("late\n"),
            "{mode:?}: the orphan must have finished when proot returned"
        );
    }
}

#[test]
fn sigterm_to_the_tracer_reaches_the_guest() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let mut c = Guest::new(&env, &root, mode).command(&[
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; i=0; \
             while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; echo not-signalled",
        ]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut ch = c.spawn().expect("spawn");
        let out = ch.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20));
        if first.as_deref() != Ok("ready") {
            let _ = ch.kill();
            panic!("{mode:?}: guest did not start: {first:?}");
        }
        // setpriv execs udocker: the child's pid is the tracer's.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ch.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let start = Instant::now();
        let status = loop {
            if let Some(s) = ch.try_wait().expect("wait") {
                break Some(s);
            }
            if start.elapsed() > Duration::from_secs(15) {
                let _ = ch.kill();
                let _ = ch.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let _ = reader.join();
        let rest: Vec<String> = rx.try_iter().collect();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(5),
            "{mode:?}: SIGTERM sent to the tracer must reach the guest's trap (exit 5); \
             guest printed {rest:?}"
        );
        assert_eq!(rest, vec!["got-term".to_string()], "{mode:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Options: -0, -i, -k, -w, bindings, /proc/self/exe, PATH lookup
// ---------------------------------------------------------------------------------------------

#[test]
fn fake_root_ids_and_ownership() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    let (uid, gid) = fixture_ids();
    let t = scratch("ids");
    fs::write(t.path().join("mine"), "x").expect("write");
    chown_user(t.path());
    let owners = "ls -ln /tmp/mine | awk '{print $3, $4}'; stat -c '%u %g' /tmp/mine";
    for mode in MODES {
        let g = |o: &[&str]| {
            let mut g = Guest::new(&env, &root, mode).bind(t.path(), "/tmp");
            for x in o {
                g = g.opt(x);
            }
            g
        };
        let out = g(&["-0"]).ok(&["/bin/sh", "-c", &format!("id -u; id -g; {owners}")]);
        assert_eq!(out, "0\n0\n0 0\n0 0\n", "{mode:?}: -0");
        let out = g(&["-i", "123:456"]).ok(&["/bin/sh", "-c", &format!("id -u; id -g; {owners}")]);
        assert_eq!(out, "123\n456\n123 456\n123 456\n", "{mode:?}: -i 123:456");
        let out = g(&[]).ok(&["/bin/sh", "-c", &format!("id -u; {owners}")]);
        assert_eq!(
            out,
            format!("{uid}\n{uid} {gid}\n{uid} {gid}\n"),
            "{mode:?}: no fake id"
        );
        // Root's files stay root's: only the user's own files are mapped.
        let out = g(&["-i", "123:456"]).ok(&["/usr/bin/stat", "-c", "%u %g", "/etc/passwd"]);
        assert_eq!(out, "0 0\n", "{mode:?}: -i must not remap root-owned files");
    }
}

#[test]
fn kernel_release() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode).opt("-k").opt("9.9.9");
        assert_eq!(g.ok(&["/bin/uname", "-r"]), "9.9.9\n", "{mode:?}");
        // glibc >= 2.33 programs under -k (Debian's PRoot 5.1.0 broke every one of them).
        assert_eq!(g.ok(&["/bin/true"]), "", "{mode:?}");
        assert_eq!(g.ok(&["/bin/ls", "-d", "/etc"]), "/etc\n", "{mode:?}");
    }
}

/// Like PRoot (execvp), a command without a slash is looked up in the guest's PATH.
#[test]
fn bare_command_found_in_guest_path() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let o = Guest::new(&env, &root, mode).run(&["uname", "-s"]);
        assert_eq!(
            (o.status.code(), stdout(&o).as_str()),
            (Some(0), "Linux\n"),
            "{mode:?}: `proot -r ROOT uname -s` must run the guest's /usr/bin/uname\n{}",
            show(&o)
        );
    }
}

#[test]
fn proc_self_exe_is_the_guest_path() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        assert_eq!(
            g.ok(&["/usr/bin/readlink", "/proc/self/exe"]),
            "/usr/bin/readlink\n",
            "{mode:?}"
        );
        assert_eq!(
            g.ok(&[
                "/bin/sh",
                "-c",
                "readlink /proc/$$/exe; readlink /proc/self/root; cd /etc; readlink /proc/self/cwd"
            ]),
            "/usr/bin/dash\n/\n/etc\n",
            "{mode:?}"
        );
        // Executing /proc/self/exe runs the same program again (busybox, python do this).
        assert_eq!(
            g.ok(&["/bin/sh", "-c", "/proc/self/exe -c 'echo again'"]),
            "again\n",
            "{mode:?}"
        );
        // /proc/self/exe is usable as a file.
        assert_eq!(
            g.ok(&[
                "/bin/sh",
                "-c",
                "head -c 4 /proc/self/exe | od -An -c | tr -d ' '"
            ]),
            "177ELF\n",
            "{mode:?}: reading /proc/self/exe"
        );
    }
}

#[test]
fn pwd_after_cd_and_initial_cwd() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        assert_eq!(
            g.ok(&["/bin/sh", "-c", "cd /usr/share/doc && pwd && /bin/pwd && cd .. && /bin/pwd && cd /lib && pwd && /bin/pwd && cd / && cd .. && /bin/pwd"]),
            "/usr/share/doc\n/usr/share/doc\n/usr/share\n/lib\n/usr/lib\n/\n",
            "{mode:?}"
        );
        let g = Guest::new(&env, &root, mode).opt("-w").opt("/etc/apt");
        assert_eq!(g.ok(&["/bin/pwd"]), "/etc/apt\n", "{mode:?}: -w");
        assert!(
            g.ok(&["/bin/cat", "sources.list"]).starts_with("deb "),
            "{mode:?}: relative paths from -w"
        );
    }
}

#[test]
fn bindings_file_and_directory() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let t = scratch("bind");
        let dir = t.path().join("dir");
        fs::create_dir(&dir).expect("mkdir");
        fs::write(dir.join("data"), "in the binding\n").expect("write");
        std::os::unix::fs::symlink("data", dir.join("link")).expect("symlink");
        let file = t.path().join("file.conf");
        fs::write(&file, "bound file\n").expect("write");
        let same = t.path().join("same");
        fs::create_dir(&same).expect("mkdir");
        fs::write(same.join("s"), "same path\n").expect("write");
        chown_user(t.path());
        let g = Guest::new(&env, &root, mode)
            .bind(&dir, "/opt/bound/in")
            .bind(&file, "/etc/bound.conf")
            .opt("-b")
            .opt(&same.display().to_string());
        let script = format!(
            "cat /etc/bound.conf /opt/bound/in/data /opt/bound/in/link {same}/s
readlink /opt/bound/in/link
echo new > /opt/bound/in/new
ls /opt/bound/in | tr '\\n' ' '; echo
cd /opt/bound/in && /bin/pwd && cat ./new
stat -c %F /opt/bound/in /etc/bound.conf
test -d /opt/bound && echo parent-is-a-dir
cat /etc/hostname > /dev/null && echo rootfs-still-there",
            same = same.display()
        );
        let o = g.run(&["/bin/sh", "-c", &script]);
        assert_eq!(
            stdout(&o),
            "bound file\nin the binding\nin the binding\nsame path\ndata\ndata link new \n\
             /opt/bound/in\nnew\ndirectory\nregular file\nparent-is-a-dir\nrootfs-still-there\n",
            "{mode:?}: bindings whose guest paths do not exist in the rootfs\n{}",
            show(&o)
        );
        assert_eq!(
            fs::read_to_string(dir.join("new")).ok().as_deref(),
            Some("new\n"),
            "{mode:?}: a write through the binding must reach the host directory"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Found with PRoot's own test suite (scripts/peer-proot)
// ---------------------------------------------------------------------------------------------

/// A real-time signal stopping the guest (glibc's setxid broadcast uses SIGRTMIN+1) must be
/// delivered, not make the tracer give up.
#[test]
fn real_time_signals_reach_the_guest() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        assert_eq!(
            g.ok(&[
                "/bin/sh",
                "-c",
                "trap 'echo rt' 35; kill -35 $$; echo after"
            ]),
            "rt\nafter\n",
            "{mode:?}"
        );
    }
}

/// Glue: directories leading to a binding the rootfs lacks can be listed, nothing is left in
/// the rootfs afterwards; one host directory bound at two guest paths keeps the name it was
/// entered by; a fake root's EPERM on mknod becomes success.
#[test]
fn glue_two_names_and_fake_root_mknod() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    for mode in MODES {
        let t = scratch("glue");
        let dir = t.path().join("dir");
        fs::create_dir(&dir).expect("mkdir");
        chown_user(t.path());
        let name = format!("glue-{}-{mode:?}", std::process::id());
        for pollute in ["0", "1"] {
            let g = Guest::new(&env, &root, mode)
                .bind(&dir, &format!("/tmp/{name}/x/y"))
                .var("PROOT_DONT_POLLUTE_ROOTFS", pollute);
            assert_eq!(
                g.ok(&["/bin/ls", &format!("/tmp/{name}/x")]),
                "y\n",
                "{mode:?} PROOT_DONT_POLLUTE_ROOTFS={pollute}"
            );
            assert!(
                !root.join("tmp").join(&name).exists(),
                "{mode:?}: glue left in the rootfs"
            );
        }
        for (first, second) in [("/a", "/b"), ("/b", "/a")] {
            let g = Guest::new(&env, &root, mode)
                .opt("-w")
                .opt("/a")
                .bind(&dir, first)
                .bind(&dir, second);
            assert_eq!(g.ok(&["/bin/pwd"]), "/a\n", "{mode:?} {first} {second}");
        }
        let g = Guest::new(&env, &root, mode).opt("-0");
        let o = g.run(&["/bin/mknod", "/tmp/dev-node", "b", "1", "1"]);
        assert!(
            o.status.success(),
            "{mode:?}: fake root mknod\n{}",
            show(&o)
        );
    }
}

/// ptrace(2) inside the guest (PRoot's ptrace emulation): a small debugger (TRACEME child,
/// PEEK/POKEDATA, GETREGS at syscall stops, exec and fork events, exit statuses through
/// waitpid) prints the same facts as it does natively in a chroot.
#[test]
fn guest_ptrace_is_emulated() {
    if !need_root("guest ptrace") {
        return;
    }
    let env = TestEnv::new();
    let d = scratch("ptrace");
    let place = |root: &Path| {
        fs::copy(probe_bin("ptrace"), root.join("ptrace")).expect("copy ptrace probe");
        fs::set_permissions(root.join("ptrace"), fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    let reference = probe_root(d.path(), "chroot");
    place(&reference);
    let want = chroot_run(&reference, &[], &["/ptrace"]);
    assert!(want.status.success(), "reference run:\n{}", show(&want));
    assert!(
        stdout(&want).contains("tracee exit: 3")
            && stdout(&want).contains("getppid entry: 1, exec event: 1, fork event: 1"),
        "reference output unexpected:\n{}",
        show(&want)
    );
    for mode in MODES {
        let traced = probe_root(d.path(), &format!("{mode:?}"));
        place(&traced);
        let got = Guest::new(&env, &traced, mode).run(&["/ptrace"]);
        assert_same(
            &format!("guest ptrace under {mode:?}"),
            &transcript(&want),
            &transcript(&got),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Foreign programs (-q)
// ---------------------------------------------------------------------------------------------

/// A static aarch64 ELF, made here (no cross compiler needed): `openat(AT_FDCWD, path)`,
/// `read` 256 bytes of it, `write` them to stdout, `exit(0)`. Its system calls reach the
/// tracer through the emulator, so what it prints shows they were translated.
fn aarch64_cat(path: &str) -> Vec<u8> {
    let movz = |d: u32, imm: u32| 0xD280_0000 | imm << 5 | d;
    let movn = |d: u32, imm: u32| 0x9280_0000 | imm << 5 | d;
    let adr = |d: u32, off: u32| 0x1000_0000 | (off & 3) << 29 | ((off >> 2) & 0x7ffff) << 5 | d;
    const SVC0: u32 = 0xD400_0001;
    const SUB_SP_256: u32 = 0xD104_03FF; // sub sp, sp, #256
    const MOV_X1_SP: u32 = 0x9100_03E1; // add x1, sp, #0
    const MOV_X2_X0: u32 = 0xAA00_03E2; // orr x2, xzr, x0
    let mut code = vec![
        movn(0, 99), // x0 = -100: AT_FDCWD
        0,           // adr x1, path (below)
        movz(2, 0),
        movz(8, 56), // openat
        SVC0,
        SUB_SP_256,
        MOV_X1_SP,
        movz(2, 256),
        movz(8, 63), // read(fd, sp, 256)
        SVC0,
        MOV_X2_X0,
        movz(0, 1),
        MOV_X1_SP,
        movz(8, 64), // write(1, sp, n)
        SVC0,
        movz(0, 0),
        movz(8, 93), // exit(0)
        SVC0,
    ];
    code[1] = adr(1, (code.len() as u32 - 1) * 4);
    let mut body: Vec<u8> = code.iter().flat_map(|c| c.to_le_bytes()).collect();
    body.extend_from_slice(path.as_bytes());
    body.push(0);
    let (base, eh, ph) = (0x40_0000u64, 64u64, 56u64);
    let total = eh + ph + body.len() as u64;
    let mut f = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(base + eh + ph).to_le_bytes()); // entry
    f.extend_from_slice(&eh.to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [eh as u16, ph as u16, 1, 0, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0, base, base, total, total, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&body);
    f
}

fn host_command(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|n| {
        path.split(':')
            .map(|d| Path::new(d).join(n))
            .find(|p| p.is_file())
    })
}

/// `-q QEMU`: a program for another machine runs through the emulator with its system calls
/// translated (it reads a file that exists only in the guest); a guest shell (a host-machine
/// program: PRoot's mixed mode, run with the host's loader under /host-rootfs) starts it too,
/// with argv[0] and the guest's LD_LIBRARY_PATH handed to the emulator, not applied to it.
#[test]
fn qemu_runs_foreign_programs() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    let Some(qemu) = host_command(&["qemu-aarch64-static", "qemu-aarch64"]) else {
        eprintln!("SKIP qemu_runs_foreign_programs: no qemu-aarch64(-static) in PATH (apt-get install qemu-user-static)");
        return;
    };
    let dir = scratch("qemu");
    fs::write(dir.path().join("data"), "only in the guest\n").expect("write");
    let probe = dir.path().join("probe");
    fs::write(&probe, aarch64_cat("/qx/data")).expect("write");
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).expect("chmod");
    chown_user(dir.path());
    let q = qemu.display().to_string();
    for mode in MODES {
        let g = Guest::new(&env, &root, mode)
            .bind(dir.path(), "/qx")
            .opt("-q")
            .opt(&q)
            .var("PROOT_DONT_POLLUTE_ROOTFS", "1");
        assert_eq!(g.ok(&["/qx/probe"]), "only in the guest\n", "{mode:?}");
        let script = format!(
            "LD_LIBRARY_PATH=/nowhere /qx/probe && echo done; test -x /host-rootfs{q} && echo host"
        );
        assert_eq!(
            g.ok(&["/bin/sh", "-c", &script]),
            "only in the guest\ndone\nhost\n",
            "{mode:?}"
        );
        // Without -q the kernel cannot run it (ENOEXEC: the shell reports 126).
        let o = Guest::new(&env, &root, mode).sh("/qx/probe");
        assert_ne!(o.status.code(), Some(0), "{mode:?}: {}", show(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// AF_UNIX addresses
// ---------------------------------------------------------------------------------------------

/// Every call that takes or gives back an AF_UNIX path (bind, connect, sendto, sendmsg,
/// getsockname, getpeername, accept, recvfrom, recvmsg) in a directory whose guest path is
/// short and whose host path is longer than sun_path's 108 bytes (the tracer goes through a
/// short alias) and in one where both fit: the guest sees its own paths throughout, and the
/// sockets are made where the guest put them.
#[test]
fn unix_socket_paths_long_and_short() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    let dir = scratch("unix");
    let long = dir.path().join("d".repeat(110));
    fs::create_dir(&long).expect("mkdir");
    let short = dir.path().join("s");
    fs::create_dir(&short).expect("mkdir");
    fs::copy(probe_bin("unixsock"), dir.path().join("unixsock")).expect("copy probe");
    chown_user(dir.path());
    let want = |d: &str| {
        format!(
            "getsockname {d}/client (len {c})\n\
             recvfrom hello from {d}/client (len {c})\n\
             recvmsg again from {d}/client (len {c})\n\
             recvfrom small cut len LEN\n\
             accept {d}/cli2 (len {c2})\n\
             getpeername {d}/stream (len {c})\n\
             bind again: Address already in use\n",
            c = d.len() + 10, // family, "/client", NUL
            c2 = d.len() + 8,
        )
    };
    for mode in MODES {
        for (host, guest) in [(&long, "/s"), (&short, "/short")] {
            // Mount points made privately: the fixture rootfs is shared with other tests
            // (apt_get_install_as_fake_root copies it while they run).
            let g = Guest::new(&env, &root, mode)
                .bind(dir.path(), "/x")
                .bind(host, guest)
                .var("PROOT_DONT_POLLUTE_ROOTFS", "1");
            let out = g.ok(&["/x/unixsock", guest]);
            // The length reported for a cut address is the host's (the whole path is not there
            // to translate): not compared.
            let out: String = out
                .lines()
                .map(|l| match l.strip_prefix("recvfrom small cut len ") {
                    Some(_) => "recvfrom small cut len LEN".to_string(),
                    None => l.to_string(),
                })
                .map(|l| l + "\n")
                .collect();
            assert_eq!(out, want(guest), "{mode:?} {guest}");
            for s in ["dgram", "client", "stream", "cli2"] {
                use std::os::unix::fs::FileTypeExt;
                let m = fs::symlink_metadata(host.join(s)).expect("socket file on the host");
                assert!(m.file_type().is_socket(), "{mode:?} {s}");
                fs::remove_file(host.join(s)).expect("rm");
            }
        }
    }
}

/// The tracer may keep itself and a serial guest on one CPU (a speed-up), but the guest sees the
/// CPU set it was given (programs size thread pools from it), and one that sets its own gets it.
#[test]
fn cpu_set_seen_by_the_guest_is_its_own() {
    let Some((env, root)) = bookworm_env() else {
        return;
    };
    let host = String::from_utf8_lossy(
        &std::process::Command::new("nproc")
            .output()
            .expect("nproc")
            .stdout,
    )
    .trim()
    .to_string();
    for mode in MODES {
        let g = Guest::new(&env, &root, mode);
        assert_eq!(
            g.ok(&["/bin/sh", "-c", "nproc; taskset -c 0 nproc; nproc"]),
            format!("{host}\n1\n{host}\n"),
            "{mode:?}"
        );
    }
}
