//! The local image store: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) under the data directory, one manifest per reference
//! (the `org.opencontainers.image.ref.name` annotation holds the whole
//! reference), plus, beside it, each image's rootfs as the archive the
//! monitor maps (`rootfs/<manifest>.cpio`: made once, never unpacked per run).
//!
//! Writers take an exclusive lock on the store; blobs are written to a
//! temporary file and renamed once their digest is checked, so a crash
//! leaves nothing half-written that a reader could take for an image.
pub mod build;
pub mod derive;
pub mod reference;
pub mod registry;
pub mod tree;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest,
};
use sha2::{Digest as _, Sha256};

pub use reference::Reference;

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// When the image was made (RFC 3339), on the manifest.
pub const CREATED: &str = "org.opencontainers.image.created";
/// Our runtime settings, as annotations on the manifest.
pub const ANN_MEMORY: &str = "org.optivolt.memory";
pub const ANN_RESTART: &str = "org.optivolt.restart";

/// The reference a descriptor of `index.json` names, if any.
pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// A descriptor of `size` bytes with digest `digest` (`sha256:…`).
pub fn descriptor(
    media: oci_spec::image::MediaType,
    size: u64,
    digest: &str,
) -> Result<Descriptor> {
    let d = digest
        .parse::<oci_spec::image::Digest>()
        .map_err(|e| anyhow::anyhow!("digest {digest}: {e}"))?;
    Ok(Descriptor::new(media, size, d))
}

/// Where volt keeps its state: `$VOLT_DATA_DIR`, else `/var/lib/volt` for
/// root, else `$XDG_DATA_HOME/volt` (`~/.local/share/volt`).
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VOLT_DATA_DIR") {
        return PathBuf::from(d);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/volt");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("volt")
}

/// `sha256:` and the hex digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An exclusive lock on the store, released when dropped.
pub struct Lock(std::fs::File);

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; unlocking cannot harm anything.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// One tagged image.
#[derive(Debug, Clone)]
pub struct Image {
    pub reference: Reference,
    /// The manifest's descriptor in `index.json`.
    pub manifest: Descriptor,
}

impl Image {
    /// The manifest digest (`sha256:…`).
    pub fn digest(&self) -> String {
        self.manifest.digest().to_string()
    }
}

