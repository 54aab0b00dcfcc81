//! The local repository: upstream's on-disk layout (`spec/udocker.md` §2).
//!
//! ```text
//! <topdir>/repos/<name as typed>/<tag>/{TAG, v2, manifest, sha256:<hex> -> ../../layers/sha256:<hex>}
//! <topdir>/layers/sha256:<hex>          every blob stored once, shared by all tags that use it
//! <topdir>/layers/.partial/             downloads in progress (resumable) and per-blob locks
//! <topdir>/repos/.lock                  flock held while tag directories change
//! ```
//! Blobs become visible under `layers/` only by rename after their digest was checked, so a file
//! named `sha256:<hex>` there always had that digest when it was written. Tag directories are built
//! beside their final place and swapped in with renameat2(RENAME_EXCHANGE) under the repository lock.

pub mod keystore;

use crate::digest::Digest;
use crate::fsutil::{self, LockGuard};
use crate::reference::local_display;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub enum RepoError {
    Io(String, PathBuf, io::Error),
    NotARepo(PathBuf),
    Exists(PathBuf),
    ImageNotFound(String),
    ImageExists(String),
    Protected(String),
    BadName(String),
    Corrupt(String),
    ContainerNotFound(String),
    ContainerProtected(String),
    NameTaken(String),
}

impl fmt::Display for RepoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoError::Io(op, p, e) => write!(f, "{op} {}: {e}", p.display()),
            RepoError::NotARepo(p) => write!(f, "not a udocker repository: {}", p.display()),
            RepoError::Exists(p) => write!(f, "already exists: {}", p.display()),
            RepoError::ImageNotFound(i) => write!(f, "image not found: {i}"),
            RepoError::ImageExists(i) => write!(f, "image already exists: {i}"),
            RepoError::Protected(i) => write!(f, "image is protected: {i}"),
            RepoError::BadName(n) => write!(f, "invalid repository name: {n}"),
            RepoError::Corrupt(m) => write!(f, "{m}"),
            RepoError::ContainerNotFound(c) => write!(f, "container not found: {c}"),
            RepoError::ContainerProtected(c) => write!(f, "container is protected: {c}"),
            RepoError::NameTaken(n) => write!(f, "container name already in use: {n}"),
        }
    }
}

impl std::error::Error for RepoError {}

pub type Result<T> = std::result::Result<T, RepoError>;

pub fn io_err(op: &str, p: &Path) -> impl FnOnce(io::Error) -> RepoError {
    let op = op.to_string();
    let p = p.to_path_buf();
    move |e| RepoError::Io(op, p, e)
}

/// Directories of one repository (each may be moved by `UDOCKER_*` variables).
#[derive(Debug, Clone)]
pub struct Layout {
    pub topdir: PathBuf,
    pub repos: PathBuf,
    pub layers: PathBuf,
    pub containers: PathBuf,
    pub bin: PathBuf,
    pub lib: PathBuf,
    pub doc: PathBuf,
}

impl Layout {
    pub fn under(topdir: &Path) -> Layout {
        Layout {
            topdir: topdir.to_path_buf(),
            repos: topdir.join("repos"),
            layers: topdir.join("layers"),
            containers: topdir.join("containers"),
            bin: topdir.join("bin"),
            lib: topdir.join("lib"),
            doc: topdir.join("doc"),
        }
    }

    fn dirs(&self) -> [&Path; 6] {
        [
            &self.repos,
            &self.layers,
            &self.containers,
            &self.bin,
            &self.lib,
            &self.doc,
        ]
    }
}

/// Which storage format a tag directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageVersion {
    V1,
    V2,
}

/// One image (tag directory) of the repository.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    pub name: String,
    pub tag: String,
    pub dir: PathBuf,
    pub protected: bool,
}

impl ImageEntry {
    pub fn display(&self) -> String {
        local_display(&self.name, &self.tag)
    }
}

/// Layers and config of an image, as files in the repository.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub version: StorageVersion,
    /// Layer files, bottom layer first, with the digest they must have when known.
    pub layers: Vec<(PathBuf, Option<Digest>)>,
    /// The image config (OCI/docker config JSON) when the image has one as a file.
    pub config: Option<PathBuf>,
    /// For schema 1 manifests the config is `history[0].v1Compatibility`, kept inline.
    pub inline_config: Option<String>,
    pub manifest: Option<serde_json::Value>,
}

#[derive(Debug)]
pub struct LocalRepo {
    pub layout: Layout,
}

