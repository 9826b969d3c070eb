//! The session: per-direction pending requests and every per-message decision, without
//! I/O. [`Session::client_frame`] and [`Session::server_frame`] take one framed line and
//! return an [`Outcome`]: what to write to whom, the event, and a log line.
//!
//! This file holds the state and the dispatch: a line is validated, sorted by kind and
//! direction, and handed to
//! - `pending` (`session/pending.rs`), the id bookkeeping: the pending request tables of
//!   both directions, the responses that match no pending request (forged, duplicate,
//!   late), cancellation, and the answers owed when the server stops;
//! - `policy` (`session/policy.rs`), the MCP policy: `tools/call` and tool listings,
//!   client capabilities, server requests and `input_required` results;
//! - `pins` (`session/pins.rs`), tool pinning (when the session has [`ToolPins`]): the
//!   check of every listed tool, the calls refused, and the proxy's own listing before a
//!   first call.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::value::RawValue;

use crate::codec::Frame;
use crate::config::{ClientFeature, ProxyConfig};
use crate::event::{Decision, Direction, MessageKind, ProxyEvent};
use crate::json;
use crate::message::{self, Body, Id, IdKey, Invalid, Message};
use crate::pins::{PinKind, ToolPins};

mod pending;
mod pins;
mod policy;

pub use crate::json::{canonical_sha256, error_response};
#[cfg(test)]
pub(crate) use policy::close_matches;
pub use policy::{META_CLIENT_CAPABILITIES, filter_tools};

use pending::{ClientPending, ServerPending, cancelled_request_id};
use pins::PinState;
#[cfg(test)]
pub(crate) use pins::pinned_entry;
use policy::{CLIENT_POLICY_REQUESTS, ClientRequest};

/// Longest method / tool name kept in session state and events.
const MAX_NAME_BYTES: usize = 256;

/// What to send: the line as received, or bytes the proxy made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The original line, byte for byte (without its newline).
    Original,
    /// A message the proxy wrote (an error reply, or a rewritten message).
    Owned(Vec<u8>),
}

impl Payload {
    /// The bytes to write (without the newline), given the original line.
    pub fn bytes<'a>(&'a self, original: &'a [u8]) -> &'a [u8] {
        match self {
            Payload::Original => original,
            Payload::Owned(v) => v,
        }
    }
}

/// The result of one line: at most one message each way, an event, a log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Write this to the server's stdin.
    pub to_server: Option<Payload>,
    /// Write this to the client (our stdout).
    pub to_client: Option<Payload>,
    /// The decision, for the audit layer (`None` for blank lines, and for a `tools/call`
    /// held until the proxy's own tool listing is checked: its event comes when it is
    /// forwarded or refused).
    pub event: Option<ProxyEvent>,
    /// A line for our stderr (already free of control characters).
    pub log: Option<String>,
    /// When `to_server` carries a client request: its id. If writing it to the server
    /// fails, [`Session::server_input_failed`] answers it.
    pub request: Option<IdKey>,
    /// Tool pinning: more events, after `event` (tools hidden from a listing, calls that
    /// were held and are now forwarded or refused).
    pub more_events: Vec<ProxyEvent>,
    /// Tool pinning: held client requests now forwarded, after `to_server`, each with its
    /// id (answered by [`Session::server_input_failed`] if its write fails).
    pub more_to_server: Vec<(Vec<u8>, IdKey)>,
    /// Tool pinning: answers to held client requests, after `to_client`.
    pub more_to_client: Vec<Vec<u8>>,
}

/// Session state: requests pending in each direction (ids may collide across directions,
/// so they are kept apart) and whether the server still reads its input.
#[derive(Debug)]
pub struct Session<'p> {
    config: ProxyConfig,
    client_pending: HashMap<IdKey, ClientPending>,
    server_pending: HashMap<IdKey, ServerPending>,
    /// Set once the server no longer takes requests: why.
    closed: Option<&'static str>,
    seq: u64,
    /// The tool names of the server's first complete listing, page by page, until it is
    /// complete and checked against the tool policy (`None` then).
    first_listing: Option<BTreeSet<String>>,
    /// Tool pinning, when on.
    pins: Pins<'p>,
    /// Tool pinning state (empty when off).
    pin: PinState,
}

