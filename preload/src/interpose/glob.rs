//! `glob` (§4.1 "directory walking"): an absolute pattern is translated like a path, and the
//! matches libc returns (host paths, malloc'd by libc) are narrowed in place to guest paths;
//! narrowing only shortens them, except through a DIR_MAP to a longer guest prefix (then the
//! host path is left, as for realpath). Only the first three `glob_t` fields are touched, the
//! ones glibc and musl share.

use super::{narrow_in_place, xlat, AT_FDCWD, ENOSYS};
use crate::real::{cstr, real, set_errno};
use core::ffi::{c_char, c_int, c_void};

#[repr(C)]
struct GlobHead {
    pathc: usize,
    pathv: *mut *mut c_char,
    offs: usize,
}

type GlobFn = unsafe extern "C" fn(*const c_char, c_int, *mut c_void, *mut GlobHead) -> c_int;
const GLOB_DOOFFS: c_int = 1 << 3;
const GLOB_APPEND: c_int = 1 << 5;
const GLOB_NOSPACE: c_int = 1;

unsafe fn glob_impl(
    what: &[u8],
    f: Option<GlobFn>,
    pat: *const c_char,
    flags: c_int,
    errf: *mut c_void,
    g: *mut GlobHead,
) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return GLOB_NOSPACE;
    };
    let mut buf = [0u8; crate::path::PATH_MAX];
    // SAFETY: the caller's pattern, translated like a path (only absolute ones change).
    let q = match unsafe { xlat(what, AT_FDCWD, pat, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            set_errno(e);
            return GLOB_NOSPACE;
        }
    };
    // Entries already there (GLOB_APPEND) were narrowed by an earlier call.
    // SAFETY: the caller's glob_t (initialised by an earlier glob when appending).
    let before = if flags & GLOB_APPEND != 0 && !g.is_null() {
        unsafe { (*g).pathc }
    } else {
        0
    };
    // SAFETY: libc's glob with the caller's arguments.
    let r = unsafe { f(q, flags, errf, g) };
    if q != pat && !g.is_null() {
        // SAFETY: gl_pathv holds gl_offs (when GLOB_DOOFFS) + gl_pathc entries from libc.
        unsafe {
            let offs = if flags & GLOB_DOOFFS != 0 {
                (*g).offs
            } else {
                0
            };
            let v = (*g).pathv;
            if !v.is_null() {
                for i in offs + before..offs + (*g).pathc {
                    let s = *v.add(i);
                    if !s.is_null() {
                        narrow_in_place(s, cstr(s).len() + 1);
                    }
                }
            }
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn glob(
    pat: *const c_char,
    flags: c_int,
    errf: *mut c_void,
    g: *mut c_void,
) -> c_int {
    let f = real!("glob", GlobFn);
    // SAFETY: forwarded.
    unsafe { glob_impl(b"glob", f, pat, flags, errf, g.cast()) }
}

#[no_mangle]
pub unsafe extern "C" fn glob64(
    pat: *const c_char,
    flags: c_int,
    errf: *mut c_void,
    g: *mut c_void,
) -> c_int {
    let f = real!("glob64", GlobFn).or_else(|| real!("glob", GlobFn));
    // SAFETY: forwarded.
    unsafe { glob_impl(b"glob64", f, pat, flags, errf, g.cast()) }
}
