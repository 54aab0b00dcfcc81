//! Containers in the local repository (`spec/udocker.md` §2): `containers/<uuid>/` holding `ROOT/`
//! (the flattened layers), `container.json` (the image config), `imagerepo.name`, and later the
//! engines' files (`execmode`, …); `containers/<name>` is a relative symlink to `<uuid>`.
//! A container is built under a hidden temporary name and renamed into place only when complete,
//! so a failed or killed `create` leaves nothing behind that `ps` would show.

use crate::fsutil;
use crate::repo::{io_err, ImageEntry, LocalRepo, RepoError, Result};
use crate::unpack::{self, Stats};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Execution modes a container can be set to (upstream's list, §5).
pub const EXEC_MODES: &[&str] = &["P1", "P2", "F1", "F2", "F3", "F4", "R1", "R2", "R3", "S1"];

#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub dir: PathBuf,
    pub names: Vec<String>,
}

impl Container {
    pub fn root(&self) -> PathBuf {
        self.dir.join("ROOT")
    }

    pub fn protected(&self) -> bool {
        self.dir.join("PROTECT").exists()
    }

    pub fn image_name(&self) -> String {
        fs::read_to_string(self.dir.join("imagerepo.name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// The image configuration saved at create time (`container.json`), if readable.
    pub fn config_json(&self) -> Option<serde_json::Value> {
        fs::read(self.dir.join("container.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    pub fn exec_mode(&self) -> Option<String> {
        fs::read_to_string(self.dir.join("execmode"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// A random (version 4) UUID in its textual form, as upstream's container ids.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    let ok = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // No /dev (an empty chroot): time, pid and address entropy, hashed.
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            std::process::id(),
            &b
        );
        let d = crate::digest::Digest::sha256_of(seed.as_bytes());
        for (i, c) in d.hex().as_bytes().chunks(2).take(16).enumerate() {
            b[i] = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
        }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::digest::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether `s` has the form of a container id (a textual UUID): such a string names a
/// container, never an image.
pub fn looks_like_id(s: &str) -> bool {
    is_uuid(s)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Container names: upstream refuses `/`, `.`, space, `[`, `]`, and more than 2048 characters.
pub fn check_container_name(n: &str) -> Result<()> {
    if n.is_empty()
        || n.len() > 2048
        || n.contains(['/', '.', ' ', '[', ']', '\0', '\n'])
        || is_uuid(n)
    {
        return Err(RepoError::BadName(n.to_string()));
    }
    Ok(())
}

impl LocalRepo {
    /// Every container, with its names, sorted by id.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let dir = &self.layout.containers;
        let mut ids = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("reading", dir))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                if let Ok(t) = fs::read_link(e.path()) {
                    names.push((n, t.to_string_lossy().into_owned()));
                }
            } else if ft.is_dir() {
                ids.push(n);
            }
        }
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| {
                let mut ns: Vec<String> = names
                    .iter()
                    .filter(|(_, t)| *t == id)
                    .map(|(n, _)| n.clone())
                    .collect();
                ns.sort();
                Container {
                    dir: dir.join(&id),
                    id,
                    names: ns,
                }
            })
            .collect())
    }

    /// Find a container by id or name.
    pub fn find_container(&self, id_or_name: &str) -> Result<Container> {
        if id_or_name.is_empty() || id_or_name.contains('/') || id_or_name.starts_with('.') {
            return Err(RepoError::ContainerNotFound(id_or_name.to_string()));
        }
        let p = self.layout.containers.join(id_or_name);
        let id = match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => fs::read_link(&p)
                .map_err(io_err("reading", &p))?
                .to_string_lossy()
                .into_owned(),
            Ok(m) if m.is_dir() => id_or_name.to_string(),
            _ => return Err(RepoError::ContainerNotFound(id_or_name.to_string())),
        };
        self.containers()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| RepoError::ContainerNotFound(id_or_name.to_string()))
    }

    /// `create`: flatten the image's layers into a new container.
    pub fn create_container(
        &self,
        img: &ImageEntry,
        name: Option<&str>,
    ) -> Result<(Container, Stats)> {
        if let Some(n) = name {
            check_container_name(n)?;
            if fs::symlink_metadata(self.layout.containers.join(n)).is_ok() {
                return Err(RepoError::NameTaken(n.to_string()));
            }
        }
        let files = self.image_files(img)?;
        let config = self.image_config(img)?;
        let id = new_uuid();
        let tmp = self.layout.containers.join(format!(".{id}.creating"));
        let build = || -> Result<Stats> {
            fs::create_dir(&tmp).map_err(io_err("creating", &tmp))?;
            let root = tmp.join("ROOT");
            fs::create_dir(&root).map_err(io_err("creating", &root))?;
            let layers: Vec<PathBuf> = files.layers.iter().map(|(p, _)| p.clone()).collect();
            for l in &layers {
                if !l.exists() {
                    return Err(RepoError::Corrupt(format!(
                        "layer missing: {} (try udocker verify)",
                        l.display()
                    )));
                }
            }
            let stats = unpack::unpack_layers(&root, &layers)
                .map_err(|e| RepoError::Corrupt(e.to_string()))?;
            let w = |f: &str, data: &[u8]| {
                let p = tmp.join(f);
                fsutil::write_atomic(&p, data, 0o644).map_err(io_err("writing", &p))
            };
            w(
                "container.json",
                serde_json::to_string_pretty(&config)
                    .expect("json serialises")
                    .as_bytes(),
            )?;
            w("imagerepo.name", img.display().as_bytes())?;
            Ok(stats)
        };
        let stats = match build() {
            Ok(s) => s,
            Err(e) => {
                let _ = fsutil::remove_tree(&tmp);
                return Err(e);
            }
        };
        let dir = self.layout.containers.join(&id);
        fs::rename(&tmp, &dir).map_err(io_err("renaming", &tmp))?;
        let mut c = Container {
            id,
            dir,
            names: Vec::new(),
        };
        if let Some(n) = name {
            if let Err(e) = self.set_name(&c, n) {
                crate::warn!("container created without name: {e}");
            } else {
                c.names.push(n.to_string());
            }
        }
        Ok((c, stats))
    }

    /// Give a container a name (`containers/<name> -> <id>`); fails if the name is taken.
    pub fn set_name(&self, c: &Container, name: &str) -> Result<()> {
        check_container_name(name)?;
        let link = self.layout.containers.join(name);
        // symlink(2) fails with EEXIST atomically: two processes cannot both take a name.
        match std::os::unix::fs::symlink(&c.id, &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(RepoError::NameTaken(name.to_string()))
            }
            Err(e) => Err(RepoError::Io("naming".into(), link, e)),
        }
    }

