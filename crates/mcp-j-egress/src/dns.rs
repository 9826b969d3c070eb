//! The jail's DNS stub: the only resolver a jail has. It answers an `A` query for a name
//! the allowlist allows with that name's synthetic loopback address ([`crate::names`]) and
//! refuses everything else, so a program that ignores proxy variables still reaches the
//! allowed names (and only them), and nothing leaks out through DNS: the stub never
//! forwards a query and never resolves a name for real (mcp-j does that, outside, when a
//! connection is decided).
//!
//! The jail's init binds the UDP socket on `127.0.0.1:53` inside the jail and hands it to
//! the supervisor, which runs [`serve_dns`] on it. No TCP: every answer fits in one UDP
//! datagram (at most [`MAX_RESPONSE_BYTES`]).
//!
//! | query | answer |
//! |---|---|
//! | `A`, class `IN`, allowed name | `NOERROR`, one `A` record: the synthetic address, TTL [`TTL_SECONDS`] |
//! | `AAAA`, class `IN`, allowed name | `NOERROR` with no record (NODATA): clients fall back to `A` |
//! | any other name, type or class; opcode other than `QUERY`; not exactly one question; name table full | `REFUSED` |
//! | header readable, question not (truncated, bad label, compression pointer) | `FORMERR` |
//! | shorter than a header, or a response (`QR` set), or over the rate limit | no answer |
//!
//! The parser is hand-written for this one job (header, one question; the additional
//! section, such as an EDNS `OPT` record, is ignored): every read is bounds-checked, the
//! work is linear in the datagram, and it never panics (fuzzed: `fuzz/fuzz_targets/dns_stub.rs`).

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use mcp_j_policy::egress::Allowlist;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::names::SyntheticNames;

/// The TTL of an answer: short, so a program asks again rather than caching an address
/// for long (the map keeps the address stable anyway).
pub const TTL_SECONDS: u32 = 5;

/// The largest datagram read; a longer one is truncated by the kernel, which only loses
/// additional records this stub ignores (a question is at most 259 bytes after the header).
pub const MAX_QUERY_BYTES: usize = 1232;

/// The largest answer: header (12) + question (at most 255 + 4) + one `A` record (16).
pub const MAX_RESPONSE_BYTES: usize = 12 + 259 + 16;

/// At most this many queries are answered per second; the others get no answer (the
/// client retries). Bounds the supervisor's work and the events a looping jail can cause.
pub const MAX_QUERIES_PER_SECOND: u32 = 1000;

/// The longest name on the wire, length bytes and the root's zero included (RFC 1035 3.1).
const MAX_WIRE_NAME: usize = 255;
/// The longest label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const OPCODE_QUERY: u16 = 0;

/// A DNS response code this stub sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    /// 0: the answer (possibly no record) follows.
    NoError = 0,
    /// 1: the query could not be read.
    FormErr = 1,
    /// 5: the stub will not answer this query.
    Refused = 5,
}

/// What the stub did with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An `A` record with this synthetic address.
    Answered(Ipv4Addr),
    /// `NOERROR` without a record (`AAAA` of an allowed name).
    NoData,
    /// `REFUSED`, and why.
    Refused(Refusal),
    /// `FORMERR`: the question could not be read.
    FormErr,
    /// The first query over the rate limit in a second; it and the rest of that second's
    /// queries get no answer and no further event.
    RateLimited,
}

/// Why a query was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The name is not on the allowlist (or is not a host name at all).
    NameNotAllowed,
    /// The type is neither `A` nor `AAAA`, or the class is not `IN`.
    TypeNotServed,
    /// The opcode is not `QUERY`.
    NotAQuery,
    /// More than one question.
    QuestionCount,
    /// The name is allowed but the jail already has as many names as it may
    /// ([`SyntheticNames`]'s capacity).
    TooManyNames,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::NameNotAllowed => "the name is not on the network allowlist",
            Refusal::TypeNotServed => "only A and AAAA queries of class IN are answered",
            Refusal::NotAQuery => "only standard queries are answered",
            Refusal::QuestionCount => "only one question per query is answered",
            Refusal::TooManyNames => "the jail already has as many names as it may",
        })
    }
}

/// One query, for audit: the name asked for (presentation form, lowercased, bytes outside
/// letters, digits, `-` and `_` written `\DDD`; `None` when no question could be read), its
/// type, and what the stub did. The name is what the jail sent: it may carry data a
/// program tries to smuggle out, so treat it as untrusted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    /// The name asked for.
    pub name: Option<String>,
    /// The query type (1 `A`, 28 `AAAA`, ...), when a question was read.
    pub qtype: Option<u16>,
    /// What was answered.
    pub outcome: Outcome,
}

