//! What to run and how to confine it: the plain-data input of the engine.
//!
//! The CLI builds a [`SandboxSpec`] from flags and manifests; the engine knows nothing of
//! MCP. The spec crosses from the supervisor to the jail helper as JSON over a pipe, so
//! secrets in `env` never appear in any argv.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the jail needs to set itself up and start the program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The program as the user named it: a bare name is looked up in the jail's `PATH`.
    pub program: String,
    /// Arguments after the program name (argv[1..]).
    pub args: Vec<String>,
    /// The program's whole environment, already built (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// The working directory.
    pub workdir: Workdir,
    /// Host paths exposed read-only (and executable), at the same path. Canonical.
    pub ro_paths: Vec<PathBuf>,
    /// Host paths exposed read-write (never executable), at the same path. Canonical.
    pub rw_paths: Vec<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Forbid every execve after the one that starts the program.
    pub no_subprocess: bool,
    /// Where limits are enforced by a cgroup v2 the supervisor prepared, the jail skips
    /// the rlimits that the cgroup already covers.
    pub limits_by_cgroup: bool,
    /// Paths inside the exposed trees that init covers after every bind is attached
    /// (project config read-only, host sockets unreachable): see [`crate::exposure`].
    #[serde(default)]
    pub covers: Vec<crate::exposure::Cover>,
}

/// The program's working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workdir {
    /// A host directory, exposed read-write at the same path. Canonical.
    Host(PathBuf),
    /// A private, empty directory (the jail's `/tmp`).
    Private,
}

/// Resource limits for the whole jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory, in bytes.
    pub memory_bytes: u64,
    /// Tasks (processes and threads).
    pub pids: u64,
    /// Open files per process.
    pub fds: u64,
    /// CPU quota in millicores (1000 = one core).
    pub cpu_millicores: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            pids: 256,
            fds: 1024,
            cpu_millicores: 1000,
        }
    }
}

/// The uid and gid the program has inside the jail. Not 0: the program is no one special
/// even in its own user namespace.
pub const JAIL_UID: u32 = 1000;
/// See [`JAIL_UID`].
pub const JAIL_GID: u32 = 1000;
/// The host uid and gid the jail's ids map to when the caller is host root.
///
/// Mapping the jail to host uid 0 would make an escapee host root, and the kernel never
/// applies `RLIMIT_NPROC` to tasks whose real uid is host root (`copy_process` exempts
/// `INIT_USER`), so the task limit would not hold. The user's own paths are idmapped
/// instead (host uid 0 appears as the jail's user), so the workdir still works.
pub const ROOT_CALLER_JAIL_HOST_ID: u32 = 65534;

/// The host uid/gid the jail's uid/gid map to for a caller with these real ids: the
/// caller's own, except for root (see [`ROOT_CALLER_JAIL_HOST_ID`]).
pub fn jail_host_ids(caller_uid: u32, caller_gid: u32) -> (u32, u32) {
    if caller_uid == 0 {
        (ROOT_CALLER_JAIL_HOST_ID, ROOT_CALLER_JAIL_HOST_ID)
    } else {
        (caller_uid, caller_gid)
    }
}

/// The jail's host name: the host's own name does not leak in.
pub const JAIL_HOSTNAME: &str = "mcp-j";
