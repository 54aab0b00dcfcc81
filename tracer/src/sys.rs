//! The few operations that need `unsafe`: ptrace requests nix does not wrap, the child's side of
//! the fork (async-signal-safe calls only), and the signal handler that forwards signals.

use nix::errno::Errno;
use nix::unistd::Pid;
use std::ffi::CString;
use std::sync::atomic::{AtomicI32, Ordering};

/// PTRACE_LISTEN (ptrace(2), "group-stop"): leave a seized tracee in its group-stop while
/// still being told when it is continued.
pub fn ptrace_listen(pid: Pid) -> nix::Result<()> {
    // SAFETY: PTRACE_LISTEN takes no pointers (addr and data are 0); the kernel checks the pid.
    let r = unsafe { libc::ptrace(libc::PTRACE_LISTEN, pid.as_raw(), 0usize, 0usize) };
    Errno::result(r).map(drop)
}

/// Everything the child needs after fork, prepared before it (no allocation in the child).
pub struct ChildPlan {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    pub filter: Option<Vec<libc::sock_filter>>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// `/bin/sh PATH ARGS…`, run when the program is not executable as such (ENOEXEC): the
    /// first program is started with execvp(3)'s rule, as PRoot starts it (a script without
    /// `#!`, or one whose `#!` line names nothing, runs under the guest's shell).
    sh_argv: Vec<CString>,
    sh_ptrs: Vec<*const libc::c_char>,
}

impl ChildPlan {
    pub fn new(
        path: CString,
        argv: Vec<CString>,
        envp: Vec<CString>,
        cwd: CString,
        filter: Option<Vec<libc::sock_filter>>,
    ) -> ChildPlan {
        let mut p = ChildPlan {
            path,
            argv,
            envp,
            cwd,
            filter,
            argv_ptrs: Vec::new(),
            envp_ptrs: Vec::new(),
            sh_argv: Vec::new(),
            sh_ptrs: Vec::new(),
        };
        p.sh_argv = [c"/bin/sh".to_owned(), p.path.clone()]
            .into_iter()
            .chain(p.argv.iter().skip(1).cloned())
            .collect();
        p.sh_ptrs = p
            .sh_argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        p.argv_ptrs = p
            .argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        p.envp_ptrs = p
            .envp
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        p
    }
}

/// fork(2) a child that stops itself (SIGSTOP) so the parent can seize it, then installs the
/// seccomp filter and execs. Returns the child's pid in the parent.
pub fn spawn_stopped(plan: &ChildPlan) -> nix::Result<Pid> {
    // SAFETY: after fork the child only makes async-signal-safe calls (signal(7)): kill, getpid,
    // chdir, prctl, seccomp, execve, _exit; every pointer it uses was built before the fork and
    // stays valid because the child's copy of memory is the parent's at fork time.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(Errno::last());
        }
        if pid > 0 {
            return Ok(Pid::from_raw(pid));
        }
        // Child. Default signal dispositions and an empty mask, as a freshly exec'd program expects.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // Rust's runtime ignores SIGPIPE; an ignored signal stays ignored across execve, and a
        // guest pipeline (`yes | head`) must die of SIGPIPE as it would natively.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::kill(libc::getpid(), libc::SIGSTOP);
        if libc::chdir(plan.cwd.as_ptr()) != 0 {
            libc::_exit(126);
        }
        if let Some(f) = &plan.filter {
            // no_new_privs is required to install a filter unprivileged (seccomp(2)).
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(125);
            }
            let prog = libc::sock_fprog {
                len: f.len() as libc::c_ushort,
                filter: f.as_ptr() as *mut libc::sock_filter,
            };
            // SECCOMP_FILTER_FLAG_SPEC_ALLOW (Linux 4.17): the filter is a performance device,
            // not a sandbox, so it must not switch on the Speculative Store Bypass mitigation
            // that kernels booted with `spec_store_bypass_disable=seccomp` (the default on
            // affected CPUs) force on every filtered task, slowing all guest code down.
            // Older kernels reject the flag with EINVAL: install the filter without it.
            let prog_ptr = &prog as *const libc::sock_fprog;
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                prog_ptr,
            ) != 0
                && libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    prog_ptr,
                ) != 0
            {
                libc::_exit(125);
            }
        }
        libc::execve(
            plan.path.as_ptr(),
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        );
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::execve(
                plan.sh_argv[0].as_ptr(),
                plan.sh_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
        }
        // execve failed: the errno is reported by the tracer from the syscall-exit it saw.
        libc::_exit(127);
    }
}

