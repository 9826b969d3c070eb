//! JSON-RPC 2.0 message validation: one line in, a classified [`Message`] or an
//! [`Invalid`] with the error code to answer.
//!
//! Order of checks: UTF-8 (else -32700), no byte order mark (else -32700), nesting depth by
//! byte scan (else -32600), a single JSON object (array → batch → -32600; not JSON →
//! -32700), then the envelope: member names decodable (a lone surrogate escape → -32600),
//! `jsonrpc` exactly `"2.0"`, `id` a string (≤ 1 KiB, decodable) or an integer (`null`
//! only on error responses), `method` a decodable string, `params` an object or array, an
//! object `params` with unique, decodable member names, exactly one of `result` / `error`
//! on responses, `error` an object with an integer `code` and a string `message`.
//! Duplicate envelope members are refused. Nothing here recurses: values the proxy does not
//! need stay raw (and are forwarded as they came, lone surrogates included).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use crate::json;

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "Invalid params".
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "Internal error".
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP (2026-07-28): the request needs a client capability that is not available.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32003;

/// Longest request id accepted, in bytes of JSON text. Pending ids are kept in memory.
pub const MAX_ID_BYTES: usize = 1024;

/// A request id as a matching key: `1` and `"1"` are different ids; `"a"` and `"\u0061"`
/// are the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKey {
    /// An integer id.
    Num(i128),
    /// A string id, unescaped.
    Str(Box<str>),
}

impl fmt::Display for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdKey::Num(n) => write!(f, "{n}"),
            IdKey::Str(s) => f.write_str(s),
        }
    }
}

/// A request id: its key and its JSON text as received (echoed back verbatim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id<'a> {
    /// The matching key.
    pub key: IdKey,
    /// The JSON text.
    pub raw: &'a str,
}

/// Reads an id value. `Ok(None)` for `null`.
pub fn parse_id(raw: &str) -> Result<Option<Id<'_>>, &'static str> {
    let text = raw.trim();
    if text.len() > MAX_ID_BYTES {
        return Err("id longer than 1024 bytes");
    }
    match text.as_bytes().first() {
        Some(b'"') => {
            let s = json::as_string(text).ok_or("id is not a valid string (a lone surrogate escape?)")?;
            Ok(Some(Id {
                key: IdKey::Str(s.into_owned().into_boxed_str()),
                raw: text,
            }))
        }
        Some(b'-' | b'0'..=b'9') => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 30 {
                return Err("id must be a string or an integer");
            }
            let n: i128 = text.parse().map_err(|_| "id must be a string or an integer")?;
            Ok(Some(Id {
                key: IdKey::Num(n),
                raw: text,
            }))
        }
        Some(b'n') if text == "null" => Ok(None),
        _ => Err("id must be a string or an integer"),
    }
}

/// What kind of message a valid line is.
#[derive(Debug, Clone)]
pub enum Body<'a> {
    /// `method` and `id`.
    Request {
        /// The id.
        id: Id<'a>,
        /// The method.
        method: Cow<'a, str>,
        /// The raw params, if any.
        params: Option<&'a RawValue>,
    },
    /// `method`, no `id`.
    Notification {
        /// The method.
        method: Cow<'a, str>,
        /// The raw params, if any.
        params: Option<&'a RawValue>,
    },
    /// `result`.
    Response {
        /// The id of the request answered.
        id: Id<'a>,
        /// The raw result.
        result: &'a RawValue,
    },
    /// `error`.
    ErrorResponse {
        /// The id of the request answered; `None` for `"id": null`.
        id: Option<Id<'a>>,
        /// The error code.
        code: i64,
    },
}

/// A valid JSON-RPC 2.0 message.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The line as text (not trimmed).
    pub text: &'a str,
    /// What it is.
    pub body: Body<'a>,
}

/// Why a line is not a valid message, and the error to answer it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// -32700 or -32600.
    pub code: i64,
    /// Why, in words.
    pub reason: Cow<'static, str>,
    /// The id's JSON text, when one could be read (else the answer carries `null`).
    pub id: Option<String>,
}

impl Invalid {
    fn parse(reason: &'static str) -> Self {
        Invalid {
            code: PARSE_ERROR,
            reason: Cow::Borrowed(reason),
            id: None,
        }
    }

    fn request(reason: impl Into<Cow<'static, str>>, id: Option<String>) -> Self {
        Invalid {
            code: INVALID_REQUEST,
            reason: reason.into(),
            id,
        }
    }
}

/// A present member, `null` included (serde would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[allow(dead_code)]
    message: String,
}

