//! HTTP on the proxy listener: absolute-URI requests are forwarded, `CONNECT host:port`
//! opens a tunnel. One request per connection: the forwarded request carries
//! `Connection: close`, so the origin closes after its response and the proxy relays the
//! response unparsed (bodies stream both ways, whatever their framing). Whatever else the
//! client sends on that connection can only reach the same, already allowed, destination.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::copy::relay;
use super::{OpenError, Record, Shared};
use crate::event::Via;

/// Most headers in one request head; more gets `431`.
const MAX_HEADERS: usize = 100;

/// Request headers that belong to one hop (RFC 9110 §7.6.1) and the proxy's own; never
/// forwarded. `Host` is replaced by the URI's authority. `Transfer-Encoding` stays: the
/// body is relayed as it came.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "host",
    "proxy-authorization",
];

/// Why a request head could not be read.
enum HeadError {
    /// The client closed (or reset) before the head ended.
    Closed,
    /// Over `max_header_bytes` or `MAX_HEADERS`.
    TooLarge,
    /// Not within `header_timeout`.
    Timeout,
    /// Not HTTP/1.x.
    Malformed(String),
}

/// Serve one HTTP connection on the proxy listener.
pub(crate) async fn serve(shared: &Shared, mut stream: TcpStream, record: &mut Record) {
    let limits = &shared.limits;
    let head = tokio::time::timeout(limits.header_timeout, read_head(&mut stream, limits.max_header_bytes))
        .await
        .unwrap_or(Err(HeadError::Timeout));
    let (buf, head_len) = match head {
        Ok(head) => head,
        Err(HeadError::Closed) => return,
        Err(HeadError::TooLarge) => {
            let why = format!(
                "the request head is larger than {} bytes or has more than {MAX_HEADERS} headers",
                limits.max_header_bytes
            );
            return refuse(
                &mut stream,
                record,
                431,
                "Request Header Fields Too Large",
                why,
                limits.header_timeout,
            )
            .await;
        }
        Err(HeadError::Timeout) => {
            let why = format!(
                "no complete request head within {}s",
                limits.header_timeout.as_secs_f64()
            );
            return refuse(&mut stream, record, 408, "Request Timeout", why, limits.header_timeout).await;
        }
        Err(HeadError::Malformed(why)) => {
            return refuse(&mut stream, record, 400, "Bad Request", why, limits.header_timeout).await;
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(&buf[..head_len]).is_err() {
        let why = "the request head is not HTTP/1.x".to_string();
        return refuse(&mut stream, record, 400, "Bad Request", why, limits.header_timeout).await;
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        let why = "the request line is incomplete".to_string();
        return refuse(&mut stream, record, 400, "Bad Request", why, limits.header_timeout).await;
    };
    let body_start = &buf[head_len..];
    if method.eq_ignore_ascii_case("CONNECT") {
        record.via = Via::Connect;
        connect(shared, stream, record, target, body_start).await;
    } else {
        record.via = Via::HttpForward;
        let head = RequestHead {
            method,
            target,
            version: request.version.unwrap_or(1),
            headers: request.headers,
        };
        forward(shared, stream, record, &head, body_start).await;
    }
}

/// `CONNECT host:port`: open the destination, answer 200, relay.
async fn connect(shared: &Shared, mut stream: TcpStream, record: &mut Record, target: &str, early: &[u8]) {
    let limits = &shared.limits;
    let Some((host, Some(port))) = split_authority(target) else {
        let why = format!("CONNECT needs host:port, not `{}`", printable(target));
        return refuse(&mut stream, record, 400, "Bad Request", why, limits.header_timeout).await;
    };
    let mut upstream = match shared.open(host, port, record).await {
        Ok(upstream) => upstream,
        Err(e) => return refuse_open(&mut stream, &e, limits.header_timeout).await,
    };
    record.allowed();
    if stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    // A client may send its first bytes (a TLS ClientHello) without waiting for the 200.
    if !early.is_empty() {
        if upstream.write_all(early).await.is_err() {
            return;
        }
        record.bytes_up += early.len() as u64;
    }
    let relayed = relay(&mut stream, &mut upstream, limits.buffer_size, limits.idle_timeout).await;
    record.bytes_up += relayed.up;
    record.bytes_down += relayed.down;
}

/// An absolute-URI request: rewrite its head for the origin and relay.
async fn forward(
    shared: &Shared,
    mut stream: TcpStream,
    record: &mut Record,
    head: &RequestHead<'_, '_>,
    body_start: &[u8],
) {
    let limits = &shared.limits;
    let uri = match parse_absolute_uri(head.target) {
        Ok(uri) => uri,
        Err(why) => return refuse(&mut stream, record, 400, "Bad Request", why, limits.header_timeout).await,
    };
    let mut upstream = match shared.open(uri.host, uri.port, record).await {
        Ok(upstream) => upstream,
        Err(e) => return refuse_open(&mut stream, &e, limits.header_timeout).await,
    };
    record.allowed();
    let origin_head = origin_request_head(head.method, &uri, head.version, head.headers);
    if upstream.write_all(&origin_head).await.is_err() {
        return;
    }
    record.bytes_up += origin_head.len() as u64;
    if !body_start.is_empty() {
        if upstream.write_all(body_start).await.is_err() {
            return;
        }
        record.bytes_up += body_start.len() as u64;
    }
    let relayed = relay(&mut stream, &mut upstream, limits.buffer_size, limits.idle_timeout).await;
    record.bytes_up += relayed.up;
    record.bytes_down += relayed.down;
}

/// The parsed request line and headers of a forwarded request.
struct RequestHead<'h, 'b> {
    method: &'b str,
    target: &'b str,
    /// The minor version: `HTTP/1.0` stays 1.0.
    version: u8,
    headers: &'h [httparse::Header<'b>],
}

/// Read until the end of the request head. Returns the bytes read (the head, then possibly
/// the start of the body) and the head's length.
async fn read_head(stream: &mut TcpStream, max: usize) -> Result<(Vec<u8>, usize), HeadError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(&buf) {
            Ok(httparse::Status::Complete(len)) if len > max => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Complete(len)) => return Ok((buf, len)),
            Ok(httparse::Status::Partial) if buf.len() > max => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(e) => return Err(HeadError::Malformed(format!("the request is not HTTP/1.x ({e})"))),
        }
    }
}

