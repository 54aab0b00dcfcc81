//! Image commands: pull, images, inspect, manifest, rmi, tag, verify, protect, unprotect.

use super::args::{flag, val, Opt, Parsed};
use super::{want_args, warn_ignored, CmdResult, Command, Ctx, Fail};
use crate::digest::Digest;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{endpoint_for, manifest, Endpoint};
use crate::repo::{ImageEntry, LocalRepo};
use std::fs::{self, File};
use std::io::{self, BufReader, IsTerminal, Read};

pub fn commands() -> Vec<Command> {
    vec![
        Command {
            name: "pull",
            opts: { const O: &[Opt] = &[val(&["--platform"]), val(&["--registry"]), val(&["--index"]), val(&["--httpproxy"])]; O },
            help: "pull an image from a registry\n\
usage: udocker pull [options] REPO/IMAGE[:TAG|@DIGEST]\n  --platform=OS/ARCH[/VARIANT]  platform to pull from a multi-platform image (default: this host's)\n  \
--registry=URL                registry for names without a registry host (https:// if no scheme)\n  \
--index=URL                   accepted for compatibility\n  --httpproxy=URL               proxy (http, socks4, socks5)\n",
            run: pull,
        },
        Command {
            name: "images",
            opts: { const O: &[Opt] = &[flag(&["-l", "--long"]), flag(&["-p", "--platform"]), flag(&["--no-trunc"]), flag(&["-a", "--all"])]; O },
            help: "list images in the local repository\nusage: udocker images [-l] [-p]\n  -l  show each image's directory and layers\n  -p  show each image's platform\n",
            run: images,
        },
        Command {
            name: "inspect",
            opts: { const O: &[Opt] = &[flag(&["-p", "--print-root"])]; O },
            help: "print a container's or an image's configuration (JSON)\nusage: udocker inspect [-p] CONTAINER|IMAGE\n  -p  print the container's ROOT directory\n",
            run: inspect,
        },
        Command {
            name: "manifest",
            opts: { const O: &[Opt] = &[val(&["--platform"]), val(&["--registry"]), val(&["--index"]), val(&["--httpproxy"])]; O },
            help: "print an image's manifest from its registry\nusage: udocker manifest inspect [--platform=OS/ARCH[/VARIANT]] IMAGE\n",
            run: manifest_cmd,
        },
        Command {
            name: "rmi",
            opts: { const O: &[Opt] = &[flag(&["-f", "--force"])]; O },
            help: "remove an image; layers no other image uses are deleted\nusage: udocker rmi [-f] IMAGE...\n",
            run: rmi,
        },
        Command { name: "tag", opts: &[], help: "give an image another name\nusage: udocker tag SOURCE TARGET\n", run: tag },
        Command { name: "verify", opts: &[], help: "re-check every layer of an image (digest and archive)\nusage: udocker verify IMAGE...\n", run: verify },
        Command { name: "protect", opts: &[], help: "protect a container or image against removal\nusage: udocker protect CONTAINER|IMAGE\n", run: protect },
        Command { name: "unprotect", opts: &[], help: "remove protection\nusage: udocker unprotect CONTAINER|IMAGE\n", run: unprotect },
    ]
}

/// `name[:tag|@digest]` of an image in the local repository. Loaded images may carry names the
/// docker grammar refuses, so fall back to a plain split when it does.
pub fn local_ref(s: &str) -> Result<(String, String), Fail> {
    if let Ok(r) = Reference::parse(s) {
        return Ok((r.local_name.clone(), r.local_tag()));
    }
    let (name, tag) = match s.split_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => match s.rfind(':') {
            Some(c) if s.rfind('/').is_none_or(|sl| c > sl) => (&s[..c], s[c + 1..].to_string()),
            _ => (s, "latest".to_string()),
        },
    };
    crate::repo::check_name(name).map_err(|_| Fail::new(format!("invalid image name: {s}")))?;
    if tag.is_empty() || tag.contains('/') || tag.starts_with('.') {
        return Err(Fail::new(format!("invalid image name: {s}")));
    }
    Ok((name.to_string(), tag))
}

pub fn find(repo: &LocalRepo, s: &str) -> Result<ImageEntry, Fail> {
    let (n, t) = local_ref(s)?;
    Ok(repo.find_image(&n, &t)?)
}

fn platform_opt(p: &Parsed) -> Result<Platform, Fail> {
    match p.get("--platform").filter(|s| !s.is_empty()) {
        Some(s) => Platform::parse(s).ok_or_else(|| Fail::new(format!("invalid platform: {s}"))),
        None => Ok(Platform::host()),
    }
}

