//! Host-side set-up for `-p` without `--net`: a tap of volt's own with a
//! private /30 — the host end `.1`, the guest `.2`. The tap is not
//! persistent, so the kernel removes it, and its address, when the last
//! descriptor closes: whenever volt ends, killed or not, nothing is left.

use std::io;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};

/// The tap name and addresses for this volt.
#[derive(Clone, Debug)]
pub struct AutoNet {
    pub tap: String,
    pub host: Ipv4Addr,
    pub guest: Ipv4Addr,
}

/// Prefix length of the private link.
pub const PREFIX: u8 = 30;

/// Picks a tap name and a /30 in 10.213.0.0/16 not used on this host,
/// starting from one derived from the process id.
pub fn choose() -> Result<AutoNet> {
    let pid = std::process::id();
    let used = host_addresses()?;
    for i in 0..16384u32 {
        let slot = (pid + i) % 16384;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + slot * 4;
        let host = Ipv4Addr::from(base + 1);
        let guest = Ipv4Addr::from(base + 2);
        if !used.contains(&host) && !used.contains(&guest) {
            return Ok(AutoNet {
                tap: format!("volt{pid}"),
                host,
                guest,
            });
        }
    }
    bail!("no free /30 left in 10.213.0.0/16 for the guest's link")
}

/// Whether this process holds CAP_NET_ADMIN (needed to create a tap).
pub fn may_create_taps() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true; // let the tap call itself say what is wrong
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// IPv4 addresses configured on this host's interfaces.
fn host_addresses() -> Result<Vec<Ipv4Addr>> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points to a sockaddr whose family
            // tells its real type.
            let fam = unsafe { (*ifa.ifa_addr).sa_family };
            if fam as i32 == libc::AF_INET {
                // SAFETY: AF_INET means it is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

pub(crate) fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    r
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; the kernel reads
    // the bytes as a sockaddr_in because of the family.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Brings interface `name` up (e.g. the loopback of a fresh namespace).
pub fn set_up(name: &str) -> io::Result<()> {
    with_inet_socket(|run| {
        let mut r = ifreq(name);
        run(libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        run(libc::SIOCSIFFLAGS, &mut r)
    })
}

pub(crate) type Ioctl<'a> = &'a dyn Fn(libc::c_ulong, &mut libc::ifreq) -> io::Result<()>;

/// Runs `f` with an ioctl runner on a fresh AF_INET socket.
pub(crate) fn with_inet_socket(f: impl FnOnce(Ioctl<'_>) -> io::Result<()>) -> io::Result<()> {
    // SAFETY: a plain socket call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let run = |req: libc::c_ulong, r: &mut libc::ifreq| -> io::Result<()> {
        // SAFETY: the SIOC*IF* requests read or write one `struct ifreq`,
        // which `r` is.
        if unsafe { libc::ioctl(fd, req as _, r as *mut libc::ifreq) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    let result = f(&run);
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    result
}

/// Gives tap `name` the address `addr/prefix` and brings it up.
pub fn configure(name: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0));
    with_inet_socket(|run| {
        let mut r = ifreq(name);
        r.ifr_ifru.ifru_addr = sockaddr(addr);
        run(libc::SIOCSIFADDR, &mut r)?;
        let mut r = ifreq(name);
        r.ifr_ifru.ifru_netmask = sockaddr(mask);
        run(libc::SIOCSIFNETMASK, &mut r)?;
        Ok(())
    })?;
    set_up(name)
}
