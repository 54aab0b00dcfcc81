//! `system`, `popen`/`pclose` and the variadic `execl` family (§4.3 item 6).
//!
//! glibc's `system` and `popen` start the HOST `/bin/sh` through an internal exec that the shim
//! cannot see, and its `execl*` call the internal `__execve`; so the shim implements them itself:
//! the container's `/bin/sh` runs through the shim's own exec path (`prepare`, i.e. through the
//! container's loader). The exec image is built in the parent (mmap, no malloc); the child of the
//! raw `fork` only makes raw system calls (dup2, execve, exit), so nothing is allocated or locked
//! after the fork.

use super::exec::{count, do_execve, do_execvpe, prepare, ArgScratch, Argv, Scratch};
use super::{EINVAL, ENOMEM, ENOSYS};
use crate::config;
use crate::path::PATH_MAX;
use crate::raw::{self, syscall};
use crate::real::{environ, get_errno, real, set_errno};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

const EINTR: isize = 4;
const EMFILE: c_int = 24;
const SIGINT: usize = 2;
const SIGQUIT: usize = 3;
const SIGCHLD: usize = 17;
const SIG_BLOCK: usize = 0;
const SIG_SETMASK: usize = 2;
const F_SETFD: usize = 2;
const O_CLOEXEC: usize = 0o2000000;

/// The kernel's `struct sigaction` (x86_64).
#[repr(C)]
#[derive(Clone, Copy)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

const IGNORE: KSigaction = KSigaction {
    handler: 1, // SIG_IGN
    flags: 0,
    restorer: 0,
    mask: 0,
};

fn sigaction(sig: usize, new: &KSigaction, old: Option<&mut KSigaction>) {
    let old = old.map_or(0, |o| o as *mut KSigaction as usize);
    // SAFETY: valid kernel sigaction structs, sigset size 8.
    unsafe {
        raw::syscall6(
            raw::SYS_RT_SIGACTION,
            [sig, new as *const KSigaction as usize, old, 8, 0, 0],
        )
    };
}

fn sigmask(how: usize, set: &u64, old: Option<&mut u64>) {
    let old = old.map_or(0, |o| o as *mut u64 as usize);
    // SAFETY: valid 8-byte sigsets.
    unsafe {
        syscall(
            raw::SYS_RT_SIGPROCMASK,
            how,
            set as *const u64 as usize,
            old,
            8,
        )
    };
}

fn exit_child(code: usize) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers.
        unsafe { syscall(raw::SYS_EXIT_GROUP, code, 0, 0, 0) };
    }
}

/// `wait4(pid)` until it is not interrupted: the status, or -1 with errno set.
fn wait_child(pid: isize) -> c_int {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a valid int.
        let r = unsafe {
            syscall(
                raw::SYS_WAIT4,
                pid as usize,
                &mut status as *mut c_int as usize,
                0,
                0,
            )
        };
        if r == -EINTR {
            continue;
        }
        if r < 0 {
            set_errno(-r as c_int);
            return -1;
        }
        return status;
    }
}

/// Fork a child that runs `sh -c cmd` with the container's `/bin/sh`; `setup` runs in the child
/// before the exec and may only make raw system calls. When the shell cannot be run the child
/// exits with 127, as POSIX says. The child's pid, or `Err(errno)` when fork failed.
unsafe fn fork_sh(cmd: *const c_char, setup: impl FnOnce()) -> Result<isize, c_int> {
    let argv: [*const c_char; 4] = [c"sh".as_ptr(), c"-c".as_ptr(), cmd, core::ptr::null()];
    let mut h1 = [0u8; PATH_MAX];
    let mut h2 = [0u8; PATH_MAX];
    let mut scratch = Scratch::new();
    // SAFETY: a NULL-terminated argv of NUL-terminated strings; the process environment.
    let img = unsafe {
        prepare(
            c"/bin/sh".as_ptr(),
            argv.as_ptr(),
            environ(),
            &mut h1,
            &mut h2,
            &mut scratch,
        )
    };
    // SAFETY: fork takes no arguments; the child only makes raw system calls below.
    let pid = unsafe { syscall(raw::SYS_FORK, 0, 0, 0, 0) };
    if pid < 0 {
        return Err(-pid as c_int);
    }
    if pid == 0 {
        if let Ok(img) = &img {
            setup();
            // SAFETY: the image's strings and vectors are alive (copied by fork).
            unsafe {
                syscall(
                    raw::SYS_EXECVE,
                    img.file as usize,
                    img.argv as usize,
                    img.envp as usize,
                    0,
                )
            };
        }
        exit_child(127);
    }
    Ok(pid)
}

