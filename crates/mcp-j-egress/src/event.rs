//! One [`ConnectEvent`] per connection a jail opens through egress, allowed or refused:
//! what the CLI turns into the audit event `net.connect` (this crate does not depend on
//! the audit crate; the caller converts).
//!
//! The `host` field is a host and nothing else: never a URL, its query string or its
//! userinfo, so the event carries no secret a client put in a URL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How the jail reached egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// An absolute-URI HTTP request to the proxy (`GET http://host/…`).
    HttpForward,
    /// An HTTP `CONNECT host:port` tunnel.
    Connect,
    /// A SOCKS5 `CONNECT`.
    Socks5,
    /// A direct connection to a synthetic or allowlisted address inside the jail, mapped
    /// back to its destination by the listener's local address.
    Direct,
}

impl Via {
    /// A short lowercase name for logs and audit (`http`, `connect`, `socks5`, `direct`).
    pub fn as_str(self) -> &'static str {
        match self {
            Via::HttpForward => "http",
            Via::Connect => "connect",
            Via::Socks5 => "socks5",
            Via::Direct => "direct",
        }
    }
}

/// What became of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allowed it and the destination was connected.
    Allowed,
    /// The policy refused it (not on the allowlist, a special address, an invalid host),
    /// or the proxy did (connection limit, malformed or oversize request). `reason` is the
    /// message the client was given.
    Refused {
        /// Why, naming the destination and the rule that would allow it.
        reason: String,
    },
    /// The policy allowed it but the name did not resolve or the address did not answer.
    Failed {
        /// Why (resolver error, connect error or timeout).
        reason: String,
    },
}

impl Outcome {
    /// `allowed`, `refused` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        }
    }

    /// The reason, for a refused or failed connection.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Allowed => None,
            Outcome::Refused { reason } | Outcome::Failed { reason } => Some(reason),
        }
    }
}

/// One connection through egress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectEvent {
    /// How the jail reached egress.
    pub via: Via,
    /// The jail-side peer (the program's socket), when known.
    pub client: Option<SocketAddr>,
    /// The destination host as the client asked for it (`api.example.com`, `0x7f.1`,
    /// `[::1]`), or the synthetic name a direct connection mapped to; empty when the
    /// connection never named one (a malformed request, the connection limit).
    pub host: String,
    /// The destination port (0 when none was named).
    pub port: u16,
    /// The checked address connected to (or that would have been), when one was chosen.
    pub addr: Option<SocketAddr>,
    /// The allowlist rule that allowed the destination, as its canonical text.
    pub rule: Option<String>,
    /// Allowed, refused or failed, with the reason.
    pub outcome: Outcome,
    /// Bytes sent from the jail to the destination (for HTTP forwarding: the rewritten
    /// request head and the body).
    pub bytes_up: u64,
    /// Bytes sent from the destination to the jail (not counting the proxy's own replies).
    pub bytes_down: u64,
    /// From accepting the connection to closing it.
    pub duration: Duration,
}

/// Where events go: called once per connection, when it ends, on the proxy's task. Keep it
/// cheap (send on a channel, append to a buffered log).
pub type EventSink = Arc<dyn Fn(ConnectEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> EventSink {
    Arc::new(|_| {})
}

/// A sink that sends each event on `tx` (events are dropped once the receiver is gone).
pub fn channel(tx: tokio::sync::mpsc::UnboundedSender<ConnectEvent>) -> EventSink {
    Arc::new(move |event| {
        let _ = tx.send(event);
    })
}
