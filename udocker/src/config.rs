//! Configuration: defaults, then `udocker.conf` files, then `UDOCKER_*` variables, as udocker 1.3
//! (`spec/udocker.md` §3). Files are INI with a `[DEFAULT]` section of `key = value` lines.
//! Differences from upstream, on purpose: `<topdir>/udocker.conf` is read when `UDOCKER_DIR` moves
//! the top directory (upstream reads it too late to matter), `u.conf` in the current directory is
//! not read implicitly, and the keystore lives in the top directory it belongs to.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Config {
    pub verbose_level: u8,
    pub topdir: PathBuf,
    pub bindir: PathBuf,
    pub libdir: PathBuf,
    pub docdir: PathBuf,
    pub reposdir: PathBuf,
    pub layersdir: PathBuf,
    pub containersdir: PathBuf,
    pub keystore: PathBuf,
    pub tmpdir: PathBuf,
    pub http_insecure: bool,
    pub http_proxy: Option<String>,
    /// Seconds to wait for a connection to open.
    pub ctimeout: u64,
    /// Seconds without a byte before a request is abandoned (manifests, tokens).
    pub timeout: u64,
    /// Seconds a whole blob download may take.
    pub download_timeout: u64,
    pub http_agent: String,
    pub dockerio_index_url: String,
    pub dockerio_registry_url: String,
    /// `UDOCKER_REGISTRY` / `registry`: the registry for names that carry no registry host.
    pub registry: Option<String>,
    /// `UDOCKER_INDEX` / `index`: the search index.
    pub index: Option<String>,
    pub default_execution_mode: String,
    /// Attempts per request (transport errors, 5xx, 429).
    pub retries: u32,
    /// Blobs downloaded at the same time.
    pub parallel_downloads: usize,
    /// Every `key = value` read from files, for `showconf` and keys later issues will use.
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug)]
pub enum ConfigError {
    Read(PathBuf, std::io::Error),
    Syntax(PathBuf, usize, String),
    Value(String, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "reading config {}: {e}", p.display()),
            ConfigError::Syntax(p, n, l) => {
                write!(f, "config {} line {n}: cannot parse {l:?}", p.display())
            }
            ConfigError::Value(k, v) => write!(f, "config key {k}: invalid value {v:?}"),
        }
    }
}

impl std::error::Error for ConfigError {}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // HOME unset (cron, some batch systems): ask the password database.
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
                .unwrap_or_else(|| PathBuf::from("/tmp"))
        })
}

/// Parse upstream's INI subset: `[section]` headers (only DEFAULT is used), `key = value` or
/// `key: value`, `#`/`;` comments. Values may be quoted.
pub fn parse_ini(path: &Path, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut in_default = true;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if l.starts_with('[') && l.ends_with(']') {
            in_default = l[1..l.len() - 1].trim().eq_ignore_ascii_case("default");
            continue;
        }
        let Some(pos) = l.find(['=', ':']) else {
            return Err(ConfigError::Syntax(
                path.to_path_buf(),
                i + 1,
                line.to_string(),
            ));
        };
        if !in_default {
            continue;
        }
        let key = l[..pos].trim().to_ascii_lowercase();
        let mut val = l[pos + 1..].trim();
        if val.len() >= 2
            && ((val.starts_with('"') && val.ends_with('"'))
                || (val.starts_with('\'') && val.ends_with('\'')))
        {
            val = &val[1..val.len() - 1];
        }
        out.insert(key, val.to_string());
    }
    Ok(out)
}

fn parse_bool(k: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" | "none" | "" => Ok(false),
        _ => Err(ConfigError::Value(k.into(), v.into())),
    }
}

fn parse_num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::Value(k.into(), v.into()))
}

