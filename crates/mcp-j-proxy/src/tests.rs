//! Session tests: `run_proxy` between a fake client and a fake server over in-memory
//! pipes, one test per rule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

use crate::codec::{LineReader, READ_CHUNK};
use crate::proxy::run_readers;
use crate::{Decision, Direction, Ended, EventSink, MessageKind, ProxyConfig, ProxyError, ProxyEvent};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Recorder(Mutex<Vec<ProxyEvent>>);

impl EventSink for Recorder {
    fn event(&self, event: &ProxyEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

struct Harness {
    /// We are the client: write here (the proxy's stdin).
    client_tx: Option<DuplexStream>,
    /// What the proxy writes to the client (its stdout).
    client_rx: BufReader<DuplexStream>,
    /// We are the server: what the proxy writes to its stdin.
    server_rx: BufReader<DuplexStream>,
    /// The server's stdout.
    server_tx: Option<DuplexStream>,
    /// The server's stderr.
    err_tx: Option<DuplexStream>,
    log: Arc<Mutex<Vec<u8>>>,
    events: Arc<Recorder>,
    task: JoinHandle<Result<Ended, ProxyError>>,
}

/// The test's ends of the pipes around the proxy of `proxy_over_pipes`: the test plays
/// the client and the server.
struct ProxyEnds {
    /// We are the client: write here (the proxy's stdin).
    client_tx: DuplexStream,
    /// What the proxy writes to the client (its stdout).
    client_rx: DuplexStream,
    /// We are the server: what the proxy writes to its stdin.
    server_rx: DuplexStream,
    /// The server's stdout.
    server_tx: DuplexStream,
    /// The server's stderr.
    err_tx: DuplexStream,
    /// The proxy's own log (mcp-j's stderr).
    log_rx: DuplexStream,
}

/// `run_proxy` over in-memory pipes that hold `pipe` bytes each (the server's stderr
/// `err_pipe`, the log 64 KiB), to spawn, and the test's ends of those pipes.
fn proxy_over_pipes(
    config: ProxyConfig,
    pipe: usize,
    err_pipe: usize,
    events: Arc<dyn EventSink>,
    pins: Option<Arc<dyn crate::ToolPins>>,
) -> (
    ProxyEnds,
    impl Future<Output = Result<Ended, ProxyError>> + Send + 'static,
) {
    let (client_tx, proxy_client_in) = tokio::io::duplex(pipe);
    let (proxy_client_out, client_rx) = tokio::io::duplex(pipe);
    let (proxy_server_in, server_rx) = tokio::io::duplex(pipe);
    let (server_tx, proxy_server_out) = tokio::io::duplex(pipe);
    let (err_tx, proxy_server_err) = tokio::io::duplex(err_pipe);
    let (proxy_log, log_rx) = tokio::io::duplex(64 * 1024);
    let proxy = async move {
        crate::run_proxy_with_pins(
            &config,
            proxy_client_in,
            proxy_client_out,
            proxy_server_in,
            proxy_server_out,
            proxy_server_err,
            proxy_log,
            &*events,
            pins.as_deref(),
        )
        .await
    };
    let ends = ProxyEnds {
        client_tx,
        client_rx,
        server_rx,
        server_tx,
        err_tx,
        log_rx,
    };
    (ends, proxy)
}

fn start(config: ProxyConfig) -> Harness {
    start_with(config, None)
}

fn start_with(config: ProxyConfig, pins: Option<Arc<dyn crate::ToolPins>>) -> Harness {
    let events = Arc::new(Recorder::default());
    let (
        ProxyEnds {
            client_tx,
            client_rx,
            server_rx,
            server_tx,
            err_tx,
            mut log_rx,
        },
        proxy,
    ) = proxy_over_pipes(config, 64 * 1024, 64 * 1024, events.clone(), pins);
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match log_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    let task = tokio::spawn(proxy);
    Harness {
        client_tx: Some(client_tx),
        client_rx: BufReader::new(client_rx),
        server_rx: BufReader::new(server_rx),
        server_tx: Some(server_tx),
        err_tx: Some(err_tx),
        log,
        events,
        task,
    }
}

fn policy(allow: &[&str], deny: &[&str]) -> ProxyConfig {
    ProxyConfig {
        tools: crate::ToolPolicy::new(allow.iter().copied(), deny.iter().copied()),
        ..ProxyConfig::default()
    }
}

async fn read_line(r: &mut BufReader<DuplexStream>) -> Option<String> {
    let mut line = String::new();
    let n = tokio::time::timeout(WAIT, r.read_line(&mut line))
        .await
        .expect("timed out waiting for a line")
        .unwrap();
    if n == 0 {
        return None;
    }
    assert!(line.ends_with('\n'), "line not terminated: {line:?}");
    line.pop();
    Some(line)
}

impl Harness {
    async fn client_send(&mut self, line: &str) {
        self.client_send_bytes(line.as_bytes()).await;
    }

    async fn client_send_bytes(&mut self, bytes: &[u8]) {
        let tx = self.client_tx.as_mut().unwrap();
        tx.write_all(bytes).await.unwrap();
        tx.write_all(b"\n").await.unwrap();
    }

    /// Sends `bytes` as one line the proxy cannot parse: the client's answer must be a
    /// parse error (-32700) with a null id. Returns that answer.
    async fn client_send_not_json(&mut self, bytes: &[u8]) -> Value {
        self.client_send_bytes(bytes).await;
        let r = self.client_json().await;
        assert_eq!((error_code(&r), r["id"].clone()), (-32700, Value::Null), "{r}");
        r
    }

    async fn server_send(&mut self, line: &str) {
        let tx = self.server_tx.as_mut().unwrap();
        tx.write_all(line.as_bytes()).await.unwrap();
        tx.write_all(b"\n").await.unwrap();
    }

    /// The next line the client receives, raw.
    async fn client_raw(&mut self) -> String {
        read_line(&mut self.client_rx).await.expect("client output ended")
    }

    async fn client_json(&mut self) -> Value {
        let line = self.client_raw().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client got non-JSON {line:?}: {e}"))
    }

    /// The next line the server receives, raw.
    async fn server_raw(&mut self) -> String {
        read_line(&mut self.server_rx).await.expect("server input ended")
    }

    async fn server_json(&mut self) -> Value {
        let line = self.server_raw().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("server got non-JSON {line:?}: {e}"))
    }

    /// Asserts that the next thing the server receives is a fresh ping (so whatever was
    /// sent before it never reached the server).
    async fn server_sees_only_sentinel(&mut self, id: u64) {
        let ping = format!(r#"{{"jsonrpc":"2.0","id":"sentinel-{id}","method":"ping"}}"#);
        self.client_send(&ping).await;
        assert_eq!(
            self.server_raw().await,
            ping,
            "the server saw something before the sentinel"
        );
    }

    /// Asserts that the next thing the client receives is a fresh server notification.
    async fn client_sees_only_sentinel(&mut self, n: u64) {
        let note = format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"n":{n}}}}}"#);
        self.server_send(&note).await;
        assert_eq!(
            self.client_raw().await,
            note,
            "the client saw something before the sentinel"
        );
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    fn events(&self) -> Vec<ProxyEvent> {
        self.events.0.lock().unwrap().clone()
    }

    /// The `tool_hidden` events so far.
    fn hidden_events(&self) -> Vec<ProxyEvent> {
        self.events()
            .into_iter()
            .filter(|e| matches!(e.decision, Decision::ToolHidden { .. }))
            .collect()
    }

    /// How many messages going `direction` the proxy dropped, by its events.
    fn drops(&self, direction: Direction) -> usize {
        self.events()
            .iter()
            .filter(|e| e.direction == direction && matches!(e.decision, Decision::Dropped { .. }))
            .count()
    }

    /// Closes the server's stdout (and stderr) and waits for the proxy to return.
    async fn server_exits(&mut self) -> Ended {
        self.server_tx = None;
        self.err_tx = None;
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("proxy did not return")
            .unwrap()
            .unwrap()
    }
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error response: {v}"))
}

// ----- client → server validation ----------------------------------------------------------

#[tokio::test]
async fn not_json_is_answered_32700_with_null_id_and_not_forwarded() {
    let mut h = start(ProxyConfig::default());
    h.client_send("this is not json").await;
    let r = h.client_json().await;
    assert_eq!(error_code(&r), -32700);
    assert_eq!(r["id"], Value::Null);
    assert_eq!(r["jsonrpc"], "2.0");
    h.client_send_not_json(br#"{"jsonrpc":"2.0","id":1,"method":"x""#).await;
    h.server_sees_only_sentinel(1).await;
    let ev = h.events();
    assert!(
        ev.iter()
            .any(|e| e.kind == MessageKind::Invalid && matches!(e.decision, Decision::Rejected { code: -32700, .. }))
    );
}

#[tokio::test]
async fn invalid_utf8_is_answered_32700() {
    let mut h = start(ProxyConfig::default());
    h.client_send_not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}")
        .await;
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn bad_shape_is_answered_32600_with_the_id() {
    let mut h = start(ProxyConfig::default());
    for (line, id) in [
        (r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#, json!(5)),
        (r#"{"id":"abc","method":"ping"}"#, json!("abc")),
        (r#"{"jsonrpc":"2.0","id":6,"method":42}"#, json!(6)),
        (
            r#"{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"m"}}"#,
            json!(7),
        ),
        (r#"{"jsonrpc":"2.0","id":8,"method":"a","method":"b"}"#, json!(8)),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#, Value::Null),
        (r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#, Value::Null),
        (r#""just a string""#, Value::Null),
    ] {
        h.client_send(line).await;
        let r = h.client_json().await;
        assert_eq!(error_code(&r), -32600, "{line}");
        assert_eq!(r["id"], id, "{line}");
    }
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn batch_is_rejected() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#)
        .await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, Value::Null));
    assert!(r["error"]["message"].as_str().unwrap().contains("batch"));
    h.client_send("[]").await;
    assert_eq!(error_code(&h.client_json().await), -32600);
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn deep_nesting_is_rejected_32600() {
    let mut h = start(ProxyConfig::default());
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}1{}}}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    h.client_send(&deep).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, json!(3)));
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn oversize_client_line_is_discarded_answered_and_the_session_goes_on() {
    let mut h = start(ProxyConfig {
        max_message_bytes: 1024,
        ..ProxyConfig::default()
    });
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"p":"{}"}}}}"#,
        "a".repeat(200_000)
    );
    h.client_send(&big).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, Value::Null));
    // Exactly at the limit still passes.
    let pad = 1024 - r#"{"jsonrpc":"2.0","id":2,"method":"x","params":{"p":""}}"#.len();
    let exact = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"x","params":{{"p":"{}"}}}}"#,
        "b".repeat(pad)
    );
    assert_eq!(exact.len(), 1024);
    h.client_send(&exact).await;
    assert_eq!(h.server_raw().await, exact);
    assert!(
        h.events()
            .iter()
            .any(|e| e.kind == MessageKind::Oversize && e.bytes == big.len() as u64)
    );
}