/// Signals sent to the tracer by another process, to forward to the guest (PRoot loses SIGTERM).
pub static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // Terminal-generated signals (SI_KERNEL) already reach the whole foreground process group,
    // the guest included: forward only those sent with kill(2)/sigqueue(3).
    if code == libc::SI_USER || code == libc::SI_QUEUE {
        PENDING_SIGNAL.store(sig, Ordering::SeqCst);
    }
}

/// Catch SIGINT, SIGTERM, SIGHUP, SIGQUIT without SA_RESTART so waitpid returns EINTR.
/// SIGSEGV and SIGBUS go back to their default action: Rust's stack-overflow handler would
/// swallow one sent with kill(2), and the tracer must die on it (its guest then dies with it,
/// PTRACE_O_EXITKILL), as PRoot does.
pub fn install_forwarders() {
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: restoring the default disposition of a signal has no memory effects.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: the handler only stores into an atomic (async-signal-safe); the sigaction
        // struct is fully initialised before the call.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// The bytes of a plain C struct (`libc::stat`, `libc::statx`), to copy into the tracee.
pub fn struct_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: T is a Copy, repr(C) kernel struct without references; reading its size_of bytes
    // through a u8 slice of the same lifetime is always valid (padding bytes are initialised
    // because the value came from a zeroed buffer filled by the kernel).
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, std::mem::size_of::<T>()) }
}

fn ret(r: libc::c_long) -> i64 {
    if r < 0 {
        -(Errno::last() as i64)
    } else {
        r
    }
}

/// statx(2) on a host path (AT_FDCWD), into a zeroed buffer.
pub fn statx(path: &std::ffi::CStr, flags: i32, mask: u32) -> (i64, libc::statx) {
    // SAFETY: all-zero bytes are a valid libc::statx (plain integers).
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: path is a valid NUL-terminated string and buf a valid, writable statx struct.
    let r = unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), flags, mask, &mut buf) };
    (ret(r as libc::c_long), buf)
}

/// newfstatat(2) on a host path, into a zeroed buffer.
/// seccomp(2): SECCOMP_FILTER_FLAG_SPEC_ALLOW (not in every libc crate version).
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 1 << 2;

pub fn fstatat(path: &std::ffi::CStr, flags: i32) -> (i64, libc::stat) {
    // SAFETY: all-zero bytes are a valid libc::stat.
    let mut buf: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid string and writable struct.
    let r = unsafe { libc::fstatat(libc::AT_FDCWD, path.as_ptr(), &mut buf, flags) };
    (ret(r as libc::c_long), buf)
}

/// faccessat2(2) (falls back to faccessat when the kernel lacks it and no flags are given).
pub fn faccessat(path: &std::ffi::CStr, mode: i32, flags: i32) -> i64 {
    // SAFETY: plain syscall with a valid string pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            mode,
            flags,
        )
    };
    if r < 0 && Errno::last() == Errno::ENOSYS && flags == 0 {
        // SAFETY: as above.
        return ret(unsafe {
            libc::syscall(libc::SYS_faccessat, libc::AT_FDCWD, path.as_ptr(), mode)
        });
    }
    ret(r)
}

/// getxattr/lgetxattr (follow chooses) into `buf` (empty buf: size query).
pub fn getxattr(path: &std::ffi::CStr, name: &std::ffi::CStr, buf: &mut [u8], follow: bool) -> i64 {
    let (p, n) = (buf.as_mut_ptr() as *mut libc::c_void, buf.len());
    // SAFETY: valid strings; buf is writable for n bytes (n may be 0 with a dangling but unused pointer).
    ret(unsafe {
        if follow {
            libc::getxattr(path.as_ptr(), name.as_ptr(), p, n)
        } else {
            libc::lgetxattr(path.as_ptr(), name.as_ptr(), p, n)
        }
    } as libc::c_long)
}

/// listxattr/llistxattr into `buf`.
pub fn listxattr(path: &std::ffi::CStr, buf: &mut [u8], follow: bool) -> i64 {
    let (p, n) = (buf.as_mut_ptr() as *mut libc::c_char, buf.len());
    // SAFETY: valid string; buf writable for n bytes.
    ret(unsafe {
        if follow {
            libc::listxattr(path.as_ptr(), p, n)
        } else {
            libc::llistxattr(path.as_ptr(), p, n)
        }
    } as libc::c_long)
}

/// One wait(2) status, decoded here rather than by nix: nix's `Signal` has no real-time
/// signals, so a guest stopped by SIGRTMIN+n (glibc's setxid broadcast to its threads uses
/// SIGRTMIN+1, `setuid` in a threaded program) made nix's decoding fail with EINVAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Exited(Pid, i32),
    Signaled(Pid, i32),
    /// Syscall-enter or -exit stop (PTRACE_O_TRACESYSGOOD: SIGTRAP | 0x80).
    Syscall(Pid),
    /// PTRACE_EVENT_* stop: the event number (status >> 16).
    Event(Pid, i32),
    /// Signal-delivery stop: the signal number.
    Stopped(Pid, i32),
    Other,
}

