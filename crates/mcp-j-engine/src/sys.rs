//! The only module with `unsafe`: thin, safe wrappers over the system calls that neither
//! `rustix` nor the `landlock` crate offer safely (fork, clone, signal masks and handlers,
//! signalfd, seccomp with flags, user notification, `mount_setattr`, `close_range`, `wait4`
//! with usage, execve, taking over inherited descriptors), and rustix's safe calls (dup,
//! close-on-exec, dumpable, kill, waitpid, ids, bounding set) under the signatures the jail uses.
//!
//! Each wrapper returns `io::Result` and documents what the caller must guarantee. Nothing
//! here knows about the sandbox's policy; `jail.rs` decides what to call and in which order.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Turn a `-1`-style libc return value into an `io::Result`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Where a [`fork`] returned.
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(libc::pid_t),
    /// In the child.
    Child,
}

/// `fork(2)`.
///
/// Callers are single-threaded: the supervisor starting the helper (`Jail::spawn` checks
/// that no other thread runs), the helper and the jail's init. So the child may allocate
/// and run ordinary Rust code: no lock can be held by a thread that is not there.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions; the callers are single-threaded (see
    // above), so no lock can be held by a thread that does not exist in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `unshare(2)` of namespaces only.
pub fn unshare_namespaces(flags: rustix::thread::UnshareFlags) -> io::Result<()> {
    use rustix::thread::UnshareFlags;
    // Unsharing the fd table or fs info under a running Rust program could invalidate
    // state it relies on; namespaces cannot.
    let not_namespaces = UnshareFlags::FILES | UnshareFlags::FS | UnshareFlags::SYSVSEM;
    if flags.intersects(not_namespaces) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: only namespace flags (checked above), which change no memory or descriptor
    // this process holds.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    Ok(())
}

/// `clone(2)` without `CLONE_VM`, like `fork` but straight into new namespaces
/// (`CLONE_NEWPID`: the child is pid 1 of the new PID namespace). Same callers and
/// guarantees as [`fork`].
pub fn clone_into_namespaces(namespaces: rustix::thread::UnshareFlags) -> io::Result<Forked> {
    use rustix::thread::UnshareFlags;
    let not_namespaces = UnshareFlags::FILES | UnshareFlags::FS | UnshareFlags::SYSVSEM;
    if namespaces.intersects(not_namespaces) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let flags = namespaces.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: without CLONE_VM and with a null stack, clone duplicates the address space
    // like fork; the caller is single-threaded (see `fork`), and the other arguments
    // (thread-id pointers, TLS) are unused without the flags that ask for them.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as libc::pid_t)),
    }
}

/// `_exit(2)`: leave at once, without running destructors or atexit handlers (a forked
/// child must not flush buffers it shares with its parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Close every file descriptor from `first` up, except those in `keep` (which must be
/// sorted ascending and all `>= first`).
pub fn close_fds_from(first: u32, keep: &[RawFd]) -> io::Result<()> {
    let mut next = first;
    for &fd in keep {
        let fd = fd as u32;
        if fd > next {
            // SAFETY: close_range only closes descriptors; the caller owns none in that range
            // that it still needs (they are listed in `keep`).
            check(unsafe { libc::close_range(next, fd - 1, 0) } as libc::c_long)?;
        }
        next = fd + 1;
    }
    // SAFETY: as above.
    check(unsafe { libc::close_range(next, u32::MAX, 0) } as libc::c_long)?;
    Ok(())
}

/// Put each descriptor at its number (`dup2`, which also clears close-on-exec there).
/// Every source must be above every target, so that no `dup2` closes a source still to be
/// placed (`Jail::spawn` moves them so).
pub fn place_fds(fds: &[(OwnedFd, RawFd)]) -> io::Result<()> {
    for (source, target) in fds {
        // SAFETY: dup2 only duplicates a descriptor; `target` is a number the caller wants
        // replaced, and no `OwnedFd` of this process owns it (sources are all above it).
        check(unsafe { libc::dup2(source.as_raw_fd(), *target) }.into())?;
    }
    Ok(())
}

