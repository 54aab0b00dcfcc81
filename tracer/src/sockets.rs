//! AF_UNIX addresses (unix(7)): a `sun_path` names a file, so it is a guest path on the way in
//! (bind, connect, sendto, sendmsg) and a host path on the way out (getsockname, getpeername,
//! accept, recvfrom, recvmsg), where the kernel hands back the address a socket was bound with.
//! Abstract (`sun_path[0] == 0`) and unnamed addresses carry no path and pass untouched.
//!
//! `sun_path` holds 108 bytes. A guest path that fits may not fit once translated (a rootfs deep
//! in the host's tree): such an address goes through an alias, a symlink in a private directory
//! of short name (mode 0700, ours, removed at the end) that points to the socket's host
//! *directory*: bind(2) does not follow a symlink in the last component (it would fail with
//! EADDRINUSE) but does follow them in the directories above it, so `ALIAS/name` binds or reaches
//! the socket file at its real place. The kernel remembers the aliased name as the socket's
//! address; mapping the alias back to its directory turns it into the guest's path again.
//!
//! Costs: sendto, recvfrom and accept(4) stop only when they carry an address (the filter checks
//! the pointer); sendmsg and recvmsg keep theirs inside a `struct msghdr` the filter cannot read,
//! so every sendmsg and recvmsg stops once at entry, and a second time at exit only when it
//! names a peer (recvmsg with msg_name; recvfrom and accept with an address stop at exit too).
//! A program that moves many small messages with them (a UDP server, a D-Bus client) runs
//! measurably slower: a stop costs a few microseconds. None of this applies when paths are the
//! same on both sides (the host's `/` as the guest's, nothing bound): then only sendto with an
//! address stops, as before. send/recv/read/write never stop.

use crate::mem::{self, Scratch};
use crate::tracer::Ctx;
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// sizeof(struct sockaddr_un): sa_family_t then sun_path[108].
pub const SOCKADDR_UN_LEN: usize = 110;
const SUN_PATH_MAX: usize = 108;

/// The aliases made so far: host directory → alias path (`DIR/N`).
#[derive(Debug, Default)]
pub struct Aliases {
    dir: Option<PathBuf>,
    links: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Aliases {
    /// The alias of host directory `parent`, made on first use.
    fn alias(&mut self, parent: &[u8]) -> Option<Vec<u8>> {
        if let Some((_, a)) = self.links.iter().find(|(p, _)| p == parent) {
            return Some(a.clone());
        }
        if self.dir.is_none() {
            self.dir = Some(private_dir()?);
        }
        let dir = self.dir.as_ref()?;
        let link = dir.join(self.links.len().to_string());
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(parent), &link).ok()?;
        let a = link.as_os_str().as_bytes().to_vec();
        self.links.push((parent.to_vec(), a.clone()));
        Some(a)
    }

    /// A host path that goes through one of our aliases, with the alias replaced by the
    /// directory it stands for.
    fn unalias(&self, host: &[u8]) -> Option<Vec<u8>> {
        self.links.iter().find_map(|(parent, a)| {
            let rest = host.strip_prefix(a.as_slice())?;
            if !rest.starts_with(b"/") {
                return None;
            }
            let mut v = parent.clone();
            v.extend_from_slice(rest);
            Some(v)
        })
    }

