//! libc's own functions, found with `dlsym(RTLD_NEXT, name)` on first use and cached (§6.3).

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    // The library's one versioned import: dlsym@GLIBC_2.2.5 (stub libdl.so.2, see build.rs).
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_NEXT` is `(void *)-1` in glibc and musl.
pub const RTLD_NEXT: *mut c_void = usize::MAX as *mut c_void;
/// `RTLD_DEFAULT` (the global scope: the executable's malloc if it has one).
pub const RTLD_DEFAULT: *mut c_void = core::ptr::null_mut();

/// A cached symbol address; 1 marks "looked up, not found".
pub struct Sym(AtomicUsize);

impl Sym {
    pub const fn new() -> Sym {
        Sym(AtomicUsize::new(0))
    }

    /// `name` must be NUL-terminated.
    pub fn get(&self, handle: *mut c_void, name: &[u8]) -> Option<usize> {
        let mut p = self.0.load(Ordering::Acquire);
        if p == 0 {
            // SAFETY: `name` is a NUL-terminated literal; dlsym is thread-safe.
            p = unsafe { dlsym(handle, name.as_ptr().cast()) } as usize;
            if p == 0 {
                p = 1;
            }
            self.0.store(p, Ordering::Release);
        }
        (p != 1).then_some(p)
    }
}

/// `real!("name", fn(args) -> ret)`: `Option` of libc's `name` as that function type.
macro_rules! real {
    ($name:expr, $ty:ty) => {{
        static S: $crate::real::Sym = $crate::real::Sym::new();
        S.get($crate::real::RTLD_NEXT, concat!($name, "\0").as_bytes())
            // SAFETY: the symbol has this C signature (the libc manual's).
            .map(|p| unsafe { core::mem::transmute::<usize, $ty>(p) })
    }};
}
pub(crate) use real;

/// Set the calling thread's `errno` (`__errno_location` has this name in glibc and musl).
pub fn set_errno(e: c_int) {
    if let Some(f) = real!("__errno_location", unsafe extern "C" fn() -> *mut c_int) {
        // SAFETY: libc's per-thread errno slot.
        unsafe { *f() = e };
    }
}

pub fn get_errno() -> c_int {
    match real!("__errno_location", unsafe extern "C" fn() -> *mut c_int) {
        // SAFETY: as above.
        Some(f) => unsafe { *f() },
        None => 0,
    }
}

/// `getenv(name)` (NUL-terminated name) as bytes.
pub fn getenv(name: &[u8]) -> Option<&'static [u8]> {
    let f = real!(
        "getenv",
        unsafe extern "C" fn(*const c_char) -> *const c_char
    )?;
    // SAFETY: getenv returns null or a NUL-terminated string in the environment block.
    unsafe {
        let p = f(name.as_ptr().cast());
        if p.is_null() {
            return None;
        }
        Some(cstr(p))
    }
}

/// The bytes of a NUL-terminated string.
pub unsafe fn cstr<'a>(p: *const c_char) -> &'a [u8] {
    let mut n = 0;
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe {
        while *p.add(n) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p.cast(), n)
    }
}

/// The process's `environ`.
pub fn environ() -> *const *const c_char {
    static S: Sym = Sym::new();
    read_environ(S.get(RTLD_DEFAULT, b"environ\0"))
}

/// The same without the cache, for the configuration's one read at start: the cache word's
/// page is otherwise not touched by a program that never execs (one page fault less).
pub fn environ_uncached() -> *const *const c_char {
    // SAFETY: a NUL-terminated literal; dlsym is thread-safe.
    let p = unsafe { dlsym(RTLD_DEFAULT, c"environ".as_ptr()) } as usize;
    read_environ((p != 0).then_some(p))
}

fn read_environ(var: Option<usize>) -> *const *const c_char {
    match var {
        // SAFETY: `environ` is a `char **` variable.
        Some(p) => unsafe { *(p as *const *const *const c_char) },
        None => core::ptr::null(),
    }
}
