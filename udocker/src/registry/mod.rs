//! Registry HTTP API v2 client (distribution `docs/spec/api.md`, OCI distribution-spec), sync, on ureq.
//!
//! What it does beyond a plain GET: anonymous bearer tokens from the `WWW-Authenticate` challenge
//! (distribution `docs/spec/auth/token.md`), Basic credentials from the keystore, redirects followed
//! by hand so credentials never go to another host, retries with exponential backoff for transport
//! errors, 429 and 5xx, resumable blob downloads (`Range: bytes=N-`), and the blob's digest computed
//! while it streams to disk. Proxies from `https_proxy`/`http_proxy`/`all_proxy` minus `no_proxy`.

pub mod manifest;
mod tls;

use crate::digest::Digest;
use crate::repo::keystore::{registry_key, Credentials, Keystore};
use manifest::{Descriptor, Manifest};
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub enum RegistryError {
    Transport {
        url: String,
        msg: String,
    },
    Status {
        url: String,
        code: u16,
        msg: String,
    },
    NotFound {
        what: String,
    },
    Unauthorized {
        registry: String,
        detail: String,
    },
    BadCredentials {
        registry: String,
    },
    DigestMismatch {
        digest: Digest,
        got: Digest,
    },
    SizeMismatch {
        digest: Digest,
        expected: u64,
        got: u64,
    },
    BadResponse {
        url: String,
        msg: String,
    },
    NoPlatform {
        wanted: String,
        available: Vec<String>,
    },
    Io {
        path: PathBuf,
        err: io::Error,
    },
    Config(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RegistryError::*;
        match self {
            Transport { url, msg } => write!(f, "cannot reach {url}: {msg}"),
            Status { url, code, msg } => write!(
                f,
                "{url}: HTTP {code}{}",
                if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {msg}")
                }
            ),
            NotFound { what } => write!(f, "not found: {what}"),
            Unauthorized { registry, detail } => write!(
                f,
                "access denied by {registry}{}",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
            BadCredentials { registry } => {
                write!(f, "wrong credentials for {registry} (see udocker login)")
            }
            DigestMismatch { digest, got } => write!(
                f,
                "blob {digest} failed verification: content hashes to {got}"
            ),
            SizeMismatch {
                digest,
                expected,
                got,
            } => write!(f, "blob {digest}: expected {expected} bytes, got {got}"),
            BadResponse { url, msg } => write!(f, "{url}: {msg}"),
            NoPlatform { wanted, available } => write!(
                f,
                "no image found in manifest for platform {wanted} (available: {})",
                available.join(", ")
            ),
            Io { path, err } => write!(f, "{}: {err}", path.display()),
            Config(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for RegistryError {}

type Result<T> = std::result::Result<T, RegistryError>;

/// Where an image lives: `base` is `scheme://host[:port]`, `repo` the repository path on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub base: String,
    pub repo: String,
    /// Plain HTTP may be tried when HTTPS cannot connect (loopback hosts, `--insecure`), as docker
    /// does for its default insecure registries (127.0.0.0/8).
    pub http_fallback: bool,
}

impl Endpoint {
    pub fn authority(&self) -> &str {
        split_url(&self.base).map(|(_, a, _)| a).unwrap_or("")
    }
}

/// `scheme://authority/rest` → parts; `None` for anything that is not http(s).
pub fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let i = rest.find(['/', '?']).unwrap_or(rest.len());
    let auth = &rest[..i];
    if auth.is_empty() || auth.contains('@') {
        return None;
    }
    Some((scheme, auth, &rest[i..]))
}

/// A registry given by the user (`--registry`, `UDOCKER_REGISTRY`, `login --registry`): `https://`
/// is added when no scheme is given, a trailing `/` or `/v2/` dropped.
pub fn normalize_registry_url(s: &str) -> std::result::Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let s = s.strip_suffix("/v2").unwrap_or(s);
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    match split_url(&url) {
        Some((_, _, "")) => Ok(url),
        _ => Err(format!("invalid registry url: {s}")),
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = if let Some(r) = authority.strip_prefix('[') {
        r.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

pub const HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Decide the endpoint of a reference: the host it names, else `--registry`/`UDOCKER_REGISTRY`,
/// else Docker Hub. A host in the name wins, as in docker.
pub fn endpoint_for(
    r: &crate::reference::Reference,
    registry: Option<&str>,
    hub_url: &str,
    insecure: bool,
) -> std::result::Result<Endpoint, String> {
    let explicit = registry.map(normalize_registry_url).transpose()?;
    let hub = normalize_registry_url(hub_url)?;
    let (base, from_user) = match r.domain.as_deref() {
        Some(d) if !HUB_ALIASES.contains(&d) => match &explicit {
            Some(e) if split_url(e).map(|(_, a, _)| a) == Some(d) => (e.clone(), true),
            _ => (format!("https://{d}"), false),
        },
        Some(_) => (hub, false),
        None => match explicit {
            Some(e) => (e, true),
            None => (hub, false),
        },
    };
    let auth = split_url(&base)
        .map(|(_, a, _)| a.to_string())
        .unwrap_or_default();
    let http_fallback =
        !from_user && base.starts_with("https://") && (insecure || is_loopback(&auth));
    Ok(Endpoint {
        base,
        repo: r.remote_path.clone(),
        http_fallback,
    })
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub insecure: bool,
    pub proxy: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub download_timeout: Duration,
    pub retries: u32,
    pub user_agent: String,
}

pub struct Client {
    direct: ureq::Agent,
    proxied: Option<ureq::Agent>,
    no_proxy: Vec<String>,
    opts: ClientOptions,
    keystore: Option<Keystore>,
    /// `Authorization` header values by `authority repo`, shared by parallel downloads.
    auth_cache: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("opts", &self.opts).finish()
    }
}

/// A response body being read, with its status and headers.
pub struct Response {
    pub status: u16,
    pub url: String,
    inner: ureq::Response,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("Content-Length")
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn into_reader(self) -> Box<dyn Read + Send + Sync + 'static> {
        self.inner.into_reader()
    }

    /// Read at most `limit` bytes; more is an error (hostile or broken server).
    pub fn read_limited(self, limit: u64) -> Result<Vec<u8>> {
        let url = self.url.clone();
        let mut buf = Vec::new();
        self.into_reader()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| RegistryError::Transport {
                url: url.clone(),
                msg: e.to_string(),
            })?;
        if buf.len() as u64 > limit {
            return Err(RegistryError::BadResponse {
                url,
                msg: format!("response larger than {limit} bytes"),
            });
        }
        Ok(buf)
    }
}

fn proxy_from_env() -> (Option<String>, Vec<String>) {
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| std::env::var(k.to_ascii_uppercase()).ok())
            .filter(|v| !v.is_empty())
    };
    let proxy = get("https_proxy")
        .or_else(|| get("http_proxy"))
        .or_else(|| get("all_proxy"));
    let no = get("no_proxy")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    (proxy, no)
}