#[tokio::test]
async fn crlf_and_blank_lines_are_tolerated() {
    let mut h = start(ProxyConfig::default());
    h.client_send_bytes(b"\r").await;
    h.client_send_bytes(b"").await;
    h.client_send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r")
        .await;
    assert_eq!(h.server_raw().await, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    h.server_send("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r").await;
    assert_eq!(h.client_raw().await, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
}

#[tokio::test]
async fn original_bytes_are_forwarded_byte_exact_both_ways() {
    let mut h = start(ProxyConfig::default());
    let req = r#"  { "method" : "tools/call", "jsonrpc":"2.0" ,"id":"a\u00e9", "params":{"name":"t","arguments":{"n":1.000000000000000000000001,"big":123456789012345678901234567890,"z":"\u2028","a":[ ]}} }  "#;
    h.client_send(req).await;
    assert_eq!(h.server_raw().await, req);
    let resp =
        r#"{"result":{"content":[{"type":"text","text":"é \ud83d\ude00"}],"n":1e400},"id":"aé","jsonrpc":"2.0"}"#;
    h.server_send(resp).await;
    assert_eq!(
        h.client_raw().await,
        resp,
        "a string id matches by value, whatever its escapes"
    );
    let ev = h.events();
    assert!(ev.iter().all(|e| e.decision == Decision::Forwarded), "{ev:?}");
}

// ----- server → client validation ----------------------------------------------------------

#[tokio::test]
async fn garbage_on_server_stdout_is_dropped_and_logged() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    h.server_raw().await;
    h.server_send("Server started on stdio!").await;
    h.server_send("\u{1b}[31mred\u{1b}[0m").await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{}"#).await;
    h.server_send(r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#).await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1}"#).await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    assert_eq!(h.client_raw().await, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    h.client_sees_only_sentinel(1).await;
    let log = h.log_text();
    assert_eq!(log.matches("dropped server output").count(), 5, "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape sequences from the server must not reach our stderr"
    );
    let drops = h.drops(Direction::ServerToClient);
    assert_eq!(drops, 5);
}

#[tokio::test]
async fn oversize_server_line_is_dropped_and_the_next_message_passes() {
    let mut h = start(ProxyConfig {
        max_message_bytes: 4096,
        ..ProxyConfig::default()
    });
    let big = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"d":"{}"}}}}"#,
        "x".repeat(100_000)
    );
    h.server_send(&big).await;
    h.client_sees_only_sentinel(1).await;
    assert!(h.log_text().contains("over the 4096-byte limit"));
    assert!(
        h.events()
            .iter()
            .any(|e| e.kind == MessageKind::Oversize && e.direction == Direction::ServerToClient)
    );
}

#[tokio::test]
async fn forged_response_ids_are_dropped() {
    let mut h = start(ProxyConfig::default());
    // Nothing pending: any response is forged.
    h.server_send(r#"{"jsonrpc":"2.0","id":99,"result":{"content":[]}}"#)
        .await;
    h.server_send(r#"{"jsonrpc":"2.0","id":99,"error":{"code":-1,"message":"x"}}"#)
        .await;
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    h.server_raw().await;
    // Same number, different type: not the same id.
    h.server_send(r#"{"jsonrpc":"2.0","id":"1","result":{}}"#).await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    assert_eq!(h.client_raw().await, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    // A second answer to the same request is forged too.
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"again":true}}"#)
        .await;
    h.client_sees_only_sentinel(1).await;
    assert_eq!(h.log_text().matches("no client request is pending").count(), 4);
}

#[tokio::test]
async fn ids_are_tracked_per_direction() {
    let mut h = start(ProxyConfig {
        server_requests: crate::ServerRequestPolicy::allow_all(),
        ..ProxyConfig::default()
    });
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    h.server_raw().await;
    // The server asks the client something with the same id.
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"method":"roots/list"}"#).await;
    assert_eq!(h.client_json().await["method"], "roots/list");
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"result":{"roots":[]}}"#).await;
    assert_eq!(h.server_json().await["result"], json!({"roots": []}));
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#).await;
    assert_eq!(h.client_json().await["result"], json!({"tools": []}));
    // A client response to nothing is dropped.
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn duplicate_pending_client_id_is_refused() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":4,"method":"slow"}"#).await;
    h.server_raw().await;
    h.client_send(r#"{"jsonrpc":"2.0","id":4,"method":"other"}"#).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, json!(4)));
    h.server_sees_only_sentinel(1).await;
}

// ----- tools -----------------------------------------------------------------------------------

#[tokio::test]
async fn denied_tool_call_is_answered_32602_and_never_reaches_the_server() {
    let mut h = start(policy(&[], &["delete_everything"]));
    h.client_send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_everything","arguments":{"path":"/secret/value"}}}"#).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32602, json!(7)));
    assert_eq!(r["error"]["message"], "tool not allowed");
    h.server_sees_only_sentinel(1).await;
    // A name the server doesn't have gets the very same answer (no oracle).
    let mut h2 = start(policy(&["echo"], &[]));
    h2.client_send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"no_such_tool"}}"#)
        .await;
    let r2 = h2.client_json().await;
    assert_eq!(r2, r);
    // An allowed one passes.
    let call = r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"m":"hi"}}}"#;
    h2.client_send(call).await;
    assert_eq!(h2.server_raw().await, call);

    let ev = h.events();
    let e = ev
        .iter()
        .find(|e| e.tool.as_deref() == Some("delete_everything"))
        .unwrap();
    assert!(matches!(e.decision, Decision::Rejected { code: -32602, .. }));
    let hash = e.args_sha256.as_deref().unwrap();
    assert_eq!(hash.len(), 64);
    let json = serde_json::to_string(e).unwrap();
    assert!(
        !json.contains("/secret/value"),
        "argument values must not appear in events"
    );
    // Canonical: key order and whitespace don't change the hash.
    assert_eq!(
        crate::session::canonical_sha256(r#"{ "b":1, "a":[true] }"#),
        crate::session::canonical_sha256(r#"{"a":[true],"b":1}"#)
    );
}

#[tokio::test]
async fn tool_call_name_tricks_are_refused() {
    let mut h = start(policy(&["echo"], &[]));
    // Names that two parsers could read differently: not a valid request at all.
    for params in [
        r#"{"name":"echo","name":"rm"}"#,
        r#"{"name":"echo","\u006eame":"rm"}"#,
        r#"{"name":"echo","n\udc00":"rm"}"#,
    ] {
        h.client_send(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#
        ))
        .await;
        assert_eq!(error_code(&h.client_json().await), -32600, "{params}");
    }
    for params in [r#"{"name":["rm"]}"#, r#"{"arguments":{}}"#, r#"{"name":"echo\ud800"}"#] {
        h.client_send(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#
        ))
        .await;
        assert_eq!(error_code(&h.client_json().await), -32602, "{params}");
    }
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn tools_list_is_filtered_on_every_page_and_after_list_changed() {
    let mut h = start(policy(&[], &["secret", "rm"]));
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"secret"},{"name":"b","description":"x"}],"nextCursor":"page2"}}"#).await;
    let r = h.client_json().await;
    assert_eq!(
        r["result"],
        json!({"tools":[{"name":"a","inputSchema":{"type":"object"}},{"name":"b","description":"x"}],"nextCursor":"page2"})
    );
    assert_eq!(r["id"], 1);
    h.client_send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"page2"}}"#)
        .await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"rm"},{"name":"c"},{"nameless":1},{"name":"a","name":"secret"}]}}"#).await;
    assert_eq!(h.client_json().await["result"], json!({"tools":[{"name":"c"}]}));
    // list_changed passes; the listing that follows is filtered too.
    h.server_send(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#)
        .await;
    assert_eq!(h.client_json().await["method"], "notifications/tools/list_changed");
    h.client_send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"secret"},{"name":"new"}]}}"#)
        .await;
    assert_eq!(h.client_json().await["result"], json!({"tools":[{"name":"new"}]}));
    // Nothing to remove: the original bytes.
    h.client_send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#).await;
    h.server_raw().await;
    let clean = r#"{"jsonrpc":"2.0","id":4,"result":{"tools":[ {"name":"a"} ]}}"#;
    h.server_send(clean).await;
    assert_eq!(h.client_raw().await, clean);
    let rewrites = h
        .events()
        .iter()
        .filter(|e| matches!(e.decision, Decision::Rewritten { .. }))
        .count();
    assert_eq!(rewrites, 3);
}

// ----- server → client requests and capabilities ---------------------------------------------