    /// Remove the private directory and its links (the sockets themselves live elsewhere).
    pub fn remove(&self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A new private directory with a short name: under $TMPDIR when that is short, else /tmp,
/// leaving room in `sun_path` for the link's number and a socket name.
fn private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let tmp = std::env::temp_dir();
    let base = if tmp.as_os_str().len() <= 24 {
        tmp
    } else {
        PathBuf::from("/tmp")
    };
    for n in 0..1000u32 {
        let p = base.join(format!("ud-un-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

/// The path in an AF_UNIX address with one (not abstract, not unnamed), as bytes up to the
/// first NUL; None for anything else.
fn unix_path(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < 3 || u16::from_ne_bytes([raw[0], raw[1]]) != libc::AF_UNIX as u16 {
        return None;
    }
    if raw[2] == 0 {
        return None;
    }
    Some(raw[2..].iter().copied().take_while(|b| *b != 0).collect())
}

fn sockaddr(family: &[u8], path: &[u8]) -> Vec<u8> {
    let mut out = family[..2].to_vec();
    out.extend_from_slice(path);
    out.push(0);
    out
}

/// The guest's AF_UNIX address at `addr` (`len` bytes) for the host: `Ok(None)` when it needs no
/// change (another family, abstract, unnamed, or a relative name the kernel finds the same way
/// from the host side of the working directory), ENAMETOOLONG when no alias can express it.
/// `follow`: whether a symlink as last component is followed (connect(2) and the send calls
/// follow it, bind(2) never does).
pub fn to_host(
    ctx: &mut Ctx,
    pid: Pid,
    addr: u64,
    len: usize,
    follow: bool,
) -> Result<Option<Vec<u8>>, Errno> {
    if addr == 0 || !(3..=SOCKADDR_UN_LEN).contains(&len) {
        return Ok(None);
    }
    let Ok(raw) = mem::read(pid, addr, len) else {
        return Ok(None); // the kernel answers EFAULT itself
    };
    let Some(path) = unix_path(&raw) else {
        return Ok(None);
    };
    // A relative name without `..` is found by the kernel from the (host) working directory
    // just as in the guest, and getsockname must give it back as it was bound.
    if path[0] != b'/' && !path.split(|b| *b == b'/').any(|c| c == b"..") {
        return Ok(None);
    }
    let abs = if path[0] == b'/' {
        path
    } else {
        let mut b = crate::syscalls::guest_cwd(ctx, pid).ok_or(Errno::ENOENT)?;
        b.push(b'/');
        b.extend_from_slice(&path);
        b
    };
    let (_, h) = ctx.tr.resolve(&ctx.fs, &abs, follow)?;
    if h.len() < SUN_PATH_MAX {
        return Ok(Some(sockaddr(&raw, &h)));
    }
    let cut = h
        .iter()
        .rposition(|b| *b == b'/')
        .ok_or(Errno::ENAMETOOLONG)?;
    let (parent, name) = (&h[..cut.max(1)], &h[cut + 1..]);
    let alias = ctx.sock_aliases.alias(parent).ok_or(Errno::ENAMETOOLONG)?;
    let mut short = alias;
    short.push(b'/');
    short.extend_from_slice(name);
    if short.len() >= SUN_PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(Some(sockaddr(&raw, &short)))
}

/// A host AF_UNIX address the kernel wrote for the guest, as the guest names it: None when it
/// carries no path or the path is outside everything the guest sees.
pub fn to_guest(ctx: &Ctx, raw: &[u8]) -> Option<Vec<u8>> {
    let host = unix_path(raw)?;
    let host = ctx.sock_aliases.unalias(&host).unwrap_or(host);
    let g = ctx.tr.to_guest(&host)?;
    Some(sockaddr(raw, &g))
}

/// sendmsg(2): the destination is `msg_name` inside the guest's `struct msghdr` (socket.h:
/// msg_name at 0, msg_namelen at 8, 56 bytes in all on 64-bit). The call gets a copy of the
/// header pointing at the translated address; the guest's memory is left as it was.
/// Returns the new msghdr address, or None to leave the call alone.
pub fn sendmsg_header(
    ctx: &mut Ctx,
    pid: Pid,
    msg: u64,
    scratch: &mut Scratch,
) -> Result<Option<u64>, Errno> {
    if msg == 0 {
        return Ok(None);
    }
    let Ok(hdr) = mem::read(pid, msg, 56) else {
        return Ok(None);
    };
    let name = u64::from_ne_bytes(hdr[0..8].try_into().expect("8 bytes"));
    let len = u32::from_ne_bytes(hdr[8..12].try_into().expect("4 bytes")) as usize;
    let Some(new) = to_host(ctx, pid, name, len, true)? else {
        return Ok(None);
    };
    let a = scratch.push(pid, &new)?;
    let mut h = hdr;
    h[0..8].copy_from_slice(&a.to_ne_bytes());
    h[8..12].copy_from_slice(&(new.len() as u32).to_ne_bytes());
    Ok(Some(scratch.push(pid, &h)?))
}

/// recvmsg(2): where the kernel will write the peer's address (msg_name, the address of
/// msg_namelen, and the room the guest gave), when it asked for one.
pub fn recvmsg_name(pid: Pid, msg: u64) -> Option<(u64, u64, u32)> {
    if msg == 0 {
        return None;
    }
    let hdr = mem::read(pid, msg, 16).ok()?;
    let name = u64::from_ne_bytes(hdr[0..8].try_into().expect("8 bytes"));
    let len = u32::from_ne_bytes(hdr[8..12].try_into().expect("4 bytes"));
    (name != 0 && len > 0).then_some((name, msg + 8, len))
}

/// Exit of a call that wrote a socket address at `addr` and its length at `lenp` into a
/// buffer of `cap` bytes (getsockname, getpeername, accept, recvfrom, recvmsg): an AF_UNIX
/// path becomes the guest's. As the kernel does, the address is cut to the room there is and
/// the length says how long it really is (unix(7), "addrlen").
pub fn exit_name(ctx: &Ctx, pid: Pid, addr: u64, lenp: u64, cap: u32) {
    if addr == 0 || lenp == 0 {
        return;
    }
    let Ok(lb) = mem::read(pid, lenp, 4) else {
        return;
    };
    let len = u32::from_ne_bytes(lb.try_into().expect("4 bytes")) as usize;
    // Cut by the kernel: the whole host path is not there to translate.
    if len > cap as usize {
        return;
    }
    let Ok(raw) = mem::read(pid, addr, len.min(SOCKADDR_UN_LEN)) else {
        return;
    };
    if let Some(out) = to_guest(ctx, &raw) {
        let _ = mem::write(pid, addr, &out[..out.len().min(cap as usize)]);
        let _ = mem::write(pid, lenp, &(out.len() as u32).to_ne_bytes());
    }
}

/// The room in a socklen_t the guest passed in (0 when unreadable: nothing is rewritten).
pub fn room(pid: Pid, lenp: u64) -> u32 {
    if lenp == 0 {
        return 0;
    }
    mem::read(pid, lenp, 4)
        .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
        .unwrap_or(0)
}
