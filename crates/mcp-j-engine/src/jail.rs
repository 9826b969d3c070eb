//! The sandbox setup, one linear sequence whose steps follow docs/SANDBOX.md one to one.
//!
//! Process tree: supervisor (`mcp-j`) → **helper** (a fork of the single-threaded
//! supervisor) → **init** (pid 1 of the new PID namespace) → **program**.
//!
//! - The helper unshares every namespace, maps the caller's uid/gid to the jail's, forks
//!   init and waits for it.
//! - Init builds the root on a tmpfs, pivots into it, forks the program, then reaps
//!   zombies, forwards signals and answers seccomp notifications until the program ends.
//!   When init exits the kernel kills everything else in the PID namespace.
//! - The program hardens itself (setsid, chdir, rlimits, Landlock, capabilities,
//!   no_new_privs, seccomp last) and execs.
//!
//! Every failure is reported to the supervisor as `(step, errno)` on the report pipe.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, MoveMountFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, CapabilitySets, UnshareFlags};

use crate::idmap::{IdMaps, open_user_trees};
use crate::landlock_rules::{self, FsPolicy};
use crate::limits;
use crate::namespace_limits;
use crate::network;
use crate::plan::{self, HostLayout, MountOp};
use crate::report::{AtStep, FIRST_PATH_FD, Failure, LayerStatus, NAME_CHUNK, REPORT_FD, Record, Step};
use crate::rootfs::{apply, apply_covers, mount_tmpfs, open_bind_sources};
use crate::seccomp;
use crate::spec::{HostIds, JAIL_GID, JAIL_HOSTNAME, JAIL_UID, SandboxSpec, Workdir};
use crate::sys::{self, ChildStatus, Forked};

/// Exit code of jail processes that failed before the program ran.
pub(crate) const SETUP_FAILED_EXIT: i32 = 125;

/// The write end of the report pipe, shared by helper, init and program.
struct Reporter(std::fs::File);

impl Reporter {
    fn send(&self, record: Record) {
        // One write of 16 bytes: atomic on a pipe. Nothing to do if the supervisor is gone.
        let _ = (&self.0).write_all(&record.encode());
    }

    fn fail(&self, failure: Failure) -> ! {
        self.send(Record::SetupFailed {
            step: failure.step,
            errno: failure.errno,
        });
        sys::exit_now(SETUP_FAILED_EXIT)
    }
}

/// Entry point of the helper process, in the child of `Jail::spawn`'s fork. Never returns.
pub(crate) fn helper_main() -> ! {
    let report = Reporter(std::fs::File::from(sys::adopt_report_fd()));
    // 1. Read the spec.
    let spec = match read_spec() {
        Ok(spec) => spec,
        Err(f) => report.fail(f),
    };
    match helper(&spec, &report) {
        Ok(code) => sys::exit_now(code),
        Err(f) => report.fail(f),
    }
}

fn read_spec() -> Result<SandboxSpec, Failure> {
    let mut file = std::fs::File::from(sys::adopt_spec_fd());
    let mut json = Vec::new();
    file.read_to_end(&mut json).at(Step::ReadSpec)?;
    serde_json::from_slice(&json).map_err(|_| Failure {
        step: Step::ReadSpec,
        errno: libc::EINVAL,
    })
}

// ---------------------------------------------------------------------------------------
// Helper: steps 1–9 of docs/SANDBOX.md (1, reading the spec, is `read_spec` above).
// ---------------------------------------------------------------------------------------