/// The parts of an absolute `http://` URI the proxy needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AbsoluteUri<'a> {
    /// The host as written (a name, an address in any spelling, `[v6]`).
    pub(crate) host: &'a str,
    /// The port, 80 when absent.
    pub(crate) port: u16,
    /// The authority without userinfo: the forwarded `Host` header.
    pub(crate) authority: &'a str,
    /// Path and query (origin form), never empty; the fragment dropped.
    pub(crate) path: String,
}

/// Parse the target of a forwarded request. Only `http://`: `https://` goes through
/// `CONNECT` (the proxy never speaks TLS for the client), and an origin-form target means
/// the client did not know it was talking to a proxy.
pub(crate) fn parse_absolute_uri(target: &str) -> Result<AbsoluteUri<'_>, String> {
    let scheme_end = target.find("://");
    let scheme = scheme_end.map(|i| &target[..i]);
    let rest = match scheme {
        Some(s) if s.eq_ignore_ascii_case("http") => &target[s.len() + 3..],
        Some(s) if s.eq_ignore_ascii_case("https") => {
            return Err(
                "an https:// URL goes through CONNECT (set HTTPS_PROXY to this proxy), not a forwarded request"
                    .to_string(),
            );
        }
        Some(s) => {
            return Err(format!(
                "the scheme `{}` is not forwarded (http:// only; other protocols go through CONNECT or SOCKS5)",
                printable(s)
            ));
        }
        None => {
            return Err(
                "this is mcp-j's egress proxy: send an absolute URI (GET http://host/path) or CONNECT host:port"
                    .to_string(),
            );
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority_with_userinfo, after) = rest.split_at(end);
    let path = after.split('#').next().unwrap_or("");
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    // userinfo is never forwarded as part of the authority, nor put in an event.
    let authority = authority_with_userinfo
        .rsplit_once('@')
        .map_or(authority_with_userinfo, |(_, host)| host);
    let (host, port) = split_authority(authority).ok_or_else(|| "the URL's host:port is not valid".to_string())?;
    Ok(AbsoluteUri {
        host,
        port: port.unwrap_or(80),
        authority,
        path,
    })
}

