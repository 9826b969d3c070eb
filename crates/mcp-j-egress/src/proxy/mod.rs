//! The egress proxy: serves listening sockets it is given (bound by the jail's init inside
//! the jail's network namespace and passed out), and sends each connection to the one
//! destination the allowlist allows, or refuses it with a reason.
//!
//! Two kinds of listener:
//! - the **proxy listener** ([`Egress::serve_proxy`]): HTTP forwarding (absolute-URI
//!   requests), `CONNECT` tunnels and SOCKS5, all on the same port. A connection whose
//!   first byte is `0x05` (the SOCKS version; no HTTP method starts with it) is SOCKS5,
//!   anything else HTTP, so one address serves `HTTP_PROXY`, `HTTPS_PROXY` and
//!   `ALL_PROXY=socks5h://…` alike.
//! - **direct listeners** ([`Egress::serve_direct`]): one per allowlisted port, bound on
//!   `0.0.0.0` inside the jail. A connection's *local* address (`getsockname`) says where
//!   the program meant to go: a synthetic address the DNS stub handed out for a name
//!   ([`SyntheticNameMap`]), or else an allowlisted address made local to the jail. It is then
//!   forwarded exactly as a `CONNECT` to that name or address and the listener's port.
//!
//! Every destination goes through one function (`Shared::open`): parse the host as the
//! policy crate does (every `inet_aton` spelling), resolve a name only when a rule allows
//! it (with a timeout), `Allowlist::decide`, then connect to the checked address (no second
//! lookup) with a timeout. Bounds ([`Limits`]): concurrent connections per proxy, request
//! header size, header-read and idle timeouts.
//!
//! Each connection ends with one [`ConnectEvent`] to the caller's sink. Dropping a
//! `serve_*` future closes the connections it accepted, without their events (the jail is
//! going away).

mod copy;
mod direct;
mod http;
mod socks;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcp_j_policy::egress::{Allowlist, Decision, Host, Refusal, parse_host};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::event::{ConnectEvent, EventSink, Outcome, Via};
use crate::resolve::{Resolver, resolve_with_timeout};

pub use direct::destination_of;

/// The DNS stub's map from the synthetic loopback addresses it handed out back to the
/// names they stand for (the stub's side implements it).
pub trait SyntheticNameMap: Send + Sync {
    /// The name the stub answered with `ip`, if it did.
    fn name_of(&self, ip: Ipv4Addr) -> Option<String>;
}

/// No synthetic names (a jail without the DNS stub, or tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSyntheticNames;

impl SyntheticNameMap for NoSyntheticNames {
    fn name_of(&self, _ip: Ipv4Addr) -> Option<String> {
        None
    }
}

impl SyntheticNameMap for HashMap<Ipv4Addr, String> {
    fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        self.get(&ip).cloned()
    }
}

/// The bounds that keep a hostile jail from exhausting the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once through one [`Egress`] (all its listeners together); an
    /// excess connection is closed at once, and reported.
    pub max_connections: usize,
    /// Largest HTTP request head (request line and headers); larger gets `431`.
    pub max_header_bytes: usize,
    /// Time allowed to receive a request head or a SOCKS5 handshake.
    pub header_timeout: Duration,
    /// A tunnel or forwarded request with no byte in either direction for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Time allowed for resolving a name.
    pub resolve_timeout: Duration,
    /// Time allowed for connecting to the checked address.
    pub connect_timeout: Duration,
    /// Copy buffer per direction of each connection.
    pub buffer_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            resolve_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            buffer_size: 64 * 1024,
        }
    }
}

/// The egress proxy of one jail: its allowlist, resolver, synthetic names, limits and
/// event sink. Cheap to clone (shared state); serve each listener with one call.
#[derive(Clone)]
pub struct Egress {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) allowlist: Allowlist,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) names: Arc<dyn SyntheticNameMap>,
    pub(crate) limits: Limits,
    events: EventSink,
    permits: Arc<Semaphore>,
}

#[derive(Debug, Clone, Copy)]
enum ListenerKind {
    Proxy,
    Direct,
}

