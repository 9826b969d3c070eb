//! One module per subcommand: its clap arguments (where it has its own) and its body.
//! `main.rs` parses the top-level flags, loads the configuration and dispatches here.
//!
//! What `exec`, `run` and `doctor` share to start a jail and report its end lives here too.

pub mod config_show;
pub mod doctor;
pub mod exec;
pub mod install;
pub mod install_lock;
pub mod install_net;
pub mod login;
pub mod package;
pub mod pins;
pub mod registry;
pub mod run;
pub mod run_package;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use mcp_j_engine::{Finished, Outcome, SandboxError};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run any program in the sandbox; stdin/stdout/stderr pass straight through (a terminal
    /// through a pty of mcp-j's own, so the program cannot change the caller's)
    Exec(exec::ExecArgs),
    /// Run a stdio MCP server in the sandbox, with a strict JSON-RPC proxy between the
    /// client (our stdin/stdout) and the server
    #[command(after_long_help = run::RUN_EXAMPLES)]
    Run(run::RunArgs),
    /// Which isolation features this machine offers, and what `exec` would enforce
    Doctor,
    /// The effective configuration (file, `MCP_J_*` variables, flags) and where each value
    /// came from
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Store a token for the registry (`--registry URL` or `registry_url`): given with
    /// `--token`, or from a user name and password (`POST /v1/auth/login`)
    Login(login::LoginArgs),
    /// Forget the registry's stored token
    Logout,
    /// Fetch a registry package into the cache, verifying every byte against the digests
    /// the registry resolved; or install an npm/PyPI package into the cache, in the sandbox
    Pull(package::PullArgs),
    /// What a registry package is, asks for and recommends (`--json`: one object)
    Info(package::RefArgs),
    /// The content-addressed cache
    Cache {
        #[command(subcommand)]
        command: package::CacheCommand,
    },
    /// Publish the package in DIR (DIR/manifest.json names it) to the registry
    Push(registry::PushArgs),
    /// The self-hostable registry: serve it, mint tokens, add users
    Registry {
        #[command(subcommand)]
        command: registry::RegistryCommand,
    },
    /// MCP clients: switch a client's config over to mcp-j (`client setup`)
    Client {
        #[command(subcommand)]
        command: crate::client_setup::ClientCommand,
    },
    /// Tool pins: what each server's tools looked like when first seen (`run` hides a tool
    /// whose definition changed until `pins accept`)
    Pins {
        #[command(subcommand)]
        command: pins::PinsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print each value with its source (`default`, `file …`, `env …`, `flag …`); secrets
    /// are masked
    Show,
}

/// How long setup may take before `sandbox.ready` is recorded with what is known so far.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A sandbox error as the user should read it.
pub fn setup_context(e: SandboxError) -> anyhow::Error {
    match e {
        e @ SandboxError::Setup { .. } => anyhow::Error::new(e)
            .context("the sandbox could not be set up; `mcp-j doctor` tells what this machine offers"),
        e => e.into(),
    }
}

/// Where jail cgroups are made: a delegated cgroup v2 parent (`MCP_J_CGROUP_PARENT`, or
/// found from our own cgroup), else for root the cgroup v1 hierarchies. `None` (rlimits
/// and namespace limits only) when there is none.
pub fn cgroup_parent() -> Option<mcp_j_engine::cgroup::CgroupParent> {
    let configured = std::env::var_os("MCP_J_CGROUP_PARENT").map(std::path::PathBuf::from);
    mcp_j_engine::cgroup::detect_any(configured.as_deref()).ok()
}

/// Without a cgroup, memory is bounded per process by rlimits, `RLIMIT_AS` among them
/// (`mcp_j_engine::limits`). V8 reserves about 10 GiB of address space for each
/// WebAssembly memory (guard regions that stand in for bounds checks), which no such limit
/// leaves room for: Node's own `fetch` (undici's HTTP parser is WebAssembly) then dies
/// with "Cannot allocate Wasm memory". `--disable-wasm-trap-handler` makes V8 check bounds
/// instead (Node ≥ 20.15); added to `NODE_OPTIONS` (after the user's own) only then, and
/// only with an allowlist (without network `fetch` has nothing to reach, and the
/// environment stays the documented minimal one).
pub fn node_options_for_rlimits(
    spec: &mut mcp_j_engine::SandboxSpec,
    cgroup: Option<&mcp_j_engine::cgroup::CgroupParent>,
) {
    const FLAG: &str = "--disable-wasm-trap-handler";
    if cgroup.is_some() || spec.egress.is_none() {
        return;
    }
    match spec.env.iter_mut().find(|(k, _)| k == "NODE_OPTIONS") {
        Some((_, value)) if value.split_whitespace().any(|o| o == FLAG) => {}
        Some((_, value)) => {
            value.push(' ');
            value.push_str(FLAG);
        }
        None => spec.env.push(("NODE_OPTIONS".to_owned(), FLAG.to_owned())),
    }
}

/// Report the end of a sandboxed run and turn it into our exit status.
pub fn finish(program: &str, finished: &Finished, verbose: u8) -> Result<ExitCode> {
    let outcome = finished.outcome;
    if verbose > 0 {
        for layer in &finished.report.layers {
            let status = format!("{:?}", layer.status).to_lowercase();
            eprintln!("mcp-j: {:<14} {:<9} {}", layer.name, status, layer.means);
        }
        eprintln!(
            "mcp-j: per process only: {}",
            finished.report.per_process_only().join(", ")
        );
    }
    match outcome {
        Outcome::TimedOut => eprintln!("mcp-j: timed out; the sandbox was killed"),
        Outcome::Signaled(libc::SIGKILL) if finished.memory_limit_hit => eprintln!(
            "mcp-j: the sandbox reached its memory limit of {} and was killed (raise it with --memory)",
            crate::config::format_size(finished.limits.memory_bytes)
        ),
        Outcome::Signaled(libc::SIGXFSZ) => eprintln!(
            "mcp-j: `{program}` was killed by SIGXFSZ: it wrote past the file size limit of {} \
             (raise it with --max-file-size)",
            crate::config::format_size(finished.limits.max_file_size_bytes)
        ),
        Outcome::ExecFailed(errno) => eprintln!(
            "mcp-j: cannot run `{program}` in the sandbox: {}",
            std::io::Error::from_raw_os_error(errno)
        ),
        _ => {}
    }
    Ok(ExitCode::from(u8::try_from(outcome.exit_code()).unwrap_or(125)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(env: &[(&str, &str)]) -> mcp_j_engine::SandboxSpec {
        let opts = crate::sandbox_opts::SandboxOpts {
            allow_net: vec!["api.example.com".into()],
            ..Default::default()
        };
        let mut spec = opts.resolve("/bin/true", &[]).unwrap().spec;
        spec.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        spec
    }

    fn node_options(spec: &mcp_j_engine::SandboxSpec) -> Option<&str> {
        spec.env
            .iter()
            .find(|(k, _)| k == "NODE_OPTIONS")
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn node_gets_bounds_checked_wasm_only_under_rlimits() {
        let mut spec = spec_with(&[]);
        node_options_for_rlimits(&mut spec, None);
        assert_eq!(node_options(&spec), Some("--disable-wasm-trap-handler"));
        // The user's own options stay, first; the flag is not added twice.
        let mut spec = spec_with(&[("NODE_OPTIONS", "--max-old-space-size=256")]);
        node_options_for_rlimits(&mut spec, None);
        node_options_for_rlimits(&mut spec, None);
        assert_eq!(
            node_options(&spec),
            Some("--max-old-space-size=256 --disable-wasm-trap-handler")
        );
        // Without an allowlist the environment stays the minimal one.
        let mut spec = spec_with(&[]);
        spec.egress = None;
        node_options_for_rlimits(&mut spec, None);
        assert_eq!(node_options(&spec), None);
    }
}
