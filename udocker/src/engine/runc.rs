//! R1/R2/R3: the plan run by the host's `runc` or `crun` as the ordinary user, in a user
//! namespace that maps the user to root (`spec/udocker.md` §5 `RuncEngine`).
//!
//! * The runtime: `UDOCKER_USE_RUNC_EXECUTABLE` (a name looked up in PATH, or a path), else
//!   `crun` then `runc` from PATH. crun is preferred when both are present: it starts about
//!   three times faster (no Go runtime, no re-exec of itself), and it lets a non-root `--user`
//!   run as that uid (runc insists on a mapping for uid 0, and without newuidmap a user
//!   namespace can map only one id). Upstream tries runc first.
//! * The OCI runtime spec is written by us (serde_json), not edited from `runc spec --rootless`:
//!   user, mount, ipc and uts namespaces; host network; no pid namespace, so that the
//!   container's processes see the host's as in the P modes and a SIGTERM forwarded to the
//!   command kills it even when it has no handler (a pid-namespace init ignores it); /proc and
//!   /sys are bind mounts of the host's (a new procfs needs a pid namespace), /dev a tmpfs with
//!   devpts, shm and mqueue; the plan's volumes (resolv.conf, hosts, hostname, the synthesized
//!   passwd and group, `-v`) as rbind mounts, `:ro` read-only; `--device` nodes bound.
//! * Files: each run writes `<container dir>/.runtime/<id>.bundle/config.json` (a bundle per run,
//!   so that concurrent runs of one container cannot read each other's spec; upstream writes one
//!   `config.json` in the container directory) and the runtime keeps its state under
//!   `<container dir>/.runtime/<runc|crun>/`. Both are removed when the run ends; what a killed
//!   udocker left behind (the run id carries its pid) is removed by the next run of the container
//!   (`runtime delete --force`).
//! * crun refuses to start on hosts with hybrid cgroups whose v2 hierarchy has controllers
//!   ("cgroups in hybrid mode not supported"), even with cgroups disabled. So crun is started in
//!   a user and mount namespace of our own (the user as root) where `/sys/fs/cgroup/unified` is
//!   hidden under an empty tmpfs, and the spec maps ids to that namespace's root.
//! * Exit status and signals as in the P modes: the runtime runs in the foreground and returns the
//!   command's status (128+N for death by signal N); SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1
//!   and SIGUSR2 sent to udocker are passed to the runtime, which passes them to the command. The
//!   runtime gets SIGTERM when udocker dies. udocker is a child subreaper: processes the command
//!   left behind end up as its children and are killed when the command exits (P modes'
//!   `--kill-on-exit`).
//! * A terminal (stdin and stdout both ttys) gets `process.terminal`: the runtime relays a new
//!   pty in the foreground. Otherwise the runtime hands our stdin/stdout/stderr to the command.
//! * R2/R3: our own binary, bound at `/.udocker/bin/udocker` (with the host loader and libraries
//!   it is linked with at `/.udocker/lib/` when it is not static), runs the command as
//!   `udocker proot --kill-on-exit -0|-i UID:GID -w CWD -- CMD`: the tracer's path translation and
//!   uid emulation inside the container; R3 sets `PROOT_NO_SECCOMP=1` (P2).

use super::{EngineError, ExecMode, Plan};
use serde_json::{json, Value};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

/// Which OCI runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runc,
    Crun,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Runc => "runc",
            Kind::Crun => "crun",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub kind: Kind,
    pub path: PathBuf,
}