/// Overwrite every environment string of this process with zeros, then empty the
/// environment (`clearenv`). For the forked helper: the supervisor's environment (the
/// user's, tokens and all) is no business of the helper, init or the program, and an
/// `execve` would not have passed it (the helper used to be started with an empty one).
pub fn scrub_environment() {
    // SAFETY: called in the single-threaded helper, so nothing reads or changes the
    // environment meanwhile. Each `environ` entry is a NUL-terminated string that this
    // process may write (the initial ones live on the stack, later ones in the heap), so
    // writing `strlen` bytes stays within it. clearenv then drops the pointers.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let string = *entry;
            std::ptr::write_bytes(string, 0, libc::strlen(string));
            entry = entry.add(1);
        }
        libc::clearenv();
    }
}

unsafe extern "C" {
    /// The C library's environment array.
    static mut environ: *mut *mut libc::c_char;
}

/// How many threads this process runs (`/proc/self/stat`'s `num_threads`).
pub fn thread_count() -> io::Result<usize> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/self/stat"))
}

/// Duplicate `fd` to the lowest free number `>= min`, close-on-exec.
pub fn dup_at_least(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, min)?)
}

/// The spec pipe the supervisor hands the helper at [`crate::report::SPEC_FD`]. Called once,
/// first thing in the helper.
pub fn adopt_spec_fd() -> OwnedFd {
    // SAFETY: `Jail::spawn` places this descriptor at this number in the forked helper. An
    // object of the supervisor that owned the number before is never used or dropped in
    // the helper: the helper runs only `helper_main`, which leaves with `_exit`.
    unsafe { OwnedFd::from_raw_fd(crate::report::SPEC_FD) }
}

/// The report pipe at [`crate::report::REPORT_FD`]; as [`adopt_spec_fd`].
pub fn adopt_report_fd() -> OwnedFd {
    // SAFETY: as for adopt_spec_fd.
    unsafe { OwnedFd::from_raw_fd(crate::report::REPORT_FD) }
}

/// A descriptor the supervisor passed at number `fd` (a user path, [`crate::report::FIRST_PATH_FD`]
/// up), taken over once; EBADF if nothing is open there.
pub fn adopt_fd(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads descriptor flags; it fails with EBADF on a closed number.
    check(unsafe { libc::fcntl(fd, libc::F_GETFD) }.into())?;
    // SAFETY: the descriptor is open (checked above) and the helper takes each passed number
    // exactly once (`passed_path_fds` refuses duplicates); nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clear close-on-exec or set it.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    use rustix::io::FdFlags;
    let flags = if on { FdFlags::CLOEXEC } else { FdFlags::empty() };
    rustix::io::fcntl_setfd(fd, flags)?;
    Ok(())
}

/// Remove capability number `cap` from the bounding set (`PR_CAPBSET_DROP`).
/// EINVAL means the kernel does not know that capability: nothing to drop.
pub fn drop_bounding_capability(cap: u32) -> io::Result<()> {
    use rustix::thread::CapabilitySet;
    // rustix names a capability by its bit in a 64-bit set; a number past that is one no
    // kernel knows (it would answer EINVAL), so there is nothing to drop.
    let Some(bit) = 1u64.checked_shl(cap) else {
        return Ok(());
    };
    match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(bit)) {
        Err(rustix::io::Errno::INVAL) => Ok(()),
        other => Ok(other?),
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Mount attribute bits (`MOUNT_ATTR_*`).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// See [`MOUNT_ATTR_RDONLY`].
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// See [`MOUNT_ATTR_RDONLY`].
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
/// See [`MOUNT_ATTR_RDONLY`].
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {set, propagation=private})`:
/// set attributes on a (possibly detached) mount tree.
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, set: u64) -> io::Result<()> {
    mount_setattr_impl(fd, recursive, set, None)
}

/// As [`mount_setattr`], and make the (detached, never attached) tree an idmapped mount
/// with the mappings of the user namespace `userns`.
pub fn mount_setattr_idmapped(fd: BorrowedFd<'_>, set: u64, userns: BorrowedFd<'_>) -> io::Result<()> {
    mount_setattr_impl(fd, true, set, Some(userns))
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

fn mount_setattr_impl(fd: BorrowedFd<'_>, recursive: bool, set: u64, userns: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set | userns.map_or(0, |_| MOUNT_ATTR_IDMAP),
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` lives across the call
    // and its size is passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// One classic BPF instruction, layout-compatible with the kernel's `struct sock_filter`.