#[tokio::test]
async fn denied_server_requests_are_answered_by_the_proxy_and_never_reach_the_client() {
    let mut h = start(ProxyConfig::default());
    for (id, method) in [
        (1, "sampling/createMessage"),
        (2, "elicitation/create"),
        (3, "roots/list"),
    ] {
        h.server_send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{}}}}"#
        ))
        .await;
        let r = h.server_json().await;
        assert_eq!((error_code(&r), r["id"].clone()), (-32601, json!(id)), "{method}");
    }
    h.client_sees_only_sentinel(1).await;
    // ping from the server passes, and the client's answer gets back.
    h.server_send(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#).await;
    assert_eq!(h.client_json().await["method"], "ping");
    h.client_send(r#"{"jsonrpc":"2.0","id":"p","result":{}}"#).await;
    assert_eq!(h.server_json().await["id"], "p");
    let ev = h.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.decision, Decision::Rejected { code: -32601, .. }))
            .count(),
        3
    );
}

#[tokio::test]
async fn allowed_server_requests_pass() {
    let mut h = start(ProxyConfig {
        server_requests: crate::ServerRequestPolicy {
            sampling: true,
            elicitation: false,
            roots: false,
        },
        ..ProxyConfig::default()
    });
    let req = r#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{"messages":[]}}"#;
    h.server_send(req).await;
    assert_eq!(h.client_raw().await, req);
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"result":{"role":"assistant"}}"#)
        .await;
    assert_eq!(h.server_json().await["result"]["role"], "assistant");
}

#[tokio::test]
async fn denied_client_capabilities_are_stripped_from_initialize() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{}},"experimental":{"x":1.50}},"clientInfo":{"name":"c","version":"1"}}}"#).await;
    let sent = h.server_raw().await;
    assert_eq!(
        sent,
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"experimental":{"x":1.50}},"clientInfo":{"name":"c","version":"1"}}}"#
    );
    let ev = h.events();
    assert!(
        matches!(&ev[0].decision, Decision::Rewritten { what } if what.contains("elicitation, roots, sampling")),
        "{ev:?}"
    );
    // The response comes back as usual.
    h.server_send(r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"1"}}}"#).await;
    assert_eq!(h.client_json().await["result"]["serverInfo"]["name"], "s");
    // roots list_changed from the client is dropped while roots are denied.
    h.client_send(r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#)
        .await;
    h.server_sees_only_sentinel(1).await;
    // Duplicate capabilities keys (a parser differential) are refused.
    h.client_send(
        r#"{"jsonrpc":"2.0","id":9,"method":"initialize","params":{"capabilities":{},"capabilities":{"sampling":{}}}}"#,
    )
    .await;
    assert_eq!(error_code(&h.client_json().await), -32600);
    h.server_sees_only_sentinel(2).await;
}

#[tokio::test]
async fn capabilities_kept_when_allowed() {
    let mut h = start(ProxyConfig {
        server_requests: crate::ServerRequestPolicy::allow_all(),
        ..ProxyConfig::default()
    });
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{"roots":{},"sampling":{}}}}"#;
    h.client_send(init).await;
    assert_eq!(h.server_raw().await, init);
}

// ----- the 2026-07-28 era --------------------------------------------------------------------

#[tokio::test]
async fn stateless_era_messages_pass() {
    let mut h = start(policy(&[], &["secret"]));
    let discover = r#"{"jsonrpc":"2.0","id":"discover-1","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    h.client_send(discover).await;
    assert_eq!(h.server_raw().await, discover);
    let result = r#"{"jsonrpc":"2.0","id":"discover-1","result":{"resultType":"complete","supportedVersions":["2026-07-28","2025-11-25"],"capabilities":{"tools":{}},"serverInfo":{"name":"s","version":"1"},"ttlMs":3600000,"cacheScope":"public"}}"#;
    h.server_send(result).await;
    assert_eq!(h.client_raw().await, result);

    // A legacy server's answer to the probe passes too, so the client can fall back.
    h.client_send(r#"{"jsonrpc":"2.0","id":"discover-2","method":"server/discover"}"#)
        .await;
    h.server_raw().await;
    let legacy = r#"{"jsonrpc":"2.0","id":"discover-2","error":{"code":-32601,"message":"Method not found"}}"#;
    h.server_send(legacy).await;
    assert_eq!(h.client_raw().await, legacy);

    // Per-request _meta capabilities: denied ones are stripped, the rest kept byte-exact.
    h.client_send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_time","arguments":{"tz":"UTC"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}},"extensions":{"x":{}}}}}}"#).await;
    assert_eq!(
        h.server_raw().await,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_time","arguments":{"tz":"UTC"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{"x":{}}}}}}"#
    );
    // An input_required result asking for a denied feature becomes -32003.
    h.server_send(r#"{"jsonrpc":"2.0","id":5,"result":{"resultType":"input_required","inputRequests":{"who":{"method":"elicitation/create","params":{"message":"Your password?","requestedSchema":{}}}},"requestState":"opaque"}}"#).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32003, json!(5)));
    assert!(!r.to_string().contains("password"));
    // tools/list in the new era (resultType, ttlMs) is filtered like any other.
    h.client_send(r#"{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":6,"result":{"resultType":"complete","tools":[{"name":"secret"},{"name":"get_time"}],"ttlMs":0}}"#).await;
    assert_eq!(
        h.client_json().await["result"],
        json!({"resultType":"complete","tools":[{"name":"get_time"}],"ttlMs":0})
    );
    // requestState-only input_required results (no denied input) pass.
    h.client_send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_time"}}"#)
        .await;
    h.server_raw().await;
    let state_only = r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","requestState":"s"}}"#;
    h.server_send(state_only).await;
    assert_eq!(h.client_raw().await, state_only);
}

#[tokio::test]
async fn stateless_era_input_required_passes_when_allowed() {
    let mut h = start(ProxyConfig {
        server_requests: crate::ServerRequestPolicy {
            elicitation: true,
            ..Default::default()
        },
        ..ProxyConfig::default()
    });
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#)
        .await;
    h.server_raw().await;
    let r = r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"k":{"method":"elicitation/create","params":{}}}}}"#;
    h.server_send(r).await;
    assert_eq!(h.client_raw().await, r);
    // Escaped spelling of a denied method is still caught.
    h.client_send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"t"}}"#)
        .await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":2,"result":{"resultType":"input\u005frequired","inputRequests":{"k":{"method":"sampling\/createMessage"}}}}"#).await;
    assert_eq!(error_code(&h.client_json().await), -32003);
}

// ----- cancellation ----------------------------------------------------------------------------

#[tokio::test]
async fn cancelled_request_late_response_is_dropped() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"slow"}}"#)
        .await;
    h.server_raw().await;
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":11,"reason":"user"}}"#;
    h.client_send(cancel).await;
    assert_eq!(h.server_raw().await, cancel, "cancellation passes through");
    h.server_send(r#"{"jsonrpc":"2.0","id":11,"result":{"content":[]}}"#)
        .await;
    h.client_sees_only_sentinel(1).await;
    // The server cancels its own request; the client's late answer is dropped.
    let mut h = start(ProxyConfig {
        server_requests: crate::ServerRequestPolicy::allow_all(),
        ..ProxyConfig::default()
    });
    h.server_send(r#"{"jsonrpc":"2.0","id":"s1","method":"elicitation/create","params":{}}"#)
        .await;
    h.client_raw().await;
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"s1"}}"#;
    h.server_send(cancel).await;
    assert_eq!(h.client_raw().await, cancel);
    h.client_send(r#"{"jsonrpc":"2.0","id":"s1","result":{"action":"accept"}}"#)
        .await;
    h.server_sees_only_sentinel(1).await;
}

// ----- lifecycle -------------------------------------------------------------------------------

#[tokio::test]
async fn pending_requests_get_errors_when_the_server_exits() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#)
        .await;
    h.client_send(r#"{"jsonrpc":"2.0","id":"two","method":"resources/read","params":{"uri":"x"}}"#)
        .await;
    h.client_send(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).await;
    for _ in 0..3 {
        h.server_raw().await;
    }
    h.server_send(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).await;
    assert_eq!(h.client_json().await["id"], 3);
    let ended = h.server_exits().await;
    assert_eq!(ended, Ended::ServerClosedFirst);
    let a = h.client_json().await;
    let b = h.client_json().await;
    assert_eq!((error_code(&a), a["id"].clone()), (-32000, json!(1)));
    assert_eq!((error_code(&b), b["id"].clone()), (-32000, json!("two")));
    assert!(a["error"]["message"].as_str().unwrap().contains("exited"));
    let ev = h.events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.decision, Decision::Rejected { code: -32000, .. }))
            .count(),
        2
    );
}

#[tokio::test]
async fn client_eof_closes_server_stdin_and_server_output_still_flows() {
    let mut h = start(ProxyConfig::default());
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    h.server_raw().await;
    h.client_tx = None;
    assert_eq!(read_line(&mut h.server_rx).await, None, "server stdin must be closed");
    // The server answers while shutting down: the answer still reaches the client.
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    assert_eq!(h.client_json().await["id"], 1);
    assert!(!h.task.is_finished(), "the proxy runs until the server's stdout ends");
    assert_eq!(h.server_exits().await, Ended::ClientClosedFirst);
}

#[tokio::test]
async fn server_that_stops_reading_gets_requests_answered() {
    let mut h = start(ProxyConfig::default());
    // The server closes its stdin (drops our read end) but stays alive.
    let (dummy, _keep) = tokio::io::duplex(1);
    drop(std::mem::replace(&mut h.server_rx, BufReader::new(dummy)));
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#)
        .await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32000, json!(1)));
    h.client_send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32000, json!(2)));
    assert_eq!(h.server_exits().await, Ended::ServerClosedFirst);
}

