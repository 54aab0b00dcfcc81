//! Image references, parsed the way docker parses them (distribution's `reference` grammar and
//! `ParseNormalizedNamed`), not the way udocker 1.3 does: upstream splits `host:port/img:tag` at the
//! first `:` (`spec/udocker.md` §3, quirks), so `localhost:5000/img` could never be pulled.
//!
//! Grammar (distribution/reference/reference.go):
//!   reference  := name [ ":" tag ] [ "@" digest ]
//!   name       := [domain '/'] path-component ['/' path-component]*
//!   domain     := the first component when it contains '.' or ':' or is "localhost"
//!   component  := [a-z0-9]+ ( ( '.' | '_' | '__' | '-'+ ) [a-z0-9]+ )*
//!   tag        := [\w][\w.-]{0,127}

use crate::digest::Digest;
use std::fmt;

pub const DOCKER_HUB_DOMAIN: &str = "docker.io";

/// What the user typed, split into its parts. `local_name` is the repository path in the local
/// repository: the name as typed (upstream's layout, `repos/<name as typed>/<tag>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Name as typed, without tag or digest (e.g. `debian`, `127.0.0.1:5000/o/i`).
    pub local_name: String,
    /// Registry host (with port) or `None` for the default (Docker Hub, or `--registry`).
    pub domain: Option<String>,
    /// Repository path on the registry, `library/` added for single-component Docker Hub names.
    pub remote_path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReference(pub String);

impl fmt::Display for InvalidReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid image reference: {}", self.0)
    }
}

impl std::error::Error for InvalidReference {}

fn is_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // separator: '.', '_', '__' or one or more '-', always followed by alnum
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Domain: host[:port], host being dotted labels of [A-Za-z0-9-] or a bracketed IPv6 address.
fn is_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, tail)) => {
                if ip6.is_empty()
                    || !ip6
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    return false;
                }
                (
                    None,
                    tail.strip_prefix(':')
                        .map(Some)
                        .unwrap_or(if tail.is_empty() { None } else { Some("x") }),
                )
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(h) = host {
        if h.is_empty()
            || !h.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
        {
            return false;
        }
    }
    match port {
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        None => true,
    }
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Reference {
    /// Parse a reference. `explicit_registry` is true when `--registry`/`UDOCKER_REGISTRY` names the
    /// registry: then single-component names still get `library/`, as upstream does for mirrors.
    pub fn parse(input: &str) -> Result<Reference, InvalidReference> {
        let bad = || InvalidReference(input.to_string());
        if input.is_empty()
            || input.len() > 4096
            || input.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad());
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).ok_or_else(bad)?)),
            None => (input, None),
        };
        // The tag is after the last ':' only if that ':' follows the last '/' (else it is a port).
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(c) if last_slash.is_none_or(|s| c > s) => (&rest[..c], Some(&rest[c + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return Err(bad());
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, p))
                if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
            {
                if !is_domain(first) {
                    return Err(bad());
                }
                (Some(first.to_string()), p)
            }
            _ => (None, name),
        };
        if path.is_empty() || !path.split('/').all(is_component) || name.len() > 255 {
            return Err(bad());
        }
        let hub = domain
            .as_deref()
            .is_none_or(|d| matches!(d, "docker.io" | "index.docker.io" | "registry-1.docker.io"));
        let remote_path = if hub && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        Ok(Reference {
            local_name: name.to_string(),
            domain,
            remote_path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The tag directory name in the local repository: the digest when one was given (as upstream,
    /// which stores `img@sha256:x` under `repos/img/sha256:x`), else the tag, else `latest`.
    pub fn local_tag(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }

    /// What to ask the registry's manifest endpoint for.
    pub fn remote_reference(&self) -> String {
        self.digest
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_else(|| self.tag.clone().unwrap_or_else(|| "latest".into()))
    }

    /// `name:tag` or `name@digest` as shown to users.
    pub fn display_local(&self) -> String {
        local_display(&self.local_name, &self.local_tag())
    }
}

/// `name:tag`, or `name@sha256:…` when the tag directory is a digest.
pub fn local_display(name: &str, tag: &str) -> String {
    if Digest::parse(tag).is_some() {
        format!("{name}@{tag}")
    } else {
        format!("{name}:{tag}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn docker_hub_names() {
        let r = p("busybox");
        assert_eq!(
            (
                r.domain.as_deref(),
                r.remote_path.as_str(),
                r.local_tag().as_str()
            ),
            (None, "library/busybox", "latest")
        );
        let r = p("debian:bookworm");
        assert_eq!(
            (r.remote_path.as_str(), r.tag.as_deref()),
            ("library/debian", Some("bookworm"))
        );
        let r = p("docker.io/library/debian");
        assert_eq!(
            (r.domain.as_deref(), r.remote_path.as_str()),
            (Some("docker.io"), "library/debian")
        );
        let r = p("docker.io/python:3-slim");
        assert_eq!(r.remote_path, "library/python");
        assert_eq!(r.local_name, "docker.io/python");
    }

    #[test]
    fn host_port_is_not_a_tag() {
        let r = p("localhost:5000/i");
        assert_eq!(
            (
                r.domain.as_deref(),
                r.remote_path.as_str(),
                r.tag.as_deref()
            ),
            (Some("localhost:5000"), "i", None)
        );
        let d = format!("sha256:{}", "0".repeat(64));
        let r = p(&format!("127.0.0.1:5000/o/i@{d}"));
        assert_eq!(r.domain.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.remote_path, "o/i");
        assert_eq!(r.local_tag(), d);
        assert_eq!(r.remote_reference(), d);
        let r = p("ghcr.io/o/i:t");
        assert_eq!(
            (
                r.domain.as_deref(),
                r.remote_path.as_str(),
                r.tag.as_deref()
            ),
            (Some("ghcr.io"), "o/i", Some("t"))
        );
        let r = p("localhost/img");
        assert_eq!(r.domain.as_deref(), Some("localhost"));
        let r = p("[::1]:5000/img:1");
        assert_eq!(r.domain.as_deref(), Some("[::1]:5000"));
    }

    #[test]
    fn bad_syntax() {
        for s in [
            "",
            "UPPER",
            "a b",
            "img:",
            "img:-x",
            "img@sha256:zz",
            "-x",
            "a//b",
            "a/",
            "img:t:t",
            "ho$t:5000/x",
            "a..b",
            ":tag",
        ] {
            assert!(Reference::parse(s).is_err(), "{s} accepted");
        }
    }
}
