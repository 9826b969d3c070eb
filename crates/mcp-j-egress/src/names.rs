//! The synthetic-name map: each allowlisted DNS name the jail asks for gets a loopback
//! address of its own inside the jail, and the supervisor maps that address back to the
//! name when a connection to it arrives.
//!
//! Why loopback addresses work: every address in `127.0.0.0/8` is local on the jail's
//! `lo` (the kernel's `local 127.0.0.0/8` route), so a connection to `127.77.0.5:443`
//! reaches the listener the jail's init bound on `0.0.0.0:443`, and the accepted socket's
//! local address (`getsockname`) says which name the program meant. No address outside the
//! jail is involved, and the real address is looked up only by mcp-j, outside, when the
//! connection is decided.
//!
//! The block is [`SYNTHETIC_NET`], `127.77.0.0/16`, never `127.0.0.1`: that one is what
//! programs and proxy variables use for the jail's own services (`NO_PROXY`), and a user may
//! allowlist it literally (`--allow-net 127.0.0.1:8080`) to reach the host's loopback, so it
//! must keep meaning itself. An address the user allowlisted as an exact literal is skipped
//! for the same reason ([`SyntheticNames::avoiding`]). An address this map assigned means
//! its name even when a user's CIDR (`127.0.0.0/8`) also holds it: the supervisor asks
//! [`SyntheticNames::name_of`] first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use mcp_j_policy::egress::{Allowlist, RuleSource, Target};

/// The first address of the synthetic block (`127.77.0.0/16`).
pub const SYNTHETIC_NET: Ipv4Addr = Ipv4Addr::new(127, 77, 0, 0);

/// The synthetic block's prefix length.
pub const SYNTHETIC_PREFIX: u8 = 16;

/// How many names one jail may be given by default. A jail that asks for more (under a
/// `*.domain` rule it can invent names forever) is refused new names; names it already has
/// keep their addresses.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Addresses usable in the block: `.0.1` to `.255.254` (the all-zeros and all-ones host
/// parts are skipped, as some programs treat them as network and broadcast addresses).
const BLOCK_HOSTS: u32 = (1 << (32 - SYNTHETIC_PREFIX)) - 2;

/// The map between names and synthetic addresses of one jail. Cheap to clone: clones
/// share the map (the DNS stub assigns, the connection listeners look up).
#[derive(Debug, Clone)]
pub struct SyntheticNames {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
    /// Host part (1-based offset in the block) the next new name tries first.
    next: u32,
    capacity: usize,
    /// Addresses never assigned (the user's exact literals inside the block).
    reserved: Vec<Ipv4Addr>,
}

impl SyntheticNames {
    /// An empty map holding at most `capacity` names (at most the block's 65534 addresses).
    pub fn new(capacity: usize) -> Self {
        Self::with_reserved(capacity, Vec::new())
    }

    /// An empty map that never assigns an address the user's rules in `allow` name as an
    /// exact literal (a user who allowlisted `127.77.0.1:8080` means that address, not a
    /// name). A package's rule reserves nothing: it can never unlock a loopback address.
    pub fn avoiding(capacity: usize, allow: &Allowlist) -> Self {
        let reserved = allow
            .rules()
            .iter()
            .filter_map(|rule| match rule.target {
                Target::Addr(IpAddr::V4(a)) if rule.source == RuleSource::User && in_block(a) => Some(a),
                _ => None,
            })
            .collect();
        Self::with_reserved(capacity, reserved)
    }

    fn with_reserved(capacity: usize, reserved: Vec<Ipv4Addr>) -> Self {
        let capacity = capacity.min(BLOCK_HOSTS as usize);
        SyntheticNames {
            inner: Arc::new(Mutex::new(Inner {
                by_name: HashMap::new(),
                by_addr: HashMap::new(),
                next: 1,
                capacity,
                reserved,
            })),
        }
    }

    /// The synthetic address of `name`, assigning the next free one the first time the
    /// name is seen. The same name (compared as [`normalise`] writes it) always gets the
    /// same address. `None` when the name is empty or longer than a DNS name can be, or
    /// when the map is full: new names are refused, never given an address already used.
    ///
    /// The map does not judge the allowlist: ask it first (the DNS stub does).
    pub fn address_for(&self, name: &str) -> Option<Ipv4Addr> {
        let name = normalise(name)?;
        let mut inner = self.lock();
        if let Some(addr) = inner.by_name.get(&name) {
            return Some(*addr);
        }
        if inner.by_name.len() >= inner.capacity {
            return None;
        }
        let addr = inner.free_address()?;
        inner.by_addr.insert(addr, name.clone());
        inner.by_name.insert(name, addr);
        Some(addr)
    }

    /// The name `ip` was assigned to, if it was: what a connection accepted at that local
    /// address is for.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        self.lock().by_addr.get(&ip).cloned()
    }

    /// How many names have an address.
    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    /// Whether no name has an address yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A poisoned lock only means another thread panicked between two inserts of plain
    /// data; both maps are still consistent enough to read and extend.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn free_address(&mut self) -> Option<Ipv4Addr> {
        // Bounded: at most one pass over the block, and only reserved addresses are
        // skipped (assigned ones lie below `next`).
        while self.next <= BLOCK_HOSTS {
            let addr = Ipv4Addr::from(u32::from(SYNTHETIC_NET) + self.next);
            self.next += 1;
            if !self.reserved.contains(&addr) && !self.by_addr.contains_key(&addr) {
                return Some(addr);
            }
        }
        None
    }
}

