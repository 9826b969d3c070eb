//! The seccomp filters, built as data (BPF programs) so they are tested without installing.
//!
//! Two filters, installed last, just before `execve`:
//! 1. the **guard** (hand-written, a dozen instructions): kill any other architecture,
//!    deny the x32 ABI (syscall numbers with bit 30 set, which seccompiler does not check),
//!    make `clone3` and `openat2` fail with ENOSYS (their flags and mode live in memory a
//!    filter cannot read, so libc falls back to `clone` and `openat`, whose arguments we
//!    check), and, under `--no-subprocess`, hand
//!    `execve`/`execveat` to the jail's init by user notification;
//! 2. the **deny set** (seccompiler): the dangerous system calls fail with EPERM, never a
//!    fake success; so do setuid/setgid mode bits in any call that sets a mode, and
//!    `memfd_create` without `MFD_NOEXEC_SEAL`.
//!
//! The kernel runs every filter and takes the most severe answer, so the two compose.
//! Nothing on a hot path traps to user space: only `execve` under `--no-subprocess`.

use std::collections::BTreeMap;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::sys::SockFilter;

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter")]
pub struct SeccompBuildError(#[source] seccompiler::BackendError);

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

/// System calls the jailed program never gets, by name (for docs and tests) and number.
pub fn denied_syscalls() -> Vec<(&'static str, i64)> {
    vec![
        // Kernel attack surface with a long CVE history, no use to an MCP server.
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
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
        // Changing the filesystem picture or the namespaces.
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
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
        ("syslog", libc::SYS_syslog),
        ("vhangup", libc::SYS_vhangup),
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
        #[cfg(target_arch = "x86_64")]
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ]
}

/// `ioctl` requests denied whatever the descriptor: pushing input into a terminal.
pub const DENIED_IOCTLS: &[(&str, u64)] = &[("TIOCSTI", 0x5412), ("TIOCLINUX", 0x541c)];

/// Socket families the program may create; everything else (raw packet sockets, netlink
/// families beyond routing queries, bluetooth, vsock, …) fails with EPERM.
pub const ALLOWED_SOCKET_FAMILIES: &[(&str, u64)] = &[
    ("AF_UNIX", libc::AF_UNIX as u64),
    ("AF_INET", libc::AF_INET as u64),
    ("AF_INET6", libc::AF_INET6 as u64),
    ("AF_NETLINK", libc::AF_NETLINK as u64),
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
        ("fchmodat2", 452, 2), // SYS_fchmodat2, Linux 6.6
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
    SeccompCondition::new(arg, len, op, value).map_err(SeccompBuildError)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompBuildError> {
    SeccompRule::new(conditions).map_err(SeccompBuildError)
}

/// The deny-set filter: matching calls fail with EPERM, everything else is allowed.
pub fn deny_filter() -> Result<Vec<SockFilter>, SeccompBuildError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in denied_syscalls() {
        rules.insert(nr, vec![]);
    }

    // ioctl(fd, TIOCSTI | TIOCLINUX, …): the request is an unsigned int, compare 32 bits.
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|(_, req)| rule(vec![cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *req)?]))
        .collect::<Result<_, _>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);

    // socket(domain, …) and socketpair(domain, …) with a family not in the allowed list.
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        let not_allowed = ALLOWED_SOCKET_FAMILIES
            .iter()
            .map(|(_, af)| cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *af))
            .collect::<Result<_, _>>()?;
        rules.insert(nr, vec![rule(not_allowed)?]);
    }

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
            .map(|bit| {
                rule(vec![cond(
                    mode_arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(*bit),
                    *bit,
                )?])
            })
            .collect::<Result<_, _>>()?;
        rules.insert(nr, setid_rules);
    }

    // memfd_create without MFD_NOEXEC_SEAL.
    rules.insert(
        libc::SYS_memfd_create,
        vec![rule(vec![cond(
            1,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL),
            0,
        )?])?],
    );

    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        ARCH,
    )
    .map_err(SeccompBuildError)?;
    filter.try_into().map_err(SeccompBuildError)
}

// Classic BPF opcodes for the guard filter.
const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
// Offsets in struct seccomp_data.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

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

    /// The combined decision: most severe first, as the kernel does.
    fn decide(c: &Call, notify: bool) -> u32 {
        let deny = deny_filter().expect("filter");
        let guard = guard_filter(notify);
        let results = [run(&deny, c), run(&guard, c)];
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
    fn only_ordinary_socket_families() {
        for (_, af) in ALLOWED_SOCKET_FAMILIES {
            assert_eq!(decide(&call(libc::SYS_socket, &[*af, 1, 0]), false), RET_ALLOW);
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
