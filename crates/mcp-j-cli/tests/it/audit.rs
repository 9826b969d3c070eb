//! The audit log and secrets end to end, as root and as the unprivileged user: a server
//! that prints its secret and a GitHub-shaped token to stderr; the secret reaches the
//! server, and neither appears in our stderr, the audit log, or any error output; every
//! audit line validates against docs/audit.schema.json; a denied tool call and the
//! session's end are recorded. (Bad secrets exiting 125 without their value: tests/config.rs.)

// Test helpers outside #[test] functions may panic on broken plumbing.
#![allow(clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::common::session::Session;
use crate::common::{sandbox_test, test_name};
use serde_json::{Value, json};

fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/audit.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Every line of the audit log, each validated against the schema.
fn audit_events(path: &Path) -> Vec<Value> {
    let validator = schema();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("audit log {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
            let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{line}\ndoes not match the schema: {errors:?}");
            event
        })
        .collect()
}

const GITHUB_TOKEN_TAIL: &str = "A1b2A1b2A1b2A1b2A1b2A1b2A1b2A1b2A1b2";

#[test]
fn secrets_reach_only_the_server_and_every_decision_is_audited() {
    sandbox_test(test_name!(), &[], |run| {
        let secret = format!("s3cr3t-{}", common::unique("value"));
        let logs = run.tempdir();
        let audit = logs.path().join("audit.jsonl");
        let audit_arg = audit.display().to_string();
        let mut s = Session::start_with_env(
            run,
            &[
                "--audit-log",
                &audit_arg,
                "--deny-tool",
                "secret",
                "--secret",
                "MY_SECRET=env:MCPJ_TEST_SECRET",
            ],
            &[],
            &[("MCPJ_TEST_SECRET", &secret)],
        );
        let r = s.request(1, "tools/call", json!({"name": "secret", "arguments": {"x": 1}}));
        assert_eq!(r["error"]["code"], -32602);
        assert_eq!(s.request(2, "leak", json!({}))["result"], json!({}));
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(0));

        // The secret reached the server...
        let seen = std::fs::read_to_string(s.workdir.path().join("secret-seen.txt")).unwrap_or_default();
        assert_eq!(seen, secret, "the server did not get its secret");
        // ...and nowhere else.
        let stderr = s.stderr();
        let log_text = std::fs::read_to_string(&audit).unwrap_or_default();
        for (name, text) in [("our stderr", &stderr), ("the audit log", &log_text)] {
            assert!(!text.contains(&secret), "the secret leaked into {name}:\n{text}");
            assert!(
                !text.contains(GITHUB_TOKEN_TAIL),
                "the GitHub token leaked into {name}:\n{text}"
            );
        }
        assert!(
            stderr.contains("[REDACTED"),
            "the stderr line was not relayed redacted: {stderr}"
        );

        let events = audit_events(&audit);
        let of_type = |t: &str| events.iter().filter(|e| e["event_type"] == t).collect::<Vec<_>>();
        let start = of_type("session.start");
        assert_eq!(start.len(), 1, "{events:?}");
        assert!(start[0]["secret_names"] == json!(["MY_SECRET"]), "{}", start[0]);
        let ready = of_type("sandbox.ready");
        assert_eq!(ready.len(), 1, "{events:?}");
        let layers = ready[0].to_string();
        for layer in ["namespaces", "landlock", "seccomp", "pids", "memory"] {
            assert!(
                layers.contains(layer),
                "sandbox.ready lacks the `{layer}` layer: {layers}"
            );
        }
        let denied = of_type("proxy.decision")
            .into_iter()
            .filter(|e| e.to_string().contains("\"secret\"") && e.to_string().contains("-32602"))
            .count();
        assert_eq!(denied, 1, "the denied call is not recorded: {events:?}");
        let end = of_type("session.end");
        assert_eq!(end.len(), 1, "{events:?}");
        assert!(end[0].to_string().contains("\"exit_code\":0"), "{}", end[0]);
        assert!(
            end[0].to_string().contains("cpu_time_ms"),
            "usage is recorded: {}",
            end[0]
        );
        assert!(end[0].to_string().contains("cpu_time"), "usage is recorded: {}", end[0]);
        // One session id throughout.
        let ids: std::collections::BTreeSet<String> = events.iter().map(|e| e["session_id"].to_string()).collect();
        assert_eq!(ids.len(), 1, "{ids:?}");
    });
}

#[test]
fn exec_sessions_record_denials_and_the_end() {
    sandbox_test(test_name!(), &[], |run| {
        let logs = run.tempdir();
        let audit = logs.path().join("audit.jsonl");
        run.exec()
            .opt("--audit-log", &audit)
            .opts(["--no-subprocess"])
            .program(["/bin/sh", "-c", "/bin/true 2>/dev/null; exit 3"])
            .run()
            .assert_code(3);
        let events = audit_events(&audit);
        let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
        assert_eq!(
            types,
            ["session.start", "sandbox.ready", "sandbox.denial", "session.end"]
        );
        assert_eq!(events[2]["syscall"], "execve");
        assert_eq!(events[2]["errno_name"], "EPERM");
        assert_eq!(events[2]["detail"], "/bin/true", "the refused program is on record");
        assert_eq!(events[0]["limits"]["max_file_size_bytes"], 1u64 << 30);
        assert_eq!(events[3]["exit_code"], 3);
    });
}
