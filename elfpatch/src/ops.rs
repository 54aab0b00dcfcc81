//! The edits: interpreter, run path, needed, soname, flags, OS ABI, execstack, symbol versions and
//! udocker's root prefixes. Each edit changes section copies or in-place bytes; `Elf::finish` lays out.

use crate::dynamic::*;
use crate::error::{Error, Result};
use crate::model::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One run-path operation (patchelf applies at most one per file: shrink > remove > set > add).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpathOp {
    Set(String),
    Add(String),
    Remove,
    Shrink { allowed_prefixes: Vec<String> },
}

pub(crate) const OS_ABIS: &[(u8, &str)] = &[
    (0, "System V"),
    (1, "HP-UX"),
    (2, "NetBSD"),
    (3, "Linux"),
    (4, "GNU Hurd"),
    (6, "Solaris"),
    (7, "AIX"),
    (8, "IRIX"),
    (9, "FreeBSD"),
    (10, "Tru64"),
    (12, "OpenBSD"),
    (13, "OpenVMS"),
];

/// Parses an OS ABI name the way patchelf does: case and spaces ignored, a few aliases.
pub fn parse_os_abi(name: &str) -> Option<u8> {
    let n: String = name
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    let v = match n.as_str() {
        "none" | "sysv" | "systemv" => 0,
        "hpux" | "hp-ux" => 1,
        "netbsd" => 2,
        "linux" | "gnu" => 3,
        "hurd" | "gnuhurd" => 4,
        "solaris" => 6,
        "aix" => 7,
        "irix" => 8,
        "freebsd" => 9,
        "tru64" => 10,
        "openbsd" => 12,
        "openvms" => 13,
        _ => return None,
    };
    Some(v)
}

pub fn os_abi_name(v: u8) -> String {
    OS_ABIS
        .iter()
        .find(|(k, _)| *k == v)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("0x{v:02X}"))
}

fn is_string_tag(t: i64) -> bool {
    matches!(
        t,
        DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH | DT_AUXILIARY | DT_FILTER
    )
}

impl Elf {
    // ---------------------------------------------------------------- interpreter

    pub fn interpreter(&self) -> Result<Option<String>> {
        let Some(i) = self.section_index(".interp") else {
            return Ok(None);
        };
        let d = self.section_data(i)?;
        let n = d.iter().position(|&c| c == 0).unwrap_or(d.len());
        Ok(Some(lossy(&d[..n])))
    }

    pub fn set_interpreter(&mut self, new: &str) -> Result<()> {
        let i = self.section_index(".interp").ok_or_else(|| {
            Error::unsupported(
                "cannot find section '.interp'. The input file is most likely statically linked",
            )
        })?;
        if self.interpreter()?.as_deref() == Some(new) {
            // Same value: leave the file byte-identical (test set-interpreter-same).
            self.debug("interpreter unchanged");
            return Ok(());
        }
        let mut v = new.as_bytes().to_vec();
        v.push(0);
        let r = self.replace_section(i, v.len())?;
        *r = v;
        self.changed = true;
        Ok(())
    }

    // ---------------------------------------------------------------- run path

    /// DT_RUNPATH if present, else DT_RPATH.
    pub fn rpath(&self) -> Result<Option<String>> {
        let d = self.dyns()?;
        let pick = d
            .iter()
            .find(|e| e.d_tag == DT_RUNPATH)
            .or_else(|| d.iter().find(|e| e.d_tag == DT_RPATH));
        match pick {
            Some(e) => Ok(Some(self.dynstr_get(e.d_val)?)),
            None => Ok(None),
        }
    }

