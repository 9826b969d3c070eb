//! The file sink: O_APPEND, one write per line, mode 0600.

#![allow(clippy::unwrap_used, reason = "test helpers: a failure is a test failure")]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use mcp_j_audit::{AuditLog, Direction, MessageKind, ProxyDecision, Redactor, Resources, SessionEnd};
use serde_json::Value;

/// A message the proxy dropped, for `reason`.
fn dropped(reason: String, bytes: u64) -> ProxyDecision {
    ProxyDecision {
        direction: Direction::ServerToClient,
        message_kind: MessageKind::Invalid,
        method: None,
        request_id: None,
        tool: None,
        decision: "dropped",
        code: None,
        reason: Some(reason),
        rewritten: None,
        bytes,
        duration_ms: None,
        args_sha256: None,
        error_code: None,
    }
}

#[test]
fn two_logs_two_threads_every_line_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let redactor = Arc::new(Redactor::default());
    let a = AuditLog::open(&path, redactor.clone()).unwrap();
    let b = AuditLog::open(&path, redactor).unwrap();
    // Long enough lines that interleaved writes would show.
    let reason = "x".repeat(3000);
    std::thread::scope(|s| {
        for log in [&a, &b] {
            let reason = reason.clone();
            s.spawn(move || {
                for i in 0..1000u64 {
                    log.proxy_decision(dropped(reason.clone(), i));
                }
            });
        }
    });
    assert_eq!(a.failures() + b.failures(), 0);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut per_session = std::collections::HashMap::<String, u64>::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:.80}"));
        *per_session
            .entry(v["session_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_session.len(), 2);
    assert!(per_session.values().all(|&n| n == 1000), "{per_session:?}");
    assert_ne!(a.session_id(), b.session_id());
}

#[test]
fn new_file_is_0600_and_appended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, "").unwrap();
    std::fs::remove_file(&path).unwrap();
    let log = AuditLog::open(&path, Arc::new(Redactor::default())).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    log.session_end(SessionEnd::exited(0, Duration::ZERO, Resources::unmeasured()))
        .unwrap();
    drop(log);
    let log = AuditLog::open(&path, Arc::new(Redactor::default())).unwrap();
    log.session_end(SessionEnd::exited(1, Duration::ZERO, Resources::unmeasured()))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.ends_with('\n'));
}

#[test]
fn secrets_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // A secret with JSON-special characters: redacted before escaping, so still found.
    let secret = "p\"ss\\w0rd\n";
    let log = AuditLog::open(&path, Arc::new(Redactor::new([("DB_PASS", secret)]))).unwrap();
    let token = format!("ghp_{}", "Z9".repeat(18));
    log.proxy_decision(dropped(format!("garbage: {secret} {token}"), 1));
    log.session_end(SessionEnd::failed(
        format!("setup failed near {secret}"),
        Duration::ZERO,
    ))
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&token));
    assert!(!text.contains("ss\\\\w0rd"), "{text}");
    assert!(!text.contains("w0rd"), "{text}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let s = v.to_string();
        assert!(s.contains("[REDACTED:secret:DB_PASS]"), "{s}");
    }
    assert!(text.contains("[REDACTED:github-token]"));
}

#[test]
fn null_log_writes_nothing() {
    let log = AuditLog::null();
    assert!(!log.is_enabled());
    log.session_end(SessionEnd::exited(0, Duration::ZERO, Resources::unmeasured()))
        .unwrap();
    assert_eq!(log.session_id().len(), 32);
}
