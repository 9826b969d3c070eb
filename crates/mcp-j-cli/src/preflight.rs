//! Checks before a jail starts, for mistakes a new user makes with a real client: a
//! launcher that would download the server (there is no network inside), a client
//! `env` block that set mcp-j's environment instead of the server's, and the program
//! given without the `--` that MCP Inspector strips.

use std::path::Path;

use anyhow::{Result, bail};

/// Launchers that fetch a package from the network when they start.
pub(crate) fn network_launcher(program: &str, args: &[String]) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    let first = args.first().map(String::as_str);
    Some(match (name, first) {
        ("npx", _) => "npx",
        ("pnpx", _) => "pnpx",
        ("bunx", _) => "bunx",
        ("uvx", _) => "uvx",
        ("pipx", Some("run")) => "pipx run",
        ("npm", Some("exec" | "x")) => "npm exec",
        ("pnpm", Some("dlx")) => "pnpm dlx",
        ("yarn", Some("dlx")) => "yarn dlx",
        ("uv", Some("tool")) if args.get(1).map(String::as_str) == Some("run") => "uv tool run",
        _ => return None,
    })
}

/// Refuse (125) a program that would download the server: inside there is no network,
/// so it would hang until the client gives up. Says what to do instead.
pub fn refuse_network_launcher(program: &str, args: &[String]) -> Result<()> {
    let Some(launcher) = network_launcher(program, args) else {
        return Ok(());
    };
    let how = match crate::client_setup::rewrite::launcher_run_args(launcher, args) {
        Some(run) => format!("  mcp-j {}", run.join(" ")),
        None if matches!(launcher, "uvx" | "pipx run" | "uv tool run") => {
            "  mcp-j run pypi:PACKAGE[==VERSION] [-- ARGS]".to_owned()
        }
        None => "  mcp-j run npm:PACKAGE[@VERSION] [-- ARGS]".to_owned(),
    };
    bail!(
        "`{launcher}` downloads the server when it starts, outside any sandbox's control, and the \
         sandbox has no network. mcp-j installs it inside the sandbox instead (the installer \
         reaches only the package registry, install scripts off) and runs it from its cache:\n{how}"
    )
}

/// Variable names that look like credentials meant for a server.
pub(crate) fn looks_meant_for_the_server(name: &str) -> bool {
    const SUFFIXES: &[&str] = &["_TOKEN", "_KEY", "_SECRET", "_PASSWORD", "_PAT", "_CREDENTIALS"];
    const NAMES: &[&str] = &["TOKEN", "API_KEY", "SECRET", "PASSWORD"];
    if name.starts_with("MCP_J_") {
        return false; // our own
    }
    NAMES.contains(&name) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// How many unpassed variables are named one by one.
const MAX_NAMED: usize = 8;

/// Warn (stderr, once per variable, never a value) about variables in mcp-j's
/// environment that look meant for the server but do not reach it: a client config's
/// `env` block sets mcp-j's environment, and the server only gets what `--env` and
/// `--secret` pass. A variable counts as passed if its value reaches the server under
/// any name (`--secret GITHUB_TOKEN=env:GH_TOKEN` passes `GH_TOKEN`).
pub fn warn_unpassed_env(host: impl IntoIterator<Item = (String, String)>, jail_env: &[(String, String)]) {
    let unpassed: Vec<String> = host
        .into_iter()
        .filter(|(name, value)| {
            looks_meant_for_the_server(name) && !value.is_empty() && !jail_env.iter().any(|(_, v)| v == value)
        })
        .map(|(name, _)| name)
        .collect();
    for name in unpassed.iter().take(MAX_NAMED) {
        eprintln!(
            "mcp-j: warning: `{name}` is set in mcp-j's environment but not passed to the server (a \
             client's `env` block sets mcp-j's environment only); pass it with `--secret \
             {name}=env:{name}` or `--env {name}`"
        );
    }
    if unpassed.len() > MAX_NAMED {
        eprintln!(
            "mcp-j: warning: and {} more such variables not passed to the server",
            unpassed.len() - MAX_NAMED
        );
    }
}

/// Our own environment, the variables with UTF-8 names and values.
pub fn host_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// A note for a usage error of `exec` or `run` that is likely a program given without
/// `--` before it (MCP Inspector removes the first `--` of the arguments it is given).
pub fn usage_note(error: &clap::Error, argv: &[String]) -> Option<String> {
    use clap::error::ErrorKind;
    let subcommand = argv.iter().skip(1).find(|a| !a.starts_with('-'))?;
    if !matches!(subcommand.as_str(), "exec" | "run") {
        return None;
    }
    if !matches!(
        error.kind(),
        ErrorKind::UnknownArgument | ErrorKind::MissingRequiredArgument
    ) {
        return None;
    }
    let package = if subcommand == "run" {
        " (or run a registry package: `mcp-j run [OPTIONS] ORG/NAME[@VERSION] [-- ARGS]...`)"
    } else {
        ""
    };
    Some(format!(
        "note: the program and its arguments go after `--`: `mcp-j {subcommand} [OPTIONS] -- PROG \
         [ARGS]...`{package}. MCP Inspector removes the first `--` from the arguments it is given: \
         there, write it twice (`mcp-j {subcommand} [OPTIONS] -- -- PROG [ARGS]...`)."
    ))
}

/// The program and its arguments, without a leading `--` (the second of `-- -- PROG`,
/// written for clients that strip the first, reaches us when a client does not).
pub fn strip_extra_separator(command: &[String]) -> &[String] {
    match command.split_first() {
        Some((first, rest)) if first == "--" => rest,
        _ => command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn launchers_that_download_are_recognised() {
        assert_eq!(network_launcher("/usr/bin/npx", &args(&["-y", "pkg"])), Some("npx"));
        assert_eq!(network_launcher("uvx", &args(&["mcp-server-time"])), Some("uvx"));
        assert_eq!(network_launcher("pipx", &args(&["run", "x"])), Some("pipx run"));
        assert_eq!(
            network_launcher("uv", &args(&["tool", "run", "x"])),
            Some("uv tool run")
        );
        assert_eq!(network_launcher("pipx", &args(&["list"])), None);
        assert_eq!(network_launcher("/usr/bin/node", &args(&["npx"])), None);
        assert_eq!(network_launcher("/usr/bin/python3", &args(&["-m", "uvx"])), None);
    }

    #[test]
    fn credential_names_are_recognised() {
        for name in ["GITHUB_TOKEN", "OPENAI_API_KEY", "AWS_SECRET", "DB_PASSWORD", "API_KEY"] {
            assert!(looks_meant_for_the_server(name), "{name}");
        }
        for name in ["PATH", "HOME", "SSH_AUTH_SOCK", "MCP_J_REGISTRY_TOKEN", "KEYBOARD"] {
            assert!(!looks_meant_for_the_server(name), "{name}");
        }
    }

    #[test]
    fn a_leading_separator_is_dropped_once() {
        assert_eq!(
            strip_extra_separator(&args(&["--", "prog", "--"])),
            &args(&["prog", "--"])[..]
        );
        assert_eq!(strip_extra_separator(&args(&["prog"])), &args(&["prog"])[..]);
    }
}
