//! The proxy end to end on 127.0.0.1 only: a tiny origin server the test binds on port 0,
//! the proxy on port 0, a fake resolver mapping test names to 127.0.0.1. Loopback is a
//! special range, so every allowlist that reaches the origin holds the user's own
//! `127.0.0.1:PORT` rule. Every test runs on tokio's current-thread runtime (as the
//! supervisor does) and is bounded in time.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_j_policy::egress::Allowlist;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;
use crate::event::{self, ConnectEvent, Outcome, Via};
use crate::resolve::{FakeResolver, HangingResolver, Resolver};

const ORIGIN_BODY: &str = "hello from origin\n";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Fail instead of hanging.
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// A tiny HTTP origin: reads one request head (and a `Content-Length` body), records
/// them, answers `ORIGIN_BODY` followed by the request body, closes.
struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    _task: JoinHandle<()>,
}

impl Origin {
    async fn bind(addr: &str) -> Origin {
        Origin::serve(TcpListener::bind(addr).await.expect("bind origin"))
    }

    fn serve(listener: TcpListener) -> Origin {
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (accepted.clone(), heads.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                tokio::spawn(async move { answer(stream, h).await });
            }
        });
        Origin {
            addr,
            accepted,
            heads,
            _task: task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn last_head(&self) -> String {
        self.heads.lock().expect("lock").last().cloned().unwrap_or_default()
    }
}

async fn answer(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    heads.lock().expect("lock").push(head);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ORIGIN_BODY}",
        ORIGIN_BODY.len() + body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// The length of the origin's answer to a request without a body.
fn origin_response_len() -> u64 {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ORIGIN_BODY}",
        ORIGIN_BODY.len()
    )
    .len() as u64
}

/// A running proxy listener and its events.
struct Proxy {
    addr: SocketAddr,
    egress: Egress,
    events: mpsc::UnboundedReceiver<ConnectEvent>,
    _task: JoinHandle<()>,
}

impl Proxy {
    async fn start(allowlist: Allowlist, resolver: Arc<dyn Resolver>, limits: Limits) -> Proxy {
        Proxy::start_with_names(allowlist, resolver, Arc::new(NoSyntheticNames), limits).await
    }

    async fn start_with_names(
        allowlist: Allowlist,
        resolver: Arc<dyn Resolver>,
        names: Arc<dyn SyntheticNameMap>,
        limits: Limits,
    ) -> Proxy {
        let (tx, events) = mpsc::unbounded_channel();
        let egress = Egress::new(allowlist, resolver, names, limits, event::channel(tx));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let serving = egress.clone();
        let task = tokio::spawn(async move { serving.serve_proxy(listener).await });
        Proxy {
            addr,
            egress,
            events,
            _task: task,
        }
    }

    /// Serve a direct listener with the same egress.
    fn direct(&self, listener: TcpListener) -> JoinHandle<()> {
        let serving = self.egress.clone();
        tokio::spawn(async move { serving.serve_direct(listener).await })
    }

    async fn event(&mut self) -> ConnectEvent {
        self.events.recv().await.expect("an event")
    }
}

fn rules(user: &[String], package: &[String]) -> Allowlist {
    Allowlist::parse(user, package).expect("rules")
}

fn resolver_allowed() -> Arc<FakeResolver> {
    Arc::new(
        FakeResolver::new()
            .with("allowed.test", &[LOCALHOST])
            .with("denied.test", &[LOCALHOST]),
    )
}

/// The usual allowlist: `allowed.test:PORT` and the user's loopback rule for the origin.
fn usual(port: u16) -> Allowlist {
    rules(&[format!("allowed.test:{port}"), format!("127.0.0.1:{port}")], &[])
}

