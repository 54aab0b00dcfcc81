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
    // Privileged operations a fake root is granted when the kernel refuses them with EPERM.
    nr::CAPSET,
    nr::FSETXATTR,
    nr::FCHMOD,
    nr::SETHOSTNAME,
    nr::SETDOMAINNAME,
];

/// Build the BPF program. x32-ABI calls (number with bit 30 set) are refused with ENOSYS: they
/// would otherwise bypass the table, whose entries are x86_64 numbers. Other architectures
/// (i386 via int 0x80) hit seccompiler's arch check, which kills the process: never an escape.
/// Calls traced only when the pointer argument at the given index is not NULL.
const ADDRESS_CALLS: &[(i64, u8)] = &[
    (nr::SENDTO, 4),
    (nr::RECVFROM, 4),
    (nr::ACCEPT, 1),
    (nr::ACCEPT4, 1),
];

/// `unix_msgs`: trace sendmsg/recvmsg (AF_UNIX paths differ between guest and host).
pub fn build(
    fake_ids: bool,
    fake_uname: bool,
    readonly: bool,
    unix_msgs: bool,
    affinity: bool,
) -> Result<Vec<libc::sock_filter>, String> {
    let mut rules = BTreeMap::new();
    let mut calls: Vec<i64> = PATH_CALLS.to_vec();
    if fake_ids {
        calls.extend_from_slice(ID_CALLS);
    }
    if fake_uname {
        calls.push(nr::UNAME);
    }
    // ptrace(2) inside the guest is emulated (ptrace_emu); nothing calls it on a hot path.
    // wait4/waitid are deliberately absent: only a guest ptracer's waits matter, and that
    // task is resumed with PTRACE_SYSCALL instead.
    calls.push(nr::PTRACE);
    if affinity {
        // CPU pinning (Config::pin_cpu) is hidden from the guest: rare calls.
        calls.extend_from_slice(&[nr::SCHED_GETAFFINITY, nr::SCHED_SETAFFINITY]);
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
    // Socket calls that carry an AF_UNIX address only when a pointer argument is set: sendto's
    // destination, recvfrom's and accept's room for the peer's address. Traced just then, so
    // ordinary socket reads and writes never stop (see sockets.rs). The peer addresses need no
    // translation back when paths are the same on both sides.
    let address_calls: Vec<(i64, u8)> = ADDRESS_CALLS
        .iter()
        .copied()
        .filter(|(c, _)| unix_msgs || *c == nr::SENDTO)
        .collect();
    for &(call, arg) in &address_calls {
        let cond = seccompiler::SeccompCondition::new(
            arg,
            seccompiler::SeccompCmpArgLen::Qword,
            seccompiler::SeccompCmpOp::Ne,
            0,
        )
        .map_err(|e| e.to_string())?;
        rules.insert(
            call,
            vec![seccompiler::SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?],
        );
    }
    // sendmsg/recvmsg keep the address inside a struct msghdr, out of the filter's reach:
    // traced whole, and only when paths are translated at all.
    if unix_msgs {
        rules.insert(nr::SENDMSG, Vec::new());
        rules.insert(nr::RECVMSG, Vec::new());
    }
    #[cfg(target_arch = "x86_64")]
    {
        let mut traced: Vec<u32> = rules
            .keys()
            .filter(|k| !address_calls.iter().any(|(c, _)| c == *k))
            .map(|k| *k as u32)
            .collect();
        traced.sort_unstable();
        if let Some(p) = bsearch_program(&traced, &address_calls) {
            return Ok(p);
        }
    }
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
        const JEQ_K: u16 = 0x15;
        const JSET_K: u16 = 0x45;
        const RET_K: u16 = 0x06;
        let x32 = [
            libc::sock_filter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 0,
            },
            // -1: a call skipped at a syscall-enter stop (see bsearch_program).
            libc::sock_filter {
                code: JEQ_K,
                jt: 0,
                jf: 1,
                k: u32::MAX,
            },
            libc::sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
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

// Classic BPF (linux/filter.h, linux/seccomp.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Our own filter layout: a binary search over the sorted traced numbers, so a call the filter
/// lets through costs about log2(n) comparisons instead of one per rule (seccompiler's linear
/// list costs ~20 ns on every untraced call; `getppid` in a loop shows it). seccomp_data:
/// nr at offset 0, arch at 4, args[i] at 16 + 8i (the low word first on little-endian).
/// Returns None if a jump would not fit in BPF's 8-bit offsets (then seccompiler's is used).
fn bsearch_program(traced: &[u32], address_calls: &[(i64, u8)]) -> Option<Vec<libc::sock_filter>> {
    let trace = libc::SECCOMP_RET_TRACE;
    let allow = libc::SECCOMP_RET_ALLOW;
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, 4),
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, 0),
        // Number -1: a call the tracer skipped at a syscall-enter stop (a task resumed with
        // PTRACE_SYSCALL, see ptrace_emu), whose result it already put in rax. Linux >= 4.8
        // runs the filter after that stop, on the new number: let it through untouched
        // (ENOSYS would overwrite the result).
        ins(JEQ_K, 0, 1, u32::MAX),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        // x32 calls (bit 30) would bypass the table.
        ins(JSET_K, 0, 1, 0x4000_0000),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
    ];
    // A call traced only with a pointer argument set (args[i] != 0, either word).
    for &(call, arg) in address_calls {
        let lo = 16 + 8 * arg as u32;
        p.extend([
            ins(JEQ_K, 0, 6, call as u32),
            ins(LD_W_ABS, 0, 0, lo),
            ins(JEQ_K, 0, 2, 0),
            ins(LD_W_ABS, 0, 0, lo + 4),
            ins(JEQ_K, 1, 0, 0),
            ins(RET_K, 0, 0, trace),
            ins(RET_K, 0, 0, allow),
        ]);
    }
    // The tree only compares the number again: reload it (a pointer check changed A).
    p.push(ins(LD_W_ABS, 0, 0, 0));
    let body = tree(traced, trace, allow)?;
    p.extend(body);
    Some(p)
}

