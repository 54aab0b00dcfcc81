//! Container commands: create, ps, rm, name, rmname, rename, clone, setup.
//! (`inspect`, `protect` and `unprotect` take a container or an image: see image.rs.)

use super::args::{flag, val, Opt, Parsed};
use super::{want_args, CmdResult, Command, Ctx, Fail};
use crate::container::{disk_usage, Container};
use crate::repo::LocalRepo;

pub fn commands() -> Vec<Command> {
    vec![
        Command {
            name: "create",
            opts: {
                const O: &[Opt] = &[val(&["--name"]), flag(&["--force"])];
                O
            },
            help: "create a container from an image; prints its id\nusage: udocker create [--name=NAME] [--force] IMAGE\n  \
--force  create even if NAME is taken (the new container then has no name)\n",
            run: create,
        },
        Command {
            name: "ps",
            opts: {
                const O: &[Opt] = &[flag(&["-m"]), flag(&["-s"]), flag(&["-p"])];
                O
            },
            help: "list containers\nusage: udocker ps [-m] [-s] [-p]\n  -m  execution mode\n  -s  size in MB\n  -p  platform\n",
            run: ps,
        },
        Command {
            name: "rm",
            opts: {
                const O: &[Opt] = &[flag(&["-f", "--force"])];
                O
            },
            help: "delete containers\nusage: udocker rm [-f] CONTAINER...\n",
            run: rm,
        },
        Command { name: "name", opts: &[], help: "name a container\nusage: udocker name CONTAINER NAME\n", run: name },
        Command { name: "rmname", opts: &[], help: "remove a container name\nusage: udocker rmname NAME\n", run: rmname },
        Command { name: "rename", opts: &[], help: "rename a container\nusage: udocker rename NAME NEWNAME\n", run: rename },
        Command {
            name: "clone",
            opts: {
                const O: &[Opt] = &[val(&["--name"])];
                O
            },
            help: "copy a container; prints the new id\nusage: udocker clone [--name=NAME] CONTAINER\n",
            run: clone,
        },
        Command {
            name: "setup",
            opts: {
                const O: &[Opt] = &[val(&["--execmode"]), flag(&["--force"]), flag(&["--purge"]), flag(&["--fixperm"]), flag(&["--nvidia"])];
                O
            },
            help: "show or set a container's execution mode\nusage: udocker setup [--execmode=P1|P2|F1|F2|F3|F4|R1|R2|R3|S1] CONTAINER\n",
            run: setup,
        },
    ]
}

pub fn find(repo: &LocalRepo, s: &str) -> Result<Container, Fail> {
    Ok(repo.find_container(s)?)
}

fn create(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "create [--name=NAME] [--force] IMAGE")?;
    let repo = ctx.repo()?;
    let img = super::image::find(&repo, &p.args[0])?;
    let mut name = p.get("--name").filter(|n| !n.is_empty());
    if let Some(n) = name {
        crate::container::check_container_name(n)?;
        if p.has("--force") && repo.find_container(n).is_ok() {
            crate::warn!("name {n} is taken: container created without a name");
            name = None;
        }
    }
    let (c, stats) = repo.create_container(&img, name)?;
    if stats.skipped_special > 0 {
        crate::warn!(
            "{} device node(s), fifo(s) or socket(s) not created (not possible without root)",
            stats.skipped_special
        );
    }
    for r in &stats.refused {
        crate::warn!("layer member refused: {r}");
    }
    println!("{}", c.id);
    Ok(0)
}