/// Send raw bytes to the proxy and read the whole answer.
async fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(proxy).await.expect("connect proxy");
    s.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn http_get(proxy: SocketAddr, url: &str) -> String {
    exchange(
        proxy,
        format!("GET {url} HTTP/1.1\r\nHost: ignored\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
    .await
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Read an HTTP head (up to the blank line), byte by byte so nothing after it is consumed.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.expect("read") == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn connect_tunnel(proxy: SocketAddr, authority: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.expect("connect proxy");
    s.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut s).await;
    (head, s)
}

/// A plain request through an open tunnel or direct connection; the whole answer.
async fn get_through(mut s: TcpStream) -> String {
    s.write_all(b"GET /through HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

enum SocksDest<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(std::net::Ipv6Addr),
}

/// SOCKS5 handshake and CONNECT: the reply code and the stream.
async fn socks5(proxy: SocketAddr, dest: SocksDest<'_>, port: u16, command: u8) -> (u8, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.expect("connect proxy");
    s.write_all(&[5, 1, 0]).await.expect("greeting");
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).await.expect("method");
    assert_eq!(choice, [5, 0]);
    let mut request = vec![5, command, 0];
    match dest {
        SocksDest::Name(n) => {
            request.push(3);
            request.push(u8::try_from(n.len()).expect("short name"));
            request.extend_from_slice(n.as_bytes());
        }
        SocksDest::V4(a) => {
            request.push(1);
            request.extend_from_slice(&a.octets());
        }
        SocksDest::V6(a) => {
            request.push(4);
            request.extend_from_slice(&a.octets());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.expect("request");
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply[0], 5);
    assert_eq!(&reply[2..], &[0, 1, 0, 0, 0, 0, 0, 0], "bound address is 0.0.0.0:0");
    (reply[1], s)
}

/// Bind the same port on 127.0.0.1 (first, port 0) and each of `others`; retried because
/// the port picked for 127.0.0.1 may be taken on another loopback address.
async fn bind_same_port(others: &[&str]) -> (TcpListener, Vec<TcpListener>) {
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let mut rest = Vec::new();
        for ip in others {
            match TcpListener::bind((*ip, port)).await {
                Ok(l) => rest.push(l),
                Err(_) => break,
            }
        }
        if rest.len() == others.len() {
            return (first, rest);
        }
    }
    panic!("could not bind one port on several loopback addresses");
}

#[tokio::test]
async fn http_forward_returns_the_origin_body_and_reports_the_connection() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let request = format!(
            "GET http://user:hunter2@allowed.test:{port}/path?token=s3cret#frag HTTP/1.1\r\nHost: evil.test\r\n\
Proxy-Authorization: Basic dXNlcjpodW50ZXIy\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n"
        );
        let answer = exchange(proxy.addr, request.as_bytes()).await;
        assert_eq!(status(&answer), 200, "{answer}");
        assert_eq!(body(&answer), ORIGIN_BODY);
        let head = origin.last_head();
        assert!(head.starts_with("GET /path?token=s3cret HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Host: allowed.test:{port}\r\n")), "{head}");
        assert!(head.contains("X-Kept: yes\r\n"), "{head}");
        assert!(head.contains("Connection: close\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("proxy-"), "{head}");
        assert!(!head.contains("hunter2") && !head.contains("evil.test"), "{head}");

        let e = proxy.event().await;
        assert_eq!(e.via, Via::HttpForward);
        assert_eq!(e.host, "allowed.test");
        assert_eq!(e.port, port);
        assert_eq!(e.addr, Some(SocketAddr::new(LOCALHOST, port)));
        assert_eq!(e.rule.as_deref(), Some(format!("allowed.test:{port}").as_str()));
        assert_eq!(e.outcome, Outcome::Allowed);
        assert_eq!(e.bytes_up, head.len() as u64, "the rewritten head is what went up");
        assert_eq!(e.bytes_down, origin_response_len());
        assert!(e.client.is_some_and(|c| c.ip() == LOCALHOST));
        assert!(e.duration < Duration::from_secs(20));
        let shown = format!("{e:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
    })
    .await;
}

#[tokio::test]
async fn http_forward_streams_a_request_body_both_ways() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let payload: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut request = format!(
            "POST http://allowed.test:{port}/up HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        request.extend_from_slice(&payload);
        let answer = exchange(proxy.addr, &request).await;
        assert_eq!(status(&answer), 200);
        let got = body(&answer);
        assert_eq!(got.len(), ORIGIN_BODY.len() + payload.len());
        assert!(got.ends_with(std::str::from_utf8(&payload[payload.len() - 100..]).expect("ascii")));
        let e = proxy.event().await;
        assert_eq!(e.bytes_up, (origin.last_head().len() + payload.len()) as u64);
        assert!(e.bytes_down > payload.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn connect_tunnel_reaches_the_origin() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let (head, tunnel) = connect_tunnel(proxy.addr, &format!("allowed.test:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let answer = get_through(tunnel).await;
        assert_eq!(body(&answer), ORIGIN_BODY);
        assert_eq!(
            origin.last_head(),
            "GET /through HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
        );
        let e = proxy.event().await;
        assert_eq!(e.via, Via::Connect);
        assert_eq!((e.host.as_str(), e.port), ("allowed.test", port));
        assert_eq!(e.outcome, Outcome::Allowed);
        assert_eq!(e.bytes_up, origin.last_head().len() as u64);
        assert_eq!(e.bytes_down, origin_response_len());
    })
    .await;
}

#[tokio::test]
async fn connect_forwards_bytes_sent_before_the_200() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        // The CONNECT head and the first request in one write, as an eager TLS client does.
        let request = "GET /early HTTP/1.1\r\nHost: allowed.test\r\n\r\n";
        let both = format!("CONNECT 0x7f.1:{port} HTTP/1.1\r\n\r\n{request}");
        let answer = exchange(proxy.addr, both.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK"),
            "{answer}"
        );
        assert_eq!(origin.last_head(), request);
        let e = proxy.event().await;
        assert_eq!(e.host, "0x7f.1", "the host as asked; the address says what it meant");
        assert_eq!(e.addr, Some(SocketAddr::new(LOCALHOST, port)));
        assert_eq!(e.bytes_up, request.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn socks5_with_a_domain_name_or_an_address_reaches_the_origin() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let (code, s) = socks5(proxy.addr, SocksDest::Name("allowed.test"), port, 1).await;
        assert_eq!(code, socks::REPLY_SUCCEEDED);
        assert_eq!(body(&get_through(s).await), ORIGIN_BODY);
        let e = proxy.event().await;
        assert_eq!(e.via, Via::Socks5);
        assert_eq!(
            (e.host.as_str(), e.port, e.outcome.clone()),
            ("allowed.test", port, Outcome::Allowed)
        );
        assert_eq!(e.bytes_down, origin_response_len());

        let (code, s) = socks5(proxy.addr, SocksDest::V4(Ipv4Addr::LOCALHOST), port, 1).await;
        assert_eq!(code, socks::REPLY_SUCCEEDED);
        assert_eq!(body(&get_through(s).await), ORIGIN_BODY);
        let e = proxy.event().await;
        assert_eq!(e.host, "127.0.0.1");
        assert_eq!(e.rule.as_deref(), Some(format!("127.0.0.1:{port}").as_str()));
        assert_eq!(origin.accepted(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_name_not_on_the_list_is_refused_everywhere_and_never_looked_up() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let resolver = resolver_allowed();
        let mut proxy = Proxy::start(usual(port), resolver.clone(), Limits::default()).await;

        let answer = http_get(proxy.addr, &format!("http://denied.test:{port}/")).await;
        assert_eq!(status(&answer), 403, "{answer}");
        let why = body(&answer);
        assert!(
            why.contains(&format!("denied.test:{port} is not on the network allowlist")),
            "{why}"
        );
        assert!(why.contains(&format!("--allow-net denied.test:{port}")), "{why}");
        let e = proxy.event().await;
        assert_eq!(
            (e.via, e.host.as_str(), e.port),
            (Via::HttpForward, "denied.test", port)
        );
        assert!(
            matches!(&e.outcome, Outcome::Refused { reason } if why.contains(reason.as_str())),
            "{e:?}"
        );
        assert_eq!((e.rule, e.addr, e.bytes_up, e.bytes_down), (None, None, 0, 0));

        let (head, _) = connect_tunnel(proxy.addr, &format!("denied.test:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
        assert_eq!(proxy.event().await.via, Via::Connect);

        let (code, _) = socks5(proxy.addr, SocksDest::Name("denied.test"), port, 1).await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        assert!(matches!(proxy.event().await.outcome, Outcome::Refused { .. }));

        assert_eq!(origin.accepted(), 0, "the origin never saw a connection");
        assert_eq!(
            resolver.calls("denied.test"),
            0,
            "a name no rule allows is never resolved"
        );

        // Positive control: the allowed name through the same proxy.
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await;
        assert_eq!(status(&answer), 200);
        assert_eq!(origin.accepted(), 1);
        assert_eq!(resolver.calls("allowed.test"), 1);
    })
    .await;
}

#[tokio::test]
async fn a_refused_upload_still_reads_its_403() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        // The proxy answers after the head while the body is still coming, slowly: the
        // rest of the upload must not be met with a reset (a failed write, a lost answer).
        for (host, want) in [("denied.test", 403), ("allowed.test", 200)] {
            let chunk = vec![b'x'; 16 * 1024];
            let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
            let head = format!(
                "POST http://{host}:{port}/ HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                16 * chunk.len()
            );
            s.write_all(head.as_bytes()).await.expect("head");
            for i in 0..16 {
                tokio::time::sleep(Duration::from_millis(15)).await;
                s.write_all(&chunk)
                    .await
                    .unwrap_or_else(|e| panic!("{host}: chunk {i}: {e}"));
            }
            let mut answer = Vec::new();
            s.read_to_end(&mut answer)
                .await
                .unwrap_or_else(|e| panic!("{host}: read: {e}"));
            let answer = String::from_utf8_lossy(&answer);
            assert_eq!(status(&answer), want, "{host}");
        }
        assert_eq!(origin.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_different_port_is_refused() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let other = Origin::bind("127.0.0.1:0").await;
        let (port, other_port) = (origin.port(), other.port());
        let proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{other_port}/")).await;
        assert_eq!(status(&answer), 403, "{answer}");
        let (code, _) = socks5(proxy.addr, SocksDest::Name("allowed.test"), other_port, 1).await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        let (code, _) = socks5(proxy.addr, SocksDest::V4(Ipv4Addr::LOCALHOST), other_port, 1).await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        assert_eq!(other.accepted(), 0);

        // Positive control: the same port allowlisted.
        let both = rules(
            &[format!("allowed.test:{other_port}"), format!("127.0.0.1:{other_port}")],
            &[],
        );
        let proxy = Proxy::start(both, resolver_allowed(), Limits::default()).await;
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{other_port}/")).await;
        assert_eq!(status(&answer), 200, "{answer}");
        assert_eq!(other.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_name_resolving_to_loopback_needs_the_users_loopback_rule() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let name_only = rules(&[format!("allowed.test:{port}")], &[]);
        let mut proxy = Proxy::start(name_only, resolver_allowed(), Limits::default()).await;
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await;
        assert_eq!(status(&answer), 403, "{answer}");
        assert!(
            body(&answer).contains("resolves to 127.0.0.1, which is refused: loopback"),
            "{answer}"
        );
        assert!(
            body(&answer).contains(&format!("--allow-net 127.0.0.1:{port}")),
            "{answer}"
        );
        let e = proxy.event().await;
        assert_eq!(e.rule, None, "a special address refusal reports no allowing rule");
        let (code, _) = socks5(proxy.addr, SocksDest::Name("allowed.test"), port, 1).await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        let answer = http_get(proxy.addr, &format!("http://0x7f.1:{port}/")).await;
        assert_eq!(status(&answer), 403, "a loopback spelling is loopback: {answer}");
        assert_eq!(origin.accepted(), 0);

        // Positive control: the user's own loopback rule unlocks it, in any spelling.
        let proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await),
            200
        );
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://0x7f.1:{port}/")).await),
            200
        );
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://2130706433:{port}/")).await),
            200
        );
        assert_eq!(origin.accepted(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_package_rule_never_unlocks_loopback() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let package_loopback = rules(
            &[format!("allowed.test:{port}")],
            &[
                format!("127.0.0.1:{port}"),
                format!("127.0.0.0/8:{port}"),
                "0.0.0.0/0".to_string(),
            ],
        );
        let proxy = Proxy::start(package_loopback, resolver_allowed(), Limits::default()).await;
        for url in [
            format!("http://allowed.test:{port}/"),
            format!("http://127.0.0.1:{port}/"),
            format!("http://0177.0.0.1:{port}/"),
        ] {
            let answer = http_get(proxy.addr, &url).await;
            assert_eq!(status(&answer), 403, "{url}: {answer}");
            assert!(body(&answer).contains("a package's request never does"), "{answer}");
        }
        let (code, _) = socks5(proxy.addr, SocksDest::V4(Ipv4Addr::LOCALHOST), port, 1).await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        let (code, _) = socks5(
            proxy.addr,
            SocksDest::V6("::ffff:127.0.0.1".parse().expect("v6")),
            port,
            1,
        )
        .await;
        assert_eq!(code, socks::REPLY_NOT_ALLOWED);
        assert_eq!(origin.accepted(), 0);

        // Positive control: the same rule given by the user.
        let user = rules(&[format!("allowed.test:{port}"), format!("127.0.0.1:{port}")], &[]);
        let proxy = Proxy::start(user, resolver_allowed(), Limits::default()).await;
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://127.0.0.1:{port}/")).await),
            200
        );
        assert_eq!(origin.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn rebinding_connects_only_to_the_checked_address() {
    bounded(async {
        // The origin on 127.0.0.1:P (allowed by the user's rule) and a trap on 127.0.0.2:P
        // (loopback, not allowed). The name answers 127.0.0.1 first and 127.0.0.2 after.
        let (first, mut others) = bind_same_port(&["127.0.0.2"]).await;
        let origin = Origin::serve(first);
        let trap = Origin::serve(others.remove(0));
        let port = origin.port();
        let resolver = Arc::new(FakeResolver::new().with_sequence(
            "rebind.test",
            &[&[LOCALHOST], &[IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]],
        ));
        let allow = rules(&[format!("rebind.test:{port}"), format!("127.0.0.1:{port}")], &[]);
        let mut proxy = Proxy::start(allow, resolver.clone(), Limits::default()).await;

        let answer = http_get(proxy.addr, &format!("http://rebind.test:{port}/")).await;
        assert_eq!(status(&answer), 200, "{answer}");
        assert_eq!(
            resolver.calls("rebind.test"),
            1,
            "one lookup per connection, no second one"
        );
        assert_eq!(proxy.event().await.addr, Some(SocketAddr::new(LOCALHOST, port)));
        assert_eq!((origin.accepted(), trap.accepted()), (1, 0));

        // The next connection's lookup answers the rebound address: checked, refused.
        let (head, _) = connect_tunnel(proxy.addr, &format!("rebind.test:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert_eq!(resolver.calls("rebind.test"), 2);
        assert_eq!(
            (origin.accepted(), trap.accepted()),
            (1, 0),
            "the trap is never connected"
        );
    })
    .await;
}

#[tokio::test]
async fn direct_listeners_map_their_local_address_to_the_destination() {
    bounded(async {
        // The origin on 127.0.0.1:P; direct listeners for port P on 127.0.0.2 (the
        // synthetic address of allowed.test), 127.0.0.3 (of denied.test) and 127.0.0.4 (no
        // name: judged as the address itself, not allowlisted).
        let (first, mut others) = bind_same_port(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]).await;
        let origin = Origin::serve(first);
        let port = origin.port();
        let names: std::collections::HashMap<Ipv4Addr, String> = [
            (Ipv4Addr::new(127, 0, 0, 2), "allowed.test".to_string()),
            (Ipv4Addr::new(127, 0, 0, 3), "denied.test".to_string()),
        ]
        .into();
        let mut proxy =
            Proxy::start_with_names(usual(port), resolver_allowed(), Arc::new(names), Limits::default()).await;
        let four = others.pop().expect("listener");
        let three = others.pop().expect("listener");
        let two = others.pop().expect("listener");
        let _tasks = [proxy.direct(two), proxy.direct(three), proxy.direct(four)];

        let answer = get_through(TcpStream::connect(("127.0.0.2", port)).await.expect("connect")).await;
        assert_eq!(body(&answer), ORIGIN_BODY, "{answer}");
        let e = proxy.event().await;
        assert_eq!(e.via, Via::Direct);
        assert_eq!((e.host.as_str(), e.port), ("allowed.test", port));
        assert_eq!(e.addr, Some(SocketAddr::new(LOCALHOST, port)));
        assert_eq!(e.outcome, Outcome::Allowed);
        assert_eq!(e.bytes_down, origin_response_len());
        assert_eq!(origin.accepted(), 1);

        for (ip, host) in [("127.0.0.3", "denied.test"), ("127.0.0.4", "127.0.0.4")] {
            let answer = get_through(TcpStream::connect((ip, port)).await.expect("connect")).await;
            assert_eq!(answer, "", "{ip}: a refused direct connection is closed");
            let e = proxy.event().await;
            assert_eq!((e.via, e.host.as_str()), (Via::Direct, host));
            assert!(matches!(e.outcome, Outcome::Refused { .. }), "{e:?}");
        }
        assert_eq!(
            origin.accepted(),
            1,
            "refused direct connections never reach the origin"
        );
    })
    .await;
}

#[tokio::test]
async fn oversize_request_heads_are_refused_with_431() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let big = format!(
            "GET http://allowed.test:{port}/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "x".repeat(20 * 1024)
        );
        let answer = exchange(proxy.addr, big.as_bytes()).await;
        assert_eq!(status(&answer), 431, "{answer}");
        assert!(body(&answer).contains("larger than 16384 bytes"), "{answer}");
        assert!(matches!(proxy.event().await.outcome, Outcome::Refused { .. }));
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        let answer = exchange(
            proxy.addr,
            format!("GET http://allowed.test:{port}/ HTTP/1.1\r\n{many}\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status(&answer), 431, "{answer}");
        assert_eq!(origin.accepted(), 0);

        // Positive control: an 8 KiB header is fine.
        let fine = format!(
            "GET http://allowed.test:{port}/ HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "x".repeat(8 * 1024)
        );
        assert_eq!(status(&exchange(proxy.addr, fine.as_bytes()).await), 200);
        assert_eq!(origin.accepted(), 1);
    })
    .await;
}

#[tokio::test]
async fn the_connection_limit_closes_excess_connections() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), limits).await;
        let holder = TcpStream::connect(proxy.addr).await.expect("connect");
        while proxy.egress.open_connections() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await;
        assert_eq!(answer, "", "the excess connection is closed without an answer");
        let e = proxy.event().await;
        assert!(
            matches!(&e.outcome, Outcome::Refused { reason } if reason.contains("connection limit reached (1 open")),
            "{e:?}"
        );
        assert_eq!(origin.accepted(), 0);

        // Positive control: once the first connection is gone, the next one goes through.
        drop(holder);
        let _ = proxy.event().await;
        while proxy.egress.open_connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let answer = http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await;
        assert_eq!(status(&answer), 200, "{answer}");
    })
    .await;
}

