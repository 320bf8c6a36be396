//! Pushing images to and pulling them from OCI distribution registries
//! (`oci-client`): HTTPS, or plain HTTP for registries on this machine;
//! anonymous, basic or token auth from `volt login`'s credentials; every
//! blob checked against its digest before it enters the store; layer
//! downloads resumed where an interrupted pull left them.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use super::{derive, digest_of, Reference, Store};

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What a transfer reports as it goes: a message, and bytes done of a total.
pub trait Progress {
    fn step(&self, msg: &str);
    fn bytes(&self, done: u64, total: u64);
}

fn client_for(r: &Reference) -> Client {
    let registry = r.registry.clone().unwrap_or_default();
    let protocol = if r.is_local_registry() {
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    })
}

fn remote(r: &Reference) -> Result<oci_client::Reference> {
    let Some(registry) = &r.registry else {
        bail!(
            "{r} names no registry: tag it first (volt tag {r} HOST[:PORT]/{}:{})",
            r.repository,
            r.tag.as_deref().unwrap_or("latest")
        );
    };
    Ok(match (&r.tag, &r.digest) {
        (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
            registry.clone(),
            r.repository.clone(),
            t.clone(),
            d.clone(),
        ),
        (None, Some(d)) => {
            oci_client::Reference::with_digest(registry.clone(), r.repository.clone(), d.clone())
        }
        (t, None) => oci_client::Reference::with_tag(
            registry.clone(),
            r.repository.clone(),
            t.clone().unwrap_or_else(|| "latest".into()),
        ),
    })
}

/// Where `volt login` keeps credentials: `auth.json` in the data
/// directory, Docker's `config.json` format, mode 0600.
pub fn auth_file() -> PathBuf {
    super::data_dir().join("auth.json")
}

/// The credentials stored for `registry`.
pub fn auth_for(registry: &str) -> RegistryAuth {
    use base64::Engine;
    let Ok(text) = std::fs::read(auth_file()) else {
        return RegistryAuth::Anonymous;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return RegistryAuth::Anonymous;
    };
    let Some(b64) = v["auths"][registry]["auth"].as_str() else {
        return RegistryAuth::Anonymous;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return RegistryAuth::Anonymous;
    };
    let raw = String::from_utf8_lossy(&raw).into_owned();
    match raw.split_once(':') {
        Some((u, p)) => RegistryAuth::Basic(u.to_string(), p.to_string()),
        None => RegistryAuth::Anonymous,
    }
}

/// Checks `user`/`password` against `registry`, then stores them.
pub fn login(registry: &str, user: &str, password: &str) -> Result<()> {
    use base64::Engine;
    let r =
        Reference::parse(&format!("{registry}/volt-login-check")).map_err(anyhow::Error::msg)?;
    let rt = runtime()?;
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    rt.block_on(async {
        // Basic credentials are only sent with a request: ask for a
        // manifest that need not exist; only an authorisation error refuses.
        use oci_client::errors::OciDistributionError as E;
        let client = client_for(&r);
        let rem = remote(&r)?;
        client
            .auth(&rem, &auth, oci_client::RegistryOperation::Pull)
            .await
            .map_err(|e| anyhow::anyhow!("{registry}: login refused: {e}"))?;
        match client.pull_manifest_raw(&rem, &auth, MANIFEST_TYPES).await {
            Err(e @ (E::UnauthorizedError { .. } | E::AuthenticationFailure(_))) => {
                Err(anyhow::anyhow!("{registry}: login refused: {e}"))
            }
            Err(e) if e.to_string().contains("error sending request") => Err(say_error(&r, e)),
            _ => Ok(()),
        }
    })?;
    let path = auth_file();
    let mut v: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_else(|| serde_json::json!({"auths": {}}));
    v["auths"][registry] = serde_json::json!({
        "auth": base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    });
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(&v)?.as_bytes())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

