//! System-call entry and exit handling: which arguments are paths, how each is resolved, what
//! must be rewritten on the way back. Families are described once by a table (`spec` below), so
//! `stat`, `lstat`, `newfstatat` and `statx` share one path.

use crate::arch::{nr, Regs};
use crate::exec;
use crate::mem::{self, Scratch, PATH_MAX};
use crate::path::FsView;
use crate::tracer::{Ctx, ExitAction, Saved};
use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use std::os::unix::ffi::OsStrExt;

const AT_FDCWD: i64 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;

/// Whether the last component is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follow {
    Yes,
    No,
    /// Follow unless `flags & AT_SYMLINK_NOFOLLOW` (arg index of flags).
    UnlessNoFollowFlag(usize),
    /// Follow only if `flags & AT_SYMLINK_FOLLOW` (linkat).
    IfFollowFlag(usize),
    /// mkdir: never followed, not even with a trailing slash (`mkdir link/` is EEXIST).
    Create,
    /// open/openat: not with O_NOFOLLOW, nor with O_CREAT|O_EXCL (arg index of flags).
    Open(usize),
}

/// One path argument: `dirfd` register (None = AT_FDCWD), path register, follow rule.
#[derive(Clone, Copy, Debug)]
struct PathArg {
    dirfd: Option<usize>,
    path: usize,
    follow: Follow,
}

const fn p(path: usize, follow: Follow) -> PathArg {
    PathArg {
        dirfd: None,
        path,
        follow,
    }
}

const fn at(dirfd: usize, path: usize, follow: Follow) -> PathArg {
    PathArg {
        dirfd: Some(dirfd),
        path,
        follow,
    }
}

/// The path arguments of a call, or None when it has none we translate.
fn spec(n: i64) -> Option<&'static [PathArg]> {
    use Follow::*;
    Some(match n {
        nr::OPEN => {
            const S: &[PathArg] = &[p(0, Open(1))];
            S
        }
        nr::CREAT
        | nr::STAT
        | nr::ACCESS
        | nr::TRUNCATE
        | nr::CHDIR
        | nr::CHMOD
        | nr::CHOWN
        | nr::UTIME
        | nr::UTIMES
        | nr::STATFS
        | nr::SETXATTR
        | nr::GETXATTR
        | nr::LISTXATTR
        | nr::REMOVEXATTR
        | nr::CHROOT
        | nr::USELIB
        | nr::ACCT
        | nr::SWAPON
        | nr::SWAPOFF => {
            const S: &[PathArg] = &[p(0, Yes)];
            S
        }
        nr::LSTAT
        | nr::LCHOWN
        | nr::LSETXATTR
        | nr::LGETXATTR
        | nr::LLISTXATTR
        | nr::LREMOVEXATTR
        | nr::READLINK
        | nr::UNLINK
        | nr::RMDIR
        | nr::MKNOD
        | nr::UMOUNT2 => {
            const S: &[PathArg] = &[p(0, No)];
            S
        }
        nr::MKDIR => {
            const S: &[PathArg] = &[p(0, Create)];
            S
        }
        nr::RENAME => {
            const S: &[PathArg] = &[p(0, No), p(1, No)];
            S
        }
        nr::LINK => {
            const S: &[PathArg] = &[p(0, No), p(1, No)];
            S
        }
        nr::SYMLINK => {
            const S: &[PathArg] = &[p(1, No)];
            S
        }
        nr::MOUNT => {
            const S: &[PathArg] = &[p(1, Yes)];
            S
        }
        nr::OPENAT => {
            const S: &[PathArg] = &[at(0, 1, Open(2))];
            S
        }
        nr::OPENAT2 => {
            const S: &[PathArg] = &[at(0, 1, Yes)];
            S
        }
        nr::MKNODAT | nr::UNLINKAT | nr::READLINKAT => {
            const S: &[PathArg] = &[at(0, 1, No)];
            S
        }
        nr::MKDIRAT => {
            const S: &[PathArg] = &[at(0, 1, Create)];
            S
        }
        nr::FCHOWNAT => {
            const S: &[PathArg] = &[at(0, 1, UnlessNoFollowFlag(4))];
            S
        }
        nr::FUTIMESAT | nr::FCHMODAT | nr::FACCESSAT => {
            const S: &[PathArg] = &[at(0, 1, Yes)];
            S
        }
        nr::NEWFSTATAT | nr::FACCESSAT2 | nr::FCHMODAT2 | nr::UTIMENSAT => {
            const S: &[PathArg] = &[at(0, 1, UnlessNoFollowFlag(3))];
            S
        }
        nr::STATX | nr::OPEN_TREE => {
            const S: &[PathArg] = &[at(0, 1, UnlessNoFollowFlag(2))];
            S
        }
        nr::NAME_TO_HANDLE_AT => {
            const S: &[PathArg] = &[at(0, 1, IfFollowFlag(4))];
            S
        }
        nr::RENAMEAT | nr::RENAMEAT2 => {
            const S: &[PathArg] = &[at(0, 1, No), at(2, 3, No)];
            S
        }
        nr::LINKAT => {
            const S: &[PathArg] = &[at(0, 1, IfFollowFlag(4)), at(2, 3, No)];
            S
        }
        nr::SYMLINKAT => {
            const S: &[PathArg] = &[at(1, 2, No)];
            S
        }
        nr::INOTIFY_ADD_WATCH => {
            const S: &[PathArg] = &[p(1, Yes)];
            S
        }
        nr::FANOTIFY_MARK => {
            const S: &[PathArg] = &[at(3, 4, Yes)];
            S
        }
        nr::MOVE_MOUNT => {
            const S: &[PathArg] = &[at(0, 1, Yes), at(2, 3, Yes)];
            S
        }
        nr::FSPICK => {
            const S: &[PathArg] = &[at(0, 1, Yes)];
            S
        }
        _ => return None,
    })
}

fn getregs(pid: Pid) -> Option<Regs> {
    ptrace::getregs(pid).ok().map(Regs)
}

fn setregs(pid: Pid, r: &Regs) {
    let _ = ptrace::setregs(pid, r.0);
}

