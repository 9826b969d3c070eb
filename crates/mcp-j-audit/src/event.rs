//! The audit events: one envelope ([`AuditEvent`]) and one body per `event_type`.
//!
//! Field names follow what log pipelines expect (ECS-like where ECS has a name:
//! `process.executable`, `process.args`, `process.command_line`, `process.working_directory`,
//! `host.pid`, `host.hostname`, `event_type` dotted). docs/AUDIT.md and
//! docs/audit.schema.json describe the same shapes; the tests keep them in step.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The value of every event's `schema_version`. Bumped on any incompatible change.
pub const SCHEMA_VERSION: &str = "mcp-j.audit/1";

/// One audit event: the envelope every line carries, then the body.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: &'static str,
    /// When the event was recorded: RFC 3339, UTC, microseconds (`2025-06-01T12:00:00.123456Z`).
    pub timestamp: String,
    /// Random per run (128 bits, lowercase hex): joins the lines of one session.
    pub session_id: String,
    /// The machine and the `mcp-j` process that wrote the event.
    pub host: HostInfo,
    /// `event_type` and the event's own fields.
    #[serde(flatten)]
    pub body: EventBody,
}

/// Where the event was written from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// The host name, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Pid of the `mcp-j` process (the supervisor), not of the sandboxed program.
    pub pid: u32,
}

/// The event's type and fields. Serialised flat, with `event_type` as the tag.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event_type")]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per event and serialised at once; never stored in bulk"
)]
pub enum EventBody {
    /// `session.start`: what runs, how, with what limits and policy.
    #[serde(rename = "session.start")]
    SessionStart(SessionStart),
    /// `sandbox.ready`: the jail is up; the sandbox report.
    #[serde(rename = "sandbox.ready")]
    SandboxReady(SandboxReady),
    /// `proxy.decision`: one message seen by the MCP proxy and what it did.
    #[serde(rename = "proxy.decision")]
    ProxyDecision(ProxyDecision),
    /// `sandbox.denial`: something the sandbox refused and could observe.
    #[serde(rename = "sandbox.denial")]
    SandboxDenial(SandboxDenial),
    /// `net.connect`: one connection through the egress proxy, allowed or refused.
    #[serde(rename = "net.connect")]
    NetConnect(NetConnect),
    /// `session.end`: how it ended, how long it took, what it used.
    #[serde(rename = "session.end")]
    SessionEnd(SessionEnd),
    /// `package.resolve`: what the registry answered for a package reference.
    #[serde(rename = "package.resolve")]
    PackageResolve(PackageResolve),
    /// `package.verify`: one artifact (manifest or bundle) checked against its digest.
    #[serde(rename = "package.verify")]
    PackageVerify(PackageVerify),
    /// `policy.decision`: whether local policy lets a package run, and why.
    #[serde(rename = "policy.decision")]
    PolicyDecision(PolicyDecision),
    /// `tool.pinned`: a tool seen for the first time, pinned (tool pinning).
    #[serde(rename = "tool.pinned")]
    ToolPinned(ToolPinned),
    /// `tool.changed`: a pinned tool listed with another definition, and what was done.
    #[serde(rename = "tool.changed")]
    ToolChanged(ToolChanged),
}

impl EventBody {
    /// The dotted `event_type`.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventBody::SessionStart(_) => "session.start",
            EventBody::SandboxReady(_) => "sandbox.ready",
            EventBody::ProxyDecision(_) => "proxy.decision",
            EventBody::SandboxDenial(_) => "sandbox.denial",
            EventBody::NetConnect(_) => "net.connect",
            EventBody::SessionEnd(_) => "session.end",
            EventBody::PackageResolve(_) => "package.resolve",
            EventBody::PackageVerify(_) => "package.verify",
            EventBody::PolicyDecision(_) => "policy.decision",
            EventBody::ToolPinned(_) => "tool.pinned",
            EventBody::ToolChanged(_) => "tool.changed",
        }
    }
}

