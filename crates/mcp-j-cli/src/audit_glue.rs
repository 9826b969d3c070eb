//! The engine's and the proxy's reports, events and outcomes as audit events.
//!
//! The audit crate is a leaf: its events carry its own plain types and it knows neither the
//! sandbox engine nor the proxy. The conversions live here, in the binary that uses all
//! three, so a new source of events (network, packages, pins) adds no edge between crates.

use std::time::Duration;

use mcp_j_audit::{
    Direction, LayerStatus, MessageKind, ProxyDecision, Resources, SandboxDenial, SandboxLayer, SandboxLayers,
    SessionEnd, errno_name,
};
use mcp_j_engine::{Denial, Outcome, SandboxReport, Usage};
use mcp_j_proxy::{Decision, ProxyEvent};

/// The sandbox report, as `sandbox.ready` records it.
pub fn sandbox_layers(report: &SandboxReport) -> SandboxLayers {
    SandboxLayers {
        layers: report
            .layers
            .iter()
            .map(|l| SandboxLayer::new(&l.name, layer_status(l.status), l.means.clone()))
            .collect(),
    }
}

fn layer_status(status: mcp_j_engine::LayerStatus) -> LayerStatus {
    match status {
        mcp_j_engine::LayerStatus::Absent => LayerStatus::Absent,
        mcp_j_engine::LayerStatus::Partial => LayerStatus::Partial,
        mcp_j_engine::LayerStatus::Enforced => LayerStatus::Enforced,
    }
}

/// One proxy event as `proxy.decision`.
pub fn proxy_decision(e: &ProxyEvent) -> ProxyDecision {
    let (decision, code, reason, rewritten) = match &e.decision {
        Decision::Forwarded => ("forwarded", None, None, None),
        Decision::Rejected { code, reason } => ("rejected", Some(*code), Some(reason.clone()), None),
        Decision::Dropped { reason } => ("dropped", None, Some(reason.clone()), None),
        Decision::Rewritten { what } => ("rewritten", None, None, Some(what.clone())),
        Decision::ToolHidden { reason } => ("tool_hidden", None, Some(reason.clone()), None),
    };
    ProxyDecision {
        direction: match e.direction {
            mcp_j_proxy::Direction::ClientToServer => Direction::ClientToServer,
            mcp_j_proxy::Direction::ServerToClient => Direction::ServerToClient,
        },
        message_kind: match e.kind {
            mcp_j_proxy::MessageKind::Request => MessageKind::Request,
            mcp_j_proxy::MessageKind::Notification => MessageKind::Notification,
            mcp_j_proxy::MessageKind::Response => MessageKind::Response,
            mcp_j_proxy::MessageKind::ErrorResponse => MessageKind::ErrorResponse,
            mcp_j_proxy::MessageKind::Invalid => MessageKind::Invalid,
            mcp_j_proxy::MessageKind::Oversize => MessageKind::Oversize,
        },
        method: e.method.clone(),
        request_id: e.id.clone(),
        tool: e.tool.clone(),
        decision,
        code,
        reason,
        rewritten,
        bytes: e.bytes,
        duration_ms: e.duration.map(|d| d.as_secs_f64() * 1000.0),
        args_sha256: e.args_sha256.clone(),
        error_code: e.error_code,
    }
}

/// A denial the jail observed, as `sandbox.denial`.
pub fn sandbox_denial(d: &Denial) -> SandboxDenial {
    let mut denial = if d.what == "execve" {
        SandboxDenial::exec_denied(d.errno)
    } else {
        SandboxDenial::new("seccomp", d.what, d.errno)
    };
    // The program a refused execve named, as init read it (for the record only).
    denial.detail = d.program.clone();
    denial
}

/// What the jail used, and how that was measured.
pub fn resources(u: &Usage) -> Resources {
    let cpu = Duration::from_micros(u.cpu_time_usec);
    match u.measured_by {
        "cgroup" => Resources::cgroup(Some(u.peak_memory_bytes), Some(cpu)),
        "rusage" => Resources::rusage(u.peak_memory_bytes, cpu),
        _ => Resources::unmeasured(),
    }
}

/// `session.end` from the engine's outcome and usage; `duration` since session start.
pub fn session_end(outcome: Outcome, usage: &Usage, duration: Duration) -> SessionEnd {
    let resources = resources(usage);
    match outcome {
        Outcome::Exited(code) => SessionEnd::exited(code, duration, resources),
        Outcome::Signaled(sig) => SessionEnd::signaled(sig, duration, resources),
        Outcome::TimedOut => SessionEnd::timed_out(None, duration, resources),
        Outcome::ExecFailed(errno) => SessionEnd {
            resources,
            ..SessionEnd::failed(
                format!(
                    "the program could not be executed: errno {errno}{}",
                    errno_name(errno).map(|n| format!(" ({n})")).unwrap_or_default()
                ),
                duration,
            )
        },
    }
}

