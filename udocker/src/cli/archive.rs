//! Archive commands: export, import, load, save (`spec/udocker.md` §1; the work is in
//! `crate::archive`). Results (container ids, loaded names) go to stdout, everything else to stderr.

use super::args::{flag, val, Opt, Parsed};
use super::{want_args, CmdResult, Command, Ctx, Fail};
use crate::archive::{self, ArchiveError, ImportOptions, LoadOptions, Output, Source};
use crate::platform::Platform;
use std::io::IsTerminal;
use std::path::Path;

impl From<ArchiveError> for Fail {
    fn from(e: ArchiveError) -> Fail {
        Fail::new(e.to_string())
    }
}

pub fn commands() -> Vec<Command> {
    vec![
        Command {
            name: "export",
            opts: { const O: &[Opt] = &[val(&["-o", "--output"]), flag(&["--clone"])]; O },
            help: "write a container's filesystem as a tar archive\n\
usage: udocker export -o FILE [--clone] CONTAINER\n       udocker export - [--clone] CONTAINER    (to stdout)\n  \
-o FILE  output file (must not exist)\n  --clone  archive the whole container directory (for import --clone)\n",
            run: export,
        },
        Command {
            name: "import",
            opts: { const O: &[Opt] = &[flag(&["--mv"]), flag(&["--tocontainer"]), flag(&["--clone"]), val(&["--name"]), val(&["--platform"])]; O },
            help: "create an image (or a container) from a filesystem tar archive\n\
usage: udocker import [--mv] [--platform=OS/ARCH] FILE|- REPO:TAG\n       \
udocker import --tocontainer [--name=NAME] FILE|- [REPO:TAG]\n       udocker import --clone [--name=NAME] FILE|-\n  \
--mv           move FILE into the repository instead of copying it\n  \
--platform=P   os/arch recorded in the image config (default: this host's)\n  \
--tocontainer  extract into a new container, without an image; prints its id\n  \
--clone        FILE was written by export --clone: make it a container again; prints its id\n  \
--name=NAME    name of the new container\n",
            run: import,
        },
        Command {
            name: "load",
            opts: { const O: &[Opt] = &[val(&["-i", "--input"])]; O },
            help: "load images from a docker save or OCI archive\n\
usage: udocker load [-i FILE|-] [REPO[:TAG]]\n  -i FILE     archive to read (default: stdin)\n  \
REPO[:TAG]  name to give the loaded images instead of the names in the archive\n",
            run: load,
        },
        Command {
            name: "save",
            opts: { const O: &[Opt] = &[val(&["-o", "--output"]), flag(&["--oci"])]; O },
            help: "write images to a tar archive (docker save format)\n\
usage: udocker save -o FILE|- [--oci] IMAGE...\n  -o FILE  output file (must not exist); - for stdout\n  \
--oci    write an OCI image layout instead of docker's format\n",
            run: save,
        },
    ]
}

/// An output path, `None` for stdout (refused when stdout is a terminal, as docker does).
fn output(o: &str) -> Result<Option<&Path>, Fail> {
    if o == "-" {
        if std::io::stdout().is_terminal() {
            return Err(Fail::new(
                "refusing to write an archive to a terminal (use -o FILE or a pipe)",
            ));
        }
        return Ok(None);
    }
    if o.is_empty() {
        return Err(Fail::new("empty output file name"));
    }
    Ok(Some(Path::new(o)))
}

fn source(s: &str) -> Source<'_> {
    if s == "-" {
        Source::Stdin
    } else {
        Source::File(Path::new(s))
    }
}

fn export(ctx: &Ctx, p: Parsed) -> CmdResult {
    const USAGE: &str = "export -o FILE [--clone] CONTAINER  or  export - [--clone] CONTAINER";
    let (out, cont) = match p.get("-o") {
        Some(o) => {
            want_args(&p, 1, 1, USAGE)?;
            (o.to_string(), p.args[0].clone())
        }
        None => {
            want_args(&p, 2, 2, USAGE)?;
            (p.args[0].clone(), p.args[1].clone())
        }
    };
    let dest = output(&out)?;
    let repo = ctx.repo()?;
    let c = super::container::find(&repo, &cont)?;
    let mut w = Output::create(dest)?;
    let stats = archive::export_container(&c, p.has("--clone"), &mut w)?;
    w.commit()?;
    for s in &stats.skipped {
        crate::warn!("not exported: {s}");
    }
    crate::info!(
        "exported container {} ({} entries, {} MB)",
        c.id,
        stats.entries,
        stats.bytes.div_ceil(1 << 20)
    );
    Ok(0)
}

