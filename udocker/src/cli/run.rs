//! `udocker run [options] CONTAINER|IMAGE [COMMAND [ARGS...]]` (`spec/udocker.md` §1 run table
//! and flow). Options stop at the first argument, so `run C ls -l` passes `-l` to ls. The raw
//! options become an [`engine::RunRequest`] before the repository is touched; the container is
//! found, or created from an image (`--pull`); the engine plans and runs it; its exit status is
//! ours. Errors that stop the container from starting exit 125 (127 command not found, 126 not
//! executable), as docker.

use super::args::{flag, val, Opt, Parsed};
use super::{CmdResult, Command, Ctx, Fail};
use crate::container::Container;
use crate::engine::{self, users, ExecMode, Host, ImageMeta, RunRequest, Target, VolumeSpec};
use crate::repo::LocalRepo;
use crate::{debug, msg, warn};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

const OPTS: &[Opt] = &[
    flag(&["--rm"]),
    val(&["-w", "--workdir"]),
    val(&["-u", "--user"]),
    val(&["-v", "--volume"]),
    val(&["--novol"]),
    val(&["-e", "--env"]),
    val(&["--env-file"]),
    flag(&["--hostauth"]),
    flag(&["--containerauth"]),
    flag(&["--nosysdirs"]),
    flag(&["--nometa"]),
    flag(&["--dri"]),
    flag(&["--hostenv"]),
    val(&["--cpuset-cpus"]),
    val(&["--name"]),
    flag(&["--bindhome"]),
    val(&["--kernel"]),
    val(&["--location"]),
    flag(&["--nobanner"]),
    val(&["--entrypoint"]),
    val(&["--platform"]),
    val(&["--pull"]),
    val(&["--index"]),
    val(&["--registry"]),
    val(&["--httpproxy"]),
    val(&["-p", "--publish"]),
    flag(&["-P", "--publish-all", "--netcoop"]),
    flag(&["-i", "--interactive"]),
    flag(&["-t", "--tty"]),
    flag(&["-a", "--attach"]),
    val(&["--device"]),
    val(&["--volumes-from"]),
    val(&["--dns"]),
    val(&["--dns-search"]),
    flag(&["-h", "--help"]),
];

const HELP: &str = "run a container\n\
usage: udocker run [options] CONTAINER|IMAGE [COMMAND [ARGS...]]\n\
       udocker run [options] --location=DIR [COMMAND [ARGS...]]\n\
  --rm                       delete the container when it exits (unless protected)\n\
  -w, --workdir=DIR          working directory (default: the image's, else / or the user's home)\n\
  -u, --user=NAME|UID[:GID]  run as this user (default: the image's, else root)\n\
  -v, --volume=HOST[:CONT[:ro]]  bind a host file or directory into the container\n\
  --novol=HOST|HOST:CONT     remove a volume (also a default one, e.g. --novol=/proc)\n\
  -e, --env=NAME[=VALUE]     set a variable (NAME alone: the host's value)\n\
  --env-file=FILE            variables from FILE (NAME=VALUE lines, # comments)\n\
  --hostenv                  pass the host's environment (not its PATH)\n\
  --hostauth                 use the host's /etc/passwd and /etc/group\n\
  --containerauth            use the container's /etc/passwd and /etc/group as they are\n\
  --bindhome                 bind the host home directory at the same path\n\
  --nosysdirs                do not bind /dev /proc /sys /etc/resolv.conf /etc/hosts ...\n\
  --nometa                   ignore the image's metadata (Entrypoint, Cmd, Env, User, WorkingDir)\n\
  --dri                      bind the host's DRI driver directories\n\
  --cpuset-cpus=LIST         run on these CPUs (e.g. 0,2-3)\n\
  --entrypoint=CMD           replace the image's Entrypoint (\"\" drops Entrypoint and Cmd)\n\
  --kernel=RELEASE           kernel release the container sees\n\
  --name=NAME                name the container created from IMAGE\n\
  --pull=missing|never|always|reuse  when IMAGE is pulled (reuse: run --name's container if it exists)\n\
  --platform=OS/ARCH, --registry=URL, --httpproxy=URL  for the pull\n\
  --location=DIR             run a root file system directory (no image metadata)\n\
  --nobanner                 no STARTING banner\n\
  -i, -t, -a                 accepted (the terminal is passed through as it is)\n\
  -p [IP:]HOSTPORT:CONTPORT  the container's CONTPORT is bound as HOSTPORT (P1/P2; others warn)\n\
  -P, --publish-all, --netcoop  P1/P2: every other port the container binds is bound where free,\n\
                             so containers can share port numbers (upstream's proot -n)\n\
  --device=HOST[:CONT]       bind a device (R1/R2/R3 modes; ignored by the others)\n\
  --volumes-from, --dns, --dns-search  accepted and ignored\n";

