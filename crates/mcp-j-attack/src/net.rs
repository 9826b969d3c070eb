//! Network attacks: reaching the host's loopback listeners over TCP, UDP and unix
//! sockets, socket families the filter must refuse, raw sockets, and reconfiguring the
//! jail's network through netlink.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::Report;
use crate::sys::{self, Errno};

/// What `udp-send` sends: easy to spot on the host.
const UDP_PAYLOAD: &[u8] = b"mcp-j-attack udp\n";

fn parse_addr(addr: &str) -> Result<SocketAddr, Report> {
    addr.parse()
        .map_err(|_| Report::Error(format!("`{addr}` is not ADDR:PORT ([v6]:PORT for IPv6)")))
}

/// TCP connect to ADDR:PORT (3 s bound).
pub fn tcp_connect(addr: &str) -> Report {
    let addr = match parse_addr(addr) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => Report::Escaped(format!("connected to {addr}")),
        Err(e) => Report::Denied(format!("{} (connect {addr})", Errno::of(&e))),
    }
}

/// TCP bind (and listen) on ADDR:PORT.
pub fn tcp_bind(addr: &str) -> Report {
    let addr = match parse_addr(addr) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match TcpListener::bind(addr) {
        Ok(l) => Report::Escaped(format!(
            "listening on {}",
            l.local_addr().map_or(addr.to_string(), |a| a.to_string())
        )),
        Err(e) => Report::Denied(format!("{} (bind {addr})", Errno::of(&e))),
    }
}

/// UDP sendto ADDR:PORT. The jail has no network, so even a send that the local stack
/// accepts counts as an escape; the test also checks that the host listener got nothing.
pub fn udp_send(addr: &str) -> Report {
    let addr = match parse_addr(addr) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(e) => return Report::Denied(format!("{} (bind {local})", Errno::of(&e))),
    };
    match socket.send_to(UDP_PAYLOAD, addr) {
        Ok(n) => Report::Escaped(format!("sendto {addr} accepted {n} bytes")),
        Err(e) => Report::Denied(format!("{} (sendto {addr})", Errno::of(&e))),
    }
}

/// Connect to the abstract unix socket NAME (abstract names belong to a network
/// namespace; Landlock can scope them too).
pub fn unix_abstract(name: &str) -> Report {
    let addr = match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
        Ok(a) => a,
        Err(e) => return Report::Error(format!("abstract name `{name}`: {e}")),
    };
    match UnixStream::connect_addr(&addr) {
        Ok(_) => Report::Escaped(format!("connected to abstract socket @{name}")),
        Err(e) => Report::Denied(format!("{} (connect @{name})", Errno::of(&e))),
    }
}

/// Connect to the unix socket at PATH.
pub fn unix_path(path: &str) -> Report {
    match UnixStream::connect(path) {
        Ok(_) => Report::Escaped(format!("connected to unix socket {path}")),
        Err(e) => Report::Denied(format!("{} (connect {path})", Errno::of(&e))),
    }
}

