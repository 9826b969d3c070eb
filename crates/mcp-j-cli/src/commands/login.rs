//! `mcp-j login` and `logout`: a token per registry origin (`mcp_j_package::credentials`),
//! given with `--token`, or got from the registry with a user name and password
//! (`POST /v1/auth/login`): `--username U --password-stdin`, or asked for on the terminal
//! (the password without echo).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use mcp_j_package::credentials::Credentials;
use mcp_j_package::registry::Registry;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The token to store (from `registry token create`, or your registry's own)
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    token: Option<String>,
    /// Log in as this user (the registry's `/v1/auth/login`)
    #[arg(long)]
    username: Option<String>,
    /// Read the password from stdin (one line) instead of asking on the terminal
    #[arg(long = "password-stdin", requires = "username")]
    password_stdin: bool,
}

/// The configured registry (`--registry`, `registry_url`, `MCP_J_REGISTRY_URL`), for every
/// command that talks to one.
pub fn registry_url(config: &Config) -> Result<&str> {
    config.registry_url.as_deref().context(
        "no registry: pass `--registry URL`, or set `registry_url` in the configuration (or MCP_J_REGISTRY_URL)",
    )
}

/// Where tokens are stored: under the configuration directory; `None` with neither
/// `XDG_CONFIG_HOME` nor `HOME` set.
pub fn credentials_store() -> Option<Credentials> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    crate::config::config_dir(&env).map(|dir| Credentials::new(&dir))
}

fn credentials() -> Result<Credentials> {
    credentials_store().context("cannot store a token: neither XDG_CONFIG_HOME nor HOME is set")
}

pub fn login(args: &LoginArgs, config: &Config) -> Result<ExitCode> {
    let url = registry_url(config)?;
    // Refuse an unusable URL before asking for anything.
    let registry = Registry::new(url, None)?;
    let token = match &args.token {
        Some(token) => token.clone(),
        None => {
            let stdin = std::io::stdin();
            let username = match &args.username {
                Some(u) => u.clone(),
                None => {
                    if !rustix::termios::isatty(&stdin) {
                        bail!("no terminal to ask on: pass `--token T`, or `--username U --password-stdin`");
                    }
                    eprint!("Username for {url}: ");
                    read_line(&mut stdin.lock())?
                }
            };
            let password = if args.password_stdin {
                read_line(&mut stdin.lock())?
            } else {
                if !rustix::termios::isatty(&stdin) {
                    bail!("no terminal to ask for the password on: pass `--password-stdin`");
                }
                eprint!("Password: ");
                let password = read_without_echo(&stdin)?;
                eprintln!();
                password
            };
            registry
                .login(&username, &password)
                .with_context(|| format!("cannot log in to {url} as `{username}`"))?
        }
    };
    let path = credentials()?
        .store(url, &token)
        .with_context(|| format!("cannot store the token for {url}"))?;
    eprintln!(
        "mcp-j: logged in to {url}; the token is in {} (mode 0600)",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn logout(config: &Config) -> Result<ExitCode> {
    let url = registry_url(config)?;
    if credentials()?.remove(url)? {
        eprintln!("mcp-j: logged out of {url}");
    } else {
        eprintln!("mcp-j: no token was stored for {url}");
    }
    Ok(ExitCode::SUCCESS)
}

fn read_line(input: &mut dyn BufRead) -> Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("cannot read stdin")?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        bail!("nothing was given");
    }
    Ok(line)
}

/// A line from the terminal with echo off, put back as it was whatever happens.
fn read_without_echo(stdin: &std::io::Stdin) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let saved = tcgetattr(stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(stdin, OptionalActions::Now, &quiet).context("cannot turn the terminal's echo off")?;
    let line = read_line(&mut stdin.lock());
    let _ = tcsetattr(stdin, OptionalActions::Now, &saved);
    line
}