macro_rules! into_body {
    ($($t:ident),*) => {$(
        impl From<$t> for EventBody {
            fn from(v: $t) -> EventBody {
                EventBody::$t(v)
            }
        }
    )*};
}
into_body!(
    SessionStart,
    SandboxReady,
    ProxyDecision,
    SandboxDenial,
    NetConnect,
    SessionEnd,
    PackageResolve,
    PackageVerify,
    PolicyDecision,
    ToolPinned,
    ToolChanged
);

/// Which `mcp-j` command started the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `mcp-j exec`: any program, no protocol.
    Exec,
    /// `mcp-j run`: an MCP server behind the proxy.
    Run,
}

/// `session.start`: emitted before the sandbox is set up, so that a run whose setup fails
/// is still on record (its `session.end` says why). The sandbox report follows in
/// `sandbox.ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionStart {
    /// `exec` or `run`.
    pub command: Command,
    /// The program to run.
    pub process: ProcessInfo,
    /// How the program was resolved.
    pub source: Source,
    /// Host paths exposed in the sandbox, besides the system directories.
    pub exposed_paths: Vec<ExposedPath>,
    /// Egress the sandbox allows (`HOST[:PORT]`); empty means no network.
    pub network_allow: Vec<String>,
    /// Names of the environment variables given to the program (never values).
    pub env_names: Vec<String>,
    /// Names of the secrets given to the program (never values).
    pub secret_names: Vec<String>,
    /// The resource limits asked for.
    pub limits: Limits,
    /// The MCP message policy (`run` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<McpPolicy>,
}

impl SessionStart {
    /// A start event for `program args…` in `workdir`, everything else empty (`source`
    /// local, no paths, no network, no policy, no limits).
    pub fn new(command: Command, program: &str, args: &[String], workdir: &str) -> Self {
        SessionStart {
            command,
            process: ProcessInfo::new(program, args, workdir),
            source: Source::local(),
            exposed_paths: Vec::new(),
            network_allow: Vec::new(),
            env_names: Vec::new(),
            secret_names: Vec::new(),
            limits: Limits::default(),
            policy: None,
        }
    }
}

/// The program, ECS-style.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// The program as given (a path or a name looked up in the sandbox's `PATH`).
    pub executable: String,
    /// The full argv, `executable` first.
    pub args: Vec<String>,
    /// `args` joined with shell quoting, for display and search.
    pub command_line: String,
    /// The working directory (host path).
    pub working_directory: String,
}

impl ProcessInfo {
    /// `program` with `args` (not including the program) in `workdir`.
    pub fn new(program: &str, args: &[String], workdir: &str) -> Self {
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(program.to_string());
        argv.extend(args.iter().cloned());
        let command_line = argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ");
        ProcessInfo {
            executable: program.to_string(),
            args: argv,
            command_line,
            working_directory: workdir.to_string(),
        }
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Where the program came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// `local` (a program on this machine), `registry` (a package), `npm` or `pypi` (an
    /// install in the sandbox).
    pub kind: SourceKind,
    /// The package reference as given (`org/name@1.2.3`), for `registry`.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The verified content digest (`sha256:…`), for `registry`: the bundle's, the content
    /// that runs (the same as `digests.bundle`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The package (`org/name`), for `registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The resolved version (`1.2.3`), for `registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The verified digests of the manifest and the bundle, for `registry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digests: Option<SourceDigests>,
    /// The registry's base URL, for `registry`; the npm registry or PyPI index, for `npm`
    /// and `pypi` (credentials removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The digest of the installer's lock (npm's `package-lock.json`, pip's report), for
    /// `npm` and `pypi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_digest: Option<String>,
}

impl Source {
    /// A local program.
    pub fn local() -> Self {
        Source {
            kind: SourceKind::Local,
            reference: None,
            digest: None,
            package: None,
            version: None,
            digests: None,
            registry: None,
            lock_digest: None,
        }
    }

