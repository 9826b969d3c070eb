//! A host uid and gid of its own for each jail of a root caller.
//!
//! # Overview
//!
//! An unprivileged caller's jail maps to the caller's own ids (the only ones it may map).
//! A root caller's jail must not run as host root, and must not share a host uid with
//! anything else either: with the old shared `nobody` (65534), any host daemon running as
//! nobody could signal the jailed program, and per-user kernel quotas were shared. So the
//! supervisor [`claim`]s one id from a reserved block, [`RANGE_START`] ..
//! [`RANGE_START`] + [`RANGE_LEN`], and passes it to the jail in the spec (uid = gid).
//!
//! # The claim
//!
//! One lock file per id under [`LOCK_DIR`] (a root-only directory, made `0700` if
//! missing), held with `flock(LOCK_EX | LOCK_NB)` for the life of the supervisor: two live
//! jails never hold the same id, and a claim is released by the kernel when the
//! supervisor's descriptor closes, however it ends (the jail cannot outlive the
//! supervisor: the helper has a parent-death signal and the PID namespace dies with its
//! init). Lock files stay (at most [`RANGE_LEN`] empty files); removing one would race
//! with a claimer that opened it just before.
//!
//! Ids named in the host's `/etc/passwd` or `/etc/group` are skipped. The search starts at
//! an offset from the supervisor's pid so concurrent supervisors rarely try the same
//! files, and tries each id of the block at most once.
//!
//! # Why this block
//!
//! `0x6d630000` ("mc") to `0x6d63ffff`: far above the ranges distributions allocate
//! (system ids < 1000, users < 60000, systemd's dynamic users 61184–65519, its
//! container ranges 524288–1879048191 in 65536 blocks only via `systemd-nspawn
//! -U`/`userdbd`), below 2^31 (some tools treat larger ids as negative) and not
//! 65534/4294967295. It can overlap systemd-nspawn's container range
//! (0x00080000–0x6fffffff) in theory: a host that runs such containers can spot our ids
//! by their lock files.
//!
//! # Test strategy
//!
//! Unit tests against a temporary lock directory and fake passwd/group texts: ids in
//! use are skipped, two live claims differ, a dropped claim is reusable, a full block is
//! an error.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use thiserror::Error;

use crate::spec::HostIds;

/// The first id of the reserved block.
pub const RANGE_START: u32 = 0x6d63_0000;
/// How many ids the block holds.
pub const RANGE_LEN: u32 = 0x1_0000;
/// Where the lock files live.
pub const LOCK_DIR: &str = "/run/mcp-j/uids";

/// Why no id could be claimed.
#[derive(Debug, Error)]
pub enum ClaimError {
    /// The lock directory could not be made or is not safe.
    #[error("cannot use the host id lock directory `{}`: {reason}", path.display())]
    LockDir {
        /// The directory.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// Every id of the block is held by a live jail or named in passwd/group.
    #[error(
        "every host id of {RANGE_START}..{} is in use (by live jails or in /etc/passwd, /etc/group)",
        RANGE_START as u64 + RANGE_LEN as u64
    )]
    Exhausted,
}

/// A claimed id, released when this is dropped.
#[derive(Debug)]
pub struct HostIdClaim {
    ids: HostIds,
    _lock: File,
}

impl HostIdClaim {
    /// The claimed ids (uid = gid).
    #[must_use]
    pub fn ids(&self) -> HostIds {
        self.ids
    }
}

/// Claims an id on the real system ([`LOCK_DIR`], `/etc/passwd`, `/etc/group`).
pub fn claim_for_root_caller() -> Result<HostIdClaim, ClaimError> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    claim(Path::new(LOCK_DIR), &ids_in_use(&passwd, &group), std::process::id())
}