/// `name` in the directories of `path_env`, if executable there.
pub fn in_path(name: &str, path_env: &str) -> Option<PathBuf> {
    path_env
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// The runtime to use: `override_` (UDOCKER_USE_RUNC_EXECUTABLE: a path, or a name in PATH),
/// else crun, else runc from `path_env`. The kind is crun when the file name starts with
/// `crun`, runc otherwise.
pub fn find_runtime(override_: Option<&str>, path_env: &str) -> Result<Runtime, EngineError> {
    let kind_of = |p: &Path| {
        if p.file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b"crun"))
        {
            Kind::Crun
        } else {
            Kind::Runc
        }
    };
    if let Some(o) = override_.filter(|o| !o.is_empty()) {
        let p = if o.contains('/') {
            Some(PathBuf::from(o)).filter(|p| p.is_file())
        } else {
            in_path(o, path_env)
        };
        return p
            .map(|p| Runtime {
                kind: kind_of(&p),
                path: p,
            })
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "UDOCKER_USE_RUNC_EXECUTABLE={o}: no such executable"
                ))
            });
    }
    for name in ["crun", "runc"] {
        if let Some(p) = in_path(name, path_env) {
            return Ok(Runtime {
                kind: kind_of(&p),
                path: p,
            });
        }
    }
    Err(EngineError::Unavailable(
        "no runc or crun found in PATH (install one, or name it with \
         UDOCKER_USE_RUNC_EXECUTABLE)"
            .into(),
    ))
}

/// Whether unprivileged user namespaces work: the sysctls, then a real try (a child that
/// creates one and maps itself to root in it, which is what the runtimes do; AppArmor's
/// `restrict_unprivileged_userns` lets the clone succeed but not the mapping).
pub fn check_userns() -> Result<(), EngineError> {
    let sysctl = |p: &str| {
        fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    if sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err(EngineError::Unavailable(
            "unprivileged user namespaces are disabled on this host \
             (/proc/sys/user/max_user_namespaces is 0)"
                .into(),
        ));
    }
    if sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err(EngineError::Unavailable(
            "unprivileged user namespaces are disabled on this host \
             (/proc/sys/kernel/unprivileged_userns_clone is 0)"
                .into(),
        ));
    }
    let uid = nix::unistd::getuid().as_raw();
    let map = format!("0 {uid} 1");
    // SAFETY: the child only makes system calls (no allocation) and _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let ok = unsafe {
                libc::unshare(libc::CLONE_NEWUSER) == 0
                    && raw_write(b"/proc/self/uid_map\0", map.as_bytes())
            };
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ => Err(EngineError::Unavailable(
                    "this host does not let an ordinary user create a user namespace \
                     (creating one or mapping the user to root in it failed)"
                        .into(),
                )),
            }
        }
        Err(e) => Err(EngineError::Io(
            "fork for".into(),
            PathBuf::from("the user namespace check"),
            e.into(),
        )),
    }
}

/// open+write+close with raw system calls (safe between fork and exec).
unsafe fn raw_write(path_nul: &[u8], data: &[u8]) -> bool {
    let fd = unsafe { libc::open(path_nul.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    unsafe { libc::close(fd) };
    n == data.len() as isize
}

/// Docker's default capability set, given to root in the container (upstream's
/// `runc_capabilities`); limited to the user namespace.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Our binary as R2/R3 need it inside the container: (host path, guest path) bindings and the
/// command prefix that starts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfBinary {
    pub binds: Vec<(PathBuf, String)>,
    pub prefix: Vec<String>,
}

pub const SELF_GUEST: &str = "/.udocker/bin/udocker";
const SELF_LIBDIR: &str = "/.udocker/lib";

/// This process's binary and, when it is dynamically linked, the loader and the libraries it
/// has loaded (from /proc/self/maps), for R2/R3.
pub fn self_binary() -> Result<SelfBinary, EngineError> {
    let exe = fs::canonicalize("/proc/self/exe")
        .map_err(|e| EngineError::Io("finding".into(), PathBuf::from("/proc/self/exe"), e))?;
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut libs: Vec<PathBuf> = Vec::new();
    for l in maps.lines() {
        let Some(p) = l.split_whitespace().nth(5) else {
            continue;
        };
        let p = PathBuf::from(p);
        let is_lib = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains(".so"));
        if p.is_absolute() && p != exe && is_lib && !libs.contains(&p) {
            libs.push(p);
        }
    }
    let mut sb = SelfBinary {
        binds: vec![(exe, SELF_GUEST.to_string())],
        prefix: Vec::new(),
    };
    let loader = libs.iter().find(|l| {
        l.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ld-"))
    });
    if let Some(loader) = loader.cloned() {
        for l in &libs {
            let name = l.file_name().unwrap_or_default().to_string_lossy();
            sb.binds.push((l.clone(), format!("{SELF_LIBDIR}/{name}")));
        }
        sb.prefix = vec![
            format!(
                "{SELF_LIBDIR}/{}",
                loader.file_name().unwrap_or_default().to_string_lossy()
            ),
            "--library-path".into(),
            SELF_LIBDIR.into(),
        ];
    }
    sb.prefix.push(SELF_GUEST.into());
    Ok(sb)
}

