//! A small cgroup writer: one cgroup per jail, bounding the memory, tasks and CPU of the
//! whole jail — cgroup v2 (a delegated parent), or cgroup v1 for a root caller on hosts
//! whose controllers live in v1 hierarchies (*cgroup v1* below). [`detect_any`] picks
//! one; [`AnyJailCgroup`] hides which.
//!
//! # Overview
//!
//! 1. Find a *delegated parent*: a cgroup v2 directory that offers the `memory`, `pids` and
//!    `cpu` controllers, in which this process may create children, and whose
//!    `cgroup.subtree_control` enables those controllers for its children (or lets us enable
//!    them). It is either configured ([`check_parent`]) or this process's own cgroup
//!    ([`find_delegated_parent`], from the `0::` line of `/proc/self/cgroup`). [`detect`]
//!    does either against the real system. When no parent is usable, [`Unavailable`] says
//!    why in one line, for `doctor`; the jail then falls back to rlimits
//!    ([`crate::limits`]).
//! 2. [`JailCgroup::create`] makes a child, writes `memory.max`, `memory.swap.max` = 0,
//!    `pids.max` and `cpu.max`, then the jail's first process (the forked helper) moves
//!    itself in with [`JailCgroup::join`]; its descendants inherit the cgroup.
//! 3. After the run, [`JailCgroup::peak_memory`] and [`JailCgroup::cpu_usage_usec`] feed
//!    the report, [`JailCgroup::kill`] stops anything left, [`JailCgroup::remove`] deletes
//!    the directory. Dropping a [`JailCgroup`] kills and removes too: nothing the jail
//!    started outlives its supervisor.
//!
//! Every path is a parameter, so the tests run against a fake tree of regular files named
//! like the kernel's. Files are opened for writing without `O_CREAT`: only the kernel
//! creates cgroup files, and a missing file is an error (or, for optional files, a fact),
//! never a stray regular file.
//!
//! # Kernel rules that shape the design
//!
//! - *No internal processes*: a non-root cgroup that holds processes cannot enable
//!   controllers for its children (`EBUSY`). This process's own cgroup holds at least this
//!   process, so it only works as a parent if it is the root cgroup or already delegates
//!   the controllers; otherwise configure an empty delegated cgroup (for instance one made
//!   by `systemd-run --user -p Delegate=yes`) as the parent.
//! - *Migration*: moving a process into the jail cgroup needs write access to
//!   `cgroup.procs` of the common ancestor of its current cgroup and the jail cgroup. The
//!   probe here only checks that a child can be created; a failing move surfaces as
//!   [`CgroupError::Write`] on `cgroup.procs`.
//!
//! # Compatibility
//!
//! - cgroup v2 with the `memory`, `pids` and `cpu` controllers (Linux 4.15+ for `cpu`).
//! - `cgroup.kill`: Linux 5.14+; before, [`JailCgroup::kill`] fails with `ENOENT`.
//! - `memory.peak`: Linux 5.19+; before, [`JailCgroup::peak_memory`] returns `None`.
//! - `memory.swap.max` exists only where the kernel accounts swap; without it the jail's
//!   RAM is still bounded by `memory.max` ([`JailCgroup::swap_limited`] says which).
//!
//! # cgroup v1
//!
//! v1 has no delegation to other users, so it serves root only ([`detect_v1`]). Each
//! controller has its own hierarchy (mounts found in `/proc/self/mountinfo`, honouring a
//! mount whose root is a subtree), and the jail gets one child of this process's own
//! cgroup in each ([`find_v1_parents`]): `memory` and `pids` are required, `cpu` is used
//! when present. [`JailCgroupV1::create`] writes `memory.limit_in_bytes`, then
//! `memory.memsw.limit_in_bytes` (memory plus swap; it must not be below the first),
//! `pids.max`, and `cpu.cfs_period_us`/`cpu.cfs_quota_us`. There is no `cgroup.kill`: the
//! listed processes are killed one by one through pidfds. On kernels with memory
//! accounting of kernel objects (always on since 5.x unless booted with
//! `cgroup.memory=nokmem`) the v1 memory limit charges memfds, SysV shm and unix socket
//! buffers too (measured by the escape suite).
//!
//! A supervisor killed with SIGKILL cannot remove its jail's cgroups: the next jail made
//! under the same parent sweeps them ([`sweep_stale`]), killing what is left inside.
//!
//! # Test strategy
//!
//! Pure helpers (`cpu.max`/`pids.max` values, `/proc/self/cgroup` and `cpu.stat` parsing)
//! have unit tests; detection, limit writing and the accessors run against a fake tree in
//! a temporary directory. Kernel behaviour (`EBUSY` on rmdir and on `subtree_control`) is
//! covered through the functions that interpret the error.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::Duration;

use rustix::process::{Pid, getpid};
use thiserror::Error;

use crate::spec::Limits;

/// Where cgroup v2 is mounted on a unified-hierarchy system.
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// Where hybrid hosts (cgroup v1 at [`CGROUP_MOUNT`]) mount cgroup v2.
pub const HYBRID_CGROUP2_MOUNT: &str = "/sys/fs/cgroup/unified";

/// The file naming this process's cgroups.
pub const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// The controllers a jail cgroup needs, in the order messages list them.
pub const REQUIRED_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The `cpu.max` period, in microseconds: the kernel's default, 100 ms.
pub const CPU_PERIOD_USEC: u64 = 100_000;

/// The smallest quota `cpu.max` accepts (1 ms); smaller values fail with `EINVAL`.
const CPU_QUOTA_MIN_USEC: u64 = 1_000;

/// The largest quota `cpu.max` accepts (`MAX_BW` in the scheduler); larger values fail with
/// `EINVAL`.
const CPU_QUOTA_MAX_USEC: u64 = (1 << 44) - 1;

/// The most tasks a 64-bit kernel can ever have (`PID_MAX_LIMIT`); `pids.max` rejects
/// anything larger with `EINVAL`.
const PID_MAX_LIMIT: u64 = 4 * 1024 * 1024;

/// What enables the required controllers in `cgroup.subtree_control`.
const SUBTREE_CONTROL_ENABLE: &str = "+memory +pids +cpu";

/// How many times, and how often, to retry `rmdir` while the last tasks exit.
const REMOVE_ATTEMPTS: u32 = 50;
const REMOVE_DELAY: Duration = Duration::from_millis(10);

/// An error from creating, configuring, reading or removing a jail cgroup.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// The jail cgroup's name is not a single path component.
    #[error("invalid cgroup name `{name}`: must be one path component")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// `mkdir` of the jail cgroup failed.
    #[error("cannot create cgroup `{}`", path.display())]
    Create {
        /// The cgroup directory.
        path: PathBuf,
        /// The error from `mkdir`.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup file failed.
    #[error("cannot write `{value}` to `{}`", path.display())]
    Write {
        /// The cgroup file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The error from `open` or `write`.
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The cgroup file.
        path: PathBuf,
        /// The error from `read`.
        #[source]
        source: io::Error,
    },
    /// A cgroup file does not hold what the kernel writes there.
    #[error("cannot find {what} in `{}`", path.display())]
    Malformed {
        /// The cgroup file.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// `rmdir` of the jail cgroup failed (after retries while it was busy).
    #[error("cannot remove cgroup `{}`", path.display())]
    Remove {
        /// The cgroup directory.
        path: PathBuf,
        /// The error from the last `rmdir`.
        #[source]
        source: io::Error,
    },
}

/// Why no cgroup v2 parent is usable, in one line for `doctor` and the report. Not a
/// failure by itself: the jail then relies on rlimits.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}")]
pub struct Unavailable {
    /// The reason, lowercase, without trailing period.
    pub reason: String,
}

impl Unavailable {
    fn new(reason: impl Into<String>) -> Self {
        Unavailable { reason: reason.into() }
    }
}

/// A cgroup v2 directory whose children get the `memory`, `pids` and `cpu` controllers,
/// and in which this process can create children. Made only by the checks of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedParent {
    path: PathBuf,
}

