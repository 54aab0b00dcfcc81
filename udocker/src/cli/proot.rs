//! `udocker proot …` (also reached when the binary is called `proot`): the tracer with PRoot's
//! command line, so PRoot's test suite and its users' habits carry over.
//! Options (PRoot 5 `--help`): -r/--rootfs, -b/-m/--bind/--mount HOST[:GUEST], -w/--pwd/--cwd,
//! -0/--root-id, -i/--change-id UID:GID, -k/--kernel-release, -q/--qemu, --kill-on-exit,
//! -v/--verbose, -R (rootfs with the recommended host bindings), -S (-R plus -0), and
//! PRoot-udocker's -p/--port GUEST:HOST and -n/--netcoop. PROOT_NO_SECCOMP=1 forces P2.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

fn usage() -> String {
    "usage: proot [-r ROOT] [-b HOST[:GUEST]]... [-w CWD] [-0] [-i UID:GID] [-k RELEASE] [-q QEMU] [-p GUEST_PORT:HOST_PORT]... [-n] [--kill-on-exit] [-v N] [COMMAND [ARGS...]]".into()
}

/// Bindings PRoot's -R adds (those that exist on the host).
const RECOMMENDED: &[&str] = &[
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/resolv.conf",
    "/dev",
    "/sys",
    "/proc",
    "/tmp",
    "/run",
];

fn binding(spec: &str) -> Result<Option<tracer::Binding>, String> {
    let (h, g) = match spec.split_once(':') {
        Some((h, g)) => (h, g),
        None => (spec, ""),
    };
    // `HOST:GUEST!`: don't dereference GUEST if it is a symlink.
    let (g, nofollow) = match g.strip_suffix('!') {
        Some(g) => (g, true),
        None => (g, false),
    };
    let host = match std::fs::canonicalize(h) {
        Ok(p) => p,
        Err(_) => {
            eprintln!("proot warning: can't sanitize binding \"{h}\": no such file or directory");
            return Ok(None);
        }
    };
    // `-b HOST` binds at the same (canonical) path; a relative guest path is refused.
    let g = if g.is_empty() {
        host.to_string_lossy().into_owned()
    } else {
        g.to_string()
    };
    if !g.starts_with('/') {
        return Err(format!("binding {spec}: the guest path must be absolute"));
    }
    Ok(Some(tracer::Binding {
        host: host.into_os_string().into_vec(),
        guest: g.as_bytes().to_vec(),
        readonly: false,
        nofollow,
    }))
}

/// `-q 'QEMU ARGS…'`: the command line is split at spaces (PRoot's rule: no quoting); QEMU is
/// a host program, found as a shell would (a name with a `/` from the current directory, else in
/// $PATH), and named by its absolute host path; a symlink as last component is kept, so a
/// multi-call binary still sees its own name.
fn qemu_config(value: &str) -> Result<tracer::Qemu, String> {
    let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
    let Some(first) = words.first() else {
        return Err("-q needs a command".into());
    };
    let usable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file())
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let found = if first.contains('/') {
        Some(cwd.join(first)).filter(|p| usable(p))
    } else {
        std::env::var_os("PATH")
            .unwrap_or_default()
            .to_string_lossy()
            .split(':')
            .map(|d| {
                if d.is_empty() {
                    cwd.clone()
                } else {
                    cwd.join(d)
                }
            })
            .map(|d| d.join(first))
            .find(|p| usable(p))
    };
    let Some(found) = found else {
        return Err(format!("-q: can't find executable \"{first}\""));
    };
    // Absolute and free of `.`/`..`, the last component as it is.
    let abs = tracer::path::normalize(found.as_os_str().as_bytes());
    let mut argv = vec![abs];
    argv.extend(words[1..].iter().map(|w| w.as_bytes().to_vec()));
    Ok(tracer::Qemu {
        argv,
        force_foreign: std::env::var_os("PROOT_FORCE_FOREIGN_BINARY").is_some(),
        host_library_path: std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| v.into_vec())
            .unwrap_or_else(|| b"/".to_vec()),
    })
}

pub fn main(args: &[String]) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("proot error: {e}");
            1
        }
    }
}

