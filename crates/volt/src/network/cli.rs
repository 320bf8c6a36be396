//! `volt network create|ls|rm|inspect`.
use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::images::Output;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Make a network: a bridge in a namespace of its own (root).
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove networks (refused while a guest is on one).
    Rm(NamesArgs),
    /// Print networks, with the guests on them, as JSON.
    Inspect(NamesArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub name: String,
    /// The subnet, e.g. 10.30.0.0/24 (default: the first free 10.214.N.0/24).
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = crate::run::parse_cidr)]
    pub subnet: Option<([u8; 4], u8)>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
    /// Names only.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

fn json_of(db: &mut crate::instance::Db, n: &super::Network) -> Result<serde_json::Value> {
    let guests: Vec<serde_json::Value> = super::leases(db, &n.name)?
        .iter()
        .map(|l| serde_json::json!({"ip": l.ip.to_string(), "names": l.names, "pid": l.pid}))
        .collect();
    Ok(serde_json::json!({
        "name": n.name,
        "subnet": format!("{}/{}", n.subnet, n.prefix),
        "gateway": n.gateway().to_string(),
        "namespace": super::setup::netns_path(&n.name),
        "created": n.created,
        "guests": guests,
    }))
}

pub fn network(c: NetworkCommand) -> Result<i32> {
    let mut db = super::db()?;
    let mut out = std::io::stdout().lock();
    match c {
        NetworkCommand::Create(a) => {
            let n = super::create(&mut db, &a.name, a.subnet)?;
            writeln!(out, "{} {}/{}", n.name, n.subnet, n.prefix)?;
        }
        NetworkCommand::Ls(a) => {
            let list = super::list(&mut db)?;
            if a.quiet {
                for n in &list {
                    writeln!(out, "{}", n.name)?;
                }
            } else if a.output == Output::Json {
                let v = list
                    .iter()
                    .map(|n| json_of(&mut db, n))
                    .collect::<Result<Vec<_>>>()?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{:<24}  {:<18}  GUESTS", "NAME", "SUBNET")?;
                for n in &list {
                    let g = super::leases(&mut db, &n.name)?.len();
                    let subnet = format!("{}/{}", n.subnet, n.prefix);
                    writeln!(out, "{:<24}  {subnet:<18}  {g}", n.name)?;
                }
            }
        }
        NetworkCommand::Rm(a) => {
            for n in &a.names {
                super::remove(&mut db, n)?;
                writeln!(out, "{n}")?;
            }
        }
        NetworkCommand::Inspect(a) => {
            let mut v = Vec::new();
            for n in &a.names {
                let Some(net) = super::find(&mut db, n)? else {
                    anyhow::bail!("no such network: {n}");
                };
                v.push(json_of(&mut db, &net)?);
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
    }
    Ok(0)
}
