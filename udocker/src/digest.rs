//! Content digests (`algorithm:hex`), as the OCI image spec defines them ("descriptor.md#digests").
//!
//! Every digest that comes from outside (manifests, registry headers, file names) is validated here
//! before it is used to build a path, so a hostile manifest cannot name `../../etc/passwd` as a layer.

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::io::{self, Read};

/// A validated content digest. Only sha256 and sha512 are accepted (the OCI spec's registered
/// algorithms); the hex part is lowercase and of the algorithm's exact length.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let (algo, hex) = s.split_once(':')?;
        let len = match algo {
            "sha256" => 64,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        Some(Digest(s.to_string()))
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex(&Sha256::digest(data))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn algorithm(&self) -> Algorithm {
        if self.0.starts_with("sha512:") {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        }
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or(&self.0)
    }

    /// A fresh hasher of this digest's algorithm.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm())
    }

    /// Hash everything `r` yields and compare with this digest.
    pub fn matches_reader(&self, r: &mut dyn Read) -> io::Result<bool> {
        let mut h = self.hasher();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
        }
        Ok(h.finish() == *self)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Incremental hasher producing a [`Digest`].
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    pub fn new(algo: Algorithm) -> Hasher {
        match algo {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest(format!("sha256:{}", hex(&h.finalize()))),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex(&h.finalize()))),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&good).is_some());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(Digest::parse("sha256:../../etc/passwd").is_none());
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(32))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_none());
    }

    #[test]
    fn hashes_empty() {
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
