//! Manifests and indexes: docker schema 1 and 2, docker manifest lists, OCI manifests and indexes
//! (OCI image-spec `manifest.md`, `image-index.md`; distribution `docs/spec/manifest-v2-2.md`).
//! Everything here is parsed from hostile JSON: digests are validated, counts bounded.

use crate::digest::Digest;
use crate::platform::Platform;
use serde_json::Value;

pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Accept header for manifest requests, preferring multi-platform forms so `--platform` works.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, application/vnd.docker.distribution.manifest.v1+json;q=0.5, \
application/json;q=0.1";

/// Bound on manifests and indexes we accept (containerd uses the same 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: Option<u64>,
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub config: Option<Descriptor>,
    /// Bottom layer first.
    pub layers: Vec<Descriptor>,
    /// Schema 1: `history[0].v1Compatibility`, the image config as a JSON string.
    pub v1_config: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Vec<Descriptor>),
}

fn descriptor(v: &Value, default_type: &str) -> Result<Descriptor, String> {
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or("descriptor without digest")?;
    let digest = Digest::parse(digest).ok_or_else(|| format!("invalid digest {digest:?}"))?;
    let size = match v.get("size") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_u64().ok_or("invalid descriptor size")?),
    };
    let platform = v.get("platform").and_then(|p| {
        let os = p.get("os")?.as_str()?;
        let arch = p.get("architecture")?.as_str()?;
        let mut s = format!("{os}/{arch}");
        if let Some(var) = p
            .get("variant")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        {
            s = format!("{s}/{var}");
        }
        Platform::parse(&s)
    });
    let media_type = v
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(default_type)
        .to_string();
    Ok(Descriptor {
        media_type,
        digest,
        size,
        platform,
    })
}

impl ImageManifest {
    /// Parse a single-platform manifest (schema 2, OCI or schema 1).
    pub fn from_json(v: &Value) -> Result<ImageManifest, String> {
        match Manifest::from_json(v, None)? {
            Manifest::Image(m) => Ok(m),
            Manifest::Index(_) => Err("expected an image manifest, found an index".into()),
        }
    }

    /// Every blob to fetch: layers (once each) then the config, as upstream orders them.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut out: Vec<Descriptor> = Vec::new();
        for l in self.layers.iter().chain(self.config.iter()) {
            if !out.iter().any(|o| o.digest == l.digest) {
                out.push(l.clone());
            }
        }
        out
    }
}

impl Manifest {
    /// `content_type` is the response's Content-Type, used when the body has no `mediaType`.
    pub fn from_json(v: &Value, content_type: Option<&str>) -> Result<Manifest, String> {
        let obj = v.as_object().ok_or("manifest is not a JSON object")?;
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
        let mt = obj
            .get("mediaType")
            .and_then(Value::as_str)
            .or(ct)
            .unwrap_or("");
        let schema = obj.get("schemaVersion").and_then(Value::as_u64);
        if mt == OCI_INDEX
            || mt == DOCKER_LIST
            || (obj.contains_key("manifests") && !obj.contains_key("layers"))
        {
            let list = obj
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or("index without manifests")?;
            if list.len() > MAX_ENTRIES {
                return Err("index has too many entries".into());
            }
            return list
                .iter()
                .map(|d| descriptor(d, OCI_MANIFEST))
                .collect::<Result<_, _>>()
                .map(Manifest::Index);
        }
        if schema == Some(1) || obj.contains_key("fsLayers") {
            let fs = obj
                .get("fsLayers")
                .and_then(Value::as_array)
                .ok_or("schema 1 manifest without fsLayers")?;
            if fs.len() > MAX_ENTRIES {
                return Err("manifest has too many layers".into());
            }
            // fsLayers lists the top layer first.
            let mut layers = Vec::new();
            for l in fs.iter().rev() {
                let d = l
                    .get("blobSum")
                    .and_then(Value::as_str)
                    .ok_or("fsLayer without blobSum")?;
                let digest = Digest::parse(d).ok_or_else(|| format!("invalid digest {d:?}"))?;
                layers.push(Descriptor {
                    media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
                    digest,
                    size: None,
                    platform: None,
                });
            }
            let v1 = obj
                .get("history")
                .and_then(Value::as_array)
                .and_then(|h| h.first())
                .and_then(|h| h.get("v1Compatibility"))
                .and_then(Value::as_str)
                .map(str::to_string);
            return Ok(Manifest::Image(ImageManifest {
                config: None,
                layers,
                v1_config: v1,
            }));
        }
        let layers = obj
            .get("layers")
            .and_then(Value::as_array)
            .ok_or("manifest without layers")?;
        if layers.len() > MAX_ENTRIES {
            return Err("manifest has too many layers".into());
        }
        let config = obj.get("config").ok_or("manifest without config")?;
        Ok(Manifest::Image(ImageManifest {
            config: Some(descriptor(
                config,
                "application/vnd.oci.image.config.v1+json",
            )?),
            layers: layers
                .iter()
                .map(|l| descriptor(l, "application/vnd.oci.image.layer.v1.tar+gzip"))
                .collect::<Result<_, _>>()?,
            v1_config: None,
        }))
    }
}

/// Pick the index entry for `want`: the first whose platform matches. Attestation manifests
/// (`unknown/unknown`, buildkit's provenance) never match since their os is not a real one.
pub fn select_platform<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
}

/// `os/arch[/variant]` of an image config, `unknown/unknown` when it says nothing.
pub fn config_platform(config: &Value) -> String {
    let os = config
        .get("os")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let arch = config
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    match config
        .get("variant")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
    {
        Some(v) => format!("{os}/{arch}/{v}"),
        None => format!("{os}/{arch}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_kinds() {
        let idx = json!({"schemaVersion":2,"mediaType":OCI_INDEX,"manifests":[
            {"mediaType":OCI_MANIFEST,"digest":d('a'),"size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":OCI_MANIFEST,"digest":d('b'),"size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":OCI_MANIFEST,"digest":d('c'),"size":1,"platform":{"os":"unknown","architecture":"unknown"}}]});
        let Manifest::Index(e) = Manifest::from_json(&idx, None).unwrap() else {
            panic!()
        };
        assert_eq!(
            select_platform(&e, &Platform::parse("linux/amd64").unwrap())
                .unwrap()
                .digest
                .as_str(),
            d('b')
        );
        assert_eq!(
            select_platform(&e, &Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest
                .as_str(),
            d('a')
        );
        assert!(select_platform(&e, &Platform::parse("linux/s390x").unwrap()).is_none());

        let s1 = json!({"schemaVersion":1,"fsLayers":[{"blobSum":d('1')},{"blobSum":d('2')}],
            "history":[{"v1Compatibility":"{\"architecture\":\"amd64\"}"}]});
        let Manifest::Image(m) = Manifest::from_json(&s1, Some(DOCKER_V1_SIGNED)).unwrap() else {
            panic!()
        };
        assert_eq!(m.layers[0].digest.as_str(), d('2'));
        assert!(m.v1_config.unwrap().contains("amd64"));

        let bad = json!({"schemaVersion":2,"config":{"digest":"sha256:../../x"},"layers":[]});
        assert!(Manifest::from_json(&bad, None).is_err());
        assert!(Manifest::from_json(&json!([1]), None).is_err());
    }
}