/// `net.connect` for one connection through the egress layer.
pub fn net_connect(e: &mcp_j_egress::event::ConnectEvent) -> mcp_j_audit::NetConnect {
    use mcp_j_egress::event::Outcome;
    mcp_j_audit::NetConnect {
        destination: e.host.clone(),
        port: e.port,
        via: e.via.as_str().to_owned(),
        address: e.addr.map(|a| a.ip().to_string()),
        rule: e.rule.clone(),
        decision: match e.outcome {
            Outcome::Allowed => mcp_j_audit::NetDecision::Allowed,
            Outcome::Refused { .. } => mcp_j_audit::NetDecision::Refused,
            Outcome::Failed { .. } => mcp_j_audit::NetDecision::Failed,
        },
        reason: e.outcome.reason().map(str::to_owned),
        bytes_sent: e.bytes_up,
        bytes_received: e.bytes_down,
        duration_ms: u64::try_from(e.duration.as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    //! The JSON each conversion writes, pinned field by field: these conversions moved here
    //! from the audit crate and the lines they produce must not change.

    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use mcp_j_audit::{AuditLog, EventBody, Redactor};
    use mcp_j_engine::Layer;
    use serde_json::{Value, json};

    use super::*;

    /// The event's own fields, without the envelope.
    fn body(event: impl Into<EventBody>) -> Value {
        let log = AuditLog::null();
        let line = log.line(&log.envelope_at(event, UNIX_EPOCH)).unwrap();
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        for key in ["schema_version", "timestamp", "session_id", "host"] {
            v.as_object_mut().unwrap().remove(key);
        }
        v
    }

    fn event(decision: Decision) -> ProxyEvent {
        ProxyEvent::new(
            mcp_j_proxy::Direction::ServerToClient,
            mcp_j_proxy::MessageKind::Response,
            decision,
            7,
        )
    }

    #[test]
    fn proxy_events() {
        let mut call = ProxyEvent::new(
            mcp_j_proxy::Direction::ClientToServer,
            mcp_j_proxy::MessageKind::Request,
            Decision::Rejected {
                code: -32602,
                reason: "tool not allowed".into(),
            },
            93,
        );
        call.method = Some("tools/call".into());
        call.id = Some("7".into());
        call.tool = Some("delete_repo".into());
        call.args_sha256 = Some("0f".repeat(32));
        assert_eq!(
            body(proxy_decision(&call)),
            json!({"event_type": "proxy.decision", "direction": "client_to_server", "message_kind": "request",
                   "method": "tools/call", "request_id": "7", "tool": "delete_repo", "decision": "rejected",
                   "code": -32602, "reason": "tool not allowed", "bytes": 93, "args_sha256": "0f".repeat(32)})
        );
        let mut resp = ProxyEvent::new(
            mcp_j_proxy::Direction::ServerToClient,
            mcp_j_proxy::MessageKind::ErrorResponse,
            Decision::Forwarded,
            50,
        );
        resp.duration = Some(Duration::from_micros(1500));
        resp.error_code = Some(-32000);
        assert_eq!(
            body(proxy_decision(&resp)),
            json!({"event_type": "proxy.decision", "direction": "server_to_client", "message_kind": "error_response",
                   "decision": "forwarded", "bytes": 50, "duration_ms": 1.5, "error_code": -32000})
        );
        assert_eq!(
            body(proxy_decision(&event(Decision::Dropped {
                reason: "not JSON".into()
            }))),
            json!({"event_type": "proxy.decision", "direction": "server_to_client", "message_kind": "response",
                   "decision": "dropped", "reason": "not JSON", "bytes": 7})
        );
        assert_eq!(
            body(proxy_decision(&event(Decision::Rewritten {
                what: "2 tools hidden".into()
            }))),
            json!({"event_type": "proxy.decision", "direction": "server_to_client", "message_kind": "response",
                   "decision": "rewritten", "rewritten": "2 tools hidden", "bytes": 7})
        );
        let kinds = [
            (mcp_j_proxy::MessageKind::Request, "request"),
            (mcp_j_proxy::MessageKind::Notification, "notification"),
            (mcp_j_proxy::MessageKind::Response, "response"),
            (mcp_j_proxy::MessageKind::ErrorResponse, "error_response"),
            (mcp_j_proxy::MessageKind::Invalid, "invalid"),
            (mcp_j_proxy::MessageKind::Oversize, "oversize"),
        ];
        for (kind, name) in kinds {
            let e = ProxyEvent::new(mcp_j_proxy::Direction::ClientToServer, kind, Decision::Forwarded, 1);
            assert_eq!(body(proxy_decision(&e))["message_kind"], name);
            // The proxy's own serialisation (`-vv`) names them the same way.
            assert_eq!(serde_json::to_value(&e).unwrap()["kind"], name);
        }
    }

    #[test]
    fn sandbox_report() {
        let report = SandboxReport {
            layers: vec![
                Layer::new("namespaces", mcp_j_engine::LayerStatus::Enforced, "user, mount, pid"),
                Layer::new("landlock", mcp_j_engine::LayerStatus::Partial, "Landlock ABI 3"),
                Layer::new("memory", mcp_j_engine::LayerStatus::Absent, "no cgroup"),
            ],
        };
        let layers = sandbox_layers(&report);
        // Exactly what the engine's report serialises to, under `sandbox`.
        assert_eq!(
            serde_json::to_value(&layers).unwrap(),
            serde_json::to_value(&report).unwrap()
        );
        assert_eq!(
            body(mcp_j_audit::SandboxReady::new(layers, Some(42))),
            json!({"event_type": "sandbox.ready", "jail_pid": 42, "sandbox": {"layers": [
                {"name": "namespaces", "status": "enforced", "means": "user, mount, pid"},
                {"name": "landlock", "status": "partial", "means": "Landlock ABI 3"},
                {"name": "memory", "status": "absent", "means": "no cgroup"}]}})
        );
    }

    #[test]
    fn denials() {
        let exec = Denial {
            what: "execve",
            errno: 1,
            at: SystemTime::now(),
            program: Some("/bin/sh".into()),
        };
        assert_eq!(
            body(sandbox_denial(&exec)),
            json!({"event_type": "sandbox.denial", "layer": "no_subprocess", "syscall": "execve", "errno": 1,
                   "errno_name": "EPERM", "detail": "/bin/sh"})
        );
        let other = Denial {
            what: "ptrace",
            errno: 38,
            at: SystemTime::now(),
            program: None,
        };
        assert_eq!(
            body(sandbox_denial(&other)),
            json!({"event_type": "sandbox.denial", "layer": "seccomp", "syscall": "ptrace", "errno": 38,
                   "errno_name": "ENOSYS"})
        );
    }

    #[test]
    fn outcomes_and_usage() {
        let d = Duration::from_millis(1234);
        let cgroup = Usage {
            cpu_time_usec: 2_500_000,
            peak_memory_bytes: 1 << 20,
            measured_by: "cgroup",
        };
        assert_eq!(
            body(session_end(Outcome::Exited(3), &cgroup, d)),
            json!({"event_type": "session.end", "outcome": "exited", "exit_code": 3, "timed_out": false,
                   "duration_ms": 1234.0, "resources": {"peak_memory_bytes": 1048576, "cpu_time_ms": 2500,
                   "measured_by": "cgroup", "peak_memory_scope": "jail"}})
        );
        let rusage = Usage {
            measured_by: "rusage",
            ..cgroup
        };
        assert_eq!(
            body(session_end(Outcome::Signaled(9), &rusage, d)),
            json!({"event_type": "session.end", "outcome": "signaled", "signal": 9, "timed_out": false,
                   "duration_ms": 1234.0, "resources": {"peak_memory_bytes": 1048576, "cpu_time_ms": 2500,
                   "measured_by": "rusage", "peak_memory_scope": "largest_process"}})
        );
        let none = Usage {
            measured_by: "none",
            ..cgroup
        };
        assert_eq!(
            body(session_end(Outcome::TimedOut, &none, d)),
            json!({"event_type": "session.end", "outcome": "timed_out", "timed_out": true,
                   "duration_ms": 1234.0, "resources": {"measured_by": "none"}})
        );
        assert_eq!(
            body(session_end(Outcome::ExecFailed(2), &none, d)),
            json!({"event_type": "session.end", "outcome": "failed", "timed_out": false,
                   "error": "the program could not be executed: errno 2 (ENOENT)",
                   "duration_ms": 1234.0, "resources": {"measured_by": "none"}})
        );
    }

    #[test]
    fn converted_events_are_redacted() {
        let (log, lines) = AuditLog::memory(Arc::new(Redactor::new([("DB_PASS", "p4ssw0rd!")]))).unwrap();
        log.proxy_decision(proxy_decision(&event(Decision::Dropped {
            reason: "garbage: p4ssw0rd!".into(),
        })));
        assert_eq!(log.failures(), 0);
        let lines = lines.lines();
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains(r#""reason":"garbage: [REDACTED:secret:DB_PASS]""#),
            "{}",
            lines[0]
        );
    }
}
