//! The host side of a volt network: a network namespace of its own
//! (`/run/netns/volt-NAME`) holding a bridge, `br0`, with the network's
//! gateway address. Instances' taps are made inside it and enslaved to the
//! bridge, so guests reach each other and nothing else; the machine's own
//! namespace gets no interface. Done with iproute2's `ip`, as an
//! administrator would.
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The bridge's name inside the namespace.
pub const BRIDGE: &str = "br0";

/// The namespace's name for network `name`.
pub fn netns_name(name: &str) -> String {
    format!("volt-{name}")
}

/// Its file, which `setns` takes.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(netns_name(name))
}

fn ip_cmd(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2): volt networks need it")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `f` on a thread inside network `name`'s namespace.
fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let file = std::fs::File::open(netns_path(name))?;
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a namespace file we hold open; it moves only
        // this short-lived thread.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

/// Whether the namespace already has its bridge up with the gateway
/// address and its loopback up (ioctls, no `ip` process: each costs ~6 ms
/// here, and a wake from standby runs this).
fn ready(name: &str, gateway: Ipv4Addr) -> bool {
    use crate::publish::hostnet::{ifreq, with_inet_socket};
    if !netns_path(name).exists() {
        return false;
    }
    let up = in_netns(name, move || {
        let mut ok = true;
        with_inet_socket(|run| {
            for dev in [BRIDGE, "lo"] {
                let mut r = ifreq(dev);
                run(libc::SIOCGIFFLAGS, &mut r)?;
                // SAFETY: SIOCGIFFLAGS filled the flags member.
                let flags = unsafe { r.ifr_ifru.ifru_flags };
                ok &= flags & libc::IFF_UP as libc::c_short != 0;
            }
            let mut r = ifreq(BRIDGE);
            run(libc::SIOCGIFADDR, &mut r)?;
            // SAFETY: SIOCGIFADDR filled the address member with an AF_INET
            // address, which has sockaddr_in's layout.
            let sin: libc::sockaddr_in = unsafe { std::mem::transmute(r.ifr_ifru.ifru_addr) };
            ok &= u32::from_be(sin.sin_addr.s_addr) == u32::from(gateway);
            // A bridge made before bridges had a MAC of their own is set
            // right once, on the slow path.
            let mut r = ifreq(BRIDGE);
            run(libc::SIOCGIFHWADDR, &mut r)?;
            // SAFETY: SIOCGIFHWADDR filled the hardware address member.
            let hw = unsafe { r.ifr_ifru.ifru_hwaddr.sa_data };
            let want = bridge_mac(gateway);
            ok &= hw[..6].iter().zip(want).all(|(&a, b)| a as u8 == b);
            Ok(())
        })?;
        Ok(ok)
    });
    matches!(up, Ok(true))
}

/// The bridge's MAC address: from the gateway's address, as guests' come
/// from theirs.
fn bridge_mac(gateway: Ipv4Addr) -> [u8; 6] {
    crate::run::guest_mac(gateway.octets())
}

/// `m` as `ip` writes it: aa:bb:cc:dd:ee:ff.
fn mac_text(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Makes (or repairs: after a reboot /run/netns is empty) the namespace
/// and its bridge.
pub fn ensure(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    if !crate::publish::hostnet::may_create_taps() {
        bail!(
            "volt networks need root or CAP_NET_ADMIN (they are network namespaces with a bridge)"
        );
    }
    if ready(name, gateway) {
        return Ok(());
    }
    let ns = netns_name(name);
    if !netns_path(name).exists() {
        ip_cmd(&["netns", "add", &ns])?;
    }
    if ip_cmd(&["-n", &ns, "link", "show", BRIDGE]).is_err() {
        ip_cmd(&["-n", &ns, "link", "add", BRIDGE, "type", "bridge"])?;
    }
    // A MAC address of its own. Without one a bridge takes its lowest
    // port's, so it changes whenever a guest's tap comes or goes; the
    // kernel then flushes every neighbour entry on the bridge, the pinned
    // ones too (a wake waited a second for ARP), and guests are left with
    // a stale MAC for their gateway.
    let mac = mac_text(bridge_mac(gateway));
    ip_cmd(&["-n", &ns, "link", "set", BRIDGE, "address", &mac])?;
    let addr = format!("{gateway}/{prefix}");
    ip_cmd(&["-n", &ns, "addr", "replace", &addr, "dev", BRIDGE])?;
    ip_cmd(&["-n", &ns, "link", "set", BRIDGE, "up"])?;
    ip_cmd(&["-n", &ns, "link", "set", "lo", "up"])
}

/// Removes the namespace, and with it every interface in it.
pub fn remove(name: &str) -> Result<()> {
    if netns_path(name).exists() {
        ip_cmd(&["netns", "del", &netns_name(name)])?;
    }
    Ok(())
}

/// `SIOCBRADDIF` (linux/sockios.h): add an interface to a bridge.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Puts tap `tap` (made in the namespace by the monitor) on the bridge and
/// brings it up (ioctls, as `brctl addif` does).
pub fn enslave(name: &str, tap: &str) -> Result<()> {
    use crate::publish::hostnet::{ifreq, with_inet_socket};
    let t = tap.to_string();
    in_netns(name, move || {
        with_inet_socket(|run| {
            let mut r = ifreq(&t);
            run(libc::SIOCGIFINDEX, &mut r)?;
            // SAFETY: SIOCGIFINDEX filled the index member.
            let index = unsafe { r.ifr_ifru.ifru_ifindex };
            let mut b = ifreq(BRIDGE);
            b.ifr_ifru.ifru_ifindex = index;
            run(SIOCBRADDIF, &mut b)
        })?;
        crate::publish::hostnet::set_up(&t)
    })
    .with_context(|| format!("cannot put {tap} on network {name}'s bridge"))
}

/// Tells the bridge's side the MAC address of guest `ip` for good (a
/// permanent neighbour entry), so that a connection to a guest still being
/// restored or booted waits for no ARP answer: its SYN goes out as soon as
/// the guest's tap is on the bridge. Guests' MACs derive from their address,
/// so the entry stays right whoever holds the address later.
pub fn pin_neighbour(name: &str, ip: Ipv4Addr) -> Result<()> {
    let mac = mac_text(crate::run::guest_mac(ip.octets()));
    ip_cmd(&[
        "-n",
        &netns_name(name),
        "neigh",
        "replace",
        &ip.to_string(),
        "lladdr",
        &mac,
        "dev",
        BRIDGE,
        "nud",
        "permanent",
    ])
}
