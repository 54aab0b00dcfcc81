//! The command line: udocker 1.3's grammar and commands (`spec/udocker.md` §0–1). Raw arguments
//! become a validated plan here; the work is done by the library modules; only this module and
//! `main` print and choose exit codes.

mod archive;
pub mod args;
mod container;
mod image;
mod misc;
pub mod proot;
mod run;

use crate::config::Config;
use crate::registry::{Client, ClientOptions};
use crate::repo::keystore::Keystore;
use crate::repo::{Layout, LocalRepo};
use crate::{msg, warn};
use args::{flag, val, Opt};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// A command failed: the message is printed as `Error: …` and udocker exits with `code`.
#[derive(Debug)]
pub struct Fail {
    pub msg: String,
    pub code: u8,
}

impl Fail {
    pub fn new(msg: impl Into<String>) -> Fail {
        Fail {
            msg: msg.into(),
            code: 1,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

macro_rules! fail_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Fail { Fail::new(e.to_string()) }
        }
    )*};
}
fail_from!(
    crate::repo::RepoError,
    crate::registry::RegistryError,
    crate::pull::PullError,
    crate::repo::keystore::KeystoreError,
    crate::config::ConfigError,
    crate::reference::InvalidReference
);

pub type CmdResult = Result<u8, Fail>;

/// Settings from the general options, shared by every command.
#[derive(Debug)]
pub struct Ctx {
    pub cfg: Config,
    pub repo_dir: Option<PathBuf>,
}

impl Ctx {
    /// The repository: `--repo=DIR` must exist; the default one is created on first use.
    pub fn repo(&self) -> Result<LocalRepo, Fail> {
        if let Some(d) = &self.repo_dir {
            return Ok(LocalRepo::open_existing(d)?);
        }
        let c = &self.cfg;
        let layout = Layout {
            topdir: c.topdir.clone(),
            repos: c.reposdir.clone(),
            layers: c.layersdir.clone(),
            containers: c.containersdir.clone(),
            bin: c.bindir.clone(),
            lib: c.libdir.clone(),
            doc: c.docdir.clone(),
        };
        let (repo, created) = LocalRepo::open_or_create(layout)?;
        if created {
            crate::info!("creating repo: {}", repo.layout.topdir.display());
        }
        Ok(repo)
    }

    pub fn keystore(&self) -> Keystore {
        match &self.repo_dir {
            Some(d)
                if !self.cfg.keystore.is_absolute()
                    || self.cfg.keystore.starts_with(&self.cfg.topdir) =>
            {
                Keystore::new(&d.join("keystore"))
            }
            _ => Keystore::new(&self.cfg.keystore),
        }
    }

    pub fn client(&self, proxy: Option<&str>) -> Result<Client, Fail> {
        let c = &self.cfg;
        let opts = ClientOptions {
            insecure: c.http_insecure,
            proxy: proxy.map(str::to_string).or_else(|| c.http_proxy.clone()),
            connect_timeout: Duration::from_secs(c.ctimeout.max(1)),
            read_timeout: Duration::from_secs(c.timeout.max(1)),
            download_timeout: Duration::from_secs(c.download_timeout.max(1)),
            retries: c.retries.max(1),
            user_agent: c.http_agent.clone(),
        };
        Ok(Client::new(opts, Some(self.keystore()))?)
    }
}

/// A command: its names, options, whether options stop at the first argument, help, handler.
pub struct Command {
    pub name: &'static str,
    pub opts: &'static [Opt],
    pub help: &'static str,
    pub run: fn(&Ctx, args::Parsed) -> CmdResult,
}

const GENERAL: &[Opt] = &[
    flag(&["-D", "--debug"]),
    flag(&["-q", "--quiet"]),
    flag(&["--insecure"]),
    flag(&["--allow-root"]),
    flag(&["-h", "--help"]),
    flag(&["-V", "--version"]),
    val(&["--repo"]),
    val(&["--config"]),
];

/// Commands of later issues: known names that say so instead of "invalid command".
const LATER: &[&str] = &[];

fn commands() -> Vec<Command> {
    let mut v = image::commands();
    v.extend(container::commands());
    v.extend(misc::commands());
    v.extend(archive::commands());
    v.extend(run::commands());
    v
}