pub fn commands() -> Vec<Command> {
    vec![Command {
        name: "run",
        opts: OPTS,
        help: HELP,
        run,
    }]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullMode {
    Missing,
    Never,
    Always,
    Reuse,
}

fn pull_mode(p: &Parsed) -> Result<PullMode, Fail> {
    Ok(match p.get("--pull").unwrap_or("missing") {
        "missing" | "" => PullMode::Missing,
        "never" => PullMode::Never,
        "always" => PullMode::Always,
        "reuse" => PullMode::Reuse,
        x => {
            return Err(Fail::new(format!(
                "invalid --pull={x} (missing, never, always or reuse)"
            )))
        }
    })
}

fn fail(e: engine::EngineError) -> Fail {
    Fail {
        code: e.exit_code(),
        msg: e.to_string(),
    }
}

/// The options as a validated request (nothing read from the repository yet).
fn request(p: &Parsed, args: Vec<String>) -> Result<RunRequest, Fail> {
    let mut env_file_lines = Vec::new();
    for f in p.all("--env-file") {
        let text =
            fs::read_to_string(f).map_err(|e| Fail::new(format!("reading env file {f}: {e}")))?;
        env_file_lines.extend(engine::env::env_file_lines(&text));
    }
    Ok(RunRequest {
        args,
        entrypoint: p.get("--entrypoint").map(str::to_string),
        workdir: p.get("-w").map(str::to_string),
        user: p
            .get("-u")
            .filter(|u| !u.is_empty())
            .map(users::parse_user_spec)
            .transpose()
            .map_err(fail)?,
        volumes: p
            .all("-v")
            .iter()
            .map(|v| VolumeSpec::parse(v))
            .collect::<Result<_, _>>()
            .map_err(fail)?,
        novol: p.all("--novol").to_vec(),
        env: p.all("-e").to_vec(),
        env_file_lines,
        hostauth: p.has("--hostauth"),
        containerauth: p.has("--containerauth"),
        nosysdirs: p.has("--nosysdirs"),
        nometa: p.has("--nometa"),
        dri: p.has("--dri"),
        hostenv: p.has("--hostenv"),
        bindhome: p.has("--bindhome"),
        cpus: p
            .get("--cpuset-cpus")
            .map(engine::parse_cpuset)
            .transpose()
            .map_err(fail)?,
        kernel: p
            .get("--kernel")
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        devices: p.all("--device").to_vec(),
        ports: p
            .all("-p")
            .iter()
            .map(|v| parse_publish(v))
            .collect::<Result<_, _>>()?,
        netcoop: p.has("-P"),
    })
}

/// `-p [IP:]HOST:CONT[/PROTO]` or `-p CONT[/PROTO]` (docker's forms) → (container, host) port.
/// The host address is ignored: the container shares the host's network.
fn parse_publish(v: &str) -> Result<(u16, u16), Fail> {
    let bad = || {
        Fail::new(format!(
            "invalid port mapping {v}: expected [IP:]HOST_PORT:CONTAINER_PORT"
        ))
    };
    let spec = v.split('/').next().unwrap_or(v);
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    match parts.as_slice() {
        [c] => Ok((port(c)?, port(c)?)),
        [c, h] | [c, h, _] => Ok((port(c)?, port(h)?)),
        _ => Err(bad()),
    }
}

/// The lowest port an unprivileged process may bind (ip(7): net.ipv4.ip_unprivileged_port_start,
/// 1024 by default and on kernels without the setting).
fn unprivileged_port_start() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// The container shares the host's network. P modes remap `-p HOST:CONT` ports in the tracer;
/// the other modes cannot, and nobody can bind a privileged port without privileges: say so
/// once per port, as upstream does for the image's ExposedPorts, and go on.
fn port_warnings(p: &Parsed, target: &Target, plan: &engine::Plan) {
    let remaps = matches!(plan.mode, ExecMode::P1 | ExecMode::P2);
    if !plan.ports.is_empty() && !remaps {
        warn!(
            "ports are not remapped in execution mode {} (-p ignored): programs bind the host's ports directly",
            plan.mode.as_str()
        );
    }
    let start = unprivileged_port_start();
    // Root in the container is not root on the host, except in R modes (a user namespace,
    // still without the host's CAP_NET_BIND_SERVICE) — so this holds for every mode.
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let mapped = |c: u16| remaps && (plan.netcoop || plan.ports.iter().any(|&(cp, _)| cp == c));
    for (port, proto) in &target.meta.exposed_ports {
        if *port < start && !mapped(*port) && !p.has("--nometa") {
            warn!(
                "the image exposes port {port}/{proto}, which an unprivileged user cannot bind{}",
                if remaps {
                    format!(
                        ": map it with -p HOSTPORT:{port} (e.g. -p {}:{port})",
                        u32::from(*port) + 8000
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if p.has("-P") && !remaps {
        warn!(
            "-P (network cooperation) needs execution mode P1 or P2: programs bind the host's ports directly"
        );
    }
}

/// Pull `image` with the pull command itself (same options, messages and errors).
fn pull(ctx: &Ctx, p: &Parsed, image: &str) -> Result<(), Fail> {
    let mut argv = Vec::new();
    for k in ["--platform", "--registry", "--index", "--httpproxy"] {
        if let Some(v) = p.get(k) {
            argv.push(format!("{k}={v}"));
        }
    }
    argv.push(image.to_string());
    let cmd = super::commands()
        .into_iter()
        .find(|c| c.name == "pull")
        .expect("pull is a command");
    let parsed = super::args::parse(&argv, cmd.opts, false).map_err(Fail::new)?;
    match (cmd.run)(ctx, parsed)? {
        0 => Ok(()),
        code => Err(Fail {
            msg: format!("pulling {image} failed"),
            code,
        }),
    }
}

/// The container `arg` names, or a new one from the image `arg` names (`--pull`, `--name`).
/// Returns it and whether this run created it.
fn container_for(
    ctx: &Ctx,
    repo: &LocalRepo,
    p: &Parsed,
    arg: &str,
) -> Result<(Container, bool), Fail> {
    let name = p.get("--name").filter(|n| !n.is_empty());
    if let Ok(c) = repo.find_container(arg) {
        if name.is_some_and(|n| !c.names.iter().any(|x| x == n)) {
            warn!("--name ignored: {arg} is an existing container");
        }
        return Ok((c, false));
    }
    if crate::container::looks_like_id(arg) {
        return Err(Fail::new(format!("container not found: {arg}")));
    }
    let mode = pull_mode(p)?;
    if let Some(n) = name {
        crate::container::check_container_name(n)?;
        if let Ok(c) = repo.find_container(n) {
            if mode == PullMode::Reuse {
                return Ok((c, false));
            }
            return Err(Fail::new(format!(
                "container name already in use: {n} (use --pull=reuse to run it)"
            )));
        }
    }
    let local = super::image::find(repo, arg);
    let img = match (mode, local) {
        (PullMode::Always, _) | (PullMode::Missing | PullMode::Reuse, Err(_)) => {
            pull(ctx, p, arg)?;
            super::image::find(repo, arg)?
        }
        (PullMode::Never, Err(_)) => {
            return Err(Fail::new(format!(
                "no container or local image named {arg} (and --pull=never)"
            )))
        }
        (_, Ok(img)) => img,
    };
    let (c, stats) = repo.create_container(&img, name)?;
    if stats.skipped_special > 0 {
        warn!(
            "{} device node(s), fifo(s) or socket(s) not created (not possible without root)",
            stats.skipped_special
        );
    }
    for r in &stats.refused {
        warn!("layer member refused: {r}");
    }
    debug!("created container {} from {}", c.id, img.display());
    Ok((c, true))
}

fn banner(id: &str) {
    if !msg::enabled(msg::INF) {
        return;
    }
    let line = "*".repeat(id.len().max(20) + 16);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{line}\n*  STARTING {id:<w$}   *\n{line}",
        w = line.len() - 16
    );
    let _ = out.flush();
}

fn run(ctx: &Ctx, p: Parsed) -> CmdResult {
    if p.has("-h") {
        print!("{HELP}");
        return Ok(0);
    }
    let location = p.get("--location").filter(|l| !l.is_empty());
    let (arg, cmd_args) = match location {
        Some(_) => (None, p.args.clone()),
        None => match p.args.split_first() {
            Some((a, rest)) => (Some(a.clone()), rest.to_vec()),
            None => {
                return Err(Fail::new(
                    "usage: udocker run [options] CONTAINER|IMAGE [COMMAND [ARGS...]]",
                ))
            }
        },
    };
    let req = request(&p, cmd_args)?;
    pull_mode(&p)?;
    for k in ["--volumes-from", "--dns", "--dns-search"] {
        if p.has(k) {
            warn!("option {k} is ignored by this execution mode");
        }
    }
    if req.hostauth && req.containerauth {
        return Err(Fail::new(
            "--hostauth and --containerauth exclude each other",
        ));
    }

    // Cleanups that must happen however the run ends: --rm and --location's scratch directory.
    let mut tmp_state: Option<PathBuf> = None;
    let mut rm: Option<(LocalRepo, Container)> = None;
    let result = start(
        ctx,
        &p,
        location,
        arg.as_deref(),
        &req,
        &mut tmp_state,
        &mut rm,
    );
    if let Some(d) = tmp_state {
        let _ = crate::fsutil::remove_tree(&d);
    }
    if let Some((repo, c)) = rm {
        if c.protected() {
            warn!("container {} is protected: not removed (--rm)", c.id);
        } else if let Err(e) = repo.remove_container(&c) {
            warn!("--rm: {e}");
        }
    }
    result
}

/// Find or create the target, plan, print the banner, run.
fn start(
    ctx: &Ctx,
    p: &Parsed,
    location: Option<&str>,
    arg: Option<&str>,
    req: &RunRequest,
    tmp_state: &mut Option<PathBuf>,
    rm: &mut Option<(LocalRepo, Container)>,
) -> CmdResult {
    let (root, id, names, state_dir, meta, mode) = match (location, arg) {
        (Some(loc), _) => {
            let root = fs::canonicalize(loc)
                .ok()
                .filter(|r| r.is_dir())
                .ok_or_else(|| Fail::new(format!("--location: not a directory: {loc}")))?;
            let state = ctx.cfg.tmpdir.join(format!(
                "udocker-run-{}-{}",
                std::process::id(),
                &crate::container::new_uuid()[..8]
            ));
            fs::create_dir_all(&state)
                .map_err(|e| Fail::new(format!("creating {}: {e}", state.display())))?;
            *tmp_state = Some(state.clone());
            let mode = ctx.cfg.default_execution_mode.clone();
            (
                root,
                String::new(),
                Vec::new(),
                state,
                ImageMeta::default(),
                mode,
            )
        }
        (None, Some(a)) => {
            let repo = ctx.repo()?;
            let (c, _created) = container_for(ctx, &repo, p, a)?;
            let mode = c
                .exec_mode()
                .unwrap_or_else(|| ctx.cfg.default_execution_mode.clone());
            let meta = c
                .config_json()
                .map(|v| ImageMeta::from_config(&v))
                .unwrap_or_default();
            let t = (
                c.root(),
                c.id.clone(),
                c.names.clone(),
                c.dir.clone(),
                meta,
                mode,
            );
            if p.has("--rm") {
                *rm = Some((repo, c));
            }
            t
        }
        (None, None) => {
            return Err(Fail::new(
                "usage: udocker run [options] CONTAINER|IMAGE [COMMAND [ARGS...]]",
            ))
        }
    };
    let mode = ExecMode::parse(&mode).map_err(fail)?;
    // F2-F4 rewrite the container's loader (and programs) and keep records of it in the
    // container directory; a --location directory has none and is the user's own tree.
    if location.is_some() && mode.patches_loader() {
        return Err(Fail::new(format!(
            "--location runs a directory as it is: execution mode {} would patch its files; use F1 or P1, or create a container",
            mode.as_str()
        )));
    }
    let target = Target {
        id,
        names,
        root,
        state_dir,
        meta,
        mode,
    };
    let plan = engine::prepare(req, &target, &Host::current()).map_err(fail)?;
    for w in &plan.warnings {
        warn!("{w}");
    }
    port_warnings(p, &target, &plan);
    debug!(
        "mode {} root {} cwd {} user {}:{} ({})",
        target.mode.as_str(),
        plan.root.display(),
        plan.cwd,
        plan.user.entry.uid,
        plan.user.entry.gid,
        plan.user.entry.name
    );
    for v in &plan.volumes {
        debug!(
            "bind {}:{}{}",
            v.host.display(),
            v.guest,
            if v.readonly { ":ro" } else { "" }
        );
    }
    debug!("argv {:?}", plan.argv);
    for (k, v) in &plan.env {
        debug!("env {k}={v}");
    }
    if !p.has("--nobanner") {
        banner(if target.id.is_empty() {
            "--location"
        } else {
            &target.id
        });
    }
    let verbose = if msg::enabled(msg::DBG) {
        2
    } else {
        u8::from(msg::enabled(msg::WAR))
    };
    if !plan.devices.is_empty() && !target.mode.is_runc() {
        warn!(
            "option --device is ignored by execution mode {} (R modes bind devices)",
            target.mode.as_str()
        );
    }
    let status = match target.mode {
        ExecMode::P1 | ExecMode::P2 => engine::ptrace::execute(&plan, verbose),
        ExecMode::R1 | ExecMode::R2 | ExecMode::R3 => {
            engine::runc::execute(&plan, &target.state_dir, verbose)
        }
        ExecMode::S1 => engine::singularity::execute(&plan, verbose),
        ExecMode::F1 | ExecMode::F2 | ExecMode::F3 | ExecMode::F4 => {
            // With --rm or a --location scratch directory, cleanup follows the run: keep this
            // process as the program's parent; otherwise the program replaces it.
            let replace = rm.is_none() && tmp_state.is_none();
            engine::fakechroot::execute(&plan, &target.state_dir, verbose, replace)
        }
    }
    .map_err(fail)?;
    Ok(status.clamp(0, 255) as u8)
}
