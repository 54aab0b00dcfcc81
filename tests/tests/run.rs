//! `udocker run` with the P1/P2 engines: image metadata (Entrypoint/Cmd/Env/WorkingDir), the
//! environment's precedence, users, volumes, sysdirs, working directory, exit status, signals,
//! `--rm` and `--pull`, bad input, an interactive shell in a terminal (tmux) and SIGTERM.
//! Most tests use test/multilayer (busybox, Entrypoint ["/bin/sh","-c"], Cmd ["echo hello from
//! multilayer"], Env FOO=bar, WorkingDir /data); one uses debian:bookworm (dynamic binaries,
//! bash, coreutils' id).

use e2e::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn multilayer(t: &TestEnv) -> String {
    t.fx.get("MULTILAYER_REF")
}

/// A fresh world with test/multilayer pulled and a container named `ml`; returns its id.
fn setup() -> (TestEnv, String) {
    let t = TestEnv::new();
    t.ud_ok(&["pull", &multilayer(&t)]);
    let id = t
        .ud_ok(&["create", "--name=ml", &multilayer(&t)])
        .trim()
        .to_string();
    (t, id)
}

fn root_of(t: &TestEnv, c: &str) -> PathBuf {
    PathBuf::from(t.ud_ok(&["inspect", "-p", c]).trim())
}

/// `udocker run --nobanner ARGS`: stdout of a successful run.
fn run_ok(t: &TestEnv, args: &[&str]) -> String {
    let mut a = vec!["run", "--nobanner"];
    a.extend_from_slice(args);
    t.ud_ok(&a)
}

fn run(t: &TestEnv, args: &[&str]) -> Output {
    let mut a = vec!["run", "--nobanner"];
    a.extend_from_slice(args);
    t.ud(&a)
}

/// A failing run: non-zero status, exactly one `Error:` line that contains `what`.
fn run_err(t: &TestEnv, args: &[&str], what: &str) -> Output {
    let o = run(t, args);
    let err = stderr(&o);
    assert!(
        !o.status.success() && o.status.code().is_some(),
        "expected `run {}` to fail\n{}",
        args.join(" "),
        show(&o)
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("Error:")).collect();
    assert!(
        errors.len() == 1 && errors[0].contains(what),
        "expected one `Error: …{what}…` line from `run {}`\n{}",
        args.join(" "),
        show(&o)
    );
    o
}

fn containers(t: &TestEnv) -> usize {
    fs::read_dir(t.udir.join("containers"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    !n.starts_with('.') && e.file_type().is_ok_and(|f| f.is_dir())
                })
                .count()
        })
        .unwrap_or(0)
}

/// A directory the test user owns.
fn user_dir(t: &TestEnv, name: &str) -> PathBuf {
    let d = t.home.join(name);
    fs::create_dir_all(&d).unwrap();
    t.write_file(&d.join("hello.txt"), b"from the host\n");
    if let Some((u, g)) = t.user {
        chown_path(&d, u, g);
    }
    d
}

fn chown_path(p: &Path, u: u32, g: u32) {
    nix::unistd::chown(
        p,
        Some(nix::unistd::Uid::from_raw(u)),
        Some(nix::unistd::Gid::from_raw(g)),
    )
    .unwrap();
}

