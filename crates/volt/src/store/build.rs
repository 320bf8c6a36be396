//! `volt build`: a Voltfile and its rootfs become an OCI image in the store.
//!
//! A directory, tarball or cpio archive becomes one gzip layer; an OCI
//! image (a layout, an archive, or what buildah makes of a Dockerfile) is
//! imported with its layers as they are. The Voltfile's command,
//! environment and labels go into the image configuration, its runtime
//! settings (memory, restart) into manifest annotations, like urunc's and
//! KraftKit's. The entry program is checked before anything is stored, and
//! the rootfs archive the monitor maps is made now, so the first run is as
//! quick as the next.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    Arch, Descriptor, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use super::tree::Tree;
use super::{descriptor, digest_of, Reference, Store, ANN_MEMORY, ANN_RESTART, CREATED};
use crate::voltfile::Voltfile;

/// Where a Voltfile's `rootfs` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum RootfsSource {
    Dir(PathBuf),
    /// `.tar`, `.tar.gz`, `.tgz` (compression found from the bytes).
    Tarball(PathBuf),
    Cpio(PathBuf),
    /// `oci:DIR[:REF]`.
    OciLayout(PathBuf, Option<String>),
    /// `oci-archive:FILE[:REF]`.
    OciArchive(PathBuf, Option<String>),
    Dockerfile(PathBuf),
}

fn split_ref(s: &str) -> (&str, Option<String>) {
    match s.rsplit_once(':') {
        Some((p, r)) if !r.contains('/') && !r.is_empty() => (p, Some(r.to_string())),
        _ => (s, None),
    }
}

impl RootfsSource {
    /// Reads a `rootfs:` value, relative to `dir`.
    pub fn parse(s: &str, dir: &Path) -> RootfsSource {
        let at = |p: &str| dir.join(p);
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (p, r) = split_ref(rest);
            return RootfsSource::OciArchive(at(p), r);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (p, r) = split_ref(rest);
            return RootfsSource::OciLayout(at(p), r);
        }
        let p = at(s);
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "Dockerfile" || name.ends_with(".Dockerfile") || name == "Containerfile" {
            RootfsSource::Dockerfile(p)
        } else if name.ends_with(".cpio") {
            RootfsSource::Cpio(p)
        } else if [".tar", ".tar.gz", ".tgz"]
            .iter()
            .any(|e| name.ends_with(e))
        {
            RootfsSource::Tarball(p)
        } else {
            RootfsSource::Dir(p)
        }
    }
}

/// What `volt build` made.
pub struct Built {
    pub manifest: Descriptor,
    pub id: String,
    pub tags: Vec<Reference>,
}

/// Gzip with the default level.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).context("cannot compress the layer")?;
    e.finish().context("cannot compress the layer")
}

/// Whether `b` starts like gzip.
pub fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
}

/// The base image a source gives: its layers (already in the store) and,
/// for imported images, their configuration.
struct Base {
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    config: Option<ImageConfiguration>,
    /// The layer made here, stored only once the program is checked.
    pending: Option<Vec<u8>>,
    /// What the layers hold, for a layer made here.
    tree: Option<Tree>,
}

fn one_layer(tree: Tree) -> Result<Base> {
    let tar = tree.to_tar()?;
    let diff_id = digest_of(&tar);
    let gz = gzip(&tar)?;
    Ok(Base {
        layers: vec![descriptor(
            MediaType::ImageLayerGzip,
            gz.len() as u64,
            &digest_of(&gz),
        )?],
        diff_ids: vec![diff_id],
        config: None,
        pending: Some(gz),
        tree: Some(tree),
    })
}

