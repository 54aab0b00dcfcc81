//! `preload`: the LD_PRELOAD fakechroot shim (modes F1–F4; `spec/elf-fakechroot.md` §4, §6).
//!
//! Loaded by the *container's* loader into every container process, it translates the paths the
//! program passes to libc (guest paths) into host paths under `FAKECHROOT_BASE`, and the paths
//! libc hands back (`getcwd`, `readlink`, `realpath`) into guest paths.
//!
//! Portability rules (§6), which the import check in `tests/tests/fakechroot.rs` enforces on the
//! built library: `no_std`, no allocation, no TLS, no unwinding (`panic = "abort"` and a panic
//! handler that kills the process with a raw system call), raw system calls for the shim's own
//! file access, and every libc function reached through `dlsym(RTLD_NEXT, …)`, so that the only
//! versioned import is `dlsym@GLIBC_2.2.5` (linked against a stub `libdl.so.2`).
//!
//! Re-entrancy: the shim never calls an interposed function itself (its own file access is raw
//! system calls, libc is reached through the `dlsym` pointers), so no per-thread guard is needed.
//!
//! Only x86_64 is implemented (the raw system calls and the memory functions are per-arch asm);
//! on other architectures the crate is empty and udocker reports the F modes as unavailable.
#![cfg_attr(not(test), no_std)]
// The exported wrappers are C ABI entry points whose contract is the libc manual's.
#![allow(clippy::missing_safety_doc)]

pub mod execcache;
pub mod path;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
mod config;
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
mod interpose;
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
mod raw;
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
mod real;

/// Never unwind across the FFI boundary: a panic (a bug) kills the process with SIGABRT.
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    raw::abort()
}
