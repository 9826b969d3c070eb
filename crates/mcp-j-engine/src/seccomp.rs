//! The seccomp filters, built as data (BPF programs) so they are tested without installing.
//!
//! Two filters, installed last, just before `execve`:
//! 1. the **guard** (hand-written, a dozen instructions): kill any other architecture,
//!    deny the x32 ABI (syscall numbers with bit 30 set, which seccompiler does not check),
//!    make `clone3` and `openat2` fail with ENOSYS (their flags and mode live in memory a
//!    filter cannot read, so libc falls back to `clone` and `openat`, whose arguments we
//!    check), and, under `--no-subprocess`, hand
//!    `execve`/`execveat` to the jail's init by user notification;
//! 2. the **allowlist** ([`syscall_filter`]), one program whose answers are:
//!    - EPERM for the calls named in [`denied_syscalls`], never a fake success, and for
//!      the calls whose arguments ask for too much (a persona other than the default, a
//!      socket family or protocol outside [`ALLOWED_SOCKETS`], the terminal `ioctl`s in
//!      [`DENIED_IOCTLS`], namespace flags to `clone`, setuid/setgid mode bits,
//!      `memfd_create` without `MFD_NOEXEC_SEAL`); the same calls with ordinary arguments
//!      are allowed;
//!    - ENOTTY for an `ioctl` request outside [`ALLOWED_IOCTLS`], the kernel's own answer
//!      to a request a file does not support;
//!    - allowed for the calls in [`allowed_syscalls`];
//!    - ENOSYS for every other call — whatever the next kernel adds — which programs read
//!      as "this kernel does not have it" and fall back from.
//!
//! The kernel runs every filter and takes the most severe answer, so the two compose; on a
//! tie between two errnos the filter installed last (the guard) wins. Nothing on a hot path
//! traps to user space: only `execve` under `--no-subprocess`. From Linux 5.11 the kernel
//! caches "allowed whatever the arguments" per syscall number, so the calls allowed without
//! a look at their arguments run no BPF at all.

use std::collections::BTreeMap;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::sys::SockFilter;

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeccompBuildError {
    /// seccompiler refused a rule or the program is too long.
    #[error("cannot build the seccomp filter")]
    Backend(#[source] seccompiler::BackendError),
    /// seccompiler's program no longer ends the way [`syscall_filter`] relies on.
    #[error("cannot join the two parts of the seccomp filter (unexpected seccompiler program layout)")]
    Join,
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// x32 system calls are x86_64 numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// System call numbers the `libc` crate does not have yet. Since Linux 5.1 (number 424) a
/// new call gets the same number on every architecture (include/uapi/asm-generic/unistd.h
/// and arch/x86/entry/syscalls/syscall_64.tbl agree), so one value serves x86_64 and
/// aarch64. Move a name to `libc::SYS_*` once the crate has it.
pub mod nr {
    /// `fchmodat2` (Linux 6.6); `libc` has it for x86_64 only.
    pub const FCHMODAT2: i64 = 452;
    /// `map_shadow_stack` (Linux 6.6): glibc uses it for x86 shadow stacks.
    pub const MAP_SHADOW_STACK: i64 = 453;
    /// `futex_wake` (Linux 6.7).
    pub const FUTEX_WAKE: i64 = 454;
    /// `futex_wait` (Linux 6.7).
    pub const FUTEX_WAIT: i64 = 455;
    /// `futex_requeue` (Linux 6.7).
    pub const FUTEX_REQUEUE: i64 = 456;
    /// `statmount` (Linux 6.8).
    pub const STATMOUNT: i64 = 457;
    /// `listmount` (Linux 6.8).
    pub const LISTMOUNT: i64 = 458;
    /// `open_tree_attr` (Linux 6.15).
    pub const OPEN_TREE_ATTR: i64 = 467;
}

/// System calls the jailed program never gets (EPERM), by name (for docs and tests) and
/// number. None of them is in [`allowed_syscalls`]; they are named so that the answer is
/// a clear EPERM rather than ENOSYS, and so that a test can show each one refused.
pub fn denied_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        // Kernel attack surface with a long CVE history, no use to an MCP server.
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        #[cfg(target_arch = "x86_64")]
        ("modify_ldt", libc::SYS_modify_ldt), // 16-bit segments: the root of several x86 entry-code bugs
        ("memfd_secret", libc::SYS_memfd_secret), // memory the kernel itself cannot read
        // Looking into or steering other processes.
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("process_madvise", libc::SYS_process_madvise),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("kcmp", libc::SYS_kcmp),
        // Kernel keyrings are not namespaced.
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("keyctl", libc::SYS_keyctl),
        // Watching the whole mount or filesystem (fanotify_mark is useless without it).
        ("fanotify_init", libc::SYS_fanotify_init),
        // Changing the filesystem picture or the namespaces, or reading the mount table.
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("open_tree_attr", nr::OPEN_TREE_ATTR),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("statmount", nr::STATMOUNT),
        ("listmount", nr::LISTMOUNT),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        // File handles bypass path-based checks.
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        // The machine itself.
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("quotactl_fd", libc::SYS_quotactl_fd),
        ("syslog", libc::SYS_syslog),
        ("vhangup", libc::SYS_vhangup),
        ("sethostname", libc::SYS_sethostname),
        ("setdomainname", libc::SYS_setdomainname),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("adjtimex", libc::SYS_adjtimex),
        #[cfg(target_arch = "x86_64")]
        ("iopl", libc::SYS_iopl),
        #[cfg(target_arch = "x86_64")]
        ("ioperm", libc::SYS_ioperm),
        #[cfg(target_arch = "x86_64")]
        ("uselib", libc::SYS_uselib),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ]
}

