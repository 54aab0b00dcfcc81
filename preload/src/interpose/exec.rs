//! exec and spawn (§4.3): the program is found in the container, and an ELF program with an
//! interpreter runs through the container's own loader (`FAKECHROOT_ELFLOADER`), so no host
//! library is ever loaded; a `#!` script runs through its interpreter in the container. The
//! variables that keep a child inside (`FAKECHROOT_*`, `LD_PRELOAD`, `LD_LIBRARY_PATH`) are
//! added back to an environment that lacks them. Scratch arrays live on the caller's stack
//! (`Scratch`), not in malloc's heap, so this is safe after `vfork`.

use super::{xlat, AT_FDCWD, EACCES, ENAMETOOLONG, ENOENT, ENOEXEC, ENOMEM, ENOSYS, ENOTDIR};
use crate::config;
use crate::path::{self, PATH_MAX};
use crate::raw;
use crate::real::{cstr, environ, get_errno, getenv, real, set_errno};
use core::ffi::{c_char, c_int, c_void};

pub(super) type Argv = *const *const c_char;

/// What the shim reports as FAKECHROOT_VERSION (§4.4): this implementation's version, so a
/// script can tell it from upstream's numbering.
const VERSION_ENV: &[u8] = concat!(
    "FAKECHROOT_VERSION=udocker-rs-",
    env!("CARGO_PKG_VERSION"),
    "\0"
)
.as_bytes();

/// Room for a rewritten library search path (`name=value`).
const LIBPATH_MAX: usize = 8192;

/// The argument vector, environment and file of one exec; they point into the `Scratch` and
/// the path buffers the caller passed, which must outlive the exec.
pub(super) struct Image {
    pub(super) file: *const c_char,
    pub(super) argv: Argv,
    pub(super) envp: Argv,
}

/// Bytes of `Scratch` kept on the stack: the vectors of ~800 arguments and variables with the
/// rewritten strings (2 x 512 + 2 x LIBPATH_MAX).
const STACK_SCRATCH: usize = 24 * 1024;

/// Memory for one exec's vectors and rewritten strings, zeroed: on the caller's stack when it
/// fits, else a private mapping (unmapped on drop). Not a mapping every time: a `vfork` child
/// (dash, busybox, Python's subprocess) shares its parent's memory, and a mapping made there
/// stays in the parent once the exec succeeds: 20 KiB lost per command in a shell loop, and an
/// mmap plus its page faults per exec. Only an exec with more than ~800 arguments and variables
/// in a vfork child still leaves its mapping behind.
/// `W` words on the stack: the default for a whole image; a plain argument vector takes less.
pub(super) struct Scratch<const W: usize = { STACK_SCRATCH / 8 }> {
    stack: core::mem::MaybeUninit<[u64; W]>,
    map: *mut u8,
    len: usize,
}

/// A vector of up to 255 arguments on the stack (execl, exec_sh).
pub(super) type ArgScratch = Scratch<256>;

impl<const W: usize> Scratch<W> {
    pub(super) fn new() -> Self {
        Scratch {
            stack: core::mem::MaybeUninit::uninit(),
            map: core::ptr::null_mut(),
            len: 0,
        }
    }

    /// `len` zeroed bytes, 8-aligned, valid while `self` is; null when no memory is left. (Only
    /// what is asked for is zeroed: most execs need 2 KiB of the 24.)
    pub(super) fn take(&mut self, len: usize) -> *mut u8 {
        if len <= W * 8 {
            let p = self.stack.as_mut_ptr().cast::<u8>();
            // SAFETY: `len` bytes fit in the stack array.
            unsafe { p.write_bytes(0, len) };
            return p;
        }
        if !self.map.is_null() {
            raw::unmap(self.map, self.len);
        }
        self.len = (len + 4095) & !4095;
        self.map = raw::map(self.len);
        self.map
    }
}

impl<const W: usize> Drop for Scratch<W> {
    fn drop(&mut self) {
        if !self.map.is_null() {
            raw::unmap(self.map, self.len);
        }
    }
}

pub(super) fn count(v: Argv) -> usize {
    let mut n = 0;
    if v.is_null() {
        return 0;
    }
    // SAFETY: a NULL-terminated vector of strings, as execve(2) requires.
    while unsafe { !(*v.add(n)).is_null() } {
        n += 1;
    }
    n
}

/// Pointer-array builder over the mapping.
struct Vec0 {
    at: *mut *const c_char,
    n: usize,
}

impl Vec0 {
    fn push(&mut self, s: *const c_char) {
        // SAFETY: the mapping was sized for every push plus the terminating NULL.
        unsafe { *self.at.add(self.n) = s };
        self.n += 1;
    }
    fn finish(mut self) -> Argv {
        self.push(core::ptr::null());
        self.at as Argv
    }
}

/// True when `env` (`K=V`) sets the same variable as `kv`.
fn same_key(env: &[u8], kv: &[u8]) -> bool {
    let k = &kv[..kv.iter().position(|&b| b == b'=').unwrap_or(kv.len())];
    env.len() > k.len() && env.starts_with(k) && env[k.len()] == b'='
}

