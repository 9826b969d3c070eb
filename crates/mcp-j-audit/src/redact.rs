//! Redaction of secret values and well-known credential shapes.
//!
//! A [`Redactor`] knows the values of the run's secrets (exact substrings) and a fixed set
//! of credential shapes. Every match is replaced by a marker naming what was removed —
//! `[REDACTED:secret:GITHUB_TOKEN]` (the secret's *name*, never its value),
//! `[REDACTED:github-token]`, `[REDACTED:api-key]`, … — never by anything derived from
//! the value.
//!
//! All matches (secrets and shapes) are collected as byte ranges of the *input* first,
//! overlapping ranges are merged, and each merged range becomes one marker. So overlapping
//! secrets are removed whole (the union of both), whatever order they were given in, and a
//! secret that appears inside a token removes the whole token.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::bytes::Regex;

/// Secret values shorter than this many bytes are not redacted: a one- or two-byte secret
/// would turn every such byte sequence in every log line into a marker, and a value that
/// short is no secret anyway. [`Redactor::skipped`] lists them so the caller can warn.
pub const MIN_SECRET_LEN: usize = 4;

/// The marker for a removed private-key block.
pub const PRIVATE_KEY_MARKER: &str = "[REDACTED:private-key]";

/// How many bytes of context [`crate::RedactingWriter`] keeps when it has to cut a long
/// line: at least this much, or the longest secret if that is longer.
pub(crate) const SHAPE_OVERLAP: usize = 4096;

struct Shape {
    label: &'static str,
    regex: Regex,
    /// Redact only this capture group (e.g. the token after `Bearer `), not the whole match.
    group: usize,
}

/// The compiled credential shapes, shared by every [`Redactor`] of the process.
struct Patterns {
    shapes: Vec<Shape>,
    pem_begin: Option<Regex>,
    pem_end: Option<Regex>,
}

/// Compiled on first use, not when a [`Redactor`] is built: compiling the shapes costs more
/// than the rest of a short `mcp-j exec`, which builds a redactor on every run but uses it
/// only when there is something to redact (an audit log, the server's stderr, an error).
static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    shapes: [
        shape("private-key", &format!(r"(?s-u){PEM_BEGIN}.*?(?:{PEM_END}|\z)"), 0),
        shape("jwt", r"(?-u)\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", 0),
        shape("bearer-token", r"(?i-u)\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)", 1),
        shape("github-token", r"(?-u)github_pat_[A-Za-z0-9_]{82,}", 0),
        shape("github-token", r"(?-u)gh[pousr]_[A-Za-z0-9]{36,}", 0),
        shape("api-key", r"(?-u)\bsk-[A-Za-z0-9_-]{20,}", 0),
        shape("aws-access-key-id", r"(?-u)\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0),
    ]
    .into_iter()
    .flatten()
    .collect(),
    pem_begin: Regex::new(PEM_BEGIN).ok(),
    pem_end: Regex::new(PEM_END).ok(),
});

/// Finds and removes secrets and credential-shaped strings. Cheap to build (the shapes are
/// compiled once per process, on first use), cheap to share (`Arc`), `Send + Sync`.
pub struct Redactor {
    /// `(name, value)`, longest value first.
    secrets: Vec<(String, Vec<u8>)>,
    skipped: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values.
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new(Vec::<(String, String)>::new())
    }
}

// The patterns are constants; a failure to compile them is a bug caught by every test.
fn shape(label: &'static str, pattern: &str, group: usize) -> Option<Shape> {
    Regex::new(pattern).ok().map(|regex| Shape { label, regex, group })
}

const PEM_BEGIN: &str = r"(?-u)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----";
const PEM_END: &str = r"(?-u)-----END [A-Z0-9 ]*PRIVATE KEY-----";

impl Redactor {
    /// A redactor for these secrets, given as `(name, value)` pairs, plus the built-in
    /// credential shapes. Values shorter than [`MIN_SECRET_LEN`] bytes are skipped (see
    /// [`Redactor::skipped`]).
    pub fn new<N, V>(secrets: impl IntoIterator<Item = (N, V)>) -> Redactor
    where
        N: Into<String>,
        V: AsRef<[u8]>,
    {
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for (name, value) in secrets {
            let name = name.into();
            let value = value.as_ref();
            if value.len() < MIN_SECRET_LEN {
                skipped.push(name);
            } else {
                kept.push((name, value.to_vec()));
            }
        }
        kept.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        Redactor { secrets: kept, skipped }
    }

