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

pub struct Config {
    base: [u8; PATH_MAX],
    base_len: usize,
    /// The container root udocker set, which no chroot inside it may leave (`jail_view`).
    jail: [u8; PATH_MAX],
    jail_len: usize,
    exclude: [u8; PATH_MAX],
    exclude_len: usize,
    dir_map: [u8; 2 * PATH_MAX],
    dir_map_len: usize,
    /// `exclude` and `dir_map` split once (`path::split_*`): slices of the two buffers above.
    ex: [Rule<'static>; RULES],
    nex: usize,
    dm: [Map<'static>; RULES],
    ndm: usize,
    loader: [u8; PATH_MAX],
    loader_len: usize,
    argv0_opt: [u8; 64],
    argv0_opt_len: usize,
    patcher: [u8; PATH_MAX],
    patcher_len: usize,
    af_unix: [u8; 256],
    af_unix_len: usize,
    pub debug: bool,
    /// `K=V\0K=V\0…` of the preserved variables that were set.
    env: [u8; ENV_MAX],
    env_len: usize,
}

struct Cell(UnsafeCell<Config>);
// SAFETY: written once by the thread that wins STATE 0 -> 1, read only after STATE is 2.
unsafe impl Sync for Cell {}

static CFG: Cell = Cell(UnsafeCell::new(Config {
    base: [0; PATH_MAX],
    base_len: 0,
    jail: [0; PATH_MAX],
    jail_len: 0,
    exclude: [0; PATH_MAX],
    exclude_len: 0,
    dir_map: [0; 2 * PATH_MAX],
    dir_map_len: 0,
    ex: [None; RULES],
    nex: 0,
    dm: [None; RULES],
    ndm: 0,
    loader: [0; PATH_MAX],
    loader_len: 0,
    argv0_opt: [0; 64],
    argv0_opt_len: 0,
    patcher: [0; PATH_MAX],
    patcher_len: 0,
    af_unix: [0; 256],
    af_unix_len: 0,
    debug: false,
    env: [0; ENV_MAX],
    env_len: 0,
}));
static STATE: AtomicU8 = AtomicU8::new(0);

fn copy_into(dst: &mut [u8], src: &[u8]) -> usize {
    // A value that does not fit is dropped whole rather than cut (a cut root would be wrong).
    if src.len() >= dst.len() {
        return 0;
    }
    dst[..src.len()].copy_from_slice(src);
    src.len()
}

fn load(c: &mut Config) {
    let var = |k: &[u8]| -> &'static [u8] {
        let mut name = [0u8; 64];
        match crate::path::concat(&mut name, &[k]) {
            Some(_) => real::getenv(&name).unwrap_or(b""),
            None => b"",
        }
    };
    let mut base = var(b"FAKECHROOT_BASE");
    while base.len() > 1 && base.ends_with(b"/") {
        base = &base[..base.len() - 1];
    }
    if base == b"/" {
        base = b"";
    }
    c.base_len = copy_into(&mut c.base, base);
    // A child of a chrooted process has the nested root in FAKECHROOT_BASE and the container
    // root in FAKECHROOT_JAIL (exec.rs passes it on); it is honoured only when it encloses BASE.
    let jail = match var(JAIL) {
        j if !j.is_empty() && crate::path::strip_component_prefix(j, base).is_some() => j,
        _ => base,
    };
    c.jail_len = copy_into(&mut c.jail, jail);
    c.exclude_len = copy_into(&mut c.exclude, var(b"FAKECHROOT_EXCLUDE_PATH"));
    c.dir_map_len = copy_into(&mut c.dir_map, var(b"FAKECHROOT_DIR_MAP"));
    // SAFETY: `c` is the static CFG (never moved), and its buffers are not written again once
    // STATE is 2, so slices of them live as long as the library.
    let (ex, dm): (&'static [u8], &'static [u8]) = unsafe {
        (
            core::slice::from_raw_parts(c.exclude.as_ptr(), c.exclude_len),
            core::slice::from_raw_parts(c.dir_map.as_ptr(), c.dir_map_len),
        )
    };
    c.nex = crate::path::split_exclude(ex, &mut c.ex);
    c.ndm = crate::path::split_dir_map(dm, &mut c.dm);
    c.loader_len = copy_into(&mut c.loader, var(b"FAKECHROOT_ELFLOADER"));
    c.argv0_opt_len = copy_into(&mut c.argv0_opt, var(b"FAKECHROOT_ELFLOADER_OPT_ARGV0"));
    c.patcher_len = copy_into(&mut c.patcher, var(b"FAKECHROOT_PATCH_PATCHELF"));
    c.af_unix_len = copy_into(&mut c.af_unix, var(b"FAKECHROOT_AF_UNIX_PATH"));
    c.debug = !var(b"FAKECHROOT_DEBUG").is_empty();
    let mut n = 0;
    for k in PRESERVED {
        let v = var(k);
        if v.is_empty() {
            continue;
        }
        if let Some(m) = crate::path::concat(&mut c.env[n..], &[k, b"=", v]) {
            n += m + 1;
        }
    }
    if var(JAIL).is_empty() && !jail.is_empty() {
        if let Some(m) = crate::path::concat(&mut c.env[n..], &[JAIL, b"=", jail]) {
            n += m + 1;
        }
    }
    c.env_len = n;
}

/// The configuration, loading it on first use.
pub fn get() -> &'static Config {
    if STATE.load(Ordering::Acquire) != 2 {
        if STATE
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: only this thread writes, before publishing STATE = 2.
            load(unsafe { &mut *CFG.0.get() });
            STATE.store(2, Ordering::Release);
        } else {
            while STATE.load(Ordering::Acquire) != 2 {
                core::hint::spin_loop();
            }
        }
    }
    // SAFETY: STATE is 2: the config is complete and never written again.
    unsafe { &*CFG.0.get() }
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
static CUR: AtomicU64 = AtomicU64::new(0);
static CHROOT_LOCK: AtomicBool = AtomicBool::new(false);

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
            base: &self.jail[..self.jail_len],
            ..self.view()
        }
    }

    /// The current fake root (host path, no trailing `/`; empty: none).
    pub fn root(&self) -> &[u8] {
        match current() {
            Some((i, len)) => &slot(i, KEY.len() + len)[KEY.len()..],
            None => &self.base[..self.base_len],
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
        &self.base[..=self.base_len]
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
        (self.loader_len > 0).then(|| &self.loader[..=self.loader_len])
    }

    /// `FAKECHROOT_AF_UNIX_PATH` (the host directory socket paths go under), when set.
    pub fn af_unix(&self) -> Option<&[u8]> {
        (self.af_unix_len > 0).then(|| &self.af_unix[..self.af_unix_len])
    }

    /// `FAKECHROOT_ELFLOADER_OPT_ARGV0` (`--argv0`), NUL-terminated, when set.
    pub fn argv0_opt(&self) -> Option<&[u8]> {
        (self.argv0_opt_len > 0).then(|| &self.argv0_opt[..=self.argv0_opt_len])
    }

    /// `FAKECHROOT_PATCH_PATCHELF` (F4: the host patcher), NUL-terminated, when set.
    pub fn patcher(&self) -> Option<&[u8]> {
        (self.patcher_len > 0).then(|| &self.patcher[..=self.patcher_len])
    }

    /// The container root udocker set (`jail_view`; not moved by chroot: the F4 patcher re-roots
    /// programs onto the container's loader), NUL-terminated (empty when unset).
    pub fn base_c(&self) -> &[u8] {
        &self.jail[..=self.jail_len]
    }

    /// The captured value of preserved variable `key` (no NUL), when it was set.
    pub fn preserved_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.preserved().find_map(|kv| {
            let kv = &kv[..kv.len() - 1];
            let v = kv.strip_prefix(key)?;
            v.strip_prefix(b"=")
        })
    }

    /// The captured `K=V` strings, each NUL-terminated.
    pub fn preserved(&self) -> impl Iterator<Item = &[u8]> {
        self.env[..self.env_len]
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
        get();
        // The root descriptor now, not in a vfork child later (interpose/rootfd.rs).
        crate::interpose::rootfd::get();
    }
    init
};
