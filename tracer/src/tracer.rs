//! The event loop: one thread waits for every tracee (waitpid(-1, __WALL)) and answers each stop.
//!
//! Stops we see (ptrace(2)): seccomp stops (P1, syscall entry of a filtered call), syscall stops
//! (P2 entries and exits, and P1 exits we asked for), fork/vfork/clone and exec events, group-stops
//! (PTRACE_EVENT_STOP: answered with PTRACE_LISTEN so job control works) and signal-delivery
//! stops (the signal is passed on unchanged). Linux >= 4.8 reports the seccomp stop after the
//! syscall-enter stop would have been (we resume with PTRACE_CONT, so there is none); older
//! kernels report it first and then a syscall-enter stop, which `skip_enter` absorbs.

use crate::arch::Regs;
use crate::path::{RealFs, Translator};
use crate::sys::{self, Wait};
use crate::syscalls;
use crate::{Config, Mode, TracerError};
use nix::errno::Errno;
use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;

/// What to do when the syscall that stopped returns.
#[derive(Debug, Clone)]
pub enum ExitAction {
    /// sched_getaffinity(2) while pinned: the guest's own CPU set written back at `buf`.
    Affinity { buf: u64 },
    /// bind(2) under `-n` moved to port 0: learn the port the kernel chose for `guest`.
    BindAuto { fd: i32, guest: u16 },
    /// Put the argument registers back (we pointed them at our copies of the paths).
    Restore,
    /// The call was skipped: make it return this.
    Return(i64),
    /// getcwd(2): the kernel wrote a host path; turn it into the guest's.
    Getcwd { buf: u64, size: u64 },
    /// readlink(at)(2) on a /proc magic link: host path to guest path.
    Readlink {
        buf: u64,
        size: u64,
        exe_of: Option<Pid>,
    },
    /// stat family with a fake id: report the user's files as owned by it.
    StatIds { buf: u64, statx: bool },
    /// getresuid/getresgid with a fake id: real, effective, saved.
    ResIds { ptrs: [u64; 3], ids: [u32; 3] },
    /// getsockname/getpeername/accept/recvfrom/recvmsg: an AF_UNIX host path written at
    /// `addr` (length at `lenp`, `cap` bytes of room) back to the guest's; `peer` (all but
    /// getsockname): a loopback peer's mapped port back to the guest's port (net.rs).
    SockName {
        addr: u64,
        lenp: u64,
        cap: u32,
        peer: bool,
    },
    /// uname with `-k`.
    Uname { buf: u64 },
    /// execve(at): remember the guest program for /proc/self/exe once the exec happens.
    Exec,
    /// A privileged call made by a fake root (`-0`): the kernel's EPERM becomes success, as
    /// the guest believes it holds the capability (PRoot's rule; nothing is changed on disk).
    EpermIsSuccess,
    /// chdir(2) to this canonical guest path: remember the name on success.
    Chdir(Vec<u8>),
    /// We ran prctl(PR_SET_NAME) in place of the guest's call: run the guest's call again.
    Reexec,
    /// A guest ptracer's wait4/waitid that ran in the kernel (see ptrace_emu::on_wait_exit).
    EmuWait,
}

/// The fake credentials of a guest process under `-0`/`-i` (credentials(7)): what the id
/// calls report and how the set*id calls change them, with the kernel's permission rules
/// (an effective id 0 may set anything, others only their real, effective or saved id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creds {
    pub uid: [u32; 3],
    pub gid: [u32; 3],
    pub fsuid: u32,
    pub fsgid: u32,
}

impl Creds {
    pub fn new(uid: u32, gid: u32) -> Creds {
        Creds {
            uid: [uid; 3],
            gid: [gid; 3],
            fsuid: uid,
            fsgid: gid,
        }
    }

