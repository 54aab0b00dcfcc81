//! The P1 filter: SECCOMP_RET_TRACE for the system calls the tracer must see, ALLOW for the rest,
//! so untranslated calls (read, write, mmap, futex, getppid…) run at native speed.

use crate::arch::nr;
use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// System calls that take a path or whose result names one, plus exec.
pub const PATH_CALLS: &[i64] = &[
    nr::OPEN,
    nr::STAT,
    nr::LSTAT,
    nr::ACCESS,
    nr::EXECVE,
    nr::TRUNCATE,
    nr::GETCWD,
    nr::CHDIR,
    nr::RENAME,
    nr::MKDIR,
    nr::RMDIR,
    nr::CREAT,
    nr::LINK,
    nr::UNLINK,
    nr::SYMLINK,
    nr::READLINK,
    nr::CHMOD,
    nr::CHOWN,
    nr::LCHOWN,
    nr::UTIME,
    nr::MKNOD,
    nr::USELIB,
    nr::STATFS,
    nr::CHROOT,
    nr::MOUNT,
    nr::UMOUNT2,
    nr::SWAPON,
    nr::SWAPOFF,
    nr::ACCT,
    nr::SETXATTR,
    nr::LSETXATTR,
    nr::GETXATTR,
    nr::LGETXATTR,
    nr::LISTXATTR,
    nr::LLISTXATTR,
    nr::REMOVEXATTR,
    nr::LREMOVEXATTR,
    nr::UTIMES,
    nr::INOTIFY_ADD_WATCH,
    nr::OPENAT,
    nr::MKDIRAT,
    nr::MKNODAT,
    nr::FCHOWNAT,
    nr::FUTIMESAT,
    nr::NEWFSTATAT,
    nr::UNLINKAT,
    nr::RENAMEAT,
    nr::LINKAT,
    nr::SYMLINKAT,
    nr::READLINKAT,
    nr::FCHMODAT,
    nr::FACCESSAT,
    nr::UTIMENSAT,
    nr::FANOTIFY_MARK,
    nr::NAME_TO_HANDLE_AT,
    nr::RENAMEAT2,
    nr::EXECVEAT,
    nr::STATX,
    nr::IO_URING_SETUP,
    nr::OPEN_TREE,
    nr::MOVE_MOUNT,
    nr::FSOPEN,
    nr::FSPICK,
    nr::OPENAT2,
    nr::FACCESSAT2,
    nr::MOUNT_SETATTR,
    nr::FCHMODAT2,
    nr::BIND,
    nr::CONNECT,
    nr::GETSOCKNAME,
    nr::GETPEERNAME,
];

/// Identity calls, traced only with a fake id (`-0`, `-i`).
pub const ID_CALLS: &[i64] = &[
    nr::GETUID,
    nr::GETGID,
    nr::GETEUID,
    nr::GETEGID,
    nr::GETRESUID,
    nr::GETRESGID,
    nr::SETUID,
    nr::SETGID,
    nr::SETREUID,
    nr::SETREGID,
    nr::SETRESUID,
    nr::SETRESGID,
    nr::SETFSUID,
    nr::SETFSGID,
    nr::SETGROUPS,
    nr::FCHOWN,
];

/// Build the BPF program. x32-ABI calls (number with bit 30 set) are refused with ENOSYS: they
/// would otherwise bypass the table, whose entries are x86_64 numbers. Other architectures
/// (i386 via int 0x80) hit seccompiler's arch check, which kills the process: never an escape.
pub fn build(
    fake_ids: bool,
    fake_uname: bool,
    readonly: bool,
) -> Result<Vec<libc::sock_filter>, String> {
    let mut rules = BTreeMap::new();
    let mut calls: Vec<i64> = PATH_CALLS.to_vec();
    if fake_ids {
        calls.extend_from_slice(ID_CALLS);
    }
    if fake_uname {
        calls.push(nr::UNAME);
    }
    if readonly {
        // Metadata changes through a descriptor, refused inside read-only bindings.
        calls.extend_from_slice(&[nr::FCHMOD, nr::FCHOWN, nr::FSETXATTR, nr::FREMOVEXATTR]);
    }
    calls.sort_unstable();
    calls.dedup();
    for c in calls {
        rules.insert(c, Vec::new());
    }
    // sendto(2) names a destination only in datagram use (dest_addr != NULL): trace just those,
    // so ordinary socket writes never stop. (sendmsg's address is inside a struct BPF cannot
    // read: not traced; AF_UNIX datagrams sent with sendmsg to a path are not translated.)
    let cond = seccompiler::SeccompCondition::new(
        4,
        seccompiler::SeccompCmpArgLen::Qword,
        seccompiler::SeccompCmpOp::Ne,
        0,
    )
    .map_err(|e| e.to_string())?;
    rules.insert(
        nr::SENDTO,
        vec![seccompiler::SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?],
    );
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Trace(0), arch)
        .map_err(|e| e.to_string())?;
    let prog: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    let mut out: Vec<libc::sock_filter> = prog
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    #[cfg(target_arch = "x86_64")]
    {
        // After the 3-instruction arch check: load nr; if (nr & X32_BIT) return ERRNO(ENOSYS).
        const LD_W_ABS: u16 = 0x20;
        const JSET_K: u16 = 0x45;
        const RET_K: u16 = 0x06;
        let x32 = [
            libc::sock_filter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 0,
            },
            libc::sock_filter {
                code: JSET_K,
                jt: 0,
                jf: 1,
                k: 0x4000_0000,
            },
            libc::sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            },
        ];
        out.splice(3..3, x32);
    }
    if out.len() > 4096 {
        return Err("seccomp filter too long".into());
    }
    Ok(out)
}
