//! Placing the replaced sections: the growth strategies of patchelf 0.19 (spec §1.3), written from its
//! documented behaviour. ET_DYN: the sections go to a new (or extended) RW PT_LOAD after the last segment,
//! the PHT stays at the front unless a PROGBITS section blocks its growth. ET_EXEC: the head of the file
//! (everything up to the last replaced section) is repacked behind the PHT, shifting the rest of the file
//! by whole pages when it does not fit.

use crate::dynamic::*;
use crate::error::{Error, Result};
use crate::model::*;
use std::collections::BTreeMap;

const MAX_ALIGN: u64 = 16 << 20;

fn overlaps(a0: u64, a1: u64, b0: u64, b1: u64) -> bool {
    a0 < b1 && b0 < a1
}

fn underrun() -> Error {
    Error::unsupported("virtual address space underrun!")
}

impl Elf {
    /// Applies the pending edits: lays out the replaced sections and rewrites the headers.
    pub fn finish(&mut self) -> Result<()> {
        if self.replaced.is_empty() && !self.force_layout {
            if self.headers_dirty {
                // Headers changed but nothing moves (a section was removed): the tables stay where they
                // are and only get shorter, so they are rewritten in place.
                let pht_vaddr = self
                    .phdrs
                    .iter()
                    .find(|p| p.p_type == PT_PHDR)
                    .map_or(0, |p| p.p_vaddr);
                self.rewrite_headers(pht_vaddr, &BTreeMap::new())?;
                self.headers_dirty = false;
                self.changed = true;
            }
            return Ok(());
        }
        if self.replaced.is_empty() && self.try_grow_pht_in_place()? {
            self.force_layout = false;
            self.headers_dirty = false;
            return Ok(());
        }
        match self.ehdr.e_type {
            ET_DYN => self.layout_library()?,
            _ => self.layout_executable()?,
        }
        // Every added section must have been given a place inside the file by now; a provisional offset
        // left behind would point a section (and its segment) past the end of the file.
        for &i in &self.new_sections {
            let s = &self.shdrs[i];
            if s.sh_offset
                .checked_add(s.sh_size)
                .is_none_or(|e| e > self.data.len() as u64)
            {
                return Err(Error::unsupported(
                    "internal layout error: added section was not placed",
                ));
            }
        }
        self.new_sections.clear();
        self.replaced.clear();
        self.force_layout = false;
        self.headers_dirty = false;
        self.changed = true;
        Ok(())
    }

    /// Sections (other than NULL/NOBITS) whose file bytes overlap `[a, b)`.
    fn sections_in(&self, a: u64, b: u64) -> Vec<usize> {
        (1..self.shdrs.len())
            .filter(|&i| {
                let s = &self.shdrs[i];
                s.sh_type != SHT_NOBITS
                    && s.sh_type != SHT_NULL
                    && s.sh_size > 0
                    && overlaps(s.sh_offset, s.sh_offset.saturating_add(s.sh_size), a, b)
            })
            .collect()
    }

    fn movable(&self, i: usize) -> bool {
        let s = &self.shdrs[i];
        s.sh_type != SHT_PROGBITS || s.name == ".interp"
    }

    fn load_containing(&self, off: u64) -> Option<usize> {
        self.phdrs.iter().position(|p| {
            p.p_type == PT_LOAD && p.p_offset <= off && off < p.p_offset.saturating_add(p.p_filesz)
        })
    }

    /// A new program header only (PT_GNU_STACK): if the bigger table still fits where it is, write it.
    fn try_grow_pht_in_place(&mut self) -> Result<bool> {
        let phoff = self.ehdr.e_phoff;
        let end = phoff + self.phdrs.len() as u64 * self.class.phdr_size();
        let Some(l) = self.load_containing(phoff) else {
            return Ok(false);
        };
        let lp = self.phdrs[l];
        if end > lp.p_offset + lp.p_filesz || !self.sections_in(phoff, end).is_empty() {
            // Make room by moving what is in the way (the normal layout pass does the rest).
            for i in self.sections_in(phoff, end) {
                if !self.movable(i) {
                    return Err(Error::unsupported(
                        "no room to add a program header: a PROGBITS section follows the table",
                    ));
                }
                let n = self.section_data(i)?.len();
                self.replace_section(i, n)?;
            }
            return Ok(false);
        }
        let vaddr = lp.p_vaddr + (phoff - lp.p_offset);
        self.rewrite_headers(vaddr, &BTreeMap::new())?;
        self.changed = true;
        Ok(true)
    }

