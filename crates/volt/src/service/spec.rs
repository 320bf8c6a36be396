//! What a service is: its image, its published ports, how many replicas,
//! when they go to standby, how they scale and how they are checked. The
//! API's request body and the stored record are this one type; `check`
//! turns it into the numbers the balancer works with, or says what is
//! wrong with it before anything is made.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A service as the user gives it (`POST /v1/services`, `volt service create`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    /// An image in voltd's store.
    pub image: String,
    /// `[HOST_IP:]HOST_PORT:GUEST_PORT[/http|/tcp]` (default http).
    pub ports: Vec<String>,
    /// Replicas to start with (default: autoscale's min, else 1).
    pub replicas: Option<u32>,
    /// Guest RAM of each replica, e.g. `128M`.
    pub memory: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Replace the image's command.
    #[serde(default)]
    pub args: Vec<String>,
    /// The volt network the replicas join (default `svc-NAME`, made for it);
    /// services on one network reach each other as `NAME.internal`.
    pub network: Option<String>,
    /// Standby after this long without a connection, e.g. `5s`.
    pub scale_to_zero: Option<String>,
    /// `min=N,max=N,target-inflight=N[,warmup=DUR][,cooldown=DUR]`.
    pub autoscale: Option<String>,
    /// An HTTP path that must answer 2xx (default: a TCP connect).
    pub health_path: Option<String>,
    /// Between two checks of a replica, e.g. `1s` (default).
    pub health_interval: Option<String>,
    /// `least-connections` (default) or `round-robin`.
    pub balance: Option<String>,
}

/// How connections are spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    LeastConnections,
    RoundRobin,
}

/// What a published port carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// Requests: keep-alive to the replicas, X-Forwarded-For, retries.
    Http,
    /// Bytes: each connection to one replica.
    Tcp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub host: Ipv4Addr,
    pub host_port: u16,
    pub guest_port: u16,
    pub proto: Proto,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// In-flight requests (HTTP) or open connections (TCP) per replica.
    pub target_inflight: u32,
    /// Load above target this long before replicas are added.
    pub warmup: Duration,
    /// Load below target this long before replicas are removed.
    pub cooldown: Duration,
}

/// A checked spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub ports: Vec<Port>,
    pub replicas: u32,
    pub network: String,
    pub idle: Option<Duration>,
    pub autoscale: Option<Autoscale>,
    pub health_path: Option<String>,
    pub health_interval: Duration,
    pub balance: Balance,
}

/// Replicas a service may have at most.
pub const MAX_REPLICAS: u32 = 64;

/// `500ms`, `5s`, `2m`, `1h`, or bare seconds.
pub fn duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => bail!("{s:?} is not a duration (e.g. 500ms, 5s, 2m)"),
    };
    let secs = n * scale;
    if !(secs.is_finite() && (0.0..=86_400.0 * 365.0).contains(&secs)) {
        bail!("{s:?} is out of range");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn port(s: &str) -> Result<Port> {
    let (addr, proto) = match s.rsplit_once('/') {
        Some((a, "http")) => (a, Proto::Http),
        Some((a, "tcp")) => (a, Proto::Tcp),
        Some((_, p)) => bail!("port {s}: {p} is not http or tcp"),
        None => (s, Proto::Http),
    };
    let parts: Vec<&str> = addr.split(':').collect();
    let num = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("port {s}: {p:?} is not a port number"),
        }
    };
    let (host, hp, gp) = match parts.as_slice() {
        [h, hp, gp] => (
            h.parse::<Ipv4Addr>()
                .with_context(|| format!("port {s}: {h:?} is not an IPv4 address"))?,
            num(hp)?,
            num(gp)?,
        ),
        [hp, gp] => (Ipv4Addr::UNSPECIFIED, num(hp)?, num(gp)?),
        _ => bail!("port {s}: expected [HOST_IP:]HOST_PORT:GUEST_PORT[/http|/tcp]"),
    };
    Ok(Port {
        host,
        host_port: hp,
        guest_port: gp,
        proto,
    })
}

fn autoscale(s: &str) -> Result<Autoscale> {
    let mut a = Autoscale {
        min: 1,
        max: 1,
        target_inflight: 0,
        warmup: Duration::ZERO,
        cooldown: Duration::from_secs(30),
    };
    let mut seen_max = false;
    for kv in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--autoscale {s}: expected KEY=VALUE, got {kv:?}"))?;
        let n = || -> Result<u32> {
            v.parse::<u32>().with_context(|| {
                format!("--autoscale {s}: {k}={v} is not a whole number of 0 or more")
            })
        };
        match k {
            "min" => a.min = n()?,
            "max" => {
                a.max = n()?;
                seen_max = true;
            }
            "target-inflight" => a.target_inflight = n()?,
            "warmup" => a.warmup = duration(v)?,
            "cooldown" => a.cooldown = duration(v)?,
            _ => bail!(
                "--autoscale {s}: unknown key {k:?} (min, max, target-inflight, warmup, cooldown)"
            ),
        }
    }
    if !seen_max {
        bail!("--autoscale {s}: max= is required");
    }
    if a.max == 0 || a.max > MAX_REPLICAS {
        bail!("--autoscale {s}: max must be 1 to {MAX_REPLICAS}");
    }
    if a.min > a.max {
        bail!("--autoscale {s}: min {} is above max {}", a.min, a.max);
    }
    if a.target_inflight == 0 {
        bail!("--autoscale {s}: target-inflight must be at least 1");
    }
    Ok(a)
}

