//! execve(2) inside the guest. The kernel would resolve two things on the host that must come
//! from the guest: a script's `#!` interpreter and an ELF program's `PT_INTERP` loader. So the
//! tracer reads them itself (from the guest file, bounded) and turns the call into
//! `execve(<host path of the guest loader>, [loader, (--argv0 ARGV0), <guest program>, args…])`:
//! the guest's own ld.so then maps the program and its libraries through translated syscalls,
//! and no host library is ever loaded. Static programs are executed directly.

use crate::tracer::Ctx;
use nix::errno::Errno;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;

#[derive(Debug)]
pub struct ExecPlan {
    /// Host path handed to the kernel.
    pub host_path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    /// Guest path of the program (what /proc/self/exe shows).
    pub program: Vec<u8>,
    /// argv[0] to write over the program path the loader received (no `--argv0` support).
    pub argv0_patch: Option<Vec<u8>>,
    /// The new environment, when it changes (`-q`).
    pub env: Option<Vec<Vec<u8>>>,
}

fn open_host(h: &[u8]) -> Result<File, Errno> {
    File::open(std::ffi::OsStr::from_bytes(h))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EACCES)))
}

/// PT_INTERP of an ELF file, if any. Every offset and size is checked against the file.
fn elf_interp(f: &mut File) -> Result<Option<Vec<u8>>, Errno> {
    let mut h = [0u8; 64];
    let n = f.read(&mut h).map_err(|_| Errno::EIO)?;
    if n < 52 || &h[..4] != b"\x7fELF" {
        return Err(Errno::ENOEXEC);
    }
    let is64 = h[4] == 2;
    let le = h[5] == 1;
    if !le {
        return Err(Errno::ENOEXEC);
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as u64;
    let u32_at =
        |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let (phoff, phentsize, phnum) = if is64 {
        if n < 64 {
            return Err(Errno::ENOEXEC);
        }
        (u64_at(&h, 32), u16_at(54), u16_at(56))
    } else {
        (u32_at(&h, 28), u16_at(42), u16_at(44))
    };
    let min_ent = if is64 { 56 } else { 32 };
    if phnum > 512 || phentsize < min_ent || phentsize > 256 {
        return Err(Errno::ENOEXEC);
    }
    let mut ph = vec![0u8; (phnum * phentsize) as usize];
    f.seek(SeekFrom::Start(phoff)).map_err(|_| Errno::ENOEXEC)?;
    f.read_exact(&mut ph).map_err(|_| Errno::ENOEXEC)?;
    for i in 0..phnum as usize {
        let e = &ph[i * phentsize as usize..];
        let p_type = u32_at(e, 0);
        if p_type != 3 {
            continue; // PT_INTERP
        }
        let (off, size) = if is64 {
            (u64_at(e, 8), u64_at(e, 32))
        } else {
            (u32_at(e, 4), u32_at(e, 16))
        };
        if size == 0 || size > 4096 {
            return Err(Errno::ENOEXEC);
        }
        let mut p = vec![0u8; size as usize];
        f.seek(SeekFrom::Start(off)).map_err(|_| Errno::ENOEXEC)?;
        f.read_exact(&mut p).map_err(|_| Errno::ENOEXEC)?;
        let end = p.iter().position(|b| *b == 0).unwrap_or(p.len());
        p.truncate(end);
        return Ok(Some(p));
    }
    Ok(None)
}

/// Does this ld.so understand `--argv0` (glibc 2.33+)? Looked up once per loader.
fn supports_argv0(ctx: &mut Ctx, host_loader: &[u8]) -> bool {
    if let Some(v) = ctx.loader_argv0.get(host_loader) {
        return *v;
    }
    let mut data = Vec::new();
    let ok = open_host(host_loader)
        .ok()
        .and_then(|f| f.take(16 << 20).read_to_end(&mut data).ok())
        .is_some();
    let v = ok && data.windows(8).any(|w| w == b"--argv0\0");
    ctx.loader_argv0.insert(host_loader.to_vec(), v);
    v
}

/// A `#!` line as Linux's binfmt_script reads it (fs/binfmt_script.c): the line ends at the
/// first newline (or the end of the bytes read); trailing blanks are dropped; the interpreter
/// starts at the first non-blank and ends at a blank or a NUL; an argument follows only when a
/// blank (not a NUL) ended the name, and is everything after the next blanks up to a NUL. A
/// line with no name is ENOEXEC; an empty name (`#!\0…`) cannot be opened: EACCES, as the
/// kernel answers. `\r` is not a blank (a DOS script names `/bin/sh\r`, which fails).
fn parse_shebang(head: &[u8]) -> Result<(Vec<u8>, Option<Vec<u8>>), Errno> {
    let blank = |b: u8| b == b' ' || b == b'\t';
    let mut end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    while end > 2 && blank(head[end - 1]) {
        end -= 1;
    }
    let line = &head[2.min(end)..end];
    let Some(start) = line.iter().position(|b| !blank(*b)) else {
        return Err(Errno::ENOEXEC);
    };
    let rest = &line[start..];
    let sep = rest
        .iter()
        .position(|b| blank(*b) || *b == 0)
        .unwrap_or(rest.len());
    let interp = rest[..sep].to_vec();
    if interp.is_empty() {
        return Err(Errno::EACCES);
    }
    let arg = match rest.get(sep) {
        Some(&b) if b != 0 => {
            let a = &rest[sep..];
            let a = &a[a.iter().position(|b| !blank(*b)).unwrap_or(a.len())..];
            let a: Vec<u8> = a.iter().copied().take_while(|b| *b != 0).collect();
            (!a.is_empty()).then_some(a)
        }
        _ => None,
    };
    Ok((interp, arg))
}

/// Plan the exec of `guest` (absolute, as the guest named it) with `argv`.
/// `given` is the path as the guest wrote it (what a script's interpreter receives as its
/// script argument, as binfmt_script passes it); `cwd` the guest directory that relative
/// names (a relative `#!` interpreter) start from.
pub fn plan(
    ctx: &mut Ctx,
    guest: &[u8],
    given: &[u8],
    cwd: &[u8],
    argv: Vec<Vec<u8>>,
    env: &mut Option<EnvState>,
) -> Result<ExecPlan, Errno> {
    let mut guest = guest.to_vec();
    let mut given = given.to_vec();
    let mut argv = argv;
    for _ in 0..5 {
        let (g, h) = ctx.tr.resolve(&ctx.fs, &guest, true)?;
        // Only regular files can be executed (execve(2): EACCES for a directory or a device).
        let st = nix::sys::stat::stat(std::ffi::OsStr::from_bytes(&h))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Errno::EACCES);
        }
        nix::unistd::access(
            std::ffi::OsStr::from_bytes(&h),
            nix::unistd::AccessFlags::X_OK,
        )?;
        let mut f = open_host(&h)?;
        let mut head = [0u8; 256];
        let n = f.read(&mut head).map_err(|_| Errno::EIO)?;
        if n >= 2 && &head[..2] == b"#!" {
            let (interp, arg) = parse_shebang(&head[..n])?;
            let mut new = vec![interp.clone()];
            new.extend(arg);
            new.push(given.clone());
            new.extend(argv.into_iter().skip(1));
            argv = new;
            given = interp.clone();
            guest = if interp.first() == Some(&b'/') {
                interp
            } else {
                let mut p = cwd.to_vec();
                p.push(b'/');
                p.extend_from_slice(&interp);
                p
            };
            continue;
        }
        f.seek(SeekFrom::Start(0)).map_err(|_| Errno::EIO)?;
        if let Some(q) = ctx.cfg.qemu.clone() {
            return plan_qemu(ctx, &q, f, h, g, given, argv, env);
        }
        let interp = elf_interp(&mut f)?;
        return with_loader(ctx, interp, h, g.clone(), g, argv);
    }
    Err(Errno::ELOOP)
}

