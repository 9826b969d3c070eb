//! SOCKS5 (RFC 1928) on the proxy listener: no authentication, the `CONNECT` command,
//! destinations as a domain name (resolved by mcp-j: `socks5h://`), IPv4 or IPv6.
//! Refusals use the RFC's replies: `0x02` not allowed by ruleset, `0x04` host unreachable
//! (name did not resolve, no answer), `0x05` connection refused, `0x07` command not
//! supported, `0x08` address type not supported.

use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::copy::relay;
use super::{OpenError, Record, Shared};
use crate::event::Via;

/// The protocol version, also the first byte of every SOCKS5 connection.
pub(crate) const VERSION: u8 = 0x05;

const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xFF;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Replies (RFC 1928 §6).
pub(crate) const REPLY_SUCCEEDED: u8 = 0x00;
pub(crate) const REPLY_GENERAL_FAILURE: u8 = 0x01;
pub(crate) const REPLY_NOT_ALLOWED: u8 = 0x02;
pub(crate) const REPLY_NETWORK_UNREACHABLE: u8 = 0x03;
pub(crate) const REPLY_HOST_UNREACHABLE: u8 = 0x04;
pub(crate) const REPLY_CONNECTION_REFUSED: u8 = 0x05;
pub(crate) const REPLY_COMMAND_NOT_SUPPORTED: u8 = 0x07;
pub(crate) const REPLY_ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// What the client asked for.
struct Request {
    command: u8,
    /// The host as a text the policy parses: a name, a dotted quad or `[v6]`.
    host: String,
    port: u16,
}

/// Why the handshake stopped.
enum Handshake {
    /// Closed, timed out or not SOCKS5; nothing more to say.
    Gone(String),
    /// Answer with this reply, then close.
    Reply(u8, String),
}

/// Serve one SOCKS5 connection.
pub(crate) async fn serve(shared: &Shared, mut stream: TcpStream, record: &mut Record) {
    record.via = Via::Socks5;
    let limits = &shared.limits;
    let request = match tokio::time::timeout(limits.header_timeout, handshake(&mut stream)).await {
        Ok(Ok(request)) => request,
        Ok(Err(Handshake::Gone(why))) => return record.refuse(why),
        Ok(Err(Handshake::Reply(code, why))) => {
            record.refuse(why);
            let _ = tokio::time::timeout(limits.header_timeout, reply(&mut stream, code)).await;
            return;
        }
        Err(_) => {
            return record.refuse(format!(
                "no complete SOCKS5 request within {}s",
                limits.header_timeout.as_secs_f64()
            ));
        }
    };
    if request.command != CMD_CONNECT {
        record.refuse(format!(
            "SOCKS5 command {:#04x} is not supported (CONNECT only)",
            request.command
        ));
        let _ = tokio::time::timeout(limits.header_timeout, reply(&mut stream, REPLY_COMMAND_NOT_SUPPORTED)).await;
        return;
    }
    let mut upstream = match shared.open(&request.host, request.port, record).await {
        Ok(upstream) => upstream,
        Err(e) => {
            let _ = tokio::time::timeout(limits.header_timeout, reply(&mut stream, reply_code(&e))).await;
            return;
        }
    };
    record.allowed();
    if reply(&mut stream, REPLY_SUCCEEDED).await.is_err() {
        return;
    }
    let relayed = relay(&mut stream, &mut upstream, limits.buffer_size, limits.idle_timeout).await;
    record.bytes_up += relayed.up;
    record.bytes_down += relayed.down;
}

/// The SOCKS5 reply for a destination that could not be opened.
pub(crate) fn reply_code(e: &OpenError) -> u8 {
    match e {
        OpenError::Refused(_) | OpenError::Invalid(_) => REPLY_NOT_ALLOWED,
        OpenError::Resolve(_) | OpenError::ConnectTimeout(_) => REPLY_HOST_UNREACHABLE,
        OpenError::Connect { error, .. } => match error.kind() {
            std::io::ErrorKind::ConnectionRefused => REPLY_CONNECTION_REFUSED,
            std::io::ErrorKind::NetworkUnreachable => REPLY_NETWORK_UNREACHABLE,
            std::io::ErrorKind::HostUnreachable => REPLY_HOST_UNREACHABLE,
            _ => REPLY_GENERAL_FAILURE,
        },
    }
}

/// Method negotiation (only "no authentication") and the request.
async fn handshake(stream: &mut TcpStream) -> Result<Request, Handshake> {
    let gone = |_| Handshake::Gone("the SOCKS5 client closed during the handshake".to_string());
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).await.map_err(gone)?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    stream.read_exact(&mut methods).await.map_err(gone)?;
    if !methods.contains(&NO_AUTH) {
        let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err(Handshake::Gone(
            "the SOCKS5 client offered no \"no authentication\" method (the proxy takes no credentials)".to_string(),
        ));
    }
    stream.write_all(&[VERSION, NO_AUTH]).await.map_err(gone)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(gone)?;
    let [version, command, _reserved, atyp] = head;
    if version != VERSION {
        return Err(Handshake::Gone(format!(
            "SOCKS version {version} in the request (5 expected)"
        )));
    }
    let host = match atyp {
        ATYP_IPV4 => {
            let mut a = [0u8; 4];
            stream.read_exact(&mut a).await.map_err(gone)?;
            Ipv4Addr::from(a).to_string()
        }
        ATYP_IPV6 => {
            let mut a = [0u8; 16];
            stream.read_exact(&mut a).await.map_err(gone)?;
            format!("[{}]", Ipv6Addr::from(a))
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await.map_err(gone)?;
            let mut name = vec![0u8; usize::from(len[0])];
            stream.read_exact(&mut name).await.map_err(gone)?;
            // Not UTF-8: the policy's host parser refuses it as an invalid name.
            String::from_utf8_lossy(&name).into_owned()
        }
        other => {
            return Err(Handshake::Reply(
                REPLY_ADDRESS_TYPE_NOT_SUPPORTED,
                format!("SOCKS5 address type {other:#04x} is not supported"),
            ));
        }
    };
    let mut port = [0u8; 2];
    stream.read_exact(&mut port).await.map_err(gone)?;
    Ok(Request {
        command,
        host,
        port: u16::from_be_bytes(port),
    })
}

/// A reply; the bound address is always `0.0.0.0:0` (the supervisor's own address is
/// nothing the jail needs to know).
async fn reply(stream: &mut TcpStream, code: u8) -> std::io::Result<()> {
    stream
        .write_all(&[VERSION, code, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        .await
}
