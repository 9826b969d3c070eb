//! `mcp-j run`: a stdio MCP server in the sandbox, with the strict JSON-RPC proxy between
//! our stdin/stdout and the server's.
//!
//! Threads: the jail is spawned from the main thread (the helper's parent-death signal is
//! tied to the thread that spawned it, and the main thread lives as long as we do); a
//! plain thread blocks in [`Jail::wait`]; the proxy runs on a current-thread tokio runtime
//! on the main thread.
//!
//! Lifecycle: when the client closes stdin, the proxy closes the server's stdin; after
//! `--grace-period` the server gets SIGTERM, after another the whole jail SIGKILL. When the
//! server exits, the proxy answers every pending request with an error, then `mcp-j` exits
//! with the server's status.

use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use mcp_j_engine::{Finished, Jail, JailStdio, JailStream, SandboxError};
use mcp_j_proxy::{EventSink, ProxyConfig, ProxyEvent, ServerRequestPolicy, ToolPolicy};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::install::{InstallOpts, InstallRef, Installed};
use super::package::{FetchOpts, PackageEvents};
use super::run_package::PreparedPackage;
use super::{READY_TIMEOUT, cgroup_parent, finish, setup_context};
use crate::sandbox_opts::{Resolved, SandboxOpts};
use mcp_j_policy::units::{parse_duration, parse_size};

/// `mcp-j run`'s arguments: the sandbox flags, the proxy flags, the server: a registry
/// package or a program.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: Box<SandboxOpts>,
    #[command(flatten)]
    pub proxy: Box<ProxyOpts>,
    #[command(flatten)]
    pub fetch: FetchOpts,
    #[command(flatten)]
    pub install: InstallOpts,
    /// A package to run: `ORG/NAME[@VERSION|@latest|@sha256:DIGEST]` from the registry,
    /// `npm:NAME[@VERSION]`, `pypi:NAME[==VERSION]`, `npm:./FILE.tgz` or `pypi:./FILE.whl`
    /// (then `-- ARGS` are appended to its arguments)
    #[arg(value_name = "REF")]
    pub reference: Option<String>,
    /// Run the npm or PyPI package an MCP registry `server.json` names, with its arguments
    /// and environment
    #[arg(long = "server-json", value_name = "FILE", conflicts_with = "reference")]
    pub server_json: Option<std::path::PathBuf>,
    /// The server and its arguments (or, after REF, more arguments for the package)
    #[arg(last = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
}