/// Would the kernel, resolving `rel` from the host side of the base directory, reach the same
/// file as the guest's resolution? True when no component is `..`, no binding is entered, and no
/// symlink is crossed (the last component only when followed). Then the call runs untouched: no
/// register rewrite and no exit stop, which is what keeps `find`, `ls -l`, `rm -r` fast (they
/// work with dirfd-relative single names).
fn native_is_same(
    ctx: &Ctx,
    host_base: &[u8],
    guest_base: &[u8],
    rel: &[u8],
    follow: bool,
) -> bool {
    let comps: Vec<&[u8]> = rel
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.is_empty() || comps.iter().any(|c| *c == b"..") {
        return false;
    }
    let mut full = guest_base.to_vec();
    for c in &comps {
        if full != b"/" {
            full.push(b'/');
        }
        full.extend_from_slice(c);
    }
    if ctx.tr.enters_binding(guest_base, &full) {
        return false;
    }
    let mut host = host_base.to_vec();
    for (i, c) in comps.iter().enumerate() {
        host.push(b'/');
        host.extend_from_slice(c);
        let last = i + 1 == comps.len();
        if last && !follow {
            break;
        }
        match ctx.fs.kind(&host) {
            Some(crate::path::Kind::Symlink) => return false,
            None => break, // missing: the kernel fails or creates the same way
            Some(_) => {}
        }
    }
    true
}

/// Is this descriptor of the tracee open on a file inside a read-only binding?
fn fd_is_readonly(ctx: &Ctx, pid: Pid, fd: i32) -> bool {
    use std::os::unix::ffi::OsStringExt;
    if fd < 0 {
        return false;
    }
    nix::fcntl::readlink(format!("/proc/{pid}/fd/{fd}").as_str())
        .ok()
        .and_then(|h| ctx.tr.to_guest(&h.into_vec()))
        .is_some_and(|g| ctx.tr.is_readonly(&g))
}

/// Host and guest paths of the directory a relative path is relative to.
fn base_dirs(ctx: &Ctx, pid: Pid, dirfd: i64) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::ffi::OsStringExt;
    let link = if dirfd == AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dirfd}")
    };
    let host = nix::fcntl::readlink(link.as_str()).ok()?.into_vec();
    let guest = if dirfd == AT_FDCWD {
        cwd_name(ctx, pid, &host)?
    } else {
        ctx.tr.to_guest(&host)?
    };
    Some((host, guest))
}

/// The guest name of the working directory whose host path is `host`: the name the guest
/// entered it by, while that still leads there, else the translator's choice.
fn cwd_name(ctx: &Ctx, pid: Pid, host: &[u8]) -> Option<Vec<u8>> {
    if let Some(c) = ctx.tracees.get(&pid).and_then(|t| t.cwd.as_ref()) {
        if ctx.tr.map(c) == host {
            return Some(c.clone());
        }
    }
    ctx.tr.to_guest(host)
}

/// The guest directory a relative path is relative to: the cwd, or the directory `dirfd` is
/// open on. Read from /proc (always current, whatever threads did) and mapped back to the guest.
fn base_dir(ctx: &Ctx, pid: Pid, dirfd: i64) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    let link = if dirfd == AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dirfd}")
    };
    let host = nix::fcntl::readlink(link.as_str()).ok()?.into_vec();
    if dirfd == AT_FDCWD {
        return cwd_name(ctx, pid, &host);
    }
    ctx.tr.to_guest(&host)
}

/// `/proc/self`, `/proc/thread-self` as the guest names them, for the magic-link checks.
fn proc_pid_of(g: &[u8], pid: Pid) -> Option<(Pid, Vec<u8>)> {
    let rest = g.strip_prefix(b"/proc/")?;
    let (first, tail) = match rest.iter().position(|b| *b == b'/') {
        Some(i) => (&rest[..i], rest[i..].to_vec()),
        None => (rest, Vec::new()),
    };
    let who = match first {
        b"self" | b"thread-self" => pid,
        d if !d.is_empty() && d.iter().all(u8::is_ascii_digit) => {
            Pid::from_raw(std::str::from_utf8(d).ok()?.parse().ok()?)
        }
        _ => return None,
    };
    Some((who, tail))
}

/// Resolve one path argument to a host path. `Ok(None)`: leave the call alone (empty path with
/// AT_EMPTY_PATH, NULL path, a dirfd that is not a directory we can name).
fn resolve_arg(
    ctx: &Ctx,
    pid: Pid,
    r: &Regs,
    a: &PathArg,
    allow_native: bool,
) -> Result<Option<crate::path::Resolved>, Errno> {
    let ptr = r.arg(a.path);
    if ptr == 0 {
        return Ok(None);
    }
    let raw = mem::read_cstr(pid, ptr, PATH_MAX)?;
    if raw.is_empty() {
        return Ok(None); // ENOENT or AT_EMPTY_PATH: the kernel decides, on the dirfd.
    }
    let follow = match a.follow {
        Follow::Yes => true,
        Follow::No | Follow::Create => false,
        Follow::UnlessNoFollowFlag(i) => r.arg(i) & AT_SYMLINK_NOFOLLOW == 0,
        Follow::IfFollowFlag(i) => r.arg(i) & AT_SYMLINK_FOLLOW != 0,
        Follow::Open(i) => {
            let fl = r.arg(i) as i32;
            fl & libc::O_NOFOLLOW == 0
                && fl & (libc::O_CREAT | libc::O_EXCL) != (libc::O_CREAT | libc::O_EXCL)
        }
    };
    let abs = if raw[0] == b'/' {
        raw
    } else {
        let dirfd = a.dirfd.map(|i| r.arg(i) as i32 as i64).unwrap_or(AT_FDCWD);
        let Some((host_base, mut base)) = base_dirs(ctx, pid, dirfd) else {
            return Ok(None);
        };
        if allow_native && native_is_same(ctx, &host_base, &base, &raw, follow) {
            return Ok(None);
        }
        if base != b"/" {
            base.push(b'/');
        }
        base.extend_from_slice(&raw);
        base
    };
    let mut abs = self_to_pid(&abs, pid, follow);
    // /proc/PID/exe of a guest process opens (or stats) the program, not the loader the kernel
    // actually runs (`md5sum /proc/self/exe`).
    if follow {
        if let Some((who, tail)) = proc_pid_of(&crate::path::normalize(&abs), pid) {
            if tail == b"/exe" {
                if let Some(e) = ctx.tracees.get(&who).and_then(|t| t.exe.clone()) {
                    abs = e;
                }
            }
        }
    }
    ctx.tr
        .resolve_with(
            &crate::path::RealFs::for_task(pid.as_raw()),
            &abs,
            follow,
            !matches!(a.follow, Follow::Create),
        )
        .map(Some)
}

