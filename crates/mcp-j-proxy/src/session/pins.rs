//! Tool pinning (crate docs, *Tool pinning*), when the session has [`ToolPins`]: every tool
//! a listing (`tools/list` page, `server/discover` result) offers and the tool policy
//! allows is checked; a changed one is hidden and its calls refused; a `tools/call` before
//! any complete listing makes the proxy list the tools itself first. Prompts
//! (`prompts/list`, `prompts/get`) and resource templates (`resources/templates/list`) are
//! checked and hidden the same way, without the listing before a call.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Outcome, Payload, Session, capped, dropped, filter_tools, rejected, sanitize};
use crate::event::{Decision, ProxyEvent};
use crate::json::{self, ObjectError, RawObject, canonical_json, error_response, sha256_hex};
use crate::message::{self, Body, Id, IdKey, Message};
use crate::pins::{PinCheck, PinKind};

/// The proxy's own request ids start so (strings; a client request reusing one while it is
/// in flight is refused as a duplicate id).
pub(super) const PIN_ID_PREFIX: &str = "mcp-j-pins-";

/// Most pages the proxy's own listing follows (a server could hand out cursors forever).
pub(super) const MAX_PIN_PAGES: usize = 1000;

/// Most hidden tools remembered (the names and messages are the server's to choose).
const MAX_BLOCKED: usize = 10_000;

/// Tool pinning state of a session.
#[derive(Debug, Default)]
pub(super) struct PinState {
    /// Hidden tools, prompts and resource templates (their definition changed since
    /// pinned): [`PinKind::key`] → the pins' message. (A resource template's entry is
    /// never looked up: no request names one to be refused.)
    blocked: HashMap<String, String>,
    /// A complete listing (a page without `nextCursor`, or a `server/discover` result with
    /// tools) was checked since the session began or the server last sent
    /// `notifications/tools/list_changed`.
    pub(super) listed: bool,
    /// The proxy's own listing, while in flight.
    listing: Option<PinListing>,
    next_id: u64,
    /// Listings started so far (each listing's number).
    listings: u64,
}

/// The proxy's own `tools/list`, and the client calls waiting for it.
#[derive(Debug)]
struct PinListing {
    /// Its number in the session, and when it began.
    seq: u64,
    started: Instant,
    /// The id of the page request in flight.
    id: IdKey,
    /// The `_meta` sent with each page (2026-07-28: protocol version and capabilities).
    meta: Option<String>,
    pages: usize,
    held: Vec<HeldCall>,
}

/// A client `tools/call` held until the proxy's listing is checked.
#[derive(Debug)]
struct HeldCall {
    key: IdKey,
    raw_id: Box<str>,
    name: String,
    /// What is forwarded if the tool passes.
    payload: Vec<u8>,
    /// Its event, as it would have been when forwarded.
    event: ProxyEvent,
}

impl PinState {
    /// Client calls held for the proxy's listing.
    pub(super) fn held(&self) -> usize {
        self.listing.as_ref().map_or(0, |l| l.held.len())
    }

    /// Whether `key` is the proxy's listing in flight or a held call.
    pub(super) fn id_in_use(&self, key: &IdKey) -> bool {
        self.listing
            .as_ref()
            .is_some_and(|l| l.id == *key || l.held.iter().any(|h| h.key == *key))
    }

    /// Whether `key` is the id of the proxy's own listing in flight.
    pub(super) fn is_listing(&self, key: &IdKey) -> bool {
        self.listing.as_ref().is_some_and(|l| l.id == *key)
    }
}

/// A listing after the tool policy and the pins.
pub(super) struct Filtered {
    /// The new result text.
    pub(super) result: String,
    /// What was changed, for the event.
    pub(super) what: String,
    /// Tools hidden by the pins: name and message.
    pub(super) hidden: Vec<(String, String)>,
}

/// One listing page, checked.
struct Checked {
    /// The new result text, when something was removed.
    result: Option<String>,
    what: Vec<String>,
    hidden: Vec<(String, String)>,
    /// The raw `nextCursor`, when there is one (not `null`).
    next_cursor: Option<String>,
    /// Whether the result has a `tools` array.
    has_tools: bool,
}

