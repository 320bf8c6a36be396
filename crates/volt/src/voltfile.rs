//! The Voltfile: how an image is built and run, in YAML (in the spirit of
//! KraftKit's Kraftfile and the compose specification). Unknown keys and
//! wrong types are errors with the file, line and column; so are values
//! that parse but mean nothing (a size, a port, a restart policy). Its JSON
//! Schema (`docs/voltfile.schema.json`) is generated from these types.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// A Voltfile.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Voltfile",
    description = "How OptiVolt builds and runs an image."
)]
pub struct Voltfile {
    /// Version of this format.
    pub spec: Spec,
    /// The image's name (the repository `volt build` tags when no `-t` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the root file system comes from, relative to the Voltfile: a
    /// directory, a `.tar`, `.tar.gz`/`.tgz` or `.cpio` file, an OCI image
    /// (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`), or a `Dockerfile`
    /// (built with buildah).
    pub rootfs: String,
    /// The program and its first arguments; `cmd` follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The command (after `entrypoint`); arguments given to `volt run IMAGE` replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Labels of the image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Guest memory, e.g. `128M`, `1G` (a bare number is MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Ports the program listens on, `PORT[/tcp|/udp]` (documentation, as
    /// in a Dockerfile's EXPOSE: `volt run -p` publishes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Guest directories meant to be volumes (`volt run -v` mounts them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<GuestPath>,
    /// The working directory of the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<GuestPath>,
    /// What to do when the program ends: `no`, `on-failure[:N]`, `always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
}

/// The format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Spec {
    #[serde(rename = "v1")]
    V1,
}

/// An environment value: YAML scalars are taken as their text, as compose does.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(with = "EnvValueSchema")]
pub struct EnvValue(pub String);

#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum EnvValueSchema {
    S(String),
    N(f64),
    B(bool),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Defines a string-typed value checked by `$check` when it is read.
macro_rules! checked_string {
    ($(#[$m:meta])* $name:ident, $pattern:literal, $check:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
        #[serde(transparent)]
        pub struct $name(#[schemars(regex(pattern = $pattern))] pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Checked inside the visitor, so that the YAML reader gives
                // the error the value's line and column.
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        let check: fn(&str) -> Result<(), String> = $check;
                        check(s).map_err(E::custom)?;
                        Ok($name(s.to_string()))
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$name, E> {
                        self.visit_str(&n.to_string())
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

checked_string!(
    /// A memory size (`128M`, `1G`, `512` = MiB).
    Memory,
    r"^[0-9]+([KkMmGg][iI]?[Bb]?)?$",
    |s| crate::image::size::parse(s).map(|_| ())
);

checked_string!(
    /// `PORT[/tcp|/udp]`.
    Port,
    r"^[0-9]{1,5}(/(tcp|udp))?$",
    |s| parse_port(s).map(|_| ())
);

checked_string!(
    /// An absolute guest path.
    GuestPath,
    r"^/",
    |s| {
        if s.starts_with('/') && !s.split('/').any(|c| c == "..") {
            Ok(())
        } else {
            Err(format!("{s:?} is not an absolute guest path without '..'"))
        }
    }
);

checked_string!(
    /// `no`, `always`, `on-failure` or `on-failure:N`.
    Restart,
    r"^(no|always|on-failure(:[0-9]+)?)$",
    |s| crate::restart::Policy::parse(s).map(|_| ())
);

impl Memory {
    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        crate::image::size::parse(&self.0).unwrap_or(0)
    }
}

/// Reads `PORT[/tcp|/udp]`.
pub fn parse_port(s: &str) -> Result<(u16, &'static str), String> {
    let (n, proto) = match s.split_once('/') {
        None => (s, "tcp"),
        Some((n, "tcp")) => (n, "tcp"),
        Some((n, "udp")) => (n, "udp"),
        Some((_, p)) => return Err(format!("port {s:?}: unknown protocol {p:?} (tcp or udp)")),
    };
    match n.parse::<u16>() {
        Ok(p) if p > 0 => Ok((p, proto)),
        _ => Err(format!("port {s:?}: expected a number from 1 to 65535")),
    }
}

impl Voltfile {
    /// Parses `text`, read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Voltfile> {
        serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            // serde_yaml_ng appends " at line L column C": the prefix says it.
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) if !at.is_empty() => msg[..i].to_string(),
                _ => msg,
            };
            anyhow::anyhow!("{}{at}: {msg}", path.display())
        })
    }

    /// Reads the Voltfile at `path`.
    pub fn load(path: &Path) -> Result<Voltfile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// The rootfs source, resolved against the Voltfile's directory.
    pub fn rootfs_source(&self, dir: &Path) -> crate::store::build::RootfsSource {
        crate::store::build::RootfsSource::parse(&self.rootfs, dir)
    }

    /// The environment as `KEY=VALUE` strings.
    pub fn env_list(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={}", v.0))
            .collect()
    }
}

