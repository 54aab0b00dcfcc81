//! `fts_*` (§4.1 "directory walking"): the root paths are translated for `fts_open`; the
//! entry `fts_read` returns is shown to the program without the BASE prefix by moving its
//! `fts_path` and `fts_accpath` pointers past the prefix (and shortening `fts_pathlen`); the
//! original values are put back before the next call into fts, which builds the next paths
//! from them. Only the first fields of `FTSENT` are touched, laid out alike in glibc's fts and
//! the BSD fts (musl-fts) on x86_64. Entries from `fts_children` and paths under a DIR_MAP
//! volume keep their host form (a known limit). One walk per fixed table slot, no allocation.

use super::exec::count;
use super::{xlat, AT_FDCWD, ENOMEM, ENOSYS};
use crate::config;
use crate::path::PATH_MAX;
use crate::raw;
use crate::real::{cstr, get_errno, real, set_errno};
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

type Ptr = *mut c_void;
type OpenFn = unsafe extern "C" fn(*const *const c_char, c_int, Ptr) -> Ptr;
type ReadFn = unsafe extern "C" fn(Ptr) -> Ptr;
type ChildrenFn = unsafe extern "C" fn(Ptr, c_int) -> Ptr;
type CloseFn = unsafe extern "C" fn(Ptr) -> c_int;

const OFF_ACCPATH: usize = 40;
const OFF_PATH: usize = 48;
const OFF_PATHLEN: usize = 64;

const SLOTS: usize = 32;
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
static FTS: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
static ENT: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
static PATH: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
static ACC: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
static LEN: [AtomicUsize; SLOTS] = [ZERO; SLOTS];

fn slot_of(sp: Ptr) -> Option<usize> {
    if sp.is_null() {
        return None;
    }
    FTS.iter()
        .position(|s| s.load(Ordering::Acquire) == sp as usize)
}

/// Put back the entry fields changed by the last `fts_read`.
unsafe fn restore(sp: Ptr) {
    let Some(i) = slot_of(sp) else { return };
    let e = ENT[i].swap(0, Ordering::AcqRel) as *mut u8;
    if e.is_null() {
        return;
    }
    // SAFETY: the entry fts returned last, still owned by the walk.
    unsafe {
        *e.add(OFF_PATH).cast::<usize>() = PATH[i].load(Ordering::Relaxed);
        *e.add(OFF_ACCPATH).cast::<usize>() = ACC[i].load(Ordering::Relaxed);
        *e.add(OFF_PATHLEN).cast::<u16>() = LEN[i].load(Ordering::Relaxed) as u16;
    }
}

/// How many leading bytes of `p` are the BASE prefix of a path under it (0: none).
fn base_prefix(p: *const c_char) -> usize {
    if p.is_null() {
        return 0;
    }
    let base = config::get().view().base;
    // SAFETY: fts's NUL-terminated path.
    let s = unsafe { cstr(p) };
    if !base.is_empty() && s.len() > base.len() && s.starts_with(base) && s[base.len()] == b'/' {
        base.len()
    } else {
        0
    }
}

unsafe fn narrow_entry(sp: Ptr, e: Ptr) {
    let Some(i) = slot_of(sp) else { return };
    if e.is_null() {
        return;
    }
    let e = e.cast::<u8>();
    // SAFETY: the FTSENT fts_read just returned.
    unsafe {
        let path = *e.add(OFF_PATH).cast::<*const c_char>();
        let acc = *e.add(OFF_ACCPATH).cast::<*const c_char>();
        let len = *e.add(OFF_PATHLEN).cast::<u16>();
        let (kp, ka) = (base_prefix(path), base_prefix(acc));
        if kp == 0 && ka == 0 {
            return;
        }
        PATH[i].store(path as usize, Ordering::Relaxed);
        ACC[i].store(acc as usize, Ordering::Relaxed);
        LEN[i].store(len as usize, Ordering::Relaxed);
        ENT[i].store(e as usize, Ordering::Release);
        *e.add(OFF_PATH).cast::<*const c_char>() = path.add(kp);
        *e.add(OFF_ACCPATH).cast::<*const c_char>() = acc.add(ka);
        *e.add(OFF_PATHLEN).cast::<u16>() = len.saturating_sub(kp as u16);
    }
}

