//! Planning tests against a small root file system in a temporary directory.

use super::*;
use std::os::unix::fs::symlink;

struct World {
    _d: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    etc: PathBuf,
    vol: PathBuf,
}

fn exe(p: &Path) {
    fs::write(p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn world() -> World {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("ROOT");
    for sub in ["bin", "usr/bin", "etc", "data", "home/alice", "root", "opt"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    exe(&root.join("bin/busybox"));
    symlink("busybox", root.join("bin/sh")).unwrap();
    symlink("/bin/busybox", root.join("usr/bin/env")).unwrap();
    fs::write(root.join("bin/noexec"), b"data").unwrap();
    fs::set_permissions(root.join("bin/noexec"), fs::Permissions::from_mode(0o644)).unwrap();
    // An absolute symlink to a directory: must resolve inside ROOT, not on the host.
    symlink("/data", root.join("opt/data")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nalice:x:1000:\n").unwrap();
    let state = d.path().join("state");
    fs::create_dir(&state).unwrap();
    let etc = d.path().join("hostetc");
    fs::create_dir(&etc).unwrap();
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nhostie:x:4000:4000::/h:/bin/sh\n",
    )
    .unwrap();
    fs::write(etc.join("group"), "root:x:0:\n").unwrap();
    let vol = d.path().join("vol");
    fs::create_dir_all(vol.join("sub")).unwrap();
    exe(&vol.join("tool"));
    World {
        root,
        state,
        etc,
        vol,
        _d: d,
    }
}

fn target(w: &World, meta: ImageMeta) -> Target {
    Target {
        id: "abcdef01-2345-4678-9abc-def012345678".into(),
        names: vec!["web".into()],
        root: w.root.clone(),
        state_dir: w.state.clone(),
        meta,
        mode: ExecMode::P1,
    }
}

fn host(w: &World) -> Host {
    Host {
        env: vec![
            ("TERM".into(), "xterm".into()),
            ("PATH".into(), "/host".into()),
        ],
        user: "me".into(),
        home: w.vol.clone(),
        nodename: "node1".into(),
        etc: w.etc.clone(),
        uid: 1000,
        gid: 1000,
    }
}

fn multilayer() -> ImageMeta {
    ImageMeta::from_config(&serde_json::json!({
        "architecture": "amd64",
        "config": {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["echo hello"],
            "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"],
            "WorkingDir": "/data",
            "User": null
        },
        "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD"], "User": "alice"}
    }))
}

fn req(args: &[&str]) -> RunRequest {
    RunRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        nosysdirs: true,
        ..Default::default()
    }
}

