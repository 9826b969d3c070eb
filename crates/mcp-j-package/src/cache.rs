//! The content-addressed cache of INTERFACE.md *Packages*: blobs (manifests, bundles,
//! installs) stored by SHA-256 digest, shared safely by concurrent `mcp-j` processes, and the
//! registry's resolve answers kept for offline runs.
//!
//! # Where
//!
//! The root is a parameter ([`Cache::open`]): the caller picks `--cache-dir`, then
//! `MCP_J_CACHE_DIR`, then `cache_dir` in the config, then [`default_root`]
//! (`$XDG_CACHE_HOME/mcp-j`, else `~/.cache/mcp-j` as the XDG spec says). Inside it, a
//! versioned layout (directories created 0700):
//!
//! ```text
//! v1/blobs/sha256/<hex>        the bytes, read-only (0444); present only when they matched
//! v1/meta/sha256/<hex>.json    {kind, size, last_used}: for `cache ls` and `cache gc`
//! v1/locks/sha256-<hex>.lock   the flock that serialises writers of one blob
//! v1/resolve/<hex>.json        one cached resolve answer, keyed by (registry, package, ref)
//! v1/tmp/                      downloads in progress (same file system, so rename is atomic)
//! v1/run/<random>/pkg/         one run's unpacked bundle (`run REF`), removed when it ends
//! ```
//!
//! # How a blob gets in
//!
//! [`Cache::store`] takes the per-blob lock (an exclusive `flock`: a second process wanting
//! the same blob waits), looks whether the blob is already there (then it fetches nothing),
//! else streams the fetcher's bytes through [`HashingReader`] into a temporary file, fsyncs
//! it, and renames it into place only when the digest is the expected one. A mismatch, a
//! cap passed or a failed fetch keeps nothing. An entry that exists was verified by
//! construction, and [`Cache::open_verified`] verifies it again before every use: a blob
//! changed on disk is an error naming the `mcp-j cache rm` that fixes it, never silently
//! fetched again (something modified the cache, and the user should know).
//!
//! # What `cache gc` removes
//!
//! INTERFACE.md gives `cache gc [--max-size SIZE] [--max-age DURATION]` and says no more, so
//! [`Cache::gc`] reads it as: blobs not used for longer than `max_age`; then, least recently
//! used first, blobs until the total is at most `max_size`; and always manifests and bundles
//! that no cached resolve answer names (after a grace period of [`GC_GRACE`], so a blob
//! stored just before its answer is not lost), and temporary files older than [`GC_GRACE`]
//! (left by a killed download), and run directories no running `mcp-j` holds. `install` blobs are removed only by age or size: the npm/PyPI
//! installer, not a resolve answer, refers to them. Resolve answers themselves stay (they
//! are small, and an offline run needs them); `cache rm --all` removes them too.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_j_policy::package::Digest;
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::{HashingReader, cap_exceeded, digest_bytes};

/// How long a temporary file or an unreferenced blob is left alone by [`Cache::gc`].
pub const GC_GRACE: Duration = Duration::from_secs(60 * 60);

/// What a blob is, as `cache ls` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A package manifest (`manifest.json`).
    Manifest,
    /// A package bundle (`.tar.gz`).
    Bundle,
    /// An npm or PyPI install recorded by its lock's digest.
    Install,
}