/// The event for one tool (prompt, resource template) hidden from the listing `base` is
/// about. Its `tool` is the tool's name, or the [`PinKind::key`] of another kind.
pub(super) fn hidden_event(base: &ProxyEvent, kind: PinKind, name: &str, reason: String) -> ProxyEvent {
    let mut event = ProxyEvent::new(base.direction, base.kind, Decision::ToolHidden { reason }, 0);
    event.method.clone_from(&base.method);
    event.id.clone_from(&base.id);
    event.tool = Some(capped(&kind.key(name)));
    event
}

/// A listed tool's (prompt's, resource template's) name, pinned definition (parsed from its
/// canonical text) and digest (SHA-256 of that text). The definition is
/// `mcp_j_policy::pins::pinned_definition_of` it, built from the raw text so that numbers
/// are never reparsed before the canonical form is made. `None` without an object with a
/// string `name`.
pub(crate) fn pinned_entry(kind: PinKind, entry: &str) -> Option<(String, Value, String)> {
    let obj = RawObject::parse_str(entry).ok()?;
    let name = obj.get("name").and_then(json::as_string)?.into_owned();
    let mut text = String::with_capacity(entry.len());
    text.push('{');
    for (key, value) in obj.iter().filter(|(k, _)| kind.fields().contains(k)) {
        if text.len() > 1 {
            text.push(',');
        }
        json::push_json_string(&mut text, key);
        text.push(':');
        text.push_str(value);
    }
    text.push('}');
    // Without a canonical form (a number out of range, nesting too deep) the text is
    // hashed as it is, as `canonical_sha256` does.
    let canonical = canonical_json(&text).unwrap_or(text);
    let digest = sha256_hex(&canonical);
    let definition = serde_json::from_str(&canonical).unwrap_or(Value::Null);
    Some((name, definition, digest))
}

/// The tool a `tools/call` (the prompt a `prompts/get`) names, in full.
fn call_name(params: Option<&RawValue>) -> Option<String> {
    let obj = RawObject::parse(params?).ok()?;
    obj.get("name").and_then(json::as_string).map(Cow::into_owned)
}

/// The `_meta` members of a forwarded request (`payload`) that the proxy's own listing
/// carries too: the `io.modelcontextprotocol/…` ones (2026-07-28: protocol version, client
/// capabilities, already stripped of denied ones). `None` when there are none.
fn meta_to_copy(payload: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    let message = RawObject::parse_str(text).ok()?;
    let params = RawObject::parse_str(message.get("params")?).ok()?;
    let mut meta = RawObject::parse_str(params.get("_meta")?).ok()?;
    meta.remove_where(|k| !k.starts_with("io.modelcontextprotocol/"));
    (meta.iter().next().is_some()).then(|| meta.to_json())
}