#[no_mangle]
pub unsafe extern "C" fn system(cmd: *const c_char) -> c_int {
    if !config::get().active() {
        return match real!("system", unsafe extern "C" fn(*const c_char) -> c_int) {
            // SAFETY: forwarded.
            Some(f) => unsafe { f(cmd) },
            None => {
                set_errno(ENOSYS);
                -1
            }
        };
    }
    if cmd.is_null() {
        // A shell is available: the container's /bin/sh.
        return 1;
    }
    // POSIX: ignore SIGINT and SIGQUIT and block SIGCHLD while waiting; the child gets the
    // caller's dispositions and mask back.
    let mut old_int = IGNORE;
    let mut old_quit = IGNORE;
    let mut old_mask = 0u64;
    sigaction(SIGINT, &IGNORE, Some(&mut old_int));
    sigaction(SIGQUIT, &IGNORE, Some(&mut old_quit));
    sigmask(SIG_BLOCK, &(1u64 << (SIGCHLD - 1)), Some(&mut old_mask));
    let restore = || {
        sigaction(SIGINT, &old_int, None);
        sigaction(SIGQUIT, &old_quit, None);
        sigmask(SIG_SETMASK, &old_mask, None);
    };
    // SAFETY: the caller's NUL-terminated command.
    let r = match unsafe { fork_sh(cmd, restore) } {
        Ok(pid) => wait_child(pid),
        Err(e) => {
            set_errno(e);
            -1
        }
    };
    let e = get_errno();
    restore();
    set_errno(e);
    r
}

/// The streams `popen` made (FILE*, fd, pid), for `pclose` and for closing them in later
/// children. Fixed size: no allocation.
const SLOTS: usize = 64;
#[allow(clippy::declare_interior_mutable_const)]
const NO_FILE: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NO_FD: AtomicI32 = AtomicI32::new(-1);
static POPEN_FILE: [AtomicUsize; SLOTS] = [NO_FILE; SLOTS];
static POPEN_FD: [AtomicI32; SLOTS] = [NO_FD; SLOTS];
static POPEN_PID: [AtomicI32; SLOTS] = [NO_FD; SLOTS];

type Ptr = *mut c_void;

