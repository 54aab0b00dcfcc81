//! The environment udocker sets (§4.4), captured once (from `.init_array`, or lazily by the
//! first wrapper) into fixed static buffers: no allocation, and later `setenv` calls by the
//! program cannot move the root (as udocker's fork).

use crate::path::{Map, Rule, View, PATH_MAX};
use crate::real;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Variables kept across `execve` even when the program passes its own environment (§4.4:
/// upstream's list plus the fork's).
pub const PRESERVED: &[&[u8]] = &[
    b"FAKECHROOT_BASE",
    b"FAKECHROOT_EXCLUDE_PATH",
    b"FAKECHROOT_DIR_MAP",
    b"FAKECHROOT_ELFLOADER",
    b"FAKECHROOT_ELFLOADER_OPT_ARGV0",
    b"FAKECHROOT_ELFLOADER_OPT_HWCAPS_MASK",
    b"FAKECHROOT_DEBUG",
    b"FAKECHROOT_CMD_SUBST",
    b"FAKECHROOT_VERSION",
    b"FAKECHROOT_JAIL",
    b"FAKECHROOT_AF_UNIX_PATH",
    b"FAKECHROOT_EXPAND_SYMLINKS",
    b"FAKECHROOT_LIBRARY_ORIG",
    b"FAKECHROOT_LIBC",
    b"LD_LIBRARY_PATH",
    b"LD_LIBRARY_REAL",
    b"LD_PRELOAD",
    b"FAKECHROOT_PATCH_PATCHELF",
    b"FAKECHROOT_PATCH_ELFLOADER",
    b"FAKECHROOT_PATCH_LAST_TIME",
];

const ENV_MAX: usize = 32 * 1024;
/// Exclusions and volume mappings kept (udocker sets about ten; each volume is one mapping).
const RULES: usize = 128;

/// udocker's own variable: the container root, kept for the children of a chroot inside it
/// (see `jail_view`). Preserved across exec like the others.
const JAIL: &[u8] = b"FAKECHROOT_JAIL";

/// A string in `Config::arena`: offset and length (its NUL terminator follows it).
#[derive(Clone, Copy)]
struct Str {
    at: u32,
    len: u32,
}

/// Unset or empty: the arena's first byte, which stays NUL (so `get_c` gives a lone NUL).
const NONE: Str = Str { at: 0, len: 0 };

/// The most each value may take (a longer one is dropped whole: a cut root would be wrong).
const MAX_PATH_VALUE: usize = PATH_MAX;
const MAX_DIR_MAP: usize = 2 * PATH_MAX;
const MAX_ARGV0_OPT: usize = 64;
const MAX_AF_UNIX: usize = 256;
/// Room for every value at its maximum, each with its NUL.
const ARENA: usize =
    1 + 5 * (MAX_PATH_VALUE + 1) + MAX_DIR_MAP + 2 * MAX_ARGV0_OPT + MAX_AF_UNIX + ENV_MAX + 8;

/// The small fields and the split rules first, then one arena of strings filled from its start:
/// a program's start writes two or three pages of this static, where a buffer per value wrote
/// ten (each first write to a page of .bss is a page fault, about a microsecond on a VM, paid by
/// every exec).
///
/// `repr(C)` keeps that order (Rust's own layout put the one-byte fields after the 60 KiB arena:
/// one more page written at every start).
#[repr(C)]
pub struct Config {
    base: Str,
    /// The container root udocker set, which no chroot inside it may leave (`jail_view`).
    jail: Str,
    loader: Str,
    argv0_opt: Str,
    hwcaps_opt: Str,
    patcher: Str,
    af_unix: Str,
    /// `K=V\0K=V\0…` of the preserved variables that were set.
    env: Str,
    /// The value part of each `env` entry, by PRESERVED index (`NONE` when unset).
    pv: [Str; PRESERVED.len()],
    pub debug: bool,
    nex: usize,
    ndm: usize,
    /// Arena bytes in use.
    used: usize,
    arena: [u8; ARENA],
    /// FAKECHROOT_EXCLUDE_PATH and FAKECHROOT_DIR_MAP split once (`path::split_*`): slices of
    /// the arena. After it: the fields and the arena's first kilobytes share one page.
    ex: [Rule<'static>; RULES],
    dm: [Map<'static>; RULES],
}

/// The configuration and its state word (0: not loaded, 1: loading, 2: ready), together so that
/// both are on the page a start writes anyway.
#[repr(C)]
struct Cell {
    state: AtomicU8,
    /// chroot(2) emulation's words (below), here for the same reason: every start reads `cur`.
    chroot_lock: AtomicBool,
    cur: AtomicU64,
    cfg: UnsafeCell<Config>,
}
// SAFETY: written once by the thread that wins STATE 0 -> 1, read only after STATE is 2.
unsafe impl Sync for Cell {}

static CFG: Cell = Cell {
    state: AtomicU8::new(0),
    chroot_lock: AtomicBool::new(false),
    cur: AtomicU64::new(0),
    cfg: UnsafeCell::new(Config {
        base: NONE,
        jail: NONE,
        loader: NONE,
        argv0_opt: NONE,
        hwcaps_opt: NONE,
        patcher: NONE,
        af_unix: NONE,
        env: NONE,
        pv: [NONE; PRESERVED.len()],
        debug: false,
        nex: 0,
        ndm: 0,
        used: 0,
        arena: [0; ARENA],
        ex: [None; RULES],
        dm: [None; RULES],
    }),
};
static STATE: &AtomicU8 = &CFG.state;

impl Config {
    /// Append `parts` (concatenated) and a NUL to the arena; `NONE` when empty or longer than
    /// `max` (dropped whole rather than cut).
    fn push(&mut self, parts: &[&[u8]], max: usize) -> Str {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n == 0 || n >= max || self.used + n + 1 > ARENA {
            return NONE;
        }
        let at = self.used;
        let mut o = at;
        for p in parts {
            self.arena[o..o + p.len()].copy_from_slice(p);
            o += p.len();
        }
        self.arena[o] = 0;
        self.used = o + 1;
        Str {
            at: at as u32,
            len: n as u32,
        }
    }

    /// The bytes of `s` (no NUL).
    fn get(&self, s: Str) -> &[u8] {
        &self.arena[s.at as usize..(s.at + s.len) as usize]
    }

    /// The bytes of `s` with its NUL.
    fn get_c(&self, s: Str) -> &[u8] {
        &self.arena[s.at as usize..=(s.at + s.len) as usize]
    }

    /// A `'static` view of `s`.
    ///
    /// # Safety
    /// `self` is the static CFG, whose arena is not written again once STATE is 2.
    unsafe fn get_static(&self, s: Str) -> &'static [u8] {
        // SAFETY: see above: the bytes stay as they are for the library's lifetime.
        unsafe {
            core::slice::from_raw_parts(self.arena.as_ptr().add(s.at as usize), s.len as usize)
        }
    }
}

/// The values of the PRESERVED variables in the process environment (empty when unset), in one
/// pass over it: every variable read here is in that list, and getenv(3) once per name was 25
/// scans of the whole environment at every program start. The first `K=` wins, as getenv finds.
fn environment() -> [&'static [u8]; PRESERVED.len()] {
    const _: () = assert!(PRESERVED.len() <= 32);
    let mut vals: [&'static [u8]; PRESERVED.len()] = [b""; PRESERVED.len()];
    let mut seen = 0u32;
    let env = real::environ_uncached();
    if env.is_null() {
        return vals;
    }
    let mut i = 0;
    loop {
        // SAFETY: `environ` is a NULL-terminated vector of NUL-terminated strings.
        let e = unsafe { *env.add(i) };
        if e.is_null() {
            return vals;
        }
        i += 1;
        // SAFETY: as above: a string, read up to its `=` or NUL (keys are short; values such as
        // LD_LIBRARY_PATH are long and measured only when wanted).
        let kv = unsafe {
            let mut k = 0;
            while !matches!(*e.add(k) as u8, 0 | b'=') {
                k += 1;
            }
            if *e.add(k) == 0 {
                continue;
            }
            let key = core::slice::from_raw_parts(e.cast::<u8>(), k);
            let Some(j) = PRESERVED.iter().position(|p| *p == key) else {
                continue;
            };
            (j, real::cstr(e.add(k + 1)))
        };
        let (j, v) = kv;
        if seen & (1 << j) == 0 {
            seen |= 1 << j;
            vals[j] = v;
        }
    }
}

fn load(c: &mut Config) {
    // Byte 0 stays NUL (`NONE`); set here, not in the initialiser, so the table stays in .bss.
    c.used = 1;
    let vals = environment();
    let var = |k: &[u8]| -> &'static [u8] {
        PRESERVED
            .iter()
            .position(|p| *p == k)
            .map_or(b"", |i| vals[i])
    };
    let mut base = var(b"FAKECHROOT_BASE");
    while base.len() > 1 && base.ends_with(b"/") {
        base = &base[..base.len() - 1];
    }
    if base == b"/" {
        base = b"";
    }
    c.base = c.push(&[base], MAX_PATH_VALUE);
    // SAFETY: `c` is the static CFG (never moved), and its arena is not written again once
    // STATE is 2 (nor where it is already filled), so slices of it live as long as the library.
    let base = unsafe { c.get_static(c.base) };
    // A child of a chrooted process has the nested root in FAKECHROOT_BASE and the container
    // root in FAKECHROOT_JAIL (exec.rs passes it on); it is honoured only when it encloses BASE.
    let jail = match var(JAIL) {
        j if !j.is_empty() && crate::path::strip_component_prefix(j, base).is_some() => j,
        _ => base,
    };
    c.jail = if core::ptr::eq(jail.as_ptr(), base.as_ptr()) {
        c.base
    } else {
        c.push(&[jail], MAX_PATH_VALUE)
    };
    let ex = c.push(&[var(b"FAKECHROOT_EXCLUDE_PATH")], MAX_PATH_VALUE);
    let dm = c.push(&[var(b"FAKECHROOT_DIR_MAP")], MAX_DIR_MAP);
    // SAFETY: as above.
    let (ex, dm) = unsafe { (c.get_static(ex), c.get_static(dm)) };
    c.nex = crate::path::split_exclude(ex, &mut c.ex);
    c.ndm = crate::path::split_dir_map(dm, &mut c.dm);
    c.loader = c.push(&[var(b"FAKECHROOT_ELFLOADER")], MAX_PATH_VALUE);
    c.argv0_opt = c.push(&[var(b"FAKECHROOT_ELFLOADER_OPT_ARGV0")], MAX_ARGV0_OPT);
    c.hwcaps_opt = c.push(
        &[var(b"FAKECHROOT_ELFLOADER_OPT_HWCAPS_MASK")],
        MAX_ARGV0_OPT,
    );
    c.patcher = c.push(&[var(b"FAKECHROOT_PATCH_PATCHELF")], MAX_PATH_VALUE);
    c.af_unix = c.push(&[var(b"FAKECHROOT_AF_UNIX_PATH")], MAX_AF_UNIX);
    c.debug = !var(b"FAKECHROOT_DEBUG").is_empty();
    // The preserved variables, `K=V\0` each, one after the other in the arena.
    let start = c.used;
    let keep = |c: &mut Config, j: usize, v: &[u8]| {
        let k = PRESERVED[j];
        if c.used - start + k.len() + v.len() + 2 <= ENV_MAX {
            let kv = c.push(&[k, b"=", v], ENV_MAX);
            if kv.len > 0 {
                c.pv[j] = Str {
                    at: kv.at + k.len() as u32 + 1,
                    len: v.len() as u32,
                };
            }
        }
    };
    for (j, v) in vals.iter().enumerate() {
        if !v.is_empty() {
            keep(c, j, v);
        }
    }
    // SAFETY: as above.
    let jail = unsafe { c.get_static(c.jail) };
    if var(JAIL).is_empty() && !jail.is_empty() {
        if let Some(j) = PRESERVED.iter().position(|p| *p == JAIL) {
            keep(c, j, jail);
        }
    }
    c.env = Str {
        at: start as u32,
        len: (c.used - start) as u32,
    };
}

/// The configuration, loading it on first use.
pub fn get() -> &'static Config {
    if STATE.load(Ordering::Acquire) != 2 {
        load_once();
    }
    // SAFETY: STATE is 2: the config is complete and never written again.
    unsafe { &*CFG.cfg.get() }
}

/// Load the configuration unless another thread does (then wait for it). Starts with the
/// compare-exchange, a write: the first touch of this .bss page at a program start (from
/// `INIT`) is then one page fault, where a read maps the zero page and the write faults again.
#[cold]
fn load_once() {
    if STATE
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: only this thread writes, before publishing STATE = 2.
        load(unsafe { &mut *CFG.cfg.get() });
        STATE.store(2, Ordering::Release);
    } else {
        while STATE.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}

// ---------------------------------------------------------------- the root chroot() installs
//
// chroot(2) emulation (spec §4.2, "chroot(2) emulation"; §5: the suite's chroot and
// escape-nested-chroot tests): a chroot inside the container moves the fake root of this
// process (and, through the environment, of its children). Upstream re-reads FAKECHROOT_BASE
// with getenv on every call; the captured `Config` cannot change under concurrent readers, so
// the new root goes into one of a few static slots and a single atomic word names the current
// one. Writers take a spin lock (chroot is rare) and always fill a slot other than the current
// one, so a reader never sees a half-written root; a slot is reused only after SLOTS further
// chroots, which a translation in flight on another thread would have to outlive.

const KEY: &[u8] = b"FAKECHROOT_BASE=";
const SLOT_LEN: usize = KEY.len() + PATH_MAX;
const SLOTS: usize = 8;

/// `FAKECHROOT_BASE=<root>\0`: the string is handed to children as it is (exec.rs).
struct Slot(UnsafeCell<[u8; SLOT_LEN]>);
// SAFETY: a slot is written only under CHROOT_LOCK and only while CUR names another slot;
// readers reach it only through the CUR value published (Release) after the write.
unsafe impl Sync for Slot {}

static ROOTS: [Slot; SLOTS] = [const { Slot(UnsafeCell::new([0; SLOT_LEN])) }; SLOTS];
/// 0: no chroot yet (the root is `Config::base`); else `(slot + 1) << 32 | length of the root`.
static CUR: &AtomicU64 = &CFG.cur;
static CHROOT_LOCK: &AtomicBool = &CFG.chroot_lock;

/// The slot and root length CUR names, when a chroot happened.
fn current() -> Option<(usize, usize)> {
    let c = CUR.load(Ordering::Acquire);
    (c != 0).then(|| ((c >> 32) as usize - 1, (c & 0xffff_ffff) as usize))
}

/// The first `n` bytes of slot `i` (`FAKECHROOT_BASE=<root>\0`).
fn slot(i: usize, n: usize) -> &'static [u8] {
    // SAFETY: the slot was completely written before CUR named it (Release/Acquire) and is not
    // written again while it is current (see above); `n` <= SLOT_LEN (`set_root` checks the
    // root's length).
    unsafe { core::slice::from_raw_parts(ROOTS[i].0.get().cast::<u8>(), n.min(SLOT_LEN)) }
}