/// `mcp-j run --help`: how to use it as an MCP client's `command`.
pub const RUN_EXAMPLES: &str = r#"Use it as the `command` of an MCP client, where `npx -y` or `uvx` would have been. The
package is installed inside the sandbox on first use and run from mcp-j's cache, read-only:

  Claude Desktop (claude_desktop_config.json) and Cursor (~/.cursor/mcp.json):
    {"mcpServers": {"time": {"command": "mcp-j", "args": ["run", "pypi:mcp-server-time==2026.10.19"]}}}

  VS Code (.vscode/mcp.json):
    {"servers": {"everything": {"type": "stdio", "command": "mcp-j", "args": ["run",
        "npm:@modelcontextprotocol/server-everything@2026.8.31", "--", "stdio"]}}}

  A registry package (verified against the registry's digests, read-only at /pkg):
    {"mcpServers": {"hello": {"command": "mcp-j", "args": ["run", "acme/hello@1.0.0"]}}}

  A server you installed yourself: mcp-j run --ro DIR -- DIR/bin/server
  Switch a whole client config over: mcp-j client setup [--dry-run]

Exit status: the server's own; 128+N if signal N killed it; 124 on --timeout; 125 if mcp-j
failed; 126 if policy or integrity refused it; 127 if the server was not found. When the
client closes stdin, the server's stdin is closed, then after --grace-period it gets SIGTERM,
then SIGKILL."#;

/// Proxy options (docs/CLI.md, "mcp-j run: the proxy").
#[derive(Debug, Clone, Args)]
pub struct ProxyOpts {
    /// Largest JSON-RPC message, either direction; longer lines are discarded
    #[arg(long = "max-message-bytes", value_name = "SIZE", value_parser = parse_size, default_value = "5M")]
    pub max_message_bytes: u64,
    /// Only these tools may be called and listed (repeatable)
    #[arg(long = "allow-tool", value_name = "NAME")]
    pub allow_tool: Vec<String>,
    /// This tool may not be called and is never listed (repeatable)
    #[arg(long = "deny-tool", value_name = "NAME")]
    pub deny_tool: Vec<String>,
    /// Let the server send this kind of request to the client: sampling, elicitation,
    /// roots (repeatable; all are refused by default)
    #[arg(long = "allow-server-request", value_name = "KIND", value_parser = ["sampling", "elicitation", "roots"])]
    pub allow_server_request: Vec<String>,
    /// After the client hangs up: how long the server has to exit before SIGTERM, and
    /// again before SIGKILL
    #[arg(long = "grace-period", value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub grace_period: Duration,
    /// Tool pinning: `enforce` hides a tool whose definition changed since it was first
    /// seen (until `mcp-j pins accept`), `warn` only warns, `off` does not pin [default:
    /// the manifest's `pins`, else `policy.pins`, else enforce]
    #[arg(long = "pins", value_name = "MODE", value_parser = ["enforce", "warn", "off"])]
    pub pins: Option<String>,
}

impl ProxyOpts {
    /// The proxy's configuration: flags and the manifest's tool lists together.
    fn config(&self, resolved: &Resolved) -> Result<ProxyConfig> {
        let mut config = ProxyConfig {
            max_message_bytes: usize::try_from(self.max_message_bytes).context("--max-message-bytes is too large")?,
            ..ProxyConfig::default()
        };
        let allow = resolved.allow_tools.iter().chain(&self.allow_tool).cloned().collect();
        let deny = resolved.deny_tools.iter().chain(&self.deny_tool).cloned().collect();
        config.tools = ToolPolicy { allow, deny };
        let kinds: Vec<&str> = resolved
            .allow_server_requests
            .iter()
            .chain(&self.allow_server_request)
            .map(String::as_str)
            .collect();
        for kind in &kinds {
            if !["sampling", "elicitation", "roots"].contains(kind) {
                anyhow::bail!("unknown server request kind `{kind}` (use sampling, elicitation or roots)");
            }
        }
        config.server_requests = ServerRequestPolicy {
            sampling: kinds.contains(&"sampling"),
            elicitation: kinds.contains(&"elicitation"),
            roots: kinds.contains(&"roots"),
        };
        Ok(config)
    }
}

/// Proxy decisions on stderr with `-vv` (the audit log is the durable record).
struct StderrEvents {
    show: bool,
}

impl EventSink for StderrEvents {
    fn event(&self, event: &ProxyEvent) {
        if self.show
            && let Ok(line) = serde_json::to_string(event)
        {
            eprintln!("mcp-j: {line}");
        }
    }
}

/// Our stdin, telling `eof` when the client hangs up.
struct NotifyOnEof<R> {
    inner: R,
    eof: Option<oneshot::Sender<()>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for NotifyOnEof<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll
            && buf.filled().len() == before
            && buf.remaining() > 0
            && let Some(eof) = self.eof.take()
        {
            let _ = eof.send(());
        }
        poll
    }
}

/// The server's stdin, telling `closed` when the proxy shuts it down or lets it go. After
/// the client hangs up the proxy closes it once what is queued for the server is written —
/// later than the hang-up when a call is held for the proxy's own tool listing — and the
/// grace period starts then (INTERFACE: the server's stdin is closed, then the grace period).
struct NotifyOnClose<W> {
    inner: W,
    closed: Option<oneshot::Sender<()>>,
}