fn helper(spec: &SandboxSpec, report: &Reporter) -> Result<i32, Failure> {
    // 2. Die with the supervisor.
    let parent = rustix::process::getppid();
    die_with_parent(parent)?;

    // 3. Close every descriptor inherited from whoever started mcp-j, but the report pipe
    //    and the descriptors of the user's paths, which the supervisor passed.
    //    With an allowlist, the socket init sends the egress listeners on is kept too.
    let path_fds = passed_path_fds(spec)?;
    let channel_fd = egress_channel_fd(spec, &path_fds)?;
    let mut keep = path_fds.clone();
    keep.push(REPORT_FD);
    keep.extend(channel_fd);
    keep.sort_unstable();
    sys::close_fds_from(3, &keep).at(Step::CloseInheritedFds)?;
    let passed: Vec<(RawFd, OwnedFd)> = path_fds
        .into_iter()
        .map(|n| sys::adopt_fd(n).map(|fd| (n, fd)))
        .collect::<std::io::Result<_>>()
        .at(Step::CloseInheritedFds)?;
    let egress_channel = channel_fd.map(sys::adopt_fd).transpose().at(Step::CloseInheritedFds)?;

    // 4. Plan the jail's filesystem while the host is in view.
    let host = HostLayout::probe(spec);
    let ops = plan::mount_plan(spec, &host).map_err(|_| Failure {
        step: Step::PlanFilesystem,
        errno: libc::EINVAL,
    })?;

    // 5. Open the user's paths now, from the descriptors passed (never by name again), as
    //    detached mount trees. A root caller: the jail maps to an unprivileged host id, and
    //    the read-write paths become idmapped mounts, while we still hold host root's
    //    CAP_SYS_ADMIN.
    let (caller_uid, caller_gid) = sys::real_ids();
    let privileged = caller_uid == 0;
    if privileged && spec.host_ids.is_none() {
        // The supervisor claims a root caller's host id; never fall back to a shared one.
        return Err(Failure {
            step: Step::OpenUserPaths,
            errno: libc::EINVAL,
        });
    }
    let HostIds {
        uid: jail_host_uid,
        gid: jail_host_gid,
    } = crate::spec::jail_host_ids(spec.host_ids, caller_uid, caller_gid);
    let user_trees = open_user_trees(&ops, &passed, privileged.then_some((jail_host_uid, jail_host_gid)))?;
    // The host descriptors stay out of the jail: init inherits only the detached trees.
    drop(passed);
    if privileged {
        // Host root's supplementary groups must not follow it into the jail (and cannot be
        // dropped there: setgroups is denied in the jail's namespace).
        rustix::thread::set_thread_groups(&[]).at(Step::OpenUserPaths)?;
    }

    // 6. An unprivileged caller: the jail's IPC namespace is made here, in a user
    //    namespace of our own whose root is the caller, so that its limits can be set
    //    (the kernel lets only the IPC namespace's root uid write them; the jail's own
    //    user namespace maps no root). The jail's ids then map to that root.
    let (jail_host_uid, jail_host_gid) = if privileged {
        (jail_host_uid, jail_host_gid)
    } else {
        let ipc_limited = ipc_namespace_of_our_own(caller_uid, caller_gid, spec.limits.memory_bytes)?;
        report.send(Record::NamespaceLimits {
            applied: namespace_limits::bit(namespace_limits::LimitGroup::IpcNamespace, ipc_limited),
        });
        (0, 0)
    };

    // 7. Clone init straight into new user, mount, PID, IPC (a root caller's; see 6),
    //    UTS, network and cgroup namespaces: it is pid 1 of the new PID namespace. It
    //    waits on a pipe until its id maps are written; the pipe then stays open as its
    //    lifeline to us.
    let (go_read, go_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).at(Step::CloneInit)?;
    let mut namespaces = UnshareFlags::NEWUSER
        | UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWNET
        | UnshareFlags::NEWCGROUP;
    if privileged {
        namespaces |= UnshareFlags::NEWIPC;
    }
    let init_pid = match sys::clone_into_namespaces(namespaces).at(Step::CloneInit)? {
        Forked::Child => {
            drop(go_write);
            let _ = rustix::thread::set_name(c"mcp-j-init");
            let inherited = InitFds {
                user_trees,
                lifeline: go_read,
                egress_channel,
            };
            match init(spec, report, &host, &ops, inherited, privileged) {
                Ok(code) => sys::exit_now(code),
                Err(f) => report.fail(f),
            }
        }
        Forked::Parent(pid) => pid,
    };
    drop(go_read);
    drop(user_trees);
    // Init has the egress channel now; ours would keep the supervisor from seeing its end.
    drop(egress_channel);

    // 8. Map exactly one uid and one gid, from outside: the jail's, to the caller's own
    //    (through 6's root, which is the caller) or, for root, to the unprivileged host
    //    id the supervisor claimed. setgroups is denied first.
    let maps = IdMaps {
        uid: format!("{JAIL_UID} {jail_host_uid} 1\n"),
        gid: format!("{JAIL_GID} {jail_host_gid} 1\n"),
    };
    if let Err(e) = maps.write(&format!("/proc/{init_pid}")) {
        let _ = sys::kill(init_pid, libc::SIGKILL);
        let _ = sys::wait_blocking(init_pid);
        return Err(e).at(Step::MapIds);
    }
    let mut go = std::fs::File::from(go_write);
    go.write_all(b"1").at(Step::MapIds)?;

    // 9. Tell the supervisor where init is, then wait for it.
    report.send(Record::InitStarted { host_pid: init_pid });
    let status = sys::wait_blocking(init_pid).at(Step::ReportAndWait)?;
    drop(go);
    Ok(match status {
        ChildStatus::Exited(code) => code,
        ChildStatus::Signaled(sig) => 128 + sig,
    })
}