/// What the spec depends on besides the plan.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub plan: &'a Plan,
    pub kind: Kind,
    pub terminal: bool,
    pub hostname: String,
    /// The ids the container's ids map to: the user's (runc), or 0 in the namespace crun runs in.
    pub host_uid: u32,
    pub host_gid: u32,
    /// R2/R3 only.
    pub self_binary: Option<&'a SelfBinary>,
    /// `--device` and nvidia devices: (host path, guest path).
    pub devices: Vec<(PathBuf, String)>,
    /// Guest paths of volumes left out (no mount point and none can be made).
    pub skip: Vec<String>,
}

/// The runtimes need a mount point in ROOT for each bind; make the missing ones (as upstream's
/// MountPoint) and return the guest paths of those that cannot be made (a read-only ROOT):
/// those volumes are left out, with a warning for the user's own.
pub fn mount_points(plan: &Plan) -> (Vec<String>, Vec<String>) {
    let (mut skip, mut warnings) = (Vec::new(), Vec::new());
    for v in &plan.volumes {
        if matches!(v.guest.as_str(), "/proc" | "/sys" | "/dev") {
            continue;
        }
        let p = plan.root.join(v.guest.trim_start_matches('/'));
        if fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        // Several runs of one container may start at once (the ranks of an MPI job) and make
        // the same mount point: one that appeared meanwhile is as good as one made here.
        let made = p.parent().is_some_and(|d| fs::create_dir_all(d).is_ok())
            && if v.host.is_dir() {
                fs::create_dir(&p).is_ok() || p.is_dir()
            } else {
                fs::File::create(&p).is_ok() || p.is_file()
            };
        if !made {
            if v.origin == super::Origin::User {
                warnings.push(format!(
                    "volume {} left out: cannot create {} in the container",
                    v.host.display(),
                    v.guest
                ));
            }
            skip.push(v.guest.clone());
        }
    }
    (skip, warnings)
}

fn bind(src: &Path, dst: &str, readonly: bool) -> Value {
    json!({
        "destination": dst,
        "type": "bind",
        "source": src.to_string_lossy(),
        "options": ["rbind", "nosuid", "nodev", if readonly { "ro" } else { "rw" }],
    })
}