    /// A registry package: `reference` as given, resolved to `package` (`org/name`) at
    /// `version` in the registry at `registry` (its base URL), with the verified `digests`.
    /// `digest` is the bundle's.
    pub fn registry(
        reference: impl Into<String>,
        package: impl Into<String>,
        version: impl Into<String>,
        digests: SourceDigests,
        registry: impl Into<String>,
    ) -> Self {
        Source {
            kind: SourceKind::Registry,
            reference: Some(reference.into()),
            digest: Some(digests.bundle.clone()),
            package: Some(package.into()),
            version: Some(version.into()),
            digests: Some(digests),
            registry: Some(registry.into()),
            lock_digest: None,
        }
    }

    /// An npm or PyPI package installed in the sandbox: `digest` is the installed tree's.
    pub fn installed(
        kind: SourceKind,
        reference: impl Into<String>,
        package: impl Into<String>,
        version: impl Into<String>,
        tree_digest: impl Into<String>,
        lock_digest: impl Into<String>,
        registry: impl Into<String>,
    ) -> Self {
        Source {
            kind,
            reference: Some(reference.into()),
            digest: Some(tree_digest.into()),
            package: Some(package.into()),
            version: Some(version.into()),
            digests: None,
            registry: Some(registry.into()),
            lock_digest: Some(lock_digest.into()),
        }
    }
}

/// The verified digests of a registry package (see [`Source::digests`]), each `sha256:` +
/// 64 lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDigests {
    /// The manifest's digest.
    pub manifest: String,
    /// The bundle's digest.
    pub bundle: String,
}

/// See [`Source::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A program on this machine.
    Local,
    /// A registry package.
    Registry,
    /// An npm package, installed in the sandbox (`digest`: the installed tree's).
    Npm,
    /// A PyPI package, installed in the sandbox (`digest`: the installed tree's).
    Pypi,
}

/// A host path exposed in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExposedPath {
    /// The host path (also the path inside).
    pub path: String,
    /// `ro` or `rw`.
    pub access: Access,
    /// A system directory exposed read-write because `--allow-system-path` was given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub system_path: bool,
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read-only.
    Ro,
    /// Read-write.
    Rw,
}

/// Resource limits as asked for (what enforces each one is in `sandbox.ready`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Memory limit in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Task (process + thread) limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Open-file limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds: Option<u64>,
    /// CPU quota in millicores (1000 = one core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_millicores: Option<u64>,
    /// Wall-clock limit in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Largest file the program may write (`RLIMIT_FSIZE`), in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_size_bytes: Option<u64>,
    /// Whether the program may start other programs.
    pub no_subprocess: bool,
}

/// The proxy's message policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct McpPolicy {
    /// When set, only these tools may be called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// These tools may never be called.
    pub denied_tools: Vec<String>,
    /// What happens to requests the server sends the client (e.g. `forward`, `deny`).
    pub server_requests: String,
    /// The per-message size limit, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
}

/// `sandbox.ready`: the jail is set up and the program is about to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxReady {
    /// Host pid of the jail's init, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jail_pid: Option<i32>,
    /// Every layer: `{name, status: enforced|partial|absent, means}`.
    pub sandbox: SandboxLayers,
}

impl SandboxReady {
    /// From the sandbox's layers.
    pub fn new(sandbox: SandboxLayers, jail_pid: Option<i32>) -> Self {
        SandboxReady { jail_pid, sandbox }
    }
}

/// Every protection layer of one sandbox, as set up (the engine's report, as recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SandboxLayers {
    /// The layers, in setup order.
    pub layers: Vec<SandboxLayer>,
}

/// One protection layer and how it is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxLayer {
    /// Short stable name (`namespaces`, `landlock`, `seccomp`, `memory`, …).
    pub name: String,
    /// Enforced, partial or absent.
    pub status: LayerStatus,
    /// By what means (e.g. `Landlock ABI 7`, `RLIMIT_NOFILE`).
    pub means: String,
}

