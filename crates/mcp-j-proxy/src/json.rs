//! Small JSON tools. Those that decide what is forwarded never recurse and never
//! reinterpret what they don't touch; the canonical form, made only for a digest, recurses
//! at most 128 levels (deeper text is hashed as it is).
//!
//! - [`depth_exceeds`]: a byte scan for nesting depth, run before any parser sees a line.
//! - [`RawObject`]: one level of a JSON object as `(key, raw value text)` pairs in their
//!   original order, duplicate keys rejected. Rewrites replace one value's text and write
//!   the object back; every other byte of every other value is kept as it was (numbers are
//!   never reparsed, so none lose precision).
//! - [`error_response`], [`result_response`]: the JSON-RPC responses the proxy writes
//!   itself, around an id and a result kept as their original text.
//! - `canonical_json`, [`canonical_sha256`]: the RFC 8785 canonical form of a value and
//!   its digest (the audit log's `args_sha256`, and tool pins' digests), in
//!   `json/canonical.rs`; `sha256_hex` of any text.
//!
//! Duplicate keys are refused wherever the proxy reads a key, because parsers disagree on
//! them (first wins, last wins, error): a message the proxy reads one way and the server
//! or client another is how a policy gets bypassed.

mod canonical;

pub use canonical::{canonical_json, canonical_sha256, sha256_hex};

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// True when `bytes`, read as JSON, nests arrays/objects deeper than `max` (a top-level
/// object is depth 1). Counts brackets outside strings; works on any bytes, valid JSON or
/// not, in one pass without recursion.
pub fn depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                // Jump over the string (most of a large message): to the next quote that
                // is not escaped. An unterminated string runs to the end of the line.
                i += 1;
                loop {
                    let Some(k) = bytes.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) else {
                        return false;
                    };
                    i += k;
                    if bytes[i] == b'\\' {
                        i += 2;
                    } else {
                        break;
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// A key as read: borrowed when it had no escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Why a [`RawObject`] could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// The value is not a JSON object.
    NotObject,
    /// A key appears twice (after unescaping).
    DuplicateKey,
    /// Malformed JSON (should not happen on text that already parsed).
    Invalid,
}

/// One level of a JSON object: keys in order with their values' raw JSON text.
#[derive(Debug, Clone)]
pub struct RawObject<'a> {
    entries: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> RawObject<'a> {
    /// Reads one object level from `raw`, which must be an object without duplicate keys.
    pub fn parse(raw: &'a RawValue) -> Result<Self, ObjectError> {
        Self::parse_str(raw.get())
    }

    /// As [`RawObject::parse`], from JSON text.
    pub fn parse_str(text: &'a str) -> Result<Self, ObjectError> {
        if !text.trim_start().starts_with('{') {
            return Err(ObjectError::NotObject);
        }
        let pairs: Pairs<'a> = serde_json::from_str(text).map_err(|_| ObjectError::Invalid)?;
        let mut keys: Vec<&str> = pairs.0.iter().map(|(k, _)| k.0.as_ref()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(ObjectError::DuplicateKey);
        }
        Ok(RawObject {
            entries: pairs
                .0
                .into_iter()
                .map(|(k, v)| (k.0, Cow::Borrowed(v.get())))
                .collect(),
        })
    }

    /// The raw text of `key`'s value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_ref())
    }

    /// Replaces the value of an existing `key` with the JSON text `value`.
    pub fn set(&mut self, key: &str, value: String) {
        if let Some(entry) = self.entries.iter_mut().find(|(k, _)| k == key) {
            entry.1 = Cow::Owned(value);
        }
    }

    /// Removes the keys for which `drop` is true; returns how many went.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&str) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| !drop(k));
        before - self.entries.len()
    }

    /// Iterates over `(key, raw value)` in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Writes the object back as compact JSON (values as they were).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.entries.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
        out.push('{');
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

/// The raw pairs of one object, duplicates still in (checked by [`RawObject::parse`]).
struct Pairs<'a>(Vec<(Key<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    out.push((key, value));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads a JSON array's elements as raw values.
pub fn raw_array(text: &str) -> Option<Vec<&RawValue>> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Decodes a raw JSON value that must be a string.
pub fn as_string(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.trim_start().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Key<'_>>(raw).ok().map(|k| k.0)
}

/// Appends `s` as a JSON string literal, escaped as RFC 8785 §3.2.2.2 says (so the
/// canonical form uses it too): only `"`, `\` and controls; `\b \t \n \f \r` in their
/// short forms, other controls as `\u00xx` (lowercase hex).
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON-RPC error response, as bytes.
pub fn error_response(id_raw: Option<&str>, code: i64, message: &str) -> Vec<u8> {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id_raw.unwrap_or("null"));
    let _ = write!(out, ",\"error\":{{\"code\":{code},\"message\":");
    push_json_string(&mut out, message);
    out.push_str("}}");
    out.into_bytes()
}

pub fn result_response(id_raw: &str, result: &str) -> Vec<u8> {
    let mut out = String::with_capacity(40 + id_raw.len() + result.len());
    out.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out.push_str(id_raw);
    out.push_str(",\"result\":");
    out.push_str(result);
    out.push('}');
    out.into_bytes()
}

/// `s` as a JSON string literal.
#[cfg(test)]
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!depth_exceeds(br#"{"a":[1,{"b":"[[[[["}]}"#, 3));
        assert!(depth_exceeds(br#"{"a":[1,{"b":[]}]}"#, 3));
        assert!(!depth_exceeds(br#"{"a":"\"[[[["}"#, 1));
        assert!(
            !depth_exceeds(br#"{"a":"\\"}"#, 1),
            "an escaped backslash ends no string"
        );
        assert!(depth_exceeds(br#"{"a":"\\","b":[]}"#, 1));
        assert!(!depth_exceeds(br#"{"a":"unterminated [[[["#, 1));
        assert!(!depth_exceeds(br#"{"a":"ends in a backslash\"#, 1));
        let deep = "[".repeat(100_000);
        assert!(depth_exceeds(deep.as_bytes(), 64));
    }

    /// The byte-at-a-time scan `depth_exceeds` replaced (it jumps over strings now).
    fn depth_exceeds_reference(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn depth_scan_agrees_with_the_reference(
            bytes in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\ax".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            proptest::prop_assert_eq!(depth_exceeds(&bytes, max), depth_exceeds_reference(&bytes, max));
        }
    }

    #[test]
    fn raw_object_keeps_values_byte_exact_and_rejects_duplicates() {
        let text = r#"{"b": 1.000000000000000000001, "a" :{"x": [1, 2]}, "c":"\u00e9"}"#;
        let mut obj = RawObject::parse_str(text).unwrap();
        assert_eq!(obj.get("a"), Some(r#"{"x": [1, 2]}"#));
        obj.remove_where(|k| k == "c");
        obj.set("a", "{}".to_owned());
        assert_eq!(obj.to_json(), r#"{"b":1.000000000000000000001,"a":{}}"#);
        assert_eq!(
            RawObject::parse_str(r#"{"a":1,"\u0061":2}"#).unwrap_err(),
            ObjectError::DuplicateKey
        );
        assert_eq!(RawObject::parse_str("[1]").unwrap_err(), ObjectError::NotObject);
    }

    #[test]
    fn json_string_escapes_controls() {
        assert_eq!(json_string("a\"b\\\u{1}"), r#""a\"b\\\u0001""#);
        let back: String = serde_json::from_str(&json_string("x\u{7f}\u{2028}\n")).unwrap();
        assert_eq!(back, "x\u{7f}\u{2028}\n");
    }
}
