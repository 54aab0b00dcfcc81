//! Running a container (`spec/udocker.md` §1 run flow, §5, §6): the validated request from the
//! command line and the container's image metadata become one [`Plan`] (root, volumes, working
//! directory, user, command, environment) before anything is started; then an engine runs it.
//! Engines: P1/P2 (the built-in ptrace tracer, ptrace.rs), R1/R2/R3 (a rootless runc or crun
//! from the host, runc.rs) and S1 (the host's Apptainer/Singularity, singularity.rs).
//!
//! Paths inside the container are resolved with the tracer's own translator (bindings first,
//! symlinks followed inside the container), so what `run` checks is what the program will see.

pub mod elfmode;
pub mod env;
pub mod fakechroot;
pub mod nvidia;
pub mod ptrace;
pub mod runc;
pub mod shim;
pub mod singularity;
pub mod users;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tracer::path::{RealFs, Translator};
use users::{RunUser, UserSpec};

#[derive(Debug)]
pub enum EngineError {
    /// A mode udocker knows but this version cannot run yet.
    ModeNotAvailable(String),
    InvalidMode(String),
    InvalidUser(String),
    UserNotFound(String),
    /// `-v SPEC`: what is wrong with it.
    InvalidVolume(String, String),
    InvalidWorkdir(String),
    CommandNotFound(String),
    NotExecutable(String),
    InvalidCpuset(String),
    Affinity(String, nix::Error),
    Io(String, PathBuf, io::Error),
    Tracer(tracer::TracerError),
    /// The engine cannot run on this host (no runtime, user namespaces disabled): why.
    Unavailable(String),
    /// The runtime (runc, crun, apptainer) failed before the container ran: its message.
    Runtime(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::ModeNotAvailable(m) => {
                write!(f, "execution mode {m} is not available yet")
            }
            EngineError::InvalidMode(m) => write!(f, "invalid execution mode: {m}"),
            EngineError::InvalidUser(u) => {
                write!(f, "invalid user: {u} (expected NAME, UID or UID:GID)")
            }
            EngineError::UserNotFound(u) => {
                write!(f, "user not found in the container's /etc/passwd: {u}")
            }
            EngineError::InvalidVolume(v, why) => write!(f, "invalid volume {v}: {why}"),
            EngineError::InvalidWorkdir(w) => write!(f, "invalid working directory: {w}"),
            EngineError::CommandNotFound(c) | EngineError::NotExecutable(c) => {
                write!(f, "command not found or has no execute bit set: {c}")
            }
            EngineError::InvalidCpuset(s) => write!(f, "invalid --cpuset-cpus: {s}"),
            EngineError::Affinity(s, e) => write!(f, "setting the CPU affinity to {s}: {e}"),
            EngineError::Io(op, p, e) => write!(f, "{op} {}: {e}", p.display()),
            EngineError::Tracer(e) => write!(f, "{e}"),
            EngineError::Unavailable(why) => {
                write!(f, "{why} (use setup --execmode=P1 CONTAINER)")
            }
            EngineError::Runtime(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Io(_, _, e) => Some(e),
            EngineError::Tracer(e) => Some(e),
            EngineError::Affinity(_, e) => Some(e),
            _ => None,
        }
    }
}

impl EngineError {
    /// docker's conventions: 127 command not found, 126 not executable, 125 anything else that
    /// stopped the container from starting.
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::CommandNotFound(_) => 127,
            EngineError::NotExecutable(_) => 126,
            _ => 125,
        }
    }
}

fn io_err(op: &str, p: &Path) -> impl FnOnce(io::Error) -> EngineError {
    let (op, p) = (op.to_string(), p.to_path_buf());
    move |e| EngineError::Io(op, p, e)
}