fn endpoint(ctx: &Ctx, p: &Parsed, r: &Reference) -> Result<Endpoint, Fail> {
    let reg = p
        .get("--registry")
        .map(str::to_string)
        .or_else(|| ctx.cfg.registry.clone());
    endpoint_for(
        r,
        reg.as_deref(),
        &ctx.cfg.dockerio_registry_url,
        ctx.cfg.http_insecure,
    )
    .map_err(Fail::new)
}

fn pull(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "pull [options] IMAGE")?;
    let r = Reference::parse(&p.args[0])?;
    let platform = platform_opt(&p)?;
    let mut ep = endpoint(ctx, &p, &r)?;
    let repo = ctx.repo()?;
    let client = ctx.client(p.get("--httpproxy"))?;
    client.ping(&mut ep)?;
    crate::debug!("pulling {} from {}/{}", r.display_local(), ep.base, ep.repo);
    let show = io::stderr().is_terminal() && crate::msg::enabled(crate::msg::INF);
    let out = crate::pull::pull(
        &repo,
        &client,
        &r,
        &ep,
        &platform,
        ctx.cfg.parallel_downloads,
        show,
    )?;
    crate::info!(
        "{}: {} blob(s) downloaded, {} already present, manifest {}",
        r.display_local(),
        out.downloaded,
        out.cached,
        out.manifest_digest
    );
    Ok(0)
}

fn images(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 0, 0, "images [-l] [-p]")?;
    warn_ignored(&p, &[]);
    let repo = ctx.repo()?;
    println!("REPOSITORY");
    for img in repo.images()? {
        let mut line = format!(
            "{}    {}",
            img.display(),
            if img.protected { "P" } else { "." }
        );
        if p.has("-p") {
            let plat = repo
                .image_config(&img)
                .map(|c| manifest::config_platform(&c))
                .unwrap_or_else(|_| "unknown/unknown".into());
            line.push_str(&format!("    {plat}"));
        }
        println!("{line}");
        if p.has("-l") {
            println!("  {}", img.dir.display());
            if let Ok(files) = repo.image_files(&img) {
                for (l, _) in files.layers.iter().chain(
                    files
                        .config
                        .iter()
                        .map(|c| (c.clone(), None))
                        .collect::<Vec<_>>()
                        .iter(),
                ) {
                    let size = fs::metadata(l).map(|m| m.len()).unwrap_or(0);
                    println!(
                        "    {} ({} MB)",
                        l.file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        size.div_ceil(1024 * 1024)
                    );
                }
            }
        }
    }
    Ok(0)
}

fn inspect(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "inspect [-p] CONTAINER|IMAGE")?;
    let repo = ctx.repo()?;
    // A container id or name first (as upstream), then an image.
    if let Ok(c) = repo.find_container(&p.args[0]) {
        if p.has("-p") {
            println!("{}", c.root().display());
            return Ok(0);
        }
        let path = c.dir.join("container.json");
        let v: serde_json::Value = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| Fail::new(format!("cannot read {}", path.display())))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("json value serialises")
        );
        return Ok(0);
    }
    if p.has("-p") {
        return Err(Fail::new(format!("container not found: {}", p.args[0])));
    }
    let img = find(&repo, &p.args[0])?;
    let cfg = repo.image_config(&img)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&cfg).expect("json value serialises")
    );
    Ok(0)
}

fn manifest_cmd(ctx: &Ctx, mut p: Parsed) -> CmdResult {
    if p.args.first().map(String::as_str) != Some("inspect") {
        return Err(Fail::new(
            "usage: udocker manifest inspect [--platform=OS/ARCH] IMAGE",
        ));
    }
    p.args.remove(0);
    want_args(&p, 1, 1, "manifest inspect [--platform=OS/ARCH] IMAGE")?;
    let r = Reference::parse(&p.args[0])?;
    let mut ep = endpoint(ctx, &p, &r)?;
    let client = ctx.client(p.get("--httpproxy"))?;
    client.ping(&mut ep)?;
    let bytes = if p.get("--platform").is_some() {
        crate::pull::resolve_manifest(&client, &ep, &r.remote_reference(), &platform_opt(&p)?)?.0
    } else {
        client.manifest(&ep, &r.remote_reference())?.0
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Fail::new(e.to_string()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&v).expect("json value serialises")
    );
    Ok(0)
}

fn rmi(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, usize::MAX, "rmi [-f] IMAGE...")?;
    let repo = ctx.repo()?;
    let _g = repo.lock()?;
    let mut rc = 0;
    for a in &p.args {
        let res = find(&repo, a).and_then(|img| Ok(repo.remove_image(&img, p.has("-f"))?));
        match res {
            Ok(removed) => crate::info!(
                "removed image {a} ({} layer file(s) deleted)",
                removed.len()
            ),
            Err(e) => {
                crate::error!("{}", e.msg);
                rc = 1;
            }
        }
    }
    Ok(rc)
}

