//! `ld.so.orig`: the pristine loader, kept beside the container so that every patch starts from
//! it and `restore_file` puts it back byte for byte (§7).

use crate::patch::{patch_bytes, Report};
use crate::{io, Error};
use std::fs;
use std::io::Write;
use std::path::Path;

/// The backup's file name in the container directory (upstream's).
pub const BACKUP_NAME: &str = "ld.so.orig";

/// Write `data` to `path` through a temporary file in the same directory and a rename, keeping
/// `mode`. `path` must not be a symlink (the caller resolves the loader to its target).
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.udocker-tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io("setting the mode of", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("replacing", path))
}

/// Patch the loader at `loader` (a regular file: the caller resolves symlinks inside the
/// container, so musl's `ld-musl` link is followed to libc) in place. The pristine bytes are
/// saved to `backup` the first time and every later patch starts from them.
pub fn patch_file(loader: &Path, backup: &Path) -> Result<Report, Error> {
    let meta = fs::symlink_metadata(loader).map_err(io("reading", loader))?;
    if !meta.file_type().is_file() {
        return Err(Error::Io {
            op: "patching",
            path: loader.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    let orig = match fs::read(backup) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let b = fs::read(loader).map_err(io("reading", loader))?;
            write_atomic(backup, &b, 0o644)?;
            b
        }
        Err(e) => return Err(io("reading", backup)(e)),
    };
    let (patched, report) = patch_bytes(&orig)?;
    use std::os::unix::fs::PermissionsExt;
    write_atomic(loader, &patched, meta.permissions().mode())?;
    Ok(report)
}

/// Put the pristine loader back from `backup`; false when there is no backup (never patched).
/// The backup is kept (a later patch starts from it again).
pub fn restore_file(loader: &Path, backup: &Path) -> Result<bool, Error> {
    let orig = match fs::read(backup) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("reading", backup)(e)),
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(loader)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o755);
    if fs::read(loader).ok().as_deref() != Some(&orig[..]) {
        write_atomic(loader, &orig, mode)?;
    }
    Ok(true)
}