impl SandboxLayer {
    /// A layer.
    pub fn new(name: &str, status: LayerStatus, means: impl Into<String>) -> Self {
        SandboxLayer {
            name: name.to_string(),
            status,
            means: means.into(),
        }
    }
}

/// See [`SandboxLayer::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerStatus {
    /// Not in force at all.
    Absent,
    /// Some of it is in force; `means` says what is missing.
    Partial,
    /// Fully in force.
    Enforced,
}

/// Which way a message was going (see [`ProxyDecision::direction`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the MCP client towards the server.
    ClientToServer,
    /// From the server towards the client.
    ServerToClient,
}

/// What the message was, as far as the proxy could tell (see
/// [`ProxyDecision::message_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A request (has `method` and `id`).
    Request,
    /// A notification (has `method`, no `id`).
    Notification,
    /// A success response (`result`).
    Response,
    /// An error response (`error`).
    ErrorResponse,
    /// Not a valid JSON-RPC message.
    Invalid,
    /// A line over the size limit, discarded unread.
    Oversize,
}

/// `proxy.decision`: one message the MCP proxy saw and what it did with it. Argument values
/// never appear, only a hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyDecision {
    /// `client_to_server` or `server_to_client`.
    pub direction: Direction,
    /// `request`, `notification`, `response`, `error_response`, `invalid`, `oversize`.
    pub message_kind: MessageKind,
    /// The JSON-RPC method (for responses, the request's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The JSON-RPC id as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The tool, for `tools/call` and its response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `forwarded`, `rejected`, `dropped`, `rewritten`, or `tool_hidden` (a tool whose
    /// definition changed since it was pinned, removed from a listing).
    pub decision: &'static str,
    /// For `rejected`: the JSON-RPC error code sent back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// For `rejected` and `dropped`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `rewritten`: what was changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<String>,
    /// Size of the message as received (newline excluded).
    pub bytes: u64,
    /// For responses: time since the request passed the proxy, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// SHA-256 (hex) of the canonical `tools/call` arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_sha256: Option<String>,
    /// For error responses: their JSON-RPC error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// `sandbox.denial`: an operation the sandbox refused and observed (e.g. an `execve`
/// refused under `--no-subprocess`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxDenial {
    /// The layer that refused (`seccomp`, `landlock`, `no_subprocess`, …).
    pub layer: String,
    /// The operation refused, usually a syscall name (`execve`).
    pub syscall: String,
    /// The errno the program got.
    pub errno: i32,
    /// Its symbolic name (`EPERM`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// Host pid of the process refused, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Anything else (a path, an address), redacted like every string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl SandboxDenial {
    /// `layer` refused `syscall` with `errno`.
    pub fn new(layer: &str, syscall: &str, errno: i32) -> Self {
        SandboxDenial {
            layer: layer.to_string(),
            syscall: syscall.to_string(),
            errno,
            errno_name: errno_name(errno).map(str::to_string),
            pid: None,
            detail: None,
        }
    }

    /// An `execve` refused under `--no-subprocess`.
    pub fn exec_denied(errno: i32) -> Self {
        SandboxDenial::new("no_subprocess", "execve", errno)
    }
}

/// `net.connect`: one connection a jailed program made through mcp-j's egress proxy (or
/// tried to), with the decision and what went through. TLS stays end to end: the proxy
/// sees the destination and the byte counts, never the contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetConnect {
    /// The destination host as the program named it: a name or an address. (Not `host`,
    /// which every event's envelope uses for the machine mcp-j runs on.)
    pub destination: String,
    /// The destination port.
    pub port: u16,
    /// How the program came: `http` (a forwarded request), `connect` (an HTTP `CONNECT`
    /// tunnel), `socks5`, or `direct` (a plain connect to an allowlisted name or address
    /// inside the jail).
    pub via: String,
    /// The address mcp-j connected to, after its own lookup (absent when refused first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The allowlist rule that allowed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `allowed`, `refused` or `failed`.
    pub decision: NetDecision,
    /// Why it was refused, or why an allowed connection failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes from the program to the destination.
    pub bytes_sent: u64,
    /// Bytes from the destination to the program.
    pub bytes_received: u64,
    /// How long the connection lasted, in milliseconds.
    pub duration_ms: u64,
}

