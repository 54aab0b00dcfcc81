//! Per-architecture data: system call numbers and the registers that carry arguments.
//! One table per architecture (syscall(2) "Architecture calling conventions"); the rest of the
//! crate names calls, never numbers. Only x86_64 is filled in so far; aarch64 is a table away.

#[cfg(target_arch = "x86_64")]
pub mod nr {
    //! x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl).
    pub const OPEN: i64 = 2;
    pub const STAT: i64 = 4;
    pub const LSTAT: i64 = 6;
    pub const ACCESS: i64 = 21;
    pub const CONNECT: i64 = 42;
    pub const SENDTO: i64 = 44;
    pub const ACCEPT: i64 = 43;
    pub const RECVFROM: i64 = 45;
    pub const SENDMSG: i64 = 46;
    pub const RECVMSG: i64 = 47;
    pub const ACCEPT4: i64 = 288;
    pub const BIND: i64 = 49;
    pub const GETSOCKNAME: i64 = 51;
    pub const GETPEERNAME: i64 = 52;
    pub const EXECVE: i64 = 59;
    pub const WAIT4: i64 = 61;
    pub const UNAME: i64 = 63;
    pub const SCHED_SETAFFINITY: i64 = 203;
    pub const SCHED_GETAFFINITY: i64 = 204;
    pub const TRUNCATE: i64 = 76;
    pub const GETCWD: i64 = 79;
    pub const CHDIR: i64 = 80;
    pub const RENAME: i64 = 82;
    pub const MKDIR: i64 = 83;
    pub const RMDIR: i64 = 84;
    pub const CREAT: i64 = 85;
    pub const LINK: i64 = 86;
    pub const UNLINK: i64 = 87;
    pub const SYMLINK: i64 = 88;
    pub const READLINK: i64 = 89;
    pub const CHMOD: i64 = 90;
    pub const CHOWN: i64 = 92;
    pub const FCHMOD: i64 = 91;
    pub const CAPSET: i64 = 126;
    pub const SETHOSTNAME: i64 = 170;
    pub const SETDOMAINNAME: i64 = 171;
    pub const FCHOWN: i64 = 93;
    pub const LCHOWN: i64 = 94;
    pub const GETUID: i64 = 102;
    pub const PTRACE: i64 = 101;
    pub const GETGID: i64 = 104;
    pub const SETUID: i64 = 105;
    pub const SETGID: i64 = 106;
    pub const GETEUID: i64 = 107;
    pub const GETEGID: i64 = 108;
    pub const SETREUID: i64 = 113;
    pub const SETREGID: i64 = 114;
    pub const SETGROUPS: i64 = 116;
    pub const SETRESUID: i64 = 117;
    pub const GETRESUID: i64 = 118;
    pub const SETRESGID: i64 = 119;
    pub const GETRESGID: i64 = 120;
    pub const SETFSUID: i64 = 122;
    pub const SETFSGID: i64 = 123;
    pub const PRCTL: i64 = 157;
    pub const UTIME: i64 = 132;
    pub const MKNOD: i64 = 133;
    pub const USELIB: i64 = 134;
    pub const STATFS: i64 = 137;
    pub const CHROOT: i64 = 161;
    pub const MOUNT: i64 = 165;
    pub const UMOUNT2: i64 = 166;
    pub const SWAPON: i64 = 167;
    pub const SWAPOFF: i64 = 168;
    pub const ACCT: i64 = 163;
    pub const SETXATTR: i64 = 188;
    pub const LSETXATTR: i64 = 189;
    pub const FSETXATTR: i64 = 190;
    pub const GETXATTR: i64 = 191;
    pub const LGETXATTR: i64 = 192;
    pub const LISTXATTR: i64 = 194;
    pub const LLISTXATTR: i64 = 195;
    pub const REMOVEXATTR: i64 = 197;
    pub const LREMOVEXATTR: i64 = 198;
    pub const FREMOVEXATTR: i64 = 199;
    pub const UTIMES: i64 = 235;
    pub const WAITID: i64 = 247;
    pub const INOTIFY_ADD_WATCH: i64 = 254;
    pub const OPENAT: i64 = 257;
    pub const MKDIRAT: i64 = 258;
    pub const MKNODAT: i64 = 259;
    pub const FCHOWNAT: i64 = 260;
    pub const FUTIMESAT: i64 = 261;
    pub const NEWFSTATAT: i64 = 262;
    pub const UNLINKAT: i64 = 263;
    pub const RENAMEAT: i64 = 264;
    pub const LINKAT: i64 = 265;
    pub const SYMLINKAT: i64 = 266;
    pub const READLINKAT: i64 = 267;
    pub const FCHMODAT: i64 = 268;
    pub const FACCESSAT: i64 = 269;
    pub const UTIMENSAT: i64 = 280;
    pub const FANOTIFY_MARK: i64 = 301;
    pub const NAME_TO_HANDLE_AT: i64 = 303;
    pub const RENAMEAT2: i64 = 316;
    pub const EXECVEAT: i64 = 322;
    pub const STATX: i64 = 332;
    pub const IO_URING_SETUP: i64 = 425;
    pub const OPEN_TREE: i64 = 428;
    pub const MOVE_MOUNT: i64 = 429;
    pub const FSOPEN: i64 = 430;
    pub const FSPICK: i64 = 433;
    pub const OPENAT2: i64 = 437;
    pub const FACCESSAT2: i64 = 439;
    pub const MOUNT_SETATTR: i64 = 442;
    pub const FCHMODAT2: i64 = 452;
}

