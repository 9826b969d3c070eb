//! The registry's store in its root directory:
//!
//! - `registry.db`: SQLite (WAL, `synchronous=FULL`, a busy timeout so `registry token
//!   create` can write while the server runs) for packages, versions, which artifacts each
//!   org uploaded, token hashes and users.
//! - `blobs/sha256/<hex>`: artifacts by content, each written to `tmp/`, fsynced and renamed
//!   into place (then the directory fsynced), so a blob is whole or absent and two uploads
//!   of the same bytes leave one correct file.
//!
//! All metadata changes of one request happen in one transaction.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use mcp_j_policy::package::Digest;
use mcp_j_policy::{CertLevel, Origin, PackageStatus};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Scope, ServerError, Visibility};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packages (
    org TEXT NOT NULL, name TEXT NOT NULL, visibility TEXT NOT NULL, created_at INTEGER NOT NULL,
    PRIMARY KEY (org, name));
CREATE TABLE IF NOT EXISTS versions (
    org TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    manifest_digest TEXT NOT NULL, bundle_digest TEXT NOT NULL, bundle_size INTEGER NOT NULL,
    git_sha TEXT, status TEXT NOT NULL, certification_level INTEGER NOT NULL, origin TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, name, version));
CREATE TABLE IF NOT EXISTS artifacts (
    org TEXT NOT NULL, digest TEXT NOT NULL, kind TEXT NOT NULL, size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (org, digest, kind));
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, scope TEXT NOT NULL, org TEXT, expires_at INTEGER,
    kind TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, scope TEXT NOT NULL, org TEXT,
    created_at INTEGER NOT NULL);
PRAGMA user_version = 1;
";

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The kind of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Manifest,
    Bundle,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Bundle => "bundle",
        }
    }
}

/// One version as stored.
#[derive(Debug, Clone)]
pub(crate) struct VersionRow {
    pub version: String,
    pub manifest_digest: Digest,
    pub bundle_digest: Digest,
    pub bundle_size: u64,
    pub git_sha: Option<String>,
    pub status: PackageStatus,
    pub level: CertLevel,
    pub origin: Origin,
}

/// A new version's content (what makes a re-push the same or a conflict).
pub(crate) struct NewVersion<'a> {
    pub org: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub manifest_digest: &'a Digest,
    pub bundle_digest: &'a Digest,
    pub bundle_size: u64,
    pub git_sha: Option<&'a str>,
}

/// What inserting a version did.
pub(crate) enum Inserted {
    /// A new version.
    Created(VersionRow),
    /// The same content was already there.
    Same(VersionRow),
    /// That version exists with other content.
    Conflict(VersionRow),
}

/// One token or login as stored.
pub(crate) struct StoredGrant {
    pub scope: Scope,
    pub org: Option<String>,
    pub expires_at: Option<i64>,
}

/// The store of one root directory.
pub(crate) struct Store {
    root: PathBuf,
    db: Mutex<Connection>,
}

fn db_error(root: &Path, source: rusqlite::Error) -> ServerError {
    ServerError::Database {
        path: root.join("registry.db"),
        source,
    }
}

