//! `save`: images as a tar that other tools load (`spec/udocker.md` §2 "save").
//!
//! Default: docker's `image/tarexport` layout, what `docker save` wrote before Docker 25 and what
//! `docker load` and `skopeo copy docker-archive:F …` read:
//!
//! ```text
//! <chainid>/VERSION ("1.0")  <chainid>/json  <chainid>/layer.tar   one directory per layer
//! <config sha256 hex>.json                                         the image config, byte for byte
//! manifest.json   [{"Config": "<hex>.json", "RepoTags": ["name:tag"], "Layers": ["<chainid>/layer.tar", …]}]
//! repositories    {"name": {"tag": "<top chainid>"}}
//! ```
//!
//! `layer.tar` must be the *uncompressed* layer (docker checks it against the config's
//! `rootfs.diff_ids`), so gzip/zstd layers are decompressed on the way, through a temporary file
//! (a tar member's size precedes its data). Layer directories are named by the layer's ChainID
//! (image-spec `config.md`), which is unique per layer *and* its parents, as docker's v1 ids are.
//! A config without (or with wrong) `rootfs.diff_ids` (schema 1 and v1 images) gets them
//! rewritten, so the archive still loads.
//!
//! `--oci`: an OCI image layout (image-spec `image-layout.md`) with the stored manifests and blobs
//! as they are, named in `index.json` by `io.containerd.image.name` (full `name:tag`, what
//! containerd and Docker ≥ 25 read) and `org.opencontainers.image.ref.name` (the tag).

use super::{
    decompress, io_err, ArchiveError, Compression, HashingReader, Result, TarOut, TempDir,
};
use crate::digest::Digest;
use crate::registry::manifest::{OCI_INDEX, OCI_MANIFEST};
use crate::repo::{ImageEntry, LocalRepo};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A layer ready to be written as `layer.tar`: the uncompressed file (the stored one, or a
/// temporary decompressed copy), its size and digest (= diff_id).
struct PlainLayer {
    path: PathBuf,
    size: u64,
    diff_id: Digest,
    temporary: bool,
}

impl Drop for PlainLayer {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The uncompressed form of a stored layer, checking the stored file against `expected`.
fn plain_layer(
    tmp: &TempDir,
    path: &Path,
    expected: Option<&Digest>,
    n: usize,
) -> Result<PlainLayer> {
    let corrupt = |actual: &Digest, e: &Digest| ArchiveError::DigestMismatch {
        what: format!("layer {} (try udocker verify)", path.display()),
        expected: e.to_string(),
        actual: actual.to_string(),
    };
    let check = expected.filter(|e| e.algorithm() == crate::digest::Algorithm::Sha256);
    let c = Compression::of_file(path).map_err(io_err("reading", path))?;
    if c == Compression::None {
        let (d, size) = super::hash_file(path)?;
        if let Some(e) = check {
            if *e != d {
                return Err(corrupt(&d, e));
            }
        }
        return Ok(PlainLayer {
            path: path.to_path_buf(),
            size,
            diff_id: d,
            temporary: false,
        });
    }
    let f = File::open(path).map_err(io_err("reading", path))?;
    let mut raw = HashingReader::new(f);
    let out = tmp.path.join(format!("layer-{n}.tar"));
    let (diff_id, size) = {
        let (_, r) = decompress(&mut raw).map_err(io_err("decompressing", path))?;
        let mut plain = HashingReader::new(r);
        let mut w = io::BufWriter::new(File::create(&out).map_err(io_err("creating", &out))?);
        io::copy(&mut plain, &mut w).map_err(io_err("decompressing", path))?;
        w.flush().map_err(io_err("writing", &out))?;
        plain.finish().map_err(io_err("decompressing", path))?
    };
    let (d, _) = raw.finish().map_err(io_err("reading", path))?;
    let layer = PlainLayer {
        path: out,
        size,
        diff_id,
        temporary: true,
    };
    if let Some(e) = check {
        if *e != d {
            return Err(corrupt(&d, e));
        }
    }
    Ok(layer)
}

/// ChainIDs of a layer stack (image-spec `config.md` "Layer ChainID"):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = match out.last() {
            None => d.clone(),
            Some(p) => Digest::sha256_of(format!("{p} {d}").as_bytes()),
        };
        out.push(c);
    }
    out
}

