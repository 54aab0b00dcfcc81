//! Writing the patched image: the whole new file goes to a temporary file in the target's directory, is
//! given the original's mode (and owner, when we may), then renamed over the target, so that a failure
//! never leaves a half-written file. Targets that are not regular files (`--output /dev/null`) are written
//! directly.

use crate::error::{Error, Result};
use std::fs::{self, Metadata, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `target`; `orig` is the metadata of the input file (mode and owner to keep).
pub fn write_image(target: &Path, bytes: &[u8], orig: &Metadata) -> Result<()> {
    let mut target = target.to_path_buf();
    match fs::symlink_metadata(&target) {
        Ok(m) if m.file_type().is_symlink() => {
            // Patch the file the link points to, as an in-place writer would.
            target = fs::canonicalize(&target).map_err(|e| Error::io("resolving", &target, e))?;
        }
        Ok(m) if !m.file_type().is_file() => return write_direct(&target, bytes),
        _ => {}
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.elfpatch.{}", std::process::id()));
    let mode = orig.permissions().mode() & 0o7777;
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp);
    let mut f = match created {
        Ok(f) => f,
        // A directory we may not create files in, but a file we may write: fall back to in place.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return write_direct(&target, bytes)
        }
        Err(e) => return Err(Error::io("creating", &tmp, e)),
    };
    let res = (|| -> Result<()> {
        f.write_all(bytes)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        if nix_is_root() {
            let _ = std::os::unix::fs::fchown(&f, Some(orig.uid()), Some(orig.gid()));
        }
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(|e| Error::io("renaming over", &target, e))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn write_direct(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o777)
        .open(target)
        .map_err(|e| Error::io("opening", target, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("writing", target, e))
}

fn nix_is_root() -> bool {
    // Owner of our own process directory: 0 for root, without unsafe geteuid().
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