/// The caller's [`ToolPins`], if any (a wrapper for `Debug`).
#[derive(Clone, Copy)]
struct Pins<'p>(Option<&'p dyn ToolPins>);

impl std::fmt::Debug for Pins<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Pins(on)" } else { "Pins(off)" })
    }
}

fn capped(s: &str) -> String {
    if s.len() <= MAX_NAME_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_NAME_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Text safe for a terminal: control characters (C0, DEL, C1) and invalid UTF-8 shown
/// escaped, so nothing the server writes can drive the user's terminal.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let n = c as u32;
        if (n < 0x20 && c != '\t') || (0x7f..0xa0).contains(&n) || c == '\u{2028}' || c == '\u{2029}' {
            let _ = write!(out, "\\u{{{n:x}}}");
        } else {
            out.push(c);
        }
    }
    out
}

fn kind_of(body: &Body<'_>) -> MessageKind {
    match body {
        Body::Request { .. } => MessageKind::Request,
        Body::Notification { .. } => MessageKind::Notification,
        Body::Response { .. } => MessageKind::Response,
        Body::ErrorResponse { .. } => MessageKind::ErrorResponse,
    }
}

fn rejected(code: i64, reason: impl Into<String>) -> Decision {
    Decision::Rejected {
        code,
        reason: reason.into(),
    }
}

fn dropped(reason: impl Into<String>) -> Decision {
    Decision::Dropped { reason: reason.into() }
}

impl<'p> Session<'p> {
    /// A fresh session under `config`, without tool pinning.
    pub fn new(config: &ProxyConfig) -> Self {
        Self::with_pins(config, None)
    }

    /// A fresh session under `config`, checking every listed tool with `pins` (crate docs,
    /// *Tool pinning*); `None` is [`Session::new`].
    pub fn with_pins(config: &ProxyConfig, pins: Option<&'p dyn ToolPins>) -> Self {
        Session {
            config: config.clone(),
            client_pending: HashMap::new(),
            server_pending: HashMap::new(),
            closed: None,
            seq: 0,
            first_listing: (!config.tools.is_open()).then(BTreeSet::new),
            pins: Pins(pins),
            pin: PinState::default(),
        }
    }

    fn event(&self, direction: Direction, kind: MessageKind, decision: Decision, bytes: usize) -> ProxyEvent {
        ProxyEvent::new(direction, kind, decision, bytes as u64)
    }

    // ----- client → server -------------------------------------------------------------

    /// One framed line from the client.
    pub fn client_frame(&mut self, frame: &Frame<'_>) -> Outcome {
        match *frame {
            Frame::Oversize { len, .. } => {
                let reason = format!(
                    "message of {len} bytes over the {}-byte limit",
                    self.config.max_message_bytes
                );
                Outcome {
                    to_client: Some(Payload::Owned(error_response(None, message::INVALID_REQUEST, &reason))),
                    event: Some(ProxyEvent::new(
                        Direction::ClientToServer,
                        MessageKind::Oversize,
                        rejected(message::INVALID_REQUEST, reason.clone()),
                        len,
                    )),
                    log: Some(format!("rejected a client message: {reason}")),
                    ..Outcome::default()
                }
            }
            Frame::Line(line) => self.client_line(line),
        }
    }

    /// One complete line from the client.
    pub fn client_line(&mut self, line: &[u8]) -> Outcome {
        if message::is_blank(line) {
            return Outcome::default();
        }
        match message::parse(line, self.config.max_depth) {
            Err(invalid) => self.client_invalid(invalid, line.len()),
            Ok(msg) => self.client_message(&msg, line),
        }
    }

