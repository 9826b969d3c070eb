//! Which resource limits (rlimits) the jailed program gets, and what enforces each limit.
//!
//! # Overview
//!
//! The jail's limits come from [`Limits`]. Where the supervisor could prepare a cgroup
//! (a delegated v2, or v1 for a root caller; see [`crate::cgroup`]), the cgroup bounds
//! the whole jail's memory and tasks (and CPU where the controller is there), and the
//! rlimits here only cover what a cgroup does not (open files, file size, core dumps,
//! locked memory, message queues, scheduling priority). Without a cgroup, rlimits are the
//! fallback: they bound memory per process only (no aggregate: reported *absent*), the
//! number of tasks, and nothing of CPU. The jail's own namespace limits
//! ([`crate::namespace_limits`]) hold in both cases.
//!
//! [`rlimit_plan`] builds the list as data, with no I/O, so that it is unit-tested here and
//! applied by the jail in one loop (`setrlimit` with soft = hard, before `execve`).
//! [`describe_limit_enforcement`] says, per resource, whether the limit is enforced,
//! partial or absent, and by what; `doctor` and the audit report print it.
//!
//! # Why the hard limit equals the soft limit
//!
//! Raising a hard limit needs `CAP_SYS_RESOURCE` in the *initial* user namespace
//! (`do_prlimit` checks `capable()`, not `ns_capable()`). The jail has capabilities only in
//! its own user namespace, so with hard = soft the program can lower a limit but never
//! raise it again.
//!
//! # Compatibility
//!
//! - `RLIMIT_DATA` counts private writable mappings (heap, anonymous private `mmap`) since
//!   Linux 4.7; before, only the heap and data segment.
//! - `RLIMIT_NPROC` is counted per (user namespace, uid) since Linux 5.14 (ucounts); before,
//!   per host user, so it also counted the caller's other processes: still a bound on the
//!   jail, only a tighter one.
//! - `RLIMIT_NOFILE` above `/proc/sys/fs/nr_open` (default 1048576) fails with `EPERM`.
//!
//! # Test strategy
//!
//! Pure unit tests: the exact plan in both modes, the saturation of large values, and the
//! reported status of every resource in both modes.

use rustix::process::{Resource, Rlimit};
use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupCoverage;
use crate::report::LayerStatus;
use crate::spec::Limits;

/// `RLIMIT_MEMLOCK` for the jail: 8 MiB.
///
/// Linux's own default since 5.16, so programs that lock a little memory (secrets, some
/// runtimes) behave as usual, while no process can pin more than this in RAM. Locking
/// more needs `CAP_IPC_LOCK` in the initial user namespace, which the jail never has.
pub const MEMLOCK_BYTES: u64 = 8 * 1024 * 1024;

/// How much more address space than `memory_bytes` a process may reserve (`RLIMIT_AS`).
///
/// JIT runtimes reserve address space they never touch: node fails to start with
/// `RLIMIT_AS` = 512 MiB and works at 1 GiB (measured). 4 GiB of headroom lets them start,
/// while the limit still bounds what `RLIMIT_DATA` does not count: shared anonymous
/// mappings (`MAP_SHARED | MAP_ANONYMOUS`, shmem).
pub const ADDRESS_SPACE_HEADROOM_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// `RLIMIT_MSGQUEUE` for the jail: 800 KiB, Linux's default, stated so that it holds
/// whatever the caller's own limit is. POSIX message queues are kernel memory that no
/// process's memory limit counts.
pub const MSGQUEUE_BYTES: u64 = 819_200;

/// A resource the jail limits with `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RlimitResource {
    /// `RLIMIT_AS`: address space of one process.
    As,
    /// `RLIMIT_DATA`: private writable memory of one process.
    Data,
    /// `RLIMIT_NPROC`: tasks of the jail's uid in the jail's user namespace.
    Nproc,
    /// `RLIMIT_NOFILE`: open files of one process.
    Nofile,
    /// `RLIMIT_CORE`: size of a core file.
    Core,
    /// `RLIMIT_MEMLOCK`: locked memory of one process.
    Memlock,
    /// `RLIMIT_RTPRIO`: highest real-time priority.
    Rtprio,
    /// `RLIMIT_NICE`: how far the nice value may be lowered (priority raised).
    Nice,
    /// `RLIMIT_FSIZE`: the largest file a process may write.
    Fsize,
    /// `RLIMIT_MSGQUEUE`: bytes of POSIX message queues of the jail's uid.
    Msgqueue,
}

