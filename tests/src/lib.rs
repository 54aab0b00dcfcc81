//! End-to-end harness: drives the real `udocker` binary, as an unprivileged account, against the
//! registries `scripts/fixtures.sh up` starts on loopback, and a small hostile HTTP server
//! ([`TestServer`]) for the failure cases.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// The variables `scripts/fixtures.sh up` writes to `fixtures.env`.
#[derive(Debug, Clone)]
pub struct Fixtures {
    vars: HashMap<String, String>,
}

impl Fixtures {
    /// Parse `$UDOCKER_FIXTURES/fixtures.env` (default `/var/cache/udocker-rs-fixtures`).
    /// Panics when it is missing: the suite must fail, not skip, without fixtures.
    pub fn load() -> &'static Fixtures {
        static F: OnceLock<Fixtures> = OnceLock::new();
        F.get_or_init(|| {
            let dir = std::env::var("UDOCKER_FIXTURES")
                .unwrap_or_else(|_| "/var/cache/udocker-rs-fixtures".into());
            let path = Path::new(&dir).join("fixtures.env");
            let text = fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "cannot read {}: {e}: run scripts/fixtures.sh up (as root) first",
                    path.display()
                )
            });
            let mut vars = HashMap::new();
            for line in text.lines() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                let Some((k, v)) = l.split_once('=') else {
                    continue;
                };
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                    .unwrap_or(v);
                vars.insert(k.trim().to_string(), v.to_string());
            }
            let f = Fixtures { vars };
            // Fail early and clearly when the registry is not listening.
            let reg = f.get("REGISTRY");
            if TcpStream::connect_timeout(
                &reg.parse().expect("REGISTRY is host:port"),
                Duration::from_secs(3),
            )
            .is_err()
            {
                panic!(
                    "registry {reg} from fixtures.env is not listening: run scripts/fixtures.sh up"
                );
            }
            f
        })
    }

    /// A variable; panics naming it when fixtures.env lacks it.
    pub fn get(&self, key: &str) -> String {
        self.vars
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("fixtures.env has no {key}: re-run scripts/fixtures.sh up"))
    }

    pub fn opt(&self, key: &str) -> Option<String> {
        self.vars.get(key).cloned()
    }

    /// A whitespace-separated list variable (layer digests).
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    pub fn registry(&self) -> String {
        self.get("REGISTRY")
    }

    pub fn uid_gid(&self) -> (u32, u32) {
        (
            self.get("FIX_USER_UID").parse().expect("FIX_USER_UID"),
            self.get("FIX_USER_GID").parse().expect("FIX_USER_GID"),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Binary and environment
// ---------------------------------------------------------------------------------------------

/// `UDOCKER_TEST_BIN`, else `<workspace>/target/debug/udocker`; panics when absent.
pub fn udocker_bin() -> PathBuf {
    let p = match std::env::var_os("UDOCKER_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/udocker"),
    };
    assert!(
        p.is_file(),
        "udocker binary not found at {}: run `cargo build -p udocker` or set UDOCKER_TEST_BIN",
        p.display()
    );
    p
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn sha256_hex(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

pub fn file_sha256(p: &Path) -> String {
    let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

pub fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Output as text, for messages.
pub fn show(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One test's world: a fresh HOME and `UDOCKER_DIR=$HOME/.udocker`, owned by the fixture user
/// when the test runs as root (every udocker command then runs as that user via setpriv).
pub struct TestEnv {
    _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub udir: PathBuf,
    /// `Some((uid, gid))` when commands run through setpriv.
    pub user: Option<(u32, u32)>,
    pub env: Vec<(String, String)>,
    pub fx: &'static Fixtures,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let fx = Fixtures::load();
        let dir = tempfile::Builder::new()
            .prefix("udocker-e2e-")
            .tempdir()
            .expect("creating temp dir");
        let home = dir.path().to_path_buf();
        let user = if is_root() { Some(fx.uid_gid()) } else { None };
        if let Some((u, g)) = user {
            chown(&home, u, g);
        }
        let udir = home.join(".udocker");
        TestEnv {
            _dir: dir,
            home,
            udir,
            user,
            env: Vec::new(),
            fx,
        }
    }

    /// Add an environment variable for every later command.
    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(kk, _)| kk != k);
        self.env.push((k.into(), v.into()));
    }

    /// The command line for `udocker args`, as the test user, with a cleared environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_env(&[], args)
    }

    pub fn cmd_env(&self, extra: &[(&str, &str)], args: &[&str]) -> Command {
        let bin = udocker_bin();
        let mut c = match self.user {
            Some((u, g)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={u}"))
                    .arg(format!("--regid={g}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        c.args(args);
        c.env_clear();
        c.env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        c.env("HOME", &self.home);
        c.env("UDOCKER_DIR", &self.udir);
        c.env("LANG", "C.UTF-8");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.current_dir(&self.home);
        c.stdin(Stdio::null());
        c
    }

    pub fn ud(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running udocker")
    }

    pub fn ud_env(&self, extra: &[(&str, &str)], args: &[&str]) -> Output {
        self.cmd_env(extra, args).output().expect("running udocker")
    }

    /// Run; assert exit 0; return stdout.
    pub fn ud_ok(&self, args: &[&str]) -> String {
        let o = self.ud(args);
        assert!(
            o.status.success(),
            "expected `udocker {}` to succeed (rc 0)\n{}",
            args.join(" "),
            show(&o)
        );
        stdout(&o)
    }

    /// Run; assert a non-zero exit; return stderr.
    pub fn ud_fail(&self, args: &[&str]) -> String {
        let o = self.ud(args);
        assert!(
            !o.status.success() && o.status.code().is_some(),
            "expected `udocker {}` to fail with a non-zero exit status\n{}",
            args.join(" "),
            show(&o)
        );
        stderr(&o)
    }

    pub fn ud_with_stdin(&self, input: &[u8], args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().expect("spawning udocker");
        ch.stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("writing stdin");
        ch.wait_with_output().expect("waiting for udocker")
    }

    /// Start udocker in the background (stdout/stderr piped), e.g. to kill it mid-way.
    pub fn spawn(&self, args: &[&str]) -> Child {
        let mut c = self.cmd(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().expect("spawning udocker")
    }

    pub fn repos(&self) -> PathBuf {
        self.udir.join("repos")
    }

    pub fn layers(&self) -> PathBuf {
        self.udir.join("layers")
    }

    pub fn partial_dir(&self) -> PathBuf {
        self.layers().join(".partial")
    }

    /// `repos/<name>/<tag>`.
    pub fn tag_dir(&self, name: &str, tag: &str) -> PathBuf {
        self.repos().join(name).join(tag)
    }

    /// `layers/<digest>`.
    pub fn layer(&self, digest: &str) -> PathBuf {
        self.layers().join(digest)
    }

    /// Write a file the test user can read (and owns, when root).
    pub fn write_file(&self, p: &Path, data: &[u8]) {
        fs::write(p, data).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        if let Some((u, g)) = self.user {
            chown(p, u, g);
        }
    }

    /// Run `sh -c script` as the test user (same environment as udocker commands).
    pub fn sh_as_user(&self, script: &str) -> Output {
        let mut c = match self.user {
            Some((u, g)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={u}"))
                    .arg(format!("--regid={g}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg("sh");
                c
            }
            None => Command::new("sh"),
        };
        c.arg("-c").arg(script);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &self.home);
        c.current_dir(&self.home);
        c.output().expect("running sh")
    }

    /// Names of the tag directories (relative `name/tag`) under repos/.
    pub fn tag_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.repos().is_dir() {
            find_tag_dirs(&self.repos(), &self.repos(), &mut out);
        }
        out.sort();
        out
    }

    /// Files named `sha256:*` directly under layers/.
    pub fn layer_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.layers())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("sha256:"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The repository invariants: every tag directory has TAG, v2 and manifest; every symlink
    /// in repos/ resolves; every layers/sha256:X hashes to X; no stray dot-files in repos/
    /// (other than `.lock`) and none in layers/ (other than `.partial`).
    pub fn assert_repo_consistent(&self) {
        let repos = self.repos();
        assert!(repos.is_dir(), "expected {} to exist", repos.display());
        let mut problems = Vec::new();
        walk_repos(&repos, &mut problems);
        let layers = self.layers();
        if layers.is_dir() {
            for e in fs::read_dir(&layers).expect("read layers").flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                if let Some(hex) = n.strip_prefix("sha256:") {
                    if !p.is_file() {
                        problems.push(format!("{} is not a regular file", p.display()));
                    } else if file_sha256(&p) != hex {
                        problems.push(format!("{} does not hash to its name", p.display()));
                    }
                } else if n != ".partial" && n != ".lock" {
                    problems.push(format!("stray entry in layers/: {n}"));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "expected a consistent repository at {}, found:\n  {}",
            self.udir.display(),
            problems.join("\n  ")
        );
    }
}

fn find_tag_dirs(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if p.join("TAG").is_file() {
                out.push(
                    p.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            } else {
                find_tag_dirs(root, &p, out);
            }
        }
    }
}

fn walk_repos(dir: &Path, problems: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        problems.push(format!("cannot read {}", dir.display()));
        return;
    };
    let entries: Vec<_> = rd.flatten().collect();
    let is_tag = entries.iter().any(|e| e.file_name() == "TAG");
    if is_tag {
        for f in ["TAG", "v2", "manifest"] {
            if !dir.join(f).is_file() {
                problems.push(format!("{} lacks {f}", dir.display()));
            }
        }
    }
    for e in entries {
        let n = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if n.starts_with('.') && n != ".partial" && n != ".lock" {
            problems.push(format!("stray temporary entry {}", p.display()));
            continue;
        }
        let ft = e.file_type().expect("file type");
        if ft.is_symlink() {
            let t = fs::read_link(&p).expect("readlink");
            if t.is_absolute() {
                problems.push(format!(
                    "{} is an absolute link to {}",
                    p.display(),
                    t.display()
                ));
            }
            if fs::metadata(&p).is_err() {
                problems.push(format!("{} -> {} dangles", p.display(), t.display()));
            }
        } else if ft.is_dir() {
            walk_repos(&p, problems);
        }
    }
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

pub fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Poll `f` every 50 ms until it is true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Wait for a child with a deadline; kills it and panics when it overruns.
pub fn wait_child(mut ch: Child, timeout: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if ch.try_wait().expect("try_wait").is_some() {
            return ch.wait_with_output().expect("output");
        }
        if start.elapsed() > timeout {
            let _ = ch.kill();
            let o = ch.wait_with_output().expect("output");
            panic!("expected {what} to finish within {timeout:?}\n{}", show(&o));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP client (for digests and checks)
// ---------------------------------------------------------------------------------------------

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One plain-HTTP request to `addr` (`host:port`), `Connection: close`, response read to EOF.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let (status, hdrs, body_start) = parse_response_head(&raw).expect("an HTTP response");
    let mut body = raw[body_start..].to_vec();
    if method == "HEAD" {
        body.clear();
    } else if hdrs.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    }) {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers: hdrs,
        body,
    }
}

/// The manifest digest the registry reports for `repo:reference` (Docker-Content-Digest).
pub fn registry_digest(addr: &str, repo: &str, reference: &str) -> String {
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let r = http_request(
        addr,
        "HEAD",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Accept", accept)],
    );
    assert_eq!(r.status, 200, "HEAD manifest {repo}:{reference} on {addr}");
    r.header("Docker-Content-Digest")
        .expect("Docker-Content-Digest header")
        .to_string()
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size_s = String::from_utf8_lossy(&b[..i]);
        let size =
            usize::from_str_radix(size_s.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header list of a request or response.
pub type Headers = Vec<(String, String)>;

fn parse_response_head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

// ---------------------------------------------------------------------------------------------
// Hostile test server
// ---------------------------------------------------------------------------------------------

/// What happens to a blob body after `after` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Keep the connection open, sending nothing more (until the client goes away, or 30 s).
    Stall,
    /// Close the connection.
    Close,
}

/// Behaviour of a [`TestServer`].
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// `host:port` of a plain-HTTP registry to forward requests to.
    pub upstream: Option<String>,
    /// Blob digest whose body gets one byte flipped (length kept).
    pub corrupt_blob: Option<String>,
    /// Blob digest whose body is cut after N bytes, the first `cut_times` times it is served.
    pub cut_blob: Option<(String, usize, Cut)>,
    pub cut_times: usize,
    /// Fixed answers: request path (without query; a trailing `*` makes it a prefix) →
    /// (status, content type, body). Checked first, in order.
    pub routes: Vec<(String, u16, String, Vec<u8>)>,
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    cfg: ServerConfig,
    stop: AtomicBool,
    requests: Mutex<Vec<Recorded>>,
    /// Connections that were not HTTP (e.g. a TLS ClientHello) or failed to parse.
    garbage: AtomicUsize,
    cuts_done: AtomicUsize,
    /// Set once a cut blob's first `after` bytes were written.
    cut_reached: AtomicBool,
    active: AtomicUsize,
}

/// A small HTTP/1.1 server on 127.0.0.1 (one request per connection, a thread each, at most
/// 64 at once, stops when dropped).
pub struct TestServer {
    pub addr: String,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

const MAX_CONN: usize = 64;
const MAX_HEAD: usize = 64 * 1024;

impl TestServer {
    pub fn start(cfg: ServerConfig) -> TestServer {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("local addr").to_string();
        let shared = Arc::new(Shared {
            cfg,
            stop: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            garbage: AtomicUsize::new(0),
            cuts_done: AtomicUsize::new(0),
            cut_reached: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        });
        let sh = shared.clone();
        let accept = thread::spawn(move || {
            let started = Instant::now();
            // Bounded: a test server lives at most 5 minutes.
            while !sh.stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(300) {
                match l.accept() {
                    Ok((s, _)) => {
                        if sh.active.load(Ordering::SeqCst) >= MAX_CONN {
                            drop(s);
                            continue;
                        }
                        sh.active.fetch_add(1, Ordering::SeqCst);
                        let sh2 = sh.clone();
                        thread::spawn(move || {
                            let _ = handle(&sh2, s);
                            sh2.active.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TestServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A pass-through proxy to the plain fixture registry.
    pub fn proxy(upstream: &str) -> TestServer {
        TestServer::start(ServerConfig {
            upstream: Some(upstream.into()),
            ..Default::default()
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("lock").clone()
    }

    pub fn cut_reached(&self) -> bool {
        self.shared.cut_reached.load(Ordering::SeqCst)
    }

    pub fn garbage_connections(&self) -> usize {
        self.shared.garbage.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn handle(sh: &Shared, mut s: TcpStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    // Read the request head.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            sh.garbage.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            sh.garbage.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if !buf[0].is_ascii_uppercase() {
            // Not HTTP (a TLS ClientHello when the client tries https first): hang up.
            sh.garbage.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        sh.garbage.fetch_add(1, Ordering::SeqCst);
        return Ok(());
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    if let Some(cl) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        let cl = cl.min(1 << 20);
        while body.len() < cl {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    sh.requests.lock().expect("lock").push(Recorded {
        method: method.to_string(),
        path: path.to_string(),
        headers: headers.clone(),
    });

    for (prefix, status, ctype, rbody) in &sh.cfg.routes {
        let hit = match prefix.strip_suffix('*') {
            Some(pre) => path.starts_with(pre),
            None => path.split('?').next() == Some(prefix.as_str()),
        };
        if hit {
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                rbody.len()
            );
            s.write_all(resp.as_bytes())?;
            if method != "HEAD" {
                s.write_all(rbody)?;
            }
            return s.flush();
        }
    }
    let Some(up) = &sh.cfg.upstream else {
        s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return s.flush();
    };

    // Forward to the upstream registry.
    let mut u = TcpStream::connect(up)?;
    u.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {up}\r\nConnection: close\r\n");
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("host") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    u.write_all(req.as_bytes())?;
    u.write_all(&body)?;
    let mut raw = Vec::new();
    u.take(256 << 20).read_to_end(&mut raw)?;
    let Some((status, rh, bstart)) = parse_response_head(&raw) else {
        return Ok(());
    };
    let mut rbody = raw[bstart..].to_vec();
    let chunked = rh.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        rbody = dechunk(&rbody);
    }
    let blob_digest = path
        .split('?')
        .next()
        .and_then(|p| p.rsplit_once("/blobs/"))
        .map(|(_, d)| d.to_string());
    let is_body = method == "GET" && (status == 200 || status == 206);
    if is_body && blob_digest.is_some() && blob_digest == sh.cfg.corrupt_blob && !rbody.is_empty() {
        let mid = rbody.len() / 2;
        rbody[mid] ^= 0xff;
    }
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in &rh {
        if [
            "connection",
            "content-length",
            "transfer-encoding",
            "keep-alive",
        ]
        .iter()
        .any(|h| k.eq_ignore_ascii_case(h))
        {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        if method == "HEAD" {
            rh.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        } else {
            rbody.len()
        }
    ));
    s.write_all(out.as_bytes())?;
    if method == "HEAD" {
        return s.flush();
    }
    if let Some((d, after, how)) = &sh.cfg.cut_blob {
        if is_body
            && blob_digest.as_deref() == Some(d.as_str())
            && sh.cuts_done.fetch_add(1, Ordering::SeqCst) < sh.cfg.cut_times.max(1)
        {
            let n = (*after).min(rbody.len());
            s.write_all(&rbody[..n])?;
            s.flush()?;
            sh.cut_reached.store(true, Ordering::SeqCst);
            if *how == Cut::Stall {
                // Hold the connection until the client goes away, the server stops, or 30 s.
                s.set_nonblocking(true)?;
                let start = Instant::now();
                let mut b = [0u8; 256];
                while !sh.stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
                    match s.read(&mut b) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => break,
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    s.write_all(&rbody)?;
    s.flush()
}

/// Routes that make a [`TestServer`] a tiny read-only registry serving one image:
/// `/v2/<repo>/manifests/<tag>`, `/v2/<repo>/blobs/<digest>` and `/v2/`.
pub fn image_routes(
    repo: &str,
    tag: &str,
    manifest: &[u8],
    media_type: &str,
    blobs: &[(String, Vec<u8>)],
) -> Vec<(String, u16, String, Vec<u8>)> {
    let mut v = vec![(
        format!("/v2/{repo}/manifests/{tag}"),
        200,
        media_type.to_string(),
        manifest.to_vec(),
    )];
    for (d, b) in blobs {
        v.push((
            format!("/v2/{repo}/blobs/{d}"),
            200,
            "application/octet-stream".into(),
            b.clone(),
        ));
    }
    v.push((
        "/v2/".into(),
        200,
        "application/json".into(),
        b"{}".to_vec(),
    ));
    v
}

/// A one-layer OCI image: `layer` is the stored blob (any compression). Returns the manifest
/// bytes, and the blobs (config, layer) with their digests.
pub fn oci_image(layer: Vec<u8>, layer_media_type: &str) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer))]}
    })
    .to_string()
    .into_bytes();
    let cd = format!("sha256:{}", sha256_hex(&config));
    let ld = format!("sha256:{}", sha256_hex(&layer));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": layer_media_type, "digest": ld, "size": layer.len()}]
    })
    .to_string()
    .into_bytes();
    (manifest, vec![(cd, config), (ld, layer)])
}

/// The shell command line that runs `udocker ARGS` as the test user with `extra_env`
/// (`K=V` words), for programs such as tmux that take one command string.
pub fn shell_cmd(t: &TestEnv, extra_env: &[&str], args: &[&str]) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut c = String::new();
    if let Some((u, g)) = t.user {
        c.push_str(&format!(
            "setpriv --reuid={u} --regid={g} --clear-groups -- "
        ));
    }
    c.push_str(&format!(
        "env -i PATH=/usr/bin:/bin TERM=xterm HOME={} UDOCKER_DIR={}",
        q(&t.home.to_string_lossy()),
        q(&t.udir.to_string_lossy())
    ));
    for e in extra_env {
        c.push(' ');
        c.push_str(&q(e));
    }
    c.push(' ');
    c.push_str(&q(&udocker_bin().to_string_lossy()));
    for a in args {
        c.push(' ');
        c.push_str(&q(a));
    }
    c
}

/// A private tmux server (its own socket) for terminal tests; killed when dropped.
pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("running tmux")
    }

    /// The text of window `t`.
    pub fn pane(&self) -> String {
        stdout(&self.cmd(&["capture-pane", "-p", "-t", "t"]))
    }

    /// Wait (20 s at most) until the pane shows `what`; returns the pane.
    pub fn wait_for(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let p = self.pane();
            if p.contains(what) {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what:?} in the terminal:\n{p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

// ---------------------------------------------------------------------------------------------
// The chroot reference of the differential tests (tracer.rs, fakechroot.rs)
// ---------------------------------------------------------------------------------------------

/// The search path of guest programs in the reference and in the engines' runs.
pub const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Wait for a child with a deadline; on timeout kill it and fail with what it printed.
pub fn run_timeout(mut c: Command, secs: u64, what: &str) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut ch = c.spawn().unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let mut so = ch.stdout.take().expect("stdout");
    let mut se = ch.stderr.take().expect("stderr");
    let to = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let te = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = ch.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = ch.kill();
            let _ = ch.wait();
            let o = Output {
                status: ch.wait().expect("wait"),
                stdout: to.join().unwrap_or_default(),
                stderr: te.join().unwrap_or_default(),
            };
            panic!("{what}: still running after {secs} s, killed\n{}", show(&o));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: to.join().unwrap_or_default(),
        stderr: te.join().unwrap_or_default(),
    }
}

/// The reference: `chroot ROOT ARGV` in a private mount namespace with the host's /proc and
/// /dev (and `binds`, host → existing guest directory) bind-mounted, as the fixture user: what
/// the kernel answers. Needs root.
pub fn chroot_run(root: &Path, binds: &[(&Path, &str)], argv: &[&str]) -> Output {
    let (u, g) = Fixtures::load().uid_gid();
    let mut script = String::from("set -e; r=$1; shift; ");
    script.push_str("mount --rbind /proc \"$r/proc\"; mount --rbind /dev \"$r/dev\"; ");
    for (h, gp) in binds {
        script.push_str(&format!("mount --bind '{}' \"$r{gp}\"; ", h.display()));
    }
    script.push_str(&format!(
        "exec chroot --userspec={u}:{g} --groups={g} \"$r\" \"$@\""
    ));
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(&script)
        .arg("sh")
        .arg(root)
        .args(argv);
    c.env_clear()
        .env("PATH", GUEST_PATH)
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8");
    run_timeout(c, 120, &format!("chroot {argv:?}"))
}

/// Output of a run as one comparable text: stdout, stderr, status.
pub fn transcript(o: &Output) -> String {
    format!(
        "{}--- stderr ---\n{}--- status {:?}\n",
        stdout(o),
        stderr(o),
        o.status.code()
    )
}