/// The engines of this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecMode {
    P1,
    P2,
    /// runc/crun (rootless, user namespace).
    R1,
    /// The tracer (P1) inside the runc/crun container.
    R2,
    /// The tracer without seccomp (P2) inside the runc/crun container.
    R3,
    /// Apptainer/Singularity.
    S1,
    /// The fakechroot shim (LD_PRELOAD) through the container's own loader (fakechroot.rs).
    F1,
    /// F1 with the container's loader patched (`loader-patcher`): no host cache or default
    /// library directories, `LD_LIBRARY_REAL` for `LD_LIBRARY_PATH`.
    F2,
    /// F2 with every ELF of the container re-rooted (`elfmode.rs`): the kernel starts programs
    /// with the container's loader, no loader on the command line.
    F3,
    /// F3, and programs created while the container runs are re-rooted before their first
    /// exec (the shim runs our patcher).
    F4,
}

impl ExecMode {
    /// `P1`/`P2`/`R1`/`R2`/`R3`/`S1`/`F1`-`F4` (any case).
    pub fn parse(s: &str) -> Result<ExecMode, EngineError> {
        let m = s.trim().to_ascii_uppercase();
        match m.as_str() {
            "P1" => Ok(ExecMode::P1),
            "P2" => Ok(ExecMode::P2),
            "R1" => Ok(ExecMode::R1),
            "R2" => Ok(ExecMode::R2),
            "R3" => Ok(ExecMode::R3),
            "S1" => Ok(ExecMode::S1),
            "F1" => Ok(ExecMode::F1),
            "F2" => Ok(ExecMode::F2),
            "F3" => Ok(ExecMode::F3),
            "F4" => Ok(ExecMode::F4),
            _ if crate::container::EXEC_MODES.contains(&m.as_str()) => {
                Err(EngineError::ModeNotAvailable(m))
            }
            _ => Err(EngineError::InvalidMode(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExecMode::P1 => "P1",
            ExecMode::P2 => "P2",
            ExecMode::R1 => "R1",
            ExecMode::R2 => "R2",
            ExecMode::R3 => "R3",
            ExecMode::S1 => "S1",
            ExecMode::F1 => "F1",
            ExecMode::F2 => "F2",
            ExecMode::F3 => "F3",
            ExecMode::F4 => "F4",
        }
    }

    /// R1/R2/R3: run by runc or crun.
    pub fn is_runc(self) -> bool {
        matches!(self, ExecMode::R1 | ExecMode::R2 | ExecMode::R3)
    }

    /// F1-F4: the fakechroot shim.
    pub fn is_fakechroot(self) -> bool {
        matches!(
            self,
            ExecMode::F1 | ExecMode::F2 | ExecMode::F3 | ExecMode::F4
        )
    }

    /// F2-F4: the container's loader is patched.
    pub fn patches_loader(self) -> bool {
        matches!(self, ExecMode::F2 | ExecMode::F3 | ExecMode::F4)
    }

    /// F3/F4: every ELF of the container is re-rooted.
    pub fn patches_binaries(self) -> bool {
        matches!(self, ExecMode::F3 | ExecMode::F4)
    }
}

/// What `run` uses from the image configuration (container.json).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMeta {
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    /// `ExposedPorts` (`{"80/tcp": {}}`): port and protocol.
    pub exposed_ports: Vec<(u16, String)>,
}

fn string_list(v: &serde_json::Value) -> Option<Vec<String>> {
    match v {
        serde_json::Value::Array(a) => {
            let l: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            (!l.is_empty()).then_some(l)
        }
        // A string: upstream splits it on whitespace.
        serde_json::Value::String(s) => {
            let l: Vec<String> = s.split_whitespace().map(str::to_string).collect();
            (!l.is_empty()).then_some(l)
        }
        _ => None,
    }
}

impl ImageMeta {
    /// Read from the image configuration: its `config` object; only when there is none,
    /// `container_config` and the top level (old v1 images). Keys as docker spells them, then
    /// lowercase. (Upstream also falls back to `container_config` when `config` has a key set to
    /// null, which picks the builder's `#(nop)` command of docker-built images.)
    pub fn from_config(v: &serde_json::Value) -> ImageMeta {
        let sources: Vec<&serde_json::Value> = match v.get("config") {
            Some(c) if c.is_object() => vec![c],
            _ => [v.get("container_config"), Some(v)]
                .into_iter()
                .flatten()
                .filter(|x| x.is_object())
                .collect(),
        };
        let get = |key: &str| -> Option<&serde_json::Value> {
            let lower = key.to_ascii_lowercase();
            sources
                .iter()
                .find_map(|s| s.get(key).or_else(|| s.get(&lower)))
                .filter(|x| !x.is_null())
        };
        let text = |key: &str| {
            get(key)
                .and_then(|x| x.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        ImageMeta {
            user: text("User"),
            workdir: text("WorkingDir"),
            entrypoint: get("Entrypoint").and_then(string_list),
            cmd: get("Cmd").and_then(string_list),
            env: get("Env")
                .and_then(|e| e.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            exposed_ports: get("ExposedPorts")
                .and_then(|e| e.as_object())
                .map(|o| {
                    let mut v: Vec<(u16, String)> = o
                        .keys()
                        .filter_map(|k| {
                            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                            Some((p.parse().ok()?, proto.to_string()))
                        })
                        .collect();
                    v.sort();
                    v
                })
                .unwrap_or_default(),
        }
    }
}

/// `-v HOST[:CONT[:ro|rw]]` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub spec: String,
    pub host: String,
    pub guest: String,
    pub readonly: bool,
}

impl VolumeSpec {
    pub fn parse(spec: &str) -> Result<VolumeSpec, EngineError> {
        let bad = |why: &str| EngineError::InvalidVolume(spec.to_string(), why.to_string());
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, guest, readonly) = match parts.as_slice() {
            [h] => (*h, *h, false),
            [h, g] => (*h, *g, false),
            [h, g, "ro"] => (*h, *g, true),
            [h, g, "rw"] => (*h, *g, false),
            [_, _, o] => return Err(bad(&format!("unknown option {o:?} (ro or rw)"))),
            _ => return Err(bad("expected HOST[:CONTAINER[:ro]]")),
        };
        if !host.starts_with('/') {
            return Err(bad("the host path must be absolute"));
        }
        if !guest.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        if tracer::path::normalize(guest.as_bytes()) == b"/" {
            return Err(bad("the container path cannot be /"));
        }
        Ok(VolumeSpec {
            spec: spec.to_string(),
            host: host.to_string(),
            guest: guest.to_string(),
            readonly,
        })
    }
}

/// A binding the engine makes: host path (absolute, canonical) at guest path (normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub guest: String,
    pub readonly: bool,
    /// How `--novol` may name it: the host path as given, and `HOST:CONT`.
    pub names: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Sysdir,
    User,
    Auth,
}

/// Bound unless `--nosysdirs` (those that exist): upstream's `sysdirs_list`, plus `/etc/hosts`
/// and `/etc/hostname` (made up in the container directory when the host has none) so that name
/// resolution and `hostname` work.
pub const SYSDIRS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/resolv.conf",
    "/etc/host.conf",
    "/lib/modules",
];
pub const DRI: &[&str] = &["/usr/lib64/dri", "/lib64/dri", "/usr/lib/dri", "/lib/dri"];