pub type SockFilter = seccompiler::sock_filter;

/// Install a seccomp filter on the calling thread (`SECCOMP_SET_MODE_FILTER`). With
/// `new_listener`, returns the user-notification descriptor.
/// The caller must have set no_new_privs (or hold CAP_SYS_ADMIN).
pub fn install_seccomp_filter(prog: &[SockFilter], new_listener: bool) -> io::Result<Option<OwnedFd>> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    let flags = if new_listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    // SAFETY: `fprog` points at `prog`, which is layout-compatible with libc::sock_filter
    // (four fields of the same types in the same order) and outlives the call.
    let ret = check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    })?;
    if new_listener {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh descriptor that we now own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
    } else {
        Ok(None)
    }
}

/// One pending seccomp user notification.
pub struct SeccompNotification {
    /// Cookie to answer with.
    pub id: u64,
    /// The calling task, as the listener's PID namespace sees it.
    pub pid: u32,
    /// The system call number.
    pub nr: i32,
    /// Its arguments (pointers into the caller's memory, which it may change at any time).
    pub args: [u64; 6],
}

// The field sizes of `seccomp_notif` add up to its size: no padding that a field-by-field
// zeroing would leave undefined.
const _: () = assert!(std::mem::size_of::<libc::seccomp_notif>() == 8 + 4 + 4 + (4 + 4 + 8 + 6 * 8));

/// `SECCOMP_IOCTL_NOTIF_RECV`.
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> io::Result<SeccompNotification> {
    // The kernel requires it zeroed; every field is, and the struct has no padding
    // (u64, u32, u32, then int, u32, u64, [u64; 6]).
    let mut notif = libc::seccomp_notif {
        id: 0,
        pid: 0,
        flags: 0,
        data: libc::seccomp_data {
            nr: 0,
            arch: 0,
            instruction_pointer: 0,
            args: [0; 6],
        },
    };
    let request = libc::SECCOMP_IOCTL_NOTIF_RECV;
    // SAFETY: the ioctl writes at most sizeof(seccomp_notif) bytes into `notif`.
    let ret = unsafe { libc::ioctl(listener.as_raw_fd(), request, &mut notif as *mut libc::seccomp_notif) };
    check(ret.into())?;
    Ok(SeccompNotification {
        id: notif.id,
        pid: notif.pid,
        nr: notif.data.nr,
        args: notif.data.args,
    })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: let the call proceed (`errno == None`) or fail it with errno.
///
/// Letting it proceed (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`) is only safe for decisions that
/// do not depend on the caller's memory, which it can change after we look.
pub fn seccomp_notif_send(listener: BorrowedFd<'_>, id: u64, errno: Option<i32>) -> io::Result<()> {
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: errno.map_or(0, |e| -e),
        flags: if errno.is_none() {
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32
        } else {
            0
        },
    };
    let request = libc::SECCOMP_IOCTL_NOTIF_SEND;
    // SAFETY: the ioctl reads sizeof(seccomp_notif_resp) bytes from `resp`.
    let ret = unsafe { libc::ioctl(listener.as_raw_fd(), request, &resp as *const libc::seccomp_notif_resp) };
    check(ret.into())?;
    Ok(())
}

/// A set of signals.
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    /// The set of `signals`.
    pub fn of(signals: &[i32]) -> Self {
        // SAFETY: sigemptyset initialises the whole set; sigaddset with valid numbers.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            SignalSet(set)
        }
    }
}