/// `same_key` on the caller's C string, reading only as far as the key: environments hold long
/// values (LD_LIBRARY_PATH, the volume map), and measuring every entry for every preserved
/// variable cost a few microseconds per exec.
///
/// # Safety
/// `e` is a NUL-terminated string.
unsafe fn c_same_key(e: *const c_char, kv: &[u8]) -> bool {
    let k = &kv[..kv.iter().position(|&b| b == b'=').unwrap_or(kv.len())];
    // SAFETY: the key has no NUL, so a shorter string differs at its terminator at the latest
    // and nothing past it is read.
    unsafe {
        k.iter().enumerate().all(|(i, &b)| *e.add(i) as u8 == b) && *e.add(k.len()) as u8 == b'='
    }
}

/// The file type bits (`st_mode & S_IFMT`) of host path `p` (NUL-terminated), following a final
/// symlink unless `flags` has AT_SYMLINK_NOFOLLOW; Err(-errno) on failure.
fn file_type(p: *const c_char, flags: c_int) -> Result<u32, isize> {
    stat_id(p, flags).map(|(t, _)| t)
}

/// `file_type` and the file's identity for execcache.rs: device, inode, size, modification
/// time. x86_64 struct stat (stat(2)): st_dev at 0, st_ino 8, st_mode (u32) 24, st_size 48,
/// st_mtime 88, its nanoseconds 96; 144 bytes.
fn stat_id(p: *const c_char, flags: c_int) -> Result<(u32, crate::execcache::Id), isize> {
    let mut st = [0u8; 144];
    // SAFETY: `p` is NUL-terminated; `st` is a struct stat's size.
    let r = unsafe {
        raw::syscall(
            raw::SYS_NEWFSTATAT,
            raw::AT_FDCWD as usize,
            p as usize,
            st.as_mut_ptr() as usize,
            flags as usize,
        )
    };
    if r < 0 {
        return Err(r);
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&st[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let mode = u32::from_le_bytes([st[24], st[25], st[26], st[27]]);
    Ok((
        mode & 0o170000,
        [u64_at(0), u64_at(8), u64_at(48), u64_at(88), u64_at(96)],
    ))
}

/// Build what to exec for the guest program `file` (as the caller named it).
pub(super) unsafe fn prepare(
    file: *const c_char,
    argv: Argv,
    envp: Argv,
    host: &mut [u8; PATH_MAX],
    host2: &mut [u8; PATH_MAX],
    scratch: &mut Scratch,
) -> Result<Image, c_int> {
    let cfg = config::get();
    // SAFETY: the caller's path.
    let mut hp = unsafe { xlat(b"execve", AT_FDCWD, file, host) }?;
    // SAFETY: `hp` is NUL-terminated (the caller's path or `host`).
    let hs = unsafe { cstr(hp) };
    if hs.first() != Some(&b'/') {
        // A relative name is the cwd's: made absolute, because the loader would search its
        // library path for a name without `/` (ld.so(8)), and /proc/self/exe answers from the
        // loader's first argument (`main_program`).
        let mut cwd = [0u8; PATH_MAX];
        let n = super::host_dir(AT_FDCWD, &mut cwd)?;
        let mut joined = [0u8; PATH_MAX];
        let m = path::concat(&mut joined, &[&cwd[..n], b"/", hs]).ok_or(ENAMETOOLONG)?;
        host[..=m].copy_from_slice(&joined[..=m]);
        hp = host.as_ptr().cast();
    }
    // The kernel's order (execve(2)): lookup, then EACCES for what is not a regular file or
    // lacks execute permission, then the format (ENOEXEC).
    let mut st = stat_id(hp, 0);
    if matches!(st, Err(e) if e == -(ENOENT as isize)) {
        let mut again = [0u8; PATH_MAX];
        // SAFETY: `hp` is NUL-terminated.
        if unsafe { super::retry_in_root(AT_FDCWD, hp, &mut again, true) }.is_some() {
            host.copy_from_slice(&again);
            hp = host.as_ptr().cast();
            st = stat_id(hp, 0);
        }
    }
    let (ty, id) = st.map_err(|e| -e as c_int)?;
    if ty != 0o100000 {
        return Err(EACCES);
    }
    // SAFETY: `hp` is NUL-terminated; X_OK = 1.
    let r = unsafe {
        raw::syscall(
            raw::SYS_FACCESSAT,
            raw::AT_FDCWD as usize,
            hp as usize,
            1,
            0,
        )
    };
    if r < 0 {
        return Err(-r as c_int);
    }
    // F4 re-roots a file whose interpreter is not the container's (below): such a file is not
    // kept; one found current is, as its identity changes if it is ever rewritten.
    let current = |hdr: &[u8]| match cfg.patcher() {
        None => true,
        Some(_) => {
            let base = cfg.base_c();
            path::elf_interp(hdr).is_none_or(|i| i.starts_with(&base[..base.len() - 1]))
        }
    };
    let mut hdr = [0u8; 1024];
    let mut n = 0;
    let mut canon = [0u8; PATH_MAX];
    // SAFETY: `hp` is NUL-terminated.
    let hs = unsafe { cstr(hp) };
    let known = crate::execcache::get(hs, &id, &mut canon);
    let kind = match known {
        Some((c, dynamic)) => {
            host[..=c].copy_from_slice(&canon[..=c]);
            hp = host.as_ptr().cast();
            Some(dynamic)
        }
        None => {
            // One descriptor gives the header and the file itself, symlinks resolved: the
            // loader is handed the latter, as the kernel records the resolved file as
            // /proc/self/exe, and the loader takes $ORIGIN from the name it is given.
            // SAFETY: `hp` is NUL-terminated.
            let fd = unsafe {
                raw::syscall(
                    raw::SYS_OPENAT,
                    raw::AT_FDCWD as usize,
                    hp as usize,
                    raw::O_RDONLY_CLOEXEC,
                    0,
                )
            };
            if fd < 0 {
                return Err(-fd as c_int);
            }
            n = raw::read_full(fd as c_int, &mut hdr);
            let c = canonical(fd as c_int, &mut canon);
            // SAFETY: our own descriptor.
            unsafe { raw::syscall(raw::SYS_CLOSE, fd as usize, 0, 0, 0) };
            let kind = path::elf_is_dynamic(&hdr[..n as usize]);
            if let (true, Some(c), Some(dynamic)) = (current(&hdr[..n as usize]), c, kind) {
                crate::execcache::put(hs, &id, &canon[..c], dynamic);
            }
            if let Some(c) = c {
                host[..=c].copy_from_slice(&canon[..=c]);
                hp = host.as_ptr().cast();
            }
            kind
        }
    };
    // F4: a program made after setup (compiled, installed) still names the host's loader:
    // re-root it first (spec §3: the patcher runs with an empty environment), then read it again.
    let mut kind = kind;
    if let Some(patcher) = cfg.patcher() {
        // (On a hit `hdr` is empty: the file was current when kept.)
        if !current(&hdr[..n as usize]) && run_patcher(patcher, cfg.base_c(), hp) {
            n = raw::read_head(hp.cast(), &mut hdr);
            if n < 0 {
                return Err(-n as c_int);
            }
            kind = path::elf_is_dynamic(&hdr[..n as usize]);
        }
    }
    let hdr = &hdr[..n as usize];
    let argc = count(argv);
    let envc = count(envp);
    // The preserved variables, FAKECHROOT=true, FAKECHROOT_VERSION, and FAKECHROOT_BASE again
    // after a chroot.
    let npres = config::PRESERVED.len() + 3;
    let ptrs = (argc + 10) + (envc + npres + 1);
    // SAFETY: envp has envc NUL-terminated entries.
    let env_at = |i: usize| unsafe { *envp.add(i) };
    // A search path the program set for its child (not the one udocker set) is rewritten below:
    // its value, for entry `i`.
    let own_lib_path = |i: usize| -> Option<&[u8]> {
        // SAFETY: as above.
        if !cfg.active() || !unsafe { c_same_key(env_at(i), b"LD_LIBRARY_PATH=") } {
            return None;
        }
        // SAFETY: as above.
        let v = unsafe { cstr(env_at(i)) }.strip_prefix(b"LD_LIBRARY_PATH=")?;
        (Some(v) != cfg.preserved_value(b"LD_LIBRARY_PATH")).then_some(v)
    };
    // Room for the rewritten search paths only when there is one to rewrite.
    let libpaths = if (0..envc).any(|i| own_lib_path(i).is_some()) {
        2 * LIBPATH_MAX
    } else {
        0
    };
    let strings = 2 * 512 + libpaths;
    let map = scratch.take(ptrs * 8 + strings);
    if map.is_null() {
        return Err(ENOMEM);
    }
    let mut img = Image {
        file: hp,
        argv: core::ptr::null(),
        envp: core::ptr::null(),
    };
    let mut av = Vec0 {
        at: map.cast(),
        n: 0,
    };
    // SAFETY: inside the mapping (ptrs * 8 bytes of pointers, then the strings).
    let mut ev = Vec0 {
        at: unsafe { map.cast::<*const c_char>().add(argc + 10) },
        n: 0,
    };
    // SAFETY: as above.
    let strs = unsafe { core::slice::from_raw_parts_mut(map.add(ptrs * 8), strings) };
    let (s12, s34) = strs.split_at_mut(1024);
    let (s1, s2) = s12.split_at_mut(512);
    let (s3, s4) = s34.split_at_mut(libpaths / 2);
    // SAFETY: argv has argc entries.
    let arg = |i: usize| unsafe { *argv.add(i) };
    let argv0 = if argc > 0 { arg(0) } else { file };
    let loader = cfg.loader();
    let opt = cfg.argv0_opt();
    let hwcaps = cfg.hwcaps_opt();
    let via_loader = |av: &mut Vec0, name: *const c_char| {
        if let Some(l) = loader {
            av.push(l.as_ptr().cast());
            if let Some(o) = opt {
                av.push(o.as_ptr().cast());
                av.push(name);
            }
            if let Some(h) = hwcaps {
                av.push(h.as_ptr().cast());
                av.push(c"".as_ptr());
            }
        }
    };
    match kind {
        Some(dynamic) => {
            if dynamic && loader.is_some() {
                via_loader(&mut av, argv0);
                img.file = loader.map_or(hp, |l| l.as_ptr().cast());
                av.push(hp);
                (1..argc).for_each(|i| av.push(arg(i)));
            } else {
                (0..argc).for_each(|i| av.push(arg(i)));
            }
        }
        None => {
            let (interp, iarg) = path::shebang(hdr).ok_or(ENOEXEC)?;
            path::concat(s1, &[interp]).ok_or(ENAMETOOLONG)?;
            let interp_c: *const c_char = s1.as_ptr().cast();
            // SAFETY: `interp_c` is NUL-terminated in the mapping.
            let hi = unsafe { xlat(b"execve", AT_FDCWD, interp_c, host2) }?;
            let mut h2 = [0u8; 1024];
            let m = raw::read_head(hi.cast(), &mut h2);
            if m < 0 {
                return Err(-m as c_int);
            }
            let dynamic = path::elf_is_dynamic(&h2[..m as usize]).unwrap_or(false);
            if dynamic && loader.is_some() {
                via_loader(&mut av, interp_c);
                img.file = loader.map_or(hi, |l| l.as_ptr().cast());
                av.push(hi);
            } else {
                // Run by the kernel: argv[0] is the interpreter as the `#!` line names it
                // (binfmt_script), not its host path.
                img.file = hi;
                av.push(interp_c);
            }
            if let Some(a) = iarg {
                path::concat(s2, &[a]).ok_or(ENAMETOOLONG)?;
                av.push(s2.as_ptr().cast());
            }
            av.push(file);
            (1..argc).for_each(|i| av.push(arg(i)));
        }
    }
    img.argv = av.finish();
    // The search path the program set for its child: host paths, and the container's
    // directories after it (path::library_path). F2-F4's loader reads
    // LD_LIBRARY_REAL (musl) where glibc's still reads LD_LIBRARY_PATH: both get it.
    let orig = cfg
        .preserved_value(b"FAKECHROOT_LIBRARY_ORIG")
        .or_else(|| cfg.preserved_value(b"LD_LIBRARY_PATH"))
        .unwrap_or(b"");
    let mut lib_at = None;
    if libpaths > 0 {
        for i in 0..envc {
            if let Some(v) = own_lib_path(i) {
                let view = cfg.view();
                if path::library_path(&view, b"LD_LIBRARY_PATH", v, orig, s3).is_some()
                    && path::library_path(&view, b"LD_LIBRARY_REAL", v, orig, s4).is_some()
                {
                    lib_at = Some(i);
                }
            }
        }
    }
    let lib_rewritten = lib_at.is_some();
    // After a chroot the child gets the new root whatever the environment says (spec §4.2
    // "chroot(2) emulation": upstream's setenv makes it win over the caller's envp, §4.3
    // item 2); none when the root is the host's `/`.
    let chroot_env = cfg.chroot_env();
    // `FAKECHROOT=true` comes first, replacing the caller's (§4.3 item 2, §4.4: programs and
    // scripts test it to know they run under fakechroot).
    ev.push(c"FAKECHROOT=true".as_ptr());
    if let Some(Some(kv)) = chroot_env {
        ev.push(kv.as_ptr().cast());
    }
    for i in 0..envc {
        if Some(i) == lib_at {
            ev.push(s3.as_ptr().cast());
            continue;
        }
        let e = env_at(i);
        // SAFETY: as above.
        let key = |kv: &[u8]| unsafe { c_same_key(e, kv) };
        if lib_rewritten && key(b"LD_LIBRARY_REAL=") {
            continue;
        }
        if key(b"FAKECHROOT=") || (chroot_env.is_some() && key(b"FAKECHROOT_BASE=")) {
            continue;
        }
        ev.push(env_at(i));
    }
    if lib_rewritten && cfg.preserved_value(b"FAKECHROOT_LIBRARY_ORIG").is_some() {
        ev.push(s4.as_ptr().cast());
    }
    for kv in cfg.preserved() {
        if lib_rewritten && same_key(b"LD_LIBRARY_REAL=", kv) {
            continue;
        }
        if chroot_env.is_some() && same_key(b"FAKECHROOT_BASE=", kv) {
            continue;
        }
        // SAFETY: the caller's env strings are NUL-terminated.
        let present = (0..envc).any(|i| unsafe { c_same_key(env_at(i), kv) });
        if !present {
            ev.push(kv.as_ptr().cast());
        }
    }
    // FAKECHROOT_VERSION is set by the library (§4.4) unless the environment has one.
    let has_version = (0..envc).any(|i| {
        // SAFETY: as above.
        unsafe { c_same_key(env_at(i), VERSION_ENV) }
    });
    if !has_version && cfg.preserved_value(b"FAKECHROOT_VERSION").is_none() {
        ev.push(VERSION_ENV.as_ptr().cast());
    }
    img.envp = ev.finish();
    Ok(img)
}

/// `PATCHER -q --set-root-prefix BASE FILE` (all NUL-terminated host strings) in a child with
/// an empty environment (no LD_PRELOAD in the patcher); true when it exited 0. Raw fork, execve
/// and wait4, so it is safe in a vfork child too.
fn run_patcher(patcher: &[u8], base: &[u8], file: *const c_char) -> bool {
    let argv: [*const c_char; 6] = [
        c"patchelf".as_ptr(),
        c"-q".as_ptr(),
        c"--set-root-prefix".as_ptr(),
        base.as_ptr().cast(),
        file,
        core::ptr::null(),
    ];
    let envp: [*const c_char; 1] = [core::ptr::null()];
    // SAFETY: fork takes no arguments; the child only calls execve and exit_group.
    let pid = unsafe { raw::syscall(raw::SYS_FORK, 0, 0, 0, 0) };
    if pid < 0 {
        return false;
    }
    if pid == 0 {
        // SAFETY: NUL-terminated strings and NULL-terminated vectors that live on this stack.
        unsafe {
            raw::syscall(
                raw::SYS_EXECVE,
                patcher.as_ptr() as usize,
                argv.as_ptr() as usize,
                envp.as_ptr() as usize,
                0,
            );
            loop {
                raw::syscall(raw::SYS_EXIT_GROUP, 127, 0, 0, 0);
            }
        }
    }
    let mut status: i32 = 0;
    loop {
        // SAFETY: `status` is a valid int; options 0, no rusage.
        let r = unsafe {
            raw::syscall(
                raw::SYS_WAIT4,
                pid as usize,
                &mut status as *mut i32 as usize,
                0,
                0,
            )
        };
        if r == pid {
            // WIFEXITED && WEXITSTATUS == 0 (wait(2)).
            return status & 0x7f == 0 && (status >> 8) & 0xff == 0;
        }
        if r != -4 {
            // Anything but EINTR: the status is lost.
            return false;
        }
    }
}

/// What FAKECHROOT_CMD_SUBST makes of an exec.
pub(super) enum Subst {
    /// `#RETURN(TRUE)#` / `#RETURN(FALSE)#`: the "program" exits with this status at once.
    Exit(i32),
    /// The host substitute, run outside the root.
    Run(Image),
}

/// The variables a substitute gets renamed `*_ORIG` (§4.3 item 1): it is a host program, so
/// the container's root, preload and library path must not apply to it, but a wrapper script
/// can still read them.
const SUBST_RENAME: [&[u8]; 3] = [b"FAKECHROOT_BASE", b"LD_PRELOAD", b"LD_LIBRARY_PATH"];

/// FAKECHROOT_CMD_SUBST (`cmd=subst:…`, spec §4.3 item 1): when FAKECHROOT_CMD_ORIG is unset
/// or empty and `file`, as a container path after dedotdot, is some `cmd` exactly, the exec
/// becomes `subst`: the host program, with the caller's argv, the environment (preserved
/// variables included) with SUBST_RENAME renamed, and `FAKECHROOT_CMD_ORIG=<file>` added. The
/// fork's `#RETURN(TRUE)#`/`#RETURN(FALSE)#` placeholders exit 0/1 (the fork's inverted test is
/// not reproduced); where the process must not exit (`can_exit` false: posix_spawn), the host's
/// /bin/true or /bin/false is run instead.
pub(super) unsafe fn cmd_subst(
    file: *const c_char,
    argv: Argv,
    envp: Argv,
    can_exit: bool,
    scratch: &mut Scratch,
) -> Result<Option<Subst>, c_int> {
    let cfg = config::get();
    let Some(list) = cfg.preserved_value(b"FAKECHROOT_CMD_SUBST") else {
        return Ok(None);
    };
    if file.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's NUL-terminated path.
    let g = unsafe { cstr(file) };
    if g.is_empty() || !path::may_subst(list, g) {
        return Ok(None);
    }
    if getenv(b"FAKECHROOT_CMD_ORIG\0").is_some_and(|v| !v.is_empty()) {
        return Ok(None);
    }
    let mut abs = [0u8; PATH_MAX];
    let n = if g[0] == b'/' {
        path::normalize(g, &mut abs).ok_or(ENAMETOOLONG)?
    } else {
        let mut hd = [0u8; PATH_MAX];
        let hl = super::host_dir(AT_FDCWD, &mut hd)?;
        let mut gd = [0u8; PATH_MAX];
        let gl = match path::narrow(&cfg.view(), &hd[..hl], &mut gd) {
            Some(l) => l,
            None => path::concat(&mut gd, &[&hd[..hl]]).ok_or(ENAMETOOLONG)?,
        };
        let mut joined = [0u8; PATH_MAX];
        let jl = path::concat(&mut joined, &[&gd[..gl], b"/", g]).ok_or(ENAMETOOLONG)?;
        path::normalize(&joined[..jl], &mut abs).ok_or(ENAMETOOLONG)?
    };
    let cmd = &abs[..n];
    let Some(subst) = list.split(|&b| b == b':').find_map(|e| {
        e.strip_prefix(cmd)
            .and_then(|r| r.strip_prefix(b"="))
            .filter(|r| !r.is_empty())
    }) else {
        return Ok(None);
    };
    super::debug(b"cmd_subst", cmd, subst);
    let subst: &[u8] = match subst {
        b"#RETURN(TRUE)#" if can_exit => return Ok(Some(Subst::Exit(0))),
        b"#RETURN(FALSE)#" if can_exit => return Ok(Some(Subst::Exit(1))),
        b"#RETURN(TRUE)#" => b"/bin/true",
        b"#RETURN(FALSE)#" => b"/bin/false",
        s => s,
    };
    // The new environment: the caller's (less FAKECHROOT_CMD_ORIG, and FAKECHROOT_BASE when a
    // chroot moved it), the root a chroot installed, the preserved variables it lacks; each
    // SUBST_RENAME one renamed. Strings and pointers live in the scratch.
    let envc = count(envp);
    // SAFETY: envp has envc NUL-terminated entries.
    let env_at = |i: usize| unsafe { cstr(*envp.add(i)) };
    let chroot_env = cfg.chroot_env();
    let mut strings = g.len() + subst.len() + 64;
    for i in 0..envc {
        strings += env_at(i).len() + 8;
    }
    for kv in cfg.preserved() {
        strings += kv.len() + 8;
    }
    if let Some(Some(kv)) = chroot_env {
        strings += kv.len() + 8;
    }
    let ptrs = envc + config::PRESERVED.len() + 4;
    let len = ptrs * 8 + strings;
    let map = scratch.take(len);
    if map.is_null() {
        return Err(ENOMEM);
    }
    let mut img = Image {
        file: core::ptr::null(),
        argv,
        envp: core::ptr::null(),
    };
    let mut ev = Vec0 {
        at: map.cast(),
        n: 0,
    };
    // SAFETY: the strings area follows the pointers inside the mapping.
    let strs = unsafe { core::slice::from_raw_parts_mut(map.add(ptrs * 8), len - ptrs * 8) };
    let mut at = 0;
    // Copy `parts` NUL-terminated into the strings area; a pointer to it.
    let mut put = |parts: &[&[u8]]| -> Result<*const c_char, c_int> {
        let m = path::concat(&mut strs[at..], parts).ok_or(ENOMEM)?;
        let p = strs[at..].as_ptr().cast();
        at += m + 1;
        Ok(p)
    };
    img.file = put(&[subst])?;
    let mut add = |ev: &mut Vec0, kv: &[u8]| -> Result<(), c_int> {
        let kv = kv.strip_suffix(b"\0").unwrap_or(kv);
        for k in SUBST_RENAME {
            if let Some(v) = kv.strip_prefix(k).and_then(|r| r.strip_prefix(b"=")) {
                ev.push(put(&[k, b"_ORIG=", v])?);
                return Ok(());
            }
        }
        ev.push(put(&[kv])?);
        Ok(())
    };
    for i in 0..envc {
        let e = env_at(i);
        if same_key(e, b"FAKECHROOT_CMD_ORIG=")
            || (chroot_env.is_some() && same_key(e, b"FAKECHROOT_BASE="))
        {
            continue;
        }
        add(&mut ev, e)?;
    }
    if let Some(Some(kv)) = chroot_env {
        add(&mut ev, kv)?;
    }
    for kv in cfg.preserved() {
        if chroot_env.is_some() && same_key(b"FAKECHROOT_BASE=", kv) {
            continue;
        }
        if !(0..envc).any(|i| same_key(env_at(i), kv)) {
            add(&mut ev, kv)?;
        }
    }
    ev.push(put(&[b"FAKECHROOT_CMD_ORIG=", g])?);
    img.envp = ev.finish();
    Ok(Some(Subst::Run(img)))
}

/// execve of a guest program: returns only on failure (-1, errno set).
pub(super) unsafe fn do_execve(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    let mut scratch = Scratch::new();
    // Command substitution comes first: it applies with or without a root (§4.3 item 1).
    // SAFETY: the caller's arguments.
    match unsafe { cmd_subst(file, argv, envp, true, &mut scratch) } {
        Ok(None) => {}
        Ok(Some(Subst::Exit(code))) => loop {
            // SAFETY: exit_group ends the process, as the exec'd "program" would.
            unsafe { raw::syscall(raw::SYS_EXIT_GROUP, code as usize, 0, 0, 0) };
        },
        Ok(Some(Subst::Run(img))) => {
            // SAFETY: every pointer in the image is NUL-terminated and alive.
            set_errno(unsafe { sys_execve(img.file, img.argv, img.envp) });
            return -1;
        }
        Err(e) => {
            set_errno(e);
            return -1;
        }
    }
    let cfg = config::get();
    if !cfg.active() {
        // SAFETY: the caller's arguments, unchanged.
        set_errno(unsafe { sys_execve(file, argv, envp) });
        return -1;
    }
    let mut h1 = [0u8; PATH_MAX];
    let mut h2 = [0u8; PATH_MAX];
    // SAFETY: the caller's arguments.
    let e = match unsafe { prepare(file, argv, envp, &mut h1, &mut h2, &mut scratch) } {
        // SAFETY: every pointer in the image is NUL-terminated and alive.
        Ok(img) => unsafe { sys_execve(img.file, img.argv, img.envp) },
        Err(e) => e,
    };
    set_errno(e);
    -1
}

/// execve(2) as the shim makes it (the root descriptor forgotten first, rootfd::before_exec);
/// returns only on failure: the errno.
///
/// # Safety
/// NUL-terminated `file`, NULL-terminated vectors of NUL-terminated strings.
unsafe fn sys_execve(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    super::rootfd::before_exec();
    // SAFETY: the caller's promise.
    let r = unsafe {
        raw::syscall(
            raw::SYS_EXECVE,
            file as usize,
            argv as usize,
            envp as usize,
            0,
        )
    };
    -r as c_int
}

#[no_mangle]
pub unsafe extern "C" fn execve(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe { do_execve(file, argv, envp) }
}

#[no_mangle]
pub unsafe extern "C" fn execv(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe { do_execve(file, argv, environ()) }
}

const AT_SYMLINK_NOFOLLOW: c_int = 0x100;
const AT_EMPTY_PATH: c_int = 0x1000;
const ELOOP: c_int = 40;

/// execveat(2) (glibc >= 2.34) and fexecve(3): the program a descriptor or a path under one
/// names goes through `do_execve` like any other, so it runs on the container's loader; the
/// kernel would otherwise start it with the host's loader named by its PT_INTERP.
unsafe fn do_execveat(
    dirfd: c_int,
    file: *const c_char,
    argv: Argv,
    envp: Argv,
    flags: c_int,
) -> c_int {
    let cfg = config::get();
    if !cfg.active() || file.is_null() {
        // SAFETY: the caller's arguments, unchanged (execveat(2) has 5).
        let r = unsafe {
            raw::syscall6(
                raw::SYS_EXECVEAT,
                [
                    dirfd as isize as usize,
                    file as usize,
                    argv as usize,
                    envp as usize,
                    flags as usize,
                    0,
                ],
            )
        };
        set_errno(-r as c_int);
        return -1;
    }
    // SAFETY: a NUL-terminated path argument.
    let g = unsafe { cstr(file) };
    let mut host = [0u8; PATH_MAX];
    let n = if g.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            set_errno(ENOENT);
            return -1;
        }
        // The file the descriptor is open on; a memfd or a deleted file has no path left, and
        // is run as /proc/self/fd/N (the loader opens that before the exec closes the fd only
        // when it is not close-on-exec, as with the kernel's own fexecve of a script).
        match super::host_dir(dirfd, &mut host) {
            Ok(n) if host[0] == b'/' && exists(&host[..n]) => n,
            Ok(_) => match proc_fd_path(dirfd, &mut host) {
                Some(n) => n,
                None => {
                    set_errno(ENAMETOOLONG);
                    return -1;
                }
            },
            Err(e) => {
                set_errno(e);
                return -1;
            }
        }
    } else if g[0] == b'/' || dirfd == AT_FDCWD {
        match path::concat(&mut host, &[g]) {
            Some(n) => n,
            None => {
                set_errno(ENAMETOOLONG);
                return -1;
            }
        }
    } else {
        let mut out = [0u8; PATH_MAX];
        match super::resolve_relative(cfg, dirfd, g, &mut out, false) {
            Ok(n) => {
                host[..=n].copy_from_slice(&out[..=n]);
                n
            }
            Err(e) => {
                set_errno(e);
                return -1;
            }
        }
    };
    if flags & AT_SYMLINK_NOFOLLOW != 0 && !g.is_empty() {
        let mut hb = [0u8; PATH_MAX];
        // SAFETY: `host` is NUL-terminated at `n`.
        let q = match unsafe { xlat(b"execveat", AT_FDCWD, host.as_ptr().cast(), &mut hb) } {
            Ok(q) => q,
            Err(e) => {
                set_errno(e);
                return -1;
            }
        };
        if file_type(q, AT_SYMLINK_NOFOLLOW) == Ok(0o120000) {
            set_errno(ELOOP);
            return -1;
        }
    }
    let _ = n;
    // SAFETY: `host` is a NUL-terminated path; the vectors are the caller's.
    unsafe { do_execve(host.as_ptr().cast(), argv, envp) }
}

