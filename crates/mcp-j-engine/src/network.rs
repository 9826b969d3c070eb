//! The jail's network when an allowlist is given (docs/SANDBOX.md, step 18): init, still
//! holding its capabilities in the jail's user namespace (which owns the network
//! namespace), brings the loopback up, makes the allowlisted addresses and networks local
//! to it, binds every listening socket the egress layer needs, and hands them out to the
//! supervisor, which serves them from outside (`mcp-j-egress`). The jail keeps no socket:
//! its programs reach the allowlist only by connecting to these listeners, and there is no
//! route anywhere else.
//!
//! Netlink messages are built here by hand (two message kinds, a few attributes): pure
//! functions, unit-tested to the byte, sent through rustix's safe socket calls.

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType, ipproto, netlink, sockopt,
};

use crate::spec::EgressSpec;

/// What one socket handed to the supervisor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EgressSocket {
    /// The proxy (HTTP forwarding, `CONNECT`, SOCKS5) on 127.0.0.1.
    Proxy,
    /// The DNS stub's UDP socket on 127.0.0.1:53.
    Dns,
    /// A listener on an allowlisted port, on every local address (IPv4 or IPv6): a
    /// connection's local address says which destination it was for.
    Direct {
        /// The port.
        port: u16,
        /// `true` for the IPv6 socket (`[::]`), else IPv4 (`0.0.0.0`).
        ipv6: bool,
    },
}

impl EgressSocket {
    /// The 4-byte tag sent with the descriptor.
    #[must_use]
    pub fn encode(self) -> [u8; 4] {
        match self {
            EgressSocket::Proxy => [1, 0, 0, 0],
            EgressSocket::Dns => [2, 0, 0, 0],
            EgressSocket::Direct { port, ipv6 } => {
                let [hi, lo] = port.to_be_bytes();
                [3, u8::from(ipv6), hi, lo]
            }
        }
    }

    /// The tag read back; `None` for anything [`EgressSocket::encode`] does not write.
    #[must_use]
    pub fn decode(tag: [u8; 4]) -> Option<EgressSocket> {
        match tag {
            [1, 0, 0, 0] => Some(EgressSocket::Proxy),
            [2, 0, 0, 0] => Some(EgressSocket::Dns),
            [3, v6 @ (0 | 1), hi, lo] => Some(EgressSocket::Direct {
                port: u16::from_be_bytes([hi, lo]),
                ipv6: v6 == 1,
            }),
            _ => None,
        }
    }
}

/// What the network layer enforces, for the report (`-v`, `doctor`, the audit log).
#[must_use]
pub fn describe(egress: Option<&EgressSpec>) -> String {
    let Some(egress) = egress else {
        return "empty network namespace; TCP bind/connect denied by Landlock".to_owned();
    };
    let ports: Vec<String> = egress.ports.iter().map(u16::to_string).collect();
    format!(
        "allowlist only, through mcp-j's egress proxy (127.0.0.1:{}), its DNS stub (127.0.0.1:{DNS_PORT}) \
         and listeners on port {}; TCP connect to those ports only (Landlock); no route out, so no UDP leaves",
        egress.proxy_port,
        ports.join(", ")
    )
}

/// The jail's loopback is interface 1 in a new network namespace.
const LOOPBACK_INDEX: u32 = 1;
/// How many queued connections each listener holds.
const BACKLOG: i32 = 128;
/// The DNS stub's port.
pub const DNS_PORT: u16 = 53;

/// Step 18: loopback up, allowlisted networks local, listeners bound and sent out on
/// `channel`, one message each (a 4-byte [`EgressSocket`] tag and the descriptor). The
/// sockets are closed here once sent: the jail keeps none.
pub fn set_up(egress: &EgressSpec, channel: BorrowedFd<'_>) -> std::io::Result<()> {
    let route = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        None, // NETLINK_ROUTE is protocol 0
    )?;
    netlink_request(route.as_fd(), &link_up_message(1, LOOPBACK_INDEX))?;
    for (i, &(network, prefix)) in egress.local_networks.iter().enumerate() {
        match netlink_request(route.as_fd(), &local_route_message(2 + i as u32, network, prefix)?) {
            // Already local: the loopback's own addresses (127.0.0.1, ::1) once it is up.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    drop(route);

    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    send_socket(
        channel,
        EgressSocket::Proxy,
        &tcp_listener(SocketAddr::new(loopback, egress.proxy_port))?,
    )?;
    send_socket(
        channel,
        EgressSocket::Dns,
        &udp_socket(SocketAddr::new(loopback, DNS_PORT))?,
    )?;
    for &port in &egress.ports {
        let v4 = tcp_listener(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?;
        send_socket(channel, EgressSocket::Direct { port, ipv6: false }, &v4)?;
        let v6 = tcp_listener(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))?;
        send_socket(channel, EgressSocket::Direct { port, ipv6: true }, &v6)?;
    }
    Ok(())
}

/// A listening TCP socket at `addr`; an IPv6 one takes IPv6 only (the IPv4 listener on the
/// same port is separate).
fn tcp_listener(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, Some(ipproto::TCP))?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&socket, true)?;
    }
    sockopt::set_socket_reuseaddr(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, BACKLOG)?;
    Ok(socket)
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<OwnedFd> {
    let socket = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(ipproto::UDP),
    )?;
    rustix::net::bind(&socket, &addr)?;
    Ok(socket)
}

