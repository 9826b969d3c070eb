//! Tables of rules, allowlist matches and decisions, refusals included.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn user(text: &str) -> Rule {
    Rule::parse(text, RuleSource::User).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("net")
}

#[test]
fn rules_parse_to_their_target_and_ports() {
    let table: &[(&str, Target, Ports, &str)] = &[
        (
            "api.github.com",
            Target::Name("api.github.com".into()),
            Ports::Default,
            "api.github.com",
        ),
        (
            "API.GitHub.com.",
            Target::Name("api.github.com".into()),
            Ports::Default,
            "api.github.com",
        ),
        (
            "api.github.com:8443",
            Target::Name("api.github.com".into()),
            Ports::One(8443),
            "api.github.com:8443",
        ),
        (
            "localhost:3000",
            Target::Name("localhost".into()),
            Ports::One(3000),
            "localhost:3000",
        ),
        (
            "*.example.com",
            Target::Subdomains("example.com".into()),
            Ports::Default,
            "*.example.com",
        ),
        (
            "*.Example.org:8443",
            Target::Subdomains("example.org".into()),
            Ports::One(8443),
            "*.example.org:8443",
        ),
        ("*.com", Target::Subdomains("com".into()), Ports::Default, "*.com"),
        (
            "203.0.113.9",
            Target::Addr(ip("203.0.113.9")),
            Ports::Default,
            "203.0.113.9",
        ),
        (
            "127.0.0.1:8080",
            Target::Addr(ip("127.0.0.1")),
            Ports::One(8080),
            "127.0.0.1:8080",
        ),
        ("[::1]:8080", Target::Addr(ip("::1")), Ports::One(8080), "[::1]:8080"),
        ("[::1]", Target::Addr(ip("::1")), Ports::Default, "::1"),
        (
            "2001:db8::1",
            Target::Addr(ip("2001:db8::1")),
            Ports::Default,
            "2001:db8::1",
        ),
        (
            "::ffff:127.0.0.1",
            Target::Addr(ip("127.0.0.1")),
            Ports::Default,
            "127.0.0.1",
        ),
        (
            "10.0.0.0/8",
            Target::Net(net("10.0.0.0/8")),
            Ports::Default,
            "10.0.0.0/8",
        ),
        (
            "10.0.0.0/8:5432",
            Target::Net(net("10.0.0.0/8")),
            Ports::One(5432),
            "10.0.0.0/8:5432",
        ),
        ("0.0.0.0/0", Target::Net(net("0.0.0.0/0")), Ports::Default, "0.0.0.0/0"),
        (
            "203.0.113.9/32",
            Target::Net(net("203.0.113.9/32")),
            Ports::Default,
            "203.0.113.9/32",
        ),
        (
            "2001:db8::/32",
            Target::Net(net("2001:db8::/32")),
            Ports::Default,
            "2001:db8::/32",
        ),
        (
            "[2001:db8::/32]:443",
            Target::Net(net("2001:db8::/32")),
            Ports::One(443),
            "[2001:db8::/32]:443",
        ),
        (
            "example.com:1",
            Target::Name("example.com".into()),
            Ports::One(1),
            "example.com:1",
        ),
        (
            "example.com:65535",
            Target::Name("example.com".into()),
            Ports::One(65535),
            "example.com:65535",
        ),
    ];
    for (text, target, ports, shown) in table {
        let rule = user(text);
        assert_eq!(
            (&rule.target, rule.ports, rule.source),
            (target, *ports, RuleSource::User),
            "{text}"
        );
        assert_eq!(rule.to_string(), *shown, "{text}");
        assert_eq!(user(shown), rule, "{text}: its display parses back to it");
    }
}

