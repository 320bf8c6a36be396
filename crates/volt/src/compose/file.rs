//! The compose file: the subset of the compose specification volt runs —
//! services with `image` or `build`, `command`, `environment`, `ports`,
//! `volumes`, `depends_on`, `restart`, `mem_limit`, and top-level named
//! `volumes`. Keys outside it are refused by name (`x-` extensions are
//! allowed), so a file never half-works.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Names tried, in order, when no `-f` is given.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

#[derive(Debug, Deserialize)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    /// Obsolete in the specification; accepted and ignored.
    #[serde(default)]
    pub version: Option<serde_yaml_ng::Value>,
    pub services: BTreeMap<String, Service>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<serde_yaml_ng::Value>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub build: Option<Build>,
    #[serde(default)]
    pub command: Option<Command>,
    #[serde(default)]
    pub environment: Option<Environment>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub depends_on: Option<DependsOn>,
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub mem_limit: Option<PortSpec>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Build {
    Context(String),
    Full {
        context: String,
        #[serde(default)]
        file: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Words(Vec<String>),
    Line(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Environment {
    Map(BTreeMap<String, Option<Scalar>>),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, serde_yaml_ng::Value>),
}

/// A string or a number, as YAML gives `8080:8080` or `8080`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    S(String),
    N(i64),
    F(f64),
    B(bool),
}

pub type PortSpec = Scalar;

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::S(s) => s.clone(),
            Scalar::N(n) => n.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

impl Service {
    /// The environment as `KEY=VALUE`.
    pub fn env(&self) -> Vec<String> {
        match &self.environment {
            None => Vec::new(),
            Some(Environment::List(l)) => l.clone(),
            Some(Environment::Map(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={}", v.text()),
                    None => k.clone(),
                })
                .collect(),
        }
    }

    /// The services this one starts after.
    pub fn depends(&self) -> Vec<String> {
        match &self.depends_on {
            None => Vec::new(),
            Some(DependsOn::List(l)) => l.clone(),
            Some(DependsOn::Map(m)) => m.keys().cloned().collect(),
        }
    }

    /// The command's words, if the file gives one.
    pub fn command_words(&self) -> Option<Vec<String>> {
        match &self.command {
            None => None,
            Some(Command::Words(w)) => Some(w.clone()),
            Some(Command::Line(l)) => Some(l.split_whitespace().map(String::from).collect()),
        }
    }

    /// `volt run --restart`'s value.
    pub fn restart_policy(&self) -> Result<Option<String>> {
        Ok(match self.restart.as_deref() {
            None | Some("no") => None,
            Some("always") | Some("unless-stopped") => Some("always".into()),
            Some(r) if r == "on-failure" || r.starts_with("on-failure:") => Some(r.into()),
            Some(r) => bail!("restart: {r:?} (no, always, on-failure[:N], unless-stopped)"),
        })
    }
}

/// A compose file read and checked, with where it is.
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    pub file: ComposeFile,
    /// Services in start order (each after what it depends on).
    pub order: Vec<String>,
}

/// Finds and reads the compose file.
pub fn load(file: Option<&Path>, project: Option<&str>) -> Result<Project> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("no compose.yaml (or docker-compose.yml) here; give one with -f")?,
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let file: ComposeFile = serde_yaml_ng::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {e}", path.display())
    })?;
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let name = match project.map(String::from).or(file.name.clone()) {
        Some(n) => n,
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "default".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect(),
    };
    let where_ = path.display().to_string();
    check(&where_, &name, &file)?;
    let order = start_order(&where_, &file)?;
    Ok(Project {
        name,
        dir,
        file,
        order,
    })
}

fn unsupported(
    where_: &str,
    scope: &str,
    other: &BTreeMap<String, serde_yaml_ng::Value>,
) -> Result<()> {
    if let Some(k) = other.keys().find(|k| !k.starts_with("x-")) {
        bail!("{where_}: {scope}{k:?} is not supported by volt compose");
    }
    Ok(())
}

