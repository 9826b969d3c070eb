//! The tool pin store (issue 12; INTERFACE, *Proxy behaviour*, tool pinning): one pin file
//! per server identity in `$XDG_STATE_HOME/mcp-j/pins/` (else `~/.local/state/mcp-j/pins/`),
//! named by the identity's short id, and [`PinStore`], the proxy's [`ToolPins`] for one
//! session.
//!
//! Files are written atomically (a temporary file, fsync, rename) while holding an
//! exclusive `flock` on `<id>.lock`, and re-read under that lock before every write: two
//! sessions of the same server that pin different new tools both keep theirs.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use mcp_j_audit::{AuditLog, PinDecision, Redactor, ToolChanged, ToolPinned};
use mcp_j_policy::PinMode;
use mcp_j_policy::pins::{PinFile, SeenWith, ServerIdentity, ToolPin, Verdict, changed_message};
use mcp_j_proxy::{PinCheck, PinKind, ToolPins};
use sha2::{Digest, Sha256};

/// How many hex digits of the identity's SHA-256 name its pin file.
pub const ID_LEN: usize = 12;

/// The short id of a server identity: the first [`ID_LEN`] hex digits of the SHA-256 of
/// its JSON form.
pub fn identity_id(identity: &ServerIdentity) -> String {
    let json = serde_json::to_string(identity).unwrap_or_default();
    let digest = Sha256::digest(json.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..ID_LEN].to_string()
}

/// A local program's identity: the program as given and its arguments, each secret value
/// replaced by the redactor's mark.
pub fn program_identity(program: &str, args: &[String], redactor: &Redactor) -> ServerIdentity {
    ServerIdentity::Program {
        path: program.to_string(),
        args: args.iter().map(|a| redactor.redact(a).into_owned()).collect(),
    }
}

/// `sha256:<hex>` of a local program's file: the path as given, or found on `PATH`;
/// `None` when it cannot be read.
pub fn program_digest(program: &str) -> Option<String> {
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        let path_var = std::env::var_os("PATH")?;
        std::env::split_paths(&path_var)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())?
    };
    let mut file = File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256:{hex}"))
}

/// The pin directory.
#[derive(Debug, Clone)]
pub struct PinDir {
    dir: PathBuf,
}

impl PinDir {
    /// A pin directory at `dir` (created, mode 0700, on first write).
    pub fn at(dir: impl Into<PathBuf>) -> PinDir {
        PinDir { dir: dir.into() }
    }

    /// The user's pin directory: `$XDG_STATE_HOME/mcp-j/pins`, else
    /// `~/.local/state/mcp-j/pins`.
    pub fn from_env() -> Result<PinDir> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let state = match (var("XDG_STATE_HOME"), var("HOME")) {
            (Some(xdg), _) => xdg,
            (None, Some(home)) => home.join(".local/state"),
            (None, None) => bail!(
                "cannot find the tool pin directory: neither XDG_STATE_HOME nor HOME is set \
                 (set one, or run with --pins off)"
            ),
        };
        Ok(PinDir::at(state.join("mcp-j").join("pins")))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn ensure(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("cannot create the pin directory `{}`", self.dir.display()))
    }

    /// The pin file of `id`, if there is one.
    pub fn load(&self, id: &str) -> Result<Option<PinFile>> {
        let path = self.file_of(id);
        match fs::read_to_string(&path) {
            Ok(text) => PinFile::from_json(&text)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
    }

    /// Read-modify-write the pin file of `identity` under its lock: `change` gets the
    /// file as it is now (or an empty one) and says whether to write it. Returns the file
    /// as it stands afterwards.
    pub fn update<F>(&self, identity: &ServerIdentity, change: F) -> Result<PinFile>
    where
        F: FnOnce(&mut PinFile) -> bool,
    {
        self.ensure()?;
        let id = identity_id(identity);
        let lock_path = self.dir.join(format!("{id}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open `{}`", lock_path.display()))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .with_context(|| format!("cannot lock `{}`", lock_path.display()))?;
        let mut file = self.load(&id)?.unwrap_or_else(|| PinFile::new(identity.clone()));
        if change(&mut file) {
            self.write(&id, &file)?;
        }
        // The lock is released when `lock` is closed.
        drop(lock);
        Ok(file)
    }

    /// Write a pin file atomically (the caller holds its lock).
    fn write(&self, id: &str, file: &PinFile) -> Result<()> {
        let text = file.to_json().map_err(anyhow::Error::msg)?;
        let path = self.file_of(id);
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{id}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .with_context(|| format!("cannot write in `{}`", self.dir.display()))?;
        tmp.write_all(text.as_bytes())
            .and_then(|()| tmp.write_all(b"\n"))
            .and_then(|()| tmp.as_file().sync_all())
            .with_context(|| format!("cannot write `{}`", tmp.path().display()))?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Every pin file: `(id, file)`, by id. Files that cannot be read are reported as
    /// errors in the list.
    pub fn list(&self) -> Result<Vec<(String, Result<PinFile>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", self.dir.display())),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                (id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .map(|id| {
                let file = self
                    .load(&id)
                    .and_then(|f| f.with_context(|| format!("pin file {id} vanished")));
                (id, file)
            })
            .collect())
    }

    /// Remove the pins of `id`. Returns whether there were any.
    pub fn remove(&self, id: &str) -> Result<bool> {
        let path = self.file_of(id);
        let removed = match fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).with_context(|| format!("cannot remove `{}`", path.display())),
        };
        let _ = fs::remove_file(self.dir.join(format!("{id}.lock")));
        Ok(removed)
    }
}

