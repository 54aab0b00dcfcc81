//! The exported wrappers (`spec/elf-fakechroot.md` §4.1) and the translation of their path
//! arguments. Each wrapper translates, then calls libc's function (found with `dlsym`) or a raw
//! system call; it never calls another interposed function, so no re-entrancy guard is needed.

mod cwd;
mod exec;
mod files;
mod fts;
mod ftw;
mod glob;
pub mod rootfd;
mod shell;
mod socket;
mod temp;

use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw;
use crate::real::{self, cstr};
use core::ffi::{c_char, c_int};

pub const ENOENT: c_int = 2;
pub const ENOEXEC: c_int = 8;
pub const EACCES: c_int = 13;
pub const ENOTDIR: c_int = 20;
pub const EINVAL: c_int = 22;
pub const ERANGE: c_int = 34;
pub const ENAMETOOLONG: c_int = 36;
pub const ENOSYS: c_int = 38;
pub const ENOMEM: c_int = 12;
pub const AT_FDCWD: c_int = -100;

/// `fakechroot: WHAT A -> B` on stderr when FAKECHROOT_DEBUG is set.
pub fn debug(what: &[u8], a: &[u8], b: &[u8]) {
    if config::get().debug {
        for s in [b"fakechroot: ", what, b" ", a, b" -> ", b, b"\n"] {
            raw::write_all(2, s);
        }
    }
}

/// The host directory a relative path under `dirfd` starts from: the cwd, or the target of
/// `/proc/self/fd/N`. Its length in `out` (no NUL).
pub(super) fn host_dir(dirfd: c_int, out: &mut [u8; PATH_MAX]) -> Result<usize, c_int> {
    if dirfd == AT_FDCWD {
        // SAFETY: `out` is PATH_MAX bytes.
        let r = unsafe { raw::syscall(raw::SYS_GETCWD, out.as_mut_ptr() as usize, PATH_MAX, 0, 0) };
        if r < 0 {
            return Err(-r as c_int);
        }
        // getcwd(2) returns the length including the NUL.
        return Ok((r as usize).saturating_sub(1));
    }
    let mut link = [0u8; 64];
    let mut digits = [0u8; 12];
    let digits = path::decimal(dirfd as u32, &mut digits);
    path::concat(&mut link, &[b"/proc/self/fd/", digits]).ok_or(EINVAL)?;
    // SAFETY: `link` is NUL-terminated, `out` is PATH_MAX bytes.
    let r = unsafe {
        raw::syscall(
            raw::SYS_READLINKAT,
            raw::AT_FDCWD as usize,
            link.as_ptr() as usize,
            out.as_mut_ptr() as usize,
            PATH_MAX - 1,
        )
    };
    if r < 0 {
        return Err(-r as c_int);
    }
    Ok(r as usize)
}

/// The pointer to hand to libc for the guest path `p` (relative to `dirfd`): `p` itself when it
/// needs no translation, else `buf` holding the host path. `Err(errno)` when it cannot be built.
pub unsafe fn xlat(
    what: &[u8],
    dirfd: c_int,
    p: *const c_char,
    buf: &mut [u8; PATH_MAX],
) -> Result<*const c_char, c_int> {
    // SAFETY: forwarded.
    unsafe { xlat_f(what, dirfd, p, buf, true) }
}

/// `xlat` for a call that follows (`follow`) or does not follow a final symlink: only a
/// following call sees /proc/self/exe as the program itself.
pub unsafe fn xlat_f(
    what: &[u8],
    dirfd: c_int,
    p: *const c_char,
    buf: &mut [u8; PATH_MAX],
    follow: bool,
) -> Result<*const c_char, c_int> {
    if p.is_null() {
        return Ok(p);
    }
    let cfg = config::get();
    if !cfg.active() {
        return Ok(p);
    }
    // SAFETY: libc path arguments are NUL-terminated strings.
    let g = unsafe { cstr(p) };
    if g.is_empty() {
        return Ok(p);
    }
    // The kernel refuses a path of PATH_MAX bytes or more before looking at it (path_resolution(7));
    // the translated one may be shorter once `.` and `..` are gone, so check the guest's.
    if g.len() >= PATH_MAX {
        return Err(ENAMETOOLONG);
    }
    let m = if g[0] == b'/' && path::is_clean(g) {
        match proc_self(cfg, g, follow, buf)? {
            Some(m) => m,
            None => path::expand(&cfg.view(), g, buf).ok_or(ENAMETOOLONG)?,
        }
    } else if g[0] == b'/' {
        let mut abs = [0u8; PATH_MAX];
        let n = path::normalize(g, &mut abs).ok_or(ENAMETOOLONG)?;
        match proc_self(cfg, &abs[..n], follow, buf)? {
            Some(m) => m,
            None => path::expand(&cfg.view(), &abs[..n], buf).ok_or(ENAMETOOLONG)?,
        }
    } else if !path::has_dotdot(g) {
        // The host cwd (or dirfd) is the host path of the guest one: the kernel can resolve it.
        return Ok(p);
    } else {
        resolve_relative(cfg, dirfd, g, buf, false)?
    };
    debug(what, g, &buf[..m]);
    Ok(buf.as_ptr().cast())
}

