//! The audit crate's integration tests, one test binary.
//!
//! - `log`: the file sink (append, one write per line, mode 0600).
//! - `schema`: every event type validates against docs/audit.schema.json.

mod log;
mod schema;