#[tokio::test]
async fn a_slow_request_head_times_out_with_408() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let proxy = Proxy::start(usual(port), resolver_allowed(), limits).await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(format!("GET http://allowed.test:{port}/ HTTP/1.1\r\n").as_bytes())
            .await
            .expect("write");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer).await;
        assert_eq!(status(&answer), 408, "{answer}");
        assert_eq!(origin.accepted(), 0);
        // Positive control: a complete head in time.
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await),
            200
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_tunnel_is_closed() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let limits = Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let mut proxy = Proxy::start(usual(port), resolver_allowed(), limits).await;
        let (head, mut idle) = connect_tunnel(proxy.addr, &format!("allowed.test:{port}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let started = tokio::time::Instant::now();
        let mut rest = Vec::new();
        let _ = idle.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "closed only after the idle time"
        );
        let e = proxy.event().await;
        assert_eq!((e.outcome, e.bytes_up, e.bytes_down), (Outcome::Allowed, 0, 0));
        // Positive control: an active tunnel under the same limits completes.
        let (_, tunnel) = connect_tunnel(proxy.addr, &format!("allowed.test:{port}")).await;
        assert_eq!(body(&get_through(tunnel).await), ORIGIN_BODY);
    })
    .await;
}

#[tokio::test]
async fn failures_after_an_allowed_decision_are_502_and_socks_host_unreachable() {
    bounded(async {
        // A port nobody listens on: bind, note, drop.
        let closed_port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let allow = rules(
            &[
                format!("allowed.test:{closed_port}"),
                format!("127.0.0.1:{closed_port}"),
                format!("unknown.test:{closed_port}"),
            ],
            &[],
        );
        let mut proxy = Proxy::start(allow, resolver_allowed(), Limits::default()).await;
        let answer = http_get(proxy.addr, &format!("http://unknown.test:{closed_port}/")).await;
        assert_eq!(status(&answer), 502, "{answer}");
        assert!(body(&answer).contains("resolving unknown.test failed"), "{answer}");
        let e = proxy.event().await;
        assert!(matches!(e.outcome, Outcome::Failed { .. }), "{e:?}");
        assert_eq!(e.rule.as_deref(), Some(format!("unknown.test:{closed_port}").as_str()));
        let (code, _) = socks5(proxy.addr, SocksDest::Name("unknown.test"), closed_port, 1).await;
        assert_eq!(code, socks::REPLY_HOST_UNREACHABLE);
        let _ = proxy.event().await;

        let answer = http_get(proxy.addr, &format!("http://allowed.test:{closed_port}/")).await;
        assert_eq!(status(&answer), 502, "{answer}");
        assert!(body(&answer).contains("connecting to 127.0.0.1:"), "{answer}");
        let e = proxy.event().await;
        assert_eq!(e.addr, Some(SocketAddr::new(LOCALHOST, closed_port)));
        let (code, _) = socks5(proxy.addr, SocksDest::Name("allowed.test"), closed_port, 1).await;
        assert_eq!(code, socks::REPLY_CONNECTION_REFUSED);
    })
    .await;
}

