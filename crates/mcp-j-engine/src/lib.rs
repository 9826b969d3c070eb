//! # mcp-j-engine: the Linux sandbox
//!
//! ## Overview
//! Takes a plain [`SandboxSpec`] (program, environment, paths, limits) and runs the program
//! in a jail built from the kernel's own isolation: user, mount, PID, IPC, UTS, network and
//! cgroup namespaces; `pivot_root` into a read-only tmpfs root; Landlock; every capability
//! dropped; no_new_privs; seccomp last; rlimits, the jail's own namespace limits, and a cgroup where the machine allows one. It knows nothing of MCP.
//! docs/SANDBOX.md lists the setup steps in order; [`jail`] follows it one to one.
//!
//! ## Compatibility
//! Linux ≥ 5.12 (mount API with `mount_setattr`, `close_range`, `openat2`), unprivileged
//! user namespaces, seccomp with user notification; Landlock ABI 6 for full enforcement
//! (older ABIs are reported as partial, none is refused). x86_64 and aarch64.
//!
//! ## Test strategy
//! Pure parts (mount plan, seccomp filters run through a BPF interpreter, rlimit plan,
//! report codec, cgroup writer against a fake tree) are unit-tested here. The jail itself is
//! tested end to end through the real `mcp-j` binary, as root and as an unprivileged user,
//! by the escape suite in `crates/mcp-j-cli/tests`.

pub mod cgroup;
pub mod exposure;
pub mod host_ids;
pub mod host_path;
mod idmap;
pub mod jail;
pub mod landlock_rules;
pub mod limits;
pub mod namespace_limits;
pub mod network;
pub mod plan;
pub mod probe;
pub mod report;
mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod supervisor;
mod sys;

pub use host_path::{HostPath, HostPathError, PathInfo};
pub use report::{Layer, LayerStatus, SandboxReport};
pub use spec::{Limits, SandboxSpec, Workdir};
pub use supervisor::{Denial, Finished, Jail, JailStdio, JailStream, Outcome, SandboxError, Usage};
