//! `--build-resolution-cache`: a linker resolution cache in an allocated `.note.nixos.ldcache` note.
//!
//! The note (owner `NixOS`, type [`NT_NIXOS_LD_CACHE`]) is what the Nixpkgs glibc loader patch reads to
//! skip the run-path search. Its descriptor is a sequence of NUL-terminated `(needed, path-list)` string
//! pairs sorted by `needed`, closed by one extra NUL. Each path-list entry (`:`-separated) is
//! `=<absolute path>` for a library found at patch time or `?<dir>` for a directory the loader must still
//! search itself (a run-path entry with a `$ORIGIN`-style token, or one holding a `glibc-hwcaps`
//! subdirectory, whose choice depends on the machine the program runs on). The byte layout is the one
//! patchelf writes, so that a cache built by either tool is recognised as up to date by the other.
//!
//! Building: the note becomes a new SHT_NOTE section plus a PT_NOTE; the section is handed to the normal
//! layout pass (`layout.rs`) like any grown section, so it lands in the segment that pass maps for moved
//! sections, and the PT_NOTE follows it there. Edits that change what the cache describes (run path,
//! DT_NEEDED) call [`Elf::drop_resolution_cache`], which removes section and program header and zeroes
//! the old bytes.

use crate::dynamic::{str_at, DT_NEEDED, DT_RPATH, DT_RUNPATH};
use crate::error::{Error, Result};
use crate::model::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const LDCACHE_SECTION: &str = ".note.nixos.ldcache";
/// Note owner, NUL included (that is what `n_namesz` counts).
pub const LDCACHE_OWNER: &[u8] = b"NixOS\0";
/// Must match the loader patch in Nixpkgs that reads the note.
pub const NT_NIXOS_LD_CACHE: u32 = 0x63a8_6cb6;

/// `Elf_Nhdr` is three 32-bit words in both ELF classes.
const NHDR_SIZE: usize = 12;

fn already_present() -> Error {
    Error::unsupported(
        "--build-resolution-cache: a resolution cache note is already present; rebuild from an unpatched binary",
    )
}

/// The descriptor for `needed` resolved against `run_path` (DT_RUNPATH or DT_RPATH, colon-separated).
/// `probe` answers the two file-system questions, so that tests need no real directories:
/// `probe(path, true)` — is `path` a readable library file; `probe(dir/glibc-hwcaps, false)` — does it exist.
/// Returns `None` when nothing resolved.
pub(crate) fn descriptor(
    needed: &[Vec<u8>],
    run_path: &[u8],
    probe: &dyn Fn(&Path, bool) -> bool,
) -> Option<Vec<u8>> {
    // A needed name with a slash is opened as a path by the loader, without any run-path search.
    let mut searched: Vec<&[u8]> = needed
        .iter()
        .map(Vec::as_slice)
        .filter(|n| !n.is_empty() && !n.contains(&b'/'))
        .collect();
    searched.sort_unstable();
    searched.dedup();
    let mut cache: BTreeMap<&[u8], Vec<u8>> = BTreeMap::new();
    for dir in run_path.split(|&c| c == b':') {
        // An empty component means the current directory at run time: nothing to bake in.
        if dir.is_empty() {
            continue;
        }
        let dir_path = Path::new(OsStr::from_bytes(dir));
        let hint = dir.contains(&b'$') || probe(&dir_path.join("glibc-hwcaps"), false);
        for &lib in &searched {
            let entry = if hint {
                let mut e = b"?".to_vec();
                e.extend_from_slice(dir);
                e
            } else {
                let mut p = dir.to_vec();
                p.push(b'/');
                p.extend_from_slice(lib);
                if !probe(Path::new(OsStr::from_bytes(&p)), true) {
                    continue;
                }
                let mut e = b"=".to_vec();
                e.extend_from_slice(&p);
                e
            };
            let list = cache.entry(lib).or_default();
            if !list.is_empty() {
                list.push(b':');
            }
            list.extend_from_slice(&entry);
        }
    }
    if cache.is_empty() {
        return None;
    }
    let mut desc = Vec::new();
    for (lib, paths) in cache {
        desc.extend_from_slice(lib);
        desc.push(0);
        desc.extend_from_slice(&paths);
        desc.push(0);
    }
    desc.push(0);
    Some(desc)
}

