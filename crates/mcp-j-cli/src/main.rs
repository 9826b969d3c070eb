//! `mcp-j`: a secure runtime for untrusted MCP servers.
//!
//! Thin: parses flags, builds a sandbox spec, hands it to the engine, maps the outcome to
//! the exit codes of docs/CLI.md ("Exit status"). Data goes to stdout, messages to stderr.

// Printing data on stdout is this crate's job (the library crates may not).
#![allow(clippy::print_stdout)]

mod audit;
mod audit_glue;
mod config;
mod diagnose;
mod doctor;
mod exposure;
mod output;
mod preflight;
mod pty;
mod run;
mod sandbox_opts;
mod secret;
mod units;

use std::ffi::OsStr;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use mcp_j_engine::{Jail, JailStdio, SandboxError};

use crate::sandbox_opts::SandboxOpts;

/// Exit status when mcp-j itself failed (bad usage, sandbox could not be set up).
const EXIT_MCP_J_FAILED: u8 = 125;
/// Exit status when policy refused to run the program (docs/CLI.md, "Exit status").
const EXIT_POLICY_REFUSED: u8 = 126;

#[derive(Debug, Parser)]
#[command(name = "mcp-j", version, about = "A secure runtime for untrusted MCP servers")]
struct Cli {
    /// Registry URL (hidden until packages land: only `config show` reads it)
    #[arg(long, global = true, value_name = "URL", hide = true)]
    registry: Option<String>,
    /// Cache directory (hidden until packages land: only `config show` reads it)
    #[arg(long = "cache-dir", global = true, value_name = "DIR", hide = true)]
    cache_dir: Option<std::path::PathBuf>,
    /// Config file
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Machine-readable output
    #[arg(long, global = true)]
    json: bool,
    /// More messages on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run any program in the sandbox; stdin/stdout/stderr pass straight through (a terminal
    /// through a pty of mcp-j's own, so the program cannot change the caller's)
    Exec {
        #[command(flatten)]
        sandbox: Box<SandboxOpts>,
        /// The program and its arguments
        #[arg(last = true, required = true, value_name = "PROG [ARGS]...")]
        command: Vec<String>,
    },
    /// Run a stdio MCP server in the sandbox, with a strict JSON-RPC proxy between the
    /// client (our stdin/stdout) and the server
    #[command(after_long_help = RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        sandbox: Box<SandboxOpts>,
        #[command(flatten)]
        proxy: Box<run::ProxyOpts>,
        /// The server and its arguments
        #[arg(last = true, required = true, value_name = "PROG [ARGS]...")]
        command: Vec<String>,
    },
    /// Which isolation features this machine offers, and what `exec` would enforce
    Doctor,
    /// The effective configuration (file, `MCP_J_*` variables, flags) and where each value
    /// came from
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print each value with its source (`default`, `file …`, `env …`, `flag …`); secrets
    /// are masked
    Show,
}

/// `mcp-j run --help`: how to use it as an MCP client's `command`.
const RUN_EXAMPLES: &str = r#"Use it as the `command` of an MCP client. Install the server outside the sandbox
(there is no network inside) and expose it read-only:

  Claude Desktop (claude_desktop_config.json) and Cursor (~/.cursor/mcp.json):
    {"mcpServers": {"time": {"command": "mcp-j", "args": ["run", "--ro", "/home/me/.mcp/time",
        "--", "/home/me/.mcp/time/bin/python", "-m", "mcp_server_time"]}}}

  VS Code (.vscode/mcp.json):
    {"servers": {"time": {"type": "stdio", "command": "mcp-j", "args": ["run", "--ro",
        "/home/me/.mcp/time", "--", "/home/me/.mcp/time/bin/python", "-m", "mcp_server_time"]}}}

Exit status: the server's own; 128+N if signal N killed it; 124 on --timeout; 125 if mcp-j
failed; 126/127 if the server could not be started. When the client closes stdin, the
server's stdin is closed, then after --grace-period it gets SIGTERM, then SIGKILL."#;

