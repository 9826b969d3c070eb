//! Destination hosts as clients write them: DNS names, IPv6 literals in brackets, and IPv4
//! in every spelling `inet_aton` and URL parsers accept (`2130706433`, `0177.0.0.1`,
//! `0x7f.1`, `127.1`).
//!
//! Why: a client inside the jail chooses how to spell the host of a URL, a `CONNECT` line
//! or a SOCKS5 request. If mcp-j judged `0x7f.1` as a name, it would not see that it means
//! 127.0.0.1. So a host whose last label is a number is an IPv4 address (the rule of the
//! WHATWG URL standard, which browsers, curl and Node follow) and is parsed the way those
//! parsers parse it, or refused when it is neither a number nor a name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A destination host, classified by what it really means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lowercased, without a trailing dot.
    Name(String),
    /// An IP address, however it was spelled.
    Addr(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Addr(IpAddr::V6(a)) => write!(f, "[{a}]"),
            Host::Addr(IpAddr::V4(a)) => write!(f, "{a}"),
        }
    }
}

/// Parse a host as a client sent it (the host part of a URL or a `CONNECT`/SOCKS5
/// destination, without the port): `[v6]` or a bare IPv6 literal, an IPv4 address in any
/// `inet_aton` spelling, or a DNS name.
///
/// Errors name the text and why it is not a host. Percent-encoded hosts are not decoded
/// here (the HTTP layer decodes URLs); a `%` is simply not valid in a name.
pub fn parse_host(text: &str) -> Result<Host, String> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("`{text}`: an IPv6 address in brackets must end with `]`"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|a| Host::Addr(IpAddr::V6(a)))
            .map_err(|_| format!("`{text}` is not an IPv6 address (zone ids such as `%eth0` are not accepted)"));
    }
    if text.contains(':') {
        return text
            .parse::<Ipv6Addr>()
            .map(|a| Host::Addr(IpAddr::V6(a)))
            .map_err(|_| format!("`{text}` is neither a host name nor an IPv6 address"));
    }
    if ends_in_number(text) {
        return parse_ipv4_loose(text)
            .map(|a| Host::Addr(IpAddr::V4(a)))
            .ok_or_else(|| format!("`{text}` ends in a number but is not an IPv4 address"));
    }
    parse_hostname(text).map(Host::Name)
}