/// This process's own magic links seen from the container (proc(5)): `/proc/self/root` (also
/// `thread-self` and the own pid) is the container root, and `/proc/self/exe`, for a call that
/// follows it, is the program rather than the loader F1-F4 run it with. The host path in `out`
/// and its length; `None` for every other path.
fn proc_self(
    cfg: &config::Config,
    abs: &[u8],
    follow: bool,
    out: &mut [u8; PATH_MAX],
) -> Result<Option<usize>, c_int> {
    let Some(rest) = abs.strip_prefix(b"/proc/") else {
        return Ok(None);
    };
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    let (who, rest) = rest.split_at(end);
    if who != b"self" && who != b"thread-self" {
        let mut digits = [0u8; 12];
        // SAFETY: getpid(2) takes no argument and cannot fail.
        let pid = unsafe { raw::syscall(raw::SYS_GETPID, 0, 0, 0, 0) } as u32;
        if who != path::decimal(pid, &mut digits) {
            return Ok(None);
        }
    }
    if let Some(g) = path::strip_component_prefix(b"/root", rest) {
        if g.is_empty() && !follow {
            // The link itself (readlink, lstat): the kernel's answer, narrowed by the caller.
            return Ok(None);
        }
        let g: &[u8] = if g.is_empty() { b"/" } else { g };
        return path::expand(&cfg.view(), g, out)
            .map(Some)
            .ok_or(ENAMETOOLONG);
    }
    if follow && (rest == b"/exe" || rest == b"/exe/") && cfg.loader().is_some() {
        if let Some(n) = cwd::main_program(out) {
            out[n] = 0;
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// The second try of a call that failed with ENOENT on host path `q` (relative to `dirfd`):
/// the kernel followed a relative symlink whose `..` climbed above the container root, which
/// a chroot(2) stops at `/` (path_resolution(7)). The path is resolved again by the kernel
/// with ROOT as its root (openat2(2) RESOLVE_IN_ROOT, Linux 5.6; `..` and absolute links stay
/// inside) and, when that finds it, its host path is written to `buf` for the retry. Costs one
/// more system call on a miss, nothing on a hit.
pub unsafe fn retry_in_root(
    dirfd: c_int,
    q: *const c_char,
    buf: &mut [u8; PATH_MAX],
    follow: bool,
) -> Option<*const c_char> {
    let cfg = config::get();
    if q.is_null() || !cfg.active() {
        return None;
    }
    // SAFETY: a NUL-terminated path (the caller's or a translation buffer).
    let h = unsafe { cstr(q) };
    if h.is_empty() {
        // "" names the descriptor itself (AT_EMPTY_PATH) or nothing: no path to walk.
        return None;
    }
    let mut abs = [0u8; PATH_MAX];
    let h: &[u8] = if h.first() == Some(&b'/') {
        h
    } else {
        let mut d = [0u8; PATH_MAX];
        let n = host_dir(dirfd, &mut d).ok()?;
        let n = path::concat(&mut abs, &[&d[..n], b"/", h])?;
        &abs[..n]
    };
    let view = cfg.view();
    let rel = path::strip_component_prefix(view.base, h)?;
    let rel = rel.strip_prefix(b"/").unwrap_or(rel);
    if rel.is_empty() {
        return None;
    }
    let mut relc = [0u8; PATH_MAX];
    path::concat(&mut relc, &[rel])?;
    const O_PATH: usize = 0o10000000;
    const O_NOFOLLOW: usize = 0o400000;
    const O_DIRECTORY: usize = 0o200000;
    const O_CLOEXEC: usize = 0o2000000;
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    // The root descriptor the shim keeps (`rootfd`) when the root is the one the process
    // started with; otherwise one opened for this call. `view.base` is the current root.
    let kept = (!cfg.chrooted()).then(rootfd::get).flatten();
    let rootfd = match kept {
        Some(fd) => fd as isize,
        None => {
            let mut rb = [0u8; PATH_MAX];
            path::concat(&mut rb, &[view.base])?;
            // SAFETY: `rb` is NUL-terminated.
            unsafe {
                raw::syscall(
                    raw::SYS_OPENAT,
                    raw::AT_FDCWD as usize,
                    rb.as_ptr() as usize,
                    O_PATH | O_DIRECTORY | O_CLOEXEC,
                    0,
                )
            }
        }
    };
    if rootfd < 0 {
        return None;
    }
    // struct open_how { u64 flags, mode, resolve } (openat2(2)).
    let how: [u64; 3] = [
        (O_PATH | O_CLOEXEC | if follow { 0 } else { O_NOFOLLOW }) as u64,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    ];
    // SAFETY: `relc` is NUL-terminated; `how` is a 24-byte struct open_how.
    let fd = unsafe {
        raw::syscall(
            raw::SYS_OPENAT2,
            rootfd as usize,
            relc.as_ptr() as usize,
            how.as_ptr() as usize,
            24,
        )
    };
    if kept.is_none() {
        // SAFETY: our own descriptor, opened above.
        unsafe { raw::syscall(raw::SYS_CLOSE, rootfd as usize, 0, 0, 0) };
    }
    if fd < 0 {
        return None;
    }
    let r = host_dir(fd as c_int, buf);
    // SAFETY: our own descriptor.
    unsafe { raw::syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0) };
    let n = r.ok()?;
    if n >= PATH_MAX || buf[..n] == *h {
        return None;
    }
    buf[n] = 0;
    Some(buf.as_ptr().cast())
}

/// The host path of the relative guest path `g` under `dirfd`, NUL-terminated in `out`; its
/// length. `..` is applied to the guest view of the directory, so it stops at the root
/// (§4.2 step 2). A directory outside the current root (left there by a chroot, which does not
/// chdir: §4.2 "chroot(2) emulation") is seen through the container root udocker set, so `..`
/// never climbs out of the container either (the suite's escape-nested-chroot case). A
/// directory outside both is the host's: with `host_outside`, `g` is resolved there as the
/// kernel would (chroot("."), whose escape a real chroot allows); otherwise it is taken for a
/// guest path (an excluded directory such as a same-path volume).
pub(crate) fn resolve_relative(
    cfg: &config::Config,
    dirfd: c_int,
    g: &[u8],
    out: &mut [u8; PATH_MAX],
    host_outside: bool,
) -> Result<usize, c_int> {
    let mut hd = [0u8; PATH_MAX];
    let hl = host_dir(dirfd, &mut hd)?;
    let hd = &hd[..hl];
    let (view, jail) = (cfg.view(), cfg.jail_view());
    let mut gd = [0u8; PATH_MAX];
    // The view the directory is seen through, and whether it is a host directory outside both.
    let (v, gl, outside) = match path::narrow(&view, hd, &mut gd) {
        Some(l) => (view, l, false),
        None => match path::narrow(&jail, hd, &mut gd).filter(|_| jail.base != view.base) {
            Some(l) => (jail, l, false),
            None => (
                view,
                path::concat(&mut gd, &[hd]).ok_or(ENAMETOOLONG)?,
                true,
            ),
        },
    };
    let mut joined = [0u8; PATH_MAX];
    let jl = path::concat(&mut joined, &[&gd[..gl], b"/", g]).ok_or(ENAMETOOLONG)?;
    if outside && host_outside {
        return path::normalize(&joined[..jl], out).ok_or(ENAMETOOLONG);
    }
    let mut abs = [0u8; PATH_MAX];
    let n = path::normalize(&joined[..jl], &mut abs).ok_or(ENAMETOOLONG)?;
    path::expand(&v, &abs[..n], out).ok_or(ENAMETOOLONG)
}

/// Rewrite the host path in `s` (NUL-terminated, `cap` bytes available) as a guest path in
/// place; false when the guest path does not fit.
pub unsafe fn narrow_in_place(s: *mut c_char, cap: usize) -> bool {
    let cfg = config::get();
    if s.is_null() || !cfg.active() {
        return true;
    }
    // SAFETY: `s` is a NUL-terminated string the caller owns.
    let h = unsafe { cstr(s) };
    let mut out = [0u8; PATH_MAX];
    let Some(n) = path::narrow(&cfg.view(), h, &mut out) else {
        return true;
    };
    if n + 1 > cap {
        return false;
    }
    // SAFETY: `s` has room for `cap` >= n + 1 bytes.
    unsafe { core::ptr::copy_nonoverlapping(out.as_ptr(), s.cast(), n + 1) };
    true
}

/// A wrapper whose only change is one translated path argument.
macro_rules! wrap {
    ($name:ident ( $($a:ident : $t:ty),* ) -> $ret:ty, path = $p:ident, dirfd = $dfd:expr, fail = $fail:expr) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $ret {
            let mut buf = [0u8; $crate::path::PATH_MAX];
            // SAFETY: `$p` is the caller's path argument.
            let $p = match unsafe { $crate::interpose::xlat(stringify!($name).as_bytes(), $dfd, $p, &mut buf) } {
                Ok(p) => p,
                Err(e) => {
                    $crate::real::set_errno(e);
                    return $fail;
                }
            };
            match $crate::real::real!(stringify!($name), unsafe extern "C" fn($($t),*) -> $ret) {
                // SAFETY: libc's own function with the caller's arguments.
                Some(f) => unsafe { f($($a),*) },
                None => {
                    $crate::real::set_errno($crate::interpose::ENOSYS);
                    $fail
                }
            }
        }
    };
    // `retry`: a call that only looks a path up gets a second try on ENOENT (`retry_in_root`).
    // `fast`: the system call that answers it relative to the root descriptor (`rootfd`).
    ($name:ident ( $($a:ident : $t:ty),* ) -> $ret:ty, path = $p:ident, dirfd = $dfd:expr, fail = $fail:expr, retry $(, fast = |$fd:ident, $rel:ident| $e:expr)?) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $ret {
            $(
            // SAFETY: the caller's path; the closure makes one system call on it.
            match unsafe { $crate::interpose::rootfd::run($p, |$fd, $rel| $e) } {
                $crate::interpose::rootfd::Fast::Done(r, fd, rel) => {
                    if r >= 0 {
                        return r as $ret;
                    }
                    if !$crate::interpose::rootfd::enoent_needs_retry(r, fd, rel, true) {
                        $crate::real::set_errno(-r as core::ffi::c_int);
                        return $fail;
                    }
                }
                $crate::interpose::rootfd::Fast::No => {}
            }
            )?
            let mut buf = [0u8; $crate::path::PATH_MAX];
            // SAFETY: `$p` is the caller's path argument.
            let $p = match unsafe { $crate::interpose::xlat(stringify!($name).as_bytes(), $dfd, $p, &mut buf) } {
                Ok(p) => p,
                Err(e) => {
                    $crate::real::set_errno(e);
                    return $fail;
                }
            };
            let Some(f) = $crate::real::real!(stringify!($name), unsafe extern "C" fn($($t),*) -> $ret) else {
                $crate::real::set_errno($crate::interpose::ENOSYS);
                return $fail;
            };
            // SAFETY: libc's own function with the caller's arguments.
            let r = unsafe { f($($a),*) };
            if r == $fail && $crate::real::get_errno() == $crate::interpose::ENOENT {
                let mut b2 = [0u8; $crate::path::PATH_MAX];
                // SAFETY: `$p` is the path libc was given.
                if let Some($p) = unsafe { $crate::interpose::retry_in_root($dfd, $p, &mut b2, true) } {
                    // SAFETY: as above, on the path resolved inside the root.
                    return unsafe { f($($a),*) };
                }
                $crate::real::set_errno($crate::interpose::ENOENT);
            }
            r
        }
    };
}
pub(crate) use wrap;