/// `/proc/self` and `/proc/thread-self` name the *tracee*: resolved by the tracer they would
/// name the tracer itself, so they are replaced by the tracee's pid before resolution. A bare
/// `/proc/self` that is not followed (readlink, lstat) stays as it is: see `guest_link_text`.
fn self_to_pid(abs: &[u8], pid: Pid, follow: bool) -> Vec<u8> {
    let start = abs.iter().position(|b| *b != b'/').unwrap_or(abs.len());
    let trimmed = &abs[start..];
    for (name, repl) in [
        (&b"proc/self"[..], format!("/proc/{pid}")),
        (b"proc/thread-self", format!("/proc/{pid}/task/{pid}")),
    ] {
        if let Some(rest) = trimmed.strip_prefix(name) {
            if rest.is_empty() && !follow {
                return abs.to_vec();
            }
            if rest.is_empty() || rest[0] == b'/' {
                let mut v = repl.into_bytes();
                v.extend_from_slice(rest);
                return v;
            }
        }
    }
    abs.to_vec()
}

/// Entry of a traced call. Returns whether its exit must be seen.
pub fn on_enter(ctx: &mut Ctx, pid: Pid) -> bool {
    let Some(mut r) = getregs(pid) else {
        return false;
    };
    let orig = r;
    let n = r.nr();
    crate::path::forget_last_lstat();
    let skip = |ctx: &mut Ctx, mut r: Regs, ret: i64| {
        r.set_nr(-1);
        setregs(pid, &r);
        if let Some(t) = ctx.tracees.get_mut(&pid) {
            t.saved = Some(Saved {
                orig,
                action: ExitAction::Return(ret),
            });
        }
        true
    };
    // x32 calls would bypass the table (P2 sees them; P1's filter already refused them).
    if n & 0x4000_0000 != 0 {
        return skip(ctx, r, -(libc::ENOSYS as i64));
    }
    // argv[0] for loaders without --argv0 (see Tracee::argv0_patch): once the loader has
    // opened the program (it did if it asks for anything else after that open).
    if let Some(t) = ctx.tracees.get_mut(&pid) {
        if t.program_opened {
            if let Some((addr, len, want)) = t.argv0_patch.take() {
                if want.len() <= len {
                    let mut v = want;
                    v.resize(len + 1, 0);
                    let _ = mem::write(pid, addr, &v);
                }
            }
            t.program_opened = false;
        }
    }
    // Name the task after its program (see Tracee::pending_comm): this call becomes
    // prctl(PR_SET_NAME) and is restarted afterwards.
    if let Some(name) = ctx
        .tracees
        .get_mut(&pid)
        .and_then(|t| t.pending_comm.take())
    {
        let mut scratch = Scratch::below(r.sp());
        if let Ok(addr) = scratch.push_cstr(pid, &name) {
            r.set_nr(nr::PRCTL);
            r.set_arg(0, libc::PR_SET_NAME as u64);
            r.set_arg(1, addr);
            setregs(pid, &r);
            save(ctx, pid, orig, ExitAction::Reexec);
            return true;
        }
    }
    // The first process, between fork and its first execve, is still the tracer's own code
    // (chdir to the host directory, seccomp setup): only its execve is the guest's.
    if ctx.tracees.get(&pid).is_some_and(|t| t.preexec) && n != nr::EXECVE {
        return false;
    }
    // ptrace(2) inside the guest, and the waits of a guest ptracer (see ptrace_emu).
    if matches!(n, nr::PTRACE | nr::WAIT4 | nr::WAITID) {
        match crate::ptrace_emu::on_enter(ctx, pid, &r) {
            crate::ptrace_emu::Enter::Return(v) => return skip(ctx, r, v),
            crate::ptrace_emu::Enter::WaitExit => {
                save(ctx, pid, orig, ExitAction::EmuWait);
                return true;
            }
            crate::ptrace_emu::Enter::Pass => return false,
        }
    }
    if matches!(
        n,
        nr::RENAME
            | nr::RENAMEAT
            | nr::RENAMEAT2
            | nr::UNLINK
            | nr::UNLINKAT
            | nr::RMDIR
            | nr::SYMLINK
            | nr::SYMLINKAT
            | nr::MOUNT
            | nr::UMOUNT2
    ) {
        ctx.tr.invalidate();
    }
    if ctx.tr.has_readonly() {
        // Descriptor-based metadata changes (fchmod, futimens = utimensat(fd, NULL), fchmodat
        // with AT_EMPTY_PATH…): the file is named by the descriptor, not by a path.
        let fd_call = match n {
            nr::FCHMOD | nr::FCHOWN | nr::FSETXATTR | nr::FREMOVEXATTR => true,
            nr::UTIMENSAT | nr::FCHMODAT | nr::FCHMODAT2 | nr::FCHOWNAT => {
                r.arg(1) == 0
                    || mem::read(pid, r.arg(1), 1)
                        .map(|b| b[0] == 0)
                        .unwrap_or(false)
            }
            _ => false,
        };
        if fd_call && fd_is_readonly(ctx, pid, r.arg(0) as i32) {
            return skip(ctx, r, -(libc::EROFS as i64));
        }
    }
    let fake = ctx.cfg.fake_id;
    let mut action = ExitAction::Restore;
    match n {
        nr::EXECVE | nr::EXECVEAT => return enter_exec(ctx, pid, r),
        nr::IO_URING_SETUP => return skip(ctx, r, -(libc::ENOSYS as i64)),
        nr::CHROOT => {
            // chroot(2) to the guest's own root is a no-op a (fake) root may do (dpkg, apt
            // maintainer scripts); anything else needs privileges the guest does not have,
            // and an unprivileged guest is refused even `/` (CAP_SYS_CHROOT, chroot(2)).
            let privileged = match ctx.cfg.fake_id {
                Some((u, g)) => fake_root(ctx, pid, u, g),
                None => ctx.uid == 0,
            };
            // The guest's root under any name (`/`, `/tmp/..`): the same directory.
            let same_dir = |a: &[u8], b: &[u8]| {
                let st = |p: &[u8]| nix::sys::stat::stat(std::ffi::OsStr::from_bytes(p)).ok();
                matches!((st(a), st(b)), (Some(x), Some(y)) if (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino))
            };
            let v = match resolve_arg(ctx, pid, &r, &p(0, Follow::Yes), false) {
                Ok(Some((g, h)))
                    if privileged && (g == b"/" || same_dir(&h, &ctx.tr.map(b"/"))) =>
                {
                    0
                }
                Ok(Some(_)) => -(libc::EPERM as i64),
                Ok(None) => -(libc::ENOENT as i64),
                Err(e) => -(e as i64),
            };
            return skip(ctx, r, v);
        }
        nr::GETCWD => {
            save(
                ctx,
                pid,
                orig,
                ExitAction::Getcwd {
                    buf: r.arg(0),
                    size: r.arg(1),
                },
            );
            return true;
        }
        nr::UNAME if ctx.cfg.kernel_release.is_some() => {
            save(ctx, pid, orig, ExitAction::Uname { buf: r.arg(0) });
            return true;
        }
        // While the tracer keeps a serial guest on one CPU (Config::pin_cpu), the guest must
        // still see the CPU set it was given: programs size their thread pools from it.
        nr::SCHED_GETAFFINITY if ctx.pinned_mask.is_some() => {
            save(ctx, pid, orig, ExitAction::Affinity { buf: r.arg(2) });
            return true;
        }
        // A guest that sets its own affinity gets it: the pinning ends for every task first.
        nr::SCHED_SETAFFINITY if ctx.pinned_mask.is_some() => {
            crate::tracer::release_pin(ctx);
        }
        _ => {}
    }
    if let Some((uid, gid)) = fake {
        match n {
            nr::GETUID
            | nr::GETEUID
            | nr::GETGID
            | nr::GETEGID
            | nr::SETUID
            | nr::SETGID
            | nr::SETREUID
            | nr::SETREGID
            | nr::SETRESUID
            | nr::SETRESGID
            | nr::SETFSUID
            | nr::SETFSGID
            | nr::SETGROUPS => {
                let creds = ctx
                    .tracees
                    .get(&pid)
                    .and_then(|t| t.creds)
                    .unwrap_or(crate::tracer::Creds::new(uid, gid));
                let (v, new) = creds.apply(n, [r.arg(0), r.arg(1), r.arg(2)]);
                if let Some(t) = ctx.tracees.get_mut(&pid) {
                    t.creds = Some(new);
                }
                return skip(ctx, r, v);
            }
            // A fake root's chown succeeds without effect; any other fake id has no such
            // privilege, and the kernel answers for the real user (chown(2): EPERM).
            nr::FCHOWN if fake_root(ctx, pid, uid, gid) => return skip(ctx, r, 0),
            nr::GETRESUID | nr::GETRESGID => {
                let c = ctx
                    .tracees
                    .get(&pid)
                    .and_then(|t| t.creds)
                    .unwrap_or(crate::tracer::Creds::new(uid, gid));
                let ids = if n == nr::GETRESUID { c.uid } else { c.gid };
                save(
                    ctx,
                    pid,
                    orig,
                    ExitAction::ResIds {
                        ptrs: [r.arg(0), r.arg(1), r.arg(2)],
                        ids,
                    },
                );
                return true;
            }
            nr::CHOWN | nr::LCHOWN | nr::FCHOWNAT if fake_root(ctx, pid, uid, gid) => {
                // Succeed without effect, but only on a path that exists (as root would).
                if let Some(specs) = spec(n) {
                    match resolve_arg(ctx, pid, &r, &specs[0], false) {
                        Ok(Some((_, h))) => {
                            let exists =
                                nix::sys::stat::lstat(std::ffi::OsStr::from_bytes(&h)).is_ok();
                            return skip(ctx, r, if exists { 0 } else { -(libc::ENOENT as i64) });
                        }
                        Ok(None) => return skip(ctx, r, 0),
                        Err(e) => return skip(ctx, r, -(e as i64)),
                    }
                }
            }
            nr::MKNOD
            | nr::MKNODAT
            | nr::CAPSET
            | nr::SETXATTR
            | nr::LSETXATTR
            | nr::FSETXATTR
            | nr::CHMOD
            | nr::FCHMOD
            | nr::FCHMODAT
            | nr::FCHMODAT2
            | nr::SETHOSTNAME
            | nr::SETDOMAINNAME => {
                let creds = ctx
                    .tracees
                    .get(&pid)
                    .and_then(|t| t.creds)
                    .unwrap_or(crate::tracer::Creds::new(uid, gid));
                if creds.uid[1] == 0 {
                    action = ExitAction::EpermIsSuccess;
                }
            }
            nr::STAT | nr::LSTAT => {
                action = ExitAction::StatIds {
                    buf: r.arg(1),
                    statx: false,
                }
            }
            nr::NEWFSTATAT => {
                action = ExitAction::StatIds {
                    buf: r.arg(2),
                    statx: false,
                }
            }
            nr::STATX => {
                action = ExitAction::StatIds {
                    buf: r.arg(4),
                    statx: true,
                }
            }
            _ => {}
        }
    }
    if n == nr::OPENAT2 {
        if let Some(v) = openat2_scoped(ctx, pid, &r) {
            return match v {
                Ok(()) => false,
                Err(e) => skip(ctx, r, -(e as i64)),
            };
        }
    }
    let Some(specs) = spec(n) else {
        // Socket calls and anything else traced without a path rule.
        return enter_other(ctx, pid, r, orig, action);
    };
    if matches!(n, nr::READLINK | nr::READLINKAT) {
        let (bufi, sizei) = if n == nr::READLINK { (1, 2) } else { (2, 3) };
        action = ExitAction::Readlink {
            buf: r.arg(bufi),
            size: r.arg(sizei),
            exe_of: None,
        };
    }
    let mutating = is_mutating(n, &r);
    let mut scratch = Scratch::below(r.sp());
    let mut changed = false;
    for (i, a) in specs.iter().enumerate() {
        // rename/link: only the second path is created; the first is read (link) or removed (rename).
        let writes_here = mutating && !(matches!(n, nr::LINK | nr::LINKAT) && i == 0);
        let needs_full = matches!(n, nr::READLINK | nr::READLINKAT | nr::CHDIR)
            || (writes_here && ctx.tr.has_readonly());
        let allow_native = !needs_full;
        match resolve_arg(ctx, pid, &r, a, allow_native) {
            Ok(None) => {}
            Ok(Some((g, h))) => {
                if writes_here && ctx.tr.is_readonly(&g) {
                    return skip(ctx, r, -(libc::EROFS as i64));
                }
                if matches!(n, nr::OPEN | nr::OPENAT) {
                    if let Some(t) = ctx.tracees.get_mut(&pid) {
                        if t.argv0_patch.is_some() && t.exe.as_deref() == Some(&g[..]) {
                            t.program_opened = true;
                        }
                    }
                }
                if specs.len() == 1 && crate::emulate::is_emulated(n) {
                    let v = crate::emulate::run(ctx, pid, &r, n, &g, &h);
                    ctx.debug(|| format!("{pid} emulated {n} -> {v}"));
                    r.set_nr(-1);
                    r.set_ret(v);
                    setregs(pid, &r);
                    if ctx.p2 {
                        // P2 still gets the exit stop: keep the answer there too.
                        save(ctx, pid, orig, ExitAction::Return(v));
                        return true;
                    }
                    if let Some(t) = ctx.tracees.get_mut(&pid) {
                        t.saved = None;
                    }
                    return false;
                }
                if n == nr::CHDIR {
                    action = ExitAction::Chdir(g.clone());
                }
                if let ExitAction::Readlink { exe_of, .. } = &mut action {
                    if let Some((who, tail)) = proc_pid_of(&g, pid) {
                        if tail == b"/exe" {
                            *exe_of = Some(who);
                        }
                    }
                }
                let Ok(addr) = scratch.push_cstr(pid, &h) else {
                    return skip(ctx, r, -(libc::EFAULT as i64));
                };
                r.set_arg(a.path, addr);
                if let Some(d) = a.dirfd {
                    r.set_arg(d, AT_FDCWD as u64);
                }
                changed = true;
            }
            Err(e) => return skip(ctx, r, -(e as i64)),
        }
    }
    if changed {
        setregs(pid, &r);
    }
    let need_exit = changed || !matches!(action, ExitAction::Restore);
    if need_exit {
        save(ctx, pid, orig, action);
    }
    ctx.debug(|| format!("{pid} enter {n} changed={changed}"));
    need_exit
}

