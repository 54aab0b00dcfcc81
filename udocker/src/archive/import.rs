//! `import`: a flat rootfs tarball (`docker export`, `udocker export`) as a new image or container
//! (`spec/udocker.md` §2, upstream `CommonLocalFileApi.import_toimage/_tocontainer/_clone`).
//!
//! Upstream stores an imported tarball as a **v1** image under a random layer id; we store it as a
//! **v2** image like pulled ones: the tarball is the blob `layers/sha256:<digest of the file>`, with a
//! synthesized OCI config (image-spec `config.md`: `architecture`, `os`, `created`,
//! `rootfs.diff_ids` = digest of the *uncompressed* tar) and an OCI manifest (`manifest.md`) whose
//! layer media type follows the file's compression. Everything is checked (a readable tar with at
//! least one member) before anything becomes visible in the repository.

use super::{
    decompress, install_blob, io_err, now_rfc3339, store_bytes_blob, ArchiveError, Compression,
    HashingReader, Result, OCI_CONFIG,
};
use crate::container::{check_container_name, new_uuid, Container};
use crate::digest::Digest;
use crate::fsutil;
use crate::platform::Platform;
use crate::registry::manifest::OCI_MANIFEST;
use crate::repo::{LocalRepo, RepoError};
use crate::unpack::{Stats, Unpacker};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where the tarball comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    File(&'a Path),
    Stdin,
}

impl Source<'_> {
    pub(crate) fn name(&self) -> PathBuf {
        match self {
            Source::File(p) => p.to_path_buf(),
            Source::Stdin => PathBuf::from("<stdin>"),
        }
    }

    pub(crate) fn open(&self) -> Result<Box<dyn Read + Send>> {
        Ok(match self {
            Source::File(p) => Box::new(File::open(p).map_err(io_err("opening", p))?),
            Source::Stdin => Box::new(io::stdin()),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Move the file into layers/ instead of copying it (`--mv`).
    pub mv: bool,
    /// Platform written into the synthesized config (`--platform`, default: this host's).
    pub platform: Platform,
}

/// What a layer file is, found by reading it once.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub compression: Compression,
    pub entries: u64,
}

/// Read a (possibly compressed) tar completely: the file's digest and size, the digest of the
/// uncompressed tar (the config's diff_id) and the number of members. Anything that is not a tar
/// with at least one member is refused.
/// `shown` names the file in messages (the user's name for a spooled copy).
pub fn inspect_layer(p: &Path, shown: &Path) -> Result<LayerInfo> {
    let f = File::open(p).map_err(io_err("reading", p))?;
    let mut raw = HashingReader::new(f);
    let not_tar = |e: io::Error| {
        ArchiveError::Format(format!(
            "{} is not a tar archive: {}",
            shown.display(),
            super::tar_msg(&e)
        ))
    };
    let (compression, entries, diff_id) = {
        let (c, inner) = decompress(&mut raw).map_err(not_tar)?;
        let mut plain = HashingReader::new(inner);
        let mut n = 0u64;
        {
            let mut ar = tar::Archive::new(&mut plain);
            for e in ar.entries().map_err(not_tar)? {
                e.map_err(not_tar)?;
                n += 1;
            }
        }
        let (diff_id, _) = plain.finish().map_err(not_tar)?;
        (c, n, diff_id)
    };
    if entries == 0 {
        return Err(ArchiveError::Format(format!(
            "{} is not a tar archive (no members)",
            shown.display()
        )));
    }
    let (digest, size) = raw.finish().map_err(io_err("reading", p))?;
    Ok(LayerInfo {
        digest,
        size,
        diff_id,
        compression,
        entries,
    })
}

/// The image config of an imported filesystem (image-spec `config.md`; upstream
/// `create_container_meta` writes the same fields, `comment` included).
pub fn synth_config(platform: &Platform, diff_ids: &[Digest], created: &str) -> Value {
    let mut c = json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
        "comment": "created by udocker import",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(Digest::as_str).collect::<Vec<_>>()},
        "history": [{"created": created, "comment": "created by udocker import"}],
    });
    if let Some(v) = &platform.variant {
        c["variant"] = json!(v);
    }
    c
}

