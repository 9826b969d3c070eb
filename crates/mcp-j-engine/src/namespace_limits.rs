//! What the jail's own namespaces let it pin, made small by its init while it still holds
//! its capabilities: steps 6, 11 and 19 of docs/SANDBOX.md.
//!
//! # Overview
//!
//! Some kernel counts are kept per namespace, and a jail's namespaces start with the
//! host's generous defaults:
//!
//! - **Per user namespace** (`/proc/sys/user/max_*`): inotify instances and watches,
//!   fanotify groups and marks, and how many namespaces of each kind may be made. These
//!   are charged up the chain of user namespaces, so without a lower limit here a jail
//!   could take all 128 inotify instances of its host user — the caller's own. Writable
//!   with `CAP_SYS_RESOURCE` in the jail's user namespace, which init has until it drops
//!   every capability. [`USER_NAMESPACE_LIMITS`].
//! - **Per IPC namespace** (`kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`):
//!   SysV shared memory is charged to no process (its `RLIMIT_AS` and `RLIMIT_DATA` see
//!   nothing once the segment is detached), so the namespace's `shmall` is its only
//!   bound without a memory cgroup. [`ipc_namespace_limits`] sets the total to the
//!   jail's memory limit. The kernel lets only the IPC namespace's root uid write these
//!   (an euid check, not a capability one). A root caller's jail maps no uid 0, so its
//!   IPC namespace's root is host root: its init writes them (step 11) before it becomes
//!   the jail's user. An unprivileged caller's jail has no uid that may, so its helper
//!   makes the IPC namespace itself (step 6), inside a user namespace of its own whose
//!   root is the caller, and writes them there; the jail's user namespace is a child of
//!   that one. The jailed program then runs with the caller's host uid — that
//!   namespace's root — so only the jail's read-only `/proc/sys` keeps it from raising
//!   them (no capability is needed): that mount is load-bearing here.
//!
//! Writes go through `/proc/sys`, whose files are chosen by the *writer's* namespaces,
//! not by the procfs mount: the helper and init write them through the host's `/proc`,
//! before the jail's own procfs (whose `/proc/sys` is read-only) exists.
//!
//! # Test strategy
//!
//! The lists and values are unit-tested; [`PendingLimits`] and [`apply`] take the `/proc/sys` directory as a
//! parameter and is tested against a temporary directory. The escape suite checks the
//! effect end to end (the caller's inotify instances survive a jail that takes all it
//! can; SysV shared memory stops at the limit).

use std::io::Write;
use std::path::Path;

/// The real `/proc/sys`.
pub const PROC_SYS: &str = "/proc/sys";

/// A group of limits that is applied, or not, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitGroup {
    /// `/proc/sys/user/max_*`.
    UserNamespace = 1,
    /// SysV IPC and POSIX message queue limits of the IPC namespace.
    IpcNamespace = 2,
}

/// Inotify instances the jail may hold. Language servers and file watchers use a few;
/// the host user keeps the rest of its 128 (the kernel's default).
pub const MAX_INOTIFY_INSTANCES: u64 = 16;
/// Inotify watches the jail may hold: a quarter of the smallest per-user default the
/// kernel picks (8192 on small machines; more with more RAM since Linux 5.11).
pub const MAX_INOTIFY_WATCHES: u64 = 2048;

/// The per-user-namespace limits: inotify small; fanotify, and every namespace kind,
/// none (fanotify and nested namespaces are refused by seccomp anyway; this is the
/// second wall).
pub const USER_NAMESPACE_LIMITS: &[(&str, u64)] = &[
    ("user/max_inotify_instances", MAX_INOTIFY_INSTANCES),
    ("user/max_inotify_watches", MAX_INOTIFY_WATCHES),
    ("user/max_fanotify_groups", 0),
    ("user/max_fanotify_marks", 0),
    ("user/max_user_namespaces", 0),
    ("user/max_mnt_namespaces", 0),
    ("user/max_pid_namespaces", 0),
    ("user/max_net_namespaces", 0),
    ("user/max_ipc_namespaces", 0),
    ("user/max_uts_namespaces", 0),
    ("user/max_cgroup_namespaces", 0),
    ("user/max_time_namespaces", 0),
];

/// SysV message queues, semaphore sets, shared memory segments the jail may create.
const IPC_IDS: u64 = 32;
/// The largest SysV message and queue, in bytes.
const MSG_MAX_BYTES: u64 = 8192;
const MSG_QUEUE_BYTES: u64 = 16384;
/// POSIX message queues: how many, messages per queue, largest message.
const MQ_QUEUES: u64 = 16;
const MQ_MESSAGES: u64 = 10;
const MQ_MESSAGE_BYTES: u64 = 8192;
/// The page size that `kernel.shmall` counts in. Larger pages only make the bound tighter.
const PAGE_BYTES: u64 = 4096;

/// The IPC namespace's limits for a jail of `memory_bytes`: all SysV shared memory
/// together at most `memory_bytes` (`shmall`, in pages), one segment too (`shmmax`), and
/// small counts and sizes for the rest (the values are `sysctl` text).
#[must_use]
pub fn ipc_namespace_limits(memory_bytes: u64) -> Vec<(&'static str, String)> {
    let pages = (memory_bytes / PAGE_BYTES).max(1);
    vec![
        ("kernel/shmmax", memory_bytes.to_string()),
        ("kernel/shmall", pages.to_string()),
        ("kernel/shmmni", IPC_IDS.to_string()),
        ("kernel/msgmax", MSG_MAX_BYTES.to_string()),
        ("kernel/msgmnb", MSG_QUEUE_BYTES.to_string()),
        ("kernel/msgmni", IPC_IDS.to_string()),
        // semmsl semmns semopm semmni
        ("kernel/sem", format!("32 1024 32 {IPC_IDS}")),
        ("fs/mqueue/queues_max", MQ_QUEUES.to_string()),
        ("fs/mqueue/msg_max", MQ_MESSAGES.to_string()),
        ("fs/mqueue/msgsize_max", MQ_MESSAGE_BYTES.to_string()),
    ]
}

