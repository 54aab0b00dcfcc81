//! Layer flattening: apply image layers, in order, onto a container's ROOT, safely.
//!
//! Rules (OCI image-spec `layer.md`; `spec/udocker.md` §4 with upstream's bugs fixed):
//! * `.wh.NAME` deletes NAME from lower layers; `.wh..wh..opq` empties its directory of everything
//!   lower layers put there; both at every depth, the top level included; none is ever written.
//! * No member can write or delete outside ROOT: names are made relative, members with `..`
//!   components are refused, and every path is resolved component by component from ROOT's
//!   descriptor with `O_NOFOLLOW`; a symlink met on the way (planted by an earlier member or layer)
//!   is resolved *inside* ROOT, as the container will see it, with `..` stopping at ROOT and at most
//!   40 links followed (ELOOP, path_resolution(7)). The final component is never followed: an
//!   existing entry is unlinked before a new one is created with `O_EXCL|O_NOFOLLOW`.
//! * Hard links are resolved the same way, so their target is always inside ROOT.
//! * Device nodes, fifos and sockets are skipped (counted, one warning); setuid/setgid dropped;
//!   directories get u+rwx and files u+rw so the owner can always read, change and delete them.
//! * Symlink targets are stored verbatim (absolute ones are resolved by the engines in the guest).

mod fsat;

pub use fsat::DirFd;
use fsat::{is_dir, is_symlink};
use nix::errno::Errno;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug)]
pub enum UnpackError {
    Open(PathBuf, io::Error),
    /// The archive itself is unreadable (bad compression, truncated tar).
    Archive(PathBuf, io::Error),
    /// Writing into ROOT failed for a reason that is ours (disk full, permissions on ROOT).
    Write(PathBuf, String),
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::Open(p, e) => write!(f, "opening layer {}: {e}", p.display()),
            UnpackError::Archive(p, e) => write!(f, "reading layer {}: {e}", p.display()),
            UnpackError::Write(p, e) => write!(f, "extracting {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for UnpackError {}

/// What happened while unpacking, for the user's information.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub entries: u64,
    pub whiteouts: u64,
    pub skipped_special: u64,
    /// Members refused as unsafe or impossible, with the reason.
    pub refused: Vec<String>,
}

/// Compression of a stored layer, from its first bytes.
pub fn open_layer(path: &Path) -> Result<Box<dyn Read + Send>, UnpackError> {
    let f = File::open(path).map_err(|e| UnpackError::Open(path.to_path_buf(), e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let magic = {
        let b =
            io::BufRead::fill_buf(&mut r).map_err(|e| UnpackError::Open(path.to_path_buf(), e))?;
        let mut m = [0u8; 4];
        let n = b.len().min(4);
        m[..n].copy_from_slice(&b[..n]);
        m
    };
    Ok(if magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| {
            UnpackError::Archive(
                path.to_path_buf(),
                io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            )
        })?)
    } else {
        Box::new(r)
    })
}

/// Decompress on another thread so that inflating and writing files overlap (two cores, as
/// `tar -xz` gets with its gzip child). Chunks go through a bounded channel.
pub struct Pipelined {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    _worker: std::thread::JoinHandle<()>,
}

impl Pipelined {
    pub fn new(mut src: Box<dyn Read + Send>) -> Pipelined {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
        let worker = std::thread::spawn(move || loop {
            let mut buf = vec![0u8; 512 * 1024];
            let mut filled = 0;
            while filled < buf.len() {
                match src.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            let done = filled == 0;
            if tx.send(Ok(buf)).is_err() || done {
                return;
            }
        });
        Pipelined {
            rx,
            cur: Vec::new(),
            pos: 0,
            _worker: worker,
        }
    }
}

impl Read for Pipelined {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(b)) if b.is_empty() => return Ok(0),
                Ok(Ok(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A member name made safe: relative components, no `.`, no `..` (refused), no NULs.
fn clean_name(raw: &[u8]) -> Result<Vec<OsString>, &'static str> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("'..' in member name"),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

/// Applies layers to one ROOT.
pub struct Unpacker {
    root: Rc<DirFd>,
    root_path: PathBuf,
    /// Last resolved parent directory (members come grouped by directory).
    cache: Option<(Vec<OsString>, Rc<DirFd>)>,
    pub stats: Stats,
    /// Paths written by the layer being applied: an opaque whiteout spares them.
    this_layer: HashSet<Vec<u8>>,
}

impl fmt::Debug for Unpacker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unpacker")
            .field("root", &self.root_path)
            .finish()
    }
}

enum Resolve {
    Dir(Rc<DirFd>),
    /// Unresolvable inside ROOT (a file where a directory must be, a loop): refuse the member.
    Refuse(String),
}

impl Unpacker {
    pub fn new(root: &Path) -> Result<Unpacker, UnpackError> {
        let fd =
            DirFd::open(root).map_err(|e| UnpackError::Write(root.to_path_buf(), e.to_string()))?;
        Ok(Unpacker {
            root: Rc::new(fd),
            root_path: root.to_path_buf(),
            cache: None,
            stats: Stats::default(),
            this_layer: HashSet::new(),
        })
    }