    /// Apply an id call; returns (its return value, the new credentials).
    pub fn apply(mut self, n: i64, a: [u64; 3]) -> (i64, Creds) {
        use crate::arch::nr;
        const EPERM: i64 = -(libc::EPERM as i64);
        let privileged = self.uid[1] == 0;
        let keep = |v: u64| v as u32 == u32::MAX; // -1: unchanged
        let ok_uid = |c: &Creds, v: u32| privileged || c.uid.contains(&v);
        let ok_gid = |c: &Creds, v: u32| privileged || c.gid.contains(&v);
        match n {
            nr::GETUID => (self.uid[0] as i64, self),
            nr::GETEUID => (self.uid[1] as i64, self),
            nr::GETGID => (self.gid[0] as i64, self),
            nr::GETEGID => (self.gid[1] as i64, self),
            nr::SETUID => {
                let v = a[0] as u32;
                if privileged {
                    self.uid = [v; 3];
                } else if self.uid[0] == v || self.uid[2] == v {
                    self.uid[1] = v;
                } else {
                    return (EPERM, self);
                }
                self.fsuid = self.uid[1];
                (0, self)
            }
            nr::SETGID => {
                let v = a[0] as u32;
                if privileged {
                    self.gid = [v; 3];
                } else if self.gid[0] == v || self.gid[2] == v {
                    self.gid[1] = v;
                } else {
                    return (EPERM, self);
                }
                self.fsgid = self.gid[1];
                (0, self)
            }
            nr::SETRESUID | nr::SETREUID => {
                let vals = if n == nr::SETREUID {
                    [a[0], a[1], u64::from(u32::MAX)]
                } else {
                    a
                };
                let mut c = self;
                for (i, v) in vals.iter().enumerate() {
                    if !keep(*v) {
                        if !ok_uid(&self, *v as u32) {
                            return (EPERM, self);
                        }
                        c.uid[i] = *v as u32;
                    }
                }
                // setreuid: the saved id follows a change of the real id or an effective id
                // other than the real one (setreuid(2)).
                if n == nr::SETREUID
                    && (!keep(vals[0]) || (!keep(vals[1]) && c.uid[1] != self.uid[0]))
                {
                    c.uid[2] = c.uid[1];
                }
                c.fsuid = c.uid[1];
                (0, c)
            }
            nr::SETRESGID | nr::SETREGID => {
                let vals = if n == nr::SETREGID {
                    [a[0], a[1], u64::from(u32::MAX)]
                } else {
                    a
                };
                let mut c = self;
                for (i, v) in vals.iter().enumerate() {
                    if !keep(*v) {
                        if !ok_gid(&self, *v as u32) {
                            return (EPERM, self);
                        }
                        c.gid[i] = *v as u32;
                    }
                }
                if n == nr::SETREGID
                    && (!keep(vals[0]) || (!keep(vals[1]) && c.gid[1] != self.gid[0]))
                {
                    c.gid[2] = c.gid[1];
                }
                c.fsgid = c.gid[1];
                (0, c)
            }
            // setfsuid/setfsgid return the previous value whether or not they change it.
            nr::SETFSUID => {
                let old = self.fsuid;
                if ok_uid(&self, a[0] as u32) || a[0] as u32 == self.fsuid {
                    self.fsuid = a[0] as u32;
                }
                (old as i64, self)
            }
            nr::SETFSGID => {
                let old = self.fsgid;
                if ok_gid(&self, a[0] as u32) || a[0] as u32 == self.fsgid {
                    self.fsgid = a[0] as u32;
                }
                (old as i64, self)
            }
            nr::SETGROUPS => (if privileged { 0 } else { EPERM }, self),
            _ => (-(libc::ENOSYS as i64), self),
        }
    }
}

#[derive(Debug)]
pub struct Saved {
    pub orig: Regs,
    pub action: ExitAction,
}

#[derive(Debug, Default)]
pub struct Tracee {
    pub in_syscall: bool,
    pub skip_enter: bool,
    pub saved: Option<Saved>,
    /// Guest path of the program this process runs (what /proc/self/exe must say).
    pub exe: Option<Vec<u8>>,
    pub pending_exe: Option<Vec<u8>>,
    /// The first child before its first execve (running the tracer's setup code).
    pub preexec: bool,
    /// After an exec through the guest's loader (or a script's interpreter, run directly) the
    /// kernel named the task after what it ran (`ld-linux-x86-64` in /proc/PID/comm, what ps,
    /// pgrep and pkill match): the name execve(2) gives, to set with prctl(PR_SET_NAME) at the
    /// task's next traced call.
    pub pending_comm: Option<Vec<u8>>,
    /// The exec being prepared: the task name the kernel would give it, when the exec we make
    /// instead gets another one.
    pub exec_comm: Option<Vec<u8>>,
    /// Fake credentials (`-0`/`-i`), inherited by children.
    pub creds: Option<Creds>,
    /// The argv[0] the guest asked for, when its loader cannot be told (`--argv0`).
    pub argv0_wanted: Option<Vec<u8>>,
    /// Where the loader's copy of the program path lies in the new image (address, length)
    /// and what to write there instead.
    pub argv0_patch: Option<(u64, usize, Vec<u8>)>,
    /// The loader has opened the program: the next traced call may patch argv[0].
    pub program_opened: bool,
    /// The guest name of the working directory as last entered with chdir(2): one host
    /// directory bound at two guest paths has two names, and the kernel's cwd cannot tell
    /// which one the guest used. Trusted only while it still maps to the kernel's cwd.
    pub cwd: Option<Vec<u8>>,
    /// `-q`: LD_LIBRARY_PATH as made for host programs and the guest's own (inherited).
    pub ldso: crate::exec::LdsoMemo,
}

pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub tr: Translator,
    pub fs: RealFs,
    pub uid: u32,
    pub gid: u32,
    pub p2: bool,
    /// Whether a guest ld.so understands `--argv0` (glibc >= 2.33), by host path.
    pub loader_argv0: HashMap<Vec<u8>, bool>,
    pub tracees: HashMap<Pid, Tracee>,
    /// ptrace(2) as seen by guest debuggers (see ptrace_emu).
    pub emu: crate::ptrace_emu::Emu,
    /// Short aliases for AF_UNIX paths too long once translated (see sockets.rs).
    pub sock_aliases: crate::sockets::Aliases,
    /// While the tracer and a serial guest are pinned to one CPU: the CPU set they had (the
    /// kernel's cpumask bytes), what the guest is shown and what everyone gets back.
    pub pinned_mask: Option<Vec<u8>>,
    /// Ports learnt under `-n` (network cooperation): guest port -> the host port bound.
    pub auto_ports: Vec<crate::net::PortMap>,
    /// Why the first program could not be executed (the path it named, the error).
    pub start_error: Option<(Vec<u8>, Errno)>,
}

impl Ctx<'_> {
    /// Every port mapping in force: `-p` ones first (they win), then those `-n` learnt.
    pub fn port_maps(&self) -> Vec<crate::net::PortMap> {
        let mut v = self.cfg.ports.clone();
        v.extend(self.auto_ports.iter().copied());
        v
    }

    pub fn debug(&self, m: impl FnOnce() -> String) {
        if self.cfg.verbose >= 2 {
            eprintln!("tracer: {}", m());
        }
    }
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(u) = nix::sys::utsname::uname() else {
        return true;
    };
    let rel = u.release().to_string_lossy().into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

fn cstring(v: &[u8]) -> Result<CString, TracerError> {
    CString::new(v.to_vec()).map_err(|_| TracerError::Config("NUL byte in argument".into()))
}

