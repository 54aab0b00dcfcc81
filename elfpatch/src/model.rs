//! The in-memory ELF image: header, program and section headers decoded into width-independent structs,
//! plus the raw bytes. Every count and offset from the file is checked here before anything indexes with it.
//! Field names follow elf(5).

use crate::error::{Error, Result};
use scroll::{Endian, Pread, Pwrite};
use std::collections::{BTreeMap, BTreeSet};

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;

pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_NOTE: u32 = 4;
pub const PT_PHDR: u32 = 6;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_PROPERTY: u32 = 0x6474_e553;
pub const PT_MIPS_ABIFLAGS: u32 = 0x7000_0003;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

pub const SHT_NULL: u32 = 0;
pub const SHT_PROGBITS: u32 = 1;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOTE: u32 = 7;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_REL: u32 = 9;
pub const SHT_DYNSYM: u32 = 11;

pub const SHF_WRITE: u64 = 1;
pub const SHF_ALLOC: u64 = 2;
pub const SHF_INFO_LINK: u64 = 0x40;

pub const EM_SPARC: u16 = 2;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC: u16 = 20;
pub const EM_PPC64: u16 = 21;
pub const EM_SPARCV9: u16 = 43;
pub const EM_IA_64: u16 = 50;
pub const EM_AARCH64: u16 = 183;
pub const EM_TILEGX: u16 = 191;
pub const EM_ALPHA: u16 = 0x9026;
pub const EM_LOONGARCH: u16 = 258;

/// The ELF header fields we use; `e_ident` is kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ehdr {
    pub e_type: u16,
    pub e_machine: u16,
    pub e_entry: u64,
    pub e_phoff: u64,
    pub e_shoff: u64,
    pub e_ehsize: u16,
    pub e_phentsize: u16,
    pub e_phnum: u16,
    pub e_shentsize: u16,
    pub e_shnum: u16,
    pub e_shstrndx: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shdr {
    pub sh_name: u32,
    pub sh_type: u32,
    pub sh_flags: u64,
    pub sh_addr: u64,
    pub sh_offset: u64,
    pub sh_size: u64,
    pub sh_link: u32,
    pub sh_info: u32,
    pub sh_addralign: u64,
    pub sh_entsize: u64,
    /// Decoded from `.shstrtab` at load time.
    pub name: String,
}

/// Width and byte order of the file, with bounds-checked accessors on a byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub is64: bool,
    pub big_endian: bool,
}

fn oob() -> Error {
    Error::malformed("data region extends past file end")
}

