//! Crash-safe file system primitives: every file the repository keeps is written to a temporary name
//! in the same directory, fsync'd, then renamed over its final name (rename(2) is atomic within a
//! file system), so a killed process never leaves a half-written manifest, layer or keystore.

use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name for a temporary sibling of `path` that no other process or thread will pick.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Write `data` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// fsync a directory so a rename in it survives a crash. Best effort: some file systems refuse.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An exclusive advisory lock (flock(2)) held on a lock file until dropped. flock locks belong to
/// the open file description, so they work between threads of one process as well as between
/// processes, and the kernel drops them when a process dies: a killed pull never leaves a stale lock.
#[derive(Debug)]
pub struct LockGuard {
    _lock: Flock<File>,
}

pub fn lock_exclusive(path: &Path) -> io::Result<LockGuard> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let lock = Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    Ok(LockGuard { _lock: lock })
}

/// Make every directory and file under `path` writable by its owner, then remove it. Used to delete
/// trees whose modes came from hostile or read-only sources (`rm -f`, failed pulls).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return fs::remove_file(path),
        Ok(_) => {}
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(_) => {
            make_owner_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

fn make_owner_writable(path: &Path) {
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.is_dir() {
            let _ = fs::set_permissions(
                path,
                fs::Permissions::from_mode(m.permissions().mode() | 0o700),
            );
            if let Ok(rd) = fs::read_dir(path) {
                for e in rd.flatten() {
                    make_owner_writable(&e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"one", 0o644).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}

/// Start writing a growing file back to disk while it is still being written, so that the final
/// fsync(2) of a large download waits only for its tail (what `sync_file_range(WRITE)` would do,
/// without unsafe code): a thread calls fdatasync on a duplicate descriptor whenever poked.
#[derive(Debug)]
pub struct BackgroundSync {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundSync {
    pub fn new(f: &File) -> io::Result<BackgroundSync> {
        let dup = f.try_clone()?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let handle = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                let _ = dup.sync_data();
            }
        });
        Ok(BackgroundSync {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Ask for a flush; never blocks (a flush already queued covers this one).
    pub fn poke(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(());
        }
    }
}

impl Drop for BackgroundSync {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A path removed (file or tree) when the guard is dropped, unless `keep` was set: the way to
/// leave nothing behind when an import or a container build fails half-way.
#[derive(Debug)]
pub struct Cleanup {
    pub path: PathBuf,
    pub keep: bool,
}

impl Cleanup {
    pub fn new(path: PathBuf) -> Cleanup {
        Cleanup { path, keep: false }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_tree(&self.path);
        }
    }
}