#[tokio::test]
async fn a_hanging_resolver_costs_one_connection_its_timeout() {
    bounded(async {
        let limits = Limits {
            resolve_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let proxy = Proxy::start(
            rules(&["slow.test:80".to_string()], &[]),
            Arc::new(HangingResolver),
            limits,
        )
        .await;
        let answer = http_get(proxy.addr, "http://slow.test/").await;
        assert_eq!(status(&answer), 502, "{answer}");
        assert!(body(&answer).contains("timed out"), "{answer}");
    })
    .await;
}

#[tokio::test]
async fn malformed_requests_are_refused_with_a_reason() {
    bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let table = [
            (
                format!("GET /local HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n"),
                400,
                "absolute URI",
            ),
            (
                format!("GET https://allowed.test:{port}/ HTTP/1.1\r\n\r\n"),
                400,
                "CONNECT",
            ),
            (format!("GET http://a..test:{port}/ HTTP/1.1\r\n\r\n"), 400, "not valid"),
            (
                format!("GET http://%61llowed.test:{port}/ HTTP/1.1\r\n\r\n"),
                400,
                "not valid",
            ),
            ("CONNECT allowed.test HTTP/1.1\r\n\r\n".to_string(), 400, "host:port"),
            ("NOT HTTP AT ALL\r\n\r\n".to_string(), 400, "HTTP/1.x"),
        ];
        for (request, want, why) in table {
            let answer = exchange(proxy.addr, request.as_bytes()).await;
            assert_eq!(status(&answer), want, "{request:?}: {answer}");
            assert!(body(&answer).contains(why), "{request:?}: {answer}");
        }
        let (code, _) = socks5(proxy.addr, SocksDest::Name("allowed.test"), port, 2).await;
        assert_eq!(code, socks::REPLY_COMMAND_NOT_SUPPORTED, "BIND is not supported");
        assert_eq!(origin.accepted(), 0);
        // Positive control.
        assert_eq!(
            status(&http_get(proxy.addr, &format!("http://allowed.test:{port}/")).await),
            200
        );
    })
    .await;
}

