//! Id bookkeeping: the requests pending in each direction, and the responses that match
//! none of them (forged, duplicate, late after a cancellation, or after the server
//! stopped). Client and server requests are kept in separate tables, since their ids may
//! collide.

use std::time::Instant;

use serde_json::value::RawValue;

use super::{Outcome, Payload, Session, capped, dropped, rejected, sanitize};
use crate::event::{Direction, MessageKind, ProxyEvent};
use crate::json::{RawObject, error_response};
use crate::message::{self, Body, Id, IdKey, Message};
use crate::pins::PinKind;

/// A client request forwarded to the server, awaiting its response.
#[derive(Debug)]
pub(super) struct ClientPending {
    /// The id as the client wrote it, for answers the proxy makes.
    pub(super) raw_id: Box<str>,
    pub(super) method: Box<str>,
    pub(super) tool: Option<Box<str>>,
    /// A listing whose result is filtered: `tools/list` or `server/discover` (tools, by
    /// the tool policy and the pins), `prompts/list` or `resources/templates/list` (by the
    /// pins).
    pub(super) listing: Option<PinKind>,
    pub(super) started: Instant,
    /// Order of arrival, so answers owed at the end go oldest first.
    pub(super) seq: u64,
}

/// A server request forwarded to the client, awaiting its response.
#[derive(Debug)]
pub(super) struct ServerPending {
    pub(super) method: Box<str>,
    pub(super) started: Instant,
}

impl Session<'_> {
    /// Whether the client has as many requests pending as allowed: the relay then waits
    /// for answers before it reads the client again (backpressure, not errors).
    pub fn client_pending_full(&self) -> bool {
        self.client_pending.len() + self.pin.held() >= self.config.max_pending
    }

    /// Client requests awaiting a server response.
    pub fn client_pending(&self) -> usize {
        self.client_pending.len()
    }

    /// Server requests awaiting a client response.
    pub fn server_pending(&self) -> usize {
        self.server_pending.len()
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

    pub(super) fn pending_failure(&self, key: &IdKey, p: ClientPending, why: &str) -> (Vec<u8>, ProxyEvent) {
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
        let mut replies: Vec<(Vec<u8>, ProxyEvent)> = pending
            .into_iter()
            .map(|(key, p)| self.pending_failure(&key, p, "the MCP server exited before answering this request"))
            .collect();
        // Calls held for the proxy's own tool listing come after (they arrived later).
        replies.extend(self.pin_release_failed("the MCP server exited before answering this request"));
        replies
    }

    /// Why a client request with this id cannot be tracked: `(code, reason, message)`.
    pub(super) fn client_request_refused(&self, key: &IdKey) -> Option<(i64, &'static str, &'static str)> {
        // A held call's id, or the id of the proxy's own tool listing in flight, is pending
        // too.
        if self.client_pending.contains_key(key) || self.pin.id_in_use(key) {
            return Some((
                message::INVALID_REQUEST,
                "duplicate request id",
                "duplicate request id: a request with this id is still pending",
            ));
        }
        // The relay stops reading the client while the table is full (see
        // `Session::client_pending_full`); this is the safety net.
        if self.client_pending_full() {
            return Some((
                self.config.pending_error_code,
                "too many requests pending",
                "mcp-j: too many requests pending",
            ));
        }
        None
    }

    /// Records a client request forwarded to the server: its response is expected.
    pub(super) fn track_client_request(&mut self, key: &IdKey, raw_id: &str, method: &str, tool: Option<String>) {
        self.seq += 1;
        self.client_pending.insert(
            key.clone(),
            ClientPending {
                raw_id: raw_id.into(),
                method: capped(method).into(),
                tool: tool.map(Into::into),
                listing: match method {
                    "server/discover" => Some(PinKind::Tool),
                    _ => PinKind::ALL.into_iter().find(|k| k.list_method() == method),
                },
                started: Instant::now(),
                seq: self.seq,
            },
        );
    }

    /// Records a server request forwarded to the client, unless its id is already pending
    /// or the table is full: then `(code, reason, message)` for the answer.
    pub(super) fn track_server_request(
        &mut self,
        id: &Id<'_>,
        method: &str,
    ) -> Result<(), (i64, &'static str, &'static str)> {
        if self.server_pending.contains_key(&id.key) {
            return Err((
                message::INVALID_REQUEST,
                "duplicate request id",
                "duplicate request id: a request with this id is still pending",
            ));
        }
        if self.server_pending.len() >= self.config.max_pending {
            return Err((
                self.config.pending_error_code,
                "too many requests pending",
                "too many requests pending",
            ));
        }
        self.server_pending.insert(
            id.key.clone(),
            ServerPending {
                method: capped(method).into(),
                started: Instant::now(),
            },
        );
        Ok(())
    }

    /// A client response: forwarded when it answers a pending server request (and the server
    /// still reads), else dropped: the client cannot answer what the server never asked.
    pub(super) fn client_response(&mut self, id: &Id<'_>, mut event: ProxyEvent) -> Outcome {
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

    /// A server response: it must answer a pending client request, else it is dropped (a
    /// forged, duplicate or late answer never reaches the client). A success result then
    /// goes through the policy (`Session::server_result`).
    pub(super) fn server_response(&mut self, msg: &Message<'_>, id: &Id<'_>, mut event: ProxyEvent) -> Outcome {
        event.id = Some(id.key.to_string());
        if self.pin.is_listing(&id.key) {
            return self.pin_listing_response(msg, event);
        }
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
                let warning = if pending.listing == Some(PinKind::Tool) {
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

/// The `requestId` of a `notifications/cancelled`.
pub(super) fn cancelled_request_id(params: Option<&RawValue>) -> Option<IdKey> {
    let obj = RawObject::parse(params?).ok()?;
    message::parse_id(obj.get("requestId")?).ok()?.map(|id| id.key)
}