/// The text readlink returns to the guest: /proc magic links name host paths, turned into
/// guest paths; `/proc/PID/exe` of a guest process names the program it runs (not the loader
/// that runs it); a guest symlink's own text is the guest's and stays as it is.
pub fn guest_link_text(ctx: &Ctx, pid: Pid, guest: &[u8], text: Vec<u8>) -> Vec<u8> {
    // A symlink inside a bound host directory names host paths: show where they are in the
    // guest (`-b /tmp:/ced` makes `/tmp/x` read as `/ced/x`), as resolution does.
    if text.first() == Some(&b'/') && !guest.starts_with(b"/proc/") {
        if let Some(g) = ctx.tr.within_same_binding(&ctx.tr.map(guest), &text) {
            return g;
        }
    }
    if let Some((who, tail)) = proc_pid_of(guest, pid) {
        if tail == b"/exe" {
            if let Some(e) = ctx.tracees.get(&who).and_then(|t| t.exe.clone()) {
                return e;
            }
        }
        if text.first() == Some(&b'/') {
            if let Some(g) = ctx.tr.to_guest(&text) {
                return g;
            }
        }
    }
    text
}

/// openat2(2)'s `resolve` flags (struct open_how: flags, mode, resolve; 24 bytes).
/// RESOLVE_IN_ROOT/RESOLVE_BENEATH scope the lookup to the dirfd, which the kernel does right
/// on the host directory itself: the call runs untouched (Some(Ok)). RESOLVE_NO_SYMLINKS and
/// RESOLVE_NO_MAGICLINKS would see no link in our already-resolved host path: we check them on
/// the guest path first (Some(Err(ELOOP))). None: translate as usual.
fn openat2_scoped(ctx: &Ctx, pid: Pid, r: &Regs) -> Option<Result<(), Errno>> {
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    const RESOLVE_BENEATH: u64 = 0x08;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    if r.arg(3) < 24 {
        return None;
    }
    let how = mem::read(pid, r.arg(2), 24).ok()?;
    let resolve = u64::from_ne_bytes(how[16..24].try_into().expect("8 bytes"));
    if resolve & (RESOLVE_IN_ROOT | RESOLVE_BENEATH) != 0 {
        return Some(Ok(()));
    }
    if resolve & (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) == 0 {
        return None;
    }
    let raw = mem::read_cstr(pid, r.arg(1), PATH_MAX).ok()?;
    let abs = if raw.first() == Some(&b'/') {
        raw
    } else {
        let (_, mut base) = base_dirs(ctx, pid, r.arg(0) as i32 as i64)?;
        base.push(b'/');
        base.extend_from_slice(&raw);
        base
    };
    let guest = crate::path::normalize(&abs);
    if resolve & RESOLVE_NO_SYMLINKS != 0 {
        // Any symlink on the way (the last component included) is refused.
        let fs = crate::path::RealFs::for_task(pid.as_raw());
        let mut prefix = Vec::new();
        for c in guest.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            prefix.push(b'/');
            prefix.extend_from_slice(c);
            if fs.kind(&ctx.tr.map(&prefix)) == Some(crate::path::Kind::Symlink) {
                return Some(Err(Errno::ELOOP));
            }
        }
    }
    if resolve & RESOLVE_NO_MAGICLINKS != 0 {
        let g = self_to_pid(&guest, pid, true);
        if let Some((_, tail)) = proc_pid_of(&g, pid) {
            let first = tail
                .split(|b| *b == b'/')
                .find(|c| !c.is_empty())
                .unwrap_or(b"");
            let t: &[u8] = if tail.starts_with(b"/task/") {
                b""
            } else {
                first
            };
            if matches!(t, b"exe" | b"cwd" | b"root" | b"fd" | b"map_files") && tail != b"/fd" {
                return Some(Err(Errno::ELOOP));
            }
        }
    }
    None
}