/// A wrapper with two translated path arguments.
macro_rules! wrap2 {
    ($name:ident ( $($a:ident : $t:ty),* ) -> $ret:ty, path = ($p:ident, $pd:expr), path2 = ($q:ident, $qd:expr)) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $ret {
            let mut b1 = [0u8; $crate::path::PATH_MAX];
            let mut b2 = [0u8; $crate::path::PATH_MAX];
            let what = stringify!($name).as_bytes();
            // SAFETY: the caller's path arguments.
            let r = unsafe {
                $crate::interpose::xlat(what, $pd, $p, &mut b1)
                    .and_then(|p| Ok((p, $crate::interpose::xlat(what, $qd, $q, &mut b2)?)))
            };
            let ($p, $q) = match r {
                Ok(x) => x,
                Err(e) => {
                    $crate::real::set_errno(e);
                    return -1;
                }
            };
            match $crate::real::real!(stringify!($name), unsafe extern "C" fn($($t),*) -> $ret) {
                // SAFETY: libc's own function with the caller's arguments.
                Some(f) => unsafe { f($($a),*) },
                None => {
                    $crate::real::set_errno($crate::interpose::ENOSYS);
                    -1
                }
            }
        }
    };
}
pub(crate) use wrap2;

#[allow(unused_imports)]
use real::set_errno;