impl DelegatedParent {
    /// The parent cgroup's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Finds a usable parent on the real system: `configured_parent` if given (a directory
/// under the cgroup v2 mount, such as `/sys/fs/cgroup/mcp-j.slice`), else this process's
/// own cgroup under [`CGROUP_MOUNT`].
///
/// May enable controllers in the parent's `cgroup.subtree_control`, as [`check_parent`]
/// does.
pub fn detect(configured_parent: Option<&Path>) -> Result<DelegatedParent, Unavailable> {
    match configured_parent {
        Some(path) => check_parent(path),
        None => {
            let text = fs::read_to_string(PROC_SELF_CGROUP)
                .map_err(|e| Unavailable::new(format!("cannot read `{PROC_SELF_CGROUP}`: {e}")))?;
            // A hybrid host (cgroup v1 at /sys/fs/cgroup) mounts v2 beside it, usually
            // without controllers: name it, so the reason is precise.
            let mount = [CGROUP_MOUNT, HYBRID_CGROUP2_MOUNT]
                .into_iter()
                .find(|m| Path::new(m).join("cgroup.controllers").is_file())
                .unwrap_or(CGROUP_MOUNT);
            find_delegated_parent(Path::new(mount), &text)
        }
    }
}

/// Checks this process's own cgroup as a parent: `proc_self_cgroup` is the text of
/// `/proc/self/cgroup`, `cgroup_mount` where cgroup v2 is mounted.
///
/// May enable controllers in the parent's `cgroup.subtree_control`, as [`check_parent`]
/// does.
pub fn find_delegated_parent(cgroup_mount: &Path, proc_self_cgroup: &str) -> Result<DelegatedParent, Unavailable> {
    if !cgroup_mount.join("cgroup.controllers").is_file() {
        return Err(Unavailable::new(format!(
            "no cgroup v2 hierarchy mounted at `{}`",
            cgroup_mount.display()
        )));
    }
    let Some(own) = own_cgroup_path(proc_self_cgroup) else {
        return Err(Unavailable::new(
            "this process is in no cgroup v2 cgroup (no `0::` line in /proc/self/cgroup)",
        ));
    };
    let Some(relative) = relative_cgroup_path(own) else {
        return Err(Unavailable::new(format!(
            "own cgroup `{own}` is not a path below the cgroup namespace root"
        )));
    };
    if relative.as_os_str().is_empty() {
        // `join("")` would add a trailing slash.
        check_parent(cgroup_mount)
    } else {
        check_parent(&cgroup_mount.join(relative))
    }
}

/// Checks `path` as a parent for jail cgroups: it must be a cgroup v2 directory that
/// offers `memory`, `pids` and `cpu` (`cgroup.controllers`), in which a child can be
/// created, and whose `cgroup.subtree_control` enables the three controllers — if it does
/// not yet, this writes `+memory +pids +cpu` there, which is the one change it makes.
pub fn check_parent(path: &Path) -> Result<DelegatedParent, Unavailable> {
    if !path.is_absolute() {
        return Err(Unavailable::new(format!(
            "cgroup parent `{}` is not an absolute path",
            path.display()
        )));
    }
    let controllers_file = path.join("cgroup.controllers");
    let controllers = match fs::read_to_string(&controllers_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Unavailable::new(format!(
                "`{}` is not a cgroup v2 directory",
                path.display()
            )));
        }
        Err(e) => {
            return Err(Unavailable::new(format!(
                "cannot read `{}`: {e}",
                controllers_file.display()
            )));
        }
    };
    let missing = missing_controllers(&controllers);
    if !missing.is_empty() {
        let have: Vec<&str> = controllers.split_whitespace().collect();
        let have = if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(",")
        };
        return Err(Unavailable::new(format!(
            "controllers {} not delegated to `{}` (have: {have})",
            missing.join(","),
            path.display()
        )));
    }
    probe_child(path)?;
    enable_controllers(path)?;
    Ok(DelegatedParent {
        path: path.to_path_buf(),
    })
}

/// The cgroup v2 path of this process, from the text of `/proc/self/cgroup`: the
/// `0::/path` line (cgroup v1 hierarchies have other ids), or `None` without one.
#[must_use]
pub fn own_cgroup_path(proc_self_cgroup: &str) -> Option<&str> {
    proc_self_cgroup.lines().find_map(|line| line.strip_prefix("0::"))
}

/// `own` relative to the mount, when it is an absolute path of plain names. A cgroup
/// outside the reader's cgroup namespace shows as `/../..`; that is refused.
fn relative_cgroup_path(own: &str) -> Option<PathBuf> {
    let relative = Path::new(own).strip_prefix("/").ok()?;
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| relative.to_path_buf())
}

/// The required controllers that `list` (a `cgroup.controllers` or `cgroup.subtree_control`
/// text) lacks.
fn missing_controllers(list: &str) -> Vec<&'static str> {
    REQUIRED_CONTROLLERS
        .into_iter()
        .filter(|wanted| !list.split_whitespace().any(|have| have == *wanted))
        .collect()
}

/// Creates and removes an empty child, to learn whether jail cgroups can be made here.
fn probe_child(parent: &Path) -> Result<(), Unavailable> {
    let probe = parent.join(format!("mcp-j-probe-{}", getpid().as_raw_nonzero()));
    fs::create_dir(&probe)
        .map_err(|e| Unavailable::new(format!("cannot create a child cgroup in `{}`: {e}", parent.display())))?;
    // An empty cgroup is removable at once; if not, an empty directory is all that's left.
    let _ = fs::remove_dir(&probe);
    Ok(())
}

/// Makes sure the parent's children get the required controllers.
fn enable_controllers(parent: &Path) -> Result<(), Unavailable> {
    let file = parent.join("cgroup.subtree_control");
    let enabled =
        fs::read_to_string(&file).map_err(|e| Unavailable::new(format!("cannot read `{}`: {e}", file.display())))?;
    if missing_controllers(&enabled).is_empty() {
        return Ok(());
    }
    write_file(&file, SUBTREE_CONTROL_ENABLE).map_err(|e| Unavailable::new(enable_failure_reason(parent, &e)))
}

/// Why writing `cgroup.subtree_control` failed, in words that say what to do.
fn enable_failure_reason(parent: &Path, error: &io::Error) -> String {
    if error.raw_os_error() == Some(libc::EBUSY) {
        format!(
            "`{}` holds processes, and cgroup v2 lets a cgroup with processes give no \
             controllers to its children: configure an empty delegated cgroup as the parent",
            parent.display()
        )
    } else {
        format!(
            "cannot enable controllers memory,pids,cpu in `{}`: {error}",
            parent.join("cgroup.subtree_control").display()
        )
    }
}

/// The `cpu.max` line for a quota in millicores: `"<quota> 100000"`, quota in
/// microseconds per [`CPU_PERIOD_USEC`], so 1000 millicores (one core) is
/// `"100000 100000"` and 2500 is `"250000 100000"`.
///
/// The quota is clamped to what the kernel accepts: at least 1 ms (10 millicores; a zero
/// never means "unlimited") and at most 2^44 - 1 µs (far beyond any machine).
#[must_use]
pub fn cpu_max_value(millicores: u64) -> String {
    let quota = millicores
        .saturating_mul(CPU_PERIOD_USEC / 1000)
        .clamp(CPU_QUOTA_MIN_USEC, CPU_QUOTA_MAX_USEC);
    format!("{quota} {CPU_PERIOD_USEC}")
}

/// The `pids.max` value for `pids` tasks: `pids + 1`, since the jail's init (pid 1) is in
/// the cgroup too. Clamped to the kernel's own task limit, which `pids.max` can't exceed.
#[must_use]
pub fn pids_max_value(pids: u64) -> String {
    pids.saturating_add(1).min(PID_MAX_LIMIT).to_string()
}

/// `usage_usec` from the text of `cpu.stat`: total CPU time of the cgroup's tasks.
#[must_use]
pub fn parse_cpu_stat_usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some("usage_usec"), Some(value), None) => value.parse().ok(),
            _ => None,
        }
    })
}

/// One jail's cgroup. Dropping it kills what is left inside and removes it.
#[derive(Debug)]
pub struct JailCgroup {
    path: PathBuf,
    swap_limited: bool,
    /// The process that created the cgroup: a forked copy of this value never cleans up.
    owner: Pid,
    /// Set once [`JailCgroup::remove`] ran, so that `Drop` does nothing more.
    removed: bool,
}

