//! What to run and how to confine it: the plain-data input of the engine.
//!
//! The CLI builds a [`SandboxSpec`] from flags and manifests; the engine knows nothing of
//! MCP. The spec crosses from the supervisor to the jail helper as JSON over a pipe, so
//! secrets in `env` never appear in any argv.

use serde::{Deserialize, Serialize};

use crate::host_path::HostPath;

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
    /// Host paths exposed read-only (and executable), at their real path. Not idmapped.
    pub ro_paths: Vec<HostPath>,
    /// Host paths exposed read-write (never executable), at their real path.
    pub rw_paths: Vec<HostPath>,
    /// Resource limits.
    pub limits: Limits,
    /// Forbid every execve after the one that starts the program.
    pub no_subprocess: bool,
    /// Where limits are enforced by a cgroup the supervisor prepared, the jail skips
    /// the rlimits that the cgroup already covers.
    pub limits_by_cgroup: bool,
    /// The host uid and gid the jail's ids map to, claimed by the supervisor for a root
    /// caller (see [`crate::host_ids`]); `None`: the caller's own (the only ids an
    /// unprivileged caller can map).
    #[serde(default)]
    pub host_ids: Option<HostIds>,
    /// Refuse to run when no aggregate memory limit (a cgroup) can be enforced
    /// (`policy.require_memory_limit`).
    #[serde(default)]
    pub require_memory_limit: bool,
    /// Paths inside the exposed trees that init covers after every bind is attached
    /// (project config read-only, host sockets unreachable): see [`crate::exposure`].
    #[serde(default)]
    pub covers: Vec<crate::exposure::Cover>,
    /// The network of an allowlist (`--allow-net`); `None`: an empty network namespace,
    /// its loopback down.
    #[serde(default)]
    pub egress: Option<EgressSpec>,
    /// A registry package's unpacked bundle (`mcp-j run REF`): exposed read-only and
    /// executable at [`PACKAGE_DIR`], not at its host path. `None` for `run -- PROG`.
    #[serde(default)]
    pub package: Option<HostPath>,
}

/// Where the jail sees a package's files (INTERFACE.md, *Packages*).
pub const PACKAGE_DIR: &str = "/pkg";

/// What init sets up for the egress layer (docs/SANDBOX.md, step 18; [`crate::network`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressSpec {
    /// The proxy's port on the jail's 127.0.0.1.
    pub proxy_port: u16,
    /// The allowlist's ports: a listener on each, on every local address.
    pub ports: Vec<u16>,
    /// Addresses and networks (address, prefix length) made local to the jail's loopback:
    /// the allowlist's IP literals and CIDRs, reachable at their own address.
    pub local_networks: Vec<(std::net::IpAddr, u8)>,
    /// The descriptor number, in the helper, of the socket init sends the listeners on
    /// (the supervisor sets it, as it sets the user's paths').
    pub channel_fd: Option<i32>,
}

/// A host uid and gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIds {
    /// The host uid.
    pub uid: u32,
    /// The host gid.
    pub gid: u32,
}

impl SandboxSpec {
    /// Every host path the jail is given: the workdir, then `--ro`, then `--rw` paths, then
    /// the package.
    pub fn host_paths(&self) -> impl Iterator<Item = &HostPath> {
        let workdir = match &self.workdir {
            Workdir::Host(dir) => Some(dir),
            Workdir::Private | Workdir::Package => None,
        };
        workdir
            .into_iter()
            .chain(&self.ro_paths)
            .chain(&self.rw_paths)
            .chain(&self.package)
    }

    /// As [`SandboxSpec::host_paths`], mutable (the supervisor records descriptor numbers).
    pub(crate) fn host_paths_mut(&mut self) -> impl Iterator<Item = &mut HostPath> {
        let workdir = match &mut self.workdir {
            Workdir::Host(dir) => Some(dir),
            Workdir::Private | Workdir::Package => None,
        };
        workdir
            .into_iter()
            .chain(&mut self.ro_paths)
            .chain(&mut self.rw_paths)
            .chain(&mut self.package)
    }
}

/// The program's working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workdir {
    /// A host directory, exposed read-write at its real path.
    Host(HostPath),
    /// A private, empty directory (the jail's `/tmp`).
    Private,
    /// The package, [`PACKAGE_DIR`], read-only (the default of `run REF`; needs
    /// [`SandboxSpec::package`]).
    Package,
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
    /// The largest file a process may write, in bytes (`RLIMIT_FSIZE`).
    pub max_file_size_bytes: u64,
}

/// The smallest memory limit accepted: below it common programs cannot even start
/// (`/bin/true` segfaults under 512 bytes), so a smaller value is a missing unit.
pub const MIN_MEMORY_BYTES: u64 = 16 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            pids: 256,
            fds: 1024,
            cpu_millicores: 1000,
            max_file_size_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The uid and gid the program has inside the jail. Not 0: the program is no one special
/// even in its own user namespace.
pub const JAIL_UID: u32 = 1000;
/// See [`JAIL_UID`].
pub const JAIL_GID: u32 = 1000;
/// The host ids the jail's ids map to: `claimed` (a root caller's own range id, see
/// [`crate::host_ids`]) or else the caller's own.
///
/// A root caller's jail is never mapped to host uid 0: that would make an escapee host
/// root, and the kernel never applies `RLIMIT_NPROC` to tasks whose real uid is host root
/// (`copy_process` exempts `INIT_USER`). The user's own paths are idmapped instead (host
/// uid 0 appears as the jail's user), so the workdir still works.
#[must_use]
pub fn jail_host_ids(claimed: Option<HostIds>, caller_uid: u32, caller_gid: u32) -> HostIds {
    claimed.unwrap_or(HostIds {
        uid: caller_uid,
        gid: caller_gid,
    })
}

/// The jail's host name: the host's own name does not leak in.
pub const JAIL_HOSTNAME: &str = "mcp-j";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_id_wins_and_otherwise_the_caller_keeps_its_own() {
        let claimed = HostIds { uid: 7, gid: 7 };
        assert_eq!(jail_host_ids(Some(claimed), 0, 0), claimed);
        assert_eq!(jail_host_ids(None, 1000, 100), HostIds { uid: 1000, gid: 100 });
    }

    #[test]
    fn the_defaults_follow_the_interface() {
        let d = Limits::default();
        assert_eq!(d.max_file_size_bytes, 1 << 30);
        assert!(d.memory_bytes >= MIN_MEMORY_BYTES);
    }

    #[test]
    fn an_older_spec_without_the_new_fields_still_reads() {
        let json = r#"{"program":"p","args":[],"env":[],"workdir":"Private","ro_paths":[],"rw_paths":[],
            "limits":{"memory_bytes":1,"pids":1,"fds":4,"cpu_millicores":1,"max_file_size_bytes":1},
            "no_subprocess":false,"limits_by_cgroup":false}"#;
        let spec: SandboxSpec = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.host_ids, None);
        assert!(!spec.require_memory_limit);
    }
}