/// Install `root` (a host path without trailing `/`, or empty for the host's `/`) as the fake
/// root of this process. `Err(ENAMETOOLONG)` when it does not fit.
pub fn set_root(root: &[u8]) -> Result<(), i32> {
    if KEY.len() + root.len() >= SLOT_LEN {
        return Err(36);
    }
    get();
    while CHROOT_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let next = current().map_or(0, |(i, _)| (i + 1) % SLOTS);
    // SAFETY: the lock makes this thread the only writer, and `next` is not the current slot,
    // so no reader that loaded CUR since the last chroot is looking at it.
    let s = unsafe { &mut *ROOTS[next].0.get() };
    s[..KEY.len()].copy_from_slice(KEY);
    s[KEY.len()..KEY.len() + root.len()].copy_from_slice(root);
    s[KEY.len() + root.len()] = 0;
    CUR.store(
        ((next as u64 + 1) << 32) | root.len() as u64,
        Ordering::Release,
    );
    CHROOT_LOCK.store(false, Ordering::Release);
    Ok(())
}

impl Config {
    /// The translation settings against the current root (the one a chroot installed, else
    /// FAKECHROOT_BASE).
    pub fn view(&self) -> View<'_> {
        View {
            base: self.root(),
            exclude: &self.ex[..self.nex],
            dir_map: &self.dm[..self.ndm],
        }
    }

    /// The same against the root udocker set (FAKECHROOT_JAIL, else FAKECHROOT_BASE at init):
    /// the container, which no
    /// chroot inside it may leave through `..` (a cwd left outside a nested root is still seen
    /// through it).
    pub fn jail_view(&self) -> View<'_> {
        View {
            base: self.get(self.jail),
            ..self.view()
        }
    }

    /// The current fake root (host path, no trailing `/`; empty: none).
    pub fn root(&self) -> &[u8] {
        match current() {
            Some((i, len)) => &slot(i, KEY.len() + len)[KEY.len()..],
            None => self.get(self.base),
        }
    }

    /// After a chroot: `FAKECHROOT_BASE=<new root>` NUL-terminated, which children must get
    /// whatever their environment says (upstream's setenv has the same effect), or `None`
    /// when the new root is the host's `/` (the variable is then dropped).
    pub fn chroot_env(&self) -> Option<Option<&[u8]>> {
        let (i, len) = current()?;
        Some((len > 0).then(|| slot(i, KEY.len() + len + 1)))
    }

    /// FAKECHROOT_BASE as this process started with it (a nested root when a parent chrooted),
    /// NUL-terminated: the root while `chrooted()` is false.
    pub fn start_root_c(&self) -> &[u8] {
        self.get_c(self.base)
    }

    /// Whether a chroot inside the container moved the root.
    pub fn chrooted(&self) -> bool {
        current().is_some()
    }

    pub fn active(&self) -> bool {
        !self.root().is_empty()
    }

    /// `FAKECHROOT_ELFLOADER`, NUL-terminated, when set.
    pub fn loader(&self) -> Option<&[u8]> {
        (self.loader.len > 0).then(|| self.get_c(self.loader))
    }

    /// `FAKECHROOT_AF_UNIX_PATH` (the host directory socket paths go under), when set.
    pub fn af_unix(&self) -> Option<&[u8]> {
        (self.af_unix.len > 0).then(|| self.get(self.af_unix))
    }

    /// `FAKECHROOT_ELFLOADER_OPT_ARGV0` (`--argv0`), NUL-terminated, when set.
    pub fn argv0_opt(&self) -> Option<&[u8]> {
        (self.argv0_opt.len > 0).then(|| self.get_c(self.argv0_opt))
    }

    /// `FAKECHROOT_ELFLOADER_OPT_HWCAPS_MASK` (`--glibc-hwcaps-mask`, which udocker sets when
    /// the container has no `glibc-hwcaps` directory: the loader then gets it with an empty
    /// list and skips those probes), NUL-terminated, when set.
    pub fn hwcaps_opt(&self) -> Option<&[u8]> {
        (self.hwcaps_opt.len > 0).then(|| self.get_c(self.hwcaps_opt))
    }

    /// `FAKECHROOT_PATCH_PATCHELF` (F4: the host patcher), NUL-terminated, when set.
    pub fn patcher(&self) -> Option<&[u8]> {
        (self.patcher.len > 0).then(|| self.get_c(self.patcher))
    }

    /// The container root udocker set (`jail_view`; not moved by chroot: the F4 patcher re-roots
    /// programs onto the container's loader), NUL-terminated (empty when unset).
    pub fn base_c(&self) -> &[u8] {
        self.get_c(self.jail)
    }

    /// The captured value of preserved variable `key` (no NUL), when it was set.
    pub fn preserved_value(&self, key: &[u8]) -> Option<&[u8]> {
        let j = PRESERVED.iter().position(|p| *p == key)?;
        (self.pv[j].len > 0).then(|| self.get(self.pv[j]))
    }

    /// The captured `K=V` strings, each NUL-terminated.
    pub fn preserved(&self) -> impl Iterator<Item = &[u8]> {
        self.get(self.env)
            .split_inclusive(|&b| b == 0)
            .filter(|s| s.len() > 1)
    }
}

/// Load the configuration when the library is loaded (glibc and musl both run `.init_array`;
/// musl passes no arguments, so none are read).
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = {
    extern "C" fn init() {
        load_once();
    }
    init
};