/// The OCI runtime spec (config.json) for a plan. Also returns warnings.
pub fn spec(inp: &SpecInput) -> (Value, Vec<String>) {
    let plan = inp.plan;
    let mut warnings = Vec::new();
    let (uid, gid) = (plan.user.entry.uid, plan.user.entry.gid);
    // Inside R2/R3 the tracer fakes the user: the runtime runs it as root. runc needs root
    // mapped (it refuses a single mapping for another id).
    let (c_uid, c_gid) = match (plan.mode, inp.kind) {
        (ExecMode::R2 | ExecMode::R3, _) => (0, 0),
        (_, Kind::Crun) => (uid, gid),
        (_, Kind::Runc) => {
            if uid != 0 || gid != 0 {
                warnings.push(format!(
                    "runc maps only your own id, to root: --user {} runs as root \
                     (use crun, R2 or P1 to run as uid {uid})",
                    plan.user.entry.name
                ));
            }
            (0, 0)
        }
    };
    let mut args: Vec<String> = Vec::new();
    let mut env: Vec<String> = plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "bind", "source": "/proc",
               "options": ["rbind", "nosuid", "nodev", "noexec"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=2g"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ];
    let has = |g: &str| plan.volumes.iter().any(|v| v.guest == g);
    if has("/sys") {
        mounts.push(
            json!({"destination": "/sys", "type": "bind", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        );
    }
    for v in &plan.volumes {
        // /proc, /sys and /dev are the runtime's own (above).
        if matches!(v.guest.as_str(), "/proc" | "/sys" | "/dev") {
            continue;
        }
        if !inp.skip.contains(&v.guest) {
            mounts.push(bind(&v.host, &v.guest, v.readonly));
        }
    }
    for (h, g) in &inp.devices {
        mounts.push(
            json!({"destination": g, "type": "bind", "source": h.to_string_lossy(),
                           "options": ["rbind", "nosuid", "rw"]}),
        );
    }
    if let (ExecMode::R2 | ExecMode::R3, Some(sb)) = (plan.mode, inp.self_binary) {
        for (h, g) in &sb.binds {
            mounts.push(bind(h, g, true));
        }
        args.extend(sb.prefix.iter().cloned());
        args.extend(["proot".into(), "--kill-on-exit".into()]);
        if uid == 0 {
            args.push("-0".into());
        } else {
            args.extend(["-i".into(), format!("{uid}:{gid}")]);
        }
        if let Some(k) = &plan.kernel {
            args.extend(["-k".into(), k.clone()]);
        }
        args.extend(["-w".into(), plan.cwd.clone(), "--".into()]);
        if plan.mode == ExecMode::R3 {
            env.push("PROOT_NO_SECCOMP=1".into());
        }
    }
    args.extend(plan.argv.iter().cloned());
    let caps: Vec<&str> = if c_uid == 0 {
        CAPABILITIES.to_vec()
    } else {
        Vec::new()
    };
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": inp.terminal,
            "user": {"uid": c_uid, "gid": c_gid},
            "args": args,
            "env": env,
            "cwd": plan.cwd,
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": caps,
                "permitted": caps,
                "inheritable": caps,
                "ambient": caps,
            },
            "noNewPrivileges": true,
        },
        "root": {"path": plan.root.to_string_lossy(), "readonly": false},
        "hostname": inp.hostname,
        "mounts": mounts,
        "linux": {
            "uidMappings": [{"containerID": c_uid, "hostID": inp.host_uid, "size": 1}],
            "gidMappings": [{"containerID": c_gid, "hostID": inp.host_gid, "size": 1}],
            "namespaces": [{"type": "user"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    });
    (spec, warnings)
}

/// `--device=HOST[:CONT[:PERMS]]` → (host, guest); `/dev/nvidia*` when the container has the
/// `nvidia` marker (`setup --nvidia`).
pub fn devices(plan: &Plan, state_dir: &Path) -> Result<Vec<(PathBuf, String)>, EngineError> {
    let mut out = Vec::new();
    for d in &plan.devices {
        let mut parts = d.split(':');
        let h = parts.next().unwrap_or_default();
        let g = parts.next().filter(|g| g.starts_with('/')).unwrap_or(h);
        let hp = fs::canonicalize(h)
            .map_err(|e| EngineError::Runtime(format!("--device={d}: {h}: {e}")))?;
        out.push((hp, g.to_string()));
    }
    if state_dir.join("nvidia").exists() {
        if let Ok(rd) = fs::read_dir("/dev") {
            let mut nv: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("nvidia"))
                        && !p.is_dir()
                })
                .collect();
            nv.sort();
            for p in nv {
                let g = p.to_string_lossy().into_owned();
                out.push((p, g));
            }
        }
    }
    Ok(out)
}

/// The pid of the runtime, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn forward_signals() {
    for s in FORWARDED {
        // SAFETY: installs a handler that only reads an atomic and calls kill.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(*s, &sa, std::ptr::null_mut());
        }
    }
}

/// The runtime's command line (global options first), for `run`, `delete --force`.
fn runtime_command(
    rt: &Runtime,
    state_root: &Path,
    log: Option<&Path>,
    hide_cgroup: bool,
) -> Command {
    let mut c = Command::new(&rt.path);
    if rt.kind == Kind::Crun {
        c.arg("--cgroup-manager=disabled");
        crun_namespace(&mut c, hide_cgroup);
    }
    c.arg("--root").arg(state_root);
    if let (Kind::Runc, Some(l)) = (rt.kind, log) {
        c.arg("--log").arg(l).args(["--log-format", "json"]);
    }
    c
}