/// The allowlist: every system call an ordinary program (libc, node, python, git, a shell)
/// makes, by group. Started from Docker's default profile and cut down: no asynchronous
/// I/O (`io_setup`…), NUMA policy, `fanotify_mark`, extended-attribute `*xattrat` calls,
/// `cachestat` or `process_mrelease` — those answer ENOSYS like any unknown call. The calls
/// that are allowed only with some arguments are in [`argument_checked_syscalls`] instead.
pub fn allowed_syscalls() -> Vec<(&'static str, Vec<(&'static str, i64)>)> {
    vec![
        (
            "file descriptors and I/O",
            vec![
                ("read", libc::SYS_read),
                ("write", libc::SYS_write),
                ("readv", libc::SYS_readv),
                ("writev", libc::SYS_writev),
                ("pread64", libc::SYS_pread64),
                ("pwrite64", libc::SYS_pwrite64),
                ("preadv", libc::SYS_preadv),
                ("pwritev", libc::SYS_pwritev),
                ("preadv2", libc::SYS_preadv2),
                ("pwritev2", libc::SYS_pwritev2),
                ("lseek", libc::SYS_lseek),
                ("close", libc::SYS_close),
                ("close_range", libc::SYS_close_range),
                ("dup", libc::SYS_dup),
                ("dup3", libc::SYS_dup3),
                #[cfg(target_arch = "x86_64")]
                ("dup2", libc::SYS_dup2),
                ("fcntl", libc::SYS_fcntl),
                ("flock", libc::SYS_flock),
                ("fsync", libc::SYS_fsync),
                ("fdatasync", libc::SYS_fdatasync),
                ("sync", libc::SYS_sync),
                ("syncfs", libc::SYS_syncfs),
                ("sync_file_range", libc::SYS_sync_file_range),
                ("ftruncate", libc::SYS_ftruncate),
                ("fallocate", libc::SYS_fallocate),
                ("fadvise64", libc::SYS_fadvise64),
                ("readahead", libc::SYS_readahead),
                ("sendfile", libc::SYS_sendfile),
                ("copy_file_range", libc::SYS_copy_file_range),
                ("splice", libc::SYS_splice),
                ("tee", libc::SYS_tee),
                ("vmsplice", libc::SYS_vmsplice),
                ("pipe2", libc::SYS_pipe2),
                #[cfg(target_arch = "x86_64")]
                ("pipe", libc::SYS_pipe),
            ],
        ),
        (
            "paths, metadata and directories",
            vec![
                ("getdents64", libc::SYS_getdents64),
                #[cfg(target_arch = "x86_64")]
                ("getdents", libc::SYS_getdents),
                ("newfstatat", libc::SYS_newfstatat),
                ("fstat", libc::SYS_fstat),
                ("statx", libc::SYS_statx),
                #[cfg(target_arch = "x86_64")]
                ("stat", libc::SYS_stat),
                #[cfg(target_arch = "x86_64")]
                ("lstat", libc::SYS_lstat),
                ("statfs", libc::SYS_statfs),
                ("fstatfs", libc::SYS_fstatfs),
                ("faccessat", libc::SYS_faccessat),
                ("faccessat2", libc::SYS_faccessat2),
                #[cfg(target_arch = "x86_64")]
                ("access", libc::SYS_access),
                ("readlinkat", libc::SYS_readlinkat),
                #[cfg(target_arch = "x86_64")]
                ("readlink", libc::SYS_readlink),
                ("getcwd", libc::SYS_getcwd),
                ("chdir", libc::SYS_chdir),
                ("fchdir", libc::SYS_fchdir),
                ("mkdirat", libc::SYS_mkdirat),
                #[cfg(target_arch = "x86_64")]
                ("mkdir", libc::SYS_mkdir),
                ("unlinkat", libc::SYS_unlinkat),
                #[cfg(target_arch = "x86_64")]
                ("unlink", libc::SYS_unlink),
                #[cfg(target_arch = "x86_64")]
                ("rmdir", libc::SYS_rmdir),
                ("renameat", libc::SYS_renameat),
                ("renameat2", libc::SYS_renameat2),
                #[cfg(target_arch = "x86_64")]
                ("rename", libc::SYS_rename),
                ("linkat", libc::SYS_linkat),
                #[cfg(target_arch = "x86_64")]
                ("link", libc::SYS_link),
                ("symlinkat", libc::SYS_symlinkat),
                #[cfg(target_arch = "x86_64")]
                ("symlink", libc::SYS_symlink),
                ("truncate", libc::SYS_truncate),
                ("fchown", libc::SYS_fchown),
                ("fchownat", libc::SYS_fchownat),
                #[cfg(target_arch = "x86_64")]
                ("chown", libc::SYS_chown),
                #[cfg(target_arch = "x86_64")]
                ("lchown", libc::SYS_lchown),
                ("umask", libc::SYS_umask),
                ("utimensat", libc::SYS_utimensat),
                #[cfg(target_arch = "x86_64")]
                ("utime", libc::SYS_utime),
                #[cfg(target_arch = "x86_64")]
                ("utimes", libc::SYS_utimes),
                #[cfg(target_arch = "x86_64")]
                ("futimesat", libc::SYS_futimesat),
                ("getxattr", libc::SYS_getxattr),
                ("lgetxattr", libc::SYS_lgetxattr),
                ("fgetxattr", libc::SYS_fgetxattr),
                ("setxattr", libc::SYS_setxattr),
                ("lsetxattr", libc::SYS_lsetxattr),
                ("fsetxattr", libc::SYS_fsetxattr),
                ("listxattr", libc::SYS_listxattr),
                ("llistxattr", libc::SYS_llistxattr),
                ("flistxattr", libc::SYS_flistxattr),
                ("removexattr", libc::SYS_removexattr),
                ("lremovexattr", libc::SYS_lremovexattr),
                ("fremovexattr", libc::SYS_fremovexattr),
                ("inotify_init1", libc::SYS_inotify_init1),
                #[cfg(target_arch = "x86_64")]
                ("inotify_init", libc::SYS_inotify_init),
                ("inotify_add_watch", libc::SYS_inotify_add_watch),
                ("inotify_rm_watch", libc::SYS_inotify_rm_watch),
            ],
        ),
        (
            "memory",
            vec![
                ("brk", libc::SYS_brk),
                ("mmap", libc::SYS_mmap),
                ("munmap", libc::SYS_munmap),
                ("mremap", libc::SYS_mremap),
                ("mprotect", libc::SYS_mprotect),
                ("madvise", libc::SYS_madvise),
                ("mincore", libc::SYS_mincore),
                ("msync", libc::SYS_msync),
                ("mlock", libc::SYS_mlock),
                ("mlock2", libc::SYS_mlock2),
                ("munlock", libc::SYS_munlock),
                ("mlockall", libc::SYS_mlockall),
                ("munlockall", libc::SYS_munlockall),
                ("membarrier", libc::SYS_membarrier),
                ("pkey_alloc", libc::SYS_pkey_alloc),
                ("pkey_free", libc::SYS_pkey_free),
                ("pkey_mprotect", libc::SYS_pkey_mprotect),
                ("remap_file_pages", libc::SYS_remap_file_pages),
                ("mseal", libc::SYS_mseal),
                ("map_shadow_stack", nr::MAP_SHADOW_STACK),
            ],
        ),
        (
            "processes, threads and credentials",
            vec![
                #[cfg(target_arch = "x86_64")]
                ("fork", libc::SYS_fork),
                #[cfg(target_arch = "x86_64")]
                ("vfork", libc::SYS_vfork),
                ("execve", libc::SYS_execve),
                ("execveat", libc::SYS_execveat),
                ("exit", libc::SYS_exit),
                ("exit_group", libc::SYS_exit_group),
                ("wait4", libc::SYS_wait4),
                ("waitid", libc::SYS_waitid),
                ("kill", libc::SYS_kill),
                ("tkill", libc::SYS_tkill),
                ("tgkill", libc::SYS_tgkill),
                ("pidfd_open", libc::SYS_pidfd_open),
                ("pidfd_send_signal", libc::SYS_pidfd_send_signal),
                ("getpid", libc::SYS_getpid),
                ("getppid", libc::SYS_getppid),
                ("gettid", libc::SYS_gettid),
                ("getpgid", libc::SYS_getpgid),
                ("setpgid", libc::SYS_setpgid),
                #[cfg(target_arch = "x86_64")]
                ("getpgrp", libc::SYS_getpgrp),
                ("getsid", libc::SYS_getsid),
                ("setsid", libc::SYS_setsid),
                ("set_tid_address", libc::SYS_set_tid_address),
                ("set_robust_list", libc::SYS_set_robust_list),
                ("get_robust_list", libc::SYS_get_robust_list),
                ("rseq", libc::SYS_rseq),
                ("futex", libc::SYS_futex),
                ("futex_waitv", libc::SYS_futex_waitv),
                ("futex_wake", nr::FUTEX_WAKE),
                ("futex_wait", nr::FUTEX_WAIT),
                ("futex_requeue", nr::FUTEX_REQUEUE),
                ("prctl", libc::SYS_prctl),
                #[cfg(target_arch = "x86_64")]
                ("arch_prctl", libc::SYS_arch_prctl),
                ("getcpu", libc::SYS_getcpu),
                ("restart_syscall", libc::SYS_restart_syscall),
                ("sched_yield", libc::SYS_sched_yield),
                ("sched_getaffinity", libc::SYS_sched_getaffinity),
                ("sched_setaffinity", libc::SYS_sched_setaffinity),
                ("sched_getparam", libc::SYS_sched_getparam),
                ("sched_setparam", libc::SYS_sched_setparam),
                ("sched_getscheduler", libc::SYS_sched_getscheduler),
                ("sched_setscheduler", libc::SYS_sched_setscheduler),
                ("sched_get_priority_max", libc::SYS_sched_get_priority_max),
                ("sched_get_priority_min", libc::SYS_sched_get_priority_min),
                ("sched_rr_get_interval", libc::SYS_sched_rr_get_interval),
                ("sched_getattr", libc::SYS_sched_getattr),
                ("sched_setattr", libc::SYS_sched_setattr),
                ("getpriority", libc::SYS_getpriority),
                ("setpriority", libc::SYS_setpriority),
                ("ioprio_get", libc::SYS_ioprio_get),
                ("ioprio_set", libc::SYS_ioprio_set),
                ("getrlimit", libc::SYS_getrlimit),
                ("setrlimit", libc::SYS_setrlimit),
                ("prlimit64", libc::SYS_prlimit64),
                ("getrusage", libc::SYS_getrusage),
                ("getuid", libc::SYS_getuid),
                ("geteuid", libc::SYS_geteuid),
                ("getgid", libc::SYS_getgid),
                ("getegid", libc::SYS_getegid),
                ("getresuid", libc::SYS_getresuid),
                ("getresgid", libc::SYS_getresgid),
                ("getgroups", libc::SYS_getgroups),
                ("setuid", libc::SYS_setuid),
                ("setgid", libc::SYS_setgid),
                ("setreuid", libc::SYS_setreuid),
                ("setregid", libc::SYS_setregid),
                ("setresuid", libc::SYS_setresuid),
                ("setresgid", libc::SYS_setresgid),
                ("setfsuid", libc::SYS_setfsuid),
                ("setfsgid", libc::SYS_setfsgid),
                ("setgroups", libc::SYS_setgroups),
                ("capget", libc::SYS_capget),
                ("capset", libc::SYS_capset),
                // A program may only narrow what it can do further.
                ("seccomp", libc::SYS_seccomp),
                ("landlock_create_ruleset", libc::SYS_landlock_create_ruleset),
                ("landlock_add_rule", libc::SYS_landlock_add_rule),
                ("landlock_restrict_self", libc::SYS_landlock_restrict_self),
            ],
        ),
        (
            "signals",
            vec![
                ("rt_sigaction", libc::SYS_rt_sigaction),
                ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
                ("rt_sigreturn", libc::SYS_rt_sigreturn),
                ("rt_sigpending", libc::SYS_rt_sigpending),
                ("rt_sigtimedwait", libc::SYS_rt_sigtimedwait),
                ("rt_sigqueueinfo", libc::SYS_rt_sigqueueinfo),
                ("rt_tgsigqueueinfo", libc::SYS_rt_tgsigqueueinfo),
                ("rt_sigsuspend", libc::SYS_rt_sigsuspend),
                ("sigaltstack", libc::SYS_sigaltstack),
                ("signalfd4", libc::SYS_signalfd4),
                #[cfg(target_arch = "x86_64")]
                ("signalfd", libc::SYS_signalfd),
                #[cfg(target_arch = "x86_64")]
                ("pause", libc::SYS_pause),
            ],
        ),
        (
            "time and timers (reading the clock, not setting it)",
            vec![
                ("clock_gettime", libc::SYS_clock_gettime),
                ("clock_getres", libc::SYS_clock_getres),
                ("clock_nanosleep", libc::SYS_clock_nanosleep),
                ("nanosleep", libc::SYS_nanosleep),
                ("gettimeofday", libc::SYS_gettimeofday),
                #[cfg(target_arch = "x86_64")]
                ("time", libc::SYS_time),
                ("times", libc::SYS_times),
                ("getitimer", libc::SYS_getitimer),
                ("setitimer", libc::SYS_setitimer),
                #[cfg(target_arch = "x86_64")]
                ("alarm", libc::SYS_alarm),
                ("timer_create", libc::SYS_timer_create),
                ("timer_settime", libc::SYS_timer_settime),
                ("timer_gettime", libc::SYS_timer_gettime),
                ("timer_getoverrun", libc::SYS_timer_getoverrun),
                ("timer_delete", libc::SYS_timer_delete),
                ("timerfd_create", libc::SYS_timerfd_create),
                ("timerfd_settime", libc::SYS_timerfd_settime),
                ("timerfd_gettime", libc::SYS_timerfd_gettime),
            ],
        ),
        (
            "waiting for events",
            vec![
                ("epoll_create1", libc::SYS_epoll_create1),
                #[cfg(target_arch = "x86_64")]
                ("epoll_create", libc::SYS_epoll_create),
                ("epoll_ctl", libc::SYS_epoll_ctl),
                ("epoll_pwait", libc::SYS_epoll_pwait),
                ("epoll_pwait2", libc::SYS_epoll_pwait2),
                #[cfg(target_arch = "x86_64")]
                ("epoll_wait", libc::SYS_epoll_wait),
                ("eventfd2", libc::SYS_eventfd2),
                #[cfg(target_arch = "x86_64")]
                ("eventfd", libc::SYS_eventfd),
                ("ppoll", libc::SYS_ppoll),
                ("pselect6", libc::SYS_pselect6),
                #[cfg(target_arch = "x86_64")]
                ("poll", libc::SYS_poll),
                #[cfg(target_arch = "x86_64")]
                ("select", libc::SYS_select),
            ],
        ),
        (
            "sockets (creating one is argument-checked)",
            vec![
                ("bind", libc::SYS_bind),
                ("listen", libc::SYS_listen),
                ("accept", libc::SYS_accept),
                ("accept4", libc::SYS_accept4),
                ("connect", libc::SYS_connect),
                ("getsockname", libc::SYS_getsockname),
                ("getpeername", libc::SYS_getpeername),
                ("sendto", libc::SYS_sendto),
                ("recvfrom", libc::SYS_recvfrom),
                ("sendmsg", libc::SYS_sendmsg),
                ("recvmsg", libc::SYS_recvmsg),
                ("sendmmsg", libc::SYS_sendmmsg),
                ("recvmmsg", libc::SYS_recvmmsg),
                ("shutdown", libc::SYS_shutdown),
                ("setsockopt", libc::SYS_setsockopt),
                ("getsockopt", libc::SYS_getsockopt),
            ],
        ),
        (
            "System V and POSIX IPC (in the jail's own IPC namespace)",
            vec![
                ("shmget", libc::SYS_shmget),
                ("shmat", libc::SYS_shmat),
                ("shmdt", libc::SYS_shmdt),
                ("shmctl", libc::SYS_shmctl),
                ("msgget", libc::SYS_msgget),
                ("msgsnd", libc::SYS_msgsnd),
                ("msgrcv", libc::SYS_msgrcv),
                ("msgctl", libc::SYS_msgctl),
                ("semget", libc::SYS_semget),
                ("semop", libc::SYS_semop),
                ("semtimedop", libc::SYS_semtimedop),
                ("semctl", libc::SYS_semctl),
                ("mq_open", libc::SYS_mq_open),
                ("mq_unlink", libc::SYS_mq_unlink),
                ("mq_timedsend", libc::SYS_mq_timedsend),
                ("mq_timedreceive", libc::SYS_mq_timedreceive),
                ("mq_notify", libc::SYS_mq_notify),
                ("mq_getsetattr", libc::SYS_mq_getsetattr),
            ],
        ),
        (
            "system information",
            vec![
                ("uname", libc::SYS_uname),
                ("sysinfo", libc::SYS_sysinfo),
                ("getrandom", libc::SYS_getrandom),
            ],
        ),
    ]
}