unsafe fn open_impl(f: Option<OpenFn>, argv: *const *const c_char, opts: c_int, cmp: Ptr) -> Ptr {
    let null = core::ptr::null_mut();
    let Some(f) = f else {
        set_errno(ENOSYS);
        return null;
    };
    if !config::get().active() || argv.is_null() {
        // SAFETY: forwarded.
        return unsafe { f(argv, opts, cmp) };
    }
    let n = count(argv);
    let len = ((n + 1) * 8 + n * PATH_MAX + 4095) & !4095;
    let map = raw::map(len);
    if map.is_null() {
        set_errno(ENOMEM);
        return null;
    }
    let v = map.cast::<*const c_char>();
    for i in 0..n {
        // SAFETY: inside the mapping: n + 1 pointers, then n PATH_MAX buffers.
        unsafe {
            let buf = &mut *map.add((n + 1) * 8 + i * PATH_MAX).cast::<[u8; PATH_MAX]>();
            *v.add(i) = match xlat(b"fts_open", AT_FDCWD, *argv.add(i), buf) {
                Ok(q) => q,
                Err(e) => {
                    raw::unmap(map, len);
                    set_errno(e);
                    return null;
                }
            };
        }
    }
    // SAFETY: as above.
    unsafe { *v.add(n) = core::ptr::null() };
    // SAFETY: libc's fts_open copies the root paths.
    let sp = unsafe { f(v, opts, cmp) };
    let e = get_errno();
    raw::unmap(map, len);
    if !sp.is_null() {
        // Full table: this walk shows host paths.
        let _ = FTS.iter().any(|s| {
            s.compare_exchange(0, sp as usize, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
    }
    set_errno(e);
    sp
}

unsafe fn read_impl(f: Option<ReadFn>, sp: Ptr) -> Ptr {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return core::ptr::null_mut();
    };
    // SAFETY: the caller's walk.
    unsafe {
        restore(sp);
        let e = f(sp);
        narrow_entry(sp, e);
        e
    }
}

unsafe fn children_impl(f: Option<ChildrenFn>, sp: Ptr, opts: c_int) -> Ptr {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return core::ptr::null_mut();
    };
    // SAFETY: the caller's walk.
    unsafe {
        restore(sp);
        f(sp, opts)
    }
}

unsafe fn close_impl(f: Option<CloseFn>, sp: Ptr) -> c_int {
    let Some(f) = f else {
        set_errno(ENOSYS);
        return -1;
    };
    // SAFETY: the caller's walk.
    unsafe { restore(sp) };
    if let Some(i) = slot_of(sp) {
        FTS[i].store(0, Ordering::Release);
    }
    // SAFETY: forwarded.
    unsafe { f(sp) }
}

macro_rules! fts_set {
    ($open:ident, $read:ident, $children:ident, $close:ident, $fo:literal, $fr:literal, $fc:literal, $fx:literal) => {
        #[no_mangle]
        pub unsafe extern "C" fn $open(argv: *const *const c_char, opts: c_int, cmp: Ptr) -> Ptr {
            let f = real!(stringify!($open), OpenFn).or_else(|| real!($fo, OpenFn));
            // SAFETY: forwarded.
            unsafe { open_impl(f, argv, opts, cmp) }
        }
        #[no_mangle]
        pub unsafe extern "C" fn $read(sp: Ptr) -> Ptr {
            let f = real!(stringify!($read), ReadFn).or_else(|| real!($fr, ReadFn));
            // SAFETY: forwarded.
            unsafe { read_impl(f, sp) }
        }
        #[no_mangle]
        pub unsafe extern "C" fn $children(sp: Ptr, opts: c_int) -> Ptr {
            let f = real!(stringify!($children), ChildrenFn).or_else(|| real!($fc, ChildrenFn));
            // SAFETY: forwarded.
            unsafe { children_impl(f, sp, opts) }
        }
        #[no_mangle]
        pub unsafe extern "C" fn $close(sp: Ptr) -> c_int {
            let f = real!(stringify!($close), CloseFn).or_else(|| real!($fx, CloseFn));
            // SAFETY: forwarded.
            unsafe { close_impl(f, sp) }
        }
    };
}

fts_set!(
    fts_open,
    fts_read,
    fts_children,
    fts_close,
    "fts_open",
    "fts_read",
    "fts_children",
    "fts_close"
);
fts_set!(
    fts64_open,
    fts64_read,
    fts64_children,
    fts64_close,
    "fts_open",
    "fts_read",
    "fts_children",
    "fts_close"
);
