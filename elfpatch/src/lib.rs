//! `elfpatch`: a patchelf-compatible ELF patcher (udocker modes F3/F4).
//!
//! The library parses an ELF file into [`Elf`], applies edits (interpreter, run path, needed, soname,
//! flags, root prefixes) to copies of the affected sections, and lays the result out the way patchelf
//! 0.19 does (`Elf::finish`). It never prints; [`cli::main`] is the patchelf-compatible front end.
//! Behaviour follows `shared/spec/elf-fakechroot.md` §1–§3; no patchelf code is used.
#![forbid(unsafe_code)]

pub mod cli;
mod dynamic;
pub mod error;
mod hash;
mod layout;
pub mod ldcache;
pub mod model;
mod ops;
pub mod write;

pub use error::{Error, Result};
pub use ldcache::CacheOutcome;
pub use model::Elf;
pub use ops::{os_abi_name, parse_os_abi, RpathOp};

/// Reads, edits and writes one file: the library form of a patchelf run. `edit` applies the edits;
/// the file is rewritten (temp file + rename) only if something changed.
pub fn patch_file(
    path: &std::path::Path,
    edit: impl FnOnce(&mut Elf) -> Result<()>,
) -> Result<bool> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("getting info about", path, e))?;
    let data = std::fs::read(path).map_err(|e| Error::io("opening", path, e))?;
    let mut elf = Elf::parse(data)?;
    edit(&mut elf)?;
    elf.finish()?;
    if elf.is_changed() {
        write::write_image(path, elf.bytes(), &meta)?;
    }
    Ok(elf.is_changed())
}