/// Check a repository name as typed by the user before turning it into a path: relative,
/// no `.`/`..`/empty components, no hidden components (ours are temp files).
pub fn check_name(name: &str) -> Result<()> {
    let p = Path::new(name);
    let ok = !name.is_empty()
        && name.len() <= 1024
        && p.components()
            .all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with('.')))
        && !name.contains("//")
        && !name.ends_with('/');
    if ok {
        Ok(())
    } else {
        Err(RepoError::BadName(name.to_string()))
    }
}

fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.starts_with('.') || tag.contains('/') || tag.len() > 200 {
        return Err(RepoError::BadName(tag.to_string()));
    }
    Ok(())
}

/// `to` expressed relative to directory `from` (both absolute).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

impl LocalRepo {
    /// Open the repository, creating its directories on first use (upstream: `Info: creating repo`).
    pub fn open_or_create(layout: Layout) -> Result<(LocalRepo, bool)> {
        let layout = Layout {
            topdir: absolute(&layout.topdir),
            repos: absolute(&layout.repos),
            layers: absolute(&layout.layers),
            containers: absolute(&layout.containers),
            bin: absolute(&layout.bin),
            lib: absolute(&layout.lib),
            doc: absolute(&layout.doc),
        };
        let created = !layout.repos.is_dir() || !layout.layers.is_dir();
        for d in layout.dirs() {
            fs::create_dir_all(d).map_err(io_err("creating", d))?;
        }
        Ok((LocalRepo { layout }, created))
    }

    /// Open an existing repository (`--repo=DIR`): it must already have the layout.
    pub fn open_existing(topdir: &Path) -> Result<LocalRepo> {
        let layout = Layout::under(&absolute(topdir));
        if !layout.repos.is_dir() || !layout.layers.is_dir() || !layout.containers.is_dir() {
            return Err(RepoError::NotARepo(topdir.to_path_buf()));
        }
        Ok(LocalRepo { layout })
    }

    /// `mkrepo DIR`: a new repository in a directory that must not exist yet.
    pub fn make(topdir: &Path) -> Result<LocalRepo> {
        if fs::symlink_metadata(topdir).is_ok() {
            return Err(RepoError::Exists(topdir.to_path_buf()));
        }
        let (r, _) = LocalRepo::open_or_create(Layout::under(topdir))?;
        Ok(r)
    }

    /// Hold the repository lock while tag directories change (pull's final step, rmi, tag).
    pub fn lock(&self) -> Result<LockGuard> {
        let p = self.layout.repos.join(".lock");
        fsutil::lock_exclusive(&p).map_err(io_err("locking", &p))
    }

    pub fn tag_dir(&self, name: &str, tag: &str) -> Result<PathBuf> {
        check_name(name)?;
        check_tag(tag)?;
        Ok(self.layout.repos.join(name).join(tag))
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.layout.layers.join(d.as_str())
    }

    pub fn partial_dir(&self) -> Result<PathBuf> {
        let p = self.layout.layers.join(".partial");
        fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        Ok(p)
    }

    /// Every image: directories holding a `TAG` file, found recursively, sorted by name.
    pub fn images(&self) -> Result<Vec<ImageEntry>> {
        let mut out = Vec::new();
        self.scan(&self.layout.repos, &mut out, 0)?;
        out.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
        Ok(out)
    }