    pub fn remove_name(&self, name: &str) -> Result<()> {
        let link = self.layout.containers.join(name);
        match fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::remove_file(&link).map_err(io_err("removing", &link))
            }
            _ => Err(RepoError::ContainerNotFound(name.to_string())),
        }
    }

    /// `rm`: delete the container directory and its names. Protected containers are refused.
    pub fn remove_container(&self, c: &Container) -> Result<()> {
        if c.protected() {
            return Err(RepoError::ContainerProtected(c.id.clone()));
        }
        // Rename first: a half-deleted container is never visible under its id.
        let trash = self.layout.containers.join(format!(".{}.removing", c.id));
        fs::rename(&c.dir, &trash).map_err(io_err("removing", &c.dir))?;
        for n in &c.names {
            let _ = fs::remove_file(self.layout.containers.join(n));
        }
        fsutil::remove_tree(&trash).map_err(io_err("removing", &trash))
    }

    pub fn set_container_protect(&self, c: &Container, on: bool) -> Result<()> {
        crate::repo::set_marker(&c.dir.join("PROTECT"), on)
    }

    pub fn set_exec_mode(&self, c: &Container, mode: &str) -> Result<()> {
        if c.protected() {
            return Err(RepoError::ContainerProtected(c.id.clone()));
        }
        let m = mode.to_ascii_uppercase();
        if !EXEC_MODES.contains(&m.as_str()) {
            return Err(RepoError::Corrupt(format!(
                "invalid execution mode: {mode} (one of {})",
                EXEC_MODES.join(" ")
            )));
        }
        let p = c.dir.join("execmode");
        fsutil::write_atomic(&p, m.as_bytes(), 0o644).map_err(io_err("writing", &p))
    }

    /// `clone`: copy the whole container directory under a new id.
    pub fn clone_container(&self, c: &Container, name: Option<&str>) -> Result<Container> {
        if let Some(n) = name {
            check_container_name(n)?;
        }
        let id = new_uuid();
        let tmp = self.layout.containers.join(format!(".{id}.creating"));
        if let Err(e) = copy_tree(&c.dir, &tmp) {
            let _ = fsutil::remove_tree(&tmp);
            return Err(RepoError::Io("copying".into(), c.dir.clone(), e));
        }
        let _ = fs::remove_file(tmp.join("PROTECT"));
        let dir = self.layout.containers.join(&id);
        fs::rename(&tmp, &dir).map_err(io_err("renaming", &tmp))?;
        let mut nc = Container {
            id,
            dir,
            names: Vec::new(),
        };
        if let Some(n) = name {
            self.set_name(&nc, n)?;
            nc.names.push(n.to_string());
        }
        Ok(nc)
    }
}

/// Recursive copy keeping symlinks as symlinks, hard links as hard links, and modes.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    use std::collections::HashMap;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fn walk(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
        let m = fs::symlink_metadata(src)?;
        let ft = m.file_type();
        if ft.is_dir() {
            fs::create_dir(dst)?;
            fs::set_permissions(dst, fs::Permissions::from_mode(0o700))?;
            for e in fs::read_dir(src)? {
                let e = e?;
                walk(&e.path(), &dst.join(e.file_name()), links)?;
            }
            fs::set_permissions(dst, fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700))?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    return fs::hard_link(first, dst);
                }
                links.insert((m.dev(), m.ino()), dst.to_path_buf());
            }
            fs::copy(src, dst)?;
            fs::set_permissions(dst, fs::Permissions::from_mode((m.mode() & 0o7777) | 0o600))?;
        }
        Ok(())
    }
    walk(src, dst, &mut HashMap::new())
}

/// Disk use of a tree in bytes (blocks actually allocated, like `du`), not crossing into links.
pub fn disk_usage(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    let mut total = m.blocks() * 512;
    if m.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                total += disk_usage(&e.path());
            }
        }
    }
    total
}
