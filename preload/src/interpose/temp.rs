//! The mktemp family (§4.1 "temp files"): the template's directory is translated, libc fills in
//! the `XXXXXX` in the host copy, and the filled-in last component is copied back into the
//! caller's template, so the guest gets its own path back. (glibc's versions open and mkdir
//! through internal calls the shim cannot see, so they must be wrapped.)

use super::{xlat, AT_FDCWD, ENOSYS};
use crate::path::PATH_MAX;
use crate::real::{cstr, get_errno, real, set_errno};
use core::ffi::{c_char, c_int};

/// The bytes after the last `/`.
fn last_component(s: &[u8]) -> &[u8] {
    match s.iter().rposition(|&b| b == b'/') {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// Run `call` on the host form of the template `t` and copy the result's last component back.
/// `None` when the template cannot be translated (errno is set).
unsafe fn with_template<R>(
    what: &[u8],
    t: *mut c_char,
    call: impl FnOnce(*mut c_char) -> R,
) -> Option<R> {
    let mut buf = [0u8; PATH_MAX];
    // SAFETY: the caller's NUL-terminated template.
    let q = match unsafe { xlat(what, AT_FDCWD, t, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            set_errno(e);
            return None;
        }
    };
    if q == t.cast_const() {
        return Some(call(t));
    }
    let r = call(buf.as_mut_ptr().cast());
    let e = get_errno();
    // SAFETY: both are NUL-terminated; the caller's template is writable.
    unsafe {
        let h = cstr(buf.as_ptr().cast());
        if h.is_empty() {
            // mktemp's failure: an empty string.
            *t = 0;
        } else {
            let g = cstr(t);
            let (hl, gl) = (last_component(h), last_component(g));
            if hl.len() == gl.len() {
                let at = g.len() - gl.len();
                core::ptr::copy_nonoverlapping(hl.as_ptr(), t.add(at).cast(), hl.len());
            }
        }
    }
    set_errno(e);
    Some(r)
}

/// `name`, or `fallback` where libc lacks it (musl without the LFS64 names).
macro_rules! real_or {
    ($name:expr, $fallback:expr, $ty:ty) => {
        real!($name, $ty).or_else(|| real!($fallback, $ty))
    };
}

macro_rules! mkstemp_like {
    ($name:ident, $fallback:literal ( $($a:ident : $t:ty),* )) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(tpl: *mut c_char $(, $a: $t)*) -> c_int {
            type F = unsafe extern "C" fn(*mut c_char $(, $t)*) -> c_int;
            let Some(f) = real_or!(stringify!($name), $fallback, F) else {
                set_errno(ENOSYS);
                return -1;
            };
            // SAFETY: libc's function on the (translated) template.
            unsafe { with_template(stringify!($name).as_bytes(), tpl, |p| f(p $(, $a)*)) }
                .unwrap_or(-1)
        }
    };
}

mkstemp_like!(mkstemp, "mkstemp"());
mkstemp_like!(mkstemp64, "mkstemp"());
mkstemp_like!(mkostemp, "mkostemp"(fl: c_int));
mkstemp_like!(mkostemp64, "mkostemp"(fl: c_int));
mkstemp_like!(mkstemps, "mkstemps"(sl: c_int));
mkstemp_like!(mkstemps64, "mkstemps"(sl: c_int));
mkstemp_like!(mkostemps, "mkostemps"(sl: c_int, fl: c_int));
mkstemp_like!(mkostemps64, "mkostemps"(sl: c_int, fl: c_int));

type StrFn = unsafe extern "C" fn(*mut c_char) -> *mut c_char;

/// mktemp and mkdtemp return the template (or NULL): the caller's, not the host copy.
unsafe fn str_like(what: &[u8], f: Option<StrFn>, t: *mut c_char) -> *mut c_char {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return core::ptr::null_mut();
    };
    // SAFETY: libc's function on the (translated) template.
    match unsafe { with_template(what, t, |p| f(p)) } {
        Some(r) if !r.is_null() => t,
        Some(r) => r,
        None => core::ptr::null_mut(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn mkdtemp(t: *mut c_char) -> *mut c_char {
    let f = real!("mkdtemp", StrFn);
    // SAFETY: forwarded.
    unsafe { str_like(b"mkdtemp", f, t) }
}

#[no_mangle]
pub unsafe extern "C" fn mktemp(t: *mut c_char) -> *mut c_char {
    let f = real!("mktemp", StrFn);
    // SAFETY: forwarded.
    unsafe { str_like(b"mktemp", f, t) }
}
