//! A descriptor of the container root, so that a clean absolute guest path `/a/b` is looked
//! up as `a/b` relative to it (`newfstatat(rootfd, "a/b")`) instead of as the longer host path
//! `ROOT/a/b`: the kernel walks the guest's components only (the host prefix is 6 or more
//! more components of dcache lookups on every call: the half of a libc `stat` that remained),
//! and nothing is copied. Used for the hot lookups (stat family, access, open) of paths that
//! no exclusion or volume maps elsewhere; every other path takes the general translation.
//!
//! The descriptor is opened on first use (a program that never names a path, `true` or a
//! short-lived helper, pays nothing: three system calls fewer per exec), close-on-exec, and
//! moved to 63, out of the way of the lowest-free-number rule (a program reaches it only with
//! 60 files open). A program that closes it (close, closefrom, close_range) or `dup2`s over it
//! through libc makes the shim forget it (`forget`); one closed behind libc's back answers
//! EBADF, and the shim opens it again and retries.
//!
//! `vfork` children (dash, busybox, Python's subprocess, glibc's posix_spawn) share their
//! parent's memory but not its descriptor table, so the number kept here can be wrong for one
//! of them:
//! - a child that closes descriptors before its exec (close_range in Python's subprocess) makes
//!   the parent forget a descriptor it still has; the parent's next open then finds 63 taken,
//!   and adopts it when it is the same directory (`get`), instead of leaking one more
//!   descriptor per child (what the shim did before);
//! - a child that opened the descriptor itself forgets it before its exec (`before_exec`), so
//!   the parent does not use a number its own table lacks.

use super::ENOENT;
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw;
use crate::real::cstr;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicI32, Ordering};

const EBADF: isize = 9;
const O_PATH: usize = 0o10000000;
const O_DIRECTORY: usize = 0o200000;
const O_NOFOLLOW: usize = 0o400000;
const O_CLOEXEC: usize = 0o2000000;
const F_DUPFD_CLOEXEC: usize = 1030;
const RLIMIT_NOFILE: usize = 7;
const EINVAL: isize = 22;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// A fast call that does not apply to these arguments (take the general path).
pub const NOFAST: isize = isize::MIN;

static FD: AtomicI32 = AtomicI32::new(-1);
/// The process that opened FD (its pid), beside FD in .data (initialised, so not .bss).
static OPENER: AtomicI32 = AtomicI32::new(-1);

fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments.
    unsafe { raw::syscall(raw::SYS_GETPID, 0, 0, 0, 0) as i32 }
}

/// Whether descriptors `a` and `b` are open on the same file (fstat(2): device and inode).
fn same_file(a: isize, b: isize) -> bool {
    let mut sa = [0u64; 18];
    let mut sb = [0u64; 18];
    // SAFETY: `struct stat` is 144 bytes on x86_64; both buffers have room.
    let (ra, rb) = unsafe {
        (
            raw::syscall(raw::SYS_FSTAT, a as usize, sa.as_mut_ptr() as usize, 0, 0),
            raw::syscall(raw::SYS_FSTAT, b as usize, sb.as_mut_ptr() as usize, 0, 0),
        )
    };
    // st_dev and st_ino are the first two words.
    ra == 0 && rb == 0 && sa[..2] == sb[..2]
}

/// The root descriptor, opened when missing; `None` without a root or after a chroot in this
/// process (the descriptor is of the root the process started with).
pub fn get() -> Option<c_int> {
    let fd = FD.load(Ordering::Acquire);
    if fd >= 0 {
        return Some(fd);
    }
    let cfg = config::get();
    if !cfg.active() || cfg.chrooted() {
        return None;
    }
    // The root of this process: the container's, or the nested one a parent chrooted into.
    let base = cfg.start_root_c();
    // SAFETY: `base` is NUL-terminated.
    let low = unsafe {
        raw::syscall(
            raw::SYS_OPENAT,
            raw::AT_FDCWD as usize,
            base.as_ptr() as usize,
            O_PATH | O_DIRECTORY | O_CLOEXEC,
            0,
        )
    };
    if low < 0 {
        return None;
    }
    // Fd 63: the last of the table every process has (the kernel's fdtable embeds
    // BITS_PER_LONG = 64 slots; a higher number reallocates the table, and every later fork
    // copies the larger one: 100 us per fork+exec with the 20000-fd limit seen here). Lower
    // when the soft limit is under 64: fcntl(2) answers EINVAL for a number at or above it, and
    // only then is the limit read (one system call less at every program start).
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on our own descriptor.
    let dup = |hint: u64| unsafe {
        raw::syscall(
            raw::SYS_FCNTL,
            low as usize,
            F_DUPFD_CLOEXEC,
            hint as usize,
            0,
        )
    };
    let mut hint = 63;
    let mut fd = dup(hint);
    if fd == -EINVAL {
        let mut rl = [0u64; 2];
        // SAFETY: prlimit64(0, RLIMIT_NOFILE, NULL, &old) reads this process's limit into `rl`.
        let r = unsafe {
            raw::syscall(
                raw::SYS_PRLIMIT64,
                0,
                RLIMIT_NOFILE,
                0,
                rl.as_mut_ptr() as usize,
            )
        };
        if r == 0 && rl[0] < 64 {
            hint = rl[0].saturating_sub(1).max(3);
            fd = dup(hint);
        }
    }
    // The wanted number is taken: by this same directory when a vfork child made this process
    // forget it (see the module's notes). Keep that one.
    if fd > hint as isize && same_file(hint as isize, low) {
        // SAFETY: our own descriptor.
        unsafe { raw::syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0) };
        fd = hint as isize;
    }
    // SAFETY: the low copy is ours.
    unsafe { raw::syscall(raw::SYS_CLOSE, low as usize, 0, 0, 0) };
    if fd < 0 {
        return None;
    }
    let fd = fd as c_int;
    match FD.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            OPENER.store(getpid(), Ordering::Release);
            Some(fd)
        }
        Err(other) => {
            // Another thread won the race: one descriptor is enough.
            // SAFETY: our own descriptor.
            unsafe { raw::syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0) };
            Some(other)
        }
    }
}

