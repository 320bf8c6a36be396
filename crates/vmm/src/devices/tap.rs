//! A tap device as the [`NetBackend`] of the net device: the host's end of
//! the guest's Ethernet link.
//!
//! The file descriptor is non-blocking; the I/O thread sleeps on it with
//! `poll` while no traffic flows. Creating a tap needs `CAP_NET_ADMIN`
//! (root, or a tap pre-created for the user with `ip tuntap add ... user`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use thiserror::Error;

use super::net::NetBackend;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Why a tap could not be opened.
#[derive(Debug, Error)]
pub enum TapError {
    #[error("tap name {0:?} is empty, too long (15 bytes at most) or not ASCII")]
    BadName(String),
    #[error("cannot open /dev/net/tun: {0}")]
    Open(#[source] io::Error),
    #[error(
        "cannot create tap {name}: {source} (creating a tap needs root or CAP_NET_ADMIN, \
         or a tap made beforehand with `ip tuntap add {name} mode tap user $USER`)"
    )]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter the network namespace {0}: {1}")]
    Netns(std::path::PathBuf, #[source] io::Error),
}

/// Moves the calling thread into the network namespace `path` (a
/// `/run/netns/NAME` file or `/proc/PID/ns/net`).
pub fn enter_netns(path: &std::path::Path) -> Result<(), TapError> {
    let f = File::open(path).map_err(|e| TapError::Netns(path.to_path_buf(), e))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| TapError::Netns(path.to_path_buf(), e.into()))
}

/// An open tap device.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl Tap {
    /// Opens (creating it if needed) the tap `name`, non-blocking, without
    /// packet information: each read or write is one Ethernet frame.
    pub fn open(name: &str) -> Result<Self, TapError> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || !name.is_ascii()
            || name.contains('\0')
        {
            return Err(TapError::BadName(name.to_owned()));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: IFF_TAP | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which
        // `IfReq` lays out (name, flags, padding to 40 bytes); `req` lives
        // across the call and the descriptor is ours.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if rc < 0 {
            return Err(TapError::Create {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(Self {
            file,
            name: name.to_owned(),
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl NetBackend for Tap {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.file.write(frame) {
            Ok(_) => Ok(()),
            // The host's queue is full or the link is down: drop the frame
            // as a wire would; TCP retransmits.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.file.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for bad in ["", "a-name-much-too-long", "tä p"] {
            assert!(matches!(Tap::open(bad), Err(TapError::BadName(_))), "{bad}");
        }
    }

    use optivolt_testnet::in_private_netns;

    fn ip(args: &[&str]) {
        assert!(optivolt_testnet::ip(args), "ip {args:?}");
    }

    /// An ARP request sent into the tap is answered by the host side's
    /// kernel: frames cross in both directions.
    #[test]
    fn the_host_answers_arp_through_the_tap() {
        in_private_netns("the_host_answers_arp_through_the_tap", || {
            let mut tap = Tap::open("ovtest0").expect("create the tap");
            ip(&["addr", "add", "10.0.7.1/24", "dev", "ovtest0"]);
            ip(&["link", "set", "ovtest0", "up"]);
            let guest_mac = [0x02, 0, 0, 0, 0, 0x02];
            let mut req = Vec::new();
            req.extend_from_slice(&[0xff; 6]); // broadcast
            req.extend_from_slice(&guest_mac);
            req.extend_from_slice(&[0x08, 0x06]); // ARP
            req.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet/IPv4, request
            req.extend_from_slice(&guest_mac);
            req.extend_from_slice(&[10, 0, 7, 2]);
            req.extend_from_slice(&[0; 6]);
            req.extend_from_slice(&[10, 0, 7, 1]);
            tap.send(&req).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut buf = [0u8; 2048];
            loop {
                assert!(Instant::now() < deadline, "no ARP reply within 5 s");
                match tap.recv(&mut buf).unwrap() {
                    Some(n) if n >= 42 && buf[12..14] == [0x08, 0x06] && buf[20..22] == [0, 2] => {
                        assert_eq!(&buf[0..6], &guest_mac, "reply goes to the guest");
                        assert_eq!(&buf[28..32], &[10, 0, 7, 1], "sender is the host side");
                        break;
                    }
                    Some(_) => {} // IPv6 router solicitations and the like
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
}
