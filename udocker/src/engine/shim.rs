//! The fakechroot shim (`preload/`) as written into a container directory.
//!
//! One library serves every container: its only versioned import is `dlsym@GLIBC_2.2.5`, which
//! glibc before 2.34 defines in `libdl.so.2`, so the embedded file names `libdl.so.2` in
//! DT_NEEDED and in its version requirement. From glibc 2.34 on, `libc.so.6` defines that very
//! symbol version too (the libdl functions moved into libc; `libdl.so.2` is an empty stub kept
//! for old programs), and loading the stub costs every exec one more library (open, read, four
//! mappings, relocation): about 40 us of a 520 us fork+exec on the machine of
//! `scripts/bench-fake`. So when the container's `libc.so.6` defines `dlsym@GLIBC_2.2.5`, the
//! copy written for it names `libc.so.6` instead (the same string table slot, one byte shorter:
//! nothing else moves). musl treats both names as itself, so it keeps the embedded file.
//!
//! The answer is cached in the container directory against the libc file's identity (device,
//! inode, size, modification time), so `udocker run` reads the 2 MB libc only after it changed
//! (an upgrade or downgrade inside the container is seen at the next run).

use super::{io_err, EngineError};
use std::borrow::Cow;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The shim, as built for this binary's architecture (empty where F modes are not supported).
pub static LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libpreload.so"));

/// Where the cached answer lives in the container directory.
const CACHE: &str = "libc.dlsym";
/// What the library written last is (`PRELOAD_HASH`-variant) and that file's identity.
const STAMP: &str = "libfakechroot.stamp";

/// The needed library as the embedded file names it, and its replacement (same length, so the
/// string table keeps its size and every offset into it stays valid).
const NEEDED_DL: &[u8] = b"\0libdl.so.2\0";
const NEEDED_C: &[u8] = b"\0libc.so.6\0\0";

/// Write the shim for a container whose library directories (in LD_LIBRARY_PATH order) are
/// `libdirs` into `state_dir` (atomically, only when it differs) and return its path.
pub fn install(state_dir: &Path, libdirs: &[String]) -> Result<PathBuf, EngineError> {
    if LIBRARY.is_empty() {
        return Err(EngineError::Unavailable(format!(
            "execution mode F1 is not available on {}",
            std::env::consts::ARCH
        )));
    }
    let libc = libc_has_dlsym(state_dir, libdirs);
    let p = state_dir.join("libfakechroot.so");
    // What should be there, and the identity of the file we last wrote it to: when both match,
    // the 150 KB file is neither read nor compared (every `udocker run` in F1-F4 asks).
    let want_id = format!("{}-{}", env!("PRELOAD_HASH"), libc as u8);
    let stamp = state_dir.join(STAMP);
    let written = fs::metadata(&p)
        .ok()
        .map(|md| format!("{want_id} {}", identity(&md)));
    if written.is_some() && fs::read_to_string(&stamp).ok().as_deref() == written.as_deref() {
        return Ok(p);
    }
    let want = library(libc);
    if fs::read(&p).ok().as_deref() != Some(&want[..]) {
        crate::fsutil::write_atomic(&p, &want, 0o755).map_err(io_err("writing", &p))?;
    }
    if let Ok(md) = fs::metadata(&p) {
        let _ = crate::fsutil::write_atomic(
            &stamp,
            format!("{want_id} {}", identity(&md)).as_bytes(),
            0o644,
        );
    }
    Ok(p)
}