    /// Whether some other `.dynstr` reference overlaps `[off, off+len]` (linker tail merging).
    fn dynstr_shared(&self, off: u64, len: u64) -> Result<bool> {
        let tab = self.dynstr()?;
        let mut refs: Vec<u64> = Vec::new();
        for e in self.dyns()? {
            if is_string_tag(e.d_tag) && e.d_tag != DT_RPATH && e.d_tag != DT_RUNPATH {
                refs.push(e.d_val);
            }
        }
        if let Some(s) = self.section_index(".dynsym") {
            let c = self.class;
            let d = self.section_data(s)?;
            for sym in d.chunks_exact(c.sym_size() as usize) {
                let n = u64::from(c.u32(sym, 0)?);
                if n != 0 {
                    refs.push(n);
                }
            }
        }
        refs.extend(self.verneed_strings()?.into_iter().map(|(_, o)| o));
        for r in refs {
            if r >= tab.len() as u64 {
                continue;
            }
            let rl = str_at(tab, r).map(|s| s.len() as u64).unwrap_or(0);
            if r <= off + len && off <= r + rl {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn modify_rpath(&mut self, op: &RpathOp, force_rpath: bool) -> Result<()> {
        let entries = self.dyns()?;
        let rpath_idx = entries.iter().position(|e| e.d_tag == DT_RPATH);
        let runpath_idx = entries.iter().position(|e| e.d_tag == DT_RUNPATH);
        let cur_idx = runpath_idx.or(rpath_idx);
        let cur = match cur_idx {
            Some(k) => Some(self.dynstr_get(entries[k].d_val)?),
            None => None,
        };
        let new = match op {
            RpathOp::Remove => {
                // The cache goes even when there is no run path to remove (a stale note is never kept).
                self.drop_resolution_cache()?;
                if cur_idx.is_none() {
                    self.debug("no RPATH to delete");
                    return Ok(());
                }
                let kept: Vec<Dyn> = entries
                    .iter()
                    .copied()
                    .filter(|e| e.d_tag != DT_RPATH && e.d_tag != DT_RUNPATH)
                    .collect();
                self.compact_dynamic(&kept)?;
                self.changed = true;
                return Ok(());
            }
            RpathOp::Shrink { allowed_prefixes } => {
                let Some(cur) = cur.as_deref() else {
                    self.drop_resolution_cache()?;
                    self.debug("no RPATH to shrink");
                    return Ok(());
                };
                self.shrunk_rpath(cur, allowed_prefixes)?
            }
            RpathOp::Set(s) => s.clone(),
            RpathOp::Add(s) => match cur.as_deref() {
                Some(c) if !c.is_empty() => format!("{c}:{s}"),
                _ => s.clone(),
            },
        };
        let (mut rpath_idx, mut runpath_idx) = (rpath_idx, runpath_idx);
        if !force_rpath && rpath_idx.is_some() && runpath_idx.is_none() {
            let k = rpath_idx.take().expect("checked");
            self.set_dyn(
                k,
                Dyn {
                    d_tag: DT_RUNPATH,
                    d_val: entries[k].d_val,
                },
            )?;
            runpath_idx = Some(k);
            self.changed = true;
        } else if force_rpath && runpath_idx.is_some() {
            let k = runpath_idx.take().expect("checked");
            self.set_dyn(
                k,
                Dyn {
                    d_tag: DT_RPATH,
                    d_val: entries[k].d_val,
                },
            )?;
            rpath_idx = Some(k);
            self.changed = true;
        } else if cur.as_deref() == Some(new.as_str()) {
            return Ok(());
        }
        self.debug(format!("new rpath is '{new}'"));
        if cur.as_deref() != Some(new.as_str()) {
            // The resolution cache describes the old run path. (A DT_RPATH <-> DT_RUNPATH conversion
            // alone keeps it: the directories and so the resolved files are the same.)
            self.drop_resolution_cache()?;
        }
        if let (Some(k), Some(old)) = (runpath_idx.or(rpath_idx), cur.as_deref()) {
            if old == new {
                return Ok(());
            }
            let off = entries[k].d_val;
            let old_len = old.len() as u64;
            // An rpath sharing bytes with another string (linker tail merging) is left alone and the
            // new value appended; otherwise the old bytes are tainted with 'X' (Nix's retained-dependency
            // scan must not find the old path) and reused when the new value fits.
            if !self.dynstr_shared(off, old_len)? {
                let i = self.dynstr_section()?;
                let buf = self.section_data_mut(i)?;
                let s = off as usize;
                buf[s..s + old.len()].fill(b'X');
                if new.len() as u64 <= old_len {
                    buf[s..s + new.len()].copy_from_slice(new.as_bytes());
                    buf[s + new.len()] = 0;
                    self.changed = true;
                    return Ok(());
                }
            }
        }
        self.debug("rpath is too long, resizing...");
        let off = self.dynstr_append(new.as_bytes())?;
        let mut any = false;
        for k in [rpath_idx, runpath_idx].into_iter().flatten() {
            self.set_dyn(
                k,
                Dyn {
                    d_tag: self.dyns()?[k].d_tag,
                    d_val: off,
                },
            )?;
            any = true;
        }
        if !any {
            let tag = if force_rpath { DT_RPATH } else { DT_RUNPATH };
            self.insert_dyn_top(&[Dyn {
                d_tag: tag,
                d_val: off,
            }])?;
        }
        self.changed = true;
        Ok(())
    }

    fn shrunk_rpath(&mut self, cur: &str, allowed: &[String]) -> Result<String> {
        let needed = self.needed()?;
        let mut found = vec![false; needed.len()];
        let mut kept: Vec<&str> = Vec::new();
        for dir in cur.split(':') {
            if !dir.starts_with('/') {
                kept.push(dir);
                continue;
            }
            if !allowed.is_empty() && !allowed.iter().any(|p| dir.starts_with(p.as_str())) {
                self.debug(format!(
                    "removing directory '{dir}' from RPATH because of non-allowed prefix"
                ));
                continue;
            }
            let mut lib_found = false;
            for (j, lib) in needed.iter().enumerate() {
                if found[j] {
                    continue;
                }
                let p = Path::new(dir).join(lib);
                if same_machine(&p, self.ehdr.e_machine) {
                    found[j] = true;
                    lib_found = true;
                }
            }
            if lib_found {
                kept.push(dir);
            } else {
                self.debug(format!("removing directory '{dir}' from RPATH"));
            }
        }
        Ok(kept.join(":"))
    }

    // ---------------------------------------------------------------- needed

    pub fn needed(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for e in self.dyns()? {
            if e.d_tag == DT_NEEDED {
                v.push(self.dynstr_get(e.d_val)?);
            }
        }
        Ok(v)
    }

    pub fn remove_needed(&mut self, libs: &BTreeSet<String>) -> Result<()> {
        if libs.is_empty() {
            return Ok(());
        }
        let entries = self.dyns()?;
        let mut kept = Vec::with_capacity(entries.len());
        let mut removed = false;
        for e in entries {
            if e.d_tag == DT_NEEDED && libs.contains(&self.dynstr_get(e.d_val)?) {
                self.debug(format!(
                    "removing DT_NEEDED entry '{}'",
                    self.dynstr_get(e.d_val)?
                ));
                removed = true;
            } else {
                kept.push(e);
            }
        }
        if removed {
            self.compact_dynamic(&kept)?;
            self.drop_resolution_cache()?;
            self.changed = true;
        }
        Ok(())
    }

    /// `(vn_file or vna_name field offset within .gnu.version_r, string offset)` for every string of
    /// `.gnu.version_r`, walking `vn_next`/`vna_next` with every step bounded.
    fn verneed_strings(&self) -> Result<Vec<(u64, u64)>> {
        Ok(self
            .verneed_walk()?
            .into_iter()
            .flat_map(|(f, names)| std::iter::once(f).chain(names))
            .collect())
    }

    /// Per Elf_Verneed: (vn_file field position and value, [(vna_name position, value)]).
    #[allow(clippy::type_complexity)]
    fn verneed_walk(&self) -> Result<Vec<((u64, u64), Vec<(u64, u64)>)>> {
        let Some(i) = self.section_index(".gnu.version_r") else {
            return Ok(Vec::new());
        };
        let c = self.class;
        let d = self.section_data(i)?;
        let count = self.shdrs[i].sh_info as usize;
        let mut out = Vec::new();
        let mut pos = 0u64;
        for _ in 0..count.min(d.len() / 16 + 1) {
            let cnt = c.u16(d, pos + 2)?;
            let file = u64::from(c.u32(d, pos + 4)?);
            let aux = u64::from(c.u32(d, pos + 8)?);
            let next = u64::from(c.u32(d, pos + 12)?);
            let mut names = Vec::new();
            let mut a = pos
                .checked_add(aux)
                .ok_or_else(|| Error::malformed("verneed out of bounds"))?;
            for _ in 0..cnt.min((d.len() / 16) as u16 + 1) {
                let name = u64::from(c.u32(d, a + 8)?);
                names.push((a + 8, name));
                let an = u64::from(c.u32(d, a + 12)?);
                if an == 0 {
                    break;
                }
                a = a
                    .checked_add(an)
                    .ok_or_else(|| Error::malformed("verneed out of bounds"))?;
            }
            out.push(((pos + 4, file), names));
            if next == 0 {
                break;
            }
            pos = pos
                .checked_add(next)
                .ok_or_else(|| Error::malformed("verneed out of bounds"))?;
        }
        Ok(out)
    }

    pub fn replace_needed(&mut self, map: &[(String, String)]) -> Result<()> {
        if map.is_empty() {
            return Ok(());
        }
        let lookup: BTreeMap<&str, &str> =
            map.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // New strings appended once and shared by every reference (DT_NEEDED and vn_file).
        let mut appended: BTreeMap<String, u64> = BTreeMap::new();
        let mut any = false;
        let entries = self.dyns()?;
        for (k, e) in entries.iter().enumerate() {
            if e.d_tag != DT_NEEDED {
                continue;
            }
            let name = self.dynstr_get(e.d_val)?;
            let Some(&to) = lookup.get(name.as_str()) else {
                continue;
            };
            if to == name {
                continue;
            }
            self.debug(format!("replacing DT_NEEDED entry '{name}' with '{to}'"));
            let off = self.new_string_for(e.d_val, &name, to, &mut appended)?;
            self.set_dyn(
                k,
                Dyn {
                    d_tag: DT_NEEDED,
                    d_val: off,
                },
            )?;
            self.changed = true;
            any = true;
        }
        if let Some(vi) = self.section_index(".gnu.version_r") {
            let walk = self.verneed_walk()?;
            for ((pos, file), _) in walk {
                let name = self.dynstr_get(file)?;
                let Some(&to) = lookup.get(name.as_str()) else {
                    continue;
                };
                if to == name {
                    continue;
                }
                self.debug(format!(
                    "replacing .gnu.version_r entry '{name}' with '{to}'"
                ));
                let off = self.new_string_for(file, &name, to, &mut appended)?;
                let c = self.class;
                let off32 =
                    u32::try_from(off).map_err(|_| Error::unsupported(".dynstr too large"))?;
                let buf = self.section_data_mut(vi)?;
                c.put_u32(buf, pos, off32)?;
                self.changed = true;
                any = true;
            }
        }
        if any {
            // A replaced library name makes the cache's entry for it wrong (no-op replacements keep it).
            self.drop_resolution_cache()?;
        }
        Ok(())
    }

    /// Offset of `to` in `.dynstr`: a suffix of the old string `name` at `old_off` is reused in place
    /// (nothing grows, test replace-needed); otherwise `to` is appended once.
    fn new_string_for(
        &mut self,
        old_off: u64,
        name: &str,
        to: &str,
        appended: &mut BTreeMap<String, u64>,
    ) -> Result<u64> {
        if name.ends_with(to) {
            return Ok(old_off + (name.len() - to.len()) as u64);
        }
        if let Some(&o) = appended.get(to) {
            return Ok(o);
        }
        let o = self.dynstr_append(to.as_bytes())?;
        appended.insert(to.to_string(), o);
        Ok(o)
    }

    /// Adds DT_NEEDED entries at the top of `.dynamic`, in the set's (lexicographic) order.
    pub fn add_needed(&mut self, libs: &BTreeSet<String>) -> Result<()> {
        if libs.is_empty() {
            return Ok(());
        }
        let mut new = Vec::new();
        for l in libs {
            self.debug(format!("adding DT_NEEDED entry '{l}'"));
            let off = self.dynstr_append(l.as_bytes())?;
            new.push(Dyn {
                d_tag: DT_NEEDED,
                d_val: off,
            });
        }
        self.insert_dyn_top(&new)?;
        // The new libraries are not in the cache; the loader must not trust an incomplete one.
        self.drop_resolution_cache()?;
        self.changed = true;
        Ok(())
    }

    // ---------------------------------------------------------------- soname, flags

    /// DT_SONAME of a shared library; `None` when absent, empty, or the file is not ET_DYN.
    pub fn soname(&self) -> Result<Option<String>> {
        if self.ehdr.e_type != ET_DYN {
            return Ok(None);
        }
        for e in self.dyns()? {
            if e.d_tag == DT_SONAME {
                let s = self.dynstr_get(e.d_val)?;
                return Ok(if s.is_empty() { None } else { Some(s) });
            }
        }
        Ok(None)
    }

    pub fn set_soname(&mut self, new: &str) -> Result<()> {
        if self.ehdr.e_type != ET_DYN {
            self.debug("this is not a dynamic library");
            return Ok(());
        }
        let entries = self.dyns()?;
        let k = entries.iter().position(|e| e.d_tag == DT_SONAME);
        if let Some(k) = k {
            if self.dynstr_get(entries[k].d_val)? == new {
                self.debug("current and proposed new SONAMEs are equal keeping DT_SONAME entry");
                return Ok(());
            }
        }
        let off = self.dynstr_append(new.as_bytes())?;
        match k {
            Some(k) => self.set_dyn(
                k,
                Dyn {
                    d_tag: DT_SONAME,
                    d_val: off,
                },
            )?,
            None => self.insert_dyn_top(&[Dyn {
                d_tag: DT_SONAME,
                d_val: off,
            }])?,
        }
        self.changed = true;
        Ok(())
    }

    pub fn no_default_lib(&mut self) -> Result<()> {
        let entries = self.dyns()?;
        match entries.iter().position(|e| e.d_tag == DT_FLAGS_1) {
            Some(k) => {
                if entries[k].d_val & DF_1_NODEFLIB != 0 {
                    return Ok(());
                }
                let v = entries[k].d_val | DF_1_NODEFLIB;
                self.set_dyn(
                    k,
                    Dyn {
                        d_tag: DT_FLAGS_1,
                        d_val: v,
                    },
                )?;
            }
            None => self.insert_dyn_top(&[Dyn {
                d_tag: DT_FLAGS_1,
                d_val: DF_1_NODEFLIB,
            }])?,
        }
        self.changed = true;
        Ok(())
    }

    pub fn add_debug_tag(&mut self) -> Result<()> {
        if self.dynamic_section().is_none() {
            return Ok(());
        }
        if self.dyns()?.iter().any(|e| e.d_tag == DT_DEBUG) {
            return Ok(());
        }
        self.insert_dyn_top(&[Dyn {
            d_tag: DT_DEBUG,
            d_val: 0,
        }])?;
        self.changed = true;
        Ok(())
    }

    /// Sets the `.gnu.version` index of every dynamic symbol named in `syms` to 1 (global, unversioned).
    pub fn clear_symbol_version(&mut self, syms: &BTreeSet<String>) -> Result<()> {
        if syms.is_empty() {
            return Ok(());
        }
        let (Some(ds), Some(vs)) = (
            self.section_index(".dynsym"),
            self.section_index(".gnu.version"),
        ) else {
            return Err(Error::unsupported("cannot find section '.gnu.version'"));
        };
        let c = self.class;
        let dynsym = self.section_data(ds)?.to_vec();
        let strtab_i = self.dynstr_section()?;
        let strtab = self.section_data(strtab_i)?.to_vec();
        let n = dynsym.len() / c.sym_size() as usize;
        let mut hits = Vec::new();
        for k in 0..n {
            let name_off = u64::from(c.u32(&dynsym, k as u64 * c.sym_size())?);
            let name = lossy(str_at(&strtab, name_off)?);
            if syms.contains(&name) {
                hits.push((k, name));
            }
        }
        let versym = self.section_data_mut(vs)?;
        let mut changed = false;
        let mut log = Vec::new();
        for (k, name) in hits {
            let off = k as u64 * 2;
            if off + 2 > versym.len() as u64 {
                return Err(Error::malformed("versym index out of bounds"));
            }
            log.push(format!("clearing symbol version for {name}"));
            if c.u16(versym, off)? != 1 {
                c.put_u16(versym, off, 1)?;
                changed = true;
            }
        }
        self.debug_log.extend(log);
        self.changed |= changed;
        Ok(())
    }

    // ---------------------------------------------------------------- header flags

    pub fn os_abi(&self) -> u8 {
        self.data[7]
    }

    pub fn set_os_abi(&mut self, v: u8) {
        if self.data[7] != v {
            self.data[7] = v;
            // EI_ABIVERSION is meaningless for another ABI; patchelf zeroes it too.
            self.data[8] = 0;
            self.changed = true;
        }
    }

    /// `Some(true)` if PT_GNU_STACK has PF_X, `Some(false)` if not, `None` without PT_GNU_STACK.
    pub fn execstack(&self) -> Option<bool> {
        self.phdrs
            .iter()
            .find(|p| p.p_type == PT_GNU_STACK)
            .map(|p| p.p_flags & PF_X != 0)
    }

    pub fn set_execstack(&mut self, exec: bool) -> Result<()> {
        if let Some(i) = self.phdrs.iter().position(|p| p.p_type == PT_GNU_STACK) {
            let f = if exec {
                self.phdrs[i].p_flags | PF_X
            } else {
                self.phdrs[i].p_flags & !PF_X
            };
            if f != self.phdrs[i].p_flags {
                self.phdrs[i].p_flags = f;
                self.rewrite_phdr(i)?;
                self.changed = true;
            }
            return Ok(());
        }
        // No PT_GNU_STACK: add one (the kernel's default without it is an executable stack).
        self.debug("adding PT_GNU_STACK program header");
        self.force_layout = true;
        self.phdrs.push(Phdr {
            p_type: PT_GNU_STACK,
            p_flags: PF_R | PF_W | if exec { PF_X } else { 0 },
            p_align: 1,
            ..Phdr::default()
        });
        self.changed = true;
        Ok(())
    }

    // ---------------------------------------------------------------- udocker root prefixes

    /// udocker's `--set-root-prefix ROOT`: interpreter, run path entries and absolute DT_NEEDED not
    /// already under ROOT become `ROOT + "/" + old` (the `//` is kept on purpose, spec §3).
    pub fn set_root_prefix(&mut self, root: &str) -> Result<()> {
        if let Some(i) = self.interpreter()? {
            if !i.is_empty() && !i.starts_with(root) {
                self.set_interpreter(&format!("{root}/{i}"))?;
            }
        }
        if let Some(rp) = self.rpath()? {
            let new: Vec<String> = rp
                .split(':')
                .map(|e| {
                    if e.is_empty()
                        || e.starts_with("$ORIGIN")
                        || e.starts_with("${ORIGIN}")
                        || e.starts_with(root)
                    {
                        e.to_string()
                    } else {
                        format!("{root}/{e}")
                    }
                })
                .collect();
            self.modify_rpath(&RpathOp::Set(new.join(":")), false)?;
        }
        let map: Vec<(String, String)> = self
            .needed()?
            .into_iter()
            .filter(|n| n.starts_with('/') && !n.starts_with(root))
            .map(|n| {
                let to = format!("{root}/{n}");
                (n, to)
            })
            .collect();
        self.replace_needed(&map)
    }

    /// udocker's `--restore-root-prefix ROOT`: strips exactly `ROOT + "/"` where `set_root_prefix` added it.
    pub fn restore_root_prefix(&mut self, root: &str) -> Result<()> {
        let pre = format!("{root}/");
        if let Some(i) = self.interpreter()? {
            if let Some(rest) = i.strip_prefix(&pre) {
                self.set_interpreter(rest)?;
            }
        }
        if let Some(rp) = self.rpath()? {
            let new: Vec<&str> = rp
                .split(':')
                .map(|e| e.strip_prefix(&pre).unwrap_or(e))
                .collect();
            let new = new.join(":");
            if new != rp {
                self.modify_rpath(&RpathOp::Set(new), false)?;
            }
        }
        let map: Vec<(String, String)> = self
            .needed()?
            .into_iter()
            .filter_map(|n| n.strip_prefix(&pre).map(|r| (n.clone(), r.to_string())))
            .collect();
        self.replace_needed(&map)
    }
}

/// Whether `p` is a readable ELF file for machine `m` (shrink-rpath keeps only matching directories).
fn same_machine(p: &Path, m: u16) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut h = [0u8; 20];
    if f.read_exact(&mut h).is_err() || &h[..4] != b"\x7fELF" {
        return false;
    }
    let em = if h[5] == 2 {
        u16::from_be_bytes([h[18], h[19]])
    } else {
        u16::from_le_bytes([h[18], h[19]])
    };
    em == m
}