fn base_of(store: &Store, src: &RootfsSource, progress: &dyn Fn(&str)) -> Result<Base> {
    match src {
        RootfsSource::Dir(p) => {
            if !p.is_dir() {
                bail!("rootfs {}: no such directory", p.display());
            }
            progress(&format!("reading {}", p.display()));
            one_layer(Tree::from_dir(p)?)
        }
        RootfsSource::Tarball(p) => {
            progress(&format!("reading {}", p.display()));
            let b = std::fs::read(p).with_context(|| format!("rootfs {}", p.display()))?;
            let mut t = Tree::default();
            if is_gzip(&b) {
                t.apply_tar(flate2::read::MultiGzDecoder::new(&b[..]))
            } else {
                t.apply_tar(&b[..])
            }
            .with_context(|| format!("rootfs {}", p.display()))?;
            one_layer(t)
        }
        RootfsSource::Cpio(p) => {
            progress(&format!("reading {}", p.display()));
            let b = std::fs::read(p).with_context(|| format!("rootfs {}", p.display()))?;
            let t = Tree::from_cpio(&b).with_context(|| format!("rootfs {}", p.display()))?;
            one_layer(t)
        }
        RootfsSource::OciLayout(dir, r) => import_layout(store, dir, r.as_deref(), progress),
        RootfsSource::OciArchive(file, r) => {
            let tmp = tempdir("oci-archive")?;
            progress(&format!("unpacking {}", file.display()));
            let f =
                std::fs::File::open(file).with_context(|| format!("rootfs {}", file.display()))?;
            let res = tar::Archive::new(f)
                .unpack(tmp.path())
                .with_context(|| format!("rootfs {}: not an OCI archive", file.display()))
                .and_then(|_| import_layout(store, tmp.path(), r.as_deref(), progress));
            res
        }
        RootfsSource::Dockerfile(df) => {
            let tmp = tempdir("buildah")?;
            let archive = tmp.path().join("image.tar");
            super::derive::buildah(df, &archive, progress)?;
            import_layout_archive(store, &archive, tmp.path(), progress)
        }
    }
}

fn import_layout_archive(
    store: &Store,
    archive: &Path,
    tmp: &Path,
    progress: &dyn Fn(&str),
) -> Result<Base> {
    let dir = tmp.join("layout");
    let f = std::fs::File::open(archive)
        .with_context(|| format!("cannot read {}", archive.display()))?;
    tar::Archive::new(f)
        .unpack(&dir)
        .with_context(|| format!("{}: not an OCI archive", archive.display()))?;
    import_layout(store, &dir, None, progress)
}

/// Copies the image `r` (or the only one) of the OCI layout `dir` into the
/// store, checking every blob's digest.
fn import_layout(
    store: &Store,
    dir: &Path,
    r: Option<&str>,
    progress: &dyn Fn(&str),
) -> Result<Base> {
    let (manifest, config) = super::derive::import(store, dir, r, progress)?;
    let diff_ids = config.rootfs().diff_ids().clone();
    Ok(Base {
        layers: manifest.layers().clone(),
        diff_ids,
        config: Some(config),
        pending: None,
        tree: None,
    })
}

/// A temporary directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary directory.
pub fn tempdir(what: &str) -> Result<TempDir> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "volt-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    Ok(TempDir(p))
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(s)
}

