//! The address ranges egress refuses unless the user allowlisted them: loopback,
//! unspecified, private, link-local (cloud metadata included), CGNAT, multicast, broadcast
//! and `240/4` — recognised in every IPv6 spelling that carries an IPv4 address
//! (IPv4-mapped, -compatible and -translated, NAT64, 6to4, Teredo).
//!
//! Why every spelling: `::ffff:169.254.169.254`, `64:ff9b::a9fe:a9fe` and
//! `2002:a9fe:a9fe::` can all end at the metadata service, through the host's own stack or
//! a translator on the path. A check that only knows `169.254.0.0/16` lets them through.
//! Documentation ranges (`192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`) are
//! deliberately *not* special (INTERFACE: harmless, and some networks use them).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A class of addresses that egress refuses unless the user allowlisted the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialRange {
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7` (and the deprecated site-local
    /// `fec0::/10`).
    Private,
    /// `169.254/16` (cloud metadata at 169.254.169.254 included), `fe80::/10`.
    LinkLocal,
    /// `100.64/10`, carrier-grade NAT.
    Cgnat,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// The rest of `240/4`, reserved.
    Reserved,
}

impl SpecialRange {
    /// The class and its ranges, for refusal messages.
    pub fn describe(self) -> &'static str {
        match self {
            SpecialRange::Loopback => "loopback (127.0.0.0/8, ::1)",
            SpecialRange::Unspecified => "unspecified (0.0.0.0/8, ::)",
            SpecialRange::Private => "private (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7)",
            SpecialRange::LinkLocal => "link-local (169.254.0.0/16, fe80::/10; cloud metadata lives there)",
            SpecialRange::Cgnat => "carrier-grade NAT (100.64.0.0/10)",
            SpecialRange::Multicast => "multicast (224.0.0.0/4, ff00::/8)",
            SpecialRange::Broadcast => "broadcast (255.255.255.255)",
            SpecialRange::Reserved => "reserved (240.0.0.0/4)",
        }
    }
}

/// How a special IPv4 address was carried, when it came inside an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// The address itself (IPv4, or an IPv6 address in an IPv6 special range).
    Direct,
    /// `::ffff:a.b.c.d` (IPv4-mapped).
    Ipv4Mapped,
    /// `::a.b.c.d` (IPv4-compatible, deprecated).
    Ipv4Compatible,
    /// `::ffff:0:a.b.c.d` (IPv4-translated, SIIT).
    Ipv4Translated,
    /// `64:ff9b::a.b.c.d` (NAT64 well-known prefix).
    Nat64,
    /// `64:ff9b:1::/48` (NAT64 local-use prefix), IPv4 in any RFC 6052 position.
    Nat64LocalUse,
    /// `2002:AABB:CCDD::/48` (6to4).
    SixToFour,
    /// `2001:0::/32` (Teredo; the client's IPv4 is the last 32 bits, inverted).
    Teredo,
}

impl Embedding {
    /// How the IPv4 address was carried, for refusal messages; empty for `Direct`.
    pub fn describe(self) -> &'static str {
        match self {
            Embedding::Direct => "",
            Embedding::Ipv4Mapped => "IPv4-mapped IPv6",
            Embedding::Ipv4Compatible => "IPv4-compatible IPv6",
            Embedding::Ipv4Translated => "IPv4-translated IPv6",
            Embedding::Nat64 => "NAT64 (64:ff9b::/96)",
            Embedding::Nat64LocalUse => "NAT64 local-use (64:ff9b:1::/48)",
            Embedding::SixToFour => "6to4 (2002::/16)",
            Embedding::Teredo => "Teredo (2001::/32)",
        }
    }
}

/// Why an address is special: its class, how it was spelled, and the IPv4 address it
/// carries when it came inside IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Special {
    /// The class of the (embedded) address.
    pub range: SpecialRange,
    /// How it was carried.
    pub via: Embedding,
    /// The IPv4 address found inside an IPv6 one (`None` when `via` is `Direct`).
    pub embedded: Option<Ipv4Addr>,
}

impl fmt::Display for Special {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some(v4) => write!(
                f,
                "{}: {v4} carried in {} form",
                self.range.describe(),
                self.via.describe()
            ),
            None => f.write_str(self.range.describe()),
        }
    }
}

/// The special class of an address, in any spelling; `None` for an ordinary public (or
/// documentation) address.
pub fn classify(ip: IpAddr) -> Option<Special> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|range| Special {
            range,
            via: Embedding::Direct,
            embedded: None,
        }),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The special class of an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        (0, _) => SpecialRange::Unspecified,
        (127, _) => SpecialRange::Loopback,
        (10, _) | (172, 16..=31) | (192, 168) => SpecialRange::Private,
        (169, 254) => SpecialRange::LinkLocal,
        (100, 64..=127) => SpecialRange::Cgnat,
        (224..=239, _) => SpecialRange::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => SpecialRange::Broadcast,
        (240..=255, _) => SpecialRange::Reserved,
        _ => return None,
    })
}

/// The special class of an IPv6 address: its own ranges, or those of the IPv4 address it
/// carries.
fn classify_v6(ip: Ipv6Addr) -> Option<Special> {
    let direct = |range| {
        Some(Special {
            range,
            via: Embedding::Direct,
            embedded: None,
        })
    };
    if ip.is_unspecified() {
        return direct(SpecialRange::Unspecified);
    }
    if ip.is_loopback() {
        return direct(SpecialRange::Loopback);
    }
    if let Some((via, candidates)) = embedded_ipv4(ip) {
        return candidates.into_iter().find_map(|v4| {
            classify_v4(v4).map(|range| Special {
                range,
                via,
                embedded: Some(v4),
            })
        });
    }
    let s = ip.segments();
    if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
        return direct(SpecialRange::Private);
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return direct(SpecialRange::LinkLocal);
    }
    if s[0] & 0xff00 == 0xff00 {
        return direct(SpecialRange::Multicast);
    }
    None
}

/// The IPv4 addresses an IPv6 address carries, and how; `None` when it carries none.
/// Several candidates only for the NAT64 local-use prefix, whose translator may use any
/// RFC 6052 prefix length inside the /48: every position is checked, /96 first (the usual
/// deployment), and the address is special when any of them is. Most addresses under this
/// prefix have zero bytes in some position and so are refused as "unspecified": that is
/// deliberate, the prefix is for local use and never reaches the public Internet.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Embedding, Vec<Ipv4Addr>)> {
    let s = ip.segments();
    let b = ip.octets();
    let at = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let one = |via| Some((via, vec![at(12)]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => one(Embedding::Ipv4Mapped),
        [0, 0, 0, 0, 0xffff, 0, _, _] => one(Embedding::Ipv4Translated),
        [0, 0, 0, 0, 0, 0, _, _] => one(Embedding::Ipv4Compatible),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => one(Embedding::Nat64),
        [0x64, 0xff9b, 1, ..] => {
            // RFC 6052 §2.2: bits 64..72 (byte 8) are always skipped.
            let rfc6052 = |bytes: [u8; 4]| Ipv4Addr::from(bytes);
            Some((
                Embedding::Nat64LocalUse,
                vec![
                    at(12),                               // /96
                    rfc6052([b[9], b[10], b[11], b[12]]), // /64
                    rfc6052([b[7], b[9], b[10], b[11]]),  // /56
                    rfc6052([b[6], b[7], b[9], b[10]]),   // /48
                ],
            ))
        }
        [0x2002, ..] => Some((Embedding::SixToFour, vec![at(2)])),
        [0x2001, 0, ..] => {
            let client = !u32::from(at(12));
            Some((Embedding::Teredo, vec![Ipv4Addr::from(client)]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<(SpecialRange, Embedding)> {
        classify(text.parse().expect("ip")).map(|s| (s.range, s.via))
    }

    use Embedding::*;
    use SpecialRange::*;

    #[test]
    fn ipv4_special_ranges_and_their_edges() {
        let table: &[(&str, Option<SpecialRange>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("1.0.0.0", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("126.255.255.255", None),
            ("128.0.0.0", None),
            ("10.0.0.0", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.168.0.1", Some(Private)),
            ("192.167.255.255", None),
            ("192.169.0.0", None),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.254.0.0", Some(LinkLocal)),
            ("169.253.255.255", None),
            ("169.255.0.0", None),
            ("100.64.0.0", Some(Cgnat)),
            ("100.127.255.255", Some(Cgnat)),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("223.255.255.255", None),
            ("240.0.0.0", Some(Reserved)),
            ("254.255.255.255", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            // Documentation ranges are not refused (INTERFACE).
            ("192.0.2.1", None),
            ("198.51.100.7", None),
            ("203.0.113.9", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
        ];
        for (text, want) in table {
            let got = classify(text.parse().expect("ip"));
            assert_eq!(got.map(|s| s.range), *want, "{text}");
            if let Some(s) = got {
                assert_eq!((s.via, s.embedded), (Direct, None), "{text}");
            }
        }
    }

    #[test]
    fn ipv6_special_ranges() {
        let table: &[(&str, Option<SpecialRange>)] = &[
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd00:ec2::254", Some(Private)),
            ("fdff:ffff::", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf:ffff::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("ff0e::1", Some(Multicast)),
            ("fb00::1", None),
            ("2001:db8::1", None),
            ("2606:4700::1111", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (text, want) in table {
            assert_eq!(class(text).map(|c| c.0), *want, "{text}");
        }
    }

    /// The metadata address, loopback and a private address in every IPv6 spelling that
    /// carries IPv4; the same spellings of a public address are not special.
    #[test]
    fn embedded_ipv4_in_every_spelling() {
        let table: &[(&str, Option<(SpecialRange, Embedding)>)] = &[
            ("::ffff:127.0.0.1", Some((Loopback, Ipv4Mapped))),
            ("::ffff:7f00:1", Some((Loopback, Ipv4Mapped))),
            ("::ffff:169.254.169.254", Some((LinkLocal, Ipv4Mapped))),
            ("::ffff:10.1.2.3", Some((Private, Ipv4Mapped))),
            ("::ffff:0.0.0.0", Some((Unspecified, Ipv4Mapped))),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some((Loopback, Ipv4Compatible))),
            ("::a9fe:a9fe", Some((LinkLocal, Ipv4Compatible))),
            ("::0.0.0.2", Some((Unspecified, Ipv4Compatible))),
            ("::8.8.8.8", None),
            ("::ffff:0:127.0.0.1", Some((Loopback, Ipv4Translated))),
            ("::ffff:0:8.8.8.8", None),
            ("64:ff9b::127.0.0.1", Some((Loopback, Nat64))),
            ("64:ff9b::a9fe:a9fe", Some((LinkLocal, Nat64))),
            ("64:ff9b::192.168.1.1", Some((Private, Nat64))),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:1::127.0.0.1", Some((Loopback, Nat64LocalUse))),
            // /48 layout: 127.0 in bytes 6-7, 0.1 in bytes 9-10 (byte 8 skipped); the /96
            // position reads 0.0.0.0 first, refused either way.
            ("64:ff9b:1:7f00:0:100::", Some((Unspecified, Nat64LocalUse))),
            // /64 layout: 169.254.169.8 in bytes 9-12; the /96, /56 and /48 positions hold
            // public addresses (8.8.8.8, 8.169.254.169, 8.8.169.254).
            ("64:ff9b:1:808:a9:fea9:808:808", Some((LinkLocal, Nat64LocalUse))),
            ("2002:7f00:1::", Some((Loopback, SixToFour))),
            ("2002:a9fe:a9fe::1", Some((LinkLocal, SixToFour))),
            ("2002:c0a8:101::", Some((Private, SixToFour))),
            ("2002:808:808::1", None),
            // Teredo: client 127.0.0.1 inverted is 0x80ff:fffe.
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some((Loopback, Teredo))),
            // client 169.254.169.254 inverted: 0x5601:5601.
            ("2001:0:4136:e378:8000:63bf:5601:5601", Some((LinkLocal, Teredo))),
            // client 8.8.8.8 inverted: 0xf7f7:f7f7.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None),
            // 2001:db8::/32 is documentation, not Teredo.
            ("2001:db8::7f00:1", None),
        ];
        for (text, want) in table {
            assert_eq!(class(text), *want, "{text}");
        }
        let s = classify("::ffff:169.254.169.254".parse().expect("ip")).expect("special");
        assert_eq!(s.embedded, Some(Ipv4Addr::new(169, 254, 169, 254)));
        assert_eq!(
            s.to_string(),
            "link-local (169.254.0.0/16, fe80::/10; cloud metadata lives there): 169.254.169.254 carried in IPv4-mapped IPv6 form"
        );
    }

    #[test]
    fn nat64_local_use_with_only_public_candidates_is_not_special() {
        // Every RFC 6052 position of this address holds a public IPv4 address.
        let ip: Ipv6Addr = "64:ff9b:1:808:8:808:808:808".parse().expect("ip");
        let (_, candidates) = embedded_ipv4(ip).expect("embedded");
        assert!(candidates.iter().all(|c| classify_v4(*c).is_none()), "{candidates:?}");
        assert_eq!(classify(IpAddr::V6(ip)), None);
    }
}