#[test]
fn rule_refusals_name_the_reason() {
    let table: &[(&str, &str)] = &[
        ("", "the rule is empty"),
        (" example.com", "white space"),
        ("example.com:", "is not a number"),
        ("example.com:0", "not from 1 to 65535"),
        ("example.com:65536", "not from 1 to 65535"),
        ("example.com:80,443", "one port per rule"),
        ("example.com:80-90", "one port per rule"),
        ("example.com:+80", "is not a number"),
        (":443", "the host is empty"),
        ("*", "`*` alone would allow every destination"),
        ("*:443", "`*` alone would allow every destination"),
        ("*.", "empty host name"),
        ("*.*.example.com", "whole leftmost label"),
        ("a.*.example.com", "whole leftmost label"),
        ("*example.com", "whole leftmost label"),
        ("**.example.com", "whole leftmost label"),
        ("api.*", "whole leftmost label"),
        ("*.10.0.0.1", "not an address"),
        ("*.[::1]", "not an address"),
        ("127.1", "means 127.0.0.1: write it as `127.0.0.1`"),
        ("0x7f.0.0.1", "means 127.0.0.1"),
        ("2130706433:80", "means 127.0.0.1"),
        ("0177.0.0.1", "means 127.0.0.1"),
        ("1.2.3.999", "not an IPv4 address"),
        ("[::1", "must end with `]`"),
        ("[::1]443", "unexpected `443` after `]`"),
        ("[example.com]:443", "brackets are only for IPv6"),
        ("[10.0.0.1]:443", "brackets are only for IPv6"),
        ("[::g]", "not an IPv6 address"),
        ("10.0.0.1/8", "bits set after the prefix; the network is `10.0.0.0/8`"),
        ("10.0.0.0/33", "is not a CIDR"),
        ("10/8", "is not a CIDR"),
        ("example.com/24", "is not a CIDR"),
        ("bücher.example", "punycode"),
        ("under score-.com", "white space"),
        ("a..b", "empty label"),
        ("exa$mple.com", "is not allowed in a host name"),
        ("http://example.com", "is not a number"),
    ];
    for (text, why) in table {
        let err = Rule::parse(text, RuleSource::User).expect_err(text);
        assert!(err.contains(why), "{text}: {err}");
        assert!(err.contains(&format!("invalid network rule `{text}`")), "{text}: {err}");
        assert!(err.contains("write HOST or HOST:PORT"), "{text}: {err}");
    }
}

#[test]
fn ports_default_to_443_and_80() {
    assert!(Ports::Default.contains(443) && Ports::Default.contains(80));
    assert!(!Ports::Default.contains(8080) && !Ports::Default.contains(22));
    assert!(Ports::One(8080).contains(8080) && !Ports::One(8080).contains(443));
}

#[test]
fn names_and_wildcards_match_exactly_what_they_say() {
    let list = Allowlist::parse(
        ["api.github.com", "*.example.com", "db.internal:5432"],
        std::iter::empty::<&str>(),
    )
    .expect("rules");
    let table: &[(&str, u16, Option<&str>)] = &[
        ("api.github.com", 443, Some("api.github.com")),
        ("API.GITHUB.COM.", 80, Some("api.github.com")),
        ("api.github.com", 22, None),
        ("github.com", 443, None),
        ("evil-api.github.com", 443, None),
        ("api.github.com.evil.com", 443, None),
        ("a.example.com", 443, Some("*.example.com")),
        ("a.b.example.com", 80, Some("*.example.com")),
        ("example.com", 443, None),
        ("badexample.com", 443, None),
        ("example.com.evil", 443, None),
        ("a.example.com", 8443, None),
        ("db.internal", 5432, Some("db.internal:5432")),
        ("db.internal", 443, None),
        ("not a host", 443, None),
        // Address spellings are judged as addresses: no name rule holds them.
        ("0x7f.1", 443, None),
    ];
    for (host, port, want) in table {
        let got = list.allows(host, *port).map(|r| r.to_string());
        assert_eq!(got.as_deref(), *want, "{host}:{port}");
    }
}

#[test]
fn addresses_match_address_and_network_rules() {
    let list = Allowlist::parse(
        [
            "203.0.113.9",
            "198.51.100.0/24:8080",
            "[2001:db8::/32]:443",
            "127.0.0.1:8080",
        ],
        std::iter::empty::<&str>(),
    )
    .expect("rules");
    let table: &[(&str, u16, Option<&str>)] = &[
        ("203.0.113.9", 443, Some("203.0.113.9")),
        ("203.0.113.9", 8080, None),
        ("203.0.113.10", 443, None),
        ("198.51.100.77", 8080, Some("198.51.100.0/24:8080")),
        ("198.51.100.77", 443, None),
        ("2001:db8::5", 443, Some("[2001:db8::/32]:443")),
        ("2001:db9::5", 443, None),
        ("127.0.0.1", 8080, Some("127.0.0.1:8080")),
        ("::ffff:127.0.0.1", 8080, Some("127.0.0.1:8080")),
        ("::ffff:203.0.113.9", 443, Some("203.0.113.9")),
        ("127.0.0.2", 8080, None),
        ("127.0.0.1", 443, None),
    ];
    for (addr, port, want) in table {
        let got = list.allows_addr(ip(addr), *port).map(|r| r.to_string());
        assert_eq!(got.as_deref(), *want, "{addr}:{port}");
    }
    // Through `allows`, any spelling of an address is that address.
    for spelling in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
    ] {
        assert_eq!(
            list.allows(spelling, 8080).map(|r| r.to_string()).as_deref(),
            Some("127.0.0.1:8080"),
            "{spelling}"
        );
    }
}

