//! Image platforms (`os/architecture[/variant]`) as the OCI image index spec names them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the machine we run on, in Go's GOARCH spelling (what registries use).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parse `os/arch[/variant]` (also `arch` alone, meaning linux). Accepts the kernel's spellings
    /// (`x86_64`, `aarch64`) and normalises them, as containerd's `platforms.Normalize` does.
    pub fn parse(s: &str) -> Option<Platform> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => ("linux", *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return None,
        };
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !ok(os) || !ok(arch) || variant.is_some_and(|v| !ok(v)) {
            return None;
        }
        let (arch, variant) = normalize_arch(
            &arch.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase),
        );
        Some(Platform {
            os: os.to_ascii_lowercase(),
            architecture: arch,
            variant,
        })
    }

    /// Does an index entry's platform satisfy this (requested) one? The variant is compared only
    /// when one was asked for, except that `arm64` and `arm64/v8` are the same thing.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match (&self.variant, &other.variant) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(a), None) => self.architecture == "arm64" && a == "v8",
        }
    }
}

fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant),
        "i386" | "i486" | "i586" | "i686" | "386" => ("386".into(), None),
        "aarch64" | "arm64" => ("arm64".into(), variant),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "ppc64el" => ("ppc64le".into(), variant),
        other => (other.into(), variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        let entry = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        };
        assert!(arm.matches(&entry));
        assert!(Platform::parse("linux/arm64")
            .unwrap()
            .matches(&Platform::parse("linux/arm64/v8").unwrap()));
        assert!(!Platform::parse("linux/arm/v6")
            .unwrap()
            .matches(&Platform::parse("linux/arm/v7").unwrap()));
        assert!(Platform::parse("a/b/c/d").is_none());
        assert!(Platform::parse("linux/../x").is_none());
    }
}
