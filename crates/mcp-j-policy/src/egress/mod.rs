//! Network egress policy: the `--allow-net` rule and its parser, the [`Allowlist`] built
//! from many rules, the special address ranges that are refused unless the user
//! allowlisted them, and the decision whether one connection may go out.
//!
//! # The rule (INTERFACE, *Network egress*)
//!
//! `HOST[:PORT]`, where HOST is a DNS name (`api.github.com`), a wildcard for subdomains
//! (`*.example.com`: any name below `example.com`, never `example.com` itself), an IPv4 or
//! IPv6 literal (`203.0.113.9`, `[::1]:8080`, a bare `2001:db8::1` without a port) or a
//! CIDR (`10.0.0.0/8`, `10.0.0.0/8:5432`, `[2001:db8::/32]:443`). Without a port the rule
//! allows 443 and 80. Rules come from `--allow-net`, a `--manifest`'s `allow_net` and the
//! configuration ([`RuleSource::User`]), or from a package manifest's requested network
//! ([`RuleSource::Package`]).
//!
//! # The decision
//!
//! A connection to a *name* needs a rule for the name and port; mcp-j then resolves the
//! name itself and connects only to an address that passed the check (no second lookup).
//! A connection to an *address* needs an address or CIDR rule for it and the port. In both
//! cases an address in a special range ([`special`]) — in any spelling — is refused unless
//! a rule *the user gave* holds that address and port: a package's request never unlocks
//! one, so a package asking for `0.0.0.0/0` reaches public addresses only.

pub mod host;
pub mod special;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

pub use host::{Host, parse_host, parse_hostname, parse_ipv4_loose};
pub use special::{Embedding, Special, SpecialRange, classify};

/// The ports a rule without `:PORT` allows.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

/// What a rule's host part names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Exactly this DNS name (lowercased, no trailing dot).
    Name(String),
    /// Any name strictly below this domain (`*.example.com` holds `example.com` here).
    Subdomains(String),
    /// Exactly this address (an IPv4-mapped IPv6 address is kept as its IPv4 address).
    Addr(IpAddr),
    /// Every address in this network.
    Net(IpNet),
}

/// Which ports a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ports {
    /// No `:PORT` was given: [`DEFAULT_PORTS`] (443 and 80).
    Default,
    /// Exactly this port.
    One(u16),
}

impl Ports {
    /// The ports, in ascending order.
    pub fn values(self) -> Vec<u16> {
        match self {
            Ports::Default => vec![80, 443],
            Ports::One(p) => vec![p],
        }
    }

    /// Whether `port` is allowed.
    pub fn contains(self, port: u16) -> bool {
        match self {
            Ports::Default => DEFAULT_PORTS.contains(&port),
            Ports::One(p) => p == port,
        }
    }
}

/// Who asked for a rule. Only the user's rules unlock special address ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// `--allow-net`, a `--manifest` the user passed, the configuration.
    User,
    /// A package manifest's `permissions_requested.network`.
    Package,
}

/// One allowlist rule: a host (name, wildcard, address or network), its ports and who
/// asked for it. Displays as the canonical text of the rule (`*.example.com:8443`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What the host part names.
    pub target: Target,
    /// Which ports.
    pub ports: Ports,
    /// Who asked for it.
    pub source: RuleSource,
}

/// How to write a rule, appended to every parse error.
const RULE_FORMS: &str = "write HOST or HOST:PORT, with HOST a name (api.example.com), \
*.DOMAIN, an IP address ([IPv6] with a port) or a CIDR (10.0.0.0/8)";

impl Rule {
    /// Parse one rule as written in `--allow-net` or an `allow_net`/`network` list.
    ///
    /// Refused, with a message naming the text, the reason and the forms accepted: an empty
    /// rule, a bad port (not 1–65535), `*` alone or a wildcard anywhere but as the whole
    /// leftmost label, an invalid name, an unusual IPv4 spelling (`127.1`, `0x7f.1` — write
    /// the dotted quad so the rule reads as what it allows), a CIDR with host bits set.
    pub fn parse(text: &str, source: RuleSource) -> Result<Rule, String> {
        parse_rule(text, source).map_err(|why| format!("invalid network rule `{text}`: {why}; {RULE_FORMS}"))
    }