/// waitpid(-1, __WALL) (wait(2)): every tracee, threads included.
pub fn wait_all() -> Result<Wait, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable int for the kernel to fill.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    let pid = Errno::result(pid).map(Pid::from_raw)?;
    Ok(decode_wait(pid, status))
}

pub fn decode_wait(pid: Pid, status: libc::c_int) -> Wait {
    if libc::WIFEXITED(status) {
        Wait::Exited(pid, libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Wait::Signaled(pid, libc::WTERMSIG(status))
    } else if libc::WIFSTOPPED(status) {
        let sig = libc::WSTOPSIG(status);
        let event = (status >> 16) & 0xff;
        if event != 0 {
            Wait::Event(pid, event)
        } else if sig == libc::SIGTRAP | 0x80 {
            Wait::Syscall(pid)
        } else {
            Wait::Stopped(pid, sig)
        }
    } else {
        Wait::Other
    }
}

/// PTRACE_SYSCALL or PTRACE_CONT with a raw signal number (0: none), real-time ones included.
pub fn ptrace_restart(pid: Pid, syscall: bool, sig: i32) -> nix::Result<()> {
    let req = if syscall {
        libc::PTRACE_SYSCALL
    } else {
        libc::PTRACE_CONT
    };
    // SAFETY: these requests take no pointer: `data` is the signal number, checked by the kernel.
    let r = unsafe { libc::ptrace(req, pid.as_raw(), 0usize, sig as usize) };
    Errno::result(r).map(drop)
}

/// PTRACE_SINGLESTEP with a raw signal number (ptrace(2)), for an in-guest debugger's request.
pub fn ptrace_step(pid: Pid, sig: i32) -> nix::Result<()> {
    // SAFETY: no pointer: `data` is the signal number, checked by the kernel.
    let r = unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, pid.as_raw(), 0usize, sig as usize) };
    Errno::result(r).map(drop)
}

/// PTRACE_INTERRUPT (ptrace(2)): stop a seized tracee, even one blocked in a system call
/// (the call is restarted when it is resumed).
pub fn ptrace_interrupt(pid: Pid) -> nix::Result<()> {
    // SAFETY: PTRACE_INTERRUPT takes no pointers.
    let r = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid.as_raw(), 0usize, 0usize) };
    Errno::result(r).map(drop)
}

/// PTRACE_SETOPTIONS with raw option bits (nix's `Options` lacks none we need, but the bits
/// come from a guest request and are checked by the caller against a known mask).
pub fn ptrace_setoptions(pid: Pid, opts: u64) -> nix::Result<()> {
    // SAFETY: `data` is a bit mask, no pointer.
    let r = unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid.as_raw(), 0usize, opts as usize) };
    Errno::result(r).map(drop)
}

/// PTRACE_PEEKTEXT/PEEKDATA/PEEKUSER: one word. The raw syscall stores the word at `data`
/// (ptrace(2), "C library/kernel differences"); we give it our own u64.
pub fn ptrace_peek(req: u32, pid: Pid, addr: u64) -> nix::Result<u64> {
    if !matches!(
        req,
        libc::PTRACE_PEEKTEXT | libc::PTRACE_PEEKDATA | libc::PTRACE_PEEKUSER
    ) {
        return Err(Errno::EIO);
    }
    let mut word: u64 = 0;
    // SAFETY: for the PEEK requests the kernel writes exactly one word at `data`, which points
    // at our local u64; `addr` is only interpreted in the tracee's address space / user area.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ptrace,
            req as libc::c_long,
            pid.as_raw() as libc::c_long,
            addr as libc::c_long,
            &mut word as *mut u64,
        )
    };
    Errno::result(r).map(|_| word)
}

/// PTRACE_POKETEXT/POKEDATA/POKEUSER: `data` is the word itself, not a pointer.
pub fn ptrace_poke(req: u32, pid: Pid, addr: u64, data: u64) -> nix::Result<()> {
    if !matches!(
        req,
        libc::PTRACE_POKETEXT | libc::PTRACE_POKEDATA | libc::PTRACE_POKEUSER
    ) {
        return Err(Errno::EIO);
    }
    // SAFETY: no pointer into our memory: addr is the tracee's, data a value.
    let r = unsafe { libc::ptrace(req, pid.as_raw(), addr as usize, data as usize) };
    Errno::result(r).map(drop)
}

