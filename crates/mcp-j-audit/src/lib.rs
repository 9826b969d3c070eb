//! The mcp-j audit log: typed events written as JSON Lines, and redaction of secrets.
//!
//! - [`AuditLog`] is the sink: a file opened `O_APPEND` (mode 0600) getting one `write(2)`
//!   per event, an in-memory log for tests, or [`AuditLog::null`] when no log is
//!   configured. It implements [`mcp_j_proxy::EventSink`], turning each proxy event into a
//!   `proxy.decision` event.
//! - [`event`] holds the events: `session.start`, `sandbox.ready`, `proxy.decision`,
//!   `sandbox.denial`, `session.end`. docs/AUDIT.md documents them and
//!   docs/audit.schema.json is their JSON Schema.
//! - [`Redactor`] removes secret values and credential shapes from every string written;
//!   [`RedactingWriter`] applies it line by line to a stream (the server's stderr).

pub mod event;
mod log;
pub mod redact;
mod writer;

pub use event::{
    Access, AuditEvent, Command, EventBody, ExposedPath, HostInfo, Limits, McpPolicy, Measure, MemoryScope, Outcome,
    ProcessInfo, ProxyDecision, Resources, SCHEMA_VERSION, SandboxDenial, SandboxReady, SessionEnd, SessionStart,
    Source, SourceKind,
};
pub use log::{AuditLog, MemoryLines};
pub use redact::{MIN_SECRET_LEN, Redactor};
pub use writer::{DEFAULT_MAX_LINE, RedactingWriter};
