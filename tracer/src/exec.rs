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
        return match elf_interp(&mut f)? {
            None => Ok(ExecPlan {
                host_path: h,
                argv,
                program: g,
                argv0_patch: None,
            }),
            Some(interp) => {
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
                let argv0 = argv.first().cloned().unwrap_or_else(|| g.clone());
                let mut new = vec![interp];
                let mut argv0_patch = None;
                if supports_argv0(ctx, &lh) {
                    new.push(b"--argv0".to_vec());
                    new.push(argv0);
                } else if argv0 != g {
                    // Older loaders give the program the path they were handed as argv[0]:
                    // patched in place once the loader has opened the program.
                    argv0_patch = Some(argv0);
                }
                new.push(g.clone());
                new.extend(argv.into_iter().skip(1));
                Ok(ExecPlan {
                    host_path: lh,
                    argv: new,
                    program: g,
                    argv0_patch,
                })
            }
        };
    }
    Err(Errno::ELOOP)
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