pub fn run(
    cfg: &Config,
    program: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
) -> Result<crate::Outcome, TracerError> {
    if argv.is_empty() {
        return Err(TracerError::Config("no command".into()));
    }
    let root = std::fs::canonicalize(&cfg.root)
        .map_err(|e| TracerError::Config(format!("root {}: {e}", cfg.root.display())))?;
    if !root.is_dir() {
        return Err(TracerError::Config(format!(
            "root {} is not a directory",
            root.display()
        )));
    }
    let mut glue = Glue {
        in_rootfs: cfg.glue,
        ..Glue::default()
    };
    let mut wanted = cfg.bindings.clone();
    if cfg.qemu.is_some() {
        // The host's programs (the emulator, host ELFs) and their libraries, for the guest.
        wanted.push(crate::Binding {
            host: b"/".to_vec(),
            guest: crate::HOST_ROOTFS.to_vec(),
            readonly: false,
            nofollow: false,
        });
        // A guest's /etc/ld.so.preload names guest libraries, which the host's loader must not
        // load into the emulator (PRoot binds /dev/null there too). Without one there is
        // nothing to hide, and no file to make for the binding.
        if root.join("etc/ld.so.preload").exists() {
            wanted.push(crate::Binding {
                host: b"/dev/null".to_vec(),
                guest: b"/etc/ld.so.preload".to_vec(),
                readonly: false,
                nofollow: false,
            });
        }
    }
    let bindings = prepare_bindings(root.as_os_str().as_bytes(), &wanted, &mut glue);
    let tr = Translator::new(root.as_os_str().as_bytes(), bindings);
    let fs = RealFs;
    // The initial directory: a guest path, entered on the host side before exec.
    let cwd_guest = if cfg.cwd.is_empty() {
        b"/".to_vec()
    } else {
        crate::path::normalize(&cfg.cwd)
    };
    let (cwd_canon, cwd_host) = tr
        .resolve(&fs, &cwd_guest, true)
        .map_err(|e| TracerError::Config(format!("working directory: {e}")))?;

    let want_filter = cfg.mode != Mode::P2;
    let filter = if want_filter {
        match crate::seccomp::build(
            cfg.fake_id.is_some(),
            cfg.kernel_release.is_some(),
            cfg.bindings.iter().any(|b| b.readonly),
            // With the host's / as the guest's and nothing bound, paths are the same on both
            // sides: sendmsg/recvmsg need not stop (see sockets.rs for the cost).
            !(root.as_os_str() == "/" && wanted.is_empty()),
            cfg.pin_cpu,
        ) {
            Ok(f) => Some(f),
            Err(e) if cfg.mode == Mode::Auto => {
                if cfg.verbose >= 1 {
                    eprintln!("tracer: no seccomp filter ({e}), every system call will stop (P2)");
                }
                None
            }
            Err(e) => return Err(TracerError::Start(format!("seccomp filter: {e}"))),
        }
    } else {
        None
    };
    let p2 = filter.is_none();
    let plan = sys::ChildPlan::new(
        cstring(program)?,
        argv.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        envp.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
        cstring(&cwd_host)?,
        filter,
    );
    // Pinning (see Config::pin_cpu): set before fork so the child inherits it. The set we had
    // is kept to show the guest (sched_getaffinity) and to give back when pinning ends.
    let mut pinned_mask = None;
    if cfg.pin_cpu {
        if let (Some(mask), Ok(cpu)) = (sys::affinity_bytes(0), nix::sched::sched_getcpu()) {
            let count: u32 = mask.iter().map(|b| b.count_ones()).sum();
            let mut one = nix::sched::CpuSet::new();
            if count > 1
                && one.set(cpu).is_ok()
                && nix::sched::sched_setaffinity(Pid::from_raw(0), &one).is_ok()
            {
                pinned_mask = Some(mask);
            }
        }
    }
    sys::install_forwarders();
    let child = sys::spawn_stopped(&plan).map_err(|e| TracerError::Start(format!("fork: {e}")))?;
    // Wait for the child's self-stop, then seize it.
    // If it cannot be traced, the child must never go on to run the guest's command untraced
    // (host paths, no seccomp tracer: every filtered call would fail with ENOSYS).
    let abandon = |e: TracerError| {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        e
    };
    match waitpid(child, Some(WaitPidFlag::WSTOPPED)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        other => {
            return Err(abandon(TracerError::Start(format!(
                "child did not stop: {other:?}"
            ))))
        }
    }
    let mut opts = Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_EXITKILL;
    if !p2 {
        opts |= Options::PTRACE_O_TRACESECCOMP;
    }
    ptrace::seize(child, opts).map_err(|e| {
        abandon(TracerError::Start(format!(
            "ptrace: {e} (is ptrace forbidden here? try a F mode)"
        )))
    })?;
    nix::sys::signal::kill(child, Signal::SIGCONT)
        .map_err(|e| abandon(TracerError::Start(e.to_string())))?;

    let mut ctx = Ctx {
        cfg,
        tr,
        fs,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        p2,
        loader_argv0: HashMap::new(),
        tracees: HashMap::new(),
        emu: Default::default(),
        sock_aliases: Default::default(),
        auto_ports: Vec::new(),
        pinned_mask,
        start_error: None,
    };
    ctx.tracees.insert(
        child,
        Tracee {
            preexec: true,
            cwd: Some(cwd_canon),
            ..Tracee::default()
        },
    );
    let old_kernel = !kernel_at_least(4, 8);
    let mut main_status: Option<i32> = None;
    let mut last_status: Option<i32> = None;

    loop {
        // Ptracees their guest ptracer resumed: carry on with the stop we kept.
        for (pid, held, sig) in ctx.emu.take_replays() {
            use crate::ptrace_emu::Held;
            match held {
                Held::Enter => enter_stop(&mut ctx, pid, sig),
                Held::Seccomp => seccomp_stop(&mut ctx, pid, old_kernel),
                Held::Resume | Held::Signal => resume(&ctx, pid, sig),
            }
        }
        let pending = sys::PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        if pending != 0 {
            if let Ok(sig) = Signal::try_from(pending) {
                let _ = nix::sys::signal::kill(child, sig);
            }
        }
        let status = match sys::wait_all() {
            Ok(s) => s,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(e) => return Err(TracerError::Trace(format!("waitpid: {e}"))),
        };
        if cfg.verbose >= 3 {
            ctx.debug(|| format!("wait: {status:?}"));
        }
        match status {
            Wait::Exited(pid, code) => {
                ctx.tracees.remove(&pid);
                crate::ptrace_emu::on_task_gone(&mut ctx, pid, (code & 0xff) << 8);
                last_status = Some(code);
                if pid == child {
                    main_status = Some(code);
                    if cfg.kill_on_exit {
                        kill_all(&ctx);
                    }
                }
            }
            Wait::Signaled(pid, sig) => {
                ctx.tracees.remove(&pid);
                crate::ptrace_emu::on_task_gone(&mut ctx, pid, sig & 0x7f);
                if pid == child {
                    main_status = Some(128 + sig);
                    if cfg.kill_on_exit {
                        kill_all(&ctx);
                    }
                }
            }
            Wait::Event(pid, ev) => handle_event(&mut ctx, pid, ev, old_kernel),
            Wait::Syscall(pid) => {
                let t = ctx.tracees.entry(pid).or_default();
                if t.skip_enter {
                    // Pre-4.8 ordering: the enter stop that follows a seccomp stop.
                    t.skip_enter = false;
                    let _ = sys::ptrace_restart(pid, true, 0);
                    continue;
                }
                let entering = !t.in_syscall;
                if cfg.verbose >= 3 {
                    let r = ptrace::getregs(pid).map(Regs);
                    ctx.debug(|| format!("{pid} syscall stop, entering {entering}: {r:?}"));
                }
                let t = ctx.tracees.entry(pid).or_default();
                if t.in_syscall {
                    t.in_syscall = false;
                    syscalls::on_exit(&mut ctx, pid);
                    if !crate::ptrace_emu::after_syscall_exit(&mut ctx, pid) {
                        resume(&ctx, pid, 0);
                    }
                } else if !crate::ptrace_emu::on_syscall_enter_stop(&mut ctx, pid) {
                    enter_stop(&mut ctx, pid, 0);
                }
            }
            Wait::Stopped(pid, sig) => {
                // Signal-delivery stop: pass the signal on (a guest ptracer decides for its
                // ptracees).
                ctx.tracees.entry(pid).or_default();
                if !crate::ptrace_emu::on_signal_stop(&mut ctx, pid, sig) {
                    resume(&ctx, pid, sig);
                }
            }
            Wait::Other => {}
        }
        if ctx.tracees.is_empty() {
            break;
        }
        if ctx.pinned_mask.is_some() && ctx.tracees.len() > 2 {
            // Parallel work: give every task (and ourselves) the whole original set again.
            release_pin(&mut ctx);
            ctx.debug(|| "more than two guest tasks: CPU pinning released".into());
        }
    }
    glue.remove();
    ctx.sock_aliases.remove();
    // PRoot's rule counts normal exits only (the victims of a kill are no answer); with
    // --kill-on-exit the first process ends the run and gives its status.
    let status = if cfg.last_exit_status && !cfg.kill_on_exit {
        last_status.or(main_status)
    } else {
        main_status
    };
    Ok(crate::Outcome {
        status: status.unwrap_or(0),
        start_error: ctx.start_error.map(|(p, e)| (p, e as i32)),
    })
}

