//! Did the rename take effect? Only running the patched loader can tell: glibc compares the
//! variable name with immediates in its code (`memcmp(envline, "LIBRARY_PATH", 12)` compiled to
//! compares), so renaming the string may change nothing there (§7, "Checked by running").

use crate::Error;
use std::path::Path;
use std::process::Command;

/// The answer of `probe_rename`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameEffect {
    /// `LD_LIBRARY_REAL` is read and `LD_LIBRARY_PATH` is not.
    Effective,
    /// The loader still reads `LD_LIBRARY_PATH` (or does not read `LD_LIBRARY_REAL`).
    Ineffective { reads_real: bool, reads_path: bool },
}

/// Does `loader --list target` find every library of `target` with only `var=dirs` set?
fn resolves(loader: &Path, target: &Path, var: &str, dirs: &str) -> Result<bool, Error> {
    let o = Command::new(loader)
        .arg("--list")
        .arg(target)
        .env_clear()
        .env(var, dirs)
        .output()
        .map_err(|e| Error::Probe(format!("running {} --list: {e}", loader.display())))?;
    let text = [&o.stdout[..], &o.stderr[..]].concat();
    let text = String::from_utf8_lossy(&text);
    Ok(o.status.success() && !text.contains("not found") && !text.contains("Error"))
}

/// Run the patched `loader` in list mode on `target` (a host path of a dynamic ELF from the
/// container that needs a library other than libc-and-loader-in-one, found in `dirs`, a
/// `:`-list of host directories): once with only `LD_LIBRARY_REAL`, once with only
/// `LD_LIBRARY_PATH`.
pub fn probe_rename(loader: &Path, target: &Path, dirs: &str) -> Result<RenameEffect, Error> {
    let reads_real = resolves(loader, target, "LD_LIBRARY_REAL", dirs)?;
    let reads_path = resolves(loader, target, "LD_LIBRARY_PATH", dirs)?;
    Ok(if reads_real && !reads_path {
        RenameEffect::Effective
    } else {
        RenameEffect::Ineffective {
            reads_real,
            reads_path,
        }
    })
}

/// Is `bytes` a dynamic ELF that can show the rename: one that needs a library other than the
/// loader and, for musl, other than libc (which musl's loader provides itself, whatever the
/// search path)?
pub fn is_probe_target(bytes: &[u8]) -> bool {
    let Ok(elf) = goblin::elf::Elf::parse(bytes) else {
        return false;
    };
    elf.interpreter.is_some()
        && elf
            .libraries
            .iter()
            .any(|l| !(l.starts_with("ld-") || *l == "libc.so" || l.starts_with("libc.musl-")))
}
