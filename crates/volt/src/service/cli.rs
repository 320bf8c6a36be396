//! `volt service create|ls|inspect|update|scale|rm`: through voltd, which
//! runs the balancer (`VOLT_HOST`, or voltd's default socket).
use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::spec::Spec;

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Start a service: replicas of an image behind a load balancer.
    Create(Box<CreateArgs>),
    /// List services.
    Ls,
    /// Print services as JSON (spec, replicas, their states).
    Inspect { names: Vec<String> },
    /// Roll the replicas over to a new image (one at a time; rolled back
    /// if a new one fails its health check), or change their number.
    Update(UpdateArgs),
    /// Remove services and their replicas.
    Rm { names: Vec<String> },
}

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct CreateArgs {
    pub name: String,
    /// An image in voltd's store.
    #[arg(long)]
    pub image: String,
    /// Publish: `[HOST_IP:]HOST_PORT:GUEST_PORT[/http|/tcp]` (repeatable;
    /// http: requests spread over keep-alive connections; tcp: connections).
    #[arg(short = 'p', long = "port", required = true)]
    pub ports: Vec<String>,
    /// Replicas to start (default: autoscale's min, else 1).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// `idle=DURATION` (or just DURATION): a replica without a connection
    /// that long is saved and stopped (standby); the next connection waits
    /// while one is restored.
    #[arg(long, value_name = "idle=DURATION")]
    pub scale_to_zero: Option<String>,
    /// `min=N,max=N,target-inflight=N[,warmup=DUR][,cooldown=DUR]`.
    #[arg(long, value_name = "SPEC")]
    pub autoscale: Option<String>,
    /// Guest memory of each replica, e.g. 128M.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// KEY=VALUE in each replica's environment (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The network the replicas join (default: svc-NAME, made for it).
    #[arg(long)]
    pub network: Option<String>,
    /// Check replicas with GET PATH (2xx) instead of a TCP connect.
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,
    /// Time between two checks of a replica (default 1s).
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// least-connections (default) or round-robin.
    #[arg(long)]
    pub balance: Option<String>,
    /// Replace the image's command.
    #[arg(allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub name: String,
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long)]
    pub replicas: Option<u32>,
}

fn host() -> Result<crate::remote::Host> {
    if let Some(h) = crate::remote::host()? {
        return Ok(h);
    }
    if std::path::Path::new(crate::remote::DEFAULT_SOCKET).exists() {
        return crate::remote::Host::unix(crate::remote::DEFAULT_SOCKET);
    }
    bail!(
        "services run in voltd: start it (voltd --listen unix://{}) or set VOLT_HOST",
        crate::remote::DEFAULT_SOCKET
    )
}

impl CreateArgs {
    pub fn spec(&self) -> Result<Spec> {
        let env = self
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => bail!("--env {e}: expected KEY=VALUE"),
            })
            .collect::<Result<_>>()?;
        let idle = self
            .scale_to_zero
            .as_deref()
            .map(|s| s.strip_prefix("idle=").unwrap_or(s).to_string());
        let s = Spec {
            name: self.name.clone(),
            image: self.image.clone(),
            ports: self.ports.clone(),
            replicas: self.replicas,
            memory: self.memory.clone(),
            env,
            args: self.args.clone(),
            network: self.network.clone(),
            scale_to_zero: idle,
            autoscale: self.autoscale.clone(),
            health_path: self.health_path.clone(),
            health_interval: self.health_interval.clone(),
            balance: self.balance.clone(),
        };
        // The same check voltd makes: a typo costs no round trip.
        s.check()?;
        Ok(s)
    }
}

pub fn service(c: ServiceCommand) -> Result<i32> {
    match c {
        ServiceCommand::Create(a) => {
            let spec = a.spec()?;
            let h = host()?;
            let v = h.call_json("POST", "/v1/services", Some(serde_json::to_value(&spec)?))?;
            println!("{}", v["name"].as_str().unwrap_or(&spec.name));
        }
        ServiceCommand::Ls => {
            let v = host()?.call_json("GET", "/v1/services", None)?;
            println!(
                "{:<16} {:<24} {:<8} {:<9} {:<8} PORTS",
                "NAME", "IMAGE", "READY", "STANDBY", "STATUS"
            );
            for s in v.as_array().into_iter().flatten() {
                let ports: Vec<&str> = s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .collect();
                println!(
                    "{:<16} {:<24} {:<8} {:<9} {:<8} {}",
                    s["name"].as_str().unwrap_or(""),
                    s["spec"]["image"].as_str().unwrap_or(""),
                    format!(
                        "{}/{}",
                        s["ready"].as_u64().unwrap_or(0),
                        s["replicas"].as_array().map_or(0, |r| r.len())
                    ),
                    s["standby"].as_u64().unwrap_or(0),
                    s["status"].as_str().unwrap_or(""),
                    ports.join(",")
                );
            }
        }
        ServiceCommand::Inspect { names } => {
            let h = host()?;
            let mut all = Vec::new();
            for n in &names {
                all.push(h.call_json("GET", &format!("/v1/services/{n}"), None)?);
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        ServiceCommand::Update(a) => {
            if a.image.is_none() && a.replicas.is_none() {
                bail!("volt service update: give --image or --replicas");
            }
            let body = serde_json::json!({ "image": a.image, "replicas": a.replicas });
            let v = host()?.call_json("PATCH", &format!("/v1/services/{}", a.name), Some(body))?;
            println!("{}", v["status"].as_str().unwrap_or("ready"));
        }
        ServiceCommand::Rm { names } => {
            let h = host()?;
            for n in &names {
                h.call_json("DELETE", &format!("/v1/services/{n}"), None)?;
                println!("{n}");
            }
        }
    }
    Ok(0)
}