    /// Names of the secrets too short to be redacted (under [`MIN_SECRET_LEN`] bytes).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Length of the longest secret value (0 when there are none).
    pub fn longest_secret(&self) -> usize {
        self.secrets.first().map_or(0, |(_, v)| v.len())
    }

    /// `text` with every secret and credential shape replaced by a marker. Borrowed when
    /// nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Markers are ASCII and every range starts and ends on a match of UTF-8 text
            // (secrets are compared whole), so this is UTF-8; lossy is only a fallback.
            Cow::Owned(v) => {
                Cow::Owned(String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
            }
        }
    }

    /// As [`Redactor::redact`], for bytes that need not be UTF-8 (server stderr).
    pub fn redact_bytes<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for span in &spans {
            out.extend_from_slice(&text[at..span.start]);
            out.extend_from_slice(b"[REDACTED:");
            out.extend_from_slice(span.labels.join("+").as_bytes());
            out.push(b']');
            at = span.end;
        }
        out.extend_from_slice(&text[at..]);
        Cow::Owned(out)
    }

    /// Whether `text` opens a private-key block that it does not close (the rest of the
    /// block follows on later lines).
    pub(crate) fn opens_private_key(&self, text: &[u8]) -> bool {
        let (Some(begin_re), Some(end_re)) = (&PATTERNS.pem_begin, &PATTERNS.pem_end) else {
            return false;
        };
        match begin_re.find_iter(text).last() {
            Some(begin) => !end_re.is_match(&text[begin.end()..]),
            None => false,
        }
    }

    /// Where the private-key block that an earlier line opened ends in `text`, if it does.
    pub(crate) fn private_key_end(&self, text: &[u8]) -> Option<usize> {
        PATTERNS.pem_end.as_ref()?.find(text).map(|m| m.end())
    }

    /// Every range to redact, merged and sorted, with the labels of what matched in it.
    pub(crate) fn spans(&self, text: &[u8]) -> Vec<Span> {
        let mut raw: Vec<(usize, usize, String)> = Vec::new();
        for (name, value) in &self.secrets {
            let mut from = 0;
            while let Some(i) = find(&text[from..], value) {
                let start = from + i;
                raw.push((start, start + value.len(), format!("secret:{name}")));
                // Overlapping occurrences of the same value too ("aaaa" in "aaaaa").
                from = start + 1;
            }
        }
        for shape in &PATTERNS.shapes {
            for caps in shape.regex.captures_iter(text) {
                if let Some(m) = caps.get(shape.group) {
                    raw.push((m.start(), m.end(), shape.label.to_string()));
                }
            }
        }
        raw.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut spans: Vec<Span> = Vec::new();
        for (start, end, label) in raw {
            match spans.last_mut() {
                Some(last) if start < last.end => {
                    // A match inside an earlier one adds nothing (not even its name).
                    if end > last.end {
                        last.end = end;
                        if !last.labels.contains(&label) {
                            last.labels.push(label);
                        }
                    }
                }
                _ => spans.push(Span {
                    start,
                    end,
                    labels: vec![label],
                }),
            }
        }
        spans
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A merged range to redact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) labels: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::default()
    }

    fn alnum(n: usize) -> String {
        "aB3dE6gH9k".chars().cycle().take(n).collect()
    }

    #[test]
    fn every_shape_compiles() {
        assert_eq!(PATTERNS.shapes.len(), 7);
        assert!(PATTERNS.pem_begin.is_some() && PATTERNS.pem_end.is_some());
    }

    #[test]
    fn github_tokens() {
        for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
            let tok = format!("{p}{}", alnum(36));
            assert_eq!(r().redact(&format!("t={tok} x")), "t=[REDACTED:github-token] x");
            let near = format!("{p}{}", alnum(35));
            assert_eq!(r().redact(&near), near);
        }
        let pat = format!("github_pat_{}", "A1_".repeat(28).chars().take(82).collect::<String>());
        assert_eq!(r().redact(&pat), "[REDACTED:github-token]");
        let near = format!("github_pat_{}", alnum(81));
        assert_eq!(r().redact(&near), near);
        assert_eq!(r().redact("ghx_aaaa"), "ghx_aaaa");
    }

    #[test]
    fn api_keys() {
        for k in [
            format!("sk-{}", alnum(20)),
            format!("sk-proj-{}", alnum(40)),
            format!("sk-ant-api03-{}_-x", alnum(80)),
        ] {
            assert_eq!(r().redact(&format!("key: {k}")), "key: [REDACTED:api-key]");
        }
        for near in ["sk-abcde", "sk-", "risk-assessment-framework-version-two"] {
            assert_eq!(r().redact(near), near);
        }
        let short = format!("sk-{}", alnum(19));
        assert_eq!(r().redact(&short), short);
    }

    #[test]
    fn aws_access_key_ids() {
        assert_eq!(
            r().redact("id=AKIAIOSFODNN7EXAMPLE;"),
            "id=[REDACTED:aws-access-key-id];"
        );
        assert_eq!(r().redact("ASIA1234567890ABCDEF"), "[REDACTED:aws-access-key-id]");
        for near in ["AKIAIOSFODNN7EXAMPL", "AKIAiosfodnn7example", "AKIB1234567890ABCDEF"] {
            assert_eq!(r().redact(near), near);
        }
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(r().redact(&format!("tok {jwt}.")), "tok [REDACTED:jwt].");
        for near in ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0", "abc.def.ghi", "eyJ.x."] {
            assert_eq!(r().redact(near), near);
        }
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            r().redact("Authorization: Bearer abcdef123456=="),
            "Authorization: Bearer [REDACTED:bearer-token]"
        );
        assert_eq!(r().redact("BEARER   x.y-z_1234"), "BEARER   [REDACTED:bearer-token]");
        for near in [
            "bearer",
            "Bearer ",
            "bearer short",
            "the bearer of bad news",
            "bearer:abcdefghij",
        ] {
            assert_eq!(r().redact(near), near);
        }
    }

    #[test]
    fn private_keys() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAbCd==\n-----END RSA PRIVATE KEY-----";
        assert_eq!(r().redact(&format!("a\n{block}\nb")), "a\n[REDACTED:private-key]\nb");
        let open = "key: -----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXkt";
        assert_eq!(r().redact(open), "key: [REDACTED:private-key]");
        let public = "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----";
        assert_eq!(r().redact(public), public);
        assert!(r().opens_private_key(open.as_bytes()));
        assert!(!r().opens_private_key(block.as_bytes()));
        assert!(!r().opens_private_key(public.as_bytes()));
    }

    #[test]
    fn secret_values() {
        let r = Redactor::new([("TOKEN", "hunter2hunter2")]);
        assert_eq!(
            r.redact("a hunter2hunter2 b hunter2hunter2"),
            "a [REDACTED:secret:TOKEN] b [REDACTED:secret:TOKEN]"
        );
        assert_eq!(r.redact("hunter2"), "hunter2");
    }

    #[test]
    fn overlapping_secrets_are_removed_whole() {
        let r = Redactor::new([("SHORT", "abcd"), ("LONG", "abcdefgh"), ("TAIL", "fghijk")]);
        assert_eq!(r.redact("xabcdefghijkx"), "x[REDACTED:secret:LONG+secret:TAIL]x");
        assert_eq!(
            r.redact("abcd-abcdefgh"),
            "[REDACTED:secret:SHORT]-[REDACTED:secret:LONG]"
        );
        let r = Redactor::new([("A", "aaaa")]);
        assert_eq!(r.redact("aaaaa"), "[REDACTED:secret:A]");
    }

    #[test]
    fn secret_with_metacharacters() {
        let r = Redactor::new([("P", "a.b*c(d)[e]$^\\")]);
        assert_eq!(r.redact("x a.b*c(d)[e]$^\\ y"), "x [REDACTED:secret:P] y");
        assert_eq!(r.redact("aXb*c(d)[e]$^\\"), "aXb*c(d)[e]$^\\");
    }

    #[test]
    fn short_secrets_are_skipped_and_named() {
        let r = Redactor::new([("PIN", "123"), ("OK", "1234")]);
        assert_eq!(r.skipped(), ["PIN".to_string()]);
        assert_eq!(r.redact("123 1234"), "123 [REDACTED:secret:OK]");
        assert!(!format!("{r:?}").contains("1234"));
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let r = Redactor::new([("S", "s3cr3t")]);
        assert_eq!(
            r.redact_bytes(b"\xff s3cr3t \xfe").as_ref(),
            b"\xff [REDACTED:secret:S] \xfe"
        );
    }
}
