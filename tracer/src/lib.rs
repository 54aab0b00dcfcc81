//! `tracer`: the ptrace + seccomp-BPF path translator behind execution modes P1/P2.
//!
//! This crate knows nothing about images or the repository: it is given a guest root, bindings and a
//! command. The implementation lands with its own issue; until then it only names its contract.
#![forbid(unsafe_code)]

/// Execution modes this crate will provide (udocker names, `spec/udocker.md` §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// seccomp-BPF filter + ptrace: only translated syscalls stop.
    P1,
    /// ptrace only: every syscall stops.
    P2,
}