/// Block `set` for the calling thread.
pub fn block_signals(set: &SignalSet) -> io::Result<()> {
    // SAFETY: a valid sigset_t pointer; a null old-mask pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Replace the calling thread's signal mask (to restore it before execve: masks are
/// inherited by the new program).
pub fn set_signal_mask(set: &SignalSet) -> io::Result<()> {
    // SAFETY: valid sigset_t pointer, null old-mask pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, std::ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Install a handler that does nothing for `signal`. A PID-namespace init only receives
/// signals it has a handler for; the signal is blocked and read from a signalfd, so the
/// handler itself never runs.
pub fn install_noop_handler(signal: i32) -> io::Result<()> {
    // SAFETY: sigaction with a valid, zeroed struct and an extern "C" handler of the right
    // signature that touches nothing.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore_signal as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        if libc::sigaction(signal, &sa, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The kernel's `struct sigaction` for `rt_sigaction(2)` (x86_64 and aarch64 layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Reset `signal` to its default disposition, with the raw system call: glibc's wrappers
/// refuse the signals it reserves for itself (32, 33), which a parent may still have left
/// ignored, and an ignored disposition survives execve.
pub fn reset_signal_handler(signal: i32) -> io::Result<()> {
    let default = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `default` is a valid kernel sigaction that lives across the call; the old
    // action pointer is null; the size is the kernel's sigset size.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &default as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        )
    })?;
    Ok(())
}

/// `signalfd(2)` for `set` (which must be blocked), non-blocking, close-on-exec.
pub fn signalfd(set: &SignalSet) -> io::Result<OwnedFd> {
    // SAFETY: valid sigset pointer; returns a new descriptor we own.
    let fd = check(unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) }.into())?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Read one signal number from a signalfd; `None` when none is pending.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    // One `struct signalfd_siginfo` (128 bytes); its first field is `u32 ssi_signo`.
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    match rustix::io::read(fd, &mut info) {
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Some(u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32)),
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// `waitpid(pid, WNOHANG)` (`pid == -1`: any child). `None` when nothing has ended.
pub fn wait_nohang(pid: libc::pid_t) -> io::Result<Option<(libc::pid_t, ChildStatus)>> {
    wait_impl(pid, rustix::process::WaitOptions::NOHANG)
}

/// Blocking `waitpid(pid)`, retried on EINTR.
pub fn wait_blocking(pid: libc::pid_t) -> io::Result<ChildStatus> {
    loop {
        match wait_impl(pid, rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(status),
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn wait_impl(
    pid: libc::pid_t,
    options: rustix::process::WaitOptions,
) -> io::Result<Option<(libc::pid_t, ChildStatus)>> {
    use rustix::process::Pid;
    // waitpid's pid argument, case by case as rustix spells them.
    let waited = match pid {
        -1 => rustix::process::wait(options),
        0 => rustix::process::waitpid(None, options),
        pid if pid > 0 => rustix::process::waitpid(Pid::from_raw(pid), options),
        // `-pgid`: the children in process group `pgid`. No group has number -i32::MIN.
        pid => match pid.checked_neg().and_then(Pid::from_raw) {
            Some(group) => rustix::process::waitpgid(group, options),
            None => Err(rustix::io::Errno::SRCH),
        },
    }?;
    let Some((child, status)) = waited else {
        return Ok(None);
    };
    let ended = match (status.terminating_signal(), status.exit_status()) {
        (Some(signal), _) => ChildStatus::Signaled(signal),
        (None, Some(code)) => ChildStatus::Exited(code),
        // Stopped or continued (only reported with WUNTRACED/WCONTINUED): not an end.
        (None, None) => return Ok(None),
    };
    Ok(Some((child.as_raw_pid(), ended)))
}

/// What a waited-for child and every descendant it waited for used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildUsage {
    /// User plus system CPU time, in microseconds.
    pub cpu_usec: u64,
    /// The largest resident set of any single one of those processes, in bytes.
    pub max_rss_bytes: u64,
}

/// Blocking `wait4(pid)`, retried on EINTR: how the child ended and what it (and the
/// descendants it waited for) used.
pub fn wait_with_usage(pid: libc::pid_t) -> io::Result<(ChildStatus, ChildUsage)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain old data that wait4 fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointers for the duration of the call.
        let ret = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if !(libc::WIFEXITED(status) || libc::WIFSIGNALED(status)) {
            continue;
        }
        let st = if libc::WIFSIGNALED(status) {
            ChildStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ChildStatus::Exited(libc::WEXITSTATUS(status))
        };
        let usec = |t: libc::timeval| (t.tv_sec as u64).saturating_mul(1_000_000) + t.tv_usec as u64;
        return Ok((
            st,
            ChildUsage {
                cpu_usec: usec(usage.ru_utime) + usec(usage.ru_stime),
                max_rss_bytes: (usage.ru_maxrss as u64).saturating_mul(1024),
            },
        ));
    }
}