impl Config {
    /// Build the configuration. `config_file` is `--config=`; `env` is the process environment
    /// (passed in so tests can give their own).
    pub fn load(
        config_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let home = home();
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        let read =
            |p: &Path, must: bool, kv: &mut BTreeMap<String, String>| -> Result<(), ConfigError> {
                match fs::read_to_string(p) {
                    Ok(t) => {
                        kv.extend(parse_ini(p, &t)?);
                        Ok(())
                    }
                    Err(e) if !must && e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(ConfigError::Read(p.to_path_buf(), e)),
                }
            };
        read(Path::new("/etc/udocker.conf"), false, &mut kv)?;
        read(&home.join(".udocker/udocker.conf"), false, &mut kv)?;
        let env_topdir = env("UDOCKER_DIR")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        if let Some(t) = &env_topdir {
            read(&t.join("udocker.conf"), false, &mut kv)?;
        }
        if let Some(f) = config_file {
            read(f, true, &mut kv)?;
        }

        let topdir = env_topdir
            .or_else(|| kv.get("topdir").map(PathBuf::from))
            .unwrap_or_else(|| home.join(".udocker"));
        let sub = |key: &str, envname: &str, default: &str| -> PathBuf {
            env(envname)
                .filter(|s| !s.is_empty())
                .or_else(|| kv.get(key).cloned())
                .map(PathBuf::from)
                .unwrap_or_else(|| topdir.join(default))
        };
        let keystore = match env("UDOCKER_KEYSTORE")
            .filter(|s| !s.is_empty())
            .or_else(|| kv.get("keystore").cloned())
        {
            Some(k) if Path::new(&k).is_absolute() => PathBuf::from(k),
            Some(k) => topdir.join(k),
            None => topdir.join("keystore"),
        };
        let tmpdir = env("UDOCKER_TMP")
            .or_else(|| kv.get("tmpdir").cloned())
            .or_else(|| env("TMPDIR"))
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let get = |k: &str| kv.get(k).map(String::as_str);
        let verbose_level = match env("UDOCKER_LOGLEVEL").filter(|s| !s.is_empty()) {
            Some(v) => parse_num("UDOCKER_LOGLEVEL", &v)?,
            None => get("verbose_level")
                .map(|v| parse_num("verbose_level", v))
                .transpose()?
                .unwrap_or(3),
        };
        let cfg = Config {
            verbose_level,
            bindir: sub("bindir", "UDOCKER_BIN", "bin"),
            libdir: sub("libdir", "UDOCKER_LIB", "lib"),
            docdir: sub("docdir", "UDOCKER_DOC", "doc"),
            reposdir: sub("reposdir", "UDOCKER_REPOS", "repos"),
            layersdir: sub("layersdir", "UDOCKER_LAYERS", "layers"),
            containersdir: sub("containersdir", "UDOCKER_CONTAINERS", "containers"),
            topdir,
            keystore,
            tmpdir,
            http_insecure: get("http_insecure")
                .map(|v| parse_bool("http_insecure", v))
                .transpose()?
                .unwrap_or(false),
            http_proxy: get("http_proxy")
                .filter(|s| !s.is_empty() && *s != "None")
                .map(str::to_string),
            ctimeout: get("ctimeout")
                .map(|v| parse_num("ctimeout", v))
                .transpose()?
                .unwrap_or(6),
            timeout: get("timeout")
                .map(|v| parse_num("timeout", v))
                .transpose()?
                .unwrap_or(30),
            download_timeout: get("download_timeout")
                .map(|v| parse_num("download_timeout", v))
                .transpose()?
                .unwrap_or(1800),
            http_agent: get("http_agent")
                .map(str::to_string)
                .unwrap_or_else(|| format!("udocker-rs/{}", env!("CARGO_PKG_VERSION"))),
            dockerio_index_url: get("dockerio_index_url")
                .unwrap_or("https://hub.docker.com")
                .to_string(),
            dockerio_registry_url: get("dockerio_registry_url")
                .unwrap_or("https://registry-1.docker.io")
                .to_string(),
            registry: env("UDOCKER_REGISTRY")
                .or_else(|| kv.get("registry").cloned())
                .filter(|s| !s.is_empty()),
            index: env("UDOCKER_INDEX")
                .or_else(|| kv.get("index").cloned())
                .filter(|s| !s.is_empty()),
            default_execution_mode: env("UDOCKER_DEFAULT_EXECUTION_MODE")
                .or_else(|| kv.get("default_execution_mode").cloned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "P1".into()),
            retries: get("retries")
                .map(|v| parse_num("retries", v))
                .transpose()?
                .unwrap_or(4),
            parallel_downloads: get("parallel_downloads")
                .map(|v| parse_num("parallel_downloads", v))
                .transpose()?
                .unwrap_or(4),
            extra: kv,
        };
        if cfg.parallel_downloads == 0 {
            return Err(ConfigError::Value("parallel_downloads".into(), "0".into()));
        }
        Ok(cfg)
    }