/// Mount points the guest lacks, made for it (PRoot's "glue"): created in the rootfs when
/// allowed and possible, else in private host directories bound over the first missing guest
/// directory, so the guest can enter and list the directories that lead to its bindings.
#[derive(Default)]
struct Glue {
    in_rootfs: bool,
    /// Created in the rootfs, parents before children.
    created: Vec<std::path::PathBuf>,
    /// Private directories: (guest path they stand for, host directory).
    private: Vec<(Vec<u8>, std::path::PathBuf)>,
}

impl Glue {
    /// Make the mount point `mp` (host path in the rootfs of guest path `guest`).
    /// Returns a binding to add when a private directory had to be used.
    fn make(&mut self, guest: &[u8], mp: &std::path::Path, dir: bool) -> Option<crate::Binding> {
        use std::os::unix::ffi::OsStrExt;
        if std::fs::symlink_metadata(mp).is_ok() {
            return None;
        }
        if self.in_rootfs && make_tree(mp, mp.ancestors().count(), dir, &mut self.created) {
            return None;
        }
        // The missing part of the path, as guest components (the rootfs side of a guest path
        // ends with the same names).
        let missing = mp
            .ancestors()
            .take_while(|a| std::fs::symlink_metadata(a).is_err())
            .count();
        let comps: Vec<&[u8]> = guest
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        if missing == 0 || missing > comps.len() {
            return None;
        }
        let top: Vec<u8> = comps[..comps.len() - missing + 1]
            .iter()
            .flat_map(|c| [&b"/"[..], c].concat())
            .collect();
        let below = &comps[comps.len() - missing + 1..];
        let (host, new) = match self.private.iter().find(|(g, _)| *g == top) {
            Some((_, h)) => (h.clone(), false),
            None => (private_dir()?, true),
        };
        let mut target = host.clone();
        for c in below {
            target.push(std::ffi::OsStr::from_bytes(c));
        }
        if !below.is_empty() {
            let mut scratch = Vec::new();
            make_tree(&target, below.len(), dir, &mut scratch);
        }
        if !new {
            return None;
        }
        self.private.push((top.clone(), host.clone()));
        Some(crate::Binding {
            host: host.as_os_str().as_bytes().to_vec(),
            guest: top,
            readonly: false,
            nofollow: true,
        })
    }

    /// Remove the glue left empty, children first (PRoot does the same at exit): a rootfs
    /// directory the guest filled, or a placeholder file it wrote into, stays. Private
    /// directories are ours alone and go entirely.
    fn remove(&self) {
        for p in self.created.iter().rev() {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir(p);
                }
                Ok(m) if m.is_file() && m.len() == 0 => {
                    let _ = std::fs::remove_file(p);
                }
                _ => {}
            }
        }
        for (_, h) in &self.private {
            let _ = std::fs::remove_dir_all(h);
        }
    }
}