impl<W> NotifyOnClose<W> {
    fn notify(&mut self) {
        if let Some(closed) = self.closed.take() {
            let _ = closed.send(());
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for NotifyOnClose<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        if poll.is_ready() {
            self.notify();
        }
        poll
    }
}

impl<W> Drop for NotifyOnClose<W> {
    fn drop(&mut self) {
        self.notify();
    }
}

/// What our stdin or stdout is.
enum StdioKind {
    Pipe,
    Socket,
    Other,
}

fn stdio_kind(fd: std::os::fd::BorrowedFd<'_>) -> StdioKind {
    use std::os::unix::fs::FileTypeExt;
    let Ok(owned) = fd.try_clone_to_owned() else {
        return StdioKind::Other;
    };
    match std::fs::File::from(owned).metadata().map(|m| m.file_type()) {
        Ok(t) if t.is_fifo() => StdioKind::Pipe,
        Ok(t) if t.is_socket() => StdioKind::Socket,
        _ => StdioKind::Other,
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// Our stdin for the proxy. MCP clients hand us a pipe or a socket (libuv-based clients
/// use socketpairs): those are registered with epoll, so a message costs a syscall or two.
/// Anything else (a terminal, a file) goes through tokio's blocking stdin, which hands
/// every read to another thread.
fn client_reader() -> std::io::Result<Reader> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    Ok(match stdio_kind(fd) {
        StdioKind::Pipe => Box::new(tokio::net::unix::pipe::Receiver::from_owned_fd(
            fd.try_clone_to_owned()?,
        )?),
        StdioKind::Socket => Box::new(registered_socket(fd)?),
        StdioKind::Other => Box::new(tokio::io::stdin()),
    })
}

/// A unix socket on our stdio, registered with the runtime (non-blocking, like pipes).
fn registered_socket(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<tokio::net::UnixStream> {
    let socket = std::os::unix::net::UnixStream::from(fd.try_clone_to_owned()?);
    socket.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(socket)
}

/// Our stdout for the proxy; as [`client_reader`].
fn client_writer() -> std::io::Result<Writer> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    Ok(match stdio_kind(fd) {
        StdioKind::Pipe => Box::new(tokio::net::unix::pipe::Sender::from_owned_fd(fd.try_clone_to_owned()?)?),
        StdioKind::Socket => Box::new(registered_socket(fd)?),
        StdioKind::Other => Box::new(tokio::io::stdout()),
    })
}

/// `mcp-j run`: a registry package, or `args.command` (after refusing a downloading
/// launcher), served under the effective configuration `config`.
pub fn run(mut args: RunArgs, config: crate::config::Config, verbose: u8) -> Result<ExitCode> {
    args.sandbox.config = config;
    if let Some(path) = args.server_json.clone() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let server = crate::server_json::parse(&text, |name| std::env::var_os(name).is_some())
            .with_context(|| format!("--server-json `{}`", path.display()))?;
        for note in &server.notes {
            eprintln!("mcp-j: --server-json: {note}");
        }
        eprintln!("mcp-j: --server-json: running {}", server.reference);
        args.sandbox.env.extend(server.env);
        args.sandbox.secret.extend(server.secrets);
        args.command = server.args.into_iter().chain(args.command).collect();
        args.reference = Some(server.reference);
    }
    if let Some(reference) = args.reference.clone() {
        use mcp_j_policy::reference::PackageRef;
        return match mcp_j_policy::reference::parse(&reference) {
            Ok(PackageRef::Npm(r)) => run_installed(&args, InstallRef::npm(&reference, r)?, verbose),
            Ok(PackageRef::Pypi(r)) => run_installed(&args, InstallRef::pypi(&reference, r)?, verbose),
            _ => run_package(&args, &reference, verbose),
        };
    }
    let command = crate::preflight::strip_extra_separator(&args.command);
    let Some((program, program_args)) = command.split_first() else {
        anyhow::bail!(
            "nothing to run: give a package (`mcp-j run ORG/NAME[@VERSION]`) or a program after `--` \
             (`mcp-j run [OPTIONS] -- PROG [ARGS]...`)"
        );
    };
    crate::preflight::refuse_network_launcher(program, program_args)?;
    run_in_sandbox(
        &args.sandbox,
        &args.proxy,
        command,
        Origin::Local,
        &mut PackageEvents::default(),
        verbose,
    )
}

/// Where the server came from, for the sandbox options and `session.start`'s `source`.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// `run -- PROG`.
    Local,
    /// `run ORG/NAME@VERSION`.
    Registry(&'a PreparedPackage),
    /// `run npm:…` / `pypi:…`.
    Installed(&'a Installed, &'a InstallRef),
}

/// `mcp-j run npm:… / pypi:… [-- ARGS]`: installed in the sandbox when it is not yet
/// ([`super::install`]), then served from the cache with the install read-only.
fn run_installed(args: &RunArgs, reference: InstallRef, verbose: u8) -> Result<ExitCode> {
    let config = &args.sandbox.config;
    let audit_log = args.sandbox.audit_log.clone().or_else(|| config.audit_log.clone());
    super::package::refusals_exit(|| {
        let mut opts = (*args.sandbox).clone();
        // The registry credential is the installer's, not the server's.
        let registry_secret = super::install::take_registry_secret(reference.ecosystem, &mut opts)?;
        let installed = super::install::ensure_installed(
            &reference,
            &args.install,
            config,
            audit_log.as_deref(),
            Default::default(),
            registry_secret.as_ref(),
        )?;
        opts.ro.push(installed.tree.clone());
        opts.state_id = Some(format!("{}:{}", reference.ecosystem.as_str(), installed.record.name));
        let command: Vec<String> = std::iter::once(installed.program.clone())
            .chain(installed.args.iter().cloned())
            .chain(args.command.iter().cloned())
            .collect();
        let origin = Origin::Installed(&installed, &reference);
        run_in_sandbox(
            &opts,
            &args.proxy,
            &command,
            origin,
            &mut PackageEvents::default(),
            verbose,
        )
    })
}

/// `mcp-j run REF [-- ARGS]`: the package prepared ([`super::run_package`]), then served
/// like a program, its request narrowed by local policy. A refusal (integrity, status,
/// certification, policy) exits 126, its audit events written all the same.
fn run_package(args: &RunArgs, reference: &str, verbose: u8) -> Result<ExitCode> {
    let mut events = PackageEvents::default();
    let result = super::run_package::prepare(reference, &args.command, &args.sandbox.config, &args.fetch, &mut events)
        .and_then(|prepared| {
            let command: Vec<String> = std::iter::once(prepared.program.clone())
                .chain(prepared.args.iter().cloned())
                .collect();
            run_in_sandbox(
                &args.sandbox,
                &args.proxy,
                &command,
                Origin::Registry(&prepared),
                &mut events,
                verbose,
            )
        });
    let pending = events.take();
    if !pending.is_empty() {
        // The run did not get as far as its session: the package's story is told alone.
        let path = args
            .sandbox
            .audit_log
            .as_ref()
            .or(args.sandbox.config.audit_log.as_ref());
        crate::audit::record_alone(path, pending);
    }
    super::package::refusals_exit(|| result)
}

fn run_in_sandbox(
    opts: &SandboxOpts,
    proxy_opts: &ProxyOpts,
    command: &[String],
    origin: Origin<'_>,
    events: &mut PackageEvents,
    verbose: u8,
) -> Result<ExitCode> {
    let (program, args) = command.split_first().context("no program given")?;
    let mut resolved = match origin {
        Origin::Local | Origin::Installed(..) => opts.resolve(program, args)?,
        Origin::Registry(package) => resolve_package(opts, program, args, package, events)?,
    };
    let survey = crate::exposure::survey(&mut resolved.spec)?;
    crate::preflight::warn_unpassed_env(crate::preflight::host_env(), &resolved.spec.env);
    let config = proxy_opts.config(&resolved)?;
    let policy = mcp_j_audit::McpPolicy {
        allowed_tools: (!config.tools.allow.is_empty()).then(|| config.tools.allow.iter().cloned().collect()),
        denied_tools: config.tools.deny.iter().cloned().collect(),
        server_requests: describe_server_requests(&config.server_requests),
        max_message_bytes: Some(config.max_message_bytes as u64),
    };
    let source = match origin {
        Origin::Local => None,
        Origin::Registry(p) => Some(mcp_j_audit::Source::registry(
            p.reference.clone(),
            p.answer.package.clone(),
            p.answer.resolved.version.clone(),
            mcp_j_audit::SourceDigests {
                manifest: p.answer.resolved.manifest.digest.as_str().to_owned(),
                bundle: p.answer.resolved.bundle.digest.as_str().to_owned(),
            },
            p.registry.clone(),
        )),
        Origin::Installed(installed, reference) => {
            let record = &installed.record;
            Some(mcp_j_audit::Source::installed(
                match record.ecosystem {
                    mcp_j_package::install::Ecosystem::Npm => mcp_j_audit::SourceKind::Npm,
                    mcp_j_package::install::Ecosystem::Pypi => mcp_j_audit::SourceKind::Pypi,
                },
                reference.text.clone(),
                record.name.clone(),
                record.version.clone(),
                record.tree_digest.as_str(),
                record.lock_digest.as_str(),
                record.source.clone(),
            ))
        }
    };
    let session = crate::audit::Session::start(
        &resolved,
        mcp_j_audit::Command::Run,
        Some(policy),
        source,
        events.take(),
    )?;
    let pins = match pin_store(proxy_opts, &resolved, program, args, origin, &session) {
        Ok(pins) => pins,
        Err(e) => {
            session.failed(&e);
            return Err(e);
        }
    };
    let parent = cgroup_parent();
    super::node_options_for_rlimits(&mut resolved.spec, parent.as_ref());
    let served = serve(
        &resolved,
        parent,
        &config,
        proxy_opts.grace_period,
        verbose,
        &session,
        pins.as_ref(),
    );
    crate::exposure::quarantine(&survey);
    match served {
        Ok(finished) => {
            session.end(&finished);
            let code = finish(program, &finished, verbose);
            crate::diagnose::explain_exec_failure(&resolved.spec, &finished);
            code
        }
        Err(e) => {
            session.failed(&e);
            Err(e)
        }
    }
}

/// The session's tool pins (`--pins`, else the manifest's `pins`, else `policy.pins`):
/// `None` under `off`.
fn pin_store(
    proxy_opts: &ProxyOpts,
    resolved: &Resolved,
    program: &str,
    args: &[String],
    origin: Origin<'_>,
    session: &crate::audit::Session,
) -> Result<Option<crate::pins::PinStore>> {
    use mcp_j_policy::PinMode;
    use mcp_j_policy::pins::{SeenWith, ServerIdentity};
    let mode = match &proxy_opts.pins {
        Some(text) => text.parse::<PinMode>().map_err(anyhow::Error::msg)?,
        None => resolved.pins,
    };
    if mode == PinMode::Off {
        return Ok(None);
    }
    let (identity, seen_with) = match origin {
        Origin::Local => (
            crate::pins::program_identity(program, args, &session.redactor),
            crate::pins::program_digest(program).map(|digest| SeenWith::ProgramDigest { digest }),
        ),
        Origin::Registry(p) => (
            ServerIdentity::Package {
                name: p.answer.package.clone(),
            },
            Some(SeenWith::PackageVersion {
                version: p.answer.resolved.version.clone(),
            }),
        ),
        Origin::Installed(installed, _) => {
            let record = &installed.record;
            let name = record.name.clone();
            let identity = match record.ecosystem {
                mcp_j_package::install::Ecosystem::Npm => ServerIdentity::Npm { name },
                mcp_j_package::install::Ecosystem::Pypi => ServerIdentity::Pypi { name },
            };
            let seen_with = SeenWith::PackageVersion {
                version: record.version.clone(),
            };
            (identity, Some(seen_with))
        }
    };
    let dir = crate::pins::PinDir::from_env()?;
    let store = crate::pins::PinStore::open(dir, identity, mode, seen_with, session.log.clone())?;
    Ok(Some(store))
}

/// The sandbox options for a package: its request narrowed by local policy, what was not
/// granted as asked said once on stderr, and the `policy.decision` recorded.
fn resolve_package(
    opts: &SandboxOpts,
    program: &str,
    args: &[String],
    package: &PreparedPackage,
    events: &mut PackageEvents,
) -> Result<Resolved> {
    use mcp_j_audit::PolicyVerdict;
    use mcp_j_policy::certification::Decision;
    let answer = &package.answer;
    let dir = package.dir();
    let request = crate::sandbox_opts::PackageRequest {
        id: &answer.package,
        name: format!("{}@{}", answer.package, answer.resolved.version),
        dir: &dir,
        permissions: &package.manifest.permissions_requested,
        recommended: &package.manifest.limits_recommended,
    };
    let resolved = match opts.resolve_with(program, args, Some(request)) {
        Ok(resolved) => resolved,
        Err(e) => {
            if let Some(refused) = e.downcast_ref::<crate::sandbox_opts::PackageRefused>() {
                let event = super::run_package::policy_event(answer, PolicyVerdict::Refused, vec![refused.0.clone()]);
                events.push(event);
            }
            return Err(e);
        }
    };
    let mut event = match &package.verdict {
        Decision::Warned(reasons) => super::run_package::policy_event(
            answer,
            PolicyVerdict::Warned,
            reasons.iter().map(|r| r.message.clone()).collect(),
        ),
        _ => super::run_package::policy_event(answer, PolicyVerdict::Allowed, Vec::new()),
    };
    if let Some(grant) = &resolved.grant {
        for note in &grant.notes {
            eprintln!("mcp-j: {note}");
        }
        event.network_granted = grant.network.iter().map(ToString::to_string).collect();
        event.environment_granted = grant.environment.clone();
        event.notes = grant.notes.clone();
    }
    events.push(event);
    Ok(resolved)
}

fn describe_server_requests(policy: &ServerRequestPolicy) -> String {
    let allowed: Vec<&str> = [
        (policy.sampling, "sampling"),
        (policy.elicitation, "elicitation"),
        (policy.roots, "roots"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if allowed.is_empty() {
        "deny all (sampling, elicitation, roots)".to_string()
    } else {
        format!("allow {}; deny the rest", allowed.join(", "))
    }
}

/// Proxy decisions go to the audit log, and to stderr with `-vv`.
struct Events<'a> {
    audit: &'a mcp_j_audit::AuditLog,
    stderr: StderrEvents,
}

impl EventSink for Events<'_> {
    fn event(&self, event: &ProxyEvent) {
        if self.audit.is_enabled() {
            self.audit.proxy_decision(crate::audit_glue::proxy_decision(event));
        }
        self.stderr.event(event);
    }
}

/// The jail and the proxy, from spawn to the end of both.
fn serve(
    resolved: &Resolved,
    parent: Option<mcp_j_engine::cgroup::CgroupParent>,
    config: &ProxyConfig,
    grace: Duration,
    verbose: u8,
    session: &crate::audit::Session,
    pins: Option<&crate::pins::PinStore>,
) -> Result<Finished> {
    let stdio = JailStdio {
        stdin: JailStream::Piped,
        stdout: JailStream::Piped,
        stderr: JailStream::Piped,
    };
    let mut jail = Jail::spawn(&resolved.spec, stdio, parent.as_ref()).map_err(setup_context)?;
    jail.on_denial(crate::diagnose::denial_printer());
    session.ready(&jail.wait_ready(READY_TIMEOUT).map_err(setup_context)?);
    // Served until this function returns, after the jail has ended.
    let _egress = crate::egress::serve_jail(&mut jail, resolved, session)?;
    let control = jail.control();
    let (server_in, server_out, server_err) = jail.take_stdio();
    let (server_in, server_out, server_err) = match (server_in, server_out, server_err) {
        (Some(i), Some(o), Some(e)) => (i, o, e),
        _ => anyhow::bail!("the sandbox's standard streams are missing"),
    };

    // The jail's end, awaited on a plain thread (Jail::wait blocks).
    let (jail_tx, jail_rx) = oneshot::channel();
    let timeout = resolved.timeout;
    std::thread::Builder::new()
        .name("jail-wait".into())
        .spawn(move || {
            let _ = jail_tx.send(jail.wait(timeout));
        })
        .context("cannot start the waiting thread")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let events = Events {
        audit: &session.log,
        stderr: StderrEvents { show: verbose >= 2 },
    };
    let redactor = session.redactor.clone();
    let ended = runtime.block_on(async move {
        let server_in = tokio::process::ChildStdin::from_std(server_in)?;
        let server_out = tokio::process::ChildStdout::from_std(server_out)?;
        let server_err = tokio::process::ChildStderr::from_std(server_err)?;
        let (eof_tx, eof_rx) = oneshot::channel();
        let client_in = NotifyOnEof {
            inner: client_reader()?,
            eof: Some(eof_tx),
        };
        let (closed_tx, closed_rx) = oneshot::channel();
        let server_in = NotifyOnClose {
            inner: server_in,
            closed: Some(closed_tx),
        };
        let pins = pins.map(|p| p as &dyn mcp_j_proxy::ToolPins);
        let proxy = mcp_j_proxy::run_proxy_with_pins(
            config,
            client_in,
            client_writer()?,
            server_in,
            server_out,
            server_err,
            // Server stderr and our own log lines: secrets and credentials redacted.
            mcp_j_audit::RedactingWriter::new(tokio::io::stderr(), redactor),
            &events,
            pins,
        );
        tokio::pin!(proxy);
        let mut jail_rx = jail_rx;
        let mut eof_rx = eof_rx;
        let mut closed_rx = closed_rx;
        // The grace period starts when the client has hung up *and* the proxy has closed
        // the server's stdin (a server that merely stops reading is not escalated while
        // the client is there).
        let (mut client_gone, mut stdin_closed) = (false, false);
        let mut proxy_result = None;
        let mut jail_result = None;
        let mut escalation: Option<tokio::task::JoinHandle<()>> = None;
        let escalate = |control: mcp_j_engine::supervisor::JailControl| {
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = control.signal(libc::SIGTERM);
                tokio::time::sleep(grace).await;
                control.kill();
            })
        };
        while proxy_result.is_none() || jail_result.is_none() {
            tokio::select! {
                r = &mut proxy, if proxy_result.is_none() => {
                    proxy_result = Some(r);
                    // The server closed its stdout: give it the grace period to exit too.
                    if jail_result.is_none() && escalation.is_none() {
                        escalation = Some(escalate(control.clone()));
                    }
                }
                r = &mut jail_rx, if jail_result.is_none() => {
                    jail_result = Some(r.unwrap_or_else(|_| Err(SandboxError::Lost("waiting thread ended".into()))));
                }
                // Each fires once (an error: its end was dropped with the proxy, which has
                // ended and started the escalation itself).
                _ = &mut eof_rx, if !client_gone => {
                    client_gone = true;
                    if stdin_closed && escalation.is_none() {
                        escalation = Some(escalate(control.clone()));
                    }
                }
                _ = &mut closed_rx, if !stdin_closed => {
                    stdin_closed = true;
                    if client_gone && escalation.is_none() {
                        escalation = Some(escalate(control.clone()));
                    }
                }
            }
        }
        if let Some(task) = escalation {
            task.abort();
        }
        Ok::<_, std::io::Error>((proxy_result, jail_result))
    });
    // stdin is read on a blocking thread that cannot be interrupted: don't wait for it.
    runtime.shutdown_background();

    let (proxy_result, jail_result) = ended.context("the proxy failed")?;
    if let Some(Err(e)) = proxy_result {
        eprintln!("mcp-j: proxy error: {e}");
    }
    match jail_result {
        Some(Ok(done)) => Ok(done),
        Some(Err(e)) => Err(setup_context(e)),
        None => anyhow::bail!("the sandbox ended without a status"),
    }
}
