//! npm and PyPI installs in the cache (`mcp-j run npm:…` / `pypi:…`): where an install
//! lives, what is recorded about it, and the digest of the installed tree that every run
//! checks before it starts anything.
//!
//! ```text
//! v1/installs/<id>/tree/          the installed files (npm's prefix, or pip's venv), read-only to servers
//! v1/installs/<id>/install.json   the record: what was installed, from where, the lock and the tree's digest
//! v1/installs/<id>.lock           the flock that serialises installers of one id
//! v1/pins/<ecosystem>/<hex>.json  the version a reference without one was pinned to
//! ```
//!
//! `<id>` names the ecosystem, the package and the exact version (a hash, so any name makes
//! a safe directory name). An install directory with no record is unfinished (a killed
//! installer): it is removed before the next attempt.
//!
//! The tree digest ([`tree_digest`]) covers every path, its kind, its executable bit, a
//! file's contents and a link's target, in a canonical order: any change to the installed
//! tree changes it. The record is written last, so a record means a complete install.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mcp_j_policy::package::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Which package registry an install came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// npm (`npm:NAME[@VERSION]`).
    Npm,
    /// PyPI (`pypi:NAME[==VERSION]`).
    Pypi,
}

impl Ecosystem {
    /// `npm` or `pypi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::Pypi => "pypi",
        }
    }
}

/// What is recorded about a finished install (`install.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// The ecosystem.
    pub ecosystem: Ecosystem,
    /// The package name as the registry spells it.
    pub name: String,
    /// The exact version installed.
    pub version: String,
    /// Where it came from: the registry or index URL (without credentials), or the local
    /// archive's path.
    pub source: String,
    /// The digest of the archive for a local one (`npm:./x.tgz`, `pypi:./x.whl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_digest: Option<Digest>,
    /// The resolved dependency tree as the installer wrote it (npm's `package-lock.json`, pip's
    /// report of what it installed), by digest; the file is in the tree.
    pub lock_digest: Digest,
    /// Every `name@version` installed, from the lock, sorted.
    pub resolved: Vec<String>,
    /// The tree's digest when the install finished ([`tree_digest`]).
    pub tree_digest: Digest,
    /// The programs the package provides: (name, path inside the tree).
    pub bins: Vec<(String, String)>,
    /// Seconds since the epoch when the install finished.
    pub installed_at: u64,
}

/// Why an install's tree or record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file system operation failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The tree is not what was installed.
    #[error(
        "the install of {name} in `{}` was changed after it was installed (its tree digest is {actual}, \
         not {expected}): it is not run; remove it with `mcp-j cache rm {expected}` (or `mcp-j pull --force`) \
         to install it again",
        path.display()
    )]
    Tampered {
        /// `ecosystem:name@version`.
        name: String,
        /// The tree's path.
        path: PathBuf,
        /// The recorded digest.
        expected: Digest,
        /// What it is now.
        actual: Digest,
    },
    /// A tree holds something an install never has (a device, a socket, a fifo).
    #[error("`{}` in an install is not a file, directory or link", .0.display())]
    Unexpected(PathBuf),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError + use<> {
    let path = path.to_path_buf();
    move |source| InstallError::Io { action, path, source }
}