/// The config bytes of an image; `rootfs.diff_ids` rewritten when they do not describe `diff_ids`.
fn config_for(repo: &LocalRepo, img: &ImageEntry, diff_ids: &[Digest]) -> Result<Vec<u8>> {
    let files = repo.image_files(img)?;
    let bytes = if let Some(c) = &files.config {
        fs::read(c).map_err(io_err("reading", c))?
    } else if let Some(s) = &files.inline_config {
        s.clone().into_bytes()
    } else {
        b"{}".to_vec()
    };
    let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ArchiveError::Format(format!("{}: image config is not JSON: {e}", img.display()))
    })?;
    let want: Vec<&str> = diff_ids.iter().map(Digest::as_str).collect();
    let have: Option<Vec<&str>> = v
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect());
    if have.as_ref() == Some(&want) {
        return Ok(bytes);
    }
    let Some(obj) = v.as_object_mut() else {
        return Err(ArchiveError::Format(format!(
            "{}: image config is not a JSON object",
            img.display()
        )));
    };
    crate::debug!("save: {}: rootfs.diff_ids rewritten", img.display());
    obj.insert("rootfs".into(), json!({"type": "layers", "diff_ids": want}));
    Ok(serde_json::to_vec(&v).expect("json serialises"))
}

fn werr(e: io::Error) -> ArchiveError {
    ArchiveError::Io("writing archive".into(), PathBuf::from("<output>"), e)
}

/// Write `images` in docker-archive format to `out`.
pub fn save_docker(repo: &LocalRepo, images: &[ImageEntry], out: &mut dyn Write) -> Result<()> {
    let tmp = TempDir::new(repo, "save")?;
    let mut tar = TarOut::new(out);
    let mut written: HashSet<String> = HashSet::new();
    let mut known: HashMap<PathBuf, Digest> = HashMap::new();
    // manifest.json entries by config file name, RepoTags merged for tags of one image.
    let mut entries: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let files = repo.image_files(img)?;
        let mut diff_ids = Vec::new();
        let mut layer_names = Vec::new();
        let mut parent: Option<String> = None;
        for (i, (path, expected)) in files.layers.iter().enumerate() {
            if !path.exists() {
                return Err(ArchiveError::Format(format!(
                    "{}: layer missing: {} (try udocker verify)",
                    img.display(),
                    path.display()
                )));
            }
            // A layer shared by several saved images is decompressed (and hashed) only once.
            let mut layer = None;
            let diff_id = match known.get(path) {
                Some(d) => d.clone(),
                None => {
                    let l = plain_layer(&tmp, path, expected.as_ref(), i)?;
                    known.insert(path.clone(), l.diff_id.clone());
                    let d = l.diff_id.clone();
                    layer = Some(l);
                    d
                }
            };
            diff_ids.push(diff_id);
            let id = chain_ids(&diff_ids)
                .last()
                .expect("one per layer")
                .hex()
                .to_string();
            if written.insert(id.clone()) {
                let layer = match layer {
                    Some(l) => l,
                    None => plain_layer(&tmp, path, expected.as_ref(), i)?,
                };
                tar.dir(&format!("{id}/")).map_err(werr)?;
                tar.bytes(&format!("{id}/VERSION"), b"1.0").map_err(werr)?;
                let mut j = Map::new();
                j.insert("id".into(), json!(id));
                if let Some(p) = &parent {
                    j.insert("parent".into(), json!(p));
                }
                j.insert("created".into(), json!("1970-01-01T00:00:00Z"));
                tar.bytes(
                    &format!("{id}/json"),
                    &serde_json::to_vec(&Value::Object(j)).expect("json serialises"),
                )
                .map_err(werr)?;
                let mut f = File::open(&layer.path).map_err(io_err("reading", &layer.path))?;
                tar.file(&format!("{id}/layer.tar"), layer.size, &mut f)
                    .map_err(werr)?;
            }
            layer_names.push(format!("{id}/layer.tar"));
            parent = Some(id);
        }
        let config = config_for(repo, img, &diff_ids)?;
        let config_name = format!("{}.json", Digest::sha256_of(&config).hex());
        if written.insert(config_name.clone()) {
            tar.bytes(&config_name, &config).map_err(werr)?;
        }
        let tag = img.display();
        match entries.iter_mut().find(|e| e.0 == config_name) {
            Some(e) => {
                if !e.1.contains(&tag) {
                    e.1.push(tag);
                }
            }
            None => entries.push((config_name, vec![tag], layer_names)),
        }
        if let Some(top) = parent {
            repositories
                .entry(img.name.clone())
                .or_default()
                .insert(img.tag.clone(), top);
        }
    }
    let manifest: Vec<Value> = entries
        .into_iter()
        .map(|(c, t, l)| json!({"Config": c, "RepoTags": t, "Layers": l}))
        .collect();
    tar.bytes(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json serialises"),
    )
    .map_err(werr)?;
    tar.bytes(
        "repositories",
        &serde_json::to_vec(&repositories).expect("json serialises"),
    )
    .map_err(werr)?;
    tar.finish().map_err(werr)?;
    Ok(())
}

