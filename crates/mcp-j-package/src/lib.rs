//! mcp-j's packages on the client side (issue 10; docs/CLI.md and REGISTRY_API's contract):
//! what a registry sends is verified against the digests of the resolve answer while it
//! streams, kept in a content-addressed cache that several `mcp-j` processes share safely,
//! and unpacked only in the shapes a bundle may take. No network here: the registry client
//! hands this crate readers; no policy here: `mcp_j_policy` decides.
//!
//! - [`digest`]: [`digest::HashingReader`], SHA-256 while streaming with a byte cap.
//! - [`cache`]: [`cache::Cache`], the content-addressed cache (`sha256/<hex>` blobs, a
//!   cross-process lock per blob, re-verification on open, `ls`/`rm`/`gc`) and the cached
//!   resolve answers of the offline rule.
//! - [`registry`]: [`registry::Registry`], the client of REGISTRY_API's read half, login
//!   and push (checked redirects, the token only to its own origin, retries, bounded
//!   errors, the system's TLS roots); [`credentials`]: the tokens `mcp-j login` stores.
//! - [`unpack`]: the safe unpacker of bundles; [`bundle`]: the deterministic builder
//!   `push DIR` uses.
//! - [`tool_config`]: what the jailed `npm` / `pip` of `npm:` / `pypi:` packages may learn
//!   from the host's configuration of those tools (registry URLs and CA settings, never
//!   credentials), and the network destinations that follows.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod cache;
pub mod credentials;
pub mod digest;
pub mod install;
pub mod registry;
pub mod tool_config;
pub mod unpack;