/// `secs` since the epoch as RFC 3339 UTC (civil-from-days).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Builds the image described by the Voltfile at `file` (its `rootfs`
/// relative to the Voltfile's directory) and tags it with `tags` (or the
/// Voltfile's `name`).
pub fn build(
    store: &Store,
    file: &Path,
    tags: &[String],
    progress: &dyn Fn(&str),
) -> Result<Built> {
    let vf = Voltfile::load(file)?;
    let mut refs = tags
        .iter()
        .map(|t| Reference::parse(t).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if refs.is_empty() {
        match &vf.name {
            Some(n) => refs.push(
                Reference::parse(n)
                    .map_err(|e| anyhow::anyhow!("{}: name: {e}", file.display()))?,
            ),
            None => bail!(
                "{}: no name: give the image one with -t NAME[:TAG] or `name:` in the Voltfile",
                file.display()
            ),
        }
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let _lease = store.lease()?;
    let source = vf.rootfs_source(dir);
    tracing::info!(voltfile = %file.display(), ?source, "building");
    let mut base = base_of(store, &source, progress)?;

    // The configuration: the base's, with the Voltfile's settings on top.
    let mut cfg = base
        .config
        .as_ref()
        .and_then(|c| c.config().clone())
        .unwrap_or_default();
    if let Some(e) = &vf.entrypoint {
        cfg.set_entrypoint(Some(e.clone()));
        if vf.cmd.is_none() {
            cfg.set_cmd(None);
        }
    }
    if let Some(c) = &vf.cmd {
        cfg.set_cmd(Some(c.clone()));
    }
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    for kv in vf.env_list() {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", super::derive::DEFAULT_PATH));
    }
    cfg.set_env(Some(env));
    if !vf.labels.is_empty() {
        let mut l = cfg.labels().clone().unwrap_or_default();
        l.extend(vf.labels.clone());
        cfg.set_labels(Some(l));
    }
    if !vf.ports.is_empty() {
        let mut p = cfg.exposed_ports().clone().unwrap_or_default();
        for port in &vf.ports {
            let (n, proto) = crate::voltfile::parse_port(&port.0).map_err(anyhow::Error::msg)?;
            let s = format!("{n}/{proto}");
            if !p.contains(&s) {
                p.push(s);
            }
        }
        cfg.set_exposed_ports(Some(p));
    }
    if !vf.volumes.is_empty() {
        cfg.set_volumes(Some(vf.volumes.iter().map(|v| v.0.clone()).collect()));
    }
    if let Some(w) = &vf.workdir {
        cfg.set_working_dir(Some(w.0.clone()));
    }
    let argv: Vec<String> = cfg
        .entrypoint()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(cfg.cmd().clone().unwrap_or_default())
        .collect();
    if argv.is_empty() {
        bail!(
            "{}: no command: give `cmd:` (or `entrypoint:`)",
            file.display()
        );
    }

    // Everything the image holds, to check the program and make the
    // archive the monitor maps.
    progress("checking the program");
    let tree = match base.tree.take() {
        Some(t) => t,
        None => super::derive::tree_of(store, &base.layers)?,
    };
    let env_list = cfg.env().clone().unwrap_or_default();
    let program = super::derive::check_program(&tree, &argv[0], &env_list)
        .with_context(|| format!("{}: the image cannot run", file.display()))?;

    if let Some(gz) = base.pending.take() {
        store.put_blob(&gz)?;
    }
    let created = now_rfc3339();
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by(format!("volt build {}", file.display()))
        .build()
        .context("cannot describe the build")?;
    let mut hist = base
        .config
        .as_ref()
        .and_then(|c| c.history().clone())
        .unwrap_or_default();
    hist.push(history);
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .created(created.clone())
        .config(cfg)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(base.diff_ids.clone())
                .build()
                .context("cannot describe the layers")?,
        )
        .history(hist)
        .build()
        .context("cannot make the image configuration")?;
    let config_bytes = serde_json::to_vec(&config).context("cannot encode the configuration")?;
    let config_digest = store.put_blob(&config_bytes)?;
    let mut ann = HashMap::new();
    ann.insert(CREATED.to_string(), created);
    if let Some(m) = &vf.memory {
        ann.insert(ANN_MEMORY.to_string(), m.bytes().to_string());
    }
    if let Some(r) = &vf.restart {
        ann.insert(ANN_RESTART.to_string(), r.0.clone());
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            &config_digest,
        )?)
        .layers(base.layers.clone())
        .annotations(ann)
        .build()
        .context("cannot make the manifest")?;
    let desc = store_manifest(store, &manifest)?;
    progress("writing the rootfs archive");
    super::derive::write_rootfs(store, desc.digest().as_ref(), tree, Some(&program))?;
    for r in &refs {
        store.tag(&desc, r)?;
    }
    Ok(Built {
        id: config_digest[7..].to_string(),
        manifest: desc,
        tags: refs,
    })
}

/// Stores a manifest; its descriptor.
pub fn store_manifest(store: &Store, m: &ImageManifest) -> Result<Descriptor> {
    let bytes = serde_json::to_vec(m).context("cannot encode the manifest")?;
    let d = store.put_blob(&bytes)?;
    descriptor(MediaType::ImageManifest, bytes.len() as u64, &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_by_their_names() {
        let d = Path::new("/ctx");
        assert_eq!(
            RootfsSource::parse("./rootfs", d),
            RootfsSource::Dir("/ctx/./rootfs".into())
        );
        assert_eq!(
            RootfsSource::parse("r.tar.gz", d),
            RootfsSource::Tarball("/ctx/r.tar.gz".into())
        );
        assert_eq!(
            RootfsSource::parse("r.cpio", d),
            RootfsSource::Cpio("/ctx/r.cpio".into())
        );
        assert_eq!(
            RootfsSource::parse("oci:img:v1", d),
            RootfsSource::OciLayout("/ctx/img".into(), Some("v1".into()))
        );
        assert_eq!(
            RootfsSource::parse("oci-archive:/abs/i.tar", d),
            RootfsSource::OciArchive("/abs/i.tar".into(), None)
        );
        assert_eq!(
            RootfsSource::parse("./Dockerfile", d),
            RootfsSource::Dockerfile("/ctx/./Dockerfile".into())
        );
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_083_200), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }
}
