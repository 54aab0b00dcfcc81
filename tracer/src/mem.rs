//! Tracee memory: reads and writes through process_vm_readv/writev (one syscall for a whole
//! string), falling back to PTRACE_PEEKDATA/POKEDATA when the pages refuse (e.g. read-only).
//! Everything read is bounded: a guest can hand us any pointer.

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;
use std::io::{IoSlice, IoSliceMut};

pub const PATH_MAX: usize = 4096;

pub fn read(pid: Pid, addr: u64, len: usize) -> nix::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    let remote = [RemoteIoVec {
        base: addr as usize,
        len,
    }];
    match process_vm_readv(pid, &mut [IoSliceMut::new(&mut buf)], &remote) {
        Ok(n) if n == len => Ok(buf),
        _ => {
            // Word by word through ptrace.
            let mut off = 0;
            while off < len {
                let w = nix::sys::ptrace::read(
                    pid,
                    (addr as usize + off) as nix::sys::ptrace::AddressType,
                )?;
                let bytes = w.to_ne_bytes();
                let n = (len - off).min(8);
                buf[off..off + n].copy_from_slice(&bytes[..n]);
                off += 8;
            }
            Ok(buf)
        }
    }
}

/// Read a NUL-terminated string of at most `max` bytes (ENAMETOOLONG past that).
pub fn read_cstr(pid: Pid, addr: u64, max: usize) -> nix::Result<Vec<u8>> {
    if addr == 0 {
        return Err(nix::errno::Errno::EFAULT);
    }
    let mut out = Vec::new();
    let mut a = addr;
    // Read up to the end of each page so we never touch a page the string does not reach.
    while out.len() <= max {
        let chunk = (4096 - (a % 4096)) as usize;
        let part = read(pid, a, chunk).map_err(|_| nix::errno::Errno::EFAULT)?;
        if let Some(z) = part.iter().position(|b| *b == 0) {
            out.extend_from_slice(&part[..z]);
            return if out.len() > max {
                Err(nix::errno::Errno::ENAMETOOLONG)
            } else {
                Ok(out)
            };
        }
        out.extend_from_slice(&part);
        a += chunk as u64;
    }
    Err(nix::errno::Errno::ENAMETOOLONG)
}

pub fn read_u64(pid: Pid, addr: u64) -> nix::Result<u64> {
    let b = read(pid, addr, 8)?;
    Ok(u64::from_ne_bytes(b.try_into().expect("8 bytes")))
}

pub fn write(pid: Pid, addr: u64, data: &[u8]) -> nix::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let remote = [RemoteIoVec {
        base: addr as usize,
        len: data.len(),
    }];
    if let Ok(n) = process_vm_writev(pid, &[IoSlice::new(data)], &remote) {
        if n == data.len() {
            return Ok(());
        }
    }
    let mut off = 0;
    while off < data.len() {
        let a = (addr as usize + off) as nix::sys::ptrace::AddressType;
        let n = (data.len() - off).min(8);
        let mut word = if n < 8 {
            nix::sys::ptrace::read(pid, a)?.to_ne_bytes()
        } else {
            [0u8; 8]
        };
        word[..n].copy_from_slice(&data[off..off + n]);
        nix::sys::ptrace::write(pid, a, i64::from_ne_bytes(word))?;
        off += 8;
    }
    Ok(())
}

/// Space below the tracee's stack pointer (past the red zone) for strings we hand to the kernel
/// in place of the guest's. Valid until the syscall returns; the guest never sees it.
#[derive(Debug)]
pub struct Scratch {
    next: u64,
}

impl Scratch {
    pub fn below(sp: u64) -> Scratch {
        Scratch {
            next: sp - crate::arch::RED_ZONE,
        }
    }

    /// Copy `data` into the tracee and return its address.
    pub fn push(&mut self, pid: Pid, data: &[u8]) -> nix::Result<u64> {
        self.next = (self.next - data.len() as u64) & !15;
        write(pid, self.next, data)?;
        Ok(self.next)
    }

    pub fn push_cstr(&mut self, pid: Pid, s: &[u8]) -> nix::Result<u64> {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s);
        v.push(0);
        self.push(pid, &v)
    }
}