/// The real file system: a library must open for reading and not be a directory.
pub(crate) fn fs_probe(p: &Path, want_file: bool) -> bool {
    if want_file {
        std::fs::File::open(p)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| !m.is_dir())
    } else {
        p.exists()
    }
}

/// The complete note (header, owner, descriptor, each padded to 4 bytes). `None` if the descriptor is too
/// large for `n_descsz`.
pub(crate) fn encode_note(class: Class, desc: &[u8]) -> Option<Vec<u8>> {
    let descsz = u32::try_from(desc.len()).ok()?;
    let name_pad = round_up(LDCACHE_OWNER.len() as u64, 4) as usize;
    let desc_pad = round_up(desc.len() as u64, 4) as usize;
    let mut n = vec![0u8; NHDR_SIZE + name_pad + desc_pad];
    class.put_u32(&mut n, 0, LDCACHE_OWNER.len() as u32).ok()?;
    class.put_u32(&mut n, 4, descsz).ok()?;
    class.put_u32(&mut n, 8, NT_NIXOS_LD_CACHE).ok()?;
    n[NHDR_SIZE..NHDR_SIZE + LDCACHE_OWNER.len()].copy_from_slice(LDCACHE_OWNER);
    n[NHDR_SIZE + name_pad..NHDR_SIZE + name_pad + desc.len()].copy_from_slice(desc);
    Some(n)
}

/// The descriptor of `note` if it is a well-formed resolution cache note (owner and type checked, every
/// size bounded by the buffer); `None` for anything else, including foreign or truncated notes.
pub(crate) fn decode_note(class: Class, note: &[u8]) -> Option<&[u8]> {
    let namesz = usize::try_from(class.u32(note, 0).ok()?).ok()?;
    let descsz = usize::try_from(class.u32(note, 4).ok()?).ok()?;
    let ntype = class.u32(note, 8).ok()?;
    let name_end = NHDR_SIZE.checked_add(namesz)?;
    let desc_start = NHDR_SIZE.checked_add(usize::try_from(round_up(namesz as u64, 4)).ok()?)?;
    let desc_end = desc_start.checked_add(descsz)?;
    if ntype != NT_NIXOS_LD_CACHE || desc_end > note.len() || name_end > note.len() {
        return None;
    }
    if &note[NHDR_SIZE..name_end] != LDCACHE_OWNER {
        return None;
    }
    Some(&note[desc_start..desc_end])
}

/// Raw DT_NEEDED names and the effective run path.
type NeededAndRunPath = (Vec<Vec<u8>>, Option<Vec<u8>>);

/// What [`Elf::build_resolution_cache`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A new note was added (written by the next `finish`).
    Built,
    /// A note with exactly this content is already there: nothing to do.
    UpToDate,
    /// Nothing to record (no dynamic section, no needed or run path, nothing resolved); a warning says why.
    Skipped,
}

impl Elf {
    /// Raw DT_NEEDED names and the effective run path (DT_RUNPATH wins over DT_RPATH, as in the loader).
    fn needed_and_run_path(&self) -> Result<NeededAndRunPath> {
        let tab = self.dynstr()?;
        let mut needed = Vec::new();
        let (mut runpath, mut rpath) = (None, None);
        for e in self.dyns()? {
            match e.d_tag {
                DT_NEEDED => needed.push(str_at(tab, e.d_val)?.to_vec()),
                DT_RUNPATH if runpath.is_none() => runpath = Some(str_at(tab, e.d_val)?.to_vec()),
                DT_RPATH if rpath.is_none() => rpath = Some(str_at(tab, e.d_val)?.to_vec()),
                _ => {}
            }
        }
        Ok((needed, runpath.or(rpath)))
    }

