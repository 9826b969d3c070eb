//! mcp-j's egress layer: what the supervisor runs, outside the jail, so that a jailed
//! program reaches exactly the destinations the allowlist names (docs/CLI.md, *Network
//! egress*; the contract is INTERFACE's).
//!
//! The jail's init binds the listening sockets inside the jail's network namespace (the
//! proxy's port, one listener per allowlisted port, the DNS stub's UDP socket on
//! 127.0.0.1:53) and hands them to the supervisor; everything here serves sockets it is
//! given and never binds a host port. Decisions are `mcp_j_policy::egress`'s pure
//! functions; this crate does the I/O around them: resolving names (with a timeout),
//! connecting to the checked address (no second lookup), copying bytes, answering DNS,
//! and reporting each connection as an event the CLI turns into audit.
//!
//! - [`proxy`]: [`Egress`] serves the proxy listener (HTTP forwarding, `CONNECT`, SOCKS5 on
//!   one port) and the direct listeners, every destination through one checked path.
//! - [`resolve`]: the [`Resolver`] seam, the system resolver and test fakes.
//! - [`event`]: one [`ConnectEvent`] per connection, to the caller's [`EventSink`].
//! - [`dns`]: the jail's DNS stub: allowlisted names get a synthetic loopback address
//!   from [`names::SyntheticNames`], every other query is refused.

#![forbid(unsafe_code)]

pub mod dns;
pub mod event;
pub mod names;
pub mod proxy;
pub mod resolve;

pub use event::{ConnectEvent, EventSink, Outcome, Via};
pub use proxy::{Egress, Limits, NoSyntheticNames, SyntheticNameMap};
pub use resolve::{Resolver, SystemResolver};