/// Now, RFC 3339 (UTC, microseconds).
pub fn now() -> String {
    mcp_j_audit::rfc3339_micros(SystemTime::now())
}

/// What a session remembers between checks.
#[derive(Default)]
struct SessionState {
    /// The pin file as last read or written.
    file: Option<PinFile>,
    /// Tools warned of on stderr (`warn`).
    warned: BTreeSet<String>,
    /// `(tool, digest)` pairs recorded as `tool.changed`.
    reported: BTreeSet<(String, String)>,
    /// Whether a failure to save has been said.
    save_failed: bool,
}

/// One session's [`ToolPins`]: the pins of one server identity, in one mode (`enforce` or
/// `warn`; `off` has no store).
pub struct PinStore {
    dir: PinDir,
    identity: ServerIdentity,
    id: String,
    mode: PinMode,
    seen_with: Option<SeenWith>,
    audit: Arc<AuditLog>,
    state: Mutex<SessionState>,
}

impl PinStore {
    /// The store of `identity` in `dir`. A pin file that exists but cannot be read is an
    /// error (pins are never silently reset).
    pub fn open(
        dir: PinDir,
        identity: ServerIdentity,
        mode: PinMode,
        seen_with: Option<SeenWith>,
        audit: Arc<AuditLog>,
    ) -> Result<PinStore> {
        let id = identity_id(&identity);
        let file = dir.load(&id).with_context(|| {
            format!(
                "cannot read the tool pins of {identity}; remove them with `mcp-j pins rm {id}`, or run with --pins off"
            )
        })?;
        Ok(PinStore {
            dir,
            identity,
            id,
            mode,
            seen_with,
            audit,
            state: Mutex::new(SessionState {
                file,
                ..SessionState::default()
            }),
        })
    }

    /// The verdict on a tool, pinning it when it is new and remembering a changed
    /// definition, under the file's lock.
    fn record(&self, state: &mut SessionState, name: &str, definition: &serde_json::Value, digest: &str) -> Verdict {
        let pin = || ToolPin::new(definition.clone(), digest, now(), self.seen_with.clone());
        let mut verdict = Verdict::New;
        let updated = self.dir.update(&self.identity, |file| {
            verdict = file.check(name, definition, digest);
            match &verdict {
                Verdict::New => file.pin_new(name, pin()),
                // Back to its pin: what was offered before is no longer on offer.
                Verdict::Unchanged => file.offered.remove(name).is_some(),
                Verdict::Changed(_) => file.offer(name, pin()),
            }
        });
        match updated {
            Ok(file) => state.file = Some(file),
            Err(e) => {
                // The verdict stands for this session; the file could not be written.
                let file = state.file.get_or_insert_with(|| PinFile::new(self.identity.clone()));
                verdict = file.check(name, definition, digest);
                match &verdict {
                    Verdict::New => {
                        file.pin_new(name, pin());
                    }
                    Verdict::Changed(_) => {
                        file.offer(name, pin());
                    }
                    Verdict::Unchanged => {
                        file.offered.remove(name);
                    }
                }
                if !state.save_failed {
                    state.save_failed = true;
                    eprintln!("mcp-j: warning: cannot save tool pins (kept for this session only): {e:#}");
                }
            }
        }
        verdict
    }
}

impl ToolPins for PinStore {
    /// A prompt or resource template is filed, reported and accepted under its
    /// [`PinKind::key`] (`prompt:NAME`, `resource-template:NAME`); a tool under its name.
    fn check(&self, kind: PinKind, name: &str, definition: &serde_json::Value, digest: &str) -> PinCheck {
        let key = kind.key(name);
        let name = key.as_str();
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (cached, stale_offer) = state.file.as_ref().map_or((Verdict::New, false), |f| {
            (f.check(name, definition, digest), f.offered.contains_key(name))
        });
        let verdict = match cached {
            Verdict::Unchanged if !stale_offer => Verdict::Unchanged,
            _ => self.record(&mut state, name, definition, digest),
        };
        match verdict {
            Verdict::Unchanged => PinCheck::Pass,
            Verdict::New => {
                let _ = self.audit.tool_pinned(ToolPinned {
                    server: self.identity.to_string(),
                    server_id: self.id.clone(),
                    tool: name.to_string(),
                    digest: digest.to_string(),
                });
                PinCheck::Pass
            }
            Verdict::Changed(fields) => {
                let message = changed_message(&self.identity, name, &fields);
                let hide = self.mode != PinMode::Warn;
                let old_digest = state
                    .file
                    .as_ref()
                    .and_then(|f| f.tools.get(name))
                    .map(|p| p.digest.clone())
                    .unwrap_or_default();
                if state.reported.insert((name.to_string(), digest.to_string())) {
                    let _ = self.audit.tool_changed(ToolChanged {
                        server: self.identity.to_string(),
                        server_id: self.id.clone(),
                        tool: name.to_string(),
                        old_digest,
                        new_digest: digest.to_string(),
                        fields: fields.iter().map(|f| f.as_str().to_string()).collect(),
                        decision: if hide { PinDecision::Hidden } else { PinDecision::Warned },
                    });
                }
                if !hide && state.warned.insert(name.to_string()) {
                    eprintln!("mcp-j: warning: {message}");
                }
                PinCheck::Changed { message, hide }
            }
        }
    }
}

#[cfg(test)]
mod tests;
