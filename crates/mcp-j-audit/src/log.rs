//! [`AuditLog`]: builds the envelope, redacts, and writes one JSON line per event.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::Value;

use crate::event::{
    AuditEvent, EventBody, HostInfo, NetConnect, PackageResolve, PackageVerify, PolicyDecision, ProxyDecision,
    SCHEMA_VERSION, SandboxDenial, SandboxLayers, SandboxReady, SessionEnd, SessionStart, ToolChanged, ToolPinned,
    rfc3339_micros,
};
use crate::redact::Redactor;

/// Lines recorded by an in-memory [`AuditLog`] (tests). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryLines(Arc<Mutex<Vec<String>>>);

impl MemoryLines {
    /// Every line so far, without its newline.
    pub fn lines(&self) -> Vec<String> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[derive(Debug)]
enum Sink {
    File(Mutex<File>),
    Memory(MemoryLines),
    Null,
}

/// The audit log of one session: a file (JSON Lines), memory, or nothing.
///
/// Every event gets the envelope (`schema_version`, `timestamp`, `session_id`, `host`),
/// then every string *value* in it is passed through the [`Redactor`] — after the event is
/// built as JSON, before it is serialised — so the line stays valid JSON whatever a secret
/// contains. Numbers and object keys (all fixed names) are not redacted.
///
/// Thread-safe: the proxy's tasks record [`AuditLog::proxy_decision`]s through a shared
/// reference.
#[derive(Debug)]
pub struct AuditLog {
    sink: Sink,
    session_id: String,
    host: HostInfo,
    redactor: Arc<Redactor>,
    failures: AtomicU64,
}

impl AuditLog {
    /// Append to the file at `path`, creating it with mode 0600 (an existing file keeps
    /// its mode). Opened `O_APPEND`: each event is one `write(2)` of one whole line, so
    /// several writers (threads or processes) never interleave within a line.
    pub fn open(path: &Path, redactor: Arc<Redactor>) -> io::Result<AuditLog> {
        let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
        AuditLog::with_sink(Sink::File(Mutex::new(file)), redactor)
    }

    /// Keep the lines in memory; read them from the returned handle.
    pub fn memory(redactor: Arc<Redactor>) -> io::Result<(AuditLog, MemoryLines)> {
        let lines = MemoryLines::default();
        let log = AuditLog::with_sink(Sink::Memory(lines.clone()), redactor)?;
        Ok((log, lines))
    }

    /// No audit log configured: every event is dropped unbuilt. Its session id is all
    /// zeros.
    pub fn null() -> AuditLog {
        AuditLog {
            sink: Sink::Null,
            session_id: "0".repeat(32),
            host: HostInfo {
                hostname: None,
                pid: std::process::id(),
            },
            redactor: Arc::new(Redactor::default()),
            failures: AtomicU64::new(0),
        }
    }

    fn with_sink(sink: Sink, redactor: Arc<Redactor>) -> io::Result<AuditLog> {
        Ok(AuditLog {
            sink,
            session_id: new_session_id()?,
            host: HostInfo {
                hostname: hostname(),
                pid: std::process::id(),
            },
            redactor,
            failures: AtomicU64::new(0),
        })
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        !matches!(self.sink, Sink::Null)
    }

    /// This session's id (32 lowercase hex digits).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The redactor every line passes through.
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// How many events could not be written (through [`AuditLog::proxy_decision`], which
    /// cannot return errors). Worth a warning at the end of the run when not zero.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The event with its envelope, stamped now.
    pub fn envelope(&self, body: impl Into<EventBody>) -> AuditEvent {
        self.envelope_at(body, SystemTime::now())
    }

    /// The event with its envelope, stamped `at`.
    pub fn envelope_at(&self, body: impl Into<EventBody>, at: SystemTime) -> AuditEvent {
        AuditEvent {
            schema_version: SCHEMA_VERSION,
            timestamp: rfc3339_micros(at),
            session_id: self.session_id.clone(),
            host: self.host.clone(),
            body: body.into(),
        }
    }