    /// `showconf`: every setting as `key = value`.
    pub fn entries(&self) -> Vec<(String, String)> {
        let p = |p: &Path| p.display().to_string();
        let mut v = vec![
            ("verbose_level".into(), self.verbose_level.to_string()),
            ("topdir".into(), p(&self.topdir)),
            ("bindir".into(), p(&self.bindir)),
            ("libdir".into(), p(&self.libdir)),
            ("docdir".into(), p(&self.docdir)),
            ("reposdir".into(), p(&self.reposdir)),
            ("layersdir".into(), p(&self.layersdir)),
            ("containersdir".into(), p(&self.containersdir)),
            ("keystore".into(), p(&self.keystore)),
            ("tmpdir".into(), p(&self.tmpdir)),
            ("http_insecure".into(), self.http_insecure.to_string()),
            (
                "http_proxy".into(),
                self.http_proxy.clone().unwrap_or_default(),
            ),
            ("ctimeout".into(), self.ctimeout.to_string()),
            ("timeout".into(), self.timeout.to_string()),
            ("download_timeout".into(), self.download_timeout.to_string()),
            ("http_agent".into(), self.http_agent.clone()),
            ("dockerio_index_url".into(), self.dockerio_index_url.clone()),
            (
                "dockerio_registry_url".into(),
                self.dockerio_registry_url.clone(),
            ),
            ("registry".into(), self.registry.clone().unwrap_or_default()),
            ("index".into(), self.index.clone().unwrap_or_default()),
            (
                "default_execution_mode".into(),
                self.default_execution_mode.clone(),
            ),
            ("retries".into(), self.retries.to_string()),
            (
                "parallel_downloads".into(),
                self.parallel_downloads.to_string(),
            ),
            (
                "autoinstall".into(),
                "false (every engine is built in)".into(),
            ),
        ];
        for (k, val) in &self.extra {
            if !v.iter().any(|(kk, _)| kk == k) {
                v.push((k.clone(), val.clone()));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_and_env() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("u.conf");
        fs::write(
            &f,
            "[DEFAULT]\n# c\ntimeout = 7\nhttp_insecure: True\n[other]\ntimeout = 99\n",
        )
        .unwrap();
        let top = d.path().join("top").display().to_string();
        let env = |k: &str| match k {
            "UDOCKER_DIR" => Some(top.clone()),
            "UDOCKER_LAYERS" => Some("/x/layers".to_string()),
            _ => None,
        };
        let c = Config::load(Some(&f), &env).unwrap();
        assert_eq!(c.timeout, 7);
        assert!(c.http_insecure);
        assert_eq!(c.reposdir, d.path().join("top/repos"));
        assert_eq!(c.layersdir, PathBuf::from("/x/layers"));
        assert_eq!(c.keystore, d.path().join("top/keystore"));
        fs::write(&f, "timeout = x\n").unwrap();
        assert!(Config::load(Some(&f), &env).is_err());
        fs::write(&f, "garbage line\n").unwrap();
        assert!(Config::load(Some(&f), &env).is_err());
    }
}