/// Why the cache could not do something. Messages name the digest or path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file system operation failed.
    #[error("cache: cannot {action} `{}`", path.display())]
    Io {
        /// What was being done (`create`, `read`, `rename into`…).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The fetcher could not deliver the bytes.
    #[error("cannot fetch {digest}")]
    Fetch {
        /// The blob asked for.
        digest: Digest,
        /// The fetcher's error.
        #[source]
        source: io::Error,
    },
    /// The bytes fetched were not the ones asked for: nothing was kept.
    #[error(
        "the data fetched for {expected} hashes to {actual} ({size} bytes): nothing was kept; \
         the registry sent other bytes than its resolve answer names"
    )]
    Mismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what came.
        actual: Digest,
        /// How many bytes came.
        size: u64,
    },
    /// More bytes came than allowed: nothing was kept.
    #[error(
        "the data fetched for {digest} is larger than its limit of {cap} bytes: nothing was kept \
         (a bundle's limit is the resolve answer's `size_bytes` and `--max-bundle-size`)"
    )]
    TooLarge {
        /// The digest asked for.
        digest: Digest,
        /// The limit.
        cap: u64,
    },
    /// A cached blob no longer has the digest it is stored under.
    #[error(
        "the cached blob {digest} at `{}` was changed on disk (it hashes to {actual}): it is not \
         used; remove it with `mcp-j cache rm {digest}` and fetch it again",
        path.display()
    )]
    Tampered {
        /// The digest it is stored under.
        digest: Digest,
        /// What it hashes to now.
        actual: Digest,
        /// Its path.
        path: PathBuf,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError + use<> {
    let path = path.to_path_buf();
    move |source| CacheError::Io { action, path, source }
}

/// The default cache root: `$XDG_CACHE_HOME/mcp-j`, else `$HOME/.cache/mcp-j` (a relative
/// `XDG_CACHE_HOME` is ignored, as the XDG spec says). `None` when neither is set.
pub fn default_root(xdg_cache_home: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    match xdg_cache_home.filter(|p| p.is_absolute()) {
        Some(xdg) => Some(xdg.join("mcp-j")),
        None => home.filter(|p| p.is_absolute()).map(|h| h.join(".cache").join("mcp-j")),
    }
}

/// One cached blob, as `cache ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// What it is, when recorded.
    pub kind: Option<BlobKind>,
    /// When it was last stored or opened (the blob file's time when not recorded).
    pub last_used: SystemTime,
}

/// A blob just verified: the file, at its start, and its size.
#[derive(Debug)]
pub struct VerifiedBlob {
    /// The open file, positioned at its first byte.
    pub file: File,
    /// Its path in the cache.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`Cache::store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The blob's path in the cache.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the fetcher was called (`false`: the blob was already there).
    pub fetched: bool,
}

/// What [`Cache::gc`] may remove besides unreferenced blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Remove blobs not used for longer than this.
    pub max_age: Option<Duration>,
    /// Then remove the least recently used blobs until the total is at most this.
    pub max_size: Option<u64>,
}

/// What [`Cache::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs removed.
    pub removed: Vec<Digest>,
    /// The bytes they held.
    pub freed: u64,
}

/// The key of a cached resolve answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerKey {
    /// The registry's base URL, as the caller normalises it.
    pub registry: String,
    /// `org/name`.
    pub package: String,
    /// The `ref` asked for: a version, `latest` or a digest.
    #[serde(rename = "ref")]
    pub reference: String,
}

/// A resolve answer from the cache and when it was fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    /// Which request it answered.
    pub key: AnswerKey,
    /// When the registry gave it.
    pub fetched_at: SystemTime,
    /// The answer as the registry sent it.
    pub answer: Value,
}

impl CachedAnswer {
    /// How old it is at `now` (zero when its time is ahead of `now`).
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.fetched_at).unwrap_or_default()
    }
}

/// The file format of a cached resolve answer.
#[derive(Serialize, Deserialize)]
struct AnswerFile {
    #[serde(flatten)]
    key: AnswerKey,
    /// Seconds since the Unix epoch.
    fetched_at: u64,
    answer: Value,
}