/// The program closes or replaces descriptor `fd`: if it is the root's, forget it (it is
/// opened again on next use).
pub fn forget(fd: c_int) {
    if fd >= 0 {
        let _ = FD.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Just before an exec: forget a descriptor this process opened, as it may be a vfork child
/// whose parent would otherwise take the number for its own (the descriptor is close-on-exec;
/// after a failed exec the next `get` adopts it again). A descriptor opened by a parent is
/// left alone, and then no system call is made.
pub fn before_exec() {
    let fd = FD.load(Ordering::Acquire);
    if fd >= 0 {
        let opener = OPENER.load(Ordering::Acquire);
        if opener > 0 && opener == getpid() {
            let _ = FD.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// The program closes descriptors `first..=last`.
pub fn forget_range(first: c_int, last: c_int) {
    let fd = FD.load(Ordering::Acquire);
    if fd >= 0 && (first as u32) <= fd as u32 && fd as u32 <= last as u32 {
        forget(fd);
    }
}

/// The guest path `p` relative to the root (`p` without its `/`), when the fast lookup applies:
/// a root and no chroot, an absolute path already normal (`path::is_clean`), and neither
/// excluded, nor mapped by a volume, nor under /proc (its links have their own rules), nor a
/// host path under the root already.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub unsafe fn rel(p: *const c_char) -> Option<*const c_char> {
    if p.is_null() {
        return None;
    }
    let cfg = config::get();
    if !cfg.active() || cfg.chrooted() || cfg.debug {
        return None;
    }
    // SAFETY: the caller's NUL-terminated path.
    let g = unsafe { cstr(p) };
    if g.len() < 2 || g[0] != b'/' || g.len() >= PATH_MAX || g.starts_with(b"/proc/") {
        return None;
    }
    if !path::is_clean(g) {
        return None;
    }
    let v = cfg.view();
    if path::strip_component_prefix(v.base, g).is_some()
        || v.exclude
            .iter()
            .flatten()
            .any(|e| path::strip_component_prefix(e, g).is_some())
        || v.dir_map
            .iter()
            .flatten()
            .any(|(_, m)| path::strip_component_prefix(m, g).is_some())
    {
        return None;
    }
    // SAFETY: `g` has at least two bytes; the rest is still NUL-terminated.
    Some(unsafe { p.add(1) })
}

/// The outcome of a fast call.
pub enum Fast {
    /// Not applicable: translate as usual.
    No,
    /// The raw result (>= 0, or -errno), with the descriptor and relative path it used.
    Done(isize, c_int, *const c_char),
}

/// Run `f(rootfd, rel)` for guest path `p` when the fast lookup applies; a descriptor closed
/// behind the shim's back (EBADF) is opened again once.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string; `f` makes a system call with these arguments.
pub unsafe fn run(p: *const c_char, f: impl Fn(c_int, *const c_char) -> isize) -> Fast {
    // SAFETY: forwarded.
    let Some(rel) = (unsafe { rel(p) }) else {
        return Fast::No;
    };
    let Some(mut fd) = get() else {
        return Fast::No;
    };
    let mut r = f(fd, rel);
    if r == -EBADF {
        forget(fd);
        match get() {
            Some(f2) => fd = f2,
            None => return Fast::No,
        }
        r = f(fd, rel);
    }
    if r == NOFAST {
        return Fast::No;
    }
    Fast::Done(r, fd, rel)
}

/// After ENOENT on `rel`: whether the path exists when resolved with the root as `/`
/// (openat2(2) RESOLVE_IN_ROOT: a relative link's `..` stops at the root, as under chroot).
/// When it does, the general path (which retries the same way) answers; when it does not,
/// ENOENT stands, at the cost of this one call.
pub fn found_in_root(fd: c_int, rel: *const c_char, follow: bool) -> bool {
    let how: [u64; 3] = [
        (O_PATH | O_CLOEXEC | if follow { 0 } else { O_NOFOLLOW }) as u64,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    ];
    // SAFETY: `rel` is NUL-terminated; `how` is a 24-byte struct open_how.
    let r = unsafe {
        raw::syscall(
            raw::SYS_OPENAT2,
            fd as usize,
            rel as usize,
            how.as_ptr() as usize,
            24,
        )
    };
    if r < 0 {
        return false;
    }
    // SAFETY: our own descriptor.
    unsafe { raw::syscall(raw::SYS_CLOSE, r as usize, 0, 0, 0) };
    true
}

/// ENOENT as the fast path answers it: `true` when the general path must try again.
pub fn enoent_needs_retry(r: isize, fd: c_int, rel: *const c_char, follow: bool) -> bool {
    r == -(ENOENT as isize) && found_in_root(fd, rel, follow)
}