    /// `--build-resolution-cache` against the real file system.
    pub fn build_resolution_cache(&mut self) -> Result<CacheOutcome> {
        self.build_resolution_cache_with(&fs_probe)
    }

    /// `--build-resolution-cache` with the file-system questions answered by `probe` (see
    /// [`descriptor`]). A note that is already present is accepted only if it is allocated and holds
    /// exactly the descriptor we would write; otherwise this fails, since a stale cache must not survive
    /// silently and rebuilding over an unknown note could leave both behind.
    pub(crate) fn build_resolution_cache_with(
        &mut self,
        probe: &dyn Fn(&Path, bool) -> bool,
    ) -> Result<CacheOutcome> {
        let existing = self.section_index(LDCACHE_SECTION);
        let skip = |elf: &mut Elf, why: &str| -> Result<CacheOutcome> {
            if existing.is_some() {
                return Err(already_present());
            }
            elf.warnings.push(format!(
                "warning: --build-resolution-cache: {why}; no cache written"
            ));
            Ok(CacheOutcome::Skipped)
        };
        if self.dynamic_section().is_none() || self.section_index(".dynstr").is_none() {
            return skip(self, "no dynamic section (statically linked?)");
        }
        let (needed, run_path) = self.needed_and_run_path()?;
        let run_path = run_path.unwrap_or_default();
        if needed.is_empty() || run_path.is_empty() {
            return skip(self, "no DT_NEEDED entries or run path to resolve");
        }
        let Some(desc) = descriptor(&needed, &run_path, probe) else {
            return skip(self, "no libraries resolved against the run path");
        };
        if let Some(i) = existing {
            let alloc = self.shdrs[i].sh_flags & SHF_ALLOC != 0;
            // An unreadable or out-of-bounds note is as stale as a different one.
            let same = self
                .section_data(i)
                .ok()
                .and_then(|d| decode_note(self.class, d))
                .is_some_and(|old| old == desc.as_slice());
            if alloc && same {
                self.debug("resolution cache already up to date");
                return Ok(CacheOutcome::UpToDate);
            }
            return Err(already_present());
        }
        for (lib, paths) in desc_pairs(&desc) {
            self.debug(format!(
                "resolved {} to {}",
                String::from_utf8_lossy(lib),
                String::from_utf8_lossy(paths)
            ));
        }
        let note = encode_note(self.class, &desc)
            .ok_or_else(|| Error::unsupported("resolution cache is too large for a note"))?;
        self.add_alloc_note(LDCACHE_SECTION, note)?;
        Ok(CacheOutcome::Built)
    }

    /// Adds an SHF_ALLOC SHT_NOTE section `name` with `content` and a PT_NOTE for it; both are placed by
    /// the next layout pass. Section name and header tables grow here (they are not mapped, so they go to
    /// the end of the file); the new section gets the last index, so no existing index changes.
    fn add_alloc_note(&mut self, name: &str, content: Vec<u8>) -> Result<()> {
        let c = self.class;
        let new_index = self.shdrs.len();
        let shnum = u16::try_from(new_index + 1)
            .ok()
            .filter(|&n| n < 0xff00) // SHN_LORESERVE: beyond it e_shnum needs extended numbering
            .ok_or_else(|| Error::unsupported("too many sections"))?;
        let sh_name = self.shstrtab_name(name)?;

        // Section header table: one entry more. Copy it to the end of the file (entry 0 included) and
        // clear the old copy, so that nothing that follows it can be overwritten by the bigger table.
        let shsz = c.shdr_size();
        let old_off = self.ehdr.e_shoff;
        let old_len = u64::from(self.ehdr.e_shnum) * shsz;
        let old_end = old_off
            .checked_add(old_len)
            .filter(|&e| e <= self.data.len() as u64)
            .ok_or_else(|| Error::malformed("section header table out of bounds"))?;
        let at = round_up(self.data.len() as u64, c.word());
        let new_end = at + old_len + shsz;
        let table = self.data[old_off as usize..old_end as usize].to_vec();
        self.data.resize(to_usize(new_end)?, 0);
        self.data[at as usize..(at + old_len) as usize].copy_from_slice(&table);
        self.data[old_off as usize..old_end as usize].fill(0);
        self.ehdr.e_shoff = at;
        self.ehdr.e_shnum = shnum;

        // The note has no place yet: it is given a provisional offset just past the end of the file (no
        // existing section or segment is there), and the PT_NOTE the same range, so that the layout pass
        // moves both together exactly as it moves an existing note and its PT_NOTE.
        let provisional = round_up(self.data.len() as u64, 4);
        let size = content.len() as u64;
        self.shdrs.push(Shdr {
            sh_name,
            sh_type: SHT_NOTE,
            sh_flags: SHF_ALLOC,
            sh_addr: 0,
            sh_offset: provisional,
            sh_size: size,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: 4,
            sh_entsize: 0,
            name: name.to_string(),
        });
        self.phdrs.push(Phdr {
            p_type: PT_NOTE,
            p_flags: PF_R,
            p_offset: provisional,
            p_vaddr: provisional,
            p_paddr: provisional,
            p_filesz: size,
            p_memsz: size,
            p_align: 4,
        });
        self.debug(format!(
            "adding section '{name}' with size {size} and a PT_NOTE for it"
        ));
        self.replaced.insert(new_index, content);
        self.new_sections.insert(new_index);
        self.changed = true;
        Ok(())
    }

