//! The OCI spec, the runtime lookup and (here too, for want of a runtime to run) the S1
//! command line, from hand-made plans.

use super::super::singularity;
use super::super::users::{PasswdEntry, RunUser};
use super::super::{ExecMode, Origin, Plan, Volume};
use super::*;
use std::collections::BTreeMap;

fn plan(mode: ExecMode, uid: u32) -> Plan {
    let vol = |h: &str, g: &str, ro: bool, origin: Origin| Volume {
        host: PathBuf::from(h),
        guest: g.into(),
        readonly: ro,
        names: vec![h.into()],
        origin,
    };
    Plan {
        root: PathBuf::from("/c/ROOT"),
        volumes: vec![
            vol("/proc", "/proc", false, Origin::Sysdir),
            vol("/sys", "/sys", false, Origin::Sysdir),
            vol("/dev", "/dev", false, Origin::Sysdir),
            vol(
                "/etc/resolv.conf",
                "/etc/resolv.conf",
                false,
                Origin::Sysdir,
            ),
            vol("/home/u/data", "/data", true, Origin::User),
            vol("/c/passwd.x", "/etc/passwd", false, Origin::Auth),
        ],
        cwd: "/data".into(),
        user: RunUser {
            entry: PasswdEntry {
                name: if uid == 0 {
                    "root".into()
                } else {
                    "alice".into()
                },
                uid,
                gid: uid,
                gecos: String::new(),
                home: "/".into(),
                shell: "/bin/sh".into(),
            },
            synthesized: false,
        },
        argv: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        env: BTreeMap::from([("FOO".to_string(), "bar".to_string())]),
        kernel: None,
        cpus: None,
        mode,
        devices: Vec::new(),
        ports: Vec::new(),
        netcoop: false,
        warnings: Vec::new(),
    }
}

fn input<'a>(p: &'a Plan, kind: Kind, sb: Option<&'a SelfBinary>) -> SpecInput<'a> {
    SpecInput {
        plan: p,
        kind,
        terminal: false,
        hostname: "node1".into(),
        host_uid: 1001,
        host_gid: 1002,
        self_binary: sb,
        devices: vec![(PathBuf::from("/dev/fuse"), "/dev/fuse".into())],
        skip: Vec::new(),
    }
}

fn mount<'a>(s: &'a Value, dst: &str) -> &'a Value {
    s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == dst)
        .unwrap_or_else(|| panic!("no mount at {dst}"))
}

#[test]
fn r1_spec() {
    let p = plan(ExecMode::R1, 0);
    let (s, w) = spec(&input(&p, Kind::Runc, None));
    assert!(w.is_empty());
    assert_eq!(s["process"]["args"], json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(s["process"]["env"], json!(["FOO=bar"]));
    assert_eq!(s["process"]["cwd"], "/data");
    assert_eq!(s["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(s["root"], json!({"path": "/c/ROOT", "readonly": false}));
    assert_eq!(s["hostname"], "node1");
    assert_eq!(
        s["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 1001, "size": 1}])
    );
    assert_eq!(
        s["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": 1002, "size": 1}])
    );
    let ns: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        ns,
        ["user", "mount", "ipc", "uts"],
        "host network, host pids"
    );
    assert_eq!(mount(&s, "/proc")["type"], "bind");
    assert_eq!(mount(&s, "/dev")["type"], "tmpfs");
    assert_eq!(mount(&s, "/dev/pts")["type"], "devpts");
    assert_eq!(mount(&s, "/sys")["options"][4], "ro");
    assert_eq!(
        mount(&s, "/data")["options"],
        json!(["rbind", "nosuid", "nodev", "ro"])
    );
    assert_eq!(mount(&s, "/data")["source"], "/home/u/data");
    assert_eq!(mount(&s, "/etc/passwd")["source"], "/c/passwd.x");
    assert_eq!(mount(&s, "/etc/resolv.conf")["options"][3], "rw");
    assert_eq!(mount(&s, "/dev/fuse")["source"], "/dev/fuse");
    let dests: Vec<&str> = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(dests.iter().filter(|d| **d == "/proc").count(), 1);
    assert_eq!(dests.iter().filter(|d| **d == "/dev").count(), 1);
    assert_eq!(
        s["process"]["capabilities"]["effective"],
        json!(CAPABILITIES)
    );
}

#[test]
fn user_mapping_per_runtime() {
    let p = plan(ExecMode::R1, 1000);
    // runc needs root mapped: the user runs as root, with a warning.
    let (s, w) = spec(&input(&p, Kind::Runc, None));
    assert_eq!(s["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert!(w[0].contains("runs as root"), "{w:?}");
    // crun maps the requested id to the user (root of the namespace crun runs in).
    let mut i = input(&p, Kind::Crun, None);
    i.host_uid = 0;
    i.host_gid = 0;
    let (s, w) = spec(&i);
    assert!(w.is_empty());
    assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 1000}));
    assert_eq!(
        s["linux"]["uidMappings"],
        json!([{"containerID": 1000, "hostID": 0, "size": 1}])
    );
    assert_eq!(s["process"]["capabilities"]["effective"], json!([]));
}

