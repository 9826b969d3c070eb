//! `mcp-j`: a secure runtime for untrusted MCP servers.
//!
//! Thin: parses the global flags, loads the configuration, dispatches to the subcommand's
//! module under `commands/`, and maps mcp-j's own failures to the exit codes of docs/CLI.md
//! ("Exit status"). Data goes to stdout, messages to stderr.

// Printing data on stdout is this crate's job (the library crates may not).
#![allow(clippy::print_stdout)]

mod audit;
mod audit_glue;
mod client_setup;
mod commands;
mod config;
mod diagnose;
mod egress;
mod exposure;
mod output;
mod pins;
mod preflight;
mod pty;
mod sandbox_opts;
mod secret;
mod server_json;

use std::ffi::OsStr;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use mcp_j_engine::SandboxError;

use crate::commands::{Command, ConfigCommand};

/// Exit status when mcp-j itself failed (bad usage, sandbox could not be set up).
const EXIT_MCP_J_FAILED: u8 = 125;
/// Exit status when policy refused to run the program (docs/CLI.md, "Exit status").
const EXIT_POLICY_REFUSED: u8 = 126;

#[derive(Debug, Parser)]
#[command(name = "mcp-j", version, about = "A secure runtime for untrusted MCP servers")]
struct Cli {
    /// Registry URL (`push`, `pull`, `info`, `login`, `logout`)
    #[arg(long, global = true, value_name = "URL")]
    registry: Option<String>,
    /// Cache directory (`pull`, `info`, `cache`)
    #[arg(long = "cache-dir", global = true, value_name = "DIR")]
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

fn main() -> ExitCode {
    let first = std::env::args_os().nth(1);
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
        Command::Exec(args) => commands::exec::exec(args, loaded.config, cli.verbose),
        Command::Run(args) => commands::run::run(args, loaded.config, cli.verbose),
        Command::Doctor => commands::doctor::doctor(cli.json),
        Command::Config {
            command: ConfigCommand::Show,
        } => commands::config_show::show(&loaded, cli.json).map(|()| ExitCode::SUCCESS),
        Command::Login(args) => commands::login::login(&args, &loaded.config),
        Command::Logout => commands::login::logout(&loaded.config),
        Command::Pull(args) => commands::package::pull(&args, &loaded.config),
        Command::Info(args) => commands::package::info(&args, &loaded.config, cli.json),
        Command::Cache { command } => commands::package::cache_command(&command, &loaded.config, cli.json),
        Command::Push(args) => commands::registry::push(&args, &loaded.config),
        Command::Registry { command } => commands::registry::registry(&command, cli.json),
        Command::Client { command } => client_setup::client(&command),
        Command::Pins { command } => commands::pins::pins(&command, cli.json),
    }
}