/// `blobs/<algo>/<hex>`.
fn blob_member(d: &Digest) -> String {
    let algo = d.as_str().split(':').next().unwrap_or("sha256");
    format!("blobs/{algo}/{}", d.hex())
}

/// Write `images` as an OCI image layout tarball to `out`.
pub fn save_oci(repo: &LocalRepo, images: &[ImageEntry], out: &mut dyn Write) -> Result<()> {
    let mut tar = TarOut::new(out);
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(werr)?;
    tar.dir("blobs/").map_err(werr)?;
    let mut algos: HashSet<String> = HashSet::new();
    let mut written: HashSet<Digest> = HashSet::new();
    let mut index = Vec::new();
    for img in images {
        let files = repo.image_files(img)?;
        let (Some(m), Some(_)) = (&files.manifest, &files.config) else {
            return Err(ArchiveError::Format(format!(
                "{}: only images with a schema 2 or OCI manifest can be saved with --oci",
                img.display()
            )));
        };
        let parsed =
            crate::registry::manifest::ImageManifest::from_json(m).map_err(ArchiveError::Format)?;
        let mf = img.dir.join("manifest");
        let mbytes = fs::read(&mf).map_err(io_err("reading", &mf))?;
        let mdigest = Digest::sha256_of(&mbytes);
        let blobs = parsed
            .layers
            .iter()
            .chain(parsed.config.iter())
            .map(|d| d.digest.clone())
            .collect::<Vec<_>>();
        for d in blobs.iter().chain(std::iter::once(&mdigest)) {
            if written.contains(d) {
                continue;
            }
            let algo = d.as_str().split(':').next().unwrap_or("sha256").to_string();
            if algos.insert(algo.clone()) {
                tar.dir(&format!("blobs/{algo}/")).map_err(werr)?;
            }
            if *d == mdigest {
                tar.bytes(&blob_member(d), &mbytes).map_err(werr)?;
            } else {
                let p = repo.blob_path(d);
                let size = fs::metadata(&p)
                    .map_err(|e| {
                        ArchiveError::Format(format!(
                            "{}: blob {d} missing: {e} (try udocker verify)",
                            img.display()
                        ))
                    })?
                    .len();
                let mut r = HashingReader::new(File::open(&p).map_err(io_err("reading", &p))?);
                tar.file(&blob_member(d), size, &mut r).map_err(werr)?;
                let (actual, _) = r.finish().map_err(io_err("reading", &p))?;
                if d.algorithm() == crate::digest::Algorithm::Sha256 && actual != *d {
                    return Err(ArchiveError::DigestMismatch {
                        what: format!("blob {} (try udocker verify)", p.display()),
                        expected: d.to_string(),
                        actual: actual.to_string(),
                    });
                }
            }
            written.insert(d.clone());
        }
        let media_type = m
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(OCI_MANIFEST);
        index.push(json!({
            "mediaType": media_type,
            "digest": mdigest.as_str(),
            "size": mbytes.len(),
            "annotations": {
                "io.containerd.image.name": img.display(),
                "org.opencontainers.image.ref.name": img.tag,
            },
        }));
    }
    let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index});
    tar.bytes(
        "index.json",
        &serde_json::to_vec(&idx).expect("json serialises"),
    )
    .map_err(werr)?;
    tar.finish().map_err(werr)?;
    Ok(())
}
