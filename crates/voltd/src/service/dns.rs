//! The resolver of a volt network, on its gateway's port 53 inside the
//! network's namespace: `SERVICE.internal` is the gateway (where the
//! balancer listens for the guests), `INSTANCE.internal` (or any name a
//! guest on the network is known by) its address. Other names are refused:
//! a guest on a volt network reaches nothing outside it.
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use super::manager::Manager;

const TTL: u32 = 5;

/// The address of `name` (lower case, no trailing dot) on network `net`.
fn lookup(m: &Manager, net: &str, name: &str) -> Option<Ipv4Addr> {
    let short = name.strip_suffix(".internal")?;
    if !m.serves(net) {
        return None;
    }
    let services = m.on_network(net);
    if let Some(s) = services.iter().find(|s| s.name == short) {
        return Some(s.gateway);
    }
    for s in &services {
        if let Some(b) = s.pool.all().iter().find(|b| b.name() == short) {
            return Some(b.ip());
        }
    }
    let mut db = optivolt_volt::network::db().ok()?;
    optivolt_volt::network::leases(&mut db, net)
        .ok()?
        .into_iter()
        .find(|l| l.names.iter().any(|n| n.eq_ignore_ascii_case(short)))
        .map(|l| l.ip)
}

/// The answer to one query packet; None for what is not a query.
pub fn answer(m: &Manager, net: &str, packet: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(packet).ok()?;
    if q.message_type() != MessageType::Query {
        return None;
    }
    let mut r = Message::new();
    r.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(q.recursion_desired())
        .set_recursion_available(false)
        .set_authoritative(true);
    r.add_queries(q.queries().to_vec());
    let Some(query) = q.queries().first().filter(|_| q.op_code() == OpCode::Query) else {
        r.set_response_code(ResponseCode::NotImp);
        return r.to_vec().ok();
    };
    let name = query
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if !name.ends_with(".internal") {
        r.set_response_code(ResponseCode::Refused);
        return r.to_vec().ok();
    }
    match lookup(m, net, &name) {
        Some(ip) => {
            if query.query_type() == RecordType::A || query.query_type() == RecordType::ANY {
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    TTL,
                    RData::A(A(ip)),
                ));
            }
            // Other types of a known name: no error, no records.
        }
        None => {
            r.set_response_code(ResponseCode::NXDomain);
        }
    }
    r.to_vec().ok()
}

pub async fn serve(m: &'static Manager, net: String, udp: tokio::net::UdpSocket) {
    let udp = std::sync::Arc::new(udp);
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(network = %net, "dns: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let packet = buf[..n].to_vec();
        let (u, net2) = (std::sync::Arc::clone(&udp), net.clone());
        // The lease table is SQLite: off the async threads.
        tokio::spawn(async move {
            let out = tokio::task::spawn_blocking(move || answer(m, &net2, &packet)).await;
            if let Ok(Some(out)) = out {
                let _ = u.send_to(&out, from).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn ask(name: &str) -> Message {
        let mut q = Message::new();
        q.set_id(7).set_recursion_desired(true);
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        let out = answer(&Manager::default(), "no-such-net", &q.to_vec().unwrap()).unwrap();
        Message::from_vec(&out).unwrap()
    }

    #[test]
    fn outside_names_are_refused_and_unknown_ones_do_not_exist() {
        let r = ask("example.com.");
        assert_eq!(r.id(), 7);
        assert_eq!(r.message_type(), MessageType::Response);
        assert_eq!(r.response_code(), ResponseCode::Refused);
        let r = ask("nobody.internal.");
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(r.answers().is_empty());
        assert_eq!(r.queries().len(), 1);
    }

    #[test]
    fn garbage_gets_no_answer() {
        assert!(answer(&Manager::default(), "n", b"\x01\x02").is_none());
    }
}