fn check(where_: &str, name: &str, f: &ComposeFile) -> Result<()> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 24 || !name.chars().all(ok) {
        bail!("{where_}: project name {name:?}: 1 to 24 of a-z, 0-9, '-', '_' (give one with -p)");
    }
    unsupported(where_, "", &f.other)?;
    if f.services.is_empty() {
        bail!("{where_}: no services");
    }
    for (s, svc) in &f.services {
        let okname = !s.is_empty()
            && s.len() <= 24
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !okname {
            bail!("{where_}: service name {s:?}: 1 to 24 letters, digits, '-', '_'");
        }
        unsupported(where_, &format!("services.{s}."), &svc.other)?;
        if svc.image.is_none() && svc.build.is_none() {
            bail!("{where_}: services.{s}: needs an image or a build");
        }
        for d in svc.depends() {
            if !f.services.contains_key(&d) {
                bail!("{where_}: services.{s}.depends_on: no service {d:?}");
            }
        }
        svc.restart_policy()
            .map_err(|e| anyhow::anyhow!("{where_}: services.{s}.{e}"))?;
        for v in &svc.volumes {
            let m = crate::volumes::parse(v)
                .map_err(|e| anyhow::anyhow!("{where_}: services.{s}.volumes: {e}"))?;
            if let crate::volumes::Source::Named(n) = &m.source {
                if !f.volumes.contains_key(n) {
                    bail!("{where_}: services.{s}.volumes: {n:?} is not declared under the top-level volumes");
                }
            }
        }
    }
    Ok(())
}

/// Services so that each comes after those it depends on; a cycle is an error.
fn start_order(where_: &str, f: &ComposeFile) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut visiting: Vec<String> = Vec::new();
    fn visit(
        s: &str,
        f: &ComposeFile,
        order: &mut Vec<String>,
        visiting: &mut Vec<String>,
        where_: &str,
    ) -> Result<()> {
        if order.iter().any(|o| o == s) {
            return Ok(());
        }
        if visiting.iter().any(|v| v == s) {
            bail!("{where_}: depends_on goes round in a circle through {s:?}");
        }
        visiting.push(s.to_string());
        for d in f.services[s].depends() {
            visit(&d, f, order, visiting, where_)?;
        }
        visiting.pop();
        order.push(s.to_string());
        Ok(())
    }
    for s in f.services.keys() {
        visit(s, f, &mut order, &mut visiting, where_)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Result<Project> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ov-compose-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("compose.yaml");
        std::fs::write(&p, yaml).unwrap();
        load(Some(&p), Some("t"))
    }

    #[test]
    fn services_start_after_what_they_depend_on() {
        let p = project(
            "services:\n  web:\n    image: w\n    depends_on: [db]\n  db:\n    image: d\n    environment:\n      A: 1\n      B:\n  a:\n    build: ./a\n    depends_on:\n      web: {condition: service_started}\n",
        )
        .unwrap();
        assert_eq!(p.order, ["db", "web", "a"]);
        assert_eq!(p.file.services["db"].env(), ["A=1", "B"]);
    }

    #[test]
    fn bad_files_say_where() {
        let e = |y: &str| project(y).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e("services:\n  a:\n    image: x\n    privileged: true\n")
            .contains("\"privileged\" is not supported"));
        assert!(
            e("services:\n  a:\n    image: x\n    depends_on: [b]\n").contains("no service \"b\"")
        );
        assert!(e("services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: y\n    depends_on: [a]\n").contains("circle"));
        assert!(e("services:\n  a: {}\n").contains("needs an image or a build"));
        assert!(
            e("services:\n  a:\n    image: x\n    volumes: [\"data:/d\"]\n")
                .contains("not declared")
        );
        assert!(e("services:\n  a:\n    image: [x\n").contains("compose.yaml:"));
        assert!(e("services:\n  a:\n    image: x\n    restart: sometimes\n").contains("restart"));
        assert!(e("services:\n  a:\n    image: x\nx-extra: 1\n").is_empty());
    }
}