/// The Voltfile in `context` (`CONTEXT/Voltfile`), or the file named.
pub fn find(context: &Path, file: Option<&Path>) -> PathBuf {
    match file {
        Some(f) => f.to_path_buf(),
        None => context.join("Voltfile"),
    }
}

/// The JSON Schema of the format, pretty-printed with a final newline.
pub fn schema() -> String {
    let s = schemars::schema_for!(Voltfile);
    let mut out = serde_json::to_string_pretty(&s).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Voltfile> {
        Voltfile::parse(s, Path::new("Voltfile"))
    }

    #[test]
    fn the_example_of_the_issue_parses() {
        let v = parse(
            "spec: v1\nname: web\nrootfs: ./rootfs\ncmd: [\"/app/web\", \"--port\", \"8080\"]\n\
             env: {GOMAXPROCS: \"1\", N: 2}\nmemory: 128M\nports: [\"8080/tcp\"]\nrestart: on-failure:3\n",
        )
        .unwrap();
        assert_eq!(v.spec, Spec::V1);
        assert_eq!(v.name.as_deref(), Some("web"));
        assert_eq!(v.cmd.as_ref().unwrap()[0], "/app/web");
        assert_eq!(v.env_list(), ["GOMAXPROCS=1", "N=2"]);
        assert_eq!(v.memory.as_ref().unwrap().bytes(), 128 << 20);
        assert_eq!(parse_port(&v.ports[0].0).unwrap(), (8080, "tcp"));
    }

    #[test]
    fn errors_name_the_file_line_and_column() {
        let e = parse("spec: v1\nrootfs: .\nport: [80]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Voltfile:3:1: unknown field `port`"), "{e}");
        let e = parse("spec: v1\nrootfs: .\nmemory: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Voltfile:3:9: "), "{e}");
        let e = parse("spec: v1\nrootfs: .\ncmd: /bin/app\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Voltfile:3:6: cmd: invalid type"), "{e}");
        let e = parse("spec: v2\nrootfs: .\n").unwrap_err().to_string();
        assert!(e.starts_with("Voltfile:1:7: "), "{e}");
        let e = parse("spec: v1\n").unwrap_err().to_string();
        assert!(e.contains("missing field `rootfs`"), "{e}");
        let e = parse("spec: v1\nrootfs: .\nports: [\"80/sctp\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown protocol"), "{e}");
        let e = parse("spec: v1\nrootfs: .\nrestart: sometimes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("restart"), "{e}");
        let e = parse("spec: v1\nrootfs: .\nvolumes: [data]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("absolute guest path"), "{e}");
        let e = parse("spec: v1\nrootfs: [\n").unwrap_err().to_string();
        assert!(e.starts_with("Voltfile:"), "{e}");
    }

    #[test]
    fn the_schema_in_docs_is_the_one_the_code_generates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/voltfile.schema.json");
        let now = schema();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            doc == now,
            "docs/voltfile.schema.json is stale: run UPDATE_DOCS=1 cargo test -p optivolt-volt voltfile"
        );
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let props = v["properties"].as_object().unwrap();
        for key in [
            "spec", "name", "rootfs", "cmd", "env", "memory", "ports", "restart",
        ] {
            assert!(props.contains_key(key), "{key} missing from the schema");
        }
        assert_eq!(v["additionalProperties"], serde_json::json!(false));
        assert_eq!(v["required"], serde_json::json!(["spec", "rootfs"]));
    }
}
