//! From an image to what the monitor runs: the layers applied in order
//! ([`super::tree`]), the entry program checked, and the result written once
//! as the rootfs archive the monitor maps (`rootfs/<manifest>.cpio`) with
//! the table of patchable `syscall` sites of the program and of every shared
//! library in it (`.sites` beside it). Also: importing an OCI image layout
//! (every blob's digest checked) and building a Dockerfile with buildah.
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use optivolt_abi::elf::Elf;

use super::tree::{Node, Tree};
use super::{ref_name, Image, Store};
use crate::image::sites;

/// The search path when an image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Applies the layers `layers` (blobs in the store) in order.
pub fn tree_of(store: &Store, layers: &[Descriptor]) -> Result<Tree> {
    let mut t = Tree::default();
    for l in layers {
        let d = l.digest().to_string();
        let bytes = store.read_blob(&d)?;
        let gz = matches!(
            l.media_type(),
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip
        ) || l.media_type().to_string().ends_with("tar.gzip")
            || super::build::is_gzip(&bytes);
        let r = if gz {
            t.apply_tar(flate2::read::MultiGzDecoder::new(&bytes[..]))
        } else if matches!(
            l.media_type(),
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable
        ) || l.media_type().to_string().ends_with(".tar")
        {
            t.apply_tar(&bytes[..])
        } else {
            bail!(
                "layer {d} has media type {}, which volt cannot apply (tar or tar+gzip)",
                l.media_type()
            );
        };
        r.with_context(|| format!("layer {d}"))?;
    }
    Ok(t)
}

