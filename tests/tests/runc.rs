//! The R1/R2/R3 execution modes with the host's runc and crun (Debian packages, installed by
//! `scripts/fixtures.sh up`), run as the unprivileged fixture user: the same answers as P1 for
//! identity, files, volumes, environment, working directory, users, exit codes, stdin, signals
//! and a terminal; switching a container between modes; no runtime state left behind, and what a
//! killed udocker left removed by the next run; clear errors without a runtime.

use e2e::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

const RUNTIMES: &[&str] = &["runc", "crun"];

/// A world with test/multilayer as container `ml` in `mode`, using `runtime`.
fn setup(runtime: &str, mode: &str) -> (TestEnv, String) {
    let mut t = TestEnv::new();
    t.set_env("UDOCKER_USE_RUNC_EXECUTABLE", runtime);
    let img = t.fx.get("MULTILAYER_REF");
    t.ud_ok(&["pull", &img]);
    let id = t.ud_ok(&["create", "--name=ml", &img]).trim().to_string();
    t.ud_ok(&["setup", &format!("--execmode={mode}"), "ml"]);
    (t, id)
}

fn run(t: &TestEnv, args: &[&str]) -> Output {
    let mut a = vec!["run", "--nobanner"];
    a.extend_from_slice(args);
    t.ud(&a)
}

fn run_ok(t: &TestEnv, args: &[&str]) -> String {
    let o = run(t, args);
    assert!(o.status.success(), "run {args:?}\n{}", show(&o));
    stdout(&o)
}

fn container_dir(t: &TestEnv, id: &str) -> PathBuf {
    t.udir.join("containers").join(id)
}

/// Entries left under the container's runtime directory (state, bundles, logs).
fn runtime_leftovers(t: &TestEnv, id: &str) -> Vec<String> {
    let d = container_dir(t, id).join(".runtime");
    let mut out = Vec::new();
    for e in fs::read_dir(&d).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() && (n == "runc" || n == "crun") {
            for s in fs::read_dir(e.path()).unwrap().flatten() {
                out.push(format!("{n}/{}", s.file_name().to_string_lossy()));
            }
        } else {
            out.push(n);
        }
    }
    out
}

fn user_dir(t: &TestEnv, name: &str) -> PathBuf {
    let d = t.home.join(name);
    fs::create_dir_all(&d).unwrap();
    t.write_file(&d.join("hello.txt"), b"from the host\n");
    if let Some((u, g)) = t.user {
        chown(&d, u, g);
    }
    d
}

#[test]
fn same_answers_as_p1_on_debian() {
    for rt in RUNTIMES {
        let mut t = TestEnv::new();
        t.set_env("UDOCKER_USE_RUNC_EXECUTABLE", rt);
        let img = t.fx.get("DEBIAN_REF");
        t.ud_ok(&["pull", &img]);
        t.ud_ok(&["create", "--name=deb", &img]);
        let probe = "id; cat /etc/os-release; pwd; echo HOME=$HOME; ls /; hostname; \
                     test -w / && echo root-writable; echo x > /tmp/f && cat /tmp/f";
        let p1 = run_ok(&t, &["deb", "sh", "-c", probe]);
        t.ud_ok(&["setup", "--execmode=R1", "deb"]);
        let r1 = run_ok(&t, &["deb", "sh", "-c", probe]);
        assert_eq!(r1, p1, "{rt}: R1 and P1 differ");
        assert!(r1.starts_with("uid=0(root) gid=0(root)"), "{r1}");
        assert!(r1.contains("Debian GNU/Linux 12"), "{r1}");
        // The container_execmode variable tells which engine ran.
        assert_eq!(
            run_ok(&t, &["deb", "sh", "-c", "echo $container_execmode"]),
            "R1\n"
        );
    }
}

