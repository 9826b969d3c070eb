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

#![forbid(unsafe_code)]

pub mod cache;
pub mod digest;