/// Split `host[:port]` or `[v6][:port]`. `None` for an empty host, a bare IPv6 address
/// (it needs brackets), or a port that is not 1–65535.
pub(crate) fn split_authority(text: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if text.starts_with('[') {
        let close = text.find(']')?;
        let (host, rest) = text.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&p| p > 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// The request head sent to the origin: origin-form target, `Host` from the URI, the
/// client's headers minus hop-by-hop ones (and those its `Connection` header names), and
/// `Connection: close`.
pub(crate) fn origin_request_head(
    method: &str,
    uri: &AbsoluteUri<'_>,
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Vec<u8> {
    let named_by_connection: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection") || h.name.eq_ignore_ascii_case("proxy-connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(format!("{method} {} HTTP/1.{version}\r\n", uri.path).as_bytes());
    head.extend_from_slice(format!("Host: {}\r\n", uri.authority).as_bytes());
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&name.as_str()) || name.starts_with("proxy-") || named_by_connection.contains(&name) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    head
}

/// Answer a destination that could not be opened: 403 for the policy, 400 for an invalid
/// host, 502 when the name or address failed, 504 when it did not answer.
/// `open` has already set the record's outcome (refused or failed).
async fn refuse_open(stream: &mut TcpStream, e: &OpenError, timeout: Duration) {
    let (status, reason) = match e {
        OpenError::Refused(_) => (403, "Forbidden"),
        OpenError::Invalid(_) => (400, "Bad Request"),
        OpenError::Resolve(_) | OpenError::Connect { .. } => (502, "Bad Gateway"),
        OpenError::ConnectTimeout(_) => (504, "Gateway Timeout"),
    };
    let body = format!("mcp-j egress: {}\n", e.message());
    let _ = write_response(stream, status, reason, &body, timeout).await;
}

/// Answer with an error the proxy itself found (bad or oversize request) and record it.
async fn refuse(
    stream: &mut TcpStream,
    record: &mut Record,
    status: u16,
    reason: &str,
    why: String,
    timeout: Duration,
) {
    let body = format!("mcp-j egress: {why}\n");
    record.refuse(why);
    let _ = write_response(stream, status, reason, &body, timeout).await;
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::time::timeout(timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    // Closing a socket with unread input sends a reset, which can destroy the answer
    // before the client reads it, or fail the client's write of the rest of a refused
    // upload: read and discard what the client is still sending, boundedly.
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut left = DRAIN_MAX_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Ok(())
}

/// How long a refused client may go on sending before the proxy closes anyway.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// How much of a refused request's remaining input is read and discarded before closing.
const DRAIN_MAX_BYTES: usize = 1024 * 1024;

/// At most 100 printable characters of client-supplied text, for messages.
fn printable(text: &str) -> String {
    text.chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_uris_give_host_port_and_origin_form() {
        let u = parse_absolute_uri("http://allowed.test:8080/a/b?q=secret#frag").expect("uri");
        assert_eq!(
            u,
            AbsoluteUri {
                host: "allowed.test",
                port: 8080,
                authority: "allowed.test:8080",
                path: "/a/b?q=secret".to_string()
            }
        );
        let u = parse_absolute_uri("HTTP://user:pw@Example.com").expect("uri");
        assert_eq!(
            (u.host, u.port, u.authority, u.path.as_str()),
            ("Example.com", 80, "Example.com", "/")
        );
        let u = parse_absolute_uri("http://[::1]:81?x=1").expect("uri");
        assert_eq!((u.host, u.port, u.path.as_str()), ("[::1]", 81, "/?x=1"));
        let u = parse_absolute_uri("http://a@b@0x7f.1/").expect("uri");
        assert_eq!(u.host, "0x7f.1");
    }

    #[test]
    fn non_http_targets_are_refused_with_the_way_to_do_it() {
        let table = [
            ("https://a.test/", "CONNECT"),
            ("/index.html", "absolute URI"),
            ("ftp://a.test/", "`ftp` is not forwarded"),
            ("http:///x", "not valid"),
            ("http://a.test:0/", "not valid"),
            ("http://a.test:99999/", "not valid"),
            ("http://a.test:x/", "not valid"),
            ("http://::1/", "not valid"),
        ];
        for (target, why) in table {
            let err = parse_absolute_uri(target).expect_err(target);
            assert!(err.contains(why), "{target}: {err}");
        }
    }

    #[test]
    fn authorities_split_with_and_without_ports() {
        assert_eq!(split_authority("a.test:443"), Some(("a.test", Some(443))));
        assert_eq!(split_authority("a.test"), Some(("a.test", None)));
        assert_eq!(split_authority("[2001:db8::1]:443"), Some(("[2001:db8::1]", Some(443))));
        assert_eq!(split_authority("[2001:db8::1]"), Some(("[2001:db8::1]", None)));
        for bad in ["", ":443", "a:", "a:-1", "a:65536", "[::1]x", "[::1", "a:1:2", "a:+1"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_origin_head_drops_hop_by_hop_and_proxy_headers() {
        let raw = b"GET http://u:p@a.test:8080/p?q HTTP/1.1\r\nHost: evil.test\r\nProxy-Authorization: Basic eA==\r\n\
Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n\
Upgrade: h2c\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nX-Other: yes\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(raw).expect("parse");
        let uri = parse_absolute_uri(req.path.expect("path")).expect("uri");
        let head = origin_request_head(req.method.expect("method"), &uri, 1, req.headers);
        let text = String::from_utf8(head).expect("utf8");
        assert_eq!(
            text,
            "GET /p?q HTTP/1.1\r\nHost: a.test:8080\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\nX-Other: yes\r\n\
Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn http_1_0_stays_1_0() {
        let uri = parse_absolute_uri("http://a.test/").expect("uri");
        let head = origin_request_head("HEAD", &uri, 0, &[]);
        assert!(head.starts_with(b"HEAD / HTTP/1.0\r\nHost: a.test\r\n"));
    }
}