impl Class {
    pub fn endian(self) -> Endian {
        if self.big_endian {
            Endian::Big
        } else {
            Endian::Little
        }
    }
    pub fn word(self) -> u64 {
        if self.is64 {
            8
        } else {
            4
        }
    }
    pub fn ehdr_size(self) -> u64 {
        if self.is64 {
            64
        } else {
            52
        }
    }
    pub fn phdr_size(self) -> u64 {
        if self.is64 {
            56
        } else {
            32
        }
    }
    pub fn shdr_size(self) -> u64 {
        if self.is64 {
            64
        } else {
            40
        }
    }
    pub fn dyn_size(self) -> u64 {
        2 * self.word()
    }
    pub fn sym_size(self) -> u64 {
        if self.is64 {
            24
        } else {
            16
        }
    }
    pub fn u8(self, b: &[u8], off: u64) -> Result<u8> {
        b.get(usize::try_from(off).map_err(|_| oob())?)
            .copied()
            .ok_or_else(oob)
    }
    pub fn u16(self, b: &[u8], off: u64) -> Result<u16> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pread_with(o, self.endian()).map_err(|_| oob())
    }
    pub fn u32(self, b: &[u8], off: u64) -> Result<u32> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pread_with(o, self.endian()).map_err(|_| oob())
    }
    pub fn u64(self, b: &[u8], off: u64) -> Result<u64> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pread_with(o, self.endian()).map_err(|_| oob())
    }
    /// A class-sized word (`Elf32_Addr`/`Elf64_Addr`, `Off`, `Xword`).
    pub fn word_at(self, b: &[u8], off: u64) -> Result<u64> {
        if self.is64 {
            self.u64(b, off)
        } else {
            self.u32(b, off).map(u64::from)
        }
    }
    pub fn put_u16(self, b: &mut [u8], off: u64, v: u16) -> Result<()> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pwrite_with(v, o, self.endian())
            .map(|_| ())
            .map_err(|_| oob())
    }
    pub fn put_u32(self, b: &mut [u8], off: u64, v: u32) -> Result<()> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pwrite_with(v, o, self.endian())
            .map(|_| ())
            .map_err(|_| oob())
    }
    pub fn put_u64(self, b: &mut [u8], off: u64, v: u64) -> Result<()> {
        let o = usize::try_from(off).map_err(|_| oob())?;
        b.pwrite_with(v, o, self.endian())
            .map(|_| ())
            .map_err(|_| oob())
    }
    /// Writes a class-sized word; a value that does not fit 32 bits is an error, never a silent truncation.
    pub fn put_word(self, b: &mut [u8], off: u64, v: u64) -> Result<()> {
        if self.is64 {
            self.put_u64(b, off, v)
        } else {
            let v = u32::try_from(v)
                .map_err(|_| Error::unsupported("value does not fit a 32-bit ELF field"))?;
            self.put_u32(b, off, v)
        }
    }
}

/// A dynamic entry (`Elf_Dyn`), tag sign-extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dyn {
    pub d_tag: i64,
    pub d_val: u64,
}

/// A parsed ELF file plus the pending edits (replaced section contents) of one patch run.
#[derive(Debug, Clone)]
pub struct Elf {
    pub(crate) data: Vec<u8>,
    pub(crate) class: Class,
    pub(crate) ehdr: Ehdr,
    pub(crate) phdrs: Vec<Phdr>,
    pub(crate) shdrs: Vec<Shdr>,
    /// New contents of sections (by section index) that the next layout pass must place.
    pub(crate) replaced: BTreeMap<usize, Vec<u8>>,
    pub(crate) changed: bool,
    pub(crate) page_size: Option<u64>,
    /// Trace lines (`--debug`) and warnings, collected for the caller to print.
    pub(crate) debug_log: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) clobber_old_sections: bool,
    /// A program header was added: lay out even without replaced sections.
    pub(crate) force_layout: bool,
    /// Sections added by this run (keys of `replaced` with no bytes in the file yet; their offset is
    /// provisional, past the end of the file, until the layout pass places them).
    pub(crate) new_sections: BTreeSet<usize>,
    /// Program or section headers changed in memory (a section was removed or a non-allocated table
    /// moved): `finish` must write the header tables even when no section is being moved.
    pub(crate) headers_dirty: bool,
}

fn checked_end(off: u64, size: u64) -> Option<u64> {
    off.checked_add(size)
}