/// The id of an install: a hash of the ecosystem, the name and the exact version (or the
/// local archive's digest), as a directory name.
pub fn install_id(ecosystem: Ecosystem, name: &str, version_or_archive: &str) -> String {
    let mut hash = Sha256::new();
    for part in [ecosystem.as_str(), name, version_or_archive] {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let hex: String = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", ecosystem.as_str())
}

/// The digest of the tree under `root`: SHA-256 over a canonical listing of every entry
/// below it, in byte order of the relative paths. Each entry contributes its path, its
/// kind (`d`, `f` or `l`), for a file its executable bit and the SHA-256 of its contents,
/// for a link its target. Anything else (a device, a socket, a fifo) is an error.
pub fn tree_digest(root: &Path) -> Result<Digest, InstallError> {
    // Every entry with its metadata, from one `lstat` each: this runs before every start.
    let mut stack = vec![PathBuf::new()];
    let mut entries: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    while let Some(relative) = stack.pop() {
        let dir = root.join(&relative);
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let entry = entry.map_err(io_error("list", &dir))?;
            let child = relative.join(entry.file_name());
            let meta = entry.metadata().map_err(io_error("stat", &root.join(&child)))?;
            if meta.is_dir() {
                stack.push(child.clone());
            }
            entries.push((child, meta));
        }
    }
    entries.sort_by(|(a, _), (b, _)| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    let mut listing = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    for (relative, meta) in entries {
        let path = root.join(&relative);
        listing.update(relative.as_os_str().as_encoded_bytes());
        listing.update([0u8]);
        let kind = meta.file_type();
        if kind.is_dir() {
            listing.update(b"d");
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_error("read the link", &path))?;
            listing.update(b"l");
            listing.update(target.as_os_str().as_encoded_bytes());
        } else if kind.is_file() {
            listing.update(if meta.mode() & 0o111 != 0 { b"x" } else { b"f" });
            let mut file = fs::File::open(&path).map_err(io_error("open", &path))?;
            let mut contents = Sha256::new();
            loop {
                let n = file.read(&mut buffer).map_err(io_error("read", &path))?;
                if n == 0 {
                    break;
                }
                contents.update(&buffer[..n]);
            }
            listing.update(contents.finalize());
        } else {
            return Err(InstallError::Unexpected(path));
        }
        listing.update([0u8]);
    }
    Ok(crate::digest::digest_of_hash(listing.finalize().into()))
}

/// Checks the tree under `root` against `record`: the run's last word before anything of
/// it starts.
pub fn verify_tree(root: &Path, record: &InstallRecord) -> Result<(), InstallError> {
    let actual = tree_digest(root)?;
    if actual == record.tree_digest {
        return Ok(());
    }
    Err(InstallError::Tampered {
        name: format!("{}:{}@{}", record.ecosystem.as_str(), record.name, record.version),
        path: root.to_path_buf(),
        expected: record.tree_digest.clone(),
        actual,
    })
}

/// Makes a finished tree read-only to its owner too (directories 0555, files 0444 or 0555):
/// a slip of the user's own tools does not change it, and a change shows in the digest.
pub fn seal_tree(root: &Path) -> Result<(), InstallError> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let entry = entry.map_err(io_error("list", &dir))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_error("stat", &path))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                let mode = if meta.mode() & 0o111 != 0 { 0o555 } else { 0o444 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_error("seal", &path))?;
            }
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).map_err(io_error("seal", &dir))?;
    }
    Ok(())
}

/// Removes a tree [`seal_tree`] made read-only (or a half-made one).
pub fn remove_tree(root: &Path) -> Result<(), InstallError> {
    if fs::symlink_metadata(root).is_err() {
        return Ok(());
    }
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    fs::remove_dir_all(root).map_err(io_error("remove", root))
}

/// The installs and pins of one cache ([`crate::cache::Cache::installs`]).
#[derive(Debug, Clone)]
pub struct InstallStore {
    installs: PathBuf,
    pins: PathBuf,
}

/// An exclusive lock on one install id, held until dropped: a second `mcp-j` installing the
/// same package waits, then finds it installed.
#[derive(Debug)]
pub struct InstallLock {
    _file: fs::File,
}

/// A version pinned for a reference that named none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PinFile {
    ecosystem: Ecosystem,
    name: String,
    version: String,
    pinned_at: u64,
}

/// An install as `cache ls` shows it.
#[derive(Debug, Clone)]
pub struct InstalledEntry {
    /// Its id (the directory name).
    pub id: String,
    /// What was recorded.
    pub record: InstallRecord,
    /// Bytes on disk (file sizes).
    pub size: u64,
    /// When it was last used: the install directory's mtime, touched on every run.
    pub last_used: std::time::SystemTime,
}

impl InstallStore {
    /// The store under `installs` and `pins` (created 0700 when missing).
    pub fn open(installs: PathBuf, pins: PathBuf) -> Result<InstallStore, InstallError> {
        for dir in [&installs, &pins] {
            std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
                .create(dir)
                .map_err(io_error("create the directory", dir))?;
        }
        Ok(InstallStore { installs, pins })
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.installs.join(id)
    }