/// Every `run` option that shapes the plan, validated.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The command and its arguments given after the container.
    pub args: Vec<String>,
    /// `--entrypoint`: `Some("")` drops the image's Entrypoint and Cmd.
    pub entrypoint: Option<String>,
    pub workdir: Option<String>,
    pub user: Option<UserSpec>,
    pub volumes: Vec<VolumeSpec>,
    pub novol: Vec<String>,
    /// `-e` items.
    pub env: Vec<String>,
    /// `--env-file` contents, read by the caller.
    pub env_file_lines: Vec<String>,
    pub hostauth: bool,
    pub containerauth: bool,
    pub nosysdirs: bool,
    pub nometa: bool,
    pub dri: bool,
    pub hostenv: bool,
    pub bindhome: bool,
    pub cpus: Option<Vec<usize>>,
    pub kernel: Option<String>,
    /// `--device=HOST[:CONT]` (R modes: bound into the container's /dev).
    pub devices: Vec<String>,
    /// `-p HOST:CONT`: (container port, host port).
    pub ports: Vec<(u16, u16)>,
    /// `-P`/`--netcoop`: P modes bind other ports wherever free (the tracer's `-n`).
    pub netcoop: bool,
}

/// The container to run.
#[derive(Debug, Clone)]
pub struct Target {
    /// Empty for `--location`.
    pub id: String,
    pub names: Vec<String>,
    pub root: PathBuf,
    /// Where `run` writes its files (synthesized passwd/group, hosts): the container directory.
    pub state_dir: PathBuf,
    pub meta: ImageMeta,
    pub mode: ExecMode,
}