impl Elf {
    /// Parses and validates `data`. The checks and their messages follow patchelf 0.19's constructor.
    pub fn parse(data: Vec<u8>) -> Result<Elf> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(Error::malformed("not an ELF executable"));
        }
        if data.len() < 52 {
            return Err(Error::malformed("missing ELF header"));
        }
        let is64 = match data[4] {
            1 => false,
            2 => true,
            _ => return Err(Error::malformed("ELF executable is not 32 or 64-bit")),
        };
        let big_endian = match data[5] {
            1 => false,
            2 => true,
            _ => return Err(Error::malformed("ELF executable has an unknown byte order")),
        };
        let class = Class { is64, big_endian };
        if (data.len() as u64) < class.ehdr_size() {
            return Err(Error::malformed("missing ELF header"));
        }
        let d = &data[..];
        let ehdr = if is64 {
            Ehdr {
                e_type: class.u16(d, 16)?,
                e_machine: class.u16(d, 18)?,
                e_entry: class.u64(d, 24)?,
                e_phoff: class.u64(d, 32)?,
                e_shoff: class.u64(d, 40)?,
                e_ehsize: class.u16(d, 52)?,
                e_phentsize: class.u16(d, 54)?,
                e_phnum: class.u16(d, 56)?,
                e_shentsize: class.u16(d, 58)?,
                e_shnum: class.u16(d, 60)?,
                e_shstrndx: class.u16(d, 62)?,
            }
        } else {
            Ehdr {
                e_type: class.u16(d, 16)?,
                e_machine: class.u16(d, 18)?,
                e_entry: class.u32(d, 24)?.into(),
                e_phoff: class.u32(d, 28)?.into(),
                e_shoff: class.u32(d, 32)?.into(),
                e_ehsize: class.u16(d, 40)?,
                e_phentsize: class.u16(d, 42)?,
                e_phnum: class.u16(d, 44)?,
                e_shentsize: class.u16(d, 46)?,
                e_shnum: class.u16(d, 48)?,
                e_shstrndx: class.u16(d, 50)?,
            }
        };
        if ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN {
            return Err(Error::malformed("wrong ELF type"));
        }
        let len = data.len() as u64;
        let ph_end = u64::from(ehdr.e_phnum)
            .checked_mul(u64::from(ehdr.e_phentsize))
            .and_then(|s| checked_end(ehdr.e_phoff, s));
        if ph_end.is_none_or(|e| e > len) {
            return Err(Error::malformed("program header table out of bounds"));
        }
        if ehdr.e_shnum == 0 {
            return Err(Error::malformed(
                "no section headers. The input file is probably a statically linked, self-decompressing binary",
            ));
        }
        if u64::from(ehdr.e_shentsize) != class.shdr_size() {
            return Err(Error::malformed("section headers have wrong size"));
        }
        let sh_end = u64::from(ehdr.e_shnum)
            .checked_mul(u64::from(ehdr.e_shentsize))
            .and_then(|s| checked_end(ehdr.e_shoff, s));
        if sh_end.is_none_or(|e| e > len) {
            return Err(Error::malformed("section header table out of bounds"));
        }
        if ehdr.e_phnum > 0 && u64::from(ehdr.e_phentsize) != class.phdr_size() {
            return Err(Error::malformed("program headers have wrong size"));
        }
        let mut phdrs = Vec::with_capacity(ehdr.e_phnum.into());
        for i in 0..u64::from(ehdr.e_phnum) {
            phdrs.push(read_phdr(class, d, ehdr.e_phoff + i * class.phdr_size())?);
        }
        let mut shdrs = Vec::with_capacity(ehdr.e_shnum.into());
        for i in 0..u64::from(ehdr.e_shnum) {
            shdrs.push(read_shdr(class, d, ehdr.e_shoff + i * class.shdr_size())?);
        }
        if ehdr.e_shstrndx >= ehdr.e_shnum {
            return Err(Error::malformed("string table index out of bounds"));
        }
        let strtab = &shdrs[usize::from(ehdr.e_shstrndx)];
        if strtab.sh_size == 0 {
            return Err(Error::malformed("string table size is zero"));
        }
        let str_end = checked_end(strtab.sh_offset, strtab.sh_size).filter(|&e| e <= len);
        let Some(str_end) = str_end else {
            return Err(Error::malformed("data region extends past file end"));
        };
        let str_start = strtab.sh_offset as usize;
        let str_end = str_end as usize;
        if data[str_end - 1] != 0 {
            return Err(Error::malformed("string table is not zero terminated"));
        }
        let strtab = &data[str_start..str_end];
        for sh in shdrs.iter_mut() {
            let n = sh.sh_name as usize;
            if n >= strtab.len() {
                return Err(Error::malformed("section name offset out of bounds"));
            }
            let end = strtab[n..].iter().position(|&c| c == 0).unwrap_or(0) + n;
            sh.name = String::from_utf8_lossy(&strtab[n..end]).into_owned();
        }
        Ok(Elf {
            data,
            class,
            ehdr,
            phdrs,
            shdrs,
            replaced: BTreeMap::new(),
            changed: false,
            page_size: None,
            debug_log: Vec::new(),
            warnings: Vec::new(),
            clobber_old_sections: true,
            force_layout: false,
            new_sections: BTreeSet::new(),
            headers_dirty: false,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
    pub fn class(&self) -> Class {
        self.class
    }
    pub fn machine(&self) -> u16 {
        self.ehdr.e_machine
    }
    pub fn is_changed(&self) -> bool {
        self.changed
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }
    /// Trace lines collected so far (what `--debug` prints).
    pub fn take_debug(&mut self) -> Vec<String> {
        std::mem::take(&mut self.debug_log)
    }
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
    pub fn set_page_size(&mut self, p: Option<u64>) {
        self.page_size = p;
    }
    pub fn set_clobber_old_sections(&mut self, on: bool) {
        self.clobber_old_sections = on;
    }
    pub(crate) fn debug(&mut self, s: impl Into<String>) {
        self.debug_log.push(s.into());
    }

    pub fn page_size(&self) -> u64 {
        if let Some(p) = self.page_size {
            return p;
        }
        match self.ehdr.e_machine {
            EM_ALPHA | EM_IA_64 | EM_MIPS | EM_PPC | EM_PPC64 | EM_AARCH64 | EM_TILEGX
            | EM_LOONGARCH => 0x10000,
            EM_SPARC | EM_SPARCV9 => 0x2000,
            _ => 0x1000,
        }
    }

    pub fn section_index(&self, name: &str) -> Option<usize> {
        self.shdrs
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| s.name == name)
            .map(|(i, _)| i)
    }

    /// The current bytes of section `i` (the pending replacement, if any). NOBITS sections are empty.
    pub(crate) fn section_data(&self, i: usize) -> Result<&[u8]> {
        if let Some(r) = self.replaced.get(&i) {
            return Ok(r);
        }
        let sh = self
            .shdrs
            .get(i)
            .ok_or_else(|| Error::malformed("section index out of bounds"))?;
        if sh.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        let len = self.data.len() as u64;
        if sh.sh_offset > len {
            return Err(Error::malformed("data offset extends past file end"));
        }
        let end = checked_end(sh.sh_offset, sh.sh_size)
            .filter(|&e| e <= len)
            .ok_or_else(|| Error::malformed("data region extends past file end"))?;
        Ok(&self.data[sh.sh_offset as usize..end as usize])
    }

    /// Like `section_data`, but for a table of `entsize`-byte records that must be naturally aligned.
    pub(crate) fn section_table(&self, i: usize, align: u64) -> Result<&[u8]> {
        if !self.replaced.contains_key(&i) {
            let sh = &self.shdrs[i];
            if sh.sh_type != SHT_NOBITS {
                if sh.sh_offset > self.data.len() as u64 {
                    return Err(Error::malformed("data offset extends past file end"));
                }
                if sh.sh_offset & (align - 1) != 0 {
                    return Err(Error::malformed("section content is not naturally aligned"));
                }
            }
        }
        self.section_data(i)
    }

    /// Mutable bytes of section `i`: its pending replacement if any, else its bytes in the file.
    pub(crate) fn section_data_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        self.section_data(i)?;
        if let Some(r) = self.replaced.get_mut(&i) {
            return Ok(r);
        }
        let sh = &self.shdrs[i];
        if sh.sh_type == SHT_NOBITS {
            return Ok(&mut []);
        }
        let (s, e) = (sh.sh_offset as usize, (sh.sh_offset + sh.sh_size) as usize);
        Ok(&mut self.data[s..e])
    }

    /// Schedules section `i` to be moved with `size` bytes (old contents first, zero-padded).
    pub(crate) fn replace_section(&mut self, i: usize, size: usize) -> Result<&mut Vec<u8>> {
        let mut cur = self.section_data(i)?.to_vec();
        cur.resize(size, 0);
        self.debug(format!(
            "replacing section '{}' with size {size}",
            self.shdrs[i].name
        ));
        self.replaced.insert(i, cur);
        Ok(self.replaced.get_mut(&i).expect("just inserted"))
    }

    // ---------------------------------------------------------------- header serialisation

    pub(crate) fn write_ehdr(&mut self) -> Result<()> {
        let (c, h) = (self.class, self.ehdr);
        let d = &mut self.data;
        c.put_u16(d, 16, h.e_type)?;
        if c.is64 {
            c.put_u64(d, 32, h.e_phoff)?;
            c.put_u64(d, 40, h.e_shoff)?;
            c.put_u16(d, 56, h.e_phnum)?;
            c.put_u16(d, 60, h.e_shnum)?;
            c.put_u16(d, 62, h.e_shstrndx)?;
        } else {
            c.put_word(d, 28, h.e_phoff)?;
            c.put_word(d, 32, h.e_shoff)?;
            c.put_u16(d, 44, h.e_phnum)?;
            c.put_u16(d, 48, h.e_shnum)?;
            c.put_u16(d, 50, h.e_shstrndx)?;
        }
        Ok(())
    }

    pub(crate) fn write_phdr(&mut self, off: u64, p: &Phdr) -> Result<()> {
        let c = self.class;
        let d = &mut self.data;
        c.put_u32(d, off, p.p_type)?;
        if c.is64 {
            c.put_u32(d, off + 4, p.p_flags)?;
            c.put_u64(d, off + 8, p.p_offset)?;
            c.put_u64(d, off + 16, p.p_vaddr)?;
            c.put_u64(d, off + 24, p.p_paddr)?;
            c.put_u64(d, off + 32, p.p_filesz)?;
            c.put_u64(d, off + 40, p.p_memsz)?;
            c.put_u64(d, off + 48, p.p_align)?;
        } else {
            c.put_word(d, off + 4, p.p_offset)?;
            c.put_word(d, off + 8, p.p_vaddr)?;
            c.put_word(d, off + 12, p.p_paddr)?;
            c.put_word(d, off + 16, p.p_filesz)?;
            c.put_word(d, off + 20, p.p_memsz)?;
            c.put_u32(d, off + 24, p.p_flags)?;
            c.put_word(d, off + 28, p.p_align)?;
        }
        Ok(())
    }

    pub(crate) fn write_shdr(&mut self, off: u64, s: &Shdr) -> Result<()> {
        let c = self.class;
        let d = &mut self.data;
        c.put_u32(d, off, s.sh_name)?;
        c.put_u32(d, off + 4, s.sh_type)?;
        if c.is64 {
            c.put_u64(d, off + 8, s.sh_flags)?;
            c.put_u64(d, off + 16, s.sh_addr)?;
            c.put_u64(d, off + 24, s.sh_offset)?;
            c.put_u64(d, off + 32, s.sh_size)?;
            c.put_u32(d, off + 40, s.sh_link)?;
            c.put_u32(d, off + 44, s.sh_info)?;
            c.put_u64(d, off + 48, s.sh_addralign)?;
            c.put_u64(d, off + 56, s.sh_entsize)?;
        } else {
            c.put_word(d, off + 8, s.sh_flags)?;
            c.put_word(d, off + 12, s.sh_addr)?;
            c.put_word(d, off + 16, s.sh_offset)?;
            c.put_word(d, off + 20, s.sh_size)?;
            c.put_u32(d, off + 24, s.sh_link)?;
            c.put_u32(d, off + 28, s.sh_info)?;
            c.put_word(d, off + 32, s.sh_addralign)?;
            c.put_word(d, off + 36, s.sh_entsize)?;
        }
        Ok(())
    }

    /// Writes the in-memory program header table at `e_phoff` (replacing the old table in place).
    pub(crate) fn write_phdr_table(&mut self) -> Result<()> {
        self.ehdr.e_phnum = u16::try_from(self.phdrs.len())
            .map_err(|_| Error::unsupported("too many program headers"))?;
        let sz = self.class.phdr_size();
        let need = self.ehdr.e_phoff + sz * self.phdrs.len() as u64;
        if need > self.data.len() as u64 {
            return Err(Error::malformed("program header table out of bounds"));
        }
        let phdrs = self.phdrs.clone();
        for (i, p) in phdrs.iter().enumerate() {
            self.write_phdr(self.ehdr.e_phoff + i as u64 * sz, p)?;
        }
        self.write_ehdr()
    }

    pub(crate) fn write_shdr_table(&mut self) -> Result<()> {
        let sz = self.class.shdr_size();
        let shdrs = self.shdrs.clone();
        for (i, s) in shdrs.iter().enumerate().skip(1) {
            self.write_shdr(self.ehdr.e_shoff + i as u64 * sz, s)?;
        }
        self.write_ehdr()
    }

    /// In-place edit of a program header (execstack): writes it back immediately.
    pub(crate) fn rewrite_phdr(&mut self, i: usize) -> Result<()> {
        let p = self.phdrs[i];
        let off = self.ehdr.e_phoff + i as u64 * self.class.phdr_size();
        self.write_phdr(off, &p)
    }
}

