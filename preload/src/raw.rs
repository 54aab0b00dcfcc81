//! Raw x86_64 Linux system calls and the memory functions the compiler emits calls to, all
//! private to the library (`.hidden`), so the shim imports nothing from libc for them.
//! System call numbers: `arch/x86/entry/syscalls/syscall_64.tbl`.

use core::arch::asm;

pub const SYS_READ: usize = 0;
pub const SYS_WRITE: usize = 1;
pub const SYS_CLOSE: usize = 3;
pub const SYS_RT_SIGACTION: usize = 13;
pub const SYS_RT_SIGPROCMASK: usize = 14;
pub const SYS_DUP2: usize = 33;
pub const SYS_FORK: usize = 57;
pub const SYS_WAIT4: usize = 61;
pub const SYS_FCNTL: usize = 72;
pub const SYS_PIPE2: usize = 293;
pub const SYS_MMAP: usize = 9;
pub const SYS_MUNMAP: usize = 11;
pub const SYS_GETPID: usize = 39;
pub const SYS_FSTAT: usize = 5;
pub const SYS_EXECVE: usize = 59;
pub const SYS_EXECVEAT: usize = 322;
pub const SYS_KILL: usize = 62;
pub const SYS_GETCWD: usize = 79;
pub const SYS_EXIT_GROUP: usize = 231;
pub const SYS_OPENAT: usize = 257;
pub const SYS_OPENAT2: usize = 437;
pub const SYS_PRLIMIT64: usize = 302;
pub const SYS_NEWFSTATAT: usize = 262;
pub const SYS_READLINKAT: usize = 267;
pub const SYS_FACCESSAT: usize = 269;

pub const AT_FDCWD: isize = -100;
pub const O_RDONLY_CLOEXEC: usize = 0o2000000;

/// `syscall(n, a…)`: the raw return value (`-errno` on failure).
#[inline(always)]
pub unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 `syscall` convention: number in rax, arguments in rdi, rsi, rdx, r10,
    // r8, r9; rcx and r11 are clobbered. The caller vouches for the arguments.
    unsafe {
        asm!("syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    ret
}

#[inline(always)]
pub unsafe fn syscall(n: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> isize {
    // SAFETY: as `syscall6`.
    unsafe { syscall6(n, [a0, a1, a2, a3, 0, 0]) }
}

/// Kill this process with SIGABRT (the panic handler: never unwind into C).
pub fn abort() -> ! {
    // SAFETY: getpid, kill and exit_group take no pointers.
    unsafe {
        let pid = syscall(SYS_GETPID, 0, 0, 0, 0);
        syscall(SYS_KILL, pid as usize, 6, 0, 0);
        loop {
            syscall(SYS_EXIT_GROUP, 134, 0, 0, 0);
        }
    }
}

/// Anonymous private mapping of `len` bytes (vfork-safe scratch memory), or null.
pub fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous mapping touches no existing memory. PROT_READ|WRITE = 3,
    // MAP_PRIVATE|MAP_ANONYMOUS = 0x22.
    let r = unsafe { syscall6(SYS_MMAP, [0, len, 3, 0x22, usize::MAX, 0]) };
    if r < 0 {
        core::ptr::null_mut()
    } else {
        r as *mut u8
    }
}

pub fn unmap(p: *mut u8, len: usize) {
    // SAFETY: `p` came from `map(len)`.
    unsafe { syscall(SYS_MUNMAP, p as usize, len, 0, 0) };
}

pub fn write_all(fd: usize, mut s: &[u8]) {
    while !s.is_empty() {
        // SAFETY: `s` is a valid buffer.
        let r = unsafe { syscall(SYS_WRITE, fd, s.as_ptr() as usize, s.len(), 0) };
        if r <= 0 {
            return;
        }
        s = &s[r as usize..];
    }
}

/// Read the first bytes of the file at the NUL-terminated `path` into `buf`: the count, or
/// `-errno`.
pub fn read_head(path: *const u8, buf: &mut [u8]) -> isize {
    // SAFETY: `path` is NUL-terminated (the caller's translation buffer).
    let fd = unsafe {
        syscall(
            SYS_OPENAT,
            AT_FDCWD as usize,
            path as usize,
            O_RDONLY_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return fd;
    }
    let n = read_full(fd as i32, buf);
    // SAFETY: our own descriptor.
    unsafe { syscall(SYS_CLOSE, fd as usize, 0, 0, 0) };
    n
}

/// Read from `fd` until `buf` is full or the file ends; the number of bytes read.
pub fn read_full(fd: i32, buf: &mut [u8]) -> isize {
    let mut n = 0usize;
    while n < buf.len() {
        // SAFETY: `buf[n..]` is valid for writing.
        let r = unsafe {
            syscall(
                SYS_READ,
                fd as usize,
                buf.as_mut_ptr().add(n) as usize,
                buf.len() - n,
                0,
            )
        };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    n as isize
}

// The memory functions rustc's code calls. Hidden: they must not interpose the process's own.
core::arch::global_asm!(
    ".globl rust_eh_personality",
    ".hidden rust_eh_personality",
    "rust_eh_personality:",
    "ud2",
    ".globl memcpy",
    ".hidden memcpy",
    ".type memcpy,@function",
    "memcpy:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "rep movsb",
    "ret",
    ".globl memmove",
    ".hidden memmove",
    ".type memmove,@function",
    "memmove:",
    "mov rax, rdi",
    "mov rcx, rdx",
    "cmp rdi, rsi",
    "jbe 2f",
    "lea rsi, [rsi + rcx - 1]",
    "lea rdi, [rdi + rcx - 1]",
    "std",
    "rep movsb",
    "cld",
    "ret",
    "2:",
    "rep movsb",
    "ret",
    ".globl memset",
    ".hidden memset",
    ".type memset,@function",
    "memset:",
    "mov r9, rdi",
    "mov eax, esi",
    "mov rcx, rdx",
    "rep stosb",
    "mov rax, r9",
    "ret",
    ".globl memcmp",
    ".hidden memcmp",
    ".type memcmp,@function",
    ".globl bcmp",
    ".hidden bcmp",
    ".type bcmp,@function",
    "memcmp:",
    "bcmp:",
    "xor eax, eax",
    "3:",
    "test rdx, rdx",
    "jz 4f",
    "movzx eax, byte ptr [rdi]",
    "movzx ecx, byte ptr [rsi]",
    "sub eax, ecx",
    "jnz 4f",
    "inc rdi",
    "inc rsi",
    "dec rdx",
    "jmp 3b",
    "4:",
    "ret",
    ".globl strlen",
    ".hidden strlen",
    ".type strlen,@function",
    "strlen:",
    "xor eax, eax",
    "5:",
    "cmp byte ptr [rdi + rax], 0",
    "je 6f",
    "inc rax",
    "jmp 5b",
    "6:",
    "ret",
);
