//! The replacements (§7), each length-preserving and made only at the start of a string inside
//! a string region.

use crate::locate::{flavor, string_regions, strings, Flavor, MUSL_SYS_PATH};
use crate::Error;

/// One replacement: `old` at `offset` became `new` (same length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub offset: usize,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// What `patch_bytes` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub flavor: Flavor,
    pub changes: Vec<Change>,
    /// The `LD_LIBRARY_PATH` string was renamed `LD_LIBRARY_REAL`. Whether the loader then reads
    /// the new name is another matter (glibc compares the name with immediates in its code; see
    /// `probe_rename`).
    pub renamed: bool,
}

const ENV_OLD: &[u8] = b"LD_LIBRARY_PATH";
/// What the host's `/etc/ld.so.cache` and `/etc/ld.so.preload` become in a glibc loader.
pub(crate) const NO_FILE: &[u8] = b"/proc/0";
const ENV_NEW: &[u8] = b"LD_LIBRARY_REAL";

/// The replacement for the string `s`, as `(bytes replaced from its start, new bytes)`.
fn rule(flavor: Flavor, s: &[u8]) -> Option<(usize, Vec<u8>)> {
    if s == ENV_OLD {
        return Some((s.len(), ENV_NEW.to_vec()));
    }
    // `/` and NULs over `n` bytes: the string now names the root directory, which cannot be
    // opened as a cache, preload list or library (EISDIR), and ends a search-path list.
    let root = |n: usize| {
        let mut v = vec![0u8; n];
        v[0] = b'/';
        v
    };
    match flavor {
        Flavor::Glibc => {
            // /etc/ld.so.cache and /etc/ld.so.preload, then the built-in system directories
            // (`/lib/x86_64-linux-gnu/`, `/usr/lib/`…) and the other absolute names under them,
            // as upstream (whose rules these are, limited to string sections).
            if s.starts_with(b"/etc/ld.so") {
                // The cache and the preload list: a name that never exists (procfs has no
                // process 0; without procfs /proc is an empty directory), so the loader's
                // access(2) fails at once as for a missing /etc/ld.so.preload. `/` was read as
                // a preload list at every exec (access, open, fstat, a failed mmap, close).
                let mut v = NO_FILE.to_vec();
                v.resize(10, 0);
                Some((10, v))
            } else if s.starts_with(b"/lib") || s.starts_with(b"/usr") {
                Some((4, root(4)))
            } else {
                None
            }
        }
        Flavor::Musl => {
            if s == MUSL_SYS_PATH {
                // The default search path when no path file is read.
                Some((s.len(), root(s.len())))
            } else if let Some(at) = find(s, b"/etc/ld-musl-").filter(|_| s.ends_with(b".path")) {
                // `%.*s/etc/ld-musl-ARCH.path`: the path file becomes `PREFIX/`, a directory,
                // which musl reads as an empty path list (and never the host's file).
                let mut v = s[..=at].to_vec();
                v.extend(std::iter::repeat_n(0u8, s.len() - at - 1));
                Some((s.len(), v))
            } else {
                None
            }
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Patch a loader image in memory; the input is left as it was. Errors when the file is not a
/// loader this knows, or nothing that keeps the host's directories out was found.
pub fn patch_bytes(bytes: &[u8]) -> Result<(Vec<u8>, Report), Error> {
    let regions = string_regions(bytes)?;
    let flavor = flavor(bytes, &regions)?;
    let mut out = bytes.to_vec();
    let mut changes = Vec::new();
    let mut renamed = false;
    for r in &regions {
        for (off, s) in strings(bytes, *r) {
            if let Some((n, new)) = rule(flavor, s) {
                debug_assert_eq!(n, new.len());
                out[off..off + n].copy_from_slice(&new);
                renamed |= s == ENV_OLD;
                changes.push(Change {
                    offset: off,
                    old: s[..n].to_vec(),
                    new,
                });
            }
        }
    }
    if !changes.iter().any(|c| c.old != ENV_OLD) {
        return Err(Error::UnknownLoader);
    }
    Ok((
        out,
        Report {
            flavor,
            changes,
            renamed,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            rule(Flavor::Glibc, b"/etc/ld.so.cache").unwrap().1,
            b"/proc/0\0\0\0"
        );
        assert_eq!(
            rule(Flavor::Glibc, b"/etc/ld.so.preload").unwrap(),
            (10, b"/proc/0\0\0\0".to_vec())
        );
        assert!(!std::path::Path::new("/proc/0").exists());
        assert_eq!(
            rule(Flavor::Glibc, b"/lib/x86_64-linux-gnu/").unwrap(),
            (4, b"/\0\0\0".to_vec())
        );
        assert_eq!(
            rule(Flavor::Glibc, b"LD_LIBRARY_PATH").unwrap().1,
            b"LD_LIBRARY_REAL"
        );
        assert_eq!(rule(Flavor::Glibc, b"LD_LIBRARY_PATHS"), None);
        assert_eq!(rule(Flavor::Glibc, b"libc.so.6"), None);
        // musl: libc's own data stays.
        assert_eq!(rule(Flavor::Musl, b"/usr/share/zoneinfo/"), None);
        assert_eq!(rule(Flavor::Musl, b"/usr/local/bin:/bin:/usr/bin"), None);
        assert_eq!(rule(Flavor::Musl, b"/lib"), None);
        let (n, v) = rule(Flavor::Musl, MUSL_SYS_PATH).unwrap();
        assert_eq!(
            (n, v[0], v[1..].iter().all(|&b| b == 0)),
            (MUSL_SYS_PATH.len(), b'/', true)
        );
        let (_, v) = rule(Flavor::Musl, b"%.*s/etc/ld-musl-x86_64.path").unwrap();
        assert_eq!(&v[..5], b"%.*s/");
        assert!(v[5..].iter().all(|&b| b == 0));
    }
}