fn tag(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 2, 2, "tag SOURCE TARGET")?;
    let repo = ctx.repo()?;
    let _g = repo.lock()?;
    let src = find(&repo, &p.args[0])?;
    let (n, t) = local_ref(&p.args[1])?;
    repo.tag_image(&src, &n, &t)?;
    Ok(0)
}

fn set_protect(ctx: &Ctx, p: &Parsed, on: bool) -> CmdResult {
    let repo = ctx.repo()?;
    if let Ok(c) = repo.find_container(&p.args[0]) {
        repo.set_container_protect(&c, on)?;
    } else {
        repo.set_protect(&find(&repo, &p.args[0])?, on)?;
    }
    Ok(0)
}

fn protect(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "protect CONTAINER|IMAGE")?;
    set_protect(ctx, &p, true)
}

fn unprotect(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "unprotect CONTAINER|IMAGE")?;
    set_protect(ctx, &p, false)
}

/// A reader that hashes what passes through it, so a layer is hashed and listed in one pass.
struct HashingReader<R> {
    inner: R,
    hasher: Option<crate::digest::Hasher>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Check one layer: the archive decompresses (gzip, zstd or none) and lists as tar, and the file
/// hashes to its digest. Returns a problem description, or None.
fn check_layer(path: &std::path::Path, digest: Option<&Digest>) -> Option<String> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let mut hr = HashingReader {
        inner: BufReader::with_capacity(1 << 20, f),
        hasher: digest.map(|d| d.hasher()),
    };
    let mut magic = [0u8; 4];
    let n = {
        let buf = match io::BufRead::fill_buf(&mut hr.inner) {
            Ok(b) => b,
            Err(e) => return Some(e.to_string()),
        };
        let n = buf.len().min(4);
        magic[..n].copy_from_slice(&buf[..n]);
        n
    };
    let is_tar_candidate = n > 0;
    let listing: io::Result<()> = (|| {
        if !is_tar_candidate {
            return Ok(());
        }
        let reader: Box<dyn Read + '_> = if magic[..2] == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(&mut hr))
        } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(
                ruzstd::decoding::StreamingDecoder::new(&mut hr)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
            )
        } else {
            Box::new(&mut hr)
        };
        let mut ar = tar::Archive::new(reader);
        for e in ar.entries()? {
            let mut e = e?;
            io::copy(&mut e, &mut io::sink())?;
        }
        Ok(())
    })();
    // Hash whatever the tar reader left unread (padding, trailing blocks).
    if let Err(e) = io::copy(&mut hr, &mut io::sink()) {
        return Some(e.to_string());
    }
    let hash_problem = match (digest, hr.hasher.take()) {
        (Some(d), Some(h)) => {
            let got = h.finish();
            (got != *d).then(|| format!("digest mismatch: file hashes to {got}"))
        }
        _ => None,
    };
    hash_problem.or_else(|| {
        listing
            .err()
            .map(|e| format!("not a valid layer archive: {e}"))
    })
}

fn verify(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, usize::MAX, "verify IMAGE...")?;
    let repo = ctx.repo()?;
    let mut rc = 0;
    for a in &p.args {
        let img = find(&repo, a)?;
        crate::info!("verifying: {a}");
        let files = repo.image_files(&img)?;
        let mut bad = 0;
        for (path, digest) in &files.layers {
            let name = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let problem = if fs::symlink_metadata(path).is_err() {
                Some("missing from the image".to_string())
            } else if !path.exists() {
                Some("link points to a missing layer file".to_string())
            } else {
                check_layer(path, digest.as_ref())
            };
            match problem {
                Some(pr) => {
                    crate::error!("layer {name}: {pr}");
                    bad += 1;
                }
                None => crate::info!("layer ok: {name}"),
            }
        }
        if let Some(c) = &files.config {
            let digest = c
                .file_name()
                .and_then(|f| Digest::parse(&f.to_string_lossy()));
            let ok = match (File::open(c), digest) {
                (Ok(mut f), Some(d)) => d.matches_reader(&mut f).unwrap_or(false),
                (Ok(_), None) => true,
                (Err(_), _) => false,
            };
            if !ok {
                crate::error!("config {}: missing or digest mismatch", c.display());
                bad += 1;
            }
        }
        if bad > 0 {
            crate::error!("image verification failed: {a}");
            rc = 1;
        } else {
            println!("image ok: {a}");
        }
    }
    Ok(rc)
}
