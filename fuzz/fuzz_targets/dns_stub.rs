//! Fuzz target: arbitrary bytes as a datagram to the jail's DNS stub
//! (`mcp_j_egress::dns::respond`). Properties: nothing panics; an answer is a response to
//! that query (same id, `QR` set) no longer than `MAX_RESPONSE_BYTES`; an address is only
//! ever given for a name the allowlist allows, it lies in the synthetic block and the
//! name map gives that name back for it.
//!
//! Run with `cargo fuzz run dns_stub` (nightly). On stable, `cargo build` compiles it
//! (CI does that); `cargo run --features stdin-main --bin dns_stub -- < file` replays one
//! input.

#![cfg_attr(not(feature = "stdin-main"), no_main)]

use std::sync::OnceLock;

use mcp_j_egress::dns::{self, Outcome};
use mcp_j_egress::names::{self, SyntheticNames};
use mcp_j_policy::egress::Allowlist;

fn setup() -> &'static (Allowlist, SyntheticNames) {
    static SETUP: OnceLock<(Allowlist, SyntheticNames)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let allow = Allowlist::parse(["a.b", "*.example.com", "api.test:8443", "10.0.0.0/8"], ["*.pkg.test"])
            .expect("valid rules");
        // Small, so that the fuzzer also reaches the full table.
        (allow, SyntheticNames::new(64))
    })
}

fn one(data: &[u8]) {
    let (allow, names) = setup();
    let Some((response, event)) = dns::respond(data, allow, names) else {
        return;
    };
    assert!(response.len() >= 12 && response.len() <= dns::MAX_RESPONSE_BYTES);
    assert_eq!(response[..2], data[..2], "the id is echoed");
    assert_ne!(response[2] & 0x80, 0, "QR is set");
    if let Outcome::Answered(addr) = event.outcome {
        let name = event.name.expect("an answered query has a name");
        assert!(allow.allows_name_on_any_port(&name), "{name} answered");
        assert!(names::in_block(addr));
        assert_eq!(names.name_of(addr).as_deref(), Some(name.as_str()));
        assert_eq!(response[response.len() - 4..], addr.octets());
    }
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