/// The guest path of the program `argv0` names: itself if it has a `/`,
/// else found on the image's PATH.
pub fn program_path(tree: &Tree, argv0: &str, env: &[String]) -> Option<String> {
    if argv0.contains('/') {
        return tree.file(argv0).map(|_| argv0.to_string());
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
        .find(|p| tree.file(p).is_some())
}

/// Checks that the image can start `argv0`: an x86-64 ELF executable whose
/// loader, if it has one, is in the image. Returns its guest path.
pub fn check_program(tree: &Tree, argv0: &str, env: &[String]) -> Result<String> {
    let Some(path) = program_path(tree, argv0, env) else {
        bail!("{argv0}: no such file in the image");
    };
    let Some((_, data)) = tree.file(&path) else {
        bail!("{argv0}: no such file in the image");
    };
    let elf = Elf::parse(data).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    if let Some(interp) = elf.interpreter() {
        let interp = String::from_utf8_lossy(interp).into_owned();
        if tree.file(&interp).is_none() {
            bail!("{path}: its loader {interp} is not in the image");
        }
    }
    Ok(path)
}

/// Writes the archive of `tree` (and its sites table, with the sites of
/// `program`, the image's entry program, if it names one) for manifest
/// `digest`, atomically.
pub fn write_rootfs(store: &Store, digest: &str, tree: Tree, program: Option<&str>) -> Result<()> {
    let program = program.and_then(|p| tree.resolve(p).map(|real| (p.to_string(), real)));
    let mut table = match &program {
        Some((_, real)) => match tree.nodes.get(real) {
            Some(Node::File { data, .. }) => program_pairs(data),
            _ => sites::with_program(&[]),
        },
        None => sites::with_program(&[]),
    };
    library_sites(&tree, &mut table);
    let path = store.rootfs_path(digest)?;
    let bytes = crate::image::archive::write(&tree.into_members())?;
    let named = program.map(|(p, _)| p).unwrap_or_default();
    let mut file = (named.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(named.as_bytes());
    file.resize(file.len().next_multiple_of(8), 0);
    file.extend_from_slice(&table);
    super::atomic_write(&path.with_extension("sites"), &file)?;
    super::atomic_write(&path, &bytes)
}

/// The sites table's program section for `program`'s bytes (at the load
/// bias the monitor will give it).
pub fn program_pairs(program: &[u8]) -> Vec<u8> {
    match (
        Elf::parse(program),
        optivolt_vmm::builder::program_bias(program),
    ) {
        (Ok(elf), Ok(bias)) => sites::with_program(&sites::encode(&sites::scan(&elf), bias)),
        _ => sites::with_program(&[]),
    }
}

/// The stored sites table of an image's archive at `rootfs`: the program
/// path it was made for and the table.
pub fn read_sites(rootfs: &Path) -> Option<(String, Vec<u8>)> {
    let b = std::fs::read(rootfs.with_extension("sites")).ok()?;
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
    let name = String::from_utf8_lossy(b.get(8..8usize.checked_add(n)?)?).into_owned();
    let at = (8 + n).next_multiple_of(8);
    Some((name, b.get(at..)?.to_vec()))
}

/// Replaces the program section of `table` with `program`'s.
pub fn with_program_section(table: &[u8], program: &[u8]) -> Vec<u8> {
    let n = table
        .get(..8)
        .and_then(|w| w.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0) as usize;
    let mut out = program_pairs(program);
    out.extend_from_slice(table.get(8usize.saturating_add(n)..).unwrap_or(&[]));
    out
}

/// Appends every shared library's sites, at link-time addresses (the guest
/// adds the load bias when the library is mapped), under its guest path.
fn library_sites(tree: &Tree, table: &mut Vec<u8>) {
    for (path, node) in &tree.nodes {
        let Node::File { data, .. } = node else {
            continue;
        };
        if !data.starts_with(b"\x7fELF") {
            continue;
        }
        let Ok(elf) = Elf::parse(data) else {
            continue;
        };
        // Shared objects (ld.so included), not PIE programs (they have a loader).
        const ET_DYN: u16 = 3;
        if elf.e_type != ET_DYN || elf.interpreter().is_some() {
            continue;
        }
        let found = sites::scan(&elf);
        if !found.is_empty() {
            let guest = format!("/{path}");
            sites::push_library(table, guest.as_bytes(), &sites::encode(&found, 0));
        }
    }
}

/// The archive of `img`, made now if the image came without one (pulled,
/// or imported).
pub fn ensure_rootfs(store: &Store, img: &Image) -> Result<std::path::PathBuf> {
    let path = store.rootfs_path(&img.digest())?;
    if path.exists() && path.with_extension("sites").exists() {
        return Ok(path);
    }
    let m = store.manifest(img)?;
    let c = store.config(&m)?;
    let tree = tree_of(store, m.layers())?;
    let argv0 = entry_argv(&c).into_iter().next();
    let env = c
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let program = argv0.and_then(|a| program_path(&tree, &a, &env));
    write_rootfs(store, &img.digest(), tree, program.as_deref())?;
    Ok(path)
}

/// The image's command line: its entrypoint, then its cmd.
pub fn entry_argv(c: &ImageConfiguration) -> Vec<String> {
    let Some(cfg) = c.config() else {
        return Vec::new();
    };
    cfg.entrypoint()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(cfg.cmd().clone().unwrap_or_default())
        .collect()
}

/// Copies image `r` of the OCI layout `dir` (or its only image) into the
/// store, checking every blob; returns its manifest and configuration.
pub fn import(
    store: &Store,
    dir: &Path,
    r: Option<&str>,
    progress: &dyn Fn(&str),
) -> Result<(ImageManifest, ImageConfiguration)> {
    let idx_path = dir.join("index.json");
    let text = std::fs::read(&idx_path)
        .with_context(|| format!("{}: not an OCI image layout", dir.display()))?;
    let idx: ImageIndex = serde_json::from_slice(&text)
        .with_context(|| format!("{} does not parse", idx_path.display()))?;
    let chosen: Vec<&Descriptor> = match r {
        Some(r) => idx
            .manifests()
            .iter()
            .filter(|d| ref_name(d) == Some(r))
            .collect(),
        None => idx.manifests().iter().collect(),
    };
    let desc = match chosen.as_slice() {
        [d] => (*d).clone(),
        [] => match r {
            Some(r) => bail!("{}: no image named {r:?}", dir.display()),
            None => bail!("{}: the layout holds no image", dir.display()),
        },
        _ => bail!(
            "{}: the layout holds several images: name one (oci:DIR:NAME)",
            dir.display()
        ),
    };
    let blob = |d: &str| -> Result<Vec<u8>> {
        if !super::reference::valid_digest(d) {
            bail!("{}: invalid digest {d:?}", dir.display());
        }
        let p = dir.join("blobs/sha256").join(&d[7..]);
        let b =
            std::fs::read(&p).with_context(|| format!("{}: blob {d} is missing", dir.display()))?;
        if super::digest_of(&b) != d {
            bail!(
                "{}: blob {d} does not have that digest: refused",
                dir.display()
            );
        }
        Ok(b)
    };
    let mut mdesc = desc;
    let mut mbytes = blob(mdesc.digest().as_ref())?;
    // An index (several platforms): take linux/amd64.
    if *mdesc.media_type() == MediaType::ImageIndex {
        let inner: ImageIndex =
            serde_json::from_slice(&mbytes).context("the image's index does not parse")?;
        mdesc = inner
            .manifests()
            .iter()
            .find(|d| {
                d.platform().as_ref().is_none_or(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                })
            })
            .cloned()
            .context("the image has no linux/amd64 variant")?;
        mbytes = blob(mdesc.digest().as_ref())?;
    }
    let m: ImageManifest =
        serde_json::from_slice(&mbytes).context("the manifest does not parse")?;
    let cbytes = blob(m.config().digest().as_ref())?;
    let c: ImageConfiguration =
        serde_json::from_slice(&cbytes).context("the image configuration does not parse")?;
    if c.architecture().to_string() != "amd64" || c.os().to_string() != "linux" {
        bail!(
            "the image is for {}/{}: OptiVolt runs linux/amd64",
            c.os(),
            c.architecture()
        );
    }
    for l in m.layers() {
        let d = l.digest().to_string();
        progress(&format!("importing layer {}", &d[7..19]));
        let b = blob(&d)?;
        store.put_blob(&b)?;
    }
    store.put_blob(&cbytes)?;
    store.put_blob(&mbytes)?;
    Ok((m, c))
}

/// Builds `dockerfile` with buildah (its directory is the context) into
/// the OCI archive `out`.
pub fn buildah(dockerfile: &Path, out: &Path, progress: &dyn Fn(&str)) -> Result<()> {
    if !dockerfile.is_file() {
        bail!("rootfs {}: no such Dockerfile", dockerfile.display());
    }
    let have = std::process::Command::new("buildah")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        bail!(
            "rootfs {}: building a Dockerfile needs buildah, which is not installed (Debian: apt-get install buildah)",
            dockerfile.display()
        );
    }
    let ctx = dockerfile.parent().unwrap_or(Path::new("."));
    let tag = format!("localhost/volt-build-{}", std::process::id());
    // buildah's own storage lives in volt's data directory, not in the
    // machine's container storage.
    let storage = super::data_dir().join("buildah");
    let buildah = || {
        let mut c = std::process::Command::new("buildah");
        c.arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(["--storage-driver", "vfs"]);
        c
    };
    progress(&format!("buildah bud {}", dockerfile.display()));
    let status = buildah()
        .args(["bud", "--quiet", "--layers=false", "-f"])
        .arg(dockerfile)
        .args(["-t", &tag])
        .arg(ctx)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run buildah")?;
    if !status.success() {
        bail!("buildah could not build {}", dockerfile.display());
    }
    let pushed = buildah()
        .args(["push", "--quiet", &tag])
        .arg(format!("oci-archive:{}", out.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let _ = buildah()
        .args(["rmi", &tag])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match pushed {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "buildah could not export the image of {}",
            dockerfile.display()
        ),
    }
}