    /// Splits a PT_NOTE that covers several SHT_NOTE sections into one PT_NOTE per section, so that a
    /// moved note keeps its own segment.
    fn normalize_note_segments(&mut self) -> Result<()> {
        if !self
            .replaced
            .keys()
            .any(|&i| self.shdrs[i].sh_type == SHT_NOTE)
        {
            return Ok(());
        }
        let mut j = 0;
        while j < self.phdrs.len() {
            let p = self.phdrs[j];
            j += 1;
            if p.p_type != PT_NOTE || p.p_filesz == 0 {
                continue;
            }
            let (start, end) = (p.p_offset, p.p_offset.saturating_add(p.p_filesz));
            let mut secs: Vec<(u64, u64)> = Vec::new();
            for s in self.shdrs.iter().skip(1).filter(|s| s.sh_type == SHT_NOTE) {
                let (s0, s1) = (s.sh_offset, s.sh_offset.saturating_add(s.sh_size));
                if s0 >= start && s1 <= end {
                    secs.push((s0, s1));
                } else if overlaps(s0, s1, start, end) {
                    return Err(Error::malformed(
                        "cannot normalize PT_NOTE segment: partially mapped SHT_NOTE section",
                    ));
                }
            }
            if secs.len() <= 1 {
                continue;
            }
            secs.sort_unstable();
            let mut cur = start;
            for &(s0, s1) in &secs {
                // Notes are 4- or 8-aligned; tolerate the padding between them.
                if s0 < cur || s0 - cur >= 8 {
                    return Err(Error::malformed(
                        "cannot normalize PT_NOTE segment: non-contiguous SHT_NOTE sections",
                    ));
                }
                cur = s1;
            }
            let mut news = Vec::new();
            for (k, &(s0, s1)) in secs.iter().enumerate() {
                let q = Phdr {
                    p_offset: s0,
                    p_vaddr: p.p_vaddr + (s0 - start),
                    p_paddr: p.p_paddr + (s0 - start),
                    p_filesz: s1 - s0,
                    p_memsz: s1 - s0,
                    ..p
                };
                if k == 0 {
                    self.phdrs[j - 1] = q;
                } else {
                    news.push(q);
                }
            }
            let n = news.len();
            for (k, q) in news.into_iter().enumerate() {
                self.phdrs.insert(j + k, q);
            }
            j += n;
        }
        Ok(())
    }

