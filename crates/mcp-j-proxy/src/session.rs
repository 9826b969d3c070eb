//! The session: per-direction pending requests and every per-message decision, without
//! I/O. [`Session::client_frame`] and [`Session::server_frame`] take one framed line and
//! return an [`Outcome`]: what to write to whom, the event, and a log line.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::codec::Frame;
use crate::config::{ClientFeature, ProxyConfig};
use crate::event::{Decision, Direction, MessageKind, ProxyEvent};
use crate::json::{self, ObjectError, RawObject};
use crate::message::{self, Body, Id, IdKey, Invalid, Message};

pub use crate::json::canonical_sha256;

/// `_meta` key under which 2026-07-28 requests carry the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Client→server request methods the proxy applies policy to (to their params or to their
/// results). Sent as a notification (no id) they are not valid MCP and the policy could not
/// be applied the same way (there is no result to filter, no caller to refuse), while a
/// server that dispatches on the method name alone would act on them: such a notification
/// is dropped and logged, whatever the policy.
const CLIENT_POLICY_REQUESTS: [&str; 4] = ["tools/call", "tools/list", "server/discover", "initialize"];

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
    /// The decision, for the audit layer (`None` only for blank lines).
    pub event: Option<ProxyEvent>,
    /// A line for our stderr (already free of control characters).
    pub log: Option<String>,
    /// When `to_server` carries a client request: its id. If writing it to the server
    /// fails, [`Session::server_input_failed`] answers it.
    pub request: Option<IdKey>,
}

#[derive(Debug)]
struct ClientPending {
    raw_id: Box<str>,
    method: Box<str>,
    tool: Option<Box<str>>,
    filter_tools: bool,
    started: Instant,
    seq: u64,
}

#[derive(Debug)]
struct ServerPending {
    method: Box<str>,
    started: Instant,
}

/// Session state: requests pending in each direction (ids may collide across directions,
/// so they are kept apart) and whether the server still reads its input.
#[derive(Debug)]
pub struct Session {
    config: ProxyConfig,
    client_pending: HashMap<IdKey, ClientPending>,
    server_pending: HashMap<IdKey, ServerPending>,
    /// Set once the server no longer takes requests: why.
    closed: Option<&'static str>,
    seq: u64,
    /// The tool names of the server's first complete listing, page by page, until it is
    /// complete and checked against the tool policy (`None` then).
    first_listing: Option<BTreeSet<String>>,
}

/// A JSON-RPC error response, as bytes.
pub fn error_response(id_raw: Option<&str>, code: i64, message: &str) -> Vec<u8> {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id_raw.unwrap_or("null"));
    let _ = write!(out, ",\"error\":{{\"code\":{code},\"message\":");
    json::push_json_string(&mut out, message);
    out.push_str("}}");
    out.into_bytes()
}