/// A `net.connect` decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetDecision {
    /// The allowlist allowed it.
    Allowed,
    /// Refused (not on the allowlist, a special address, a bad request).
    Refused,
    /// Allowed, but the name did not resolve or the destination did not answer.
    Failed,
}

/// `package.resolve`: what the registry answered (or, offline, the cached answer used) for a
/// package reference. Written before anything is fetched, whatever the status: a refusal
/// for `revoked` or `quarantined` follows in `policy.decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageResolve {
    /// The registry's base URL.
    pub registry: String,
    /// The reference as given (`org/name@1.2.3`, `org/name@latest`, …).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The package (`org/name`).
    pub package: String,
    /// The version it resolved to.
    pub version: String,
    /// The version's status as the registry gave it (`published`, `deprecated`, `revoked`,
    /// `quarantined`, …).
    pub status: String,
    /// The certification level the registry gave (0–3).
    pub certification_level: u8,
    /// The origin the registry gave (`official`, `verified`, `community`).
    pub origin: String,
    /// The manifest's digest (`sha256:…`).
    pub manifest_digest: String,
    /// The bundle's digest (`sha256:…`).
    pub bundle_digest: String,
    /// The bundle's size in bytes, as the registry gave it.
    pub bundle_size: u64,
    /// Whether the registry could not be reached and a cached answer was used.
    pub offline: bool,
    /// Offline only: the age of the cached answer used, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_age_s: Option<u64>,
}

/// `package.verify`: one artifact of a package checked against the digest of the resolve
/// answer, just downloaded or re-verified from the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageVerify {
    /// The package (`org/name`).
    pub package: String,
    /// The resolved version.
    pub version: String,
    /// `manifest` or `bundle`.
    pub artifact: Artifact,
    /// The digest expected (`sha256:…`, from the resolve answer).
    pub digest: String,
    /// The artifact's size in bytes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `true`: it came from the cache and was re-verified; `false`: just downloaded.
    pub cached: bool,
    /// `verified` or `refused`.
    pub result: VerifyResult,
    /// Why it was refused (a digest mismatch, a size over the cap, a manifest that names
    /// another package, version or bundle, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// See [`PackageVerify::artifact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Artifact {
    /// The package manifest (`manifest.json`).
    Manifest,
    /// The bundle (`.tar.gz`).
    Bundle,
}

/// See [`PackageVerify::result`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyResult {
    /// It matched its digest (and, for a manifest, the resolve answer).
    Verified,
    /// It did not: nothing runs, the blob is not kept.
    Refused,
}

/// `policy.decision`: whether local policy lets a package run, why, and what it is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDecision {
    /// The package (`org/name`).
    pub package: String,
    /// The resolved version.
    pub version: String,
    /// `allowed`, `warned` (runs, with a warning) or `refused`.
    pub decision: PolicyVerdict,
    /// Each reason names the policy line or flag that changes the outcome
    /// (`policy.min_cert_level = 2 (cert_level_mode strict): level 1`, `status deprecated`).
    pub reasons: Vec<String>,
    /// The network hosts granted from the manifest's request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network_granted: Vec<String>,
    /// The host environment variable names granted from the manifest's request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment_granted: Vec<String>,
    /// What was narrowed (a request not granted, a recommended limit not applied, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// See [`PolicyDecision::decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyVerdict {
    /// It may run.
    Allowed,
    /// It may run, with a warning (`reasons` say why).
    Warned,
    /// It may not run (exit 126).
    Refused,
}