/// Does the guest process hold a fake root's effective id (`-0`, or `-i` then setuid(0))?
fn fake_root(ctx: &Ctx, pid: Pid, uid: u32, gid: u32) -> bool {
    ctx.tracees
        .get(&pid)
        .and_then(|t| t.creds)
        .unwrap_or(crate::tracer::Creds::new(uid, gid))
        .uid[1]
        == 0
}

/// Would this call change the file system at its path arguments? (For read-only bindings.)
fn is_mutating(n: i64, r: &Regs) -> bool {
    let open_writes = |flags: u64| {
        let f = flags as i32;
        f & libc::O_ACCMODE != libc::O_RDONLY || f & (libc::O_CREAT | libc::O_TRUNC) != 0
    };
    match n {
        nr::OPEN => open_writes(r.arg(1)),
        nr::OPENAT => open_writes(r.arg(2)),
        nr::ACCESS | nr::FACCESSAT | nr::FACCESSAT2 => {
            let mode = if n == nr::ACCESS { r.arg(1) } else { r.arg(2) };
            mode & libc::W_OK as u64 != 0
        }
        nr::CREAT
        | nr::TRUNCATE
        | nr::RENAME
        | nr::MKDIR
        | nr::RMDIR
        | nr::LINK
        | nr::UNLINK
        | nr::SYMLINK
        | nr::CHMOD
        | nr::CHOWN
        | nr::LCHOWN
        | nr::UTIME
        | nr::UTIMES
        | nr::MKNOD
        | nr::SETXATTR
        | nr::LSETXATTR
        | nr::REMOVEXATTR
        | nr::LREMOVEXATTR
        | nr::MKDIRAT
        | nr::MKNODAT
        | nr::FCHOWNAT
        | nr::FUTIMESAT
        | nr::UNLINKAT
        | nr::RENAMEAT
        | nr::LINKAT
        | nr::SYMLINKAT
        | nr::FCHMODAT
        | nr::UTIMENSAT
        | nr::RENAMEAT2
        | nr::FCHMODAT2 => true,
        _ => false,
    }
}