impl RlimitResource {
    /// The resource as `rustix` names it, for `rustix::process::setrlimit`.
    #[must_use]
    pub fn to_rustix(self) -> Resource {
        match self {
            RlimitResource::As => Resource::As,
            RlimitResource::Data => Resource::Data,
            RlimitResource::Nproc => Resource::Nproc,
            RlimitResource::Nofile => Resource::Nofile,
            RlimitResource::Core => Resource::Core,
            RlimitResource::Memlock => Resource::Memlock,
            RlimitResource::Rtprio => Resource::Rtprio,
            RlimitResource::Nice => Resource::Nice,
            RlimitResource::Fsize => Resource::Fsize,
            RlimitResource::Msgqueue => Resource::Msgqueue,
        }
    }

    /// The kernel's name, for error messages and reports (`RLIMIT_NOFILE`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RlimitResource::As => "RLIMIT_AS",
            RlimitResource::Data => "RLIMIT_DATA",
            RlimitResource::Nproc => "RLIMIT_NPROC",
            RlimitResource::Nofile => "RLIMIT_NOFILE",
            RlimitResource::Core => "RLIMIT_CORE",
            RlimitResource::Memlock => "RLIMIT_MEMLOCK",
            RlimitResource::Rtprio => "RLIMIT_RTPRIO",
            RlimitResource::Nice => "RLIMIT_NICE",
            RlimitResource::Fsize => "RLIMIT_FSIZE",
            RlimitResource::Msgqueue => "RLIMIT_MSGQUEUE",
        }
    }
}

/// One limit to set: soft and hard limit both equal `value`, so the program can't raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitSetting {
    /// Which resource.
    pub resource: RlimitResource,
    /// The soft and hard limit. `u64::MAX` is `RLIM_INFINITY`.
    pub value: u64,
}

impl RlimitSetting {
    /// The limit as `rustix` takes it: soft = hard = `value`, `u64::MAX` as infinity.
    #[must_use]
    pub fn rlimit(&self) -> Rlimit {
        let value = (self.value != u64::MAX).then_some(self.value);
        Rlimit {
            current: value,
            maximum: value,
        }
    }
}

/// The rlimits the jailed program gets, in the order the jail sets them.
///
/// Always, whatever enforces the other limits:
/// - `RLIMIT_NOFILE` = `fds`: the spec counts open files per process, which is exactly
///   what this limit counts (a cgroup has no file count).
/// - `RLIMIT_CORE` = 0: no core file, which would land in a writable directory, fill the
///   disk and copy the program's memory out of its lifetime. (A `core_pattern` pipe
///   handler is the host's choice; systemd-coredump honours a zero `RLIMIT_CORE`.)
/// - `RLIMIT_MEMLOCK` = [`MEMLOCK_BYTES`].
/// - `RLIMIT_RTPRIO` = 0 and `RLIMIT_NICE` = 0: no real-time scheduling and no priority
///   above normal, so the program can't starve the host's tasks.
/// - `RLIMIT_FSIZE` = `max_file_size_bytes`: no file (on disk, tmpfs, or a memfd, whose
///   `write` and `ftruncate` the kernel checks against it too) grows past it; the writer
///   gets `SIGXFSZ` (which kills it unless handled) and `EFBIG`.
/// - `RLIMIT_MSGQUEUE` = [`MSGQUEUE_BYTES`].
///
/// When `limits_by_cgroup` is false (no cgroup), also:
/// - `RLIMIT_NPROC` = `pids + 1`. Inside the jail's own user namespace it is counted per
///   (user namespace, uid) since Linux 5.14, and the jail's uid is used by the jail only,
///   so it bounds the jail's tasks (threads count). The `+ 1` is the jail's init (pid 1),
///   which runs under the same uid. The kernel exempts tasks with `CAP_SYS_RESOURCE` or
///   `CAP_SYS_ADMIN` in the *initial* user namespace, where the jail has nothing, so the
///   limit holds even when the caller is host root — provided the jail's uid maps to a
///   host uid other than 0: the kernel also exempts every task whose real uid is host
///   root (`INIT_USER`), see [`describe_limit_enforcement`].
/// - `RLIMIT_DATA` = `memory_bytes`: private writable memory (heap, anonymous private
///   mappings), which is what a memory bomb allocates.
/// - `RLIMIT_AS` = `memory_bytes` + [`ADDRESS_SPACE_HEADROOM_BYTES`]: a looser backstop that
///   also bounds shared anonymous mappings, which `RLIMIT_DATA` does not count.
///
/// These three bound each process, not the jail: without a cgroup there is no aggregate
/// memory limit, and [`describe_limit_enforcement`] reports memory as absent.
///
/// When `limits_by_cgroup` is true, the cgroup bounds pids and memory for the whole jail,
/// and these three are left out: a per-process memory rlimit under a cgroup would only
/// break runtimes that reserve address space, and the cgroup already counts the tasks.
///
/// CPU has no entry in either mode: `RLIMIT_CPU` counts total CPU seconds, not a rate,
/// and would kill a long-lived server after its budget; a quota needs a cgroup (`cpu.max`,
/// or v1 `cpu.cfs_quota_us`).
#[must_use]
pub fn rlimit_plan(limits: &Limits, limits_by_cgroup: bool) -> Vec<RlimitSetting> {
    let setting = |resource, value| RlimitSetting { resource, value };
    let mut plan = vec![
        setting(RlimitResource::Nofile, limits.fds),
        setting(RlimitResource::Core, 0),
        setting(RlimitResource::Memlock, MEMLOCK_BYTES),
        setting(RlimitResource::Rtprio, 0),
        setting(RlimitResource::Nice, 0),
        setting(RlimitResource::Fsize, limits.max_file_size_bytes),
        setting(RlimitResource::Msgqueue, MSGQUEUE_BYTES),
    ];
    if !limits_by_cgroup {
        plan.extend([
            setting(RlimitResource::Nproc, limits.pids.saturating_add(1)),
            setting(RlimitResource::Data, limits.memory_bytes),
            setting(
                RlimitResource::As,
                limits.memory_bytes.saturating_add(ADDRESS_SPACE_HEADROOM_BYTES),
            ),
        ]);
    }
    plan
}