/// `tool.pinned`: a server listed a tool never seen for it before; its definition is now
/// pinned (INTERFACE, *Proxy behaviour*, tool pinning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolPinned {
    /// The server identity as `mcp-j pins` takes it (`org/name`, `npm:NAME`, `pypi:NAME`,
    /// `-- PROG ARGS…`, secrets redacted).
    pub server: String,
    /// The identity's short id (the pin file's name).
    pub server_id: String,
    /// The tool's name; for a prompt `prompt:NAME`, for a resource template
    /// `resource-template:NAME`.
    pub tool: String,
    /// SHA-256 (lowercase hex) of the pinned definition's canonical form.
    pub digest: String,
}

/// `tool.changed`: a pinned tool was listed with a definition whose digest differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolChanged {
    /// As [`ToolPinned::server`].
    pub server: String,
    /// As [`ToolPinned::server_id`].
    pub server_id: String,
    /// As [`ToolPinned::tool`].
    pub tool: String,
    /// The pinned digest.
    pub old_digest: String,
    /// The digest of the definition listed now.
    pub new_digest: String,
    /// What changed: `description`, `schema`, `annotations`, `title`, `arguments` (a
    /// prompt's), `uri template` (a resource template's), `definition`.
    pub fields: Vec<String>,
    /// `hidden` (`--pins enforce`) or `warned` (`--pins warn`).
    pub decision: PinDecision,
}

/// See [`ToolChanged::decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinDecision {
    /// Removed from listings; calls refused (`enforce`).
    Hidden,
    /// Passed through with a warning (`warn`).
    Warned,
}

/// The symbolic name of `errno` (`EPERM`), for the errnos a sandbox denial or a failed
/// exec usually carries.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "EPERM",
        2 => "ENOENT",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        18 => "EXDEV",
        22 => "EINVAL",
        24 => "EMFILE",
        30 => "EROFS",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        _ => return None,
    })
}

/// `session.end`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionEnd {
    /// `exited`, `signaled`, `timed_out` or `failed` (mcp-j could not run it).
    pub outcome: Outcome,
    /// The program's exit code, when it exited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether `--timeout` stopped it.
    pub timed_out: bool,
    /// For `failed`: what went wrong (redacted like every string).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall-clock time from session start, in milliseconds.
    pub duration_ms: f64,
    /// What the jail used.
    pub resources: Resources,
}

/// See [`SessionEnd::outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The program exited with `exit_code`.
    Exited,
    /// `signal` killed it.
    Signaled,
    /// The wall-clock limit stopped it.
    TimedOut,
    /// mcp-j failed before or while running it; see `error`.
    Failed,
}

impl SessionEnd {
    fn with(outcome: Outcome, duration: Duration) -> Self {
        SessionEnd {
            outcome,
            exit_code: None,
            signal: None,
            timed_out: outcome == Outcome::TimedOut,
            error: None,
            duration_ms: duration.as_secs_f64() * 1000.0,
            resources: Resources::unmeasured(),
        }
    }

    /// The program exited with `code`.
    pub fn exited(code: i32, duration: Duration, resources: Resources) -> Self {
        SessionEnd {
            exit_code: Some(code),
            resources,
            ..SessionEnd::with(Outcome::Exited, duration)
        }
    }

    /// `signal` killed the program.
    pub fn signaled(signal: i32, duration: Duration, resources: Resources) -> Self {
        SessionEnd {
            signal: Some(signal),
            resources,
            ..SessionEnd::with(Outcome::Signaled, duration)
        }
    }

    /// The timeout stopped the program, with `signal` if one was sent.
    pub fn timed_out(signal: Option<i32>, duration: Duration, resources: Resources) -> Self {
        SessionEnd {
            signal,
            resources,
            ..SessionEnd::with(Outcome::TimedOut, duration)
        }
    }