/// Socket families by name: (family, type, protocol). The first group must be refused by
/// the filter; the last few are what the sandbox allows (for positive controls).
const FAMILIES: &[(&str, libc::c_int, libc::c_int, libc::c_int)] = &[
    ("packet", libc::AF_PACKET, libc::SOCK_RAW, 0x0300), // htons(ETH_P_ALL)
    ("packet-dgram", libc::AF_PACKET, libc::SOCK_DGRAM, 0x0300),
    ("alg", libc::AF_ALG, libc::SOCK_SEQPACKET, 0),
    ("vsock", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
    ("key", libc::AF_KEY, libc::SOCK_RAW, 2), // PF_KEY_V2
    ("xdp", 44, libc::SOCK_RAW, 0),
    ("bluetooth", libc::AF_BLUETOOTH, libc::SOCK_RAW, 1), // BTPROTO_HCI
    ("can", libc::AF_CAN, libc::SOCK_RAW, 1),             // CAN_RAW
    ("tipc", libc::AF_TIPC, libc::SOCK_RDM, 0),
    ("rds", libc::AF_RDS, libc::SOCK_SEQPACKET, 0),
    ("llc", libc::AF_LLC, libc::SOCK_DGRAM, 0),
    ("x25", libc::AF_X25, libc::SOCK_SEQPACKET, 0),
    ("ax25", libc::AF_AX25, libc::SOCK_SEQPACKET, 0),
    ("appletalk", libc::AF_APPLETALK, libc::SOCK_DGRAM, 0),
    ("netrom", libc::AF_NETROM, libc::SOCK_SEQPACKET, 0),
    ("rose", libc::AF_ROSE, libc::SOCK_SEQPACKET, 0),
    ("atmpvc", libc::AF_ATMPVC, libc::SOCK_DGRAM, 0),
    ("phonet", libc::AF_PHONET, libc::SOCK_DGRAM, 0),
    ("ieee802154", libc::AF_IEEE802154, libc::SOCK_RAW, 0),
    ("nfc", libc::AF_NFC, libc::SOCK_SEQPACKET, 0),
    ("kcm", 41, libc::SOCK_DGRAM, 0),
    ("qipcrtr", 42, libc::SOCK_DGRAM, 0),
    ("smc", 43, libc::SOCK_STREAM, 0),
    ("mctp", 45, libc::SOCK_DGRAM, 0),
    ("rxrpc", libc::AF_RXRPC, libc::SOCK_DGRAM, libc::AF_INET),
    ("pppox", libc::AF_PPPOX, libc::SOCK_STREAM, 0),
    // Netlink beyond routing, and IP protocols beyond TCP and UDP: refused by the filter.
    (
        "netlink-sock-diag",
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_SOCK_DIAG,
    ),
    ("netlink-audit", libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT),
    ("netlink-xfrm", libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_XFRM),
    (
        "netlink-connector",
        libc::AF_NETLINK,
        libc::SOCK_DGRAM,
        libc::NETLINK_CONNECTOR,
    ),
    (
        "netlink-netfilter",
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_NETFILTER,
    ),
    (
        "netlink-kobject-uevent",
        libc::AF_NETLINK,
        libc::SOCK_DGRAM,
        libc::NETLINK_KOBJECT_UEVENT,
    ),
    (
        "netlink-generic",
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_GENERIC,
    ),
    ("inet-mptcp", libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP),
    ("inet6-mptcp", libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_MPTCP),
    ("inet-udplite", libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE),
    ("inet6-udplite", libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE),
    // Allowed families, refused by the kernel for lack of capabilities.
    ("inet-raw", libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
    ("inet6-raw", libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6),
    ("ping", libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
    ("ping6", libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_ICMPV6),
    // Allowed families (positive controls).
    ("unix", libc::AF_UNIX, libc::SOCK_STREAM, 0),
    ("inet-tcp", libc::AF_INET, libc::SOCK_STREAM, 0),
    (
        "inet-tcp-by-number",
        libc::AF_INET,
        libc::SOCK_STREAM,
        libc::IPPROTO_TCP,
    ),
    ("inet6-tcp", libc::AF_INET6, libc::SOCK_STREAM, 0),
    ("inet-udp-by-number", libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
    ("inet6-udp", libc::AF_INET6, libc::SOCK_DGRAM, 0),
    ("netlink-route", libc::AF_NETLINK, libc::SOCK_RAW, 0),
];

/// The names `socket` knows, for the tests and for `socket help`.
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f| f.0).collect()
}

/// `socket(FAMILY, …)`. With `highbits`, the family goes in with bit 32 set: the kernel
/// reads an `int` and drops it, a filter comparing 64 bits would not match a denied
/// family.
pub fn socket(family: &str, highbits: bool) -> Report {
    if family == "help" {
        return Report::Ok(format!("families: {}", family_names().join(" ")));
    }
    let Some(&(name, af, ty, proto)) = FAMILIES.iter().find(|f| f.0 == family) else {
        return Report::Error(format!(
            "unknown socket family `{family}`; known: {}",
            family_names().join(" ")
        ));
    };
    let af_arg = if highbits { 1u64 << 32 | af as u64 } else { af as u64 };
    let what = if highbits {
        format!("socket {name} (family with bit 32 set)")
    } else {
        format!("socket {name}")
    };
    // SAFETY: socket takes integers only.
    let r = unsafe { libc::syscall(libc::SYS_socket, af_arg, ty | libc::SOCK_CLOEXEC, proto) };
    match sys::check(r) {
        Ok(fd) => {
            sys::close(fd as libc::c_int);
            Report::Escaped(format!("{what} created"))
        }
        Err(e) => Report::Denied(format!("{e} ({what})")),
    }
}

/// Brings the jail's `lo` up through rtnetlink (RTM_NEWLINK, IFF_UP); needs
/// CAP_NET_ADMIN over the jail's network namespace, which the program must not have.
pub fn netlink_up() -> Report {
    // SAFETY: socket takes integers only.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Report::Denied(format!("{} (socket netlink)", Errno::last()));
    }
    let report = netlink_up_on(fd);
    sys::close(fd);
    report
}

fn netlink_up_on(fd: libc::c_int) -> Report {
    let timeout = libc::timeval { tv_sec: 3, tv_usec: 0 };
    // SAFETY: timeout is a valid timeval of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    // struct nlmsghdr (16 bytes) + struct ifinfomsg (16 bytes).
    let mut msg = [0u8; 32];
    msg[0..4].copy_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg[4..6].copy_from_slice(&(libc::RTM_NEWLINK).to_ne_bytes()); // nlmsg_type
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    // ifinfomsg: family (AF_UNSPEC), pad, type, index, flags, change.
    msg[20..24].copy_from_slice(&1i32.to_ne_bytes()); // ifi_index: lo
    msg[24..28].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    msg[28..32].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    // SAFETY: sending a local buffer of the stated length.
    let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Report::Denied(format!("{} (send RTM_NEWLINK)", Errno::last()));
    }
    let mut buf = [0u8; 4096];
    // SAFETY: receiving into a local buffer of the stated length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Report::Error(format!("recv netlink ack: {}", Errno::last()));
    }
    let n = n as usize;
    if n < 20 {
        return Report::Error(format!("short netlink reply ({n} bytes)"));
    }
    let ty = u16::from_ne_bytes([buf[4], buf[5]]);
    if ty != libc::NLMSG_ERROR as u16 {
        return Report::Error(format!("netlink reply of type {ty}, not an ack"));
    }
    let error = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if error == 0 {
        Report::Escaped("brought lo up (RTM_NEWLINK acknowledged)".to_owned())
    } else {
        Report::Denied(format!("{} (RTM_NEWLINK)", Errno(-error)))
    }
}