/// crun runs in a user+mount namespace of ours (user = root), with the cgroup v2 hierarchy of a
/// hybrid host hidden; the runtime gets SIGTERM if udocker dies.
fn crun_namespace(c: &mut Command, hide_cgroup: bool) {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let uid_map = format!("0 {uid} 1");
    let gid_map = format!("0 {gid} 1");
    // SAFETY: only raw system calls on data prepared before the fork.
    unsafe {
        c.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            if !raw_write(b"/proc/self/setgroups\0", b"deny")
                || !raw_write(b"/proc/self/uid_map\0", uid_map.as_bytes())
                || !raw_write(b"/proc/self/gid_map\0", gid_map.as_bytes())
            {
                return Err(io::Error::other("mapping the user to root failed"));
            }
            if hide_cgroup {
                libc::mount(
                    c"none".as_ptr(),
                    c"/sys/fs/cgroup/unified".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                );
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// A hybrid cgroup layout whose v2 hierarchy has controllers (crun refuses those).
fn hybrid_with_controllers() -> bool {
    fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|s| !s.trim().is_empty())
}

fn pid_alive(pid: i32) -> bool {
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The pid of the udocker that started run `id` (`udocker-<pid>-<rand>`).
fn id_pid(id: &str) -> Option<i32> {
    let rest = id.strip_prefix("udocker-")?;
    rest.split('-').next()?.parse().ok()
}

/// Remove what runs of killed udockers left: runtime state (`delete --force`) and bundles.
fn clean_stale(rt: &Runtime, rundir: &Path, state_root: &Path) {
    if let Ok(rd) = fs::read_dir(state_root) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id_pid(&id).is_some_and(pid_alive) {
                continue;
            }
            crate::debug!("removing the stale {} state of {id}", rt.kind.name());
            let _ = runtime_command(
                rt,
                state_root,
                None,
                rt.kind == Kind::Crun && hybrid_with_controllers(),
            )
            .args(["delete", "--force", &id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
            let _ = crate::fsutil::remove_tree(&e.path());
        }
    }
    if let Ok(rd) = fs::read_dir(rundir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = n.strip_suffix(".bundle").or_else(|| n.strip_suffix(".log")) {
                if !id_pid(id).is_some_and(pid_alive) {
                    let _ = crate::fsutil::remove_tree(&e.path());
                }
            }
        }
    }
}

/// After the runtime exited: kill and reap what the command left (we are a subreaper).
fn kill_leftovers() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let me = std::process::id() as i32;
    for _ in 0..200 {
        // Reap what has exited; stop when there are no children at all.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(_) => return,
            }
        }
        for pid in children_of(me) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
            == Some(ppid)
        {
            out.push(pid);
        }
    }
    out
}

fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Wait for up to `ms` milliseconds (-1: forever) until one of `fds` is readable.
fn poll_fds(fds: &[&std::os::fd::OwnedFd], ms: i32) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of pollfd.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    p.iter().map(|x| n > 0 && x.revents != 0).collect()
}

/// The container's first process, from the runtime's state (runc `state.json`
/// `init_process_pid`, crun `status` `pid`).
fn init_pid(state: &Path, kind: Kind) -> Option<i32> {
    let (file, key) = match kind {
        Kind::Runc => ("state.json", "init_process_pid"),
        Kind::Crun => ("status", "pid"),
    };
    let v: Value = serde_json::from_slice(&fs::read(state.join(file)).ok()?).ok()?;
    v[key].as_i64().map(|p| p as i32).filter(|p| *p > 0)
}