/// Whether `ip` is in the synthetic block.
pub fn in_block(ip: Ipv4Addr) -> bool {
    u32::from(ip) >> (32 - SYNTHETIC_PREFIX) == u32::from(SYNTHETIC_NET) >> (32 - SYNTHETIC_PREFIX)
}

/// A name as the map keys it: ASCII-lowercased, one trailing dot removed. `None` for an
/// empty name or one longer than 253 characters (no DNS name is).
pub fn normalise(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

/// The proxy's view of the map: a direct connection's local address back to its name.
impl crate::proxy::SyntheticNameMap for SyntheticNames {
    fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        SyntheticNames::name_of(self, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_address_and_maps_back() {
        let names = SyntheticNames::new(16);
        let a = names.address_for("api.example.com").unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 77, 0, 1));
        assert_eq!(names.address_for("api.example.com"), Some(a));
        assert_eq!(names.name_of(a).as_deref(), Some("api.example.com"));
        let b = names.address_for("other.example.com").unwrap();
        assert_eq!(b, Ipv4Addr::new(127, 77, 0, 2));
        assert_ne!(a, b);
        assert_eq!(names.name_of(b).as_deref(), Some("other.example.com"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn names_are_compared_lowercased_without_the_trailing_dot() {
        let names = SyntheticNames::new(16);
        let a = names.address_for("API.Example.COM.").unwrap();
        assert_eq!(names.address_for("api.example.com"), Some(a));
        assert_eq!(names.address_for("api.example.com."), Some(a));
        assert_eq!(names.name_of(a).as_deref(), Some("api.example.com"));
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn empty_and_overlong_names_get_nothing() {
        let names = SyntheticNames::new(16);
        assert_eq!(names.address_for(""), None);
        assert_eq!(names.address_for("."), None);
        assert_eq!(names.address_for(&"a".repeat(254)), None);
        assert!(names.address_for(&"a".repeat(253)).is_some());
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn unknown_addresses_map_to_no_name() {
        let names = SyntheticNames::new(16);
        names.address_for("a.example").unwrap();
        assert_eq!(names.name_of(Ipv4Addr::new(127, 0, 0, 1)), None);
        assert_eq!(names.name_of(Ipv4Addr::new(127, 77, 0, 2)), None);
        assert_eq!(names.name_of(Ipv4Addr::new(203, 0, 113, 1)), None);
    }

    #[test]
    fn a_full_map_refuses_new_names_and_keeps_the_old_ones() {
        let names = SyntheticNames::new(3);
        let first: Vec<_> = ["a.test", "b.test", "c.test"]
            .iter()
            .map(|n| names.address_for(n).unwrap())
            .collect();
        assert_eq!(names.address_for("d.test"), None);
        assert_eq!(names.name_of(Ipv4Addr::new(127, 77, 0, 4)), None);
        for (n, a) in ["a.test", "b.test", "c.test"].iter().zip(&first) {
            assert_eq!(names.address_for(n), Some(*a));
            assert_eq!(names.name_of(*a).as_deref(), Some(*n));
        }
    }

    #[test]
    fn capacity_is_bounded_by_the_block_and_addresses_stay_inside_it() {
        let names = SyntheticNames::new(usize::MAX);
        let mut last = None;
        for i in 0..BLOCK_HOSTS {
            let addr = names.address_for(&format!("n{i}.test")).unwrap();
            assert!(in_block(addr), "{addr}");
            assert_ne!(addr, Ipv4Addr::new(127, 77, 0, 0));
            assert_ne!(addr, Ipv4Addr::new(127, 77, 255, 255));
            last = Some(addr);
        }
        assert_eq!(last, Some(Ipv4Addr::new(127, 77, 255, 254)));
        assert_eq!(names.address_for("one.more.test"), None);
        assert_eq!(names.len(), BLOCK_HOSTS as usize);
    }

    #[test]
    fn never_the_usual_loopback_address() {
        assert!(!in_block(Ipv4Addr::LOCALHOST));
        assert!(in_block(Ipv4Addr::new(127, 77, 1, 2)));
        assert!(!in_block(Ipv4Addr::new(127, 78, 0, 1)));
        assert!(!in_block(Ipv4Addr::new(128, 77, 0, 1)));
    }

    #[test]
    fn the_users_exact_literals_in_the_block_are_skipped() {
        let allow = Allowlist::parse(
            ["127.77.0.1:8080", "127.77.0.3", "127.0.0.0/8", "api.example.com"],
            ["127.77.0.2"],
        )
        .unwrap();
        let names = SyntheticNames::avoiding(16, &allow);
        // .1 and .3 are the user's literals; a package's rule reserves nothing (it cannot
        // reach a loopback address anyway), and a CIDR does not either.
        assert_eq!(names.address_for("a.test"), Some(Ipv4Addr::new(127, 77, 0, 2)));
        assert_eq!(names.address_for("b.test"), Some(Ipv4Addr::new(127, 77, 0, 4)));
        assert_eq!(names.name_of(Ipv4Addr::new(127, 77, 0, 1)), None);
        assert_eq!(names.name_of(Ipv4Addr::new(127, 77, 0, 3)), None);
    }

    #[test]
    fn clones_share_one_map_across_threads() {
        let names = SyntheticNames::new(1000);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let names = names.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| names.address_for(&format!("n{}.test", (i * 7 + t) % 100)).unwrap())
                        .count()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 100);
        }
        assert_eq!(names.len(), 100);
        for i in 0..100 {
            let name = format!("n{i}.test");
            let addr = names.address_for(&name).unwrap();
            assert_eq!(names.name_of(addr), Some(name));
        }
    }
}