#[tokio::test]
async fn server_stderr_is_relayed_prefixed_cut_and_sanitised() {
    let mut h = start(ProxyConfig {
        stderr_line_bytes: 32,
        ..ProxyConfig::default()
    });
    let err = h.err_tx.as_mut().unwrap();
    err.write_all(b"starting up\n").await.unwrap();
    err.write_all(format!("{}\n", "y".repeat(1000)).as_bytes())
        .await
        .unwrap();
    err.write_all(b"evil \x1b]0;title\x07 \xff done\n").await.unwrap();
    // stderr ending is not the end of the session.
    h.err_tx = None;
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    assert_eq!(h.client_json().await["id"], 1);
    h.server_exits().await;
    let log = h.log_text();
    assert!(log.contains("[server] starting up\n"), "{log}");
    assert!(
        log.contains(&format!(
            "[server] {} [mcp-j: line cut, 968 more bytes dropped]\n",
            "y".repeat(32)
        )),
        "{log}"
    );
    assert!(
        log.contains("[server] evil \\u{1b}]0;title\\u{7} \u{fffd} done\n"),
        "{log}"
    );
    assert!(!log.contains('\u{1b}'));
}

#[tokio::test]
async fn one_event_per_decision() {
    let mut h = start(policy(&[], &["x"]));
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{"a":1}}}"#)
        .await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#)
        .await;
    h.client_raw().await;
    h.client_send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#)
        .await;
    h.client_raw().await;
    h.client_send("garbage").await;
    h.client_raw().await;
    let ev = h.events();
    assert_eq!(ev.len(), 4, "{ev:?}");
    assert_eq!(ev[0].direction, Direction::ClientToServer);
    assert_eq!(ev[0].tool.as_deref(), Some("ok"));
    assert_eq!(
        ev[0].args_sha256.as_deref(),
        Some(crate::session::canonical_sha256(r#"{"a":1}"#).as_str())
    );
    assert_eq!(ev[1].direction, Direction::ServerToClient);
    assert_eq!(ev[1].kind, MessageKind::Response);
    assert_eq!(ev[1].method.as_deref(), Some("tools/call"));
    assert_eq!(ev[1].tool.as_deref(), Some("ok"));
    assert!(ev[1].duration.is_some());
    assert!(matches!(ev[2].decision, Decision::Rejected { code: -32602, .. }));
    assert_eq!(ev[3].kind, MessageKind::Invalid);
}

// ----- bounded memory and backpressure -----------------------------------------------------------

#[tokio::test]
async fn a_50_mib_line_from_the_server_is_streamed_through_in_bounded_memory() {
    let config = ProxyConfig {
        max_message_bytes: 1024 * 1024,
        ..ProxyConfig::default()
    };
    let (mut client_tx, proxy_client_in) = tokio::io::duplex(4096);
    let (proxy_client_out, client_rx) = tokio::io::duplex(4096);
    let (proxy_server_in, _server_rx) = tokio::io::duplex(4096);
    let (mut server_tx, proxy_server_out) = tokio::io::duplex(64 * 1024);
    let (_err_tx, proxy_server_err) = tokio::io::duplex(64);
    let (proxy_log, _log_rx) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..50 {
            server_tx.write_all(&chunk).await.unwrap();
        }
        server_tx.write_all(b"\n").await.unwrap();
        server_tx
    });
    let mut client = LineReader::new(proxy_client_in, config.max_message_bytes, false);
    let mut server_reader = LineReader::new(proxy_server_out, config.max_message_bytes, false);
    let mut stderr = LineReader::new(proxy_server_err, config.stderr_line_bytes, true);
    let proxy = run_readers(
        &config,
        &mut client,
        proxy_client_out,
        proxy_server_in,
        &mut server_reader,
        &mut stderr,
        proxy_log,
        &crate::NoEvents,
        None,
    );
    let driver = async {
        // The client never reads; the 50 MiB line goes through without it.
        let server_tx = server.await.unwrap();
        drop(server_tx);
        client_tx.shutdown().await.unwrap();
    };
    let (ended, ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(proxy, driver) })
        .await
        .expect("proxy stalled");
    ended.unwrap();
    drop(client_rx);
    // At most one limit's worth of line (held until it was known to be too long) plus
    // the read buffer, not 50 MiB.
    assert!(
        server_reader.peak_memory() <= READ_CHUNK + config.max_message_bytes,
        "server reader peak {} bytes",
        server_reader.peak_memory()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_the_proxy_reading_the_server() {
    let max = 64 * 1024;
    let config = ProxyConfig {
        max_message_bytes: max,
        ..ProxyConfig::default()
    };
    let (_client_tx, proxy_client_in) = tokio::io::duplex(4096);
    let (proxy_client_out, mut client_rx) = tokio::io::duplex(4096);
    let (proxy_server_in, _server_rx) = tokio::io::duplex(4096);
    let (mut server_tx, proxy_server_out) = tokio::io::duplex(4096);
    let (_err_tx, proxy_server_err) = tokio::io::duplex(64);
    let (proxy_log, _log_rx) = tokio::io::duplex(64 * 1024);
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    // A flood of max-size notifications.
    let line = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"d":"{}"}}}}"#,
        "z".repeat(max - 70)
    );
    assert!(line.len() <= max);
    let flood = tokio::spawn(async move {
        for _ in 0..1000 {
            server_tx.write_all(line.as_bytes()).await.unwrap();
            server_tx.write_all(b"\n").await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
        }
        server_tx
    });
    let mut client = LineReader::new(proxy_client_in, config.max_message_bytes, false);
    let mut server_reader = LineReader::new(proxy_server_out, config.max_message_bytes, false);
    let mut stderr = LineReader::new(proxy_server_err, config.stderr_line_bytes, true);
    {
        let proxy = run_readers(
            &config,
            &mut client,
            proxy_client_out,
            proxy_server_in,
            &mut server_reader,
            &mut stderr,
            proxy_log,
            &crate::NoEvents,
            None,
        );
        tokio::pin!(proxy);
        // Let it run while the client reads nothing.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut proxy).await;
        let stuck_at = written.load(Ordering::SeqCst);
        assert!(
            stuck_at < 10,
            "the server could write {stuck_at} max-size lines to a client that reads nothing"
        );
        assert!(!flood.is_finished());
        // Now the client reads: everything flows.
        let expected = 1000 * (line_len(max) + 1);
        let reader = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            while total < expected {
                match client_rx.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => total += n,
                }
            }
            total
        };
        let closer = async {
            let tx = flood.await.unwrap();
            drop(tx);
        };
        let (ended, total, ()) = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::join!(&mut proxy, reader, closer)
        })
        .await
        .expect("stalled");
        assert_eq!(ended.unwrap(), Ended::ServerClosedFirst);
        assert_eq!(total, expected);
    }
    assert!(server_reader.peak_memory() <= READ_CHUNK + max);
}

fn line_len(max: usize) -> usize {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"d":"{}"}}}}"#,
        "z".repeat(max - 70)
    )
    .len()
}

#[tokio::test]
async fn a_full_pending_table_pauses_the_client_instead_of_failing_requests() {
    let mut h = start(ProxyConfig {
        max_pending: 4,
        ..ProxyConfig::default()
    });
    for id in 0..20 {
        h.client_send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#))
            .await;
    }
    // The server sees at most 4 at a time, and every one of the 20 in the end.
    for expected in 0..20 {
        let request = h.server_json().await;
        assert_eq!(request["id"], expected);
        h.server_send(&format!(r#"{{"jsonrpc":"2.0","id":{expected},"result":{{}}}}"#))
            .await;
    }
    for expected in 0..20 {
        let reply = h.client_json().await;
        assert_eq!(reply["id"], expected);
        assert!(reply.get("error").is_none(), "{reply}");
    }
}

// ----- no direction waits on the other -------------------------------------------------------

/// A proxy (default policy) between a client and a server the test writes, over pipes of
/// 4 KiB, so that a large message fills a pipe and a proxy whose directions wait on each
/// other stalls.
struct SmallPipes {
    /// How many `tools/call echo` requests the client pipelines, without reading.
    calls: usize,
    /// Their `text` argument.
    argument: String,
    /// How many messages the client reads (while it writes), before it hangs up.
    replies: usize,
    /// The whole exchange, hang-up and exits included, must end within this, or the test
    /// fails as a deadlock.
    limit: Duration,
}

impl SmallPipes {
    /// Runs the exchange: `server` gets the requests the proxy forwards and the server's
    /// stdout, and returns what it counted (its stderr closes when it returns);
    /// `on_reply` sees each message the client reads, raw and parsed, and keeps its count
    /// in `tally`. Returns the client's tally, the server's count and how the proxy ended.
    async fn run<S, T>(
        self,
        server: impl FnOnce(Lines<BufReader<DuplexStream>>, DuplexStream) -> S,
        mut tally: T,
        mut on_reply: impl FnMut(&mut T, &str, Value) + Send + 'static,
    ) -> (T, S::Output, Ended)
    where
        S: Future + Send + 'static,
        S::Output: Send + 'static,
        T: Send + 'static,
    {
        let (
            ProxyEnds {
                mut client_tx,
                client_rx,
                server_rx,
                server_tx,
                err_tx,
                log_rx: _log_rx,
            },
            proxy,
        ) = proxy_over_pipes(ProxyConfig::default(), 4096, 64, Arc::new(crate::NoEvents), None);
        let SmallPipes {
            calls,
            argument,
            replies,
            limit,
        } = self;
        let serving = server(BufReader::new(server_rx).lines(), server_tx);
        let server = tokio::spawn(async move {
            let counted = serving.await;
            drop(err_tx);
            counted
        });
        let writer = tokio::spawn(async move {
            for id in 0..calls {
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": argument}}});
                client_tx.write_all(format!("{call}\n").as_bytes()).await.unwrap();
            }
            client_tx
        });
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(client_rx).lines();
            for _ in 0..replies {
                let line = lines.next_line().await.unwrap().expect("client output ended early");
                let reply: Value = serde_json::from_str(&line).unwrap();
                on_reply(&mut tally, &line, reply);
            }
            (tally, lines)
        });
        let proxy = tokio::spawn(proxy);
        tokio::time::timeout(limit, async {
            let (tally, _lines) = reader.await.unwrap();
            drop(writer.await.unwrap()); // the client hangs up: the server sees EOF and exits
            let counted = server.await.unwrap();
            let ended = proxy.await.unwrap().unwrap();
            (tally, counted, ended)
        })
        .await
        .unwrap_or_else(|_| panic!("the proxy deadlocked: the exchange did not end within {limit:?}"))
    }
}