fn save(ctx: &mut Ctx, pid: Pid, orig: Regs, action: ExitAction) {
    if let Some(t) = ctx.tracees.get_mut(&pid) {
        t.saved = Some(Saved { orig, action });
    }
}

/// Calls traced for reasons other than a path argument (AF_UNIX socket addresses, …).
fn enter_other(ctx: &mut Ctx, pid: Pid, r: Regs, orig: Regs, action: ExitAction) -> bool {
    use crate::sockets;
    let n = r.nr();
    let name_out = match n {
        nr::GETSOCKNAME | nr::GETPEERNAME | nr::ACCEPT | nr::ACCEPT4 => {
            Some((r.arg(1), r.arg(2), sockets::room(pid, r.arg(2))))
        }
        nr::RECVFROM => Some((r.arg(4), r.arg(5), sockets::room(pid, r.arg(5)))),
        nr::RECVMSG => sockets::recvmsg_name(pid, r.arg(1)),
        _ => None,
    };
    if let Some((addr, lenp, cap)) = name_out {
        if addr != 0 && lenp != 0 && cap > 0 {
            save(
                ctx,
                pid,
                orig,
                ExitAction::SockName {
                    addr,
                    lenp,
                    cap,
                    peer: n != nr::GETSOCKNAME,
                },
            );
            return true;
        }
        return save_unless_restore(ctx, pid, orig, action);
    }
    if matches!(n, nr::BIND | nr::CONNECT | nr::SENDTO | nr::SENDMSG) {
        let mut r = r;
        let mut scratch = Scratch::below(r.sp());
        let mut auto: Option<(i32, u16)> = None;
        let changed = if n == nr::SENDMSG {
            sockets::sendmsg_header(ctx, pid, r.arg(1), &mut scratch)
                .map(|a| a.map(|a| r.set_arg(1, a)))
        } else {
            let (ai, li) = if n == nr::SENDTO { (4, 5) } else { (1, 2) };
            let (addr, len) = (r.arg(ai), r.arg(li) as usize);
            let maps = ctx.port_maps();
            let netcoop = ctx.cfg.netcoop;
            sockets::to_host(ctx, pid, addr, len, n != nr::BIND)
                .map(|new| {
                    // Internet addresses on mapped ports (net.rs).
                    new.or_else(|| {
                        if (maps.is_empty() && !netcoop) || addr == 0 || !(16..=128).contains(&len)
                        {
                            return None;
                        }
                        let raw = mem::read(pid, addr, len).ok()?;
                        if n != nr::BIND {
                            return crate::net::on_connect(&maps, &raw);
                        }
                        crate::net::on_bind(&maps, &raw).or_else(|| {
                            // Network cooperation (-n): any other port is bound wherever the
                            // kernel finds one free, and remembered (see ExitAction::BindAuto).
                            let (anyport, guest) =
                                crate::net::any_port(&raw).filter(|_| netcoop)?;
                            auto = Some((r.arg(0) as i32, guest));
                            Some(anyport)
                        })
                    })
                })
                .and_then(|new| match new {
                    Some(new) => {
                        let a = scratch.push(pid, &new)?;
                        r.set_arg(ai, a);
                        r.set_arg(li, new.len() as u64);
                        Ok(Some(()))
                    }
                    None => Ok(None),
                })
        };
        match changed {
            Ok(Some(())) => {
                setregs(pid, &r);
                let action = match auto {
                    Some((fd, guest)) => ExitAction::BindAuto { fd, guest },
                    None => action,
                };
                save(ctx, pid, orig, action);
                return true;
            }
            Ok(None) => {}
            Err(e) => {
                // What the kernel would have said resolving the guest's path itself.
                r.set_nr(-1);
                setregs(pid, &r);
                save(ctx, pid, orig, ExitAction::Return(-(e as i64)));
                return true;
            }
        }
    }
    save_unless_restore(ctx, pid, orig, action)
}

/// Ask for the exit stop only when something must be done there.
fn save_unless_restore(ctx: &mut Ctx, pid: Pid, orig: Regs, action: ExitAction) -> bool {
    if !matches!(action, ExitAction::Restore) {
        save(ctx, pid, orig, action);
        return true;
    }
    false
}

/// The guest's working directory (for relative names outside the path table).
pub fn guest_cwd(ctx: &Ctx, pid: Pid) -> Option<Vec<u8>> {
    base_dir(ctx, pid, AT_FDCWD)
}

