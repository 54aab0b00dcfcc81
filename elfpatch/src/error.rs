//! Typed errors of the patcher. `Display` gives patchelf 0.19's wording (the upstream test suite greps it),
//! without the `patchelf: ` prefix, which only the CLI adds.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// The input is not something we can parse: patchelf's hardening messages
    /// (`program header table out of bounds`, `wrong ELF type`, …).
    Malformed(String),
    /// The input is valid but the requested edit is impossible (`cannot find section '.interp'…`,
    /// `virtual address space underrun!`).
    Unsupported(String),
    /// Reading or writing a file failed; `op` names the step (`getting info about`, `opening`, `writing`).
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        Error::Malformed(msg.into())
    }
    pub(crate) fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `strerror`-style text of an I/O error: Rust appends ` (os error N)`, patchelf does not.
pub fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(m) | Error::Unsupported(m) => f.write_str(m),
            Error::Io { op, path, source } => {
                write!(f, "{op} '{}': {}", path.display(), io_text(source))
            }
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

pub type Result<T> = std::result::Result<T, Error>;