/// The embedded library, or its copy that needs `libc.so.6` rather than `libdl.so.2`. The
/// embedded file is returned unchanged unless its dynamic string table holds the name exactly
/// once (what our build produces; anything else is left alone rather than guessed at).
pub fn library(libc_has_dlsym: bool) -> Cow<'static, [u8]> {
    if !libc_has_dlsym {
        return Cow::Borrowed(LIBRARY);
    }
    match dynstr_range(LIBRARY).and_then(|r| {
        let t = &LIBRARY[r.clone()];
        let at = find(t, NEEDED_DL)?;
        find(&t[at + 1..], NEEDED_DL)
            .is_none()
            .then_some(r.start + at)
    }) {
        Some(at) => {
            let mut v = LIBRARY.to_vec();
            v[at..at + NEEDED_C.len()].copy_from_slice(NEEDED_C);
            Cow::Owned(v)
        }
        None => Cow::Borrowed(LIBRARY),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// File range of the dynamic string table (DT_STRTAB, DT_STRSZ), through the PT_LOAD that maps
/// it. The leading NUL of a match may be the table's first byte.
fn dynstr_range(elf: &[u8]) -> Option<std::ops::Range<usize>> {
    let e = goblin::elf::Elf::parse(elf).ok()?;
    let info = &e.dynamic.as_ref()?.info;
    let (va, size) = (info.strtab as u64, info.strsz as u64);
    let ph = e.program_headers.iter().find(|p| {
        p.p_type == goblin::elf::program_header::PT_LOAD
            && va >= p.p_vaddr
            && va.checked_add(size) <= p.p_vaddr.checked_add(p.p_filesz)
    })?;
    let start = usize::try_from(va - ph.p_vaddr + ph.p_offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    (end <= elf.len()).then_some(start..end)
}

/// Does the `libc.so.6` the loader will find first in `libdirs` define `dlsym@GLIBC_2.2.5`?
/// False when there is none (musl) or it cannot be read: the embedded library is always safe.
fn libc_has_dlsym(state_dir: &Path, libdirs: &[String]) -> bool {
    let Some(libc) = libdirs
        .iter()
        .map(|d| Path::new(d).join("libc.so.6"))
        .find(|p| p.is_file())
    else {
        return false;
    };
    file_fact(state_dir, CACHE, &libc, |b| {
        if defines_dlsym_baseline(b) { "1" } else { "0" }.into()
    })
    .is_some_and(|v| v == "1")
}

/// The identity of a file for the caches below: device, inode, size, modification time (a
/// replaced or rewritten file differs in one of them).
fn identity(md: &fs::Metadata) -> String {
    format!(
        "{} {} {} {}.{}",
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec()
    )
}

/// A fact about `file` (one word, computed by `f` from its bytes), cached in `state_dir/name`
/// against the file's identity: `udocker run` reads a container's libc or loader (2 MB, 200 KB)
/// only when it changed. `None` when the file cannot be read. The cache is only a cache: a
/// failed write costs the next run one more read.
pub fn file_fact(
    state_dir: &Path,
    name: &str,
    file: &Path,
    f: impl FnOnce(&[u8]) -> String,
) -> Option<String> {
    let key = identity(&fs::metadata(file).ok()?);
    let cache = state_dir.join(name);
    if let Some(v) = fs::read_to_string(&cache).ok().and_then(|s| {
        let v = s.strip_prefix(&key)?.strip_prefix(' ')?.trim();
        (!v.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_string())
    }) {
        return Some(v);
    }
    let v = f(&fs::read(file).ok()?);
    let _ = crate::fsutil::write_atomic(&cache, format!("{key} {v}\n").as_bytes(), 0o644);
    Some(v)
}

/// True when `elf` defines `dlsym` with version `GLIBC_2.2.5` (default or not).
pub fn defines_dlsym_baseline(elf: &[u8]) -> bool {
    let Ok(e) = goblin::elf::Elf::parse(elf) else {
        return false;
    };
    let (Some(versym), Some(verdef)) = (&e.versym, &e.verdef) else {
        return false;
    };
    let Some(ndx) = verdef.iter().find_map(|d| {
        let name = d
            .iter()
            .next()
            .and_then(|a| e.dynstrtab.get_at(a.vda_name))?;
        (name == "GLIBC_2.2.5").then_some(d.vd_ndx)
    }) else {
        return false;
    };
    e.dynsyms.iter().enumerate().any(|(i, s)| {
        s.st_shndx != 0
            && e.dynstrtab.get_at(s.st_name) == Some("dlsym")
            && versym.get_at(i).is_some_and(|v| v.version() == ndx)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needed(elf: &[u8]) -> Vec<String> {
        let e = goblin::elf::Elf::parse(elf).unwrap();
        e.libraries.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn libc_variant_swaps_only_the_needed_name() {
        if LIBRARY.is_empty() {
            return;
        }
        assert_eq!(needed(LIBRARY), ["libdl.so.2"]);
        assert!(matches!(library(false), Cow::Borrowed(_)));
        let v = library(true);
        assert_eq!(v.len(), LIBRARY.len());
        assert_eq!(needed(&v), ["libc.so.6"]);
        let diff = v.iter().zip(LIBRARY).filter(|(a, b)| a != b).count();
        assert!(diff <= NEEDED_C.len(), "{diff} bytes changed");
        // The version requirement names the same string: it now asks libc.so.6 for GLIBC_2.2.5.
        let e = goblin::elf::Elf::parse(&v).unwrap();
        let vn = e.verneed.as_ref().unwrap();
        let files: Vec<_> = vn.iter().map(|n| e.dynstrtab.get_at(n.vn_file)).collect();
        assert_eq!(files, [Some("libc.so.6")]);
    }

    #[test]
    fn dlsym_baseline_check_reads_versions() {
        // Not an ELF, or an ELF without that definition: no.
        assert!(!defines_dlsym_baseline(b"not an elf"));
        assert!(!defines_dlsym_baseline(LIBRARY));
        // The host's libc (Debian 12: glibc 2.36) has dlsym@GLIBC_2.2.5.
        let host = Path::new("/lib/x86_64-linux-gnu/libc.so.6");
        if let Ok(b) = fs::read(host) {
            assert!(defines_dlsym_baseline(&b));
        }
    }

    #[test]
    fn libc_answer_is_cached_by_file_identity() {
        let t = tempfile::tempdir().unwrap();
        let lib = t.path().join("lib");
        fs::create_dir(&lib).unwrap();
        let dirs = [lib.to_string_lossy().into_owned()];
        assert!(!libc_has_dlsym(t.path(), &dirs), "no libc.so.6: keep libdl");
        fs::write(lib.join("libc.so.6"), b"junk").unwrap();
        assert!(!libc_has_dlsym(t.path(), &dirs));
        let c = fs::read_to_string(t.path().join(CACHE)).unwrap();
        assert!(c.ends_with(" 0\n"), "{c}");
        // A forged cache line for the same identity is believed (it is ours)...
        fs::write(t.path().join(CACHE), c.replace(" 0\n", " 1\n")).unwrap();
        assert!(libc_has_dlsym(t.path(), &dirs));
        // ...until the file changes.
        fs::write(lib.join("libc.so.6"), b"other junk").unwrap();
        assert!(!libc_has_dlsym(t.path(), &dirs));
    }
}
