//! open, stat, access, metadata and namespace wrappers (§4.1): one translated path each (two
//! for rename/link), then libc's function. `open`'s mode is variadic in C; on x86_64 a variadic
//! integer argument is passed in the same register as a fixed one, so it is declared fixed.

use super::{wrap, wrap2, AT_FDCWD};
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw;

const AT_SYMLINK_NOFOLLOW: c_int = 0x100;

/// Where a stat call leaves the mode and the size (x86_64 `struct stat` = `struct stat64`:
/// st_mode u32 at 24, st_size i64 at 48; `struct statx`: stx_mode u16 at 28, stx_size u64 at 40).
#[derive(Clone, Copy)]
enum Layout {
    Stat,
    Statx,
}

/// After a successful lstat-like call on host path `q` (relative to `d`) that filled `b`: when
/// it is a symlink whose absolute target narrows to a different guest path, st_size becomes the
/// guest length.
unsafe fn guest_link_size(d: c_int, q: *const c_char, b: Ptr, kind: Layout) {
    let cfg = config::get();
    if b.is_null() || q.is_null() || !cfg.active() {
        return;
    }
    let (mode_off, size_off) = match kind {
        Layout::Stat => (24, 48),
        Layout::Statx => (28, 40),
    };
    // SAFETY: the kernel filled the caller's struct; the mode's low 16 bits are at `mode_off`.
    let mode = unsafe { b.cast::<u8>().add(mode_off).cast::<u16>().read_unaligned() };
    if u32::from(mode) & 0o170000 != 0o120000 {
        return;
    }
    // SAFETY: as above; st_size/stx_size is an 8-byte field at `size_off`.
    let size = unsafe { b.cast::<u8>().add(size_off).cast::<u64>().read_unaligned() };
    if size == 0 {
        // A magic link of /proc (proc(5)): its size is 0 whatever it points to.
        return;
    }
    let mut link = [0u8; PATH_MAX];
    // SAFETY: `q` is NUL-terminated; `link` is PATH_MAX bytes.
    let r = unsafe {
        raw::syscall(
            raw::SYS_READLINKAT,
            d as isize as usize,
            q as usize,
            link.as_mut_ptr() as usize,
            PATH_MAX - 1,
        )
    };
    if r <= 0 || link[0] != b'/' {
        return;
    }
    let mut g = [0u8; PATH_MAX];
    if let Some(n) = path::narrow(&cfg.view(), &link[..r as usize], &mut g) {
        // SAFETY: st_size/stx_size is an 8-byte field at `size_off` of the caller's struct.
        unsafe {
            b.cast::<u8>()
                .add(size_off)
                .cast::<u64>()
                .write_unaligned(n as u64)
        };
    }
}

/// A stat wrapper that may report a symlink (see `guest_link_size`).
macro_rules! wrap_lstat {
    ($name:ident ( $($a:ident : $t:ty),* ), path = $p:ident, buf = $b:ident, dirfd = $dfd:expr, nofollow = $nf:expr, kind = $kind:ident, fast = |$fd:ident, $rel:ident| $e:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> c_int {
            // SAFETY: the caller's path; the closure makes one system call on it.
            match unsafe { super::rootfd::run($p, |$fd, $rel| $e) } {
                super::rootfd::Fast::Done(r, fd, rel) => {
                    if r >= 0 {
                        if $nf {
                            // SAFETY: `rel` under `fd` is the path the kernel was given.
                            unsafe { guest_link_size(fd, rel, $b, Layout::$kind) };
                        }
                        return 0;
                    }
                    if !super::rootfd::enoent_needs_retry(r, fd, rel, !($nf)) {
                        crate::real::set_errno(-r as c_int);
                        return -1;
                    }
                }
                super::rootfd::Fast::No => {}
            }
            let mut buf = [0u8; PATH_MAX];
            // SAFETY: `$p` is the caller's path argument.
            let q = match unsafe { super::xlat_f(stringify!($name).as_bytes(), $dfd, $p, &mut buf, !($nf)) } {
                Ok(q) => q,
                Err(e) => {
                    crate::real::set_errno(e);
                    return -1;
                }
            };
            let Some(f) = crate::real::real!(stringify!($name), unsafe extern "C" fn($($t),*) -> c_int) else {
                crate::real::set_errno(super::ENOSYS);
                return -1;
            };
            let $p = q;
            // SAFETY: libc's own function with the caller's arguments (the path translated).
            let mut r = unsafe { f($($a),*) };
            let mut q = q;
            let mut b2 = [0u8; PATH_MAX];
            if r != 0 && crate::real::get_errno() == super::ENOENT {
                // SAFETY: `q` is the path libc was given.
                if let Some(q2) = unsafe { super::retry_in_root($dfd, q, &mut b2, !($nf)) } {
                    let $p = q2;
                    q = q2;
                    // SAFETY: as above, on the path resolved inside the root.
                    r = unsafe { f($($a),*) };
                } else {
                    crate::real::set_errno(super::ENOENT);
                }
            }
            if r == 0 && $nf {
                // SAFETY: `q` is the path libc was given; `$b` the struct it filled.
                unsafe { guest_link_size($dfd, q, $b, Layout::$kind) };
            }
            r
        }
    };
}