/// The descriptor numbers the spec says the user's paths were passed at: each at least
/// [`FIRST_PATH_FD`], none twice.
fn passed_path_fds(spec: &SandboxSpec) -> Result<Vec<RawFd>, Failure> {
    let mut numbers: Vec<RawFd> = Vec::new();
    for path in spec.host_paths() {
        match path.helper_fd {
            Some(n) if n >= FIRST_PATH_FD && !numbers.contains(&n) => numbers.push(n),
            _ => {
                return Err(Failure {
                    step: Step::CloseInheritedFds,
                    errno: libc::EBADF,
                });
            }
        }
    }
    Ok(numbers)
}

/// The descriptor number the spec says the egress channel was passed at (with an
/// allowlist): at least [`FIRST_PATH_FD`] and not a path's.
fn egress_channel_fd(spec: &SandboxSpec, path_fds: &[RawFd]) -> Result<Option<RawFd>, Failure> {
    let Some(egress) = &spec.egress else {
        return Ok(None);
    };
    match egress.channel_fd {
        Some(n) if n >= FIRST_PATH_FD && !path_fds.contains(&n) => Ok(Some(n)),
        _ => Err(Failure {
            step: Step::CloseInheritedFds,
            errno: libc::EBADF,
        }),
    }
}

/// Step 6: move into a new user namespace mapping root to the caller, then into a new
/// IPC namespace it owns, and set that namespace's limits. Returns whether they were set
/// (a failure there only leaves the host's values, which the report says); a failure to
/// make the namespaces is a setup failure.
fn ipc_namespace_of_our_own(caller_uid: u32, caller_gid: u32, memory_bytes: u64) -> Result<bool, Failure> {
    sys::unshare_namespaces(UnshareFlags::NEWUSER).at(Step::IpcNamespace)?;
    IdMaps {
        uid: format!("0 {caller_uid} 1\n"),
        gid: format!("0 {caller_gid} 1\n"),
    }
    .write("/proc/self")
    .at(Step::IpcNamespace)?;
    sys::unshare_namespaces(UnshareFlags::NEWIPC).at(Step::IpcNamespace)?;
    let limits = namespace_limits::ipc_namespace_limits(memory_bytes);
    Ok(namespace_limits::apply(Path::new(namespace_limits::PROC_SYS), limits).is_ok())
}