fn main() -> ExitCode {
    // The jail helper is this binary re-executed: it must not parse flags or start anything.
    let first = std::env::args_os().nth(1);
    if first.as_deref() == Some(OsStr::new(mcp_j_engine::jail::HELPER_ARG)) {
        mcp_j_engine::jail::helper_main();
    }
    if first.as_deref() == Some(OsStr::new(mcp_j_engine::probe::PROBE_ARG)) {
        mcp_j_engine::probe::probe_main();
    }

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            let argv: Vec<String> = std::env::args().collect();
            if let Some(note) = preflight::usage_note(&e, &argv) {
                eprintln!("{note}");
            }
            return if usage_error {
                ExitCode::from(EXIT_MCP_J_FAILED)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-j: error: {e:#}");
            if matches!(
                e.downcast_ref::<SandboxError>(),
                Some(SandboxError::MemoryLimitRequired { .. })
            ) {
                ExitCode::from(EXIT_POLICY_REFUSED)
            } else {
                ExitCode::from(EXIT_MCP_J_FAILED)
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let flags = config::Flags {
        registry: cli.registry.clone(),
        cache_dir: cli.cache_dir.clone(),
    };
    let loaded = config::Loaded::from_process(cli.config.as_deref(), &flags)?;
    match cli.command {
        Command::Exec { mut sandbox, command } => {
            let command = preflight::strip_extra_separator(&command);
            if let Some((program, args)) = command.split_first() {
                preflight::refuse_network_launcher(program, args)?;
            }
            sandbox.config = loaded.config;
            exec(&sandbox, command, cli.verbose)
        }
        Command::Run {
            mut sandbox,
            proxy,
            command,
        } => {
            let command = preflight::strip_extra_separator(&command);
            if let Some((program, args)) = command.split_first() {
                preflight::refuse_network_launcher(program, args)?;
            }
            sandbox.config = loaded.config;
            run::run(&sandbox, &proxy, command, cli.verbose)
        }
        Command::Doctor => doctor::doctor(cli.json),
        Command::Config {
            command: ConfigCommand::Show,
        } => config::show(&loaded, cli.json).map(|()| ExitCode::SUCCESS),
    }
}

fn exec(opts: &SandboxOpts, command: &[String], verbose: u8) -> Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no program given"))?;
    let mut resolved = opts.resolve(program, args)?;
    let survey = exposure::survey(&mut resolved.spec)?;
    let session = audit::Session::start(&resolved, mcp_j_audit::Command::Exec, None)?;
    // A terminal on fds 0-2 is never handed to the jail: it gets a pty of ours (pty.rs).
    // Dropping `terminal` on any path below puts the host terminal back.
    let mut terminal = pty::Terminal::attach()?;
    if terminal.is_some() && verbose > 0 {
        eprintln!("mcp-j: the terminal on stdio reaches the program through a pty of mcp-j's own");
    }
    let stdio = match &terminal {
        Some(t) => t.jail_stdio()?,
        None => JailStdio::inherit(),
    };
    let result = (|| -> Result<mcp_j_engine::Finished> {
        let mut jail =
            Jail::spawn(&resolved.spec, "/proc/self/exe", stdio, cgroup_parent().as_ref()).map_err(setup_context)?;
        jail.on_denial(diagnose::denial_printer());
        if let Some(t) = &mut terminal
            && let Err(e) = t.start()
        {
            jail.kill();
            let _ = jail.wait(None);
            return Err(e);
        }
        session.ready(&jail.wait_ready(READY_TIMEOUT).map_err(setup_context)?);
        jail.wait(resolved.timeout).map_err(setup_context)
    })();
    // The program's last output reaches the terminal before our own messages.
    if let Some(t) = terminal {
        t.finish();
    }
    exposure::quarantine(&survey);
    let finished = match result {
        Ok(done) => done,
        Err(e) => {
            session.failed(&e);
            return Err(e);
        }
    };
    session.end(&finished);
    let code = run::finish(program, &finished, verbose);
    diagnose::explain_exec_failure(&resolved.spec, &finished);
    code
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