/// The file format of a blob's metadata.
#[derive(Serialize, Deserialize)]
struct MetaFile {
    kind: BlobKind,
    size: u64,
    /// Seconds since the Unix epoch.
    last_used: u64,
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn from_unix_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// An exclusive `flock` held on a blob's lock file until dropped.
struct BlobLock {
    _file: File,
}

/// A fresh directory for one run's unpacked bundle, `v1/run/<random>/`, private to this
/// process: unpack into [`RunDir::package_path`]. It is `flock`ed while this value lives and
/// removed (with everything in it) when it drops; a directory left by a killed `mcp-j` has
/// a free lock, and [`Cache::gc`] removes it.
///
/// Every run unpacks afresh from the blob it has just verified, rather than keeping an
/// unpacked tree that could be changed on disk between runs without anyone noticing.
#[derive(Debug)]
pub struct RunDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl RunDir {
    /// Where the bundle goes (it does not exist yet).
    pub fn package_path(&self) -> PathBuf {
        self.dir.path().join("pkg")
    }
}

/// The content-addressed cache under one root.
#[derive(Debug, Clone)]
pub struct Cache {
    base: PathBuf,
}

impl Cache {
    /// The cache under `root`, creating its directories (0700) when missing.
    pub fn open(root: impl AsRef<Path>) -> Result<Cache, CacheError> {
        let cache = Cache {
            base: root.as_ref().join("v1"),
        };
        for dir in [
            cache.base.join("blobs").join("sha256"),
            cache.base.join("meta").join("sha256"),
            cache.base.join("locks"),
            cache.base.join("resolve"),
            cache.base.join("tmp"),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_error("create the directory", &dir))?;
        }
        Ok(cache)
    }

