//! Registry credentials, in upstream's keystore format (`spec/udocker.md` §3):
//! `{"<registry url>": {"auth": "<base64 user:pass>", "email": ""}}`, file mode 0600.
//! The file is refused when it is not ours or is readable by others, as upstream does, and always
//! rewritten atomically (temp + fsync + rename) with mode 0600.

use crate::fsutil;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum KeystoreError {
    Io(PathBuf, io::Error),
    Insecure(PathBuf, String),
    Corrupt(PathBuf, String),
}

impl fmt::Display for KeystoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeystoreError::Io(p, e) => write!(f, "keystore {}: {e}", p.display()),
            KeystoreError::Insecure(p, why) => write!(f, "keystore {} refused: {why}", p.display()),
            KeystoreError::Corrupt(p, why) => {
                write!(f, "keystore {} is corrupt: {why}", p.display())
            }
        }
    }
}

impl std::error::Error for KeystoreError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            b64_encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

#[derive(Debug)]
pub struct Keystore {
    path: PathBuf,
}

/// The key a registry is filed under: lower-case host[:port], with Docker Hub's aliases folded.
/// Upstream files entries by URL (`https://host`); we accept those and compare hosts.
pub fn registry_key(url_or_host: &str) -> String {
    let s = url_or_host.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "registry-1.docker.io".into()
        }
        _ => host,
    }
}

impl Keystore {
    pub fn new(path: &Path) -> Keystore {
        Keystore {
            path: path.to_path_buf(),
        }
    }

    fn check_safe(&self) -> Result<bool, KeystoreError> {
        let m = match fs::symlink_metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(KeystoreError::Io(self.path.clone(), e)),
        };
        let uid = nix::unistd::geteuid().as_raw();
        if !m.file_type().is_file() {
            return Err(KeystoreError::Insecure(
                self.path.clone(),
                "not a regular file".into(),
            ));
        }
        if m.uid() != uid {
            return Err(KeystoreError::Insecure(
                self.path.clone(),
                "not owned by the user".into(),
            ));
        }
        if m.mode() & 0o077 != 0 {
            return Err(KeystoreError::Insecure(
                self.path.clone(),
                format!("mode {:o} gives access to others", m.mode() & 0o777),
            ));
        }
        Ok(true)
    }

    fn read_all(&self) -> Result<BTreeMap<String, serde_json::Value>, KeystoreError> {
        if !self.check_safe()? {
            return Ok(BTreeMap::new());
        }
        let text =
            fs::read_to_string(&self.path).map_err(|e| KeystoreError::Io(self.path.clone(), e))?;
        if text.trim().is_empty() {
            return Ok(BTreeMap::new());
        }
        serde_json::from_str(&text)
            .map_err(|e| KeystoreError::Corrupt(self.path.clone(), e.to_string()))
    }

    fn write_all(&self, map: &BTreeMap<String, serde_json::Value>) -> Result<(), KeystoreError> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| KeystoreError::Io(dir.to_path_buf(), e))?;
        }
        let data = serde_json::to_vec_pretty(map).expect("json map serialises");
        fsutil::write_atomic(&self.path, &data, 0o600)
            .map_err(|e| KeystoreError::Io(self.path.clone(), e))
    }

    /// Credentials stored for a registry (matched by host, so `https://h`, `h` and `http://h` agree).
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, KeystoreError> {
        let want = registry_key(registry);
        for (k, v) in self.read_all()? {
            if registry_key(&k) != want {
                continue;
            }
            let Some(auth) = v.get("auth").and_then(|a| a.as_str()) else {
                continue;
            };
            let raw = b64_decode(auth).ok_or_else(|| {
                KeystoreError::Corrupt(self.path.clone(), format!("bad base64 for {k}"))
            })?;
            let s = String::from_utf8(raw).map_err(|_| {
                KeystoreError::Corrupt(self.path.clone(), format!("bad auth for {k}"))
            })?;
            let (u, p) = s.split_once(':').ok_or_else(|| {
                KeystoreError::Corrupt(self.path.clone(), format!("bad auth for {k}"))
            })?;
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
        Ok(None)
    }

    /// Store credentials under `url` (replacing any entry for the same host).
    pub fn put(&self, url: &str, c: &Credentials) -> Result<(), KeystoreError> {
        let mut map = self.read_all()?;
        let key = registry_key(url);
        map.retain(|k, _| registry_key(k) != key);
        let auth = b64_encode(format!("{}:{}", c.username, c.password).as_bytes());
        map.insert(
            url.to_string(),
            serde_json::json!({"auth": auth, "email": ""}),
        );
        self.write_all(&map)
    }

    /// Remove the entry of one registry; returns whether there was one.
    pub fn delete(&self, url: &str) -> Result<bool, KeystoreError> {
        let mut map = self.read_all()?;
        let key = registry_key(url);
        let before = map.len();
        map.retain(|k, _| registry_key(k) != key);
        if map.len() == before {
            return Ok(false);
        }
        self.write_all(&map)?;
        Ok(true)
    }

    /// `logout -a`: overwrite the file, then unlink it.
    pub fn erase(&self) -> Result<(), KeystoreError> {
        match fs::metadata(&self.path) {
            Ok(m) => {
                let _ = fsutil::write_atomic(&self.path, &vec![b' '; m.len() as usize], 0o600);
                fs::remove_file(&self.path).map_err(|e| KeystoreError::Io(self.path.clone(), e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(KeystoreError::Io(self.path.clone(), e)),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base64_roundtrip() {
        for s in ["", "a", "ab", "abc", "user:pass", "testuser:testpass"] {
            assert_eq!(b64_decode(&b64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(b64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(b64_decode("a$b").is_none());
    }

    #[test]
    fn store_get_delete() {
        let d = tempfile::tempdir().unwrap();
        let ks = Keystore::new(&d.path().join("keystore"));
        let c = Credentials {
            username: "u".into(),
            password: "p:x".into(),
        };
        ks.put("https://127.0.0.1:5001", &c).unwrap();
        assert_eq!(
            fs::metadata(d.path().join("keystore"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(ks.get("127.0.0.1:5001").unwrap(), Some(c.clone()));
        assert_eq!(ks.get("http://127.0.0.1:5001/").unwrap(), Some(c));
        assert!(ks.get("docker.io").unwrap().is_none());
        fs::set_permissions(d.path().join("keystore"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(ks.get("127.0.0.1:5001").is_err());
        fs::set_permissions(d.path().join("keystore"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(ks.delete("https://127.0.0.1:5001").unwrap());
        assert!(!ks.delete("https://127.0.0.1:5001").unwrap());
        ks.erase().unwrap();
        assert!(!d.path().join("keystore").exists());
    }
}