fn result_response(id_raw: &str, result: &str) -> Vec<u8> {
    let mut out = String::with_capacity(40 + id_raw.len() + result.len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id_raw);
    out.push_str(",\"result\":");
    out.push_str(result);
    out.push('}');
    out.into_bytes()
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

/// What a client request turned into after policy.
enum ClientRequest {
    Forward {
        rewritten: Option<String>,
        what: Option<String>,
    },
    Reject {
        code: i64,
        reason: String,
        message: &'static str,
    },
}

impl Session {
    /// Whether the client has as many requests pending as allowed: the relay then waits
    /// for answers before it reads the client again (backpressure, not errors).
    pub fn client_pending_full(&self) -> bool {
        self.client_pending.len() >= self.config.max_pending
    }

    /// A fresh session under `config`.
    pub fn new(config: &ProxyConfig) -> Self {
        Session {
            config: config.clone(),
            client_pending: HashMap::new(),
            server_pending: HashMap::new(),
            closed: None,
            seq: 0,
            first_listing: (!config.tools.is_open()).then(BTreeSet::new),
        }
    }

    /// Client requests awaiting a server response.
    pub fn client_pending(&self) -> usize {
        self.client_pending.len()
    }

    /// Server requests awaiting a client response.
    pub fn server_pending(&self) -> usize {
        self.server_pending.len()
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
            Ok(msg) => self.client_message(&msg, line.len()),
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

    fn client_message(&mut self, msg: &Message<'_>, bytes: usize) -> Outcome {
        let kind = kind_of(&msg.body);
        match &msg.body {
            Body::Request { id, method, params } => self.client_request(id, method, *params, bytes),
            Body::Notification { method, params } => self.client_notification(method, *params, bytes),
            Body::Response { id, .. } | Body::ErrorResponse { id: Some(id), .. } => {
                let code = match msg.body {
                    Body::ErrorResponse { code, .. } => Some(code),
                    _ => None,
                };
                let mut event = self.event(Direction::ClientToServer, kind, Decision::Forwarded, bytes);
                event.id = Some(id.key.to_string());
                event.error_code = code;
                match self.server_pending.remove(&id.key) {
                    Some(p) => {
                        event.method = Some(p.method.into());
                        event.duration = Some(p.started.elapsed());
                        if let Some(why) = self.closed {
                            event.decision = dropped(why);
                            return Outcome {
                                event: Some(event),
                                ..Outcome::default()
                            };
                        }
                        Outcome {
                            to_server: Some(Payload::Original),
                            event: Some(event),
                            ..Outcome::default()
                        }
                    }
                    None => {
                        event.decision = dropped("response to no pending server request");
                        Outcome {
                            event: Some(event),
                            log: Some(format!(
                                "dropped a client response with id {}: no server request is pending with it",
                                sanitize(id.raw.as_bytes())
                            )),
                            ..Outcome::default()
                        }
                    }
                }
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

    fn client_request(&mut self, id: &Id<'_>, method: &str, params: Option<&RawValue>, bytes: usize) -> Outcome {
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
        if self.client_pending.contains_key(&id.key) {
            return reject(
                &mut event,
                message::INVALID_REQUEST,
                "duplicate request id".into(),
                "duplicate request id: a request with this id is still pending",
            );
        }
        // The relay stops reading the client while the table is full (see
        // `Session::client_pending_full`); this is the safety net.
        if self.client_pending.len() >= self.config.max_pending {
            let code = self.config.pending_error_code;
            return reject(
                &mut event,
                code,
                "too many requests pending".into(),
                "mcp-j: too many requests pending",
            );
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

        self.seq += 1;
        self.client_pending.insert(
            id.key.clone(),
            ClientPending {
                raw_id: id.raw.into(),
                method: capped(method).into(),
                tool: tool.map(Into::into),
                filter_tools: matches!(method, "tools/list" | "server/discover"),
                started: Instant::now(),
                seq: self.seq,
            },
        );
        Outcome {
            to_server: Some(payload),
            event: Some(event),
            request: Some(id.key.clone()),
            ..Outcome::default()
        }
    }

    /// `tools/call`: the tool must be named and allowed. Returns the decision, the tool
    /// name and the arguments' hash.
    fn tools_call(&self, params: Option<&RawValue>) -> (ClientRequest, Option<String>, Option<String>) {
        let invalid = |reason: &str| ClientRequest::Reject {
            code: message::INVALID_PARAMS,
            reason: reason.to_owned(),
            message: "invalid params: tools/call needs an object with a string `name`",
        };
        let Some(params) = params else {
            return (invalid("tools/call without params"), None, None);
        };
        let obj = match RawObject::parse(params) {
            Ok(obj) => obj,
            Err(ObjectError::DuplicateKey) => return (invalid("duplicate key in tools/call params"), None, None),
            Err(_) => return (invalid("tools/call params not an object"), None, None),
        };
        let Some(name) = obj.get("name").and_then(json::as_string) else {
            return (invalid("tools/call without a string name"), None, None);
        };
        let name = name.into_owned();
        let hash = obj.get("arguments").map(canonical_sha256);
        if !self.config.tools.allowed(&name) {
            // Same answer whether or not the server has such a tool: the policy must not
            // become an oracle for what the server offers.
            let decision = ClientRequest::Reject {
                code: message::INVALID_PARAMS,
                reason: "tool not allowed".to_owned(),
                message: "tool not allowed",
            };
            return (decision, Some(capped(&name)), hash);
        }
        (
            ClientRequest::Forward {
                rewritten: None,
                what: None,
            },
            Some(capped(&name)),
            hash,
        )
    }

    /// Removes denied client capabilities from an `initialize` request's
    /// `params.capabilities` and from any request's
    /// `params._meta["io.modelcontextprotocol/clientCapabilities"]` (2026-07-28). Returns
    /// the new params text when something was removed.
    fn strip_client_capabilities(&self, method: &str, params: Option<&RawValue>) -> ClientRequest {
        let keep = ClientRequest::Forward {
            rewritten: None,
            what: None,
        };
        let policy = self.config.server_requests;
        let Some(params) = params else { return keep };
        if !policy.denies_any() {
            return keep;
        }
        let raw = params.get();
        // `_meta` can only be a key here if its text (or an escape) occurs.
        if method != "initialize" && !raw.contains("_meta") && !raw.contains("\\u") {
            return keep;
        }
        // A duplicate or undecodable (lone surrogate) name where the capabilities are read:
        // the proxy and the server could read different capabilities.
        let duplicate = || ClientRequest::Reject {
            code: message::INVALID_REQUEST,
            reason: "duplicate or undecodable key in params".to_owned(),
            message: "invalid request: duplicate or undecodable key in params",
        };
        let mut obj = match RawObject::parse(params) {
            Ok(obj) => obj,
            Err(ObjectError::DuplicateKey | ObjectError::Invalid) => return duplicate(),
            Err(ObjectError::NotObject) => return keep,
        };
        let mut removed: Vec<&'static str> = Vec::new();
        let strip = |caps: &str, removed: &mut Vec<&'static str>| -> Result<Option<String>, ()> {
            let mut caps = match RawObject::parse_str(caps) {
                Ok(c) => c,
                Err(ObjectError::DuplicateKey | ObjectError::Invalid) => return Err(()),
                Err(ObjectError::NotObject) => return Ok(None),
            };
            let n = caps.remove_where(|k| match ClientFeature::of_capability(k) {
                Some(f) if !policy.allows(f) => {
                    removed.push(f.capability());
                    true
                }
                _ => false,
            });
            Ok((n > 0).then(|| caps.to_json()))
        };
        let mut changed = false;
        if method == "initialize"
            && let Some(caps) = obj.get("capabilities")
        {
            match strip(caps, &mut removed) {
                Err(()) => return duplicate(),
                Ok(Some(new)) => {
                    obj.set("capabilities", new);
                    changed = true;
                }
                Ok(None) => {}
            }
        }
        if let Some(meta) = obj.get("_meta") {
            let mut meta = match RawObject::parse_str(meta) {
                Ok(m) => m,
                Err(ObjectError::DuplicateKey | ObjectError::Invalid) => return duplicate(),
                Err(ObjectError::NotObject) => {
                    return if changed {
                        self.params_rewrite(obj, removed)
                    } else {
                        keep
                    };
                }
            };
            if let Some(caps) = meta.get(META_CLIENT_CAPABILITIES) {
                match strip(caps, &mut removed) {
                    Err(()) => return duplicate(),
                    Ok(Some(new)) => {
                        meta.set(META_CLIENT_CAPABILITIES, new);
                        obj.set("_meta", meta.to_json());
                        changed = true;
                    }
                    Ok(None) => {}
                }
            }
        }
        if changed {
            self.params_rewrite(obj, removed)
        } else {
            keep
        }
    }

    fn params_rewrite(&self, obj: RawObject<'_>, mut removed: Vec<&'static str>) -> ClientRequest {
        removed.sort_unstable();
        removed.dedup();
        ClientRequest::Forward {
            rewritten: Some(obj.to_json()),
            what: Some(format!(
                "removed client capabilities denied by policy: {}",
                removed.join(", ")
            )),
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

    /// Writing to the server failed: it no longer reads its input. From now on client
    /// requests are answered at once; returns the answer to `request` (the one whose write
    /// failed), if it was a request.
    pub fn server_input_failed(&mut self, request: Option<&IdKey>) -> Option<(Vec<u8>, ProxyEvent)> {
        let why = *self
            .closed
            .get_or_insert("the MCP server is no longer reading requests");
        let key = request?;
        let pending = self.client_pending.remove(key)?;
        Some(self.pending_failure(key, pending, why))
    }

    fn pending_failure(&self, key: &IdKey, p: ClientPending, why: &str) -> (Vec<u8>, ProxyEvent) {
        let code = self.config.pending_error_code;
        let reply = error_response(Some(&p.raw_id), code, &format!("mcp-j: {why}"));
        let mut event = self.event(
            Direction::ServerToClient,
            MessageKind::ErrorResponse,
            rejected(code, why),
            0,
        );
        event.method = Some(p.method.into());
        event.id = Some(key.to_string());
        event.tool = p.tool.map(Into::into);
        event.duration = Some(p.started.elapsed());
        event.error_code = Some(code);
        (reply, event)
    }

    /// The server's stdout ended: an error response (with event) for every client request
    /// still pending, oldest first. Client requests after this are answered at once.
    pub fn server_closed(&mut self) -> Vec<(Vec<u8>, ProxyEvent)> {
        self.closed = Some("the MCP server has exited");
        let mut pending: Vec<(IdKey, ClientPending)> = self.client_pending.drain().collect();
        pending.sort_by_key(|(_, p)| p.seq);
        pending
            .into_iter()
            .map(|(key, p)| self.pending_failure(&key, p, "the MCP server exited before answering this request"))
            .collect()
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
                event.id = Some(id.key.to_string());
                let Some(pending) = self.client_pending.remove(&id.key) else {
                    event.decision = dropped("response to no pending client request");
                    return Outcome {
                        event: Some(event),
                        log: Some(format!(
                            "dropped a server response with id {}: no client request is pending with it (forged, duplicate or cancelled)",
                            sanitize(id.raw.as_bytes())
                        )),
                        ..Outcome::default()
                    };
                };
                event.method = Some(pending.method.to_string());
                event.tool = pending.tool.as_deref().map(str::to_owned);
                event.duration = Some(pending.started.elapsed());
                match &msg.body {
                    Body::ErrorResponse { code, .. } => {
                        event.error_code = Some(*code);
                        Outcome {
                            to_client: Some(Payload::Original),
                            event: Some(event),
                            ..Outcome::default()
                        }
                    }
                    Body::Response { result, .. } => {
                        let warning = if pending.filter_tools {
                            self.note_listing(result.get())
                        } else {
                            None
                        };
                        let mut outcome = self.server_result(&pending, result, event);
                        if let Some(warning) = warning {
                            outcome.log = Some(match outcome.log.take() {
                                Some(log) => format!("{log}; {warning}"),
                                None => warning,
                            });
                        }
                        outcome
                    }
                    _ => Outcome::default(),
                }
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
        if let Some(feature) = ClientFeature::of_method(method)
            && !self.config.server_requests.allows(feature)
        {
            return answer(
                &mut event,
                message::METHOD_NOT_FOUND,
                format!("{} denied by policy", feature.capability()),
                "method not found",
            );
        }
        if self.server_pending.contains_key(&id.key) {
            return answer(
                &mut event,
                message::INVALID_REQUEST,
                "duplicate request id".into(),
                "duplicate request id: a request with this id is still pending",
            );
        }
        if self.server_pending.len() >= self.config.max_pending {
            return answer(
                &mut event,
                self.config.pending_error_code,
                "too many requests pending".into(),
                "too many requests pending",
            );
        }
        self.server_pending.insert(
            id.key.clone(),
            ServerPending {
                method: capped(method).into(),
                started: Instant::now(),
            },
        );
        Outcome {
            to_client: Some(Payload::Original),
            event: Some(event),
            ..Outcome::default()
        }
    }

    /// A success response to a pending client request: filter tool lists, refuse
    /// 2026-07-28 `input_required` results that ask for a denied feature.
    fn server_result(&self, pending: &ClientPending, result: &RawValue, mut event: ProxyEvent) -> Outcome {
        let invalid = |event: &mut ProxyEvent, why: &str| {
            let code = message::INTERNAL_ERROR;
            event.decision = rejected(code, why);
            Outcome {
                to_client: Some(Payload::Owned(error_response(
                    Some(&pending.raw_id),
                    code,
                    &format!("mcp-j: invalid response from the MCP server ({why})"),
                ))),
                event: Some(event.clone()),
                log: Some(format!("replaced a server response: {why}")),
                ..Outcome::default()
            }
        };
        let raw = result.get();

        if let Some(denied) = self.input_required_denied(raw) {
            let code = message::MISSING_CLIENT_CAPABILITY;
            match denied {
                Ok(feature) => {
                    let reason = format!("server asked for {} input, denied by policy", feature.capability());
                    event.decision = rejected(code, reason.clone());
                    return Outcome {
                        to_client: Some(Payload::Owned(error_response(
                            Some(&pending.raw_id),
                            code,
                            &format!(
                                "mcp-j: the MCP server needs the client's {} capability, which policy denies",
                                feature.capability()
                            ),
                        ))),
                        event: Some(event),
                        log: Some(format!("replaced a server response: {reason}")),
                        ..Outcome::default()
                    };
                }
                Err(why) => return invalid(&mut event, why),
            }
        }

        if pending.filter_tools && !self.config.tools.is_open() {
            match filter_tools(raw, &self.config.tools) {
                Ok(None) => {}
                Ok(Some((new_result, removed, total))) => {
                    event.decision = Decision::Rewritten {
                        what: format!("tools/list: removed {removed} of {total} tools not allowed by policy"),
                    };
                    return Outcome {
                        to_client: Some(Payload::Owned(result_response(&pending.raw_id, &new_result))),
                        event: Some(event),
                        ..Outcome::default()
                    };
                }
                Err(why) => return invalid(&mut event, why),
            }
        }
        Outcome {
            to_client: Some(Payload::Original),
            event: Some(event),
            ..Outcome::default()
        }
    }

    /// For a 2026-07-28 `input_required` result: `Some(Ok(feature))` when one of its
    /// `inputRequests` asks for a denied feature, `Some(Err(_))` when it is malformed,
    /// `None` when it passes (or is not `input_required`).
    fn input_required_denied(&self, raw: &str) -> Option<Result<ClientFeature, &'static str>> {
        let policy = self.config.server_requests;
        if !policy.denies_any() {
            return None;
        }
        // The value `input_required` can only be there literally or through a \u escape.
        if !raw.contains("input_required") && !raw.contains("\\u") {
            return None;
        }
        let obj = match RawObject::parse_str(raw) {
            Ok(o) => o,
            Err(ObjectError::DuplicateKey) => return Some(Err("duplicate key in result")),
            Err(_) => return None,
        };
        if obj.get("resultType").and_then(json::as_string).as_deref() != Some("input_required") {
            return None;
        }
        let requests = obj.get("inputRequests")?;
        let requests = match RawObject::parse_str(requests) {
            Ok(r) => r,
            Err(_) => return Some(Err("malformed inputRequests")),
        };
        for (_, request) in requests.iter() {
            let Ok(request) = RawObject::parse_str(request) else {
                return Some(Err("malformed input request"));
            };
            let Some(method) = request.get("method").and_then(json::as_string) else {
                return Some(Err("input request without a method"));
            };
            if let Some(feature) = ClientFeature::of_method(&method)
                && !policy.allows(feature)
            {
                return Some(Ok(feature));
            }
        }
        None
    }
}

/// Most tool names kept from the first listing (a hostile server could list millions).
const MAX_LISTED_NAMES: usize = 10_000;

impl Session {
    /// Takes the tool names of one page of the server's first tool listing. When the
    /// listing is complete (a page without `nextCursor`), returns the warning, once, for
    /// the names the tool policy gives that the server does not list: typically a typo,
    /// with which `--deny-tool` would deny nothing.
    fn note_listing(&mut self, result: &str) -> Option<String> {
        let seen = self.first_listing.as_mut()?;
        let obj = RawObject::parse_str(result).ok()?;
        let tools = json::raw_array(obj.get("tools")?)?;
        for tool in tools {
            if seen.len() >= MAX_LISTED_NAMES {
                break;
            }
            if let Some(name) = RawObject::parse(tool)
                .ok()
                .and_then(|t| t.get("name").and_then(json::as_string).map(|n| capped(&n)))
            {
                seen.insert(name);
            }
        }
        if obj.get("nextCursor").is_some_and(|c| c.trim() != "null") {
            return None; // more pages to come
        }
        let seen = self.first_listing.take()?;
        let policy = &self.config.tools;
        let unknown: Vec<String> = [("--allow-tool", &policy.allow), ("--deny-tool", &policy.deny)]
            .into_iter()
            .flat_map(|(flag, names)| names.iter().map(move |n| (flag, n)))
            .filter(|(_, name)| !seen.contains(name.as_str()))
            .map(|(flag, name)| {
                let close = close_matches(name, &seen);
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean `{}`?)", close.join("`, `"))
                };
                format!("{flag} `{}`{hint}", sanitize(name.as_bytes()))
            })
            .collect();
        if unknown.is_empty() {
            return None;
        }
        Some(format!(
            "warning: the server lists no tool named by {} among its {} tools; tool names match exactly (this also holds for allow_tools and deny_tools in a manifest)",
            unknown.join(", "),
            seen.len()
        ))
    }
}

/// Listed names close to `name`: the same letters ignoring case, `-`, `_` and spaces, one
/// containing the other that way, or within a small edit distance. At most three.
pub(crate) fn close_matches(name: &str, listed: &BTreeSet<String>) -> Vec<String> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(name);
    // Edits a typo may take: one in a very short name, two or three in longer ones.
    let typos = if wanted.len() <= 3 {
        1
    } else {
        (wanted.len() / 4).clamp(2, 3)
    };
    let mut out: Vec<String> = Vec::new();
    for candidate in listed {
        let other = squash(candidate);
        let near = other == wanted
            || (wanted.len() >= 4 && other.contains(&wanted))
            || (other.len() >= 4 && wanted.contains(&other))
            || (wanted.len() <= 64 && other.len() <= 64 && edit_distance(&wanted, &other) <= typos);
        if near {
            out.push(sanitize(candidate.as_bytes()));
            if out.len() == 3 {
                break;
            }
        }
    }
    out
}

/// Levenshtein distance over chars (the callers keep both strings short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The `requestId` of a `notifications/cancelled`.
fn cancelled_request_id(params: Option<&RawValue>) -> Option<IdKey> {
    let obj = RawObject::parse(params?).ok()?;
    message::parse_id(obj.get("requestId")?).ok()?.map(|id| id.key)
}

/// Filters a `tools/list` (or `server/discover`) result's `tools` array. `Ok(None)` when
/// nothing was removed; else the new result text, how many were removed, and the total.
/// A tool without a readable, unique `name` is removed.
pub fn filter_tools(
    result: &str,
    policy: &crate::config::ToolPolicy,
) -> Result<Option<(String, usize, usize)>, &'static str> {
    let mut obj = match RawObject::parse_str(result) {
        Ok(o) => o,
        Err(ObjectError::DuplicateKey) => return Err("duplicate key in result"),
        Err(_) => return Err("result is not an object"),
    };
    let Some(tools) = obj.get("tools") else {
        return Ok(None);
    };
    let Some(tools) = json::raw_array(tools) else {
        return Err("`tools` is not an array");
    };
    let total = tools.len();
    let kept: Vec<&RawValue> = tools
        .into_iter()
        .filter(|tool| {
            RawObject::parse(tool)
                .ok()
                .and_then(|t| t.get("name").and_then(json::as_string).map(|n| policy.allowed(&n)))
                .unwrap_or(false)
        })
        .collect();
    let removed = total - kept.len();
    if removed == 0 {
        return Ok(None);
    }
    let mut list = String::with_capacity(result.len());
    list.push('[');
    for (i, tool) in kept.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        list.push_str(tool.get());
    }
    list.push(']');
    obj.set("tools", list);
    Ok(Some((obj.to_json(), removed, total)))
}
