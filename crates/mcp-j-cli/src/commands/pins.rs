//! `mcp-j pins ls|show|accept|rm`: the tool pins `mcp-j run` keeps per server identity
//! ([`crate::pins`]).
//!
//! SERVER is the identity's short id (`pins ls`), a REF (`org/name`, `npm:NAME`,
//! `pypi:NAME`, with or without a version), or `-- PROG ARGS…` as the server was run.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mcp_j_policy::PinFile;
use mcp_j_policy::pins::{PinKind, SeenWith, ServerIdentity, ToolPin};
use serde_json::json;

use crate::pins::{ID_LEN, PinDir, identity_id};

/// `mcp-j pins …`.
#[derive(Debug, Subcommand)]
pub enum PinsCommand {
    /// Each server with pins: its short id, identity, how many tools, prompts and resource
    /// templates are pinned and how many changed, last change
    Ls,
    /// A server's pinned tools, prompts and resource templates (digest, first seen, seen
    /// with), and for one whose definition changed, the difference between the pinned and
    /// the offered definition
    Show(ServerArgs),
    /// Pin the definitions last offered for these tools of SERVER (none named: every
    /// changed tool of SERVER; `--all` without SERVER: of every server)
    Accept(AcceptArgs),
    /// Forget every pin of SERVER
    Rm(ServerArgs),
}

/// SERVER: an id, a REF, or `-- PROG ARGS…`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server: its id (`mcp-j pins ls`), `org/name`, `npm:NAME`, `pypi:NAME`
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
    /// A local server, as it was run: `-- PROG [ARGS]...`
    #[arg(last = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
}

/// `pins accept`'s arguments.
#[derive(Debug, Args)]
pub struct AcceptArgs {
    /// Every changed tool of every server (with SERVER: of that server, as with no TOOL)
    #[arg(long)]
    pub all: bool,
    /// SERVER (unless `-- PROG ARGS…` names it), then the tools to accept (a prompt as
    /// `prompt:NAME`, a resource template as `resource-template:NAME`)
    #[arg(value_name = "SERVER [TOOL]")]
    pub names: Vec<String>,
    /// A local server, as it was run: `-- PROG [ARGS]...`
    #[arg(last = true, value_name = "PROG [ARGS]...")]
    pub command: Vec<String>,
}

/// Run a `pins` command.
pub fn pins(command: &PinsCommand, json: bool) -> Result<ExitCode> {
    let dir = PinDir::from_env()?;
    pins_in(&dir, command, json)?;
    Ok(ExitCode::SUCCESS)
}

fn pins_in(dir: &PinDir, command: &PinsCommand, json: bool) -> Result<()> {
    match command {
        PinsCommand::Ls => ls(dir, json),
        PinsCommand::Show(args) => {
            let (id, file) = find(dir, args.server.as_deref(), &args.command)?;
            show(&id, &file, json)
        }
        PinsCommand::Rm(args) => {
            let (id, file) = find(dir, args.server.as_deref(), &args.command)?;
            dir.remove(&id)?;
            eprintln!("mcp-j: removed the pins of {} ({id})", file.server);
            Ok(())
        }
        PinsCommand::Accept(args) => accept(dir, args),
    }
}

/// The latest time a pin file records: a tool first seen, or a definition offered.
fn last_change(file: &PinFile) -> Option<&str> {
    file.tools
        .values()
        .chain(file.offered.values())
        .map(|p| p.first_seen.as_str())
        .max()
}

