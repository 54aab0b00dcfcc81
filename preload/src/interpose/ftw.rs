//! `ftw`/`nftw` (§4.1 "directory walking"): the root is translated, and when it changed the
//! walk calls the shim's callback, which narrows each path (and `FTW.base`) back to the guest
//! view before calling the program's callback. The program's callback is found again through
//! a small fixed table keyed by the thread id (no TLS, no allocation); a callback that starts
//! another walk on the same thread saves and restores the slot.

use super::{xlat, AT_FDCWD, ENOSYS};
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw::syscall;
use crate::real::{cstr, real, set_errno};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

const SYS_GETTID: usize = 186;
const SLOTS: usize = 32;
const ENOMEM: c_int = 12;

#[allow(clippy::declare_interior_mutable_const)]
const FREE: AtomicI32 = AtomicI32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NONE: AtomicUsize = AtomicUsize::new(0);
static TID: [AtomicI32; SLOTS] = [FREE; SLOTS];
static CALLBACK: [AtomicUsize; SLOTS] = [NONE; SLOTS];

fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments.
    unsafe { syscall(SYS_GETTID, 0, 0, 0, 0) as i32 }
}

/// This thread's slot (claimed if it has none).
fn slot() -> Option<usize> {
    let me = gettid();
    if let Some(i) = TID.iter().position(|t| t.load(Ordering::Acquire) == me) {
        return Some(i);
    }
    TID.iter().position(|t| {
        t.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

#[repr(C)]
pub struct Ftw {
    pub base: c_int,
    pub level: c_int,
}

type NftwCb = unsafe extern "C" fn(*const c_char, *const c_void, c_int, *mut Ftw) -> c_int;
type FtwCb = unsafe extern "C" fn(*const c_char, *const c_void, c_int) -> c_int;
type NftwFn = unsafe extern "C" fn(*const c_char, NftwCb, c_int, c_int) -> c_int;
type FtwFn = unsafe extern "C" fn(*const c_char, FtwCb, c_int) -> c_int;

/// The guest form of `p` in `out` (NUL-terminated) and how much shorter it is, or `None` when
/// it is unchanged.
fn narrowed(p: *const c_char, out: &mut [u8; PATH_MAX]) -> Option<isize> {
    // SAFETY: libc passes a NUL-terminated path.
    let h = unsafe { cstr(p) };
    let n = path::narrow(&config::get().view(), h, &mut out[..PATH_MAX - 1])?;
    out[n] = 0;
    Some(h.len() as isize - n as isize)
}

fn current() -> usize {
    let me = gettid();
    TID.iter()
        .position(|t| t.load(Ordering::Acquire) == me)
        .map_or(0, |i| CALLBACK[i].load(Ordering::Acquire))
}

unsafe extern "C" fn nftw_cb(p: *const c_char, sb: *const c_void, ty: c_int, f: *mut Ftw) -> c_int {
    let cb = current();
    if cb == 0 {
        return -1;
    }
    // SAFETY: the program's callback, stored by nftw below.
    let cb = unsafe { core::mem::transmute::<usize, NftwCb>(cb) };
    let mut g = [0u8; PATH_MAX];
    match narrowed(p, &mut g) {
        Some(d) if !f.is_null() => {
            // SAFETY: libc's FTW for this entry.
            let mut fw = unsafe {
                Ftw {
                    base: ((*f).base as isize - d).max(0) as c_int,
                    level: (*f).level,
                }
            };
            // SAFETY: the program's callback with the guest path.
            unsafe { cb(g.as_ptr().cast(), sb, ty, &mut fw) }
        }
        // SAFETY: as above.
        Some(_) => unsafe { cb(g.as_ptr().cast(), sb, ty, f) },
        // SAFETY: unchanged arguments.
        None => unsafe { cb(p, sb, ty, f) },
    }
}

unsafe extern "C" fn ftw_cb(p: *const c_char, sb: *const c_void, ty: c_int) -> c_int {
    let cb = current();
    if cb == 0 {
        return -1;
    }
    // SAFETY: the program's callback, stored by ftw below.
    let cb = unsafe { core::mem::transmute::<usize, FtwCb>(cb) };
    let mut g = [0u8; PATH_MAX];
    let q = match narrowed(p, &mut g) {
        Some(_) => g.as_ptr().cast(),
        None => p,
    };
    // SAFETY: the program's callback.
    unsafe { cb(q, sb, ty) }
}

/// Walk the translated root with `walk(root, our_callback_installed)`: `walk` gets the host
/// root and whether the shim's callback must be used.
unsafe fn walk(
    what: &[u8],
    dir: *const c_char,
    user_cb: usize,
    run: impl FnOnce(*const c_char, bool) -> c_int,
) -> c_int {
    let mut buf = [0u8; PATH_MAX];
    // SAFETY: the caller's path.
    let q = match unsafe { xlat(what, AT_FDCWD, dir, &mut buf) } {
        Ok(q) => q,
        Err(e) => {
            set_errno(e);
            return -1;
        }
    };
    if q == dir {
        return run(q, false);
    }
    let Some(i) = slot() else {
        set_errno(ENOMEM);
        return -1;
    };
    let saved = CALLBACK[i].swap(user_cb, Ordering::AcqRel);
    let r = run(q, true);
    CALLBACK[i].store(saved, Ordering::Release);
    if saved == 0 {
        TID[i].store(0, Ordering::Release);
    }
    r
}

unsafe fn nftw_impl(
    what: &[u8],
    f: Option<NftwFn>,
    d: *const c_char,
    cb: NftwCb,
    n: c_int,
    fl: c_int,
) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return -1;
    };
    // SAFETY: libc's nftw with the translated root.
    unsafe {
        walk(what, d, cb as usize, |q, ours| {
            f(q, if ours { nftw_cb } else { cb }, n, fl)
        })
    }
}

unsafe fn ftw_impl(what: &[u8], f: Option<FtwFn>, d: *const c_char, cb: FtwCb, n: c_int) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return -1;
    };
    // SAFETY: libc's ftw with the translated root.
    unsafe {
        walk(what, d, cb as usize, |q, ours| {
            f(q, if ours { ftw_cb } else { cb }, n)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn nftw(d: *const c_char, cb: NftwCb, n: c_int, fl: c_int) -> c_int {
    let f = real!("nftw", NftwFn);
    // SAFETY: forwarded.
    unsafe { nftw_impl(b"nftw", f, d, cb, n, fl) }
}

#[no_mangle]
pub unsafe extern "C" fn nftw64(d: *const c_char, cb: NftwCb, n: c_int, fl: c_int) -> c_int {
    let f = real!("nftw64", NftwFn).or_else(|| real!("nftw", NftwFn));
    // SAFETY: forwarded.
    unsafe { nftw_impl(b"nftw64", f, d, cb, n, fl) }
}

#[no_mangle]
pub unsafe extern "C" fn ftw(d: *const c_char, cb: FtwCb, n: c_int) -> c_int {
    let f = real!("ftw", FtwFn);
    // SAFETY: forwarded.
    unsafe { ftw_impl(b"ftw", f, d, cb, n) }
}

#[no_mangle]
pub unsafe extern "C" fn ftw64(d: *const c_char, cb: FtwCb, n: c_int) -> c_int {
    let f = real!("ftw64", FtwFn).or_else(|| real!("ftw", FtwFn));
    // SAFETY: forwarded.
    unsafe { ftw_impl(b"ftw64", f, d, cb, n) }
}