/// System calls allowed only with some arguments (see the module docs): they are decided
/// by the argument part of [`syscall_filter`] and are not in [`allowed_syscalls`].
pub fn argument_checked_syscalls() -> Vec<(&'static str, i64)> {
    let mut calls = vec![
        ("ioctl", libc::SYS_ioctl),
        ("socket", libc::SYS_socket),
        ("socketpair", libc::SYS_socketpair),
        ("clone", libc::SYS_clone),
        ("personality", libc::SYS_personality),
        ("memfd_create", libc::SYS_memfd_create),
    ];
    calls.extend(mode_setting_syscalls().into_iter().map(|(name, nr, _)| (name, nr)));
    calls
}

/// `ioctl` requests denied with EPERM whatever the descriptor: pushing input into a terminal
/// (TIOCSTI, TIOCLINUX) and switching its line discipline (TIOCSETD), which survives the
/// jail and, on kernels that autoload line disciplines, loads old kernel modules.
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541c), ("TIOCSETD", 0x5423)];

/// `ioctl` requests allowed, by group; any other request fails with ENOTTY, the kernel's own
/// answer to a request a file does not support, which programs already handle. The values
/// are the generic ones (include/uapi/asm-generic/ioctls.h and the `_IO*` encodings), the
/// same on x86_64 and aarch64. What node, python, git and a shell use is here: terminal
/// modes and sizes, non-blocking and close-on-exec flags, bytes pending, file cloning,
/// interface lookups. Landlock further limits `ioctl` on device files the program opens.
pub const ALLOWED_IOCTLS: &[(&str, &[(&str, u64)])] = &[
    (
        "terminals",
        &[
            ("TCGETS", 0x5401),
            ("TCSETS", 0x5402),
            ("TCSETSW", 0x5403),
            ("TCSETSF", 0x5404),
            ("TCSBRK", 0x5409),
            ("TCXONC", 0x540a),
            ("TCFLSH", 0x540b),
            ("TIOCSCTTY", 0x540e),
            ("TIOCGPGRP", 0x540f),
            ("TIOCSPGRP", 0x5410),
            ("TIOCOUTQ", 0x5411),
            ("TIOCGWINSZ", 0x5413),
            ("TIOCSWINSZ", 0x5414),
            ("TIOCNOTTY", 0x5422),
            ("TIOCGETD", 0x5424),
            ("TCSBRKP", 0x5425),
            ("TIOCGSID", 0x5429),
            ("TCGETS2", 0x802c_542a),
            ("TCSETS2", 0x402c_542b),
            ("TCSETSW2", 0x402c_542c),
            ("TCSETSF2", 0x402c_542d),
            ("TIOCGPTN", 0x8004_5430),
            ("TIOCSPTLCK", 0x4004_5431),
            ("TIOCGPTPEER", 0x5441),
        ],
    ),
    (
        "any file descriptor",
        &[
            ("FIONREAD", 0x541b),
            ("FIONBIO", 0x5421),
            ("FIONCLEX", 0x5450),
            ("FIOCLEX", 0x5451),
            ("FIOASYNC", 0x5452),
            ("FIOQSIZE", 0x5460),
            ("FIGETBSZ", 0x0002),
            ("FIOSETOWN", 0x8901),
            ("SIOCSPGRP", 0x8902),
            ("FIOGETOWN", 0x8903),
            ("SIOCGPGRP", 0x8904),
        ],
    ),
    (
        "files: reading attributes, extents, copy by reflink",
        &[
            ("FS_IOC_GETFLAGS", 0x8008_6601),
            ("FS_IOC_FSGETXATTR", 0x801c_581f),
            ("FS_IOC_FIEMAP", 0xc020_660b),
            ("FICLONE", 0x4004_9409),
            ("FICLONERANGE", 0x4020_940d),
            ("FIDEDUPERANGE", 0xc018_9436),
        ],
    ),
    (
        "sockets: state and interface lookups (read-only)",
        &[
            ("SIOCATMARK", 0x8905),
            ("SIOCGSTAMP_OLD", 0x8906),
            ("SIOCGSTAMPNS_OLD", 0x8907),
            ("SIOCGSTAMP_NEW", 0x8010_8906),
            ("SIOCGSTAMPNS_NEW", 0x8010_8907),
            ("SIOCGIFNAME", 0x8910),
            ("SIOCGIFCONF", 0x8912),
            ("SIOCGIFFLAGS", 0x8913),
            ("SIOCGIFADDR", 0x8915),
            ("SIOCGIFBRDADDR", 0x8919),
            ("SIOCGIFNETMASK", 0x891b),
            ("SIOCGIFMTU", 0x8921),
            ("SIOCGIFHWADDR", 0x8927),
            ("SIOCGIFINDEX", 0x8933),
            ("SIOCOUTQNSD", 0x894b),
        ],
    ),
];

