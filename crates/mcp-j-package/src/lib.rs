//! mcp-j's packages on the client side (issue 10; docs/CLI.md and REGISTRY_API's contract):
//! what a registry sends is verified against the digests of the resolve answer while it
//! streams, kept in a content-addressed cache that several `mcp-j` processes share safely,
//! and unpacked only in the shapes a bundle may take. No network here: the registry client
//! hands this crate readers; no policy here: `mcp_j_policy` decides.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod credentials;
pub mod registry;
pub mod unpack;