    /// Where the install `id`'s files are (or will be).
    pub fn tree_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("tree")
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("install.json")
    }

    /// Takes the lock of `id`, waiting for another process that holds it.
    pub fn lock(&self, id: &str) -> Result<InstallLock, InstallError> {
        let path = self.installs.join(format!("{id}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error("open the lock file", &path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_error("lock", &path)(io::Error::from(e)))?;
        Ok(InstallLock { _file: file })
    }

    /// The record of a finished install, `None` when there is none (never installed, or an
    /// install that did not finish). Touches the tree's directory (its last use).
    pub fn record(&self, id: &str) -> Result<Option<InstallRecord>, InstallError> {
        let path = self.record_path(id);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path)(e)),
        };
        let record = serde_json::from_slice(&text).map_err(|e| io_error("read", &path)(io::Error::other(e)))?;
        Ok(Some(record))
    }

    /// A fresh, empty tree for `id` (what an unfinished earlier attempt left is removed);
    /// call with the lock held.
    pub fn begin(&self, id: &str) -> Result<PathBuf, InstallError> {
        let dir = self.dir(id);
        remove_tree(&dir)?;
        let tree = self.tree_path(id);
        fs::create_dir_all(&tree).map_err(io_error("create", &tree))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(io_error("create", &dir))?;
        fs::set_permissions(&tree, fs::Permissions::from_mode(0o755)).map_err(io_error("create", &tree))?;
        Ok(tree)
    }

    /// Seals the tree and writes its record (synced): from now on it is installed.
    pub fn finish(&self, id: &str, record: &InstallRecord) -> Result<(), InstallError> {
        let tree = self.tree_path(id);
        seal_tree(&tree)?;
        let path = self.record_path(id);
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| io_error("write", &path)(io::Error::other(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir(id)).map_err(io_error("write", &path))?;
        io::Write::write_all(&mut tmp, &bytes).map_err(io_error("write", &path))?;
        tmp.as_file().sync_all().map_err(io_error("sync", &path))?;
        tmp.persist(&path)
            .map_err(|e| io_error("rename into", &path)(e.error))?;
        Ok(())
    }

    /// Files the finished install `from` under the id `to` (no install there: the caller
    /// removed it, holding both locks).
    pub fn adopt(&self, from: &str, to: &str) -> Result<(), InstallError> {
        let (source, target) = (self.dir(from), self.dir(to));
        fs::rename(&source, &target).map_err(io_error("rename into", &target))?;
        let _ = fs::remove_file(self.installs.join(format!("{from}.lock")));
        Ok(())
    }

    /// Notes a use of the install `id` (its directory's mtime), for `cache ls` and `gc`.
    pub fn touch(&self, id: &str) {
        // Best effort: a failure to note the use must not stop a run.
        if let Ok(dir) = fs::File::open(self.dir(id)) {
            let _ = dir.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes the install `id` (its tree and record).
    pub fn remove(&self, id: &str) -> Result<(), InstallError> {
        remove_tree(&self.dir(id))?;
        let _ = fs::remove_file(self.installs.join(format!("{id}.lock")));
        Ok(())
    }

    /// Every finished install.
    pub fn list(&self) -> Result<Vec<InstalledEntry>, InstallError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.installs).map_err(io_error("list", &self.installs))? {
            let entry = entry.map_err(io_error("list", &self.installs))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            let Some(record) = self.record(&id).ok().flatten() else {
                continue;
            };
            let tree = self.tree_path(&id);
            let last_used = fs::metadata(self.dir(&id))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            out.push(InstalledEntry {
                size: tree_size(&tree),
                id,
                record,
                last_used,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn pin_path(&self, ecosystem: Ecosystem, name: &str) -> PathBuf {
        let hex: String = Sha256::digest(name.as_bytes())
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        self.pins.join(ecosystem.as_str()).join(format!("{hex}.json"))
    }

    /// The version `name` was pinned to, if it was.
    pub fn pinned(&self, ecosystem: Ecosystem, name: &str) -> Option<String> {
        let text = fs::read(self.pin_path(ecosystem, name)).ok()?;
        let pin: PinFile = serde_json::from_slice(&text).ok()?;
        (pin.ecosystem == ecosystem && pin.name == name).then_some(pin.version)
    }

    /// Pins `name` to `version` (replacing an earlier pin).
    pub fn pin(&self, ecosystem: Ecosystem, name: &str, version: &str, now: u64) -> Result<(), InstallError> {
        let path = self.pin_path(ecosystem, name);
        let dir = path.parent().unwrap_or(&self.pins).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        let pin = PinFile {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            pinned_at: now,
        };
        let bytes = serde_json::to_vec(&pin).map_err(|e| io_error("write", &path)(io::Error::other(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_error("write", &path))?;
        io::Write::write_all(&mut tmp, &bytes).map_err(io_error("write", &path))?;
        tmp.persist(&path)
            .map_err(|e| io_error("rename into", &path)(e.error))?;
        Ok(())
    }
}

/// The bytes of the regular files under `root` (not following links).
fn tree_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => dirs.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        fs::create_dir_all(root.join("lib/pkg")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("lib/pkg/index.js"), "console.log(1)\n").unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("package-lock.json"), "{}").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("../lib/pkg/index.js", root.join("lib/run")).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn any_change_to_the_tree_changes_its_digest() {
        let dir = tree();
        let root = dir.path();
        let original = tree_digest(root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tree_digest(root).unwrap_or_else(|e| panic!("{e}")), original, "stable");

        type Change = fn(&Path);
        let changes: [(&str, Change); 6] = [
            ("contents", |r| {
                fs::write(r.join("lib/pkg/index.js"), "console.log(2)\n").unwrap_or_else(|e| panic!("{e}"))
            }),
            ("a new file", |r| {
                fs::write(r.join("lib/extra.js"), "").unwrap_or_else(|e| panic!("{e}"))
            }),
            ("a new directory", |r| {
                fs::create_dir(r.join("lib/empty")).unwrap_or_else(|e| panic!("{e}"))
            }),
            ("the executable bit", |r| {
                fs::set_permissions(r.join("package-lock.json"), fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("{e}"))
            }),
            ("a link's target", |r| {
                fs::remove_file(r.join("lib/run")).unwrap_or_else(|e| panic!("{e}"));
                std::os::unix::fs::symlink("/bin/sh", r.join("lib/run")).unwrap_or_else(|e| panic!("{e}"));
            }),
            ("a removed file", |r| {
                fs::remove_file(r.join("package-lock.json")).unwrap_or_else(|e| panic!("{e}"))
            }),
        ];
        for (what, change) in changes {
            let dir = tree();
            change(dir.path());
            assert_ne!(
                tree_digest(dir.path()).unwrap_or_else(|e| panic!("{e}")),
                original,
                "{what}"
            );
        }
        // The same content elsewhere gives the same digest.
        assert_eq!(tree_digest(tree().path()).unwrap_or_else(|e| panic!("{e}")), original);
    }

    /// The record of npm package x@1.0.0 installed as `tree` is now.
    fn npm_record_of(tree: &Path, bins: Vec<(String, String)>, installed_at: u64) -> InstallRecord {
        let digest = tree_digest(tree).unwrap_or_else(|e| panic!("{e}"));
        InstallRecord {
            ecosystem: Ecosystem::Npm,
            name: "x".into(),
            version: "1.0.0".into(),
            source: "https://registry.npmjs.org/".into(),
            archive_digest: None,
            lock_digest: digest.clone(),
            resolved: vec!["x@1.0.0".into()],
            tree_digest: digest,
            bins,
            installed_at,
        }
    }

    #[test]
    fn verify_refuses_a_changed_tree_naming_the_fix_and_seal_and_remove_work() {
        let dir = tree();
        let root = dir.path().join("t");
        fs::create_dir(&root).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("a"), "a").unwrap_or_else(|e| panic!("{e}"));
        let record = npm_record_of(&root, vec![], 0);
        verify_tree(&root, &record).unwrap_or_else(|e| panic!("{e}"));
        seal_tree(&root).unwrap_or_else(|e| panic!("{e}"));
        let mode = fs::metadata(root.join("a")).unwrap_or_else(|e| panic!("{e}")).mode() & 0o777;
        assert_eq!(mode, 0o444);
        verify_tree(&root, &record).unwrap_or_else(|e| panic!("sealing changes no digest: {e}"));
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        fs::write(root.join("b"), "b").unwrap_or_else(|e| panic!("{e}"));
        let err = verify_tree(&root, &record)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("mcp-j cache rm"), "{err}");
        remove_tree(&root).unwrap_or_else(|e| panic!("{e}"));
        assert!(!root.exists());
    }

    #[test]
    fn the_store_keeps_finished_installs_pins_and_removes_unfinished_ones() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store =
            InstallStore::open(dir.path().join("installs"), dir.path().join("pins")).unwrap_or_else(|e| panic!("{e}"));
        let id = install_id(Ecosystem::Npm, "x", "1.0.0");
        let _lock = store.lock(&id).unwrap_or_else(|e| panic!("{e}"));
        // An unfinished install (no record) is not installed, and a new attempt starts afresh.
        let tree = store.begin(&id).unwrap_or_else(|e| panic!("{e}"));
        fs::write(tree.join("half"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(store.record(&id).unwrap_or_else(|e| panic!("{e}")).is_none());
        let tree = store.begin(&id).unwrap_or_else(|e| panic!("{e}"));
        assert!(!tree.join("half").exists(), "what an interrupted install left is gone");
        fs::write(tree.join("index.js"), "1").unwrap_or_else(|e| panic!("{e}"));
        let record = npm_record_of(&tree, vec![("x".into(), "index.js".into())], 1);
        store.finish(&id, &record).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.record(&id).unwrap_or_else(|e| panic!("{e}")),
            Some(record.clone())
        );
        let listed = store.list().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 1);
        assert!(
            fs::write(tree.join("index.js"), "2").is_err() || nix_root(),
            "sealed read-only"
        );

        // Pins: per ecosystem and name; a later pin replaces an earlier one.
        assert_eq!(store.pinned(Ecosystem::Npm, "x"), None);
        store
            .pin(Ecosystem::Npm, "x", "1.0.0", 1)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .pin(Ecosystem::Npm, "x", "1.1.0", 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.pinned(Ecosystem::Npm, "x").as_deref(), Some("1.1.0"));
        assert_eq!(store.pinned(Ecosystem::Pypi, "x"), None);

        // Adopting a scratch install under its real id.
        let scratch = "npm-resolving-1";
        let _scratch_lock = store.lock(scratch).unwrap_or_else(|e| panic!("{e}"));
        let other = store.begin(scratch).unwrap_or_else(|e| panic!("{e}"));
        fs::write(other.join("a"), "a").unwrap_or_else(|e| panic!("{e}"));
        store.finish(scratch, &record).unwrap_or_else(|e| panic!("{e}"));
        let target = install_id(Ecosystem::Npm, "x", "1.1.0");
        store.adopt(scratch, &target).unwrap_or_else(|e| panic!("{e}"));
        assert!(store.tree_path(&target).join("a").exists());
        store.remove(&id).unwrap_or_else(|e| panic!("{e}"));
        store.remove(&target).unwrap_or_else(|e| panic!("{e}"));
        assert!(store.list().unwrap_or_else(|e| panic!("{e}")).is_empty());
    }

    /// Root writes through a 0444 mode: the seal is then only the mode (the jail's mount is
    /// what keeps a server out).
    fn nix_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn ids_differ_by_each_part() {
        let a = install_id(Ecosystem::Npm, "x", "1.0.0");
        assert_ne!(a, install_id(Ecosystem::Pypi, "x", "1.0.0"));
        assert_ne!(a, install_id(Ecosystem::Npm, "y", "1.0.0"));
        assert_ne!(a, install_id(Ecosystem::Npm, "x", "1.0.1"));
        assert!(a.starts_with("npm-") && a.len() == 4 + 32, "{a}");
    }
}
