//! MCP policy: which tools may be called and listed, which client capabilities the server
//! is told of, and which server requests reach the client (see the crate documentation's
//! rules "Tools", "Request methods without an id" and "Server → client requests").

use std::collections::BTreeSet;

use serde_json::value::RawValue;

use super::pending::ClientPending;
use super::pins::hidden_event;
use super::{Outcome, Payload, Session, capped, rejected, sanitize};
use crate::config::ClientFeature;
use crate::event::{Decision, ProxyEvent};
use crate::json::{self, ObjectError, RawObject, canonical_sha256, error_response, result_response};
use crate::message;

/// `_meta` key under which 2026-07-28 requests carry the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Client→server request methods the proxy applies policy to (to their params or to their
/// results). Sent as a notification (no id) they are not valid MCP and the policy could not
/// be applied the same way (there is no result to filter, no caller to refuse), while a
/// server that dispatches on the method name alone would act on them: such a notification
/// is dropped and logged, whatever the policy.
pub(super) const CLIENT_POLICY_REQUESTS: [&str; 7] = [
    "tools/call",
    "tools/list",
    "server/discover",
    "initialize",
    "prompts/get",
    "prompts/list",
    "resources/templates/list",
];

/// What a client request turned into after policy.
pub(super) enum ClientRequest {
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

impl Session<'_> {
    /// `tools/call`: the tool must be named and allowed. Returns the decision, the tool
    /// name and the arguments' hash.
    pub(super) fn tools_call(&self, params: Option<&RawValue>) -> (ClientRequest, Option<String>, Option<String>) {
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
    pub(super) fn strip_client_capabilities(&self, method: &str, params: Option<&RawValue>) -> ClientRequest {
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

    pub(super) fn params_rewrite(&self, obj: RawObject<'_>, mut removed: Vec<&'static str>) -> ClientRequest {
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

    /// A success response to a pending client request: filter tool lists, refuse
    /// 2026-07-28 `input_required` results that ask for a denied feature.
    pub(super) fn server_result(
        &mut self,
        pending: &ClientPending,
        result: &RawValue,
        mut event: ProxyEvent,
    ) -> Outcome {
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

        if let Some(kind) = pending.listing {
            match self.filter_listing(kind, raw) {
                Ok(None) => {}
                Ok(Some(filtered)) => {
                    event.decision = Decision::Rewritten { what: filtered.what };
                    let more_events = filtered
                        .hidden
                        .into_iter()
                        .map(|(name, reason)| hidden_event(&event, kind, &name, reason))
                        .collect();
                    return Outcome {
                        to_client: Some(Payload::Owned(result_response(&pending.raw_id, &filtered.result))),
                        event: Some(event),
                        more_events,
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
    pub(super) fn input_required_denied(&self, raw: &str) -> Option<Result<ClientFeature, &'static str>> {
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

    /// The feature a server request asks for, when the policy denies it.
    pub(super) fn server_request_denied(&self, method: &str) -> Option<ClientFeature> {
        ClientFeature::of_method(method).filter(|feature| !self.config.server_requests.allows(*feature))
    }
}

/// Most tool names kept from the first listing (a hostile server could list millions).
const MAX_LISTED_NAMES: usize = 10_000;

impl Session<'_> {
    /// Takes the tool names of one page of the server's first tool listing. When the
    /// listing is complete (a page without `nextCursor`), returns the warning, once, for
    /// the names the tool policy gives that the server does not list: typically a typo,
    /// with which `--deny-tool` would deny nothing.
    pub(super) fn note_listing(&mut self, result: &str) -> Option<String> {
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
