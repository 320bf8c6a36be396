//! Networks: `volt network create|ls|rm|inspect`, and `volt run --network`.
//!
//! A network is a /24 with a bridge in a namespace of its own (`setup.rs`).
//! Its record and the addresses leased on it live in the instance database
//! (`networks`, `net_leases`), taken under `BEGIN IMMEDIATE` so that two
//! `volt run` at once never get the same address. A lease belongs to the
//! `volt run` process that holds the VM (its PID and start time): when that
//! process is gone, the lease is free again, however it ended.
pub mod cli;
pub mod private;
pub mod setup;

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use rusqlite::{params, OptionalExtension};

use crate::instance::Db;

/// A network's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    /// The subnet's first address; the bridge has `.1`.
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub created: i64,
}

impl Network {
    /// The bridge's address: the guests' gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet) + 1)
    }

    fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        u32::from(a) & mask == u32::from(self.subnet)
    }

    /// Addresses guests may have: after the gateway, before broadcast.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.subnet);
        let n = 1u32 << (32 - u32::from(self.prefix));
        (2..n - 1).map(move |i| Ipv4Addr::from(base + i))
    }
}

/// One address in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// Names the guests on the network know it by.
    pub names: Vec<String>,
    pub pid: i32,
}

fn tables(db: &mut Db) -> Result<()> {
    db.conn_mut()
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS networks (
                name TEXT PRIMARY KEY,
                subnet TEXT NOT NULL UNIQUE,
                prefix INTEGER NOT NULL,
                created INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS net_leases (
                network TEXT NOT NULL,
                ip TEXT NOT NULL,
                names TEXT NOT NULL,
                pid INTEGER NOT NULL,
                start INTEGER NOT NULL,
                PRIMARY KEY (network, ip)
            );",
        )
        .context("cannot create the network tables")
}

/// Opens the database with the network tables.
pub fn db() -> Result<Db> {
    let mut db = Db::open_default()?;
    tables(&mut db)?;
    Ok(db)
}