    fn client_invalid(&self, invalid: Invalid, bytes: usize) -> Outcome {
        let reply = error_response(invalid.id.as_deref(), invalid.code, &invalid.reason);
        let mut event = self.event(
            Direction::ClientToServer,
            MessageKind::Invalid,
            rejected(invalid.code, invalid.reason.as_ref()),
            bytes,
        );
        event.id = invalid
            .id
            .as_deref()
            .and_then(|raw| message::parse_id(raw).ok().flatten())
            .map(|i| i.key.to_string());
        Outcome {
            to_client: Some(Payload::Owned(reply)),
            event: Some(event),
            ..Outcome::default()
        }
    }

    fn client_message(&mut self, msg: &Message<'_>, line: &[u8]) -> Outcome {
        let bytes = line.len();
        let kind = kind_of(&msg.body);
        match &msg.body {
            Body::Request { id, method, params } => self.client_request(id, method, *params, line),
            Body::Notification { method, params } => self.client_notification(method, *params, bytes),
            Body::Response { id, .. } | Body::ErrorResponse { id: Some(id), .. } => {
                let code = match msg.body {
                    Body::ErrorResponse { code, .. } => Some(code),
                    _ => None,
                };
                let mut event = self.event(Direction::ClientToServer, kind, Decision::Forwarded, bytes);
                event.id = Some(id.key.to_string());
                event.error_code = code;
                self.client_response(id, event)
            }
            Body::ErrorResponse { id: None, code } => {
                let mut event = self.event(
                    Direction::ClientToServer,
                    kind,
                    dropped("error response with a null id"),
                    bytes,
                );
                event.error_code = Some(*code);
                Outcome {
                    event: Some(event),
                    log: Some(format!("dropped a client error response with a null id (code {code})")),
                    ..Outcome::default()
                }
            }
        }
    }

    fn client_request(&mut self, id: &Id<'_>, method: &str, params: Option<&RawValue>, line: &[u8]) -> Outcome {
        let bytes = line.len();
        let mut event = self.event(
            Direction::ClientToServer,
            MessageKind::Request,
            Decision::Forwarded,
            bytes,
        );
        event.method = Some(capped(method));
        event.id = Some(id.key.to_string());

        let reject = |event: &mut ProxyEvent, code: i64, reason: String, message: &str| {
            event.decision = rejected(code, reason);
            Outcome {
                to_client: Some(Payload::Owned(error_response(Some(id.raw), code, message))),
                event: Some(event.clone()),
                ..Outcome::default()
            }
        };

        if let Some(why) = self.closed {
            let code = self.config.pending_error_code;
            return reject(&mut event, code, why.into(), &format!("mcp-j: {why}"));
        }
        if let Some((code, reason, message)) = self.client_request_refused(&id.key) {
            return reject(&mut event, code, reason.into(), message);
        }

        let mut tool = None;
        if method == "tools/call" {
            let (decision, name, hash) = self.tools_call(params);
            tool = name;
            event.tool = tool.clone();
            event.args_sha256 = hash;
            if let ClientRequest::Reject { code, reason, message } = decision {
                return reject(&mut event, code, reason, message);
            }
            if let Some(message) = self.pin_blocked(PinKind::Tool, params) {
                return reject(&mut event, message::INVALID_PARAMS, message.clone(), &message);
            }
        }
        if method == "prompts/get"
            && let Some(message) = self.pin_blocked(PinKind::Prompt, params)
        {
            return reject(&mut event, message::INVALID_PARAMS, message.clone(), &message);
        }
        let payload = match self.strip_client_capabilities(method, params) {
            ClientRequest::Reject { code, reason, message } => return reject(&mut event, code, reason, message),
            ClientRequest::Forward {
                rewritten: Some(params),
                what: Some(what),
            } => {
                event.decision = Decision::Rewritten { what };
                let mut out = String::with_capacity(params.len() + method.len() + id.raw.len() + 48);
                out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
                out.push_str(id.raw);
                out.push_str(",\"method\":");
                json::push_json_string(&mut out, method);
                out.push_str(",\"params\":");
                out.push_str(&params);
                out.push('}');
                Payload::Owned(out.into_bytes())
            }
            ClientRequest::Forward { .. } => Payload::Original,
        };

        if method == "tools/call"
            && let Some(outcome) = self.pin_hold(id, params, payload.bytes(line), &event)
        {
            return outcome;
        }
        self.track_client_request(&id.key, id.raw, method, tool);
        Outcome {
            to_server: Some(payload),
            event: Some(event),
            request: Some(id.key.clone()),
            ..Outcome::default()
        }
    }