    /// Whether this rule allows a connection to the name `name` (already normalised, as
    /// [`parse_host`] returns it) on `port`.
    pub fn allows_name(&self, name: &str, port: u16) -> bool {
        self.ports.contains(port)
            && match &self.target {
                Target::Name(n) => n == name,
                Target::Subdomains(domain) => name
                    .strip_suffix(domain.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                Target::Addr(_) | Target::Net(_) => false,
            }
    }

    /// Whether this rule holds the address `ip` on `port` (an IPv4-mapped address matches
    /// as the IPv4 address it is). Special ranges are not considered here.
    pub fn holds_addr(&self, ip: IpAddr, port: u16) -> bool {
        let canonical = ip.to_canonical();
        self.ports.contains(port)
            && match &self.target {
                Target::Addr(a) => *a == canonical,
                Target::Net(net) => net.contains(&canonical) || net.contains(&ip),
                Target::Name(_) | Target::Subdomains(_) => false,
            }
    }
}

fn parse_rule(text: &str, source: RuleSource) -> Result<Rule, String> {
    if text.is_empty() {
        return Err("the rule is empty".to_string());
    }
    if text.chars().any(char::is_whitespace) {
        return Err("it contains white space".to_string());
    }
    let (host, port) = split_port(text)?;
    let ports = match port {
        None => Ports::Default,
        Some(p) => Ports::One(parse_port(p)?),
    };
    let target = parse_target(host)?;
    let is_v6 = matches!(target, Target::Addr(IpAddr::V6(_)) | Target::Net(IpNet::V6(_))) || host.contains(':');
    if text.starts_with('[') && !is_v6 {
        return Err("brackets are only for IPv6 addresses".to_string());
    }
    Ok(Rule { target, ports, source })
}

/// Split `HOST[:PORT]`: `[v6]` or `[v6/len]` with an optional `:PORT`; a bare host with two
/// or more colons is an IPv6 address or network without a port.
fn split_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address in brackets must end with `]`")?;
        return match after {
            "" => Ok((inside, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((inside, Some(port))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match text.matches(':').count() {
        0 => Ok((text, None)),
        1 => text
            .split_once(':')
            .map(|(h, p)| (h, Some(p)))
            .ok_or_else(|| "a port after `:`".to_string()),
        _ => Ok((text, None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the port `{text}` is not a number from 1 to 65535 (one port per rule)"
        ));
    }
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("the port `{text}` is not from 1 to 65535")),
    }
}

fn parse_target(host: &str) -> Result<Target, String> {
    if host.is_empty() {
        return Err("the host is empty".to_string());
    }
    if host.contains('/') {
        let net: IpNet = host
            .parse()
            .map_err(|_| format!("`{host}` is not a CIDR (an address, `/`, a prefix length)"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{host}` has bits set after the prefix; the network is `{}`",
                net.trunc()
            ));
        }
        return Ok(Target::Net(net));
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.contains('*') {
            return Err("a wildcard may only be the whole leftmost label (`*.example.com`)".to_string());
        }
        if host::ends_in_number(domain) || domain.contains(':') {
            return Err("a wildcard takes a domain name, not an address (use a CIDR for addresses)".to_string());
        }
        return parse_hostname(domain).map(Target::Subdomains);
    }
    if host.contains('*') {
        return Err(match host {
            "*" => "`*` alone would allow every destination; name the hosts".to_string(),
            _ => "a wildcard may only be the whole leftmost label (`*.example.com`)".to_string(),
        });
    }
    if host.contains(':') {
        return host
            .parse::<std::net::Ipv6Addr>()
            .map(|a| Target::Addr(IpAddr::V6(a).to_canonical()))
            .map_err(|_| format!("`{host}` is not an IPv6 address"));
    }
    if host::ends_in_number(host) {
        let dotted: Option<std::net::Ipv4Addr> = host.parse().ok();
        return match (dotted, parse_ipv4_loose(host)) {
            (Some(a), _) => Ok(Target::Addr(IpAddr::V4(a))),
            (None, Some(a)) => Err(format!("`{host}` means {a}: write it as `{a}`")),
            (None, None) => Err(format!("`{host}` ends in a number but is not an IPv4 address")),
        };
    }
    parse_hostname(host).map(Target::Name)
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = matches!(self.ports, Ports::One(_))
            && matches!(self.target, Target::Addr(IpAddr::V6(_)) | Target::Net(IpNet::V6(_)));
        let host = match &self.target {
            Target::Name(n) => n.clone(),
            Target::Subdomains(d) => format!("*.{d}"),
            Target::Addr(a) => a.to_string(),
            Target::Net(n) => n.to_string(),
        };
        match (self.ports, bracket) {
            (Ports::Default, _) => f.write_str(&host),
            (Ports::One(p), true) => write!(f, "[{host}]:{p}"),
            (Ports::One(p), false) => write!(f, "{host}:{p}"),
        }
    }
}

/// A rule serialises as its canonical text (`*.example.com:8443`), as `info --json` shows it.
impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The rules one run allows, in the order given (the first matching rule is reported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

/// Why a connection is refused; displays as a message naming the destination, the reason
/// and the `--allow-net` rule that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No rule allows this host and port.
    NotAllowed {
        /// The destination host (a name or an address).
        host: Host,
        /// The destination port.
        port: u16,
    },
    /// The destination (or what its name resolved to) is in a special range and no rule
    /// of the user's holds it.
    SpecialAddress {
        /// The destination host as asked for.
        host: Host,
        /// The address that was refused.
        addr: IpAddr,
        /// The destination port.
        port: u16,
        /// Why the address is special.
        special: Special,
    },
    /// The name is allowed but resolved to no address.
    NoAddress {
        /// The name.
        name: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAllowed { host, port } => write!(
                f,
                "{host}:{port} is not on the network allowlist (to allow it: --allow-net {host}:{port})"
            ),
            Refusal::SpecialAddress {
                host,
                addr,
                port,
                special,
            } => {
                let addr_rule = match addr {
                    IpAddr::V4(a) => format!("{a}:{port}"),
                    IpAddr::V6(a) => format!("[{a}]:{port}"),
                };
                let how = match host {
                    Host::Addr(a) if a == addr => format!("{host}"),
                    _ => format!("{host} resolves to {addr}, which"),
                };
                write!(
                    f,
                    "{how} is refused: {special}; only your own rule for that address unlocks it \
                     (--allow-net {addr_rule}; a package's request never does)"
                )
            }
            Refusal::NoAddress { name } => write!(f, "{name} resolved to no address"),
        }
    }
}

/// A decision on one connection: allowed (by which rule, to which address), or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Connect to `addr`: `rule` allows it.
    Allow {
        /// The rule that allowed the destination.
        rule: &'a Rule,
        /// The checked address to connect to (the only one: no second lookup).
        addr: IpAddr,
    },
    /// Do not connect.
    Refuse(Refusal),
}

impl Allowlist {
    /// An empty allowlist: nothing goes out.
    pub fn new() -> Self {
        Allowlist::default()
    }

    /// Parse the user's rules and a package's rules into one allowlist; the first invalid
    /// rule is the error.
    pub fn parse<U, P>(user: U, package: P) -> Result<Self, String>
    where
        U: IntoIterator,
        U::Item: AsRef<str>,
        P: IntoIterator,
        P::Item: AsRef<str>,
    {
        let mut list = Allowlist::new();
        for text in user {
            list.push(Rule::parse(text.as_ref(), RuleSource::User)?);
        }
        for text in package {
            list.push(Rule::parse(text.as_ref(), RuleSource::Package)?);
        }
        Ok(list)
    }

    /// Add a rule.
    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True when nothing is allowed (the jail gets no network at all).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule allows the name `host` on some port: the names the jail's DNS
    /// stub answers (every other query is refused). Address spellings and invalid hosts are
    /// not names: `false`.
    pub fn allows_name_on_any_port(&self, host: &str) -> bool {
        match parse_host(host) {
            Ok(Host::Name(name)) => self
                .rules
                .iter()
                .any(|r| r.ports.values().into_iter().any(|p| r.allows_name(&name, p))),
            _ => false,
        }
    }

    /// Every port some rule allows, ascending: the listeners to bind inside the jail.
    pub fn ports(&self) -> std::collections::BTreeSet<u16> {
        self.rules.iter().flat_map(|r| r.ports.values()).collect()
    }

    /// The rule that allows `host` on `port`, if any. `host` is as the client wrote it:
    /// an address in any spelling (`0x7f.1`, `[::1]`) is judged as that address
    /// ([`Allowlist::allows_addr`]); an invalid host is allowed by nothing.
    pub fn allows(&self, host: &str, port: u16) -> Option<&Rule> {
        match parse_host(host).ok()? {
            Host::Name(name) => self.rules.iter().find(|r| r.allows_name(&name, port)),
            Host::Addr(ip) => self.allows_addr(ip, port),
        }
    }

    /// The rule that allows a direct connection to `ip` on `port`: an address or CIDR
    /// rule holding it, and, for an address in a special range, one the user gave.
    pub fn allows_addr(&self, ip: IpAddr, port: u16) -> Option<&Rule> {
        match classify(ip) {
            Some(_) => self.unlocking_rule(ip, port),
            None => self.rules.iter().find(|r| r.holds_addr(ip, port)),
        }
    }

    /// The user's rule that holds `ip` on `port` (what unlocks a special address).
    pub fn unlocking_rule(&self, ip: IpAddr, port: u16) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.source == RuleSource::User && r.holds_addr(ip, port))
    }

    /// Whether an address that an allowed name resolved to may be connected to: yes unless
    /// it is special and no rule of the user's holds it.
    pub fn check_resolved(&self, ip: IpAddr, port: u16) -> Result<(), Special> {
        match classify(ip) {
            Some(special) if self.unlocking_rule(ip, port).is_none() => Err(special),
            _ => Ok(()),
        }
    }

    /// The decision on a connection to `host` (as [`parse_host`] classified it) on `port`.
    /// For a name, `resolved` holds the addresses mcp-j's own lookup returned, and the
    /// first one that passes [`Allowlist::check_resolved`] is the one to connect to; for
    /// an address, `resolved` is ignored.
    pub fn decide(&self, host: &Host, port: u16, resolved: &[IpAddr]) -> Decision<'_> {
        match host {
            Host::Addr(ip) => match self.allows_addr(*ip, port) {
                Some(rule) => Decision::Allow { rule, addr: *ip },
                None => match classify(*ip) {
                    // Say why when it is the range that stops it and a rule would hold it.
                    Some(special) if self.rules.iter().any(|r| r.holds_addr(*ip, port)) => {
                        Decision::Refuse(Refusal::SpecialAddress {
                            host: host.clone(),
                            addr: *ip,
                            port,
                            special,
                        })
                    }
                    _ => Decision::Refuse(Refusal::NotAllowed {
                        host: host.clone(),
                        port,
                    }),
                },
            },
            Host::Name(name) => {
                let Some(rule) = self.rules.iter().find(|r| r.allows_name(name, port)) else {
                    return Decision::Refuse(Refusal::NotAllowed {
                        host: host.clone(),
                        port,
                    });
                };
                let mut first_refused = None;
                for &addr in resolved {
                    match self.check_resolved(addr, port) {
                        Ok(()) => return Decision::Allow { rule, addr },
                        Err(special) => {
                            first_refused.get_or_insert(Refusal::SpecialAddress {
                                host: host.clone(),
                                addr,
                                port,
                                special,
                            });
                        }
                    }
                }
                Decision::Refuse(first_refused.unwrap_or_else(|| Refusal::NoAddress { name: name.clone() }))
            }
        }
    }
}

#[cfg(test)]
mod tests;