fn read_phdr(c: Class, d: &[u8], off: u64) -> Result<Phdr> {
    Ok(if c.is64 {
        Phdr {
            p_type: c.u32(d, off)?,
            p_flags: c.u32(d, off + 4)?,
            p_offset: c.u64(d, off + 8)?,
            p_vaddr: c.u64(d, off + 16)?,
            p_paddr: c.u64(d, off + 24)?,
            p_filesz: c.u64(d, off + 32)?,
            p_memsz: c.u64(d, off + 40)?,
            p_align: c.u64(d, off + 48)?,
        }
    } else {
        Phdr {
            p_type: c.u32(d, off)?,
            p_offset: c.u32(d, off + 4)?.into(),
            p_vaddr: c.u32(d, off + 8)?.into(),
            p_paddr: c.u32(d, off + 12)?.into(),
            p_filesz: c.u32(d, off + 16)?.into(),
            p_memsz: c.u32(d, off + 20)?.into(),
            p_flags: c.u32(d, off + 24)?,
            p_align: c.u32(d, off + 28)?.into(),
        }
    })
}

fn read_shdr(c: Class, d: &[u8], off: u64) -> Result<Shdr> {
    Ok(if c.is64 {
        Shdr {
            sh_name: c.u32(d, off)?,
            sh_type: c.u32(d, off + 4)?,
            sh_flags: c.u64(d, off + 8)?,
            sh_addr: c.u64(d, off + 16)?,
            sh_offset: c.u64(d, off + 24)?,
            sh_size: c.u64(d, off + 32)?,
            sh_link: c.u32(d, off + 40)?,
            sh_info: c.u32(d, off + 44)?,
            sh_addralign: c.u64(d, off + 48)?,
            sh_entsize: c.u64(d, off + 56)?,
            name: String::new(),
        }
    } else {
        Shdr {
            sh_name: c.u32(d, off)?,
            sh_type: c.u32(d, off + 4)?,
            sh_flags: c.u32(d, off + 8)?.into(),
            sh_addr: c.u32(d, off + 12)?.into(),
            sh_offset: c.u32(d, off + 16)?.into(),
            sh_size: c.u32(d, off + 20)?.into(),
            sh_link: c.u32(d, off + 24)?,
            sh_info: c.u32(d, off + 28)?,
            sh_addralign: c.u32(d, off + 32)?.into(),
            sh_entsize: c.u32(d, off + 36)?.into(),
            name: String::new(),
        }
    })
}

pub fn round_up(v: u64, a: u64) -> u64 {
    if a <= 1 {
        return v;
    }
    v.div_ceil(a).saturating_mul(a)
}