/// A resource of [`Limits`], plus core dumps and the namespace quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// `memory_bytes`.
    Memory,
    /// `pids`.
    Pids,
    /// `fds`.
    Fds,
    /// `cpu_millicores`.
    Cpu,
    /// `max_file_size_bytes`.
    FileSize,
    /// No core files.
    CoreDumps,
    /// The jail's user namespace's own counts (inotify, fanotify, namespaces).
    UserQuotas,
    /// The jail's IPC namespace's SysV and POSIX message queue limits.
    IpcLimits,
}

impl LimitKind {
    /// The layer name in reports (`memory`, `pids`, `fds`, `cpu`, `file_size`,
    /// `core_dumps`, `user_quotas`, `ipc_limits`).
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Memory => "memory",
            LimitKind::Pids => "pids",
            LimitKind::Fds => "fds",
            LimitKind::Cpu => "cpu",
            LimitKind::FileSize => "file_size",
            LimitKind::CoreDumps => "core_dumps",
            LimitKind::UserQuotas => "user_quotas",
            LimitKind::IpcLimits => "ipc_limits",
        }
    }
}

/// What enforces one limit, for `doctor` and the audit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitEnforcement {
    /// Which limit.
    pub kind: LimitKind,
    /// How well it holds.
    pub status: LayerStatus,
    /// By what means, in a few words.
    pub means: String,
}

/// What nothing bounds without a cgroup (the escape suite's `memory_pinning_*` tests
/// measure it: a jail's unix socket buffers are kernel memory no rlimit counts).
pub const UNBOUNDED_WITHOUT_CGROUP: &str = "unix socket buffers";

