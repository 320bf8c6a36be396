//! A pod's network, as the CNI left it: an interface (`eth0`) with the
//! pod's address in the container's network namespace. The unikernel takes
//! the address over, as Kata Containers does: the interface keeps no
//! address (so the namespace's own stack stays silent), volt's tap is tied
//! to it both ways with a tc `mirred` redirect, and the guest gets the
//! address, the gateway and the interface's MAC (peers keep the neighbour
//! entries they have). `delete` gives the address back.
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::state::PodNet;

fn ip_json(args: &[&str]) -> Result<Value> {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("ip -j printed something else than JSON")
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The pod interface of this network namespace: the first one other than
/// the loopback with an IPv4 address; `None` for an empty namespace.
pub fn detect() -> Result<Option<PodNet>> {
    let addrs = ip_json(&["-4", "addr", "show"])?;
    let Some(iface) =
        addrs.as_array().into_iter().flatten().find(|i| {
            i["ifname"] != "lo" && i["addr_info"].as_array().is_some_and(|a| !a.is_empty())
        })
    else {
        return Ok(None);
    };
    let name = iface["ifname"].as_str().unwrap_or_default().to_string();
    let a = &iface["addr_info"][0];
    let ip = a["local"].as_str().context("no address")?.to_string();
    let prefix = a["prefixlen"].as_u64().unwrap_or(24) as u8;
    let link = ip_json(&["link", "show", "dev", &name])?;
    let mac = link[0]["address"].as_str().unwrap_or_default().to_string();
    let routes = ip_json(&["-4", "route", "show", "default"])?;
    let gateway = routes[0]["gateway"].as_str().map(String::from);
    Ok(Some(PodNet {
        iface: name,
        ip,
        prefix,
        gateway,
        mac,
    }))
}

/// Takes the address off the interface (the guest will have it).
pub fn take(p: &PodNet) -> Result<()> {
    run(
        "ip",
        &[
            "addr",
            "del",
            &format!("{}/{}", p.ip, p.prefix),
            "dev",
            &p.iface,
        ],
    )
}

/// Gives the interface its address and route back, and drops the
/// redirect; each step is tried (some may be gone already).
pub fn restore(p: &PodNet) {
    let _ = run("tc", &["qdisc", "del", "dev", &p.iface, "ingress"]);
    let _ = run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/{}", p.ip, p.prefix),
            "dev",
            &p.iface,
        ],
    );
    if let Some(gw) = &p.gateway {
        let _ = run("ip", &["route", "add", "default", "via", gw]);
    }
}

/// Ties `tap` and `iface` together both ways (run by volt once its tap exists).
pub fn redirect(iface: &str, tap: &str) -> Result<()> {
    run("ip", &["link", "set", tap, "up"])?;
    for (from, to) in [(iface, tap), (tap, iface)] {
        run("tc", &["qdisc", "add", "dev", from, "ingress"])?;
        run(
            "tc",
            &[
                "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32", "match",
                "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
            ],
        )?;
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}
