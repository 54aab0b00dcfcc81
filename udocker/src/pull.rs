//! `pull`: manifest (choosing a platform from an index), blobs in parallel into the shared layer
//! store, then the tag directory, in that order, so a pull killed at any point leaves either the
//! previous state or a complete image, plus resumable partial downloads in `layers/.partial/`.

use crate::digest::Digest;
use crate::fsutil;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::reference::Reference;
use crate::registry::manifest::{self, Descriptor, ImageManifest, Manifest};
use crate::registry::{Client, Endpoint, RegistryError};
use crate::repo::{LocalRepo, RepoError};
use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug)]
pub enum PullError {
    Registry(RegistryError),
    Repo(RepoError),
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::Registry(e) => e.fmt(f),
            PullError::Repo(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PullError {}

impl From<RegistryError> for PullError {
    fn from(e: RegistryError) -> Self {
        PullError::Registry(e)
    }
}

impl From<RepoError> for PullError {
    fn from(e: RepoError) -> Self {
        PullError::Repo(e)
    }
}

#[derive(Debug)]
pub struct PullOutcome {
    pub tag_dir: PathBuf,
    pub manifest_digest: Digest,
    pub downloaded: usize,
    pub cached: usize,
}

/// Resolve a reference to one image manifest: an index is narrowed to `platform`'s entry, whose
/// manifest is then fetched by digest (and checked against it).
pub fn resolve_manifest(
    client: &Client,
    ep: &Endpoint,
    reference: &str,
    platform: &Platform,
) -> Result<(Vec<u8>, ImageManifest, Digest), RegistryError> {
    let (bytes, m, digest) = client.manifest(ep, reference)?;
    match m {
        Manifest::Image(im) => Ok((bytes, im, digest)),
        Manifest::Index(entries) => {
            let chosen = manifest::select_platform(&entries, platform).ok_or_else(|| {
                RegistryError::NoPlatform {
                    wanted: platform.to_string(),
                    available: entries
                        .iter()
                        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                        .collect(),
                }
            })?;
            let (b, m, d) = client.manifest(ep, chosen.digest.as_str())?;
            match m {
                Manifest::Image(im) => Ok((b, im, d)),
                Manifest::Index(_) => Err(RegistryError::BadResponse {
                    url: ep.base.clone(),
                    msg: "nested index".into(),
                }),
            }
        }
    }
}

/// Fetch one blob into the store unless it is there. Holds the blob's lock so two processes
/// never write the same partial file; the second one finds the finished blob.
fn fetch_one(
    repo: &LocalRepo,
    client: &Client,
    ep: &Endpoint,
    d: &Descriptor,
    prog: &Progress,
    line: usize,
) -> Result<bool, PullError> {
    let dest = repo.blob_path(&d.digest);
    let present = |p: &PathBuf| {
        fs::metadata(p)
            .map(|m| m.is_file() && d.size.is_none_or(|s| s == m.len()))
            .unwrap_or(false)
    };
    if present(&dest) {
        prog.set_state(line, "already in repository");
        return Ok(false);
    }
    let pdir = repo.partial_dir()?;
    let lock_path = pdir.join(format!("{}.lock", d.digest));
    let _lock =
        fsutil::lock_exclusive(&lock_path).map_err(crate::repo::io_err("locking", &lock_path))?;
    if present(&dest) {
        prog.set_state(line, "already in repository");
        return Ok(false);
    }
    let partial = pdir.join(d.digest.as_str());
    client.fetch_blob(ep, d, &partial, &|done, total| {
        prog.update(line, done, total)
    })?;
    fs::rename(&partial, &dest).map_err(crate::repo::io_err("storing", &dest))?;
    fsutil::sync_dir(&repo.layout.layers);
    let _ = fs::remove_file(&lock_path);
    prog.set_state(line, "done");
    Ok(true)
}

pub fn pull(
    repo: &LocalRepo,
    client: &Client,
    r: &Reference,
    ep: &Endpoint,
    platform: &Platform,
    parallel: usize,
    show_progress: bool,
) -> Result<PullOutcome, PullError> {
    let (bytes, im, digest) = resolve_manifest(client, ep, &r.remote_reference(), platform)?;
    let blobs = im.blobs();
    let prog = Progress::new(show_progress);
    let lines: Vec<usize> = blobs
        .iter()
        .map(|b| prog.add(&b.digest.as_str()[..19], "waiting"))
        .collect();
    let mut downloaded = 0;
    let mut cached = 0;
    // Blobs must still be there when the tag is written (an rmi may run meanwhile): check under
    // the lock and fetch again what vanished.
    for round in 0..3 {
        let queue: Mutex<VecDeque<(usize, &Descriptor)>> =
            Mutex::new(blobs.iter().enumerate().collect());
        let results: Mutex<Vec<Result<bool, PullError>>> = Mutex::new(Vec::new());
        let workers = parallel.clamp(1, blobs.len().max(1));
        prog.run(|| {
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| loop {
                        let Some((i, d)) = queue.lock().expect("queue lock").pop_front() else {
                            break;
                        };
                        let res = fetch_one(repo, client, ep, d, &prog, lines[i]);
                        let failed = res.is_err();
                        results.lock().expect("results lock").push(res);
                        if failed {
                            // Stop handing out work; running downloads finish or fail on their own.
                            queue.lock().expect("queue lock").clear();
                        }
                    });
                }
            })
        });
        for res in results.into_inner().expect("results lock") {
            match res? {
                true => downloaded += 1,
                false => cached += 1,
            }
        }
        let _g = repo.lock()?;
        if blobs.iter().all(|b| repo.blob_path(&b.digest).is_file()) {
            let digests: Vec<Digest> = blobs.iter().map(|b| b.digest.clone()).collect();
            let tag_dir = repo.install_v2(&r.local_name, &r.local_tag(), &bytes, &digests)?;
            return Ok(PullOutcome {
                tag_dir,
                manifest_digest: digest,
                downloaded,
                cached: cached.min(blobs.len()),
            });
        }
        crate::debug!("blobs removed during pull, round {round}");
    }
    Err(PullError::Repo(RepoError::Corrupt(
        "layers kept disappearing during the pull".into(),
    )))
}