/// Per limit, how well it holds and by what means.
///
/// `cgroup`: what the jail's cgroup covers (memory and pids for the whole jail, swap and
/// CPU as it says), `None` without one. `namespace_limits`: the bit set of
/// [`crate::namespace_limits::LimitGroup`]s the jail's init applied, `None` when setup
/// did not get that far.
///
/// A status never over-reports: without a cgroup, memory is [`LayerStatus::Absent`] — the
/// per-process rlimits bound one process's heap, not what the jail pins in the kernel
/// (memfds, shared memory, socket buffers) — and the means says what still bounds what.
#[must_use]
pub fn describe_limit_enforcement(
    cgroup: Option<CgroupCoverage>,
    namespace_limits: Option<u32>,
) -> Vec<LimitEnforcement> {
    use crate::namespace_limits::{LimitGroup, applied};
    use LayerStatus::{Absent, Enforced};

    let entry = |kind, status, means: String| LimitEnforcement { kind, status, means };
    let ipc_applied = namespace_limits.is_some_and(|bits| applied(bits, LimitGroup::IpcNamespace));
    let user_applied = namespace_limits.is_some_and(|bits| applied(bits, LimitGroup::UserNamespace));
    let (memory, pids, cpu) = match cgroup {
        Some(c) => {
            let v = c.version;
            let (memory_file, swap_file, pids_file, cpu_file) = if v == 2 {
                ("memory.max", "memory.swap.max = 0", "pids.max", "cpu.max")
            } else {
                (
                    "memory.limit_in_bytes",
                    "memory.memsw.limit_in_bytes",
                    "pids.max",
                    "cpu.cfs_quota_us",
                )
            };
            let swap = if c.swap {
                format!(" and {swap_file}")
            } else {
                " (swap not accounted by this kernel)".into()
            };
            (
                entry(
                    LimitKind::Memory,
                    Enforced,
                    format!(
                        "cgroup v{v} {memory_file}{swap} for the whole jail (charges memory, memfds, SysV shm \
                         and unix socket buffers)"
                    ),
                ),
                entry(
                    LimitKind::Pids,
                    Enforced,
                    format!("cgroup v{v} {pids_file} for the whole jail"),
                ),
                if c.cpu {
                    entry(
                        LimitKind::Cpu,
                        Enforced,
                        format!("cgroup v{v} {cpu_file} for the whole jail"),
                    )
                } else {
                    entry(
                        LimitKind::Cpu,
                        Absent,
                        format!("none: no cpu controller in cgroup v{v} here"),
                    )
                },
            )
        }
        None => {
            let shm = if ipc_applied {
                "SysV shm in total <= the limit (kernel.shmall)"
            } else {
                "SysV shm not bounded (the IPC namespace's limits could not be set)"
            };
            (
                entry(
                    LimitKind::Memory,
                    Absent,
                    format!(
                        "no aggregate limit (needs a delegated cgroup v2, or cgroup v1 for root); per process only: \
                         RLIMIT_DATA (+RLIMIT_AS); {shm}; each memfd <= --max-file-size; {UNBOUNDED_WITHOUT_CGROUP} not bounded"
                    ),
                ),
                entry(
                    LimitKind::Pids,
                    Enforced,
                    "RLIMIT_NPROC in the jail's user namespace".into(),
                ),
                entry(
                    LimitKind::Cpu,
                    Absent,
                    "none: a CPU quota needs a cgroup (v2 cpu.max, or v1 cpu for root)".into(),
                ),
            )
        }
    };
    vec![
        memory,
        pids,
        entry(LimitKind::Fds, Enforced, "RLIMIT_NOFILE per process".into()),
        cpu,
        entry(
            LimitKind::FileSize,
            Enforced,
            "RLIMIT_FSIZE per file (many files can still fill the filesystem)".into(),
        ),
        entry(LimitKind::CoreDumps, Enforced, "RLIMIT_CORE = 0".into()),
        if user_applied {
            entry(
                LimitKind::UserQuotas,
                Enforced,
                "the jail's user namespace: inotify 16 instances, fanotify and namespaces none".into(),
            )
        } else {
            entry(
                LimitKind::UserQuotas,
                Absent,
                "not applied: shared with the caller's user".into(),
            )
        },
        if ipc_applied {
            entry(
                LimitKind::IpcLimits,
                Enforced,
                "the jail's IPC namespace: kernel.shm*/msg*/sem, fs.mqueue.*; RLIMIT_MSGQUEUE".into(),
            )
        } else {
            entry(
                LimitKind::IpcLimits,
                Absent,
                "not set: host defaults; RLIMIT_MSGQUEUE".into(),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    fn limits() -> Limits {
        Limits {
            memory_bytes: 512 * MIB,
            pids: 256,
            fds: 1024,
            cpu_millicores: 1500,
            max_file_size_bytes: GIB,
        }
    }

    fn setting(resource: RlimitResource, value: u64) -> RlimitSetting {
        RlimitSetting { resource, value }
    }

    #[test]
    fn plan_without_cgroup_bounds_tasks_and_memory_per_process() {
        assert_eq!(
            rlimit_plan(&limits(), false),
            vec![
                setting(RlimitResource::Nofile, 1024),
                setting(RlimitResource::Core, 0),
                setting(RlimitResource::Memlock, 8 * MIB),
                setting(RlimitResource::Rtprio, 0),
                setting(RlimitResource::Nice, 0),
                setting(RlimitResource::Fsize, GIB),
                setting(RlimitResource::Msgqueue, 819_200),
                setting(RlimitResource::Nproc, 257),
                setting(RlimitResource::Data, 512 * MIB),
                setting(RlimitResource::As, 512 * MIB + 4 * GIB),
            ]
        );
    }

    #[test]
    fn plan_with_cgroup_leaves_tasks_and_memory_to_the_cgroup() {
        assert_eq!(
            rlimit_plan(&limits(), true),
            vec![
                setting(RlimitResource::Nofile, 1024),
                setting(RlimitResource::Core, 0),
                setting(RlimitResource::Memlock, 8 * MIB),
                setting(RlimitResource::Rtprio, 0),
                setting(RlimitResource::Nice, 0),
                setting(RlimitResource::Fsize, GIB),
                setting(RlimitResource::Msgqueue, 819_200),
            ]
        );
    }

    #[test]
    fn plan_never_limits_cpu_time() {
        // RLIMIT_CPU would kill a long-lived server once its CPU seconds run out.
        let plan = rlimit_plan(&limits(), false);
        assert!(plan.iter().all(|s| s.resource.to_rustix() != Resource::Cpu));
    }

    #[test]
    fn plan_saturates_instead_of_wrapping() {
        let huge = Limits {
            memory_bytes: u64::MAX - 1,
            pids: u64::MAX,
            fds: 1024,
            cpu_millicores: 1000,
            max_file_size_bytes: u64::MAX,
        };
        let plan = rlimit_plan(&huge, false);
        let value = |resource| plan.iter().find(|s| s.resource == resource).map(|s| s.value);
        assert_eq!(value(RlimitResource::Nproc), Some(u64::MAX));
        assert_eq!(value(RlimitResource::Data), Some(u64::MAX - 1));
        assert_eq!(value(RlimitResource::As), Some(u64::MAX));
    }

    #[test]
    fn soft_limit_equals_hard_limit() {
        for mode in [false, true] {
            for s in rlimit_plan(&limits(), mode) {
                let rlimit = s.rlimit();
                assert_eq!(rlimit.current, Some(s.value), "{}", s.resource.name());
                assert_eq!(rlimit.maximum, Some(s.value), "{}", s.resource.name());
            }
        }
    }

    #[test]
    fn u64_max_is_infinity() {
        let rlimit = setting(RlimitResource::As, u64::MAX).rlimit();
        assert_eq!(rlimit.current, None);
        assert_eq!(rlimit.maximum, None);
    }

    #[test]
    fn resources_map_to_the_kernel_names() {
        let all = [
            (RlimitResource::As, Resource::As, "RLIMIT_AS"),
            (RlimitResource::Data, Resource::Data, "RLIMIT_DATA"),
            (RlimitResource::Nproc, Resource::Nproc, "RLIMIT_NPROC"),
            (RlimitResource::Nofile, Resource::Nofile, "RLIMIT_NOFILE"),
            (RlimitResource::Core, Resource::Core, "RLIMIT_CORE"),
            (RlimitResource::Memlock, Resource::Memlock, "RLIMIT_MEMLOCK"),
            (RlimitResource::Rtprio, Resource::Rtprio, "RLIMIT_RTPRIO"),
            (RlimitResource::Nice, Resource::Nice, "RLIMIT_NICE"),
            (RlimitResource::Fsize, Resource::Fsize, "RLIMIT_FSIZE"),
            (RlimitResource::Msgqueue, Resource::Msgqueue, "RLIMIT_MSGQUEUE"),
        ];
        for (ours, theirs, name) in all {
            assert_eq!(ours.to_rustix(), theirs);
            assert_eq!(ours.name(), name);
        }
    }

    const V2: CgroupCoverage = CgroupCoverage {
        version: 2,
        swap: true,
        cpu: true,
    };
    const V1_NO_CPU: CgroupCoverage = CgroupCoverage {
        version: 1,
        swap: false,
        cpu: false,
    };
    const ALL_NAMESPACE_LIMITS: u32 = 3;

    fn statuses(cgroup: Option<CgroupCoverage>, bits: Option<u32>) -> Vec<(LimitKind, LayerStatus)> {
        describe_limit_enforcement(cgroup, bits)
            .into_iter()
            .map(|e| (e.kind, e.status))
            .collect()
    }

    fn means(cgroup: Option<CgroupCoverage>, bits: Option<u32>, kind: LimitKind) -> String {
        describe_limit_enforcement(cgroup, bits)
            .into_iter()
            .find(|e| e.kind == kind)
            .map(|e| e.means)
            .unwrap_or_default()
    }

    #[test]
    fn cgroup_enforces_everything() {
        use LayerStatus::Enforced;
        assert_eq!(
            statuses(Some(V2), Some(ALL_NAMESPACE_LIMITS)),
            vec![
                (LimitKind::Memory, Enforced),
                (LimitKind::Pids, Enforced),
                (LimitKind::Fds, Enforced),
                (LimitKind::Cpu, Enforced),
                (LimitKind::FileSize, Enforced),
                (LimitKind::CoreDumps, Enforced),
                (LimitKind::UserQuotas, Enforced),
                (LimitKind::IpcLimits, Enforced),
            ]
        );
        assert!(means(Some(V2), None, LimitKind::Memory).contains("unix socket buffers)"));
    }

    #[test]
    fn cgroup_v1_names_its_files_and_a_missing_cpu_controller() {
        let memory = means(Some(V1_NO_CPU), None, LimitKind::Memory);
        assert!(
            memory.starts_with("cgroup v1 memory.limit_in_bytes (swap not accounted"),
            "{memory}"
        );
        let cpu = describe_limit_enforcement(Some(V1_NO_CPU), None)
            .into_iter()
            .find(|e| e.kind == LimitKind::Cpu)
            .map(|e| e.status);
        assert_eq!(cpu, Some(LayerStatus::Absent));
    }

    #[test]
    fn without_a_cgroup_memory_is_absent_not_partial() {
        use LayerStatus::{Absent, Enforced};
        assert_eq!(
            statuses(None, Some(LimitGroupBits::USER)),
            vec![
                (LimitKind::Memory, Absent),
                (LimitKind::Pids, Enforced),
                (LimitKind::Fds, Enforced),
                (LimitKind::Cpu, Absent),
                (LimitKind::FileSize, Enforced),
                (LimitKind::CoreDumps, Enforced),
                (LimitKind::UserQuotas, Enforced),
                (LimitKind::IpcLimits, Absent),
            ]
        );
        let memory = means(None, Some(LimitGroupBits::USER), LimitKind::Memory);
        assert!(memory.contains("SysV shm not bounded"), "{memory}");
        assert!(memory.contains("unix socket buffers not bounded"), "{memory}");
        let memory = means(None, Some(ALL_NAMESPACE_LIMITS), LimitKind::Memory);
        assert!(memory.contains("SysV shm in total <= the limit"), "{memory}");
    }

    #[test]
    fn namespace_limits_not_reached_are_absent() {
        let s = statuses(None, None);
        assert_eq!(s[6], (LimitKind::UserQuotas, LayerStatus::Absent));
        assert_eq!(s[7], (LimitKind::IpcLimits, LayerStatus::Absent));
    }

    struct LimitGroupBits;
    impl LimitGroupBits {
        const USER: u32 = 1;
    }

    #[test]
    fn every_limit_has_a_means_without_trailing_period() {
        for cgroup in [None, Some(V2), Some(V1_NO_CPU)] {
            for bits in [None, Some(0), Some(ALL_NAMESPACE_LIMITS)] {
                for e in describe_limit_enforcement(cgroup, bits) {
                    assert!(!e.means.is_empty() && !e.means.ends_with('.'), "{e:?}");
                }
            }
        }
    }

    #[test]
    fn serialises_with_lowercase_names() {
        let json = serde_json::to_value(describe_limit_enforcement(None, None)).unwrap_or_default();
        assert_eq!(json[0]["kind"], "memory");
        assert_eq!(json[0]["status"], "absent");
        assert_eq!(json[3]["status"], "absent");
        assert_eq!(json[5]["kind"], "core_dumps");
        assert_eq!(json[5]["status"], "enforced");
    }

    #[test]
    fn layer_names_match_the_serialized_kinds() {
        for kind in [
            LimitKind::Memory,
            LimitKind::Pids,
            LimitKind::Fds,
            LimitKind::Cpu,
            LimitKind::FileSize,
            LimitKind::CoreDumps,
            LimitKind::UserQuotas,
            LimitKind::IpcLimits,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