/// The exec of an ELF program: directly when it has no `PT_INTERP`, else through the loader
/// `interp` (a guest path) with `path` (the guest path the loader opens) as its program.
fn with_loader(
    ctx: &mut Ctx,
    interp: Option<Vec<u8>>,
    host: Vec<u8>,
    path: Vec<u8>,
    program: Vec<u8>,
    argv: Vec<Vec<u8>>,
) -> Result<ExecPlan, Errno> {
    let Some(interp) = interp else {
        return Ok(ExecPlan {
            host_path: host,
            argv,
            program,
            argv0_patch: None,
            env: None,
        });
    };
    let (_, lh) = ctx
        .tr
        .resolve(&ctx.fs, &crate::path::normalize(&interp), true)?;
    if nix::unistd::access(
        std::ffi::OsStr::from_bytes(&lh),
        nix::unistd::AccessFlags::F_OK,
    )
    .is_err()
    {
        // What the kernel says when the interpreter is missing.
        return Err(Errno::ENOENT);
    }
    let argv0 = argv.first().cloned().unwrap_or_else(|| path.clone());
    let mut new = vec![interp];
    let mut argv0_patch = None;
    if supports_argv0(ctx, &lh) {
        new.push(b"--argv0".to_vec());
        new.push(argv0);
    } else if argv0 != path {
        // Older loaders give the program the path they were handed as argv[0]:
        // patched in place once the loader has opened the program.
        argv0_patch = Some(argv0);
    }
    new.push(path);
    new.extend(argv.into_iter().skip(1));
    Ok(ExecPlan {
        host_path: lh,
        argv: new,
        program,
        argv0_patch,
        env: None,
    })
}