/// Facts about the host, passed in so the planning is testable.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub env: Vec<(String, String)>,
    pub user: String,
    pub home: PathBuf,
    pub nodename: String,
    /// Where the host's files are read from (`/` except in tests).
    pub etc: PathBuf,
    /// The real ids of the user running udocker.
    pub uid: u32,
    pub gid: u32,
}

impl Host {
    pub fn current() -> Host {
        let uid = nix::unistd::getuid();
        let pw = nix::unistd::User::from_uid(uid).ok().flatten();
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        // $HOME first (batch systems move it), then the password database.
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| pw.as_ref().map(|p| p.dir.clone()))
            .unwrap_or_else(|| PathBuf::from("/"));
        Host {
            env,
            user: pw
                .map(|p| p.name)
                .unwrap_or_else(|| uid.as_raw().to_string()),
            home,
            nodename: nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            etc: PathBuf::from("/etc"),
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }
}

/// How the container was started, read from the environment its launcher gave `run`: as one
/// rank of an MPI job (`mpirun`, `srun --mpi=...`), and whether a PMIx server is serving it.
/// MPI codes run one `udocker run` per rank, and the user should not have to know what the
/// ranks need from the container (see [`mpi_dirs`] and [`prepare`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Launch {
    /// Started by an MPI launcher or a resource manager's PMI/PMIx server.
    pub mpi: bool,
    /// A PMIx server waits for this rank (`PMIX_RANK`, `PMIX_NAMESPACE`).
    pub pmix: bool,
    /// Inside a batch job (Slurm, PBS, LSF, Flux) or an MPI job: the CPU set the resource
    /// manager gave is part of the job's contract and must reach the program unchanged.
    pub job: bool,
}