fn ls(dir: &PinDir, json: bool) -> Result<()> {
    let listed = dir.list()?;
    if json {
        let items: Vec<serde_json::Value> = listed
            .iter()
            .map(|(id, file)| match file {
                Ok(file) => json!({
                    "id": id,
                    "server": file.server.to_string(),
                    "identity": file.server,
                    "tools": file.tools.keys().filter(|k| PinKind::of_key(k).0 == PinKind::Tool).count(),
                    "pinned": file.tools.len(),
                    "changed": file.offered.len(),
                    "last_change": last_change(file),
                }),
                Err(e) => json!({"id": id, "error": format!("{e:#}")}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if listed.is_empty() {
        eprintln!(
            "mcp-j: no tool pins yet in `{}` (`mcp-j run` pins a server's tools when it first lists them)",
            dir.path().display()
        );
        return Ok(());
    }
    println!(
        "{:<ID_LEN$}  {:>6}  {:>7}  {:<27}  SERVER",
        "ID", "PINNED", "CHANGED", "LAST CHANGE"
    );
    for (id, file) in &listed {
        match file {
            Ok(file) => println!(
                "{id:<ID_LEN$}  {:>6}  {:>7}  {:<27}  {}",
                file.tools.len(),
                file.offered.len(),
                last_change(file).unwrap_or("-"),
                file.server
            ),
            Err(e) => println!("{id:<ID_LEN$}  unreadable: {e:#}"),
        }
    }
    Ok(())
}

fn seen_with(pin: &ToolPin) -> String {
    match &pin.seen_with {
        Some(SeenWith::PackageVersion { version }) => format!("version {version}"),
        Some(SeenWith::ProgramDigest { digest }) => format!("program {digest}"),
        None => "-".to_string(),
    }
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

fn show(id: &str, file: &PinFile, json: bool) -> Result<()> {
    if json {
        let tools: Vec<serde_json::Value> = file
            .tools
            .iter()
            .map(|(name, pin)| {
                let (kind, short) = PinKind::of_key(name);
                json!({
                    "tool": name,
                    "kind": kind.as_str(),
                    "name": short,
                    "digest": pin.digest,
                    "first_seen": pin.first_seen,
                    "seen_with": pin.seen_with,
                    "definition": pin.definition,
                    "offered": file.offered.get(name),
                })
            })
            .collect();
        let out = json!({"id": id, "server": file.server.to_string(), "identity": file.server, "tools": tools});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} ({id})", file.server);
    for (name, pin) in &file.tools {
        println!();
        let (kind, short) = PinKind::of_key(name);
        println!("{} {short}", kind.label());
        println!("  digest      {}", pin.digest);
        println!("  first seen  {} with {}", pin.first_seen, seen_with(pin));
        if let Some(offered) = file.offered.get(name) {
            println!(
                "  CHANGED     offered {} with {}, digest {}",
                offered.first_seen,
                seen_with(offered),
                offered.digest
            );
            println!("  accept it:  mcp-j pins accept {} {name}", file.server);
            let old = pretty(&pin.definition);
            let new = pretty(&offered.definition);
            let diff = similar::TextDiff::from_lines(&old, &new);
            print!(
                "{}",
                diff.unified_diff()
                    .context_radius(3)
                    .header(&format!("{name} (pinned)"), &format!("{name} (offered)"))
            );
        }
    }
    Ok(())
}

fn accept(dir: &PinDir, args: &AcceptArgs) -> Result<()> {
    let (server, tools): (Option<&str>, &[String]) = if args.command.is_empty() {
        match args.names.split_first() {
            Some((server, tools)) => (Some(server.as_str()), tools),
            None => (None, &[]),
        }
    } else {
        (None, &args.names)
    };
    if server.is_none() && args.command.is_empty() {
        if !args.all {
            bail!(
                "name the server and tools to accept (`mcp-j pins accept SERVER TOOL…`), or pass --all \
                 to accept every changed tool of every server (`mcp-j pins ls` lists them)"
            );
        }
        let mut accepted = 0;
        for (_, file) in dir.list()? {
            let file = file?;
            accepted += accept_in(dir, &file.server, &[], true)?;
        }
        eprintln!("mcp-j: accepted {accepted} changed tool definition(s)");
        return Ok(());
    }
    let (_, file) = find(dir, server, &args.command)?;
    // No tools named: every changed tool of the server.
    let accepted = accept_in(dir, &file.server, tools, args.all || tools.is_empty())?;
    eprintln!(
        "mcp-j: accepted {accepted} changed tool definition(s) of {}",
        file.server
    );
    Ok(())
}

/// Accept `tools` (or every offered one with `all`) of `identity`, under the file's
/// lock. Returns how many were accepted.
fn accept_in(dir: &PinDir, identity: &ServerIdentity, tools: &[String], all: bool) -> Result<usize> {
    let mut missing = Vec::new();
    let mut accepted = 0;
    dir.update(identity, |file| {
        let names: Vec<String> = if all && tools.is_empty() {
            file.offered.keys().cloned().collect()
        } else {
            tools.to_vec()
        };
        for name in names {
            if file.accept_offered(&name) {
                accepted += 1;
            } else {
                missing.push(name);
            }
        }
        accepted > 0
    })?;
    if !missing.is_empty() {
        bail!(
            "no changed definition to accept for {} of {identity} (`mcp-j pins show {identity}` shows which \
             tools changed){}",
            missing.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
            if accepted > 0 {
                format!("; accepted the other {accepted}")
            } else {
                String::new()
            }
        );
    }
    Ok(accepted)
}

/// The identities SERVER may name, most likely first.
fn candidates(server: &str) -> Vec<ServerIdentity> {
    if let Some(rest) = server.strip_prefix("npm:") {
        // `@scope/name@1.2.3` or `name@1.2.3`: the version follows the last `@` after
        // the first character.
        let name = match rest.get(1..).and_then(|tail| tail.rfind('@')) {
            Some(at) => &rest[..at + 1],
            None => rest,
        };
        return vec![ServerIdentity::Npm { name: name.to_string() }];
    }
    if let Some(rest) = server.strip_prefix("pypi:") {
        let name = rest.split("==").next().unwrap_or(rest);
        let normalized: String = {
            let lower = name.to_ascii_lowercase();
            let mut out = String::new();
            for c in lower.chars() {
                let c = if matches!(c, '_' | '.') { '-' } else { c };
                if !(c == '-' && out.ends_with('-')) {
                    out.push(c);
                }
            }
            out
        };
        let mut list = vec![ServerIdentity::Pypi { name: name.to_string() }];
        if normalized != name {
            list.push(ServerIdentity::Pypi { name: normalized });
        }
        return list;
    }
    let name = server.split('@').next().unwrap_or(server);
    vec![ServerIdentity::Package { name: name.to_string() }]
}

/// The pin file SERVER names: `(id, file)`. An unknown server is an error that says how
/// to list the known ones.
fn find(dir: &PinDir, server: Option<&str>, command: &[String]) -> Result<(String, PinFile)> {
    let unknown = |what: &str| {
        anyhow::anyhow!("no tool pins for {what} (`mcp-j pins ls` lists the servers with pins, and their ids)")
    };
    if !command.is_empty() {
        if server.is_some() {
            bail!("name the server either before `--` or after it, not both");
        }
        let (path, args) = command.split_first().context("no program given after `--`")?;
        let identity = ServerIdentity::Program {
            path: path.clone(),
            args: args.to_vec(),
        };
        let id = identity_id(&identity);
        return match dir.load(&id)? {
            Some(file) => Ok((id, file)),
            None => {
                // Arguments may have been stored redacted: match on the rest.
                let matches = |stored: &ServerIdentity| match stored {
                    ServerIdentity::Program { path: p, args: a } => {
                        p == path
                            && a.len() == args.len()
                            && a.iter()
                                .zip(args)
                                .all(|(s, given)| s == given || s.contains("[REDACTED]"))
                    }
                    _ => false,
                };
                dir.list()?
                    .into_iter()
                    .filter_map(|(id, f)| f.ok().map(|f| (id, f)))
                    .find(|(_, f)| matches(&f.server))
                    .ok_or_else(|| unknown(&identity.to_string()))
            }
        };
    }
    let Some(server) = server else {
        bail!(
            "name a server: its id (`mcp-j pins ls`), a REF (`org/name`, `npm:NAME`, `pypi:NAME`) or `-- PROG ARGS…`"
        );
    };
    if server.len() == ID_LEN
        && server.bytes().all(|b| b.is_ascii_hexdigit())
        && let Some(file) = dir.load(&server.to_ascii_lowercase())?
    {
        return Ok((server.to_ascii_lowercase(), file));
    }
    for identity in candidates(server) {
        let id = identity_id(&identity);
        if let Some(file) = dir.load(&id)? {
            return Ok((id, file));
        }
    }
    Err(unknown(&format!("`{server}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_name_identities_with_or_without_versions() {
        let pkg = |n: &str| ServerIdentity::Package { name: n.into() };
        let npm = |n: &str| ServerIdentity::Npm { name: n.into() };
        let pypi = |n: &str| ServerIdentity::Pypi { name: n.into() };
        assert_eq!(candidates("acme/hello"), [pkg("acme/hello")]);
        assert_eq!(candidates("acme/hello@1.2.3"), [pkg("acme/hello")]);
        assert_eq!(candidates("npm:srv"), [npm("srv")]);
        assert_eq!(candidates("npm:srv@1.0.0"), [npm("srv")]);
        assert_eq!(candidates("npm:@scope/srv"), [npm("@scope/srv")]);
        assert_eq!(candidates("npm:@scope/srv@2.0.0"), [npm("@scope/srv")]);
        assert_eq!(candidates("pypi:mcp-server-time==1.0"), [pypi("mcp-server-time")]);
        assert_eq!(candidates("pypi:Mcp_Server"), [pypi("Mcp_Server"), pypi("mcp-server")]);
    }
}
