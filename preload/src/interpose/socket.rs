//! AF_UNIX socket addresses (spec §4.1 "bind connect getsockname getpeername (AF_UNIX only)",
//! §4.2 "AF_UNIX sockets"): a socket path is a guest path, so it is bound and connected under the
//! root, or under `FAKECHROOT_AF_UNIX_PATH` when udocker set one (sun_path holds only 108 bytes,
//! which a deep container root can exceed); addresses handed back are narrowed. Abstract sockets
//! (sun_path starting with NUL) and other families pass through.

use super::{xlat, AT_FDCWD, ENAMETOOLONG, ENOSYS};
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::real::{real, set_errno};
use core::ffi::{c_char, c_int, c_void};

const AF_UNIX: u16 = 1;
/// `offsetof(struct sockaddr_un, sun_path)` and the size of `sun_path` (unix(7)).
const PATH_OFF: usize = 2;
const SUN_PATH: usize = 108;

#[repr(C)]
struct SockaddrUn {
    family: u16,
    path: [u8; SUN_PATH],
}

/// The host address for a guest AF_UNIX address, or `None` when it is passed as it is.
/// `Err(errno)` when the host path does not fit in sun_path.
unsafe fn host_addr(addr: *const c_void, len: u32) -> Result<Option<(SockaddrUn, u32)>, c_int> {
    let cfg = config::get();
    let len = len as usize;
    if addr.is_null() || !cfg.active() || len <= PATH_OFF {
        return Ok(None);
    }
    // SAFETY: the caller's address holds `len` >= 2 bytes.
    let family = unsafe { addr.cast::<u16>().read_unaligned() };
    if family != AF_UNIX {
        return Ok(None);
    }
    // SAFETY: as above; sun_path is the rest, not necessarily NUL-terminated.
    let raw = unsafe {
        core::slice::from_raw_parts(
            addr.cast::<u8>().add(PATH_OFF),
            (len - PATH_OFF).min(SUN_PATH),
        )
    };
    let g = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    if g.is_empty() {
        return Ok(None);
    }
    let mut gbuf = [0u8; SUN_PATH + 1];
    path::concat(&mut gbuf, &[g]).ok_or(ENAMETOOLONG)?;
    let mut hbuf = [0u8; PATH_MAX];
    let host: &[u8] = match cfg.af_unix() {
        Some(dir) => {
            let n = path::concat(&mut hbuf, &[dir, b"/", g]).ok_or(ENAMETOOLONG)?;
            &hbuf[..n]
        }
        None => {
            // SAFETY: `gbuf` is NUL-terminated.
            let p = unsafe { xlat(b"socket", AT_FDCWD, gbuf.as_ptr().cast(), &mut hbuf)? };
            if p == gbuf.as_ptr().cast::<c_char>() {
                return Ok(None);
            }
            // SAFETY: xlat returned `hbuf`, NUL-terminated.
            unsafe { crate::real::cstr(p) }
        }
    };
    if host.len() >= SUN_PATH {
        return Err(ENAMETOOLONG);
    }
    let mut out = SockaddrUn {
        family: AF_UNIX,
        path: [0; SUN_PATH],
    };
    out.path[..host.len()].copy_from_slice(host);
    Ok(Some((out, (PATH_OFF + host.len() + 1) as u32)))
}

type AddrFn = unsafe extern "C" fn(c_int, *const c_void, u32) -> c_int;

unsafe fn with_host_addr(
    name: &[u8],
    f: Option<AddrFn>,
    fd: c_int,
    a: *const c_void,
    l: u32,
) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return -1;
    };
    // SAFETY: the caller's address of `l` bytes.
    match unsafe { host_addr(a, l) } {
        // SAFETY: libc's function with the caller's arguments.
        Ok(None) => unsafe { f(fd, a, l) },
        Ok(Some((h, hl))) => {
            super::debug(name, b"AF_UNIX", &h.path[..hl as usize - PATH_OFF - 1]);
            // SAFETY: `h` is a complete sockaddr_un of `hl` bytes.
            unsafe { f(fd, (&h as *const SockaddrUn).cast(), hl) }
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, a: *const c_void, l: u32) -> c_int {
    let f = real!("bind", AddrFn);
    // SAFETY: forwarded.
    unsafe { with_host_addr(b"bind", f, fd, a, l) }
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, a: *const c_void, l: u32) -> c_int {
    let f = real!("connect", AddrFn);
    // SAFETY: forwarded.
    unsafe { with_host_addr(b"connect", f, fd, a, l) }
}

/// Narrow the AF_UNIX address libc returned in `a` (`*l` bytes of `cap`) in place.
unsafe fn narrow_addr(a: *mut c_void, l: *mut u32, cap: u32) {
    let cfg = config::get();
    if a.is_null() || l.is_null() || !cfg.active() {
        return;
    }
    // SAFETY: the kernel wrote `*l` bytes (at most `cap`) of an address into `a`.
    let (len, family) = unsafe { ((*l).min(cap) as usize, a.cast::<u16>().read_unaligned()) };
    if family != AF_UNIX || len <= PATH_OFF + 1 {
        return;
    }
    // SAFETY: as above.
    let raw = unsafe { core::slice::from_raw_parts(a.cast::<u8>().add(PATH_OFF), len - PATH_OFF) };
    let h = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    if h.is_empty() {
        return;
    }
    let mut g = [0u8; PATH_MAX];
    let n = match cfg.af_unix() {
        Some(dir) => match path::strip_component_prefix(dir, h) {
            Some(rest) if !rest.is_empty() => path::concat(&mut g, &[rest]),
            _ => None,
        },
        None => path::narrow(&cfg.view(), h, &mut g),
    };
    let Some(n) = n else { return };
    // Only when the guest path fits where the host path was (it is shorter unless a DIR_MAP
    // maps to a longer one).
    if PATH_OFF + n + 1 > cap as usize {
        return;
    }
    // SAFETY: `a` holds `cap` >= PATH_OFF + n + 1 bytes; `l` is the caller's length.
    unsafe {
        core::ptr::copy_nonoverlapping(g.as_ptr(), a.cast::<u8>().add(PATH_OFF), n + 1);
        *l = (PATH_OFF + n + 1) as u32;
    }
}

type NameFn = unsafe extern "C" fn(c_int, *mut c_void, *mut u32) -> c_int;

unsafe fn get_name(f: Option<NameFn>, fd: c_int, a: *mut c_void, l: *mut u32) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return -1;
    };
    // SAFETY: the caller's buffer and length.
    let cap = if l.is_null() { 0 } else { unsafe { *l } };
    // SAFETY: libc's function with the caller's arguments.
    let r = unsafe { f(fd, a, l) };
    if r == 0 {
        // SAFETY: `a` holds `cap` bytes, `*l` says how many the kernel filled.
        unsafe { narrow_addr(a, l, cap) };
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, a: *mut c_void, l: *mut u32) -> c_int {
    let f = real!("getsockname", NameFn);
    // SAFETY: forwarded.
    unsafe { get_name(f, fd, a, l) }
}

#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, a: *mut c_void, l: *mut u32) -> c_int {
    let f = real!("getpeername", NameFn);
    // SAFETY: forwarded.
    unsafe { get_name(f, fd, a, l) }
}
