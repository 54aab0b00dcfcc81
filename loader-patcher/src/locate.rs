//! Where the loader keeps its strings, and which loader it is.

use crate::Error;
use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_LOAD};
use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_PROGBITS};
use goblin::elf::Elf;

/// A byte range of the file (`offset..offset + len`, bounded by the file size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub offset: usize,
    pub len: usize,
}

/// Which loader the file is, which decides the replacement rules (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// glibc's `ld-linux*.so*`.
    Glibc,
    /// musl's `ld-musl-*.so.1`, which is musl's libc too.
    Musl,
}

fn bounded(offset: u64, size: u64, file_len: usize) -> Option<Region> {
    let offset = usize::try_from(offset).ok()?;
    let len = usize::try_from(size).ok()?;
    (offset.checked_add(len)? <= file_len && len > 0).then_some(Region { offset, len })
}

/// The read-only string sections (`.rodata*`: allocated PROGBITS, neither writable nor
/// executable); without section headers (a stripped or hostile file), the read-only,
/// non-executable `PT_LOAD` segments. Sorted by offset, each bounded by the file size.
pub fn string_regions(bytes: &[u8]) -> Result<Vec<Region>, Error> {
    let elf = Elf::parse(bytes).map_err(|e| Error::Parse(e.to_string()))?;
    let mut out: Vec<Region> = Vec::new();
    for sh in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
        let flags = sh.sh_flags;
        if sh.sh_type == SHT_PROGBITS
            && name.starts_with(".rodata")
            && flags & u64::from(SHF_ALLOC) != 0
            && flags & u64::from(SHF_WRITE | SHF_EXECINSTR) == 0
        {
            if let Some(r) = bounded(sh.sh_offset, sh.sh_size, bytes.len()) {
                out.push(r);
            }
        }
    }
    if out.is_empty() {
        for ph in &elf.program_headers {
            if ph.p_type == PT_LOAD && ph.p_flags & PF_R != 0 && ph.p_flags & (PF_W | PF_X) == 0 {
                if let Some(r) = bounded(ph.p_offset, ph.p_filesz, bytes.len()) {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by_key(|r| r.offset);
    if out.is_empty() {
        return Err(Error::NoStrings);
    }
    Ok(out)
}

/// The NUL-delimited strings of a region as `(file offset, bytes without the NUL)`.
pub(crate) fn strings(bytes: &[u8], r: Region) -> impl Iterator<Item = (usize, &[u8])> {
    let data = &bytes[r.offset..r.offset + r.len];
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < data.len() {
            let start = at;
            let end = data[start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(data.len(), |p| start + p);
            at = end + 1;
            if end > start {
                return Some((r.offset + start, &data[start..end]));
            }
        }
        None
    })
}

/// musl's built-in library path (`ldso/dynlink.c`), the string that identifies its loader.
pub(crate) const MUSL_SYS_PATH: &[u8] = b"/lib:/usr/local/lib:/usr/lib";

/// Which loader this is: musl's carries its default search path as one string, glibc's names
/// its cache file.
pub(crate) fn flavor(bytes: &[u8], regions: &[Region]) -> Result<Flavor, Error> {
    let mut glibc = false;
    for r in regions {
        for (_, s) in strings(bytes, *r) {
            if s == MUSL_SYS_PATH {
                return Ok(Flavor::Musl);
            }
            glibc |= s == b"/etc/ld.so.cache";
        }
    }
    if glibc {
        Ok(Flavor::Glibc)
    } else {
        Err(Error::UnknownLoader)
    }
}
