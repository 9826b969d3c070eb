//! mcp-j's policy: what a run may do, as plain data and pure parsers.
//!
//! # Overview
//!
//! This crate does no I/O and has no `unsafe`: every function takes text or values and
//! returns values or an error message, so it can be unit-tested and fuzzed without a
//! sandbox, a file system or a network. The CLI reads files and flags and hands their text
//! here; the engine and the proxy receive the typed result.
//!
//! What lives here now:
//!
//! - [`units`]: sizes (`512M`) and durations (`30s`), typed once ([`Size`], [`Duration`])
//!   and used by the configuration file, the manifest and the flags alike.
//! - [`manifest`]: the [`Manifest`] that `--manifest` reads (parsed from a string; the CLI
//!   reads the file).
//! - [`tools`]: the tool policy ([`ToolPolicy`], allow and deny lists and the decision
//!   whether a tool is allowed) and the server-request policy ([`ServerRequestPolicy`]);
//!   the proxy enforces them.
//!
//! What the next issues add here: the egress allowlist and its rule parser, certification and origin
//! rules, a package manifest's requested permissions, and pin records.

#![forbid(unsafe_code)]

pub mod certification;
pub mod egress;
pub mod manifest;
pub mod package;
pub mod pins;
pub mod tools;
pub mod units;

pub use manifest::Manifest;
pub use tools::{ClientFeature, ServerRequestPolicy, ToolPolicy};
pub use units::{Duration, Size};
