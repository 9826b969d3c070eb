//! Property tests: the codec against a reference model, validation and session on
//! arbitrary input, and the tool-filter invariant.

use mcp_j_proxy::codec::{Frame, LineCodec};
use mcp_j_proxy::session::{Payload, Session, filter_tools};
use mcp_j_proxy::{ProxyConfig, ServerRequestPolicy, ToolPolicy, message};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(Vec<u8>),
    Oversize { head: Vec<u8>, len: u64 },
}

fn own(frame: Frame<'_>) -> Out {
    match frame {
        Frame::Line(l) => Out::Line(l.to_vec()),
        Frame::Oversize { head, len } => Out::Oversize {
            head: head.to_vec(),
            len,
        },
    }
}

/// What the codec must produce: split on `\n`, drop one trailing `\r`, lines over the
/// limit (counting the `\r`) become `Oversize`.
fn model(data: &[u8], limit: usize, keep_head: bool) -> Vec<Out> {
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or(&[]);
    if !last.is_empty() {
        pieces.push(last);
    }
    pieces
        .into_iter()
        .map(|raw| {
            if raw.len() > limit {
                Out::Oversize {
                    head: if keep_head { raw[..limit].to_vec() } else { Vec::new() },
                    len: raw.len() as u64,
                }
            } else {
                Out::Line(raw.strip_suffix(b"\r").unwrap_or(raw).to_vec())
            }
        })
        .collect()
}

fn bytes_with_newlines() -> impl Strategy<Value = Vec<u8>> {
    // Plenty of newlines and CRs among arbitrary bytes (mapped, which is cheaper to
    // generate than a union per byte).
    prop::collection::vec(any::<u8>(), 0..3000).prop_map(|v| {
        v.into_iter()
            .map(|b| match b % 11 {
                0 | 1 => b'\n',
                2 => b'\r',
                3 | 4 => b'x',
                _ => b,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn codec_matches_the_model_for_any_split(
        data in bytes_with_newlines(),
        cuts in prop::collection::vec(0usize..3000, 0..24),
        limit in 0usize..80,
        keep_head in any::<bool>(),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.push(data.len());
        cuts.sort_unstable();
        let mut codec = LineCodec::new(limit, keep_head);
        let mut got = Vec::new();
        let mut from = 0;
        for to in cuts {
            let mut rest = &data[from..to];
            while !rest.is_empty() {
                let (n, frame) = codec.feed(rest);
                prop_assert!(n > 0 && n <= rest.len());
                if let Some(frame) = frame {
                    got.push(own(frame));
                }
                rest = &rest[n..];
            }
            from = to;
        }
        if let Some(frame) = codec.finish() {
            got.push(own(frame));
        }
        prop_assert!(codec.finish().is_none());
        for frame in &got {
            match frame {
                Out::Line(l) => prop_assert!(l.len() <= limit),
                Out::Oversize { head, len } => prop_assert!(head.len() <= limit && *len > limit as u64),
            }
        }
        prop_assert!(codec.peak_capacity() <= limit);
        prop_assert_eq!(got, model(&data, limit, keep_head));
    }
}

// ----- validation and session on arbitrary input --------------------------------------------

const KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "result",
    "error",
    "code",
    "message",
    "name",
    "arguments",
    "tools",
    "nextCursor",
    "_meta",
    "capabilities",
    "sampling",
    "roots",
    "elicitation",
    "requestId",
    "resultType",
    "inputRequests",
    "io.modelcontextprotocol/clientCapabilities",
    "x",
];

const STRINGS: &[&str] = &[
    "2.0",
    "1.0",
    "tools/call",
    "tools/list",
    "initialize",
    "server/discover",
    "notifications/cancelled",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "ping",
    "input_required",
    "complete",
    "a",
    "secret",
    "",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8)
                .prop_map(|kv| { Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }),
        ]
    })
}

/// Message-shaped values, so the session's deeper paths get exercised.
fn arb_message() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        Just(json!(1)),
        Just(json!(2)),
        Just(json!("a")),
        Just(Value::Null),
        arb_json()
    ];
    let method = || prop::sample::select(STRINGS);
    prop_oneof![
        (id.clone(), method(), arb_json())
            .prop_map(|(id, m, p)| json!({"jsonrpc":"2.0","id":id,"method":m,"params":p})),
        (method(), arb_json()).prop_map(|(m, p)| json!({"jsonrpc":"2.0","method":m,"params":p})),
        (id.clone(), arb_json()).prop_map(|(id, r)| json!({"jsonrpc":"2.0","id":id,"result":r})),
        (id, arb_json()).prop_map(|(id, e)| json!({"jsonrpc":"2.0","id":id,"error":e})),
        arb_json(),
    ]
}

