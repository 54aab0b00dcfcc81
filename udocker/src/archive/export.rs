//! `export`: a container as a tar (`spec/udocker.md` §1: upstream runs
//! `tar -C ROOT -c --one-file-system -S --xattrs -f F .`). Members are named `./…` like GNU tar's
//! output for `.`; symlinks stay symlinks (targets byte for byte), files with several links in the
//! tree become one file plus hard-link members, modes/owners/mtimes are kept, and the walk does not
//! cross into other file systems (`--one-file-system`). Sockets cannot be archived (tar skips them
//! too). Not kept: extended attributes and sparseness (a sparse file is stored in full).

use super::{io_err, path_bytes, ArchiveError, Result, TarOut};
use crate::container::Container;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Default, Clone)]
pub struct ExportStats {
    pub entries: u64,
    pub bytes: u64,
    /// Entries left out: sockets, other file systems' contents.
    pub skipped: Vec<String>,
}

/// Write container `c` as a tar to `out`: its ROOT, or with `clone` its whole directory (udocker's
/// clone format, read back by `import --clone`).
pub fn export_container(c: &Container, clone: bool, out: &mut dyn Write) -> Result<ExportStats> {
    let top = if clone { c.dir.clone() } else { c.root() };
    match fs::symlink_metadata(&top) {
        Ok(m) if m.is_dir() => {}
        _ => {
            return Err(ArchiveError::Format(format!(
                "container {} has no ROOT directory",
                c.id
            )))
        }
    }
    export_tree(&top, out)
}

/// Archive the tree at `top` with member names `./<path below top>`.
pub fn export_tree(top: &Path, out: &mut dyn Write) -> Result<ExportStats> {
    let mut tar = TarOut::new(out);
    let mut stats = ExportStats::default();
    let top_dev = fs::symlink_metadata(top)
        .map_err(io_err("reading", top))?
        .dev();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    // Depth-first, children sorted by name so the same tree always gives the same archive.
    let mut todo: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let abs = top.join(&rel);
        let m = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            // Vanished while we walked (a container in use): as tar, warn and go on.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stats.skipped.push(format!("{}: vanished", rel.display()));
                continue;
            }
            Err(e) => return Err(ArchiveError::Io("reading".into(), abs, e)),
        };
        let mut name = b"./".to_vec();
        name.extend_from_slice(path_bytes(&rel));
        let ft = m.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(u64::from(m.uid()));
        h.set_gid(u64::from(m.gid()));
        h.set_mtime(m.mtime().max(0) as u64);
        h.set_size(0);
        let werr = |e: io::Error| ArchiveError::Io("writing archive".into(), abs.clone(), e);
        if ft.is_dir() {
            if !rel.as_os_str().is_empty() && !name.ends_with(b"/") {
                name.push(b'/');
            }
            h.set_entry_type(tar::EntryType::Directory);
            tar.append(&mut h, &name, None, &mut io::empty())
                .map_err(werr)?;
            stats.entries += 1;
            if m.dev() != top_dev {
                // A mount point: archived itself, not its contents (`--one-file-system`).
                stats
                    .skipped
                    .push(format!("{}: on another file system", rel.display()));
                continue;
            }
            let mut kids: Vec<_> = fs::read_dir(&abs)
                .map_err(io_err("reading", &abs))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            kids.sort();
            for k in kids.into_iter().rev() {
                todo.push(rel.join(k));
            }
        } else if ft.is_symlink() {
            let t = fs::read_link(&abs).map_err(io_err("reading", &abs))?;
            h.set_entry_type(tar::EntryType::Symlink);
            tar.append(&mut h, &name, Some(path_bytes(&t)), &mut io::empty())
                .map_err(werr)?;
            stats.entries += 1;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    tar.append(&mut h, &name, Some(first), &mut io::empty())
                        .map_err(werr)?;
                    stats.entries += 1;
                    continue;
                }
                links.insert((m.dev(), m.ino()), name.clone());
            }
            let mut f = File::open(&abs).map_err(io_err("reading", &abs))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            tar.append(&mut h, &name, None, &mut f).map_err(werr)?;
            stats.entries += 1;
            stats.bytes += m.len();
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let rdev = m.rdev();
            let _ = h.set_device_major(nix::sys::stat::major(rdev) as u32);
            let _ = h.set_device_minor(nix::sys::stat::minor(rdev) as u32);
            tar.append(&mut h, &name, None, &mut io::empty())
                .map_err(werr)?;
            stats.entries += 1;
        } else {
            stats
                .skipped
                .push(format!("{}: socket ignored", rel.display()));
        }
    }
    tar.finish()
        .map_err(|e| ArchiveError::Io("writing archive".into(), top.to_path_buf(), e))?;
    Ok(stats)
}