/// `personality` values allowed: the default persona (`PER_LINUX`) and the query
/// `0xffffffff`, which changes nothing. Everything else — READ_IMPLIES_EXEC (every readable
/// mapping executable), ADDR_NO_RANDOMIZE (no ASLR), other execution domains — is refused.
pub const ALLOWED_PERSONALITIES: &[(&str, u64)] = &[("PER_LINUX", 0), ("query", 0xffff_ffff)];

/// One socket family the program may create, and the protocols it may ask for in it.
pub struct AllowedSocket {
    /// The family's name and `AF_*` number.
    pub family: (&'static str, u64),
    /// The protocols allowed; `None`: whatever the kernel accepts in this family.
    pub protocols: Option<&'static [(&'static str, u64)]>,
}

/// What libc, node and python ask for over IP: 0 (the type's default), or TCP and UDP by
/// name, as getaddrinfo's answers do. Not MPTCP, UDP-Lite, SCTP or raw protocols.
const IP_PROTOCOLS: &[(&str, u64)] = &[
    ("default (0)", 0),
    ("IPPROTO_TCP", libc::IPPROTO_TCP as u64),
    ("IPPROTO_UDP", libc::IPPROTO_UDP as u64),
];

/// The socket families `socket` may create; everything else (raw packet sockets,
/// bluetooth, vsock, …) fails with EPERM. Netlink is there for one thing: libc's
/// `getifaddrs` and getaddrinfo's address checks read the jail's own interfaces over
/// NETLINK_ROUTE (changing them needs CAP_NET_ADMIN, which the program has not). XFRM,
/// AUDIT, NETFILTER, CONNECTOR, KOBJECT_UEVENT, SOCK_DIAG, GENERIC and the other netlink
/// protocols are refused. `socketpair` takes AF_UNIX only (the one family that has it).
pub const ALLOWED_SOCKETS: &[AllowedSocket] = &[
    AllowedSocket {
        family: ("AF_UNIX", libc::AF_UNIX as u64),
        protocols: None,
    },
    AllowedSocket {
        family: ("AF_INET", libc::AF_INET as u64),
        protocols: Some(IP_PROTOCOLS),
    },
    AllowedSocket {
        family: ("AF_INET6", libc::AF_INET6 as u64),
        protocols: Some(IP_PROTOCOLS),
    },
    AllowedSocket {
        family: ("AF_NETLINK", libc::AF_NETLINK as u64),
        protocols: Some(&[("NETLINK_ROUTE", libc::NETLINK_ROUTE as u64)]),
    },
];

/// Mode bits that make an executable run with its owner's or group's ids.
const SETID_MODE_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// System calls that set a file mode, with the index of the mode argument. A setuid or
/// setgid file planted in a writable host directory would run with the jail owner's ids
/// (host root's, for a root caller) for whoever executes it on the host: the jail's mounts
/// are nosuid, the host's are not.
pub fn mode_setting_syscalls() -> Vec<(&'static str, i64, u8)> {
    vec![
        ("fchmod", libc::SYS_fchmod, 1),
        ("fchmodat", libc::SYS_fchmodat, 2),
        ("fchmodat2", nr::FCHMODAT2, 2),
        ("openat", libc::SYS_openat, 3),
        ("mknodat", libc::SYS_mknodat, 2),
        #[cfg(target_arch = "x86_64")]
        ("chmod", libc::SYS_chmod, 1),
        #[cfg(target_arch = "x86_64")]
        ("open", libc::SYS_open, 2),
        #[cfg(target_arch = "x86_64")]
        ("creat", libc::SYS_creat, 1),
        #[cfg(target_arch = "x86_64")]
        ("mknod", libc::SYS_mknod, 1),
    ]
}