impl Launch {
    pub fn from_env(env: &[(String, String)]) -> Launch {
        let has = |k: &str| env.iter().any(|(x, _)| x == k);
        let pmix = has("PMIX_RANK") || has("PMIX_NAMESPACE");
        let mpi = pmix
            || has("OMPI_COMM_WORLD_RANK")
            || has("PMI_RANK")
            || has("PMI_FD")
            || has("PMI_PORT");
        let job = mpi
            || ["SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "FLUX_JOB_ID"]
                .iter()
                .any(|k| has(k));
        Launch { mpi, pmix, job }
    }

    /// From this process's environment.
    pub fn current() -> Launch {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Launch::from_env(&env)
    }
}

/// The host directories an MPI rank must see at the same paths: `/tmp` (OpenMPI's session
/// directory and PMIx's rendezvous files live there by default), `/dev/shm` (shared-memory
/// segments the ranks of a node open from each other: the R modes otherwise give each
/// container a /dev/shm of its own, and OpenMPI falls back to TCP) and the directories the
/// launcher names in the environment (under `srun --mpi=pmix` the PMIx server's directory is in
/// slurmd's spool, not in /tmp). Only absolute paths of existing directories, each once,
/// leaving out those below another one already listed.
pub fn mpi_dirs(env: &[(String, String)]) -> Vec<PathBuf> {
    let mut want: Vec<&str> = vec!["/tmp", "/dev/shm"];
    for (k, v) in env {
        let named = matches!(
            k.as_str(),
            "PMIX_SERVER_TMPDIR"
                | "PMIX_SYSTEM_TMPDIR"
                | "OMPI_MCA_orte_tmpdir_base"
                | "OMPI_MCA_orte_top_session_dir"
        ) || (k.starts_with("PMIX_DSTORE_") && k.ends_with("_BASE_PATH"));
        if named && v.starts_with('/') {
            want.push(v);
        }
    }
    let mut out: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = want
        .into_iter()
        .filter_map(|d| fs::canonicalize(d).ok())
        .filter(|d| d.is_dir() && d != Path::new("/"))
        .collect();
    // Shortest first, so that a directory below one already bound is seen as covered.
    dirs.sort_by_key(|d| d.as_os_str().len());
    for d in dirs {
        if !out.iter().any(|o| d.starts_with(o)) {
            out.push(d);
        }
    }
    out
}

/// Everything an engine needs to start the container.
#[derive(Debug, Clone)]
pub struct Plan {
    pub root: PathBuf,
    pub volumes: Vec<Volume>,
    pub cwd: String,
    pub user: RunUser,
    /// argv[0] is an absolute path in the container.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub kernel: Option<String>,
    pub cpus: Option<Vec<usize>>,
    pub mode: ExecMode,
    /// `--device` as given.
    pub devices: Vec<String>,
    /// (container port, host port) to remap (P modes).
    pub ports: Vec<(u16, u16)>,
    /// Network cooperation (P modes).
    pub netcoop: bool,
    /// Things the user should hear about (ignored items, the default command).
    pub warnings: Vec<String>,
}

fn translator(root: &Path, vols: &[Volume]) -> Translator {
    Translator::new(
        root.as_os_str().as_bytes(),
        vols.iter()
            .map(|v| tracer::Binding {
                host: v.host.as_os_str().as_bytes().to_vec(),
                guest: v.guest.as_bytes().to_vec(),
                readonly: v.readonly,
                nofollow: false,
            })
            .collect(),
    )
}

/// The host path of a guest path (symlinks followed inside the container), if it resolves.
fn host_path(tr: &Translator, guest: &str) -> Option<PathBuf> {
    let h = match tr.resolve(&RealFs, guest.as_bytes(), true) {
        Ok((_, h)) => h,
        // Below a missing directory (a workdir to create): the lexical mapping.
        Err(nix::errno::Errno::ENOENT) => tr.map(&tracer::path::normalize(guest.as_bytes())),
        Err(_) => return None,
    };
    Some(PathBuf::from(std::ffi::OsString::from_vec(h)))
}

fn guest_join(dir: &str, name: &str) -> String {
    let mut s = dir.trim_end_matches('/').to_string();
    s.push('/');
    s.push_str(name);
    String::from_utf8_lossy(&tracer::path::normalize(s.as_bytes())).into_owned()
}

/// Find the program to run as the shell would: a name with `/` relative to `cwd`, else each
/// absolute directory of `path` in turn. Returns the guest path (symlinks not resolved, so
/// multi-call binaries such as busybox see the name they were called by).
pub fn find_command(
    tr: &Translator,
    cmd: &str,
    cwd: &str,
    path: &str,
) -> Result<String, EngineError> {
    let executable = |guest: &str| -> Option<bool> {
        let h = host_path(tr, guest)?;
        let m = fs::metadata(h).ok()?;
        m.is_file().then_some(m.permissions().mode() & 0o111 != 0)
    };
    if cmd.is_empty() {
        return Err(EngineError::CommandNotFound(cmd.to_string()));
    }
    let candidates: Vec<String> = if cmd.contains('/') {
        vec![if cmd.starts_with('/') {
            String::from_utf8_lossy(&tracer::path::normalize(cmd.as_bytes())).into_owned()
        } else {
            guest_join(cwd, cmd)
        }]
    } else {
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| guest_join(d, cmd))
            .collect()
    };
    let mut not_exec = false;
    for c in candidates {
        match executable(&c) {
            Some(true) => return Ok(c),
            Some(false) => not_exec = true,
            None => {}
        }
    }
    Err(if not_exec {
        EngineError::NotExecutable(cmd.to_string())
    } else {
        EngineError::CommandNotFound(cmd.to_string())
    })
}

