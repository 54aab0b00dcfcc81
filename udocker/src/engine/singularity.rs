//! S1: the plan run by the host's Apptainer or Singularity (`spec/udocker.md` §5
//! `SingularityEngine`), with upstream's command line:
//!
//! `apptainer [--debug -v|--silent|--quiet] exec -w [--fakeroot] [--pwd CWD] -B H:C ...
//!  [--home ROOT/root:/root] [-B ROOT/tmp:/tmp] [-B ROOT/var/tmp:/var/tmp] ROOT CMD ARGS`
//!
//! and the container's environment as `APPTAINERENV_K=V` (`SINGULARITYENV_K=V` for singularity)
//! added to ours. The executable: `UDOCKER_USE_SINGULARITY_EXECUTABLE` (name or path), else
//! `apptainer`, else `singularity` from PATH. `--fakeroot` when the user asked for root, the
//! runtime's `exec --help` offers it and the user has /etc/subuid and /etc/subgid entries;
//! other users are not switched to (a warning), the command runs as the host user.
//! Bound: the plan's volumes except /dev /proc /sys (the runtime's own) and the synthesized
//! passwd/group (Apptainer writes its own). Neither runtime is packaged for the development
//! machines: the tests check the command line and the environment built here.

use super::runc::in_path;
use super::{EngineError, Origin, Plan};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Singularity {
    pub path: PathBuf,
    /// Apptainer (APPTAINERENV_) rather than Singularity (SINGULARITYENV_).
    pub apptainer: bool,
}

pub fn find(override_: Option<&str>, path_env: &str) -> Result<Singularity, EngineError> {
    let mk = |p: PathBuf| Singularity {
        apptainer: p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("apptainer")),
        path: p,
    };
    if let Some(o) = override_.filter(|o| !o.is_empty()) {
        let p = if o.contains('/') {
            Some(PathBuf::from(o)).filter(|p| p.is_file())
        } else {
            in_path(o, path_env)
        };
        return p.map(mk).ok_or_else(|| {
            EngineError::Unavailable(format!(
                "UDOCKER_USE_SINGULARITY_EXECUTABLE={o}: no such executable"
            ))
        });
    }
    ["apptainer", "singularity"]
        .iter()
        .find_map(|n| in_path(n, path_env))
        .map(mk)
        .ok_or_else(|| {
            EngineError::Unavailable(
                "no apptainer or singularity found in PATH (execution mode S1)".into(),
            )
        })
}

/// The command line (after the executable) and the variables to add to the environment.
/// `verbose`: 0 quiet (`--silent`), 1 normal (`--quiet`), 2 debug (`--debug -v`).
pub fn command(
    s: &Singularity,
    plan: &Plan,
    fakeroot: bool,
    verbose: u8,
) -> (Vec<String>, Vec<(String, String)>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut a: Vec<String> = match verbose {
        0 => vec!["--silent".into()],
        1 => vec!["--quiet".into()],
        _ => vec!["--debug".into(), "-v".into()],
    };
    a.extend(["exec".into(), "-w".into()]);
    let root_user = plan.user.is_root();
    if root_user && fakeroot {
        a.push("--fakeroot".into());
    } else if !root_user {
        warnings.push(format!(
            "execution mode S1 runs as the host user, not as {}",
            plan.user.entry.name
        ));
    }
    a.extend(["--pwd".into(), plan.cwd.clone()]);
    for v in &plan.volumes {
        if matches!(v.guest.as_str(), "/dev" | "/proc" | "/sys") || v.origin == Origin::Auth {
            continue;
        }
        let mut b = format!("{}:{}", v.host.display(), v.guest);
        if v.readonly {
            b.push_str(":ro");
        }
        a.extend(["-B".into(), b]);
    }
    let root = plan.root.to_string_lossy();
    if root_user {
        a.extend(["--home".into(), format!("{root}/root:/root")]);
    }
    let bound = |g: &str| plan.volumes.iter().any(|v| v.guest == g);
    for d in ["/tmp", "/var/tmp"] {
        if !bound(d) {
            a.extend(["-B".into(), format!("{root}{d}:{d}")]);
        }
    }
    a.push(root.into_owned());
    a.extend(plan.argv.iter().cloned());
    let prefix = if s.apptainer {
        "APPTAINERENV_"
    } else {
        "SINGULARITYENV_"
    };
    let env = plan
        .env
        .iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
        .collect();
    (a, env, warnings)
}

/// Whether `user` has a line in subid file `f` (for --fakeroot).
fn has_subid(f: &Path, user: &str, uid: u32) -> bool {
    fs::read_to_string(f).is_ok_and(|t| {
        t.lines().any(|l| {
            let n = l.split(':').next().unwrap_or_default();
            n == user || n == uid.to_string()
        })
    })
}

pub fn execute(plan: &Plan, verbose: u8) -> Result<i32, EngineError> {
    let path_env = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let s = find(
        std::env::var("UDOCKER_USE_SINGULARITY_EXECUTABLE")
            .ok()
            .as_deref(),
        &path_env,
    )?;
    // Directories the runtime mounts over must exist in ROOT.
    for d in ["var/tmp", "tmp", "proc", "dev", "sys", "root"] {
        let _ = fs::create_dir_all(plan.root.join(d));
    }
    let fakeroot = plan.user.is_root() && {
        let uid = nix::unistd::getuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let help = Command::new(&s.path)
            .args(["exec", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--fakeroot"))
            .unwrap_or(false);
        help && has_subid(Path::new("/etc/subuid"), &name, uid.as_raw())
            && has_subid(Path::new("/etc/subgid"), &name, uid.as_raw())
    };
    let (args, env, warnings) = command(&s, plan, fakeroot, verbose);
    for w in warnings {
        crate::warn!("{w}");
    }
    if let Some(cpus) = &plan.cpus {
        super::ptrace::set_affinity(cpus)?;
    }
    let status = Command::new(&s.path)
        .args(&args)
        .envs(env)
        .status()
        .map_err(|e| EngineError::Runtime(format!("starting {}: {e}", s.path.display())))?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    })
}