use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

// The fast calls (`rootfd`): on x86_64 the kernel's struct stat and struct statx are the ones
// glibc and musl hand to programs (stat(2), statx(2)), so the system call fills the caller's
// buffer exactly as libc would.
const SYS_STATX: usize = 332;

fn sys_fstatat(fd: c_int, rel: *const c_char, b: Ptr, fl: c_int) -> isize {
    // SAFETY: a NUL-terminated path and the caller's struct stat.
    unsafe {
        raw::syscall(
            raw::SYS_NEWFSTATAT,
            fd as usize,
            rel as usize,
            b as usize,
            fl as usize,
        )
    }
}

/// `__xstat` and friends: version 0 (_STAT_VER_KERNEL) and 1 (_STAT_VER_LINUX) are the
/// kernel's struct on x86_64; any other goes through libc.
fn xstat_ver(v: c_int, fd: c_int, rel: *const c_char, b: Ptr, fl: c_int) -> isize {
    if v == 0 || v == 1 {
        sys_fstatat(fd, rel, b, fl)
    } else {
        super::rootfd::NOFAST
    }
}

fn sys_statx(fd: c_int, rel: *const c_char, fl: c_int, mask: c_uint, b: Ptr) -> isize {
    // SAFETY: a NUL-terminated path and the caller's struct statx.
    unsafe {
        raw::syscall6(
            SYS_STATX,
            [
                fd as usize,
                rel as usize,
                fl as usize,
                mask as usize,
                b as usize,
                0,
            ],
        )
    }
}

/// faccessat(2) has no flags; with flags libc emulates or uses faccessat2: leave those to it.
fn sys_faccessat(fd: c_int, rel: *const c_char, m: c_int, fl: c_int) -> isize {
    if fl != 0 {
        return super::rootfd::NOFAST;
    }
    // SAFETY: a NUL-terminated path.
    unsafe { raw::syscall(raw::SYS_FACCESSAT, fd as usize, rel as usize, m as usize, 0) }
}

fn sys_openat(fd: c_int, rel: *const c_char, flags: c_int, mode: c_uint) -> isize {
    // SAFETY: a NUL-terminated path; the flags and mode are the caller's.
    unsafe {
        raw::syscall(
            raw::SYS_OPENAT,
            fd as usize,
            rel as usize,
            flags as usize,
            mode as usize,
        )
    }
}

/// close(2), dup2(2), dup3(2): a program that closes or replaces the root descriptor makes the
/// shim forget it (`rootfd`), then libc does what was asked.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    super::rootfd::forget(fd);
    match crate::real::real!("close", unsafe extern "C" fn(c_int) -> c_int) {
        // SAFETY: libc's close with the caller's argument.
        Some(f) => unsafe { f(fd) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}

/// closefrom(3) and close_range(2) (glibc 2.34) close through the system call, not close().
#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    super::rootfd::forget_range(low, c_int::MAX);
    if let Some(f) = crate::real::real!("closefrom", unsafe extern "C" fn(c_int)) {
        // SAFETY: libc's closefrom with the caller's argument.
        unsafe { f(low) }
    }
}