/// ELF machine of the host (elf(5) `e_machine`): EM_X86_64. i386 programs count as foreign: the
/// tracer follows x86_64 system calls only (its filter kills 32-bit calls), so an emulator is
/// their only way to run.
#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62;

/// `/host-rootfs` + a host path: how the guest names a host file.
fn on_host(p: &[u8]) -> Vec<u8> {
    let mut v = crate::HOST_ROOTFS.to_vec();
    v.extend_from_slice(p);
    v
}

/// With an emulator (`-q`): a program that is not an ELF of the host's machine (or any program,
/// with `force_foreign`) runs as `QEMU… [-E VAR=VAL | -U LD_LIBRARY_PATH]… -0 ARGV0 PATH ARGS…`
/// where the `LD_*` variables meant for the guest's loader move from the environment to the
/// emulator's command line, so that they do not apply to the emulator itself (a host program).
/// The emulator and any host program ("mixed mode") then run with the host's loader, found
/// under /host-rootfs, and an LD_LIBRARY_PATH that leads to the host's libraries there. The
/// guest's own LD_LIBRARY_PATH is remembered so that a host program (a host shell) that runs a
/// guest program hands the guest's value back to it (PRoot's behaviour, execve/ldso.c).
#[allow(clippy::too_many_arguments)]
fn plan_qemu(
    ctx: &mut Ctx,
    q: &crate::Qemu,
    mut f: File,
    h: Vec<u8>,
    g: Vec<u8>,
    given: Vec<u8>,
    argv: Vec<Vec<u8>>,
    env: &mut Option<EnvState>,
) -> Result<ExecPlan, Errno> {
    let mut head = [0u8; 20];
    let n = read_full(&mut f, &mut head);
    let machine =
        (n >= 20 && &head[..4] == b"\x7fELF").then(|| u16::from_le_bytes([head[18], head[19]]));
    let Some(state) = env.as_mut() else {
        return Err(Errno::EFAULT);
    };
    let foreign = q.force_foreign || machine != Some(HOST_MACHINE);
    let (host, path, argv) = if foreign {
        let argv0 = argv.first().cloned().unwrap_or_else(|| given.clone());
        let mut new = q.argv.clone();
        new.extend(ldso_passthru(state));
        new.push(b"-0".to_vec());
        new.push(argv0);
        new.push(given);
        new.extend(argv.into_iter().skip(1));
        let host = q.argv.first().cloned().ok_or(Errno::ENOENT)?;
        f = open_host(&host)?;
        (host.clone(), on_host(&host), new)
    } else {
        (h, g.clone(), argv)
    };
    f.seek(SeekFrom::Start(0)).map_err(|_| Errno::EIO)?;
    // The host program's loader is a host path: the guest reaches it under /host-rootfs.
    let interp = elf_interp(&mut f)?.map(|i| {
        if i.first() == Some(&b'/') {
            on_host(&i)
        } else {
            i
        }
    });
    host_ldso_paths(state, &q.host_library_path);
    let mut plan = with_loader(ctx, interp, host, path, g, argv)?;
    plan.env = Some(state.env.clone());
    Ok(plan)
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// The environment of an exec under `-q`, and what the process remembers across execs.
#[derive(Debug)]
pub struct EnvState {
    pub env: Vec<Vec<u8>>,
    pub memo: LdsoMemo,
}

/// Per process (inherited by children): the LD_LIBRARY_PATH entry made for host programs, and
/// the guest's own entry it replaced (both whole `NAME=VALUE` strings).
#[derive(Debug, Clone, Default)]
pub struct LdsoMemo {
    pub host: Option<Vec<u8>>,
    pub guest: Option<Vec<u8>>,
}

fn env_name(e: &[u8]) -> &[u8] {
    e.split(|b| *b == b'=').next().unwrap_or(e)
}

/// Variables of the guest's loader that must reach the emulated program and not the emulator:
/// ld.so(8)'s environment.
const LD_VARS: &[&[u8]] = &[
    b"LD_LIBRARY_PATH",
    b"LD_PRELOAD",
    b"LD_BIND_NOW",
    b"LD_TRACE_LOADED_OBJECTS",
    b"LD_AOUT_LIBRARY_PATH",
    b"LD_AOUT_PRELOAD",
    b"LD_AUDIT",
    b"LD_BIND_NOT",
    b"LD_DEBUG",
    b"LD_DEBUG_OUTPUT",
    b"LD_DYNAMIC_WEAK",
    b"LD_HWCAP_MASK",
    b"LD_KEEPDIR",
    b"LD_NOWARN",
    b"LD_ORIGIN_PATH",
    b"LD_POINTER_GUARD",
    b"LD_PROFILE",
    b"LD_PROFILE_OUTPUT",
    b"LD_SHOW_AUXV",
    b"LD_USE_LOAD_BIAS",
    b"LD_VERBOSE",
    b"LD_WARN",
];

/// Move the loader variables out of the environment into `-E NAME=VALUE` options (qemu-user's
/// own syntax; each one lands in front of those before it, as PRoot orders them), or
/// `-U LD_LIBRARY_PATH` when the guest has none: the emulator, a host program, needs the host
/// value that is set afterwards and the guest program must not inherit it.
fn ldso_passthru(state: &mut EnvState) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut seen_library_path = false;
    let memo = state.memo.clone();
    state.env.retain(|e| {
        let name = env_name(e);
        if !LD_VARS.contains(&name) || !e.contains(&b'=') {
            return true;
        }
        let mut v = e.clone();
        if name == b"LD_LIBRARY_PATH" {
            seen_library_path = true;
            // A host program (mixed mode) runs this guest program: give it back the guest's
            // value, unless the host program set one of its own.
            if let (Some(h), Some(gv)) = (&memo.host, &memo.guest) {
                if e == h {
                    v = gv.clone();
                }
            }
        }
        out.splice(0..0, [b"-E".to_vec(), v]);
        false
    });
    if !seen_library_path {
        out.splice(0..0, [b"-U".to_vec(), b"LD_LIBRARY_PATH".to_vec()]);
    }
    out
}

