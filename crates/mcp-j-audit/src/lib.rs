//! The mcp-j audit log: typed events written as JSON Lines, and redaction of secrets.
//!
//! - [`AuditLog`] is the sink: a file opened `O_APPEND` (mode 0600) getting one `write(2)`
//!   per event, an in-memory log for tests, or [`AuditLog::null`] when no log is
//!   configured.
//! - [`event`] holds the events: `session.start`, `sandbox.ready`, `proxy.decision`,
//!   `sandbox.denial`, `net.connect`, `session.end`, `tool.pinned`, `tool.changed`, and for
//!   registry packages `package.resolve`, `package.verify`, `policy.decision`. docs/AUDIT.md documents them and
//!   docs/audit.schema.json is their JSON Schema. They carry this crate's own plain types:
//!   the audit log depends on neither the sandbox engine nor the proxy (the `mcp-j` binary
//!   converts their reports and events), so a new source of events adds no crate edge.
//! - [`Redactor`] removes secret values and credential shapes from every string written;
//!   [`RedactingWriter`] applies it line by line to a stream (the server's stderr).

pub mod event;
mod log;
pub mod redact;
mod writer;

pub use event::{
    Access, Artifact, AuditEvent, Command, Direction, EventBody, ExposedPath, HostInfo, LayerStatus, Limits, McpPolicy,
    Measure, MemoryScope, MessageKind, NetConnect, NetDecision, Outcome, PackageResolve, PackageVerify, PinDecision,
    PolicyDecision, PolicyVerdict, ProcessInfo, ProxyDecision, Resources, SCHEMA_VERSION, SandboxDenial, SandboxLayer,
    SandboxLayers, SandboxReady, SessionEnd, SessionStart, Source, SourceDigests, SourceKind, ToolChanged, ToolPinned,
    VerifyResult, errno_name, rfc3339_micros,
};
pub use log::{AuditLog, MemoryLines};
pub use redact::{MIN_SECRET_LEN, Redactor};
pub use writer::{DEFAULT_MAX_LINE, RedactingWriter};
