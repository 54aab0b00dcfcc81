//! Commands about the tool itself and the registry account: help, version, showconf, install,
//! mkrepo, search, login, logout.

use super::args::{flag, val, Opt, Parsed};
use super::{want_args, CmdResult, Command, Ctx, Fail};
use crate::reference::Reference;
use crate::registry::{endpoint_for, normalize_registry_url};
use crate::repo::keystore::Credentials;
use crate::repo::LocalRepo;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

pub fn commands() -> Vec<Command> {
    vec![
        Command { name: "help", opts: &[], help: "show this help\n", run: |_, _| {
            print!("{}", super::help_text());
            Ok(0)
        } },
        Command { name: "version", opts: &[], help: "print the version\n", run: |_, _| Ok(print_version()) },
        Command { name: "showconf", opts: &[], help: "print the configuration\n", run: showconf },
        Command {
            name: "install",
            opts: { const O: &[Opt] = &[flag(&["--force"]), flag(&["--purge"])]; O },
            help: "nothing to install: every engine is built into this binary\n",
            run: install,
        },
        Command { name: "mkrepo", opts: &[], help: "create a new repository in a new directory\nusage: udocker mkrepo DIR\n", run: mkrepo },
        Command {
            name: "search",
            opts: { const O: &[Opt] = &[flag(&["-a", "--all"]), flag(&["--no-trunc"]), flag(&["--list-tags"]), val(&["--index"]), val(&["--registry"]), val(&["--httpproxy"])]; O },
            help: "search Docker Hub, or list an image's tags on any registry\n\
usage: udocker search [-a] [--no-trunc] [--index=URL] EXPRESSION\n       udocker search --list-tags [--registry=URL] IMAGE\n",
            run: search,
        },
        Command {
            name: "login",
            opts: { const O: &[Opt] = &[val(&["--username", "-u"]), val(&["--password", "-p"]), flag(&["--password-stdin"]), val(&["--registry"])]; O },
            help: "store credentials for a registry (keystore, mode 0600)\n\
usage: udocker login [--username=USER] [--password=PASS | --password-stdin] [--registry=URL]\n",
            run: login,
        },
        Command {
            name: "logout",
            opts: { const O: &[Opt] = &[flag(&["-a", "--all"]), val(&["--registry"])]; O },
            help: "forget credentials\nusage: udocker logout [-a] [--registry=URL]\n",
            run: logout,
        },
    ]
}

pub fn print_version() -> u8 {
    println!("version: {}", env!("CARGO_PKG_VERSION"));
    println!("udocker-rs: udocker 1.3 command line, engines built in");
    println!("tarball: none (nothing to download)");
    0
}

fn showconf(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 0, 0, "showconf")?;
    println!("{}", "-".repeat(60));
    for (k, v) in ctx.cfg.entries() {
        println!("{k} = {v}");
    }
    println!("{}", "-".repeat(60));
    Ok(0)
}

fn install(_ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 0, 0, "install [--force] [--purge]")?;
    crate::info!("every engine is built into this binary: nothing to download or install");
    Ok(0)
}

fn mkrepo(_ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "mkrepo DIR")?;
    let r = LocalRepo::make(Path::new(&p.args[0]))?;
    crate::info!("created repository {}", r.layout.topdir.display());
    Ok(0)
}