/// `memfd_create` flag that makes the memory file non-executable for good (Linux 6.3).
/// Without it a program could write any binary into a memfd and execve it, around
/// "nothing writable is executable".
pub const MFD_NOEXEC_SEAL: u64 = 0x0008;

/// `clone` flags that would create namespaces (nested sandboxes are kernel attack surface).
const NAMESPACE_CLONE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompBuildError> {
    SeccompCondition::new(arg, len, op, value).map_err(SeccompBuildError::Backend)
}

/// A condition on an `int` argument: the kernel reads 32 bits, so the filter compares 32
/// (a value with high bits set must not slip past an equality test).
fn int_cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompBuildError> {
    cond(arg, SeccompCmpArgLen::Dword, op, value)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompBuildError> {
    SeccompRule::new(conditions).map_err(SeccompBuildError::Backend)
}

/// `socket(domain, type, protocol)` rules, each matching a refused call: a family not in
/// [`ALLOWED_SOCKETS`], or an allowed family with a protocol outside its list. With
/// `pair` (`socketpair`), AF_UNIX only.
fn socket_refusals(pair: bool) -> Result<Vec<SeccompRule>, SeccompBuildError> {
    if pair {
        return Ok(vec![rule(vec![int_cond(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?])?]);
    }
    let other_family = ALLOWED_SOCKETS
        .iter()
        .map(|s| int_cond(0, SeccompCmpOp::Ne, s.family.1))
        .collect::<Result<_, _>>()?;
    let mut rules = vec![rule(other_family)?];
    for socket in ALLOWED_SOCKETS {
        let Some(protocols) = socket.protocols else { continue };
        let mut other_protocol = vec![int_cond(0, SeccompCmpOp::Eq, socket.family.1)?];
        for (_, protocol) in protocols {
            other_protocol.push(int_cond(2, SeccompCmpOp::Ne, *protocol)?);
        }
        rules.push(rule(other_protocol)?);
    }
    Ok(rules)
}

/// The argument part: refused arguments → EPERM; the argument-checked calls with ordinary
/// arguments → allowed; anything else → allowed *by this part*, which then falls through
/// to the allowlist (see [`syscall_filter`]).
fn argument_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompBuildError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();

    // ioctl(fd, request, …): the request is an unsigned int.
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|(_, req)| rule(vec![int_cond(1, SeccompCmpOp::Eq, *req)?]))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);

    rules.insert(libc::SYS_socket, socket_refusals(false)?);
    rules.insert(libc::SYS_socketpair, socket_refusals(true)?);

    // personality(persona): anything but the allowed values.
    let other_persona = ALLOWED_PERSONALITIES
        .iter()
        .map(|(_, p)| int_cond(0, SeccompCmpOp::Ne, *p))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_personality, vec![rule(other_persona)?]);

    // clone(flags, …) with any namespace flag.
    let clone_rules = NAMESPACE_CLONE_FLAGS
        .iter()
        .map(|flag| {
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*flag),
                *flag,
            )?])
        })
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_clone, clone_rules);

    // Setuid/setgid bits, whatever call would set them.
    for (_, nr, mode_arg) in mode_setting_syscalls() {
        let setid_rules = SETID_MODE_BITS
            .iter()
            .map(|bit| rule(vec![int_cond(mode_arg, SeccompCmpOp::MaskedEq(*bit), *bit)?]))
            .collect::<Result<_, _>>()?;
        rules.insert(nr, setid_rules);
    }

    // memfd_create without MFD_NOEXEC_SEAL.
    rules.insert(
        libc::SYS_memfd_create,
        vec![rule(vec![int_cond(1, SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL), 0)?])?],
    );
    Ok(rules)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<Vec<SockFilter>, SeccompBuildError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, ARCH).map_err(SeccompBuildError::Backend)?;
    filter.try_into().map_err(SeccompBuildError::Backend)
}

/// The allowlist filter (see the module docs).
///
/// seccompiler gives a program two answers, and this one needs four (ENOTTY, EPERM, allow,
/// ENOSYS), so it is four parts joined, each starting over where the one before passes a
/// call on. A part "passes" by jumping to the instruction after its end; all jumps in a
/// classic BPF program go forward, so a part only ever jumps within itself or to its end:
/// 1. the ioctl part (made here): an `ioctl` request in neither [`ALLOWED_IOCTLS`] nor
///    [`DENIED_IOCTLS`] → ENOTTY; anything else passes;
/// 2. the refusal part (made here): a call in [`denied_syscalls`] → EPERM; anything else
///    passes;
/// 3. the argument part (seccompiler): refused arguments → EPERM; the argument-checked
///    calls otherwise allowed; anything else passes — its last instruction, the "no syscall
///    number matched" answer, is reached only by jumps from inside it, and dropping it makes
///    them land on part 4;
/// 4. the allowlist part (made here): allow or ENOSYS.
///
/// Parts 1, 2 and 4 are binary searches over ranges of numbers (see `set_search`), so the
/// whole program is a few hundred instructions and any one call walks a few dozen of them:
/// the kernel walks it once per syscall number when it prepares its action cache, at
/// install time, on every jail's startup.
pub fn syscall_filter() -> Result<Vec<SockFilter>, SeccompBuildError> {
    let mut prog = ioctl_part();
    prog.extend(refusal_part());
    let mut arguments = compile(
        argument_rules()?,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
    )?;
    // The argument part always ends with its fall-through answer; anything else means
    // seccompiler changed its layout, and joining would be wrong.
    match arguments.pop() {
        Some(last) if last.code == BPF_RET_K && last.k == RET_ALLOW => {}
        _ => return Err(SeccompBuildError::Join),
    }
    prog.extend(arguments);
    let allowed: Vec<u32> = allowed_syscalls()
        .into_iter()
        .flat_map(|(_, calls)| calls)
        .map(|(_, nr)| nr as u32)
        .collect();
    prog.push(stmt(BPF_LD_W_ABS, OFFSET_NR));
    prog.extend(set_search(&allowed, RET_ALLOW, RET_ERRNO | libc::ENOSYS as u32));
    if prog.len() > BPF_MAXINSNS {
        return Err(SeccompBuildError::Backend(seccompiler::BackendError::FilterTooLarge(
            prog.len(),
        )));
    }
    Ok(prog)
}

/// Turns every "allow" of `part` into "pass": a jump to the instruction after its end.
fn passing(mut part: Vec<SockFilter>) -> Vec<SockFilter> {
    let len = part.len();
    for (i, insn) in part.iter_mut().enumerate() {
        if insn.code == BPF_RET_K && insn.k == RET_ALLOW {
            *insn = stmt(BPF_JA, (len - 1 - i) as u32);
        }
    }
    part
}

/// Part 1 (see [`syscall_filter`]); it also kills any other architecture, whose numbers
/// mean other calls.
fn ioctl_part() -> Vec<SockFilter> {
    let listed: Vec<u32> = ALLOWED_IOCTLS
        .iter()
        .flat_map(|(_, requests)| requests.iter())
        .chain(DENIED_IOCTLS)
        .map(|(_, req)| *req as u32)
        .collect();
    let mut part = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
        jump(BPF_JEQ_K, libc::SYS_ioctl as u32, 1, 0),
        stmt(BPF_RET_K, RET_ALLOW),
        // The request is an unsigned int: its low 32 bits, whatever the upper ones hold.
        stmt(BPF_LD_W_ABS, OFFSET_ARG1_LOW),
    ];
    part.extend(set_search(&listed, RET_ALLOW, RET_ERRNO | libc::ENOTTY as u32));
    passing(part)
}