impl Spec {
    /// Checks everything that can be checked without the machine.
    pub fn check(&self) -> Result<Plan> {
        if !crate::instance::valid_name(&self.name) || self.name.len() > 24 {
            bail!(
                "{:?} is not a service name (letters, digits, '_', '.', '-'; at most 24)",
                self.name
            );
        }
        if self.image.is_empty() {
            bail!("a service needs an image");
        }
        if self.ports.is_empty() {
            bail!("a service needs at least one port (--port HOST_PORT:GUEST_PORT)");
        }
        let ports = self
            .ports
            .iter()
            .map(|p| port(p))
            .collect::<Result<Vec<_>>>()?;
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.host_port == p.host_port) {
                bail!("port {} is published twice", p.host_port);
            }
        }
        let autoscale = self.autoscale.as_deref().map(autoscale).transpose()?;
        let idle = self.scale_to_zero.as_deref().map(duration).transpose()?;
        if idle.is_some_and(|d| d < Duration::from_millis(100)) {
            bail!("--scale-to-zero: the idle time must be at least 100ms");
        }
        let replicas = match (self.replicas, &autoscale) {
            (Some(r), Some(a)) if r < a.min || r > a.max => bail!(
                "--replicas {r} is outside the autoscale range {}..{}",
                a.min,
                a.max
            ),
            (Some(r), _) if r > MAX_REPLICAS => bail!("--replicas: at most {MAX_REPLICAS}"),
            (Some(r), _) => r,
            (None, Some(a)) => a.min.max(1),
            (None, None) => 1,
        };
        if replicas == 0 && idle.is_none() {
            bail!("--replicas 0 needs --scale-to-zero (something must wake them)");
        }
        let network = match &self.network {
            Some(n) => n.clone(),
            None => format!("svc-{}", self.name),
        };
        if !crate::network::valid_name(&network) {
            bail!("{network:?} is not a network name");
        }
        let health_interval = match &self.health_interval {
            Some(d) => duration(d)?,
            None => Duration::from_secs(1),
        };
        if health_interval < Duration::from_millis(50) {
            bail!("--health-interval: at least 50ms");
        }
        if let Some(p) = &self.health_path {
            if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("--health-path {p:?}: an absolute URL path, like /healthz");
            }
        }
        let balance = match self.balance.as_deref() {
            None | Some("least-connections") => Balance::LeastConnections,
            Some("round-robin") => Balance::RoundRobin,
            Some(b) => bail!("--balance {b:?}: least-connections or round-robin"),
        };
        Ok(Plan {
            ports,
            replicas,
            network,
            idle,
            autoscale,
            health_path: self.health_path.clone(),
            health_interval,
            balance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "web".into(),
            image: "web:1".into(),
            ports: vec!["127.0.0.1:8080:8080/http".into()],
            ..Spec::default()
        }
    }

    #[test]
    fn a_plain_spec() {
        let p = spec().check().unwrap();
        assert_eq!(p.replicas, 1);
        assert_eq!(p.network, "svc-web");
        assert_eq!(
            p.ports,
            [Port {
                host: Ipv4Addr::LOCALHOST,
                host_port: 8080,
                guest_port: 8080,
                proto: Proto::Http
            }]
        );
        assert_eq!(p.balance, Balance::LeastConnections);
    }

    #[test]
    fn autoscale_and_idle() {
        let mut s = spec();
        s.autoscale = Some("min=0,max=8,target-inflight=32,cooldown=10s".into());
        s.scale_to_zero = Some("5s".into());
        let p = s.check().unwrap();
        let a = p.autoscale.unwrap();
        assert_eq!((a.min, a.max, a.target_inflight), (0, 8, 32));
        assert_eq!(a.cooldown, Duration::from_secs(10));
        assert_eq!(p.idle, Some(Duration::from_secs(5)));
        assert_eq!(p.replicas, 1);
    }

    #[test]
    fn bad_specs_say_why() {
        let bad = |f: &dyn Fn(&mut Spec), why: &str| {
            let mut s = spec();
            f(&mut s);
            let e = s.check().unwrap_err().to_string();
            assert!(e.contains(why), "{e:?} lacks {why:?}");
        };
        bad(
            &|s| s.autoscale = Some("min=4,max=2,target-inflight=1".into()),
            "above max",
        );
        bad(
            &|s| s.autoscale = Some("min=-1,max=2,target-inflight=1".into()),
            "whole number",
        );
        bad(
            &|s| s.autoscale = Some("min=1,target-inflight=1".into()),
            "max= is required",
        );
        bad(&|s| s.autoscale = Some("max=2".into()), "target-inflight");
        bad(
            &|s| s.autoscale = Some("max=2,speed=3".into()),
            "unknown key",
        );
        bad(&|s| s.ports = vec!["8080".into()], "expected");
        bad(&|s| s.ports = vec!["1:2/udp".into()], "not http or tcp");
        bad(&|s| s.ports = vec!["1:2".into(), "1:3".into()], "twice");
        bad(&|s| s.ports.clear(), "at least one port");
        bad(&|s| s.name = "no spaces".into(), "not a service name");
        bad(&|s| s.replicas = Some(0), "needs --scale-to-zero");
        bad(
            &|s| s.scale_to_zero = Some("5 parsecs".into()),
            "not a duration",
        );
        bad(&|s| s.health_path = Some("healthz".into()), "absolute");
        bad(&|s| s.balance = Some("random".into()), "least-connections");
        bad(
            &|s| {
                s.autoscale = Some("min=1,max=2,target-inflight=1".into());
                s.replicas = Some(5);
            },
            "outside",
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("3").unwrap(), Duration::from_secs(3));
        assert!(duration("-1s").is_err());
        assert!(duration("1y").is_err());
    }
}