#[test]
fn volumes_env_workdir_exit_codes_stdin() {
    for rt in RUNTIMES {
        let (t, id) = setup(rt, "R1");
        let d = user_dir(&t, "vol");
        let ro = format!("{}:/ro:ro", d.display());
        let rw = format!("{}:/rw", d.display());
        let out = run_ok(
            &t,
            &[
                "-v",
                &ro,
                "-v",
                &rw,
                "-e",
                "X=from-cli",
                "-w",
                "/ro",
                "ml",
                "pwd; cat hello.txt; echo $X $FOO; touch /ro/new 2>&1; echo made > /rw/made",
            ],
        );
        assert_eq!(
            out, "/ro\nfrom the host\nfrom-cli bar\ntouch: /ro/new: Read-only file system\n",
            "{rt}"
        );
        assert_eq!(fs::read_to_string(d.join("made")).unwrap(), "made\n");
        // The image's WorkingDir and Entrypoint, exit statuses.
        assert_eq!(run_ok(&t, &["ml", "pwd"]), "/data\n");
        assert_eq!(run(&t, &["ml", "exit 7"]).status.code(), Some(7), "{rt}");
        assert_eq!(
            run(&t, &["ml", "kill -9 $$"]).status.code(),
            Some(137),
            "{rt}"
        );
        // A command that is not there: as in P1, before anything starts.
        assert_eq!(
            run(&t, &["--entrypoint=", "ml", "nosuch"]).status.code(),
            Some(127)
        );
        // stdin goes through.
        let o = t.ud_with_stdin(
            b"echo from stdin; exit 3\n",
            &["run", "--nobanner", "--entrypoint=", "ml", "sh"],
        );
        assert_eq!(stdout(&o), "from stdin\n", "{rt}: {}", show(&o));
        assert_eq!(o.status.code(), Some(3));
        assert!(
            runtime_leftovers(&t, &id).is_empty(),
            "{rt}: {:?}",
            runtime_leftovers(&t, &id)
        );
    }
}

#[test]
fn users() {
    // crun maps the user to the requested uid; runc only to root (a warning); R2 (the tracer
    // inside) fakes it with either.
    for (rt, mode, want) in [
        ("crun", "R1", "1000 1000"),
        ("runc", "R1", "0 0"),
        ("runc", "R2", "1000 1000"),
        ("crun", "R3", "1000 1000"),
    ] {
        let (t, _) = setup(rt, mode);
        let o = run(
            &t,
            &[
                "--user=1000:1000",
                "ml",
                "echo $(id -u) $(id -g); echo $USER",
            ],
        );
        assert!(o.status.success(), "{}", show(&o));
        assert_eq!(stdout(&o), format!("{want}\nuser1000\n"), "{rt} {mode}");
        assert_eq!(
            stderr(&o).contains("runs as root"),
            rt == "runc" && mode == "R1",
            "{rt} {mode}: {}",
            show(&o)
        );
        let out = run_ok(&t, &["ml", "id -u; cat /proc/self/status | grep TracerPid"]);
        let traced = !out.contains("TracerPid:\t0");
        assert_eq!(traced, mode != "R1", "{rt} {mode}: {out}");
    }
}