pub fn help_text() -> String {
    let mut s = String::from(
        "Syntax:\n  udocker [general_options] <command> [command_options] <command_args>\n\n\
General options:\n  -D, --debug        debug output\n  -q, --quiet        only errors and results\n  \
--insecure         do not verify TLS certificates (and allow plain http)\n  --allow-root       allow running as root\n  \
--repo=DIR         use the repository in DIR (see mkrepo)\n  --config=FILE      read configuration from FILE\n  \
-h, --help         this help\n  -V, --version      version\n\nCommands:\n",
    );
    for c in commands() {
        let first = c.help.lines().next().unwrap_or("");
        s.push_str(&format!("  {:<10} {}\n", c.name, first));
    }
    s.push_str("\n  udocker COMMAND --help   shows a command's options\n");
    s
}

/// Entry point: returns the process exit status.
pub fn main(argv: Vec<String>) -> u8 {
    // `udocker proot ARGS` runs the tracer with PRoot's own command line (no repository involved).
    if argv.first().map(String::as_str) == Some("proot") {
        return proot::main(&argv[1..]);
    }
    // `udocker patchelf ARGS` runs the ELF patcher with patchelf's command line.
    if argv.first().map(String::as_str) == Some("patchelf") {
        return elfpatch::cli::main(&argv[1..]);
    }
    // General options are every item before the first one starting with a letter (the command).
    let mut i = 0;
    let mut general = Vec::new();
    while i < argv.len()
        && !argv[i]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
    {
        general.push(argv[i].clone());
        // `--repo DIR`: the directory may start with a letter.
        if matches!(argv[i].as_str(), "--repo" | "--config") && i + 1 < argv.len() {
            i += 1;
            general.push(argv[i].clone());
        }
        i += 1;
    }
    let g = match args::parse(&general, GENERAL, false) {
        Ok(g) if g.args.is_empty() => g,
        Ok(g) => {
            crate::error!("syntax error at: {}", g.args[0]);
            return 1;
        }
        Err(e) => {
            crate::error!("{e}");
            return 1;
        }
    };
    let cfg_file = g.get("--config").map(PathBuf::from);
    let env = |k: &str| std::env::var(k).ok();
    let mut cfg = match Config::load(cfg_file.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            crate::error!("{e}");
            return 1;
        }
    };
    msg::set_level(cfg.verbose_level);
    if g.has("-q") {
        msg::set_level(msg::MSG);
    }
    if g.has("-D") {
        msg::set_level(msg::DBG);
    }
    if g.has("--insecure") {
        cfg.http_insecure = true;
    }
    if g.has("-V") {
        return misc::print_version();
    }
    let cmd_name = argv.get(i).cloned();
    if g.has("-h") || cmd_name.is_none() {
        print!("{}", help_text());
        return 0;
    }
    let cmd_name = cmd_name.expect("checked above");
    let rest = &argv[i + 1..];
    if nix::unistd::geteuid().is_root()
        && !g.has("--allow-root")
        && !matches!(cmd_name.as_str(), "help" | "version")
    {
        crate::error!("do not run as root !");
        return 1;
    }
    let Some(cmd) = commands().into_iter().find(|c| c.name == cmd_name) else {
        if LATER.contains(&cmd_name.as_str()) {
            crate::error!("command {cmd_name} is not available in this version yet");
        } else {
            crate::error!("invalid command: {cmd_name}");
        }
        return 1;
    };
    if rest.iter().any(|a| a == "--help" || a == "-h")
        && !cmd.opts.iter().any(|o| o.names.contains(&"-h"))
    {
        print!("{}", cmd.help);
        return 0;
    }
    // `run C ls -l`: options end at the container, the rest is the container's command line.
    let parsed = match args::parse(rest, cmd.opts, cmd.name == "run") {
        Ok(p) => p,
        Err(e) => {
            crate::error!("{e}");
            return 1;
        }
    };
    let ctx = Ctx {
        cfg,
        repo_dir: g.get("--repo").map(PathBuf::from),
    };
    if ctx
        .repo_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        crate::error!("--repo needs a directory");
        return 1;
    }
    match (cmd.run)(&ctx, parsed) {
        Ok(code) => code,
        Err(f) => {
            crate::error!("{}", f.msg);
            f.code
        }
    }
}

/// Exactly `n` arguments, else a usage error naming the command.
pub fn want_args(p: &args::Parsed, min: usize, max: usize, usage: &str) -> Result<(), Fail> {
    if p.args.len() < min || p.args.len() > max {
        return Err(Fail::new(format!("usage: udocker {usage}")));
    }
    Ok(())
}

pub fn warn_ignored(p: &args::Parsed, keys: &[&str]) {
    for k in keys {
        if p.has(k) {
            warn!("option {k} has no effect");
        }
    }
}