#[test]
fn a_package_rule_never_unlocks_a_special_address() {
    let package = Allowlist::parse(std::iter::empty::<&str>(), ["0.0.0.0/0", "::/0", "127.0.0.1:8080"]).expect("rules");
    assert_eq!(
        package.allows_addr(ip("8.8.8.8"), 443).map(|r| r.source),
        Some(RuleSource::Package)
    );
    assert!(package.allows_addr(ip("2606:4700::1111"), 443).is_some());
    for special in [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "2001:0:4136:e378:8000:63bf:5601:5601",
    ] {
        for port in [443, 8080] {
            assert_eq!(package.allows_addr(ip(special), port), None, "{special}:{port}");
        }
    }
    // The user's own rule does unlock it, for its port only.
    let user_too = Allowlist::parse(["127.0.0.1:8080", "169.254.0.0/16"], ["0.0.0.0/0"]).expect("rules");
    assert_eq!(
        user_too.allows_addr(ip("127.0.0.1"), 8080).map(|r| r.source),
        Some(RuleSource::User)
    );
    assert_eq!(user_too.allows_addr(ip("127.0.0.1"), 443), None);
    assert!(user_too.allows_addr(ip("169.254.169.254"), 80).is_some());
    assert!(user_too.allows_addr(ip("::ffff:169.254.169.254"), 80).is_some());
}

#[test]
fn decisions_for_names_check_every_resolved_address() {
    let list = Allowlist::parse(
        ["api.example.com", "*.corp.example", "127.0.0.1:443"],
        ["pkg.example.net"],
    )
    .expect("rules");
    let name = |n: &str| Host::Name(n.to_string());
    let allow = |d: Decision<'_>| match d {
        Decision::Allow { rule, addr } => Some((rule.to_string(), addr)),
        Decision::Refuse(_) => None,
    };

    // A public address: allowed, and that address is the one to connect to.
    assert_eq!(
        allow(list.decide(&name("api.example.com"), 443, &[ip("203.0.113.9")])),
        Some(("api.example.com".to_string(), ip("203.0.113.9")))
    );
    // The first address that passes is chosen; special ones before it are skipped.
    assert_eq!(
        allow(list.decide(&name("api.example.com"), 443, &[ip("10.0.0.1"), ip("203.0.113.9")])),
        Some(("api.example.com".to_string(), ip("203.0.113.9")))
    );
    // Only special addresses: refused, naming the first.
    match list.decide(&name("x.corp.example"), 443, &[ip("169.254.169.254"), ip("10.0.0.1")]) {
        Decision::Refuse(Refusal::SpecialAddress { addr, special, .. }) => {
            assert_eq!(addr, ip("169.254.169.254"));
            assert_eq!(special.range, SpecialRange::LinkLocal);
        }
        other => panic!("{other:?}"),
    }
    // A name that resolves to loopback where the user allowlisted that loopback address.
    assert_eq!(
        allow(list.decide(&name("api.example.com"), 443, &[ip("127.0.0.1")])),
        Some(("api.example.com".to_string(), ip("127.0.0.1")))
    );
    assert!(allow(list.decide(&name("api.example.com"), 80, &[ip("127.0.0.1")])).is_none());
    // A package's name resolving to loopback: its request never unlocks it.
    assert!(allow(list.decide(&name("pkg.example.net"), 80, &[ip("127.0.0.2")])).is_none());
    assert!(allow(list.decide(&name("pkg.example.net"), 443, &[ip("198.51.100.1")])).is_some());
    // Not on the list; wrong port; no address.
    assert_eq!(
        list.decide(&name("other.example.com"), 443, &[ip("203.0.113.9")]),
        Decision::Refuse(Refusal::NotAllowed {
            host: name("other.example.com"),
            port: 443
        })
    );
    assert!(matches!(
        list.decide(&name("api.example.com"), 8443, &[ip("203.0.113.9")]),
        Decision::Refuse(Refusal::NotAllowed { port: 8443, .. })
    ));
    assert_eq!(
        list.decide(&name("api.example.com"), 443, &[]),
        Decision::Refuse(Refusal::NoAddress {
            name: "api.example.com".into()
        })
    );
}