#[no_mangle]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> Ptr {
    let null = core::ptr::null_mut();
    if !config::get().active() {
        return match real!(
            "popen",
            unsafe extern "C" fn(*const c_char, *const c_char) -> Ptr
        ) {
            // SAFETY: forwarded.
            Some(f) => unsafe { f(cmd, mode) },
            None => {
                set_errno(ENOSYS);
                null
            }
        };
    }
    if cmd.is_null() || mode.is_null() {
        set_errno(EINVAL);
        return null;
    }
    // SAFETY: the caller's NUL-terminated mode.
    let m = unsafe { crate::real::cstr(mode) };
    let reading = match m.first() {
        Some(b'r') => true,
        Some(b'w') => false,
        _ => {
            set_errno(EINVAL);
            return null;
        }
    };
    let cloexec = m.contains(&b'e');
    let Some(fdopen) = real!("fdopen", unsafe extern "C" fn(c_int, *const c_char) -> Ptr) else {
        set_errno(ENOSYS);
        return null;
    };
    let Some(slot) = POPEN_FILE.iter().position(|s| {
        s.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }) else {
        set_errno(EMFILE);
        return null;
    };
    let release = |slot: usize| POPEN_FILE[slot].store(0, Ordering::Release);
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` holds two ints.
    let r = unsafe { syscall(raw::SYS_PIPE2, fds.as_mut_ptr() as usize, O_CLOEXEC, 0, 0) };
    if r < 0 {
        release(slot);
        set_errno(-r as c_int);
        return null;
    }
    let (parent, child, target) = if reading {
        (fds[0], fds[1], 1)
    } else {
        (fds[1], fds[0], 0)
    };
    let setup = || {
        // SAFETY: raw fd operations in the child.
        unsafe {
            if child == target {
                syscall(raw::SYS_FCNTL, target as usize, F_SETFD, 0, 0);
            } else {
                syscall(raw::SYS_DUP2, child as usize, target as usize, 0, 0);
            }
            // POSIX: streams from earlier popen calls are closed in the child.
            for fd in POPEN_FD.iter() {
                let fd = fd.load(Ordering::Relaxed);
                if fd >= 0 && fd != target {
                    syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0);
                }
            }
        }
    };
    let close = |fd: c_int| {
        // SAFETY: our own pipe end.
        unsafe { syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0) };
    };
    // SAFETY: the caller's NUL-terminated command.
    let pid = match unsafe { fork_sh(cmd, setup) } {
        Ok(pid) => pid,
        Err(e) => {
            close(parent);
            close(child);
            release(slot);
            set_errno(e);
            return null;
        }
    };
    close(child);
    if !cloexec {
        // SAFETY: our own pipe end.
        unsafe { syscall(raw::SYS_FCNTL, parent as usize, F_SETFD, 0, 0) };
    }
    let fmode = if reading { c"r" } else { c"w" };
    // SAFETY: libc's fdopen on our pipe end.
    let f = unsafe { fdopen(parent, fmode.as_ptr()) };
    if f.is_null() {
        let e = get_errno();
        close(parent);
        wait_child(pid);
        release(slot);
        set_errno(if e == 0 { ENOMEM } else { e });
        return null;
    }
    POPEN_FD[slot].store(parent, Ordering::Relaxed);
    POPEN_PID[slot].store(pid as c_int, Ordering::Relaxed);
    POPEN_FILE[slot].store(f as usize, Ordering::Release);
    f
}

#[no_mangle]
pub unsafe extern "C" fn pclose(f: Ptr) -> c_int {
    let slot = (!f.is_null())
        .then(|| {
            POPEN_FILE
                .iter()
                .position(|s| s.load(Ordering::Acquire) == f as usize)
        })
        .flatten();
    let Some(slot) = slot else {
        // Not ours: a stream from libc's popen (the shim was inactive).
        return match real!("pclose", unsafe extern "C" fn(Ptr) -> c_int) {
            // SAFETY: forwarded.
            Some(g) => unsafe { g(f) },
            None => {
                set_errno(ENOSYS);
                -1
            }
        };
    };
    let pid = POPEN_PID[slot].load(Ordering::Relaxed);
    POPEN_FD[slot].store(-1, Ordering::Relaxed);
    POPEN_PID[slot].store(-1, Ordering::Relaxed);
    POPEN_FILE[slot].store(0, Ordering::Release);
    if let Some(fclose) = real!("fclose", unsafe extern "C" fn(Ptr) -> c_int) {
        // SAFETY: the stream popen returned.
        unsafe { fclose(f) };
    }
    wait_child(pid as isize)
}

/// The `execl` family: the trampolines below store the five register arguments after `path`
/// in `regs` and pass the caller's stack arguments as `stack`; `kind` is 0 (execl), 1 (execle:
/// the environment follows the NULL) or 2 (execlp).
unsafe extern "C" fn execl_impl(
    path: *const c_char,
    regs: *const *const c_char,
    stack: *const *const c_char,
    kind: c_int,
) -> c_int {
    // SAFETY: the variadic arguments of a C call, NULL-terminated as execl(3) requires.
    let arg = |i: usize| unsafe {
        if i < 5 {
            *regs.add(i)
        } else {
            *stack.add(i - 5)
        }
    };
    let mut n = 0;
    while !arg(n).is_null() {
        n += 1;
    }
    let envp = if kind == 1 {
        arg(n + 1) as Argv
    } else {
        environ()
    };
    // The vector on this stack (a vfork child's mapping would stay in its parent: Scratch).
    let mut scratch = ArgScratch::new();
    let map = scratch.take((n + 1) * 8);
    if map.is_null() {
        set_errno(ENOMEM);
        return -1;
    }
    let v = map.cast::<*const c_char>();
    for i in 0..=n {
        // SAFETY: the scratch holds n + 1 pointers.
        unsafe { *v.add(i) = arg(i) };
    }
    debug_assert_eq!(count(v as Argv), n);
    // SAFETY: forwarded; returns only on failure.
    unsafe {
        if kind == 2 {
            do_execvpe(path, v as Argv, envp)
        } else {
            do_execve(path, v as Argv, envp)
        }
    }
}

// Naked so that the caller's stack arguments are where the asm expects them; exported as C
// functions (a `global_asm!` symbol would not be in the library's export list).
macro_rules! execl_trampoline {
    ($name:ident, $kind:literal) => {
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "push rbp",
                "mov rbp, rsp",
                "sub rsp, 48",
                "mov [rsp], rsi",
                "mov [rsp + 8], rdx",
                "mov [rsp + 16], rcx",
                "mov [rsp + 24], r8",
                "mov [rsp + 32], r9",
                "mov rsi, rsp",
                "lea rdx, [rbp + 16]",
                concat!("mov ecx, ", $kind),
                "call {f}",
                "leave",
                "ret",
                f = sym execl_impl,
            );
        }
    };
}

execl_trampoline!(execl, 0);
execl_trampoline!(execle, 1);
execl_trampoline!(execlp, 2);