/// Pipelined requests with large arguments to a server that, like most, answers one
/// request at a time and blocks writing its answer until it is read: with small pipes, the
/// proxy must keep reading the server's answers while its write of the next request waits
/// for the server's stdin to drain. (Before the outboxes, the writer to the server held a
/// lock the reader of the server needed, and the three pipes filled and stayed full.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_large_requests_through_small_pipes_all_come_back() {
    const REQUESTS: usize = 500;
    const ARGUMENT: usize = 20_000;
    // The server: read one request, write its answer (the same size), then the next.
    let server = |mut requests: Lines<BufReader<DuplexStream>>, mut out: DuplexStream| async move {
        let mut answered = 0usize;
        while let Some(line) = requests.next_line().await.unwrap() {
            let request: Value = serde_json::from_str(&line).unwrap();
            let text = request["params"]["arguments"]["text"].clone();
            let answer =
                json!({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [{"type": "text", "text": text}]}});
            out.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
            answered += 1;
        }
        answered
    };
    let (_, answered, ended) = SmallPipes {
        calls: REQUESTS,
        argument: "x".repeat(ARGUMENT),
        replies: REQUESTS,
        limit: Duration::from_secs(30),
    }
    .run(server, vec![false; REQUESTS], |seen, line, reply| {
        assert_eq!(
            reply["result"]["content"][0]["text"].as_str().map(str::len),
            Some(ARGUMENT),
            "{}",
            &line[..200.min(line.len())]
        );
        let id = reply["id"].as_u64().unwrap() as usize;
        assert!(!seen[id], "id {id} answered twice");
        seen[id] = true;
    })
    .await;
    assert_eq!((answered, ended), (REQUESTS, Ended::ClientClosedFirst));
}

/// The deterministic form of the case above: the server writes a megabyte of
/// notifications before it reads anything while the client pipelines large requests.
/// The write of the requests to the server must wait without stopping the proxy from
/// reading (and relaying) what the server writes meanwhile.
#[tokio::test]
async fn a_server_that_writes_before_it_reads_does_not_stall_a_pipelining_client() {
    const MESSAGES: usize = 50;
    const PAYLOAD: usize = 20_000;
    let payload = "y".repeat(PAYLOAD);
    let server_payload = payload.clone();
    let server = |mut requests: Lines<BufReader<DuplexStream>>, mut out: DuplexStream| async move {
        let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": server_payload}});
        for _ in 0..MESSAGES {
            out.write_all(format!("{note}\n").as_bytes()).await.unwrap();
        }
        let mut answered = 0usize;
        while let Some(line) = requests.next_line().await.unwrap() {
            let request: Value = serde_json::from_str(&line).unwrap();
            let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {}});
            out.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
            answered += 1;
        }
        answered
    };
    let ((notes, answers), answered, _) = SmallPipes {
        calls: MESSAGES,
        argument: payload,
        replies: 2 * MESSAGES,
        limit: Duration::from_secs(20),
    }
    .run(server, (0, 0), |(notes, answers), _, v| {
        if v["method"] == "notifications/message" {
            *notes += 1;
        } else {
            assert!(v.get("result").is_some(), "{v}");
            *answers += 1;
        }
    })
    .await;
    assert_eq!(((notes, answers), answered), ((MESSAGES, MESSAGES), MESSAGES));
}

// ----- policy applies whether or not a message has an id -----------------------------------

#[tokio::test]
async fn a_tools_call_notification_is_dropped_and_logged_whatever_the_tool() {
    let mut h = start(policy(&[], &["secret_tool"]));
    // The issue's bypass: the denied tool, called without an id.
    h.client_send(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"secret_tool","arguments":{}}}"#)
        .await;
    // Escaped spellings of the method name are the same method.
    h.client_send(r#"{"jsonrpc":"2.0","method":"tools\/call","params":{"name":"secret_tool"}}"#)
        .await;
    // An allowed tool without an id is not valid MCP either.
    h.client_send(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"t":1}}}"#)
        .await;
    // The other request methods the policy works on, as notifications.
    for method in [
        "tools/list",
        "server/discover",
        "initialize",
        "prompts/get",
        "prompts/list",
        "resources/templates/list",
    ] {
        h.client_send(&format!(
            r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"capabilities":{{"sampling":{{}}}}}}}}"#
        ))
        .await;
    }
    h.server_sees_only_sentinel(1).await;
    // Nothing was answered to the client either (notifications get no answer).
    h.client_sees_only_sentinel(1).await;
    let ev = h.events();
    let drops: Vec<&ProxyEvent> = ev
        .iter()
        .filter(|e| e.kind == MessageKind::Notification && matches!(e.decision, Decision::Dropped { .. }))
        .collect();
    assert_eq!(drops.len(), 9, "{ev:?}");
    assert_eq!(drops[0].tool.as_deref(), Some("secret_tool"));
    assert_eq!(drops[0].method.as_deref(), Some("tools/call"));
    assert_eq!(drops[2].tool.as_deref(), Some("echo"));
    assert!(drops[2].args_sha256.is_some());
    let log = h.log_text();
    assert_eq!(
        log.matches("dropped a client tools/call notification for tool `secret_tool`")
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("dropped a client tools/list notification"), "{log}");
    assert!(log.contains("dropped a client prompts/get notification"), "{log}");
    // The same call with an id is refused as before, and an allowed one with an id passes.
    h.client_send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"secret_tool"}}"#)
        .await;
    assert_eq!(error_code(&h.client_json().await), -32602);
    let call = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo"}}"#;
    h.client_send(call).await;
    assert_eq!(h.server_raw().await, call);
    // Other notifications pass.
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    h.client_send(note).await;
    assert_eq!(h.server_raw().await, note);
}

#[tokio::test]
async fn server_requests_sent_as_notifications_never_reach_the_client() {
    for server_requests in [
        crate::ServerRequestPolicy::default(),
        crate::ServerRequestPolicy::allow_all(),
    ] {
        let mut h = start(ProxyConfig {
            server_requests,
            ..ProxyConfig::default()
        });
        for method in [
            "sampling/createMessage",
            "elicitation/create",
            "roots/list",
            "elicitation\\/create",
        ] {
            h.server_send(&format!(
                r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"message":"Your GitHub token, please"}}}}"#
            ))
            .await;
        }
        h.client_sees_only_sentinel(1).await;
        // Nothing was sent back to the server: there is no id to answer.
        h.server_sees_only_sentinel(1).await;
        let drops = h.drops(Direction::ServerToClient);
        assert_eq!(drops, 4, "{server_requests:?}");
        assert_eq!(
            h.log_text().matches("it is a request method and needs an id").count(),
            4
        );
    }
}

// ----- the cases the contract leaves open (docs/CLI.md) ---------------------------------------

fn nested(id: u64, depth: usize) -> String {
    // The message object is level 1, so `params` adds `depth - 1` levels.
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"x","params":{}{}}}"#,
        "[".repeat(depth - 1),
        "]".repeat(depth - 1)
    )
}

#[tokio::test]
async fn edge_nesting_64_levels_pass_65_are_refused_with_the_id() {
    let mut h = start(ProxyConfig::default());
    let ok = nested(1, 64);
    h.client_send(&ok).await;
    assert_eq!(h.server_raw().await, ok);
    h.client_send(&nested(2, 65)).await;
    let r = h.client_json().await;
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, json!(2)));
    assert!(
        r["error"]["message"].as_str().unwrap().contains("deeper than 64"),
        "{r}"
    );
    // The id is read even far past the limit, wherever it is in the object.
    h.client_send(&format!(
        r#"{{"jsonrpc":"2.0","method":"x","params":{}1{},"id":"late"}}"#,
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    ))
    .await;
    assert_eq!(h.client_json().await["id"], "late");
    h.server_sees_only_sentinel(1).await;
    // From the server: dropped and logged, never relayed.
    let deep_note = format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{}{}}}"#,
        "[".repeat(64),
        "]".repeat(64)
    );
    h.server_send(&deep_note).await;
    h.client_sees_only_sentinel(1).await;
    assert!(h.log_text().contains("deeper than 64"), "{}", h.log_text());
}

#[tokio::test]
async fn edge_ids_over_1024_bytes_are_refused_in_both_directions() {
    let mut h = start(ProxyConfig::default());
    // 1024 bytes of id text (quotes included) is the limit and passes.
    let at_limit = format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#, "a".repeat(1022));
    h.client_send(&at_limit).await;
    assert_eq!(h.server_raw().await, at_limit);
    h.client_send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
        "b".repeat(1023)
    ))
    .await;
    let r = h.client_json().await;
    // The id cannot be echoed (it is what is wrong), so the answer carries null.
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, Value::Null));
    assert_eq!(r["error"]["message"], "id longer than 1024 bytes");
    let long_number = format!(r#"{{"jsonrpc":"2.0","id":{},"method":"ping"}}"#, "9".repeat(40));
    h.client_send(&long_number).await;
    assert_eq!(
        error_code(&h.client_json().await),
        -32600,
        "integers past 30 digits too"
    );
    h.server_sees_only_sentinel(1).await;
    // A server request with such an id cannot be answered: dropped, not relayed.
    h.server_send(&format!(
        r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
        "c".repeat(2000)
    ))
    .await;
    h.client_sees_only_sentinel(1).await;
    h.server_sees_only_sentinel(2).await;
}

