//! `.dynamic` and `.dynstr` access: entries decoded with their bounds checked, strings read only when
//! they are inside a NUL-terminated table.

use crate::error::{Error, Result};
use crate::model::{Dyn, Elf, SHT_NOBITS};

pub const DT_NULL: i64 = 0;
pub const DT_NEEDED: i64 = 1;
pub const DT_HASH: i64 = 4;
pub const DT_STRTAB: i64 = 5;
pub const DT_SYMTAB: i64 = 6;
pub const DT_RELA: i64 = 7;
pub const DT_STRSZ: i64 = 10;
pub const DT_SONAME: i64 = 14;
pub const DT_RPATH: i64 = 15;
pub const DT_REL: i64 = 17;
pub const DT_DEBUG: i64 = 21;
pub const DT_JMPREL: i64 = 23;
pub const DT_INIT_ARRAY: i64 = 25;
pub const DT_FINI_ARRAY: i64 = 26;
pub const DT_RUNPATH: i64 = 29;
pub const DT_PREINIT_ARRAY: i64 = 32;
pub const DT_GNU_HASH: i64 = 0x6fff_fef5;
pub const DT_VERSYM: i64 = 0x6fff_fff0;
pub const DT_FLAGS_1: i64 = 0x6fff_fffb;
pub const DT_VERDEF: i64 = 0x6fff_fffc;
pub const DT_VERNEED: i64 = 0x6fff_fffe;
pub const DT_AUXILIARY: i64 = 0x7fff_fffd;
pub const DT_FILTER: i64 = 0x7fff_ffff;

pub const DT_MIPS_XHASH: i64 = 0x7000_0036;
pub const DF_1_NODEFLIB: u64 = 0x800;

/// Reads the NUL-terminated string at `off` of string table `tab`.
pub(crate) fn str_at(tab: &[u8], off: u64) -> Result<&[u8]> {
    if off >= tab.len() as u64 {
        return Err(Error::malformed("string table index out of bounds"));
    }
    if tab.last() != Some(&0) {
        return Err(Error::malformed("string table is not NUL-terminated"));
    }
    let s = &tab[off as usize..];
    let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    Ok(&s[..n])
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Elf {
    pub(crate) fn dynamic_section(&self) -> Option<usize> {
        self.section_index(".dynamic")
    }

    /// The entries of `.dynamic` before DT_NULL, and whether a DT_NULL was found.
    pub(crate) fn dyn_entries(&self) -> Result<(Vec<Dyn>, bool)> {
        let Some(i) = self.dynamic_section() else {
            return Ok((Vec::new(), true));
        };
        if self.shdrs[i].sh_type == SHT_NOBITS {
            return Ok((Vec::new(), true));
        }
        let c = self.class;
        let tab = self.section_table(i, c.word())?;
        let es = c.dyn_size() as usize;
        let mut out = Vec::new();
        for chunk in tab.chunks_exact(es) {
            let (tag, val) = if c.is64 {
                (c.u64(chunk, 0)? as i64, c.u64(chunk, 8)?)
            } else {
                (
                    i64::from(c.u32(chunk, 0)? as i32),
                    u64::from(c.u32(chunk, 4)?),
                )
            };
            if tag == DT_NULL {
                return Ok((out, true));
            }
            out.push(Dyn {
                d_tag: tag,
                d_val: val,
            });
        }
        Ok((out, false))
    }

    pub(crate) fn dyns(&self) -> Result<Vec<Dyn>> {
        Ok(self.dyn_entries()?.0)
    }

    /// Overwrites entry `idx` of `.dynamic` (in the pending copy if the section is being moved).
    pub(crate) fn set_dyn(&mut self, idx: usize, d: Dyn) -> Result<()> {
        let i = self
            .dynamic_section()
            .ok_or_else(|| Error::unsupported("cannot find section '.dynamic'"))?;
        let c = self.class;
        let es = c.dyn_size();
        let buf = self.section_data_mut(i)?;
        let off = idx as u64 * es;
        if off + es > buf.len() as u64 {
            return Err(Error::malformed(
                "setSubstr: write extends past end of section",
            ));
        }
        if c.is64 {
            c.put_u64(buf, off, d.d_tag as u64)?;
            c.put_u64(buf, off + 8, d.d_val)?;
        } else {
            c.put_u32(buf, off, d.d_tag as u32)?;
            c.put_word(buf, off + 4, d.d_val)?;
        }
        Ok(())
    }

    /// Rewrites `.dynamic` in place with `entries` followed by DT_NULL and a zeroed tail.
    pub(crate) fn compact_dynamic(&mut self, entries: &[Dyn]) -> Result<()> {
        let i = self
            .dynamic_section()
            .ok_or_else(|| Error::unsupported("cannot find section '.dynamic'"))?;
        let es = self.class.dyn_size() as usize;
        let slots = self.section_data(i)?.len() / es;
        for k in 0..slots {
            let d = entries.get(k).copied().unwrap_or(Dyn {
                d_tag: DT_NULL,
                d_val: 0,
            });
            self.set_dyn(k, d)?;
        }
        Ok(())
    }

    /// Inserts entries at the top of `.dynamic`, growing (moving) the section.
    pub(crate) fn insert_dyn_top(&mut self, new: &[Dyn]) -> Result<()> {
        let i = self
            .dynamic_section()
            .ok_or_else(|| Error::unsupported("cannot find section '.dynamic'"))?;
        let (_, has_null) = self.dyn_entries()?;
        if !has_null {
            return Err(Error::malformed(
                "setSubstr: write extends past end of section",
            ));
        }
        let c = self.class;
        let es = c.dyn_size() as usize;
        let old = self.section_data(i)?.to_vec();
        let mut buf = vec![0u8; new.len() * es];
        for (k, d) in new.iter().enumerate() {
            let off = (k * es) as u64;
            if c.is64 {
                c.put_u64(&mut buf, off, d.d_tag as u64)?;
                c.put_u64(&mut buf, off + 8, d.d_val)?;
            } else {
                c.put_u32(&mut buf, off, d.d_tag as u32)?;
                c.put_word(&mut buf, off + 4, d.d_val)?;
            }
        }
        buf.extend_from_slice(&old);
        let r = self.replace_section(i, buf.len())?;
        *r = buf;
        Ok(())
    }

    pub(crate) fn dynstr_section(&self) -> Result<usize> {
        self.section_index(".dynstr")
            .ok_or_else(|| Error::unsupported("cannot find section '.dynstr'"))
    }

    pub(crate) fn dynstr(&self) -> Result<&[u8]> {
        self.section_data(self.dynstr_section()?)
    }

    pub(crate) fn dynstr_get(&self, off: u64) -> Result<String> {
        Ok(lossy(str_at(self.dynstr()?, off)?))
    }

    /// Appends `s` + NUL to `.dynstr` (moving it) and returns the new string's offset.
    pub(crate) fn dynstr_append(&mut self, s: &[u8]) -> Result<u64> {
        let i = self.dynstr_section()?;
        let old = self.section_data(i)?.len();
        let r = self.replace_section(i, old + s.len() + 1)?;
        r[old..old + s.len()].copy_from_slice(s);
        r[old + s.len()] = 0;
        Ok(old as u64)
    }
}