    /// Where the blob with `digest` is (or would be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.base.join("blobs").join("sha256").join(digest.hex())
    }

    fn meta_path(&self, digest: &Digest) -> PathBuf {
        self.base
            .join("meta")
            .join("sha256")
            .join(format!("{}.json", digest.hex()))
    }

    fn lock_path(&self, digest: &Digest) -> PathBuf {
        self.base.join("locks").join(format!("sha256-{}.lock", digest.hex()))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.base.join("tmp")
    }

    /// The npm and PyPI installs of this cache, and their pins.
    pub fn installs(&self) -> Result<crate::install::InstallStore, crate::install::InstallError> {
        crate::install::InstallStore::open(self.base.join("installs"), self.base.join("pins"))
    }

    fn run_base(&self) -> PathBuf {
        self.base.join("run")
    }

    /// A new [`RunDir`].
    pub fn run_dir(&self) -> Result<RunDir, CacheError> {
        let base = self.run_base();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&base)
            .map_err(io_error("create the directory", &base))?;
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&base)
            .map_err(io_error("create a directory in", &base))?;
        let lock = File::open(dir.path()).map_err(io_error("open", dir.path()))?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| io_error("lock", dir.path())(io::Error::from(e)))?;
        Ok(RunDir { dir, _lock: lock })
    }

    /// Removes the run directories whose `mcp-j` is gone (their lock is free).
    fn remove_abandoned_run_dirs(&self) -> Result<(), CacheError> {
        let base = self.run_base();
        let entries = match fs::read_dir(&base) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("list", &base)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_error("list", &base))?.path();
            let Ok(dir) = File::open(&path) else { continue };
            if flock(&dir, FlockOperation::NonBlockingLockExclusive).is_ok() {
                fs::remove_dir_all(&path).map_err(io_error("remove", &path))?;
            }
        }
        Ok(())
    }

    /// Whether a blob is stored under `digest` (not verified: [`Cache::open_verified`] is).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Takes the blob's lock, waiting for another process that holds it. The lock file may
    /// be removed by [`Cache::remove`] while we wait: then the lock we got is on a file no
    /// longer at the path, and we take the new one.
    fn lock(&self, digest: &Digest) -> Result<BlobLock, CacheError> {
        let path = self.lock_path(digest);
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_error("open the lock file", &path))?;
            flock(&file, FlockOperation::LockExclusive).map_err(|e| io_error("lock", &path)(io::Error::from(e)))?;
            let held = file.metadata().map_err(io_error("stat", &path))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(BlobLock { _file: file });
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("stat", &path)(e)),
            }
        }
    }

    /// Stores the blob `expected` unless it is already there: `fetch` is called only then,
    /// and what it returns is read through a hashing reader capped at `cap` bytes. The blob
    /// is in the cache afterwards only if its bytes hash to `expected`. A blob already there
    /// is checked as [`Cache::open_verified`] does.
    pub fn store<R: Read>(
        &self,
        expected: &Digest,
        kind: BlobKind,
        cap: u64,
        now: SystemTime,
        fetch: impl FnOnce() -> io::Result<R>,
    ) -> Result<Stored, CacheError> {
        let _lock = self.lock(expected)?;
        let path = self.blob_path(expected);
        if path.is_file() {
            let blob = self.verify_locked(expected, kind, now)?;
            return Ok(Stored {
                path,
                size: blob.size,
                fetched: false,
            });
        }
        let tmp_dir = self.tmp_dir();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("sha256-{}.", expected.hex()))
            .tempfile_in(&tmp_dir)
            .map_err(io_error("create a temporary file in", &tmp_dir))?;
        let source = fetch().map_err(|source| CacheError::Fetch {
            digest: expected.clone(),
            source,
        })?;
        let mut hashing = HashingReader::new(source, cap);
        if let Err(error) = io::copy(&mut hashing, tmp.as_file_mut()) {
            // The temporary file is removed when `tmp` drops.
            return Err(match cap_exceeded(&error) {
                Some(exceeded) => CacheError::TooLarge {
                    digest: expected.clone(),
                    cap: exceeded.cap,
                },
                None => CacheError::Fetch {
                    digest: expected.clone(),
                    source: error,
                },
            });
        }
        let hashed = hashing.finish();
        if hashed.digest != *expected {
            return Err(CacheError::Mismatch {
                expected: expected.clone(),
                actual: hashed.digest,
                size: hashed.size,
            });
        }
        let tmp_path = tmp.path().to_path_buf();
        tmp.as_file().flush().map_err(io_error("write", &tmp_path))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o444))
            .map_err(io_error("make read-only", &tmp_path))?;
        tmp.as_file().sync_all().map_err(io_error("sync", &tmp_path))?;
        tmp.persist(&path)
            .map_err(|e| io_error("rename into", &path)(e.error))?;
        sync_dir(path.parent().unwrap_or(&self.base))?;
        self.write_meta(expected, kind, hashed.size, now)?;
        Ok(Stored {
            path,
            size: hashed.size,
            fetched: true,
        })
    }

    /// Opens the blob `digest` after hashing it again: `None` when it is not cached, an
    /// error when its bytes no longer match (the blob is left for the user to inspect and
    /// remove). Records `now` as its last use.
    pub fn open_verified(&self, digest: &Digest, now: SystemTime) -> Result<Option<VerifiedBlob>, CacheError> {
        if !self.blob_path(digest).is_file() {
            return Ok(None);
        }
        let kind = self.read_meta(digest).map(|m| m.kind);
        let blob = self.verify_file(digest)?;
        if let Some(kind) = kind {
            // Best effort: a failure to note the use must not stop a verified run.
            let _ = self.write_meta(digest, kind, blob.size, now);
        }
        Ok(Some(blob))
    }

    /// Opens the blob `digest` *unverified*, for a caller that verifies it while reading it
    /// once (through a [`HashingReader`] whose digest it compares before using anything
    /// read): `None` when it is not cached. Records `now` as its last use.
    pub fn open_to_verify(&self, digest: &Digest, now: SystemTime) -> Result<Option<File>, CacheError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("open", &path)(e)),
        };
        if let Some(meta) = self.read_meta(digest) {
            // Best effort: a failure to note the use must not stop a run.
            let _ = self.write_meta(digest, meta.kind, meta.size, now);
        }
        Ok(Some(file))
    }

    /// Like [`Cache::open_verified`] with the lock held (inside [`Cache::store`]).
    fn verify_locked(&self, digest: &Digest, kind: BlobKind, now: SystemTime) -> Result<VerifiedBlob, CacheError> {
        let blob = self.verify_file(digest)?;
        self.write_meta(digest, kind, blob.size, now)?;
        Ok(blob)
    }

    fn verify_file(&self, digest: &Digest) -> Result<VerifiedBlob, CacheError> {
        let path = self.blob_path(digest);
        let mut file = File::open(&path).map_err(io_error("open", &path))?;
        let hashed = crate::digest::hash_reader(&mut file, u64::MAX).map_err(io_error("read", &path))?;
        if hashed.digest != *digest {
            return Err(CacheError::Tampered {
                digest: digest.clone(),
                actual: hashed.digest,
                path,
            });
        }
        file.rewind().map_err(io_error("read", &path))?;
        Ok(VerifiedBlob {
            file,
            path,
            size: hashed.size,
        })
    }

    fn read_meta(&self, digest: &Digest) -> Option<MetaFile> {
        let text = fs::read(self.meta_path(digest)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write_meta(&self, digest: &Digest, kind: BlobKind, size: u64, now: SystemTime) -> Result<(), CacheError> {
        let meta = MetaFile {
            kind,
            size,
            last_used: unix_seconds(now),
        };
        let bytes = serde_json::to_vec(&meta).map_err(|e| io_error("encode", &self.meta_path(digest))(e.into()))?;
        write_atomically(&self.tmp_dir(), &self.meta_path(digest), &bytes)
    }

    /// Every blob in the cache, sorted by digest.
    pub fn list(&self) -> Result<Vec<BlobEntry>, CacheError> {
        let dir = self.base.join("blobs").join("sha256");
        let mut entries = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let entry = entry.map_err(io_error("list", &dir))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue; // removed meanwhile
            };
            let meta = self.read_meta(&digest);
            entries.push(BlobEntry {
                size: metadata.len(),
                kind: meta.as_ref().map(|m| m.kind),
                last_used: meta
                    .map(|m| from_unix_seconds(m.last_used))
                    .or_else(|| metadata.modified().ok())
                    .unwrap_or(UNIX_EPOCH),
                digest,
            });
        }
        entries.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(entries)
    }

    /// Removes the blob `digest` (waiting for a process storing it): `false` when it was not
    /// there.
    pub fn remove(&self, digest: &Digest) -> Result<bool, CacheError> {
        let _lock = self.lock(digest)?;
        let path = self.blob_path(digest);
        let removed = match fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_error("remove", &path)(e)),
        };
        let meta = self.meta_path(digest);
        match fs::remove_file(&meta) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &meta)(e)),
        }
        // Removed while held: a process waiting on it sees the path changed and retries.
        let lock = self.lock_path(digest);
        let _ = fs::remove_file(&lock);
        Ok(removed)
    }

    /// Removes every blob and every cached resolve answer (`cache rm --all`). Returns the
    /// blobs removed.
    pub fn remove_all(&self) -> Result<Vec<Digest>, CacheError> {
        let mut removed = Vec::new();
        for entry in self.list()? {
            if self.remove(&entry.digest)? {
                removed.push(entry.digest);
            }
        }
        let dir = self.base.join("resolve");
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let path = entry.map_err(io_error("list", &dir))?.path();
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &path)(e)),
            }
        }
        Ok(removed)
    }

    /// Removes what the module documentation lists under *What `cache gc` removes*.
    pub fn gc(&self, options: GcOptions, now: SystemTime) -> Result<GcReport, CacheError> {
        self.remove_stale_temporaries(now)?;
        self.remove_abandoned_run_dirs()?;
        let referenced = self.referenced_digests()?;
        let mut report = GcReport::default();
        let mut kept = Vec::new();
        for entry in self.list()? {
            let idle = now.duration_since(entry.last_used).unwrap_or_default();
            let too_old = options.max_age.is_some_and(|max| idle > max);
            let unreferenced =
                entry.kind != Some(BlobKind::Install) && !referenced.contains(&entry.digest) && idle > GC_GRACE;
            if too_old || unreferenced {
                if self.remove(&entry.digest)? {
                    report.freed += entry.size;
                    report.removed.push(entry.digest);
                }
            } else {
                kept.push(entry);
            }
        }
        if let Some(max_size) = options.max_size {
            // Oldest use first; the digest breaks ties so the order is stable.
            kept.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.digest.cmp(&b.digest)));
            let mut total: u64 = kept.iter().map(|e| e.size).sum();
            for entry in kept {
                if total <= max_size {
                    break;
                }
                if self.remove(&entry.digest)? {
                    report.freed += entry.size;
                    report.removed.push(entry.digest);
                }
                total -= entry.size;
            }
        }
        report.removed.sort();
        Ok(report)
    }

    fn remove_stale_temporaries(&self, now: SystemTime) -> Result<(), CacheError> {
        let dir = self.tmp_dir();
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let entry = entry.map_err(io_error("list", &dir))?;
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| now.duration_since(modified).unwrap_or_default() > GC_GRACE);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// The manifest and bundle digests every cached resolve answer names.
    fn referenced_digests(&self) -> Result<BTreeSet<Digest>, CacheError> {
        let mut digests = BTreeSet::new();
        for answer in self.all_answers()? {
            for artifact in ["manifest", "bundle"] {
                if let Some(digest) = answer.answer["resolved"][artifact]["digest"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                {
                    digests.insert(digest);
                }
            }
        }
        Ok(digests)
    }

    fn answer_path(&self, key: &AnswerKey) -> PathBuf {
        // Hash the key so any registry URL, name or ref makes a safe file name.
        let id = format!("{}\n{}\n{}", key.registry, key.package, key.reference);
        self.base
            .join("resolve")
            .join(format!("{}.json", digest_bytes(id.as_bytes()).hex()))
    }

    /// Keeps `answer`, the registry's answer to `key`, fetched at `fetched_at`, replacing
    /// an older one.
    pub fn save_answer(&self, key: &AnswerKey, answer: &Value, fetched_at: SystemTime) -> Result<(), CacheError> {
        let path = self.answer_path(key);
        let file = AnswerFile {
            key: key.clone(),
            fetched_at: unix_seconds(fetched_at),
            answer: answer.clone(),
        };
        let bytes = serde_json::to_vec(&file).map_err(|e| io_error("encode", &path)(e.into()))?;
        write_atomically(&self.tmp_dir(), &path, &bytes)
    }

    /// The cached answer to `key` if it is at most `max_age` old at `now` (issue 10's
    /// offline rule, `policy.offline_max_age`). An answer from the future (the clock went
    /// back) does not count as fresh. A missing or unreadable one is `None`.
    pub fn load_answer(&self, key: &AnswerKey, now: SystemTime, max_age: Duration) -> Option<CachedAnswer> {
        let answer = read_answer(&self.answer_path(key))?;
        let fresh = now.duration_since(answer.fetched_at).is_ok_and(|age| age <= max_age);
        (fresh && answer.key == *key).then_some(answer)
    }

    /// Every cached answer for `package` from `registry`, newest fetch first: what an
    /// offline `latest` chooses from.
    pub fn answers_for(&self, registry: &str, package: &str) -> Result<Vec<CachedAnswer>, CacheError> {
        let mut answers: Vec<_> = self
            .all_answers()?
            .into_iter()
            .filter(|a| a.key.registry == registry && a.key.package == package)
            .collect();
        answers.sort_by_key(|a| std::cmp::Reverse(a.fetched_at));
        Ok(answers)
    }

    fn all_answers(&self) -> Result<Vec<CachedAnswer>, CacheError> {
        let dir = self.base.join("resolve");
        let mut answers = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_error("list", &dir))? {
            let path = entry.map_err(io_error("list", &dir))?.path();
            if let Some(answer) = read_answer(&path) {
                answers.push(answer);
            }
        }
        Ok(answers)
    }
}

fn read_answer(path: &Path) -> Option<CachedAnswer> {
    let bytes = fs::read(path).ok()?;
    let file: AnswerFile = serde_json::from_slice(&bytes).ok()?;
    Some(CachedAnswer {
        key: file.key,
        fetched_at: from_unix_seconds(file.fetched_at),
        answer: file.answer,
    })
}

/// Writes `bytes` to `path` through a temporary file in `tmp_dir` and a rename, so a reader
/// sees the old content or the new, never a part.
/// Replaces `path` with `bytes` through a temporary file and a rename: readers see the old
/// or the new contents, never a part. Not synced: these are bookkeeping files (a blob's last
/// use, a cached resolve answer), rewritten on every run; a crash may lose the latest
/// version, and a file that does not parse is treated as absent.
fn write_atomically(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).map_err(io_error("create a temporary file in", tmp_dir))?;
    tmp.write_all(bytes).map_err(io_error("write", path))?;
    tmp.persist(path).map_err(|e| io_error("rename into", path)(e.error))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", dir))
}

#[cfg(test)]
mod tests;