    /// Writes the replaced sections from `cur` on (file offset `cur` maps to `start_addr + cur -
    /// start_offset`), updates their headers and the segments that mirror them; returns the end offset.
    fn write_replaced_sections(
        &mut self,
        mut cur: u64,
        start_addr: u64,
        start_offset: u64,
        moved: &mut BTreeMap<usize, u64>,
    ) -> Result<u64> {
        let word = self.class.word();
        if self.clobber_old_sections {
            for &i in self.replaced.keys() {
                let s = &self.shdrs[i];
                // An added section has no old bytes to clobber (its offset is only provisional).
                if s.sh_type == SHT_NOBITS || self.new_sections.contains(&i) {
                    continue;
                }
                let (a, b) = (s.sh_offset as usize, (s.sh_offset + s.sh_size) as usize);
                if b <= self.data.len() {
                    self.data[a..b].fill(b'Z');
                }
            }
        }
        let mut order: Vec<usize> = self.replaced.keys().copied().collect();
        order.sort_by_key(|&i| (self.shdrs[i].sh_offset, i));
        let mut noted = vec![false; self.phdrs.len()];
        for i in order {
            let content = self.replaced.remove(&i).expect("key from map");
            // Keep the section's own alignment (a note's alignment decides how readers parse it).
            let al = self.shdrs[i].sh_addralign;
            if al > word && al.is_power_of_two() && al <= 4096 {
                cur = round_up(cur, al);
            }
            let old = self.shdrs[i].clone();
            self.debug(format!(
                "rewriting section '{}' from offset 0x{:x} (size {}) to offset 0x{:x} (size {})",
                old.name,
                old.sh_offset,
                old.sh_size,
                cur,
                content.len()
            ));
            let end = cur as usize + content.len();
            if end > self.data.len() {
                return Err(Error::unsupported(
                    "internal layout error: section past end of image",
                ));
            }
            self.data[cur as usize..end].copy_from_slice(&content);
            let addr = start_addr + (cur - start_offset);
            {
                let s = &mut self.shdrs[i];
                s.sh_offset = cur;
                s.sh_addr = addr;
                s.sh_size = content.len() as u64;
                if s.sh_addralign > 4096 || !s.sh_addralign.is_power_of_two() {
                    s.sh_addralign = word;
                }
            }
            moved.insert(i, old.sh_addr);
            let len = content.len() as u64;
            let sync = |p: &mut Phdr| {
                p.p_offset = cur;
                p.p_vaddr = addr;
                p.p_paddr = addr;
                p.p_filesz = len;
                p.p_memsz = len;
            };
            let (o0, o1) = (old.sh_offset, old.sh_offset.saturating_add(old.sh_size));
            for (j, p) in self.phdrs.iter_mut().enumerate() {
                let exact = p.p_offset == o0 && p.p_offset.saturating_add(p.p_filesz) == o1;
                match p.p_type {
                    PT_INTERP if old.name == ".interp" => sync(p),
                    PT_DYNAMIC if old.name == ".dynamic" => sync(p),
                    PT_MIPS_ABIFLAGS if old.name == ".MIPS.abiflags" => sync(p),
                    PT_GNU_PROPERTY if old.sh_type == SHT_NOTE && exact => sync(p),
                    PT_NOTE
                        if old.sh_type == SHT_NOTE && !noted.get(j).copied().unwrap_or(true) =>
                    {
                        let (p0, p1) = (p.p_offset, p.p_offset.saturating_add(p.p_filesz));
                        if !overlaps(o0, o1, p0, p1) {
                            continue;
                        }
                        if !exact {
                            return Err(Error::malformed(
                                "unsupported overlap of SHT_NOTE and PT_NOTE",
                            ));
                        }
                        sync(p);
                        noted[j] = true;
                    }
                    _ => {}
                }
            }
            cur += round_up(len, word);
        }
        Ok(cur)
    }

    /// Bytes the replaced sections take when written from offset `from` (same walk as the writer).
    fn replaced_space(&self, from: u64) -> u64 {
        let word = self.class.word();
        let mut order: Vec<usize> = self.replaced.keys().copied().collect();
        order.sort_by_key(|&i| (self.shdrs[i].sh_offset, i));
        let mut cur = from;
        for i in order {
            let al = self.shdrs[i].sh_addralign;
            if al > word && al.is_power_of_two() && al <= 4096 {
                cur = round_up(cur, al);
            }
            cur += round_up(self.replaced[&i].len() as u64, word);
        }
        cur - from
    }

