//! Every event type, built through the real API, validates against docs/audit.schema.json;
//! bad events do not.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure is a test failure")]

use std::sync::Arc;
use std::time::Duration;

use mcp_j_audit::{
    Access, Artifact, AuditLog, Command, Direction, ExposedPath, LayerStatus, Limits, McpPolicy, MessageKind,
    NetConnect, NetDecision, PackageResolve, PackageVerify, PinDecision, PolicyDecision, PolicyVerdict, ProxyDecision,
    Redactor, Resources, SandboxDenial, SandboxLayer, SandboxLayers, SessionEnd, SessionStart, Source, SourceDigests,
    SourceKind, ToolChanged, ToolPinned, VerifyResult,
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

fn sha256(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// One of every event type (and every variant of the ones with variants).
fn every_event() -> Vec<String> {
    let redactor = Arc::new(Redactor::new([("API_TOKEN", "tok-very-secret")]));
    let (log, lines) = AuditLog::memory(redactor).unwrap();

    // A package run: resolve, verify, policy, then the session.
    let resolve = PackageResolve {
        registry: "https://registry.example".into(),
        reference: "acme/hello@1.2".into(),
        package: "acme/hello".into(),
        version: "1.2.3".into(),
        status: "published".into(),
        certification_level: 2,
        origin: "verified".into(),
        manifest_digest: sha256('a'),
        bundle_digest: sha256('b'),
        bundle_size: 1234,
        offline: false,
        answer_age_s: None,
    };
    log.package_resolve(resolve.clone()).unwrap();
    log.package_resolve(PackageResolve {
        status: "deprecated".into(),
        offline: true,
        answer_age_s: Some(3600),
        ..resolve
    })
    .unwrap();
    let verify = PackageVerify {
        package: "acme/hello".into(),
        version: "1.2.3".into(),
        artifact: Artifact::Manifest,
        digest: sha256('a'),
        size: Some(512),
        cached: false,
        result: VerifyResult::Verified,
        reason: None,
    };
    log.package_verify(verify.clone()).unwrap();
    log.package_verify(PackageVerify {
        artifact: Artifact::Bundle,
        digest: sha256('b'),
        size: None,
        cached: true,
        result: VerifyResult::Refused,
        reason: Some(format!("content hashes to {}, not {}", sha256('c'), sha256('b'))),
        ..verify
    })
    .unwrap();
    let policy = PolicyDecision {
        package: "acme/hello".into(),
        version: "1.2.3".into(),
        decision: PolicyVerdict::Allowed,
        reasons: Vec::new(),
        network_granted: vec!["api.example.com:443".into()],
        environment_granted: vec!["API_TOKEN".into()],
        notes: vec!["limits_recommended.memory 2G not applied: the configured 512M is lower".into()],
    };
    log.policy_decision(policy.clone()).unwrap();
    log.policy_decision(PolicyDecision {
        decision: PolicyVerdict::Warned,
        reasons: vec!["status deprecated".into()],
        ..policy.clone()
    })
    .unwrap();
    log.policy_decision(PolicyDecision {
        decision: PolicyVerdict::Refused,
        reasons: vec!["policy.min_cert_level = 3 (policy.cert_level_mode = strict): level 2".into()],
        network_granted: Vec::new(),
        environment_granted: Vec::new(),
        notes: Vec::new(),
        ..policy
    })
    .unwrap();

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
    exec.source = Source::registry(
        "org/name@1.2.3",
        "org/name",
        "1.2.3",
        SourceDigests {
            manifest: sha256('a'),
            bundle: sha256('b'),
        },
        "https://registry.example",
    );
    log.session_start(exec).unwrap();
    for kind in [SourceKind::Npm, SourceKind::Pypi] {
        let mut installed = SessionStart::new(Command::Run, "/usr/bin/node", &[], "/tmp/x");
        installed.source = Source::installed(
            kind,
            "npm:@scope/server@1.2.3",
            "@scope/server",
            "1.2.3",
            sha256('c'),
            sha256('d'),
            "https://registry.npmjs.org/",
        );
        log.session_start(installed).unwrap();
    }

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

    log.tool_pinned(ToolPinned {
        server: "acme/hello".into(),
        server_id: "0123456789ab".into(),
        tool: "read_file".into(),
        digest: "0a".repeat(32),
    })
    .unwrap();
    for decision in [PinDecision::Hidden, PinDecision::Warned] {
        log.tool_changed(ToolChanged {
            server: "-- /usr/bin/python3 server.py --token=[REDACTED]".into(),
            server_id: "ba9876543210".into(),
            tool: "read_file".into(),
            old_digest: "0a".repeat(32),
            new_digest: "0b".repeat(32),
            fields: vec!["description".into(), "schema".into()],
            decision,
        })
        .unwrap();
    }

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
            "package.resolve",
            "package.verify",
            "policy.decision",
            "session.start",
            "sandbox.ready",
            "proxy.decision",
            "sandbox.denial",
            "net.connect",
            "tool.pinned",
            "tool.changed",
            "session.end"
        ]
    );
    let start = lines
        .iter()
        .find(|l| l.contains(r#""event_type":"session.start""#))
        .unwrap();
    assert!(start.contains("--token=[REDACTED:secret:API_TOKEN]"), "{start}");
}

/// The first line of `event_type` in [`every_event`].
fn first(event_type: &str) -> Value {
    every_event()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event_type"] == event_type)
        .unwrap()
}

#[test]
fn bad_events_fail_validation() {
    let v = validator();
    let good = first("session.start");
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

    let mut bad_layer = first("sandbox.ready");
    bad_layer["sandbox"]["layers"][0]["status"] = "mostly".into();
    assert!(!v.is_valid(&bad_layer));
}

#[test]
fn bad_package_events_fail_validation() {
    let v = validator();

    let resolve = first("package.resolve");
    assert!(v.is_valid(&resolve));
    let mut no_ref = resolve.clone();
    no_ref.as_object_mut().unwrap().remove("ref");
    assert!(!v.is_valid(&no_ref));
    let mut bad_digest = resolve.clone();
    bad_digest["bundle_digest"] = "sha256:abc".into();
    assert!(!v.is_valid(&bad_digest));
    let mut online_age = resolve.clone();
    online_age["answer_age_s"] = 5.into();
    assert!(!v.is_valid(&online_age), "answer_age_s is for offline answers only");

    let verify = first("package.verify");
    assert!(v.is_valid(&verify));
    let mut unknown_result = verify.clone();
    unknown_result["result"] = "maybe".into();
    assert!(!v.is_valid(&unknown_result));
    let mut unknown_artifact = verify.clone();
    unknown_artifact["artifact"] = "evidence".into();
    assert!(!v.is_valid(&unknown_artifact));
    let mut refused_without_reason = verify.clone();
    refused_without_reason["result"] = "refused".into();
    assert!(!v.is_valid(&refused_without_reason));

    let policy = first("policy.decision");
    assert!(v.is_valid(&policy));
    let mut unknown_decision = policy.clone();
    unknown_decision["decision"] = "maybe".into();
    assert!(!v.is_valid(&unknown_decision));
    let mut refused_without_reason = policy.clone();
    refused_without_reason["decision"] = "refused".into();
    assert!(!v.is_valid(&refused_without_reason));
    let mut extra = policy.clone();
    extra["filesystem_granted"] = serde_json::json!(["/data"]);
    assert!(!v.is_valid(&extra));

    let mut start = first("session.start");
    start["source"] = serde_json::json!({"kind": "local", "package": "acme/hello"});
    assert!(!v.is_valid(&start), "registry fields on a local source");
    start["source"] = serde_json::json!({"kind": "registry", "digests": {"manifest": sha256('a')}});
    assert!(!v.is_valid(&start), "digests needs both");
}
