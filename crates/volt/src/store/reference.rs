//! Image references, as the distribution spec and Docker write them:
//! `[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST]`. The first component is a
//! registry when it has a `.` or a `:` or is `localhost`; without one the
//! image is local (`web` is `web:latest`) until it is tagged for a registry.
use std::fmt;

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `localhost:5000`, `ghcr.io`, or `None` for a local name.
    pub registry: Option<String>,
    /// `web`, `library/redis`.
    pub repository: String,
    /// `latest` when none was given (and no digest).
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

fn valid_component(c: &str) -> bool {
    // Lower-case alphanumerics separated by '.', '_', '__' or runs of '-'.
    !c.is_empty()
        && c.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
        && c.as_bytes()[0].is_ascii_alphanumeric()
        && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
}

/// Whether `d` is `sha256:` and 64 lower-case hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl Reference {
    /// Parses `s`; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Reference, String> {
        let bad = |why: &str| Err(format!("invalid image reference {s:?}: {why}"));
        if s.is_empty() || s.len() > 255 {
            return bad("expected [REGISTRY/]NAME[:TAG][@DIGEST]");
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if valid_digest(d) => (r, Some(d.to_string())),
            Some(_) => return bad("the digest must be sha256: and 64 hex digits"),
            None => (s, None),
        };
        let (registry, path) = match rest.split_once('/') {
            Some((first, tail))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first.to_string()), tail)
            }
            _ => (None, rest),
        };
        if let Some(r) = &registry {
            let (host, port) = r.split_once(':').unwrap_or((r, ""));
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !host_ok || (!port.is_empty() && port.parse::<u16>().is_err()) {
                return bad("the registry must be HOST[:PORT]");
            }
        }
        // A ':' after the last '/' starts the tag.
        let (repository, tag) = match path.rfind(':') {
            Some(i) if !path[i..].contains('/') => (&path[..i], Some(&path[i + 1..])),
            _ => (path, None),
        };
        if !repository.split('/').all(valid_component) {
            return bad("names are lower-case letters, digits and . _ - between slashes");
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return bad("a tag is up to 128 letters, digits, . _ -");
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// `REGISTRY/REPOSITORY` or `REPOSITORY`.
    pub fn name(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// Whether the registry is this machine (plain HTTP is allowed there).
    pub fn is_local_registry(&self) -> bool {
        self.registry.as_deref().is_some_and(|r| {
            let host = r.rsplit_once(':').map_or(r, |(h, _)| h);
            host == "localhost" || host == "127.0.0.1" || host == "[::1]"
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn names_registries_tags_and_digests() {
        assert_eq!(r("web").to_string(), "web:latest");
        assert_eq!(r("web").registry, None);
        let x = r("localhost:5000/team/web:1");
        assert_eq!(x.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(x.repository, "team/web");
        assert_eq!(x.tag.as_deref(), Some("1"));
        assert!(x.is_local_registry());
        assert_eq!(r("ghcr.io/a/b").to_string(), "ghcr.io/a/b:latest");
        assert!(!r("ghcr.io/a/b").is_local_registry());
        let d = format!("sha256:{}", "a".repeat(64));
        let y = r(&format!("localhost:5000/web@{d}"));
        assert_eq!(y.tag, None);
        assert_eq!(y.digest.as_deref(), Some(d.as_str()));
        // A first component without '.', ':' or "localhost" is a path.
        assert_eq!(r("team/web:2").registry, None);
    }

    #[test]
    fn malformed_references_are_refused_with_a_reason() {
        for s in [
            "",
            "Web",
            "web:",
            "web:-x",
            "/web",
            "web//x",
            "localhost:port/web",
            "web@sha256:xyz",
            "we b",
        ] {
            let e = Reference::parse(s).unwrap_err();
            assert!(e.starts_with("invalid image reference"), "{s}: {e}");
        }
    }
}