    fn client_notification(&mut self, method: &str, params: Option<&RawValue>, bytes: usize) -> Outcome {
        let mut event = self.event(
            Direction::ClientToServer,
            MessageKind::Notification,
            Decision::Forwarded,
            bytes,
        );
        event.method = Some(capped(method));
        if CLIENT_POLICY_REQUESTS.contains(&method) {
            let mut named = String::new();
            if method == "tools/call" {
                // The tool it names, for the record (the call is dropped whatever it is).
                let (_, tool, hash) = self.tools_call(params);
                if let Some(tool) = &tool {
                    named = format!(" for tool `{}`", sanitize(tool.as_bytes()));
                }
                event.tool = tool;
                event.args_sha256 = hash;
            }
            event.decision = dropped(format!("{method} sent as a notification (no id): not valid MCP"));
            return Outcome {
                event: Some(event),
                log: Some(format!(
                    "dropped a client {} notification{named}: it is a request method and needs an id; never forwarded",
                    sanitize(method.as_bytes())
                )),
                ..Outcome::default()
            };
        }
        if let Some(why) = self.closed {
            event.decision = dropped(why);
            return Outcome {
                event: Some(event),
                ..Outcome::default()
            };
        }
        match method {
            "notifications/cancelled" => {
                // The server's answer to a cancelled request is no longer expected: a late
                // one is dropped as unmatched.
                if let Some(key) = cancelled_request_id(params) {
                    event.id = Some(key.to_string());
                    self.client_pending.remove(&key);
                    if let Some(reason) = self.pin_cancelled(&key) {
                        event.decision = dropped(reason);
                        return Outcome {
                            event: Some(event),
                            ..Outcome::default()
                        };
                    }
                }
            }
            "notifications/roots/list_changed" if !self.config.server_requests.roots => {
                event.decision = dropped("roots are denied by policy");
                return Outcome {
                    event: Some(event),
                    ..Outcome::default()
                };
            }
            _ => {}
        }
        // Capabilities ride on `_meta` in the 2026-07-28 era; strip them here too.
        match self.strip_client_capabilities(method, params) {
            ClientRequest::Reject { code, reason, .. } => {
                event.decision = rejected(code, reason);
                Outcome {
                    event: Some(event),
                    ..Outcome::default()
                }
            }
            ClientRequest::Forward {
                rewritten: Some(params),
                what: Some(what),
            } => {
                event.decision = Decision::Rewritten { what };
                let mut out = String::with_capacity(params.len() + method.len() + 48);
                out.push_str("{\"jsonrpc\":\"2.0\",\"method\":");
                json::push_json_string(&mut out, method);
                out.push_str(",\"params\":");
                out.push_str(&params);
                out.push('}');
                Outcome {
                    to_server: Some(Payload::Owned(out.into_bytes())),
                    event: Some(event),
                    ..Outcome::default()
                }
            }
            ClientRequest::Forward { .. } => Outcome {
                to_server: Some(Payload::Original),
                event: Some(event),
                ..Outcome::default()
            },
        }
    }

    // ----- server → client -------------------------------------------------------------

    /// One framed line from the server.
    pub fn server_frame(&mut self, frame: &Frame<'_>) -> Outcome {
        match *frame {
            Frame::Oversize { len, .. } => {
                let reason = format!(
                    "message of {len} bytes over the {}-byte limit",
                    self.config.max_message_bytes
                );
                Outcome {
                    event: Some(ProxyEvent::new(
                        Direction::ServerToClient,
                        MessageKind::Oversize,
                        dropped(reason.clone()),
                        len,
                    )),
                    log: Some(format!("dropped a server message: {reason}")),
                    ..Outcome::default()
                }
            }
            Frame::Line(line) => self.server_line(line),
        }
    }