/// no_proxy matching as curl does: `*` matches all; an entry matches the host or any subdomain.
fn bypass_proxy(no_proxy: &[String], authority: &str) -> bool {
    let host = if let Some(r) = authority.strip_prefix('[') {
        r.split(']').next().unwrap_or("")
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    let host = host.to_ascii_lowercase();
    no_proxy.iter().any(|e| {
        let e = e.trim_start_matches('.');
        e == "*" || host == e || host.ends_with(&format!(".{e}"))
    })
}

/// ureq's transport errors start with the URL, which our messages already name.
fn transport_msg(t: &ureq::Transport) -> String {
    let mut m = t
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| t.kind().to_string());
    let mut src = std::error::Error::source(t);
    while let Some(e) = src {
        let s = e.to_string();
        if !m.contains(&s) {
            m = format!("{m}: {s}");
        }
        src = e.source();
    }
    m
}

/// Parse `WWW-Authenticate`: the scheme and its `key="value"` parameters.
pub fn parse_challenge(h: &str) -> (String, HashMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        s = &s[eq + 1..];
        let val;
        if let Some(r) = s.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = r.char_indices();
            let mut end = r.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n)
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            val = out;
            s = &r[end.min(r.len())..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            val = s[..end].trim().to_string();
            s = &s[end..];
        }
        s = s.trim_start().trim_start_matches(',').trim_start();
        params.insert(key, val);
    }
    (scheme.to_ascii_lowercase(), params)
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn resolve_location(base: &str, loc: &str) -> Option<String> {
    if split_url(loc).is_some() {
        return Some(loc.to_string());
    }
    let (scheme, auth, path) = split_url(base)?;
    if let Some(rest) = loc.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if loc.starts_with('/') {
        return Some(format!("{scheme}://{auth}{loc}"));
    }
    let dir = path
        .split('?')
        .next()
        .unwrap_or("")
        .rsplit_once('/')
        .map(|(d, _)| d)
        .unwrap_or("");
    Some(format!("{scheme}://{auth}{dir}/{loc}"))
}