/// All descendants of `pid` (children first).
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Wait for the runtime. Without a pid namespace the runtimes wait for every process of the
/// container, so when the command itself exits, what it left behind is killed here (the P
/// modes' kill-on-exit); the runtime then returns the command's status.
fn supervise(
    child: &mut std::process::Child,
    state: &Path,
    kind: Kind,
) -> io::Result<std::process::ExitStatus> {
    let rpid = child.id() as i32;
    let Some(rfd) = pidfd_open(rpid) else {
        return child.wait();
    };
    let mut init: Option<(i32, Option<std::os::fd::OwnedFd>)> = None;
    let mut delay = 1;
    let mut killing = false;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if init.is_none() {
            init = init_pid(state, kind).map(|p| (p, pidfd_open(p)));
            // The state exists for as long as the command runs (runc removes it when the
            // command exits, then waits for the rest): container processes without it mean the
            // command was too quick to be seen.
            if init.is_none() && !state.exists() {
                let ns = |p: i32| fs::read_link(format!("/proc/{p}/ns/user")).ok();
                let mine = ns(rpid);
                if mine.is_some()
                    && descendants(rpid)
                        .into_iter()
                        .any(|p| ns(p).is_some_and(|n| Some(n) != mine))
                {
                    init = Some((-1, None));
                }
            }
        }
        match &init {
            Some((ip, fd)) if !killing => {
                let exited = match fd {
                    Some(fd) => poll_fds(&[&rfd, fd], -1)[1],
                    None => true,
                };
                if exited {
                    killing = true;
                    let ip = *ip;
                    for p in descendants(rpid).into_iter().filter(|p| *p != ip) {
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                }
            }
            Some((ip, _)) => {
                poll_fds(&[&rfd], 20);
                let ip = *ip;
                for p in descendants(rpid).into_iter().filter(|p| *p != ip) {
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            None => {
                poll_fds(&[&rfd], delay);
                delay = (delay * 2).min(50);
            }
        }
    }
}

/// runc's json log: the messages of level error (runc's own failures, not the command's).
fn runc_errors(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .collect()
}

fn isatty(fd: i32) -> bool {
    unsafe { libc::isatty(fd) == 1 }
}

/// Run the plan with runc or crun; returns the command's exit status.
/// `state_dir` is the container directory (or --location's scratch directory).
/// The highest descriptor above 2 that survives exec (no close-on-exec flag): one this process
/// inherited for the command. Ours are all close-on-exec (Rust opens files so).
fn highest_inherited_fd() -> Option<i32> {
    let fds: Vec<i32> = fs::read_dir("/proc/self/fd")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.into_iter()
        .filter(|&fd| {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            fd > 2 && {
                let f = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                f >= 0 && f & libc::FD_CLOEXEC == 0
            }
        })
        .max()
}

/// Open /dev/null (close-on-exec) on every descriptor in 3..=top that is not open, so that a
/// child's lowest free descriptors lie above `top`; closed when the returned files drop.
fn fill_fd_gaps(top: i32) -> Vec<fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut out = Vec::new();
    for fd in 3..=top {
        // SAFETY: F_GETFD only reads flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        let Ok(f) = fs::File::open("/dev/null") else {
            break;
        };
        if f.as_raw_fd() == fd {
            out.push(f);
            continue;
        }
        // SAFETY: fd is free (checked above); dup3 makes it a close-on-exec copy we own.
        let r = unsafe { libc::dup3(f.as_raw_fd(), fd, libc::O_CLOEXEC) };
        if r == fd {
            out.push(unsafe { fs::File::from_raw_fd(fd) });
        }
    }
    out
}