/// General-purpose registers at a syscall stop, with the syscall ABI's names.
#[derive(Clone, Copy)]
pub struct Regs(pub libc::user_regs_struct);

impl std::fmt::Debug for Regs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Regs(nr={}, args={:?}, ret={})",
            self.nr(),
            (0..6).map(|i| self.arg(i)).collect::<Vec<_>>(),
            self.ret()
        )
    }
}

#[cfg(target_arch = "x86_64")]
impl Regs {
    pub fn nr(&self) -> i64 {
        self.0.orig_rax as i64
    }

    pub fn set_nr(&mut self, n: i64) {
        self.0.orig_rax = n as u64;
    }

    pub fn arg(&self, i: usize) -> u64 {
        match i {
            0 => self.0.rdi,
            1 => self.0.rsi,
            2 => self.0.rdx,
            3 => self.0.r10,
            4 => self.0.r8,
            5 => self.0.r9,
            _ => 0,
        }
    }

    pub fn set_arg(&mut self, i: usize, v: u64) {
        match i {
            0 => self.0.rdi = v,
            1 => self.0.rsi = v,
            2 => self.0.rdx = v,
            3 => self.0.r10 = v,
            4 => self.0.r8 = v,
            5 => self.0.r9 = v,
            _ => {}
        }
    }

    pub fn ret(&self) -> i64 {
        self.0.rax as i64
    }

    pub fn set_ret(&mut self, v: i64) {
        self.0.rax = v as u64;
    }

    pub fn sp(&self) -> u64 {
        self.0.rsp
    }

    /// Make the task execute the same system call again when resumed from its exit stop.
    pub fn restart_syscall(&mut self) {
        self.0.rax = self.0.orig_rax;
        self.0.rip -= 2;
    }
}

/// Bytes below the stack pointer the ABI lets leaf code use (x86_64 SysV red zone).
#[cfg(target_arch = "x86_64")]
pub const RED_ZONE: u64 = 128;

/// `struct stat` (x86_64 `newfstatat`/`stat`/`lstat`): offsets of st_uid and st_gid.
#[cfg(target_arch = "x86_64")]
pub const STAT_UID_OFFSET: u64 = 28;
#[cfg(target_arch = "x86_64")]
pub const STAT_GID_OFFSET: u64 = 32;
/// `struct statx` (same on every architecture): stx_uid, stx_gid.
pub const STATX_UID_OFFSET: u64 = 20;
pub const STATX_GID_OFFSET: u64 = 24;