fn ps(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 0, 0, "ps [-m] [-s] [-p]")?;
    let repo = ctx.repo()?;
    let mut header = format!("{:<36} P M ", "CONTAINER ID");
    if p.has("-m") {
        header.push_str("MOD ");
    }
    if p.has("-s") {
        header.push_str("SIZE  ");
    }
    if p.has("-p") {
        header.push_str(&format!("{:<16} ", "PLATFORM"));
    }
    header.push_str(&format!("{:<20} IMAGE", "NAMES"));
    println!("{header}");
    for c in repo.containers()? {
        let root = c.root();
        let m = match std::fs::symlink_metadata(&root) {
            Err(_) => "N",
            Ok(md) if !md.is_dir() => "D",
            Ok(md) if md.permissions().mode_readonly() => "R",
            Ok(_) => "W",
        };
        let mut line = format!(
            "{:<36} {} {} ",
            c.id,
            if c.protected() { "P" } else { "." },
            m
        );
        if p.has("-m") {
            line.push_str(&format!(
                "{:<3} ",
                c.exec_mode()
                    .unwrap_or_else(|| ctx.cfg.default_execution_mode.clone())
            ));
        }
        if p.has("-s") {
            line.push_str(&format!("{:<5} ", disk_usage(&c.dir).div_ceil(1 << 20)));
        }
        if p.has("-p") {
            let plat = std::fs::read(c.dir.join("container.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .map(|v| crate::registry::manifest::config_platform(&v))
                .unwrap_or_else(|| "unknown/unknown".into());
            line.push_str(&format!("{plat:<16} "));
        }
        let names = format!(
            "[{}]",
            c.names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        line.push_str(&format!("{names:<20} {}", c.image_name()));
        println!("{line}");
    }
    Ok(0)
}

trait ModeReadonly {
    fn mode_readonly(&self) -> bool;
}

impl ModeReadonly for std::fs::Permissions {
    fn mode_readonly(&self) -> bool {
        use std::os::unix::fs::PermissionsExt;
        self.mode() & 0o200 == 0
    }
}

fn rm(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, usize::MAX, "rm [-f] CONTAINER...")?;
    let repo = ctx.repo()?;
    let mut rc = 0;
    for a in &p.args {
        match find(&repo, a).and_then(|c| Ok(repo.remove_container(&c)?)) {
            Ok(()) => crate::info!("deleted container {a}"),
            Err(e) => {
                crate::error!("{}", e.msg);
                rc = 1;
            }
        }
    }
    Ok(rc)
}

fn name(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 2, 2, "name CONTAINER NAME")?;
    let repo = ctx.repo()?;
    let c = find(&repo, &p.args[0])?;
    repo.set_name(&c, &p.args[1])?;
    Ok(0)
}

fn rmname(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "rmname NAME")?;
    let repo = ctx.repo()?;
    repo.remove_name(&p.args[0])?;
    Ok(0)
}

fn rename(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 2, 2, "rename NAME NEWNAME")?;
    let repo = ctx.repo()?;
    let c = find(&repo, &p.args[0])?;
    if !c.names.iter().any(|n| *n == p.args[0]) {
        return Err(Fail::new(format!("not a container name: {}", p.args[0])));
    }
    repo.set_name(&c, &p.args[1])?;
    repo.remove_name(&p.args[0])?;
    Ok(0)
}

fn clone(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "clone [--name=NAME] CONTAINER")?;
    let repo = ctx.repo()?;
    let c = find(&repo, &p.args[0])?;
    let nc = repo.clone_container(&c, p.get("--name").filter(|n| !n.is_empty()))?;
    // A clone of a container in an F mode: its links and (F3/F4) programs name the original's
    // ROOT; make them the clone's own (upstream requires `setup --execmode=Fn --force`).
    let mode = nc
        .exec_mode()
        .and_then(|m| crate::engine::ExecMode::parse(&m).ok());
    if let Some(m) = mode.filter(|m| m.is_fakechroot()) {
        let eng = |e: crate::engine::EngineError| Fail::new(e.to_string());
        crate::engine::fakechroot::follow_move(&nc.root(), &nc.dir).map_err(eng)?;
        if m.patches_binaries() {
            let msg =
                crate::engine::fakechroot::patch_binaries(&nc.root(), &nc.dir).map_err(eng)?;
            crate::debug!("clone: {msg}");
        }
    }
    println!("{}", nc.id);
    Ok(0)
}