fn short_body(r: ureq::Response) -> String {
    let mut b = Vec::new();
    let _ = r.into_reader().take(2048).read_to_end(&mut b);
    let text = String::from_utf8_lossy(&b).to_string();
    // Registry errors: {"errors":[{"code":..,"message":..}]}
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            return format!("{code} {msg}").trim().to_string();
        }
    }
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// Progress callback for downloads: bytes done so far, total when known.
pub type ProgressFn<'a> = &'a (dyn Fn(u64, Option<u64>) + Sync);

impl Client {
    pub fn new(opts: ClientOptions, keystore: Option<Keystore>) -> Result<Client> {
        let tls = tls::client_config(opts.insecure).map_err(RegistryError::Config)?;
        let builder = || {
            ureq::AgentBuilder::new()
                .tls_config(tls.clone())
                .redirects(0)
                .timeout_connect(opts.connect_timeout)
                .timeout_read(opts.read_timeout)
                .timeout_write(opts.read_timeout)
                .user_agent(&opts.user_agent)
        };
        let (env_proxy, no_proxy) = proxy_from_env();
        let proxy = opts.proxy.clone().or(env_proxy);
        let proxied = match proxy {
            Some(p) => {
                let px = ureq::Proxy::new(&p)
                    .map_err(|e| RegistryError::Config(format!("invalid proxy {p}: {e}")))?;
                Some(builder().proxy(px).build())
            }
            None => None,
        };
        // --httpproxy is explicit: it applies to every host.
        let no_proxy = if opts.proxy.is_some() {
            Vec::new()
        } else {
            no_proxy
        };
        Ok(Client {
            direct: builder().build(),
            proxied,
            no_proxy,
            opts,
            keystore,
            auth_cache: Mutex::new(HashMap::new()),
        })
    }

    fn agent_for(&self, authority: &str) -> &ureq::Agent {
        match &self.proxied {
            Some(p) if !bypass_proxy(&self.no_proxy, authority) => p,
            _ => &self.direct,
        }
    }

    pub fn credentials(&self, ep: &Endpoint) -> Result<Option<Credentials>> {
        let key = if HUB_ALIASES.contains(&registry_key(&ep.base).as_str()) {
            "registry-1.docker.io".to_string()
        } else {
            ep.authority().to_string()
        };
        match &self.keystore {
            Some(k) => k
                .get(&key)
                .map_err(|e| RegistryError::Config(e.to_string())),
            None => Ok(None),
        }
    }

    fn cache_key(ep: &Endpoint) -> String {
        format!("{} {}", ep.authority(), ep.repo)
    }

