//! `mcp-j client setup [CLIENT|PATH] [--dry-run] [--undo]`: switch an MCP client over to
//! mcp-j. Finds the client's config on this machine (`locate`), decides for each stdio server
//! entry how it runs under mcp-j (`rewrite`, pure), changes only those entries' `command` and
//! `args` in the file's own text (`edit`: comments and everything else stay byte for byte),
//! keeps a backup, writes atomically, and records what it changed (`record`) so that
//! `--undo` can put the original entries back — only those the user has not changed since.
//!
//! Order of a setup that changes something: record first, then backup, then the file: a
//! record whose entries are not in the file is harmless (`--undo` leaves them alone and says
//! so); a changed file without a record could not be undone.

mod edit;
mod locate;
mod record;
pub(crate) mod rewrite;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use edit::Layout;
use locate::{Client, Place};
use record::{Record, RecordedEntry, UndoStep};
use rewrite::{Decision, Host, PathKind};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Rewrite a client's config so its stdio servers run under mcp-j (`npx -y PKG` →
    /// `run npm:PKG`, `uvx PKG` → `run pypi:PKG`, any other program → `run --ro DIR -- PROG`),
    /// keeping a backup; `--undo` puts the original entries back
    Setup(SetupArgs),
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// `claude-desktop`, `claude-code`, `vscode`, `cursor`, or a config file (its servers
    /// under `mcpServers` or `servers`); without it, every client config found here
    #[arg(value_name = "CLIENT|PATH")]
    target: Option<String>,
    /// Print what would change as a unified diff on stdout; write nothing
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Put back the entries `setup` wrapped, those still as it wrote them
    #[arg(long)]
    undo: bool,
}

pub fn client(command: &ClientCommand) -> Result<ExitCode> {
    match command {
        ClientCommand::Setup(args) => setup(args),
    }
}

/// One config file to work on.
struct Target {
    /// How to name it on stderr: `Claude Desktop (user)`, or the path given.
    label: String,
    path: PathBuf,
    /// `None`: found from the file's keys.
    layout: Option<Layout>,
}