/// `LD_LIBRARY_PATH` for a host program: `initial` then the host's standard library
/// directories, each absolute one under /host-rootfs (the guest's /lib holds the guest's
/// libraries). DT_RPATH/DT_RUNPATH of the program are not read (PRoot adds them; the emulators
/// distributions ship have none).
fn host_ldso_paths(state: &mut EnvState, initial: &[u8]) {
    const STANDARD: &[u8] = b"/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/usr/local/lib64:/lib:/usr/lib:/usr/local/lib";
    let mut v = b"LD_LIBRARY_PATH=".to_vec();
    let initial: &[u8] = if initial.is_empty() { b"/" } else { initial };
    for (i, d) in initial
        .split(|b| *b == b':')
        .chain(STANDARD.split(|b| *b == b':'))
        .enumerate()
    {
        if i > 0 {
            v.push(b':');
        }
        if d.first() == Some(&b'/') {
            v.extend_from_slice(crate::HOST_ROOTFS);
        }
        v.extend_from_slice(d);
    }
    match state
        .env
        .iter()
        .position(|e| env_name(e) == b"LD_LIBRARY_PATH" && e.contains(&b'='))
    {
        Some(i) => {
            if state.memo.guest.is_none() {
                state.memo.guest = Some(state.env[i].clone());
            }
            state.env[i] = v.clone();
        }
        None => state.env.push(v.clone()),
    }
    if state.memo.host.is_none() {
        state.memo.host = Some(v);
    }
}

#[cfg(test)]
mod shebang_tests {
    use super::parse_shebang;
    use nix::errno::Errno;

    fn p(b: &[u8]) -> Result<(String, Option<String>), Errno> {
        parse_shebang(b).map(|(i, a)| {
            (
                String::from_utf8_lossy(&i).into_owned(),
                a.map(|a| String::from_utf8_lossy(&a).into_owned()),
            )
        })
    }

    #[test]
    fn like_binfmt_script() {
        let s = |i: &str, a: Option<&str>| Ok((i.to_string(), a.map(str::to_string)));
        assert_eq!(p(b"#!/bin/echo 123\n"), s("/bin/echo", Some("123")));
        assert_eq!(
            p(b"#!/bin/echo     123 456    789   \n"),
            s("/bin/echo", Some("123 456    789"))
        );
        assert_eq!(p(b"#!   /bin/echo    \n"), s("/bin/echo", None));
        assert_eq!(p(b"#!/bin/echo\0 123\n"), s("/bin/echo", None));
        assert_eq!(
            p(b"#!/bin/echo 123   \0   \n"),
            s("/bin/echo", Some("123   "))
        );
        assert_eq!(p(b"#!/bin/sh\r\n"), s("/bin/sh\r", None));
        assert_eq!(p(b"#!/bin/sh"), s("/bin/sh", None));
        assert_eq!(p(b"#!\0/bin/echo\n"), Err(Errno::EACCES));
        assert_eq!(p(b"#!   \n"), Err(Errno::ENOEXEC));
        assert_eq!(p(b"#!"), Err(Errno::ENOEXEC));
    }
}
