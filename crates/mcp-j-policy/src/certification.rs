//! Which registry packages may run: the version's status, its certification level against
//! `policy.min_cert_level` / `policy.cert_level_mode`, and its origin against
//! `policy.allowed_origins` (INTERFACE, *Packages*; REGISTRY_API.md, the resolve answer).
//!
//! The inputs are the resolve answer's values (the root of trust: a manifest's own
//! `certification` block is informational only). [`decide`] is the whole rule: a pure
//! function from the policy and the package's facts to allowed, warned or refused, each
//! reason naming what to change.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A certification level, 0 (none) to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CertLevel(u8);

impl CertLevel {
    /// The highest level.
    pub const MAX: CertLevel = CertLevel(3);

    /// A level from a number; an error naming the valid range when it is above 3.
    pub fn new(level: u64) -> Result<Self, String> {
        match u8::try_from(level) {
            Ok(l) if l <= Self::MAX.0 => Ok(CertLevel(l)),
            _ => Err(format!("certification level {level} is out of range: use 0, 1, 2 or 3")),
        }
    }

    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for CertLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for CertLevel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let n: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a certification level: use 0, 1, 2 or 3"))?;
        CertLevel::new(n)
    }
}

impl Serialize for CertLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for CertLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a certification level: 0, 1, 2 or 3"))?;
        CertLevel::new(n).map_err(serde::de::Error::custom)
    }
}

/// `policy.cert_level_mode`: what a level below `policy.min_cert_level` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertMode {
    /// Refuse to run (exit 126).
    Strict,
    /// Run, with a warning.
    Warn,
    /// Do not look at the level (the default).
    #[default]
    Disabled,
}

impl FromStr for CertMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "strict" => Ok(CertMode::Strict),
            "warn" => Ok(CertMode::Warn),
            "disabled" => Ok(CertMode::Disabled),
            _ => Err(format!(
                "`{text}` is not a certification mode: use strict, warn or disabled"
            )),
        }
    }
}

/// A version's status in the registry (REGISTRY_API.md, the resolve answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageStatus {
    /// Uploaded, not yet processed.
    Draft,
    /// Taken in by the registry.
    Ingested,
    /// Scanned, not yet published.
    Scanned,
    /// Published: runs.
    Published,
    /// Held by the registry: refused.
    Quarantined,
    /// Superseded: runs with a warning.
    Deprecated,
    /// Withdrawn: refused.
    Revoked,
}

impl PackageStatus {
    /// Every status, in the order REGISTRY_API.md lists them.
    pub const ALL: [PackageStatus; 7] = [
        PackageStatus::Draft,
        PackageStatus::Ingested,
        PackageStatus::Scanned,
        PackageStatus::Published,
        PackageStatus::Quarantined,
        PackageStatus::Deprecated,
        PackageStatus::Revoked,
    ];

    /// Whether a version with this status may run: only `published` and `deprecated`.
    pub fn may_run(self) -> bool {
        matches!(self, PackageStatus::Published | PackageStatus::Deprecated)
    }

    /// The status as the registry writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Draft => "draft",
            PackageStatus::Ingested => "ingested",
            PackageStatus::Scanned => "scanned",
            PackageStatus::Published => "published",
            PackageStatus::Quarantined => "quarantined",
            PackageStatus::Deprecated => "deprecated",
            PackageStatus::Revoked => "revoked",
        }
    }
}

impl fmt::Display for PackageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PackageStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        PackageStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!("`{text}` is not a package status: draft, ingested, scanned, published, quarantined, deprecated or revoked")
            })
    }
}

/// Where a package comes from, as the registry vouches; a missing `origin` is
/// `community`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Published by the registry's operator.
    Official,
    /// A publisher the registry verified.
    Verified,
    /// Anyone (the default).
    #[default]
    Community,
}

impl Origin {
    /// The origin as the registry writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Official => "official",
            Origin::Verified => "verified",
            Origin::Community => "community",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "official" => Ok(Origin::Official),
            "verified" => Ok(Origin::Verified),
            "community" => Ok(Origin::Community),
            _ => Err(format!(
                "`{text}` is not an origin: use official, verified or community"
            )),
        }
    }
}