#[test]
fn metadata() {
    let m = multilayer();
    assert_eq!(m.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
    assert_eq!(m.cmd, Some(vec!["echo hello".into()]));
    assert_eq!(m.workdir.as_deref(), Some("/data"));
    assert_eq!(
        m.user, None,
        "container_config is not consulted when config exists"
    );
    let ports = ImageMeta::from_config(&serde_json::json!({"config": {"ExposedPorts":
        {"443/tcp": {}, "80/tcp": {}, "53/udp": {}, "x/tcp": {}}}}));
    assert_eq!(
        ports.exposed_ports,
        vec![(53, "udp".into()), (80, "tcp".into()), (443, "tcp".into())]
    );
    let old = ImageMeta::from_config(
        &serde_json::json!({"container_config": {"cmd": "ls -l /", "user": "1:2"}}),
    );
    assert_eq!(old.cmd, Some(vec!["ls".into(), "-l".into(), "/".into()]));
    assert_eq!(old.user.as_deref(), Some("1:2"));
    assert_eq!(
        ImageMeta::from_config(&serde_json::json!({})),
        ImageMeta::default()
    );
    let e = ImageMeta::from_config(&serde_json::json!({"config": {"Entrypoint": [], "Cmd": null}}));
    assert_eq!((e.entrypoint, e.cmd), (None, None));
}

#[test]
fn entrypoint_and_cmd() {
    let w = world();
    let t = target(&w, multilayer());
    let h = host(&w);
    let p = prepare(&req(&[]), &t, &h).unwrap();
    assert_eq!(p.argv, ["/bin/sh", "-c", "echo hello"]);
    assert_eq!(p.cwd, "/data");
    let p = prepare(&req(&["echo hi"]), &t, &h).unwrap();
    assert_eq!(p.argv, ["/bin/sh", "-c", "echo hi"]);
    // --entrypoint replaces the image's and drops its Cmd.
    let mut r = req(&[]);
    r.entrypoint = Some("env -0".into());
    assert_eq!(prepare(&r, &t, &h).unwrap().argv, ["/usr/bin/env", "-0"]);
    // --entrypoint="" drops both: the arguments are the command.
    let mut r = req(&["busybox", "true"]);
    r.entrypoint = Some(String::new());
    assert_eq!(prepare(&r, &t, &h).unwrap().argv, ["/bin/busybox", "true"]);
    // Nothing at all: a shell, with a warning.
    let mut r = req(&[]);
    r.entrypoint = Some(String::new());
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!(p.argv, ["/bin/sh"]);
    assert!(p.warnings.iter().any(|x| x.contains("no command")));
    // --nometa: no entrypoint, no workdir, no image Env.
    let mut r = req(&["sh"]);
    r.nometa = true;
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!((p.argv.join(" "), p.cwd.as_str()), ("/bin/sh".into(), "/"));
    assert!(!p.env.contains_key("FOO"));
    assert_eq!(p.env["PATH"], env::DEFAULT_PATH);
}

#[test]
fn command_lookup() {
    let w = world();
    let t = target(&w, ImageMeta::default());
    let h = host(&w);
    let tr = translator(&w.root, &[]);
    assert_eq!(
        find_command(&tr, "sh", "/", "/usr/bin:/bin").unwrap(),
        "/bin/sh"
    );
    assert_eq!(
        find_command(&tr, "env", "/", "relative:/usr/bin").unwrap(),
        "/usr/bin/env"
    );
    assert_eq!(
        find_command(&tr, "./busybox", "/bin", "").unwrap(),
        "/bin/busybox"
    );
    assert_eq!(
        find_command(&tr, "../bin/sh", "/data", "").unwrap(),
        "/bin/sh"
    );
    assert!(matches!(
        find_command(&tr, "nope", "/", "/bin"),
        Err(EngineError::CommandNotFound(_))
    ));
    assert!(matches!(
        find_command(&tr, "noexec", "/", "/bin"),
        Err(EngineError::NotExecutable(_))
    ));
    assert!(matches!(
        find_command(&tr, "/bin", "/", "/bin"),
        Err(EngineError::CommandNotFound(_))
    ));
    // The host's /bin/sh does not count: lookups stay inside ROOT.
    assert!(find_command(&tr, "/usr/bin/python3-not-here", "/", "").is_err());
    // Through a volume.
    let mut r = req(&["/mnt/tool"]);
    r.volumes = vec![VolumeSpec::parse(&format!("{}:/mnt", w.vol.display())).unwrap()];
    assert_eq!(prepare(&r, &t, &h).unwrap().argv, ["/mnt/tool"]);
    let mut r = req(&["tool"]);
    r.volumes = vec![VolumeSpec::parse(&format!("{}:/mnt", w.vol.display())).unwrap()];
    r.env = vec!["PATH=/mnt".into()];
    assert_eq!(prepare(&r, &t, &h).unwrap().argv, ["/mnt/tool"]);
}

#[test]
fn workdir() {
    let w = world();
    let t = target(&w, ImageMeta::default());
    let h = host(&w);
    let mut r = req(&["sh"]);
    r.workdir = Some("/opt/data".into());
    assert_eq!(prepare(&r, &t, &h).unwrap().cwd, "/opt/data");
    for bad in ["/nope", "data", "/bin/busybox"] {
        r.workdir = Some(bad.into());
        assert!(
            matches!(prepare(&r, &t, &h), Err(EngineError::InvalidWorkdir(_))),
            "{bad}"
        );
    }
    r.workdir = Some("/mnt/sub".into());
    r.volumes = vec![VolumeSpec::parse(&format!("{}:/mnt", w.vol.display())).unwrap()];
    assert_eq!(prepare(&r, &t, &h).unwrap().cwd, "/mnt/sub");
    // A missing image WorkingDir is created, as docker does.
    let t2 = target(
        &w,
        ImageMeta {
            workdir: Some("/new/dir".into()),
            ..Default::default()
        },
    );
    assert_eq!(prepare(&req(&["sh"]), &t2, &h).unwrap().cwd, "/new/dir");
    assert!(w.root.join("new/dir").is_dir());
    // A non-root user starts in its home.
    let mut r = req(&["sh"]);
    r.user = Some(users::UserSpec::Name("alice".into()));
    assert_eq!(prepare(&r, &t, &h).unwrap().cwd, "/home/alice");
}

#[test]
fn users_and_auth_files() {
    let w = world();
    let t = target(&w, ImageMeta::default());
    let h = host(&w);
    let p = prepare(&req(&["sh"]), &t, &h).unwrap();
    assert_eq!((p.user.entry.uid, p.user.entry.gid), (0, 0));
    assert_eq!(p.env["USER"], "root");
    assert_eq!(p.env["HOME"], "/root");
    let pw = p
        .volumes
        .iter()
        .find(|v| v.guest == "/etc/passwd")
        .expect("passwd bound");
    assert_eq!(pw.origin, Origin::Auth);
    assert!(pw.host.starts_with(&w.state));

    let mut r = req(&["sh"]);
    r.user = Some(users::UserSpec::UidGid(1234, 5678));
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!((p.user.entry.uid, p.user.entry.gid), (1234, 5678));
    assert_eq!(p.env["USER"], "user1234");
    let pw = p.volumes.iter().find(|v| v.guest == "/etc/passwd").unwrap();
    let text = fs::read_to_string(&pw.host).unwrap();
    assert!(text.starts_with("root:x:0:0:") && text.contains("\nuser1234:x:1234:5678:"));
    let gr = p.volumes.iter().find(|v| v.guest == "/etc/group").unwrap();
    assert!(fs::read_to_string(&gr.host)
        .unwrap()
        .contains("user1234:x:5678:"));
    // The container's own file is untouched.
    assert!(!fs::read_to_string(w.root.join("etc/passwd"))
        .unwrap()
        .contains("user1234"));

    r.user = Some(users::UserSpec::Name("bob".into()));
    assert!(matches!(
        prepare(&r, &t, &h),
        Err(EngineError::UserNotFound(_))
    ));
    // --hostauth: the host's database.
    r.user = Some(users::UserSpec::Name("hostie".into()));
    r.hostauth = true;
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!(p.user.entry.uid, 4000);
    // --containerauth: nothing bound.
    let mut r = req(&["sh"]);
    r.containerauth = true;
    let p = prepare(&r, &t, &h).unwrap();
    assert!(!p.volumes.iter().any(|v| v.origin == Origin::Auth));
    // The image's User.
    let t2 = target(
        &w,
        ImageMeta {
            user: Some("alice".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        prepare(&req(&["sh"]), &t2, &h).unwrap().user.entry.uid,
        1000
    );
    // --bindhome: the host home at the same path, and HOME.
    let mut r = req(&["sh"]);
    r.bindhome = true;
    let p = prepare(&r, &t, &h).unwrap();
    let home = w.vol.to_string_lossy().into_owned();
    assert_eq!(p.env["HOME"], home);
    assert!(p.volumes.iter().any(|v| v.guest == home));
}

#[test]
fn volumes_and_sysdirs() {
    let w = world();
    let t = target(&w, ImageMeta::default());
    let h = host(&w);
    let mut r = req(&["sh"]);
    r.nosysdirs = false;
    let p = prepare(&r, &t, &h).unwrap();
    let guests: Vec<&str> = p.volumes.iter().map(|v| v.guest.as_str()).collect();
    for g in [
        "/dev",
        "/proc",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/passwd",
    ] {
        assert!(guests.contains(&g), "{g} in {guests:?}");
    }
    // The host (here: a fake /etc) has no hosts/hostname: ours are made up.
    assert_eq!(
        fs::read_to_string(w.state.join("hostname")).unwrap(),
        "node1\n"
    );
    assert!(fs::read_to_string(w.state.join("hosts"))
        .unwrap()
        .contains("localhost"));
    r.novol = vec!["/proc".into(), "/nothing".into()];
    let p = prepare(&r, &t, &h).unwrap();
    assert!(!p.volumes.iter().any(|v| v.guest == "/proc"));
    assert!(p.warnings.iter().any(|x| x.contains("/nothing")));

    let v = format!("{}:/mnt:ro", w.vol.display());
    let mut r = req(&["sh"]);
    r.volumes = vec![VolumeSpec::parse(&v).unwrap()];
    let p = prepare(&r, &t, &h).unwrap();
    let m = p.volumes.iter().find(|v| v.guest == "/mnt").unwrap();
    assert!(m.readonly && m.origin == Origin::User);
    r.novol = vec![v];
    assert!(!prepare(&r, &t, &h)
        .unwrap()
        .volumes
        .iter()
        .any(|v| v.guest == "/mnt"));
    // A missing host path is an error.
    r.volumes = vec![VolumeSpec::parse("/nonexistent-udocker-test:/x").unwrap()];
    r.novol.clear();
    assert!(matches!(
        prepare(&r, &t, &h),
        Err(EngineError::InvalidVolume(..))
    ));
}

#[test]
fn volume_specs() {
    let v = VolumeSpec::parse("/a").unwrap();
    assert_eq!(
        (v.host.as_str(), v.guest.as_str(), v.readonly),
        ("/a", "/a", false)
    );
    let v = VolumeSpec::parse("/a:/b:ro").unwrap();
    assert_eq!(
        (v.host.as_str(), v.guest.as_str(), v.readonly),
        ("/a", "/b", true)
    );
    assert!(!VolumeSpec::parse("/a:/b:rw").unwrap().readonly);
    for bad in [
        "a:/b",
        "/a:b",
        "/a:/",
        "/a:/b/..",
        "/a:/b:rx",
        "/a:/b:ro:x",
        "",
        "/a:",
    ] {
        assert!(VolumeSpec::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn modes_and_cpusets() {
    assert_eq!(ExecMode::parse("p1").unwrap(), ExecMode::P1);
    assert_eq!(ExecMode::parse("P2").unwrap(), ExecMode::P2);
    assert_eq!(ExecMode::parse("f3").unwrap(), ExecMode::F3);
    assert_eq!(ExecMode::parse("F4").unwrap(), ExecMode::F4);
    assert!(matches!(
        ExecMode::parse("Z9"),
        Err(EngineError::InvalidMode(_))
    ));
    assert_eq!(parse_cpuset("0").unwrap(), [0]);
    assert_eq!(parse_cpuset("3,0-2,1").unwrap(), [0, 1, 2, 3]);
    for bad in ["", "a", "2-1", "1,", "-1", "99999", "0-5000"] {
        assert!(parse_cpuset(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn environment_in_plan() {
    let w = world();
    let t = target(&w, multilayer());
    let h = host(&w);
    let mut r = req(&[]);
    r.env = vec!["FOO=cli".into(), "BAR=cli".into()];
    r.env_file_lines = env::env_file_lines("FOO=file\nBAZ=file\n");
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!(p.env["FOO"], "cli");
    assert_eq!(p.env["BAZ"], "file");
    assert_eq!(p.env["PATH"], "/usr/sbin:/usr/bin:/sbin:/bin");
    assert_eq!(p.env["TERM"], "xterm");
    assert_eq!(p.env["container_names"], "web");
    assert_eq!(p.env["container_execmode"], "P1");
    assert_eq!(p.env["container_ruser"], "me");
    r.env = vec![];
    let p = prepare(&r, &t, &h).unwrap();
    assert_eq!(
        p.env["FOO"], "file",
        "--env-file wins over the image's Env (docker)"
    );
}

#[test]
fn mpi_rank_context() {
    let w = world();
    let mut h = host(&w);
    let srv = w.vol.join("sub");
    let srv_s = srv.to_string_lossy().into_owned();
    h.env.extend([
        ("PMIX_RANK".into(), "1".into()),
        ("PMIX_SERVER_TMPDIR".into(), srv_s.clone()),
        ("SLURM_JOB_ID".into(), "42".into()),
        ("OMPI_COMM_WORLD_RANK".into(), "1".into()),
        ("OPAL_PREFIX".into(), "/usr".into()),
    ]);
    assert_eq!(
        Launch::from_env(&h.env),
        Launch {
            mpi: true,
            pmix: true,
            job: true
        }
    );
    let mut r = req(&["/bin/sh"]);
    r.nosysdirs = false;
    let plan = prepare(&r, &target(&w, ImageMeta::default()), &h).unwrap();
    // The real ids under PMIx (its peer-credential check), not the container's root.
    assert_eq!((plan.user.entry.uid, plan.user.entry.gid), (1000, 1000));
    assert_eq!(plan.user.entry.name, "alice");
    for k in [
        "PMIX_RANK",
        "PMIX_SERVER_TMPDIR",
        "SLURM_JOB_ID",
        "OMPI_COMM_WORLD_RANK",
    ] {
        assert!(plan.env.contains_key(k), "{k} passes without --hostenv");
    }
    assert!(!plan.env.contains_key("OPAL_PREFIX"));
    let guests: Vec<&str> = plan.volumes.iter().map(|v| v.guest.as_str()).collect();
    assert!(guests.contains(&"/tmp"), "{guests:?}");
    let canon = fs::canonicalize(&srv).unwrap();
    if !canon.starts_with("/tmp") {
        assert!(guests.contains(&canon.to_str().unwrap()), "{guests:?}");
    }
    // --user wins; --nosysdirs binds nothing.
    let mut r = req(&["/bin/sh"]);
    r.user = Some(UserSpec::Uid(0));
    r.nosysdirs = true;
    let plan = prepare(&r, &target(&w, ImageMeta::default()), &h).unwrap();
    assert_eq!(plan.user.entry.uid, 0);
    assert!(!plan.volumes.iter().any(|v| v.guest == "/tmp"));
    // Outside an MPI job nothing changes.
    r.user = None;
    r.nosysdirs = false;
    let plan = prepare(&r, &target(&w, ImageMeta::default()), &host(&w)).unwrap();
    assert_eq!(plan.user.entry.uid, 0);
    assert!(!plan.volumes.iter().any(|v| v.guest == "/tmp"));
}

#[test]
fn mpi_dirs_dedup() {
    let env = vec![
        ("PMIX_SYSTEM_TMPDIR".to_string(), "/tmp".to_string()),
        ("PMIX_SERVER_TMPDIR".to_string(), "relative".to_string()),
        (
            "PMIX_DSTORE_21_BASE_PATH".to_string(),
            "/nonexistent/x".to_string(),
        ),
    ];
    let tmp = fs::canonicalize("/tmp").unwrap();
    let dirs = mpi_dirs(&env);
    assert_eq!(dirs.iter().filter(|d| **d == tmp).count(), 1, "{dirs:?}");
    assert!(
        !dirs.iter().any(|d| d.starts_with("/nonexistent")),
        "{dirs:?}"
    );
}
