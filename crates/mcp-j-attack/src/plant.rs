//! Attacks on the user's project: code a host program runs later (a git hook,
//! `core.fsmonitor` in a git config, a direnv `.envrc`), planted in the writable workdir.
//!
//! What they write is inert: the hook and the fsmonitor command only `exit 0`, so a test
//! that fails leaves nothing that acts on the host.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Report;
use crate::sys::Errno;

/// A git config line that makes every `git status` run a command.
pub const FSMONITOR: &str = "[core]\n\tfsmonitor = \"exit 0 # planted by mcp-j-attack\"\n";
/// A hook that runs on every commit.
pub const HOOK: &str = "#!/bin/sh\nexit 0 # planted by mcp-j-attack\n";

fn append(path: &Path, contents: &str, mode: u32) -> Result<String, Errno> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Errno::of(&e))?;
    file.write_all(contents.as_bytes()).map_err(|e| Errno::of(&e))?;
    Ok(format!("wrote {}", path.display()))
}

/// Plant an executable `pre-commit` hook and an fsmonitor in the existing repository
/// REPO (its `.git` directory). An escape if either lands.
pub fn plant_hook(repo: &str) -> Report {
    let git = Path::new(repo).join(".git");
    Report::all(vec![
        ("hook".to_owned(), append(&git.join("hooks/pre-commit"), HOOK, 0o755)),
        ("fsmonitor".to_owned(), append(&git.join("config"), FSMONITOR, 0o644)),
    ])
}

/// Make DIR a new repository with an fsmonitor (`DIR/.git/config`) and give it an
/// `.envrc`: what a jail can still plant where no project config existed. Succeeds in a
/// writable place (the quarantine acts after the jail), so tests run it as a control.
pub fn plant_repo(dir: &str) -> Report {
    let dir = Path::new(dir);
    let git = dir.join(".git");
    if let Err(e) = fs::create_dir_all(&git) {
        return Report::Denied(format!("{} (mkdir {})", Errno::of(&e), git.display()));
    }
    Report::all(vec![
        ("config".to_owned(), append(&git.join("config"), FSMONITOR, 0o644)),
        ("envrc".to_owned(), append(&dir.join(".envrc"), "exit 0\n", 0o644)),
    ])
}
