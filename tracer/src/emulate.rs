//! Calls the tracer answers itself. Queries whose whole result is a buffer (the stat family,
//! access, readlink, getxattr, listxattr) are run by the tracer on the translated host path —
//! same user, same file system — and the answer is copied into the guest's buffer; the guest's
//! call is skipped with the result in its return register. One stop instead of two, and no
//! argument register is ever changed, so none has to be restored.
//! (x86_64: at a seccomp or syscall-enter stop, setting the number to -1 skips the call and the
//! kernel leaves the tracer's return value in rax; seccomp selftests "TRACE_syscall skip_after".)

use crate::arch::{nr, Regs};
use crate::mem;
use crate::sys;
use crate::tracer::Ctx;
use nix::unistd::Pid;
use std::ffi::CString;

const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
const AT_EACCESS: i32 = 0x200;
const AT_STATX_SYNC_TYPE: i32 = 0x6000;
const XATTR_SIZE_MAX: u64 = 65536;

pub fn is_emulated(n: i64) -> bool {
    matches!(
        n,
        nr::STAT
            | nr::LSTAT
            | nr::NEWFSTATAT
            | nr::STATX
            | nr::ACCESS
            | nr::FACCESSAT
            | nr::FACCESSAT2
            | nr::READLINK
            | nr::READLINKAT
            | nr::GETXATTR
            | nr::LGETXATTR
            | nr::LISTXATTR
            | nr::LLISTXATTR
    )
}

fn err(e: nix::errno::Errno) -> i64 {
    -(e as i64)
}

/// Run call `n` for the guest on `host` (its resolved path; `guest` the canonical guest path).
pub fn run(ctx: &Ctx, pid: Pid, r: &Regs, n: i64, guest: &[u8], host: &[u8]) -> i64 {
    let Ok(hp) = CString::new(host.to_vec()) else {
        return err(nix::errno::Errno::EINVAL);
    };
    // Stat structs with the fake id applied to the user's own files.
    let fake = |uid: &mut u32, gid: &mut u32| {
        if let Some((fu, fg)) = ctx.cfg.fake_id {
            if *uid == ctx.uid {
                *uid = fu;
            }
            if *gid == ctx.gid {
                *gid = fg;
            }
        }
    };
    let put = |addr: u64, data: &[u8]| {
        mem::write(pid, addr, data).map_err(|_| err(nix::errno::Errno::EFAULT))
    };
    match n {
        nr::STAT | nr::LSTAT | nr::NEWFSTATAT => {
            let (flags, buf) = match n {
                nr::STAT => (0, r.arg(1)),
                nr::LSTAT => (AT_SYMLINK_NOFOLLOW, r.arg(1)),
                _ => ((r.arg(3) as i32) & AT_SYMLINK_NOFOLLOW, r.arg(2)),
            };
            // The path we resolved already followed (or not) the last link as asked. When
            // resolution just looked at this very path and it is not a symlink, stat and lstat
            // agree: reuse that answer (one system call less in the commonest stop).
            let (mut rv, mut st) = match crate::path::take_last_lstat(host) {
                Some(st) if st.st_mode & libc::S_IFMT != libc::S_IFLNK => (0, st),
                Some(st) if flags & AT_SYMLINK_NOFOLLOW != 0 => (0, st),
                _ => sys::fstatat(&hp, flags),
            };
            if rv == -(libc::ENOENT as i64) && ctx.tr.leads_to_binding(guest) {
                // A directory the rootfs lacks above a binding: show it as a directory
                // (PRoot creates such "glue" directories; we describe the root instead).
                if let Ok(root) = CString::new(ctx.tr.root().to_vec()) {
                    (rv, st) = sys::fstatat(&root, 0);
                }
            }
            if rv == 0 {
                fake(&mut st.st_uid, &mut st.st_gid);
                if let Err(e) = put(buf, sys::struct_bytes(&st)) {
                    return e;
                }
            }
            rv
        }
        nr::STATX => {
            let flags = (r.arg(2) as i32) & (AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_TYPE);
            let (mut rv, mut st) = sys::statx(&hp, flags, r.arg(3) as u32);
            if rv == -(libc::ENOENT as i64) && ctx.tr.leads_to_binding(guest) {
                if let Ok(root) = CString::new(ctx.tr.root().to_vec()) {
                    (rv, st) = sys::statx(&root, flags, r.arg(3) as u32);
                }
            }
            if rv == 0 {
                fake(&mut st.stx_uid, &mut st.stx_gid);
                if let Err(e) = put(r.arg(4), sys::struct_bytes(&st)) {
                    return e;
                }
            }
            rv
        }
        nr::ACCESS => sys::faccessat(&hp, r.arg(1) as i32, 0),
        nr::FACCESSAT => sys::faccessat(&hp, r.arg(2) as i32, 0),
        nr::FACCESSAT2 => {
            let fl = r.arg(3) as i32;
            if fl & !(AT_SYMLINK_NOFOLLOW | AT_EACCESS | 0x1000) != 0 {
                return err(nix::errno::Errno::EINVAL);
            }
            sys::faccessat(
                &hp,
                r.arg(2) as i32,
                fl & (AT_SYMLINK_NOFOLLOW | AT_EACCESS),
            )
        }
        nr::READLINK | nr::READLINKAT => {
            let (buf, size) = if n == nr::READLINK {
                (r.arg(1), r.arg(2) as i64)
            } else {
                (r.arg(2), r.arg(3) as i64)
            };
            if size <= 0 {
                return err(nix::errno::Errno::EINVAL);
            }
            // The bare magic links themselves: the tracee's pid, not ours.
            if guest == b"/proc/self" || guest == b"/proc/thread-self" {
                let t = if guest == b"/proc/self" {
                    format!("{pid}")
                } else {
                    format!("{pid}/task/{pid}")
                };
                let k = t.len().min(size as usize);
                if let Err(e) = put(buf, &t.as_bytes()[..k]) {
                    return e;
                }
                return k as i64;
            }
            let text = match nix::fcntl::readlink(hp.as_c_str()) {
                Ok(t) => std::os::unix::ffi::OsStringExt::into_vec(t),
                Err(e) => return err(e),
            };
            let text = crate::syscalls::guest_link_text(ctx, pid, guest, text);
            let k = text.len().min(size as usize);
            if let Err(e) = put(buf, &text[..k]) {
                return e;
            }
            k as i64
        }
        nr::GETXATTR | nr::LGETXATTR => {
            let Ok(name) = mem::read_cstr(pid, r.arg(1), 255) else {
                return err(nix::errno::Errno::EFAULT);
            };
            let Ok(name) = CString::new(name) else {
                return err(nix::errno::Errno::EINVAL);
            };
            let size = r.arg(3).min(XATTR_SIZE_MAX) as usize;
            let mut b = vec![0u8; size];
            let rv = sys::getxattr(&hp, &name, &mut b, n == nr::GETXATTR);
            if rv > 0 && size > 0 {
                if let Err(e) = put(r.arg(2), &b[..rv as usize]) {
                    return e;
                }
            }
            rv
        }
        nr::LISTXATTR | nr::LLISTXATTR => {
            let size = r.arg(2).min(XATTR_SIZE_MAX) as usize;
            let mut b = vec![0u8; size];
            let rv = sys::listxattr(&hp, &mut b, n == nr::LISTXATTR);
            if rv > 0 && size > 0 {
                if let Err(e) = put(r.arg(1), &b[..rv as usize]) {
                    return e;
                }
            }
            rv
        }
        _ => err(nix::errno::Errno::ENOSYS),
    }
}
