//! One event per decision, for the audit layer.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// Which way a message was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the MCP client (our stdin) towards the server.
    ClientToServer,
    /// From the server (its stdout) towards the client.
    ServerToClient,
}

/// What the message was, as far as the proxy could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A request (has `method` and `id`).
    Request,
    /// A notification (has `method`, no `id`).
    Notification,
    /// A success response (`result`).
    Response,
    /// An error response (`error`).
    ErrorResponse,
    /// Not a valid JSON-RPC message (not UTF-8, not JSON, bad shape, too deep).
    Invalid,
    /// A line over the size limit, discarded unread.
    Oversize,
}

/// What the proxy did with the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Passed on unchanged (the original bytes).
    Forwarded,
    /// Not passed on; the proxy answered the sender with a JSON-RPC error.
    Rejected {
        /// The JSON-RPC error code sent back.
        code: i64,
        /// Why, in words.
        reason: String,
    },
    /// Not passed on, and not answered (responses, notifications, server garbage).
    Dropped {
        /// Why, in words.
        reason: String,
    },
    /// Passed on with changes the proxy made.
    Rewritten {
        /// What was changed.
        what: String,
    },
    /// Tool pinning: one tool removed from a listing (`tools/list` or `server/discover`)
    /// because its definition changed since it was pinned; calls to it are refused until
    /// a later listing passes it. One such event per hidden tool, with `tool` set, after
    /// the event of the response it was removed from.
    ToolHidden {
        /// The pins' message: the tool and what changed.
        reason: String,
    },
}

/// One decision about one message.
///
/// Serialises flat for log pipelines, e.g.
/// `{"direction":"client_to_server","kind":"request","method":"tools/call","id":"7",
/// "tool":"delete_repo","decision":"rejected","code":-32602,"reason":"tool not allowed",
/// "bytes":93,"args_sha256":"…"}`. Argument values never appear: only their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyEvent {
    /// Which way the message was going.
    pub direction: Direction,
    /// What the message was.
    pub kind: MessageKind,
    /// The JSON-RPC method; for responses, the method of the request they answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request id as text (a string id as is, a number in decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool, for `tools/call` requests and their responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What the proxy did.
    #[serde(flatten)]
    pub decision: Decision,
    /// Size of the message as received, in bytes (newline excluded).
    pub bytes: u64,
    /// For responses: time since the request passed the proxy.
    #[serde(
        rename = "duration_ms",
        serialize_with = "millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// SHA-256 (hex) of the `tools/call` arguments in canonical JSON (keys sorted, no
    /// whitespace). Never the values themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_sha256: Option<String>,
    /// For error responses: the JSON-RPC error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

fn millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

impl ProxyEvent {
    /// An event with only the essentials set.
    pub fn new(direction: Direction, kind: MessageKind, decision: Decision, bytes: u64) -> Self {
        ProxyEvent {
            direction,
            kind,
            method: None,
            id: None,
            tool: None,
            decision,
            bytes,
            duration: None,
            args_sha256: None,
            error_code: None,
        }
    }
}

/// Where events go (the audit layer). Called on the proxy's task: keep it quick.
pub trait EventSink: Send + Sync {
    /// One event.
    fn event(&self, event: &ProxyEvent);
}

/// A sink that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&self, _event: &ProxyEvent) {}
}

impl<F: Fn(&ProxyEvent) + Send + Sync> EventSink for F {
    fn event(&self, event: &ProxyEvent) {
        self(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_flat_with_siem_names() {
        let mut e = ProxyEvent::new(
            Direction::ClientToServer,
            MessageKind::Request,
            Decision::Rejected {
                code: -32602,
                reason: "tool not allowed".into(),
            },
            42,
        );
        e.method = Some("tools/call".into());
        e.id = Some("7".into());
        e.tool = Some("rm".into());
        e.duration = Some(Duration::from_micros(1500));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["direction"], "client_to_server");
        assert_eq!(v["kind"], "request");
        assert_eq!(v["decision"], "rejected");
        assert_eq!(v["code"], -32602);
        assert_eq!(v["reason"], "tool not allowed");
        assert_eq!(v["tool"], "rm");
        assert_eq!(v["duration_ms"], 1.5);
        assert!(v.get("args_sha256").is_none());
    }
}