/// `sleep N` processes.
fn sleeps(n: u32) -> Vec<String> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            let w: Vec<&str> = c.split_whitespace().collect();
            if w.len() == 2 && w[0].ends_with("sleep") && w[1] == n.to_string() {
                v.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

fn wait_no_sleeps(n: u32) {
    let start = Instant::now();
    loop {
        let left = sleeps(n);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "left running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn term(ch: &std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ch.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn signals_and_leftovers() {
    for (k, rt) in RUNTIMES.iter().enumerate() {
        let (t, id) = setup(rt, "R1");
        let n = 30000 + (std::process::id() % 5000) * 2 + k as u32;
        let script = format!(
            "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done; : {n}"
        );
        let mut ch = t.spawn(&["run", "--nobanner", "ml", &script]);
        let mut out = BufReader::new(ch.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        term(&ch);
        let status = ch.wait().unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "got TERM\n", "{rt}");
        assert_eq!(status.code(), Some(3), "{rt}");
        // No trap: death by SIGTERM; what it started in the background is killed too.
        let script = format!("sleep {n} & echo ready; sleep {n}");
        let mut ch = t.spawn(&["run", "--nobanner", "ml", &script]);
        let mut out = BufReader::new(ch.stdout.take().unwrap());
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(sleeps(n).len(), 2, "{rt}: both sleeps run");
        term(&ch);
        assert_eq!(ch.wait().unwrap().code(), Some(143), "{rt}");
        wait_no_sleeps(n);
        // A command that exits at once, leaving a background process: run returns at once.
        let t0 = Instant::now();
        let o = run(&t, &["ml", &format!("sleep {n} & echo started")]);
        assert_eq!(stdout(&o), "started\n", "{rt}: {}", show(&o));
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{rt}: waited for the leftover"
        );
        wait_no_sleeps(n);
        assert!(
            runtime_leftovers(&t, &id).is_empty(),
            "{rt}: {:?}",
            runtime_leftovers(&t, &id)
        );
    }
}

#[test]
fn killed_udocker_state_is_cleaned() {
    for (k, rt) in RUNTIMES.iter().enumerate() {
        let (t, id) = setup(rt, "R1");
        let n = 40000 + (std::process::id() % 5000) * 2 + k as u32;
        // SIGKILL of udocker: the runtime gets SIGTERM (parent death) and stops the container.
        let mut ch = t.spawn(&["run", "--nobanner", "ml", &format!("echo ready; sleep {n}")]);
        let mut out = BufReader::new(ch.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        ch.kill().unwrap();
        ch.wait().unwrap();
        wait_no_sleeps(n);
        // A stale state (a udocker and its runtime both killed): removed by the next run.
        let rtd = container_dir(&t, &id).join(".runtime");
        let stale = rtd.join(rt).join("udocker-999999999-deadbeef");
        fs::create_dir_all(&stale).unwrap();
        fs::create_dir_all(rtd.join("udocker-999999999-deadbeef.bundle")).unwrap();
        if let Some((u, g)) = t.user {
            for p in [
                &rtd,
                &rtd.join(rt),
                &stale,
                &rtd.join("udocker-999999999-deadbeef.bundle"),
            ] {
                chown(p, u, g);
            }
        }
        assert_eq!(run_ok(&t, &["ml", "echo ok"]), "ok\n");
        let start = Instant::now();
        while !runtime_leftovers(&t, &id).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{rt}: left {:?}",
                runtime_leftovers(&t, &id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn switching_modes_keeps_the_container_working() {
    let (t, _) = setup("crun", "P1");
    let d = user_dir(&t, "vol");
    let v = format!("{}:/v", d.display());
    let probe = "echo $container_execmode $(id -u) $(cat /v/hello.txt); echo >> /data/log; wc -l < /data/log";
    let mut n = 0;
    for mode in ["P1", "R1", "P2", "R2", "R3", "P1", "R1"] {
        let o = t.ud_ok(&["setup", &format!("--execmode={mode}"), "ml"]);
        assert!(o.contains(&format!("execmode: {mode}")), "{o}");
        for rt in RUNTIMES {
            n += 1;
            let o = t.ud_env(
                &[("UDOCKER_USE_RUNC_EXECUTABLE", rt)],
                &["run", "--nobanner", "-v", &v, "ml", probe],
            );
            assert!(o.status.success(), "{mode} {rt}\n{}", show(&o));
            assert_eq!(
                stdout(&o),
                format!("{mode} 0 from the host\n{n}\n"),
                "{mode} {rt}"
            );
        }
    }
}

#[test]
fn clear_errors_without_a_runtime() {
    let (mut t, _) = setup("runc", "R1");
    t.set_env("UDOCKER_USE_RUNC_EXECUTABLE", "/nonexistent/runc");
    let o = run(&t, &["ml", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("/nonexistent/runc") && lines[0].contains("setup --execmode=P1"),
        "{err}"
    );
    // Nothing on PATH.
    let empty = t.home.join("emptybin");
    fs::create_dir_all(&empty).unwrap();
    // (setpriv, which the harness starts udocker with, must still be found.)
    std::os::unix::fs::symlink("/usr/bin/setpriv", empty.join("setpriv")).unwrap();
    let mut c = t.cmd(&["run", "--nobanner", "ml", "true"]);
    c.env("PATH", &empty)
        .env_remove("UDOCKER_USE_RUNC_EXECUTABLE");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        stderr(&o).contains("no runc or crun found in PATH")
            && stderr(&o).contains("setup --execmode=P1"),
        "{}",
        show(&o)
    );
    // S1 without apptainer/singularity.
    t.ud_ok(&["setup", "--execmode=S1", "ml"]);
    let o = run(&t, &["ml", "true"]);
    assert!(
        stderr(&o).contains("no apptainer or singularity found"),
        "{}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Terminal
// ---------------------------------------------------------------------------------------------

#[test]
fn interactive_shell_in_a_terminal() {
    for rt in RUNTIMES {
        let (t, id) = setup(rt, "R1");
        let status_file = t.home.join("status");
        let script = format!(
            "{}; echo $? > {}; sleep 60",
            shell_cmd(
                &t,
                &[&format!("UDOCKER_USE_RUNC_EXECUTABLE={rt}")],
                &["run", "-it", "--nobanner", "--entrypoint=", "ml", "sh"]
            ),
            status_file.display()
        );
        let tm = Tmux {
            socket: format!("udocker-runc-test-{}-{rt}", std::process::id()),
        };
        let o = tm.cmd(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            &script,
        ]);
        assert!(o.status.success(), "{}", show(&o));
        tm.wait_for("built-in shell");
        std::thread::sleep(Duration::from_millis(300));
        tm.cmd(&["send-keys", "-t", "t", "echo $((6*7)); tty", "Enter"]);
        // tty's answer comes a moment after 42: wait for it (a timeout fails the test).
        tm.wait_for("42");
        let p = tm.wait_for("/dev/pts/");
        assert!(p.contains("/dev/pts/"), "{rt}: a terminal inside:\n{p}");
        tm.cmd(&["send-keys", "-t", "t", "sleep 30", "Enter"]);
        std::thread::sleep(Duration::from_millis(500));
        tm.cmd(&["send-keys", "-t", "t", "C-c"]);
        tm.cmd(&["send-keys", "-t", "t", "echo still-$((1+1))", "Enter"]);
        tm.wait_for("still-2");
        tm.cmd(&["send-keys", "-t", "t", "exit 5", "Enter"]);
        let start = Instant::now();
        while !status_file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{rt}: the shell did not exit:\n{}",
                tm.pane()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            fs::read_to_string(&status_file).unwrap().trim(),
            "5",
            "{rt}"
        );
        assert!(runtime_leftovers(&t, &id).is_empty(), "{rt}");
    }
}

// ---------------------------------------------------------------------------------------------
// S1 (Apptainer/Singularity)
// ---------------------------------------------------------------------------------------------

/// Neither Apptainer nor Singularity is packaged for the test machines. A stand-in named like
/// them records the command line and the environment udocker gives it, then does what `exec`
/// would: runs the command in ROOT with the binds, cwd and APPTAINERENV_/SINGULARITYENV_
/// variables it was given, through our own tracer. So the test checks both the exact command
/// line and that it means what the container needs.
fn fake_apptainer(t: &TestEnv) -> PathBuf {
    let bin = t.home.join("s1bin");
    let log = t.home.join("s1log");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&log).unwrap();
    let script = format!(
        r#"#!/bin/bash
printf '%s\n' "$0" "$@" > {log}/argv
env | grep -E '^(APPTAINERENV_|SINGULARITYENV_)' | sort > {log}/env
while [ $# -gt 0 ]; do
    case $1 in --silent|--quiet|--debug|-v) shift ;; exec) shift; break ;; *) exit 99 ;; esac
done
[ "$1" = --help ] && exit 0
cwd=/; binds=()
while [ $# -gt 0 ]; do
    case $1 in
    -w|--fakeroot) shift ;;
    --pwd) cwd=$2; shift 2 ;;
    -B|--home) binds+=(-b "${{2%:ro}}"); shift 2 ;;
    *) break ;;
    esac
done
root=$1; shift
envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
for v in $(compgen -e); do
    case $v in APPTAINERENV_*|SINGULARITYENV_*) envs+=("${{v#*ENV_}}=${{!v}}") ;; esac