/// Part 2 (see [`syscall_filter`]).
fn refusal_part() -> Vec<SockFilter> {
    let denied: Vec<u32> = denied_syscalls().into_iter().map(|(_, nr)| nr as u32).collect();
    let mut part = vec![stmt(BPF_LD_W_ABS, OFFSET_NR)];
    part.extend(set_search(&denied, RET_ERRNO | libc::EPERM as u32, RET_ALLOW));
    passing(part)
}

/// A run of consecutive values, `first..=last`.
#[derive(Clone, Copy)]
struct ValueRange {
    first: u32,
    last: u32,
}

/// How many ranges a leaf of a `set_search` tests one after the other.
const LEAF_RANGES: usize = 4;

/// Code that answers `hit` when the accumulator holds one of `values`, else `miss`.
/// seccompiler would test every value in turn; here consecutive values become ranges and
/// a binary search over the ranges answers in about twenty instructions.
fn set_search(values: &[u32], hit: u32, miss: u32) -> Vec<SockFilter> {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.dedup();
    let mut ranges: Vec<ValueRange> = Vec::new();
    for value in values {
        match ranges.last_mut() {
            Some(r) if r.last.checked_add(1) == Some(value) => r.last = value,
            _ => ranges.push(ValueRange {
                first: value,
                last: value,
            }),
        }
    }
    range_search(&ranges, hit, miss)
}

/// `set_search` over sorted, disjoint ranges. The conditional jumps' offsets stay tiny
/// (inside a leaf, or 0/1 at a branch); the far jump at a branch is a `BPF_JA`, which has
/// 32 bits.
fn range_search(ranges: &[ValueRange], hit: u32, miss: u32) -> Vec<SockFilter> {
    if ranges.len() <= LEAF_RANGES {
        // For each range: above it → the next range; else in it → hit; else (in the gap
        // below it, the ranges before having been passed) → miss. Then miss, hit.
        let n = ranges.len();
        let mut leaf = Vec::with_capacity(2 * n + 2);
        for (i, r) in ranges.iter().enumerate() {
            let after = 2 * i + 2; // index of the instruction after this range's pair
            let (to_miss, to_hit) = (2 * n - after, 2 * n + 1 - after);
            leaf.push(jump(BPF_JGT_K, r.last, 1, 0));
            leaf.push(jump(BPF_JGE_K, r.first, to_hit as u8, to_miss as u8));
        }
        leaf.push(stmt(BPF_RET_K, miss));
        leaf.push(stmt(BPF_RET_K, hit));
        return leaf;
    }
    let (low, high) = ranges.split_at(ranges.len() / 2);
    let low_code = range_search(low, hit, miss);
    // Values from the first range of the upper half up go there, over the lower half.
    let mut branch = vec![
        jump(BPF_JGE_K, high[0].first, 0, 1),
        stmt(BPF_JA, low_code.len() as u32),
    ];
    branch.extend(low_code);
    branch.extend(range_search(high, hit, miss));
    branch
}

/// The kernel's limit on a classic BPF program's length.
const BPF_MAXINSNS: usize = 4096;

// Classic BPF opcodes for the guard filter.
const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
// Offsets in struct seccomp_data.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The low 32 bits of the second argument (`args[1]`, a u64 at offset 24).
#[cfg(target_endian = "little")]
const OFFSET_ARG1_LOW: u32 = 24;
#[cfg(target_endian = "big")]
const OFFSET_ARG1_LOW: u32 = 28;

/// Seccomp return values.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// See [`RET_KILL_PROCESS`].
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// See [`RET_KILL_PROCESS`].
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// See [`RET_KILL_PROCESS`].
pub const RET_ERRNO: u32 = 0x0005_0000;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The guard filter (see the module docs). `notify_exec`: send `execve` and `execveat` to
/// the listener.
pub fn guard_filter(notify_exec: bool) -> Vec<SockFilter> {
    let mut prog = vec![
        // Any other architecture (e.g. i386 via int 0x80): kill.
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 ABI: deny.
        prog.push(jump(BPF_JSET_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32));
    }
    // clone3 and openat2 keep their flags and mode in memory a filter cannot read:
    // ENOSYS makes libc and careful programs fall back to clone and openat, which we check.
    prog.push(jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 1, 0));
    prog.push(jump(BPF_JEQ_K, libc::SYS_openat2 as u32, 0, 1));
    prog.push(stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32));
    if notify_exec {
        prog.push(jump(BPF_JEQ_K, libc::SYS_execve as u32, 1, 0));
        prog.push(jump(BPF_JEQ_K, libc::SYS_execveat as u32, 0, 1));
        prog.push(stmt(BPF_RET_K, RET_USER_NOTIF));
    }
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    prog
}

#[cfg(test)]
mod tests {
    //! A tiny classic-BPF interpreter runs the filters over synthetic `seccomp_data`, so the
    //! tests check decisions, not instruction listings.
    use super::*;

    struct Call {
        arch: u32,
        nr: u32,
        args: [u64; 6],
    }

    fn call(nr: i64, args: &[u64]) -> Call {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        Call {
            arch: AUDIT_ARCH,
            nr: nr as u32,
            args: a,
        }
    }

    fn load(c: &Call, off: u32) -> u32 {
        match off {
            0 => c.nr,
            4 => c.arch,
            8..=12 => 0, // instruction pointer: unused
            o if (16..64).contains(&o) => {
                let i = ((o - 16) / 8) as usize;
                let v = c.args[i];
                if (o - 16) % 8 == 0 { v as u32 } else { (v >> 32) as u32 }
            }
            _ => panic!("bad offset {off}"),
        }
    }