/// The store.
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `data` (see [`data_dir`]).
    pub fn open(data: &Path) -> Result<Store> {
        let root = data.join("images");
        let s = Store { root };
        std::fs::create_dir_all(s.root.join("blobs/sha256"))
            .and_then(|_| std::fs::create_dir_all(s.root.join("rootfs")))
            .with_context(|| format!("cannot create the image store in {}", s.root.display()))?;
        let layout = s.root.join("oci-layout");
        if !layout.exists() {
            let _l = s.lock()?;
            atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !s.root.join("index.json").exists() {
            let _l = s.lock()?;
            if !s.root.join("index.json").exists() {
                s.write_index(&empty_index()?)?;
            }
        }
        Ok(s)
    }

    /// Opens the store in the default data directory.
    pub fn open_default() -> Result<Store> {
        Store::open(&data_dir())
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's write lock (waits for other volt processes).
    pub fn lock(&self) -> Result<Lock> {
        self.flock(".lock", libc::LOCK_EX)
    }

    /// Keeps [`Store::gc`] away while blobs are stored that no tag names
    /// yet (a build, an import, a pull); shared with other leases.
    pub fn lease(&self) -> Result<Lock> {
        self.flock(".gc-lock", libc::LOCK_SH)
    }

    fn flock(&self, name: &str, how: libc::c_int) -> Result<Lock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(name))
            .with_context(|| format!("cannot lock the image store {}", self.root.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
            bail!(
                "cannot lock the image store {}: {}",
                self.root.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Lock(f))
    }

    /// The path of blob `digest` (checked to be a sha256 digest).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        if !reference::valid_digest(digest) {
            bail!("invalid digest {digest:?}");
        }
        Ok(self.root.join("blobs/sha256").join(&digest[7..]))
    }

    /// Stores `bytes` as a blob; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let d = digest_of(bytes);
        let p = self.blob_path(&d)?;
        if !p.exists() {
            atomic_write(&p, bytes)?;
        }
        Ok(d)
    }

    /// Moves the file `tmp` into the store as blob `expected`, after checking
    /// that its content has that digest (else it is removed and refused).
    pub fn adopt_blob(&self, tmp: &Path, expected: &str) -> Result<()> {
        let got = digest_of_file(tmp)?;
        if got != expected {
            let _ = std::fs::remove_file(tmp);
            bail!("blob {expected} arrived with digest {got}: refused");
        }
        let p = self.blob_path(expected)?;
        std::fs::rename(tmp, &p).with_context(|| format!("cannot store {}", p.display()))
    }

    /// Reads blob `digest`, checking it.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let b = std::fs::read(&p)
            .with_context(|| format!("blob {digest} is missing from the store"))?;
        if digest_of(&b) != digest {
            bail!("blob {digest} in the store is corrupt (its digest differs)");
        }
        Ok(b)
    }

    /// The manifest of `img`.
    pub fn manifest(&self, img: &Image) -> Result<ImageManifest> {
        let b = self.read_blob(&img.digest())?;
        serde_json::from_slice(&b)
            .with_context(|| format!("manifest {} does not parse", img.digest()))
    }

    /// The configuration of `m`.
    pub fn config(&self, m: &ImageManifest) -> Result<ImageConfiguration> {
        let d = m.config().digest().to_string();
        let b = self.read_blob(&d)?;
        serde_json::from_slice(&b).with_context(|| format!("image config {d} does not parse"))
    }

    fn index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        serde_json::from_slice(&b).with_context(|| format!("{} does not parse", p.display()))
    }

    fn write_index(&self, idx: &ImageIndex) -> Result<()> {
        let text = serde_json::to_vec_pretty(idx).context("cannot encode index.json")?;
        atomic_write(&self.root.join("index.json"), &text)
    }

    /// Every tagged image, sorted by reference.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut v: Vec<Image> = self
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                let name = ref_name(d)?;
                Some(Image {
                    reference: Reference::parse(name).ok()?,
                    manifest: d.clone(),
                })
            })
            .collect();
        v.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(v)
    }

    /// The image a user names: a reference (`web`, `localhost:5000/web:1`)
    /// or a prefix of at least 4 hex digits of its ID or manifest digest.
    pub fn find(&self, name: &str) -> Result<Option<Image>> {
        let images = self.images()?;
        if let Ok(r) = Reference::parse(name) {
            if let Some(i) = images.iter().find(|i| i.reference == r) {
                return Ok(Some(i.clone()));
            }
        }
        let hexish = name.strip_prefix("sha256:").unwrap_or(name);
        if hexish.len() >= 4 && hexish.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits: Vec<&Image> = Vec::new();
            for i in &images {
                let m = i.digest();
                let id = self.id(i).unwrap_or_default();
                if m[7..].starts_with(hexish) || id.starts_with(hexish) {
                    hits.push(i);
                }
            }
            let first = hits.first().map(|i| i.digest());
            if hits.iter().all(|i| Some(i.digest()) == first) {
                return Ok(hits.first().map(|i| (*i).clone()));
            }
            bail!("{name} matches more than one image: give more digits");
        }
        Ok(None)
    }

    /// The image ID: the hex digest of its configuration (as Docker shows it).
    pub fn id(&self, img: &Image) -> Result<String> {
        let m = self.manifest(img)?;
        Ok(m.config().digest().to_string()[7..].to_string())
    }

    /// The manifests of `idx` that `r` does not name.
    fn without(idx: &ImageIndex, r: &Reference) -> Vec<Descriptor> {
        idx.manifests()
            .iter()
            .filter(|d| ref_name(d).is_none_or(|n| Reference::parse(n).ok().as_ref() != Some(r)))
            .cloned()
            .collect()
    }

    /// Points `r` at the manifest `desc` (replacing what it named).
    pub fn tag(&self, desc: &Descriptor, r: &Reference) -> Result<()> {
        let _l = self.lock()?;
        let mut idx = self.index()?;
        let mut manifests = Self::without(&idx, r);
        let mut d = desc.clone();
        let mut ann: HashMap<String, String> = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.to_string(), r.to_string());
        d.set_annotations(Some(ann));
        manifests.push(d);
        idx.set_manifests(manifests);
        self.write_index(&idx)
    }

    /// Removes the reference `r`; whether it existed.
    pub fn untag(&self, r: &Reference) -> Result<bool> {
        let _l = self.lock()?;
        let mut idx = self.index()?;
        let before = idx.manifests().len();
        let kept = Self::without(&idx, r);
        let removed = kept.len() != before;
        idx.set_manifests(kept);
        self.write_index(&idx)?;
        Ok(removed)
    }

    /// Deletes every blob and rootfs no tagged image refers to; returns the
    /// bytes freed. Waits for builds and imports in progress (they hold a
    /// [`Store::lease`]), whose blobs are not tagged yet.
    pub fn gc(&self) -> Result<u64> {
        let _gc = self.flock(".gc-lock", libc::LOCK_EX)?;
        let _l = self.lock()?;
        let mut live = std::collections::HashSet::new();
        let mut live_rootfs = std::collections::HashSet::new();
        for d in self.index()?.manifests() {
            let md = d.digest().to_string();
            live.insert(md[7..].to_string());
            live_rootfs.insert(md[7..].to_string());
            if let Ok(b) = self.read_blob(&md) {
                if let Ok(m) = serde_json::from_slice::<ImageManifest>(&b) {
                    live.insert(m.config().digest().to_string()[7..].to_string());
                    for l in m.layers() {
                        live.insert(l.digest().to_string()[7..].to_string());
                    }
                }
            }
        }
        let mut freed = 0;
        for (dir, keep) in [("blobs/sha256", &live), ("rootfs", &live_rootfs)] {
            let Ok(rd) = std::fs::read_dir(self.root.join(dir)) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name.split('.').next().unwrap_or("").to_string();
                let Ok(meta) = e.metadata() else {
                    continue;
                };
                // Partial downloads stay, for the next pull to resume.
                if !keep.contains(&stem) && !name.ends_with(".partial") {
                    freed += meta.len();
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(freed)
    }

    /// Where the mappable rootfs of manifest `digest` lives.
    pub fn rootfs_path(&self, digest: &str) -> Result<PathBuf> {
        self.blob_path(digest)?;
        Ok(self
            .root
            .join("rootfs")
            .join(format!("{}.cpio", &digest[7..])))
    }
}

fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(oci_spec::image::MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .context("cannot make an empty index")
}

/// The digest of a file's content.
pub fn digest_of_file(p: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", p.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex(&h.finalize())))
}

/// Writes `bytes` to `p` through a temporary file in the same directory.
pub fn atomic_write(p: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = p.with_extension(format!("tmp.{}", std::process::id()));
    let r = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_data()))
        .and_then(|_| std::fs::rename(&tmp, p));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", p.display()));
    }
    Ok(())
}