/// The path of the file open at `fd`, every symlink resolved (the kernel's own answer through
/// /proc/self/fd), NUL-terminated in `out`; its length.
fn canonical(fd: c_int, out: &mut [u8; PATH_MAX]) -> Option<usize> {
    let n = super::host_dir(fd, out).ok()?;
    if n == 0 || n >= PATH_MAX || out[0] != b'/' {
        return None;
    }
    out[n] = 0;
    Some(n)
}

fn exists(host: &[u8]) -> bool {
    let mut p = [0u8; PATH_MAX];
    if path::concat(&mut p, &[host]).is_none() {
        return false;
    }
    file_type(p.as_ptr().cast(), AT_SYMLINK_NOFOLLOW).is_ok()
}

/// `/proc/self/fd/N`, NUL-terminated in `out`; its length.
fn proc_fd_path(fd: c_int, out: &mut [u8; PATH_MAX]) -> Option<usize> {
    let mut digits = [0u8; 12];
    let digits = path::decimal(fd as u32, &mut digits);
    path::concat(out, &[b"/proc/self/fd/", digits])
}

#[no_mangle]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    file: *const c_char,
    argv: Argv,
    envp: Argv,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { do_execveat(dirfd, file, argv, envp, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded; "" with AT_EMPTY_PATH is the descriptor itself (fexecve(3)).
    unsafe { do_execveat(fd, c"".as_ptr(), argv, envp, AT_EMPTY_PATH) }
}

/// Run `file` (not an executable format) with the container's `/bin/sh`, as execvp does.
unsafe fn exec_sh(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    let argc = count(argv);
    let mut scratch = ArgScratch::new();
    let map = scratch.take((argc + 3) * 8);
    if map.is_null() {
        set_errno(ENOMEM);
        return -1;
    }
    let mut av = Vec0 {
        at: map.cast(),
        n: 0,
    };
    av.push(c"/bin/sh".as_ptr());
    av.push(file);
    // SAFETY: argv has argc entries.
    (1..argc).for_each(|i| av.push(unsafe { *argv.add(i) }));
    let v = av.finish();
    // SAFETY: forwarded.
    unsafe { do_execve(c"/bin/sh".as_ptr(), v, envp) }
}

/// The guest `$PATH` search of execvp/posix_spawnp: calls `f` with each candidate (a
/// NUL-terminated guest path) until it returns `Some`; `Err(errno)` when none did.
fn search<T>(
    name: &[u8],
    mut f: impl FnMut(*const c_char) -> Result<T, c_int>,
) -> Result<T, c_int> {
    let path = getenv(b"PATH\0").unwrap_or(b"/bin:/usr/bin");
    let mut seen_eacces = false;
    for dir in path.split(|&b| b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut cand = [0u8; PATH_MAX];
        if path::concat(&mut cand, &[dir, b"/", name]).is_none() {
            continue;
        }
        match f(cand.as_ptr().cast()) {
            Ok(t) => return Ok(t),
            Err(EACCES) => seen_eacces = true,
            Err(ENOENT | ENOTDIR | ENAMETOOLONG | 40 | 116) => {}
            Err(e) => return Err(e),
        }
    }
    Err(if seen_eacces { EACCES } else { ENOENT })
}

pub(super) unsafe fn do_execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    if file.is_null() {
        set_errno(ENOENT);
        return -1;
    }
    // SAFETY: the caller's NUL-terminated name.
    let name = unsafe { cstr(file) };
    if name.is_empty() {
        set_errno(ENOENT);
        return -1;
    }
    let run = |f: *const c_char| -> Result<(), c_int> {
        // SAFETY: forwarded; returns only on failure.
        unsafe { do_execve(f, argv, envp) };
        match get_errno() {
            // SAFETY: forwarded.
            ENOEXEC => unsafe { exec_sh(f, argv, envp) },
            e => return Err(e),
        };
        Err(get_errno())
    };
    let e = if name.contains(&b'/') {
        run(file).err().unwrap_or(ENOEXEC)
    } else {
        search(name, run).err().unwrap_or(ENOEXEC)
    };
    set_errno(e);
    -1
}