/// The id of a request that is otherwise invalid, when it can be read without risk (the
/// parse skips everything but `id`, without recursion).
fn salvage_id(text: &str) -> Option<String> {
    let only: IdOnly<'_> = serde_json::from_str(text).ok()?;
    let id = parse_id(only.id?.get()).ok()??;
    Some(id.raw.to_owned())
}

/// True for a line that is empty or only JSON whitespace (ignored by the proxy).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Validates one line. See the module docs for the checks and their order.
pub fn parse(line: &[u8], max_depth: usize) -> Result<Message<'_>, Invalid> {
    let text = std::str::from_utf8(line).map_err(|_| Invalid::parse("not valid UTF-8"))?;
    if json::depth_exceeds(line, max_depth) {
        return Err(Invalid::request(
            format!("JSON nested deeper than {max_depth} levels"),
            salvage_id(text),
        ));
    }
    if text.starts_with('\u{feff}') {
        // RFC 8259 lets a parser ignore a BOM, but the proxy forwards the original bytes and
        // the peer may not ignore it: refused, like any other line that is not JSON.
        return Err(Invalid::parse(
            "not valid JSON: the line starts with a byte order mark (U+FEFF)",
        ));
    }
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Invalid::request("batch requests are not supported", None),
                Err(_) => Invalid::parse("not valid JSON"),
            });
        }
        _ => {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Invalid::request("not a JSON-RPC message object", None),
                Err(_) => Invalid::parse("not valid JSON"),
            });
        }
    }
    let env: Envelope<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        Category::Data => Invalid::request(
            "malformed JSON-RPC message (duplicate or mistyped member)",
            salvage_id(text),
        ),
        // Valid JSON text whose member names cannot be decoded: a lone surrogate escape
        // (`"\ud800"`) in a name the proxy must compare. Skipping values does not decode them.
        _ if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => Invalid::request(
            "a member name is not valid Unicode (lone surrogate escape)",
            salvage_id(text),
        ),
        _ => Invalid::parse("not valid JSON"),
    })?;

    // From here on the id can be read for the answer (if it is well-formed).
    let id = match env.id.map(|raw| parse_id(raw.get())) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(reason)) => return Err(Invalid::request(reason, None)),
    };
    let id_raw: Option<String> = id.as_ref().and_then(|i| i.as_ref()).map(|i| i.raw.to_owned());
    let id_text = || id_raw.clone();

    match env.jsonrpc.map(|raw| json::as_string(raw.get())) {
        Some(Some(v)) if v == "2.0" => {}
        _ => return Err(Invalid::request("`jsonrpc` must be \"2.0\"", id_text())),
    }

    if let Some(method) = env.method {
        let Some(method) = json::as_string(method.get()) else {
            let reason = if method.get().starts_with('"') {
                "`method` is not valid Unicode (lone surrogate escape)"
            } else {
                "`method` must be a string"
            };
            return Err(Invalid::request(reason, id_text()));
        };
        if env.result.is_some() || env.error.is_some() {
            return Err(Invalid::request(
                "a request cannot carry `result` or `error`",
                id_text(),
            ));
        }
        if let Some(params) = env.params {
            let first = params.get().trim_start().as_bytes().first().copied();
            if !matches!(first, Some(b'{' | b'[')) {
                return Err(Invalid::request("`params` must be an object or an array", id_text()));
            }
            // Peers disagree on duplicate names (first wins, last wins, error) and on
            // undecodable ones: a `params` the proxy and the peer could read differently is
            // refused whether or not the proxy reads it for this method.
            match json::RawObject::parse(params) {
                Ok(_) | Err(json::ObjectError::NotObject) => {}
                Err(json::ObjectError::DuplicateKey) => {
                    return Err(Invalid::request("duplicate member in `params`", id_text()));
                }
                Err(json::ObjectError::Invalid) => {
                    return Err(Invalid::request(
                        "a member name in `params` is not valid Unicode (lone surrogate escape)",
                        id_text(),
                    ));
                }
            }
        }
        let body = match id {
            None => Body::Notification {
                method,
                params: env.params,
            },
            Some(Some(id)) => Body::Request {
                id,
                method,
                params: env.params,
            },
            Some(None) => return Err(Invalid::request("a request id cannot be null", None)),
        };
        return Ok(Message { text, body });
    }

    if env.params.is_some() {
        return Err(Invalid::request("a response cannot carry `params`", id_text()));
    }
    let Some(id) = id else {
        return Err(Invalid::request(
            "neither a request (no `method`) nor a response (no `id`)",
            None,
        ));
    };
    let body = match (env.result, env.error) {
        (Some(_), Some(_)) => {
            return Err(Invalid::request(
                "a response cannot carry both `result` and `error`",
                id_text(),
            ));
        }
        (None, None) => {
            return Err(Invalid::request("a response needs `result` or `error`", id_text()));
        }
        (Some(result), None) => match id {
            Some(id) => Body::Response { id, result },
            None => return Err(Invalid::request("a result response needs a non-null id", None)),
        },
        (None, Some(error)) => {
            let Ok(err) = serde_json::from_str::<ErrorObject>(error.get()) else {
                return Err(Invalid::request(
                    "`error` must be an object with an integer `code` and a string `message`",
                    id_text(),
                ));
            };
            Body::ErrorResponse { id, code: err.code }
        }
    };
    Ok(Message { text, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(line: &str) -> Invalid {
        parse(line.as_bytes(), 64).unwrap_err()
    }

    #[test]
    fn classifies_the_four_kinds() {
        let m = parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#, 64).unwrap();
        assert!(
            matches!(m.body, Body::Request { ref id, ref method, params: None } if id.key == IdKey::Num(1) && method == "ping")
        );
        let m = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#, 64).unwrap();
        assert!(matches!(m.body, Body::Notification { .. }));
        let m = parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#, 64).unwrap();
        assert!(matches!(m.body, Body::Response { ref id, .. } if id.key == IdKey::Str("a".into())));
        let m = parse(
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
            64,
        )
        .unwrap();
        assert!(matches!(m.body, Body::ErrorResponse { id: None, code: -32700 }));
    }

    #[test]
    fn parse_errors_are_32700_with_null_id() {
        for line in ["{nope", "hello", "\"unterminated", "{\"id\":1,", "[1,"] {
            let e = invalid(line);
            assert_eq!((e.code, e.id), (PARSE_ERROR, None), "{line}");
        }
        let e = parse(b"{\"id\":1,\"x\":\"\xff\"}", 64).unwrap_err();
        assert_eq!(e.code, PARSE_ERROR);
    }

    #[test]
    fn shape_errors_are_32600_with_the_id_when_readable() {
        let cases = [
            (r#"{"jsonrpc":"1.0","id":5,"method":"x"}"#, Some("5")),
            (r#"{"id":"q","method":"x"}"#, Some("\"q\"")),
            (r#"{"jsonrpc":"2.0","id":5,"method":3}"#, Some("5")),
            (
                r#"{"jsonrpc":"2.0","id":5,"result":1,"error":{"code":1,"message":"m"}}"#,
                Some("5"),
            ),
            (r#"{"jsonrpc":"2.0","id":5,"method":"x","method":"y"}"#, Some("5")),
            (r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#, None),
            (r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#, None),
            (r#"{"jsonrpc":"2.0","id":true,"method":"x"}"#, None),
            (r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#, None),
            (r#"{"jsonrpc":"2.0","id":7,"method":"x","params":"s"}"#, Some("7")),
            (
                r#"{"jsonrpc":"2.0","id":7,"error":{"code":"x","message":"m"}}"#,
                Some("7"),
            ),
            (r#"{"jsonrpc":"2.0","id":7}"#, Some("7")),
            (r#"{"jsonrpc":"2.0"}"#, None),
            (r#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#, None),
            ("42", None),
        ];
        for (line, id) in cases {
            let e = invalid(line);
            assert_eq!(e.code, INVALID_REQUEST, "{line}");
            assert_eq!(e.id.as_deref(), id, "{line}");
        }
    }

    #[test]
    fn deep_nesting_is_32600_and_never_recurses() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"x","params":{}{}}}"#,
            "[".repeat(200_000),
            "]".repeat(200_000)
        );
        let e = invalid(&deep);
        assert_eq!((e.code, e.id.as_deref()), (INVALID_REQUEST, Some("9")));
        let ok = format!(
            r#"{{"jsonrpc":"2.0","id":9,"method":"x","params":{}{}}}"#,
            "[".repeat(63),
            "]".repeat(63)
        );
        assert!(parse(ok.as_bytes(), 64).is_ok());
    }

    #[test]
    fn ids_match_by_value() {
        let a = parse_id(r#""\u0061""#).unwrap().unwrap();
        assert_eq!(a.key, IdKey::Str("a".into()));
        assert_eq!(a.raw, r#""\u0061""#);
        assert_ne!(
            parse_id("1").unwrap().unwrap().key,
            parse_id("\"1\"").unwrap().unwrap().key
        );
        assert_eq!(parse_id("-12").unwrap().unwrap().key, IdKey::Num(-12));
        assert!(parse_id("1e3").is_err());
        assert!(parse_id(&format!("\"{}\"", "x".repeat(MAX_ID_BYTES))).is_err());
    }
}