/// Serve DNS on `socket` until it fails: answer each query as the [module](self) says and
/// report it to `on_query`. Runs on a current-thread runtime (no task is spawned). Errors
/// a UDP socket reports for an earlier datagram (`ECONNREFUSED` after the client went
/// away) are skipped; any other receive error ends the loop and is returned.
pub async fn serve_dns<F>(
    socket: UdpSocket,
    allow: Arc<Allowlist>,
    names: SyntheticNames,
    on_query: F,
) -> io::Result<()>
where
    F: Fn(&QueryEvent),
{
    let mut buf = vec![0u8; MAX_QUERY_BYTES];
    let mut budget = QueryBudget::new(MAX_QUERIES_PER_SECOND);
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        match budget.admit(Instant::now()) {
            Admit::Yes => {}
            Admit::FirstRefused => {
                on_query(&QueryEvent {
                    name: None,
                    qtype: None,
                    outcome: Outcome::RateLimited,
                });
                continue;
            }
            Admit::No => continue,
        }
        let Some(query) = buf.get(..len) else {
            continue;
        };
        if let Some((response, event)) = respond(query, &allow, &names) {
            on_query(&event);
            // A failed send only loses this answer (the client retries); UDP is lossy.
            let _ = socket.send_to(&response, from).await;
        }
    }
}

/// The answer to one datagram, and the event for it; `None` when it gets no answer
/// (shorter than a header, or a response). Pure apart from assigning a synthetic address.
pub fn respond(packet: &[u8], allow: &Allowlist, names: &SyntheticNames) -> Option<(Vec<u8>, QueryEvent)> {
    let header = Header::read(packet)?;
    if header.flags & FLAG_QR != 0 {
        // Answering a response could make two stubs talk to each other forever.
        return None;
    }
    let refuse = |why: Refusal, question: Option<&Question<'_>>| {
        let event = QueryEvent {
            name: question.map(|q| q.display.clone()),
            qtype: question.map(|q| q.qtype),
            outcome: Outcome::Refused(why),
        };
        (encode(&header, Rcode::Refused, question, None), event)
    };
    if header.opcode() != OPCODE_QUERY {
        return Some(refuse(Refusal::NotAQuery, None));
    }
    if header.qdcount > 1 {
        return Some(refuse(Refusal::QuestionCount, None));
    }
    let Some(question) = (header.qdcount == 1).then(|| Question::read(packet)).flatten() else {
        let event = QueryEvent {
            name: None,
            qtype: None,
            outcome: Outcome::FormErr,
        };
        return Some((encode(&header, Rcode::FormErr, None, None), event));
    };
    let Some(name) = question
        .host_name
        .as_deref()
        .filter(|name| allow.allows_name_on_any_port(name))
    else {
        return Some(refuse(Refusal::NameNotAllowed, Some(&question)));
    };
    if question.qclass != CLASS_IN || !matches!(question.qtype, TYPE_A | TYPE_AAAA) {
        return Some(refuse(Refusal::TypeNotServed, Some(&question)));
    }
    let event = |outcome| QueryEvent {
        name: Some(question.display.clone()),
        qtype: Some(question.qtype),
        outcome,
    };
    if question.qtype == TYPE_AAAA {
        return Some((
            encode(&header, Rcode::NoError, Some(&question), None),
            event(Outcome::NoData),
        ));
    }
    match names.address_for(name) {
        Some(addr) => Some((
            encode(&header, Rcode::NoError, Some(&question), Some(addr)),
            event(Outcome::Answered(addr)),
        )),
        None => Some(refuse(Refusal::TooManyNames, Some(&question))),
    }
}

/// The fixed 12-byte header (RFC 1035 4.1.1).
struct Header {
    id: u16,
    flags: u16,
    qdcount: u16,
}

impl Header {
    fn read(packet: &[u8]) -> Option<Header> {
        let head = packet.get(..HEADER_LEN)?;
        Some(Header {
            id: u16::from_be_bytes([head[0], head[1]]),
            flags: u16::from_be_bytes([head[2], head[3]]),
            qdcount: u16::from_be_bytes([head[4], head[5]]),
        })
    }

    fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0xf
    }
}