/// Whether the last label (a trailing dot ignored) is a number in any base: then the host
/// is an IPv4 address or nothing, never a DNS name (WHATWG URL, "ends in a number").
pub fn ends_in_number(text: &str) -> bool {
    let t = text.strip_suffix('.').unwrap_or(text);
    let last = t.rsplit('.').next().unwrap_or(t);
    if last.is_empty() {
        return false;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Parse IPv4 the way `inet_aton` and URL parsers do: one to four parts separated by dots
/// (one trailing dot allowed), each decimal, octal (leading `0`) or hex (`0x`); the last
/// part fills the remaining bytes. `127.1` is 127.0.0.1, `2130706433` and `0x7f000001` are
/// too. `None` when the text is not such an address (a part out of range, a bad digit,
/// more than four parts, an empty part).
pub fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    let t = text.strip_suffix('.').unwrap_or(text);
    let parts: Vec<&str> = t.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let numbers = parts.iter().map(|p| ipv4_number(p)).collect::<Option<Vec<u64>>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    let last_bits = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut value = *last;
    for (i, &n) in leading.iter().enumerate() {
        value |= n << (8 * (3 - i as u32));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

/// One part of a loose IPv4 address: `0x…` hex (`0x` alone is 0, as in URL parsers),
/// `0…` octal, else decimal. `None` for an empty part, a bad digit or an overflow.
fn ipv4_number(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
        if hex.is_empty() {
            return Some(0);
        }
        (hex, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)?;
        value = value.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(value)
}

/// Validate a DNS host name and return it lowercased without its trailing dot: labels of 1
/// to 63 letters, digits, `-` (not first or last) or `_`, at most 253 characters in all.
///
/// Internationalised names are not converted: they must be written in their ASCII
/// (punycode, `xn--…`) form, which is what goes on the wire anyway.
pub fn parse_hostname(text: &str) -> Result<String, String> {
    if !text.is_ascii() {
        return Err(format!(
            "`{text}`: write an internationalised name in its ASCII (punycode) form, `xn--…`"
        ));
    }
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return Err("an empty host name".to_string());
    }
    if name.len() > 253 {
        return Err(format!("`{text}`: a host name has at most 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("`{text}`: empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > 63 {
            return Err(format!("`{text}`: label `{label}` is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "`{text}`: `{bad}` is not allowed in a host name (letters, digits, `-` and `_` only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{text}`: label `{label}` starts or ends with `-`"));
        }
    }
    if ends_in_number(&name) {
        return Err(format!("`{text}` ends in a number, so it is not a host name"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Option<Ipv4Addr> {
        parse_ipv4_loose(text)
    }

    #[test]
    fn loose_ipv4_spellings_give_the_real_address() {
        let table: &[(&str, [u8; 4])] = &[
            ("127.0.0.1", [127, 0, 0, 1]),
            ("127.0.0.1.", [127, 0, 0, 1]),
            ("2130706433", [127, 0, 0, 1]),
            ("0x7f000001", [127, 0, 0, 1]),
            ("0X7F000001", [127, 0, 0, 1]),
            ("017700000001", [127, 0, 0, 1]),
            ("0177.0.0.1", [127, 0, 0, 1]),
            ("0177.0.0.01", [127, 0, 0, 1]),
            ("0x7f.1", [127, 0, 0, 1]),
            ("127.1", [127, 0, 0, 1]),
            ("127.0.1", [127, 0, 0, 1]),
            ("0x7f.0.0.0x1", [127, 0, 0, 1]),
            ("0", [0, 0, 0, 0]),
            ("0x", [0, 0, 0, 0]),
            ("00", [0, 0, 0, 0]),
            ("169.254.43518", [169, 254, 169, 254]),
            ("0xa9fea9fe", [169, 254, 169, 254]),
            ("2852039166", [169, 254, 169, 254]),
            ("10.0xff.0377.255", [10, 255, 255, 255]),
            ("192.168.65535", [192, 168, 255, 255]),
            ("10.16777215", [10, 255, 255, 255]),
            ("4294967295", [255, 255, 255, 255]),
            ("8.8.8.8", [8, 8, 8, 8]),
        ];
        for (text, want) in table {
            assert_eq!(v4(text), Some(Ipv4Addr::from(*want)), "{text}");
        }
    }

    #[test]
    fn loose_ipv4_refusals() {
        for bad in [
            "",
            ".",
            "1..2",
            ".1.2.3",
            "1.2.3.4.5",
            "256.0.0.1",
            "1.256.0.1",
            "1.2.3.256",
            "1.2.65536",
            "1.16777216",
            "4294967296",
            "0x100000000",
            "08",
            "0179.0.0.1",
            "0xg",
            "1.2.3.4..",
            "+1.2.3.4",
            "-1",
            "1 .2.3.4",
            "99999999999999999999999",
            "1.2.3.a",
        ] {
            assert_eq!(v4(bad), None, "{bad}");
        }
    }

    #[test]
    fn hosts_are_classified_by_what_they_mean() {
        let addr = |s: &str| Host::Addr(s.parse().expect("ip"));
        let table: &[(&str, Host)] = &[
            ("api.github.com", Host::Name("api.github.com".into())),
            ("API.GitHub.COM.", Host::Name("api.github.com".into())),
            ("localhost", Host::Name("localhost".into())),
            ("xn--bcher-kva.example", Host::Name("xn--bcher-kva.example".into())),
            ("my_host.internal", Host::Name("my_host.internal".into())),
            ("1password.com", Host::Name("1password.com".into())),
            ("0x7f.1", addr("127.0.0.1")),
            ("2130706433", addr("127.0.0.1")),
            ("0177.0.0.1", addr("127.0.0.1")),
            ("127.1", addr("127.0.0.1")),
            ("[::1]", addr("::1")),
            ("::1", addr("::1")),
            ("[::ffff:127.0.0.1]", addr("::ffff:127.0.0.1")),
            ("[2001:db8::1]", addr("2001:db8::1")),
        ];
        for (text, want) in table {
            assert_eq!(parse_host(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn host_refusals_say_why() {
        let table: &[(&str, &str)] = &[
            ("", "empty"),
            ("[::1", "must end with `]`"),
            ("[fe80::1%eth0]", "zone ids"),
            ("[example.com]", "not an IPv6 address"),
            ("a:b", "neither a host name nor an IPv6"),
            ("1.2.3.999", "not an IPv4 address"),
            ("foo.09", "not an IPv4 address"),
            ("bücher.example", "punycode"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("-a.com", "starts or ends with `-`"),
            ("a-.com", "starts or ends with `-`"),
            ("a b.com", "is not allowed"),
            ("%31%32%37.0.0.1", "not an IPv4 address"),
            ("%6c%6f.example", "is not allowed"),
            ("a*b.com", "is not allowed"),
        ];
        for (text, why) in table {
            let err = parse_host(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        assert!(parse_host(&long_label).expect_err("label").contains("longer than 63"));
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(parse_host(&long_name).expect_err("name").contains("at most 253"));
        assert_eq!(parse_host(&"a".repeat(63)), Ok(Host::Name("a".repeat(63))));
    }

    #[test]
    fn ends_in_number_follows_the_url_standard() {
        for yes in ["1", "a.1", "a.0x1f", "a.0x", "a.1.", "127.0.0.1"] {
            assert!(ends_in_number(yes), "{yes}");
        }
        for no in ["a", "1.a", "a.0x1g", "a.1a", "", "a.."] {
            assert!(!ends_in_number(no), "{no}");
        }
    }

    #[test]
    fn hosts_display_as_they_would_be_written_in_a_url() {
        assert_eq!(parse_host("0x7f.1").expect("host").to_string(), "127.0.0.1");
        assert_eq!(parse_host("::1").expect("host").to_string(), "[::1]");
        assert_eq!(parse_host("A.Example").expect("host").to_string(), "a.example");
    }
}
