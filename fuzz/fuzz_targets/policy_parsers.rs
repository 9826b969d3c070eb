//! Fuzz target: arbitrary text through mcp-j-policy's parsers — hosts as clients spell
//! them, `--allow-net` rules, package manifests, pin files, package references — and
//! arbitrary bytes as an address to classify. Properties: nothing panics; a parsed rule's or
//! package reference's text parses back to the same value; a host name and a loose IPv4
//! address are already in their final form.
//!
//! Run with `cargo fuzz run policy_parsers` (nightly). On stable, `cargo build` compiles it
//! (CI does that); `cargo run --features stdin-main --bin policy_parsers -- < file` replays
//! one input.

#![cfg_attr(not(feature = "stdin-main"), no_main)]

use std::net::{IpAddr, Ipv6Addr};

use mcp_j_policy::egress::{self, Host, Rule, RuleSource};
use mcp_j_policy::{PackageManifest, PinFile, reference};

fn one(data: &[u8]) {
    if data.len() >= 16 {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&data[..16]);
        let v6 = Ipv6Addr::from(bytes);
        let _ = egress::classify(IpAddr::V6(v6));
        if let Some(v4) = v6.to_ipv4_mapped() {
            assert_eq!(egress::classify(IpAddr::V6(v6)).map(|s| s.range), egress::special::classify_v4(v4));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Host::Name(name)) = egress::parse_host(text) {
        assert_eq!(egress::parse_host(&name), Ok(Host::Name(name.clone())));
    }
    if let Some(v4) = egress::parse_ipv4_loose(text) {
        assert_eq!(egress::parse_ipv4_loose(&v4.to_string()), Some(v4));
    }
    if let Ok(rule) = Rule::parse(text, RuleSource::User) {
        let shown = rule.to_string();
        assert_eq!(Rule::parse(&shown, RuleSource::User).as_ref(), Ok(&rule), "{shown}");
    }
    if let Ok(package_ref) = reference::parse(text) {
        let shown = package_ref.to_string();
        assert_eq!(reference::parse(&shown).as_ref(), Ok(&package_ref), "{shown}");
    }
    let _ = PackageManifest::from_json(text);
    let _ = PinFile::from_json(text);
}

#[cfg(not(feature = "stdin-main"))]
libfuzzer_sys::fuzz_target!(|data: &[u8]| one(data));

#[cfg(feature = "stdin-main")]
fn main() {
    use std::io::Read;
    let mut data = Vec::new();
    std::io::stdin().read_to_end(&mut data).expect("read stdin");
    one(&data);
}