fn say_error(r: &Reference, e: oci_client::errors::OciDistributionError) -> anyhow::Error {
    let text = e.to_string();
    let registry = r.registry.as_deref().unwrap_or("");
    if text.contains("error sending request") || text.contains("connect") {
        anyhow::anyhow!("{registry}: the registry cannot be reached ({text})")
    } else if text.contains("401")
        || text.contains("Not authorized")
        || text.contains("nauthorized")
    {
        anyhow::anyhow!("{r}: not authorized by {registry} (volt login {registry}): {text}")
    } else {
        anyhow::anyhow!("{r}: {text}")
    }
}

/// Pushes the image the store calls `r` to the registry `r` names.
pub fn push(store: &Store, r: &Reference, progress: &dyn Progress) -> Result<String> {
    let img = store
        .find(&r.to_string())?
        .with_context(|| format!("{r}: no such image (volt images lists them)"))?;
    let manifest_bytes = store.read_blob(&img.digest())?;
    let m: ImageManifest =
        serde_json::from_slice(&manifest_bytes).context("the manifest does not parse")?;
    let rem = remote(r)?;
    let auth = auth_for(r.registry.as_deref().unwrap_or(""));
    let client = client_for(r);
    let rt = runtime()?;
    rt.block_on(async {
        client
            .auth(&rem, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| say_error(r, e))?;
        let blobs: Vec<&Descriptor> = m
            .layers()
            .iter()
            .chain(std::iter::once(m.config()))
            .collect();
        let total: u64 = blobs.iter().map(|d| d.size()).sum();
        let mut done = 0;
        for d in blobs {
            let digest = d.digest().to_string();
            if client
                .blob_exists(&rem, &digest)
                .await
                .map_err(|e| say_error(r, e))?
            {
                tracing::debug!(%digest, "the registry has the blob");
            } else {
                tracing::info!(%digest, size = d.size(), "pushing blob");
                progress.step(&format!("pushing {}", &digest[7..19]));
                let data = store.read_blob(&digest)?;
                client
                    .push_blob(&rem, data, &digest)
                    .await
                    .map_err(|e| say_error(r, e))?;
            }
            done += d.size();
            progress.bytes(done, total);
        }
        let ct = m
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest)
            .to_string();
        let header = ct.parse().context("bad manifest media type")?;
        progress.step("pushing the manifest");
        client
            .push_manifest_raw(&rem, manifest_bytes.clone(), header)
            .await
            .map_err(|e| say_error(r, e))?;
        Ok(img.digest())
    })
}

/// Pulls `r` into the store (layers the store has are not fetched again)
/// and tags it; makes its rootfs archive. A pull that fails leaves no
/// blob behind but a partial download to resume.
pub fn pull(store: &Store, r: &Reference, progress: &dyn Progress) -> Result<String> {
    let res = pull_leased(store, r, progress);
    if res.is_err() {
        let _ = store.gc();
    }
    res
}

