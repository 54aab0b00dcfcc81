//! `tracer`: runs a program inside a guest root directory without privileges, by intercepting
//! its system calls with ptrace(2) and rewriting the paths they carry (udocker's P1/P2 modes,
//! PRoot's job). P1 installs a seccomp-BPF filter so only path-carrying calls stop; P2 stops at
//! every call and is used when a filter cannot be installed.
//!
//! This crate knows nothing about images or repositories: it is given a root, bindings, a
//! working directory and a command. `udocker` is the only crate that prints or exits.

mod arch;
mod emulate;
mod exec;
mod mem;
pub mod net;
pub mod path;
mod ptrace_emu;
mod seccomp;
mod sockets;
mod sys;
mod syscalls;
mod tracer;

use std::fmt;
use std::path::PathBuf;

pub use path::Binding;

/// udocker's execution modes served by this crate (`spec/udocker.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// seccomp-BPF filter + ptrace: only translated syscalls stop.
    P1,
    /// ptrace only: every syscall stops.
    P2,
    /// P1 when a filter can be installed, else P2.
    Auto,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Host directory that is the guest's `/`.
    pub root: PathBuf,
    /// `-b HOST[:GUEST]`, host paths already absolute.
    pub bindings: Vec<Binding>,
    /// Guest working directory.
    pub cwd: Vec<u8>,
    /// `-0` / `-i UID:GID`: ids the guest sees for itself and for files the user owns.
    pub fake_id: Option<(u32, u32)>,
    /// `-k RELEASE`: what uname(2) reports.
    pub kernel_release: Option<String>,
    /// `--kill-on-exit`: kill the remaining guest processes when the first one exits.
    pub kill_on_exit: bool,
    pub mode: Mode,
    /// Keep the tracer and the guest on one CPU while the guest runs at most two tasks at a
    /// time (a shell and its child): every stop is then a same-CPU switch instead of two
    /// cross-CPU wake-ups, which on virtual machines costs several times the stop itself.
    /// Released for good as soon as the guest runs more tasks at once (parallel work).
    pub pin_cpu: bool,
    /// Create missing binding mount points in the rootfs (PRoot's "glue"); off with PRoot's
    /// PROOT_DONT_POLLUTE_ROOTFS. The bindings work either way; glue lets the guest list them.
    pub glue: bool,
    /// Report the exit status of the last guest process to end rather than the first one's
    /// (PRoot's rule; a shell's rule is the first one's, udocker's default).
    pub last_exit_status: bool,
    /// `-p GUEST:HOST`: internet ports the guest binds that are really bound elsewhere (net.rs).
    pub ports: Vec<net::PortMap>,
    /// `-n`: network cooperation. Every other internet port the guest binds is bound where the
    /// kernel finds a free one and remembered, so that several guests can use one port number
    /// side by side; their own connections to it on the loopback address find it.
    pub netcoop: bool,
    /// 0 quiet; 1 warnings; 2+ debug on stderr.
    pub verbose: u8,
    /// `-q QEMU`: run foreign programs through a user-mode emulator (PRoot's option).
    pub qemu: Option<Qemu>,
}

/// A user-mode emulator for programs built for another machine (PRoot's `-q`). The host's `/`
/// is bound at [`HOST_ROOTFS`] in the guest; the emulator and every other host program (ELF of
/// the host's machine: "mixed mode") run with the host's loader and libraries found through it.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The emulator's command line; `argv[0]` is an absolute host path.
    pub argv: Vec<Vec<u8>>,
    /// Treat every program as foreign, host ELFs included (PRoot's PROOT_FORCE_FOREIGN_BINARY).
    pub force_foreign: bool,
    /// Library directories for host programs, as host paths (PRoot takes its own
    /// LD_LIBRARY_PATH, else `/`); the host's standard directories follow them.
    pub host_library_path: Vec<u8>,
}

/// Where the host's `/` appears in the guest when an emulator is in use (PRoot's name).
pub const HOST_ROOTFS: &[u8] = b"/host-rootfs";

#[derive(Debug)]
pub enum TracerError {
    /// The command could not be started (fork, ptrace seize).
    Start(String),
    /// A ptrace or wait call failed in a way the tracer cannot recover from.
    Trace(String),
    Config(String),
}

impl fmt::Display for TracerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TracerError::Start(m) => write!(f, "starting the guest: {m}"),
            TracerError::Trace(m) => write!(f, "tracing the guest: {m}"),
            TracerError::Config(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for TracerError {}

/// Run `argv` (argv[0] is looked up as a guest path, as execve would) with `envp` in the guest
/// described by `cfg`. Returns the exit status of the first process: its exit code, or 128+N
/// when it was killed by signal N.
pub fn run(cfg: &Config, argv: &[Vec<u8>], envp: &[Vec<u8>]) -> Result<i32, TracerError> {
    let program = argv.first().cloned().unwrap_or_default();
    tracer::run(cfg, &program, argv, envp).map(|o| o.status)
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// As [`run`] returns it.
    pub status: i32,
    /// The first program could not be executed: the path its execve(2) named and the errno
    /// (the status is then 127, as a shell reports it).
    pub start_error: Option<(Vec<u8>, i32)>,
}

/// As [`run_program`], with why the first program could not start when it could not.
pub fn run_program_outcome(
    cfg: &Config,
    program: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<Outcome, TracerError> {
    tracer::run(cfg, program, argv, envp)
}

/// As [`run`], with the program to execute given apart from argv (argv[0] stays as typed, as a
/// shell passes it: `ls`, not `/usr/bin/ls`).
pub fn run_program(
    cfg: &Config,
    program: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<i32, TracerError> {
    tracer::run(cfg, program, argv, envp).map(|o| o.status)
}