    /// mcp-j failed (the sandbox could not be set up, …).
    pub fn failed(error: impl Into<String>, duration: Duration) -> Self {
        SessionEnd {
            error: Some(error.into()),
            ..SessionEnd::with(Outcome::Failed, duration)
        }
    }
}

/// What the jail used, and how that was measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Peak memory in bytes; see `peak_memory_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// User + system CPU time of all the jail's processes, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_time_ms: Option<u64>,
    /// `cgroup` (`memory.peak`, `cpu.stat`), `rusage` (`getrusage(RUSAGE_CHILDREN)`), or
    /// `none`.
    pub measured_by: Measure,
    /// `jail` (the whole cgroup's peak) or `largest_process` (under rusage: the largest
    /// single process's max RSS, not the sum), absent when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_scope: Option<MemoryScope>,
}

/// See [`Resources::measured_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// cgroup v2 counters of the jail's cgroup.
    Cgroup,
    /// `getrusage` of the reaped children.
    Rusage,
    /// Not measured.
    None,
}

/// See [`Resources::peak_memory_scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryScope {
    /// All of the jail's memory at its peak.
    Jail,
    /// The largest single process's max RSS.
    LargestProcess,
}

impl Resources {
    /// From the jail's cgroup (`memory.peak`, `cpu.stat` `usage_usec`).
    pub fn cgroup(peak_memory_bytes: Option<u64>, cpu_time: Option<Duration>) -> Self {
        Resources {
            peak_memory_bytes,
            cpu_time_ms: cpu_time.map(duration_ms),
            measured_by: Measure::Cgroup,
            peak_memory_scope: peak_memory_bytes.map(|_| MemoryScope::Jail),
        }
    }

    /// From `getrusage(RUSAGE_CHILDREN)`: `ru_maxrss` (converted to bytes) is the largest
    /// single process's peak, not the jail's.
    pub fn rusage(max_rss_bytes: u64, cpu_time: Duration) -> Self {
        Resources {
            peak_memory_bytes: Some(max_rss_bytes),
            cpu_time_ms: Some(duration_ms(cpu_time)),
            measured_by: Measure::Rusage,
            peak_memory_scope: Some(MemoryScope::LargestProcess),
        }
    }