fn import(ctx: &Ctx, p: Parsed) -> CmdResult {
    let to_container = p.has("--tocontainer");
    let clone = p.has("--clone");
    if to_container && clone {
        return Err(Fail::new("--tocontainer and --clone exclude each other"));
    }
    let platform = match p.get("--platform").filter(|s| !s.is_empty()) {
        Some(s) => Platform::parse(s).ok_or_else(|| Fail::new(format!("invalid platform: {s}")))?,
        None => Platform::host(),
    };
    let name = p.get("--name").filter(|n| !n.is_empty());
    if name.is_some() && !to_container && !clone {
        crate::warn!("--name has no effect without --tocontainer or --clone");
    }
    if p.has("--mv") && (to_container || clone) {
        crate::warn!("--mv has no effect with --tocontainer or --clone");
    }
    if to_container || clone {
        want_args(
            &p,
            1,
            if clone { 1 } else { 2 },
            "import --tocontainer|--clone [--name=NAME] FILE|- [REPO:TAG]",
        )?;
    } else {
        want_args(
            &p,
            2,
            2,
            "import [--mv] [--platform=OS/ARCH] FILE|- REPO:TAG",
        )?;
    }
    let src = source(&p.args[0]);
    if matches!(src, Source::Stdin) && std::io::stdin().is_terminal() {
        return Err(Fail::new("no archive on stdin"));
    }
    let repo = ctx.repo()?;
    if to_container || clone {
        let (c, stats) = if clone {
            archive::import_clone(&repo, src, name)?
        } else {
            let image_name = match p.args.get(1) {
                Some(r) => {
                    let (n, t) = super::image::local_ref(r)?;
                    crate::reference::local_display(&n, &t)
                }
                None => "IMPORTED:unknown".to_string(),
            };
            archive::import_to_container(&repo, src, name, &image_name, &platform)?
        };
        report_unpack(&stats);
        println!("{}", c.id);
        return Ok(0);
    }
    let (n, t) = super::image::local_ref(&p.args[1])?;
    let opts = ImportOptions {
        mv: p.has("--mv"),
        platform,
    };
    let layer = archive::import_image(&repo, src, &n, &t, &opts)?;
    crate::info!(
        "imported {} as {} (layer {layer})",
        p.args[0],
        crate::reference::local_display(&n, &t)
    );
    Ok(0)
}

fn report_unpack(stats: &crate::unpack::Stats) {
    if stats.skipped_special > 0 {
        crate::warn!(
            "{} device node(s), fifo(s) or socket(s) not created (not possible without root)",
            stats.skipped_special
        );
    }
    for r in &stats.refused {
        crate::warn!("archive member refused: {r}");
    }
}

fn load(ctx: &Ctx, p: Parsed) -> CmdResult {
    const USAGE: &str = "load [-i FILE|-] [REPO[:TAG]]";
    let mut args: Vec<&str> = p.args.iter().map(String::as_str).collect();
    let input = match p.get("-i") {
        Some(i) => i,
        None => match args.iter().position(|a| *a == "-") {
            Some(i) => args.remove(i),
            None => "-",
        },
    };
    if args.len() > 1 {
        return Err(Fail::new(format!("usage: udocker {USAGE}")));
    }
    let src = source(input);
    if matches!(src, Source::Stdin) && std::io::stdin().is_terminal() {
        return Err(Fail::new(format!(
            "no archive on stdin: usage: udocker {USAGE}"
        )));
    }
    let rename = match args.first() {
        Some(r) => {
            let (n, t) = archive::split_name_tag(r);
            crate::repo::check_name(&n)?;
            Some(match t {
                Some(t) => format!("{n}:{t}"),
                None => n,
            })
        }
        None => None,
    };
    let repo = ctx.repo()?;
    let report = archive::load(&repo, src, &LoadOptions { rename })?;
    for r in &report.refused {
        crate::warn!("archive member refused: {r}");
    }
    for e in &report.existing {
        crate::warn!("image exists, not loaded: {e}");
    }
    for f in &report.failed {
        crate::error!("{f}");
    }
    for l in &report.loaded {
        println!("{l}");
    }
    crate::info!("{}: {} image(s) loaded", report.format, report.loaded.len());
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

fn save(ctx: &Ctx, p: Parsed) -> CmdResult {
    const USAGE: &str = "save -o FILE|- [--oci] IMAGE...";
    let mut args: Vec<&str> = p.args.iter().map(String::as_str).collect();
    let out = match p.get("-o") {
        Some(o) => o,
        None if args.first() == Some(&"-") => args.remove(0),
        // No -o: stdout, as docker save does (refused on a terminal).
        None => "-",
    };
    if args.is_empty() {
        return Err(Fail::new(format!("usage: udocker {USAGE}")));
    }
    let dest = output(out)?;
    let repo = ctx.repo()?;
    let mut imgs = Vec::new();
    for a in &args {
        let img = super::image::find(&repo, a)?;
        if !imgs
            .iter()
            .any(|i: &crate::repo::ImageEntry| i.dir == img.dir)
        {
            imgs.push(img);
        }
    }
    let mut w = Output::create(dest)?;
    if p.has("--oci") {
        archive::save_oci(&repo, &imgs, &mut w)?;
    } else {
        archive::save_docker(&repo, &imgs, &mut w)?;
    }
    w.commit()?;
    crate::info!("saved {} image(s)", imgs.len());
    Ok(0)
}
