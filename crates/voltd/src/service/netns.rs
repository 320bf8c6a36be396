//! Sockets in a volt network's namespace. A socket belongs to the
//! namespace of the thread that made it, for life: one thread per network
//! enters the namespace (`setns`) and makes sockets on request; tokio
//! then drives them from its own threads, in voltd's namespace. So the
//! balancer reaches the replicas on their bridge, and listens on the
//! gateway for the guests, without any interface in the host's namespace.
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;

use anyhow::{bail, Context, Result};
use socket2::{Domain, Socket, Type};

type Job = Box<dyn FnOnce() + Send>;

/// A thread inside one network namespace.
pub struct Netns {
    jobs: std::sync::Mutex<mpsc::Sender<Job>>,
}

impl Netns {
    /// Starts the thread for the namespace at `path` (`/run/netns/…`).
    pub fn enter(path: &Path) -> Result<Netns> {
        let f = std::fs::File::open(path)
            .with_context(|| format!("cannot open the network namespace {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name("voltd-netns".into())
            .spawn(move || {
                // SAFETY: setns on a namespace file we hold open; it moves
                // only this thread.
                let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                let ok = if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                };
                let entered = ok.is_ok();
                let _ = ready_tx.send(ok);
                if !entered {
                    return;
                }
                drop(f);
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .context("cannot start a namespace thread")?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Netns {
                jobs: std::sync::Mutex::new(tx),
            }),
            Ok(Err(e)) => bail!("cannot enter {}: {e}", path.display()),
            Err(_) => bail!("the namespace thread for {} died", path.display()),
        }
    }

    /// Runs `f` on the namespace's thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sent = self
            .jobs
            .lock()
            .map_err(|_| std::io::Error::other("namespace thread lock poisoned"))?
            .send(job);
        if sent.is_err() {
            return Err(std::io::Error::other("the namespace thread is gone"));
        }
        rx.await
            .map_err(|_| std::io::Error::other("the namespace thread dropped a job"))?
    }

    fn socket(ty: Type) -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, ty.nonblocking().cloexec(), None)?;
        Ok(s)
    }

    /// A TCP connection from the namespace to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        let s = self.run(|| Self::socket(Type::STREAM)).await?;
        let std: std::net::TcpStream = s.into();
        let sock = tokio::net::TcpSocket::from_std_stream(std);
        let stream = sock.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// A TCP listener in the namespace on `addr`.
    pub async fn listen(&self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
        let s = self
            .run(move || {
                let s = Self::socket(Type::STREAM)?;
                s.set_reuse_address(true)?;
                s.bind(&addr.into())?;
                s.listen(1024)?;
                Ok(s)
            })
            .await?;
        tokio::net::TcpListener::from_std(s.into())
    }

    /// A UDP socket in the namespace bound to `addr`.
    pub async fn udp(&self, addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
        let s = self
            .run(move || {
                let s = Self::socket(Type::DGRAM)?;
                s.bind(&addr.into())?;
                Ok(s)
            })
            .await?;
        tokio::net::UdpSocket::from_std(s.into())
    }
}