done
exec env -i "${{envs[@]}}" {ud} proot -r "$root" -w "$cwd" "${{binds[@]}}" "$@"
"#,
        log = log.display(),
        ud = udocker_bin().display()
    );
    let app = bin.join("apptainer");
    fs::write(&app, script).unwrap();
    std::os::unix::fs::symlink(&app, bin.join("singularity")).unwrap();
    if let Some((u, g)) = t.user {
        for p in [&t.home.join("s1bin"), &app, &log] {
            chown(p, u, g);
        }
    }
    let mut perm = fs::metadata(&app).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(&app, perm).unwrap();
    app
}

#[test]
fn s1_command_line_and_environment() {
    let (mut t, id) = setup("runc", "S1");
    let app = fake_apptainer(&t);
    let vol = t.home.join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("x"), "from the volume\n").unwrap();
    if let Some((u, g)) = t.user {
        chown(&vol, u, g);
    }
    let root = container_dir(&t, &id).join("ROOT");
    for (exe, prefix) in [
        (app.clone(), "APPTAINERENV_"),
        (app.with_file_name("singularity"), "SINGULARITYENV_"),
    ] {
        t.set_env("UDOCKER_USE_SINGULARITY_EXECUTABLE", exe.to_str().unwrap());
        let v = format!("{}:/data:ro", vol.display());
        let o = run(
            &t,
            &[
                "-e",
                "FOO=bar baz",
                "-v",
                &v,
                "-w",
                "/data",
                "--entrypoint=",
                "ml",
                "sh",
                "-c",
                "echo \"$FOO\"; pwd; cat /data/x; exit 3",
            ],
        );
        assert_eq!(o.status.code(), Some(3), "{}", show(&o));
        assert_eq!(
            stdout(&o),
            "bar baz\n/data\nfrom the volume\n",
            "{}",
            show(&o)
        );
        let argv = fs::read_to_string(t.home.join("s1log/argv")).unwrap();
        let argv: Vec<&str> = argv.lines().collect();
        assert_eq!(argv[0], exe.to_str().unwrap());
        // udocker's S1 command line: [verbosity] exec -w [--fakeroot] --pwd CWD -B H:C[:ro] ...
        // ROOT CMD...
        let exec = argv.iter().position(|a| *a == "exec").expect("exec");
        assert_eq!(argv[exec + 1], "-w", "{argv:?}");
        let pwd = argv.iter().position(|a| *a == "--pwd").expect("--pwd");
        assert_eq!(argv[pwd + 1], "/data", "{argv:?}");
        assert!(
            argv.windows(2).any(|w| w[0] == "-B" && w[1] == v),
            "read-only volume bound with :ro: {argv:?}"
        );
        let r = argv
            .iter()
            .position(|a| *a == root.to_str().unwrap())
            .unwrap_or_else(|| panic!("ROOT {} in {argv:?}", root.display()));
        // (the command is found on the container's PATH first, as upstream does)
        assert_eq!(&argv[r + 1..r + 3], &["/bin/sh", "-c"], "{argv:?}");
        let env = fs::read_to_string(t.home.join("s1log/env")).unwrap();
        assert!(
            env.lines().any(|l| l == format!("{prefix}FOO=bar baz")),
            "{env}"
        );
        assert!(
            env.lines().all(|l| l.starts_with(prefix)),
            "only {prefix} variables: {env}"
        );
    }
}