/// Ask for SIGKILL when the parent dies, then make sure it has not died already.
fn die_with_parent(parent: Option<rustix::process::Pid>) -> Result<(), Failure> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .at(Step::DieWithSupervisor)?;
    if rustix::process::getppid() != parent {
        sys::exit_now(SETUP_FAILED_EXIT);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Init: steps 10–21.
// ---------------------------------------------------------------------------------------

/// How many refused `execve`s init reports; later ones are refused silently.
const MAX_REPORTED_DENIALS: u32 = 64;

/// Signals init forwards to the program (from the supervisor, e.g. a graceful SIGTERM).
const FORWARDED_SIGNALS: [i32; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

fn init(
    spec: &SandboxSpec,
    report: &Reporter,
    host: &HostLayout,
    ops: &[MountOp],
    inherited: InitFds,
    privileged: bool,
) -> Result<i32, Failure> {
    let InitFds {
        user_trees,
        lifeline,
        egress_channel,
    } = inherited;
    // 10. Wait until the helper has written our id maps (EOF: it died).
    let mut go = [0u8; 1];
    if !matches!(rustix::io::read(&lifeline, &mut go), Ok(1)) {
        sys::exit_now(SETUP_FAILED_EXIT);
    }

    // 11. Shrink what the jail's own namespaces let it pin: the IPC namespace's SysV and
    //     mqueue limits now, while a root caller's init is still host uid 0 (which those
    //     sysctls require); the user namespace's counts are opened now, through the
    //     host's /proc, and written in 19 (max_mnt_namespaces = 0 would stop our mounts).
    let proc_sys = Path::new(namespace_limits::PROC_SYS);
    let ipc_limited = privileged
        && namespace_limits::apply(
            proc_sys,
            namespace_limits::ipc_namespace_limits(spec.limits.memory_bytes),
        )
        .is_ok();
    let user_limits = namespace_limits::PendingLimits::open(proc_sys, namespace_limits::user_namespace_limits()).ok();

    // 12. A root caller's init is still host uid 0, which the new namespace does not map:
    //     become the jail's ids (capabilities in the namespace stay, as its root uid is
    //     unmapped, so the kernel sees no "root to non-root" change). Then die with the
    //     helper; if it is already gone, the lifeline pipe has no writer.
    if privileged {
        let (uid, gid) = (
            rustix::process::Uid::from_raw(JAIL_UID),
            rustix::process::Gid::from_raw(JAIL_GID),
        );
        rustix::thread::set_thread_res_gid(gid, gid, gid).at(Step::BecomeJailUser)?;
        rustix::thread::set_thread_res_uid(uid, uid, uid).at(Step::BecomeJailUser)?;
    }
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).at(Step::BecomeJailUser)?;
    if helper_is_gone(lifeline.as_fd()) {
        sys::exit_now(SETUP_FAILED_EXIT);
    }
    drop(lifeline);

    // 13. Nothing we mount from here on propagates back to the host.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .at(Step::MakeMountsPrivate)?;

    // 14. Build the root: open every bind source while the host is visible, then carry
    //     the plan out on a fresh tmpfs.
    let sources = open_bind_sources(ops, user_trees)?;
    let root = mount_tmpfs(plan::ROOT_TMPFS_BYTES, 0o755)?;
    // The root needs a path for pivot_root; any host directory will do, as the mount
    // namespace is private and every source is already open.
    let staging = ["/tmp", "/mnt", "/run", "/var/tmp"]
        .into_iter()
        .find(|p| Path::new(p).is_dir())
        .ok_or(Failure {
            step: Step::BuildRoot,
            errno: libc::ENOENT,
        })?;
    rustix::mount::move_mount(
        root.as_fd(),
        "",
        rustix::fs::CWD,
        staging,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .at(Step::BuildRoot)?;
    for (op, source) in ops.iter().zip(sources) {
        apply(root.as_fd(), op, source)?;
    }
    // Inside the user's trees: project config read-only, host sockets covered.
    apply_covers(root.as_fd(), &plan::cover_ops(spec))?;

    // 15. pivot_root into it and detach the old root: the host is gone from view.
    rustix::process::fchdir(root.as_fd()).at(Step::PivotRoot)?;
    rustix::process::pivot_root(".", ".").at(Step::PivotRoot)?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).at(Step::PivotRoot)?;
    rustix::process::chdir("/").at(Step::PivotRoot)?;
    drop(root);

    // 16. The root itself becomes read-only.
    let new_root = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .at(Step::RootReadOnly)?;
    sys::mount_setattr(
        new_root.as_fd(),
        false,
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )
    .at(Step::RootReadOnly)?;
    drop(new_root);

    // 17. The host's name does not leak in.
    rustix::system::sethostname(JAIL_HOSTNAME.as_bytes()).at(Step::Hostname)?;

    // 18. With an allowlist: the loopback up, the allowlisted networks local to it, the
    //     egress listeners bound and sent to the supervisor. The jail keeps none of them.
    if let Some(egress) = &spec.egress {
        let channel = egress_channel.ok_or(Failure {
            step: Step::Network,
            errno: libc::EBADF,
        })?;
        network::set_up(egress, channel.as_fd()).at(Step::Network)?;
    }

    // 19. The user namespace's counts (inotify, fanotify, namespaces), before the program
    //     exists; then tell the supervisor what holds.
    let user_limited = user_limits.is_some_and(|pending| pending.write().is_ok());
    report.send(Record::NamespaceLimits {
        applied: namespace_limits::bit(namespace_limits::LimitGroup::IpcNamespace, ipc_limited)
            | namespace_limits::bit(namespace_limits::LimitGroup::UserNamespace, user_limited),
    });

    // 20. Fork the program. Signals are blocked first so none is lost before init's loop
    //     reads them; init needs a handler for each, or the kernel drops them for a pid 1.
    for sig in FORWARDED_SIGNALS.iter().chain(&[libc::SIGCHLD]) {
        sys::install_noop_handler(*sig).at(Step::ForkProgram)?;
    }
    let mut blocked: Vec<i32> = FORWARDED_SIGNALS.to_vec();
    blocked.push(libc::SIGCHLD);
    let blocked = sys::SignalSet::of(&blocked);
    sys::block_signals(&blocked).at(Step::ForkProgram)?;
    let (listener_rx, listener_tx) = if spec.no_subprocess {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .at(Step::ForkProgram)?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    // Not dumpable *before* the fork: from its first instruction the program could look
    // at /proc/1 (fds, memory, environ), and only a non-dumpable init is out of its reach.
    // The program inherits the flag until its execve resets it.
    sys::set_not_dumpable().at(Step::ForkProgram)?;
    let program_pid = match sys::fork().at(Step::ForkProgram)? {
        Forked::Child => {
            drop(listener_rx);
            let f = program(spec, report, host, listener_tx);
            report.fail(f)
        }
        Forked::Parent(pid) => pid,
    };
    drop(listener_tx);

    // 21. Init's loop. Init keeps nothing it does not need: no capabilities (it was made
    //     non-dumpable before the fork).
    drop_capabilities().at(Step::InitLoop)?;
    rustix::thread::set_no_new_privs(true).at(Step::InitLoop)?;

    let listener = match listener_rx {
        Some(rx) => sys::receive_fd(rx.as_fd()),
        None => None,
    };
    let signals = sys::signalfd(&blocked).at(Step::InitLoop)?;
    let status = init_loop(
        program_pid,
        signals.as_fd(),
        listener.as_ref().map(|l| l.as_fd()),
        report,
    )?;
    report.send(match status {
        ChildStatus::Exited(code) => Record::ProgramExited { code },
        ChildStatus::Signaled(signal) => Record::ProgramSignaled { signal },
    });
    Ok(match status {
        ChildStatus::Exited(code) => code,
        ChildStatus::Signaled(sig) => 128 + sig,
    })
}

/// The descriptors init takes over from the helper.
struct InitFds {
    /// The user's paths, as detached mount trees (plan index, tree).
    user_trees: Vec<(usize, OwnedFd)>,
    /// The pipe that says the id maps are written, then stays open while the helper lives.
    lifeline: OwnedFd,
    /// With an allowlist: where the egress listeners go (step 18).
    egress_channel: Option<OwnedFd>,
}

fn helper_is_gone(lifeline: BorrowedFd<'_>) -> bool {
    let mut fds = [rustix::event::PollFd::new(&lifeline, rustix::event::PollFlags::IN)];
    matches!(rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
}

/// Init's loop: reap every child (orphans are re-parented to us), forward signals to the
/// program, answer `execve` notifications (under `--no-subprocess`: the program's own exec
/// proceeds, every later one fails with EPERM — a count, not a look at the caller's
/// memory, so nothing can be swapped under us). Returns when the program ends.
fn init_loop(
    program: libc::pid_t,
    signals: BorrowedFd<'_>,
    listener: Option<BorrowedFd<'_>>,
    report: &Reporter,
) -> Result<ChildStatus, Failure> {
    use rustix::event::{PollFd, PollFlags};
    let mut execs_allowed = 1u32;
    let mut denials_reported = 0u32;
    let mut listener = listener;
    loop {
        let mut fds = vec![PollFd::new(&signals, PollFlags::IN)];
        if let Some(l) = &listener {
            fds.push(PollFd::new(l, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).at(Step::InitLoop),
        }
        let listener_events = fds.get(1).map(|f| f.revents());
        while let Some(sig) = sys::read_signalfd(signals).at(Step::InitLoop)? {
            if sig != libc::SIGCHLD {
                let _ = sys::kill(program, sig);
            }
        }
        while let Some((pid, status)) = reap_one().at(Step::InitLoop)? {
            if pid == program {
                return Ok(status);
            }
        }
        if let (Some(l), Some(ev)) = (listener, listener_events) {
            if ev.contains(PollFlags::IN) {
                if let Ok(n) = sys::seccomp_notif_recv(l) {
                    let errno = if execs_allowed > 0 {
                        execs_allowed -= 1;
                        None
                    } else {
                        Some(libc::EPERM)
                    };
                    // The refused program's name, for the user's message only (the
                    // decision above does not look at it), read while the caller waits.
                    if errno.is_some() && denials_reported < MAX_REPORTED_DENIALS {
                        for chunk in denied_program(&n).chunks(NAME_CHUNK) {
                            let mut padded = [0u8; NAME_CHUNK];
                            padded[..chunk.len()].copy_from_slice(chunk);
                            report.send(Record::ExecDeniedName { chunk: padded });
                        }
                    }
                    // The caller may have died meanwhile (ENOENT): nothing to do then.
                    let _ = sys::seccomp_notif_send(l, n.id, errno);
                    // Tell the supervisor (for the audit log), up to a bound: a program
                    // looping on execve must not flood the report pipe.
                    if let Some(errno) = errno
                        && denials_reported < MAX_REPORTED_DENIALS
                    {
                        denials_reported += 1;
                        report.send(Record::ExecDenied { errno });
                    }
                }
            } else if ev.intersects(PollFlags::HUP | PollFlags::ERR) {
                listener = None; // no task uses the filter any more
            }
        }
    }
}

/// How much of a refused program's path init reads and reports.
const MAX_DENIED_NAME: usize = 120;

/// The path an `execve`/`execveat` notification asks to run, read from the caller's
/// memory (`/proc/PID/mem`, while it waits for our answer); empty if unreadable. The
/// caller can change it under us, so this names the program in a message and nothing
/// else.
fn denied_program(n: &sys::SeccompNotification) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let address = match i64::from(n.nr) {
        libc::SYS_execve => n.args[0],
        libc::SYS_execveat => n.args[1],
        _ => return Vec::new(),
    };
    let Ok(mem) = std::fs::File::open(format!("/proc/{}/mem", n.pid)) else {
        return Vec::new();
    };
    let mut buf = [0u8; MAX_DENIED_NAME];
    let len = mem.read_at(&mut buf, address).unwrap_or(0);
    let path = &buf[..len];
    path[..path.iter().position(|&b| b == 0).unwrap_or(len)].to_vec()
}

fn reap_one() -> std::io::Result<Option<(libc::pid_t, ChildStatus)>> {
    match sys::wait_nohang(-1) {
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// Program: steps 22–32.
// ---------------------------------------------------------------------------------------

/// Harden this process and exec the program. Returns only on failure.
fn program(spec: &SandboxSpec, report: &Reporter, host: &HostLayout, listener_tx: Option<OwnedFd>) -> Failure {
    match harden_and_exec(spec, report, host, listener_tx) {
        Ok(never) => match never {},
        Err(f) => f,
    }
}

enum Never {}

fn harden_and_exec(
    spec: &SandboxSpec,
    report: &Reporter,
    host: &HostLayout,
    listener_tx: Option<OwnedFd>,
) -> Result<Never, Failure> {
    // 22. Signals as the program expects them: every disposition default (init's no-op
    //     handlers, the SIGPIPE that Rust's runtime ignores, anything a parent left
    //     ignored: an ignored signal stays ignored across execve), nothing blocked.
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            sys::reset_signal_handler(sig).at(Step::Signals)?;
        }
    }
    sys::set_signal_mask(&sys::SignalSet::of(&[])).at(Step::Signals)?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)).at(Step::Signals)?;

    // 23. A session of its own: no controlling terminal to inject input into.
    rustix::process::setsid().at(Step::Setsid)?;

    // 24. The working directory.
    let workdir = match &spec.workdir {
        Workdir::Host(dir) => dir.path.clone(),
        Workdir::Private => PathBuf::from("/tmp"),
        Workdir::Package => PathBuf::from(crate::spec::PACKAGE_DIR),
    };
    rustix::process::chdir(workdir.as_path()).at(Step::Chdir)?;

    // 25. Resource limits.
    for setting in limits::rlimit_plan(&spec.limits, spec.limits_by_cgroup) {
        rustix::process::setrlimit(setting.resource.to_rustix(), setting.rlimit()).at(Step::Rlimits)?;
    }

    // 26. Landlock over the same picture as the mounts. Refuse to go on without it.
    let policy = FsPolicy {
        read: vec![PathBuf::from("/")],
        write: plan::writable_paths(spec),
        exec: plan::executable_paths(spec, host),
        devices: plan::DEV_NODES.iter().map(PathBuf::from).collect(),
        connect_ports: spec.egress.as_ref().map(plan::connect_ports).unwrap_or_default(),
    };
    let status = landlock_rules::restrict_self(&policy).map_err(|e| Failure {
        step: Step::Landlock,
        errno: landlock_rules::errno_of(&e).unwrap_or(libc::EPERM),
    })?;
    report.send(Record::Landlock {
        status,
        abi: sys::landlock_abi_version().unwrap_or(0),
    });
    if status == LayerStatus::Absent {
        return Err(Failure {
            step: Step::Landlock,
            errno: libc::EOPNOTSUPP,
        });
    }

    // 27. Find the program now: under --no-subprocess exactly one execve may proceed.
    let (path, argv, envp) = match resolve_program(spec) {
        Ok(resolved) => resolved,
        Err(e) => exec_failed(report, e),
    };

    // 28. Every capability gone, bounding and ambient sets included.
    drop_capabilities().at(Step::DropCapabilities)?;

    // 29. no_new_privs: nothing we exec can gain privileges (setuid bits, file caps).
    //     Already set by step 26 (the landlock crate sets it when it enforces the ruleset,
    //     as the kernel requires); kept here as the one place that promises it, in case
    //     step 26 ever changes. docs/SANDBOX.md, step 29.
    rustix::thread::set_no_new_privs(true).at(Step::NoNewPrivs)?;

    // 30. seccomp, last: the allowlist, then the guard (with the exec listener).
    let allowlist = seccomp::syscall_filter().map_err(|_| Failure {
        step: Step::Seccomp,
        errno: libc::EINVAL,
    })?;
    sys::install_seccomp_filter(&allowlist, false).at(Step::Seccomp)?;
    let listener = sys::install_seccomp_filter(&seccomp::guard_filter(spec.no_subprocess), spec.no_subprocess)
        .at(Step::Seccomp)?;
    if let (Some(listener), Some(tx)) = (listener, listener_tx) {
        sys::send_fd(tx.as_fd(), listener.as_fd()).at(Step::Seccomp)?;
    }

    // 31. Nothing but stdin, stdout, stderr (and the report pipe, closed by exec) survives.
    sys::close_fds_from(3, &[REPORT_FD]).at(Step::CloseDescriptors)?;
    sys::set_cloexec(report.0.as_fd(), true).at(Step::CloseDescriptors)?;

    // 32. execve (a failure is reported as ExecFailed, with its own exit code).
    exec_failed(report, sys::execve(&path, &argv, &envp))
}

/// The program could not be started: 127 when it does not exist in the jail, else 126.
fn exec_failed(report: &Reporter, err: std::io::Error) -> ! {
    let errno = err.raw_os_error().unwrap_or(libc::EIO);
    report.send(Record::ExecFailed { errno });
    sys::exit_now(if errno == libc::ENOENT { 127 } else { 126 })
}

/// Clear the bounding set (needs CAP_SETPCAP, so first), the ambient set, then every
/// other set.
fn drop_capabilities() -> std::io::Result<()> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        sys::drop_bounding_capability(cap)?;
    }
    rustix::thread::clear_ambient_capability_set()?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

type ExecArgs = (CString, Vec<CString>, Vec<CString>);

/// The program's path (looked up in the jail's `PATH` for a bare name), argv and envp.
fn resolve_program(spec: &SandboxSpec) -> std::io::Result<ExecArgs> {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL));
    let mut argv = vec![cstr(spec.program.as_bytes())?];
    for a in &spec.args {
        argv.push(cstr(a.as_bytes())?);
    }
    let envp = spec
        .env
        .iter()
        .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let path = if spec.program.contains('/') {
        PathBuf::from(&spec.program)
    } else {
        let search = spec
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
        search
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(&spec.program))
            .find(|p| rustix::fs::access(p.as_path(), rustix::fs::Access::EXEC_OK).is_ok() && p.is_file())
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))?
    };
    Ok((cstr(path.as_os_str().as_bytes())?, argv, envp))
}
