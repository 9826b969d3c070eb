//! The canonical form of a JSON value: RFC 8785, the JSON Canonicalization Scheme (JCS).
//!
//! Members sorted by their names' UTF-16 code units, no whitespace, numbers as ECMAScript
//! prints an IEEE-754 double (`1.0`, `1e0` and `1` are all `1`), strings with the minimal
//! escapes (`"\u00e9"` and `"é"` are one string). Audit digests (and the pins that will
//! persist them) are taken over this form, so it is built here from the JSON text alone:
//! no `serde_json::Value` or `Map` (whose key order follows the `preserve_order` feature),
//! no serde_json number parsing (which follows `float_roundtrip` and
//! `arbitrary_precision`). Numbers are read with `f64::from_str` (correctly rounded, as
//! ECMAScript reads them); only string escapes are decoded by serde_json, which no feature
//! changes. The tests below give the same results with those three features on
//! (`cargo test -p mcp-j-proxy --lib --features
//! serde_json/preserve_order,serde_json/float_roundtrip,serde_json/arbitrary_precision
//! canonical`) as off.
//!
//! A member name given twice keeps its last value, as `JSON.parse` does (docs/CLI.md
//! says so of `args_sha256`). Text that has no canonical form (a number out of the double
//! range, a lone surrogate escape, nesting deeper than [`MAX_DEPTH`], not JSON) gives
//! `None`.

use std::cmp::Ordering;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// Deepest nesting read (the proxy refuses messages deeper than its `max_depth`, 64 by
/// default, before this runs; the bound keeps the recursion below finite whatever it is
/// given).
pub const MAX_DEPTH: usize = 128;

/// SHA-256 (lowercase hex) of `raw`'s RFC 8785 canonical form; of the trimmed raw text
/// when it has none (see the module documentation).
pub fn canonical_sha256(raw: &str) -> String {
    match canonical_json(raw) {
        Some(text) => sha256_hex(&text),
        None => sha256_hex(raw.trim()),
    }
}

/// SHA-256 (lowercase hex) of `text` as it is.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// `text` (one JSON value, whitespace around it allowed) in RFC 8785 canonical form.
pub fn canonical_json(text: &str) -> Option<String> {
    let mut parser = Parser { text, pos: 0 };
    parser.skip_whitespace();
    let value = parser.value(1)?;
    parser.skip_whitespace();
    if parser.pos != text.len() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    write_value(&mut out, &value);
    Some(out)
}

enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    /// Sorted by name (UTF-16 code units), names unique.
    Object(Vec<(String, Value)>),
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn literal(&mut self, word: &str, value: Value) -> Option<Value> {
        let end = self.pos + word.len();
        (self.text.get(self.pos..end) == Some(word)).then(|| {
            self.pos = end;
            value
        })
    }

    /// One value at nesting level `depth` (a top-level array or object is level 1).
    fn value(&mut self, depth: usize) -> Option<Value> {
        match self.peek()? {
            b'n' => self.literal("null", Value::Null),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'[' if depth <= MAX_DEPTH => self.array(depth),
            b'{' if depth <= MAX_DEPTH => self.object(depth),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.eat(b']') {
            return Some(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            if self.eat(b']') {
                return Some(Value::Array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        self.skip_whitespace();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return None;
                }
                let name = self.string()?;
                self.skip_whitespace();
                if !self.eat(b':') {
                    return None;
                }
                self.skip_whitespace();
                members.push((name, self.value(depth + 1)?));
                self.skip_whitespace();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        // A stable sort keeps a repeated name's occurrences in order: the last one wins.
        members.sort_by(|a, b| utf16_order(&a.0, &b.0));
        let mut unique: Vec<(String, Value)> = Vec::with_capacity(members.len());
        for (name, value) in members {
            match unique.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => unique.push((name, value)),
            }
        }
        Some(Value::Object(unique))
    }

    /// A string literal, decoded.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match *bytes.get(i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b if b < 0x20 => return None,
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        let literal = self.text.get(start..self.pos)?;
        if escaped {
            // serde_json decodes escapes (and refuses lone surrogates); it builds no map.
            super::as_string(literal).map(|s| s.into_owned())
        } else {
            literal.get(1..literal.len() - 1).map(str::to_owned)
        }
    }

    /// A number per the JSON grammar, read as the nearest double.
    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        self.eat(b'-');
        if !self.eat(b'0') {
            if !matches!(self.peek(), Some(b'1'..=b'9')) {
                return None;
            }
            self.digits();
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let value: f64 = self.text.get(start..self.pos)?.parse().ok()?;
        value.is_finite().then_some(Value::Number(value))
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }
}

/// RFC 8785 §3.2.3: member names compare as arrays of UTF-16 code units.
fn utf16_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_number(out, *n),
        Value::String(s) => super::push_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (name, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                super::push_json_string(out, name);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// The digits `d1…dk` and exponent `n` of a finite positive double, value = 0.d1…dk × 10^n,
/// as ECMA-262 Number::toString picks them: `k` as small as possible, then the closest
/// to the double, then, between two equally close, the even one.
///
/// Rust's `{:e}` gives the shortest digits that read back as the same double, the closest
/// of them, but breaks an exact tie upwards (0x43143ff3c1cb0959, exactly
/// 1424953923781206.25, prints as `…206.3`; ECMAScript says `…206.2`). A tie is seen in
/// the double's exact decimal expansion (at most 767 significant digits, so
/// `{:.1100e}` is exact): it then has `k + 1` digits ending in 5. That expansion is only
/// made when the value rounded to `k + 1` digits ends in 5.
fn shortest_digits(value: f64) -> (String, i64) {
    let split = |scientific: &str| -> (String, i64) {
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        (digits, exponent.parse::<i64>().unwrap_or(0) + 1)
    };
    let (digits, n) = split(&format!("{value:e}"));
    // Cheap first: one more digit than the shortest form, rounded, ends in 5 in a tie.
    let (one_more, _) = split(&format!("{value:.prec$e}", prec = digits.len()));
    if !one_more.ends_with('5') {
        return (digits, n);
    }
    let (exact, exact_n) = split(&format!("{value:.1100e}"));
    let exact = exact.trim_end_matches('0');
    if exact.len() == digits.len() + 1 && exact.ends_with('5') && exact_n == n {
        let truncated = &exact[..digits.len()];
        let last = truncated.bytes().last().unwrap_or(b'0');
        if last % 2 == 0 && truncated != digits {
            let even = format!("0.{truncated}e{n}");
            if even.parse::<f64>().ok() == Some(value) {
                return (truncated.to_owned(), n);
            }
        }
    }
    (digits, n)
}

/// RFC 8785 §3.2.2.3: a finite double as ECMAScript's `Number.prototype.toString` prints
/// it (ECMA-262, Number::toString): the shortest digits that read back as the same double,
/// plain notation for decimal exponents in -7 < n <= 21, else `d.ddde±x`.
fn push_number(out: &mut String, value: f64) {
    if value == 0.0 {
        out.push('0'); // -0 too
        return;
    }
    if value < 0.0 {
        out.push('-');
    }
    let (digits, n) = shortest_digits(value.abs());
    let k = digits.len() as i64;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{}", if n > 0 { '+' } else { '-' }, (n - 1).abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        canonical_json(text).unwrap()
    }

    /// RFC 8785 §3.2.2 (the sample input and its canonical form).
    #[test]
    fn rfc8785_sample() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        assert_eq!(
            canonical(input),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
             \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    /// RFC 8785 §3.2.3 (the sorting example: UTF-16 code unit order).
    #[test]
    fn rfc8785_sorting() {
        let input = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        assert_eq!(
            canonical(input),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    /// RFC 8785 Appendix B: IEEE-754 doubles (bits) and their ECMAScript text.
    #[test]
    fn rfc8785_numbers() {
        let table: [(u64, &str); 24] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, expected) in table {
            let mut out = String::new();
            push_number(&mut out, f64::from_bits(bits));
            assert_eq!(out, expected, "bits {bits:#018x}");
            // And the same text read back canonicalises to itself.
            assert_eq!(canonical(expected), expected);
        }
        // NaN and the infinities have no JSON form: out-of-range text has no canonical one.
        assert_eq!(canonical_json("1e400"), None);
        assert_eq!(canonical_json("[-1e400]"), None);
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let a = canonical_sha256(r#"{ "b":1, "a":[true, {"y":null,"x":"s"}] }"#);
        assert_eq!(a, canonical_sha256("{\"a\":[true,{\"x\":\"s\",\"y\":null}],\"b\":1}"));
        assert_eq!(
            a,
            canonical_sha256("\n\t{\"b\" :\r\n1,\"a\": [ true , { \"x\" : \"s\" , \"y\" : null } ] }  ")
        );
        assert_eq!(canonical(r#"{ "b":1, "a":[true] }"#), r#"{"a":[true],"b":1}"#);
    }

    #[test]
    fn escapes_do_not_matter() {
        assert_eq!(canonical_sha256(r#"{"k":"\u00e9"}"#), canonical_sha256(r#"{"k":"é"}"#));
        assert_eq!(canonical_sha256(r#"{"\u00e9":1}"#), canonical_sha256(r#"{"é":1}"#));
        assert_eq!(canonical(r#""\/\u0041\ud83d\ude00""#), "\"/A\u{1f600}\"");
        assert_eq!(
            canonical(r#""\u001f\b\f\u007f\u2028""#),
            "\"\\u001f\\b\\f\u{7f}\u{2028}\""
        );
    }

    /// Keys whose UTF-16 order differs from their UTF-8 (and `char`) order: U+E000 is one
    /// code unit 0xE000, U+10000 the pair 0xD800 0xDC00, so U+10000 comes first, while a
    /// `BTreeMap<String, _>` (serde_json's default map) puts U+E000 first and an
    /// insertion-ordered map (`preserve_order`) keeps whichever came first. Both input
    /// orders giving this one text shows that neither map order is used.
    #[test]
    fn keys_sort_by_utf16_code_units() {
        let expected = "{\"\u{10000}\":2,\"\u{e000}\":1}";
        assert_eq!(canonical("{\"\u{e000}\":1,\"\u{10000}\":2}"), expected);
        assert_eq!(canonical("{\"\u{10000}\":2,\"\u{e000}\":1}"), expected);
        assert_eq!(canonical(r#"{"\ue000":1,"\ud800\udc00":2}"#), expected);
        assert!("\u{e000}" < "\u{10000}", "UTF-8 order is the other way");
    }

    #[test]
    fn numbers_are_ecmascript_doubles() {
        assert_eq!(canonical_sha256("[1.0]"), canonical_sha256("[1]"));
        assert_eq!(canonical_sha256("[1e2]"), canonical_sha256("[100]"));
        assert_eq!(canonical_sha256("[-0]"), canonical_sha256("[0]"));
        assert_eq!(
            canonical("[1E+2,1e-7,0.1e1,-0.0,123456789012345678901234567890]"),
            "[100,1e-7,1,0,1.2345678901234568e+29]"
        );
        // Above 2^53 integers are doubles too, as for JSON.parse.
        assert_eq!(canonical("9007199254740993"), "9007199254740992");
    }

    #[test]
    fn a_repeated_name_keeps_its_last_value() {
        assert_eq!(canonical(r#"{"a":1,"b":0,"a":2}"#), r#"{"a":2,"b":0}"#);
        assert_eq!(canonical(r#"{"a":1,"\u0061":2}"#), r#"{"a":2}"#);
    }

    #[test]
    fn any_semantic_change_changes_the_digest() {
        let variants = [
            r#"{"a":1}"#,
            r#"{"a":2}"#,
            r#"{"a":"1"}"#,
            r#"{"a":1.5}"#,
            r#"{"a":-1}"#,
            r#"{"A":1}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"a":1}}"#,
            r#"{"a":null}"#,
            r#"{"a":true}"#,
            r#"{"a":"true"}"#,
            r#"{}"#,
            r#"[]"#,
            r#"{"a":1,"b":1}"#,
            r#"[1,2]"#,
            r#"[2,1]"#,
            r#""""#,
            r#"" ""#,
            r#""é""#,
            r#""e\u0301""#,
        ];
        let digests: std::collections::BTreeSet<String> = variants.iter().map(|v| canonical_sha256(v)).collect();
        assert_eq!(digests.len(), variants.len());
    }

    #[test]
    fn text_without_a_canonical_form_is_hashed_as_it_is() {
        for text in [
            r#""\ud800""#,
            "[1,]",
            "{\"a\":1",
            "01",
            "1.",
            "-",
            "tru",
            "\"tab\there\"",
            "1 2",
        ] {
            assert_eq!(canonical_json(text), None, "{text}");
            assert_eq!(
                canonical_sha256(&format!(" {text}\n")),
                Sha256::digest(text.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(canonical_json(&deep).is_some());
        let deeper = format!("[{deep}]");
        assert_eq!(canonical_json(&deeper), None);
    }

    proptest::proptest! {
        /// Every finite double's text reads back as the same double, and is a fixed point.
        #[test]
        fn number_text_reads_back_exactly(bits in proptest::num::u64::ANY) {
            let value = f64::from_bits(bits);
            proptest::prop_assume!(value.is_finite());
            let mut out = String::new();
            push_number(&mut out, value);
            let back: f64 = out.parse().unwrap();
            proptest::prop_assert!(back == value, "{} -> {}", value, out);
            proptest::prop_assert_eq!(canonical(&out), out);
        }
    }
}