fn setup(args: &SetupArgs) -> Result<ExitCode> {
    let env = locate::Env::from_process();
    let targets = targets(args.target.as_deref(), &env)?;
    let records = record::dir(
        std::env::var("XDG_STATE_HOME").ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    )
    .context("nowhere to keep the record for --undo: set HOME (or XDG_STATE_HOME) to an absolute path")?;
    let mcp_j = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot find the path of this mcp-j")?;
    let mcp_j = mcp_j
        .to_str()
        .context("the path of this mcp-j is not UTF-8: it cannot go in a JSON config")?
        .to_owned();
    let host = RealHost { home: env.home.clone() };
    let how = How {
        dry_run: args.dry_run,
        undo_target: &args.target.as_deref().map(|t| format!(" {t}")).unwrap_or_default(),
        records: &records,
        mcp_j: &mcp_j,
        host: &host,
    };
    for target in &targets {
        eprintln!("mcp-j: {}: {}", target.label, target.path.display());
        if args.undo {
            undo_file(target, &how)?;
        } else {
            setup_file(target, &how)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct How<'a> {
    dry_run: bool,
    /// What to pass to `--undo` to name the same files.
    undo_target: &'a str,
    records: &'a Path,
    mcp_j: &'a str,
    host: &'a dyn Host,
}

fn targets(target: Option<&str>, env: &locate::Env) -> Result<Vec<Target>> {
    let from_place = |place: Place| Target {
        label: format!("{} ({})", place.client.title(), place.scope),
        path: place.path,
        layout: Some(place.layout),
    };
    let clients: Vec<Client> = match target {
        None => Client::ALL.to_vec(),
        Some(arg) => match Client::from_arg(arg) {
            Some(client) => vec![client],
            None => {
                let path = PathBuf::from(arg);
                if !arg.contains('/') && !path.exists() {
                    bail!(
                        "`{arg}` is neither a client ({}) nor a file here",
                        Client::ALL.map(Client::arg).join(", ")
                    );
                }
                let layout = (path.file_name() == Some(".claude.json".as_ref())).then_some(Layout::ClaudeCode);
                return Ok(vec![Target {
                    label: "config".to_owned(),
                    path,
                    layout,
                }]);
            }
        },
    };
    let places: Vec<Place> = clients.iter().flat_map(|c| locate::places(*c, env)).collect();
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for place in places.iter().filter(|p| locate::exists(&p.path)) {
        // The project file may be the user one (run from the home directory).
        let real = std::fs::canonicalize(&place.path).unwrap_or_else(|_| place.path.clone());
        if !seen.contains(&real) {
            seen.push(real);
            found.push(from_place(place.clone()));
        }
    }
    if found.is_empty() {
        let looked: Vec<String> = places.iter().map(|p| format!("  {}", p.path.display())).collect();
        let which = match target {
            Some(arg) => format!("no {} config", clients.first().map_or(arg, |c| c.title())),
            None => "no MCP client config".to_owned(),
        };
        bail!(
            "{which} found; looked in:\n{}\nhint: name the file: `mcp-j client setup PATH`",
            looked.join("\n")
        );
    }
    Ok(found)
}

/// How an entry is named on stderr: its name, and the project for Claude Code's local scope.
fn entry_name(path: &[String]) -> String {
    let name = path.last().map_or("", String::as_str);
    match path {
        [projects, project, ..] if projects == "projects" => format!("`{name}` (project `{project}`)"),
        _ => format!("`{name}`"),
    }
}

/// The file, read through a symlink (a dotfile manager's link stays a link; its target is
/// what gets written), checked as JSONC.
fn read_config(path: &Path) -> Result<(PathBuf, String)> {
    let real = std::fs::canonicalize(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let text = std::fs::read_to_string(&real).with_context(|| {
        format!(
            "cannot read `{}` (it must be a UTF-8 text file you may read)",
            path.display()
        )
    })?;
    edit::check(&text).with_context(|| {
        format!(
            "`{}` is not valid JSON (or JSONC): fix it (the client would not read it either), then run this again",
            path.display()
        )
    })?;
    Ok((real, text))
}

fn setup_file(target: &Target, how: &How<'_>) -> Result<()> {
    let (real, text) = read_config(&target.path)?;
    let layout = match target.layout {
        Some(layout) => layout,
        None => edit::detect_layout(&text)?,
    };
    let entries = edit::entries(&text, layout)
        .with_context(|| format!("`{}`: cannot read its servers", target.path.display()))?;
    if entries.is_empty() {
        let key = if layout == Layout::Servers {
            "servers"
        } else {
            "mcpServers"
        };
        eprintln!("mcp-j:   no servers (no `{key}` entries): nothing to do");
        return Ok(());
    }
    let mut splices = Vec::new();
    let mut wrapped = Vec::new();
    for entry in &entries {
        let name = entry_name(&entry.path);
        match rewrite::wrap(&entry.value, how.mcp_j, how.host) {
            Decision::Wrap(w) => {
                eprintln!("mcp-j:   {name}: runs `{}` under mcp-j", w.runs);
                if !w.exposed.is_empty() {
                    let dirs: Vec<String> = w.exposed.iter().map(|p| format!("`{}`", p.display())).collect();
                    eprintln!("mcp-j:     exposed read-only: {}", dirs.join(", "));
                }
                if !w.passed.is_empty() {
                    eprintln!("mcp-j:     passes from the client's `env`: {}", w.passed.join(", "));
                }
                for note in &w.notes {
                    eprintln!("mcp-j:     note: {note}");
                }
                splices.extend(edit::wrap_splices(entry, &w.command, &w.args));
                wrapped.push(entry);
            }
            Decision::Leave(why) => eprintln!("mcp-j:   {name}: left alone: {why}"),
        }
    }
    let new_text = edit::apply(&text, splices);
    if new_text == text {
        eprintln!("mcp-j:   nothing to change");
        return Ok(());
    }
    if how.dry_run {
        print_diff(&target.path, &text, &new_text);
        return Ok(());
    }
    let mut recorded = Vec::new();
    for entry in wrapped {
        let written = edit::entry_at(&new_text, &entry.path)?
            .context("a wrapped entry is in the new text")?
            .value;
        recorded.push(RecordedEntry {
            path: entry.path.clone(),
            original_text: text[entry.span.clone()].to_owned(),
            original: entry.value.clone(),
            written,
        });
    }
    let record_path = record::path(how.records, &real);
    let mut record = record::load(&record_path)?.unwrap_or_else(|| Record::new(&real));
    let count = recorded.len();
    record.merge(recorded);
    record::save(&record_path, &record)?;
    write_with_backup(&real, &text, &new_text)?;
    eprintln!(
        "mcp-j:   {count} {} now run under mcp-j; restart the client to use them (`mcp-j client setup --undo{}` puts them back)",
        if count == 1 { "server" } else { "servers" },
        how.undo_target
    );
    Ok(())
}

fn undo_file(target: &Target, how: &How<'_>) -> Result<()> {
    let (real, text) = read_config(&target.path)?;
    let record_path = record::path(how.records, &real);
    let Some(mut record) = record::load(&record_path)? else {
        eprintln!("mcp-j:   no record of a `client setup` of this file: nothing to undo");
        return Ok(());
    };
    let mut splices = Vec::new();
    let mut kept = Vec::new();
    for recorded in &record.entries {
        let name = entry_name(&recorded.path);
        match record::plan_undo(recorded, edit::entry_at(&text, &recorded.path)?) {
            UndoStep::Restore { entry, original_text } => {
                eprintln!("mcp-j:   {name}: put back as it was");
                splices.push(edit::restore_splice(&entry, &original_text));
            }
            UndoStep::Changed => {
                eprintln!(
                    "mcp-j:   {name}: left alone: changed since `client setup` wrote it; its original \
                     is kept in `{}`",
                    record_path.display()
                );
                kept.push(recorded.clone());
            }
            UndoStep::Removed => eprintln!("mcp-j:   {name}: no longer in the file: nothing to put back"),
        }
    }
    let new_text = edit::apply(&text, splices);
    if how.dry_run {
        if new_text != text {
            print_diff(&target.path, &text, &new_text);
        }
        return Ok(());
    }
    if new_text != text {
        write_with_backup(&real, &text, &new_text)?;
    }
    record.entries = kept;
    record::save(&record_path, &record)
}

fn print_diff(path: &Path, old: &str, new: &str) {
    let name = path.display().to_string();
    let diff = similar::TextDiff::from_lines(old, new);
    print!("{}", diff.unified_diff().context_radius(3).header(&name, &name));
}

/// Copies the file as it is to `FILE.mcp-j-backup` (`.1`, `.2`… when taken), then puts the
/// new text in its place atomically, with the file's mode.
fn write_with_backup(path: &Path, old: &str, new: &str) -> Result<()> {
    let metadata = std::fs::metadata(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mode = metadata.permissions().mode() & 0o7777;
    let owner = (metadata.uid(), metadata.gid());
    let backup = (0..)
        .map(|n| match n {
            0 => suffixed(path, ".mcp-j-backup"),
            n => suffixed(path, &format!(".mcp-j-backup.{n}")),
        })
        .find_map(|candidate| match create_new(&candidate, mode, owner, old.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
            other => Some(other.map(|()| candidate.clone()).map_err(|e| (candidate, e))),
        })
        .context("no backup name is free")?
        .map_err(|(candidate, e)| {
            anyhow::Error::new(e).context(format!("cannot write the backup `{}`", candidate.display()))
        })?;
    eprintln!("mcp-j:   backup: {}", backup.display());
    let dir = path.parent().context("a config file has a directory")?;
    let tmp = suffixed(path, &format!(".mcp-j-tmp.{}", std::process::id()));
    let written = create_new(&tmp, mode, owner, new.as_bytes()).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write `{}`", path.display()))?;
    // The rename itself reaches the disk with the directory.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A new file with these bytes, this mode (set again after creation: the umask may have
/// narrowed it) and, where we may, this owner (root editing a user's config must not leave
/// it root's), on disk before this returns.
fn create_new(path: &Path, mode: u32, (uid, gid): (u32, u32), bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // Only root can give a file away; a root caller must, or the client loses its config.
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The machine as it is.
struct RealHost {
    home: Option<PathBuf>,
}

impl Host for RealHost {
    fn kind(&self, path: &Path) -> PathKind {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => PathKind::Dir,
            Ok(_) => PathKind::File,
            Err(_) => PathKind::Missing,
        }
    }

    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| {
                std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn env_file_names(&self, path: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(path).ok()?;
        Some(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| line.strip_prefix("export ").unwrap_or(line).split_once('='))
                .map(|(name, _)| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect(),
        )
    }

    fn home(&self) -> Option<PathBuf> {
        self.home.clone()
    }
}