    fn max_load_align(&self) -> Result<u64> {
        let mut a = self.page_size();
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            a = a.max(p.p_align);
        }
        if a > MAX_ALIGN || !a.is_power_of_two() {
            return Err(Error::unsupported(
                "segment alignment is too large or not a power of two",
            ));
        }
        Ok(a)
    }

    fn layout_library(&mut self) -> Result<()> {
        let c = self.class;
        let (phsz, word) = (c.phdr_size(), c.word());
        let align = self.max_load_align()?;
        let mut start_page = 0u64;
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
            start_page = start_page.max(p.p_vaddr.checked_add(p.p_memsz).ok_or_else(underrun)?);
        }
        let mut start_page = round_up(start_page, align);
        let start_offset = round_up(self.data.len() as u64, align);
        if self.phdrs.iter().any(|p| p.p_type == PT_INTERP) && start_offset > start_page {
            // A PIE: keep vaddr == offset for the new segment (Linux brk placement, patchelf does it too).
            self.debug(format!(
                "shifting new PT_LOAD segment by {} bytes to work around a Linux kernel bug",
                start_offset - start_page
            ));
            start_page = start_offset;
        }

        // Room for the grown PHT: every note may get its own PT_NOTE, plus one new PT_LOAD.
        let n_notes = self.shdrs.iter().filter(|s| s.sh_type == SHT_NOTE).count();
        let reserve = self.phdrs.len() + n_notes + 1;
        let phoff = self.ehdr.e_phoff;
        let pht_end = phoff + reserve as u64 * phsz;
        let mut move_pht = match self.load_containing(phoff) {
            Some(l) => pht_end > self.phdrs[l].p_offset + self.phdrs[l].p_filesz,
            None => true,
        };
        let in_way = self.sections_in(phoff, pht_end);
        if in_way.iter().any(|&i| !self.movable(i)) {
            move_pht = true;
        }
        if !move_pht {
            for i in in_way {
                if !self.replaced.contains_key(&i) {
                    let n = self.section_data(i)?.len();
                    self.replace_section(i, n)?;
                }
            }
        }
        let sht_size = u64::from(self.ehdr.e_shnum) * c.shdr_size();
        let shoff = self.ehdr.e_shoff;
        let move_sht = !move_pht && overlaps(shoff, shoff + sht_size, phoff, pht_end);
        self.normalize_note_segments()?;

        let pht_space = round_up((self.phdrs.len() + 1) as u64 * phsz, word);
        let mut needed = 0u64;
        if move_pht {
            needed += pht_space;
        }
        if move_sht {
            needed += round_up(sht_size, word);
        }
        needed += self.replaced_space(start_offset + needed);
        self.debug(format!("needed space is {needed}"));
        let total = start_offset
            .checked_add(needed + 1)
            .filter(|&t| t < (1 << 40))
            .ok_or_else(|| Error::unsupported("file would become too large"))?;
        // One byte of padding: binutils 2.30's readelf wants segments strictly inside the file.
        self.data.resize(total as usize, 0);

        let last_load = self
            .phdrs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.p_type == PT_LOAD)
            .max_by_key(|(_, p)| p.p_vaddr)
            .map(|(i, _)| i);
        let extend = last_load.filter(|&l| {
            let p = &self.phdrs[l];
            p.p_flags == PF_R | PF_W
                && p.p_align == align
                && p.p_filesz == p.p_memsz
                && p.p_offset + p.p_filesz <= start_offset
                && p.p_vaddr.wrapping_sub(p.p_offset) == start_page.wrapping_sub(start_offset)
        });
        match extend {
            Some(l) => {
                let p = &mut self.phdrs[l];
                p.p_filesz = start_offset + needed - p.p_offset;
                p.p_memsz = p.p_filesz;
            }
            None => {
                let at = last_load.map_or(self.phdrs.len(), |l| l + 1);
                self.phdrs.insert(
                    at,
                    Phdr {
                        p_type: PT_LOAD,
                        p_flags: PF_R | PF_W,
                        p_offset: start_offset,
                        p_vaddr: start_page,
                        p_paddr: start_page,
                        p_filesz: needed,
                        p_memsz: needed,
                        p_align: align,
                    },
                );
            }
        }
        let mut cur = start_offset;
        let pht_vaddr;
        if move_pht {
            self.debug(format!(
                "moving the program header table to offset 0x{cur:x}"
            ));
            self.ehdr.e_phoff = cur;
            pht_vaddr = start_page;
            cur += pht_space;
        } else {
            let l = self.load_containing(phoff).ok_or_else(|| {
                Error::malformed("program header table is not in a loadable segment")
            })?;
            pht_vaddr = self.phdrs[l].p_vaddr + (phoff - self.phdrs[l].p_offset);
        }
        if move_sht {
            self.debug(format!(
                "moving the section header table to offset 0x{cur:x}"
            ));
            self.ehdr.e_shoff = cur;
            cur += round_up(sht_size, word);
        }
        let mut moved = BTreeMap::new();
        let end = self.write_replaced_sections(cur, start_page, start_offset, &mut moved)?;
        debug_assert_eq!(end, start_offset + needed);
        self.rewrite_headers(pht_vaddr, &moved)
    }

    fn layout_executable(&mut self) -> Result<()> {
        let c = self.class;
        let (phsz, word, ehsz) = (c.phdr_size(), c.word(), c.ehdr_size());
        let page = self.page_size();
        let mut order: Vec<usize> = (1..self.shdrs.len()).collect();
        order.sort_by_key(|&i| (self.shdrs[i].sh_offset, i));
        let last_pos = order
            .iter()
            .rposition(|i| self.replaced.contains_key(i))
            .ok_or_else(|| Error::unsupported("nothing to lay out"))?;
        let mut cut = last_pos + 1;
        let mut prev = String::new();
        for (pos, &i) in order.iter().enumerate().take(last_pos + 1) {
            let s = &self.shdrs[i];
            if (s.sh_type == SHT_PROGBITS && s.name != ".interp") || prev == ".dynstr" {
                cut = pos;
                break;
            }
            prev = s.name.clone();
        }
        let Some(&first_fixed) = order.get(cut) else {
            return Err(Error::unsupported(
                "cannot find a section after the replaced sections",
            ));
        };
        let mut start_offset = self.shdrs[first_fixed].sh_offset;
        let start_addr = self.shdrs[first_fixed].sh_addr;
        if start_addr % page != start_offset % page {
            return Err(Error::unsupported(
                "section address and offset are not congruent modulo the page size",
            ));
        }
        let mut first_page = start_addr.checked_sub(start_offset).ok_or_else(underrun)?;
        for &i in &order[..cut] {
            if !self.replaced.contains_key(&i) {
                if self.shdrs[i].sh_type == SHT_NOBITS {
                    return Err(Error::unsupported("a NOBITS section lies in the file head"));
                }
                self.debug(format!(
                    "replacing section '{}' which is in the way",
                    self.shdrs[i].name
                ));
                let n = self.section_data(i)?.len();
                self.replace_section(i, n)?;
            }
        }
        let sht_size = u64::from(self.ehdr.e_shnum) * c.shdr_size();
        if self.ehdr.e_shoff < start_offset {
            // The section header table would be overwritten: move it to the end of the file first.
            let at = round_up(self.data.len() as u64, word);
            self.data.resize((at + sht_size) as usize, 0);
            self.ehdr.e_shoff = at;
        }
        self.normalize_note_segments()?;

        let mut needed = ehsz + self.phdrs.len() as u64 * phsz;
        needed += self.replaced_space(needed);
        let writable = self
            .replaced
            .keys()
            .any(|&i| self.shdrs[i].sh_flags & SHF_WRITE != 0);
        let head_load = self.load_containing(ehsz + self.phdrs.len() as u64 * phsz);
        let head_writable = head_load.is_some_and(|l| self.phdrs[l].p_flags & PF_W != 0);
        let shift_needed =
            needed > start_offset || (writable && !head_writable) || head_load.is_none();
        if shift_needed {
            needed += phsz;
            let extra = needed.saturating_sub(start_offset);
            // One page more than needed: segments starting at unaligned addresses are rounded down.
            let pages = 1 + round_up(extra, page) / page;
            self.debug(format!("needed pages is {pages}"));
            if pages * page > first_page {
                return Err(underrun());
            }
            self.shift_file(pages * page, start_offset, needed)?;
            first_page -= pages * page;
            start_offset += pages * page;
        } else if let Some(l) = head_load {
            let p = &mut self.phdrs[l];
            if p.p_filesz < needed - p.p_offset {
                p.p_filesz = needed - p.p_offset;
                p.p_memsz = p.p_memsz.max(p.p_filesz);
            }
        }
        self.ehdr.e_phoff = ehsz;
        let cur = ehsz + self.phdrs.len() as u64 * phsz;
        if cur > start_offset {
            return Err(Error::unsupported("internal layout error: head overflows"));
        }
        self.data[cur as usize..start_offset as usize].fill(0);
        let mut moved = BTreeMap::new();
        let end = self.write_replaced_sections(cur, first_page, 0, &mut moved)?;
        debug_assert!(end <= start_offset);
        self.rewrite_headers(first_page + ehsz, &moved)
    }

    /// Inserts `shift` bytes at `start_offset`, splitting the PT_LOAD that straddles it and mapping the
    /// grown head with a new RW PT_LOAD placed `shift` lower in memory.
    fn shift_file(&mut self, shift: u64, start_offset: u64, head_size: u64) -> Result<()> {
        let page = self.page_size();
        let so = start_offset as usize;
        self.data
            .splice(so..so, std::iter::repeat_n(0u8, shift as usize));
        if self.ehdr.e_shoff >= start_offset {
            self.ehdr.e_shoff += shift;
        }
        for s in self.shdrs.iter_mut().skip(1) {
            if s.sh_offset >= start_offset && s.sh_type != SHT_NULL {
                s.sh_offset += shift;
            }
        }
        let split = self
            .phdrs
            .iter()
            .position(|p| {
                p.p_type == PT_LOAD
                    && p.p_offset <= start_offset
                    && start_offset < p.p_offset.saturating_add(p.p_filesz)
            })
            .ok_or_else(|| Error::unsupported("no PT_LOAD segment covers the file head"))?;
        let orig = self.phdrs[split];
        let ss = start_offset - orig.p_offset;
        {
            let p = &mut self.phdrs[split];
            p.p_offset = start_offset;
            p.p_filesz -= ss;
            p.p_memsz = p.p_memsz.saturating_sub(ss);
            p.p_vaddr += ss;
            p.p_paddr += ss;
        }
        for p in self.phdrs.iter_mut() {
            if p.p_offset >= start_offset {
                p.p_offset += shift;
                if p.p_align != 0 && p.p_vaddr.wrapping_sub(p.p_offset) % p.p_align != 0 {
                    p.p_align = page;
                }
            } else if p.p_memsz > 0 || p.p_filesz > 0 {
                p.p_vaddr = p.p_vaddr.checked_sub(shift).ok_or_else(underrun)?;
                p.p_paddr = p.p_paddr.wrapping_sub(shift);
            }
        }
        let new = Phdr {
            p_type: PT_LOAD,
            p_flags: PF_R | PF_W,
            p_offset: orig.p_offset,
            p_vaddr: orig.p_vaddr.checked_sub(shift).ok_or_else(underrun)?,
            p_paddr: orig.p_paddr.wrapping_sub(shift),
            p_filesz: head_size - orig.p_offset,
            p_memsz: head_size - orig.p_offset,
            p_align: page,
        };
        self.phdrs.insert(split, new);
        Ok(())
    }

    /// Final step of a layout pass: PT_PHDR, program/section header tables, `.dynamic` pointers and
    /// STT_SECTION symbols of the moved sections (`moved`: section index → old address).
    pub(crate) fn rewrite_headers(
        &mut self,
        pht_vaddr: u64,
        moved: &BTreeMap<usize, u64>,
    ) -> Result<()> {
        let c = self.class;
        let n = self.phdrs.len() as u64;
        if let Some(p) = self.phdrs.iter_mut().find(|p| p.p_type == PT_PHDR) {
            p.p_offset = self.ehdr.e_phoff;
            p.p_vaddr = pht_vaddr;
            p.p_paddr = pht_vaddr;
            p.p_filesz = n * c.phdr_size();
            p.p_memsz = p.p_filesz;
        }
        self.sort_phdrs();
        self.write_phdr_table()?;
        self.write_shdr_table()?;

        // .dynamic pointers that name a moved section (DT_INIT/DT_FINI are code addresses and stay).
        let table: &[(i64, &[&str])] = &[
            (DT_STRTAB, &[".dynstr"]),
            (DT_SYMTAB, &[".dynsym"]),
            (DT_HASH, &[".hash"]),
            (DT_GNU_HASH, &[".gnu.hash"]),
            (DT_MIPS_XHASH, &[".MIPS.xhash"]),
            (DT_JMPREL, &[".rel.plt", ".rela.plt", ".rela.IA_64.pltoff"]),
            (DT_REL, &[".rel.dyn", ".rel.got"]),
            (DT_RELA, &[".rela.dyn"]),
            (DT_VERNEED, &[".gnu.version_r"]),
            (DT_VERSYM, &[".gnu.version"]),
            (DT_VERDEF, &[".gnu.version_d"]),
            (DT_INIT_ARRAY, &[".init_array"]),
            (DT_FINI_ARRAY, &[".fini_array"]),
            (DT_PREINIT_ARRAY, &[".preinit_array"]),
        ];
        if let Some(di) = self.dynamic_section() {
            let entries = self.dyns()?;
            for (k, e) in entries.iter().enumerate() {
                let mut new = None;
                if e.d_tag == DT_STRSZ {
                    if let Some(s) = self
                        .section_index(".dynstr")
                        .filter(|s| moved.contains_key(s))
                    {
                        new = Some(self.shdrs[s].sh_size);
                    }
                } else if let Some((_, names)) = table.iter().find(|(t, _)| *t == e.d_tag) {
                    let sec = names.iter().find_map(|n| self.section_index(n));
                    if let Some(s) = sec.filter(|s| moved.contains_key(s)) {
                        new = Some(self.shdrs[s].sh_addr);
                    }
                }
                if let Some(v) = new {
                    if v != e.d_val {
                        self.set_dyn(
                            k,
                            Dyn {
                                d_tag: e.d_tag,
                                d_val: v,
                            },
                        )?;
                    }
                }
            }
            let _ = di;
        }
        // STT_SECTION symbols carry their section's address.
        let names: Vec<String> = self.shdrs.iter().map(|s| s.name.clone()).collect();
        let mut warn = Vec::new();
        if !moved.is_empty() {
            let symtabs: Vec<usize> = (1..self.shdrs.len())
                .filter(|&i| matches!(self.shdrs[i].sh_type, SHT_SYMTAB | SHT_DYNSYM))
                .collect();
            for t in symtabs {
                let ss = c.sym_size();
                let addrs: BTreeMap<u16, u64> = moved
                    .keys()
                    .filter_map(|&i| u16::try_from(i).ok().map(|k| (k, self.shdrs[i].sh_addr)))
                    .collect();
                let buf = self.section_data_mut(t)?;
                let cnt = buf.len() as u64 / ss;
                for k in 0..cnt {
                    let o = k * ss;
                    let (info, shndx, voff) = if c.is64 {
                        (c.u8(buf, o + 4)?, c.u16(buf, o + 6)?, o + 8)
                    } else {
                        (c.u8(buf, o + 12)?, c.u16(buf, o + 14)?, o + 4)
                    };
                    if shndx != 0 && shndx < 0xff00 {
                        if let Some(name) = names.get(usize::from(shndx)) {
                            if name.is_empty() {
                                warn.push(format!(
                                    "warning: entry {k} in symbol table refers to an unnamed section"
                                ));
                            }
                        }
                    }
                    if info & 0xf == 3 {
                        if let Some(&a) = addrs.get(&shndx) {
                            c.put_word(buf, voff, a)?;
                        }
                    }
                }
            }
        }
        warn.dedup();
        self.warnings.extend(warn);
        Ok(())
    }

    /// PT_PHDR first; PT_LOADs sorted by address within the slots they occupy; everything else in place.
    fn sort_phdrs(&mut self) {
        if let Some(k) = self.phdrs.iter().position(|p| p.p_type == PT_PHDR) {
            let p = self.phdrs.remove(k);
            self.phdrs.insert(0, p);
        }
        let slots: Vec<usize> = (0..self.phdrs.len())
            .filter(|&i| self.phdrs[i].p_type == PT_LOAD)
            .collect();
        let mut loads: Vec<Phdr> = slots.iter().map(|&i| self.phdrs[i]).collect();
        loads.sort_by_key(|p| p.p_vaddr);
        for (s, p) in slots.into_iter().zip(loads) {
            self.phdrs[s] = p;
        }
    }
}