#[tokio::test]
async fn socks5_without_the_no_auth_method_is_refused() {
    bounded(async {
        let proxy = Proxy::start(usual(1), resolver_allowed(), Limits::default()).await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(&[5, 1, 2]).await.expect("greeting: username/password only");
        let mut choice = [0u8; 2];
        s.read_exact(&mut choice).await.expect("answer");
        assert_eq!(choice, [5, 0xFF]);
    })
    .await;
}

#[test]
fn the_proxy_serves_concurrent_connections_on_a_current_thread_runtime() {
    // The supervisor's runtime: one thread; connections are tasks, not threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bounded(async {
        let origin = Origin::bind("127.0.0.1:0").await;
        let port = origin.port();
        let proxy = Proxy::start(usual(port), resolver_allowed(), Limits::default()).await;
        let (addr, url) = (proxy.addr, format!("http://allowed.test:{port}/"));
        let gets = (0..20).map(|_| {
            let url = url.clone();
            async move { http_get(addr, &url).await }
        });
        let answers = futures_join_all(gets).await;
        assert!(answers.iter().all(|a| status(a) == 200));
        assert_eq!(origin.accepted(), 20);
    }));
}

/// Run futures concurrently on the current task (no extra dependency for `join_all`).
async fn futures_join_all<F: Future<Output = String> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<String> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}