pub fn execute(plan: &Plan, state_dir: &Path, verbose: u8) -> Result<i32, EngineError> {
    let path_env = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let override_ = std::env::var("UDOCKER_USE_RUNC_EXECUTABLE").ok();
    let rt = find_runtime(override_.as_deref(), &path_env)?;
    check_userns()?;
    crate::debug!("runtime {} ({})", rt.path.display(), rt.kind.name());
    if rt.kind == Kind::Runc && plan.user.entry.uid != 0 && super::Launch::current().pmix {
        // runc maps only root: the rank's uid then differs from the one PMIx sees on its socket.
        crate::warn!(
            "an MPI rank under runc runs as root in its namespace and PMIx refuses it \
             (\"OPAL ERROR: Unreachable\"): use crun, or execution mode P1 or F1"
        );
    }
    if let Some(cpus) = &plan.cpus {
        super::ptrace::set_affinity(cpus)?;
    }
    let rundir = state_dir.join(".runtime");
    let state_root = rundir.join(rt.kind.name());
    for d in [&rundir, &state_root] {
        fs::create_dir_all(d).map_err(super::io_err("creating", d))?;
        let _ = fs::set_permissions(d, fs::Permissions::from_mode(0o700));
    }
    clean_stale(&rt, &rundir, &state_root);

    let id = format!(
        "udocker-{}-{}",
        std::process::id(),
        &crate::container::new_uuid()[..8]
    );
    let bundle = rundir.join(format!("{id}.bundle"));
    let log = rundir.join(format!("{id}.log"));
    let cleanup = || {
        let _ = crate::fsutil::remove_tree(&bundle);
        let _ = fs::remove_file(&log);
        let _ = crate::fsutil::remove_tree(&state_root.join(&id));
    };
    let result = (|| {
        fs::create_dir_all(&bundle).map_err(super::io_err("creating", &bundle))?;
        let sb = match plan.mode {
            ExecMode::R2 | ExecMode::R3 => Some(self_binary()?),
            _ => None,
        };
        let (host_uid, host_gid) = match rt.kind {
            Kind::Crun => (0, 0),
            Kind::Runc => (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            ),
        };
        let hostname = nix::sys::utsname::uname()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let (skip, mp_warnings) = mount_points(plan);
        for w in mp_warnings {
            crate::warn!("{w}");
        }
        let (spec, warnings) = spec(&SpecInput {
            plan,
            kind: rt.kind,
            terminal: isatty(0) && isatty(1),
            hostname,
            host_uid,
            host_gid,
            self_binary: sb.as_ref(),
            devices: devices(plan, state_dir)?,
            skip,
        });
        for w in warnings {
            crate::warn!("{w}");
        }
        let cfg = bundle.join("config.json");
        let text = serde_json::to_vec_pretty(&spec).expect("json serialises");
        crate::fsutil::write_atomic(&cfg, &text, 0o600).map_err(super::io_err("writing", &cfg))?;

        let hide = rt.kind == Kind::Crun && hybrid_with_controllers();
        let mut cmd = runtime_command(&rt, &state_root, Some(&log), hide);
        if verbose >= 2 && rt.kind == Kind::Runc {
            cmd.arg("--debug");
        }
        cmd.arg("run").arg("--bundle").arg(&bundle);
        // The runtimes close every descriptor above 2 unless told: an MPI launcher or a batch
        // script may have handed the command some (PMI_FD, a pipe), as for any other program.
        let top = highest_inherited_fd();
        let mut _fillers = Vec::new();
        if let Some(top) = top {
            cmd.arg(format!("--preserve-fds={}", top - 2));
            _fillers = fill_fd_gaps(top);
            // runc insists that every descriptor of the range exists after its exec: ours
            // (close-on-exec) become /dev/null in the child; the gaps were filled above, so
            // that Command's own close-on-exec pipe lies above the range.
            // SAFETY: open, fcntl, dup2 and close only (async-signal-safe).
            unsafe {
                cmd.pre_exec(move || {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                    if null < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    for fd in 3..=top {
                        let f = libc::fcntl(fd, libc::F_GETFD);
                        if fd != null && (f < 0 || f & libc::FD_CLOEXEC != 0) {
                            libc::dup2(null, fd);
                        }
                    }
                    if null > top {
                        libc::close(null);
                    }
                    Ok(())
                });
            }
        }
        cmd.arg(&id);
        if rt.kind == Kind::Runc {
            // SAFETY: prctl only.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
        }
        // Processes the command leaves behind come back to us (then killed).
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        forward_signals();
        let mut child = cmd
            .spawn()
            .map_err(|e| EngineError::Runtime(format!("starting {}: {e}", rt.path.display())))?;
        CHILD.store(child.id() as i32, Ordering::SeqCst);
        let status = supervise(&mut child, &state_root.join(&id), rt.kind)
            .map_err(|e| EngineError::Runtime(format!("waiting for {}: {e}", rt.kind.name())))?;
        CHILD.store(0, Ordering::SeqCst);
        kill_leftovers();
        let code = match (status.code(), status.signal()) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 1,
        };
        if code != 0 && rt.kind == Kind::Runc {
            let errs = runc_errors(&log);
            if !errs.is_empty() {
                return Err(EngineError::Runtime(format!("runc: {}", errs.join("; "))));
            }
        }
        Ok(code)
    })();
    cleanup();
    result
}

#[cfg(test)]
mod tests;
