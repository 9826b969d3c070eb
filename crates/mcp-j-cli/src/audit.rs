//! One sandboxed session's story, told to the audit log: `session.start` before the jail is
//! set up (so a run whose setup fails is on record), `sandbox.ready` with the sandbox
//! report, a `proxy.decision` per proxy decision (`run`), `sandbox.denial` per denial the
//! jail observed, `session.end` with the outcome and what the jail used. Everything we
//! write goes through the redactor built from the session's secrets.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use mcp_j_audit::{
    Access, AuditLog, Command, EventBody, ExposedPath, Limits, McpPolicy, Redactor, SessionEnd, SessionStart, Source,
};
use mcp_j_engine::{Finished, SandboxReport, Workdir};

use crate::sandbox_opts::Resolved;

pub struct Session {
    pub log: Arc<AuditLog>,
    pub redactor: Arc<Redactor>,
    started: Instant,
    /// A CPU quota was asked for: say so if the sandbox cannot enforce one.
    cpu_requested: bool,
}

impl Session {
    /// Open the audit log (if one is configured), record the events that led to the run
    /// (`before`: a package's resolve, verify and policy decision) and `session.start`,
    /// whose `source` is `source` (a registry package) or the local program.
    pub fn start(
        resolved: &Resolved,
        command: Command,
        policy: Option<McpPolicy>,
        source: Option<Source>,
        before: Vec<(SystemTime, EventBody)>,
    ) -> Result<Session> {
        let redactor = Arc::new(Redactor::new(
            resolved.secrets.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        ));
        for name in redactor.skipped() {
            eprintln!("mcp-j: warning: secret `{name}` is too short to be redacted reliably from logs");
        }
        let log = match &resolved.audit_log {
            Some(path) => AuditLog::open(path, redactor.clone())
                .with_context(|| format!("cannot open the audit log `{}`", path.display()))?,
            None => AuditLog::null(),
        };
        let spec = &resolved.spec;
        let workdir = match &spec.workdir {
            Workdir::Host(dir) => dir.path.display().to_string(),
            Workdir::Private => "/tmp (private)".to_string(),
            Workdir::Package => format!("{} (the package, read-only)", mcp_j_engine::spec::PACKAGE_DIR),
        };
        let mut start = SessionStart::new(command, &spec.program, &spec.args, &workdir);
        let host_workdir = match &spec.workdir {
            Workdir::Host(dir) => Some(dir),
            Workdir::Private | Workdir::Package => None,
        };
        start.exposed_paths = host_workdir
            .into_iter()
            .map(|p| (p, Access::Rw))
            .chain(spec.ro_paths.iter().map(|p| (p, Access::Ro)))
            .chain(spec.rw_paths.iter().map(|p| (p, Access::Rw)))
            .chain(spec.package.iter().map(|p| (p, Access::Ro)))
            .map(|(p, access)| ExposedPath {
                path: p.path.display().to_string(),
                access,
                system_path: access == Access::Rw && resolved.system_paths.contains(&p.path),
            })
            .collect();
        let secret_names: Vec<&str> = resolved.secrets.iter().map(|(n, _)| n.as_str()).collect();
        start.env_names = spec
            .env
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !secret_names.contains(&k.as_str()))
            .collect();
        start.secret_names = secret_names.iter().map(|n| n.to_string()).collect();
        start.limits = Limits {
            memory_bytes: Some(spec.limits.memory_bytes),
            pids: Some(spec.limits.pids),
            fds: Some(spec.limits.fds),
            cpu_millicores: Some(spec.limits.cpu_millicores),
            timeout_ms: resolved.timeout.map(|t| t.as_millis() as u64),
            max_file_size_bytes: Some(spec.limits.max_file_size_bytes),
            no_subprocess: spec.no_subprocess,
        };
        start.policy = policy;
        if let Some(source) = source {
            start.source = source;
        }
        for (at, body) in before {
            if let Err(e) = log.record_at(body, at) {
                eprintln!("mcp-j: cannot write the audit log: {e}");
            }
        }
        // An audit log that cannot be written is reported, not fatal to the server: the
        // failure count is in `session.end`'s absence, and on stderr.
        if let Err(e) = log.session_start(start) {
            eprintln!("mcp-j: cannot write the audit log: {e}");
        }
        Ok(Session {
            log: Arc::new(log),
            redactor,
            started: Instant::now(),
            cpu_requested: resolved.cpu_requested,
        })
    }

    /// `sandbox.ready`; and, once, a warning when a CPU quota was asked for but nothing
    /// here can enforce one (no cgroup with a cpu controller).
    pub fn ready(&self, report: &SandboxReport) {
        let cpu_absent = report
            .layers
            .iter()
            .any(|l| l.name == "cpu" && l.status == mcp_j_engine::LayerStatus::Absent);
        if self.cpu_requested && cpu_absent {
            eprintln!(
                "mcp-j: warning: --cpu is not enforced here (no cgroup with a cpu controller: needs a delegated \
                 cgroup v2, or root with cgroup v1); `mcp-j doctor` says what this machine offers"
            );
        }
        if let Err(e) = self.log.sandbox_ready(&crate::audit_glue::sandbox_layers(report), None) {
            eprintln!("mcp-j: cannot write the audit log: {e}");
        }
    }

    /// `sandbox.denial` for each denial, then `session.end`.
    pub fn end(&self, finished: &Finished) {
        for denial in &finished.denials {
            let _ = self.log.record_at(crate::audit_glue::sandbox_denial(denial), denial.at);
        }
        let end = crate::audit_glue::session_end(finished.outcome, &finished.usage, self.started.elapsed());
        if let Err(e) = self.log.session_end(end) {
            eprintln!("mcp-j: cannot write the audit log: {e}");
        }
    }

    /// `session.end` for a session that failed before the program ran.
    pub fn failed(&self, error: &anyhow::Error) {
        let text = self.redactor.redact(&format!("{error:#}")).into_owned();
        let _ = self.log.session_end(SessionEnd::failed(text, self.started.elapsed()));
    }
}

/// Events of a run that ended before its session started (a refused package): written to
/// the audit log at `path`, if one is configured, under a session id of their own.
pub fn record_alone(path: Option<&std::path::PathBuf>, events: Vec<(SystemTime, EventBody)>) {
    let Some(path) = path else { return };
    let written = AuditLog::open(path, Arc::new(Redactor::new(std::iter::empty::<(String, String)>())))
        .and_then(|log| events.into_iter().try_for_each(|(at, body)| log.record_at(body, at)));
    if let Err(e) = written {
        eprintln!("mcp-j: cannot write the audit log `{}`: {e}", path.display());
    }
}