impl Store {
    /// Open (creating if needed) the store in `root`.
    pub(crate) fn open(root: &Path) -> Result<Store, ServerError> {
        for dir in [root.to_path_buf(), root.join("blobs/sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(|source| ServerError::Io {
                path: dir.clone(),
                what: "creating the store directory",
                source,
            })?;
        }
        let db_path = root.join("registry.db");
        let db = Connection::open(&db_path).map_err(|e| db_error(root, e))?;
        // Token and password hashes: for the registry's user only (SQLite gives its -wal
        // and -shm files the same mode).
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&db_path, fs::Permissions::from_mode(0o600)).map_err(|source| ServerError::Io {
                path: db_path.clone(),
                what: "restricting the database to its owner",
                source,
            })?;
        }
        db.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_error(root, e))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_error(root, e))?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| db_error(root, e))?;
        db.execute_batch(SCHEMA).map_err(|e| db_error(root, e))?;
        Ok(Store {
            root: root.to_path_buf(),
            db: Mutex::new(db),
        })
    }

    /// Where the blob of `digest` lives.
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Remove uploads a crash left behind in `tmp/` (older than a day, so that another
    /// server on the same root keeps the uploads it has in progress).
    pub(crate) fn remove_stale_uploads(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
            if stale && entry.file_name().to_string_lossy().starts_with("upload-") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The directory for uploads in progress (same file system as the blobs).
    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, ServerError> {
        let mut db = self.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut db).map_err(|e| db_error(&self.root, e))
    }

    pub(crate) fn record_artifact(&self, org: &str, digest: &Digest, kind: Kind, size: u64) -> Result<(), ServerError> {
        self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO artifacts (org, digest, kind, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org, digest.as_str(), kind.as_str(), size_i64(size), now()],
            )
            .map(drop)
        })
    }

    /// The size of an artifact `org` uploaded, if it did.
    pub(crate) fn artifact_size(&self, org: &str, digest: &Digest, kind: Kind) -> Result<Option<u64>, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT size FROM artifacts WHERE org = ?1 AND digest = ?2 AND kind = ?3",
                params![org, digest.as_str(), kind.as_str()],
                |row| row.get::<_, i64>(0),
            )
            .optional()
        })
        .map(|size| size.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// Whether a version of a public package of `org` names this artifact (then anyone
    /// may read it; otherwise only a token with `read` on the org).
    pub(crate) fn artifact_is_public(&self, org: &str, digest: &Digest) -> Result<bool, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT EXISTS (SELECT 1 FROM versions v JOIN packages p ON p.org = v.org AND p.name = v.name
                 WHERE v.org = ?1 AND p.visibility = 'public' AND (v.manifest_digest = ?2 OR v.bundle_digest = ?2))",
                params![org, digest.as_str()],
                |row| row.get(0),
            )
        })
    }

    pub(crate) fn visibility(&self, org: &str, name: &str) -> Result<Option<Visibility>, ServerError> {
        let text: Option<String> = self.with(|db| {
            db.query_row(
                "SELECT visibility FROM packages WHERE org = ?1 AND name = ?2",
                params![org, name],
                |row| row.get(0),
            )
            .optional()
        })?;
        Ok(text.map(|t| {
            if t == "private" {
                Visibility::Private
            } else {
                Visibility::Public
            }
        }))
    }

    pub(crate) fn set_visibility(&self, org: &str, name: &str, visibility: Visibility) -> Result<bool, ServerError> {
        self.with(|db| {
            db.execute(
                "UPDATE packages SET visibility = ?3 WHERE org = ?1 AND name = ?2",
                params![org, name, visibility.as_str()],
            )
        })
        .map(|n| n > 0)
    }

    pub(crate) fn versions(&self, org: &str, name: &str) -> Result<Vec<VersionRow>, ServerError> {
        self.with(|db| {
            let mut statement = db.prepare(
                "SELECT version, manifest_digest, bundle_digest, bundle_size, git_sha, status, certification_level, origin
                 FROM versions WHERE org = ?1 AND name = ?2",
            )?;
            let rows = statement.query_map(params![org, name], version_row)?;
            rows.collect()
        })
    }

    /// Insert a version (creating its package with `visibility` if new), or say it exists.
    pub(crate) fn insert_version(&self, new: &NewVersion<'_>, visibility: Visibility) -> Result<Inserted, ServerError> {
        self.with(|db| {
            let tx = db.transaction()?;
            let existing = tx
                .query_row(
                    "SELECT version, manifest_digest, bundle_digest, bundle_size, git_sha, status, certification_level, origin
                     FROM versions WHERE org = ?1 AND name = ?2 AND version = ?3",
                    params![new.org, new.name, new.version],
                    version_row,
                )
                .optional()?;
            if let Some(row) = existing {
                let same = row.manifest_digest == *new.manifest_digest && row.git_sha.as_deref() == new.git_sha;
                return Ok(if same { Inserted::Same(row) } else { Inserted::Conflict(row) });
            }
            tx.execute(
                "INSERT OR IGNORE INTO packages (org, name, visibility, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![new.org, new.name, visibility.as_str(), now()],
            )?;
            tx.execute(
                "INSERT INTO versions (org, name, version, manifest_digest, bundle_digest, bundle_size, git_sha,
                 status, certification_level, origin, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'published', 0, 'community', ?8)",
                params![
                    new.org,
                    new.name,
                    new.version,
                    new.manifest_digest.as_str(),
                    new.bundle_digest.as_str(),
                    size_i64(new.bundle_size),
                    new.git_sha,
                    now()
                ],
            )?;
            tx.commit()?;
            Ok(Inserted::Created(VersionRow {
                version: new.version.to_owned(),
                manifest_digest: new.manifest_digest.clone(),
                bundle_digest: new.bundle_digest.clone(),
                bundle_size: new.bundle_size,
                git_sha: new.git_sha.map(str::to_owned),
                status: PackageStatus::Published,
                level: CertLevel::default(),
                origin: Origin::Community,
            }))
        })
    }

    /// Change a version's status, level and origin (each when given); `None` when there
    /// is no such version.
    pub(crate) fn patch_version(
        &self,
        org: &str,
        name: &str,
        version: &str,
        status: Option<PackageStatus>,
        level: Option<CertLevel>,
        origin: Option<Origin>,
    ) -> Result<Option<VersionRow>, ServerError> {
        self.with(|db| {
            let tx = db.transaction()?;
            let n = tx.execute(
                "UPDATE versions SET status = COALESCE(?4, status),
                 certification_level = COALESCE(?5, certification_level), origin = COALESCE(?6, origin)
                 WHERE org = ?1 AND name = ?2 AND version = ?3",
                params![
                    org,
                    name,
                    version,
                    status.map(PackageStatus::as_str),
                    level.map(CertLevel::get),
                    origin.map(Origin::as_str)
                ],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let row = tx.query_row(
                "SELECT version, manifest_digest, bundle_digest, bundle_size, git_sha, status, certification_level, origin
                 FROM versions WHERE org = ?1 AND name = ?2 AND version = ?3",
                params![org, name, version],
                version_row,
            )?;
            tx.commit()?;
            Ok(Some(row))
        })
    }

    /// Every package: org, name, visibility.
    pub(crate) fn packages(&self) -> Result<Vec<(String, String, Visibility)>, ServerError> {
        self.with(|db| {
            let mut statement = db.prepare("SELECT org, name, visibility FROM packages ORDER BY org, name")?;
            let rows = statement.query_map([], |row| {
                let visibility: String = row.get(2)?;
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    if visibility == "private" {
                        Visibility::Private
                    } else {
                        Visibility::Public
                    },
                ))
            })?;
            rows.collect()
        })
    }

    pub(crate) fn insert_token(
        &self,
        hash: &str,
        scope: Scope,
        org: Option<&str>,
        expires_at: Option<i64>,
        kind: &str,
    ) -> Result<(), ServerError> {
        self.with(|db| {
            // Expired logins are swept as new ones are made.
            db.execute(
                "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?1",
                params![now()],
            )?;
            db.execute(
                "INSERT INTO tokens (hash, scope, org, expires_at, kind, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![hash, scope.as_str(), org, expires_at, kind, now()],
            )
            .map(drop)
        })
    }

    pub(crate) fn token(&self, hash: &str) -> Result<Option<StoredGrant>, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT scope, org, expires_at FROM tokens WHERE hash = ?1",
                params![hash],
                |row| {
                    let scope: String = row.get(0)?;
                    Ok(StoredGrant {
                        scope: scope.parse().unwrap_or(Scope::Read),
                        org: row.get(1)?,
                        expires_at: row.get(2)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Add a user; `false` when the name is taken.
    pub(crate) fn insert_user(
        &self,
        name: &str,
        password_hash: &str,
        scope: Scope,
        org: Option<&str>,
    ) -> Result<bool, ServerError> {
        self.with(|db| {
            db.execute(
                "INSERT OR IGNORE INTO users (name, password_hash, scope, org, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, password_hash, scope.as_str(), org, now()],
            )
        })
        .map(|n| n > 0)
    }

    /// A user's password hash and grant.
    pub(crate) fn user(&self, name: &str) -> Result<Option<(String, Scope, Option<String>)>, ServerError> {
        self.with(|db| {
            db.query_row(
                "SELECT password_hash, scope, org FROM users WHERE name = ?1",
                params![name],
                |row| {
                    let scope: String = row.get(1)?;
                    Ok((row.get(0)?, scope.parse().unwrap_or(Scope::Read), row.get(2)?))
                },
            )
            .optional()
        })
    }
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn version_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VersionRow> {
    let bad =
        |i: usize, why: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, why.into());
    let manifest: String = row.get(1)?;
    let bundle: String = row.get(2)?;
    let size: i64 = row.get(3)?;
    let status: String = row.get(5)?;
    let level: i64 = row.get(6)?;
    let origin: String = row.get(7)?;
    Ok(VersionRow {
        version: row.get(0)?,
        manifest_digest: manifest.parse().map_err(|e| bad(1, e))?,
        bundle_digest: bundle.parse().map_err(|e| bad(2, e))?,
        bundle_size: u64::try_from(size).unwrap_or(0),
        git_sha: row.get(4)?,
        status: status.parse().map_err(|e| bad(5, e))?,
        level: CertLevel::new(u64::try_from(level).unwrap_or(u64::MAX)).map_err(|e| bad(6, e))?,
        origin: origin.parse().map_err(|e| bad(7, e))?,
    })
}