/// The certification part of `[policy]`: `min_cert_level` (0–3), `cert_level_mode`
/// (default `disabled`) and `allowed_origins` (empty = all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertPolicy {
    /// `policy.min_cert_level`.
    pub min_level: CertLevel,
    /// `policy.cert_level_mode`.
    pub mode: CertMode,
    /// `policy.allowed_origins`; empty allows every origin.
    pub allowed_origins: BTreeSet<Origin>,
}

/// What the resolve answer says about the version to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFacts<'a> {
    /// `org/name`.
    pub package: &'a str,
    /// The resolved version.
    pub version: &'a str,
    /// `resolved.status`.
    pub status: PackageStatus,
    /// `resolved.certification_level`.
    pub level: CertLevel,
    /// `origin` (missing = community).
    pub origin: Origin,
}

/// Which check a reason comes from (for the audit log's `policy.decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The version's status.
    Status,
    /// The certification level.
    CertLevel,
    /// The origin.
    Origin,
}

/// One reason for a warning or a refusal, with what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The check that gave it.
    pub check: Check,
    /// The message: what, why, and the policy line (or action) that changes it.
    pub message: String,
}

/// The decision on running a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run, nothing to say.
    Allowed,
    /// Run, and show these warnings.
    Warned(Vec<Reason>),
    /// Do not run (exit 126); every refusal reason, then any warnings.
    Refused(Vec<Reason>),
}