/// A new directory of our own under $TMPDIR (mode 0700).
fn private_dir() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let p = base.join(format!("udocker-glue-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Bindings as a bind mount would place them: the guest path resolved inside the rootfs (an
/// image's `var/run -> ../run` is followed, so `-b X:/var/run/dbus` lands in /run), and a missing
/// mount point made by `glue`.
fn prepare_bindings(
    root: &[u8],
    bindings: &[crate::Binding],
    glue: &mut Glue,
) -> Vec<crate::Binding> {
    use std::os::unix::ffi::OsStrExt;
    let plain = Translator::new(root, Vec::new());
    let fs = RealFs;
    let mut out = Vec::new();
    for b in bindings {
        let mut b = b.clone();
        let g = crate::path::normalize(&b.guest);
        if g == b"/" {
            out.push(b);
            continue;
        }
        // The whole guest path resolved in the rootfs (a symlink as last component too,
        // unless `nofollow`); when something above it is missing, its parent as far as it
        // resolves and the last name as written.
        let mp = match plain.resolve(&fs, &g, !b.nofollow) {
            Ok((cg, ch)) => {
                b.guest = cg;
                ch
            }
            Err(_) => {
                let cut = g.iter().rposition(|c| *c == b'/').unwrap_or(0);
                let (parent, name) = (if cut == 0 { &b"/"[..] } else { &g[..cut] }, &g[cut + 1..]);
                let (pg, ph) = match plain.resolve(&fs, parent, true) {
                    Ok(r) => r,
                    Err(_) => (parent.to_vec(), plain.map(parent)),
                };
                let mut ng = pg;
                if ng != b"/" {
                    ng.push(b'/');
                }
                ng.extend_from_slice(name);
                b.guest = ng;
                let mut h = ph;
                h.push(b'/');
                h.extend_from_slice(name);
                h
            }
        };
        let mp = std::path::Path::new(std::ffi::OsStr::from_bytes(&mp)).to_path_buf();
        let host_is_dir = std::path::Path::new(std::ffi::OsStr::from_bytes(&b.host)).is_dir();
        if let Some(extra) = glue.make(&b.guest, &mp, host_is_dir) {
            out.push(extra);
        }
        out.push(b);
    }
    out
}

/// Create the last `depth` components of `mp` that are missing (a directory, or an empty file
/// for a file binding, at the end), recording each one created so that nothing that existed
/// before is ever removed. False when one could not be made.
fn make_tree(
    mp: &std::path::Path,
    depth: usize,
    dir: bool,
    created: &mut Vec<std::path::PathBuf>,
) -> bool {
    let missing: Vec<&std::path::Path> = mp
        .ancestors()
        .take(depth)
        .take_while(|a| std::fs::symlink_metadata(a).is_err())
        .collect();
    for a in missing.iter().rev() {
        let is_last = *a == mp;
        let ok = if is_last && !dir {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(a)
                .is_ok()
        } else {
            std::fs::create_dir(a).is_ok()
        };
        if !ok {
            return false;
        }
        created.push(a.to_path_buf());
    }
    true
}

fn kill_all(ctx: &Ctx) {
    for pid in ctx.tracees.keys() {
        let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
    }
}

/// Resume a tracee after a stop that is not a syscall entry we want the exit of. Tasks the
/// ptrace emulation keeps stopped stay so; its ptracers and syscall-traced ptracees go on with
/// PTRACE_SYSCALL (or single steps) instead of PTRACE_CONT.
pub fn resume(ctx: &Ctx, pid: Pid, sig: i32) {
    if ctx.emu.holds(pid) {
        return;
    }
    if ctx.emu.stepping(pid) {
        let _ = sys::ptrace_step(pid, sig);
        return;
    }
    // An event stop between a syscall's entry and its exit (execve's PTRACE_EVENT_EXEC): the
    // exit stop we asked for at entry must still come, or `in_syscall` would stay set and the
    // next entry be taken for an exit.
    let exit_pending = ctx.tracees.get(&pid).is_some_and(|t| t.in_syscall);
    let _ = sys::ptrace_restart(pid, ctx.p2 || exit_pending || ctx.emu.full_trace(pid), sig);
}

/// A syscall-enter stop (P2, or a task resumed with PTRACE_SYSCALL): translate, then run the
/// call and stop at its exit.
fn enter_stop(ctx: &mut Ctx, pid: Pid, sig: i32) {
    let _want_exit = syscalls::on_enter(ctx, pid);
    if let Some(t) = ctx.tracees.get_mut(&pid) {
        t.in_syscall = true;
    }
    let _ = sys::ptrace_restart(pid, true, sig);
}

/// A seccomp stop (P1: entry of a filtered call).
fn seccomp_stop(ctx: &mut Ctx, pid: Pid, old_kernel: bool) {
    let want_exit = syscalls::on_enter(ctx, pid);
    if want_exit {
        if let Some(t) = ctx.tracees.get_mut(&pid) {
            t.in_syscall = true;
            t.skip_enter = old_kernel;
        }
        let _ = sys::ptrace_restart(pid, true, 0);
    } else {
        resume(ctx, pid, 0);
    }
}

/// The ids in the new image's auxiliary vector (getauxval(3): AT_UID, AT_EUID, AT_GID,
/// AT_EGID) are the fake ones, as the id calls report them. The stack at the exec stop holds
/// argc, argv[], NULL, envp[], NULL, then (type, value) pairs up to AT_NULL (the ELF ABI's
/// process entry layout); the loader we exec hands the same vector on to the program.
fn fake_auxv_ids(pid: Pid, sp: u64, c: &Creds) {
    const AT_NULL: u64 = 0;
    let Ok(argc) = crate::mem::read_u64(pid, sp) else {
        return;
    };
    // Past argv and its NULL, then envp up to its NULL (bounded: the kernel's own limits keep
    // both far below this).
    let mut p = sp + 8 + 8 * (argc.min(1 << 20) + 1);
    let mut words = 0;
    loop {
        let Ok(v) = crate::mem::read_u64(pid, p) else {
            return;
        };
        p += 8;
        words += 1;
        if v == 0 {
            break;
        }
        if words > 1 << 20 {
            return;
        }
    }
    for _ in 0..128 {
        let Ok(pair) = crate::mem::read(pid, p, 16) else {
            return;
        };
        let kind = u64::from_ne_bytes(pair[..8].try_into().expect("8 bytes"));
        let value = match kind {
            AT_NULL => return,
            libc::AT_UID => Some(c.uid[0]),
            libc::AT_EUID => Some(c.uid[1]),
            libc::AT_GID => Some(c.gid[0]),
            libc::AT_EGID => Some(c.gid[1]),
            _ => None,
        };
        if let Some(v) = value {
            let _ = crate::mem::write(pid, p + 8, &u64::from(v).to_ne_bytes());
        }
        p += 16;
    }
}

/// What a new task inherits from the one that created it. The child's first stop may be
/// reported before its creator's fork/clone event: whichever comes first fills the state and
/// the other keeps it.
/// End the pinning for good: this process and every guest task get the original CPU set back.
pub fn release_pin(ctx: &mut Ctx) {
    if let Some(mask) = ctx.pinned_mask.take() {
        sys::set_affinity_bytes(0, &mask);
        for pid in ctx.tracees.keys() {
            sys::set_affinity_bytes(pid.as_raw(), &mask);
        }
    }
}

fn inherit(ctx: &mut Ctx, parent: Pid, child: Pid) {
    let Some(p) = ctx.tracees.get(&parent) else {
        return;
    };
    let (exe, creds, cwd, ldso) = (p.exe.clone(), p.creds, p.cwd.clone(), p.ldso.clone());
    let t = ctx.tracees.entry(child).or_default();
    if t.exe.is_none() {
        t.exe = exe;
    }
    if t.creds.is_none() {
        t.creds = creds;
    }
    if t.cwd.is_none() {
        t.cwd = cwd;
    }
    if t.ldso.host.is_none() && t.ldso.guest.is_none() {
        t.ldso = ldso;
    }
}

/// The task a new one was made by, from /proc/PID/status (proc(5)): its thread group leader
/// for a thread, else its parent (PPid shows the real parent, not the tracer).
fn creator(pid: Pid) -> Option<Pid> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<i32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let tgid = field("Tgid:")?;
    if tgid != pid.as_raw() {
        return Some(Pid::from_raw(tgid));
    }
    field("PPid:").map(Pid::from_raw)
}

fn handle_event(ctx: &mut Ctx, pid: Pid, ev: i32, old_kernel: bool) {
    const SECCOMP: i32 = Event::PTRACE_EVENT_SECCOMP as i32;
    const FORK: i32 = Event::PTRACE_EVENT_FORK as i32;
    const VFORK: i32 = Event::PTRACE_EVENT_VFORK as i32;
    const CLONE: i32 = Event::PTRACE_EVENT_CLONE as i32;
    const EXEC: i32 = Event::PTRACE_EVENT_EXEC as i32;
    const STOP: i32 = libc::PTRACE_EVENT_STOP;
    match ev {
        SECCOMP => {
            let t = ctx.tracees.entry(pid).or_default();
            if t.in_syscall && !old_kernel {
                // Linux >= 4.8 stops for seccomp after the syscall-enter stop of a task
                // resumed with PTRACE_SYSCALL: that stop already translated the call.
                let _ = sys::ptrace_restart(pid, true, 0);
                return;
            }
            if crate::ptrace_emu::on_seccomp(ctx, pid) {
                return;
            }
            seccomp_stop(ctx, pid, old_kernel);
        }
        FORK | VFORK | CLONE => {
            if let Ok(new) = ptrace::getevent(pid) {
                let new = Pid::from_raw(new as i32);
                // A child may already have reported its first stop (and found its creator).
                let seen = ctx.tracees.contains_key(&new);
                inherit(ctx, pid, new);
                if crate::ptrace_emu::on_fork(ctx, pid, new, ev, seen) {
                    return;
                }
            }
            resume(ctx, pid, 0);
        }
        EXEC => {
            // The thread that called execve may not be the leader: GETEVENTMSG is its old tid.
            let old = ptrace::getevent(pid)
                .map(|o| Pid::from_raw(o as i32))
                .unwrap_or(pid);
            let mut t = ctx.tracees.remove(&old).unwrap_or_default();
            if old != pid {
                ctx.tracees.remove(&pid);
            }
            t.preexec = false;
            // Started after all (execvp's fallback to /bin/sh).
            ctx.start_error = None;
            if let Some(e) = t.pending_exe.take() {
                t.pending_comm = t.exec_comm.take();
                t.exe = Some(e);
            }
            t.argv0_patch = None;
            t.program_opened = false;
            if let Some(want) = t.argv0_wanted.take() {
                // Stack at the exec stop: argc, argv[0] (the loader), argv[1] (the program).
                if let Ok(regs) = ptrace::getregs(pid) {
                    let sp = Regs(regs).sp();
                    if let Ok(p) = crate::mem::read_u64(pid, sp + 16) {
                        if let Ok(cur) = crate::mem::read_cstr(pid, p, crate::mem::PATH_MAX) {
                            t.argv0_patch = Some((p, cur.len(), want));
                        }
                    }
                }
            }
            // execve never "returns" to the old image: the exit stop (if asked) still comes, and
            // must not restore registers of the old program.
            if let Some(s) = &mut t.saved {
                s.action = ExitAction::Exec;
            }
            if let Some((u, g)) = ctx.cfg.fake_id {
                let c = t.creds.unwrap_or(Creds::new(u, g));
                if let Ok(regs) = ptrace::getregs(pid) {
                    fake_auxv_ids(pid, Regs(regs).sp(), &c);
                }
            }
            ctx.tracees.insert(pid, t);
            if !crate::ptrace_emu::on_exec(ctx, pid, old) {
                resume(ctx, pid, 0);
            }
        }
        STOP => {
            if !ctx.tracees.contains_key(&pid) {
                // A new task whose creator's fork/clone event is still to come: it must not
                // run (its next stop may be an execve) without what it inherits.
                if let Some(parent) = creator(pid) {
                    inherit(ctx, parent, pid);
                }
            }
            ctx.tracees.entry(pid).or_default();
            // Group-stop (stopped by SIGSTOP/SIGTSTP…), or the first stop of a new child / a
            // PTRACE_INTERRUPT. A seized task's group-stop is a PTRACE_EVENT_STOP whose signal
            // is the stopping one; the others carry SIGTRAP (ptrace(2) "Group-stop"; the
            // kernel's do_jobctl_trap puts that signal in si_signo). Without SEIZE,
            // PTRACE_GETSIGINFO fails with EINVAL in a group-stop.
            let group = match ptrace::getsiginfo(pid) {
                Err(Errno::EINVAL) => Some(libc::SIGSTOP),
                Ok(si) if si.si_signo != libc::SIGTRAP => Some(si.si_signo),
                _ => None,
            };
            if crate::ptrace_emu::on_stop_event(ctx, pid, group) {
                return;
            }
            if group.is_some() {
                let _ = sys::ptrace_listen(pid);
            } else {
                resume(ctx, pid, 0);
            }
        }
        _ => {
            if !crate::ptrace_emu::on_other_event(ctx, pid, ev) {
                resume(ctx, pid, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Creds;
    use crate::arch::nr;

    const KEEP: u64 = u32::MAX as u64;

    #[test]
    fn credentials_follow_the_kernel_rules() {
        let root = Creds::new(0, 0);
        let (v, c) = root.apply(nr::SETRESGID, [1, 1, 1]);
        assert_eq!((v, c.gid), (0, [1, 1, 1]));
        let (v, c) = c.apply(nr::SETRESUID, [2, 2, 2]);
        assert_eq!((v, c.uid), (0, [2, 2, 2]));
        // No longer privileged: cannot go back.
        assert_eq!(c.apply(nr::SETUID, [0, 0, 0]).0, -(libc::EPERM as i64));
        assert_eq!(c.apply(nr::GETEUID, [0; 3]).0, 2);
        // Temporary drop and regain through the saved id.
        let (_, c) = root.apply(nr::SETRESUID, [KEEP, 1000, KEEP]);
        assert_eq!(c.uid, [0, 1000, 0]);
        let (v, c) = c.apply(nr::SETRESUID, [KEEP, 0, KEEP]);
        assert_eq!((v, c.uid), (0, [0, 0, 0]));
        assert_eq!(
            root.apply(nr::SETFSUID, [5, 0, 0]).0,
            0,
            "returns the previous fsuid"
        );
        assert_eq!(
            Creds::new(7, 7).apply(nr::SETGROUPS, [0; 3]).0,
            -(libc::EPERM as i64)
        );
    }
}
