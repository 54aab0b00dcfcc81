//! Wrappers that hand paths back (narrowed from host to guest: getcwd, realpath, readlink) and
//! symlink, whose target is a guest path stored host-prefixed (§4.2).

use super::{
    narrow_in_place, resolve_relative, xlat, AT_FDCWD, ENAMETOOLONG, ENOENT, ENOSYS, ENOTDIR,
    ERANGE,
};
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw;
use crate::real::{cstr, real, set_errno};
use core::ffi::{c_char, c_int};

type GetcwdFn = unsafe extern "C" fn(*mut c_char, usize) -> *mut c_char;

unsafe fn getcwd_impl(buf: *mut c_char, size: usize) -> *mut c_char {
    let Some(f) = real!("getcwd", GetcwdFn) else {
        set_errno(ENOSYS);
        return core::ptr::null_mut();
    };
    // A NULL buffer of size 0 is malloc'd to fit the host path; ask for PATH_MAX instead so the
    // guest path (which a DIR_MAP may make longer) fits too.
    let size = if buf.is_null() && size == 0 {
        PATH_MAX
    } else {
        size
    };
    // SAFETY: libc's getcwd with the caller's buffer.
    let r = unsafe { f(buf, size) };
    // SAFETY: `r` is null or a NUL-terminated string of capacity `size`.
    if !r.is_null() && !unsafe { narrow_in_place(r, size) } {
        set_errno(ERANGE);
        return core::ptr::null_mut();
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char {
    // SAFETY: forwarded.
    unsafe { getcwd_impl(buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __getcwd_chk(
    buf: *mut c_char,
    size: usize,
    _buflen: usize,
) -> *mut c_char {
    // SAFETY: forwarded (the fortify check is the caller's size).
    unsafe { getcwd_impl(buf, size) }
}

#[no_mangle]
pub unsafe extern "C" fn get_current_dir_name() -> *mut c_char {
    // glibc's version trusts $PWD when it names the cwd: a guest path that would be checked
    // on the host. Always use getcwd (malloc'd by libc, so the caller can free it).
    // SAFETY: forwarded.
    unsafe { getcwd_impl(core::ptr::null_mut(), 0) }
}

type RealpathFn = unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut c_char;

unsafe fn realpath_impl(p: *const c_char, resolved: *mut c_char) -> *mut c_char {
    let mut buf = [0u8; PATH_MAX];
    // SAFETY: the caller's path.
    let q = match unsafe { xlat(b"realpath", AT_FDCWD, p, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            set_errno(e);
            return core::ptr::null_mut();
        }
    };
    let Some(f) = real!("realpath", RealpathFn) else {
        set_errno(ENOSYS);
        return core::ptr::null_mut();
    };
    // SAFETY: libc's realpath; a caller's buffer holds PATH_MAX bytes.
    let r = unsafe { f(q, resolved) };
    if r.is_null() {
        return r;
    }
    // A malloc'd result is exactly as long as the host path: narrowing only shortens it unless
    // a DIR_MAP maps to a longer guest path (then the host path is left, a known limit).
    // SAFETY: `r` is NUL-terminated.
    let cap = if resolved.is_null() {
        unsafe { cstr(r) }.len() + 1
    } else {
        PATH_MAX
    };
    // SAFETY: `r` has `cap` bytes.
    unsafe { narrow_in_place(r, cap) };
    r
}

#[no_mangle]
pub unsafe extern "C" fn realpath(p: *const c_char, resolved: *mut c_char) -> *mut c_char {
    // SAFETY: forwarded.
    unsafe { realpath_impl(p, resolved) }
}

#[no_mangle]
pub unsafe extern "C" fn __realpath_chk(
    p: *const c_char,
    resolved: *mut c_char,
    _l: usize,
) -> *mut c_char {
    // SAFETY: forwarded.
    unsafe { realpath_impl(p, resolved) }
}

#[no_mangle]
pub unsafe extern "C" fn canonicalize_file_name(p: *const c_char) -> *mut c_char {
    // SAFETY: forwarded.
    unsafe { realpath_impl(p, core::ptr::null_mut()) }
}

/// readlinkat through the raw system call, the link contents narrowed, then truncated to
/// `size` as readlink(2) does.
unsafe fn readlinkat_impl(d: c_int, p: *const c_char, out: *mut c_char, size: usize) -> isize {
    let mut buf = [0u8; PATH_MAX];
    // SAFETY: the caller's path.
    let q = match unsafe { super::xlat_f(b"readlink", d, p, &mut buf, false) } {
        Ok(q) => q,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
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
    if r < 0 {
        set_errno(-r as c_int);
        return -1;
    }
    let mut n = r as usize;
    let cfg = config::get();
    // F1/F2 run every program as `ld.so PROGRAM`, so /proc/self/exe names the loader; answer
    // with the program instead (the known F1 gap of §4.3 item 7).
    if cfg.loader().is_some_and(|l| l[..l.len() - 1] == link[..n]) {
        if let Some(m) = main_program(&mut link) {
            n = m;
        }
    }
    let mut g = [0u8; PATH_MAX];
    let (src, len) = match path::narrow(&cfg.view(), &link[..n], &mut g) {
        Some(l) if link[0] == b'/' => (&g, l),
        _ => (&link, n),
    };
    let len = len.min(size);
    // SAFETY: `out` has `size` >= len bytes (readlink does not NUL-terminate).
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), out.cast(), len) };
    len as isize
}

#[no_mangle]
pub unsafe extern "C" fn readlink(p: *const c_char, out: *mut c_char, size: usize) -> isize {
    // SAFETY: forwarded.
    unsafe { readlinkat_impl(AT_FDCWD, p, out, size) }
}

#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    d: c_int,
    p: *const c_char,
    out: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: forwarded.
    unsafe { readlinkat_impl(d, p, out, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __readlink_chk(
    p: *const c_char,
    out: *mut c_char,
    size: usize,
    _l: usize,
) -> isize {
    // SAFETY: forwarded.
    unsafe { readlinkat_impl(AT_FDCWD, p, out, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __readlinkat_chk(
    d: c_int,
    p: *const c_char,
    out: *mut c_char,
    size: usize,
    _l: usize,
) -> isize {
    // SAFETY: forwarded.
    unsafe { readlinkat_impl(d, p, out, size) }
}

type SymlinkatFn = unsafe extern "C" fn(*const c_char, c_int, *const c_char) -> c_int;

unsafe fn symlinkat_impl(target: *const c_char, d: c_int, p: *const c_char) -> c_int {
    let mut tb = [0u8; PATH_MAX];
    let mut pb = [0u8; PATH_MAX];
    // Only an absolute target is a guest path; a relative one is relative to the link.
    // SAFETY: the caller's NUL-terminated strings.
    let t = if !target.is_null() && unsafe { cstr(target) }.first() == Some(&b'/') {
        // SAFETY: as above.
        unsafe { xlat(b"symlink", AT_FDCWD, target, &mut tb) }
    } else {
        Ok(target)
    };
    // SAFETY: as above.
    let r = t.and_then(|t| Ok((t, unsafe { xlat(b"symlink", d, p, &mut pb) }?)));
    let (t, q) = match r {
        Ok(x) => x,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    match real!("symlinkat", SymlinkatFn) {
        // SAFETY: libc's symlinkat.
        Some(f) => unsafe { f(t, d, q) },
        None => {
            set_errno(ENOSYS);
            -1
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn symlink(target: *const c_char, p: *const c_char) -> c_int {
    // SAFETY: forwarded.
    unsafe { symlinkat_impl(target, AT_FDCWD, p) }
}

#[no_mangle]
pub unsafe extern "C" fn symlinkat(target: *const c_char, d: c_int, p: *const c_char) -> c_int {
    // SAFETY: forwarded.
    unsafe { symlinkat_impl(target, d, p) }
}

/// The program the loader was asked to run: from `/proc/self/cmdline`, which is
/// `LOADER [--argv0 NAME] [--glibc-hwcaps-mask LIST] PROGRAM ARGS` for every program the shim or udocker starts. Its length
/// in `out`. (glibc's link map names the main program "", so `dl_iterate_phdr` cannot tell.)
pub(super) fn main_program(out: &mut [u8; PATH_MAX]) -> Option<usize> {
    let mut buf = [0u8; 2 * PATH_MAX + 64];
    let n = raw::read_head(c"/proc/self/cmdline".as_ptr().cast(), &mut buf);
    if n <= 0 {
        return None;
    }
    let mut args = buf[..n as usize].split(|&b| b == 0);
    args.next()?;
    let mut a = args.next()?;
    // The options exec.rs puts before the program, each with its value.
    while a == b"--argv0" || a == b"--glibc-hwcaps-mask" {
        args.next()?;
        a = args.next()?;
    }
    if a.first() != Some(&b'/') || a.len() >= PATH_MAX {
        return None;
    }
    out[..a.len()].copy_from_slice(a);
    Some(a.len())
}

/// chroot(2) emulation (spec §4.2 "chroot(2) emulation", §4.4 `FAKECHROOT_BASE`): no system
/// call (an ordinary user may not chroot); `path`, resolved through the current root, must be a
/// directory and becomes the fake root of this process: absolute paths are expanded against it
/// from now on, and exec hands it to children as FAKECHROOT_BASE. As chroot(2), the cwd is not
/// changed, so a program that does not chdir("/") afterwards still has its old directory, and
/// a relative `path` is taken from it (chroot(".") there leaves a nested root, as a real chroot
/// does, but `..` never leaves the container root udocker set: `resolve_relative`). The
/// exclusions and the directory map are kept as they are (host paths, as upstream keeps
/// FAKECHROOT_EXCLUDE_PATH); LD_LIBRARY_PATH is not extended with the new root's `/lib`
/// (upstream does): with FAKECHROOT_ELFLOADER every program keeps running on the container's
/// loader, which must find the container's libc.
#[no_mangle]
pub unsafe extern "C" fn chroot(p: *const c_char) -> c_int {
    // SAFETY: forwarded.
    match unsafe { chroot_impl(p) } {
        Ok(()) => 0,
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

unsafe fn chroot_impl(p: *const c_char) -> Result<(), c_int> {
    const EFAULT: c_int = 14;
    if p.is_null() {
        return Err(EFAULT);
    }
    // SAFETY: a NUL-terminated path, as chroot(2) requires.
    let g = unsafe { cstr(p) };
    if g.is_empty() {
        return Err(ENOENT);
    }
    let cfg = config::get();
    let mut host = [0u8; PATH_MAX];
    if g[0] == b'/' {
        let mut abs = [0u8; PATH_MAX];
        let n = path::normalize(g, &mut abs).ok_or(ENAMETOOLONG)?;
        path::expand(&cfg.view(), &abs[..n], &mut host).ok_or(ENAMETOOLONG)?;
    } else {
        resolve_relative(cfg, AT_FDCWD, g, &mut host, true)?;
    }
    // The root must be the resolved host path (as udocker passes FAKECHROOT_BASE): getcwd and
    // readlink hand back resolved paths, which are narrowed by prefix. libc's realpath with a
    // PATH_MAX buffer allocates nothing; it also reports a missing path.
    let Some(f) = real!("realpath", RealpathFn) else {
        return Err(ENOSYS);
    };
    let mut resolved = [0u8; PATH_MAX];
    // SAFETY: `host` is NUL-terminated; `resolved` holds PATH_MAX bytes.
    if unsafe { f(host.as_ptr().cast(), resolved.as_mut_ptr().cast()) }.is_null() {
        return Err(crate::real::get_errno());
    }
    let mut st = [0u64; 18];
    // SAFETY: `resolved` is NUL-terminated; `st` is 144 bytes, the x86_64 `struct stat`.
    let r = unsafe {
        raw::syscall(
            raw::SYS_NEWFSTATAT,
            raw::AT_FDCWD as usize,
            resolved.as_ptr() as usize,
            st.as_mut_ptr() as usize,
            0,
        )
    };
    if r < 0 {
        return Err(-r as c_int);
    }
    // st_mode is the u32 at offset 24 (x86_64 `struct stat`: dev, ino, nlink, then mode).
    if (st[3] as u32) & 0o170000 != 0o040000 {
        return Err(ENOTDIR);
    }
    // SAFETY: NUL-terminated by realpath.
    let mut root = unsafe { cstr(resolved.as_ptr().cast()) };
    if root == b"/" {
        root = b"";
    }
    super::debug(b"chroot", g, root);
    config::set_root(root)
}