#[test]
fn r2_r3_run_the_tracer_inside() {
    let sb = SelfBinary {
        binds: vec![
            (PathBuf::from("/usr/bin/udocker"), SELF_GUEST.into()),
            (
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
                "/.udocker/lib/ld-linux-x86-64.so.2".into(),
            ),
        ],
        prefix: vec![
            "/.udocker/lib/ld-linux-x86-64.so.2".into(),
            "--library-path".into(),
            "/.udocker/lib".into(),
            SELF_GUEST.into(),
        ],
    };
    let p = plan(ExecMode::R2, 1000);
    let (s, w) = spec(&input(&p, Kind::Runc, Some(&sb)));
    assert!(w.is_empty(), "the tracer fakes the user: {w:?}");
    assert_eq!(s["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(
        s["process"]["args"],
        json!([
            "/.udocker/lib/ld-linux-x86-64.so.2",
            "--library-path",
            "/.udocker/lib",
            SELF_GUEST,
            "proot",
            "--kill-on-exit",
            "-i",
            "1000:1000",
            "-w",
            "/data",
            "--",
            "/bin/sh",
            "-c",
            "echo hi"
        ])
    );
    assert_eq!(mount(&s, SELF_GUEST)["options"][3], "ro");
    assert!(!s["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&json!("PROOT_NO_SECCOMP=1")));
    let p = plan(ExecMode::R3, 0);
    let (s, _) = spec(&input(&p, Kind::Crun, Some(&sb)));
    assert_eq!(s["process"]["args"][6], "-0");
    assert!(s["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&json!("PROOT_NO_SECCOMP=1")));
}

#[test]
fn self_binary_is_found() {
    let sb = self_binary().unwrap();
    assert_eq!(sb.binds[0].1, SELF_GUEST);
    assert_eq!(sb.prefix.last().unwrap(), SELF_GUEST);
    // A dynamically linked test binary: its loader starts it.
    if sb.binds.len() > 1 {
        assert_eq!(sb.prefix[1], "--library-path");
        assert!(sb.binds.iter().any(|(_, g)| g == &sb.prefix[0]));
    }
}

fn fake_exe(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn runtime_lookup() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let path = format!("{}:{}", a.display(), b.display());
    let e = find_runtime(None, &path).unwrap_err();
    assert!(e.to_string().contains("no runc or crun found"), "{e}");
    assert!(e.to_string().contains("setup --execmode=P1"), "{e}");
    let runc = fake_exe(&a, "runc");
    assert_eq!(
        find_runtime(None, &path).unwrap(),
        Runtime {
            kind: Kind::Runc,
            path: runc.clone()
        }
    );
    // crun is preferred, wherever it is in PATH.
    let crun = fake_exe(&b, "crun");
    assert_eq!(find_runtime(None, &path).unwrap().path, crun);
    assert_eq!(find_runtime(Some("runc"), &path).unwrap().path, runc);
    let other = fake_exe(&b, "crun-1.8");
    let r = find_runtime(Some(other.to_str().unwrap()), "").unwrap();
    assert_eq!((r.kind, r.path), (Kind::Crun, other));
    let e = find_runtime(Some("/nonexistent/runc"), &path).unwrap_err();
    assert!(e.to_string().contains("UDOCKER_USE_RUNC_EXECUTABLE"), "{e}");
}

#[test]
fn singularity_command_line() {
    let d = tempfile::tempdir().unwrap();
    assert!(singularity::find(None, &d.path().to_string_lossy()).is_err());
    let s = fake_exe(d.path(), "singularity");
    let found = singularity::find(None, &d.path().to_string_lossy()).unwrap();
    assert_eq!((found.path.clone(), found.apptainer), (s, false));
    let a = fake_exe(d.path(), "apptainer");
    let found_a = singularity::find(None, &d.path().to_string_lossy()).unwrap();
    assert_eq!((found_a.path.clone(), found_a.apptainer), (a, true));

    let p = plan(ExecMode::S1, 0);
    let (args, env, w) = singularity::command(&found_a, &p, true, 1);
    assert!(w.is_empty());
    assert_eq!(
        args,
        [
            "--quiet",
            "exec",
            "-w",
            "--fakeroot",
            "--pwd",
            "/data",
            "-B",
            "/etc/resolv.conf:/etc/resolv.conf",
            "-B",
            "/home/u/data:/data:ro",
            "--home",
            "/c/ROOT/root:/root",
            "-B",
            "/c/ROOT/tmp:/tmp",
            "-B",
            "/c/ROOT/var/tmp:/var/tmp",
            "/c/ROOT",
            "/bin/sh",
            "-c",
            "echo hi"
        ]
    );
    assert_eq!(env, [("APPTAINERENV_FOO".to_string(), "bar".to_string())]);
    let (args, env, _) = singularity::command(&found, &p, false, 2);
    assert_eq!(&args[..4], ["--debug", "-v", "exec", "-w"]);
    assert!(!args.contains(&"--fakeroot".to_string()));
    assert_eq!(env, [("SINGULARITYENV_FOO".to_string(), "bar".to_string())]);
    let p = plan(ExecMode::S1, 1000);
    let (args, _, w) = singularity::command(&found, &p, true, 0);
    assert_eq!(args[0], "--silent");
    assert!(!args.contains(&"--fakeroot".to_string()));
    assert!(!args.contains(&"--home".to_string()));
    assert!(w[0].contains("host user"), "{w:?}");
}