/// A NULL-terminated array of strings (execve's argv or envp), bounded like the kernel:
/// MAX_ARG_STRLEN per string, and here 2 MiB in all (`total`, shared by argv and envp).
fn read_strings(pid: Pid, mut ap: u64, total: &mut usize) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if ap == 0 {
        return Ok(out);
    }
    loop {
        let s = mem::read_u64(pid, ap).map_err(|_| Errno::EFAULT)?;
        if s == 0 {
            return Ok(out);
        }
        let a = mem::read_cstr(pid, s, 128 * 1024).map_err(|_| Errno::E2BIG)?;
        *total += a.len() + 1;
        if *total > 2 << 20 || out.len() > 0x7fff_ffff / 8 {
            return Err(Errno::E2BIG);
        }
        out.push(a);
        ap += 8;
    }
}

fn enter_exec(ctx: &mut Ctx, pid: Pid, mut r: Regs) -> bool {
    let orig = r;
    let n = r.nr();
    let (path_i, argv_i) = if n == nr::EXECVE { (0, 1) } else { (1, 2) };
    let fail = |ctx: &mut Ctx, mut r: Regs, e: Errno| {
        r.set_nr(-1);
        setregs(pid, &r);
        save(ctx, pid, orig, ExitAction::Return(-(e as i64)));
        true
    };
    let raw = match mem::read_cstr(pid, r.arg(path_i), PATH_MAX) {
        Ok(v) => v,
        Err(e) => return fail(ctx, r, e),
    };
    if n == nr::EXECVEAT && raw.is_empty() {
        // fexecve(3): AT_EMPTY_PATH on an fd we cannot re-plan; let the kernel do it.
        return false;
    }
    let mut abs = if raw.first() == Some(&b'/') {
        raw.clone()
    } else {
        let dirfd = if n == nr::EXECVEAT {
            r.arg(0) as i32 as i64
        } else {
            AT_FDCWD
        };
        match base_dir(ctx, pid, dirfd) {
            Some(mut b) => {
                b.push(b'/');
                b.extend_from_slice(&raw);
                b
            }
            None => return fail(ctx, r, Errno::ENOENT),
        }
    };
    abs = self_to_pid(&abs, pid, true);
    // Re-exec of oneself through /proc/self/exe: the program, not the loader that runs it.
    if let Some((who, tail)) = proc_pid_of(&crate::path::normalize(&abs), pid) {
        if tail == b"/exe" {
            if let Some(e) = ctx.tracees.get(&who).and_then(|t| t.exe.clone()) {
                abs = e;
            }
        }
    }
    let mut total = 0usize;
    let argv = match read_strings(pid, r.arg(argv_i), &mut total) {
        Ok(v) => v,
        Err(e) => return fail(ctx, r, e),
    };
    // The environment is read (and rewritten) only for an emulator (`-q`): see exec::plan_qemu.
    let envp_i = argv_i + 1;
    let mut env = None;
    if ctx.cfg.qemu.is_some() {
        match read_strings(pid, r.arg(envp_i), &mut total) {
            Ok(v) => {
                let memo = ctx
                    .tracees
                    .get(&pid)
                    .map(|t| t.ldso.clone())
                    .unwrap_or_default();
                env = Some(exec::EnvState { env: v, memo });
            }
            Err(e) => return fail(ctx, r, e),
        }
    }
    let cwd = base_dir(ctx, pid, AT_FDCWD).unwrap_or_else(|| b"/".to_vec());
    let plan = exec::plan(ctx, &abs, &raw, &cwd, argv, &mut env);
    if let (Some(st), Some(t)) = (env, ctx.tracees.get_mut(&pid)) {
        t.ldso = st.memo;
    }
    let plan = match plan {
        Ok(p) => p,
        Err(e) => return fail(ctx, r, e),
    };
    ctx.debug(|| {
        format!(
            "{pid} exec {} as {} {:?}",
            String::from_utf8_lossy(&abs),
            String::from_utf8_lossy(&plan.host_path),
            plan.argv
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        )
    });
    let mut scratch = Scratch::below(r.sp());
    let mut ptrs = Vec::with_capacity(plan.argv.len() + 1);
    for a in &plan.argv {
        match scratch.push_cstr(pid, a) {
            Ok(p) => ptrs.push(p),
            Err(e) => return fail(ctx, r, e),
        }
    }
    ptrs.push(0);
    let bytes: Vec<u8> = ptrs.iter().flat_map(|p| p.to_ne_bytes()).collect();
    let (Ok(argv_addr), Ok(path_addr)) = (
        scratch.push(pid, &bytes),
        scratch.push_cstr(pid, &plan.host_path),
    ) else {
        return fail(ctx, r, Errno::EFAULT);
    };
    if let Some(env) = &plan.env {
        let mut eptrs = Vec::with_capacity(env.len() + 1);
        for e in env {
            match scratch.push_cstr(pid, e) {
                Ok(p) => eptrs.push(p),
                Err(e) => return fail(ctx, r, e),
            }
        }
        eptrs.push(0);
        let bytes: Vec<u8> = eptrs.iter().flat_map(|p| p.to_ne_bytes()).collect();
        match scratch.push(pid, &bytes) {
            Ok(a) => r.set_arg(envp_i, a),
            Err(e) => return fail(ctx, r, e),
        }
    }
    if n == nr::EXECVEAT {
        r.set_arg(0, AT_FDCWD as u64);
        r.set_arg(4, r.arg(4) & !AT_EMPTY_PATH);
    }
    r.set_arg(path_i, path_addr);
    r.set_arg(argv_i, argv_addr);
    setregs(pid, &r);
    if let Some(t) = ctx.tracees.get_mut(&pid) {
        // The kernel names the task after the last component of the path given to execve(2),
        // cut to TASK_COMM_LEN - 1 bytes (a script keeps its own name, not its interpreter's).
        let comm = |p: &[u8]| {
            let base = p.rsplit(|b| *b == b'/').next().unwrap_or(p);
            base[..base.len().min(15)].to_vec()
        };
        let (want, got) = (comm(&raw), comm(&plan.host_path));
        t.exec_comm = (want != got).then_some(want);
        t.argv0_wanted = plan.argv0_patch;
        t.pending_exe = Some(plan.program);
        t.saved = Some(Saved {
            orig,
            action: ExitAction::Restore,
        });
    }
    true
}

