//! The container's environment, layered as docker does (`spec/udocker.md` §1, "Environment
//! precedence"), later layers winning:
//! 1. from the host only `TERM` and the MPI/batch variables (`OMPI_*`, `PMIX_*`, `PMI_*`,
//!    `SLURM_*`); everything but `PATH` with `--hostenv`;
//! 2. defaults: `HOME` (the user's), `PATH` (docker's default), `SHLVL=0`, `PS1`;
//! 3. the image's `Env`;
//! 4. `--env-file` lines;
//! 5. `-e`;
//! 6. forced: `USER`, `LOGNAME`, `container_uuid`, `container_root`, `container_execmode`,
//!    `container_names`, `container_ruser`.
//!
//! Upstream lets the image's Env win over `--env-file`; docker (and this) the other way round.
//! The host's `PATH` never leaks in (it names host directories): `-e PATH` passes it explicitly.

use std::collections::BTreeMap;

/// docker's default `PATH` (moby `oci/defaults.go` DefaultPathEnv).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host variables that always pass (upstream's `valid_host_env` less `PATH`).
const HOST_PASS: &[&str] = &["TERM"];
/// Host variables that always pass by prefix: what MPI launchers and batch systems tell each
/// rank or job step (its rank, the PMIx server's address, the job's id and limits). A rank
/// started by `srun --mpi=pmix udocker run C prog` cannot start without them, and the user
/// should not need `--hostenv` for that. (`OPAL_*` stays out: `OPAL_PREFIX` names the host's
/// OpenMPI installation, not the container's.)
const HOST_PASS_PREFIXES: &[&str] = &["OMPI_", "PMIX_", "PMI_", "SLURM_"];
/// Host variables that never pass, even with `--hostenv` (upstream's `invalid_host_env`; the
/// `container_*` ones belong to an outer container).
const HOST_BLOCK: &[&str] = &["VTE_VERSION", "PATH", "PWD", "OLDPWD"];

/// Inputs, all already read from their files.
#[derive(Debug, Default)]
pub struct EnvInput<'a> {
    pub host: &'a [(String, String)],
    pub hostenv: bool,
    /// The image's `Env` (`K=V` items).
    pub image: &'a [String],
    /// Lines of the `--env-file`s, in order.
    pub env_file_lines: Vec<String>,
    /// `-e` items, in order.
    pub cli: &'a [String],
    pub home: &'a str,
    pub user: &'a str,
    pub container_id: &'a str,
    pub container_root: &'a str,
    pub exec_mode: &'a str,
    pub names: &'a [String],
    pub ruser: &'a str,
}

/// A valid variable name: not empty, no `=`, no whitespace or NUL, not starting with a digit
/// (upstream ignores such keys; docker refuses whitespace).
pub fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && !k.contains(|c: char| c == '=' || c == '\0' || c.is_whitespace())
}