#[test]
fn decisions_for_addresses_in_every_spelling() {
    let list = Allowlist::parse(["203.0.113.0/24", "0.0.0.0/0:8443"], ["::/0", "0.0.0.0/0"]).expect("rules");
    let host = |text: &str| parse_host(text).expect("host");
    // The metadata address, however it is spelled: refused for the package's 0.0.0.0/0.
    for spelling in [
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[::169.254.169.254]",
        "[64:ff9b::169.254.169.254]",
        "[2002:a9fe:a9fe::1]",
        "[2001:0:4136:e378:8000:63bf:5601:5601]",
    ] {
        match list.decide(&host(spelling), 443, &[]) {
            Decision::Refuse(Refusal::SpecialAddress { special, .. }) => {
                assert_eq!(special.range, SpecialRange::LinkLocal, "{spelling}");
            }
            other => panic!("{spelling}: {other:?}"),
        }
    }
    // The user's 0.0.0.0/0:8443 does unlock them on its port (the contract: a CIDR holding
    // the address, given by the user).
    assert!(matches!(
        list.decide(&host("0xa9fea9fe"), 8443, &[]),
        Decision::Allow { rule, .. } if rule.source == RuleSource::User
    ));
    // Public addresses pass through the package's rules; documentation ranges are public.
    for public in ["8.8.8.8", "134744072", "[2606:4700::1111]", "198.51.100.7", "192.0.2.1"] {
        assert!(
            matches!(list.decide(&host(public), 443, &[]), Decision::Allow { .. }),
            "{public}"
        );
    }
    // No rule at all for the port: not allowed (not "special").
    let narrow = Allowlist::parse(["203.0.113.9:443"], std::iter::empty::<&str>()).expect("rules");
    assert!(matches!(
        narrow.decide(&host("127.0.0.1"), 443, &[]),
        Decision::Refuse(Refusal::NotAllowed { .. })
    ));
    assert!(matches!(
        narrow.decide(&host("203.0.113.9"), 443, &[]),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        narrow.decide(&host("203.0.113.9"), 80, &[]),
        Decision::Refuse(Refusal::NotAllowed { port: 80, .. })
    ));
}