impl JailCgroup {
    /// Creates the cgroup `name` under `parent` and writes the jail's limits:
    /// - `memory.max` = `memory_bytes`;
    /// - `memory.swap.max` = 0, so the limit is not escaped into swap (skipped where the
    ///   kernel does not account swap);
    /// - `pids.max` = [`pids_max_value`] (`pids + 1`: the jail's init counts);
    /// - `cpu.max` = [`cpu_max_value`].
    ///
    /// If a write fails, the directory is removed again.
    pub fn create(parent: &DelegatedParent, name: &str, limits: &Limits) -> Result<JailCgroup, CgroupError> {
        if !is_one_component(name) {
            return Err(CgroupError::InvalidName { name: name.to_owned() });
        }
        let path = parent.path.join(name);
        create_cgroup_dir(&path)?;
        // From here on, an early return drops `cgroup`, which removes the directory.
        let mut cgroup = JailCgroup {
            path,
            swap_limited: false,
            owner: getpid(),
            removed: false,
        };
        cgroup.swap_limited = write_limits(&cgroup.path, limits)?;
        Ok(cgroup)
    }

    /// The cgroup's directory (for `clone3` with `CLONE_INTO_CGROUP`, or for messages).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `memory.swap.max` = 0 was written; false where the kernel does not account
    /// swap, so the jail may use swap beyond `memory.max`.
    #[must_use]
    pub fn swap_limited(&self) -> bool {
        self.swap_limited
    }

    /// Moves the calling process, which must be single-threaded, into the cgroup
    /// (`cgroup.procs`, "0": the caller); its future children are born there.
    pub fn join(&self) -> Result<(), CgroupError> {
        write_value(&self.path.join("cgroup.procs"), "0")
    }

    /// The most memory the cgroup used, in bytes (`memory.peak`), or `None` on kernels
    /// before 5.19, which lack the file.
    pub fn peak_memory(&self) -> Result<Option<u64>, CgroupError> {
        read_optional_bytes(self.path.join("memory.peak"))
    }

    /// The CPU time used by the cgroup's tasks, in microseconds (`usage_usec` in
    /// `cpu.stat`).
    pub fn cpu_usage_usec(&self) -> Result<u64, CgroupError> {
        let path = self.path.join("cpu.stat");
        let text = fs::read_to_string(&path).map_err(|source| CgroupError::Read {
            path: path.clone(),
            source,
        })?;
        parse_cpu_stat_usage_usec(&text).ok_or(CgroupError::Malformed {
            path,
            what: "`usage_usec`",
        })
    }

    /// Kills every task in the cgroup at once (`cgroup.kill`, Linux 5.14+), including tasks
    /// forked while the kill runs.
    pub fn kill(&self) -> Result<(), CgroupError> {
        write_value(&self.path.join("cgroup.kill"), "1")
    }

    /// Removes the cgroup. It must hold no live task: [`JailCgroup::kill`] first if unsure.
    /// Tasks that were just killed take a moment to exit, so `EBUSY` is retried for about
    /// half a second. A cgroup that is already gone counts as removed.
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        remove_dir_retrying(&self.path).map_err(|source| CgroupError::Remove {
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for JailCgroup {
    /// Best effort, for error paths: kills what is left and removes the cgroup, ignoring
    /// failures. Only in the process that created it: a forked child that drops its copy
    /// must not kill the jail.
    fn drop(&mut self) {
        if self.removed || getpid() != self.owner {
            return;
        }
        let _ = write_file(&self.path.join("cgroup.kill"), "1");
        let _ = remove_dir_retrying(&self.path);
    }
}

/// Makes a cgroup directory (the kernel fills it with its files).
fn create_cgroup_dir(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir(path).map_err(|source| CgroupError::Create {
        path: path.to_path_buf(),
        source,
    })
}

/// A byte count from a file the kernel may not have (`None` then).
fn read_optional_bytes(path: PathBuf) -> Result<Option<u64>, CgroupError> {
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| CgroupError::Malformed {
            path,
            what: "a byte count",
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Whether `name` is one normal path component (no `/`, not `.` or `..`, not empty).
fn is_one_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(only)), None) if only == name
    )
}

/// Writes the limits into the cgroup at `dir`; returns whether swap is limited too.
fn write_limits(dir: &Path, limits: &Limits) -> Result<bool, CgroupError> {
    write_value(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
    let swap_file = dir.join("memory.swap.max");
    let swap_limited = match write_file(&swap_file, "0") {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(CgroupError::Write {
                path: swap_file,
                value: "0".to_owned(),
                source,
            });
        }
    };
    write_value(&dir.join("pids.max"), &pids_max_value(limits.pids))?;
    write_value(&dir.join("cpu.max"), &cpu_max_value(limits.cpu_millicores))?;
    Ok(swap_limited)
}

fn write_value(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_file(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// Writes `value` to an existing cgroup file in one `write`, as the kernel expects (each
/// write is one command). Never creates the file.
fn write_file(path: &Path, value: &str) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.write_all(value.as_bytes())
}

/// `rmdir`, retried while the cgroup is busy (tasks still exiting); gone already is fine.
fn remove_dir_retrying(path: &Path) -> io::Result<()> {
    retry_while_busy(
        || match fs::remove_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        REMOVE_ATTEMPTS,
        REMOVE_DELAY,
    )
}

/// Runs `op` up to `attempts` times, sleeping `delay` after each `EBUSY`; any other result
/// is returned at once.
fn retry_while_busy(mut op: impl FnMut() -> io::Result<()>, attempts: u32, delay: Duration) -> io::Result<()> {
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < attempts => {
                thread::sleep(delay);
                attempt += 1;
            }
            result => return result,
        }
    }
}

// ---------------------------------------------------------------------------------------
// cgroup v1, for a root caller on hosts whose controllers live in v1 hierarchies.
// ---------------------------------------------------------------------------------------

/// The file naming this process's mounts.
pub const PROC_SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// A cgroup v1 controller the jail uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Controller {
    /// `memory`: required.
    Memory,
    /// `pids`: required.
    Pids,
    /// `cpu`: optional (CFS quota).
    Cpu,
}

impl V1Controller {
    /// The controller's name in mount options and `/proc/self/cgroup`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            V1Controller::Memory => "memory",
            V1Controller::Pids => "pids",
            V1Controller::Cpu => "cpu",
        }
    }
}

/// This process's own cgroup in each v1 hierarchy the jail uses: jail cgroups are made
/// there, so they stay under whatever limits the caller itself has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Parents {
    memory: PathBuf,
    pids: PathBuf,
    cpu: Option<PathBuf>,
}

impl V1Parents {
    /// The parent directory in each hierarchy, with its controller.
    #[must_use]
    pub fn dirs(&self) -> Vec<(V1Controller, &Path)> {
        let mut dirs = vec![
            (V1Controller::Memory, self.memory.as_path()),
            (V1Controller::Pids, self.pids.as_path()),
        ];
        if let Some(cpu) = &self.cpu {
            dirs.push((V1Controller::Cpu, cpu.as_path()));
        }
        dirs
    }

    /// Checks that a child can be made in the required hierarchies, by making and
    /// removing an empty one in each: for `mcp-j doctor`. A run does not probe (that
    /// doubled its cgroup work): [`JailCgroupV1::create`] fails with the same reason.
    pub fn probe(&self) -> Result<(), Unavailable> {
        probe_child(&self.memory)?;
        probe_child(&self.pids)
    }
}

/// Finds the v1 parents on the real system. Only root may use them: v1 has no delegation
/// to other users.
pub fn detect_v1() -> Result<V1Parents, Unavailable> {
    if !rustix::process::geteuid().is_root() {
        return Err(Unavailable::new(
            "cgroup v1 controllers are usable by root only (v1 has no delegation)",
        ));
    }
    let read =
        |path: &str| fs::read_to_string(path).map_err(|e| Unavailable::new(format!("cannot read `{path}`: {e}")));
    find_v1_parents(&read(PROC_SELF_MOUNTINFO)?, &read(PROC_SELF_CGROUP)?)
}

