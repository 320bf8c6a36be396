//! Published ports, docker's `-p [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp]`.
//!
//! Parsed and checked before any VM starts, so a typo costs one error line
//! and nothing on the host. The relaying is in [`proxy`]; [`hostnet`] sets
//! up volt's own tap when there is no `--net`.

pub mod hostnet;
pub mod proxy;
pub mod rootless;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `-p` mapping: host address and port forwarded to a guest port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub guest_port: u16,
    pub proto: Proto,
}

impl FromStr for PortMapping {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid -p '{s}': {why} (expected [HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|/udp])")
        };
        let (spec, proto) = match s.rsplit_once('/') {
            Some((spec, "tcp")) => (spec, Proto::Tcp),
            Some((spec, "udp")) => (spec, Proto::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (s, Proto::Tcp),
        };
        let (host, guest) = spec.rsplit_once(':').ok_or_else(|| bad("no guest port"))?;
        let (host_ip, host) = match host.rsplit_once(':') {
            Some((ip, port)) => {
                // IPv6 addresses come bracketed, as in docker: [::1]:8080:80
                let ip = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or(ip);
                let ip: IpAddr = ip
                    .parse()
                    .map_err(|_| bad("the host address is not an IP address"))?;
                (ip, port)
            }
            None => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), host),
        };
        let port = |p: &str, what: &str| -> Result<u16, String> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("the {what} port must be a number in 1-65535"))),
                Ok(n) => Ok(n),
            }
        };
        Ok(Self {
            host_ip,
            host_port: port(host, "host")?,
            guest_port: port(guest, "guest")?,
            proto,
        })
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        match self.host_ip {
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
            IpAddr::V4(ip) => write!(f, "{ip}")?,
        }
        write!(f, ":{}:{}/{proto}", self.host_port, self.guest_port)
    }
}

/// Refuses two mappings of the same host address, port and protocol (the
/// second could never bind).
pub fn check_unique(maps: &[PortMapping]) -> Result<(), String> {
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[..i] {
            let overlap =
                a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified();
            if a.host_port == b.host_port && a.proto == b.proto && overlap {
                return Err(format!("-p {a} and -p {b} publish the same host port"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<PortMapping, String> {
        s.parse()
    }

    #[test]
    fn docker_forms_parse() {
        let m = p("127.0.0.1:8080:80").unwrap();
        assert_eq!(m.host_ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((m.host_port, m.guest_port, m.proto), (8080, 80, Proto::Tcp));
        let m = p("8080:8080").unwrap();
        assert!(m.host_ip.is_unspecified());
        assert_eq!(p("53:53/udp").unwrap().proto, Proto::Udp);
        assert_eq!(p("1:65535/tcp").unwrap().guest_port, 65535);
        let m = p("[::1]:8443:443").unwrap();
        assert_eq!(m.host_ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(m.to_string(), "[::1]:8443:443/tcp");
        assert_eq!(
            p("127.0.0.1:80:8080/udp").unwrap().to_string(),
            "127.0.0.1:80:8080/udp"
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        for (s, why) in [
            ("8080", "no guest port"),
            ("0:80", "host port"),
            ("80:0", "guest port"),
            ("80:65536", "guest port"),
            ("x:80", "host port"),
            ("80:80/sctp", "tcp or udp"),
            ("300.1.1.1:80:80", "not an IP"),
            ("localhost:80:80", "not an IP"),
            ("", "no guest port"),
        ] {
            let e = p(s).unwrap_err();
            assert!(e.contains(why) && e.contains(&format!("'{s}'")), "{s}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn duplicate_host_ports_are_refused() {
        let m = |s: &str| p(s).unwrap();
        assert!(check_unique(&[m("8080:80"), m("8081:80")]).is_ok());
        assert!(check_unique(&[m("8080:80"), m("8080:80/udp")]).is_ok());
        assert!(check_unique(&[m("127.0.0.1:80:80"), m("127.0.0.2:80:81")]).is_ok());
        assert!(check_unique(&[m("127.0.0.1:80:80"), m("80:81")]).is_err());
        assert!(check_unique(&[m("80:80"), m("80:81")]).is_err());
    }
}