/// Write `data` to `p` unless it already holds exactly that (a running container may be reading
/// it; the replacement is atomic).
fn write_if_changed(p: &Path, data: &[u8]) -> Result<(), EngineError> {
    if fs::read(p).ok().as_deref() == Some(data) {
        return Ok(());
    }
    crate::fsutil::write_atomic(p, data, 0o644).map_err(io_err("writing", p))
}

fn canonical_host(p: &str) -> Option<PathBuf> {
    fs::canonicalize(p).ok()
}

fn volumes(
    req: &RunRequest,
    target: &Target,
    host: &Host,
    warnings: &mut Vec<String>,
) -> Result<Vec<Volume>, EngineError> {
    let mut sys: Vec<Volume> = Vec::new();
    let mut add_sys = |h: PathBuf, g: &str, names: Vec<String>| {
        sys.push(Volume {
            host: h,
            guest: g.to_string(),
            readonly: false,
            names,
            origin: Origin::Sysdir,
        })
    };
    if !req.nosysdirs {
        for d in SYSDIRS {
            if let Some(h) = canonical_host(d) {
                add_sys(h, d, vec![d.to_string()]);
            }
        }
        // /etc/hosts and /etc/hostname: the host's, else small files of our own.
        for (name, fallback) in [
            (
                "hosts",
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string(),
            ),
            ("hostname", format!("{}\n", host.nodename)),
        ] {
            let hp = host.etc.join(name);
            let g = format!("/etc/{name}");
            let h = match fs::canonicalize(&hp) {
                Ok(h) if h.is_file() => h,
                _ => {
                    let p = target.state_dir.join(name);
                    write_if_changed(&p, fallback.as_bytes())?;
                    p
                }
            };
            add_sys(h, &g, vec![g.clone()]);
        }
    }
    // An MPI rank reaches its launcher's PMIx server and its peers through files in these.
    if !req.nosysdirs && Launch::from_env(&host.env).mpi {
        for d in mpi_dirs(&host.env) {
            let g = d.to_string_lossy().into_owned();
            add_sys(d, &g, vec![g.clone()]);
        }
    }
    if req.dri {
        for d in DRI {
            if let Some(h) = canonical_host(d) {
                add_sys(h, d, vec![d.to_string()]);
            }
        }
    }
    if req.bindhome {
        if let Some(h) = canonical_host(&host.home.to_string_lossy()) {
            let g = host.home.to_string_lossy().into_owned();
            add_sys(h, &g, vec![g.clone()]);
        }
    }
    let mut user = Vec::new();
    for v in &req.volumes {
        let h = fs::canonicalize(&v.host).map_err(|e| {
            EngineError::InvalidVolume(v.spec.clone(), format!("host path {}: {e}", v.host))
        })?;
        let guest =
            String::from_utf8_lossy(&tracer::path::normalize(v.guest.as_bytes())).into_owned();
        user.push(Volume {
            host: h,
            guest: guest.clone(),
            readonly: v.readonly,
            names: vec![
                v.host.clone(),
                format!("{}:{}", v.host, v.guest),
                v.spec.clone(),
            ],
            origin: Origin::User,
        });
    }
    // A user volume replaces a system one at the same place; later -v replace earlier ones.
    let mut all: Vec<Volume> = Vec::new();
    for v in sys.into_iter().chain(user) {
        all.retain(|o| o.guest != v.guest);
        all.push(v);
    }
    for n in &req.novol {
        let before = all.len();
        all.retain(|v| !v.names.iter().any(|x| x == n));
        if all.len() == before {
            warnings.push(format!("--novol={n}: no such volume"));
        }
    }
    Ok(all)
}