#[tokio::test]
async fn edge_lone_surrogates_pass_in_values_and_are_refused_where_the_proxy_reads() {
    let mut h = start(policy(&[], &["secret"]));
    // In a value the proxy does not read: forwarded byte for byte (both ways).
    let call =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"t":"\ud800 \udc00x"}}}"#;
    h.client_send(call).await;
    assert_eq!(h.server_raw().await, call);
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"\ud800"}]}}"#;
    h.server_send(answer).await;
    assert_eq!(h.client_raw().await, answer);
    // Where the proxy decodes a string to decide, it is refused: the proxy and the peer
    // could read different names.
    for (line, code, id) in [
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools\ud800/call","params":{}}"#,
            -32600,
            json!(2),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"\udc00","method":"ping"}"#,
            -32600,
            Value::Null,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"ping","x\ud800":1}"#,
            -32600,
            Value::Null,
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"ping","params":{"k\ud800":1}}"#,
            -32600,
            json!(5),
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"secret\ud800"}}"#,
            -32602,
            json!(6),
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"capabilities":{"sampling":{},"x\ud800":{}}}}"#,
            -32600,
            json!(7),
        ),
    ] {
        h.client_send(line).await;
        let r = h.client_json().await;
        assert_eq!((error_code(&r), r["id"].clone()), (code, id), "{line}");
    }
    h.server_sees_only_sentinel(1).await;
    // From the server, a lone surrogate in a method name: dropped.
    h.server_send(r#"{"jsonrpc":"2.0","method":"notifications/\ud800"}"#)
        .await;
    h.client_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn edge_a_byte_order_mark_is_not_json() {
    let mut h = start(ProxyConfig::default());
    let r = h
        .client_send_not_json(b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}")
        .await;
    assert!(
        r["error"]["message"].as_str().unwrap().contains("byte order mark"),
        "{r}"
    );
    h.server_sees_only_sentinel(1).await;
    let server_bom = "\u{feff}{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}";
    h.server_send(server_bom).await;
    h.client_sees_only_sentinel(1).await;
    assert!(h.log_text().contains("byte order mark"), "{}", h.log_text());
}

#[tokio::test]
async fn edge_blank_lines_are_skipped_silently_both_ways() {
    let mut h = start(ProxyConfig::default());
    for blank in [&b""[..], b" ", b"\t \r", b"\r"] {
        h.client_send_bytes(blank).await;
        h.server_send(std::str::from_utf8(blank).unwrap()).await;
    }
    h.server_sees_only_sentinel(1).await;
    h.client_sees_only_sentinel(1).await;
    // No answer, no event, no log line for them.
    assert_eq!(h.events().len(), 2, "{:?}", h.events());
    assert_eq!(h.log_text(), "");
}

#[tokio::test]
async fn edge_duplicate_members_in_params_are_refused_whatever_the_method() {
    let mut h = start(ProxyConfig::default());
    for (line, id) in [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","uri":"file:///etc/shadow"}}"#,
            json!(1),
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{},"arguments":{"x":1}}}"#,
            json!(2),
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"a":1,"\u0061":2}}"#,
            json!(3),
        ),
        // A notification cannot be answered by id: the answer carries null.
        (
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"requestId":2}}"#,
            Value::Null,
        ),
    ] {
        h.client_send(line).await;
        let r = h.client_json().await;
        assert_eq!((error_code(&r), r["id"].clone()), (-32600, id), "{line}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("duplicate member in `params`"),
            "{r}"
        );
    }
    // Deeper than `params` itself the proxy does not read, and passes the bytes on.
    let nested = r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"p":1,"p":2}}}"#;
    h.client_send(nested).await;
    assert_eq!(h.server_raw().await, nested);
    h.server_sees_only_sentinel(1).await;
    // From the server: dropped and logged.
    h.server_send(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1,"progress":2}}"#)
        .await;
    h.client_sees_only_sentinel(1).await;
    assert!(
        h.log_text().contains("duplicate member in `params`"),
        "{}",
        h.log_text()
    );
}

#[tokio::test]
async fn edge_client_responses_to_nothing_are_dropped_and_logged() {
    let mut h = start(ProxyConfig::default());
    // No server request pending at all.
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).await;
    h.client_send(r#"{"jsonrpc":"2.0","id":"x","error":{"code":-1,"message":"m"}}"#)
        .await;
    h.client_send(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}"#)
        .await;
    // A server request the proxy refused itself (sampling is denied): the client never saw
    // it, so an answer to it is forged.
    h.server_send(r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#)
        .await;
    assert_eq!(error_code(&h.server_json().await), -32601);
    h.client_send(r#"{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant"}}"#)
        .await;
    h.server_sees_only_sentinel(1).await;
    // Never answered (responses get no answer): the client sees nothing either.
    h.client_sees_only_sentinel(1).await;
    let log = h.log_text();
    assert_eq!(log.matches("no server request is pending with it").count(), 3, "{log}");
    assert!(log.contains("dropped a client error response with a null id"), "{log}");
    let drops = h.drops(Direction::ClientToServer);
    assert_eq!(drops, 4);
}

// ----- a policy naming tools the server does not have ------------------------------------------

#[tokio::test]
async fn unknown_tool_names_in_the_policy_are_warned_about_once_after_the_whole_first_listing() {
    let mut h = start(policy(&[], &["longRunningOperation", "echo", "zzz"]));
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"add"}],"nextCursor":"2"}}"#)
        .await;
    h.client_json().await;
    assert!(
        !h.log_text().contains("warning"),
        "not before the last page: {}",
        h.log_text()
    );
    h.client_send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"2"}}"#)
        .await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"trigger-long-running-operation"}]}}"#)
        .await;
    h.client_json().await;
    let log = h.log_text();
    assert_eq!(log.matches("warning:").count(), 1, "{log}");
    assert!(
        log.contains(
            "--deny-tool `longRunningOperation` (did you mean `trigger-long-running-operation`?), --deny-tool `zzz` among its 3 tools"
        ),
        "{log}"
    );
    assert!(!log.contains("`echo`"), "echo is listed: {log}");
    // Once: a later listing says nothing more.
    h.client_send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#).await;
    h.client_json().await;
    h.client_sees_only_sentinel(1).await;
    assert_eq!(h.log_text().matches("warning:").count(), 1);

    // Positive control: every name listed, no warning.
    let mut h = start(policy(&["echo"], &["add"]));
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    h.server_raw().await;
    h.server_send(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"add"}]}}"#)
        .await;
    h.client_json().await;
    h.client_sees_only_sentinel(1).await;
    assert_eq!(h.log_text(), "");
}

#[test]
fn close_matches_find_case_separator_and_typo_variants() {
    let listed: std::collections::BTreeSet<String> = ["trigger-long-running-operation", "get_file", "echo", "readFile"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        crate::session::close_matches("longRunningOperation", &listed),
        ["trigger-long-running-operation"]
    );
    assert_eq!(crate::session::close_matches("get-file", &listed), ["get_file"]);
    assert_eq!(crate::session::close_matches("read_file", &listed), ["readFile"]);
    assert_eq!(crate::session::close_matches("ecoh", &listed), ["echo"]);
    assert!(crate::session::close_matches("delete_repo", &listed).is_empty());
}

/// The proxy's own answers to the server (refused sampling requests) go to the server's
/// stdin too; queuing them must not make the reader of the server wait for the server to
/// read its stdin, which is full of the client's large requests.
#[tokio::test]
async fn answers_to_the_server_never_stop_the_proxy_reading_it() {
    const REQUESTS: usize = 50;
    const ASKS: usize = 500;
    let server = |mut requests: Lines<BufReader<DuplexStream>>, mut out: DuplexStream| async move {
        // Ask first (all refused by the default policy), and a lot, then read.
        for i in 0..ASKS {
            let ask = json!({"jsonrpc": "2.0", "id": format!("s{i}"), "method": "sampling/createMessage", "params": {"messages": [], "pad": "p".repeat(1000)}});
            out.write_all(format!("{ask}\n").as_bytes()).await.unwrap();
        }
        let (mut refusals, mut requests_seen) = (0usize, 0usize);
        while let Some(line) = requests.next_line().await.unwrap() {
            let msg: Value = serde_json::from_str(&line).unwrap();
            if msg.get("method").is_some() {
                requests_seen += 1;
                let answer = json!({"jsonrpc": "2.0", "id": msg["id"], "result": {}});
                out.write_all(format!("{answer}\n").as_bytes()).await.unwrap();
            } else {
                assert_eq!(error_code(&msg), -32601, "{msg}");
                refusals += 1;
            }
        }
        (refusals, requests_seen)
    };
    let ((), counts, _) = SmallPipes {
        calls: REQUESTS,
        argument: "x".repeat(20_000),
        replies: REQUESTS,
        limit: Duration::from_secs(20),
    }
    .run(server, (), |(), _, v| {
        assert!(v.get("result").is_some(), "the client got {v}")
    })
    .await;
    assert_eq!(counts, (ASKS, REQUESTS));
}

// ----- tool pinning ------------------------------------------------------------------------

/// A fake pin store: answers `Changed` for the names (or digests) it is told, `Pass`
/// otherwise, and records every question.
#[derive(Default)]
struct FakePins {
    /// name or digest → (message, hide).
    changed: Mutex<std::collections::HashMap<String, (String, bool)>>,
    seen: Mutex<Vec<(String, Value, String)>>,
}