    fn run(prog: &[SockFilter], c: &Call) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc].clone();
            let class = (i.code & 0x07) as u32;
            match class {
                c_ if c_ == libc::BPF_LD => acc = load(c, i.k),
                c_ if c_ == libc::BPF_ALU => {
                    let op = (i.code & 0xf0) as u32;
                    acc = match op {
                        o if o == libc::BPF_AND => acc & i.k,
                        o => panic!("alu op {o:#x}"),
                    }
                }
                c_ if c_ == libc::BPF_JMP => {
                    let op = (i.code & 0xf0) as u32;
                    if op == libc::BPF_JA {
                        pc += i.k as usize + 1;
                        continue;
                    }
                    let taken = match op {
                        o if o == libc::BPF_JEQ => acc == i.k,
                        o if o == libc::BPF_JGT => acc > i.k,
                        o if o == libc::BPF_JGE => acc >= i.k,
                        o if o == libc::BPF_JSET => acc & i.k != 0,
                        o => panic!("jmp op {o:#x}"),
                    };
                    pc += 1 + if taken { i.jt as usize } else { i.jf as usize };
                    continue;
                }
                c_ if c_ == libc::BPF_RET => return i.k,
                c_ if c_ == libc::BPF_MISC => acc = 0,
                other => panic!("class {other:#x}"),
            }
            pc += 1;
        }
    }

    /// The combined decision, as the kernel makes it: the most severe answer; between two
    /// of the same kind (two errnos), the filter installed last (the guard) wins.
    fn decide(c: &Call, notify: bool) -> u32 {
        let allowlist = syscall_filter().expect("filter");
        let guard = guard_filter(notify);
        let results = [run(&guard, c), run(&allowlist, c)];
        let rank = |r: u32| match r & 0xffff_0000 {
            0x8000_0000 => 0,
            0x0000_0000 => 1,
            0x0003_0000 => 2,
            0x0005_0000 => 3,
            0x7fc0_0000 => 4,
            _ => 5,
        };
        *results.iter().min_by_key(|r| rank(**r)).expect("two")
    }

    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    fn the_filter_fits_the_kernel_limit() {
        let len = syscall_filter().expect("filter").len();
        assert!(len < BPF_MAXINSNS, "{len} instructions");
    }

    #[test]
    fn the_range_search_answers_every_number() {
        // Ranges of every shape: single numbers, runs, gaps of one, many leaves.
        let allowed: Vec<u32> = (0..400)
            .filter(|n| n % 7 != 3 && n % 11 != 5 && !(150..170).contains(n))
            .collect();
        let search = |values: &[u32]| {
            let mut prog = vec![stmt(BPF_LD_W_ABS, OFFSET_NR)];
            prog.extend(set_search(values, RET_ALLOW, ENOSYS));
            prog
        };
        let prog = search(&allowed);
        for nr in 0..450u32 {
            let want = if allowed.contains(&nr) { RET_ALLOW } else { ENOSYS };
            assert_eq!(run(&prog, &call(i64::from(nr), &[])), want, "{nr}");
        }
        assert_eq!(run(&prog, &call(0x4000_0000, &[])), ENOSYS);
        assert_eq!(run(&search(&[]), &call(0, &[])), ENOSYS);
        assert_eq!(run(&search(&[u32::MAX]), &call(0xffff_ffff, &[])), RET_ALLOW);
    }

    #[test]
    fn every_allowed_syscall_is_allowed() {
        for (group, calls) in allowed_syscalls() {
            for (name, nr) in calls {
                assert_eq!(decide(&call(nr, &[]), false), RET_ALLOW, "{group}: {name}");
            }
        }
    }

    #[test]
    fn the_lists_do_not_overlap() {
        let mut seen = std::collections::BTreeMap::new();
        let allowed = allowed_syscalls().into_iter().flat_map(|(_, calls)| calls);
        let all = allowed.chain(denied_syscalls()).chain(argument_checked_syscalls());
        for (name, nr) in all {
            if let Some(other) = seen.insert(nr, name) {
                panic!("{name} and {other} are both number {nr} in the lists");
            }
        }
        for nr in [libc::SYS_clone3, libc::SYS_openat2] {
            assert!(!seen.contains_key(&nr), "{nr} is for the guard to answer");
        }
    }

    #[test]
    fn newly_refused_calls_are_named_and_get_eperm() {
        let denied = denied_syscalls();
        let mut names = vec![
            "fanotify_init",
            "memfd_secret",
            "listmount",
            "statmount",
            "open_tree_attr",
            "quotactl_fd",
            "sethostname",
        ];
        if cfg!(target_arch = "x86_64") {
            names.push("modify_ldt");
        }
        for name in names {
            let (_, nr) = denied.iter().find(|(n, _)| *n == name).expect(name);
            assert_eq!(decide(&call(*nr, &[]), false), EPERM, "{name}");
        }
    }

    #[test]
    fn every_call_outside_the_lists_gets_enosys() {
        let listed: std::collections::BTreeSet<i64> = allowed_syscalls()
            .into_iter()
            .flat_map(|(_, calls)| calls)
            .chain(denied_syscalls())
            .chain(argument_checked_syscalls())
            .map(|(_, nr)| nr)
            .collect();
        let mut unlisted = 0;
        // Every number up to well past the newest call, then a few far beyond.
        for nr in (0..600).chain([1000, 4095, 0x3fff_ffff]) {
            if listed.contains(&nr) {
                continue;
            }
            unlisted += 1;
            assert_eq!(decide(&call(nr, &[]), false), ENOSYS, "syscall {nr}");
        }
        assert!(unlisted > 100, "{unlisted}");
        // Calls a kernel has that the allowlist leaves out on purpose.
        for nr in [
            libc::SYS_get_mempolicy,
            libc::SYS_mbind,
            libc::SYS_io_setup,
            libc::SYS_fanotify_mark,
            libc::SYS_process_mrelease,
        ] {
            assert_eq!(decide(&call(nr, &[]), false), ENOSYS, "syscall {nr}");
        }
    }

    #[test]
    fn argument_checked_calls_pass_with_ordinary_arguments() {
        let cloexec = libc::O_CLOEXEC as u64;
        let cases: Vec<(i64, Vec<u64>)> = vec![
            (libc::SYS_ioctl, vec![0, libc::TCGETS]),
            (libc::SYS_ioctl, vec![1, libc::TIOCGWINSZ]),
            (libc::SYS_ioctl, vec![3, libc::FIONBIO]),
            (
                libc::SYS_socket,
                vec![libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0],
            ),
            (
                libc::SYS_socketpair,
                vec![libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0],
            ),
            (libc::SYS_clone, vec![libc::SIGCHLD as u64]),
            (libc::SYS_personality, vec![0xffff_ffff]),
            (libc::SYS_memfd_create, vec![0, 0x1 | MFD_NOEXEC_SEAL]),
            (libc::SYS_openat, vec![0, 0, cloexec, 0o644]),
            (libc::SYS_fchmod, vec![3, 0o755]),
        ];
        for (nr, args) in cases {
            assert_eq!(decide(&call(nr, &args), false), RET_ALLOW, "{nr} {args:?}");
        }
    }

    #[test]
    fn only_the_default_persona() {
        let personality = |p: u64| decide(&call(libc::SYS_personality, &[p]), false);
        assert_eq!(personality(0), RET_ALLOW, "PER_LINUX");
        assert_eq!(personality(0xffff_ffff), RET_ALLOW, "query");
        for (what, persona) in [
            ("READ_IMPLIES_EXEC", 0x0040_0000),
            ("ADDR_NO_RANDOMIZE", 0x0004_0000),
            ("PER_LINUX32", 0x0008),
            ("UNAME26", 0x0002_0000),
            ("PER_BSD", 0x0006),
            ("READ_IMPLIES_EXEC with high bits", 0xffff_ffff_0040_0000),
        ] {
            assert_eq!(personality(persona), EPERM, "{what}");
        }
    }

    #[test]
    fn netlink_is_routing_only() {
        let netlink = |protocol: u64| {
            decide(
                &call(
                    libc::SYS_socket,
                    &[libc::AF_NETLINK as u64, libc::SOCK_RAW as u64, protocol],
                ),
                false,
            )
        };
        assert_eq!(netlink(libc::NETLINK_ROUTE as u64), RET_ALLOW);
        for protocol in [
            libc::NETLINK_SOCK_DIAG,
            libc::NETLINK_AUDIT,
            libc::NETLINK_XFRM,
            libc::NETLINK_CONNECTOR,
            libc::NETLINK_NETFILTER,
            libc::NETLINK_KOBJECT_UEVENT,
            libc::NETLINK_GENERIC,
            libc::NETLINK_USERSOCK,
            31,
        ] {
            assert_eq!(netlink(protocol as u64), EPERM, "netlink protocol {protocol}");
        }
        // The protocol is an int: bit 32 does not turn XFRM into ROUTE.
        assert_eq!(netlink(1 << 32 | libc::NETLINK_XFRM as u64), EPERM);
    }

    #[test]
    fn ip_sockets_take_tcp_and_udp_only() {
        for af in [libc::AF_INET, libc::AF_INET6] {
            let socket = |ty: i32, protocol: i32| {
                decide(&call(libc::SYS_socket, &[af as u64, ty as u64, protocol as u64]), false)
            };
            assert_eq!(socket(libc::SOCK_STREAM, 0), RET_ALLOW);
            assert_eq!(socket(libc::SOCK_STREAM, libc::IPPROTO_TCP), RET_ALLOW);
            assert_eq!(socket(libc::SOCK_DGRAM, 0), RET_ALLOW);
            assert_eq!(socket(libc::SOCK_DGRAM, libc::IPPROTO_UDP), RET_ALLOW);
            for protocol in [
                libc::IPPROTO_MPTCP,
                libc::IPPROTO_UDPLITE,
                libc::IPPROTO_SCTP,
                libc::IPPROTO_ICMP,
                libc::IPPROTO_ICMPV6,
                libc::IPPROTO_RAW,
            ] {
                assert_eq!(socket(libc::SOCK_STREAM, protocol), EPERM, "{af} {protocol}");
                assert_eq!(socket(libc::SOCK_DGRAM, protocol), EPERM, "{af} {protocol}");
            }
        }
        let pair = |af: i32| decide(&call(libc::SYS_socketpair, &[af as u64, 1, 0]), false);
        assert_eq!(pair(libc::AF_UNIX), RET_ALLOW);
        assert_eq!(pair(libc::AF_INET), EPERM);
        assert_eq!(pair(libc::AF_NETLINK), EPERM);
    }

    #[test]
    fn every_denied_syscall_gets_eperm() {
        for (name, nr) in denied_syscalls() {
            assert_eq!(decide(&call(nr, &[]), false), EPERM, "{name}");
        }
    }

    #[test]
    fn ordinary_syscalls_are_allowed() {
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_mmap,
            libc::SYS_futex,
            libc::SYS_execve,
            libc::SYS_landlock_restrict_self,
        ] {
            assert_eq!(decide(&call(nr, &[]), false), RET_ALLOW, "{nr}");
        }
    }

    #[test]
    fn terminal_injection_ioctls_are_denied_on_any_fd() {
        for fd in [0u64, 1, 2, 99] {
            assert_eq!(decide(&call(libc::SYS_ioctl, &[fd, 0x5423]), false), EPERM); // TIOCSETD
            assert_eq!(decide(&call(libc::SYS_ioctl, &[fd, 1 << 32 | 0x5423]), false), EPERM);
            assert_eq!(decide(&call(libc::SYS_ioctl, &[fd, 0x5412]), false), EPERM);
            assert_eq!(decide(&call(libc::SYS_ioctl, &[fd, 0x541c]), false), EPERM);
            // The upper 32 bits of the request are ignored by the kernel: so by us.
            assert_eq!(
                decide(&call(libc::SYS_ioctl, &[fd, 0xffff_ffff_0000_5412]), false),
                EPERM
            );
            assert_eq!(decide(&call(libc::SYS_ioctl, &[fd, libc::FIONREAD]), false), RET_ALLOW);
        }
    }

    #[test]
    fn only_listed_ioctls_pass_and_the_rest_get_enotty() {
        const ENOTTY: u32 = RET_ERRNO | libc::ENOTTY as u32;
        let ioctl = |req: u64| decide(&call(libc::SYS_ioctl, &[0, req]), false);
        for (group, requests) in ALLOWED_IOCTLS {
            for (name, req) in *requests {
                assert_eq!(ioctl(*req), RET_ALLOW, "{group}: {name}");
                // The kernel reads an unsigned int: so does the filter.
                assert_eq!(ioctl(1 << 32 | *req), RET_ALLOW, "{group}: {name} with high bits");
            }
        }
        for (what, req) in [
            ("FS_IOC_SETFLAGS", 0x4008_6602),
            ("FS_IOC_ADD_ENCRYPTION_KEY", 0xc050_6617),
            ("BTRFS_IOC_SNAP_CREATE", 0x5000_9401),
            ("TIOCCONS", 0x541d),
            ("TIOCMSET", 0x5418),
            ("KDSETMODE", 0x4b3a),
            ("SIOCSIFFLAGS", 0x8914),
            ("SIOCADDRT", 0x890b),
            ("zero", 0),
        ] {
            assert_eq!(ioctl(req), ENOTTY, "{what}");
        }
        // The same library calls a program makes around them are untouched.
        assert_eq!(decide(&call(libc::SYS_read, &[0]), false), RET_ALLOW);
        assert_eq!(decide(&call(libc::SYS_fcntl, &[0, 1]), false), RET_ALLOW);
    }

    #[test]
    fn only_ordinary_socket_families() {
        for socket in ALLOWED_SOCKETS {
            assert_eq!(
                decide(&call(libc::SYS_socket, &[socket.family.1, 1, 0]), false),
                RET_ALLOW
            );
        }
        for af in [
            libc::AF_PACKET,
            libc::AF_BLUETOOTH,
            libc::AF_VSOCK,
            libc::AF_KEY,
            libc::AF_ALG,
        ] {
            assert_eq!(decide(&call(libc::SYS_socket, &[af as u64, 3, 0]), false), EPERM);
            assert_eq!(decide(&call(libc::SYS_socketpair, &[af as u64, 1, 0]), false), EPERM);
        }
    }

    #[test]
    fn clone_may_make_threads_and_processes_but_not_namespaces() {
        let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
        assert_eq!(decide(&call(libc::SYS_clone, &[thread]), false), RET_ALLOW);
        assert_eq!(
            decide(&call(libc::SYS_clone, &[libc::SIGCHLD as u64]), false),
            RET_ALLOW
        );
        for flag in NAMESPACE_CLONE_FLAGS {
            assert_eq!(
                decide(&call(libc::SYS_clone, &[libc::SIGCHLD as u64 | flag]), false),
                EPERM
            );
        }
        assert_eq!(
            decide(&call(libc::SYS_clone3, &[]), false),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn setuid_and_setgid_bits_are_refused_in_every_mode_setting_call() {
        for (name, nr, arg) in mode_setting_syscalls() {
            let with_mode = |mode: u64| {
                let mut args = [0u64; 4];
                args[arg as usize] = mode;
                decide(&call(nr, &args), false)
            };
            assert_eq!(with_mode(0o4755), EPERM, "{name} setuid");
            assert_eq!(with_mode(0o2755), EPERM, "{name} setgid");
            assert_eq!(with_mode(0o6755), EPERM, "{name} both");
            assert_eq!(with_mode(0o755), RET_ALLOW, "{name} plain");
            assert_eq!(with_mode(0o1777), RET_ALLOW, "{name} sticky");
        }
        assert_eq!(
            decide(&call(libc::SYS_openat2, &[]), false),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn memfd_must_be_sealed_non_executable() {
        assert_eq!(decide(&call(libc::SYS_memfd_create, &[0, 0]), false), EPERM);
        assert_eq!(decide(&call(libc::SYS_memfd_create, &[0, 0x1 | 0x10]), false), EPERM); // CLOEXEC|EXEC
        assert_eq!(decide(&call(libc::SYS_memfd_create, &[0, 0x1 | 0x8]), false), RET_ALLOW); // CLOEXEC|NOEXEC_SEAL
    }

    #[test]
    fn foreign_architectures_are_killed_and_x32_denied() {
        let mut c = call(libc::SYS_getpid, &[]);
        c.arch = 0x4000_0003; // AUDIT_ARCH_I386
        assert_eq!(decide(&c, false), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            let c = call(libc::SYS_getpid | X32_SYSCALL_BIT as i64, &[]);
            assert_eq!(decide(&c, false), EPERM);
        }
    }

    #[test]
    fn exec_is_notified_only_under_no_subprocess() {
        for nr in [libc::SYS_execve, libc::SYS_execveat] {
            assert_eq!(decide(&call(nr, &[]), true), RET_USER_NOTIF);
            assert_eq!(decide(&call(nr, &[]), false), RET_ALLOW);
        }
        assert_eq!(decide(&call(libc::SYS_read, &[]), true), RET_ALLOW);
    }
}