/// Build the plan: volumes, user and its passwd/group, working directory, environment, command.
/// Writes only small files into `target.state_dir` (hosts, hostname, passwd, group).
pub fn prepare(req: &RunRequest, target: &Target, host: &Host) -> Result<Plan, EngineError> {
    let mut warnings = Vec::new();
    let empty = ImageMeta::default();
    let meta = if req.nometa { &empty } else { &target.meta };
    let mut vols = volumes(req, target, host, &mut warnings)?;

    // The user, from the container's password database as the volumes show it.
    let tr = translator(&target.root, &vols);
    let read_guest = |g: &str| -> String {
        host_path(&tr, g)
            .and_then(|h| fs::read_to_string(h).ok())
            .unwrap_or_default()
    };
    let (passwd_base, group_base) = if req.hostauth {
        let r = |n: &str| fs::read_to_string(host.etc.join(n)).unwrap_or_default();
        (r("passwd"), r("group"))
    } else {
        (read_guest("/etc/passwd"), read_guest("/etc/group"))
    };
    // A PMIx server checks that the uid a client announces is the one the kernel reports for
    // its socket: a rank under a fake root fails (OpenMPI: "OPAL ERROR: Unreachable"). So
    // without --user, ranks run as the real user (the image's User is not honoured then).
    let pmix_uid = req.user.is_none() && host.uid != 0 && Launch::from_env(&host.env).pmix;
    let spec = match (&req.user, &meta.user) {
        (Some(u), _) => Some(u.clone()),
        (None, _) if pmix_uid => Some(UserSpec::UidGid(host.uid, host.gid)),
        (None, Some(u)) => Some(users::parse_user_spec(u)?),
        (None, None) => None,
    };
    let mut user = users::resolve_user(spec.as_ref(), &users::parse_passwd(&passwd_base))?;
    if req.bindhome {
        user.entry.home = host.home.to_string_lossy().into_owned();
    }
    let user_volume_at: Vec<bool> = ["/etc/passwd", "/etc/group"]
        .iter()
        .map(|g| {
            vols.iter()
                .any(|v| v.guest == *g && v.origin == Origin::User)
        })
        .collect();
    if !req.containerauth {
        let tag = format!("{}.{}.{}", user.entry.name, user.entry.uid, user.entry.gid);
        for (i, (name, data)) in [
            ("passwd", users::synth_passwd(&passwd_base, &user)),
            ("group", users::synth_group(&group_base, &user)),
        ]
        .into_iter()
        .enumerate()
        {
            // A volume over the file is the user's choice: nothing is synthesized (upstream).
            if user_volume_at[i] {
                continue;
            }
            let g = format!("/etc/{name}");
            let p = target.state_dir.join(format!("{name}.{tag}"));
            write_if_changed(&p, data.as_bytes())?;
            vols.retain(|v| v.guest != g);
            vols.push(Volume {
                host: p,
                guest: g.clone(),
                readonly: false,
                names: vec![g],
                origin: Origin::Auth,
            });
        }
    }
    let tr = translator(&target.root, &vols);
    let is_dir = |g: &str| host_path(&tr, g).is_some_and(|h| h.is_dir());

    // Working directory: -w, the image's, else / for root and the home directory otherwise.
    let cwd = if let Some(w) = &req.workdir {
        if !w.starts_with('/') || !is_dir(w) {
            return Err(EngineError::InvalidWorkdir(w.clone()));
        }
        w.clone()
    } else if let Some(w) = &meta.workdir {
        if !w.starts_with('/') {
            return Err(EngineError::InvalidWorkdir(w.clone()));
        }
        if !is_dir(w) {
            // docker creates the image's WorkingDir when it is missing.
            let h = host_path(&tr, w).ok_or_else(|| EngineError::InvalidWorkdir(w.clone()))?;
            fs::create_dir_all(&h).map_err(|_| EngineError::InvalidWorkdir(w.clone()))?;
        }
        w.clone()
    } else if !user.is_root() && is_dir(&user.entry.home) {
        user.entry.home.clone()
    } else {
        "/".to_string()
    };
    let cwd = String::from_utf8_lossy(&tracer::path::normalize(cwd.as_bytes())).into_owned();

    let names = target.names.clone();
    let root_s = target.root.to_string_lossy().into_owned();
    let (env, env_warnings) = env::build(&env::EnvInput {
        host: &host.env,
        hostenv: req.hostenv,
        image: &meta.env,
        env_file_lines: req.env_file_lines.clone(),
        cli: &req.env,
        home: &user.entry.home,
        user: &user.entry.name,
        container_id: &target.id,
        container_root: &root_s,
        exec_mode: target.mode.as_str(),
        names: &names,
        ruser: &host.user,
    });
    warnings.extend(env_warnings);
    let mut env = env;
    // The R modes put each rank in a user namespace of its own, where OpenMPI's default
    // single-copy transport (CMA, process_vm_readv) is refused between ranks: it warns once
    // per rank and falls back. Say beforehand that there is none (unless the user chose).
    if target.mode.is_runc() && Launch::from_env(&host.env).mpi {
        env.entry("OMPI_MCA_btl_vader_single_copy_mechanism".into())
            .or_insert_with(|| "none".into());
    }

    // The command: docker's rules for Entrypoint and Cmd.
    let mut argv: Vec<String> = match &req.entrypoint {
        Some(e) if e.trim().is_empty() => req.args.clone(),
        Some(e) => e
            .split_whitespace()
            .map(str::to_string)
            .chain(req.args.iter().cloned())
            .collect(),
        None => {
            let mut v = meta.entrypoint.clone().unwrap_or_default();
            if req.args.is_empty() {
                v.extend(meta.cmd.clone().unwrap_or_default());
            } else {
                v.extend(req.args.iter().cloned());
            }
            v
        }
    };
    let path = env.get("PATH").cloned().unwrap_or_default();
    if argv.is_empty() {
        let sh = find_command(&tr, "bash", &cwd, &path)
            .or_else(|_| find_command(&tr, "sh", &cwd, &path))
            .map_err(|_| EngineError::CommandNotFound("sh (no command given)".into()))?;
        warnings.push(format!("no command given, running {sh}"));
        argv.push(sh);
    } else {
        argv[0] = find_command(&tr, &argv[0], &cwd, &path)?;
    }
    Ok(Plan {
        root: target.root.clone(),
        volumes: vols,
        cwd,
        user,
        argv,
        env,
        kernel: req.kernel.clone(),
        cpus: req.cpus.clone(),
        mode: target.mode,
        devices: req.devices.clone(),
        ports: req.ports.clone(),
        netcoop: req.netcoop,
        warnings,
    })
}

/// `--cpuset-cpus=0,2-3` → the CPU numbers (sorted, unique).
pub fn parse_cpuset(s: &str) -> Result<Vec<usize>, EngineError> {
    let bad = || EngineError::InvalidCpuset(s.to_string());
    let num = |t: &str| -> Result<usize, EngineError> {
        let t = t.trim();
        if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b >= 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => {
                let n = num(part)?;
                if n >= 4096 {
                    return Err(bad());
                }
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
