//! mcp-j's policy: what a run may do, as plain data and pure parsers.
//!
//! # Overview
//!
//! This crate does no I/O and has no `unsafe`: every function takes text or values and
//! returns values or an error message, so it can be unit-tested and fuzzed without a
//! sandbox, a file system or a network. The CLI reads files and flags and hands their text
//! here; the engine and the proxy receive the typed result.
//!
//! What lives here:
//!
//! - [`units`]: sizes (`512M`) and durations (`30s`), typed once ([`Size`], [`Duration`])
//!   and used by the configuration file, the manifest and the flags alike.
//! - [`manifest`]: the [`Manifest`] that `--manifest` reads (parsed from a string; the CLI
//!   reads the file).
//! - [`tools`]: the tool policy ([`ToolPolicy`], allow and deny lists and the decision
//!   whether a tool is allowed) and the server-request policy ([`ServerRequestPolicy`]);
//!   the proxy enforces them.
//! - [`egress`]: network egress. The `--allow-net` [`Rule`] and its parser (names,
//!   `*.domain`, IP literals, CIDRs, one optional port, 443 and 80 by default), the
//!   [`Allowlist`] of the user's and a package's rules, the special address ranges that
//!   only the user's own rules unlock ([`egress::special`], recognised in every IPv6
//!   spelling that carries IPv4), the parser of hosts as clients spell them
//!   ([`egress::host`]: `0x7f.1` is 127.0.0.1), and the decision on one connection
//!   ([`Allowlist::decide`]). Issue 9's egress proxy enforces it.
//! - [`certification`]: which registry packages may run — status (only `published` and
//!   `deprecated`), [`CertLevel`] against `policy.min_cert_level` in a [`CertMode`],
//!   [`Origin`] against `policy.allowed_origins` — and [`certification::decide`], whose
//!   reasons name the policy line to change.
//! - [`package`]: the package manifest of REGISTRY_API.md in both its shapes
//!   ([`PackageManifest::from_json`]), the permissions and limits a package requests, and
//!   [`package::narrow`], which grants a request only as far as local policy allows.
//! - [`resolve`]: the registry's resolve answer ([`ResolveAnswer::from_json`]), the root of
//!   trust of a package run: digests, status, certification level, origin.
//! - [`pins`]: tool pins per server identity ([`PinFile`], [`ToolPin`]) and
//!   [`pins::compare`], which says what changed in a tool (description, schema,
//!   annotations, title). The digests are computed by `mcp-j-proxy`'s canonical JSON and
//!   passed in.
//! - [`reference`](mod@reference): what `run REF`, `pull REF` and `info REF` take ([`PackageRef`]):
//!   `org/name@version|latest|sha256:…`, `npm:…` and `pypi:…`, local archives included.
//!
//! Nothing here reads a clock: a time (a pin's first sight) is a parameter.

#![forbid(unsafe_code)]

pub mod certification;
pub mod egress;
pub mod manifest;
pub mod package;
pub mod pins;
pub mod reference;
pub mod resolve;
pub mod tools;
pub mod units;

pub use certification::{CertLevel, CertMode, CertPolicy, Origin, PackageStatus};
pub use egress::{Allowlist, Host, Rule, RuleSource};
pub use manifest::Manifest;
pub use package::PackageManifest;
pub use pins::{PinFile, PinMode, ServerIdentity, ToolPin};
pub use reference::{NpmRef, PackageRef, PypiRef, RegistryRef, Selector};
pub use resolve::ResolveAnswer;
pub use tools::{ClientFeature, ServerRequestPolicy, ToolPolicy};
pub use units::{Duration, Size};