#[test]
fn refusal_messages_name_the_destination_and_the_fix() {
    let list = Allowlist::parse(std::iter::empty::<&str>(), ["*.example.com"]).expect("rules");
    let refused =
        |host: &str, port, resolved: &[IpAddr]| match list.decide(&parse_host(host).expect("host"), port, resolved) {
            Decision::Refuse(r) => r.to_string(),
            Decision::Allow { .. } => panic!("{host} allowed"),
        };
    assert_eq!(
        refused("evil.test", 443, &[]),
        "evil.test:443 is not on the network allowlist (to allow it: --allow-net evil.test:443)"
    );
    assert_eq!(
        refused("::1", 8080, &[]),
        "[::1]:8080 is not on the network allowlist (to allow it: --allow-net [::1]:8080)"
    );
    let text = refused("a.example.com", 443, &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert_eq!(
        text,
        "a.example.com resolves to 127.0.0.1, which is refused: loopback (127.0.0.0/8, ::1); \
         only your own rule for that address unlocks it (--allow-net 127.0.0.1:443; a package's request never does)"
    );
    assert_eq!(
        refused("a.example.com", 443, &[]),
        "a.example.com resolved to no address"
    );
}

#[test]
fn the_dns_stub_names_and_the_listening_ports() {
    let list = Allowlist::parse(
        ["api.example.com", "*.corp.example:8443", "203.0.113.9:22"],
        ["pkg.example.net:9000"],
    )
    .expect("rules");
    for (name, want) in [
        ("api.example.com", true),
        ("API.example.com.", true),
        ("x.corp.example", true),
        ("a.b.corp.example", true),
        ("corp.example", false),
        ("pkg.example.net", true),
        ("example.com", false),
        ("203.0.113.9", false),
        ("0xcb007109", false),
        ("bad name", false),
    ] {
        assert_eq!(list.allows_name_on_any_port(name), want, "{name}");
    }
    assert_eq!(list.ports().into_iter().collect::<Vec<_>>(), [22, 80, 443, 8443, 9000]);
    assert!(Allowlist::new().ports().is_empty());
    assert_eq!(Ports::Default.values(), [80, 443]);
}

#[test]
fn empty_allowlist_allows_nothing() {
    let list = Allowlist::new();
    assert!(list.is_empty());
    assert_eq!(list.allows("example.com", 443), None);
    assert_eq!(list.allows_addr(ip("8.8.8.8"), 443), None);
    assert!(list.check_resolved(ip("8.8.8.8"), 443).is_ok());
    assert!(list.check_resolved(ip("127.0.0.1"), 443).is_err());
}

#[test]
fn first_invalid_rule_is_the_error() {
    let err = Allowlist::parse(["ok.example", "bad:port"], std::iter::empty::<&str>()).expect_err("bad");
    assert!(err.contains("`bad:port`"), "{err}");
    let err = Allowlist::parse(std::iter::empty::<&str>(), ["*"]).expect_err("bad");
    assert!(err.contains("`*` alone"), "{err}");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A rule's canonical text parses back to the same rule, whatever was written.
        #[test]
        fn a_rule_shows_as_text_that_parses_back_to_it(text in r"(\*\.)?[a-zA-Z0-9.:\[\]/*-]{0,40}(:[0-9]{1,6})?") {
            if let Ok(rule) = Rule::parse(&text, RuleSource::User) {
                let shown = rule.to_string();
                prop_assert_eq!(Rule::parse(&shown, RuleSource::User), Ok(rule), "{} shown as {}", text, shown);
            }
        }

        /// Well-formed rules of every kind parse, and show as text that parses back.
        #[test]
        fn every_kind_of_rule_parses_and_round_trips(
            host in prop_oneof![
                r"[a-z][a-z0-9-]{0,8}[a-z0-9](\.[a-z][a-z0-9]{0,8}){0,3}",
                r"\*\.[a-z]{1,8}\.[a-z]{2,4}",
                any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
                any::<std::net::Ipv6Addr>().prop_map(|a| format!("[{a}]")),
                (any::<std::net::Ipv4Addr>(), 0..=32u8)
                    .prop_map(|(a, len)| ipnet::Ipv4Net::new(a, len).map(|n| n.trunc().to_string()).unwrap_or_default()),
                (any::<std::net::Ipv6Addr>(), 0..=128u8)
                    .prop_map(|(a, len)| ipnet::Ipv6Net::new(a, len).map(|n| format!("[{}]", n.trunc())).unwrap_or_default()),
            ],
            port in proptest::option::of(1..=65535u16),
        ) {
            let text = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            let rule = Rule::parse(&text, RuleSource::User);
            prop_assert!(rule.is_ok(), "{}: {:?}", text, rule);
            let rule = rule.unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(rule.ports, port.map_or(Ports::Default, Ports::One));
            let shown = rule.to_string();
            prop_assert_eq!(Rule::parse(&shown, RuleSource::User), Ok(rule), "{} shown as {}", text, shown);
        }

        /// Any loose IPv4 spelling names the address its dotted quad names, and a number
        /// in any base as the whole host is that 32-bit address.
        #[test]
        fn loose_ipv4_agrees_with_its_dotted_quad(n in any::<u32>(), base in 0..3u8) {
            let a = Ipv4Addr::from(n);
            let whole = match base {
                0 => n.to_string(),
                1 => format!("0x{n:x}"),
                _ => format!("0{n:o}"),
            };
            prop_assert_eq!(parse_ipv4_loose(&whole), Some(a));
            prop_assert_eq!(parse_ipv4_loose(&a.to_string()), Some(a));
            let [p, q, ..] = a.octets();
            let two = format!("0x{p:x}.{}", n & 0x00ff_ffff);
            prop_assert_eq!(parse_ipv4_loose(&two), Some(a));
            let three = format!("0{p:o}.{q}.{}", n & 0xffff);
            prop_assert_eq!(parse_ipv4_loose(&three), Some(a));
        }

        /// An IPv4-mapped address is classified exactly as the IPv4 address it maps.
        #[test]
        fn mapped_addresses_classify_as_their_ipv4(n in any::<u32>()) {
            let v4 = Ipv4Addr::from(n);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(classify(mapped).map(|s| s.range), special::classify_v4(v4));
        }
    }
}