/// An OCI manifest for a config blob and layer blobs `(digest, size, compression)`.
pub fn synth_manifest(config: (&Digest, u64), layers: &[(Digest, u64, Compression)]) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.0.as_str(), "size": config.1},
        "layers": layers.iter().map(|(d, s, c)| json!({
            "mediaType": c.oci_layer_type(), "digest": d.as_str(), "size": s,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec_pretty(&m).expect("json serialises")
}

/// `import FILE|- NAME:TAG`: a one-layer v2 image. Returns the layer's digest.
pub fn import_image(
    repo: &LocalRepo,
    src: Source,
    name: &str,
    tag: &str,
    opts: &ImportOptions,
) -> Result<Digest> {
    if repo.find_image(name, tag).is_ok() {
        return Err(RepoError::ImageExists(crate::reference::local_display(name, tag)).into());
    }
    let mut spool = fsutil::Cleanup::new(fsutil::temp_sibling(&repo.partial_dir()?.join("import")));
    // The tarball goes into layers/.partial/ first (moved, copied or spooled from stdin), and is
    // checked there: a file the user changes under us cannot make a blob lie about its digest.
    let mut moved_from: Option<&Path> = None;
    match src {
        Source::File(p) if opts.mv => match fs::rename(p, &spool.path) {
            Ok(()) => moved_from = Some(p),
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_into(src, &spool.path)?,
            Err(e) => return Err(ArchiveError::Io("moving".into(), p.to_path_buf(), e)),
        },
        _ => copy_into(src, &spool.path)?,
    }
    let info = match inspect_layer(&spool.path, &src.name()) {
        Ok(i) => i,
        Err(e) => {
            if let Some(orig) = moved_from {
                // Give the user's file back rather than delete it.
                if fs::rename(&spool.path, orig).is_ok() {
                    spool.keep = true;
                }
            }
            return Err(e);
        }
    };
    let created = now_rfc3339();
    let config = synth_config(
        &opts.platform,
        std::slice::from_ref(&info.diff_id),
        &created,
    );
    let config_bytes = serde_json::to_vec_pretty(&config).expect("json serialises");
    let manifest = synth_manifest(
        (&Digest::sha256_of(&config_bytes), config_bytes.len() as u64),
        &[(info.digest.clone(), info.size, info.compression)],
    );
    let _g = repo.lock()?;
    // Until the tarball is in layers/, a failure gives a moved file back to the user.
    let staged = (|| {
        if repo.find_image(name, tag).is_ok() {
            return Err(RepoError::ImageExists(crate::reference::local_display(name, tag)).into());
        }
        store_bytes_blob(repo, &config_bytes)
    })();
    let config_digest = match staged {
        Ok(d) => d,
        Err(e) => {
            if let Some(orig) = moved_from {
                if fs::rename(&spool.path, orig).is_ok() {
                    spool.keep = true;
                }
            }
            return Err(e);
        }
    };
    // Blobs first, the tag last: a crash in between leaves unreferenced blobs, never a broken tag.
    install_blob(repo, &spool.path, &info.digest)?;
    spool.keep = true;
    repo.install_v2(name, tag, &manifest, &[info.digest.clone(), config_digest])?;
    if let (true, None, Source::File(p)) = (opts.mv, moved_from, src) {
        // `--mv` across file systems: copied, so remove the original now that the image exists.
        let _ = fs::remove_file(p);
    }
    Ok(info.digest)
}

fn copy_into(src: Source, dest: &Path) -> Result<()> {
    let mut r = src.open()?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(io_err("creating", dest))?;
    io::copy(&mut r, &mut f).map_err(|e| ArchiveError::Io("copying".into(), src.name(), e))?;
    f.sync_all().map_err(io_err("writing", dest))?;
    Ok(())
}

fn check_free_name(repo: &LocalRepo, name: Option<&str>) -> Result<()> {
    if let Some(n) = name {
        check_container_name(n)?;
        if fs::symlink_metadata(repo.layout.containers.join(n)).is_ok() {
            return Err(RepoError::NameTaken(n.to_string()).into());
        }
    }
    Ok(())
}

/// Rename the finished directory to `containers/<id>` and give it its name.
fn finish_container(
    repo: &LocalRepo,
    mut b: fsutil::Cleanup,
    dir: &Path,
    id: String,
    name: Option<&str>,
) -> Result<Container> {
    let dest = repo.layout.containers.join(&id);
    fs::rename(dir, &dest).map_err(io_err("renaming", dir))?;
    b.keep = dir == b.path;
    drop(b);
    let mut c = Container {
        id,
        dir: dest,
        names: Vec::new(),
    };
    if let Some(n) = name {
        repo.set_name(&c, n)?;
        c.names.push(n.to_string());
    }
    Ok(c)
}

/// Extract a (possibly compressed) tar stream with the safe unpacker; returns the unpacker's
/// statistics and the uncompressed tar's digest.
fn extract(src: Source, into: &Path) -> Result<(Stats, Digest)> {
    let (_, r) = decompress(src.open()?)
        .map_err(|e| ArchiveError::Format(format!("{}: {e}", src.name().display())))?;
    let mut plain = HashingReader::new(crate::unpack::Pipelined::new(r));
    let mut u = Unpacker::new(into)?;
    match u.apply(&src.name(), &mut plain) {
        Ok(()) => {}
        Err(crate::unpack::UnpackError::Archive(_, e)) => {
            return Err(ArchiveError::Format(format!(
                "{} is not a tar archive: {}",
                src.name().display(),
                super::tar_msg(&e)
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let (diff_id, _) = plain
        .finish()
        .map_err(|e| ArchiveError::Format(format!("{}: {e}", src.name().display())))?;
    if u.stats.entries == 0 {
        return Err(ArchiveError::Format(format!(
            "{} is not a tar archive (no members)",
            src.name().display()
        )));
    }
    Ok((u.stats, diff_id))
}

/// `import --tocontainer`: no image, the tarball goes straight into a new container's ROOT.
/// `image_name` is written to `imagerepo.name` (upstream's default `IMPORTED:unknown`).
pub fn import_to_container(
    repo: &LocalRepo,
    src: Source,
    name: Option<&str>,
    image_name: &str,
    platform: &Platform,
) -> Result<(Container, Stats)> {
    check_free_name(repo, name)?;
    let id = new_uuid();
    let b = fsutil::Cleanup::new(repo.layout.containers.join(format!(".{id}.creating")));
    fs::create_dir(&b.path).map_err(io_err("creating", &b.path))?;
    let root = b.path.join("ROOT");
    fs::create_dir(&root).map_err(io_err("creating", &root))?;
    let (stats, diff_id) = extract(src, &root)?;
    let config = synth_config(platform, &[diff_id], &now_rfc3339());
    let w = |f: &str, data: &[u8]| {
        let p = b.path.join(f);
        fsutil::write_atomic(&p, data, 0o644).map_err(io_err("writing", &p))
    };
    w(
        "container.json",
        &serde_json::to_vec_pretty(&config).expect("json serialises"),
    )?;
    w("imagerepo.name", image_name.as_bytes())?;
    let dir = b.path.clone();
    let c = finish_container(repo, b, &dir, id, name)?;
    Ok((c, stats))
}

/// `import --clone`: an `export --clone` archive (a whole container directory) becomes a new
/// container with a new id. The archive must hold a `ROOT` directory, at its top or in its single
/// top-level directory; upstream accepts anything (a plain rootfs then gives a container without
/// ROOT), we refuse.
pub fn import_clone(
    repo: &LocalRepo,
    src: Source,
    name: Option<&str>,
) -> Result<(Container, Stats)> {
    check_free_name(repo, name)?;
    let id = new_uuid();
    let b = fsutil::Cleanup::new(repo.layout.containers.join(format!(".{id}.creating")));
    fs::create_dir(&b.path).map_err(io_err("creating", &b.path))?;
    let (stats, _) = extract(src, &b.path)?;
    let is_root_dir = |p: &Path| {
        fs::symlink_metadata(p.join("ROOT"))
            .map(|m| m.is_dir())
            .unwrap_or(false)
    };
    let dir = if is_root_dir(&b.path) {
        b.path.clone()
    } else {
        let kids: Vec<PathBuf> = fs::read_dir(&b.path)
            .map_err(io_err("reading", &b.path))?
            .flatten()
            .map(|e| e.path())
            .collect();
        match kids.as_slice() {
            [one]
                if fs::symlink_metadata(one)
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
                    && is_root_dir(one) =>
            {
                one.clone()
            }
            _ => {
                return Err(ArchiveError::Format(format!(
                    "{} is not a udocker clone archive (no ROOT directory; see export --clone)",
                    src.name().display()
                )))
            }
        }
    };
    // A copy is not protected, whatever the original was (as `clone`).
    let _ = fs::remove_file(dir.join("PROTECT"));
    let c = finish_container(repo, b, &dir, id, name)?;
    Ok((c, stats))
}