#[test]
fn entrypoint_and_cmd() {
    let (t, _) = setup();
    assert_eq!(run_ok(&t, &["ml"]), "hello from multilayer\n");
    // Arguments replace Cmd and go to the Entrypoint (`sh -c ARG`).
    assert_eq!(run_ok(&t, &["ml", "echo $FOO; pwd"]), "bar\n/data\n");
    // --entrypoint replaces the Entrypoint and drops the image's Cmd.
    assert_eq!(run_ok(&t, &["--entrypoint=/bin/echo", "ml"]), "\n");
    assert_eq!(run_ok(&t, &["--entrypoint", "echo -n", "ml", "a"]), "a");
    // --entrypoint="" drops both; options after the container belong to the command.
    assert_eq!(
        run_ok(&t, &["--entrypoint=", "ml", "echo", "-v", "x", "--rm"]),
        "-v x --rm\n"
    );
    let ls = run_ok(&t, &["--entrypoint=", "ml", "ls", "-l", "/data/b"]);
    assert!(ls.starts_with("-rw-r--r--"), "ls -l got {ls:?}");
    // No command at all: a shell (reading stdin, empty here), with a warning.
    let o = run(&t, &["--entrypoint=", "ml"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains("no command given, running /bin/sh"),
        "{}",
        show(&o)
    );
    // --nometa: the image's Entrypoint, WorkingDir and Env are ignored.
    assert_eq!(
        run_ok(
            &t,
            &["--nometa", "ml", "sh", "-c", "pwd; echo ${FOO:-unset}"]
        ),
        "/\nunset\n"
    );
    // Feeding stdin through.
    let o = t.ud_with_stdin(
        b"echo from stdin\n",
        &["run", "--nobanner", "--entrypoint=", "ml", "sh"],
    );
    assert_eq!(stdout(&o), "from stdin\n", "{}", show(&o));
}

#[test]
fn banner_and_quiet() {
    let (t, id) = setup();
    let out = t.ud_ok(&["run", "ml", "true"]);
    assert!(
        out.contains(&format!("STARTING {id}")),
        "banner missing: {out:?}"
    );
    assert!(out.lines().next().unwrap().starts_with('*'));
    assert_eq!(t.ud_ok(&["-q", "run", "ml", "echo x"]), "x\n");
    assert_eq!(t.ud_ok(&["run", "--nobanner", "ml", "echo x"]), "x\n");
}

#[test]
fn environment_precedence() {
    let (t, id) = setup();
    let envf = t.home.join("env.list");
    t.write_file(
        &envf,
        b"# a comment\n\nFOO=from-file\nBAR=from-file\nBAZ=from-file\n",
    );
    let envf = envf.to_string_lossy().into_owned();
    let show_env = "echo FOO=$FOO BAR=$BAR BAZ=$BAZ; env | sort";
    let o = t.ud_env(
        &[
            ("TERM", "xterm-test"),
            ("SECRET", "host-only"),
            ("HV", "host-value"),
        ],
        &[
            "run",
            "--nobanner",
            "--env-file",
            &envf,
            "-e",
            "BAR=cli",
            "--env=HV",
            "-e",
            "1BAD=x",
            "ml",
            show_env,
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let out = stdout(&o);
    let first = out.lines().next().unwrap();
    // -e over --env-file over the image's Env (docker; upstream lets the image win over the file).
    assert_eq!(first, "FOO=from-file BAR=cli BAZ=from-file");
    let has = |kv: &str| out.lines().any(|l| l == kv);
    for kv in [
        "HV=host-value",
        "TERM=xterm-test",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "USER=root",
        "LOGNAME=root",
        "HOME=/root",
        "container_names=ml",
        "container_execmode=P1",
        &format!("container_uuid={id}"),
        &format!("container_root={}", root_of(&t, "ml").display()),
    ] {
        assert!(
            has(kv),
            "expected {kv} in the container's environment:\n{out}"
        );
    }
    assert!(
        !out.contains("SECRET"),
        "host variables must not leak:\n{out}"
    );
    assert!(
        stderr(&o).contains("1BAD"),
        "invalid name warned about\n{}",
        show(&o)
    );
    // Without -e/--env-file the image's value.
    assert_eq!(run_ok(&t, &["ml", "echo $FOO"]), "bar\n");
    // --hostenv passes the host's variables, but not its PATH.
    let o = t.ud_env(
        &[("SECRET", "host-only")],
        &["run", "--nobanner", "--hostenv", "ml", "echo $SECRET $PATH"],
    );
    assert_eq!(
        stdout(&o),
        "host-only /usr/sbin:/usr/bin:/sbin:/bin\n",
        "{}",
        show(&o)
    );
    // A missing env file is an error.
    run_err(
        &t,
        &["--env-file=/nonexistent.env", "ml", "true"],
        "env file",
    );
}

#[test]
fn users_and_passwd() {
    let (t, _) = setup();
    // (busybox's id prints groups= only when there are supplementary groups.)
    assert!(run_ok(&t, &["ml", "id"]).starts_with("uid=0(root) gid=0(root)"));
    assert_eq!(
        run_ok(
            &t,
            &[
                "--user=nobody",
                "ml",
                "id -u; whoami; echo $HOME $USER; pwd"
            ]
        ),
        "65534\nnobody\n/nonexistent nobody\n/data\n"
    );
    let out = run_ok(
        &t,
        &[
            "-u",
            "1000:1001",
            "--nometa",
            "ml",
            "sh",
            "-c",
            "id -un; id -u; id -gn; id -g; echo $USER $HOME; pwd; grep 1000 /etc/passwd",
        ],
    );
    assert_eq!(
        out,
        "user1000\n1000\nuser1000\n1001\nuser1000 /\n/\nuser1000:x:1000:1001:udocker:/:/bin/sh\n"
    );
    assert_eq!(
        run_ok(&t, &["--user=4321", "ml", "id -u; id -g"]),
        "4321\n0\n"
    );
    // The container's own files are untouched.
    let passwd = fs::read_to_string(root_of(&t, "ml").join("etc/passwd")).unwrap();
    assert!(!passwd.contains("user1000"), "{passwd}");
    // --containerauth: the container's files as they are.
    assert_eq!(
        run_ok(&t, &["--containerauth", "ml", "cat /etc/passwd"]),
        passwd
    );
    // --hostauth: the host's database (the test user is in it).
    let (uid, _) = t.fx.uid_gid();
    let user = t.fx.get("FIX_USER");
    assert_eq!(
        run_ok(
            &t,
            &["--hostauth", &format!("--user={user}"), "ml", "id -u"]
        ),
        format!("{uid}\n")
    );
    run_err(&t, &["--user=nosuchuser", "ml", "id"], "user not found");
    run_err(&t, &["--user=a:b", "ml", "id"], "invalid user");
    run_err(&t, &["--user=-x", "ml", "id"], "invalid user");
}

#[test]
fn volumes_and_sysdirs() {
    let (t, _) = setup();
    let d = user_dir(&t, "vol");
    let ds = d.to_string_lossy().into_owned();
    let out = run_ok(
        &t,
        &[
            "-v",
            &format!("{ds}:/mnt/v"),
            "ml",
            "cat /mnt/v/hello.txt; echo new > /mnt/v/made.txt",
        ],
    );
    assert_eq!(out, "from the host\n");
    assert_eq!(fs::read_to_string(d.join("made.txt")).unwrap(), "new\n");
    // -v HOST: same path inside.
    assert_eq!(
        run_ok(&t, &["--volume", &ds, "ml", &format!("cat {ds}/hello.txt")]),
        "from the host\n"
    );
    // A file volume.
    assert_eq!(
        run_ok(
            &t,
            &[
                &format!("-v{ds}/hello.txt:/etc/motd"),
                "ml",
                "cat /etc/motd"
            ]
        ),
        "from the host\n"
    );
    // Sysdirs: /proc, /dev, /etc/hostname, /etc/hosts by default; --nosysdirs or --novol.
    let host_name = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let out = run_ok(&t, &["ml", "test -e /proc/self/status && echo proc; test -c /dev/null && echo dev; cat /etc/hostname; grep -c localhost /etc/hosts >/dev/null && echo hosts; hostname"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("proc"), "{out}");
    assert_eq!(lines.next(), Some("dev"), "{out}");
    if !host_name.is_empty() {
        assert_eq!(lines.next(), Some(host_name.trim()), "{out}");
    } else {
        lines.next();
    }
    assert_eq!(lines.next(), Some("hosts"), "{out}");
    assert!(
        lines.next().is_some_and(|h| !h.is_empty()),
        "hostname printed: {out}"
    );
    assert_eq!(
        run_ok(&t, &["--nosysdirs", "ml", "ls /proc | wc -l"]).trim(),
        "0"
    );
    assert_eq!(
        run_ok(
            &t,
            &[
                "--novol=/proc",
                "ml",
                "ls /proc | wc -l; test -c /dev/null && echo dev"
            ]
        ),
        "0\ndev\n"
    );
    let o = run(&t, &["--novol=/not-a-volume", "ml", "true"]);
    assert!(
        o.status.success() && stderr(&o).contains("/not-a-volume"),
        "{}",
        show(&o)
    );
    // Bad volumes: one-line errors.
    run_err(
        &t,
        &["-v", "/nonexistent-udocker-vol:/x", "ml", "true"],
        "invalid volume",
    );
    run_err(
        &t,
        &["-v", "relative/dir:/x", "ml", "true"],
        "host path must be absolute",
    );
    run_err(
        &t,
        &["-v", &format!("{ds}:relative"), "ml", "true"],
        "container path must be absolute",
    );
    run_err(&t, &["-v", &format!("{ds}:/"), "ml", "true"], "cannot be /");
    run_err(
        &t,
        &["-v", &format!("{ds}:/x:bogus"), "ml", "true"],
        "invalid volume",
    );
    // --bindhome: the host home at the same path, and $HOME.
    let home = t.home.to_string_lossy().into_owned();
    assert_eq!(
        run_ok(
            &t,
            &["--bindhome", "ml", "echo $HOME; cat $HOME/vol/hello.txt"]
        ),
        format!("{home}\nfrom the host\n")
    );
}

/// `-v HOST:CONT:ro` must refuse writes with EROFS.
#[test]
fn readonly_volume() {
    let (t, _) = setup();
    let d = user_dir(&t, "ro");
    let spec = format!("{}:/mnt/ro:ro", d.display());
    let o = run(&t, &["-v", &spec, "ml", "echo x > /mnt/ro/new.txt; echo rc=$?; touch /mnt/ro/hello.txt; echo rc=$?; rm /mnt/ro/hello.txt; echo rc=$?; mkdir /mnt/ro/d; echo rc=$?; cat /mnt/ro/hello.txt"]);
    let err = stderr(&o);
    let out = stdout(&o);
    assert!(!out.contains("rc=0"), "every write must fail\n{}", show(&o));
    assert!(
        err.contains("Read-only file system"),
        "EROFS expected\n{}",
        show(&o)
    );
    assert!(
        out.ends_with("from the host\n"),
        "reads still work\n{}",
        show(&o)
    );
    assert!(!d.join("new.txt").exists() && !d.join("d").exists() && d.join("hello.txt").exists());
    // Other volumes and the container itself stay writable.
    assert_eq!(
        run_ok(&t, &["-v", &spec, "ml", "echo w > /data/w; cat /data/w"]),
        "w\n"
    );
}

#[test]
fn workdir() {
    let (t, _) = setup();
    assert_eq!(run_ok(&t, &["ml", "pwd"]), "/data\n");
    assert_eq!(
        run_ok(&t, &["-w", "/opt", "ml", "pwd; cat keep"]),
        "/opt\nkeep\n"
    );
    assert_eq!(
        run_ok(&t, &["--workdir=/data/dir/..", "ml", "pwd"]),
        "/data\n"
    );
    let d = user_dir(&t, "wd");
    assert_eq!(
        run_ok(
            &t,
            &[
                "-v",
                &format!("{}:/mnt", d.display()),
                "-w",
                "/mnt",
                "ml",
                "cat hello.txt"
            ]
        ),
        "from the host\n"
    );
    run_err(
        &t,
        &["-w", "/nonexistent", "ml", "pwd"],
        "invalid working directory",
    );
    run_err(
        &t,
        &["-w", "data", "ml", "pwd"],
        "invalid working directory",
    );
    run_err(
        &t,
        &["-w", "/data/b", "ml", "pwd"],
        "invalid working directory",
    );
}

#[test]
fn exit_status_and_commands() {
    let (t, _) = setup();
    assert_eq!(run(&t, &["ml", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(&t, &["ml", "kill -9 $$"]).status.code(), Some(128 + 9));
    assert_eq!(
        run(&t, &["ml", "kill -TERM $$"]).status.code(),
        Some(128 + 15)
    );
    let o = run_err(
        &t,
        &["--entrypoint=", "ml", "nosuchcommand"],
        "command not found or has no execute bit set",
    );
    assert_eq!(o.status.code(), Some(127));
    // Not executable.
    let f = root_of(&t, "ml").join("data/script.sh");
    t.write_file(&f, b"#!/bin/sh\necho hi\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_err(
        &t,
        &["--entrypoint=", "ml", "/data/script.sh"],
        "command not found or has no execute bit set",
    );
    assert_eq!(o.status.code(), Some(126));
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(run_ok(&t, &["--entrypoint=", "ml", "./script.sh"]), "hi\n");
    // A directory is not a command; the host's programs are not visible.
    run_err(&t, &["--entrypoint=", "ml", "/data"], "command not found");
    run_err(
        &t,
        &["--entrypoint=", "ml", "/usr/bin/setpriv"],
        "command not found",
    );
}

#[test]
fn rm_and_pull_modes() {
    let (t, _) = setup();
    let img = multilayer(&t);
    assert_eq!(containers(&t), 1);
    // run IMAGE creates a container each time; --rm removes it afterwards.
    run_ok(&t, &[&img, "true"]);
    assert_eq!(containers(&t), 2);
    assert_eq!(run(&t, &["--rm", &img, "exit 3"]).status.code(), Some(3));
    assert_eq!(containers(&t), 2, "--rm removes the container");
    // --name with an image, then --pull=reuse runs the same container again.
    run_ok(&t, &["--name=web", "--pull=reuse", &img, "touch /marker"]);
    assert_eq!(containers(&t), 3);
    assert_eq!(
        run_ok(&t, &["--name=web", "--pull=reuse", &img, "ls /marker"]),
        "/marker\n"
    );
    assert_eq!(containers(&t), 3);
    run_err(&t, &["--name=web", &img, "true"], "already in use");
    assert_eq!(containers(&t), 3);
    // --pull=always pulls and makes exactly one container (upstream makes two).
    let o = run(
        &t,
        &["--pull=always", "--platform=linux/amd64", &img, "true"],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(containers(&t), 4);
    // --pull=never: the image must be local.
    let busybox = t.fx.get("BUSYBOX_REF");
    run_err(&t, &["--pull=never", &busybox, "true"], "--pull=never");
    assert_eq!(containers(&t), 4);
    // --pull=missing (default) pulls it.
    assert_eq!(
        run_ok(&t, &["--rm", &busybox, "echo", "pulled"]),
        "pulled\n"
    );
    assert_eq!(containers(&t), 4);
    run_err(&t, &["--pull=sometimes", &img, "true"], "invalid --pull");
    // A protected container survives --rm.
    t.ud_ok(&["protect", "web"]);
    run_ok(&t, &["--rm", "web", "true"]);
    assert_eq!(containers(&t), 4);
    // --rm on an existing container by name removes it and its name.
    run_ok(&t, &["--rm", "ml", "true"]);
    assert_eq!(containers(&t), 3);
    assert!(fs::symlink_metadata(t.udir.join("containers/ml")).is_err());
}

#[test]
fn bad_input() {
    let (t, _) = setup();
    run_err(
        &t,
        &["0badc0de-0000-4000-8000-000000000000", "true"],
        "container not found",
    );
    let o = t.ud(&["run"]);
    assert!(
        !o.status.success() && stderr(&o).contains("usage"),
        "{}",
        show(&o)
    );
    run_err(&t, &["--cpuset-cpus=x", "ml", "true"], "cpuset");
    run_err(
        &t,
        &["--hostauth", "--containerauth", "ml", "true"],
        "exclude",
    );
    run_err(
        &t,
        &["--location=/nonexistent-root", "true"],
        "not a directory",
    );
    let o = t.ud(&["run", "--bogus", "ml"]);
    assert!(
        !o.status.success() && stderr(&o).contains("syntax error"),
        "{}",
        show(&o)
    );
    // `run --help` is run's help; after the container it belongs to the command.
    assert!(t.ud_ok(&["run", "--help"]).contains("--entrypoint"));
    assert_eq!(
        run_ok(&t, &["--entrypoint=", "ml", "echo", "--help"]),
        "--help\n"
    );
}

#[test]
fn execution_modes() {
    let (t, _) = setup();
    let out = t.ud_ok(&["setup", "--execmode=P2", "ml"]);
    assert!(out.contains("execmode: P2"), "{out}");
    assert_eq!(
        run_ok(&t, &["ml", "echo $container_execmode; cat /data/b"]),
        "P2\nb\n"
    );
    t.ud_ok(&["setup", "--execmode=P1", "ml"]);
    assert_eq!(run_ok(&t, &["ml", "echo $container_execmode"]), "P1\n");
    // F2 needs a loader to patch: busybox is static, so setup fails and the mode stays.
    let err = t.ud_fail(&["setup", "--execmode=F2", "ml"]);
    assert!(err.contains("no x86_64 loader"), "{err}");
    assert_eq!(run_ok(&t, &["ml", "echo $container_execmode"]), "P1\n");
    for m in ["F3", "F4"] {
        let err = t.ud_fail(&["setup", &format!("--execmode={m}"), "ml"]);
        assert!(err.contains("no x86_64 loader"), "{err}");
        assert_eq!(run_ok(&t, &["ml", "echo $container_execmode"]), "P1\n");
    }
    // The default mode, from the environment, for containers without their own.
    let id = t.ud_ok(&["create", &multilayer(&t)]).trim().to_string();
    let o = t.ud_env(
        &[("UDOCKER_DEFAULT_EXECUTION_MODE", "F3")],
        &["run", "--nobanner", &id, "true"],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("no x86_64 loader"),
        "{}",
        show(&o)
    );
    let o = t.ud_env(
        &[("UDOCKER_DEFAULT_EXECUTION_MODE", "P2")],
        &["run", "--nobanner", &id, "echo $container_execmode"],
    );
    assert_eq!(stdout(&o), "P2\n", "{}", show(&o));
}

#[test]
fn kernel_cpuset_location_and_ignored_options() {
    let (t, _) = setup();
    assert_eq!(run_ok(&t, &["--kernel=9.8.7", "ml", "uname -r"]), "9.8.7\n");
    let cpus = run_ok(
        &t,
        &[
            "--cpuset-cpus=0",
            "ml",
            "grep Cpus_allowed_list /proc/self/status",
        ],
    );
    assert_eq!(cpus.split_whitespace().last(), Some("0"), "{cpus}");
    // --location: a root file system directory, no metadata.
    let root = root_of(&t, "ml");
    let out = run_ok(
        &t,
        &[
            &format!("--location={}", root.display()),
            "/bin/sh",
            "-c",
            "pwd; cat /opt/keep; echo ${FOO:-nometa}",
        ],
    );
    assert_eq!(out, "/\nkeep\nnometa\n");
    // Accepted: -i -t -a, combined -it; -p/-P and the docker-only options with warnings.
    let o = run(
        &t,
        &[
            "-it",
            "-a",
            "-p",
            "8080:80",
            "-P",
            "--dns=1.1.1.1",
            "--dns-search=x",
            "--device=/dev/null",
            "--volumes-from=x",
            "ml",
            "echo ok",
        ],
    );
    assert_eq!(stdout(&o), "ok\n", "{}", show(&o));
    let err = stderr(&o);
    assert!(
        !err.contains("ports are not remapped"),
        "P1 remaps -p ports: {err}"
    );
    for k in ["--dns", "--dns-search", "--device", "--volumes-from"] {
        assert!(err.contains(&format!("option {k} is ignored")), "{err}");
    }
}

/// debian:bookworm: dynamic programs, bash as the default shell, coreutils' id.
#[test]
fn debian_users_and_default_shell() {
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    t.ud_ok(&["create", "--name=deb", &img]);
    assert_eq!(
        run_ok(&t, &["deb", "id"]),
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    assert_eq!(
        run_ok(&t, &["--user=1000:1001", "deb", "id"]),
        "uid=1000(user1000) gid=1001(user1000) groups=1001(user1000)\n"
    );
    assert_eq!(
        run_ok(
            &t,
            &[
                "-u",
                "daemon",
                "deb",
                "bash",
                "-c",
                "id -un; echo $HOME; pwd"
            ]
        ),
        "daemon\n/usr/sbin\n/usr/sbin\n"
    );
    // The image's Cmd is bash: stdin is its script.
    let o = t.ud_with_stdin(
        b"echo $BASH_VERSION | cut -d. -f1; ls -ld /root | cut -c1\n",
        &["run", "--nobanner", "deb"],
    );
    assert_eq!(stdout(&o), "5\nd\n", "{}", show(&o));
    let o = t.ud_with_stdin(b"echo $0\n", &["run", "--nobanner", "--entrypoint=", "deb"]);
    assert!(
        stderr(&o).contains("no command given, running /usr/bin/bash")
            || stderr(&o).contains("running /bin/bash"),
        "{}",
        show(&o)
    );
    assert!(o.status.success(), "{}", show(&o));
}

// ---------------------------------------------------------------------------------------------
// Terminal and signals
// ---------------------------------------------------------------------------------------------

#[test]
fn interactive_shell_in_a_terminal() {
    let (t, _) = setup();
    let status_file = t.home.join("status");
    let script = format!(
        "{}; echo $? > {}; sleep 60",
        shell_cmd(
            &t,
            &[],
            &["run", "-it", "--nobanner", "--entrypoint=", "ml", "sh"]
        ),
        status_file.display()
    );
    let tm = Tmux {
        socket: format!("udocker-run-test-{}", std::process::id()),
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
    tm.cmd(&["send-keys", "-t", "t", "echo $((6*7)); tty; id -u", "Enter"]);
    // tty's answer comes a moment after 42: wait for it (a timeout fails the test).
    tm.wait_for("42");
    let p = tm.wait_for("/dev/pts/");
    assert!(p.contains("/dev/pts/"), "a terminal inside:\n{p}");
    // Ctrl-C interrupts the foreground program, not the shell.
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
            "the shell did not exit:\n{}",
            tm.pane()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(fs::read_to_string(&status_file).unwrap().trim(), "5");
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

#[test]
fn sigterm_reaches_the_container() {
    let (t, _) = setup();
    let n = 20000 + std::process::id() % 10000;
    // A trap: the container's handler runs and its status is run's.
    let script = format!(
        "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done; : {n}"
    );
    let mut ch = t.spawn(&["run", "--nobanner", "ml", &script]);
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ch.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = ch.wait().unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got TERM\n");
    assert_eq!(status.code(), Some(3));
    // No trap: the container dies of SIGTERM, and nothing it started is left running.
    let script = format!("sleep {n} & echo ready; sleep {n}");
    let mut ch = t.spawn(&["run", "--nobanner", "ml", &script]);
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sleeps(n).len(), 2, "both sleeps run");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ch.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = ch.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    let start = Instant::now();
    loop {
        let left = sleeps(n);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "left running after udocker exited: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls on a file descriptor (fchmod, futimens) of a file in a `:ro` volume must fail with
/// EROFS as on a read-only mount; today the tracer only checks path-carrying calls.
#[test]
fn readonly_volume_fd_metadata_calls() {
    let t = TestEnv::new();
    let img = t.fx.get("DEBIAN_REF");
    t.ud_ok(&["pull", &img]);
    t.ud_ok(&["create", "--name=deb", &img]);
    let d = user_dir(&t, "ro");
    fs::set_permissions(d.join("hello.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let spec = format!("{}:/mnt/ro:ro", d.display());
    let script = r#"open(F, "<", "/mnt/ro/hello.txt") or die "open: $!";
        print "fchmod=", (chmod(0777, \*F) ? "ok" : "$!"), "\n";
        print "futimens=", (utime(1, 1, \*F) ? "ok" : "$!"), "\n";"#;
    let out = run_ok(&t, &["-v", &spec, "deb", "perl", "-e", script]);
    assert_eq!(
        out,
        "fchmod=Read-only file system\nfutimens=Read-only file system\n"
    );
    let m = fs::metadata(d.join("hello.txt")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o777,
        0o644,
        "host file mode changed"
    );
}

/// A free TCP port on the loopback address (bound and released; the kernel does not hand it out
/// again at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `-p HOST:CONT` in P1: the server in the container binds its privileged port 80, the tracer
/// binds HOST instead; a host client reaches it on HOST, a client inside on 80, and the server
/// sees its own port in getsockname (busybox nc prints nothing of it, so the probe reads
/// /proc/net/tcp for the host side). In F1/R1 the same option only warns.
#[test]
fn published_ports_are_remapped_in_p_modes() {
    use std::io::{Read, Write as _};
    let (t, _) = setup();
    let hp = free_port();
    let map = format!("{hp}:80");
    // Server: answers one connection on guest port 80 with "hello".
    let mut server = t.spawn(&[
        "run",
        "--nobanner",
        "-p",
        &map,
        "--entrypoint=",
        "ml",
        "/bin/sh",
        "-c",
        "echo hello | nc -l -p 80",
    ]);
    let mut got = String::new();
    let ok = wait_until(
        Duration::from_secs(10),
        || match std::net::TcpStream::connect(("127.0.0.1", hp)) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = c.write_all(b"x\n");
                let _ = c.read_to_string(&mut got);
                true
            }
            Err(_) => false,
        },
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok, "nothing listens on host port {hp}");
    assert_eq!(got, "hello\n");

    // Inside: a server on 80 and a client to 127.0.0.1:80, both remapped.
    let hp2 = free_port();
    let out = run_ok(
        &t,
        &[
            "-p",
            &format!("127.0.0.1:{hp2}:80/tcp"),
            "--entrypoint=",
            "ml",
            "/bin/sh",
            "-c",
            "nc -l -p 80 > /tmp/got & for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
             sleep 0.3; echo ping | nc -w 2 127.0.0.1 80 2>/dev/null && break; done; wait; cat /tmp/got",
        ],
    );
    assert_eq!(out, "ping\n");

    // Bad mapping: one line, non-zero.
    run_err(
        &t,
        &["-p", "80:x", "ml", "true"],
        "invalid port mapping 80:x",
    );
}