    /// Nothing measured.
    pub fn unmeasured() -> Self {
        Resources {
            peak_memory_bytes: None,
            cpu_time_ms: None,
            measured_by: Measure::None,
            peak_memory_scope: None,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `t` as RFC 3339 in UTC with microseconds: `2025-06-01T12:00:00.123456Z`. Times before
/// 1970 are written as the epoch.
pub fn rfc3339_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(951_782_400_000_001); // 2000-02-29
        assert_eq!(rfc3339_micros(t), "2000-02-29T00:00:00.000001Z");
        let t = UNIX_EPOCH + Duration::new(1_767_225_599, 999_999_999);
        assert_eq!(rfc3339_micros(t), "2025-12-31T23:59:59.999999Z");
    }

    fn json(v: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or_default()
    }

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn registry_source() {
        let digests = SourceDigests {
            manifest: digest('a'),
            bundle: digest('b'),
        };
        let source = Source::registry("acme/hello@1.2", "acme/hello", "1.2.3", digests, "https://r.example");
        assert_eq!(
            json(&source),
            serde_json::json!({
                "kind": "registry",
                "ref": "acme/hello@1.2",
                "digest": digest('b'),
                "package": "acme/hello",
                "version": "1.2.3",
                "digests": {"manifest": digest('a'), "bundle": digest('b')},
                "registry": "https://r.example",
            })
        );
        assert_eq!(json(&Source::local()), serde_json::json!({"kind": "local"}));
    }

    #[test]
    fn package_resolve_shape() {
        let mut resolve = PackageResolve {
            registry: "https://r.example".into(),
            reference: "acme/hello@latest".into(),
            package: "acme/hello".into(),
            version: "1.2.3".into(),
            status: "published".into(),
            certification_level: 2,
            origin: "verified".into(),
            manifest_digest: digest('a'),
            bundle_digest: digest('b'),
            bundle_size: 1234,
            offline: false,
            answer_age_s: None,
        };
        let expected = serde_json::json!({
            "registry": "https://r.example",
            "ref": "acme/hello@latest",
            "package": "acme/hello",
            "version": "1.2.3",
            "status": "published",
            "certification_level": 2,
            "origin": "verified",
            "manifest_digest": digest('a'),
            "bundle_digest": digest('b'),
            "bundle_size": 1234,
            "offline": false,
        });
        assert_eq!(json(&resolve), expected);
        resolve.offline = true;
        resolve.answer_age_s = Some(3600);
        let v = json(&resolve);
        assert_eq!(v["offline"], true);
        assert_eq!(v["answer_age_s"], 3600);
        assert_eq!(EventBody::from(resolve).event_type(), "package.resolve");
    }

    #[test]
    fn package_verify_shape() {
        let mut verify = PackageVerify {
            package: "acme/hello".into(),
            version: "1.2.3".into(),
            artifact: Artifact::Manifest,
            digest: digest('a'),
            size: None,
            cached: true,
            result: VerifyResult::Verified,
            reason: None,
        };
        assert_eq!(
            json(&verify),
            serde_json::json!({
                "package": "acme/hello",
                "version": "1.2.3",
                "artifact": "manifest",
                "digest": digest('a'),
                "cached": true,
                "result": "verified",
            })
        );
        verify.artifact = Artifact::Bundle;
        verify.size = Some(99);
        verify.cached = false;
        verify.result = VerifyResult::Refused;
        verify.reason = Some("digest mismatch".into());
        let v = json(&verify);
        assert_eq!(v["artifact"], "bundle");
        assert_eq!(v["size"], 99);
        assert_eq!(v["cached"], false);
        assert_eq!(v["result"], "refused");
        assert_eq!(v["reason"], "digest mismatch");
        assert_eq!(EventBody::from(verify).event_type(), "package.verify");
    }

    #[test]
    fn policy_decision_shape() {
        let mut decision = PolicyDecision {
            package: "acme/hello".into(),
            version: "1.2.3".into(),
            decision: PolicyVerdict::Allowed,
            reasons: Vec::new(),
            network_granted: Vec::new(),
            environment_granted: Vec::new(),
            notes: Vec::new(),
        };
        assert_eq!(
            json(&decision),
            serde_json::json!({
                "package": "acme/hello",
                "version": "1.2.3",
                "decision": "allowed",
                "reasons": [],
            })
        );
        decision.network_granted = vec!["api.example.com:443".into()];
        decision.environment_granted = vec!["LANG".into()];
        decision.notes = vec!["limits_recommended.memory 1G not applied: --memory 512M is lower".into()];
        let v = json(&decision);
        assert_eq!(v["network_granted"], serde_json::json!(["api.example.com:443"]));
        assert_eq!(v["environment_granted"], serde_json::json!(["LANG"]));
        assert_eq!(v["notes"].as_array().map(Vec::len), Some(1));
        decision.decision = PolicyVerdict::Warned;
        assert_eq!(json(&decision)["decision"], "warned");
        decision.decision = PolicyVerdict::Refused;
        assert_eq!(json(&decision)["decision"], "refused");
        assert_eq!(EventBody::from(decision).event_type(), "policy.decision");
    }

    #[test]
    fn command_line_is_quoted() {
        let p = ProcessInfo::new("python3", &["-c".into(), "print('hi')".into(), "".into()], "/w");
        assert_eq!(p.command_line, r#"python3 -c 'print('\''hi'\'')' ''"#);
        assert_eq!(p.args.len(), 4);
    }
}