    fn werr(&self, what: &[OsString], e: impl fmt::Display) -> UnpackError {
        let mut p = self.root_path.clone();
        for c in what {
            p.push(c);
        }
        UnpackError::Write(p, e.to_string())
    }

    /// Resolve a directory path (components relative to ROOT) to an open directory, following
    /// symlinks inside ROOT, creating missing directories when `create` is set.
    fn resolve_dir(&mut self, comps: &[OsString], create: bool) -> Result<Resolve, UnpackError> {
        if let Some((p, fd)) = &self.cache {
            if p.as_slice() == comps {
                return Ok(Resolve::Dir(fd.clone()));
            }
        }
        // Shared handles (Rc): no dup(2)/close(2) per member for the directory it lands in.
        let mut stack: Vec<Rc<DirFd>> = vec![self.root.clone()];
        let mut todo: Vec<OsString> = comps.iter().rev().cloned().collect();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            if c == "." || c.is_empty() {
                continue;
            }
            let cur = stack.last().expect("stack keeps ROOT");
            match cur.lstat(&c) {
                Ok(st) if is_dir(&st) => {
                    if st.st_mode & 0o700 != 0o700 {
                        cur.chmod(&c, (st.st_mode & 0o7777) | 0o700)
                            .map_err(|e| self.werr(comps, e))?;
                    }
                    let d = cur.open_dir(&c).map_err(|e| self.werr(comps, e))?;
                    stack.push(Rc::new(d));
                }
                Ok(st) if is_symlink(&st) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Ok(Resolve::Refuse("too many levels of symbolic links".into()));
                    }
                    let target = cur.readlink(&c).map_err(|e| self.werr(comps, e))?;
                    let tb = target.as_bytes();
                    if tb.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for part in tb.split(|b| *b == b'/').rev() {
                        if !part.is_empty() {
                            todo.push(OsStr::from_bytes(part).to_os_string());
                        }
                    }
                }
                Ok(_) => {
                    return Ok(Resolve::Refuse(format!(
                        "{} is not a directory",
                        c.to_string_lossy()
                    )))
                }
                Err(Errno::ENOENT) if create => {
                    cur.mkdir(&c, 0o755).map_err(|e| self.werr(comps, e))?;
                    let d = cur.open_dir(&c).map_err(|e| self.werr(comps, e))?;
                    stack.push(Rc::new(d));
                }
                Err(Errno::ENOENT) => return Ok(Resolve::Refuse("no such directory".into())),
                Err(e) => return Err(self.werr(comps, e)),
            }
        }
        let d = stack.pop().expect("stack keeps ROOT");
        self.cache = Some((comps.to_vec(), d.clone()));
        Ok(Resolve::Dir(d))
    }

    /// Anything removed or replaced by a symlink may invalidate the cached directory.
    fn invalidate(&mut self) {
        self.cache = None;
    }

    fn refuse(&mut self, name: &[u8], why: impl fmt::Display) {
        if self.stats.refused.len() < 1000 {
            self.stats
                .refused
                .push(format!("{}: {why}", String::from_utf8_lossy(name)));
        }
    }

    /// Apply one layer (an uncompressed tar stream).
    pub fn apply(&mut self, layer_name: &Path, reader: impl Read) -> Result<(), UnpackError> {
        // Modes are given exactly at creation (mkdirat/openat), so the umask must not strip
        // them; restored when this layer is done.
        struct Umask(nix::sys::stat::Mode);
        impl Drop for Umask {
            fn drop(&mut self) {
                nix::sys::stat::umask(self.0);
            }
        }
        let _umask = Umask(nix::sys::stat::umask(nix::sys::stat::Mode::empty()));
        self.this_layer.clear();
        self.invalidate();
        let mut ar = tar::Archive::new(reader);
        let arch_err = |e: io::Error| UnpackError::Archive(layer_name.to_path_buf(), e);
        for entry in ar.entries().map_err(arch_err)? {
            let mut entry = entry.map_err(arch_err)?;
            self.stats.entries += 1;
            let raw = entry.path_bytes().into_owned();
            let comps = match clean_name(&raw) {
                Ok(c) => c,
                Err(why) => {
                    self.refuse(&raw, why);
                    continue;
                }
            };
            let Some((name, parent)) = comps.split_last() else {
                continue; // the root directory itself: ROOT keeps its own mode
            };
            let name = name.clone();
            let parent = parent.to_vec();
            let nb = name.as_bytes();
            if let Some(hidden) = nb.strip_prefix(b".wh.") {
                self.stats.whiteouts += 1;
                self.whiteout(&parent, hidden)?;
                continue;
            }
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            if matches!(kind, T::Char | T::Block | T::Fifo) {
                self.stats.skipped_special += 1;
                continue;
            }
            if !matches!(
                kind,
                T::Regular | T::Continuous | T::GNUSparse | T::Directory | T::Symlink | T::Link
            ) {
                // PAX/GNU extension headers are consumed by the tar reader; anything else is unknown.
                self.refuse(&raw, format!("unsupported member type {kind:?}"));
                continue;
            }
            let dir = match self.resolve_dir(&parent, true)? {
                Resolve::Dir(d) => d,
                Resolve::Refuse(why) => {
                    self.refuse(&raw, why);
                    continue;
                }
            };
            let mode = entry.header().mode().unwrap_or(0o644) & 0o1777; // setuid/setgid dropped
            let mtime = entry.header().mtime().unwrap_or(0) as i64;
            let mut key = Vec::with_capacity(raw.len());
            for c in &comps {
                key.push(b'/');
                key.extend_from_slice(c.as_bytes());
            }
            if kind == T::Directory {
                // Create first, look only when something is already there (most members are
                // new): the umask is 0 while unpacking, so the mode is exact without a chmod.
                match dir.mkdir(&name, mode | 0o700) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        let st = dir.lstat(&name).map_err(|e| self.werr(&comps, e))?;
                        if !is_dir(&st) {
                            dir.unlink(&name, false).map_err(|e| self.werr(&comps, e))?;
                            self.invalidate();
                            dir.mkdir(&name, mode | 0o700)
                                .map_err(|e| self.werr(&comps, e))?;
                        } else {
                            dir.chmod(&name, mode | 0o700)
                                .map_err(|e| self.werr(&comps, e))?;
                        }
                    }
                    Err(e) => return Err(self.werr(&comps, e)),
                }
                self.this_layer.insert(key);
                continue;
            }
            match kind {
                T::Symlink => {
                    let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                        self.refuse(&raw, "symlink without target");
                        continue;
                    };
                    if let Err(Errno::EEXIST) = dir.symlink(OsStr::from_bytes(&target), &name) {
                        self.clear(&dir, &name, &comps)?;
                        dir.symlink(OsStr::from_bytes(&target), &name)
                            .map_err(|e| self.werr(&comps, e))?;
                    }
                    let _ = dir.set_mtime_nofollow(&name, mtime);
                }
                T::Link => {
                    let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                        self.refuse(&raw, "hard link without target");
                        continue;
                    };
                    let tcomps = match clean_name(&target) {
                        Ok(c) if !c.is_empty() => c,
                        Ok(_) => {
                            self.refuse(&raw, "hard link to the root directory");
                            continue;
                        }
                        Err(why) => {
                            self.refuse(&raw, format!("hard link target: {why}"));
                            continue;
                        }
                    };
                    let (tname, tparent) = tcomps.split_last().expect("non-empty");
                    let tdir = match self.resolve_dir(tparent, false)? {
                        Resolve::Dir(d) => d,
                        Resolve::Refuse(why) => {
                            self.refuse(&raw, format!("hard link target: {why}"));
                            continue;
                        }
                    };
                    let mut linked = dir.hardlink_from(&tdir, tname, &name);
                    if let Err(Errno::EEXIST) = linked {
                        self.clear(&dir, &name, &comps)?;
                        linked = dir.hardlink_from(&tdir, tname, &name);
                    }
                    match linked {
                        Ok(()) => {}
                        Err(e @ (Errno::ENOENT | Errno::EPERM | Errno::EMLINK)) => {
                            self.refuse(
                                &raw,
                                format!("hard link to {}: {e}", String::from_utf8_lossy(&target)),
                            );
                            continue;
                        }
                        Err(e) => return Err(self.werr(&comps, e)),
                    }
                }
                _ => {
                    // O_EXCL|O_NOFOLLOW: whatever is there (a symlink planted to redirect the
                    // write, a directory) is removed first, never written through.
                    let mut f = match dir.create_file(&name, mode | 0o600) {
                        Err(Errno::EEXIST) => {
                            self.clear(&dir, &name, &comps)?;
                            dir.create_file(&name, mode | 0o600)
                        }
                        other => other,
                    }
                    .map_err(|e| self.werr(&comps, e))?;
                    io::copy(&mut entry, &mut f).map_err(|e| {
                        // A read error is the archive's fault, a write error ours.
                        if e.kind() == io::ErrorKind::UnexpectedEof
                            || e.kind() == io::ErrorKind::InvalidData
                        {
                            UnpackError::Archive(layer_name.to_path_buf(), e)
                        } else {
                            self.werr(&comps, e)
                        }
                    })?;
                    f.flush().map_err(|e| self.werr(&comps, e))?;
                    let t = nix::sys::time::TimeSpec::new(mtime, 0);
                    let _ = nix::sys::stat::futimens(std::os::fd::AsRawFd::as_raw_fd(&f), &t, &t);
                }
            }
            self.this_layer.insert(key);
        }
        Ok(())
    }

    /// Remove what stands at `name` (never following it) so a new entry can take its place.
    fn clear(&mut self, dir: &DirFd, name: &OsStr, comps: &[OsString]) -> Result<(), UnpackError> {
        let st = dir.lstat(name).map_err(|e| self.werr(comps, e))?;
        if is_dir(&st) {
            dir.remove_all(name).map_err(|e| self.werr(comps, e))?;
        } else {
            dir.unlink(name, false).map_err(|e| self.werr(comps, e))?;
        }
        self.invalidate();
        Ok(())
    }

    fn whiteout(&mut self, parent: &[OsString], hidden: &[u8]) -> Result<(), UnpackError> {
        let dir = match self.resolve_dir(parent, false)? {
            Resolve::Dir(d) => d,
            Resolve::Refuse(_) => return Ok(()), // nothing below to hide
        };
        let mut prefix = Vec::new();
        for c in parent {
            prefix.push(b'/');
            prefix.extend_from_slice(c.as_bytes());
        }
        if hidden == b".wh..opq" {
            // Opaque directory: drop what lower layers put here, keep this layer's own entries.
            for child in dir.list().map_err(|e| self.werr(parent, e))? {
                let mut key = prefix.clone();
                key.push(b'/');
                key.extend_from_slice(child.as_bytes());
                if !self.this_layer.contains(&key) {
                    dir.remove_all(&child).map_err(|e| self.werr(parent, e))?;
                }
            }
        } else if !hidden.is_empty() && hidden != b"." && hidden != b".." && !hidden.contains(&b'/')
        {
            dir.remove_all(OsStr::from_bytes(hidden))
                .map_err(|e| self.werr(parent, e))?;
        }
        self.invalidate();
        Ok(())
    }
}

/// Apply every layer file, bottom first, onto `root` (which must exist).
pub fn unpack_layers(root: &Path, layers: &[PathBuf]) -> Result<Stats, UnpackError> {
    let mut u = Unpacker::new(root)?;
    for l in layers {
        let r = Pipelined::new(open_layer(l)?);
        u.apply(l, r)?;
    }
    Ok(u.stats)
}

#[cfg(test)]
mod tests;