/// Finds this process's cgroup in the v1 hierarchies holding `memory`, `pids` and
/// (optionally) `cpu`, from the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`.
/// Whether a child can be made there is for [`V1Parents::probe`] (doctor) or
/// [`JailCgroupV1::create`] to find out.
pub fn find_v1_parents(mountinfo: &str, proc_self_cgroup: &str) -> Result<V1Parents, Unavailable> {
    let find = |controller: V1Controller| -> Result<PathBuf, Unavailable> {
        let name = controller.name();
        let (mount_root, mount_point) = v1_mount(mountinfo, name)
            .ok_or_else(|| Unavailable::new(format!("no cgroup v1 hierarchy holds the `{name}` controller")))?;
        let own = v1_own_cgroup(proc_self_cgroup, name)
            .ok_or_else(|| Unavailable::new(format!("this process is in no `{name}` cgroup (/proc/self/cgroup)")))?;
        // The mount shows the hierarchy from `mount_root` down (a container's bind).
        let below = Path::new(own)
            .strip_prefix(mount_root)
            .ok()
            .and_then(|p| p.to_str())
            .and_then(relative_cgroup_path_of)
            .ok_or_else(|| {
                Unavailable::new(format!(
                    "own `{name}` cgroup `{own}` is not below the mounted `{mount_root}`"
                ))
            })?;
        let dir = if below.as_os_str().is_empty() {
            PathBuf::from(mount_point)
        } else {
            Path::new(mount_point).join(below)
        };
        Ok(dir)
    };
    let parents = V1Parents {
        memory: find(V1Controller::Memory)?,
        pids: find(V1Controller::Pids)?,
        cpu: find(V1Controller::Cpu).ok(),
    };
    Ok(parents)
}

/// `(root, mount point)` of the v1 hierarchy whose super options name `controller`.
fn v1_mount<'a>(mountinfo: &'a str, controller: &str) -> Option<(&'a str, &'a str)> {
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        let mut after = after.split_whitespace();
        let (fstype, _source, options) = (after.next()?, after.next()?, after.next()?);
        (fstype == "cgroup" && options.split(',').any(|o| o == controller))
            .then_some((*fields.get(3)?, *fields.get(4)?))
    })
}

/// The path of this process's cgroup in the v1 hierarchy holding `controller`, from a
/// `ID:controllers:path` line of `/proc/self/cgroup`.
fn v1_own_cgroup<'a>(proc_self_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then_some(path)
    })
}

/// `below` (the part of a cgroup path under the mount root) as a relative path of plain
/// names; empty for the mount root itself.
fn relative_cgroup_path_of(below: &str) -> Option<PathBuf> {
    relative_cgroup_path(&format!("/{}", below.trim_start_matches('/')))
}

/// The `cpu.cfs_quota_us` value for a quota in millicores, per [`CPU_PERIOD_USEC`]
/// (`cpu.cfs_period_us`): the same clamping as [`cpu_max_value`].
#[must_use]
pub fn cfs_quota_value(millicores: u64) -> String {
    millicores
        .saturating_mul(CPU_PERIOD_USEC / 1000)
        .clamp(CPU_QUOTA_MIN_USEC, CPU_QUOTA_MAX_USEC)
        .to_string()
}

/// One jail's cgroup in each v1 hierarchy. Dropping it kills what is left and removes it.
#[derive(Debug)]
pub struct JailCgroupV1 {
    dirs: Vec<(V1Controller, PathBuf)>,
    swap_limited: bool,
    owner: Pid,
    removed: bool,
}

impl JailCgroupV1 {
    /// Creates `name` in each hierarchy of `parents` and writes:
    /// - `memory.limit_in_bytes` = `memory_bytes`, then `memory.memsw.limit_in_bytes` =
    ///   the same (memory plus swap: no escape into swap; skipped without swap
    ///   accounting);
    /// - `pids.max` = [`pids_max_value`];
    /// - `cpu.cfs_period_us` = [`CPU_PERIOD_USEC`], `cpu.cfs_quota_us` =
    ///   [`cfs_quota_value`], when the `cpu` controller is there.
    ///
    /// If anything fails, what was made is removed again.
    pub fn create(parents: &V1Parents, name: &str, limits: &Limits) -> Result<JailCgroupV1, CgroupError> {
        if !is_one_component(name) {
            return Err(CgroupError::InvalidName { name: name.to_owned() });
        }
        let mut cgroup = JailCgroupV1 {
            dirs: Vec::new(),
            swap_limited: false,
            owner: getpid(),
            removed: false,
        };
        for (controller, parent) in parents.dirs() {
            let path = parent.join(name);
            match create_cgroup_dir(&path) {
                Ok(()) => {}
                // `cpu` is optional: without it the jail runs without a CPU quota, as on
                // a machine whose v1 has no `cpu` hierarchy ([`JailCgroupV1::cpu_limited`]).
                Err(_) if controller == V1Controller::Cpu => continue,
                Err(e) => return Err(e),
            }
            // From here on, an early return drops `cgroup`, which removes the directories.
            cgroup.dirs.push((controller, path.clone()));
            if write_v1_limits(controller, &path, limits)? {
                cgroup.swap_limited = true;
            }
        }
        Ok(cgroup)
    }