    /// GET with auth, redirects and retries. `extra` adds headers (Accept, Range).
    pub fn get(&self, ep: &Endpoint, url: &str, extra: &[(&str, String)]) -> Result<Response> {
        let mut url = url.to_string();
        let mut hops = 0;
        let mut attempt = 0u32;
        let mut authed = false;
        loop {
            let Some((_, authority, _)) = split_url(&url) else {
                return Err(RegistryError::BadResponse {
                    url,
                    msg: "unsupported URL".into(),
                });
            };
            let same_host = authority == ep.authority();
            let mut req = self.agent_for(authority).get(&url);
            for (k, v) in extra {
                req = req.set(k, v);
            }
            if same_host {
                if let Some(a) = self
                    .auth_cache
                    .lock()
                    .expect("auth cache lock")
                    .get(&Self::cache_key(ep))
                {
                    req = req.set("Authorization", a);
                }
            }
            crate::debug!("GET {url}");
            let backoff =
                |attempt: u32| std::thread::sleep(Duration::from_millis(250u64 << attempt.min(5)));
            match req.call() {
                Ok(r) if (300..400).contains(&r.status()) => {
                    let loc = r.header("Location").and_then(|l| resolve_location(&url, l));
                    hops += 1;
                    match loc {
                        Some(l) if hops <= 5 => {
                            crate::debug!("redirect to {l}");
                            url = l;
                        }
                        _ => {
                            return Err(RegistryError::BadResponse {
                                url,
                                msg: "bad or too many redirects".into(),
                            })
                        }
                    }
                }
                Ok(r) => {
                    return Ok(Response {
                        status: r.status(),
                        url,
                        inner: r,
                    })
                }
                Err(ureq::Error::Status(401, r)) if same_host && !authed => {
                    authed = true;
                    let chal = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.authenticate(ep, &chal)?;
                }
                Err(ureq::Error::Status(code @ (401 | 403), r)) => {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.authority().to_string(),
                        detail: format!("HTTP {code} {}", short_body(r)).trim().to_string(),
                    })
                }
                Err(ureq::Error::Status(code, r))
                    if (code == 429 || code >= 500) && attempt + 1 < self.opts.retries =>
                {
                    crate::debug!("HTTP {code} from {url}, retrying");
                    drop(r);
                    backoff(attempt);
                    attempt += 1;
                }
                Err(ureq::Error::Status(404, r)) => {
                    return Err(RegistryError::NotFound {
                        what: format!("{url} ({})", short_body(r)),
                    })
                }
                Err(ureq::Error::Status(code, r)) => {
                    return Err(RegistryError::Status {
                        url,
                        code,
                        msg: short_body(r),
                    })
                }
                Err(ureq::Error::Transport(t))
                    if attempt + 1 < self.opts.retries
                        && t.kind() != ureq::ErrorKind::InvalidUrl =>
                {
                    crate::debug!("{url}: {t}, retrying");
                    backoff(attempt);
                    attempt += 1;
                }
                Err(ureq::Error::Transport(t)) => {
                    return Err(RegistryError::Transport {
                        url,
                        msg: transport_msg(&t),
                    })
                }
            }
        }
    }

    /// Answer a 401 challenge: fetch a bearer token from the realm, or use Basic credentials.
    fn authenticate(&self, ep: &Endpoint, challenge: &str) -> Result<()> {
        let creds = self.credentials(ep)?;
        let (scheme, params) = parse_challenge(challenge);
        let header = match scheme.as_str() {
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| RegistryError::BadResponse {
                        url: ep.base.clone(),
                        msg: "bearer challenge without realm".into(),
                    })?;
                if split_url(realm).is_none() {
                    return Err(RegistryError::BadResponse {
                        url: ep.base.clone(),
                        msg: format!("bad token realm {realm:?}"),
                    });
                }
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", ep.repo));
                let mut url = format!(
                    "{realm}{}scope={}",
                    if realm.contains('?') { "&" } else { "?" },
                    pct(&scope)
                );
                if let Some(s) = params.get("service") {
                    url.push_str(&format!("&service={}", pct(s)));
                }
                let (_, realm_auth, _) = split_url(realm).expect("checked above");
                let mut req = self.agent_for(realm_auth).get(&url);
                if let Some(c) = &creds {
                    req = req.set("Authorization", &c.basic_header());
                }
                crate::debug!("token request {url}");
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(401 | 403, _)) if creds.is_some() => {
                        return Err(RegistryError::BadCredentials {
                            registry: ep.authority().into(),
                        })
                    }
                    Err(ureq::Error::Status(code, r)) => {
                        return Err(RegistryError::Status {
                            url,
                            code,
                            msg: short_body(r),
                        })
                    }
                    Err(ureq::Error::Transport(t)) => {
                        return Err(RegistryError::Transport {
                            url,
                            msg: transport_msg(&t),
                        })
                    }
                };
                let body = Response {
                    status: resp.status(),
                    url: url.clone(),
                    inner: resp,
                }
                .read_limited(1 << 20)?;
                let v: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::BadResponse {
                        url: url.clone(),
                        msg: format!("token: {e}"),
                    })?;
                let tok = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty() && t.is_ascii() && !t.contains(['\r', '\n']));
                let tok = tok.ok_or_else(|| RegistryError::BadResponse {
                    url,
                    msg: "token response without token".into(),
                })?;
                format!("Bearer {tok}")
            }
            "basic" => match creds {
                Some(c) => c.basic_header(),
                None => {
                    return Err(RegistryError::Unauthorized {
                        registry: ep.authority().into(),
                        detail: "authentication required (see udocker login)".into(),
                    })
                }
            },
            _ => {
                return Err(RegistryError::Unauthorized {
                    registry: ep.authority().into(),
                    detail: format!("unsupported challenge {challenge:?}"),
                })
            }
        };
        self.auth_cache
            .lock()
            .expect("auth cache lock")
            .insert(Self::cache_key(ep), header);
        Ok(())
    }

    /// `GET /v2/`: checks the registry speaks v2 and settles http vs https for fallback endpoints.
    pub fn ping(&self, ep: &mut Endpoint) -> Result<()> {
        // Any HTTP answer proves the host speaks HTTP(S) here; the manifest request that follows
        // reports what is really wrong (401 is the normal answer of registries with auth).
        // `strict`: only a registry's own answers (200, or 401 asking for auth) count. Used for
        // the plain-HTTP fallback so that an HTTPS-only server answering "400 plain HTTP sent to
        // an HTTPS port" does not hide the TLS error (an untrusted certificate, say).
        let try_one = |base: &str, strict: bool| -> Result<()> {
            let url = format!("{base}/v2/");
            let Some((_, authority, _)) = split_url(&url) else {
                return Err(RegistryError::Config(format!("bad registry url {base}")));
            };
            let mut attempt = 0;
            loop {
                match self.agent_for(authority).get(&url).call() {
                    Ok(_) => return Ok(()),
                    Err(ureq::Error::Status(401, _)) => return Ok(()),
                    Err(ureq::Error::Status(code, r)) if strict => {
                        return Err(RegistryError::Status {
                            url,
                            code,
                            msg: short_body(r),
                        })
                    }
                    // Any other HTTP answer proves the host speaks HTTP(S) here; the manifest
                    // request that follows reports what is really wrong.
                    Err(ureq::Error::Status(code, _)) if code < 500 => return Ok(()),
                    Err(ureq::Error::Status(code, r)) if attempt + 1 >= self.opts.retries => {
                        return Err(RegistryError::Status {
                            url,
                            code,
                            msg: short_body(r),
                        })
                    }
                    Err(ureq::Error::Transport(t))
                        if attempt + 1 >= self.opts.retries
                            || t.kind() == ureq::ErrorKind::ConnectionFailed
                            || t.kind() == ureq::ErrorKind::Dns =>
                    {
                        return Err(RegistryError::Transport {
                            url,
                            msg: transport_msg(&t),
                        })
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(250u64 << attempt.min(5)));
                        attempt += 1;
                    }
                }
            }
        };
        match try_one(&ep.base, false) {
            Err(e @ RegistryError::Transport { .. }) if ep.http_fallback => {
                let http = ep.base.replacen("https://", "http://", 1);
                if try_one(&http, true).is_err() {
                    return Err(e);
                }
                crate::debug!("using plain http for {}", ep.authority());
                ep.base = http;
                ep.http_fallback = false;
                Ok(())
            }
            other => other,
        }
    }

    /// Fetch a manifest or index by tag or digest. Returns the raw bytes (stored verbatim: their
    /// digest is the image's identity), the parsed form and the digest of the bytes.
    pub fn manifest(&self, ep: &Endpoint, reference: &str) -> Result<(Vec<u8>, Manifest, Digest)> {
        let url = format!("{}/v2/{}/manifests/{}", ep.base, ep.repo, reference);
        let resp = match self.get(ep, &url, &[("Accept", manifest::ACCEPT.to_string())]) {
            Err(RegistryError::NotFound { .. }) => {
                return Err(RegistryError::NotFound {
                    what: format!("manifest {}:{reference} on {}", ep.repo, ep.authority()),
                })
            }
            other => other?,
        };
        let ct = resp.header("Content-Type").map(str::to_string);
        let bytes = resp.read_limited(manifest::MAX_MANIFEST)?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::BadResponse {
                url: url.clone(),
                msg: format!("manifest is not JSON: {e}"),
            })?;
        let m = Manifest::from_json(&v, ct.as_deref()).map_err(|e| RegistryError::BadResponse {
            url: url.clone(),
            msg: e,
        })?;
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = Digest::parse(reference) {
            let got = if want.algorithm() == digest.algorithm() {
                digest.clone()
            } else {
                let mut h = want.hasher();
                h.update(&bytes);
                h.finish()
            };
            if got != want {
                return Err(RegistryError::DigestMismatch { digest: want, got });
            }
        }
        Ok((bytes, m, digest))
    }

    /// Download a blob into `partial` (resuming what is there), checking size and digest while it
    /// streams. On success `partial` holds exactly the blob, fsync'd; on a digest mismatch it is
    /// deleted. The caller renames it into the store and holds the blob's lock.
    pub fn fetch_blob(
        &self,
        ep: &Endpoint,
        desc: &Descriptor,
        partial: &Path,
        progress: ProgressFn,
    ) -> Result<()> {
        let url = format!("{}/v2/{}/blobs/{}", ep.base, ep.repo, desc.digest);
        let io_err = |err: io::Error| RegistryError::Io {
            path: partial.to_path_buf(),
            err,
        };
        let started = Instant::now();
        let mut attempt = 0u32;
        let mut restarted = false;
        loop {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(partial)
                .map_err(io_err)?;
            // Re-hash what an earlier attempt (or an earlier, killed, process) left.
            let mut hasher = desc.digest.hasher();
            let mut have = 0u64;
            {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).map_err(io_err)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    have += n as u64;
                }
            }
            if desc.size.is_some_and(|s| have > s) {
                f.set_len(0).map_err(io_err)?;
                continue;
            }
            let mut headers = Vec::new();
            if have > 0 && desc.size != Some(have) {
                headers.push(("Range", format!("bytes={have}-")));
            }
            let outcome: std::result::Result<(), RegistryError> = (|| {
                if desc.size == Some(have) && have > 0 {
                    return Ok(());
                }
                let resp = self.get(ep, &url, &headers)?;
                if resp.status == 206 {
                    crate::debug!("resuming {} at {have}", desc.digest);
                } else {
                    // Full body: start over.
                    f.set_len(0).map_err(io_err)?;
                    f.seek(SeekFrom::Start(0)).map_err(io_err)?;
                    hasher = desc.digest.hasher();
                    have = 0;
                }
                f.seek(SeekFrom::End(0)).map_err(io_err)?;
                let total = desc
                    .size
                    .or_else(|| resp.content_length().map(|l| l + have));
                let mut reader = resp.into_reader();
                let mut buf = vec![0u8; 1 << 20];
                let mut last = Instant::now();
                let flusher = crate::fsutil::BackgroundSync::new(&f).map_err(io_err)?;
                let mut unflushed = 0u64;
                let mut eof = false;
                while !eof {
                    // ureq hands out at most its 8 KiB buffer per read: gather a large chunk
                    // before each write(2) and hash update — but only while the data keeps
                    // coming in full buffers. A short read means the socket had nothing more
                    // at that moment: write what we have, so a stalled or killed download
                    // keeps every byte received on disk for the next attempt to resume from.
                    let mut n = 0;
                    while n < buf.len() {
                        match reader.read(&mut buf[n..]) {
                            Ok(0) => {
                                eof = true;
                                break;
                            }
                            Ok(k) => {
                                n += k;
                                if k < 8192 {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                // Keep what arrived: the next attempt resumes after it.
                                if n > 0 {
                                    let _ = f.write_all(&buf[..n]);
                                }
                                return Err(RegistryError::Transport {
                                    url: url.clone(),
                                    msg: e.to_string(),
                                });
                            }
                        }
                    }
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).map_err(io_err)?;
                    hasher.update(&buf[..n]);
                    have += n as u64;
                    unflushed += n as u64;
                    if unflushed >= 8 << 20 {
                        flusher.poke();
                        unflushed = 0;
                    }
                    if let Some(s) = desc.size {
                        if have > s {
                            return Err(RegistryError::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: s,
                                got: have,
                            });
                        }
                    }
                    if started.elapsed() > self.opts.download_timeout {
                        return Err(RegistryError::Transport {
                            url: url.clone(),
                            msg: "download timed out".into(),
                        });
                    }
                    if last.elapsed() > Duration::from_millis(100) {
                        progress(have, total);
                        last = Instant::now();
                    }
                }
                progress(have, total);
                Ok(())
            })();
            match outcome {
                Ok(()) => {
                    f.sync_all().map_err(io_err)?;
                    drop(f);
                    if let Some(s) = desc.size {
                        if have != s {
                            // Short body without a transport error: retry the rest.
                            if attempt + 1 < self.opts.retries {
                                attempt += 1;
                                continue;
                            }
                            return Err(RegistryError::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: s,
                                got: have,
                            });
                        }
                    }
                    let got = hasher.finish();
                    if got != desc.digest {
                        let _ = fs::remove_file(partial);
                        // A resumed download may have joined two different bodies: one clean retry.
                        if !restarted {
                            restarted = true;
                            continue;
                        }
                        return Err(RegistryError::DigestMismatch {
                            digest: desc.digest.clone(),
                            got,
                        });
                    }
                    return Ok(());
                }
                Err(RegistryError::SizeMismatch { .. }) if !restarted => {
                    restarted = true;
                    let _ = fs::remove_file(partial);
                }
                Err(RegistryError::Transport { .. }) if attempt + 1 < self.opts.retries => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(250u64 << attempt.min(5)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `GET /v2/<repo>/tags/list`, following `Link: <…>; rel="next"` pages.
    pub fn list_tags(&self, ep: &Endpoint) -> Result<Vec<String>> {
        let mut url = format!("{}/v2/{}/tags/list?n=1000", ep.base, ep.repo);
        let mut out = Vec::new();
        for _ in 0..1000 {
            let resp = self.get(ep, &url, &[])?;
            let next = resp.header("Link").and_then(|l| {
                let l = l.trim();
                if !l.contains("rel=\"next\"") {
                    return None;
                }
                let inner = l.strip_prefix('<')?.split('>').next()?;
                resolve_location(&url, inner)
            });
            let body = resp.read_limited(16 << 20)?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| RegistryError::BadResponse {
                    url: url.clone(),
                    msg: e.to_string(),
                })?;
            if let Some(tags) = v.get("tags").and_then(|t| t.as_array()) {
                out.extend(tags.iter().filter_map(|t| t.as_str()).map(str::to_string));
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// A plain GET outside any registry's auth (search index).
    pub fn get_json(&self, url: &str) -> Result<serde_json::Value> {
        let ep = Endpoint {
            base: String::new(),
            repo: String::new(),
            http_fallback: false,
        };
        let resp = self.get(&ep, url, &[("Accept", "application/json".into())])?;
        let body = resp.read_limited(16 << 20)?;
        serde_json::from_slice(&body).map_err(|e| RegistryError::BadResponse {
            url: url.into(),
            msg: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Reference;

    #[test]
    fn challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (s.as_str(), p["realm"].as_str()),
            ("basic", "Registry Realm")
        );
    }

    #[test]
    fn endpoints() {
        let ep = |r: &str, reg: Option<&str>| {
            endpoint_for(
                &Reference::parse(r).unwrap(),
                reg,
                "https://registry-1.docker.io",
                false,
            )
            .unwrap()
        };
        let e = ep("busybox", None);
        assert_eq!(
            (e.base.as_str(), e.repo.as_str()),
            ("https://registry-1.docker.io", "library/busybox")
        );
        let e = ep("busybox", Some("http://127.0.0.1:5000"));
        assert_eq!(
            (e.base.as_str(), e.repo.as_str(), e.http_fallback),
            ("http://127.0.0.1:5000", "library/busybox", false)
        );
        let e = ep("127.0.0.1:5000/o/i:t", None);
        assert_eq!(
            (e.base.as_str(), e.repo.as_str(), e.http_fallback),
            ("https://127.0.0.1:5000", "o/i", true)
        );
        let e = ep("ghcr.io/o/i", Some("http://127.0.0.1:5000"));
        assert_eq!(
            (e.base.as_str(), e.http_fallback),
            ("https://ghcr.io", false)
        );
        assert!(normalize_registry_url("ftp://x").is_err());
        assert_eq!(
            normalize_registry_url("quay.io/").unwrap(),
            "https://quay.io"
        );
    }

    #[test]
    fn urls_and_proxy() {
        assert_eq!(
            resolve_location("https://a:1/v2/x/blobs/y", "/z?q").unwrap(),
            "https://a:1/z?q"
        );
        assert_eq!(
            resolve_location("https://a/v2/x", "https://b/c").unwrap(),
            "https://b/c"
        );
        assert!(split_url("https://user@evil/").is_none());
        let np = vec!["example.com".to_string(), "127.0.0.1".to_string()];
        assert!(bypass_proxy(&np, "reg.example.com:443"));
        assert!(bypass_proxy(&np, "127.0.0.1:5000"));
        assert!(!bypass_proxy(&np, "ghcr.io"));
    }
}
