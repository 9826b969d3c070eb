//! mcp-j's own record of what `client setup` changed in a config file, for `--undo`:
//! `$XDG_STATE_HOME/mcp-j/client-setup/<sha256 of the config's canonical path>.json` (else
//! `~/.local/state/…`), the file 0600 in a 0700 directory. Per wrapped entry: where it is
//! (its keys from the top of the file), its original text exactly as it was in the file,
//! that text's value, and the value written.
//!
//! `--undo` puts an entry's original text back only when its value is still the one written
//! (so an entry the user changed since is never clobbered); what it could not put back stays
//! in the record, and the record goes when nothing is left in it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::edit::Entry;

/// The format of the record file; a newer one is refused rather than misread.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    /// The config file, as its canonical path.
    pub config: PathBuf,
    pub entries: Vec<RecordedEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEntry {
    /// The keys from the top of the file to the entry.
    pub path: Vec<String>,
    /// The entry's text as it was, byte for byte.
    pub original_text: String,
    /// Its value (what `--dry-run` and people reading the record look at).
    pub original: Value,
    /// The value `setup` wrote.
    pub written: Value,
}

impl Record {
    pub fn new(config: &Path) -> Record {
        Record {
            format: FORMAT,
            config: config.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Adds what a later `setup` wrapped; an entry recorded at the same place before (then
    /// changed back by the user, and wrapped again) gets the newer original.
    pub fn merge(&mut self, wrapped: Vec<RecordedEntry>) {
        for new in wrapped {
            self.entries.retain(|old| old.path != new.path);
            self.entries.push(new);
        }
    }
}

/// The directory of the records: `$XDG_STATE_HOME/mcp-j/client-setup`, else
/// `$HOME/.local/state/mcp-j/client-setup`.
pub fn dir(xdg_state_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_state_home, home) {
        (Some(state), _) if state.starts_with('/') => PathBuf::from(state),
        (_, Some(home)) if home.starts_with('/') => Path::new(home).join(".local/state"),
        _ => return None,
    };
    Some(base.join("mcp-j/client-setup"))
}

/// The record of `config` (its canonical path) under `dir`.
pub fn path(dir: &Path, config: &Path) -> PathBuf {
    let digest = Sha256::digest(config.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.json"))
}

pub fn load(path: &Path) -> Result<Option<Record>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the record `{}`", path.display())),
    };
    let record: Record = serde_json::from_slice(&bytes)
        .with_context(|| format!("the record `{}` is not one mcp-j wrote; move it away", path.display()))?;
    if record.format != FORMAT {
        anyhow::bail!(
            "the record `{}` has format {}, this mcp-j knows {FORMAT}: use the mcp-j that wrote it",
            path.display(),
            record.format
        );
    }
    Ok(Some(record))
}

/// Writes the record (0600, its directory 0700), or removes it when it holds nothing.
pub fn save(path: &Path, record: &Record) -> Result<()> {
    if record.entries.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove the record `{}`", path.display()))
            }
            _ => Ok(()),
        };
    }
    let dir = path.parent().context("a record path has a directory")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make `{}` private (0700)", dir.display()))?;
    let text = serde_json::to_vec_pretty(record).context("cannot encode the record")?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&text)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("cannot write the record `{}`", path.display()))
}

/// What `--undo` does with one recorded entry.
#[derive(Debug, Clone, PartialEq)]
pub enum UndoStep {
    /// Still as written: put this original text back in place of the entry now there.
    Restore { entry: Entry, original_text: String },
    /// Changed since `setup`: left alone.
    Changed,
    /// No longer in the file: nothing to put back.
    Removed,
}

/// For each recorded entry, what `--undo` does, given the entry now at its place.
pub fn plan_undo(recorded: &RecordedEntry, now: Option<Entry>) -> UndoStep {
    match now {
        None => UndoStep::Removed,
        Some(entry) if entry.value == recorded.written => UndoStep::Restore {
            entry,
            original_text: recorded.original_text.clone(),
        },
        Some(_) => UndoStep::Changed,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::edit::{self, Layout};
    use super::*;

    fn recorded(name: &str, original: &str, written: Value) -> RecordedEntry {
        RecordedEntry {
            path: vec!["mcpServers".to_owned(), name.to_owned()],
            original_text: original.to_owned(),
            original: edit::value_of(original).unwrap_or_else(|e| panic!("{e}")),
            written,
        }
    }

    #[test]
    fn undo_restores_only_what_is_still_as_written() {
        let text = r#"{"mcpServers": {
            "same": {"command": "/bin/mcp-j", "args": ["run", "npm:a"]},
            "edited": {"command": "/bin/mcp-j", "args": ["run", "--deny-tool", "x", "npm:b"]}
        }}"#;
        let written_a = json!({"command": "/bin/mcp-j", "args": ["run", "npm:a"]});
        let written_b = json!({"command": "/bin/mcp-j", "args": ["run", "npm:b"]});
        let record = [
            recorded("same", r#"{ "command": "npx", "args": ["-y", "a"] }"#, written_a),
            recorded("edited", r#"{"command": "npx", "args": ["b"]}"#, written_b.clone()),
            recorded("gone", r#"{"command": "npx", "args": ["c"]}"#, written_b),
        ];
        let steps: Vec<UndoStep> = record
            .iter()
            .map(|r| plan_undo(r, edit::entry_at(text, &r.path).unwrap_or_else(|e| panic!("{e}"))))
            .collect();
        match &steps[0] {
            UndoStep::Restore { entry, original_text } => {
                assert_eq!(entry.path[1], "same");
                assert_eq!(original_text, r#"{ "command": "npx", "args": ["-y", "a"] }"#);
                let back = edit::apply(text, vec![edit::restore_splice(entry, original_text)]);
                let now = edit::entries(&back, Layout::McpServers).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(now[0].value, json!({"command": "npx", "args": ["-y", "a"]}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(steps[1], UndoStep::Changed);
        assert_eq!(steps[2], UndoStep::Removed);
    }

    #[test]
    fn a_later_setup_replaces_the_entry_recorded_at_the_same_place() {
        let mut record = Record::new(Path::new("/c.json"));
        record.merge(vec![recorded("a", "1", json!(2)), recorded("b", "3", json!(4))]);
        record.merge(vec![recorded("a", "5", json!(6))]);
        let names: Vec<(&str, &str)> = record
            .entries
            .iter()
            .map(|e| (e.path[1].as_str(), e.original_text.as_str()))
            .collect();
        assert_eq!(names, [("b", "3"), ("a", "5")]);
    }

    #[test]
    fn the_record_is_private_and_goes_when_empty() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = tmp.path().to_str().unwrap_or_else(|| panic!("utf-8 temp dir"));
        let dir = dir(Some(base), Some("/home/me")).unwrap_or_else(|| panic!("a dir"));
        assert_eq!(dir, tmp.path().join("mcp-j/client-setup"));
        assert_eq!(
            super::dir(None, Some("/home/me")),
            Some(PathBuf::from("/home/me/.local/state/mcp-j/client-setup"))
        );
        assert_eq!(super::dir(Some("relative"), None), None);
        let file = path(&dir, Path::new("/home/me/.cursor/mcp.json"));
        let mut record = Record::new(Path::new("/home/me/.cursor/mcp.json"));
        record.merge(vec![recorded("a", "{}", json!({}))]);
        save(&file, &record).unwrap_or_else(|e| panic!("{e:#}"));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        assert_eq!(load(&file).ok().flatten(), Some(record.clone()));
        record.entries.clear();
        save(&file, &record).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(!file.exists());
        assert!(load(&file).is_ok_and(|r| r.is_none()));
    }
}
