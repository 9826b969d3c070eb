//! The client against a scripted HTTP server on 127.0.0.1 (ports the tests bind): no other
//! address is ever contacted. Redirect targets in special ranges are refused before any
//! connection, which is what those tests check.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// One scripted answer: status, extra headers, body.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

fn redirect(status: u16, to: &str) -> Answer {
    Answer {
        status,
        headers: vec![("Location".into(), to.into())],
        body: vec![],
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A server answering each path with its queue of answers (the last one repeats).
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(script: Vec<(&str, Vec<Answer>)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let script: Arc<Mutex<HashMap<String, Vec<Answer>>>> =
            Arc::new(Mutex::new(script.into_iter().map(|(p, a)| (p.to_owned(), a)).collect()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_by_server = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let method = line.split_whitespace().next().unwrap_or("").to_owned();
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let mut headers = HashMap::new();
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        if k == "content-length" {
                            length = v.parse().unwrap_or(0);
                        }
                        headers.insert(k, v);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                seen_by_server.lock().unwrap().push(Seen {
                    method,
                    path: path.clone(),
                    headers,
                    body,
                });
                let a = {
                    let mut script = script.lock().unwrap();
                    let key = path.split('?').next().unwrap_or("").to_owned();
                    match script.get_mut(&key) {
                        Some(q) if q.len() > 1 => q.remove(0),
                        Some(q) => q[0].clone(),
                        None => answer(404, r#"{"error":"not_found","message":"no such thing"}"#),
                    }
                };
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    a.status,
                    a.body.len()
                );
                for (k, v) in &a.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&a.body);
            }
        });
        Server { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn resolve_body() -> String {
    format!(
        r#"{{"package":"acme/hello","ref":"1.2.3","resolved":{{"version":"1.2.3","status":"published",
        "certification_level":1,"manifest":{{"digest":"{D1}"}},"bundle":{{"digest":"{D2}","size_bytes":5}}}}}}"#
    )
}

#[test]
fn resolves_fetches_and_says_who_it_is() {
    let server = Server::start(vec![
        ("/v1/org/acme/mcps/hello/resolve", vec![answer(200, &resolve_body())]),
        (
            &format!("/v1/org/acme/artifacts/{D2}/bundle"),
            vec![answer(200, "bytes")],
        ),
    ]);
    let registry = Registry::new(&server.url(), Some("tok-123".into())).unwrap();
    let answer = registry.resolve("acme", "hello", "1.2.3").unwrap();
    assert_eq!(answer.resolved.bundle.digest.as_str(), D2);
    let mut body = String::new();
    registry
        .artifact("acme", Artifact::Bundle, &answer.resolved.bundle.digest)
        .unwrap()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "bytes");
    let seen = server.seen();
    assert_eq!(seen[0].path, "/v1/org/acme/mcps/hello/resolve?ref=1.2.3");
    for s in &seen {
        assert_eq!(s.headers["user-agent"], format!("mcp-j/{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(
            s.headers["authorization"], "Bearer tok-123",
            "its own origin gets the token"
        );
    }
}

#[test]
fn error_bodies_are_read_bounded_and_their_message_shown() {
    let long = "x".repeat(100_000);
    let server = Server::start(vec![
        (
            "/v1/org/acme/mcps/gone/resolve",
            vec![answer(
                404,
                r#"{"error":"not_found","message":"acme/gone has no version 9"}"#,
            )],
        ),
        ("/v1/org/acme/mcps/big/resolve", vec![answer(400, &long)]),
    ]);
    let registry = Registry::new(&server.url(), None).unwrap();
    let err = registry.resolve("acme", "gone", "9").unwrap_err().to_string();
    assert!(
        err.contains("HTTP 404 (not_found): acme/gone has no version 9"),
        "{err}"
    );
    let err = registry.resolve("acme", "big", "1").unwrap_err().to_string();
    assert!(err.contains("HTTP 400") && err.len() < 1000, "{}", err.len());
}

#[test]
fn artifacts_are_retried_on_5xx_and_429_and_resolve_is_not() {
    let path = format!("/v1/org/acme/artifacts/{D2}/bundle");
    let mut busy = answer(429, "{}");
    busy.headers.push(("Retry-After".into(), "0".into()));
    let server = Server::start(vec![
        (&path, vec![answer(503, "{}"), busy, answer(200, "ok")]),
        (
            "/v1/org/acme/mcps/hello/resolve",
            vec![answer(502, "{}"), answer(200, &resolve_body())],
        ),
    ]);
    let registry = Registry::new(&server.url(), None).unwrap();
    let mut body = String::new();
    registry
        .artifact("acme", Artifact::Bundle, &D2.parse().unwrap())
        .unwrap()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "ok");
    assert_eq!(server.seen().iter().filter(|s| s.path == path).count(), 3);
    let err = registry.resolve("acme", "hello", "1.2.3").unwrap_err().to_string();
    assert!(err.contains("HTTP 502"), "{err}");
}

