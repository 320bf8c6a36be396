//! Volumes: `volt run -v SRC:DST[:ro]` and `volt volume create|ls|rm|inspect|prune`.
//!
//! A bind volume is a host directory; a named volume is a directory volt
//! keeps in its data directory (`volumes/NAME/_data`, beside
//! `volumes/NAME/volume.json`), made on first use as docker does. The
//! monitor serves either to the guest (crates/vmm/src/volume).
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use optivolt_vmm::volume::VolumeConfig;
use serde::{Deserialize, Serialize};

use crate::images::Output;

/// One `-v` as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: Source,
    /// Absolute guest path.
    pub guest: String,
    pub readonly: bool,
}

/// Where a volume's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A host directory (`./data`, `/srv/data`).
    Host(PathBuf),
    /// A named volume.
    Named(String),
}

/// Parses `SRC:DST[:ro|rw]`: SRC is a host path when it has a `/` or starts
/// with `.` or `~`, else a volume name.
pub fn parse(spec: &str) -> Result<Mount> {
    let bad = |why: &str| anyhow::anyhow!("-v {spec}: {why} (expected SRC:DST[:ro], DST absolute)");
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, None),
        [s, d, m] => (*s, *d, Some(*m)),
        _ => return Err(bad("wrong number of ':'")),
    };
    let readonly = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => return Err(bad(&format!("unknown mode {m:?}"))),
    };
    if src.is_empty() {
        return Err(bad("empty source"));
    }
    let guest = guest_path(dst).map_err(bad)?;
    let source = if src.contains('/') || src.starts_with('.') || src.starts_with('~') {
        let p = match src.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest),
            None => PathBuf::from(src),
        };
        Source::Host(p)
    } else if valid_name(src) {
        Source::Named(src.to_string())
    } else {
        return Err(bad("a volume name is letters, digits, '_', '.', '-'"));
    };
    Ok(Mount {
        source,
        guest,
        readonly,
    })
}

/// A normalised absolute guest path other than `/`.
fn guest_path(p: &str) -> Result<String, &'static str> {
    if !p.starts_with('/') {
        return Err("the guest path must be absolute");
    }
    let comps: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if comps.contains(&"..") {
        return Err("the guest path may not contain '..'");
    }
    if comps.is_empty() {
        return Err("a volume cannot be mounted on /");
    }
    Ok(format!("/{}", comps.join("/")))
}

/// Whether `n` is a volume name.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// What volt records about a named volume.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    pub created: i64,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

fn root() -> PathBuf {
    crate::store::data_dir().join("volumes")
}

/// The directory of named volume `name`'s files.
pub fn data_of(name: &str) -> PathBuf {
    root().join(name).join("_data")
}

