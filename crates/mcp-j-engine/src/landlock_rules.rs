//! Landlock over the same picture as the mounts: everything visible may be read; only the
//! writable places may be written; only system directories, `--ro` paths and the program
//! may be executed; no TCP bind, and TCP connect only to the egress listeners' ports (with
//! `--allow-net`; none without); abstract unix sockets and signals scoped
//! to the jail. A second, independent wall: a mistake in the mount plan does not by itself
//! open a hole.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope,
};

use crate::report::LayerStatus;

/// The newest ABI whose every right we have vetted and ask for.
const REQUESTED_ABI: ABI = ABI::V6;

/// What may be done where, inside the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsPolicy {
    /// Read-only everywhere below these.
    pub read: Vec<PathBuf>,
    /// Read, write, create, remove below these; never execute.
    pub write: Vec<PathBuf>,
    /// Read and execute below these. Must be read-only, nodev mounts: they are also
    /// granted truncate and device ioctls, which such mounts refuse anyway.
    pub exec: Vec<PathBuf>,
    /// Device files that may be opened for writing (`/dev/null`, …).
    pub devices: Vec<PathBuf>,
    /// TCP ports the jail may connect to: the egress listeners init bound (`--allow-net`),
    /// none without an allowlist. No TCP bind is ever allowed.
    pub connect_ports: Vec<u16>,
}

/// Rights for writable places: all write rights except making device nodes and device
/// ioctls.
fn write_access() -> BitFlags<AccessFs> {
    let mut w = AccessFs::from_all(REQUESTED_ABI);
    w.remove(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::IoctlDev);
    w
}

/// Rights for executable places. These are always read-only, nodev mounts, so granting
/// truncate and device ioctls there adds nothing the mount does not already refuse — and
/// it lets Landlock stop its walk up the tree at the rule on every open of a system file
/// (it looks for those optional rights on each open), instead of climbing to `/`.
fn exec_access() -> BitFlags<AccessFs> {
    read_access() | AccessFs::Execute | AccessFs::Truncate | AccessFs::IoctlDev
}

fn read_access() -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir
}

/// Restrict the calling thread (and what it executes). Best effort on older kernels: the
/// returned status says how much is enforced; the caller refuses `Absent`.
pub fn restrict_self(policy: &FsPolicy) -> Result<LayerStatus, RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(REQUESTED_ABI))?
        .handle_access(AccessNet::from_all(REQUESTED_ABI))?
        .scope(Scope::from_all(REQUESTED_ABI))?
        .create()?
        // Enforcing a ruleset needs no_new_privs (or CAP_SYS_ADMIN): the crate sets it in
        // restrict_self by default; asked for here so that no default can drop it.
        .no_new_privs(true);
    let groups: [(&[PathBuf], BitFlags<AccessFs>); 4] = [
        (&policy.read, read_access()),
        (&policy.write, read_access() | write_access()),
        (&policy.exec, exec_access()),
        (&policy.devices, AccessFs::ReadFile | AccessFs::WriteFile),
    ];
    for (paths, access) in groups {
        for path in paths {
            let Some((fd, is_dir)) = open_path(path) else {
                continue;
            };
            let access = if is_dir {
                access
            } else {
                access & AccessFs::from_file(REQUESTED_ABI)
            };
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    // TCP connect only to the egress listeners' ports (they are the jail's own, on its
    // loopback: no route leads anywhere else); TCP bind never.
    for &port in &policy.connect_ports {
        ruleset = ruleset.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
    }
    let status = ruleset.restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LayerStatus::Enforced,
        RulesetStatus::PartiallyEnforced => LayerStatus::Partial,
        RulesetStatus::NotEnforced => LayerStatus::Absent,
    })
}

/// The errno of the system call under a Landlock error (`landlock_create_ruleset`,
/// `landlock_add_rule`, `landlock_restrict_self`, `prctl`), found down its chain of
/// sources; `None` for an error of the ruleset itself (rights this crate cannot express).
#[must_use]
pub fn errno_of(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(errno) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(errno);
        }
        cause = e.source();
    }
    None
}

/// Open a rule's path; a path that does not exist in the jail has nothing to allow.
fn open_path(path: &Path) -> Option<(PathFd, bool)> {
    let meta = std::fs::metadata(path).ok()?;
    let fd = PathFd::new(path).ok()?;
    Some((fd, meta.is_dir()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_places_can_never_execute_or_make_devices() {
        let w = write_access();
        for forbidden in [
            AccessFs::Execute,
            AccessFs::MakeChar,
            AccessFs::MakeBlock,
            AccessFs::IoctlDev,
        ] {
            assert!(!w.contains(forbidden), "{forbidden:?}");
        }
        for needed in [
            AccessFs::WriteFile,
            AccessFs::MakeReg,
            AccessFs::MakeDir,
            AccessFs::RemoveFile,
            AccessFs::Truncate,
        ] {
            assert!(w.contains(needed), "{needed:?}");
        }
    }

    /// An error wrapping another, as the landlock crate's `RulesetError` wraps the io
    /// error of the failed system call.
    #[derive(Debug)]
    struct Wrapped(Box<dyn std::error::Error + 'static>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[test]
    fn the_errno_of_the_failed_call_is_found_down_the_chain() {
        let call = std::io::Error::from_raw_os_error(libc::E2BIG);
        let twice = Wrapped(Box::new(Wrapped(Box::new(call))));
        assert_eq!(errno_of(&twice), Some(libc::E2BIG));
        assert_eq!(
            errno_of(&std::io::Error::from_raw_os_error(libc::ENOSYS)),
            Some(libc::ENOSYS)
        );
        // No system call under it: the caller picks the errno.
        let plain = Wrapped(Box::new(std::fmt::Error));
        assert_eq!(errno_of(&plain), None);
    }

    #[test]
    fn read_access_is_read_only() {
        let r = read_access();
        assert!(!r.contains(AccessFs::WriteFile));
        assert!(!r.contains(AccessFs::Execute));
    }
}
