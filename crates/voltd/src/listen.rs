//! Listeners: a Unix socket (permission-based) and TCP (bearer token).
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

pub enum Spec {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

impl Spec {
    pub fn parse(s: &str) -> Result<Spec> {
        if let Some(p) = s.strip_prefix("unix://") {
            if !p.starts_with('/') {
                bail!("--listen {s}: unix:// needs an absolute path");
            }
            return Ok(Spec::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            return Ok(Spec::Tcp(a.parse().map_err(|_| {
                anyhow::anyhow!("--listen {s}: expected tcp://ADDR:PORT")
            })?));
        }
        bail!("--listen {s}: expected unix:///PATH or tcp://ADDR:PORT")
    }
}

pub async fn serve(specs: Vec<Spec>, token: Option<String>) -> Result<()> {
    let mut tasks = Vec::new();
    for s in specs {
        match s {
            Spec::Unix(p) => {
                if p.exists() {
                    // A socket left by a voltd that died: nobody answers on it.
                    if std::os::unix::net::UnixStream::connect(&p).is_ok() {
                        bail!("{} is in use by a running voltd", p.display());
                    }
                    std::fs::remove_file(&p)
                        .with_context(|| format!("removing {}", p.display()))?;
                }
                let l = tokio::net::UnixListener::bind(&p)
                    .with_context(|| format!("cannot listen on {}", p.display()))?;
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
                let app = crate::api::router(None);
                tasks.push(tokio::spawn(async move { axum::serve(l, app).await }));
            }
            Spec::Tcp(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a}"))?;
                let app = crate::api::router(token.clone());
                tasks.push(tokio::spawn(async move { axum::serve(l, app).await }));
            }
        }
    }
    tokio::spawn(crate::api::reap_supervisors());
    // Services recorded by an earlier voltd: their listeners and replicas again.
    tokio::spawn(async {
        if let Err(e) = crate::service::manager().restore_all().await {
            tracing::error!("cannot read the services back: {e:#}");
        }
    });
    for t in tasks {
        t.await.context("a listener stopped")?.context("serving")?;
    }
    Ok(())
}