fn run(args: &[String]) -> Result<u8, String> {
    let mut root: Option<PathBuf> = None;
    let mut binds: Vec<tracer::Binding> = Vec::new();
    let mut cwd: Option<String> = None;
    let mut fake: Option<(u32, u32)> = None;
    let mut kernel: Option<String> = None;
    let mut kill_on_exit = false;
    let mut verbose = 0u8;
    let mut recommended = false;
    let mut ports: Vec<tracer::net::PortMap> = Vec::new();
    let mut netcoop = false;
    let mut qemu: Option<String> = None;
    let mut i = 0;
    let value = |i: &mut usize, a: &str| -> Result<String, String> {
        if let Some((_, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
            return Ok(v.to_string());
        }
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("option {a} needs a value\n{}", usage()))
    };
    while i < args.len() {
        let a = args[i].as_str();
        if !a.starts_with('-') || a == "-" {
            break;
        }
        let name = a.split('=').next().unwrap_or(a);
        match name {
            "--" => {
                i += 1;
                break;
            }
            "-r" | "--rootfs" => root = Some(PathBuf::from(value(&mut i, a)?)),
            "-R" | "-S" => {
                root = Some(PathBuf::from(value(&mut i, a)?));
                recommended = true;
                if name == "-S" {
                    fake = Some((0, 0));
                }
            }
            "-b" | "-m" | "--bind" | "--mount" => {
                if let Some(b) = binding(&value(&mut i, a)?)? {
                    // A binding onto the guest's `/` is the rootfs (PRoot's -r is exactly
                    // that): the last of the -r and `-b HOST:/` options decides.
                    if tracer::path::normalize(&b.guest) == b"/" {
                        root = Some(PathBuf::from(std::ffi::OsString::from_vec(b.host)));
                    } else {
                        binds.push(b);
                    }
                }
            }
            "-w" | "--pwd" | "--cwd" => cwd = Some(value(&mut i, a)?),
            "-0" | "--root-id" => fake = Some((0, 0)),
            "-i" | "--change-id" => {
                let v = value(&mut i, a)?;
                let (u, g) = v
                    .split_once(':')
                    .ok_or_else(|| format!("-i needs UID:GID, got {v}"))?;
                fake = Some((
                    u.parse().map_err(|_| format!("bad uid {u}"))?,
                    g.parse().map_err(|_| format!("bad gid {g}"))?,
                ));
            }
            "-k" | "--kernel-release" => kernel = Some(value(&mut i, a)?),
            // PRoot-udocker's port mapping: `-p GUEST:HOST` (repeatable).
            "-p" | "--port" => {
                let v = value(&mut i, a)?;
                ports.push(
                    tracer::net::parse(&v)
                        .ok_or_else(|| format!("-p needs GUEST_PORT:HOST_PORT, got {v}"))?,
                );
            }
            // PRoot-udocker's "network cooperation" (-n): ports the guest binds are bound
            // wherever the kernel finds a free one, so guests can share port numbers.
            "-n" | "--netcoop" => netcoop = true,
            "--kill-on-exit" => kill_on_exit = true,
            "-v" | "--verbose" => {
                // PRoot takes any integer; negative means quieter than the default.
                let v: i32 = value(&mut i, a)?
                    .parse()
                    .map_err(|_| "bad verbose level".to_string())?;
                verbose = v.clamp(0, 9) as u8;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(0);
            }
            "-V" | "--version" => {
                println!(
                    "udocker-rs tracer {} (PRoot-compatible command line)",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(0);
            }
            "-q" | "--qemu" => qemu = Some(value(&mut i, a)?),
            _ => return Err(format!("unknown option {a}\n{}", usage())),
        }
        i += 1;
    }
    if recommended {
        for r in RECOMMENDED {
            if Path::new(r).exists() {
                if let Some(b) = binding(r)? {
                    binds.push(b);
                }
            }
        }
    }
    let root = root.unwrap_or_else(|| PathBuf::from("/"));
    let root_abs =
        std::fs::canonicalize(&root).map_err(|e| format!("rootfs {}: {e}", root.display()))?;
    let tr = tracer::path::Translator::new(root_abs.as_os_str().as_bytes(), binds.clone());
    // PRoot's default working directory is the current one when the guest can see it, else /;
    // a relative -w starts from there.
    // The host's current directory: as the guest sees it when it is inside the guest, else the
    // same path in the guest when that exists there (PRoot's rule), else /.
    let host_cwd = std::env::current_dir().ok();
    let here = host_cwd
        .as_ref()
        .and_then(|d| tr.to_guest(d.as_os_str().as_bytes()))
        .or_else(|| {
            let d = host_cwd.as_ref()?.as_os_str().as_bytes().to_vec();
            let (_, h) = tr.resolve(&tracer::path::RealFs, &d, true).ok()?;
            Path::new(std::ffi::OsStr::from_bytes(&h))
                .is_dir()
                .then_some(d)
        })
        .unwrap_or_else(|| b"/".to_vec());
    let mut cwd = match cwd {
        None => here.clone(),
        Some(w) if w.starts_with('/') => w.into_bytes(),
        Some(w) => {
            let mut p = here.clone();
            p.push(b'/');
            p.extend_from_slice(w.as_bytes());
            tracer::path::normalize(&p)
        }
    };
    let is_dir = |g: &[u8]| {
        tr.resolve(&tracer::path::RealFs, g, true)
            .is_ok_and(|(_, h)| Path::new(std::ffi::OsStr::from_bytes(&h)).is_dir())
    };
    if !is_dir(&cwd) {
        eprintln!(
            "proot warning: can't chdir(\"{}\") in the guest rootfs, using \"/\"",
            String::from_utf8_lossy(&cwd)
        );
        cwd = b"/".to_vec();
    }
    let mut argv: Vec<Vec<u8>> = args[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
    if argv.is_empty() {
        argv.push(b"/bin/sh".to_vec());
    }
    let mut envp: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| k != "PWD")
        .map(|(k, v)| {
            let mut e = k.into_vec();
            e.push(b'=');
            e.extend(v.into_vec());
            e
        })
        .collect();
    let mut pwd = b"PWD=".to_vec();
    pwd.extend_from_slice(&cwd);
    envp.push(pwd);
    // A bare command name is looked up in $PATH inside the guest, as a shell would; argv[0]
    // keeps what was typed.
    let program = if argv[0].contains(&b'/') {
        argv[0].clone()
    } else {
        // PRoot looks the name up in its own $PATH only: with PATH unset or empty nothing is
        // found (no execvp-style default list).
        let path = std::env::var("PATH").unwrap_or_default();
        let found = path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .find_map(|d| {
                let mut g = d.as_bytes().to_vec();
                g.push(b'/');
                g.extend_from_slice(&argv[0]);
                let (_, h) = tr.resolve(&tracer::path::RealFs, &g, true).ok()?;
                let hp = Path::new(std::ffi::OsStr::from_bytes(&h));
                (hp.is_file() && nix::unistd::access(hp, nix::unistd::AccessFlags::X_OK).is_ok())
                    .then_some(g)
            });
        match found {
            Some(g) => g,
            None => {
                return Err(format!(
                    "can't find executable \"{}\" in the guest's PATH",
                    String::from_utf8_lossy(&argv[0])
                ))
            }
        }
    };
    let qemu = match qemu {
        Some(q) => Some(qemu_config(&q)?),
        None => None,
    };
    let mode = if std::env::var_os("PROOT_NO_SECCOMP").is_some_and(|v| !v.is_empty() && v != "0") {
        tracer::Mode::P2
    } else {
        tracer::Mode::Auto
    };
    let cfg = tracer::Config {
        root: root_abs,
        bindings: binds,
        cwd,
        fake_id: fake,
        kernel_release: kernel,
        kill_on_exit,
        mode,
        // As `run`'s P modes: off inside batch/MPI jobs (the job's CPU set must reach the
        // program; this also serves R2/R3, where this command is the tracer in the container).
        pin_cpu: match std::env::var_os("UDOCKER_TRACER_PIN") {
            Some(v) => v != "0",
            None => !crate::engine::Launch::current().job,
        },
        glue: std::env::var_os("PROOT_DONT_POLLUTE_ROOTFS")
            .is_none_or(|v| v.is_empty() || v == "0"),
        // The first process's status, as a shell reports it (PRoot reports the last normal
        // exit; tests/tracer.rs `exit_status_propagates` keeps ours).
        last_exit_status: false,
        ports,
        netcoop,
        verbose,
        qemu,
    };
    let out =
        tracer::run_program_outcome(&cfg, &program, &argv, &envp).map_err(|e| e.to_string())?;
    if let Some((path, errno)) = &out.start_error {
        // PRoot's words for a program it could not start (strerror(3)'s text).
        let text = std::io::Error::from_raw_os_error(*errno).to_string();
        eprintln!(
            "proot error: execve(\"{}\"): {}",
            String::from_utf8_lossy(path),
            text.split(" (os error").next().unwrap_or(&text)
        );
    }
    Ok(out.status.clamp(0, 255) as u8)
}