    fn scan(&self, dir: &Path, out: &mut Vec<ImageEntry>, depth: usize) -> Result<()> {
        if depth > 32 {
            return Ok(());
        }
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RepoError::Io("reading".into(), dir.to_path_buf(), e)),
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            if p.join("TAG").is_file() {
                let rel = p.strip_prefix(&self.layout.repos).unwrap_or(&p);
                let tag = rel
                    .file_name()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let name = rel
                    .parent()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push(ImageEntry {
                    name,
                    tag,
                    protected: p.join("PROTECT").exists(),
                    dir: p,
                });
            } else {
                self.scan(&p, out, depth + 1)?;
            }
        }
        Ok(())
    }

    pub fn find_image(&self, name: &str, tag: &str) -> Result<ImageEntry> {
        let dir = self.tag_dir(name, tag)?;
        if !dir.join("TAG").is_file() {
            return Err(RepoError::ImageNotFound(local_display(name, tag)));
        }
        Ok(ImageEntry {
            name: name.into(),
            tag: tag.into(),
            protected: dir.join("PROTECT").exists(),
            dir,
        })
    }

    /// Read what an image is made of from its tag directory (v2: manifest; v1: ancestry).
    pub fn image_files(&self, img: &ImageEntry) -> Result<ImageFiles> {
        let dir = &img.dir;
        if dir.join("v1").exists() {
            let anc = dir.join("ancestry");
            let text = fs::read_to_string(&anc).map_err(io_err("reading", &anc))?;
            let ids: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| RepoError::Corrupt(format!("{}: {e}", anc.display())))?;
            let mut layers = Vec::new();
            for id in ids.iter().rev() {
                if id.contains('/') || id.starts_with('.') {
                    return Err(RepoError::Corrupt(format!(
                        "bad layer id in {}",
                        anc.display()
                    )));
                }
                layers.push((dir.join(format!("{id}.layer")), None));
            }
            let config = [
                dir.join("container.json"),
                ids.first()
                    .map(|t| dir.join(format!("{t}.json")))
                    .unwrap_or_default(),
            ]
            .into_iter()
            .find(|p| p.is_file());
            return Ok(ImageFiles {
                version: StorageVersion::V1,
                layers,
                config,
                inline_config: None,
                manifest: None,
            });
        }
        let mf = dir.join("manifest");
        let bytes = fs::read(&mf).map_err(io_err("reading", &mf))?;
        let m: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| RepoError::Corrupt(format!("{}: {e}", mf.display())))?;
        let parsed = crate::registry::manifest::ImageManifest::from_json(&m)
            .map_err(|e| RepoError::Corrupt(format!("{}: {e}", mf.display())))?;
        let layers = parsed
            .layers
            .iter()
            .map(|l| (dir.join(l.digest.as_str()), Some(l.digest.clone())))
            .collect();
        Ok(ImageFiles {
            version: StorageVersion::V2,
            layers,
            config: parsed.config.as_ref().map(|c| dir.join(c.digest.as_str())),
            inline_config: parsed.v1_config,
            manifest: Some(m),
        })
    }

    /// The image config JSON (docker/OCI), or `null` when the image has none.
    pub fn image_config(&self, img: &ImageEntry) -> Result<serde_json::Value> {
        let files = self.image_files(img)?;
        if let Some(c) = files.config {
            let b = fs::read(&c).map_err(io_err("reading", &c))?;
            return serde_json::from_slice(&b)
                .map_err(|e| RepoError::Corrupt(format!("{}: {e}", c.display())));
        }
        if let Some(s) = files.inline_config {
            return serde_json::from_str(&s)
                .map_err(|e| RepoError::Corrupt(format!("v1Compatibility: {e}")));
        }
        Ok(serde_json::Value::Null)
    }

    /// Install a v2 image: `TAG`, `v2`, `manifest` and one relative link per blob, built in a
    /// temporary sibling directory and swapped into place. Caller holds [`LocalRepo::lock`].
    pub fn install_v2(
        &self,
        name: &str,
        tag: &str,
        manifest: &[u8],
        blobs: &[Digest],
    ) -> Result<PathBuf> {
        let final_dir = self.tag_dir(name, tag)?;
        let parent = final_dir
            .parent()
            .expect("tag dir has a parent")
            .to_path_buf();
        fs::create_dir_all(&parent).map_err(io_err("creating", &parent))?;
        let tmp = fsutil::temp_sibling(&final_dir);
        let build = || -> Result<()> {
            fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
            let w = |f: &str, data: &[u8]| {
                let p = tmp.join(f);
                fsutil::write_atomic(&p, data, 0o644).map_err(io_err("writing", &p))
            };
            w("TAG", format!("{}\n", local_display(name, tag)).as_bytes())?;
            w("v2", b"")?;
            w("manifest", manifest)?;
            for d in blobs {
                let link = tmp.join(d.as_str());
                let target = relative_path(&final_dir, &self.blob_path(d));
                if fs::symlink_metadata(&link).is_ok() {
                    continue;
                }
                std::os::unix::fs::symlink(&target, &link).map_err(io_err("linking", &link))?;
            }
            fsutil::sync_dir(&tmp);
            Ok(())
        };
        if let Err(e) = build() {
            let _ = fsutil::remove_tree(&tmp);
            return Err(e);
        }
        self.swap_in(&tmp, &final_dir)?;
        Ok(final_dir)
    }

    /// Put directory `new` at `dest`, atomically replacing an existing `dest` when the kernel
    /// supports renameat2(RENAME_EXCHANGE) (Linux 3.15+), else by rename-aside.
    fn swap_in(&self, new: &Path, dest: &Path) -> Result<()> {
        if fs::symlink_metadata(dest).is_err() {
            fs::rename(new, dest).map_err(io_err("renaming", new))?;
        } else {
            let exchanged = nix::fcntl::renameat2(
                None,
                new,
                None,
                dest,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .is_ok();
            if !exchanged {
                let aside = fsutil::temp_sibling(dest);
                fs::rename(dest, &aside).map_err(io_err("renaming", dest))?;
                fs::rename(new, dest).map_err(io_err("renaming", new))?;
                let _ = fsutil::remove_tree(&aside);
            } else {
                // `new` now holds the old tag directory.
                let _ = fsutil::remove_tree(new);
            }
        }
        fsutil::sync_dir(dest.parent().unwrap_or(Path::new("/")));
        Ok(())
    }

    /// Files in `layers/` that some tag directory links to (by link target's file name).
    fn referenced_layers(
        &self,
        except: Option<&Path>,
    ) -> Result<std::collections::HashSet<String>> {
        let mut set = std::collections::HashSet::new();
        for img in self.images()? {
            if Some(img.dir.as_path()) == except {
                continue;
            }
            let Ok(rd) = fs::read_dir(&img.dir) else {
                continue;
            };
            for e in rd.flatten() {
                if let Ok(t) = fs::read_link(e.path()) {
                    if let Some(n) = t.file_name() {
                        set.insert(n.to_string_lossy().into_owned());
                    }
                }
            }
        }
        Ok(set)
    }

    /// `rmi`: remove a tag; delete each layer file no other tag links to; prune empty parents.
    /// Caller holds the lock. Returns the layer files removed.
    pub fn remove_image(&self, img: &ImageEntry, force: bool) -> Result<Vec<PathBuf>> {
        if img.protected {
            return Err(RepoError::Protected(img.display()));
        }
        let others = self.referenced_layers(Some(&img.dir))?;
        let mut mine = Vec::new();
        if let Ok(rd) = fs::read_dir(&img.dir) {
            for e in rd.flatten() {
                if let Ok(t) = fs::read_link(e.path()) {
                    let abs = img.dir.join(&t);
                    if let Some(n) = abs.file_name().map(|n| n.to_string_lossy().into_owned()) {
                        if !others.contains(&n)
                            && abs
                                .parent()
                                .map(|p| same_dir(p, &self.layout.layers))
                                .unwrap_or(false)
                        {
                            mine.push(self.layout.layers.join(n));
                        }
                    }
                }
            }
        }
        // The tag goes first: a crash after this point leaves unreferenced blobs (harmless, found
        // again by the next rmi of the same layers), never a tag pointing at deleted layers.
        let trash = fsutil::temp_sibling(&img.dir);
        fs::rename(&img.dir, &trash).map_err(io_err("removing", &img.dir))?;
        fsutil::remove_tree(&trash).map_err(io_err("removing", &trash))?;
        let mut removed = Vec::new();
        for l in mine {
            match fs::remove_file(&l) {
                Ok(()) => removed.push(l),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if force => crate::warn!("removing {}: {e}", l.display()),
                Err(e) => return Err(RepoError::Io("removing".into(), l, e)),
            }
        }
        let mut p = img.dir.parent().map(Path::to_path_buf);
        while let Some(d) = p {
            if !d.starts_with(&self.layout.repos)
                || d == self.layout.repos
                || fs::remove_dir(&d).is_err()
            {
                break;
            }
            p = d.parent().map(Path::to_path_buf);
        }
        Ok(removed)
    }

    /// `tag SRC DST`: a new tag directory sharing SRC's layers. Caller holds the lock.
    pub fn tag_image(&self, src: &ImageEntry, name: &str, tag: &str) -> Result<PathBuf> {
        if src.protected {
            return Err(RepoError::Protected(src.display()));
        }
        let dst = self.tag_dir(name, tag)?;
        if dst.join("TAG").exists() {
            return Err(RepoError::ImageExists(local_display(name, tag)));
        }
        let parent = dst.parent().expect("tag dir has a parent").to_path_buf();
        fs::create_dir_all(&parent).map_err(io_err("creating", &parent))?;
        let tmp = fsutil::temp_sibling(&dst);
        let build = || -> Result<()> {
            fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
            for e in fs::read_dir(&src.dir)
                .map_err(io_err("reading", &src.dir))?
                .flatten()
            {
                let fname = e.file_name();
                let fname_s = fname.to_string_lossy();
                if fname_s == "PROTECT" || fname_s.starts_with('.') {
                    continue;
                }
                let to = tmp.join(&fname);
                if let Ok(t) = fs::read_link(e.path()) {
                    // Re-aim the link: the new tag may sit at another depth.
                    let target_abs = normalize(&src.dir.join(t));
                    std::os::unix::fs::symlink(relative_path(&dst, &target_abs), &to)
                        .map_err(io_err("linking", &to))?;
                } else if fname_s == "TAG" {
                    fsutil::write_atomic(
                        &to,
                        format!("{}\n", local_display(name, tag)).as_bytes(),
                        0o644,
                    )
                    .map_err(io_err("writing", &to))?;
                } else if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    fs::copy(e.path(), &to).map_err(io_err("copying", &e.path()))?;
                }
            }
            Ok(())
        };
        if let Err(e) = build() {
            let _ = fsutil::remove_tree(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &dst).map_err(io_err("renaming", &tmp))?;
        Ok(dst)
    }

    pub fn set_protect(&self, img: &ImageEntry, on: bool) -> Result<()> {
        set_marker(&img.dir.join("PROTECT"), on)
    }
}