fn setup(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "setup [--execmode=MODE] CONTAINER")?;
    let repo = ctx.repo()?;
    let c = find(&repo, &p.args[0])?;
    if let Some(m) = p.get("--execmode") {
        // The R and S engines bind files instead of changing the container (no FileBind): switching
        // between them and P is just the choice of engine.
        let new = crate::engine::ExecMode::parse(m).map_err(|e| Fail::new(e.to_string()))?;
        // Fakechroot modes need ROOT's absolute symlinks to point into ROOT (the kernel
        // follows them on the host); leaving them restores the links (upstream's links_conv).
        let old_f = c
            .exec_mode()
            .is_some_and(|o| o.to_ascii_uppercase().starts_with('F'));
        let old = c
            .exec_mode()
            .and_then(|o| crate::engine::ExecMode::parse(&o).ok());
        let force = p.has("--force");
        let old_ld = old.is_some_and(|o| o.patches_loader());
        let old_bins = old.is_some_and(|o| o.patches_binaries());
        let patch_ld = new.patches_loader() && (!old_ld || force);
        let patch_bins = new.patches_binaries() && (!old_bins || force);
        let touches = patch_ld
            || patch_bins
            || (old_ld && !new.patches_loader())
            || (old_bins && !new.patches_binaries());
        if (new.is_fakechroot() != old_f || touches) && c.protected() {
            return Err(Fail::new(format!("container is protected: {}", c.id)));
        }
        let eng = |e: crate::engine::EngineError| Fail::new(e.to_string());
        // A container in an F mode that moved (copied, renamed repository): its links first
        // follow it, so that every step below sees one consistent tree.
        if old_f {
            let n = crate::engine::fakechroot::follow_move(&c.root(), &c.dir).map_err(eng)?;
            if n > 0 {
                crate::info!("setup: {n} symlink(s) moved to the container's new place");
            }
        }
        // Leaving F3/F4: every ELF back to its own paths; leaving F2-F4 for P/R/S/F1: the
        // pristine loader back (§5 "→ P/R/S/F1 from F2-F4").
        if old_bins
            && !new.patches_binaries()
            && crate::engine::fakechroot::restore_binaries(&c.root(), &c.dir).map_err(eng)?
        {
            crate::info!("setup: programs restored (root prefix removed)");
        }
        if old_ld
            && !new.patches_loader()
            && crate::engine::fakechroot::restore_loader(&c.root(), &c.dir).map_err(eng)?
        {
            crate::info!("setup: loader restored from ld.so.orig");
        }
        // Entering F2-F4 (or --force): patch the loader; a loader that cannot be patched leaves
        // the mode as it was. F3/F4 then re-root every program.
        if patch_ld {
            let msg = crate::engine::fakechroot::patch_loader(&c.root(), &c.dir).map_err(eng)?;
            crate::info!("{msg}");
        }
        if patch_bins {
            let msg = crate::engine::fakechroot::patch_binaries(&c.root(), &c.dir).map_err(eng)?;
            crate::info!("{msg}");
        }
        if new.is_fakechroot() != old_f {
            let n = crate::engine::fakechroot::convert_links(&c.root(), new.is_fakechroot())
                .map_err(eng)?;
            crate::debug!("setup: {n} symlink(s) converted");
        }
        if new.is_fakechroot() {
            crate::engine::fakechroot::record_root(&c.root(), &c.dir).map_err(eng)?;
        } else {
            crate::engine::fakechroot::forget_root(&c.dir);
        }
        repo.set_exec_mode(&c, m)?;
    }
    if p.has("--nvidia") {
        if c.protected() {
            return Err(Fail::new(format!("container is protected: {}", c.id)));
        }
        // UDOCKER_NVIDIA_HOST_ROOT: where the host's driver tree is (tests give their own).
        let host_root = std::env::var_os("UDOCKER_NVIDIA_HOST_ROOT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/".into());
        let extra: Vec<std::path::PathBuf> = std::env::var("LD_LIBRARY_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(std::path::PathBuf::from)
            .collect();
        let rep = crate::engine::nvidia::setup(&host_root, &extra, &c.root(), p.has("--force"))
            .map_err(|e| Fail::new(e.to_string()))?;
        let marker = c.dir.join("nvidia");
        crate::fsutil::write_atomic(&marker, b"", 0o644)
            .map_err(|e| Fail::new(format!("writing {}: {e}", marker.display())))?;
        crate::info!(
            "nvidia: {} file(s) copied into the container",
            rep.copied.len()
        );
    }
    let c = find(&repo, &p.args[0])?;
    println!(
        "execmode: {}",
        c.exec_mode()
            .unwrap_or_else(|| ctx.cfg.default_execution_mode.clone())
    );
    println!(
        "nvidiamode: {}",
        if c.dir.join("nvidia").exists() {
            "True"
        } else {
            "False"
        }
    );
    Ok(0)
}