#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    const CLOSE_RANGE_CLOEXEC: c_int = 4;
    if flags & CLOSE_RANGE_CLOEXEC == 0 {
        super::rootfd::forget_range(
            first.min(c_int::MAX as c_uint) as c_int,
            last.min(c_int::MAX as c_uint) as c_int,
        );
    }
    match crate::real::real!(
        "close_range",
        unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int
    ) {
        // SAFETY: libc's close_range with the caller's arguments.
        Some(f) => unsafe { f(first, last, flags) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old != new {
        super::rootfd::forget(new);
    }
    match crate::real::real!("dup2", unsafe extern "C" fn(c_int, c_int) -> c_int) {
        // SAFETY: libc's dup2 with the caller's arguments.
        Some(f) => unsafe { f(old, new) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if old != new {
        super::rootfd::forget(new);
    }
    match crate::real::real!("dup3", unsafe extern "C" fn(c_int, c_int, c_int) -> c_int) {
        // SAFETY: libc's dup3 with the caller's arguments.
        Some(f) => unsafe { f(old, new, flags) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}

type Ptr = *mut c_void;
const NULL: Ptr = core::ptr::null_mut();

// open
wrap!(open(p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| sys_openat(fd, rel, flags, mode));
wrap!(open64(p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| sys_openat(fd, rel, flags, mode));
wrap!(__open(p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(__open64(p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(__open_2(p: *const c_char, flags: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(__open64_2(p: *const c_char, flags: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(openat(d: c_int, p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = d, fail = -1, retry, fast = |fd, rel| sys_openat(fd, rel, flags, mode));
wrap!(openat64(d: c_int, p: *const c_char, flags: c_int, mode: c_uint) -> c_int, path = p, dirfd = d, fail = -1, retry, fast = |fd, rel| sys_openat(fd, rel, flags, mode));
wrap!(__openat_2(d: c_int, p: *const c_char, flags: c_int) -> c_int, path = p, dirfd = d, fail = -1, retry);
wrap!(__openat64_2(d: c_int, p: *const c_char, flags: c_int) -> c_int, path = p, dirfd = d, fail = -1, retry);
wrap!(creat(p: *const c_char, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(creat64(p: *const c_char, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(fopen(p: *const c_char, m: *const c_char) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL, retry);
wrap!(fopen64(p: *const c_char, m: *const c_char) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL, retry);
wrap!(freopen(p: *const c_char, m: *const c_char, f: Ptr) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL);
wrap!(freopen64(p: *const c_char, m: *const c_char, f: Ptr) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL);
wrap!(truncate(p: *const c_char, len: c_long) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(truncate64(p: *const c_char, len: c_long) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(mkfifo(p: *const c_char, mode: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(mkfifoat(d: c_int, p: *const c_char, mode: c_uint) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(mknod(p: *const c_char, mode: c_uint, dev: c_ulong) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(mknodat(d: c_int, p: *const c_char, mode: c_uint, dev: c_ulong) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(__xmknod(v: c_int, p: *const c_char, mode: c_uint, dev: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(__xmknodat(v: c_int, d: c_int, p: *const c_char, mode: c_uint, dev: Ptr) -> c_int, path = p, dirfd = d, fail = -1);

// stat: the glibc >= 2.33 names, the older __xstat family, statx
wrap!(stat(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| sys_fstatat(fd, rel, b, 0));
wrap!(stat64(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| sys_fstatat(fd, rel, b, 0));
wrap!(__xstat(v: c_int, p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| xstat_ver(v, fd, rel, b, 0));
wrap!(__xstat64(v: c_int, p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| xstat_ver(v, fd, rel, b, 0));
// The calls that can report a symlink itself (lstat, AT_SYMLINK_NOFOLLOW) give its size as
// readlink will: the length of the narrowed target (spec §5 symlink.t: "readlink size equals
// lstat size"; programs size their readlink buffer from st_size).
wrap_lstat!(lstat(p: *const c_char, b: Ptr), path = p, buf = b, dirfd = AT_FDCWD, nofollow = true, kind = Stat, fast = |fd, rel| sys_fstatat(fd, rel, b, AT_SYMLINK_NOFOLLOW));
wrap_lstat!(lstat64(p: *const c_char, b: Ptr), path = p, buf = b, dirfd = AT_FDCWD, nofollow = true, kind = Stat, fast = |fd, rel| sys_fstatat(fd, rel, b, AT_SYMLINK_NOFOLLOW));
wrap_lstat!(__lxstat(v: c_int, p: *const c_char, b: Ptr), path = p, buf = b, dirfd = AT_FDCWD, nofollow = true, kind = Stat, fast = |fd, rel| xstat_ver(v, fd, rel, b, AT_SYMLINK_NOFOLLOW));
wrap_lstat!(__lxstat64(v: c_int, p: *const c_char, b: Ptr), path = p, buf = b, dirfd = AT_FDCWD, nofollow = true, kind = Stat, fast = |fd, rel| xstat_ver(v, fd, rel, b, AT_SYMLINK_NOFOLLOW));
wrap_lstat!(fstatat(d: c_int, p: *const c_char, b: Ptr, fl: c_int), path = p, buf = b, dirfd = d, nofollow = fl & AT_SYMLINK_NOFOLLOW != 0, kind = Stat, fast = |fd, rel| sys_fstatat(fd, rel, b, fl));
wrap_lstat!(fstatat64(d: c_int, p: *const c_char, b: Ptr, fl: c_int), path = p, buf = b, dirfd = d, nofollow = fl & AT_SYMLINK_NOFOLLOW != 0, kind = Stat, fast = |fd, rel| sys_fstatat(fd, rel, b, fl));
wrap_lstat!(__fxstatat(v: c_int, d: c_int, p: *const c_char, b: Ptr, fl: c_int), path = p, buf = b, dirfd = d, nofollow = fl & AT_SYMLINK_NOFOLLOW != 0, kind = Stat, fast = |fd, rel| xstat_ver(v, fd, rel, b, fl));
wrap_lstat!(__fxstatat64(v: c_int, d: c_int, p: *const c_char, b: Ptr, fl: c_int), path = p, buf = b, dirfd = d, nofollow = fl & AT_SYMLINK_NOFOLLOW != 0, kind = Stat, fast = |fd, rel| xstat_ver(v, fd, rel, b, fl));
wrap_lstat!(statx(d: c_int, p: *const c_char, fl: c_int, mask: c_uint, b: Ptr), path = p, buf = b, dirfd = d, nofollow = fl & AT_SYMLINK_NOFOLLOW != 0, kind = Statx, fast = |fd, rel| sys_statx(fd, rel, fl, mask, b));
wrap!(statfs(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(statfs64(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(statvfs(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(statvfs64(p: *const c_char, b: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);

// access
wrap!(access(p: *const c_char, m: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry, fast = |fd, rel| sys_faccessat(fd, rel, m, 0));
wrap!(eaccess(p: *const c_char, m: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(euidaccess(p: *const c_char, m: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(faccessat(d: c_int, p: *const c_char, m: c_int, fl: c_int) -> c_int, path = p, dirfd = d, fail = -1, retry, fast = |fd, rel| sys_faccessat(fd, rel, m, fl));
wrap!(pathconf(p: *const c_char, n: c_int) -> c_long, path = p, dirfd = AT_FDCWD, fail = -1);

// metadata
wrap!(chmod(p: *const c_char, m: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(lchmod(p: *const c_char, m: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(fchmodat(d: c_int, p: *const c_char, m: c_uint, fl: c_int) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(chown(p: *const c_char, u: c_uint, g: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(lchown(p: *const c_char, u: c_uint, g: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(fchownat(d: c_int, p: *const c_char, u: c_uint, g: c_uint, fl: c_int) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(utime(p: *const c_char, t: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(utimes(p: *const c_char, t: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(lutimes(p: *const c_char, t: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(futimesat(d: c_int, p: *const c_char, t: Ptr) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(utimensat(d: c_int, p: *const c_char, t: Ptr, fl: c_int) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(getxattr(p: *const c_char, n: *const c_char, v: Ptr, s: usize) -> isize, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(lgetxattr(p: *const c_char, n: *const c_char, v: Ptr, s: usize) -> isize, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(setxattr(p: *const c_char, n: *const c_char, v: Ptr, s: usize, f: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(lsetxattr(p: *const c_char, n: *const c_char, v: Ptr, s: usize, f: c_int) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(listxattr(p: *const c_char, l: *mut c_char, s: usize) -> isize, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(llistxattr(p: *const c_char, l: *mut c_char, s: usize) -> isize, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(removexattr(p: *const c_char, n: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(lremovexattr(p: *const c_char, n: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);

// namespace
wrap!(mkdir(p: *const c_char, m: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(mkdirat(d: c_int, p: *const c_char, m: c_uint) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(rmdir(p: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(unlink(p: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(unlinkat(d: c_int, p: *const c_char, fl: c_int) -> c_int, path = p, dirfd = d, fail = -1);
wrap!(remove(p: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap2!(rename(a: *const c_char, b: *const c_char) -> c_int, path = (a, AT_FDCWD), path2 = (b, AT_FDCWD));
wrap2!(renameat(da: c_int, a: *const c_char, db: c_int, b: *const c_char) -> c_int, path = (a, da), path2 = (b, db));
wrap2!(renameat2(da: c_int, a: *const c_char, db: c_int, b: *const c_char, fl: c_uint) -> c_int, path = (a, da), path2 = (b, db));
wrap2!(link(a: *const c_char, b: *const c_char) -> c_int, path = (a, AT_FDCWD), path2 = (b, AT_FDCWD));
wrap2!(linkat(da: c_int, a: *const c_char, db: c_int, b: *const c_char, fl: c_int) -> c_int, path = (a, da), path2 = (b, db));

// directories and the loader
wrap!(opendir(p: *const c_char) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL, retry);
wrap!(__opendir2(p: *const c_char, fl: c_int) -> Ptr, path = p, dirfd = AT_FDCWD, fail = NULL, retry);
wrap!(chdir(p: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1, retry);
wrap!(inotify_add_watch(fd: c_int, p: *const c_char, m: c_uint) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(acct(p: *const c_char) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);

/// `dlopen`: only names with a `/` are paths; bare names are left to the loader's search
/// (LD_LIBRARY_PATH holds the container's lib dirs) (§4.2).
#[no_mangle]
pub unsafe extern "C" fn dlopen(p: *const c_char, flags: c_int) -> Ptr {
    let mut buf = [0u8; crate::path::PATH_MAX];
    // SAFETY: the caller's NUL-terminated name (or null).
    let has_slash = !p.is_null() && unsafe { crate::real::cstr(p) }.contains(&b'/');
    let q = if has_slash {
        // SAFETY: as above.
        match unsafe { super::xlat(b"dlopen", AT_FDCWD, p, &mut buf) } {
            Ok(q) => q,
            Err(_) => p,
        }
    } else {
        p
    };
    match crate::real::real!("dlopen", unsafe extern "C" fn(*const c_char, c_int) -> Ptr) {
        // SAFETY: libc's dlopen.
        Some(f) => unsafe { f(q, flags) },
        None => NULL,
    }
}

// scandir: glibc opens the directory through an internal opendir; the results are names only.
wrap!(scandir(p: *const c_char, nl: Ptr, f: Ptr, c: Ptr) -> c_int, path = p, dirfd = AT_FDCWD, fail = -1);
wrap!(scandirat(d: c_int, p: *const c_char, nl: Ptr, f: Ptr, c: Ptr) -> c_int, path = p, dirfd = d, fail = -1);

type ScandirFn = unsafe extern "C" fn(*const c_char, Ptr, Ptr, Ptr) -> c_int;
type ScandiratFn = unsafe extern "C" fn(c_int, *const c_char, Ptr, Ptr, Ptr) -> c_int;

/// The LFS64 names, falling back to the plain ones where libc lacks them (musl >= 1.2.4).
#[no_mangle]
pub unsafe extern "C" fn scandir64(p: *const c_char, nl: Ptr, f: Ptr, c: Ptr) -> c_int {
    let mut buf = [0u8; crate::path::PATH_MAX];
    // SAFETY: the caller's path.
    let q = match unsafe { super::xlat(b"scandir64", AT_FDCWD, p, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            crate::real::set_errno(e);
            return -1;
        }
    };
    let real = crate::real::real!("scandir64", ScandirFn)
        .or_else(|| crate::real::real!("scandir", ScandirFn));
    match real {
        // SAFETY: libc's function with the caller's arguments.
        Some(g) => unsafe { g(q, nl, f, c) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn scandirat64(d: c_int, p: *const c_char, nl: Ptr, f: Ptr, c: Ptr) -> c_int {
    let mut buf = [0u8; crate::path::PATH_MAX];
    // SAFETY: the caller's path.
    let q = match unsafe { super::xlat(b"scandirat64", d, p, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            crate::real::set_errno(e);
            return -1;
        }
    };
    let real = crate::real::real!("scandirat64", ScandiratFn)
        .or_else(|| crate::real::real!("scandirat", ScandiratFn));
    match real {
        // SAFETY: libc's function with the caller's arguments.
        Some(g) => unsafe { g(d, q, nl, f, c) },
        None => {
            crate::real::set_errno(super::ENOSYS);
            -1
        }
    }
}