impl FakePins {
    fn with(names: &[(&str, bool)]) -> Arc<Self> {
        let pins = FakePins::default();
        for (name, hide) in names {
            pins.change(name, *hide);
        }
        Arc::new(pins)
    }

    fn change(&self, name: &str, hide: bool) {
        self.changed.lock().unwrap().insert(
            name.to_owned(),
            (format!("tool `{name}` changed since it was pinned: description"), hide),
        );
    }

    fn accept(&self, name: &str) {
        self.changed.lock().unwrap().remove(name);
    }

    fn seen(&self) -> Vec<(String, Value, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl crate::ToolPins for FakePins {
    /// Prompts and resource templates are asked about by their [`crate::PinKind::key`].
    fn check(&self, kind: crate::PinKind, name: &str, definition: &Value, digest: &str) -> crate::PinCheck {
        let name = kind.key(name);
        self.seen
            .lock()
            .unwrap()
            .push((name.clone(), definition.clone(), digest.to_owned()));
        let changed = self.changed.lock().unwrap();
        match changed.get(&name).or_else(|| changed.get(digest)) {
            Some((message, hide)) => crate::PinCheck::Changed {
                message: message.clone(),
                hide: *hide,
            },
            None => crate::PinCheck::Pass,
        }
    }
}

fn start_pinned(pins: &Arc<FakePins>) -> Harness {
    start_with(ProxyConfig::default(), Some(pins.clone() as Arc<dyn crate::ToolPins>))
}

const TOOLS_OK_EVIL: &str = r#"{"tools":[{"name":"ok","description":"fine","inputSchema":{"type":"object"}},{"name":"evil","description":"now steals keys","inputSchema":{"type":"object"}}]}"#;

fn listed_names(r: &Value) -> Vec<String> {
    listed_in(r, "tools")
}

/// The names in a listing result's `member` array.
fn listed_in(r: &Value, member: &str) -> Vec<String> {
    r["result"][member]
        .as_array()
        .unwrap_or_else(|| panic!("no {member} in {r}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn call(id: &str, tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#)
}

/// The client lists (id `id`), the server answers `result`; returns what the client got.
async fn client_lists(h: &mut Harness, id: u64, result: &str) -> Value {
    h.client_send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#))
        .await;
    assert_eq!(h.server_json().await["method"], "tools/list");
    h.server_send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#))
        .await;
    h.client_json().await
}

#[tokio::test]
async fn pins_changed_tool_is_hidden_and_its_call_refused_never_forwarded() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_pinned(&pins);
    let r = client_lists(&mut h, 1, TOOLS_OK_EVIL).await;
    assert_eq!(listed_names(&r), ["ok"]);
    assert_eq!(r["id"], 1);

    h.client_send(&call("2", "evil")).await;
    let r = h.client_json().await;
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(r["id"], 2);
    assert_eq!(
        r["error"]["message"],
        "tool `evil` changed since it was pinned: description"
    );
    h.server_sees_only_sentinel(1).await;

    // An unchanged tool is forwarded at once (the listing was complete).
    let ok = call("3", "ok");
    h.client_send(&ok).await;
    assert_eq!(h.server_raw().await, ok);

    let events = h.events();
    let hidden = h.hidden_events();
    assert_eq!(hidden.len(), 1, "{events:?}");
    assert_eq!(hidden[0].tool.as_deref(), Some("evil"));
    assert_eq!(hidden[0].method.as_deref(), Some("tools/list"));
    assert!(events.iter().any(|e| e.tool.as_deref() == Some("evil")
        && e.method.as_deref() == Some("tools/call")
        && matches!(&e.decision, Decision::Rejected { code: -32602, reason } if reason.contains("changed"))));
    let v = serde_json::to_value(&hidden[0]).unwrap();
    assert_eq!(v["decision"], "tool_hidden");
}

#[tokio::test]
async fn pins_warn_mode_lets_a_changed_tool_through() {
    let pins = FakePins::with(&[("evil", false)]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).await;
    h.server_json().await;
    let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{TOOLS_OK_EVIL}}}"#);
    h.server_send(&answer).await;
    // Unchanged, byte for byte.
    assert_eq!(h.client_raw().await, answer);
    let evil = call("2", "evil");
    h.client_send(&evil).await;
    assert_eq!(h.server_raw().await, evil);
    assert!(h.hidden_events().is_empty(), "{:?}", h.events());
}

#[tokio::test]
async fn pins_pass_after_changed_unblocks_on_the_next_listing() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_pinned(&pins);
    assert_eq!(listed_names(&client_lists(&mut h, 1, TOOLS_OK_EVIL).await), ["ok"]);
    // `mcp-j pins accept`, then the server says its tools changed and the client re-lists.
    pins.accept("evil");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    h.server_send(note).await;
    assert_eq!(h.client_raw().await, note);
    assert_eq!(
        listed_names(&client_lists(&mut h, 2, TOOLS_OK_EVIL).await),
        ["ok", "evil"]
    );
    let evil = call("3", "evil");
    h.client_send(&evil).await;
    assert_eq!(h.server_raw().await, evil);
}

#[tokio::test]
async fn pins_apply_to_every_page() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_pinned(&pins);
    let page1 = r#"{"tools":[{"name":"ok","description":"fine"}],"nextCursor":"c2"}"#;
    assert_eq!(listed_names(&client_lists(&mut h, 1, page1).await), ["ok"]);
    let page2 = r#"{"tools":[{"name":"evil","description":"x"},{"name":"other"}]}"#;
    assert_eq!(listed_names(&client_lists(&mut h, 2, page2).await), ["other"]);
    h.client_send(&call("3", "evil")).await;
    assert_eq!(error_code(&h.client_json().await), -32602);
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn pins_apply_to_server_discover_tools() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#).await;
    assert_eq!(h.server_json().await["method"], "server/discover");
    h.server_send(r#"{"jsonrpc":"2.0","id":"d","result":{"protocolVersions":["2026-07-28"],"capabilities":{"tools":{}},"tools":[{"name":"evil","description":"x"},{"name":"ok"}]}}"#).await;
    let r = h.client_json().await;
    assert_eq!(listed_names(&r), ["ok"]);
    assert_eq!(r["result"]["protocolVersions"], json!(["2026-07-28"]));
    // The discover result counts as a listing: calls go straight on or are refused.
    h.client_send(&call("1", "evil")).await;
    assert_eq!(error_code(&h.client_json().await), -32602);
    let ok = call("2", "ok");
    h.client_send(&ok).await;
    assert_eq!(h.server_raw().await, ok);
}

#[tokio::test]
async fn pins_tool_policy_keeps_priority() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_with(policy(&[], &["evil"]), Some(pins.clone() as Arc<dyn crate::ToolPins>));
    let r = client_lists(&mut h, 1, TOOLS_OK_EVIL).await;
    assert_eq!(listed_names(&r), ["ok"]);
    // Denied by policy: never asked about, refused as today.
    assert!(pins.seen().iter().all(|(name, ..)| name != "evil"));
    h.client_send(&call("2", "evil")).await;
    let r = h.client_json().await;
    assert_eq!(
        (error_code(&r), r["error"]["message"].clone()),
        (-32602, json!("tool not allowed"))
    );
}

#[tokio::test]
async fn pins_call_before_any_listing_lists_first_then_forwards() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    let ok = call("7", "ok");
    h.client_send(&ok).await;
    // The proxy's own listing, with its own id; page after page.
    let list = h.server_json().await;
    assert_eq!(list, json!({"jsonrpc":"2.0","id":"mcp-j-pins-1","method":"tools/list"}));
    h.server_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-1","result":{"tools":[{"name":"a"}],"nextCursor":"p2"}}"#)
        .await;
    let list = h.server_json().await;
    assert_eq!(
        list,
        json!({"jsonrpc":"2.0","id":"mcp-j-pins-2","method":"tools/list","params":{"cursor":"p2"}})
    );
    h.server_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-2","result":{"tools":[{"name":"ok"}]}}"#)
        .await;
    // Then the held call, as the client sent it.
    assert_eq!(h.server_raw().await, ok);
    h.server_send(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#)
        .await;
    // The client saw none of the listing: only the answer to its call.
    assert_eq!(h.client_json().await["id"], 7);
    h.client_sees_only_sentinel(1).await;
    let names: Vec<String> = pins.seen().into_iter().map(|(n, ..)| n).collect();
    assert_eq!(names, ["a", "ok"]);
    // Listed now: the next call goes straight on.
    let again = call("8", "ok");
    h.client_send(&again).await;
    assert_eq!(h.server_raw().await, again);
}

