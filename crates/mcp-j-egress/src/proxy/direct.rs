//! Direct listeners: a program that ignores proxy variables connects to a synthetic
//! address the DNS stub gave it (or to an allowlisted address made local to the jail) on
//! an allowlisted port; the listener's local address says which, and the connection is
//! forwarded exactly like a `CONNECT` to that destination.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

use super::copy::relay;
use super::{Record, Shared, SyntheticNameMap};

/// The destination host a direct connection meant, from the address it reached inside
/// the jail: the name behind a synthetic address, or the address itself (as `a.b.c.d` or
/// `[v6]`). The port is the listener's port.
pub fn destination_of(local: SocketAddr, names: &dyn SyntheticNameMap) -> (String, u16) {
    let ip = local.ip().to_canonical();
    let host = match ip {
        IpAddr::V4(v4) => names.name_of(v4).unwrap_or_else(|| v4.to_string()),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    (host, local.port())
}

/// Serve one connection accepted on a direct listener. A refusal closes the connection:
/// the protocol is unknown, so there is no way to say why except in the event.
pub(crate) async fn serve(shared: &Shared, mut stream: TcpStream, record: &mut Record) {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(e) => return record.refuse(format!("the connection's local address is unknown: {e}")),
    };
    let (host, port) = destination_of(local, shared.names.as_ref());
    let Ok(mut upstream) = shared.open(&host, port, record).await else {
        return;
    };
    record.allowed();
    let relayed = relay(
        &mut stream,
        &mut upstream,
        shared.limits.buffer_size,
        shared.limits.idle_timeout,
    )
    .await;
    record.bytes_up += relayed.up;
    record.bytes_down += relayed.down;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    #[test]
    fn local_addresses_map_to_synthetic_names_or_to_themselves() {
        let names: HashMap<Ipv4Addr, String> = [(Ipv4Addr::new(127, 0, 53, 7), "api.example.com".to_string())].into();
        let sa = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            destination_of(sa("127.0.53.7:443"), &names),
            ("api.example.com".to_string(), 443)
        );
        assert_eq!(
            destination_of(sa("203.0.113.9:8080"), &names),
            ("203.0.113.9".to_string(), 8080)
        );
        assert_eq!(
            destination_of(sa("[::ffff:127.0.53.7]:80"), &names),
            ("api.example.com".to_string(), 80)
        );
        assert_eq!(
            destination_of(sa("[2001:db8::1]:443"), &names),
            ("[2001:db8::1]".to_string(), 443)
        );
        assert_eq!(
            destination_of(sa("127.0.0.1:443"), &super::super::NoSyntheticNames),
            ("127.0.0.1".to_string(), 443)
        );
    }
}