/// The proxy's own `tools/list` request.
fn list_request(raw_id: &str, meta: Option<&str>, cursor: Option<&str>) -> Vec<u8> {
    let mut out = String::from("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(raw_id);
    out.push_str(",\"method\":\"tools/list\"");
    if meta.is_some() || cursor.is_some() {
        out.push_str(",\"params\":{");
        if let Some(cursor) = cursor {
            out.push_str("\"cursor\":");
            out.push_str(cursor);
        }
        if let Some(meta) = meta {
            if cursor.is_some() {
                out.push(',');
            }
            out.push_str("\"_meta\":");
            out.push_str(meta);
        }
        out.push('}');
    }
    out.push('}');
    out.into_bytes()
}

impl Session<'_> {
    /// A `tools/call` for a hidden tool (`kind` Tool), a `prompts/get` for a hidden prompt
    /// (Prompt): the message to refuse it with.
    pub(super) fn pin_blocked(&self, kind: PinKind, params: Option<&RawValue>) -> Option<String> {
        self.pins.0?;
        if self.pin.blocked.is_empty() {
            return None;
        }
        self.pin.blocked.get(&kind.key(&call_name(params)?)).cloned()
    }

    /// A `tools/call` (allowed, not hidden, `payload` ready to forward) before any complete
    /// listing was checked: held, and the proxy lists the tools itself unless it already
    /// does. `None`: forward it now.
    pub(super) fn pin_hold(
        &mut self,
        id: &Id<'_>,
        params: Option<&RawValue>,
        payload: &[u8],
        event: &ProxyEvent,
    ) -> Option<Outcome> {
        self.pins.0?;
        if self.pin.listed {
            return None;
        }
        let name = call_name(params)?;
        let log = format!(
            "holding a tools/call for `{}` until mcp-j has listed the server's tools and checked their pins",
            sanitize(capped(&name).as_bytes())
        );
        let held = HeldCall {
            key: id.key.clone(),
            raw_id: id.raw.into(),
            name,
            payload: payload.to_vec(),
            event: event.clone(),
        };
        let mut outcome = Outcome {
            log: Some(log),
            ..Outcome::default()
        };
        if let Some(listing) = &mut self.pin.listing {
            listing.held.push(held);
            return Some(outcome);
        }
        let meta = meta_to_copy(payload);
        let (key, raw_id) = self.pin_new_id();
        outcome.to_server = Some(Payload::Owned(list_request(&raw_id, meta.as_deref(), None)));
        self.pin.listings += 1;
        self.pin.listing = Some(PinListing {
            seq: self.pin.listings,
            started: Instant::now(),
            id: key,
            meta,
            pages: 1,
            held: vec![held],
        });
        Some(outcome)
    }

    /// The proxy's own listing in flight: its number and when it began (the relay refuses
    /// its held calls through [`Session::pin_listing_timed_out`] when it takes too long).
    pub fn pin_listing_in_flight(&self) -> Option<(u64, Instant)> {
        self.pin.listing.as_ref().map(|l| (l.seq, l.started))
    }

    /// The proxy's listing number `seq` took longer than
    /// [`crate::ProxyConfig::pin_listing_timeout`]: if it is still in flight, it is
    /// abandoned (a late answer is then dropped as unmatched) and its held calls are
    /// refused.
    pub fn pin_listing_timed_out(&mut self, seq: u64) -> Outcome {
        let mut outcome = Outcome::default();
        if self.pin.listing.as_ref().is_some_and(|l| l.seq == seq) {
            let why = format!("no answer within {} ms", self.config.pin_listing_timeout.as_millis());
            self.pin_listing_failed(&why, &mut outcome);
        }
        outcome
    }

    /// A fresh id for the proxy's own request, pending nowhere: key and JSON text.
    fn pin_new_id(&mut self) -> (IdKey, String) {
        loop {
            self.pin.next_id += 1;
            let id = format!("{PIN_ID_PREFIX}{}", self.pin.next_id);
            let key = IdKey::Str(id.clone().into());
            if !self.client_pending.contains_key(&key) {
                let mut raw = String::with_capacity(id.len() + 2);
                json::push_json_string(&mut raw, &id);
                return (key, raw);
            }
        }
    }

    /// A client `notifications/cancelled` for `key`: when it names a held call (which
    /// then goes, unanswered) or the proxy's own listing, why it is not forwarded.
    pub(super) fn pin_cancelled(&mut self, key: &IdKey) -> Option<&'static str> {
        let listing = self.pin.listing.as_mut()?;
        if listing.id == *key {
            return Some("cancellation of mcp-j's own tools/list");
        }
        let before = listing.held.len();
        listing.held.retain(|h| h.key != *key);
        (listing.held.len() < before).then_some("cancellation of a tools/call held for the pin check (never forwarded)")
    }

    /// The server's answer to the proxy's own listing: never forwarded. Checks the page,
    /// asks for the next one, or releases the held calls (forwarded, or refused when their
    /// tool is hidden); on an error or a malformed page the held calls are refused.
    pub(super) fn pin_listing_response(&mut self, msg: &Message<'_>, mut event: ProxyEvent) -> Outcome {
        event.method = Some("tools/list".to_owned());
        event.decision = dropped("mcp-j's own tools/list, to check tool pins (not for the client)");
        let result = match &msg.body {
            Body::Response { result, .. } => Ok(result.get()),
            Body::ErrorResponse { code, .. } => {
                event.error_code = Some(*code);
                Err(format!("it answered tools/list with error {code}"))
            }
            _ => Err("unexpected answer".to_owned()),
        };
        let checked = result.and_then(|raw| match self.check_listing(PinKind::Tool, raw) {
            Ok(checked) if !checked.has_tools => Err("its tools/list result has no `tools` array".to_owned()),
            Ok(checked) => Ok(checked),
            Err(why) => Err(why.to_owned()),
        });
        let mut outcome = Outcome::default();
        match checked {
            Err(why) => self.pin_listing_failed(&why, &mut outcome),
            Ok(checked) => {
                outcome.more_events = checked
                    .hidden
                    .into_iter()
                    .map(|(tool, reason)| hidden_event(&event, PinKind::Tool, &tool, reason))
                    .collect();
                match checked.next_cursor {
                    Some(cursor) => {
                        let pages = self.pin.listing.as_ref().map_or(0, |l| l.pages);
                        if pages >= MAX_PIN_PAGES {
                            self.pin_listing_failed(&format!("more than {MAX_PIN_PAGES} pages"), &mut outcome);
                        } else {
                            let (key, raw_id) = self.pin_new_id();
                            if let Some(listing) = &mut self.pin.listing {
                                listing.id = key;
                                listing.pages += 1;
                                outcome.to_server = Some(Payload::Owned(list_request(
                                    &raw_id,
                                    listing.meta.as_deref(),
                                    Some(&cursor),
                                )));
                            }
                        }
                    }
                    None => {
                        self.pin.listed = true;
                        self.pin_release(&mut outcome);
                    }
                }
            }
        }
        outcome.event = Some(event);
        outcome
    }

    fn pin_listing_failed(&mut self, why: &str, outcome: &mut Outcome) {
        let reason = format!("could not list the MCP server's tools to check their pins: {why}");
        let message = format!(
            "mcp-j: could not list the MCP server's tools to check them against their pins ({})",
            sanitize(why.as_bytes())
        );
        for (reply, event) in self.pin_release_failed_with(message::INTERNAL_ERROR, &reason, &message) {
            outcome.more_to_client.push(reply);
            outcome.more_events.push(event);
        }
        outcome.log = Some(format!(
            "refused the held tools/call requests: {}",
            sanitize(reason.as_bytes())
        ));
    }

    /// The listing is complete and checked: each held call is forwarded, or refused when
    /// its tool is hidden (or answered when the server no longer takes requests).
    fn pin_release(&mut self, outcome: &mut Outcome) {
        let Some(listing) = self.pin.listing.take() else {
            return;
        };
        for held in listing.held {
            let mut event = held.event;
            let refusal = match (self.closed, self.pin.blocked.get(&PinKind::Tool.key(&held.name))) {
                (Some(why), _) => Some((self.config.pending_error_code, why.to_owned(), format!("mcp-j: {why}"))),
                (None, Some(message)) => Some((message::INVALID_PARAMS, message.clone(), message.clone())),
                (None, None) => None,
            };
            match refusal {
                Some((code, reason, message)) => {
                    event.decision = rejected(code, reason);
                    outcome
                        .more_to_client
                        .push(error_response(Some(&held.raw_id), code, &message));
                }
                None => {
                    self.track_client_request(&held.key, &held.raw_id, "tools/call", event.tool.clone());
                    outcome.more_to_server.push((held.payload, held.key));
                }
            }
            outcome.more_events.push(event);
        }
    }

    /// Answers every held call with `message` (`code`); the listing is abandoned.
    pub(super) fn pin_release_failed_with(
        &mut self,
        code: i64,
        reason: &str,
        message: &str,
    ) -> Vec<(Vec<u8>, ProxyEvent)> {
        let Some(listing) = self.pin.listing.take() else {
            return Vec::new();
        };
        listing
            .held
            .into_iter()
            .map(|held| {
                let mut event = held.event;
                event.decision = rejected(code, reason);
                (error_response(Some(&held.raw_id), code, message), event)
            })
            .collect()
    }

    /// The server stopped: every held call is answered (`why`).
    pub(super) fn pin_release_failed(&mut self, why: &str) -> Vec<(Vec<u8>, ProxyEvent)> {
        let code = self.config.pending_error_code;
        self.pin_release_failed_with(code, why, &format!("mcp-j: {why}"))
    }

    /// A listing result to the client: tools (`tools/list`, `server/discover`) through
    /// the tool policy and (when on) the pins, prompts and resource templates through the
    /// pins. `None`: forward it as it is.
    pub(super) fn filter_listing(&mut self, kind: PinKind, raw: &str) -> Result<Option<Filtered>, &'static str> {
        let policy_applies = kind == PinKind::Tool && !self.config.tools.is_open();
        if !policy_applies && self.pins.0.is_none() {
            return Ok(None);
        }
        let checked = self.check_listing(kind, raw)?;
        if kind == PinKind::Tool && self.pins.0.is_some() && checked.has_tools && checked.next_cursor.is_none() {
            self.pin.listed = true;
        }
        Ok(checked.result.map(|result| Filtered {
            result,
            what: checked.what.join("; "),
            hidden: checked.hidden,
        }))
    }

    /// One listing page of `kind` through the tool policy (tools only), then each remaining
    /// entry through the pins (hidden ones removed and remembered, passing ones forgotten).
    fn check_listing(&mut self, kind: PinKind, raw: &str) -> Result<Checked, &'static str> {
        let mut what = Vec::new();
        let current: Cow<'_, str> = if kind != PinKind::Tool || self.config.tools.is_open() {
            Cow::Borrowed(raw)
        } else {
            match filter_tools(raw, &self.config.tools)? {
                None => Cow::Borrowed(raw),
                Some((text, removed, total)) => {
                    what.push(format!(
                        "tools/list: removed {removed} of {total} tools not allowed by policy"
                    ));
                    Cow::Owned(text)
                }
            }
        };
        let policy_changed = matches!(current, Cow::Owned(_));
        let Some(pins) = self.pins.0 else {
            return Ok(Checked {
                result: policy_changed.then(|| current.into_owned()),
                what,
                hidden: Vec::new(),
                next_cursor: None,
                has_tools: false,
            });
        };
        let mut obj = match RawObject::parse_str(&current) {
            Ok(o) => o,
            Err(ObjectError::DuplicateKey) => return Err("duplicate key in result"),
            Err(_) => return Err("result is not an object"),
        };
        let next_cursor = obj.get("nextCursor").filter(|c| c.trim() != "null").map(str::to_owned);
        let array = kind.array();
        let Some(tools) = obj.get(array) else {
            return Ok(Checked {
                result: policy_changed.then(|| current.to_string()),
                what,
                hidden: Vec::new(),
                next_cursor,
                has_tools: false,
            });
        };
        let Some(tools) = json::raw_array(tools) else {
            return Err(match kind {
                PinKind::Tool => "`tools` is not an array",
                PinKind::Prompt => "`prompts` is not an array",
                PinKind::ResourceTemplate => "`resourceTemplates` is not an array",
            });
        };
        let total = tools.len();
        let mut hidden: Vec<(String, String)> = Vec::new();
        let mut passed: Vec<(String, &RawValue)> = Vec::with_capacity(total);
        let mut unnamed = 0;
        for tool in tools {
            let Some((name, definition, digest)) = pinned_entry(kind, tool.get()) else {
                unnamed += 1;
                continue;
            };
            match pins.check(kind, &name, &definition, &digest) {
                PinCheck::Changed { message, hide: true } => hidden.push((name, message)),
                PinCheck::Changed { hide: false, .. } | PinCheck::Pass => passed.push((name, tool)),
            }
        }
        // A name listed twice with one copy hidden is hidden altogether: the client must
        // not see (nor call) the pinned copy of a tool whose other copy changed.
        let hidden_names: std::collections::HashSet<&str> = hidden.iter().map(|(n, _)| n.as_str()).collect();
        let mut kept: Vec<&RawValue> = Vec::with_capacity(passed.len());
        let mut twins = 0;
        for (name, tool) in &passed {
            if hidden_names.contains(name.as_str()) {
                twins += 1;
            } else {
                self.pin.blocked.remove(&kind.key(name));
                kept.push(tool);
            }
        }
        for (name, message) in &hidden {
            let key = kind.key(name);
            if self.pin.blocked.len() < MAX_BLOCKED || self.pin.blocked.contains_key(&key) {
                self.pin.blocked.insert(key, message.clone());
            }
        }
        if hidden.is_empty() && unnamed == 0 {
            return Ok(Checked {
                result: policy_changed.then(|| current.to_string()),
                what,
                hidden,
                next_cursor,
                has_tools: true,
            });
        }
        let mut list = String::with_capacity(current.len());
        list.push('[');
        for (i, tool) in kept.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            list.push_str(tool.get());
        }
        list.push(']');
        let (method, label) = (kind.list_method(), kind.label());
        if !hidden.is_empty() {
            what.push(format!(
                "{method}: hid {} of {total} {label}s changed since they were pinned",
                hidden.len() + twins
            ));
        }
        if unnamed > 0 {
            what.push(format!("{method}: removed {unnamed} {label}s without a readable name"));
        }
        obj.set(array, list);
        let result = obj.to_json();
        Ok(Checked {
            result: Some(result),
            what,
            hidden,
            next_cursor,
            has_tools: true,
        })
    }
}