/// Exit of a call whose entry we changed or whose result we rewrite.
pub fn on_exit(ctx: &mut Ctx, pid: Pid) {
    let Some(saved) = ctx.tracees.get_mut(&pid).and_then(|t| t.saved.take()) else {
        return;
    };
    let Some(cur) = getregs(pid) else { return };
    let ret = cur.ret();
    // Arguments back as the guest passed them (the syscall ABI preserves them), result kept.
    let mut out = saved.orig;
    out.set_ret(ret);
    match saved.action {
        ExitAction::Exec => return, // a new program: its registers are its own
        ExitAction::Reexec => {
            // Back to the guest's call, one syscall instruction earlier (`syscall`,
            // `sysenter` and `int $0x80` are all 2 bytes), with its number in rax again.
            let mut again = saved.orig;
            again.restart_syscall();
            setregs(pid, &again);
            return;
        }
        ExitAction::Restore => {}
        ExitAction::EmuWait => {
            crate::ptrace_emu::on_wait_exit(ctx, pid, saved.orig, ret);
            return;
        }
        ExitAction::Chdir(g) => {
            if ret == 0 {
                if let Some(t) = ctx.tracees.get_mut(&pid) {
                    t.cwd = Some(g);
                }
            }
        }
        ExitAction::BindAuto { fd, guest } => {
            if ret == 0 {
                if let Some(host) = crate::sys::socket_port(pid.as_raw(), fd) {
                    ctx.auto_ports.retain(|m| m.guest != guest);
                    ctx.auto_ports.push(crate::net::PortMap { guest, host });
                    ctx.debug(|| format!("{pid} netcoop: guest port {guest} is host port {host}"));
                }
            }
        }
        ExitAction::EpermIsSuccess => {
            if ret == -(libc::EPERM as i64) {
                out.set_ret(0);
            }
        }
        ExitAction::Return(v) => out.set_ret(v),
        ExitAction::Getcwd { buf, size } => {
            if ret > 0 {
                if let Ok(host) = mem::read_cstr(pid, buf, PATH_MAX) {
                    let g = cwd_name(ctx, pid, &host).unwrap_or(host);
                    if g.len() + 1 > size as usize {
                        out.set_ret(-(libc::ERANGE as i64));
                    } else {
                        let mut v = g.clone();
                        v.push(0);
                        let _ = mem::write(pid, buf, &v);
                        out.set_ret(v.len() as i64);
                    }
                }
            }
        }
        ExitAction::Readlink { buf, size, exe_of } => {
            if ret > 0 {
                let text = if let Some(e) = exe_of
                    .and_then(|w| ctx.tracees.get(&w))
                    .and_then(|t| t.exe.clone())
                {
                    Some(e)
                } else {
                    mem::read(pid, buf, ret as usize)
                        .ok()
                        .filter(|t| t.first() == Some(&b'/'))
                        .and_then(|t| {
                            // Only magic links (/proc) hand out host paths; a guest symlink's text
                            // is the guest's own and stays as it is.
                            let g = ctx.tr.to_guest(&t)?;
                            (g != t).then_some(g)
                        })
                };
                if let Some(t) = text {
                    let n = t.len().min(size as usize);
                    let _ = mem::write(pid, buf, &t[..n]);
                    out.set_ret(n as i64);
                }
            }
        }
        ExitAction::StatIds { buf, statx } => {
            if ret == 0 {
                if let Some((fu, fg)) = ctx.cfg.fake_id {
                    let (uo, go) = if statx {
                        (crate::arch::STATX_UID_OFFSET, crate::arch::STATX_GID_OFFSET)
                    } else {
                        (crate::arch::STAT_UID_OFFSET, crate::arch::STAT_GID_OFFSET)
                    };
                    let rd = |o: u64| {
                        mem::read(pid, buf + o, 4)
                            .ok()
                            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    };
                    if rd(uo) == Some(ctx.uid) {
                        let _ = mem::write(pid, buf + uo, &fu.to_ne_bytes());
                    }
                    if rd(go) == Some(ctx.gid) {
                        let _ = mem::write(pid, buf + go, &fg.to_ne_bytes());
                    }
                }
            }
        }
        ExitAction::SockName {
            addr,
            lenp,
            cap,
            peer,
        } => {
            // A mapped internet port: the guest's own port number (net.rs).
            let maps = ctx.port_maps();
            if ret >= 0 && addr != 0 && lenp != 0 && !maps.is_empty() {
                if let Ok(lb) = mem::read(pid, lenp, 4) {
                    let len = u32::from_ne_bytes(lb.try_into().expect("4 bytes")) as usize;
                    if let Ok(raw) = mem::read(pid, addr, len.min(28)) {
                        if let Some(g) = crate::net::on_name(&maps, &raw, peer) {
                            let _ = mem::write(pid, addr, &g);
                        }
                    }
                }
            }
            // An AF_UNIX name is a host path: give the guest its own path back.
            if ret >= 0 {
                crate::sockets::exit_name(ctx, pid, addr, lenp, cap);
            }
        }
        ExitAction::ResIds { ptrs, ids } => {
            if ret == 0 {
                for (p, id) in ptrs.iter().zip(ids) {
                    let _ = mem::write(pid, *p, &id.to_ne_bytes());
                }
            }
        }
        ExitAction::Affinity { buf } => {
            // sched_getaffinity(2) returns the size of the kernel's mask it copied.
            if ret > 0 {
                if let Some(m) = &ctx.pinned_mask {
                    let k = (ret as usize).min(m.len());
                    let _ = mem::write(pid, buf, &m[..k]);
                }
            }
        }
        ExitAction::Uname { buf } => {
            if ret == 0 {
                if let Some(rel) = &ctx.cfg.kernel_release {
                    // struct utsname: 6 fields of 65 bytes; release is the third.
                    let mut field = [0u8; 65];
                    let b = rel.as_bytes();
                    let n = b.len().min(64);
                    field[..n].copy_from_slice(&b[..n]);
                    let _ = mem::write(pid, buf + 65 * 2, &field);
                }
            }
        }
    }
    // The first program could not be started (what the caller reports, as execvp's caller
    // would: PRoot prints it).
    if ctx.start_error.is_none()
        && out.ret() < 0
        && matches!(saved.orig.nr(), nr::EXECVE | nr::EXECVEAT)
        && ctx.tracees.get(&pid).is_some_and(|t| t.preexec)
    {
        let i = if saved.orig.nr() == nr::EXECVE { 0 } else { 1 };
        let path = mem::read_cstr(pid, saved.orig.arg(i), PATH_MAX).unwrap_or_default();
        ctx.start_error = Some((path, Errno::from_raw(-out.ret() as i32)));
    }
    setregs(pid, &out);
}
