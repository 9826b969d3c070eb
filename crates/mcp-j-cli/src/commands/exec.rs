//! `mcp-j exec`: any program in the sandbox, its stdio passed straight through (a terminal
//! through a pty of mcp-j's own, `pty.rs`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use mcp_j_engine::{Jail, JailStdio};

use super::{READY_TIMEOUT, cgroup_parent, finish, setup_context};
use crate::sandbox_opts::SandboxOpts;
use crate::{audit, diagnose, exposure, preflight, pty};

/// `mcp-j exec`'s arguments: the sandbox flags and the program.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub sandbox: Box<SandboxOpts>,
    /// The program and its arguments
    #[arg(last = true, required = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
}

/// `mcp-j exec`: refuse a downloading launcher, then run `args.command` under the effective
/// configuration `config`.
pub fn exec(mut args: ExecArgs, config: crate::config::Config, verbose: u8) -> Result<ExitCode> {
    let command = preflight::strip_extra_separator(&args.command);
    if let Some((program, program_args)) = command.split_first() {
        preflight::refuse_network_launcher(program, program_args)?;
    }
    args.sandbox.config = config;
    exec_in_sandbox(&args.sandbox, command, verbose)
}

fn exec_in_sandbox(opts: &SandboxOpts, command: &[String], verbose: u8) -> Result<ExitCode> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no program given"))?;
    let mut resolved = opts.resolve(program, args)?;
    let survey = exposure::survey(&mut resolved.spec)?;
    let session = audit::Session::start(&resolved, mcp_j_audit::Command::Exec, None, None, Vec::new())?;
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
    let parent = cgroup_parent();
    super::node_options_for_rlimits(&mut resolved.spec, parent.as_ref());
    let result = (|| -> Result<mcp_j_engine::Finished> {
        let mut jail = Jail::spawn(&resolved.spec, stdio, parent.as_ref()).map_err(setup_context)?;
        jail.on_denial(diagnose::denial_printer());
        if let Some(t) = &mut terminal
            && let Err(e) = t.start()
        {
            jail.kill();
            let _ = jail.wait(None);
            return Err(e);
        }
        session.ready(&jail.wait_ready(READY_TIMEOUT).map_err(setup_context)?);
        let _egress = crate::egress::serve_jail(&mut jail, &resolved, &session)?;
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
    let code = finish(program, &finished, verbose);
    diagnose::explain_exec_failure(&resolved.spec, &finished);
    code
}
