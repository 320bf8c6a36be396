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

/// Makes (or repairs: after a reboot /run/netns is empty) the namespace
/// and its bridge.
pub fn ensure(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    if !crate::publish::hostnet::may_create_taps() {
        bail!(
            "volt networks need root or CAP_NET_ADMIN (they are network namespaces with a bridge)"
        );
    }
    let ns = netns_name(name);
    if !netns_path(name).exists() {
        ip_cmd(&["netns", "add", &ns])?;
    }
    if ip_cmd(&["-n", &ns, "link", "show", BRIDGE]).is_err() {
        ip_cmd(&["-n", &ns, "link", "add", BRIDGE, "type", "bridge"])?;
    }
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

/// Puts tap `tap` (made in the namespace by the monitor) on the bridge.
pub fn enslave(name: &str, tap: &str) -> Result<()> {
    ip_cmd(&[
        "-n",
        &netns_name(name),
        "link",
        "set",
        tap,
        "master",
        BRIDGE,
        "up",
    ])
}

/// Tells the bridge's side the MAC address of guest `ip` for good (a
/// permanent neighbour entry), so that a connection to a guest still being
/// restored or booted waits for no ARP answer: its SYN goes out as soon as
/// the guest's tap is on the bridge. Guests' MACs derive from their address,
/// so the entry stays right whoever holds the address later.
pub fn pin_neighbour(name: &str, ip: Ipv4Addr) -> Result<()> {
    let m = crate::run::guest_mac(ip.octets());
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
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