/// `K=V` → `(K, V)`; `K` alone takes the host's value (absent on the host → dropped).
/// Invalid keys are reported in `warnings`.
fn assignment(
    item: &str,
    host: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Option<(String, String)> {
    let (k, v) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    if !valid_key(k) || v.is_some_and(|v| v.contains('\0')) {
        warnings.push(format!("invalid environment variable ignored: {item:?}"));
        return None;
    }
    let v = match v {
        Some(v) => v.to_string(),
        None => host.iter().find(|(hk, _)| hk == k)?.1.clone(),
    };
    Some((k.to_string(), v))
}

/// `--env-file` content as docker reads it: one `K=V` (or `K`) per line, blank lines and lines
/// starting with `#` skipped, no quote processing.
pub fn env_file_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Build the environment. Returns it (sorted by name) and warnings for ignored items.
pub fn build(inp: &EnvInput) -> (BTreeMap<String, String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut env = BTreeMap::new();
    for (k, v) in inp.host {
        let pass = if inp.hostenv {
            !HOST_BLOCK.contains(&k.as_str()) && !k.starts_with("container_")
        } else {
            HOST_PASS.contains(&k.as_str()) || HOST_PASS_PREFIXES.iter().any(|p| k.starts_with(p))
        };
        if pass && valid_key(k) && !v.contains('\0') {
            env.insert(k.clone(), v.clone());
        }
    }
    env.insert("HOME".into(), inp.home.to_string());
    env.insert("PATH".into(), DEFAULT_PATH.to_string());
    env.insert("SHLVL".into(), "0".into());
    let short: String = inp.container_id.chars().take(8).collect();
    env.insert(
        "PS1".into(),
        if short.is_empty() {
            "\\$ ".to_string()
        } else {
            format!("{short}\\$ ")
        },
    );
    let layers: [&mut dyn Iterator<Item = &str>; 3] = [
        &mut inp.image.iter().map(String::as_str),
        &mut inp.env_file_lines.iter().map(String::as_str),
        &mut inp.cli.iter().map(String::as_str),
    ];
    for layer in layers {
        for item in layer {
            if let Some((k, v)) = assignment(item, inp.host, &mut warnings) {
                env.insert(k, v);
            }
        }
    }
    for (k, v) in [
        ("USER", inp.user.to_string()),
        ("LOGNAME", inp.user.to_string()),
        ("container_uuid", inp.container_id.to_string()),
        ("container_root", inp.container_root.to_string()),
        ("container_execmode", inp.exec_mode.to_string()),
        ("container_names", inp.names.join(",")),
        ("container_ruser", inp.ruser.to_string()),
    ] {
        env.insert(k.into(), v);
    }
    (env, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn base<'a>(
        host: &'a [(String, String)],
        image: &'a [String],
        cli: &'a [String],
    ) -> EnvInput<'a> {
        EnvInput {
            host,
            image,
            cli,
            home: "/root",
            user: "root",
            container_id: "0123456789abcdef",
            container_root: "/r/ROOT",
            exec_mode: "P1",
            ruser: "me",
            ..Default::default()
        }
    }

    #[test]
    fn precedence_cli_over_file_over_image() {
        let host = kv(&[
            ("TERM", "xterm"),
            ("PATH", "/host/bin"),
            ("SECRET", "s"),
            ("HV", "hostval"),
        ]);
        let image = s(&["A=image", "B=image", "C=image", "PATH=/img/bin"]);
        let cli = s(&["A=cli", "HV", "NOPE", "1BAD=x", "has space=1", "EMPTY="]);
        let mut inp = base(&host, &image, &cli);
        inp.env_file_lines = env_file_lines("# comment\n\nA=file\n B=file\nD=file with 'quotes'\n");
        let (env, warnings) = build(&inp);
        assert_eq!(env["A"], "cli");
        assert_eq!(env["B"], "file");
        assert_eq!(env["C"], "image");
        assert_eq!(env["D"], "file with 'quotes'");
        assert_eq!(env["HV"], "hostval", "-e K takes the host's value");
        assert!(
            !env.contains_key("NOPE"),
            "-e K absent on the host is dropped"
        );
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env["PATH"], "/img/bin");
        assert_eq!(env["TERM"], "xterm");
        assert!(!env.contains_key("SECRET"), "host variables stay out");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(env["HOME"], "/root");
        assert_eq!(env["PS1"], "01234567\\$ ");
        assert_eq!(env["SHLVL"], "0");
        assert_eq!(env["container_uuid"], "0123456789abcdef");
        assert_eq!(env["container_ruser"], "me");
    }

    #[test]
    fn defaults_and_forced() {
        let host = kv(&[
            ("PATH", "/host/bin"),
            ("HOME", "/home/me"),
            ("X", "1"),
            ("container_uuid", "outer"),
        ]);
        let cli = s(&["USER=bob", "HOME=/elsewhere", "container_root=/x"]);
        let mut inp = base(&host, &[], &cli);
        let (env, _) = build(&inp);
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert_eq!(env["USER"], "root", "USER is forced");
        assert_eq!(env["HOME"], "/elsewhere", "HOME can be set explicitly");
        assert_eq!(env["container_root"], "/r/ROOT");
        assert!(!env.contains_key("X"));
        inp.hostenv = true;
        inp.cli = &[];
        let (env, _) = build(&inp);
        assert_eq!(env["X"], "1");
        assert_eq!(
            env["PATH"], DEFAULT_PATH,
            "the host PATH never passes implicitly"
        );
        assert_eq!(env["HOME"], "/root", "the user's home, not the host's");
        assert_eq!(env["container_uuid"], "0123456789abcdef");
    }
}