/// Create or remove an empty marker file (`PROTECT`), atomically; removing a missing one is fine.
pub fn set_marker(p: &Path, on: bool) -> Result<()> {
    if on {
        fsutil::write_atomic(p, b"", 0o644).map_err(io_err("writing", p))
    } else {
        match fs::remove_file(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(RepoError::Io("removing".into(), p.to_path_buf(), e))
            }
            _ => Ok(()),
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Lexically fold `.` and `..` (no symlink resolution).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(check_name("127.0.0.1:5000/o/i").is_ok());
        for bad in ["", "../x", "a/../b", "/abs", "a/.hidden", "a//b", "a/"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            relative_path(
                Path::new("/t/repos/a/b/latest"),
                Path::new("/t/layers/sha256:x")
            ),
            PathBuf::from("../../../../layers/sha256:x")
        );
        assert_eq!(
            normalize(Path::new("/t/repos/a/../../layers/x")),
            PathBuf::from("/t/layers/x")
        );
    }

    #[test]
    fn install_tag_rmi_refcount() {
        let d = tempfile::tempdir().unwrap();
        let (r, created) = LocalRepo::open_or_create(Layout::under(d.path())).unwrap();
        assert!(created);
        let l1 = Digest::sha256_of(b"l1");
        let cfg = Digest::sha256_of(b"{}");
        fs::write(r.blob_path(&l1), b"l1").unwrap();
        fs::write(r.blob_path(&cfg), b"{}").unwrap();
        let m = serde_json::json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":cfg.as_str(),"size":2},
            "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":l1.as_str(),"size":2}]});
        let _g = r.lock().unwrap();
        r.install_v2(
            "a/b",
            "t1",
            m.to_string().as_bytes(),
            &[l1.clone(), cfg.clone()],
        )
        .unwrap();
        // Re-install replaces in place.
        r.install_v2(
            "a/b",
            "t1",
            m.to_string().as_bytes(),
            &[l1.clone(), cfg.clone()],
        )
        .unwrap();
        let img = r.find_image("a/b", "t1").unwrap();
        let files = r.image_files(&img).unwrap();
        assert_eq!(files.layers.len(), 1);
        assert_eq!(fs::read(&files.layers[0].0).unwrap(), b"l1");
        let t2 = r.tag_image(&img, "c", "t2").unwrap();
        assert_eq!(fs::read(t2.join(l1.as_str())).unwrap(), b"l1");
        assert!(r.tag_image(&img, "c", "t2").is_err());
        r.remove_image(&img, false).unwrap();
        assert!(r.blob_path(&l1).exists(), "layer still used by c:t2");
        assert!(!d.path().join("repos/a").exists(), "empty parents pruned");
        let img2 = r.find_image("c", "t2").unwrap();
        r.set_protect(&img2, true).unwrap();
        let img2 = r.find_image("c", "t2").unwrap();
        assert!(r.remove_image(&img2, false).is_err());
        r.set_protect(&img2, false).unwrap();
        let img2 = r.find_image("c", "t2").unwrap();
        r.remove_image(&img2, false).unwrap();
        assert!(!r.blob_path(&l1).exists());
        assert!(r.images().unwrap().is_empty());
    }
}