/// `kill(2)` of one process (`pid > 0`) with a named signal (not a real-time one, not 0):
/// the only kind of call the jail makes. Anything else is EINVAL, unsent.
pub fn kill(pid: libc::pid_t, signal: i32) -> io::Result<()> {
    // (`Pid::from_raw` wants a non-negative number.)
    let pid = if pid > 0 {
        rustix::process::Pid::from_raw(pid)
    } else {
        None
    };
    let signal = rustix::process::Signal::from_named_raw(signal);
    let (Some(pid), Some(signal)) = (pid, signal) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    rustix::process::kill_process(pid, signal)?;
    Ok(())
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: every pointer is a valid NUL-terminated string kept alive by `argv`/`envp`,
    // and both arrays are NULL-terminated.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// The Landlock ABI version the kernel offers (`landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`), or the errno (ENOSYS, EOPNOTSUPP).
pub fn landlock_abi_version() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a NULL attribute pointer with size 0 is the documented version query.
    let v = check(unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    })?;
    Ok(v as i32)
}

/// Set the calling process's dumpable flag off: no core dumps, no ptrace or
/// `/proc/PID/mem` access by processes of the same uid.
pub fn set_not_dumpable() -> io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// The real uid and gid of the caller.
pub fn real_ids() -> (u32, u32) {
    (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw())
}

/// Receive one descriptor sent with [`send_fd`] (the seccomp listener, a mount tree).
/// `None` if the sender died before sending it.
pub(crate) fn receive_fd(socket: BorrowedFd<'_>) -> Option<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    rustix::net::recvmsg(socket, &mut iov, &mut ancillary, RecvFlags::CMSG_CLOEXEC).ok()?;
    let mut received = None;
    for msg in ancillary.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    received
}

/// Send one descriptor over a unix socket, with a one-byte message.
pub(crate) fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    ancillary.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[std::io::IoSlice::new(&[0u8])],
        &mut ancillary,
        SendFlags::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn dup_at_least_returns_a_close_on_exec_descriptor_at_or_above_min() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let dup = dup_at_least(file.as_fd(), 100).unwrap();
        assert!(dup.as_raw_fd() >= 100);
        let flags = rustix::io::fcntl_getfd(&dup).unwrap();
        assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        set_cloexec(dup.as_fd(), false).unwrap();
        assert!(
            !rustix::io::fcntl_getfd(&dup)
                .unwrap()
                .contains(rustix::io::FdFlags::CLOEXEC)
        );
    }

    #[test]
    fn kill_refuses_groups_and_unnamed_signals_without_sending() {
        let einval = |r: io::Result<()>| r.unwrap_err().raw_os_error();
        assert_eq!(einval(kill(0, libc::SIGTERM)), Some(libc::EINVAL));
        assert_eq!(einval(kill(-1, libc::SIGTERM)), Some(libc::EINVAL));
        assert_eq!(einval(kill(std::process::id() as i32, 0)), Some(libc::EINVAL));
        // A pid that cannot exist (above pid_max's ceiling): the kernel's own ESRCH.
        assert_eq!(einval(kill(i32::MAX, libc::SIGTERM)), Some(libc::ESRCH));
    }

    #[test]
    fn drop_bounding_capability_past_the_last_known_one_is_nothing_to_do() {
        drop_bounding_capability(64).unwrap();
        drop_bounding_capability(u32::MAX).unwrap();
    }

    #[test]
    fn wait_reports_exit_code_and_no_child_as_echild() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let status = wait_blocking(child.id() as i32).unwrap();
        assert_eq!(status, ChildStatus::Exited(7));
        let again = wait_nohang(child.id() as i32).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::ECHILD));
        // Reaped by us, so std finds nothing left to wait for either.
        assert_eq!(child.wait().unwrap_err().raw_os_error(), Some(libc::ECHILD));
    }

    #[test]
    fn real_ids_are_the_callers() {
        // /proc/self belongs to the caller's (here also real) uid and gid.
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata("/proc/self").unwrap();
        assert_eq!(real_ids(), (me.uid(), me.gid()));
    }
}