fn check_outcome_is_json(payload: &Option<Payload>, original: &[u8]) -> Result<(), TestCaseError> {
    if let Some(p) = payload {
        let bytes = p.bytes(original);
        prop_assert!(!bytes.contains(&b'\n'), "an outgoing message must be one line");
        let v: Value = serde_json::from_slice(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&v["jsonrpc"], "2.0");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validation_never_panics_on_arbitrary_json(v in arb_json()) {
        let text = serde_json::to_vec(&v).unwrap();
        let _ = message::parse(&text, 64);
        let _ = message::parse(&text, 2);
    }

    #[test]
    fn session_never_panics_and_only_emits_valid_messages(
        msgs in prop::collection::vec((any::<bool>(), arb_message()), 1..16),
        open in any::<bool>(),
    ) {
        let config = ProxyConfig {
            tools: if open { ToolPolicy::default() } else { ToolPolicy::new(["a"], ["secret"]) },
            server_requests: if open { ServerRequestPolicy::allow_all() } else { ServerRequestPolicy::default() },
            ..ProxyConfig::default()
        };
        let mut session = Session::new(&config);
        for (from_client, msg) in msgs {
            let line = serde_json::to_vec(&msg).unwrap();
            let out = if from_client { session.client_line(&line) } else { session.server_line(&line) };
            check_outcome_is_json(&out.to_client, &line)?;
            check_outcome_is_json(&out.to_server, &line)?;
            prop_assert!(out.event.is_some(), "every non-blank line gets an event");
        }
        for (reply, _) in session.server_closed() {
            let v: Value = serde_json::from_slice(&reply).unwrap();
            prop_assert_eq!(v["error"]["code"].as_i64(), Some(config.pending_error_code));
        }
    }

    #[test]
    fn session_never_panics_on_arbitrary_bytes(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..16)) {
        let mut session = Session::new(&ProxyConfig::default());
        for (i, line) in lines.iter().enumerate() {
            let out = if i % 2 == 0 { session.client_line(line) } else { session.server_line(line) };
            check_outcome_is_json(&out.to_client, line)?;
            check_outcome_is_json(&out.to_server, line)?;
        }
    }
}

// ----- the tool filter invariant ------------------------------------------------------------

const NAMES: &[&str] = &["a", "b", "c", "secret", "rm", "é", "a\"b"];

/// A tool entry's JSON, and the name a correct filter reads from it (`None`: the entry
/// has no single readable name and must go).
fn arb_tool() -> impl Strategy<Value = (String, Option<&'static str>)> {
    let name = || prop::sample::select(NAMES);
    prop_oneof![
        6 => name().prop_map(|n| (json!({"name": n, "inputSchema": {"type": "object"}}).to_string(), Some(n))),
        // Duplicate and escaped name keys: parser-differential bait.
        1 => (name(), name()).prop_map(|(x, y)| (format!(r#"{{"name":{},"name":{}}}"#, json!(x), json!(y)), None)),
        1 => (name(), name()).prop_map(|(x, y)| (format!(r#"{{"name":{},"\u006eame":{}}}"#, json!(x), json!(y)), None)),
        1 => name().prop_map(|n| (format!(r#"{{"\u006eame":{}}}"#, json!(n)), Some(n))),
        1 => Just((r#"{"name":["a"]}"#.to_owned(), None)),
        1 => Just((r#"{"description":"no name"}"#.to_owned(), None)),
        1 => Just(("42".to_owned(), None)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_disallowed_tool_ever_appears_in_a_filtered_list(
        tools in prop::collection::vec(arb_tool(), 0..12),
        allow in prop::collection::btree_set(prop::sample::select(NAMES), 0..3),
        deny in prop::collection::btree_set(prop::sample::select(NAMES), 0..3),
    ) {
        let policy = ToolPolicy::new(allow.iter().copied(), deny.iter().copied());
        let entries: Vec<&str> = tools.iter().map(|(t, _)| t.as_str()).collect();
        let result = format!(r#"{{"tools":[{}],"nextCursor":"n"}}"#, entries.join(","));
        let line = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        let config = ProxyConfig { tools: policy.clone(), ..ProxyConfig::default() };
        let mut session = Session::new(&config);
        session.client_line(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        let out = session.server_line(line.as_bytes());
        let payload = out.to_client.expect("a response for the client");
        if policy.is_open() {
            // Nothing to enforce: the original bytes pass.
            prop_assert_eq!(payload, Payload::Original);
            return Ok(());
        }
        let v: Value = serde_json::from_slice(payload.bytes(line.as_bytes())).unwrap();
        let listed = v["result"]["tools"].as_array().cloned().unwrap_or_default();
        for tool in &listed {
            // serde_json keeps the last of duplicate keys: whatever a client reads must be allowed.
            let name = tool["name"].as_str();
            prop_assert!(name.is_some_and(|n| policy.allowed(n)), "{} leaked past {:?}", tool, policy);
        }
        prop_assert_eq!(&v["result"]["nextCursor"], "n");
        // Every well-formed allowed tool is kept, in order.
        let expected: Vec<&str> = tools.iter().filter_map(|(_, n)| *n).filter(|n| policy.allowed(n)).collect();
        let got: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
        prop_assert_eq!(&got, &expected);
        // And the function on its own agrees.
        match filter_tools(&result, &policy) {
            Ok(Some((new, removed, total))) => {
                prop_assert_eq!(total, tools.len());
                prop_assert_eq!(removed, tools.len() - expected.len());
                let v: Value = serde_json::from_str(&new).unwrap();
                prop_assert_eq!(v["tools"].as_array().map(Vec::len), Some(expected.len()));
            }
            Ok(None) => prop_assert_eq!(expected.len(), tools.len()),
            Err(e) => prop_assert!(false, "filter failed: {}", e),
        }
    }
}