/// Claims the first free id of the block, starting `start_hint` ids into it; `in_use`
/// lists ids that must never be chosen.
pub fn claim(lock_dir: &Path, in_use: &[u32], start_hint: u32) -> Result<HostIdClaim, ClaimError> {
    prepare_lock_dir(lock_dir)?;
    for step in 0..RANGE_LEN {
        let id = RANGE_START + (start_hint.wrapping_add(step) % RANGE_LEN);
        if in_use.contains(&id) {
            continue;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(lock_dir.join(id.to_string()))
            .map_err(|e| lock_dir_error(lock_dir, format!("cannot open a lock file: {e}")))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(HostIdClaim {
                ids: HostIds { uid: id, gid: id },
                _lock: file,
            });
        }
    }
    Err(ClaimError::Exhausted)
}

/// Makes the directory (0700) if missing, and checks that only its owner, this process's
/// user, can write there: anyone else could hold our locks.
fn prepare_lock_dir(dir: &Path) -> Result<(), ClaimError> {
    match fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(lock_dir_error(dir, e.to_string())),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| lock_dir_error(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(lock_dir_error(dir, "not a directory".into()));
    }
    if meta.uid() != rustix::process::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(lock_dir_error(
            dir,
            format!(
                "owned by uid {} with mode {:o}; it must be owned by this user and writable by no one else",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

fn lock_dir_error(dir: &Path, reason: String) -> ClaimError {
    ClaimError::LockDir {
        path: dir.to_path_buf(),
        reason,
    }
}

/// The numeric ids (third field) of passwd and group lines.
#[must_use]
pub fn ids_in_use(passwd: &str, group: &str) -> Vec<u32> {
    passwd
        .lines()
        .chain(group.lines())
        .filter_map(|line| line.split(':').nth(2)?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn lock_dir() -> (TempDir, PathBuf) {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("run/mcp-j/uids");
        (tmp, dir)
    }

    #[test]
    fn two_live_claims_differ_and_a_released_one_is_reused() {
        let (_tmp, dir) = lock_dir();
        let a = claim(&dir, &[], 0).unwrap();
        let b = claim(&dir, &[], 0).unwrap();
        assert_eq!(a.ids().uid, RANGE_START);
        assert_eq!(b.ids().uid, RANGE_START + 1);
        assert_eq!(a.ids().uid, a.ids().gid);
        drop(a);
        let c = claim(&dir, &[], 0).unwrap();
        assert_eq!(c.ids().uid, RANGE_START, "released with its descriptor");
        let mode = fs::metadata(&dir).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn ids_in_use_are_skipped_and_the_hint_wraps() {
        let (_tmp, dir) = lock_dir();
        let used = ids_in_use(
            &format!(
                "root:x:0:0::/root:/bin/sh\nx:x:{}:5::/:/bin/sh\nbad line\n",
                RANGE_START
            ),
            &format!("g:x:{}:\n", RANGE_START + 1),
        );
        assert_eq!(used, [0, RANGE_START, RANGE_START + 1]);
        assert_eq!(claim(&dir, &used, 0).unwrap().ids().uid, RANGE_START + 2);
        let last = claim(&dir, &used, RANGE_LEN - 1).unwrap();
        assert_eq!(last.ids().uid, RANGE_START + RANGE_LEN - 1);
        let wrapped = claim(&dir, &used, RANGE_LEN - 1).unwrap();
        assert_eq!(
            wrapped.ids().uid,
            RANGE_START + 2,
            "wraps past the end, skipping used ids"
        );
    }

    #[test]
    fn a_full_block_is_an_error() {
        let (_tmp, dir) = lock_dir();
        let all: Vec<u32> = (RANGE_START..RANGE_START + RANGE_LEN).collect();
        let error = claim(&dir, &all, 0).unwrap_err();
        assert!(matches!(error, ClaimError::Exhausted), "{error:?}");
    }

    #[test]
    fn an_unsafe_lock_dir_is_refused() {
        let (_tmp, dir) = lock_dir();
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let error = claim(&dir, &[], 0).unwrap_err();
        assert!(error.to_string().contains("writable by no one else"), "{error}");
    }
}