/// Bytes the kernel copies for the fixed-size buffer requests (x86_64: user_regs_struct,
/// user_fpregs_struct, siginfo_t), or None for a request we do not pass a buffer to.
pub fn ptrace_buf_len(req: u32) -> Option<usize> {
    match req {
        libc::PTRACE_GETREGS | libc::PTRACE_SETREGS => {
            Some(std::mem::size_of::<libc::user_regs_struct>())
        }
        libc::PTRACE_GETFPREGS | libc::PTRACE_SETFPREGS => {
            Some(std::mem::size_of::<libc::user_fpregs_struct>())
        }
        libc::PTRACE_GETSIGINFO | libc::PTRACE_SETSIGINFO => {
            Some(std::mem::size_of::<libc::siginfo_t>())
        }
        _ => None,
    }
}

/// A fixed-size buffer request (GET/SETREGS, GET/SETFPREGS, GET/SETSIGINFO) on `buf`, which
/// must be exactly `ptrace_buf_len(req)` bytes.
pub fn ptrace_buf(req: u32, pid: Pid, buf: &mut [u8]) -> nix::Result<()> {
    if ptrace_buf_len(req) != Some(buf.len()) {
        return Err(Errno::EIO);
    }
    // SAFETY: the kernel reads or writes exactly ptrace_buf_len(req) bytes at `data` for these
    // requests, and `buf` is that long and exclusively ours for the call.
    let r = unsafe { libc::ptrace(req, pid.as_raw(), 0usize, buf.as_mut_ptr() as usize) };
    Errno::result(r).map(drop)
}

/// PTRACE_GETREGSET/SETREGSET (ptrace(2)) of register set `nt` through `buf`; returns the
/// length the kernel used (it shrinks iov_len on GET).
pub fn ptrace_regset(set: bool, pid: Pid, nt: u64, buf: &mut [u8]) -> nix::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let req = if set {
        libc::PTRACE_SETREGSET
    } else {
        libc::PTRACE_GETREGSET
    };
    // SAFETY: `iov` describes `buf` (valid and exclusively ours for its whole length); the
    // kernel copies at most iov_len bytes and updates iov_len in our local iovec.
    let r = unsafe {
        libc::ptrace(
            req,
            pid.as_raw(),
            nt as usize,
            &mut iov as *mut libc::iovec as usize,
        )
    };
    Errno::result(r).map(|_| iov.iov_len)
}

/// tgkill(2): a signal to one thread (the kernel's own ptrace code sends SIGTRAP/SIGSTOP to a
/// single task, not to its process).
pub fn tgkill(tgid: Pid, tid: Pid, sig: i32) -> nix::Result<()> {
    // SAFETY: plain integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, tgid.as_raw(), tid.as_raw(), sig) };
    Errno::result(r).map(drop)
}

/// The local port of socket `fd` of process `pid` (pidfd_getfd(2), Linux 5.6: needs the
/// ptrace access we have; then getsockname(2) on our duplicate). None for a non-internet
/// socket or when the kernel is older.
pub fn socket_port(pid: i32, fd: i32) -> Option<u16> {
    // SAFETY: plain system calls on integers; the duplicate is closed before returning.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return None;
        }
        let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        libc::close(pidfd);
        if dup < 0 {
            return None;
        }
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `ss` is large enough for any address and `len` says so.
        let r = libc::getsockname(dup, &mut ss as *mut _ as *mut libc::sockaddr, &mut len);
        libc::close(dup);
        if r != 0 {
            return None;
        }
        let raw = std::slice::from_raw_parts(&ss as *const _ as *const u8, len as usize);
        match i32::from(ss.ss_family) {
            libc::AF_INET | libc::AF_INET6 if raw.len() >= 4 => {
                Some(u16::from_be_bytes([raw[2], raw[3]]))
            }
            _ => None,
        }
    }
}

/// The CPU set of task `pid` (0: the caller) as the kernel's mask bytes (sched_getaffinity(2)
/// returns how many bytes it wrote).
pub fn affinity_bytes(pid: i32) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    // SAFETY: the buffer is writable for its whole length, which is what we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            pid,
            buf.len(),
            buf.as_mut_ptr(),
        )
    };
    if r <= 0 {
        return None;
    }
    buf.truncate(r as usize);
    Some(buf)
}

/// Give task `pid` (0: the caller) the CPU set `mask` (bytes from `affinity_bytes`).
pub fn set_affinity_bytes(pid: i32, mask: &[u8]) -> bool {
    // SAFETY: the kernel reads `mask.len()` bytes from a valid buffer.
    unsafe { libc::syscall(libc::SYS_sched_setaffinity, pid, mask.len(), mask.as_ptr()) == 0 }
}