    /// One complete line from the server.
    pub fn server_line(&mut self, line: &[u8]) -> Outcome {
        if message::is_blank(line) {
            return Outcome::default();
        }
        match message::parse(line, self.config.max_depth) {
            Err(invalid) => {
                let reason = format!("not a valid JSON-RPC message: {}", invalid.reason);
                Outcome {
                    event: Some(self.event(
                        Direction::ServerToClient,
                        MessageKind::Invalid,
                        dropped(reason.clone()),
                        line.len(),
                    )),
                    log: Some(format!("dropped server output ({} bytes): {reason}", line.len())),
                    ..Outcome::default()
                }
            }
            Ok(msg) => self.server_message(&msg, line.len()),
        }
    }

    fn server_message(&mut self, msg: &Message<'_>, bytes: usize) -> Outcome {
        let kind = kind_of(&msg.body);
        let mut event = self.event(Direction::ServerToClient, kind, Decision::Forwarded, bytes);
        match &msg.body {
            Body::Request { id, method, .. } => {
                event.method = Some(capped(method));
                event.id = Some(id.key.to_string());
                self.server_request(id, method, event)
            }
            Body::Notification { method, params } => {
                event.method = Some(capped(method));
                if ClientFeature::of_method(method).is_some() {
                    // A sampling, elicitation or roots request without an id is not valid
                    // MCP, and a client that dispatches on the method name would act on it
                    // with no way to refuse: dropped, whatever the policy.
                    event.decision = dropped(format!("{method} sent as a notification (no id): not valid MCP"));
                    return Outcome {
                        event: Some(event),
                        log: Some(format!(
                            "dropped a server {} notification: it is a request method and needs an id; never forwarded",
                            sanitize(method.as_bytes())
                        )),
                        ..Outcome::default()
                    };
                }
                if method == "notifications/cancelled"
                    && let Some(key) = cancelled_request_id(*params)
                {
                    event.id = Some(key.to_string());
                    self.server_pending.remove(&key);
                }
                if method == "notifications/tools/list_changed" {
                    // The tools may have changed: the next call lists them first again.
                    self.pin.listed = false;
                }
                Outcome {
                    to_client: Some(Payload::Original),
                    event: Some(event),
                    ..Outcome::default()
                }
            }
            Body::ErrorResponse { id: None, code } => {
                event.decision = dropped("error response with a null id");
                event.error_code = Some(*code);
                Outcome {
                    event: Some(event),
                    log: Some(format!("dropped a server error response with a null id (code {code})")),
                    ..Outcome::default()
                }
            }
            Body::Response { id, .. } | Body::ErrorResponse { id: Some(id), .. } => {
                self.server_response(msg, id, event)
            }
        }
    }

    fn server_request(&mut self, id: &Id<'_>, method: &str, mut event: ProxyEvent) -> Outcome {
        let answer = |event: &mut ProxyEvent, code: i64, reason: String, message: &str| {
            event.decision = rejected(code, reason.clone());
            Outcome {
                to_server: Some(Payload::Owned(error_response(Some(id.raw), code, message))),
                event: Some(event.clone()),
                log: Some(format!(
                    "answered the server's {} request itself: {reason}",
                    sanitize(method.as_bytes())
                )),
                ..Outcome::default()
            }
        };
        if let Some(feature) = self.server_request_denied(method) {
            return answer(
                &mut event,
                message::METHOD_NOT_FOUND,
                format!("{} denied by policy", feature.capability()),
                "method not found",
            );
        }
        if let Err((code, reason, message)) = self.track_server_request(id, method) {
            return answer(&mut event, code, reason.into(), message);
        }
        Outcome {
            to_client: Some(Payload::Original),
            event: Some(event),
            ..Outcome::default()
        }
    }
}
