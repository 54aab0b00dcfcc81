//! `loader-patcher`: a patched copy of a container's own loader for modes F2–F4
//! (`spec/elf-fakechroot.md` §7, `spec/udocker.md` §5 `patch_ld`/`restore_ld`).
//!
//! The patched loader must never read the host's `/etc/ld.so.cache`, `/etc/ld.so.preload` or
//! default library directories (`/lib`, `/usr/lib`…), and it should read `LD_LIBRARY_REAL`
//! instead of `LD_LIBRARY_PATH`, so that a container program that rewrites `LD_LIBRARY_PATH`
//! still gets the container's libraries. Every replacement keeps the length of what it replaces,
//! so no ELF structure moves.
//!
//! Unlike upstream's `bytes.replace` over the whole file, replacements are made only at the
//! start of NUL-delimited strings inside the loader's read-only string sections (`.rodata*`,
//! found through the section headers, or the read-only `PT_LOAD` segments when there are none):
//! on musl the loader *is* libc, and a whole-file replace also rewrites libc's own data
//! (`/usr/share/zoneinfo/`, the default `PATH`). For musl only the strings the loader uses for
//! its search path are touched.
//!
//! The file is hostile input: every offset and size from its headers is bounded against the
//! buffer before use.
#![forbid(unsafe_code)]

mod backup;
mod locate;
mod patch;
mod probe;

pub use backup::{patch_file, restore_file, BACKUP_NAME};
pub use locate::{string_regions, Flavor, Region};
pub use patch::{patch_bytes, Change, Report};
pub use probe::{is_probe_target, probe_rename, RenameEffect};

use std::path::PathBuf;

/// What went wrong, named after the step that failed.
#[derive(Debug)]
pub enum Error {
    /// The bytes are not an ELF file goblin can read.
    Parse(String),
    /// No read-only string section or segment to patch in.
    NoStrings,
    /// Neither glibc's nor musl's loader (the strings each must contain are missing).
    UnknownLoader,
    /// An I/O step on a path failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The probe could not run the loader.
    Probe(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Parse(e) => write!(f, "not a loadable ELF file: {e}"),
            Error::NoStrings => write!(f, "no read-only string section in the loader"),
            Error::UnknownLoader => {
                write!(
                    f,
                    "neither a glibc nor a musl loader (its search-path strings are missing)"
                )
            }
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::Probe(e) => write!(f, "probing the patched loader: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}