    /// The event as one redacted JSON line, newline included.
    pub fn line(&self, event: &AuditEvent) -> io::Result<Vec<u8>> {
        let mut value = serde_json::to_value(event)?;
        redact_strings(&mut value, &self.redactor);
        let Value::Object(mut map) = value else {
            return Err(io::Error::other("an audit event is not a JSON object"));
        };
        // The envelope first, in this order, then the body's fields sorted by name.
        let mut line = Vec::with_capacity(512);
        line.push(b'{');
        let mut first = true;
        let mut put = |line: &mut Vec<u8>, key: &str, v: &Value| -> io::Result<()> {
            if !std::mem::take(&mut first) {
                line.push(b',');
            }
            serde_json::to_writer(&mut *line, key)?;
            line.push(b':');
            serde_json::to_writer(&mut *line, v)?;
            Ok(())
        };
        for key in ENVELOPE_ORDER {
            if let Some(v) = map.remove(key) {
                put(&mut line, key, &v)?;
            }
        }
        for (key, v) in &map {
            put(&mut line, key, v)?;
        }
        line.extend_from_slice(b"}\n");
        Ok(line)
    }

    /// Record one event, stamped now.
    pub fn record(&self, body: impl Into<EventBody>) -> io::Result<()> {
        self.record_at(body, SystemTime::now())
    }

    /// Record one event that happened at `at`.
    pub fn record_at(&self, body: impl Into<EventBody>, at: SystemTime) -> io::Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let line = self.line(&self.envelope_at(body, at))?;
        self.write_line(&line)
    }

    /// `session.start`.
    pub fn session_start(&self, start: SessionStart) -> io::Result<()> {
        self.record(start)
    }

    /// `sandbox.ready` with the sandbox's layers.
    pub fn sandbox_ready(&self, sandbox: &SandboxLayers, jail_pid: Option<i32>) -> io::Result<()> {
        self.record(SandboxReady::new(sandbox.clone(), jail_pid))
    }

    /// `proxy.decision`. Called from the proxy's event path, which cannot handle errors: a
    /// line that cannot be written is counted in [`AuditLog::failures`].
    pub fn proxy_decision(&self, decision: ProxyDecision) {
        if self.record(decision).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `sandbox.denial`.
    pub fn sandbox_denial(&self, denial: SandboxDenial) -> io::Result<()> {
        self.record(denial)
    }

    /// `net.connect`.
    pub fn net_connect(&self, connect: NetConnect) -> io::Result<()> {
        self.record(connect)
    }

    /// `package.resolve`.
    pub fn package_resolve(&self, resolve: PackageResolve) -> io::Result<()> {
        self.record(resolve)
    }

    /// `package.verify`.
    pub fn package_verify(&self, verify: PackageVerify) -> io::Result<()> {
        self.record(verify)
    }

    /// `policy.decision`.
    pub fn policy_decision(&self, decision: PolicyDecision) -> io::Result<()> {
        self.record(decision)
    }

    /// `tool.pinned`.
    pub fn tool_pinned(&self, pinned: ToolPinned) -> io::Result<()> {
        self.record(pinned)
    }

    /// `tool.changed`.
    pub fn tool_changed(&self, changed: ToolChanged) -> io::Result<()> {
        self.record(changed)
    }

    /// `session.end`.
    pub fn session_end(&self, end: SessionEnd) -> io::Result<()> {
        self.record(end)
    }

    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        match &self.sink {
            Sink::Null => Ok(()),
            Sink::Memory(lines) => {
                let text = String::from_utf8_lossy(line).trim_end_matches('\n').to_string();
                match lines.0.lock() {
                    Ok(mut v) => v.push(text),
                    Err(poisoned) => poisoned.into_inner().push(text),
                }
                Ok(())
            }
            Sink::File(file) => {
                let file = match file.lock() {
                    Ok(f) => f,
                    Err(poisoned) => poisoned.into_inner(),
                };
                // One write(2) for the whole line: with O_APPEND the kernel places it at
                // the end atomically. A short write (disk full) is ended with a newline
                // so that later lines still parse, and reported.
                let written = loop {
                    match (&*file).write(line) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                if written < line.len() {
                    let _ = (&*file).write(b"\n");
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write to the audit log: {written} of {} bytes", line.len()),
                    ));
                }
                Ok(())
            }
        }
    }
}

const ENVELOPE_ORDER: [&str; 5] = ["schema_version", "timestamp", "event_type", "session_id", "host"];

fn redact_strings(value: &mut Value, redactor: &Redactor) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(r) = redactor.redact(s) {
                *s = r;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, redactor)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_strings(v, redactor)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// 128 random bits from the kernel, as 32 lowercase hex digits.
fn new_session_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}