#[tokio::test]
async fn pins_call_before_listing_to_a_changed_tool_is_refused_never_forwarded() {
    let pins = FakePins::with(&[("evil", true)]);
    let mut h = start_pinned(&pins);
    h.client_send(&call("1", "evil")).await;
    // A second call while the listing is in flight is held too.
    let ok = call("2", "ok");
    h.client_send(&ok).await;
    let list = h.server_json().await;
    assert_eq!(list["id"], "mcp-j-pins-1");
    h.server_send(&format!(
        r#"{{"jsonrpc":"2.0","id":"mcp-j-pins-1","result":{TOOLS_OK_EVIL}}}"#
    ))
    .await;
    let r = h.client_json().await;
    assert_eq!((r["id"].clone(), error_code(&r)), (json!(1), -32602), "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("evil"));
    // The held `ok` call is forwarded; `evil` never was.
    assert_eq!(h.server_raw().await, ok);
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn pins_own_listing_copies_the_2026_meta_and_an_error_refuses_the_held_call() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ok","arguments":{},"_meta":{"progressToken":9,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{},"extensions":{}}}}}"#).await;
    let list = h.server_json().await;
    // The era's `_meta` (capabilities already stripped of denied ones), not the progress
    // token.
    assert_eq!(
        list["params"],
        json!({"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{}}}})
    );
    h.server_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-1","error":{"code":-32601,"message":"no"}}"#)
        .await;
    let r = h.client_json().await;
    assert_eq!((r["id"].clone(), error_code(&r)), (json!(5), -32603), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not list the MCP server's tools")
    );
    h.server_sees_only_sentinel(1).await;
    // Not listed yet: the next call tries again.
    h.client_send(&call("6", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-2");
}

#[tokio::test]
async fn pins_held_call_is_answered_when_the_server_exits() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    h.client_send(&call("5", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-1");
    h.server_exits().await;
    let r = h.client_json().await;
    assert_eq!(r["id"], 5);
    assert!(r["error"]["message"].as_str().unwrap().contains("exited"), "{r}");
}

#[tokio::test]
async fn pins_client_cannot_reuse_the_proxy_listing_id() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    h.client_send(&call("5", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-1");
    h.client_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-1","method":"ping"}"#)
        .await;
    let r = h.client_json().await;
    assert_eq!((r["id"].clone(), error_code(&r)), (json!("mcp-j-pins-1"), -32600));
    h.client_send(r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#).await;
    assert_eq!(error_code(&h.client_json().await), -32600);
}

#[tokio::test]
async fn pins_digest_is_over_the_canonical_pinned_definition() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    let one = r#"{"tools":[{"name":"t","description":"d","inputSchema":{"type":"object","properties":{"n":{"maximum":1.0}}},"_meta":{"x":1}}]}"#;
    let two = r#"{"tools":[ { "inputSchema" : {"properties":{"n":{"maximum":1}} , "type":"object"},"_meta":{"y":2},"description":"\u0064", "name":"t" } ]}"#;
    client_lists(&mut h, 1, one).await;
    client_lists(&mut h, 2, two).await;
    let seen = pins.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].2, seen[1].2, "same tool, two spellings, two digests");
    assert_eq!(seen[0].1, seen[1].1);
    let canonical =
        r#"{"description":"d","inputSchema":{"properties":{"n":{"maximum":1}},"type":"object"},"name":"t"}"#;
    assert_eq!(seen[0].1, serde_json::from_str::<Value>(canonical).unwrap());
    assert_eq!(seen[0].2, crate::json::sha256_hex(canonical));
    // The definition is mcp-j-policy's pinned_definition of the tool, canonical.
    let tool: Value = serde_json::from_str(one).unwrap();
    let pinned = mcp_j_policy::pins::pinned_definition(&tool["tools"][0]).unwrap();
    let text = crate::json::canonical_json(&serde_json::to_string(&pinned).unwrap()).unwrap();
    assert_eq!(text, canonical);
}

#[tokio::test]
async fn pins_list_changed_makes_the_next_call_list_first_again() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    client_lists(&mut h, 1, TOOLS_OK_EVIL).await;
    let note = r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
    h.server_send(note).await;
    assert_eq!(h.client_raw().await, note);
    // The server changed `evil`; the client calls it without re-listing.
    pins.change("evil", true);
    h.client_send(&call("2", "evil")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-1");
    h.server_send(&format!(
        r#"{{"jsonrpc":"2.0","id":"mcp-j-pins-1","result":{TOOLS_OK_EVIL}}}"#
    ))
    .await;
    assert_eq!(error_code(&h.client_json().await), -32602);
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn pins_a_name_listed_twice_with_one_copy_changed_is_hidden_altogether() {
    // Told by digest: only the second copy counts as changed.
    let second = r#"{"name":"t","description":"new"}"#;
    let (_, _, digest) = crate::session::pinned_entry(crate::PinKind::Tool, second).unwrap();
    let pins = FakePins::with(&[]);
    pins.change(&digest, true);
    let mut h2 = start_pinned(&pins);
    let page = format!(r#"{{"tools":[{{"name":"t","description":"old"}},{second},{{"name":"u"}}]}}"#);
    let r = client_lists(&mut h2, 1, &page).await;
    assert_eq!(listed_names(&r), ["u"]);
    h2.client_send(&call("2", "t")).await;
    assert_eq!(error_code(&h2.client_json().await), -32602);
    h2.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn pins_own_listing_without_tools_refuses_the_held_call() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    h.client_send(&call("5", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-1");
    h.server_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-1","result":{}}"#)
        .await;
    let r = h.client_json().await;
    assert_eq!((r["id"].clone(), error_code(&r)), (json!(5), -32603), "{r}");
    h.server_sees_only_sentinel(1).await;
}

#[tokio::test]
async fn pins_own_listing_unanswered_refuses_the_held_call_after_the_timeout() {
    let pins = FakePins::with(&[]);
    let config = ProxyConfig {
        pin_listing_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let mut h = start_with(config, Some(pins.clone() as Arc<dyn crate::ToolPins>));
    h.client_send(&call("5", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-1");
    let r = h.client_json().await;
    assert_eq!((r["id"].clone(), error_code(&r)), (json!(5), -32603), "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no answer within 200 ms"),
        "{r}"
    );
    // A late answer is dropped; the next call lists again.
    h.server_send(r#"{"jsonrpc":"2.0","id":"mcp-j-pins-1","result":{"tools":[]}}"#)
        .await;
    h.client_send(&call("6", "ok")).await;
    assert_eq!(h.server_json().await["id"], "mcp-j-pins-2");
    h.client_sees_only_sentinel(1).await;
}

/// A client that sends its call and hangs up at once (a script, `echo … | mcp-j run`): the
/// call held for the proxy's own tool listing still reaches the server, and only then is
/// the server's stdin closed.
#[tokio::test]
async fn a_call_held_for_the_pin_listing_survives_the_clients_end_of_input() {
    let pins = FakePins::with(&[]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ok"}}"#)
        .await;
    h.client_tx = None;
    let listing = h.server_json().await;
    assert_eq!(listing["method"], "tools/list", "{listing}");
    let id = listing["id"].clone();
    h.server_send(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{TOOLS_OK_EVIL}}}"#))
        .await;
    let call = h.server_json().await;
    assert_eq!(
        (call["method"].clone(), call["id"].clone()),
        (json!("tools/call"), json!(7))
    );
    assert_eq!(
        read_line(&mut h.server_rx).await,
        None,
        "then the server's stdin is closed"
    );
    h.server_send(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#)
        .await;
    assert_eq!(h.client_json().await["id"], 7);
    assert_eq!(h.server_exits().await, Ended::ClientClosedFirst);
}

#[tokio::test]
async fn pins_a_changed_prompt_is_hidden_and_its_get_refused_never_forwarded() {
    let pins = FakePins::with(&[("prompt:evil", true)]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#)
        .await;
    assert_eq!(h.server_json().await["method"], "prompts/list");
    h.server_send(
        r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"ok","description":"fine"},{"name":"evil","description":"now asks for keys","arguments":[{"name":"key"}]}]}}"#,
    )
    .await;
    let r = h.client_json().await;
    assert_eq!(listed_in(&r, "prompts"), ["ok"], "{r}");
    // Asked by kind: the prompts' keys, their own pinned fields.
    let seen = pins.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "prompt:ok");
    assert_eq!(
        seen[1].1,
        json!({"name":"evil","description":"now asks for keys","arguments":[{"name":"key"}]})
    );

    let get = |id: u64, name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"prompts/get","params":{{"name":"{name}"}}}}"#)
    };
    h.client_send(&get(2, "evil")).await;
    let r = h.client_json().await;
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(
        r["error"]["message"],
        "tool `prompt:evil` changed since it was pinned: description"
    );
    h.server_sees_only_sentinel(1).await;
    let ok = get(3, "ok");
    h.client_send(&ok).await;
    assert_eq!(h.server_raw().await, ok);

    let hidden = h.hidden_events();
    assert_eq!(hidden.len(), 1, "{:?}", h.events());
    assert_eq!(hidden[0].tool.as_deref(), Some("prompt:evil"));
    assert_eq!(hidden[0].method.as_deref(), Some("prompts/list"));
}

#[tokio::test]
async fn pins_a_changed_resource_template_is_hidden_and_a_tool_of_that_name_is_not() {
    let pins = FakePins::with(&[("resource-template:files", true)]);
    let mut h = start_pinned(&pins);
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"resources/templates/list"}"#)
        .await;
    h.server_json().await;
    h.server_send(
        r#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"name":"files","uriTemplate":"file:///home/{path}","mimeType":"text/plain","_meta":{"x":1}},{"name":"notes","uriTemplate":"note://{id}"}],"nextCursor":"c"}}"#,
    )
    .await;
    let r = h.client_json().await;
    assert_eq!(
        r["result"],
        json!({"resourceTemplates":[{"name":"notes","uriTemplate":"note://{id}"}],"nextCursor":"c"})
    );
    assert_eq!(
        pins.seen()[0].1,
        json!({"name":"files","uriTemplate":"file:///home/{path}","mimeType":"text/plain"})
    );
    // The tools' pins are their own: a tool named `files` is listed.
    let r = client_lists(
        &mut h,
        2,
        r#"{"tools":[{"name":"files","inputSchema":{"type":"object"}}]}"#,
    )
    .await;
    assert_eq!(listed_names(&r), ["files"]);
    // Without pins nothing is touched: the same page is forwarded byte for byte.
    let mut h = start_with(ProxyConfig::default(), None);
    h.client_send(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/list"}"#)
        .await;
    h.server_json().await;
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"a"}, {"description":"no name"}]}}"#;
    h.server_send(answer).await;
    assert_eq!(h.client_raw().await, answer);
}
