//! What the exec path (interpose/exec.rs) learnt about a program, kept for its next exec: the file's resolved path
//! and whether it is a dynamic ELF. A shell running the same programs over and over (scripts,
//! make, configure) then skips opening the file, reading its header and asking the kernel for
//! its resolved name: four system calls of the seven an exec costs in the shim, ~10 us on the
//! machine of scripts/bench-fake (d).
//!
//! An entry is used only for the same host path whose file still has the same identity (device,
//! inode, size, modification time, from the stat the exec path makes anyway, so a rebuilt or
//! replaced program is read again); execute permission is still checked at every exec. Scripts
//! are not kept (their `#!` line is read each time), nor, in F4, a program whose interpreter is
//! not yet the container's (the exec path re-roots it first).
//!
//! Concurrency: a try-lock around the table; a thread that finds it taken goes the long way. A
//! vfork child writes into its parent's memory, which is what makes the cache useful to shells
//! (dash execs every command from a vfork child); the parent is suspended meanwhile, and the lock
//! is released before the child's execve.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Entries kept, and the longest paths kept (longer ones go the long way each time).
const ENTRIES: usize = 8;
const PATH: usize = 256;

/// `(device, inode, size, mtime seconds, mtime nanoseconds)` from stat(2).
pub type Id = [u64; 5];

#[derive(Clone, Copy)]
struct Entry {
    used: bool,
    id: Id,
    dynamic: bool,
    path_len: usize,
    path: [u8; PATH],
    canon_len: usize,
    canon: [u8; PATH],
}

const EMPTY: Entry = Entry {
    used: false,
    id: [0; 5],
    dynamic: false,
    path_len: 0,
    path: [0; PATH],
    canon_len: 0,
    canon: [0; PATH],
};

/// The entries and the next one to replace (round robin).
struct Table(UnsafeCell<([Entry; ENTRIES], usize)>);
// SAFETY: only accessed while LOCK is held (`with`).
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new(([EMPTY; ENTRIES], 0)));
static LOCK: AtomicBool = AtomicBool::new(false);

/// Run `f` on the table when the lock is free; `None` when another thread holds it.
fn with<R>(f: impl FnOnce(&mut ([Entry; ENTRIES], usize)) -> R) -> Option<R> {
    if LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    // SAFETY: the lock makes this the only access.
    let r = f(unsafe { &mut *TABLE.0.get() });
    LOCK.store(false, Ordering::Release);
    Some(r)
}

/// The resolved path (NUL-terminated into `out`, its length) and dynamic-ness of the program at
/// host path `path` with identity `id`, when known.
pub fn get(path: &[u8], id: &Id, out: &mut [u8]) -> Option<(usize, bool)> {
    with(|(t, _)| {
        let e = t
            .iter()
            .find(|e| e.used && e.id == *id && e.path[..e.path_len] == *path)?;
        if e.canon_len >= out.len() {
            return None;
        }
        out[..e.canon_len].copy_from_slice(&e.canon[..e.canon_len]);
        out[e.canon_len] = 0;
        Some((e.canon_len, e.dynamic))
    })
    .flatten()
}

/// Remember what an exec found (paths without their NUL).
pub fn put(path: &[u8], id: &Id, canon: &[u8], dynamic: bool) {
    if path.len() > PATH || canon.len() > PATH {
        return;
    }
    with(|(t, next)| {
        let i = match t
            .iter()
            .position(|e| e.used && e.path[..e.path_len] == *path)
        {
            Some(i) => i,
            None => {
                *next = (*next + 1) % ENTRIES;
                *next
            }
        };
        let e = &mut t[i];
        e.used = true;
        e.id = *id;
        e.dynamic = dynamic;
        e.path[..path.len()].copy_from_slice(path);
        e.path_len = path.len();
        e.canon[..canon.len()].copy_from_slice(canon);
        e.canon_len = canon.len();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_same_path_and_identity() {
        let id = [1, 2, 3, 4, 5];
        let mut out = [0u8; 300];
        assert_eq!(get(b"/r/bin/true", &id, &mut out), None);
        put(b"/r/bin/true", &id, b"/r/usr/bin/true", true);
        assert_eq!(get(b"/r/bin/true", &id, &mut out), Some((15, true)));
        assert_eq!(&out[..16], b"/r/usr/bin/true\0");
        // Another identity (rebuilt) or another path: no.
        assert_eq!(get(b"/r/bin/true", &[1, 2, 3, 4, 6], &mut out), None);
        assert_eq!(get(b"/r/bin/tru", &id, &mut out), None);
        // Updated in place, not duplicated.
        put(b"/r/bin/true", &[9; 5], b"/r/x", false);
        assert_eq!(get(b"/r/bin/true", &[9; 5], &mut out), Some((4, false)));
        assert_eq!(get(b"/r/bin/true", &id, &mut out), None);
        // Too long to keep.
        let long = [b'a'; PATH + 1];
        put(&long, &id, b"/x", true);
        assert_eq!(get(&long, &id, &mut out), None);
        // Taken lock: the long way.
        LOCK.store(true, Ordering::Release);
        assert_eq!(get(b"/r/bin/true", &[9; 5], &mut out), None);
        LOCK.store(false, Ordering::Release);
    }
}