/// Decide whether a package version may run under `policy`.
///
/// Rows: a status other than `published`/`deprecated` refuses (`draft`, `ingested` and
/// `scanned` like `revoked` and `quarantined`); `deprecated` warns; an origin outside a
/// non-empty `policy.allowed_origins` refuses; a level below `policy.min_cert_level`
/// refuses in `strict` mode, warns in `warn` mode and is ignored when `disabled`. Every
/// failing check is reported, not only the first.
pub fn decide(policy: &CertPolicy, facts: &PackageFacts<'_>) -> Decision {
    let name = format!("{}@{}", facts.package, facts.version);
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();

    match facts.status {
        PackageStatus::Published => {}
        PackageStatus::Deprecated => warnings.push(Reason {
            check: Check::Status,
            message: format!("{name} is deprecated; pick a newer version of {}", facts.package),
        }),
        status => refusals.push(Reason {
            check: Check::Status,
            message: format!(
                "{name} is {status}: only published and deprecated versions run; pick another version of {}",
                facts.package
            ),
        }),
    }

    if !policy.allowed_origins.is_empty() && !policy.allowed_origins.contains(&facts.origin) {
        let allowed: Vec<&str> = policy.allowed_origins.iter().map(|o| o.as_str()).collect();
        refusals.push(Reason {
            check: Check::Origin,
            message: format!(
                "{name} has origin {}, not one of policy.allowed_origins ({}); add \"{}\" to policy.allowed_origins to run it",
                facts.origin,
                allowed.join(", "),
                facts.origin
            ),
        });
    }

    if facts.level < policy.min_level {
        let below = format!(
            "{name} is certified at level {}, below policy.min_cert_level = {}",
            facts.level, policy.min_level
        );
        match policy.mode {
            CertMode::Strict => refusals.push(Reason {
                check: Check::CertLevel,
                message: format!(
                    "{below} (policy.cert_level_mode = \"strict\"); lower policy.min_cert_level \
                     or set policy.cert_level_mode = \"warn\" to run it"
                ),
            }),
            CertMode::Warn => warnings.push(Reason {
                check: Check::CertLevel,
                message: format!(
                    "{below}; running it because policy.cert_level_mode = \"warn\" (\"strict\" refuses it)"
                ),
            }),
            CertMode::Disabled => {}
        }
    }

    match (refusals.is_empty(), warnings.is_empty()) {
        (true, true) => Decision::Allowed,
        (true, false) => Decision::Warned(warnings),
        (false, _) => {
            refusals.extend(warnings);
            Decision::Refused(refusals)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: PackageStatus, level: u8, origin: Origin) -> PackageFacts<'static> {
        PackageFacts {
            package: "acme/hello",
            version: "1.2.3",
            status,
            level: CertLevel(level),
            origin,
        }
    }

    fn policy(min: u8, mode: CertMode, origins: &[Origin]) -> CertPolicy {
        CertPolicy {
            min_level: CertLevel(min),
            mode,
            allowed_origins: origins.iter().copied().collect(),
        }
    }

    /// The checks each outcome names, refusals first: `("refused", [Status])`.
    fn outcome(d: &Decision) -> (&'static str, Vec<Check>) {
        let checks = |rs: &[Reason]| rs.iter().map(|r| r.check).collect();
        match d {
            Decision::Allowed => ("allowed", vec![]),
            Decision::Warned(rs) => ("warned", checks(rs)),
            Decision::Refused(rs) => ("refused", checks(rs)),
        }
    }

    #[test]
    fn cert_levels_parse_zero_to_three() {
        for (text, want) in [("0", 0), ("1", 1), ("2", 2), ("3", 3), (" 2 ", 2)] {
            assert_eq!(text.parse::<CertLevel>().map(CertLevel::get), Ok(want), "{text}");
        }
        for bad in ["4", "-1", "", "two", "1.5", "256", "99999999999999999999"] {
            let err = bad.parse::<CertLevel>().expect_err(bad);
            assert!(err.contains("0, 1, 2 or 3"), "{bad}: {err}");
        }
        assert_eq!(serde_json::from_str::<CertLevel>("3").expect("json"), CertLevel::MAX);
        let err = serde_json::from_str::<CertLevel>("7").expect_err("7").to_string();
        assert!(err.contains("out of range: use 0, 1, 2 or 3"), "{err}");
        assert!(serde_json::from_str::<CertLevel>("\"1\"").is_err());
        assert_eq!(serde_json::to_string(&CertLevel(2)).expect("json"), "2");
    }

    #[test]
    fn modes_statuses_and_origins_parse_as_the_contract_writes_them() {
        assert_eq!("strict".parse(), Ok(CertMode::Strict));
        assert_eq!("warn".parse(), Ok(CertMode::Warn));
        assert_eq!("disabled".parse(), Ok(CertMode::Disabled));
        assert_eq!(CertMode::default(), CertMode::Disabled);
        assert!(
            "Strict"
                .parse::<CertMode>()
                .expect_err("case")
                .contains("strict, warn or disabled")
        );
        assert_eq!(
            serde_json::from_str::<CertMode>("\"warn\"").expect("json"),
            CertMode::Warn
        );

        for status in PackageStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            let json = serde_json::to_string(&status).expect("json");
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<PackageStatus>(&json).expect("json"), status);
        }
        assert!("yanked".parse::<PackageStatus>().is_err());

        for origin in [Origin::Official, Origin::Verified, Origin::Community] {
            assert_eq!(origin.as_str().parse(), Ok(origin));
        }
        assert_eq!(Origin::default(), Origin::Community);
        assert!(
            "partner"
                .parse::<Origin>()
                .expect_err("x")
                .contains("official, verified or community")
        );
    }

    #[test]
    fn only_published_and_deprecated_may_run() {
        let runs: Vec<PackageStatus> = PackageStatus::ALL.into_iter().filter(|s| s.may_run()).collect();
        assert_eq!(runs, [PackageStatus::Published, PackageStatus::Deprecated]);
    }

    #[test]
    fn status_rows() {
        use PackageStatus::*;
        let open = CertPolicy::default();
        let table = [
            (Published, ("allowed", vec![])),
            (Deprecated, ("warned", vec![Check::Status])),
            (Draft, ("refused", vec![Check::Status])),
            (Ingested, ("refused", vec![Check::Status])),
            (Scanned, ("refused", vec![Check::Status])),
            (Quarantined, ("refused", vec![Check::Status])),
            (Revoked, ("refused", vec![Check::Status])),
        ];
        for (status, want) in table {
            assert_eq!(
                outcome(&decide(&open, &facts(status, 0, Origin::Community))),
                want,
                "{status}"
            );
        }
        let Decision::Refused(rs) = decide(&open, &facts(Revoked, 3, Origin::Official)) else {
            panic!("revoked ran");
        };
        assert_eq!(
            rs[0].message,
            "acme/hello@1.2.3 is revoked: only published and deprecated versions run; pick another version of acme/hello"
        );
    }

    #[test]
    fn cert_level_rows() {
        use CertMode::*;
        let table = [
            // (min, mode, level) → outcome
            (2, Strict, 1, ("refused", vec![Check::CertLevel])),
            (2, Strict, 2, ("allowed", vec![])),
            (2, Strict, 3, ("allowed", vec![])),
            (3, Strict, 0, ("refused", vec![Check::CertLevel])),
            (2, Warn, 1, ("warned", vec![Check::CertLevel])),
            (2, Warn, 2, ("allowed", vec![])),
            (3, Disabled, 0, ("allowed", vec![])),
            (0, Strict, 0, ("allowed", vec![])),
        ];
        for (min, mode, level, want) in table {
            let d = decide(
                &policy(min, mode, &[]),
                &facts(PackageStatus::Published, level, Origin::Community),
            );
            assert_eq!(outcome(&d), want, "min {min} {mode:?} level {level}");
        }
        let Decision::Refused(rs) = decide(
            &policy(2, Strict, &[]),
            &facts(PackageStatus::Published, 0, Origin::Community),
        ) else {
            panic!("level 0 ran under strict 2");
        };
        assert_eq!(
            rs[0].message,
            "acme/hello@1.2.3 is certified at level 0, below policy.min_cert_level = 2 \
             (policy.cert_level_mode = \"strict\"); lower policy.min_cert_level or set \
             policy.cert_level_mode = \"warn\" to run it"
        );
    }

    #[test]
    fn origin_rows() {
        use Origin::*;
        let table = [
            (vec![], Community, ("allowed", vec![])),
            (vec![Official], Official, ("allowed", vec![])),
            (vec![Official], Verified, ("refused", vec![Check::Origin])),
            (vec![Official, Verified], Verified, ("allowed", vec![])),
            (vec![Official, Verified], Community, ("refused", vec![Check::Origin])),
        ];
        for (allowed, origin, want) in table {
            let d = decide(
                &policy(0, CertMode::Disabled, &allowed),
                &facts(PackageStatus::Published, 0, origin),
            );
            assert_eq!(outcome(&d), want, "{allowed:?} {origin}");
        }
        let Decision::Refused(rs) = decide(
            &policy(0, CertMode::Disabled, &[Official, Verified]),
            &facts(PackageStatus::Published, 0, Community),
        ) else {
            panic!("community ran");
        };
        assert_eq!(
            rs[0].message,
            "acme/hello@1.2.3 has origin community, not one of policy.allowed_origins (official, verified); \
             add \"community\" to policy.allowed_origins to run it"
        );
    }

    #[test]
    fn every_failing_check_is_reported_refusals_first() {
        let strict = policy(2, CertMode::Strict, &[Origin::Official]);
        let d = decide(&strict, &facts(PackageStatus::Quarantined, 0, Origin::Community));
        assert_eq!(
            outcome(&d),
            ("refused", vec![Check::Status, Check::Origin, Check::CertLevel])
        );
        let warn = policy(2, CertMode::Warn, &[]);
        let d = decide(&warn, &facts(PackageStatus::Deprecated, 1, Origin::Community));
        assert_eq!(outcome(&d), ("warned", vec![Check::Status, Check::CertLevel]));
        let Decision::Warned(rs) = d else { panic!("not warned") };
        assert_eq!(
            rs[0].message,
            "acme/hello@1.2.3 is deprecated; pick a newer version of acme/hello"
        );
        assert_eq!(
            rs[1].message,
            "acme/hello@1.2.3 is certified at level 1, below policy.min_cert_level = 2; running it \
             because policy.cert_level_mode = \"warn\" (\"strict\" refuses it)"
        );
        let d = decide(
            &policy(2, CertMode::Warn, &[Origin::Official]),
            &facts(PackageStatus::Deprecated, 1, Origin::Verified),
        );
        assert_eq!(
            outcome(&d),
            ("refused", vec![Check::Origin, Check::Status, Check::CertLevel])
        );
    }
}
