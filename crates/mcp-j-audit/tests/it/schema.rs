//! Every event type, built through the real API, validates against docs/audit.schema.json;
//! bad events do not.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure is a test failure")]

use std::sync::Arc;
use std::time::Duration;

use mcp_j_audit::{
    Access, AuditLog, Command, Direction, ExposedPath, LayerStatus, Limits, McpPolicy, MessageKind, NetConnect,
    NetDecision, ProxyDecision, Redactor, Resources, SandboxDenial, SandboxLayer, SandboxLayers, SessionEnd,
    SessionStart, Source,
};
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.schema.json");
    let text = std::fs::read_to_string(path).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

fn assert_valid(v: &jsonschema::Validator, line: &str) {
    let value: Value = serde_json::from_str(line).unwrap();
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{line}\n{errors:#?}");
}

/// One of every event type (and every variant of the ones with variants).
fn every_event() -> Vec<String> {
    let redactor = Arc::new(Redactor::new([("API_TOKEN", "tok-very-secret")]));
    let (log, lines) = AuditLog::memory(redactor).unwrap();

    let mut start = SessionStart::new(
        Command::Run,
        "/usr/bin/python3",
        &["server.py".into(), "--token=tok-very-secret".into()],
        "/home/u/proj",
    );
    start.exposed_paths = vec![
        ExposedPath {
            path: "/data".into(),
            access: Access::Ro,
            system_path: false,
        },
        ExposedPath {
            path: "/out".into(),
            access: Access::Rw,
            system_path: false,
        },
        ExposedPath {
            path: "/etc/app".into(),
            access: Access::Rw,
            system_path: true,
        },
    ];
    start.network_allow = vec!["api.github.com:443".into()];
    start.env_names = vec!["LANG".into()];
    start.secret_names = vec!["API_TOKEN".into()];
    start.limits = Limits {
        memory_bytes: Some(512 << 20),
        pids: Some(256),
        fds: Some(1024),
        cpu_millicores: Some(1000),
        timeout_ms: Some(30_000),
        max_file_size_bytes: Some(1 << 30),
        no_subprocess: true,
    };
    start.policy = Some(McpPolicy {
        allowed_tools: Some(vec!["read_file".into()]),
        denied_tools: vec!["delete_repo".into()],
        server_requests: "deny".into(),
        max_message_bytes: Some(5 << 20),
    });
    log.session_start(start).unwrap();
    let mut exec = SessionStart::new(Command::Exec, "ls", &[], "/tmp/x");
    exec.source = Source::registry("org/name@1.2.3", format!("sha256:{}", "ab".repeat(32)));
    log.session_start(exec).unwrap();

    let report = SandboxLayers {
        layers: vec![
            SandboxLayer::new("namespaces", LayerStatus::Enforced, "user, mount, pid, net, ipc, uts"),
            SandboxLayer::new("landlock", LayerStatus::Partial, "Landlock ABI 3"),
            SandboxLayer::new("memory", LayerStatus::Absent, "no cgroup v2 delegation"),
        ],
    };
    log.sandbox_ready(&report, Some(4242)).unwrap();

    let decision = |direction, message_kind, decision, bytes| ProxyDecision {
        direction,
        message_kind,
        method: None,
        request_id: None,
        tool: None,
        decision,
        code: None,
        reason: None,
        rewritten: None,
        bytes,
        duration_ms: None,
        args_sha256: None,
        error_code: None,
    };
    log.proxy_decision(ProxyDecision {
        method: Some("tools/call".into()),
        request_id: Some("7".into()),
        tool: Some("delete_repo".into()),
        code: Some(-32602),
        reason: Some("tool not allowed".into()),
        args_sha256: Some("0f".repeat(32)),
        ..decision(Direction::ClientToServer, MessageKind::Request, "rejected", 93)
    });
    log.proxy_decision(ProxyDecision {
        duration_ms: Some(1.5),
        error_code: Some(-32000),
        ..decision(Direction::ServerToClient, MessageKind::ErrorResponse, "forwarded", 50)
    });
    log.proxy_decision(ProxyDecision {
        reason: Some("not JSON".into()),
        ..decision(Direction::ServerToClient, MessageKind::Invalid, "dropped", 12)
    });
    log.proxy_decision(ProxyDecision {
        rewritten: Some("tools/list: 2 tools hidden".into()),
        ..decision(Direction::ServerToClient, MessageKind::Response, "rewritten", 400)
    });

    log.sandbox_denial(SandboxDenial::exec_denied(1)).unwrap();
    log.sandbox_denial(SandboxDenial::new("seccomp", "ptrace", 1)).unwrap();

    log.net_connect(NetConnect {
        destination: "api.example.com".into(),
        port: 443,
        via: "connect".into(),
        address: Some("203.0.113.9".into()),
        rule: Some("api.example.com".into()),
        decision: NetDecision::Allowed,
        reason: None,
        bytes_sent: 517,
        bytes_received: 4096,
        duration_ms: 210,
    })
    .unwrap();
    log.net_connect(NetConnect {
        destination: "169.254.169.254".into(),
        port: 80,
        via: "direct".into(),
        address: None,
        rule: None,
        decision: NetDecision::Refused,
        reason: Some("169.254.169.254 is link-local; allow it with --allow-net 169.254.169.254:80".into()),
        bytes_sent: 0,
        bytes_received: 0,
        duration_ms: 0,
    })
    .unwrap();

    let d = Duration::from_millis(1234);
    log.session_end(SessionEnd::exited(0, d, Resources::cgroup(Some(1 << 20), Some(d))))
        .unwrap();
    log.session_end(SessionEnd::signaled(9, d, Resources::rusage(4096, d)))
        .unwrap();
    log.session_end(SessionEnd::timed_out(Some(9), d, Resources::unmeasured()))
        .unwrap();
    log.session_end(SessionEnd::failed("sandbox setup failed: pivot_root: EPERM", d))
        .unwrap();
    assert_eq!(log.failures(), 0);
    lines.lines()
}

#[test]
fn every_event_type_validates() {
    let v = validator();
    let lines = every_event();
    let mut types: Vec<String> = Vec::new();
    for line in &lines {
        assert_valid(&v, line);
        assert!(
            line.starts_with(r#"{"schema_version":"mcp-j.audit/1","timestamp":""#),
            "{line}"
        );
        assert!(!line.contains("tok-very-secret"), "{line}");
        let value: Value = serde_json::from_str(line).unwrap();
        types.push(value["event_type"].as_str().unwrap().to_string());
    }
    types.dedup();
    assert_eq!(
        types,
        [
            "session.start",
            "sandbox.ready",
            "proxy.decision",
            "sandbox.denial",
            "net.connect",
            "session.end"
        ]
    );
    assert!(lines[0].contains("--token=[REDACTED:secret:API_TOKEN]"), "{}", lines[0]);
}

#[test]
fn bad_events_fail_validation() {
    let v = validator();
    let good: Value = serde_json::from_str(&every_event()[0]).unwrap();
    assert!(v.is_valid(&good));

    let mut no_timestamp = good.clone();
    no_timestamp.as_object_mut().unwrap().remove("timestamp");
    assert!(!v.is_valid(&no_timestamp));

    let mut wrong_version = good.clone();
    wrong_version["schema_version"] = "mcp-j.audit/2".into();
    assert!(!v.is_valid(&wrong_version));

    let mut bad_time = good.clone();
    bad_time["timestamp"] = "2025-01-01 00:00:00".into();
    assert!(!v.is_valid(&bad_time));

    let mut unknown_type = good.clone();
    unknown_type["event_type"] = "session.pause".into();
    assert!(!v.is_valid(&unknown_type));

    let mut extra = good.clone();
    extra["password"] = "x".into();
    assert!(!v.is_valid(&extra));

    let mut bad_layer: Value = serde_json::from_str(&every_event()[2]).unwrap();
    bad_layer["sandbox"]["layers"][0]["status"] = "mostly".into();
    assert!(!v.is_valid(&bad_layer));
}
