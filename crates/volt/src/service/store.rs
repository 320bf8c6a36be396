//! Services and their replicas in volt's database (`services`,
//! `service_replicas`): voltd reads them back when it starts, so a
//! service outlives the daemon as its instances do.
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use rusqlite::{params, OptionalExtension};

use super::spec::Spec;
use crate::instance::Db;

/// A stored service.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub spec: Spec,
    pub created: i64,
    /// What the last change did: `ready`, `updating`, or why it was rolled back.
    pub status: String,
}

/// One replica: an instance of the service, at a fixed address on its network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub service: String,
    /// The instance's name (`SERVICE-N`).
    pub instance: String,
    pub ip: Ipv4Addr,
    pub image: String,
    pub seq: u32,
}

fn tables(db: &mut Db) -> Result<()> {
    db.conn_mut()
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS services (
                name TEXT PRIMARY KEY,
                spec TEXT NOT NULL,
                created INTEGER NOT NULL,
                status TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS service_replicas (
                instance TEXT PRIMARY KEY,
                service TEXT NOT NULL,
                ip TEXT NOT NULL,
                image TEXT NOT NULL,
                seq INTEGER NOT NULL
            );",
        )
        .context("cannot create the service tables")
}

/// The database with the service tables.
pub fn db() -> Result<Db> {
    let mut db = crate::network::db()?;
    tables(&mut db)?;
    Ok(db)
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn decode((spec, created, status): (String, i64, String)) -> Result<Record> {
    Ok(Record {
        spec: serde_json::from_str(&spec).context("a stored service spec")?,
        created,
        status,
    })
}

pub fn list(db: &mut Db) -> Result<Vec<Record>> {
    let rows: Vec<_> = {
        let c = db.conn_mut();
        let mut st = c.prepare("SELECT spec, created, status FROM services ORDER BY name")?;
        let v = st.query_map([], record)?.collect::<rusqlite::Result<_>>()?;
        v
    };
    rows.into_iter().map(decode).collect()
}

pub fn find(db: &mut Db, name: &str) -> Result<Option<Record>> {
    let row = db
        .conn_mut()
        .query_row(
            "SELECT spec, created, status FROM services WHERE name = ?1",
            [name],
            record,
        )
        .optional()?;
    row.map(decode).transpose()
}

/// Records a new service; refused if the name is taken.
pub fn insert(db: &mut Db, spec: &Spec) -> Result<()> {
    let json = serde_json::to_string(spec)?;
    let n = db.conn_mut().execute(
        "INSERT OR IGNORE INTO services (name, spec, created, status) VALUES (?1, ?2, ?3, 'ready')",
        params![spec.name, json, crate::instance::now()],
    )?;
    if n == 0 {
        bail!("service {} already exists", spec.name);
    }
    Ok(())
}

pub fn set_spec(db: &mut Db, spec: &Spec) -> Result<()> {
    let json = serde_json::to_string(spec)?;
    db.conn_mut().execute(
        "UPDATE services SET spec = ?2 WHERE name = ?1",
        params![spec.name, json],
    )?;
    Ok(())
}

pub fn set_status(db: &mut Db, name: &str, status: &str) -> Result<()> {
    db.conn_mut().execute(
        "UPDATE services SET status = ?2 WHERE name = ?1",
        params![name, status],
    )?;
    Ok(())
}

/// Forgets the service (its replicas' rows too).
pub fn remove(db: &mut Db, name: &str) -> Result<()> {
    let c = db.conn_mut();
    c.execute("DELETE FROM service_replicas WHERE service = ?1", [name])?;
    c.execute("DELETE FROM services WHERE name = ?1", [name])?;
    Ok(())
}

pub fn replicas(db: &mut Db, service: &str) -> Result<Vec<Replica>> {
    let c = db.conn_mut();
    let mut st = c.prepare(
        "SELECT instance, ip, image, seq FROM service_replicas WHERE service = ?1 ORDER BY seq",
    )?;
    let v = st
        .query_map([service], |r| {
            let ip: String = r.get(1)?;
            Ok(Replica {
                service: service.to_string(),
                instance: r.get(0)?,
                ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                image: r.get(2)?,
                seq: r.get::<_, i64>(3)? as u32,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(v)
}

pub fn remove_replica(db: &mut Db, instance: &str) -> Result<()> {
    db.conn_mut().execute(
        "DELETE FROM service_replicas WHERE instance = ?1",
        [instance],
    )?;
    Ok(())
}

/// Reserves the next replica of `service` on `network`: its name
/// (`SERVICE-N`, N never reused) and the lowest address no guest holds and
/// no other replica (running or in standby) is kept for.
pub fn reserve(db: &mut Db, service: &str, network: &str, image: &str) -> Result<Replica> {
    let net = crate::network::find(db, network)?
        .with_context(|| format!("no such network: {network}"))?;
    let leased = crate::network::leases(db, network)?;
    let tx = db
        .conn_mut()
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let kept: Vec<String> = {
        let mut st = tx.prepare("SELECT ip FROM service_replicas")?;
        let v = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        v
    };
    let ip = net
        .hosts()
        .find(|h| !leased.iter().any(|l| l.ip == *h) && !kept.contains(&h.to_string()))
        .with_context(|| format!("network {network} has no free address"))?;
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM service_replicas WHERE service = ?1",
        [service],
        |r| r.get(0),
    )?;
    // Names of removed replicas are not reused while an instance holds one.
    let mut seq = seq as u32;
    loop {
        let name = format!("{service}-{seq}");
        let used: Option<String> = tx
            .query_row("SELECT id FROM instances WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()?;
        if used.is_none() {
            break;
        }
        seq += 1;
    }
    let r = Replica {
        service: service.to_string(),
        instance: format!("{service}-{seq}"),
        ip,
        image: image.to_string(),
        seq,
    };
    tx.execute(
        "INSERT INTO service_replicas (instance, service, ip, image, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![r.instance, r.service, r.ip.to_string(), r.image, r.seq],
    )?;
    tx.commit()?;
    Ok(r)
}

/// The network of service `name` (for `volt run --service-net`).
pub fn network_of(name: &str) -> Result<String> {
    let mut db = db()?;
    let Some(r) = find(&mut db, name)? else {
        bail!("no such service: {name}");
    };
    Ok(r.spec.check()?.network)
}