/// Code deciding TRACE/ALLOW for the number in A, for the sorted set `s`.
fn tree(s: &[u32], trace: u32, allow: u32) -> Option<Vec<libc::sock_filter>> {
    if s.len() <= 4 {
        // Leaf: a JEQ per value, each jumping to the TRACE return after the ALLOW one.
        let mut v = Vec::new();
        for (i, k) in s.iter().enumerate() {
            let to_trace = (s.len() - i) as u8; // skip the rest of the JEQs and RET ALLOW
            v.push(ins(JEQ_K, to_trace, 0, *k));
        }
        v.push(ins(RET_K, 0, 0, allow));
        v.push(ins(RET_K, 0, 0, trace));
        return Some(v);
    }
    let mid = s.len() / 2;
    let left = tree(&s[..mid], trace, allow)?;
    let right = tree(&s[mid..], trace, allow)?;
    let jt = u8::try_from(left.len()).ok()?;
    let mut v = vec![ins(JGE_K, jt, 0, s[mid])];
    v.extend(left);
    v.extend(right);
    Some(v)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter for the instructions we emit.
    fn eval(p: &[libc::sock_filter], nr_: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr_.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            match i.code {
                LD_W_ABS => {
                    a = u32::from_le_bytes(data[i.k as usize..i.k as usize + 4].try_into().unwrap())
                }
                JEQ_K => {
                    pc += if a == i.k {
                        i.jt as usize
                    } else {
                        i.jf as usize
                    }
                }
                JGE_K => {
                    pc += if a >= i.k {
                        i.jt as usize
                    } else {
                        i.jf as usize
                    }
                }
                JSET_K => {
                    pc += if a & i.k != 0 {
                        i.jt as usize
                    } else {
                        i.jf as usize
                    }
                }
                RET_K => return i.k,
                c => panic!("unexpected op {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn binary_search_filter_matches_the_table() {
        let p = build(true, true, true, true, true).unwrap();
        let all: Vec<i64> = PATH_CALLS
            .iter()
            .chain(ID_CALLS)
            .copied()
            .chain([
                nr::UNAME,
                nr::FCHMOD,
                nr::FCHOWN,
                nr::FSETXATTR,
                nr::FREMOVEXATTR,
                nr::PTRACE,
                nr::SENDMSG,
                nr::RECVMSG,
                nr::SCHED_GETAFFINITY,
                nr::SCHED_SETAFFINITY,
            ])
            .collect();
        for n in 0..460u32 {
            let want = if all.contains(&(n as i64))
                && !ADDRESS_CALLS.iter().any(|(c, _)| *c == n as i64)
            {
                libc::SECCOMP_RET_TRACE
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(eval(&p, n, AUDIT_ARCH_X86_64, [0; 6]), want, "syscall {n}");
        }
        assert_eq!(
            eval(
                &p,
                nr::SENDTO as u32,
                AUDIT_ARCH_X86_64,
                [3, 0, 0, 0, 0x7fff_0000_1000, 16]
            ),
            libc::SECCOMP_RET_TRACE
        );
        assert_eq!(
            eval(&p, nr::SENDTO as u32, AUDIT_ARCH_X86_64, [3, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        for &(call, arg) in ADDRESS_CALLS {
            let mut args = [3u64, 0, 0, 0, 0, 0];
            assert_eq!(
                eval(&p, call as u32, AUDIT_ARCH_X86_64, args),
                libc::SECCOMP_RET_ALLOW,
                "{call} without an address"
            );
            args[arg as usize] = 0x7fff_0000_0000; // high word only
            assert_eq!(
                eval(&p, call as u32, AUDIT_ARCH_X86_64, args),
                libc::SECCOMP_RET_TRACE,
                "{call} with an address"
            );
        }
        let plain = build(false, false, false, false, false).unwrap();
        for call in [nr::SENDMSG, nr::RECVMSG, nr::RECVFROM, nr::ACCEPT] {
            assert_eq!(
                eval(&plain, call as u32, AUDIT_ARCH_X86_64, [3, 1, 1, 1, 1, 1]),
                libc::SECCOMP_RET_ALLOW,
                "{call} is not traced without translation"
            );
        }
        assert_eq!(
            eval(
                &plain,
                nr::SENDTO as u32,
                AUDIT_ARCH_X86_64,
                [3, 1, 1, 1, 1, 1]
            ),
            libc::SECCOMP_RET_TRACE
        );
        assert_eq!(
            eval(&p, u32::MAX, AUDIT_ARCH_X86_64, [0; 6]),
            libc::SECCOMP_RET_ALLOW,
            "a call skipped at a syscall-enter stop keeps the tracer's result"
        );
        assert_eq!(
            eval(&p, 0x4000_0002, AUDIT_ARCH_X86_64, [0; 6]),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(
            eval(&p, 2, 0x4000_0003, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS,
            "i386 calls"
        );
        assert!(p.len() < 300, "filter of {} instructions", p.len());
    }
}