#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe { do_execvpe(file, argv, environ()) }
}

#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: forwarded.
    unsafe { do_execvpe(file, argv, envp) }
}

type SpawnFn = unsafe extern "C" fn(
    *mut c_int,
    *const c_char,
    *const c_void,
    *const c_void,
    Argv,
    Argv,
) -> c_int;

unsafe fn spawn(
    pid: *mut c_int,
    file: *const c_char,
    fa: *const c_void,
    at: *const c_void,
    argv: Argv,
    envp: Argv,
) -> c_int {
    let Some(f) = real!("posix_spawn", SpawnFn) else {
        return ENOSYS;
    };
    let mut scratch = Scratch::new();
    // SAFETY: the caller's arguments.
    match unsafe { cmd_subst(file, argv, envp, false, &mut scratch) } {
        Ok(None) => {}
        // SAFETY: posix_spawn returns once the child has exec'd or failed.
        Ok(Some(Subst::Run(img))) => {
            return unsafe { f(pid, img.file, fa, at, img.argv, img.envp) }
        }
        Ok(Some(Subst::Exit(_))) => return ENOSYS,
        Err(e) => return e,
    }
    if !config::get().active() {
        // SAFETY: forwarded.
        return unsafe { f(pid, file, fa, at, argv, envp) };
    }
    let mut h1 = [0u8; PATH_MAX];
    let mut h2 = [0u8; PATH_MAX];
    // SAFETY: the caller's arguments.
    match unsafe { prepare(file, argv, envp, &mut h1, &mut h2, &mut scratch) } {
        // SAFETY: posix_spawn returns once the child has exec'd or failed; the image lives
        // until then.
        Ok(img) => unsafe { f(pid, img.file, fa, at, img.argv, img.envp) },
        Err(e) => e,
    }
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut c_int,
    file: *const c_char,
    fa: *const c_void,
    at: *const c_void,
    argv: Argv,
    envp: Argv,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { spawn(pid, file, fa, at, argv, envp) }
}

#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut c_int,
    file: *const c_char,
    fa: *const c_void,
    at: *const c_void,
    argv: Argv,
    envp: Argv,
) -> c_int {
    if file.is_null() {
        return ENOENT;
    }
    // SAFETY: the caller's NUL-terminated name.
    let name = unsafe { cstr(file) };
    if name.contains(&b'/') || !config::get().active() {
        // SAFETY: forwarded.
        return unsafe { spawn(pid, file, fa, at, argv, envp) };
    }
    let r = search(name, |cand| {
        // SAFETY: forwarded.
        match unsafe { spawn(pid, cand, fa, at, argv, envp) } {
            0 => Ok(()),
            e => Err(e),
        }
    });
    r.err().unwrap_or(0)
}