/// Limits whose files are open, to be written later: the user-namespace limits include
/// `max_mnt_namespaces` = 0, which would stop init's own mounts (every `open_tree` and
/// `fsmount` makes a mount namespace), so they are opened early — through the host's
/// `/proc`, while it is in view — and written just before the program is forked.
#[derive(Debug)]
pub struct PendingLimits(Vec<(&'static str, std::fs::File, String)>);

impl PendingLimits {
    /// Opens every `(file, value)` under `proc_sys` for writing; fails at the first file
    /// that cannot be opened. Files are opened without `O_CREAT`: only the kernel makes
    /// them.
    pub fn open(
        proc_sys: &Path,
        limits: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Result<PendingLimits, (&'static str, std::io::Error)> {
        let mut open = Vec::new();
        for (file, value) in limits {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(proc_sys.join(file))
                .map_err(|e| (file, e))?;
            open.push((file, f, value));
        }
        Ok(PendingLimits(open))
    }

    /// Writes each value (one `write` each, as sysctl files expect); fails at the first
    /// refused one.
    pub fn write(self) -> Result<(), (&'static str, std::io::Error)> {
        for (file, mut f, value) in self.0 {
            f.write_all(value.as_bytes()).map_err(|e| (file, e))?;
        }
        Ok(())
    }
}

/// Opens and writes every `(file, value)` under `proc_sys` at once.
pub fn apply(
    proc_sys: &Path,
    limits: impl IntoIterator<Item = (&'static str, String)>,
) -> Result<(), (&'static str, std::io::Error)> {
    PendingLimits::open(proc_sys, limits)?.write()
}

/// The user-namespace limits as `(file, value)`.
pub fn user_namespace_limits() -> impl Iterator<Item = (&'static str, String)> {
    USER_NAMESPACE_LIMITS.iter().map(|(f, v)| (*f, v.to_string()))
}

/// The bit of `group` when `ok`, else 0.
#[must_use]
pub fn bit(group: LimitGroup, ok: bool) -> u32 {
    if ok { group as u32 } else { 0 }
}

/// Whether `group` is in the bit set `applied`.
#[must_use]
pub fn applied(applied: u32, group: LimitGroup) -> bool {
    applied & group as u32 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn shared_memory_in_total_is_the_memory_limit() {
        let limits = ipc_namespace_limits(64 << 20);
        let value = |name: &str| limits.iter().find(|(f, _)| *f == name).map(|(_, v)| v.clone());
        assert_eq!(value("kernel/shmmax").as_deref(), Some("67108864"));
        assert_eq!(value("kernel/shmall").as_deref(), Some("16384"));
        assert_eq!(ipc_namespace_limits(1)[1].1, "1", "never 0 pages");
    }

    #[test]
    fn nested_namespaces_and_fanotify_get_none() {
        for (file, value) in USER_NAMESPACE_LIMITS {
            if file.ends_with("_namespaces") || file.contains("fanotify") {
                assert_eq!(*value, 0, "{file}");
            }
        }
        assert_eq!(USER_NAMESPACE_LIMITS.len(), 12);
    }

    fn fake_proc_sys(files: &[&str]) -> tempfile::TempDir {
        let tmp = tempfile::TempDir::new().unwrap();
        for file in files {
            let path = tmp.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        tmp
    }

    #[test]
    fn apply_writes_each_value_and_never_creates_a_file() {
        let user: Vec<&str> = USER_NAMESPACE_LIMITS.iter().map(|(f, _)| *f).collect();
        let tmp = fake_proc_sys(&user);
        let pending = PendingLimits::open(tmp.path(), user_namespace_limits()).unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("user/max_inotify_instances")).unwrap(),
            "",
            "written only later"
        );
        pending.write().unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("user/max_inotify_instances")).unwrap(),
            "16"
        );
        assert!(!tmp.path().join("kernel/shmmax").exists(), "not created");
        let error = apply(tmp.path(), ipc_namespace_limits(1)).unwrap_err();
        assert_eq!(error.0, "kernel/shmmax");
    }

    #[test]
    fn both_groups_are_reported_when_applied() {
        let mut files: Vec<&str> = USER_NAMESPACE_LIMITS.iter().map(|(f, _)| *f).collect();
        let ipc = ipc_namespace_limits(1);
        files.extend(ipc.iter().map(|(f, _)| *f));
        let tmp = fake_proc_sys(&files);
        let ipc_ok = apply(tmp.path(), ipc_namespace_limits(64 << 20)).is_ok();
        let user_ok = apply(tmp.path(), user_namespace_limits()).is_ok();
        let bits = bit(LimitGroup::IpcNamespace, ipc_ok) | bit(LimitGroup::UserNamespace, user_ok);
        assert!(applied(bits, LimitGroup::UserNamespace));
        assert!(applied(bits, LimitGroup::IpcNamespace));
        assert_eq!(bit(LimitGroup::IpcNamespace, false), 0);
        assert_eq!(
            fs::read_to_string(tmp.path().join("kernel/sem")).unwrap(),
            "32 1024 32 32"
        );
    }
}