    /// The memory hierarchy's directory, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.dirs.first().map_or(Path::new(""), |(_, p)| p.as_path())
    }

    /// Whether memory plus swap is limited (`memory.memsw.limit_in_bytes`).
    #[must_use]
    pub fn swap_limited(&self) -> bool {
        self.swap_limited
    }

    /// Whether the CPU quota is set (the `cpu` controller was there).
    #[must_use]
    pub fn cpu_limited(&self) -> bool {
        self.dirs.iter().any(|(c, _)| *c == V1Controller::Cpu)
    }

    /// Moves the calling thread into the cgroup of every hierarchy: the whole process,
    /// which must be single-threaded (the forked jail helper). Through `tasks` with "0",
    /// not `cgroup.procs` with a pid: the kernel moves the caller's own thread without
    /// taking the global threadgroup lock, whose first writer after a quiet spell waits
    /// for an RCU grace period (10–15 ms here, measured: bench/README.md).
    pub fn join(&self) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            write_value(&dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// The most memory the cgroup used (`memory.max_usage_in_bytes`).
    pub fn peak_memory(&self) -> Result<Option<u64>, CgroupError> {
        read_optional_bytes(self.path().join("memory.max_usage_in_bytes"))
    }

    /// Kills every process of the cgroup. v1 has no `cgroup.kill`: each listed process is
    /// opened as a pidfd, checked to still be listed (so the pidfd is a member, not a
    /// process that reused its pid), and sent SIGKILL; repeated while members remain
    /// (one may have forked meanwhile), a bounded number of times.
    pub fn kill(&self) -> Result<(), CgroupError> {
        kill_listed(self.path())
    }

    /// Removes the cgroup from every hierarchy ([`JailCgroupV1::kill`] first if unsure).
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.removed = true;
        for (_, dir) in &self.dirs {
            remove_dir_retrying(dir).map_err(|source| CgroupError::Remove {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

impl Drop for JailCgroupV1 {
    /// Best effort, as [`JailCgroup`]'s: kill what is left, remove every directory.
    fn drop(&mut self) {
        if self.removed || getpid() != self.owner {
            return;
        }
        if !self.dirs.is_empty() {
            let _ = self.kill();
        }
        for (_, dir) in &self.dirs {
            let _ = remove_dir_retrying(dir);
        }
    }
}

/// Kills every process listed in `dir/cgroup.procs`: each is opened as a pidfd, checked
/// to still be listed (so the pidfd is a member, not a process that reused its pid), and
/// sent SIGKILL; repeated while members remain (one may have forked meanwhile), a bounded
/// number of times. For v1, which has no `cgroup.kill`.
fn kill_listed(dir: &Path) -> Result<(), CgroupError> {
    let procs = dir.join("cgroup.procs");
    for _ in 0..REMOVE_ATTEMPTS {
        let members = read_pids(&procs)?;
        if members.is_empty() {
            return Ok(());
        }
        for pid in members {
            let Ok(fd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
                continue; // gone already
            };
            if read_pids(&procs)?.contains(&pid) {
                let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
            }
        }
        thread::sleep(REMOVE_DELAY);
    }
    Ok(())
}

/// Removes the jail cgroups in `parent` that supervisors which no longer run left behind
/// (a supervisor killed with SIGKILL cannot clean up): their tasks are killed first
/// (`cgroup.kill` where it exists, else one by one). Jail cgroups are named
/// `mcp-j-<supervisor pid>-<n>`; `alive` says whether a pid runs. Returns how many were
/// removed. Anything else in `parent` is never touched. `alive` sees this PID namespace
/// only: two supervisors in different PID namespaces must not share a parent cgroup (each
/// caller's jails live under its own cgroup, so that takes a deliberate setup).
pub fn sweep_stale(parent: &Path, alive: impl Fn(u32) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(stale_candidate_pid) else {
            continue;
        };
        if alive(pid) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        if write_file(&dir.join("cgroup.kill"), "1").is_err() {
            let _ = kill_listed(&dir);
        }
        if remove_dir_retrying(&dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The supervisor pid in a jail cgroup's name `mcp-j-<pid>-<n>`.
fn stale_candidate_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("mcp-j-")?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether a process with this pid runs (on this host's pid namespace).
#[must_use]
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Writes one v1 controller's limits into the jail cgroup `dir` (see
/// [`JailCgroupV1::create`]); returns whether swap is limited too (memory only).
fn write_v1_limits(controller: V1Controller, dir: &Path, limits: &Limits) -> Result<bool, CgroupError> {
    match controller {
        V1Controller::Memory => {
            let bytes = limits.memory_bytes.to_string();
            write_value(&dir.join("memory.limit_in_bytes"), &bytes)?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            match write_file(&memsw, &bytes) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(CgroupError::Write {
                    path: memsw,
                    value: bytes,
                    source,
                }),
            }
        }
        V1Controller::Pids => {
            write_value(&dir.join("pids.max"), &pids_max_value(limits.pids))?;
            Ok(false)
        }
        V1Controller::Cpu => {
            write_value(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_USEC.to_string())?;
            write_value(&dir.join("cpu.cfs_quota_us"), &cfs_quota_value(limits.cpu_millicores))?;
            Ok(false)
        }
    }
}

/// The pids listed in a `cgroup.procs` file.
fn read_pids(path: &Path) -> Result<Vec<Pid>, CgroupError> {
    let text = fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .filter_map(Pid::from_raw)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Either version.
// ---------------------------------------------------------------------------------------

/// Where jail cgroups can be made on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupParent {
    /// A delegated cgroup v2 parent.
    V2(DelegatedParent),
    /// This process's cgroups in the v1 hierarchies (root only).
    V1(V1Parents),
}

/// Finds where jail cgroups can be made: a delegated cgroup v2 parent (configured, or this
/// process's own), else — for root — the cgroup v1 hierarchies. The reason names both
/// when neither works.
pub fn detect_any(configured_parent: Option<&Path>) -> Result<CgroupParent, Unavailable> {
    let v2 = match detect(configured_parent) {
        Ok(parent) => return Ok(CgroupParent::V2(parent)),
        Err(why) => why,
    };
    if configured_parent.is_some() {
        return Err(v2);
    }
    match detect_v1() {
        Ok(parents) => Ok(CgroupParent::V1(parents)),
        Err(v1) => Err(Unavailable::new(format!("cgroup v2: {v2}; cgroup v1: {v1}"))),
    }
}

/// What a jail's cgroup covers, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupCoverage {
    /// 1 or 2.
    pub version: u8,
    /// Swap is limited too.
    pub swap: bool,
    /// A CPU quota is set.
    pub cpu: bool,
}

/// The `oom_kill N` count of a `memory.events` (v2) or `memory.oom_control` (v1) text.
#[must_use]
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// One jail's cgroup, either version.
#[derive(Debug)]
pub enum AnyJailCgroup {
    /// cgroup v2.
    V2(JailCgroup),
    /// cgroup v1.
    V1(JailCgroupV1),
}

impl AnyJailCgroup {
    /// Creates the jail's cgroup under `parent` (see [`JailCgroup::create`] and
    /// [`JailCgroupV1::create`]).
    pub fn create(parent: &CgroupParent, name: &str, limits: &Limits) -> Result<AnyJailCgroup, CgroupError> {
        let parents: Vec<&Path> = match parent {
            CgroupParent::V2(p) => vec![p.path()],
            CgroupParent::V1(p) => p.dirs().into_iter().map(|(_, d)| d).collect(),
        };
        for dir in parents {
            sweep_stale(dir, pid_alive);
        }
        Ok(match parent {
            CgroupParent::V2(p) => AnyJailCgroup::V2(JailCgroup::create(p, name, limits)?),
            CgroupParent::V1(p) => AnyJailCgroup::V1(JailCgroupV1::create(p, name, limits)?),
        })
    }

    /// What it limits.
    #[must_use]
    pub fn coverage(&self) -> CgroupCoverage {
        match self {
            AnyJailCgroup::V2(c) => CgroupCoverage {
                version: 2,
                swap: c.swap_limited(),
                cpu: true,
            },
            AnyJailCgroup::V1(c) => CgroupCoverage {
                version: 1,
                swap: c.swap_limited(),
                cpu: c.cpu_limited(),
            },
        }
    }

    /// Its (memory) directory, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            AnyJailCgroup::V2(c) => c.path(),
            AnyJailCgroup::V1(c) => c.path(),
        }
    }

    /// Moves the calling single-threaded process in (see [`JailCgroup::join`] and
    /// [`JailCgroupV1::join`]).
    pub fn join(&self) -> Result<(), CgroupError> {
        match self {
            AnyJailCgroup::V2(c) => c.join(),
            AnyJailCgroup::V1(c) => c.join(),
        }
    }

    /// Peak memory, where the kernel keeps it.
    pub fn peak_memory(&self) -> Result<Option<u64>, CgroupError> {
        match self {
            AnyJailCgroup::V2(c) => c.peak_memory(),
            AnyJailCgroup::V1(c) => c.peak_memory(),
        }
    }

    /// CPU time in microseconds (cgroup v2 only: v1 keeps it in `cpuacct`).
    pub fn cpu_usage_usec(&self) -> Option<u64> {
        match self {
            AnyJailCgroup::V2(c) => c.cpu_usage_usec().ok(),
            AnyJailCgroup::V1(_) => None,
        }
    }

    /// How many tasks the kernel's OOM killer killed in the cgroup for reaching its memory
    /// limit (`oom_kill` in v2 `memory.events`, v1 `memory.oom_control`); `None` where
    /// the kernel does not say.
    #[must_use]
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self {
            AnyJailCgroup::V2(c) => c.path().join("memory.events"),
            AnyJailCgroup::V1(c) => c.path().join("memory.oom_control"),
        };
        parse_oom_kill(&fs::read_to_string(file).ok()?)
    }

    /// Kills every task inside.
    pub fn kill(&self) -> Result<(), CgroupError> {
        match self {
            AnyJailCgroup::V2(c) => c.kill(),
            AnyJailCgroup::V1(c) => c.kill(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    const ALL_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";
    const OWN: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice/mcp.scope";

    /// A directory with the two files detection reads.
    fn fake_cgroup(dir: &Path, controllers: &str, subtree_control: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        fs::write(dir.join("cgroup.subtree_control"), subtree_control).unwrap();
    }

    /// A fake mount with this process's cgroup at [`OWN`], and the text of
    /// `/proc/self/cgroup` naming it.
    fn fake_mount(own_controllers: &str, own_subtree: &str) -> (TempDir, PathBuf, String) {
        let tmp = TempDir::new().unwrap();
        let mount = tmp.path().join("cgroup");
        fake_cgroup(&mount, ALL_CONTROLLERS, "cpu io memory pids\n");
        fake_cgroup(&mount.join(OWN.trim_start_matches('/')), own_controllers, own_subtree);
        (tmp, mount, format!("0::{OWN}\n"))
    }

    fn reason(result: Result<DelegatedParent, Unavailable>) -> String {
        result.expect_err("should be unavailable").reason
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    // --- /proc/self/cgroup ---

    #[test]
    fn v2_only_system() {
        assert_eq!(own_cgroup_path(&format!("0::{OWN}\n")), Some(OWN));
    }

    #[test]
    fn hybrid_system_uses_the_0_line() {
        let text = format!(
            "12:pids:/user.slice/user-1000.slice/user@1000.service\n\
             4:memory:/user.slice/user-1000.slice/user@1000.service\n\
             1:name=systemd:{OWN}\n\
             0::{OWN}\n"
        );
        assert_eq!(own_cgroup_path(&text), Some(OWN));
    }

    #[test]
    fn v1_only_system_has_no_v2_path() {
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/9dfa576e\n1:cpu:/\n";
        assert_eq!(own_cgroup_path(text), None);
        assert_eq!(own_cgroup_path(""), None);
    }

    #[test]
    fn v2_path_may_contain_colons() {
        assert_eq!(own_cgroup_path("0::/a:b/c\n"), Some("/a:b/c"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_cgroup_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_cgroup_path("/a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(relative_cgroup_path("/../../a"), None);
        assert_eq!(relative_cgroup_path("a/b"), None);
    }

    // --- detection against a fake tree ---

    #[test]
    fn parent_that_already_delegates_is_used_unchanged() {
        let (_tmp, mount, text) = fake_mount("cpu memory pids\n", "cpu memory pids\n");
        let own = mount.join(OWN.trim_start_matches('/'));
        let parent = find_delegated_parent(&mount, &text).unwrap();
        assert_eq!(parent.path(), own);
        assert_eq!(read(&own.join("cgroup.subtree_control")), "cpu memory pids\n");
        assert_eq!(
            entries(&own),
            ["cgroup.controllers", "cgroup.subtree_control"],
            "the probe child is gone"
        );
    }

    #[test]
    fn parent_gets_controllers_enabled() {
        let (_tmp, mount, text) = fake_mount("io memory pids cpu\n", "");
        let parent = find_delegated_parent(&mount, &text).unwrap();
        assert_eq!(
            read(&parent.path().join("cgroup.subtree_control")),
            "+memory +pids +cpu"
        );
    }

    #[test]
    fn root_cgroup_can_be_the_parent() {
        let (_tmp, mount, _) = fake_mount("", "");
        let parent = find_delegated_parent(&mount, "0::/\n").unwrap();
        assert_eq!(parent.path().as_os_str(), mount.as_os_str());
    }

    #[test]
    fn configured_parent_is_checked_the_same_way() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("mcp-j.slice");
        fake_cgroup(&dir, "memory pids cpu", "memory pids cpu");
        assert_eq!(check_parent(&dir).unwrap().path(), dir);
        assert_eq!(
            reason(check_parent(Path::new("relative/dir"))),
            "cgroup parent `relative/dir` is not an absolute path"
        );
    }

    #[test]
    fn no_v2_hierarchy_at_the_mount() {
        // A v1 system: /sys/fs/cgroup is a tmpfs of per-controller mounts.
        let tmp = TempDir::new().unwrap();
        fs::create_dir(tmp.path().join("memory")).unwrap();
        assert_eq!(
            reason(find_delegated_parent(tmp.path(), "0::/\n")),
            format!("no cgroup v2 hierarchy mounted at `{}`", tmp.path().display())
        );
    }

    #[test]
    fn no_v2_line() {
        let (_tmp, mount, _) = fake_mount("", "");
        assert_eq!(
            reason(find_delegated_parent(&mount, "4:memory:/x\n1:cpu:/\n")),
            "this process is in no cgroup v2 cgroup (no `0::` line in /proc/self/cgroup)"
        );
    }

    #[test]
    fn own_cgroup_outside_the_namespace() {
        let (_tmp, mount, _) = fake_mount("", "");
        assert_eq!(
            reason(find_delegated_parent(&mount, "0::/../../other\n")),
            "own cgroup `/../../other` is not a path below the cgroup namespace root"
        );
    }

    #[test]
    fn own_cgroup_directory_missing() {
        let (_tmp, mount, _) = fake_mount("", "");
        let gone = mount.join("gone");
        assert_eq!(
            reason(find_delegated_parent(&mount, "0::/gone\n")),
            format!("`{}` is not a cgroup v2 directory", gone.display())
        );
    }

    #[test]
    fn controllers_not_delegated() {
        let (_tmp, mount, text) = fake_mount("", "");
        let own = mount.join(OWN.trim_start_matches('/'));
        assert_eq!(
            reason(find_delegated_parent(&mount, &text)),
            format!(
                "controllers memory,pids,cpu not delegated to `{}` (have: none)",
                own.display()
            )
        );

        fs::write(own.join("cgroup.controllers"), "pids io\n").unwrap();
        assert_eq!(
            reason(find_delegated_parent(&mount, &text)),
            format!(
                "controllers memory,cpu not delegated to `{}` (have: pids,io)",
                own.display()
            )
        );
    }

    #[test]
    fn child_cannot_be_created() {
        // Tests may run as root, which ignores directory modes: block the probe's name.
        let (_tmp, mount, text) = fake_mount("memory pids cpu", "");
        let own = mount.join(OWN.trim_start_matches('/'));
        let probe = own.join(format!("mcp-j-probe-{}", getpid().as_raw_nonzero()));
        fs::write(&probe, "").unwrap();
        let reason = reason(find_delegated_parent(&mount, &text));
        assert!(
            reason.starts_with(&format!("cannot create a child cgroup in `{}`: ", own.display())),
            "{reason}"
        );
        assert_eq!(read(&own.join("cgroup.subtree_control")), "", "not touched");
    }

    #[test]
    fn controllers_cannot_be_enabled() {
        let (_tmp, mount, text) = fake_mount("memory pids cpu", "");
        let own = mount.join(OWN.trim_start_matches('/'));
        let subtree = own.join("cgroup.subtree_control");
        fs::remove_file(&subtree).unwrap();
        let reason = reason(find_delegated_parent(&mount, &text));
        assert!(
            reason.starts_with(&format!("cannot read `{}`: ", subtree.display())),
            "{reason}"
        );

        // Present but not writable: a directory stands in for a refused write.
        fs::create_dir(&subtree).unwrap();
        let error = write_file(&subtree, SUBTREE_CONTROL_ENABLE).unwrap_err();
        assert!(enable_failure_reason(&own, &error).starts_with(&format!(
            "cannot enable controllers memory,pids,cpu in `{}`: ",
            subtree.display()
        )));
    }

    #[test]
    fn parent_with_processes_gets_a_hint() {
        let error = io::Error::from_raw_os_error(libc::EBUSY);
        assert_eq!(
            enable_failure_reason(Path::new("/sys/fs/cgroup/a.scope"), &error),
            "`/sys/fs/cgroup/a.scope` holds processes, and cgroup v2 lets a cgroup with \
             processes give no controllers to its children: configure an empty delegated \
             cgroup as the parent"
        );
    }

    // --- values ---

    #[test]
    fn cpu_max_values() {
        assert_eq!(cpu_max_value(1000), "100000 100000");
        assert_eq!(cpu_max_value(500), "50000 100000");
        assert_eq!(cpu_max_value(2500), "250000 100000");
        assert_eq!(cpu_max_value(10), "1000 100000");
        assert_eq!(cpu_max_value(1), "1000 100000", "kernel minimum");
        assert_eq!(cpu_max_value(0), "1000 100000", "zero is not unlimited");
        assert_eq!(cpu_max_value(u64::MAX), "17592186044415 100000");
    }

    #[test]
    fn pids_max_values() {
        assert_eq!(pids_max_value(256), "257");
        assert_eq!(pids_max_value(0), "1");
        assert_eq!(pids_max_value(u64::MAX), "4194304");
    }

    #[test]
    fn cpu_stat_parsing() {
        let text = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n\
                    nr_periods 10\nnr_throttled 2\nthrottled_usec 5000\n";
        assert_eq!(parse_cpu_stat_usage_usec(text), Some(1_234_567));
        assert_eq!(parse_cpu_stat_usage_usec("user_usec 1\n"), None);
        assert_eq!(parse_cpu_stat_usage_usec("usage_usec x\n"), None);
        assert_eq!(parse_cpu_stat_usage_usec(""), None);
    }

    // --- cgroup v1 ---

    const MOUNTINFO: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
        32 31 0:29 / MOUNT/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        35 31 0:32 / MOUNT/memory rw,relatime - cgroup cgroup rw,memory\n\
        39 31 0:36 /outer MOUNT/pids rw,relatime - cgroup cgroup rw,pids\n\
        41 31 0:38 / MOUNT/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const V1_CGROUP: &str = "8:pids:/outer/box\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    fn fake_v1() -> (TempDir, String) {
        let tmp = TempDir::new().unwrap();
        let mount = tmp.path().display().to_string();
        for dir in ["memory/process_api/abc", "pids/box", "cpu"] {
            fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        (tmp, MOUNTINFO.replace("MOUNT", &mount))
    }

    #[test]
    fn v1_parents_are_own_cgroups_below_each_mount() {
        let (tmp, mountinfo) = fake_v1();
        let parents = find_v1_parents(&mountinfo, V1_CGROUP).unwrap();
        let dirs: Vec<(V1Controller, PathBuf)> =
            parents.dirs().into_iter().map(|(c, p)| (c, p.to_path_buf())).collect();
        assert_eq!(
            dirs,
            vec![
                (V1Controller::Memory, tmp.path().join("memory/process_api/abc")),
                (V1Controller::Pids, tmp.path().join("pids/box")),
                (V1Controller::Cpu, tmp.path().join("cpu")),
            ],
            "the pids mount shows /outer at its root"
        );
    }

    #[test]
    fn v1_needs_memory_and_pids_but_not_cpu() {
        let (_tmp, mountinfo) = fake_v1();
        let without_cpu: String = mountinfo
            .lines()
            .filter(|l| !l.ends_with(",cpu"))
            .map(|l| format!("{l}\n"))
            .collect();
        let parents = find_v1_parents(&without_cpu, V1_CGROUP).unwrap();
        assert_eq!(parents.dirs().len(), 2);
        let without_memory: String = mountinfo
            .lines()
            .filter(|l| !l.ends_with(",memory"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            find_v1_parents(&without_memory, V1_CGROUP).unwrap_err().reason,
            "no cgroup v1 hierarchy holds the `memory` controller"
        );
        assert_eq!(
            find_v1_parents(&mountinfo, "4:memory:/process_api/abc\n")
                .unwrap_err()
                .reason,
            "this process is in no `pids` cgroup (/proc/self/cgroup)"
        );
        assert_eq!(
            find_v1_parents(&mountinfo, "8:pids:/elsewhere\n4:memory:/process_api/abc\n")
                .unwrap_err()
                .reason,
            "own `pids` cgroup `/elsewhere` is not below the mounted `/outer`"
        );
    }

    #[test]
    fn v1_probe_is_for_doctor_and_names_the_parent_it_cannot_use() {
        let (tmp, mountinfo) = fake_v1();
        let parents = find_v1_parents(&mountinfo, V1_CGROUP).unwrap();
        parents.probe().unwrap();
        assert!(
            entries(&tmp.path().join("memory/process_api/abc")).is_empty(),
            "the probe leaves nothing behind"
        );
        fs::remove_dir_all(tmp.path().join("pids/box")).unwrap();
        // Finding the parents does not touch the tree (a run does not probe).
        let parents = find_v1_parents(&mountinfo, V1_CGROUP).unwrap();
        let why = parents.probe().unwrap_err().reason;
        assert!(why.contains("pids/box"), "{why}");
    }

    #[test]
    fn v1_create_cleans_up_when_a_write_fails() {
        let (tmp, mountinfo) = fake_v1();
        let parents = find_v1_parents(&mountinfo, V1_CGROUP).unwrap();
        // A fake tree's mkdir makes no interface files: the first write fails, and what
        // was made is removed again.
        let error = JailCgroupV1::create(&parents, "jail", &limits()).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Write { path, .. }
                if *path == tmp.path().join("memory/process_api/abc/jail/memory.limit_in_bytes")),
            "{error:?}"
        );
        assert!(!tmp.path().join("memory/process_api/abc/jail").exists());
        assert!(!tmp.path().join("pids/box/jail").exists());
    }

    #[test]
    fn v1_limits_are_written_exactly() {
        let tmp = TempDir::new().unwrap();
        let (memory, pids, cpu) = (tmp.path().join("m"), tmp.path().join("p"), tmp.path().join("c"));
        fake_jail_dir(&memory, &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]);
        fake_jail_dir(&pids, &["pids.max"]);
        fake_jail_dir(&cpu, &["cpu.cfs_period_us", "cpu.cfs_quota_us"]);
        assert!(write_v1_limits(V1Controller::Memory, &memory, &limits()).unwrap());
        assert!(!write_v1_limits(V1Controller::Pids, &pids, &limits()).unwrap());
        assert!(!write_v1_limits(V1Controller::Cpu, &cpu, &limits()).unwrap());
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "536870912");
        assert_eq!(read(&memory.join("memory.memsw.limit_in_bytes")), "536870912");
        assert_eq!(read(&pids.join("pids.max")), "257");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "150000");

        // Without swap accounting the memsw file is missing: not an error, never created.
        let no_swap = tmp.path().join("n");
        fake_jail_dir(&no_swap, &["memory.limit_in_bytes"]);
        assert!(!write_v1_limits(V1Controller::Memory, &no_swap, &limits()).unwrap());
        assert!(!no_swap.join("memory.memsw.limit_in_bytes").exists());
    }

    #[test]
    fn v1_processes_usage_and_removal() {
        let tmp = TempDir::new().unwrap();
        let (memory, pids) = (tmp.path().join("m"), tmp.path().join("p"));
        fake_jail_dir(&memory, &["cgroup.procs", "tasks"]);
        fake_jail_dir(&pids, &["cgroup.procs", "tasks"]);
        let jail = JailCgroupV1 {
            dirs: vec![
                (V1Controller::Memory, memory.clone()),
                (V1Controller::Pids, pids.clone()),
            ],
            swap_limited: true,
            owner: getpid(),
            removed: false,
        };
        // The caller's own thread through `tasks` (no global lock), never a pid through
        // `cgroup.procs`.
        jail.join().unwrap();
        for dir in [&memory, &pids] {
            assert_eq!(read(&dir.join("tasks")), "0");
            assert_eq!(read(&dir.join("cgroup.procs")), "");
        }
        assert!(!jail.cpu_limited());
        assert_eq!(jail.path(), memory);
        assert_eq!(jail.peak_memory().unwrap(), None);
        fs::write(memory.join("memory.max_usage_in_bytes"), "1048576\n").unwrap();
        assert_eq!(jail.peak_memory().unwrap(), Some(1_048_576));
        // Empty `cgroup.procs` files: nothing to kill; the fake files keep the
        // directories from removal, which is reported.
        fs::write(memory.join("cgroup.procs"), "").unwrap();
        jail.kill().unwrap();
        assert!(matches!(jail.remove(), Err(CgroupError::Remove { .. })));
    }

    #[test]
    fn stale_jail_cgroups_are_swept_and_nothing_else() {
        let tmp = TempDir::new().unwrap();
        let parent = tmp.path();
        for dir in ["mcp-j-111-0", "mcp-j-222-3", "mcp-j-probe-111", "other", "mcp-j-111-x"] {
            fs::create_dir(parent.join(dir)).unwrap();
        }
        // A v2 leftover gets cgroup.kill (a regular file here keeps it from removal,
        // as a live cgroup's tasks would): it is written, not removed.
        fs::write(parent.join("mcp-j-222-3/cgroup.kill"), "").unwrap();
        let removed = sweep_stale(parent, |pid| pid == 333);
        assert_eq!(removed, 1);
        assert!(!parent.join("mcp-j-111-0").exists());
        assert_eq!(read(&parent.join("mcp-j-222-3/cgroup.kill")), "1");
        for kept in ["mcp-j-probe-111", "other", "mcp-j-111-x"] {
            assert!(parent.join(kept).exists(), "{kept}");
        }
        fs::create_dir(parent.join("mcp-j-333-0")).unwrap();
        assert_eq!(
            sweep_stale(parent, |pid| pid == 333),
            0,
            "a live supervisor's cgroup stays"
        );
        assert!(parent.join("mcp-j-333-0").exists());
    }

    #[test]
    fn cfs_quota_values() {
        assert_eq!(cfs_quota_value(1000), "100000");
        assert_eq!(cfs_quota_value(0), "1000");
    }

    #[test]
    fn oom_kill_counts() {
        assert_eq!(parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), Some(2));
        assert_eq!(parse_oom_kill("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n"), Some(1));
        assert_eq!(parse_oom_kill("oom_kill_disable 0\n"), None);
    }

    #[test]
    fn names_are_one_component() {
        assert!(is_one_component("mcp-j-1234"));
        for bad in ["", ".", "..", "a/b", "/a", "a/", "./a", "a/."] {
            assert!(!is_one_component(bad), "{bad:?}");
        }
    }

    // --- the jail cgroup ---

    fn limits() -> Limits {
        Limits {
            memory_bytes: 512 * 1024 * 1024,
            pids: 256,
            fds: 1024,
            cpu_millicores: 1500,
            max_file_size_bytes: 1 << 30,
        }
    }

    /// A jail cgroup directory with the files the kernel would create, all empty.
    fn fake_jail_dir(dir: &Path, files: &[&str]) {
        fs::create_dir_all(dir).unwrap();
        for file in files {
            fs::write(dir.join(file), "").unwrap();
        }
    }

    fn jail_at(path: &Path) -> JailCgroup {
        JailCgroup {
            path: path.to_path_buf(),
            swap_limited: true,
            owner: getpid(),
            removed: false,
        }
    }

    #[test]
    fn limits_are_written_exactly() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["memory.max", "memory.swap.max", "pids.max", "cpu.max"]);
        assert!(write_limits(&dir, &limits()).unwrap());
        assert_eq!(read(&dir.join("memory.max")), "536870912");
        assert_eq!(read(&dir.join("memory.swap.max")), "0");
        assert_eq!(read(&dir.join("pids.max")), "257");
        assert_eq!(read(&dir.join("cpu.max")), "150000 100000");
    }

    #[test]
    fn swap_limit_is_skipped_without_swap_accounting() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["memory.max", "pids.max", "cpu.max"]);
        assert!(!write_limits(&dir, &limits()).unwrap());
        assert_eq!(read(&dir.join("pids.max")), "257");
        assert!(!dir.join("memory.swap.max").exists(), "never created");
    }

    #[test]
    fn missing_limit_file_is_an_error_not_a_new_file() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["memory.max", "memory.swap.max", "cpu.max"]);
        let error = write_limits(&dir, &limits()).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Write { path, value, .. }
                if *path == dir.join("pids.max") && value == "257"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("cannot write `257` to `{}`", dir.join("pids.max").display())
        );
        assert!(!dir.join("pids.max").exists());
    }

    #[test]
    fn create_makes_the_directory_and_cleans_up_when_a_write_fails() {
        // A fake tree's mkdir creates no interface files, so the first write fails: this
        // checks the directory is made where expected and removed again.
        let tmp = TempDir::new().unwrap();
        let parent = DelegatedParent {
            path: tmp.path().to_path_buf(),
        };
        let error = JailCgroup::create(&parent, "jail-1", &limits()).unwrap_err();
        assert!(
            matches!(&error, CgroupError::Write { path, .. }
                if *path == tmp.path().join("jail-1/memory.max")),
            "{error:?}"
        );
        assert!(!tmp.path().join("jail-1").exists());
    }

    #[test]
    fn create_refuses_bad_names_and_existing_cgroups() {
        let tmp = TempDir::new().unwrap();
        let parent = DelegatedParent {
            path: tmp.path().to_path_buf(),
        };
        let error = JailCgroup::create(&parent, "../escape", &limits()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid cgroup name `../escape`: must be one path component"
        );

        fs::create_dir(tmp.path().join("taken")).unwrap();
        let error = JailCgroup::create(&parent, "taken", &limits()).unwrap_err();
        assert!(matches!(error, CgroupError::Create { .. }), "{error:?}");
        assert!(tmp.path().join("taken").exists(), "not someone else's to remove");
    }

    #[test]
    fn join_and_kill_write_exact_bytes() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["cgroup.procs", "cgroup.kill"]);
        let jail = jail_at(&dir);
        jail.join().unwrap();
        assert_eq!(read(&dir.join("cgroup.procs")), "0");
        jail.kill().unwrap();
        assert_eq!(read(&dir.join("cgroup.kill")), "1");
    }

    #[test]
    fn kill_fails_on_kernels_without_cgroup_kill() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &[]);
        let error = jail_at(&dir).kill().unwrap_err();
        assert!(matches!(error, CgroupError::Write { .. }), "{error:?}");
    }

    #[test]
    fn usage_is_read_back() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &[]);
        let jail = jail_at(&dir);
        assert_eq!(jail.peak_memory().unwrap(), None, "before Linux 5.19");
        assert!(matches!(jail.cpu_usage_usec(), Err(CgroupError::Read { .. })));

        fs::write(dir.join("memory.peak"), "104857600\n").unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 42\nuser_usec 40\nsystem_usec 2\n").unwrap();
        assert_eq!(jail.peak_memory().unwrap(), Some(104_857_600));
        assert_eq!(jail.cpu_usage_usec().unwrap(), 42);

        fs::write(dir.join("memory.peak"), "max\n").unwrap();
        fs::write(dir.join("cpu.stat"), "user_usec 40\n").unwrap();
        assert!(matches!(jail.peak_memory(), Err(CgroupError::Malformed { .. })));
        let error = jail.cpu_usage_usec().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot find `usage_usec` in `{}`", dir.join("cpu.stat").display())
        );
    }

    #[test]
    fn remove_deletes_the_directory_and_tolerates_it_gone() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &[]);
        jail_at(&dir).remove().unwrap();
        assert!(!dir.exists());
        jail_at(&dir).remove().unwrap();
    }

    #[test]
    fn remove_reports_other_errors_at_once() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["leftover"]);
        let error = jail_at(&dir).remove().unwrap_err();
        assert!(
            matches!(&error, CgroupError::Remove { path, .. } if *path == dir),
            "{error:?}"
        );
    }

    #[test]
    fn drop_kills_and_removes() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &[]);
        drop(jail_at(&dir));
        assert!(!dir.exists());

        // A fake cgroup.kill records the kill (and, being a regular file, keeps the
        // directory from being removed).
        fake_jail_dir(&dir, &["cgroup.kill"]);
        drop(jail_at(&dir));
        assert_eq!(read(&dir.join("cgroup.kill")), "1");
    }

    #[test]
    fn drop_in_another_process_does_nothing() {
        let tmp = TempDir::new().unwrap();
        let dir = tmp.path().join("jail");
        fake_jail_dir(&dir, &["cgroup.kill"]);
        let mut jail = jail_at(&dir);
        jail.owner = Pid::from_raw(getpid().as_raw_nonzero().get().wrapping_add(1)).unwrap();
        drop(jail);
        assert_eq!(read(&dir.join("cgroup.kill")), "", "no kill");
    }

    #[test]
    fn busy_is_retried_then_reported() {
        let busy = || Err(io::Error::from_raw_os_error(libc::EBUSY));

        let mut calls = 0;
        let result = retry_while_busy(
            || {
                calls += 1;
                if calls < 3 { busy() } else { Ok(()) }
            },
            5,
            Duration::ZERO,
        );
        assert!(result.is_ok());
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result = retry_while_busy(
            || {
                calls += 1;
                busy()
            },
            5,
            Duration::ZERO,
        );
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EBUSY));
        assert_eq!(calls, 5);

        let mut calls = 0;
        let result = retry_while_busy(
            || {
                calls += 1;
                Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
            },
            5,
            Duration::ZERO,
        );
        assert!(result.is_err());
        assert_eq!(calls, 1, "only EBUSY is retried");
    }
}