fn pull_leased(store: &Store, r: &Reference, progress: &dyn Progress) -> Result<String> {
    let rem = remote(r)?;
    let auth = auth_for(r.registry.as_deref().unwrap_or(""));
    let client = client_for(r);
    let rt = runtime()?;
    let _lease = store.lease()?;
    let (desc, m) = rt.block_on(async {
        progress.step("fetching the manifest");
        let (mut bytes, _) = client
            .pull_manifest_raw(&rem, &auth, MANIFEST_TYPES)
            .await
            .map_err(|e| say_error(r, e))?;
        let mut digest = digest_of(&bytes);
        if let Some(want) = &r.digest {
            if &digest != want {
                bail!("{r}: the registry sent a manifest with digest {digest}: refused");
            }
        }
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).context("the manifest does not parse")?;
        if v.get("manifests").is_some() {
            // An index: take linux/amd64.
            let idx: ImageIndex =
                serde_json::from_slice(&bytes).context("the index does not parse")?;
            let d = idx
                .manifests()
                .iter()
                .find(|d| {
                    d.platform().as_ref().is_none_or(|p| {
                        p.os().to_string() == "linux" && p.architecture().to_string() == "amd64"
                    })
                })
                .context("the image has no linux/amd64 variant")?
                .digest()
                .to_string();
            let by_digest = oci_client::Reference::with_digest(
                rem.registry().to_string(),
                rem.repository().to_string(),
                d.clone(),
            );
            let (b, _) = client
                .pull_manifest_raw(&by_digest, &auth, MANIFEST_TYPES)
                .await
                .map_err(|e| say_error(r, e))?;
            if digest_of(&b) != d {
                bail!("{r}: the registry sent a manifest that does not match {d}: refused");
            }
            bytes = b;
            digest = d;
        }
        let m: ImageManifest =
            serde_json::from_slice(&bytes).context("the manifest does not parse")?;
        let blobs: Vec<Descriptor> = std::iter::once(m.config().clone())
            .chain(m.layers().iter().cloned())
            .collect();
        let total: u64 = blobs.iter().map(|d| d.size()).sum();
        let mut done = 0;
        for d in &blobs {
            let digest = d.digest().to_string();
            let path = store.blob_path(&digest)?;
            if path.exists() {
                tracing::debug!(%digest, "blob already in the store");
            } else {
                let have = std::fs::metadata(path.with_extension("partial"))
                    .map(|m| m.len())
                    .unwrap_or(0);
                tracing::info!(%digest, size = d.size(), resume_at = have, "pulling blob");
                progress.step(&format!("pulling {}", &digest[7..19]));
                fetch_blob(&client, &rem, d, &path.with_extension("partial"), |n| {
                    progress.bytes(done + n, total)
                })
                .await
                .map_err(|e| e.context(format!("{r}: blob {digest}")))?;
                store.adopt_blob(&path.with_extension("partial"), &digest)?;
            }
            done += d.size();
            progress.bytes(done, total);
        }
        store.put_blob(&bytes)?;
        let media = m.media_type().clone().unwrap_or(MediaType::ImageManifest);
        let desc = super::descriptor(media, bytes.len() as u64, &digest)?;
        Ok((desc, m))
    })?;
    let c = store.config(&m)?;
    if c.architecture().to_string() != "amd64" || c.os().to_string() != "linux" {
        bail!(
            "{r}: the image is for {}/{}: OptiVolt runs linux/amd64",
            c.os(),
            c.architecture()
        );
    }
    progress.step("writing the rootfs archive");
    let img = super::Image {
        reference: r.clone(),
        manifest: desc.clone(),
    };
    derive::ensure_rootfs(store, &img)?;
    store.tag(&desc, r)?;
    Ok(desc.digest().to_string())
}

/// Downloads blob `d` into `partial`, continuing a previous attempt.
async fn fetch_blob(
    client: &Client,
    rem: &oci_client::Reference,
    d: &Descriptor,
    partial: &std::path::Path,
    report: impl Fn(u64),
) -> Result<()> {
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let digest = d.digest().to_string();
    let layer = oci_client::client::LayerDescriptor {
        digest: &digest,
        urls: &None,
    };
    let (mut stream, mut written, append) = if have > 0 && have < d.size() {
        match client
            .pull_blob_stream_partial(rem, &layer, have, None)
            .await
            .context("cannot resume the download")?
        {
            oci_client::client::BlobResponse::Partial(s) => (s.stream, have, true),
            oci_client::client::BlobResponse::Full(s) => (s.stream, 0, false),
        }
    } else {
        let s = client
            .pull_blob_stream(rem, &layer)
            .await
            .context("cannot download")?;
        (s.stream, 0, false)
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the download broke off (run the pull again to resume)")?;
        written += chunk.len() as u64;
        if written > d.size() {
            drop(f);
            let _ = std::fs::remove_file(partial);
            bail!(
                "the registry sent more than the {} bytes the manifest says",
                d.size()
            );
        }
        f.write_all(&chunk)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        report(written);
    }
    Ok(())
}