/// Whether `n` is a network name.
pub fn valid_name(n: &str) -> bool {
    // The namespace is `volt-NAME`; keep it short and plain.
    crate::volumes::valid_name(n) && n.len() <= 32
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Network> {
    let subnet: String = r.get(1)?;
    Ok(Network {
        name: r.get(0)?,
        subnet: subnet.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
        prefix: r.get::<_, i64>(2)? as u8,
        created: r.get(3)?,
    })
}

/// Every network, by name.
pub fn list(db: &mut Db) -> Result<Vec<Network>> {
    let c = db.conn_mut();
    let mut st = c.prepare("SELECT name, subnet, prefix, created FROM networks ORDER BY name")?;
    let v = st
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

/// Network `name`, if it exists.
pub fn find(db: &mut Db, name: &str) -> Result<Option<Network>> {
    Ok(db
        .conn_mut()
        .query_row(
            "SELECT name, subnet, prefix, created FROM networks WHERE name = ?1",
            [name],
            row,
        )
        .optional()?)
}

/// Makes network `name` (`subnet`, or the first free 10.214.N.0/24).
pub fn create(db: &mut Db, name: &str, subnet: Option<([u8; 4], u8)>) -> Result<Network> {
    if !valid_name(name) {
        bail!("{name:?} is not a network name (letters, digits, '_', '.', '-'; at most 32)");
    }
    let tx = db
        .conn_mut()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let taken: Option<String> = tx
        .query_row("SELECT name FROM networks WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if taken.is_some() {
        bail!("network {name} already exists");
    }
    let used: Vec<String> = {
        let mut st = tx.prepare("SELECT subnet FROM networks")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        v
    };
    let (subnet, prefix) = match subnet {
        Some((a, p)) => {
            if !(16..=29).contains(&p) {
                bail!("--subnet: a prefix from /16 to /29");
            }
            let mask = u32::MAX << (32 - u32::from(p));
            let base = Ipv4Addr::from(u32::from(Ipv4Addr::from(a)) & mask);
            if used.contains(&base.to_string()) {
                bail!("--subnet {base}/{p} is another volt network's");
            }
            (base, p)
        }
        None => (0..=255u8)
            .map(|n| Ipv4Addr::new(10, 214, n, 0))
            .find(|s| !used.contains(&s.to_string()))
            .map(|s| (s, 24))
            .context("no free /24 left in 10.214.0.0/16")?,
    };
    let net = Network {
        name: name.to_string(),
        subnet,
        prefix,
        created: crate::instance::now(),
    };
    tx.execute(
        "INSERT INTO networks (name, subnet, prefix, created) VALUES (?1, ?2, ?3, ?4)",
        params![net.name, net.subnet.to_string(), net.prefix, net.created],
    )?;
    // The namespace before the commit: a failure leaves no record.
    setup::ensure(name, net.gateway(), net.prefix)?;
    tx.commit()?;
    Ok(net)
}

/// The leases on `net` whose holders still run (dead ones are dropped).
pub fn leases(db: &mut Db, net: &str) -> Result<Vec<Lease>> {
    let c = db.conn_mut();
    let rows: Vec<(String, String, i64, i64)> = {
        let mut st =
            c.prepare("SELECT ip, names, pid, start FROM net_leases WHERE network = ?1")?;
        let v = st
            .query_map([net], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        v
    };
    let mut live = Vec::new();
    for (ip, names, pid, start) in rows {
        if crate::instance::alive(Some((pid as i32, start as u64))) {
            live.push(Lease {
                ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                names: names.split_whitespace().map(String::from).collect(),
                pid: pid as i32,
            });
        } else {
            c.execute(
                "DELETE FROM net_leases WHERE network = ?1 AND ip = ?2",
                params![net, ip],
            )?;
        }
    }
    live.sort_by_key(|l| u32::from(l.ip));
    Ok(live)
}

/// Removes network `name`; refused while a guest is on it.
pub fn remove(db: &mut Db, name: &str) -> Result<()> {
    if find(db, name)?.is_none() {
        bail!("no such network: {name}");
    }
    let l = leases(db, name)?;
    if !l.is_empty() {
        let who: Vec<String> = l.iter().map(|l| l.names.join("/")).collect();
        bail!(
            "network {name} is in use by {} (stop them first)",
            who.join(", ")
        );
    }
    setup::remove(name)?;
    db.conn_mut()
        .execute("DELETE FROM networks WHERE name = ?1", [name])?;
    Ok(())
}

/// An address on a network, held until this value is dropped (or this
/// process ends).
pub struct Held {
    pub net: Network,
    pub ip: Ipv4Addr,
    /// The guest's `/etc/hosts`.
    pub hosts: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut db) = db() {
            let _ = db.conn_mut().execute(
                "DELETE FROM net_leases WHERE network = ?1 AND ip = ?2 AND pid = ?3",
                params![self.net.name, self.ip.to_string(), std::process::id()],
            );
        }
    }
}

/// Leases an address on network `name` for this process (`want`, or the
/// lowest free one), known by `names`; `extra` are `NAME:IP` lines for the
/// guest's /etc/hosts.
pub fn lease(
    name: &str,
    want: Option<Ipv4Addr>,
    names: &[String],
    extra: &[String],
) -> Result<Held> {
    let mut db = db()?;
    let Some(net) = find(&mut db, name)? else {
        bail!("no such network: {name} (volt network create {name})");
    };
    setup::ensure(name, net.gateway(), net.prefix)?;
    let others = leases(&mut db, name)?;
    let pid = std::process::id() as i32;
    let start =
        crate::instance::start_time(pid).context("cannot read this process's start time")?;
    let tx = db
        .conn_mut()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let taken = |ip: Ipv4Addr| -> Result<bool> {
        let live = others.iter().any(|l| l.ip == ip);
        let row: Option<i64> = tx
            .query_row(
                "SELECT pid FROM net_leases WHERE network = ?1 AND ip = ?2",
                params![name, ip.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(live || row.is_some())
    };
    let ip = match want {
        Some(ip) => {
            if !net.contains(ip) || ip == net.gateway() || !net.hosts().any(|h| h == ip) {
                bail!(
                    "--ip {ip} is not a guest address of network {name} ({}/{})",
                    net.subnet,
                    net.prefix
                );
            }
            if taken(ip)? {
                bail!("--ip {ip} is in use on network {name}");
            }
            ip
        }
        None => {
            let mut free = None;
            for h in net.hosts() {
                if !taken(h)? {
                    free = Some(h);
                    break;
                }
            }
            free.with_context(|| format!("network {name} has no free address"))?
        }
    };
    tx.execute(
        "INSERT OR REPLACE INTO net_leases (network, ip, names, pid, start) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, ip.to_string(), names.join(" "), pid, start as i64],
    )?;
    tx.commit()?;
    let hosts = hosts_file(ip, names, &others, extra)?;
    Ok(Held { net, ip, hosts })
}

/// The guest's /etc/hosts: localhost, itself, the other guests on the
/// network now, and what `--add-host` gave (`NAME:IP`).
pub fn hosts_file(
    ip: Ipv4Addr,
    names: &[String],
    others: &[Lease],
    extra: &[String],
) -> Result<String> {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if !names.is_empty() {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    for l in others.iter().filter(|l| !l.names.is_empty()) {
        s.push_str(&format!("{}\t{}\n", l.ip, l.names.join(" ")));
    }
    for e in extra {
        let Some((n, a)) = e.rsplit_once(':') else {
            bail!("--add-host {e}: expected NAME:IP");
        };
        let a: Ipv4Addr = a
            .parse()
            .map_err(|_| anyhow::anyhow!("--add-host {e}: {a} is not an IPv4 address"))?;
        if n.is_empty() || n.contains(char::is_whitespace) {
            bail!("--add-host {e}: bad name");
        }
        s.push_str(&format!("{a}\t{n}\n"));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_a_subnet() {
        let n = Network {
            name: "n".into(),
            subnet: Ipv4Addr::new(10, 214, 3, 0),
            prefix: 24,
            created: 0,
        };
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 214, 3, 1));
        let h: Vec<_> = n.hosts().collect();
        assert_eq!(h.first(), Some(&Ipv4Addr::new(10, 214, 3, 2)));
        assert_eq!(h.last(), Some(&Ipv4Addr::new(10, 214, 3, 254)));
        assert!(n.contains(Ipv4Addr::new(10, 214, 3, 77)));
        assert!(!n.contains(Ipv4Addr::new(10, 214, 4, 77)));
    }

    #[test]
    fn hosts_files() {
        let others = [Lease {
            ip: Ipv4Addr::new(10, 0, 0, 3),
            names: vec!["db".into(), "proj-db-1".into()],
            pid: 1,
        }];
        let s = hosts_file(
            Ipv4Addr::new(10, 0, 0, 2),
            &["web".into()],
            &others,
            &["cache:10.0.0.9".into()],
        )
        .unwrap();
        assert!(s.contains("10.0.0.2\tweb\n"));
        assert!(s.contains("10.0.0.3\tdb proj-db-1\n"));
        assert!(s.contains("10.0.0.9\tcache\n"));
        assert!(hosts_file(Ipv4Addr::LOCALHOST, &[], &[], &["x".into()]).is_err());
        assert!(hosts_file(Ipv4Addr::LOCALHOST, &[], &[], &["x:1.2.3".into()]).is_err());
    }
}