#[test]
fn the_token_never_follows_a_redirect_to_another_origin() {
    let other = Server::start(vec![("/blob", vec![answer(200, "from elsewhere")])]);
    // Same host, another port: another origin.
    let path = format!("/v1/org/acme/artifacts/{D1}/manifest");
    let to = format!("{}/blob", other.url());
    let server = Server::start(vec![(&path, vec![redirect(302, &to)])]);
    let registry = Registry::new(&server.url(), Some("tok-secret".into())).unwrap();
    let mut body = String::new();
    registry
        .artifact("acme", Artifact::Manifest, &D1.parse().unwrap())
        .unwrap()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "from elsewhere");
    assert_eq!(server.seen()[0].headers["authorization"], "Bearer tok-secret");
    assert!(
        !other.seen()[0].headers.contains_key("authorization"),
        "{:?}",
        other.seen()
    );
    // A relative redirect stays on the origin, and keeps the token.
    let server = Server::start(vec![
        (&path, vec![redirect(307, "/elsewhere")]),
        ("/elsewhere", vec![answer(200, "here")]),
    ]);
    let registry = Registry::new(&server.url(), Some("tok".into())).unwrap();
    let mut body = String::new();
    registry
        .artifact("acme", Artifact::Manifest, &D1.parse().unwrap())
        .unwrap()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "here");
    assert_eq!(server.seen()[1].headers["authorization"], "Bearer tok");
}

#[test]
fn redirects_to_plain_http_or_special_addresses_are_refused_unfollowed() {
    let path = format!("/v1/org/acme/artifacts/{D1}/manifest");
    for to in [
        "http://registry.example/blob",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/blob",
        "https://[fd00::1]/blob",
        "https://[::ffff:192.168.1.1]/blob",
        "ftp://registry.example/blob",
    ] {
        let server = Server::start(vec![(&path, vec![redirect(302, to)])]);
        let registry = Registry::new(&server.url(), None).unwrap();
        let err = match registry.artifact("acme", Artifact::Manifest, &D1.parse().unwrap()) {
            Ok(_) => panic!("{to}: followed"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("refused to follow a redirect"), "{to}: {err}");
        assert_eq!(server.seen().len(), 1, "{to}: nothing else asked");
    }
}

#[test]
fn only_https_or_loopback_registries() {
    for ok in [
        "https://registry.example",
        "http://127.0.0.1:8080",
        "http://[::1]:9",
        "http://localhost:1/",
    ] {
        assert!(Registry::new(ok, None).is_ok(), "{ok}");
    }
    for bad in [
        "http://registry.example",
        "ftp://registry.example",
        "registry.example",
        "https://user:pw@registry.example",
        "https://",
        "https://registry.example:notaport",
    ] {
        let err = Registry::new(bad, None)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"))
            .to_string();
        assert!(err.starts_with(&format!("registry `{bad}`")), "{err}");
    }
}

#[test]
fn urls_join_and_segments_encode() {
    assert_eq!(join("https://r.example/a/b?x=1", "c"), "https://r.example/a/c");
    assert_eq!(join("https://r.example/a/b", "/z"), "https://r.example/z");
    assert_eq!(
        join("https://r.example/a/b", "https://o.example/y"),
        "https://o.example/y"
    );
    assert_eq!(join("https://r.example/a/b", "ftp://o.example/y"), "ftp://o.example/y");
    assert_eq!(encode("sha256:ab/../x y"), "sha256%3Aab%2F..%2Fx%20y");
    assert_eq!(encode("1.2.3-rc.1"), "1.2.3-rc.1");
}

#[test]
fn pushes_send_the_bytes_and_the_token_and_show_the_registrys_refusal() {
    let bundle_path = format!("/v1/org/acme/artifacts/{D2}/bundle");
    let server = Server::start(vec![
        (&bundle_path, vec![answer(201, "")]),
        (
            "/v1/org/acme/mcps/hello/versions",
            vec![
                answer(201, "{}"),
                answer(
                    409,
                    r#"{"error":"conflict","message":"acme/hello 1.2.3 exists with other content"}"#,
                ),
            ],
        ),
    ]);
    let registry = Registry::new(&server.url(), Some("push-tok".into())).unwrap();
    registry
        .put_artifact("acme", Artifact::Bundle, &D2.parse().unwrap(), b"tarball")
        .unwrap();
    registry
        .create_version("acme", "hello", "1.2.3", &D1.parse().unwrap(), Some("abc"))
        .unwrap();
    let err = registry
        .create_version("acme", "hello", "1.2.3", &D1.parse().unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 409 (conflict): acme/hello 1.2.3 exists with other content"),
        "{err}"
    );
    let seen = server.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, b"tarball");
    assert_eq!(seen[0].headers["authorization"], "Bearer push-tok");
    assert_eq!(seen[1].method, "POST");
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body["version"], "1.2.3");
    assert_eq!(body["manifest_digest"], D1);
    assert_eq!(body["git_sha"], "abc");
}

/// ureq resolves on a detached thread whenever a timeout reaches the lookup, and `mcp-j run`
/// forks its jail helper after talking to the registry: that thread, still exiting, made the
/// fork refuse ("a jail was started while 2 threads ran"). No timeout may reach the lookup.
#[test]
fn the_client_resolves_names_on_the_calling_thread() {
    let registry = Registry::new("http://127.0.0.1:1", None).unwrap();
    let timeouts = registry.agent.config().timeouts();
    assert_eq!(timeouts.global, None, "a global timeout makes ureq resolve on a thread");
    assert_eq!(
        timeouts.per_call, None,
        "a per-call timeout makes ureq resolve on a thread"
    );
    assert_eq!(
        timeouts.resolve, None,
        "a resolve timeout makes ureq resolve on a thread"
    );
    assert!(timeouts.connect.is_some() && timeouts.recv_body.is_some());
}
