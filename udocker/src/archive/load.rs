//! `load`: images from a `docker save` archive or an OCI image layout tarball
//! (`spec/udocker.md` §2 "load", with upstream's bugs fixed: images are stored as **v2** with every
//! blob's digest checked, names found in the archive are kept, none is ever random, symlinked
//! layers work, and platform indexes are resolved for this host).
//!
//! The archive (optionally gzip/zstd compressed) is first extracted with the safe unpacker into a
//! private directory under `layers/.partial/` (same file system as `layers/`, so verified blobs are
//! renamed into place rather than copied). The format is then recognised by its members:
//!
//! * `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`, docker's `image/tarexport` format,
//!   written by every `docker save` since 1.10, by `skopeo copy … docker-archive:`, and by
//!   Docker ≥ 25 next to an OCI layout): its `RepoTags` name the images. Layers are stored as they
//!   are (plain tars from docker, whatever compression others used) under their own digest; a plain
//!   layer must hash to the config's `rootfs.diff_ids` entry. An OCI manifest is synthesized.
//! * otherwise `index.json` (+ `oci-layout`, image-spec `image-layout.md`): the index is walked,
//!   nested indexes too; where entries carry platforms only this host's is taken. Names come from
//!   the `io.containerd.image.name` annotation (a full `name:tag`), else
//!   `org.opencontainers.image.ref.name` (`name:tag`, or a bare tag as the spec intends it). Blobs
//!   are named by their digest, which is checked; manifests are stored as found.
//!
//! An image without any name is called `loaded/<first 12 hex digits of its config digest>:latest`.
//! An optional `REPO[:TAG]` argument replaces the repository (and tag) of every loaded image.

use super::import::Source;
use super::{
    install_blob, read_json_file, resolve_member, split_name_tag, store_bytes_blob, ArchiveError,
    Compression, Result, TempDir,
};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::local_display;
use crate::registry::manifest::{ImageManifest, DOCKER_LIST, DOCKER_V2, OCI_INDEX, OCI_MANIFEST};
use crate::repo::LocalRepo;
use crate::unpack::{Pipelined, Unpacker};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `REPO[:TAG]` replacing the names found in the archive.
    pub rename: Option<String>,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    /// `docker-archive` or `oci-layout`.
    pub format: &'static str,
    /// `name:tag` of every image installed.
    pub loaded: Vec<String>,
    /// Images not installed because the name is taken (`name:tag`).
    pub existing: Vec<String>,
    /// Images that could not be loaded, with the reason.
    pub failed: Vec<String>,
    /// Archive members the unpacker refused (unsafe names and links).
    pub refused: Vec<String>,
}

/// Nesting bound for indexes pointing at indexes.
const MAX_DEPTH: usize = 8;

/// Blobs already moved into layers/, by their path in the extracted archive.
#[derive(Default)]
struct Blobs {
    done: HashMap<PathBuf, (Digest, u64, Compression)>,
}