    /// Offset of `name` in the section name table, appending it (and moving the table to the end of the
    /// file, it is not mapped) when no NUL-terminated copy is there yet.
    fn shstrtab_name(&mut self, name: &str) -> Result<u32> {
        let si = usize::from(self.ehdr.e_shstrndx);
        let mut key = name.as_bytes().to_vec();
        key.push(0);
        let tab = self.section_data(si)?;
        if let Some(p) = tab.windows(key.len()).position(|w| w == key.as_slice()) {
            return u32::try_from(p).map_err(|_| Error::malformed("section name table too large"));
        }
        let mut grown = tab.to_vec();
        let off = u32::try_from(grown.len())
            .map_err(|_| Error::malformed("section name table too large"))?;
        grown.extend_from_slice(&key);
        if let Some(pending) = self.replaced.get_mut(&si) {
            // Already being moved by this run: grow the pending copy instead.
            *pending = grown;
            return Ok(off);
        }
        let at = self.data.len() as u64;
        self.data.extend_from_slice(&grown);
        let s = &mut self.shdrs[si];
        s.sh_offset = at;
        s.sh_size = grown.len() as u64;
        self.headers_dirty = true;
        Ok(off)
    }

    /// Removes the resolution cache note, if any: its section header, the PT_NOTE (and a PT_LOAD made
    /// just for it, as patchelf lays it out) covering exactly its bytes, and the bytes themselves (zeroed:
    /// the descriptor names store paths, which Nix's reference scanner must no longer find).
    /// Returns whether a note was there.
    pub fn drop_resolution_cache(&mut self) -> Result<bool> {
        let Some(idx) = self.section_index(LDCACHE_SECTION) else {
            return Ok(false);
        };
        let shstrndx = usize::from(self.ehdr.e_shstrndx);
        if idx == shstrndx {
            return Err(Error::malformed(
                "cannot remove resolution cache note: section name table index points to it",
            ));
        }
        self.debug(format!("removing section '{LDCACHE_SECTION}'"));
        let sh = self.shdrs[idx].clone();
        let (off, size) = (sh.sh_offset, sh.sh_size);
        if sh.sh_type != SHT_NOBITS && !self.new_sections.contains(&idx) {
            if let Some(end) = off
                .checked_add(size)
                .filter(|&e| e <= self.data.len() as u64)
            {
                self.data[off as usize..end as usize].fill(0);
            }
        }
        self.phdrs.retain(|p| {
            !(matches!(p.p_type, PT_LOAD | PT_NOTE) && p.p_offset == off && p.p_filesz == size)
        });
        self.remove_section_header(idx)?;
        Ok(true)
    }