fn send_socket(channel: BorrowedFd<'_>, kind: EgressSocket, socket: &OwnedFd) -> std::io::Result<()> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds = [socket.as_fd()];
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    let tag = kind.encode();
    rustix::net::sendmsg(channel, &[IoSlice::new(&tag)], &mut ancillary, SendFlags::empty())?;
    Ok(())
}

/// The supervisor's side: every socket init sent on `channel`, until init closes its end.
/// A message without a descriptor or with an unknown tag is an error.
pub fn receive_sockets(channel: BorrowedFd<'_>) -> std::io::Result<Vec<(EgressSocket, OwnedFd)>> {
    let mut sockets = Vec::new();
    loop {
        let mut tag = [0u8; 4];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            channel,
            &mut [std::io::IoSliceMut::new(&mut tag)],
            &mut ancillary,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        if received.bytes == 0 {
            return Ok(sockets);
        }
        let mut fd = None;
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                fd = fds.next();
            }
        }
        let kind = EgressSocket::decode(tag);
        match (kind, fd, received.bytes) {
            (Some(kind), Some(fd), 4) => sockets.push((kind, fd)),
            _ => return Err(std::io::Error::from_raw_os_error(libc::EPROTO)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Netlink (rtnetlink): two requests, each answered by an ack or an error.

const NLMSG_HEADER_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFF_UP: u32 = 0x1;
const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_HOST: u8 = 254;
const RTN_LOCAL: u8 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index` (`ip link set lo up`).
#[must_use]
pub fn link_up_message(seq: u32, index: u32) -> Vec<u8> {
    // struct ifinfomsg: family, pad, type, index, flags, change.
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&IFF_UP.to_ne_bytes());
    body.extend_from_slice(&IFF_UP.to_ne_bytes());
    message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

/// `RTM_NEWROUTE` of a local route for `network/prefix` on the loopback, in the local
/// table (`ip route add local NETWORK/PREFIX dev lo table local`): every address in it is
/// then one of the jail's own, so a connection to it reaches the listener on its port.
pub fn local_route_message(seq: u32, network: IpAddr, prefix: u8) -> std::io::Result<Vec<u8>> {
    let (family, address, max) = match network {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec(), 32),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec(), 128),
    };
    if prefix > max {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut body = vec![
        family,
        prefix,
        0,
        0,
        RT_TABLE_LOCAL,
        RTPROT_BOOT,
        RT_SCOPE_HOST,
        RTN_LOCAL,
    ];
    body.extend_from_slice(&0u32.to_ne_bytes());
    push_attribute(&mut body, RTA_DST, &address);
    push_attribute(&mut body, RTA_OIF, &LOOPBACK_INDEX.to_ne_bytes());
    Ok(message(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        &body,
    ))
}

fn push_attribute(body: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    body.extend_from_slice(&(len as u16).to_ne_bytes());
    body.extend_from_slice(&kind.to_ne_bytes());
    body.extend_from_slice(payload);
    body.resize(body.len() + (align4(len) - len), 0);
}

fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HEADER_LEN + body.len();
    let mut out = Vec::with_capacity(align4(len));
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    out.extend_from_slice(body);
    out.resize(align4(len), 0);
    out
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The errno of a netlink answer to request `seq`: `Some(0)` for an ack, `None` for a
/// message that is not the answer.
#[must_use]
pub fn ack_errno(answer: &[u8], seq: u32) -> Option<i32> {
    let field = |at: usize| answer.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
    let kind = u16::from_ne_bytes([*answer.get(4)?, *answer.get(5)?]);
    let answer_seq = u32::from_ne_bytes(field(8)?);
    if kind != NLMSG_ERROR || answer_seq != seq {
        return None;
    }
    // struct nlmsgerr: int error, then the request's header.
    Some(-i32::from_ne_bytes(field(NLMSG_HEADER_LEN)?))
}

fn netlink_request(route: BorrowedFd<'_>, request: &[u8]) -> std::io::Result<()> {
    let seq = u32::from_ne_bytes([request[8], request[9], request[10], request[11]]);
    rustix::net::sendto(
        route,
        request,
        SendFlags::empty(),
        &netlink::SocketAddrNetlink::new(0, 0),
    )?;
    let mut answer = [0u8; 1024];
    // A bounded number of answers: ours is the first in practice.
    for _ in 0..8 {
        let (n, _) = rustix::net::recv(route, &mut answer, RecvFlags::empty())?;
        match ack_errno(&answer[..n.min(answer.len())], seq) {
            Some(0) => return Ok(()),
            Some(errno) => return Err(std::io::Error::from_raw_os_error(errno)),
            None => {}
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EPROTO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_the_network_layer_enforces() {
        assert!(describe(None).starts_with("empty network namespace"));
        let egress = EgressSpec {
            proxy_port: 3128,
            ports: vec![80, 443],
            local_networks: vec![],
            channel_fd: None,
        };
        let text = describe(Some(&egress));
        assert!(
            text.contains("127.0.0.1:3128") && text.contains("port 80, 443"),
            "{text}"
        );
    }

    #[test]
    fn tags_round_trip_and_nothing_else_decodes() {
        let kinds = [
            EgressSocket::Proxy,
            EgressSocket::Dns,
            EgressSocket::Direct { port: 443, ipv6: false },
            EgressSocket::Direct { port: 8080, ipv6: true },
            EgressSocket::Direct { port: 1, ipv6: true },
        ];
        for kind in kinds {
            assert_eq!(EgressSocket::decode(kind.encode()), Some(kind));
        }
        for bad in [[0, 0, 0, 0], [1, 1, 0, 0], [2, 0, 0, 1], [3, 2, 1, 187], [4, 0, 0, 0]] {
            assert_eq!(EgressSocket::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn link_up_is_the_bytes_ip_link_set_up_sends() {
        let msg = link_up_message(7, 1);
        assert_eq!(msg.len(), 32);
        assert_eq!(&msg[0..4], &32u32.to_ne_bytes());
        assert_eq!(&msg[4..6], &RTM_NEWLINK.to_ne_bytes());
        assert_eq!(&msg[6..8], &(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        assert_eq!(&msg[8..12], &7u32.to_ne_bytes());
        assert_eq!(&msg[20..24], &1i32.to_ne_bytes(), "interface index");
        assert_eq!(&msg[24..28], &IFF_UP.to_ne_bytes(), "flags");
        assert_eq!(&msg[28..32], &IFF_UP.to_ne_bytes(), "change mask");
    }

    #[test]
    fn local_routes_carry_family_prefix_table_type_and_destination() {
        let msg = local_route_message(9, "203.0.113.0".parse().unwrap(), 24).unwrap();
        assert_eq!(msg.len(), 16 + 12 + 8 + 8);
        assert_eq!(&msg[4..6], &RTM_NEWROUTE.to_ne_bytes());
        assert_eq!(&msg[16..24], &[libc::AF_INET as u8, 24, 0, 0, 255, 3, 254, 2]);
        assert_eq!(&msg[28..32], &[8u16.to_ne_bytes(), RTA_DST.to_ne_bytes()].concat()[..]);
        assert_eq!(&msg[32..36], &[203, 0, 113, 0]);
        assert_eq!(&msg[40..44], &1u32.to_ne_bytes(), "oif: the loopback");
        let v6 = local_route_message(1, "2001:db8::".parse().unwrap(), 32).unwrap();
        assert_eq!(v6.len(), 16 + 12 + 20 + 8);
        assert_eq!(v6[16], libc::AF_INET6 as u8);
        assert_eq!(v6[17], 32);
        assert!(local_route_message(1, "203.0.113.9".parse().unwrap(), 33).is_err());
        assert!(local_route_message(1, "::1".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn acks_and_errors_are_told_apart_by_sequence() {
        let mut ack = message(NLMSG_ERROR, 0, 5, &0i32.to_ne_bytes());
        assert_eq!(ack_errno(&ack, 5), Some(0));
        assert_eq!(ack_errno(&ack, 6), None, "another request's answer");
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(ack_errno(&ack, 5), Some(libc::EEXIST));
        assert_eq!(ack_errno(&ack[..10], 5), None, "truncated");
        let other = message(RTM_NEWROUTE, 0, 5, &[0; 12]);
        assert_eq!(ack_errno(&other, 5), None);
    }

    #[test]
    fn sockets_travel_with_their_tags() {
        let (a, b) =
            rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
        let listener = tcp_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = match rustix::net::getsockname(&listener).unwrap().try_into() {
            Ok(SocketAddr::V4(v4)) => v4.port(),
            other => panic!("{other:?}"),
        };
        send_socket(a.as_fd(), EgressSocket::Direct { port, ipv6: false }, &listener).unwrap();
        send_socket(
            a.as_fd(),
            EgressSocket::Dns,
            &udp_socket("127.0.0.1:0".parse().unwrap()).unwrap(),
        )
        .unwrap();
        drop(a);
        let got = receive_sockets(b.as_fd()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, EgressSocket::Direct { port, ipv6: false });
        assert_eq!(got[1].0, EgressSocket::Dns);
        // The received listener is the same socket: a connection to it is accepted there.
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let listener = std::net::TcpListener::from(got.into_iter().next().unwrap().1);
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    }
}