impl Blobs {
    /// Verify the file at `path` (already resolved inside the extracted archive) against
    /// `expected` when the archive names it by digest, and move it into layers/.
    fn import(
        &mut self,
        repo: &LocalRepo,
        path: &Path,
        expected: Option<&Digest>,
        what: &str,
    ) -> Result<(Digest, u64, Compression)> {
        if let Some(r) = self.done.get(path) {
            if let Some(e) = expected {
                if *e != r.0 {
                    return Err(ArchiveError::DigestMismatch {
                        what: what.into(),
                        expected: e.to_string(),
                        actual: r.0.to_string(),
                    });
                }
            }
            return Ok(r.clone());
        }
        let (digest, size) = match expected {
            Some(e) if e.algorithm() != crate::digest::Algorithm::Sha256 => {
                let f = fs::File::open(path).map_err(super::io_err("reading", path))?;
                let mut h = e.hasher();
                let mut r = super::HashingReader::new(f);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = std::io::Read::read(&mut r, &mut buf)
                        .map_err(super::io_err("reading", path))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                (h.finish(), r.count)
            }
            _ => super::hash_file(path)?,
        };
        if let Some(e) = expected {
            if *e != digest {
                return Err(ArchiveError::DigestMismatch {
                    what: what.into(),
                    expected: e.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let c = Compression::of_file(path).map_err(super::io_err("reading", path))?;
        // Hard-linked, not moved: other members (symlinks) may still lead to this file.
        let tmp = crate::fsutil::temp_sibling(&repo.partial_dir()?.join("blob"));
        if fs::hard_link(path, &tmp).is_err() {
            fs::copy(path, &tmp).map_err(super::io_err("copying", path))?;
        }
        install_blob(repo, &tmp, &digest)?;
        let r = (digest, size, c);
        self.done.insert(path.to_path_buf(), r.clone());
        Ok(r)
    }
}

/// A digest encoded in an archive member name: OCI `blobs/<algo>/<hex>` (image-layout.md) or
/// docker's `<hex>.json` config (the image id is the config's sha256).
fn digest_in_name(member: &str) -> Option<Digest> {
    let m = member.trim_start_matches("./");
    if let Some(rest) = m.strip_prefix("blobs/") {
        let (algo, hex) = rest.split_once('/')?;
        return Digest::parse(&format!("{algo}:{hex}"));
    }
    let hex = m.strip_suffix(".json")?;
    Digest::parse(&format!("sha256:{hex}"))
}

/// A name found in the archive: `(repository, tag)`; no repository for a bare OCI tag.
type Found = (Option<String>, String);

/// `name:tag`, `name` (tag latest) or, without `/` and `:`, a bare tag (OCI `ref.name`).
fn parse_found(s: &str, bare_is_tag: bool) -> Option<Found> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match split_name_tag(s) {
        (n, Some(t)) => Some((Some(n), t)),
        (n, None) if bare_is_tag && !n.contains('/') => Some((None, n)),
        (n, None) => Some((Some(n), "latest".into())),
    }
}

/// Final `(name, tag)` list of one image.
fn final_names(
    found: &[Found],
    config: &Digest,
    rename: &Option<(String, Option<String>)>,
) -> Vec<(String, String)> {
    let anon = [(None, "latest".to_string())];
    let found = if found.is_empty() { &anon[..] } else { found };
    let mut out: Vec<(String, String)> = Vec::new();
    for (repo, tag) in found {
        let n = rename
            .as_ref()
            .map(|r| r.0.clone())
            .or_else(|| repo.clone())
            .unwrap_or_else(|| format!("loaded/{}", &config.hex()[..12]));
        let t = rename
            .as_ref()
            .and_then(|r| r.1.clone())
            .unwrap_or_else(|| tag.clone());
        if !out.iter().any(|(a, b)| *a == n && *b == t) {
            out.push((n, t));
        }
    }
    out
}

/// Load every image of the archive read from `src`.
pub fn load(repo: &LocalRepo, src: Source, opts: &LoadOptions) -> Result<LoadReport> {
    let tmp = TempDir::new(repo, "load")?;
    let shown = src.name();
    let not_archive = |e: &dyn std::fmt::Display| {
        ArchiveError::Format(format!(
            "{} is not a docker save or OCI archive: {}",
            shown.display(),
            super::tar_msg(e)
        ))
    };
    let (_, r) = super::decompress(src.open()?).map_err(|e| not_archive(&e))?;
    let mut u = Unpacker::new(&tmp.path)?;
    match u.apply(&shown, Pipelined::new(r)) {
        Ok(()) => {}
        Err(crate::unpack::UnpackError::Archive(_, e)) => return Err(not_archive(&e)),
        Err(e) => return Err(e.into()),
    }
    let mut report = LoadReport {
        refused: u.stats.refused.clone(),
        ..LoadReport::default()
    };
    let rename = opts.rename.as_deref().map(split_name_tag);
    let root = &tmp.path;
    let docker_manifest = fs::symlink_metadata(root.join("manifest.json"))
        .is_ok()
        .then(|| resolve_member(root, "manifest.json").and_then(|p| read_json_file(&p)))
        .transpose()?
        .map(|(_, v)| v);
    let mut blobs = Blobs::default();
    if let Some(Value::Array(entries)) = docker_manifest {
        report.format = "docker-archive";
        for (i, e) in entries.iter().enumerate() {
            if let Err(err) = load_docker_image(repo, root, e, &rename, &mut blobs, &mut report) {
                report
                    .failed
                    .push(format!("image {} of manifest.json: {err}", i + 1));
            }
        }
    } else if root.join("index.json").exists() || root.join("oci-layout").exists() {
        report.format = "oci-layout";
        let (_, index) = read_json_file(&resolve_member(root, "index.json")?)?;
        let mut found: Vec<(Digest, Option<String>)> = Vec::new();
        walk_index(
            root,
            &index,
            None,
            0,
            &Platform::host(),
            &mut found,
            &mut report,
        )?;
        let mut seen = Vec::new();
        for (d, name) in found {
            if seen.contains(&(d.clone(), name.clone())) {
                continue;
            }
            seen.push((d.clone(), name.clone()));
            if let Err(err) = load_oci_image(repo, root, &d, name, &rename, &mut blobs, &mut report)
            {
                report.failed.push(format!("manifest {d}: {err}"));
            }
        }
    } else {
        return Err(ArchiveError::Format(format!(
            "{} is not a docker save or OCI archive (no manifest.json or index.json)",
            shown.display()
        )));
    }
    if report.loaded.is_empty() && report.existing.is_empty() && report.failed.is_empty() {
        return Err(ArchiveError::Format(format!(
            "{}: no image found in the archive",
            shown.display()
        )));
    }
    Ok(report)
}

/// Install one image under each of its names (skipping names already taken).
fn install(
    repo: &LocalRepo,
    names: &[(String, String)],
    manifest: &[u8],
    blobs: &[Digest],
    report: &mut LoadReport,
) -> Result<()> {
    let _g = repo.lock()?;
    for (n, t) in names {
        if repo.find_image(n, t).is_ok() {
            report.existing.push(local_display(n, t));
            continue;
        }
        match repo.install_v2(n, t, manifest, blobs) {
            Ok(_) => report.loaded.push(local_display(n, t)),
            Err(e) => report.failed.push(format!("{}: {e}", local_display(n, t))),
        }
    }
    Ok(())
}

/// Names not yet taken (checked before any blob is moved, so an image loaded twice costs nothing).
fn wanted(
    repo: &LocalRepo,
    names: Vec<(String, String)>,
    report: &mut LoadReport,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (n, t) in names {
        if let Err(e) = repo.tag_dir(&n, &t) {
            report
                .failed
                .push(format!("{}: {e}", local_display(&n, &t)));
        } else if repo.find_image(&n, &t).is_ok() {
            report.existing.push(local_display(&n, &t));
        } else {
            out.push((n, t));
        }
    }
    out
}

fn load_docker_image(
    repo: &LocalRepo,
    root: &Path,
    e: &Value,
    rename: &Option<(String, Option<String>)>,
    blobs: &mut Blobs,
    report: &mut LoadReport,
) -> Result<()> {
    let bad = |m: &str| ArchiveError::Format(format!("manifest.json: {m}"));
    let config_member = e
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("entry without Config"))?;
    let layer_members: Vec<&str> = match e.get("Layers") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|l| l.as_str().ok_or_else(|| bad("Layers must be strings")))
            .collect::<Result<_>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(bad("Layers must be a list")),
    };
    let tags: Vec<Found> = match e.get("RepoTags") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| parse_found(s, false))
            .collect(),
        _ => Vec::new(),
    };
    let (config_bytes, config) = read_json_file(&resolve_member(root, config_member)?)?;
    let config_digest = Digest::sha256_of(&config_bytes);
    if let Some(d) = digest_in_name(config_member) {
        if d != config_digest {
            return Err(ArchiveError::DigestMismatch {
                what: format!("config {config_member}"),
                expected: d.to_string(),
                actual: config_digest.to_string(),
            });
        }
    }
    let names = wanted(repo, final_names(&tags, &config_digest, rename), report);
    if names.is_empty() {
        return Ok(());
    }
    let diff_ids: Vec<Option<Digest>> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|d| d.as_str().and_then(Digest::parse))
                .collect()
        })
        .unwrap_or_default();
    if !diff_ids.is_empty() && diff_ids.len() != layer_members.len() {
        return Err(bad(&format!(
            "{} layers but the config lists {} diff_ids",
            layer_members.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, m) in layer_members.iter().enumerate() {
        let path = resolve_member(root, m)?;
        let what = format!("layer {m}");
        let (d, size, c) = blobs.import(repo, &path, digest_in_name(m).as_ref(), &what)?;
        // An uncompressed layer is its own diff_id: check it against the config.
        if let (Compression::None, Some(Some(want))) = (c, diff_ids.get(i)) {
            if *want != d {
                return Err(ArchiveError::DigestMismatch {
                    what,
                    expected: want.to_string(),
                    actual: d.to_string(),
                });
            }
        }
        layers.push((d, size, c));
    }
    let cfg = store_bytes_blob(repo, &config_bytes)?;
    let manifest = super::import::synth_manifest((&cfg, config_bytes.len() as u64), &layers);
    let mut all: Vec<Digest> = layers.into_iter().map(|l| l.0).collect();
    all.push(cfg);
    install(repo, &names, &manifest, &all, report)
}

/// The file of blob `d` in the extracted layout (`blobs/<algo>/<hex>`).
fn blob_file(root: &Path, d: &Digest) -> Result<PathBuf> {
    let algo = d.as_str().split(':').next().unwrap_or("sha256");
    resolve_member(root, &format!("blobs/{algo}/{}", d.hex()))
}

/// Read a JSON blob and check its digest.
fn read_blob_json(root: &Path, d: &Digest) -> Result<(Vec<u8>, Value)> {
    let (bytes, v) = read_json_file(&blob_file(root, d)?)?;
    let mut h = d.hasher();
    h.update(&bytes);
    let actual = h.finish();
    if actual != *d {
        return Err(ArchiveError::DigestMismatch {
            what: format!("blob {d}"),
            expected: d.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok((bytes, v))
}

fn annotation_name(desc: &Value) -> Option<String> {
    let a = desc.get("annotations")?;
    a.get("io.containerd.image.name")
        .and_then(Value::as_str)
        .or_else(|| {
            a.get("org.opencontainers.image.ref.name")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
}

fn desc_platform(desc: &Value) -> Option<Platform> {
    let p = desc.get("platform")?;
    let os = p.get("os")?.as_str()?;
    let arch = p.get("architecture")?.as_str()?;
    let s = match p.get("variant").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    };
    Platform::parse(&s)
}

/// Collect the image manifests an index selects, with the name each inherits.
fn walk_index(
    root: &Path,
    index: &Value,
    inherited: Option<String>,
    depth: usize,
    host: &Platform,
    out: &mut Vec<(Digest, Option<String>)>,
    report: &mut LoadReport,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(ArchiveError::Format("indexes nested too deeply".into()));
    }
    let list = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| ArchiveError::Format("index without manifests".into()))?;
    let with_platform = list.iter().any(|d| d.get("platform").is_some());
    let mut chosen: Vec<&Value> = Vec::new();
    if with_platform {
        // Only this host's image (the first entry that matches, as `pull` chooses), plus entries
        // without a platform that are not attestations (buildkit's provenance manifests).
        if let Some(d) = list
            .iter()
            .find(|d| desc_platform(d).is_some_and(|p| host.matches(&p)))
        {
            chosen.push(d);
        } else {
            let all: Vec<String> = list
                .iter()
                .filter_map(desc_platform)
                .map(|p| p.to_string())
                .collect();
            report.failed.push(format!(
                "no image for {host} in an index (it has {})",
                all.join(", ")
            ));
        }
        chosen.extend(list.iter().filter(|d| {
            d.get("platform").is_none()
                && d.pointer("/annotations/vnd.docker.reference.type")
                    .is_none()
        }));
    } else {
        chosen.extend(list.iter());
    }
    for d in chosen {
        let Some(digest) = d
            .get("digest")
            .and_then(Value::as_str)
            .and_then(Digest::parse)
        else {
            report
                .failed
                .push("index entry without a valid digest".to_string());
            continue;
        };
        let name = annotation_name(d).or_else(|| inherited.clone());
        let mt = d.get("mediaType").and_then(Value::as_str).unwrap_or("");
        let is_index = match mt {
            OCI_INDEX | DOCKER_LIST => true,
            OCI_MANIFEST | DOCKER_V2 => false,
            "" => {
                // No media type: look at the blob itself.
                let (_, v) = read_blob_json(root, &digest)?;
                v.get("manifests").is_some() && v.get("layers").is_none()
            }
            other => {
                crate::debug!("load: skipping index entry {digest} of type {other}");
                continue;
            }
        };
        if is_index {
            let (_, v) = read_blob_json(root, &digest)?;
            walk_index(root, &v, name, depth + 1, host, out, report)?;
        } else {
            out.push((digest, name));
        }
    }
    Ok(())
}

fn load_oci_image(
    repo: &LocalRepo,
    root: &Path,
    d: &Digest,
    name: Option<String>,
    rename: &Option<(String, Option<String>)>,
    blobs: &mut Blobs,
    report: &mut LoadReport,
) -> Result<()> {
    let (bytes, v) = read_blob_json(root, d)?;
    let m = ImageManifest::from_json(&v).map_err(ArchiveError::Format)?;
    let Some(config) = &m.config else {
        return Err(ArchiveError::Format(
            "schema 1 manifests are not supported in archives".into(),
        ));
    };
    let found: Vec<Found> = name.iter().filter_map(|n| parse_found(n, true)).collect();
    let names = wanted(repo, final_names(&found, &config.digest, rename), report);
    if names.is_empty() {
        return Ok(());
    }
    let mut all = Vec::new();
    for l in m.layers.iter().chain(std::iter::once(config)) {
        let what = format!("blob {}", l.digest);
        let path = blob_file(root, &l.digest)?;
        let (digest, _, _) = blobs.import(repo, &path, Some(&l.digest), &what)?;
        if !all.contains(&digest) {
            all.push(digest);
        }
    }
    install(repo, &names, &bytes, &all, report)
}