fn search(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 1, 1, "search [options] EXPRESSION")?;
    let client = ctx.client(p.get("--httpproxy"))?;
    if p.has("--list-tags") {
        let r = Reference::parse(&p.args[0])?;
        let reg = p
            .get("--registry")
            .map(str::to_string)
            .or_else(|| ctx.cfg.registry.clone());
        let mut ep = endpoint_for(
            &r,
            reg.as_deref(),
            &ctx.cfg.dockerio_registry_url,
            ctx.cfg.http_insecure,
        )
        .map_err(Fail::new)?;
        client.ping(&mut ep)?;
        for t in client.list_tags(&ep)? {
            println!("{t}");
        }
        return Ok(0);
    }
    let expr = &p.args[0];
    let index = p
        .get("--index")
        .map(str::to_string)
        .or_else(|| ctx.cfg.index.clone())
        .unwrap_or_else(|| ctx.cfg.dockerio_index_url.clone());
    let index = normalize_registry_url(&index).map_err(Fail::new)?;
    let q: String = expr
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let trunc = |s: &str, n: usize| {
        if p.has("--no-trunc") || s.chars().count() <= n {
            s.to_string()
        } else {
            format!("{}...", s.chars().take(n - 3).collect::<String>())
        }
    };
    println!(
        "{:<40} {:<8} {:<60} STARS",
        "NAME", "OFFICIAL", "DESCRIPTION"
    );
    let pages = if p.has("-a") { 10 } else { 1 };
    for page in 1..=pages {
        let v2 = client.get_json(&format!(
            "{index}/v2/search/repositories?query={q}&page_size=25&page={page}"
        ));
        let (results, name_key, desc_key, stars_key, off_key) = match v2 {
            Ok(v) => (
                v.get("results").cloned(),
                "repo_name",
                "short_description",
                "star_count",
                "is_official",
            ),
            Err(e) if page == 1 => match client.get_json(&format!("{index}/v1/search?q={q}")) {
                Ok(v) => (
                    v.get("results").cloned(),
                    "name",
                    "description",
                    "star_count",
                    "is_official",
                ),
                Err(_) => return Err(e.into()),
            },
            Err(_) => break,
        };
        let list = results
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default();
        if list.is_empty() {
            break;
        }
        for r in &list {
            let s = |k: &str| {
                r.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .replace(['\n', '\r', '\t'], " ")
            };
            let official = if r.get(off_key).and_then(|v| v.as_bool()).unwrap_or(false) {
                "[OK]"
            } else {
                "----"
            };
            let stars = r.get(stars_key).and_then(|v| v.as_u64()).unwrap_or(0);
            println!(
                "{:<40} {:<8} {:<60} {}",
                s(name_key),
                official,
                trunc(&s(desc_key), 60),
                stars
            );
        }
    }
    Ok(0)
}

fn registry_url(ctx: &Ctx, p: &Parsed) -> Result<String, Fail> {
    match p
        .get("--registry")
        .map(str::to_string)
        .or_else(|| ctx.cfg.registry.clone())
    {
        Some(r) => normalize_registry_url(&r).map_err(Fail::new),
        None => Ok(ctx.cfg.dockerio_registry_url.clone()),
    }
}

fn prompt(label: &str, secret: bool) -> Result<String, Fail> {
    let stdin = io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{label}");
        let _ = io::stderr().flush();
    }
    let old = if secret && tty {
        nix::sys::termios::tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(o) = &old {
        let mut t = o.clone();
        t.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
    }
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(o) = &old {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, o);
        eprintln!();
    }
    r.map_err(|e| Fail::new(format!("reading {label}: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn login(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(
        &p,
        0,
        1,
        "login [--username=USER] [--password=PASS|--password-stdin] [--registry=URL]",
    )?;
    let url = match p.args.first() {
        Some(r) => normalize_registry_url(r).map_err(Fail::new)?,
        None => registry_url(ctx, &p)?,
    };
    let username = match p.get("--username") {
        Some(u) => u.to_string(),
        None => prompt("username: ", false)?,
    };
    let password = if p.has("--password-stdin") {
        let mut s = String::new();
        io::stdin()
            .lock()
            .read_line(&mut s)
            .map_err(|e| Fail::new(format!("reading password: {e}")))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match p.get("--password") {
            Some(pw) => pw.to_string(),
            None => prompt("password: ", true)?,
        }
    };
    if username.is_empty() || username.contains(':') {
        return Err(Fail::new("invalid username"));
    }
    if password.is_empty() {
        return Err(Fail::new("empty password"));
    }
    if password.chars().any(|c| c.is_ascii_alphabetic())
        && !password.chars().any(|c| c.is_ascii_lowercase())
    {
        crate::warn!("password in upper case: is Caps Lock on?");
    }
    ctx.keystore()
        .put(&url, &Credentials { username, password })?;
    crate::info!("credentials stored for {url}");
    Ok(0)
}

fn logout(ctx: &Ctx, p: Parsed) -> CmdResult {
    want_args(&p, 0, 1, "logout [-a] [--registry=URL]")?;
    let ks = ctx.keystore();
    if p.has("-a") {
        ks.erase()?;
        crate::info!("all credentials erased");
        return Ok(0);
    }
    let url = match p.args.first() {
        Some(r) => normalize_registry_url(r).map_err(Fail::new)?,
        None => registry_url(ctx, &p)?,
    };
    if !ks.delete(&url)? {
        crate::warn!("no credentials stored for {url}");
    }
    Ok(0)
}