/// Turn a std listener (as received over SCM_RIGHTS) into a tokio one: sets it
/// non-blocking. Call inside the runtime.
pub fn into_tokio(listener: std::net::TcpListener) -> io::Result<TcpListener> {
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

impl Egress {
    /// A proxy for one jail. `events` receives one [`ConnectEvent`] per connection.
    pub fn new(
        allowlist: Allowlist,
        resolver: Arc<dyn Resolver>,
        names: Arc<dyn SyntheticNameMap>,
        limits: Limits,
        events: EventSink,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        Egress {
            shared: Arc::new(Shared {
                allowlist,
                resolver,
                names,
                limits,
                events,
                permits,
            }),
        }
    }

    /// Serve the proxy listener (HTTP forwarding, `CONNECT`, SOCKS5) until this future is
    /// dropped; dropping it also closes every connection it accepted.
    pub async fn serve_proxy(&self, listener: TcpListener) {
        self.serve(listener, ListenerKind::Proxy).await;
    }

    /// Serve a direct listener (one allowlisted port inside the jail) until this future
    /// is dropped; dropping it also closes every connection it accepted.
    pub async fn serve_direct(&self, listener: TcpListener) {
        self.serve(listener, ListenerKind::Direct).await;
    }

    /// Connections open now, over all listeners.
    pub fn open_connections(&self) -> usize {
        self.shared.limits.max_connections - self.shared.permits.available_permits()
    }

    async fn serve(&self, listener: TcpListener, kind: ListenerKind) {
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.accept(&mut tasks, stream, peer, kind),
                    // Out of descriptors or memory, or a connection reset before accept:
                    // back off rather than spin, and keep serving.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }

    fn accept(&self, tasks: &mut JoinSet<()>, stream: TcpStream, peer: SocketAddr, kind: ListenerKind) {
        let via = match kind {
            ListenerKind::Proxy => Via::HttpForward,
            ListenerKind::Direct => Via::Direct,
        };
        let Ok(permit) = self.shared.permits.clone().try_acquire_owned() else {
            drop(stream);
            let mut record = Record::new(via, Some(peer));
            record.refuse(format!(
                "connection limit reached ({} open connections through this jail's egress)",
                self.shared.limits.max_connections
            ));
            (self.shared.events)(record.finish());
            return;
        };
        let shared = self.shared.clone();
        tasks.spawn(async move {
            let mut record = Record::new(via, Some(peer));
            match kind {
                ListenerKind::Proxy => serve_proxy_connection(&shared, stream, &mut record).await,
                ListenerKind::Direct => direct::serve(&shared, stream, &mut record).await,
            }
            drop(permit);
            (shared.events)(record.finish());
        });
    }
}

/// A proxy-listener connection: SOCKS5 when the first byte is its version, else HTTP.
async fn serve_proxy_connection(shared: &Shared, stream: TcpStream, record: &mut Record) {
    let mut first = [0u8; 1];
    match tokio::time::timeout(shared.limits.header_timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == socks::VERSION => socks::serve(shared, stream, record).await,
        Ok(Ok(1)) => http::serve(shared, stream, record).await,
        Ok(_) => {}
        Err(_) => record.refuse(format!(
            "no request within {}s",
            shared.limits.header_timeout.as_secs_f64()
        )),
    }
}

/// What one connection has done so far; becomes its [`ConnectEvent`].
pub(crate) struct Record {
    pub(crate) via: Via,
    client: Option<SocketAddr>,
    host: String,
    port: u16,
    addr: Option<SocketAddr>,
    rule: Option<String>,
    outcome: Outcome,
    pub(crate) bytes_up: u64,
    pub(crate) bytes_down: u64,
    started: Instant,
}

/// The longest host kept in an event (a DNS name has at most 253 characters).
const MAX_EVENT_HOST: usize = 255;

impl Record {
    fn new(via: Via, client: Option<SocketAddr>) -> Self {
        Record {
            via,
            client,
            host: String::new(),
            port: 0,
            addr: None,
            rule: None,
            outcome: Outcome::Refused {
                reason: "the connection closed before naming a destination".to_string(),
            },
            bytes_up: 0,
            bytes_down: 0,
            started: Instant::now(),
        }
    }

    /// Refused by the proxy or the policy, with the message the client was given.
    pub(crate) fn refuse(&mut self, reason: String) {
        self.outcome = Outcome::Refused { reason };
    }

    pub(crate) fn allowed(&mut self) {
        self.outcome = Outcome::Allowed;
    }

    fn finish(self) -> ConnectEvent {
        ConnectEvent {
            via: self.via,
            client: self.client,
            host: self.host,
            port: self.port,
            addr: self.addr,
            rule: self.rule,
            outcome: self.outcome,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            duration: self.started.elapsed(),
        }
    }
}

/// Why a destination was not connected.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The host is not a valid name or address (or the port is 0).
    Invalid(String),
    /// The policy refused it.
    Refused(Refusal),
    /// The name is allowed but did not resolve.
    Resolve(String),
    /// The checked address refused or failed the connection.
    Connect { message: String, error: io::Error },
    /// The checked address did not answer in time.
    ConnectTimeout(String),
}

impl OpenError {
    /// The message for the client and the event: names the destination and why.
    pub(crate) fn message(&self) -> String {
        match self {
            OpenError::Invalid(m) | OpenError::Resolve(m) | OpenError::ConnectTimeout(m) => m.clone(),
            OpenError::Refused(r) => r.to_string(),
            OpenError::Connect { message, .. } => message.clone(),
        }
    }

    /// Policy refusals (invalid host included) are `refused`; resolve and connect errors of
    /// an allowed destination are `failed`.
    fn outcome(&self) -> Outcome {
        let reason = self.message();
        match self {
            OpenError::Invalid(_) | OpenError::Refused(_) => Outcome::Refused { reason },
            _ => Outcome::Failed { reason },
        }
    }
}

/// The host text as kept in an event: as the client wrote it, bounded.
fn event_host(text: &str) -> String {
    match text.char_indices().nth(MAX_EVENT_HOST) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

impl Shared {
    /// Open a connection to `host_text` (as the client wrote it: a name, an address in any
    /// spelling, `[v6]`) on `port`, or say why not. The one path every destination takes.
    /// Fills the record's host, port, rule and address; on error, its outcome too.
    pub(crate) async fn open(&self, host_text: &str, port: u16, record: &mut Record) -> Result<TcpStream, OpenError> {
        record.host = event_host(host_text);
        record.port = port;
        let result = self.open_checked(host_text, port, record).await;
        if let Err(e) = &result {
            record.outcome = e.outcome();
            // A refused destination has no allowing rule (a name's rule does not count
            // when its address was refused).
            if matches!(e, OpenError::Refused(_) | OpenError::Invalid(_)) {
                record.rule = None;
            }
        }
        result
    }

    async fn open_checked(&self, host_text: &str, port: u16, record: &mut Record) -> Result<TcpStream, OpenError> {
        let host = parse_host(host_text)
            .map_err(|why| OpenError::Invalid(format!("the destination host is not valid: {why}")))?;
        if port == 0 {
            return Err(OpenError::Invalid(format!("{host}:0: port 0 is not a destination")));
        }
        let resolved = match &host {
            Host::Addr(_) => Vec::new(),
            Host::Name(name) => {
                // Resolve only names a rule allows: a lookup is itself traffic.
                let Some(rule) = self.allowlist.rules().iter().find(|r| r.allows_name(name, port)) else {
                    return Err(OpenError::Refused(Refusal::NotAllowed { host, port }));
                };
                record.rule = Some(rule.to_string());
                resolve_with_timeout(self.resolver.as_ref(), name, self.limits.resolve_timeout)
                    .await
                    .map_err(|e| OpenError::Resolve(format!("{host}:{port}: {e}")))?
            }
        };
        let (rule, addr) = match self.allowlist.decide(&host, port, &resolved) {
            Decision::Allow { rule, addr } => (rule, addr),
            Decision::Refuse(refusal) => return Err(OpenError::Refused(refusal)),
        };
        record.rule = Some(rule.to_string());
        let target = SocketAddr::new(canonical(addr), port);
        record.addr = Some(target);
        match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // Small writes (TLS handshakes, requests) should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(error)) => Err(OpenError::Connect {
                message: format!("{host}:{port}: connecting to {target} failed: {error}"),
                error,
            }),
            Err(_) => Err(OpenError::ConnectTimeout(format!(
                "{host}:{port}: {target} did not answer within {}s",
                self.limits.connect_timeout.as_secs_f64()
            ))),
        }
    }
}

/// An IPv4-mapped IPv6 address is connected to as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    addr.to_canonical()
}

#[cfg(test)]
mod tests;