/// Makes a named volume; `Ok(false)` if it exists already.
pub fn create(name: &str, labels: &[(String, String)]) -> Result<bool> {
    if !valid_name(name) {
        bail!("{name:?} is not a volume name (letters, digits, '_', '.', '-')");
    }
    std::fs::create_dir_all(root()).with_context(|| format!("creating {}", root().display()))?;
    // Made under a temporary name and renamed: never half there.
    let tmp = root().join(format!(".new-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("_data"))?;
    let meta = Meta {
        name: name.to_string(),
        created: crate::instance::now(),
        labels: labels.iter().cloned().collect(),
    };
    std::fs::write(tmp.join("volume.json"), serde_json::to_vec_pretty(&meta)?)?;
    match std::fs::rename(&tmp, root().join(name)) {
        Ok(()) => Ok(true),
        Err(_) if root().join(name).join("volume.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e).with_context(|| format!("creating volume {name}"))
        }
    }
}

pub fn meta(name: &str) -> Result<Meta> {
    let p = root().join(name).join("volume.json");
    let b = std::fs::read(&p).map_err(|_| anyhow::anyhow!("no such volume: {name}"))?;
    serde_json::from_slice(&b).with_context(|| format!("reading {}", p.display()))
}

pub fn all() -> Result<Vec<Meta>> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(root()) else {
        return Ok(v);
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with('.') {
            if let Ok(m) = meta(&n) {
                v.push(m);
            }
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// The monitor's volumes for these mounts: host directories must exist;
/// named volumes are made if missing. Checked before any VM starts.
pub fn resolve(mounts: &[Mount]) -> Result<Vec<VolumeConfig>> {
    let mut out: Vec<VolumeConfig> = Vec::new();
    for m in mounts {
        let host = match &m.source {
            Source::Host(p) => {
                let c = p
                    .canonicalize()
                    .with_context(|| format!("-v {}: the host directory", p.display()))?;
                if !c.is_dir() {
                    bail!(
                        "-v {}: not a directory (volumes are directories)",
                        p.display()
                    );
                }
                c
            }
            Source::Named(n) => {
                create(n, &[])?;
                data_of(n)
            }
        };
        if out.iter().any(|o| o.guest == m.guest) {
            bail!("-v: two volumes on {}", m.guest);
        }
        out.push(VolumeConfig {
            host,
            guest: m.guest.clone(),
            readonly: m.readonly,
        });
    }
    if out.len() > optivolt_abi::volume::MAX_VOLUMES {
        bail!("-v: at most {} volumes", optivolt_abi::volume::MAX_VOLUMES);
    }
    Ok(out)
}

/// The `-v` argument that mounts `v` again (for a supervisor's `volt run`).
pub fn spec_of(v: &VolumeConfig) -> String {
    let mut s = format!("{}:{}", v.host.display(), v.guest);
    if v.readonly {
        s.push_str(":ro");
    }
    s
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Make a named volume.
    Create(CreateArgs),
    /// List named volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove named volumes (refused while an instance uses one; -f: anyway).
    Rm(RmArgs),
    /// Print volumes as JSON.
    Inspect(NamesArgs),
    /// Remove every named volume no instance uses.
    Prune,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The name.
    pub name: String,
    /// A label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
    /// Names only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove even if an instance uses it.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Instances (by name) whose `volt run` mounts `dir`.
fn users(dir: &Path) -> Result<Vec<String>> {
    let mut db = crate::instance::Db::open_default()?;
    let want = dir.to_string_lossy().into_owned();
    Ok(db
        .list()?
        .into_iter()
        .filter(|i| {
            i.args
                .windows(2)
                .any(|w| w[0] == "--volume" && w[1].split(':').next() == Some(want.as_str()))
        })
        .map(|i| i.name)
        .collect())
}

fn json_of(m: &Meta) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "name": m.name,
        "driver": "local",
        "mountpoint": data_of(&m.name),
        "created": m.created,
        "labels": m.labels,
        "in_use_by": users(&data_of(&m.name))?,
    }))
}

pub fn volume(c: VolumeCommand) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match c {
        VolumeCommand::Create(a) => {
            let labels = a
                .labels
                .iter()
                .map(|l| match l.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => bail!("--label {l}: expected KEY=VALUE"),
                })
                .collect::<Result<Vec<_>>>()?;
            if !create(&a.name, &labels)? {
                bail!("volume {} already exists", a.name);
            }
            writeln!(out, "{}", a.name)?;
        }
        VolumeCommand::Ls(a) => {
            let list = all()?;
            if a.quiet {
                for m in &list {
                    writeln!(out, "{}", m.name)?;
                }
            } else if a.output == Output::Json {
                let v = list.iter().map(json_of).collect::<Result<Vec<_>>>()?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{:<8}  VOLUME NAME", "DRIVER")?;
                for m in &list {
                    writeln!(out, "{:<8}  {}", "local", m.name)?;
                }
            }
        }
        VolumeCommand::Inspect(a) => {
            let v = a
                .names
                .iter()
                .map(|n| meta(n).and_then(|m| json_of(&m)))
                .collect::<Result<Vec<_>>>()?;
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        VolumeCommand::Rm(a) => {
            for n in &a.names {
                meta(n)?;
                let u = users(&data_of(n))?;
                if !u.is_empty() && !a.force {
                    bail!(
                        "volume {n} is in use by {} (volt rm them first, or -f)",
                        u.join(", ")
                    );
                }
                remove(n)?;
                writeln!(out, "{n}")?;
            }
        }
        VolumeCommand::Prune => {
            for m in all()? {
                if users(&data_of(&m.name))?.is_empty() {
                    remove(&m.name)?;
                    writeln!(out, "{}", m.name)?;
                }
            }
        }
    }
    Ok(0)
}

/// Removes a named volume no instance uses.
pub fn remove_unused(name: &str) -> Result<()> {
    meta(name)?;
    let u = users(&data_of(name))?;
    if !u.is_empty() {
        bail!("volume {name} is in use by {}", u.join(", "));
    }
    remove(name)
}

/// Removes a named volume: renamed away first, so that it is gone at once
/// even if deleting its files takes long or fails half-way.
fn remove(name: &str) -> Result<()> {
    let gone = root().join(format!(".rm-{name}-{}", std::process::id()));
    std::fs::rename(root().join(name), &gone).with_context(|| format!("removing volume {name}"))?;
    std::fs::remove_dir_all(&gone).with_context(|| format!("removing {}", gone.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let m = parse("./data:/data").unwrap();
        assert_eq!(m.source, Source::Host("./data".into()));
        assert_eq!((m.guest.as_str(), m.readonly), ("/data", false));
        let m = parse("cache:/var/cache/:ro").unwrap();
        assert_eq!(m.source, Source::Named("cache".into()));
        assert_eq!((m.guest.as_str(), m.readonly), ("/var/cache", true));
        assert_eq!(parse("/a:/b//./c").unwrap().guest, "/b/c");
        for bad in [
            "a",
            "a:b",
            "a:/",
            "a:/x/../y",
            ":/x",
            "a:/x:rx",
            "a:/x:ro:z",
            "-x:/y",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
