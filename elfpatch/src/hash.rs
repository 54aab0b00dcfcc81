//! `--rename-dynamic-symbols`: new names appended to `.dynstr`, then `.gnu.hash` / `.hash` rebuilt.
//!
//! Renaming changes the symbols' hashes, so the GNU hash table (whose chains must list the symbols of
//! one bucket contiguously, in `.dynsym` order) forces a reordering of the hashed part of `.dynsym`.
//! Everything indexed by dynamic symbol follows: `.gnu.version` entries and the symbol index of every
//! relocation against `.dynsym`. All new contents are computed first and committed only when every
//! check has passed, so an error leaves the in-memory image untouched.

use crate::dynamic::{lossy, str_at};
use crate::error::{Error, Result};
use crate::model::{Elf, SHF_ALLOC, SHT_REL, SHT_RELA};
use std::collections::HashMap;

/// The GNU hash function (`dl_new_hash`).
pub(crate) fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| {
        h.wrapping_shl(5).wrapping_add(h).wrapping_add(u32::from(c))
    })
}

/// The System V ABI hash function (`elf_hash`).
pub(crate) fn sysv_hash(name: &[u8]) -> u32 {
    let mut h = 0u32;
    for &c in name {
        h = h.wrapping_shl(4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

fn gnu_range() -> Error {
    Error::malformed(".gnu.hash table header out of range")
}

fn sysv_range() -> Error {
    Error::malformed(".hash table header out of range")
}

/// Decoded `.gnu.hash` header with the byte offsets of its three arrays.
struct GnuHash {
    nbuckets: u32,
    symndx: u32,
    maskwords: u32,
    shift2: u32,
    bloom_off: u64,
    buckets_off: u64,
    chain_off: u64,
    chain_len: u64,
}

fn parse_gnu_hash(c: crate::model::Class, d: &[u8]) -> Result<GnuHash> {
    if d.len() < 16 {
        return Err(Error::malformed(".gnu.hash section is too small"));
    }
    let nbuckets = c.u32(d, 0)?;
    let symndx = c.u32(d, 4)?;
    let maskwords = c.u32(d, 8)?;
    let shift2 = c.u32(d, 12)?;
    let avail = d.len() as u64 - 16;
    if nbuckets == 0 || maskwords == 0 {
        return Err(gnu_range());
    }
    let bloom = u64::from(maskwords)
        .checked_mul(c.word())
        .ok_or_else(gnu_range)?;
    let buckets = u64::from(nbuckets) * 4;
    if bloom > avail || buckets > avail - bloom {
        return Err(gnu_range());
    }
    let chain_off = 16 + bloom + buckets;
    Ok(GnuHash {
        nbuckets,
        symndx,
        maskwords,
        shift2,
        bloom_off: 16,
        buckets_off: 16 + bloom,
        chain_off,
        chain_len: (d.len() as u64 - chain_off) / 4,
    })
}

/// Symbol index field of a relocation's `r_info`.
fn r_sym(is64: bool, info: u64) -> u64 {
    if is64 {
        info >> 32
    } else {
        info >> 8
    }
}

fn r_with_sym(is64: bool, info: u64, sym: u64) -> u64 {
    if is64 {
        (sym << 32) | (info & 0xffff_ffff)
    } else {
        (sym << 8) | (info & 0xff)
    }
}

impl Elf {
    /// Renames dynamic symbols per `map` (`old → new`). Every new name is appended once to `.dynstr`;
    /// `.gnu.hash` and `.hash`, when present, are rebuilt for the new names.
    pub fn rename_dynamic_symbols(&mut self, map: &[(String, String)]) -> Result<()> {
        if map.is_empty() {
            return Ok(());
        }
        let c = self.class;
        let ds = self
            .section_index(".dynsym")
            .ok_or_else(|| Error::unsupported("cannot find section '.dynsym'"))?;
        let strtab_i = self.dynstr_section()?;
        let es = c.sym_size() as usize;
        let mut syms = self.section_table(ds, c.word())?.to_vec();
        syms.truncate(syms.len() / es * es);
        let n = syms.len() / es;
        let mut strtab = self.section_data(strtab_i)?.to_vec();
        let old_len = strtab.len();

        let lookup: HashMap<&[u8], &str> = map
            .iter()
            .map(|(a, b)| (a.as_bytes(), b.as_str()))
            .collect();
        let mut appended: HashMap<&str, u32> = HashMap::new();
        let mut log = Vec::new();
        let mut renamed = false;
        for k in 0..n {
            let pos = (k * es) as u64;
            let name_off = c.u32(&syms, pos)?;
            let name = str_at(&strtab[..old_len], name_off.into())?;
            let Some(&to) = lookup.get(name) else {
                continue;
            };
            log.push(format!("renaming dynamic symbol {} to {to}", lossy(name)));
            let off = match appended.get(to) {
                Some(&o) => o,
                None => {
                    let o = u32::try_from(strtab.len())
                        .map_err(|_| Error::unsupported(".dynstr too large"))?;
                    strtab.extend_from_slice(to.as_bytes());
                    strtab.push(0);
                    appended.insert(to, o);
                    o
                }
            };
            c.put_u32(&mut syms, pos, off)?;
            renamed = true;
        }
        self.debug_log.extend(log);
        if !renamed {
            return Ok(());
        }

        // New contents of whole sections (same sizes), committed at the end.
        let mut writes: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut versym = match self.section_index(".gnu.version") {
            Some(v) => Some((v, self.section_table(v, 2)?.to_vec())),
            None => None,
        };

        if let Some(gi) = self.section_index(".gnu.hash") {
            let mut g = self.section_table(gi, c.word())?.to_vec();
            let h = parse_gnu_hash(c, &g)?;
            // An empty chain array leaves nothing to rebuild (and symndx cannot be trusted).
            if h.chain_len > 0 {
                let first = h.symndx as usize;
                if first > n {
                    return Err(Error::malformed(
                        ".gnu.hash symbol index past the end of .dynsym",
                    ));
                }
                let count = n - first;
                if (h.chain_len as usize) < count {
                    return Err(Error::malformed(
                        ".gnu.hash chain array shorter than .dynsym",
                    ));
                }
                // (hash, bucket, original position), sorted by bucket (stable: keeps the old order).
                let mut entries = Vec::with_capacity(count);
                for k in 0..count {
                    let name_off = c.u32(&syms, ((first + k) * es) as u64)?;
                    let hash = gnu_hash(str_at(&strtab, name_off.into())?);
                    entries.push((hash, hash % h.nbuckets, k));
                }
                entries.sort_by_key(|e| e.1);
                let mut old2new = vec![0usize; count];
                for (new, e) in entries.iter().enumerate() {
                    old2new[e.2] = new;
                }

                // Reorder the symbols and their version entries.
                let old_syms = syms.clone();
                for (old, &new) in old2new.iter().enumerate() {
                    let (o, d) = ((first + old) * es, (first + new) * es);
                    syms[d..d + es].copy_from_slice(&old_syms[o..o + es]);
                }
                if let Some((_, vs)) = versym.as_mut() {
                    if vs.len() / 2 < n {
                        return Err(Error::malformed(".gnu.version shorter than .dynsym"));
                    }
                    let old_vs = vs.clone();
                    for (old, &new) in old2new.iter().enumerate() {
                        let (o, d) = ((first + old) * 2, (first + new) * 2);
                        vs[d..d + 2].copy_from_slice(&old_vs[o..o + 2]);
                    }
                }

                // Relocations against .dynsym follow their symbols.
                for ri in 1..self.shdrs.len() {
                    let sh = &self.shdrs[ri];
                    let ent = match sh.sh_type {
                        SHT_REL => 2 * c.word(),
                        SHT_RELA => 3 * c.word(),
                        _ => continue,
                    };
                    let against_dynsym = sh.sh_link as usize == ds
                        || (sh.sh_link == 0 && sh.sh_flags & SHF_ALLOC != 0);
                    if !against_dynsym {
                        continue;
                    }
                    let mut r = self.section_table(ri, c.word())?.to_vec();
                    let mut touched = false;
                    for k in 0..r.len() as u64 / ent {
                        let at = k * ent + c.word();
                        let info = c.word_at(&r, at)?;
                        let sym = r_sym(c.is64, info);
                        if sym >= n as u64 {
                            return Err(Error::malformed(format!(
                                "relocation in section '{}' refers to a symbol index out of range",
                                self.shdrs[ri].name
                            )));
                        }
                        let sym = sym as usize;
                        if sym >= first {
                            let new = (old2new[sym - first] + first) as u64;
                            if new != sym as u64 {
                                c.put_word(&mut r, at, r_with_sym(c.is64, info, new))?;
                                touched = true;
                            }
                        }
                    }
                    if touched {
                        writes.push((ri, r));
                    }
                }

                // Bloom filter, buckets and chains.
                let bits = if c.is64 { 64u32 } else { 32 };
                for w in 0..u64::from(h.maskwords) {
                    c.put_word(&mut g, h.bloom_off + w * c.word(), 0)?;
                }
                for &(hash, _, _) in &entries {
                    let idx = u64::from(hash / bits % h.maskwords);
                    let at = h.bloom_off + idx * c.word();
                    let mut val = c.word_at(&g, at)?;
                    val |= 1u64 << (hash % bits);
                    val |= 1u64 << (hash.checked_shr(h.shift2).unwrap_or(0) % bits);
                    c.put_word(&mut g, at, val)?;
                }
                for b in 0..u64::from(h.nbuckets) {
                    c.put_u32(&mut g, h.buckets_off + b * 4, 0)?;
                }
                for (i, &(hash, bucket, _)) in entries.iter().enumerate() {
                    let at = h.buckets_off + u64::from(bucket) * 4;
                    if c.u32(&g, at)? == 0 {
                        let idx = u32::try_from(i + first)
                            .map_err(|_| Error::unsupported("too many dynamic symbols"))?;
                        c.put_u32(&mut g, at, idx)?;
                    }
                    let last = entries.get(i + 1).is_none_or(|nx| nx.1 != bucket);
                    let v = if last { hash | 1 } else { hash & !1 };
                    c.put_u32(&mut g, h.chain_off + i as u64 * 4, v)?;
                }
                writes.push((gi, g));
            }
        }

        if let Some(hi) = self.section_index(".hash") {
            if self.shdrs[hi].sh_entsize == 8 {
                // s390x and alpha use 64-bit .hash words.
                return Err(Error::unsupported(
                    "64-bit .hash entries are not supported by --rename-dynamic-symbols",
                ));
            }
            let mut t = self.section_table(hi, 4)?.to_vec();
            if t.len() < 8 {
                return Err(Error::malformed(".hash section is too small"));
            }
            let nb = c.u32(&t, 0)?;
            let avail = t.len() as u64 - 8;
            if nb == 0 || u64::from(nb) * 4 > avail {
                return Err(sysv_range());
            }
            let chain_off = 8 + u64::from(nb) * 4;
            let chain_len = (t.len() as u64 - chain_off) / 4;
            if chain_len < n as u64 {
                return Err(Error::malformed(".hash chain array shorter than .dynsym"));
            }
            for k in 0..u64::from(nb) + chain_len {
                c.put_u32(&mut t, 8 + k * 4, 0)?;
            }
            for k in 0..n {
                let name_off = c.u32(&syms, (k * es) as u64)?;
                let b = u64::from(sysv_hash(str_at(&strtab, name_off.into())?) % nb);
                let head = c.u32(&t, 8 + b * 4)?;
                c.put_u32(&mut t, chain_off + k as u64 * 4, head)?;
                c.put_u32(&mut t, 8 + b * 4, k as u32)?;
            }
            writes.push((hi, t));
        }

        // Commit: nothing above has touched the image.
        writes.push((ds, syms));
        if let Some((v, vs)) = versym {
            writes.push((v, vs));
        }
        for (i, bytes) in writes {
            let dst = self.section_data_mut(i)?;
            if dst.len() != bytes.len() {
                return Err(Error::unsupported(
                    "internal error: rebuilt section changed size",
                ));
            }
            dst.copy_from_slice(&bytes);
        }
        let r = self.replace_section(strtab_i, strtab.len())?;
        *r = strtab;
        self.changed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_functions_match_the_abi() {
        // Reference values from the glibc/binutils definitions.
        assert_eq!(gnu_hash(b""), 5381);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(sysv_hash(b"printf"), 0x077905a6);
    }

    #[test]
    fn r_info_round_trips() {
        let i = r_with_sym(true, 0x1234_0000_0007, 42);
        assert_eq!(r_sym(true, i), 42);
        assert_eq!(i & 0xffff_ffff, 7);
        let i = r_with_sym(false, 0x1207, 3);
        assert_eq!(r_sym(false, i), 3);
        assert_eq!(i & 0xff, 7);
    }
}