/// The question (RFC 1035 4.1.2), read from right after the header.
struct Question<'a> {
    /// The question's bytes as sent (name, type, class): echoed in the answer.
    wire: &'a [u8],
    /// The name, lowercased, when every label is letters, digits, `-` or `_` (anything
    /// else, such as a `.` inside a label, cannot be an allowed name).
    host_name: Option<String>,
    /// The name for the event, always readable.
    display: String,
    qtype: u16,
    qclass: u16,
}

impl<'a> Question<'a> {
    /// `None` when the question is truncated, a label length is reserved (`0x40`–`0xbf`),
    /// a label or the name is too long, or the name uses a compression pointer: the
    /// question's name is the first in the packet, so there is nothing before it that a
    /// pointer could refer to (RFC 1035 4.1.4), and refusing them rules out pointer loops.
    fn read(packet: &'a [u8]) -> Option<Question<'a>> {
        let mut at = HEADER_LEN;
        let mut labels: Vec<&[u8]> = Vec::new();
        loop {
            let len = usize::from(*packet.get(at)?);
            if len == 0 {
                at += 1;
                break;
            }
            if len > MAX_LABEL {
                return None;
            }
            let label = packet.get(at + 1..at + 1 + len)?;
            at += 1 + len;
            if at - HEADER_LEN + 1 > MAX_WIRE_NAME {
                return None;
            }
            labels.push(label);
        }
        let tail = packet.get(at..at + 4)?;
        let qtype = u16::from_be_bytes([tail[0], tail[1]]);
        let qclass = u16::from_be_bytes([tail[2], tail[3]]);
        let wire = packet.get(HEADER_LEN..at + 4)?;
        let is_host_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        let host_name = labels
            .iter()
            .all(|l| l.iter().all(is_host_byte))
            .then(|| lowercase_join(&labels));
        Some(Question {
            wire,
            host_name,
            display: display_name(&labels),
            qtype,
            qclass,
        })
    }
}

fn lowercase_join(labels: &[&[u8]]) -> String {
    let mut name = String::new();
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            name.push('.');
        }
        name.extend(label.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    name
}

/// The name in presentation form: lowercased, `.` between labels, any byte other than a
/// letter, digit, `-` or `_` as `\DDD` (so a `.` inside a label cannot pass for a
/// separator); the root name is `.`.
fn display_name(labels: &[&[u8]]) -> String {
    if labels.is_empty() {
        return ".".to_string();
    }
    let mut name = String::new();
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            name.push('.');
        }
        for &b in *label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                name.push(char::from(b.to_ascii_lowercase()));
            } else {
                name.push_str(&format!("\\{b:03}"));
            }
        }
    }
    name
}

/// A response: the query's id, opcode and `RD`; `QR` and `RA` set (the stub is the jail's
/// recursive resolver, as far as a client can tell); `AA` on `NOERROR`; the question
/// echoed when it was read; one `A` record when `answer` is given. Never longer than
/// [`MAX_RESPONSE_BYTES`].
fn encode(header: &Header, rcode: Rcode, question: Option<&Question<'_>>, answer: Option<Ipv4Addr>) -> Vec<u8> {
    let mut flags = FLAG_QR | (header.flags & (0xf << 11)) | (header.flags & FLAG_RD) | FLAG_RA | rcode as u16;
    if rcode == Rcode::NoError {
        flags |= FLAG_AA;
    }
    let qdcount = u16::from(question.is_some());
    let ancount = u16::from(answer.is_some() && question.is_some());
    let mut out = Vec::with_capacity(MAX_RESPONSE_BYTES);
    out.extend_from_slice(&header.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&qdcount.to_be_bytes());
    out.extend_from_slice(&ancount.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    if let Some(q) = question {
        out.extend_from_slice(q.wire);
        if let Some(addr) = answer {
            // The owner name is a pointer to the question's name at offset 12.
            out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL_SECONDS.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&addr.octets());
        }
    }
    out
}

/// A fixed-window rate limit: `per_second` queries in each one-second window.
#[derive(Debug)]
struct QueryBudget {
    per_second: u32,
    window_start: Option<Instant>,
    used: u32,
}

/// Whether one query may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Yes,
    /// Not answered, and the first such in its window (report it once).
    FirstRefused,
    No,
}

impl QueryBudget {
    fn new(per_second: u32) -> Self {
        QueryBudget {
            per_second,
            window_start: None,
            used: 0,
        }
    }

    fn admit(&mut self, now: Instant) -> Admit {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
        }
        self.used = self.used.saturating_add(1);
        match self.used {
            n if n <= self.per_second => Admit::Yes,
            n if n == self.per_second + 1 => Admit::FirstRefused,
            _ => Admit::No,
        }
    }
}

#[cfg(test)]
mod tests;