    /// Deletes section header `idx` and renumbers every reference to the sections after it: `e_shstrndx`,
    /// `sh_link`, `sh_info` (where it names a section), symbols' `st_shndx`, and the pending edits.
    fn remove_section_header(&mut self, idx: usize) -> Result<()> {
        let remap = |i: usize| -> Option<usize> {
            match i.cmp(&idx) {
                std::cmp::Ordering::Less => Some(i),
                std::cmp::Ordering::Equal => None,
                std::cmp::Ordering::Greater => Some(i - 1),
            }
        };
        let remap32 = |v: u32| -> u32 {
            usize::try_from(v)
                .ok()
                .map_or(v, |i| remap(i).map_or(0, |j| j as u32))
        };
        // Symbols first, while the symbol tables still have their old indices.
        let c = self.class;
        let symtabs: Vec<usize> = (1..self.shdrs.len())
            .filter(|&i| i != idx && matches!(self.shdrs[i].sh_type, SHT_SYMTAB | SHT_DYNSYM))
            .collect();
        for t in symtabs {
            let ss = c.sym_size();
            let shndx_at = if c.is64 { 6 } else { 14 };
            let buf = self.section_data_mut(t)?;
            for k in 0..buf.len() as u64 / ss {
                let o = k * ss + shndx_at;
                let shndx = c.u16(buf, o)?;
                // 0 is SHN_UNDEF; 0xff00 and up are reserved (SHN_ABS, SHN_COMMON, SHN_XINDEX, ...).
                if shndx == 0 || shndx >= 0xff00 {
                    continue;
                }
                let new = remap(usize::from(shndx)).map_or(0, |j| j as u16);
                if new != shndx {
                    c.put_u16(buf, o, new)?;
                }
            }
        }
        self.shdrs.remove(idx);
        for s in self.shdrs.iter_mut().skip(1) {
            s.sh_link = remap32(s.sh_link);
            // sh_info is a section index only for relocation sections and with SHF_INFO_LINK.
            if matches!(s.sh_type, SHT_REL | SHT_RELA) || s.sh_flags & SHF_INFO_LINK != 0 {
                s.sh_info = remap32(s.sh_info);
            }
        }
        let shstrndx = usize::from(self.ehdr.e_shstrndx);
        self.ehdr.e_shstrndx = remap(shstrndx)
            .and_then(|j| u16::try_from(j).ok())
            .ok_or_else(|| Error::malformed("string table index out of bounds"))?;
        self.replaced = std::mem::take(&mut self.replaced)
            .into_iter()
            .filter_map(|(k, v)| remap(k).map(|j| (j, v)))
            .collect();
        self.new_sections = std::mem::take(&mut self.new_sections)
            .into_iter()
            .filter_map(remap)
            .collect();
        // The table shrinks in place; clear the entry it no longer covers.
        let shsz = self.class.shdr_size();
        let n =
            u16::try_from(self.shdrs.len()).map_err(|_| Error::unsupported("too many sections"))?;
        let dead = self.ehdr.e_shoff + u64::from(n) * shsz;
        if let Some(end) = dead
            .checked_add(shsz)
            .filter(|&e| e <= self.data.len() as u64)
        {
            self.data[dead as usize..end as usize].fill(0);
        }
        self.ehdr.e_shnum = n;
        self.headers_dirty = true;
        self.changed = true;
        Ok(())
    }
}

/// `(needed, path-list)` pairs of a descriptor (for the debug trace).
fn desc_pairs(desc: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut it = desc.split(|&c| c == 0);
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        if a.is_empty() {
            break;
        }
        out.push((a, b));
    }
    out
}

fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::unsupported("file would become too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RpathOp;
    use std::collections::BTreeSet;

    fn host(path: &str) -> Option<Elf> {
        match std::fs::read(path) {
            Ok(d) => Some(Elf::parse(d).expect("host ELF parses")),
            Err(_) => {
                eprintln!("skipped: {path} missing");
                None
            }
        }
    }

    /// A file system holding exactly `files` (libraries) and `dirs` (glibc-hwcaps directories).
    fn fake<'a>(files: &'a [&'a str], dirs: &'a [&'a str]) -> impl Fn(&Path, bool) -> bool + 'a {
        move |p: &Path, want_file: bool| {
            let p = p.to_string_lossy();
            if want_file {
                files.contains(&p.as_ref())
            } else {
                dirs.contains(&p.as_ref())
            }
        }
    }

    fn v(names: &[&str]) -> Vec<Vec<u8>> {
        names.iter().map(|n| n.as_bytes().to_vec()).collect()
    }

    #[test]
    fn descriptor_format_and_hints() {
        let probe = fake(
            &[
                "/a/libfoo.so",
                "/b/libbar.so",
                "/b/libfoo.so",
                "/h/libfoo.so",
            ],
            &["/h/glibc-hwcaps"],
        );
        let needed = v(&[
            "libfoo.so",
            "libbar.so",
            "/abs/libx.so",
            "libfoo.so",
            "libnone.so",
        ]);
        let d = descriptor(&needed, b"/a::$ORIGIN/lib:/b:/h", &probe).unwrap();
        let want: &[u8] = b"libbar.so\0?$ORIGIN/lib:=/b/libbar.so:?/h\0\
libfoo.so\0=/a/libfoo.so:?$ORIGIN/lib:=/b/libfoo.so:?/h\0\
libnone.so\0?$ORIGIN/lib:?/h\0\0";
        assert_eq!(
            String::from_utf8_lossy(&d),
            String::from_utf8_lossy(want),
            "sorted pairs, run-path order within a pair, hints for tokens and hwcaps"
        );
        // Nothing found and no hints: no descriptor.
        assert_eq!(descriptor(&needed, b"/empty:", &probe), None);
        // Only path-named libraries: nothing is searched.
        assert_eq!(descriptor(&v(&["/abs/libx.so"]), b"$ORIGIN", &probe), None);
    }

    #[test]
    fn note_round_trip_and_hostile_notes() {
        for class in [
            Class {
                is64: true,
                big_endian: false,
            },
            Class {
                is64: false,
                big_endian: true,
            },
        ] {
            let desc = b"libfoo.so\0=/a/libfoo.so\0\0";
            let n = encode_note(class, desc).unwrap();
            assert_eq!(n.len() % 4, 0);
            assert_eq!(n.len(), 12 + 8 + round_up(desc.len() as u64, 4) as usize);
            assert_eq!(decode_note(class, &n), Some(&desc[..]));
            // Truncated anywhere: never read past the end.
            for k in 0..n.len() - 3 {
                assert_eq!(decode_note(class, &n[..k]), None, "truncated to {k}");
            }
            let mut bad = n.clone();
            class.put_u32(&mut bad, 8, 1).unwrap(); // another type
            assert_eq!(decode_note(class, &bad), None);
            let mut bad = n.clone();
            bad[12] = b'G'; // another owner
            assert_eq!(decode_note(class, &bad), None);
            let mut bad = n.clone();
            class.put_u32(&mut bad, 4, u32::MAX).unwrap(); // descsz past the end
            assert_eq!(decode_note(class, &bad), None);
            let mut bad = n;
            class.put_u32(&mut bad, 0, u32::MAX).unwrap(); // namesz past the end
            assert_eq!(decode_note(class, &bad), None);
        }
    }

    /// The note section, its PT_NOTE and the PT_LOAD that maps it, as the loader will see them.
    fn check_placed(e: &Elf, desc: &[u8]) {
        let i = e.section_index(LDCACHE_SECTION).expect("note section");
        let s = &e.shdrs[i];
        assert_eq!(s.sh_type, SHT_NOTE);
        assert_ne!(s.sh_flags & SHF_ALLOC, 0);
        assert_eq!(s.sh_offset % 4, 0);
        let notes: Vec<&Phdr> = e
            .phdrs
            .iter()
            .filter(|p| p.p_type == PT_NOTE && p.p_offset == s.sh_offset)
            .collect();
        assert_eq!(notes.len(), 1, "exactly one PT_NOTE covers the note");
        assert_eq!(notes[0].p_filesz, s.sh_size);
        assert_eq!(notes[0].p_vaddr, s.sh_addr);
        let load = e
            .phdrs
            .iter()
            .find(|p| {
                p.p_type == PT_LOAD
                    && p.p_offset <= s.sh_offset
                    && s.sh_offset + s.sh_size <= p.p_offset + p.p_filesz
            })
            .expect("a PT_LOAD maps the note");
        assert_eq!(load.p_vaddr + (s.sh_offset - load.p_offset), s.sh_addr);
        assert_eq!(decode_note(e.class, e.section_data(i).unwrap()), Some(desc));
    }

    #[test]
    fn build_is_idempotent_and_edits_drop_it() {
        let Some(mut e) = host("/bin/true") else {
            return;
        };
        let probe = fake(&["/opt/a/libc.so.6"], &[]);
        e.modify_rpath(&RpathOp::Set("/opt/a".into()), false)
            .unwrap();
        e.finish().unwrap();
        let mut e = Elf::parse(e.into_bytes()).unwrap();
        assert_eq!(
            e.build_resolution_cache_with(&probe).unwrap(),
            CacheOutcome::Built
        );
        e.finish().unwrap();
        assert!(e.is_changed());
        let built = e.into_bytes();
        let mut e = Elf::parse(built.clone()).unwrap();
        let desc = b"libc.so.6\0=/opt/a/libc.so.6\0\0";
        check_placed(&e, desc);

        // Again: nothing to do, bytes untouched.
        assert_eq!(
            e.build_resolution_cache_with(&probe).unwrap(),
            CacheOutcome::UpToDate
        );
        e.finish().unwrap();
        assert!(!e.is_changed());
        assert!(e.bytes() == &built[..]);

        // A different resolution with the note present: refused.
        let other = fake(
            &["/opt/a/libc.so.6", "/opt/a/other"],
            &["/opt/a/glibc-hwcaps"],
        );
        let err = e.build_resolution_cache_with(&other).unwrap_err();
        assert!(err.to_string().contains("already present"), "{err}");

        // Run path edits, needed edits: the note, its PT_NOTE and its bytes go.
        type Edit = fn(&mut Elf) -> Result<()>;
        let edits: &[(&str, Edit)] = &[
            ("set-rpath", |e| {
                e.modify_rpath(&RpathOp::Set("/opt/b".into()), false)
            }),
            ("add-rpath", |e| {
                e.modify_rpath(&RpathOp::Add("/opt/b".into()), false)
            }),
            ("remove-rpath", |e| e.modify_rpath(&RpathOp::Remove, false)),
            ("add-needed", |e| {
                e.add_needed(&BTreeSet::from(["libx.so".to_string()]))
            }),
            ("remove-needed", |e| {
                e.remove_needed(&BTreeSet::from(["libc.so.6".to_string()]))
            }),
            ("replace-needed", |e| {
                e.replace_needed(&[("libc.so.6".into(), "libc-other.so".into())])
            }),
        ];
        let old = Elf::parse(built.clone()).unwrap();
        let oi = old.section_index(LDCACHE_SECTION).unwrap();
        let (ooff, osize) = (old.shdrs[oi].sh_offset, old.shdrs[oi].sh_size);
        for (what, edit) in edits {
            let mut e = Elf::parse(built.clone()).unwrap();
            edit(&mut e).unwrap();
            e.finish().unwrap();
            let e = Elf::parse(e.into_bytes()).unwrap();
            assert_eq!(e.section_index(LDCACHE_SECTION), None, "{what}");
            assert!(
                !e.phdrs
                    .iter()
                    .any(|p| p.p_type == PT_NOTE && p.p_offset == ooff),
                "{what}: PT_NOTE left behind"
            );
            assert_eq!(e.shdrs.len(), old.shdrs.len() - 1, "{what}");
            assert!(
                e.data[ooff as usize..(ooff + osize) as usize]
                    .iter()
                    .all(|&b| b == 0)
                    || e.data[ooff as usize..(ooff + osize) as usize]
                        .iter()
                        .all(|&b| b == b'Z'),
                "{what}: old note bytes survive"
            );
        }
        // No-op edits keep it.
        let keep: &[(&str, Edit)] = &[
            ("same rpath", |e| {
                e.modify_rpath(&RpathOp::Set("/opt/a".into()), false)
            }),
            ("remove absent", |e| {
                e.remove_needed(&BTreeSet::from(["libabsent.so".to_string()]))
            }),
            ("replace absent", |e| {
                e.replace_needed(&[("libabsent.so".into(), "x.so".into())])
            }),
        ];
        for (what, edit) in keep {
            let mut e = Elf::parse(built.clone()).unwrap();
            edit(&mut e).unwrap();
            e.finish().unwrap();
            let e = Elf::parse(e.into_bytes()).unwrap();
            check_placed(&e, desc);
            assert!(!what.is_empty());
        }

        // Rebuilding after a run-path change resolves against the new run path.
        let mut e = Elf::parse(built).unwrap();
        e.modify_rpath(&RpathOp::Set("/opt/b:$ORIGIN/../lib".into()), false)
            .unwrap();
        let probe_b = fake(&["/opt/b/libc.so.6"], &[]);
        assert_eq!(
            e.build_resolution_cache_with(&probe_b).unwrap(),
            CacheOutcome::Built
        );
        e.finish().unwrap();
        let e = Elf::parse(e.into_bytes()).unwrap();
        check_placed(&e, b"libc.so.6\0=/opt/b/libc.so.6:?$ORIGIN/../lib\0\0");
        assert_eq!(e.rpath().unwrap().as_deref(), Some("/opt/b:$ORIGIN/../lib"));
    }

    #[test]
    fn nothing_to_resolve_warns_or_fails_on_a_stale_note() {
        let Some(mut e) = host("/bin/true") else {
            return;
        };
        e.modify_rpath(&RpathOp::Remove, false).unwrap();
        assert_eq!(
            e.build_resolution_cache_with(&fake(&[], &[])).unwrap(),
            CacheOutcome::Skipped
        );
        let w = e.take_warnings();
        assert!(w[0].contains("no DT_NEEDED entries or run path"), "{w:?}");
        // A foreign, unparseable section under our name counts as a stale note.
        let i = e.section_index(".note.ABI-tag").unwrap();
        e.shdrs[i].name = LDCACHE_SECTION.into();
        let err = e.build_resolution_cache_with(&fake(&[], &[])).unwrap_err();
        assert!(err.to_string().contains("already present"), "{err}");
    }

    #[test]
    fn removing_a_middle_section_renumbers_references() {
        let Some(mut e) = host("/usr/lib/x86_64-linux-gnu/libz.so.1") else {
            return;
        };
        let names = |e: &Elf| e.shdrs.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        // Symbol -> name of its section, for the defined dynamic symbols.
        let sym_secs = |e: &Elf| -> Vec<String> {
            let ds = e.section_index(".dynsym").unwrap();
            let d = e.section_data(ds).unwrap();
            d.chunks_exact(24)
                .map(|s| u16::from_le_bytes([s[6], s[7]]))
                .filter(|&n| n != 0 && n < 0xff00)
                .map(|n| e.shdrs[usize::from(n)].name.clone())
                .collect()
        };
        let before_syms = sym_secs(&e);
        assert!(!before_syms.is_empty());
        let mut before = names(&e);
        let victim = e.section_index(".gnu.hash").unwrap();
        e.shdrs[victim].name = LDCACHE_SECTION.into();
        assert!(e.drop_resolution_cache().unwrap());
        e.finish().unwrap();
        let e = Elf::parse(e.into_bytes()).unwrap();
        before.remove(victim);
        assert_eq!(names(&e), before);
        assert_eq!(sym_secs(&e), before_syms);
        let ds = e.section_index(".dynsym").unwrap();
        assert_eq!(e.shdrs[e.shdrs[ds].sh_link as usize].name, ".dynstr");
        assert_eq!(e.shdrs[usize::from(e.ehdr.e_shstrndx)].name, ".shstrtab");
    }
}
