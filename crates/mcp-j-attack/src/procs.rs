//! Attacks on other processes (signals, ptrace, /proc of the init) and process-count
//! bombs. The bombs are bounded: at most [`MAX_FORKS`] children that each exit within
//! [`CHILD_LIFETIME_SECS`] seconds even if nobody reaps them.

use std::fs;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sys::{self, Errno};
use crate::{Report, emit};

/// The fork bomb's and thread bomb's ceiling.
const MAX_FORKS: usize = 2000;
/// How long the bombs keep trying.
const BOMB_TIME: Duration = Duration::from_secs(20);
/// How long a bomb's child lives at most (it is killed by its own alarm).
const CHILD_LIFETIME_SECS: u32 = 30;
/// How long the spawn tree lives at most when nobody kills it.
const TREE_LIFETIME_SECS: u32 = 120;

fn parse_pid(pid: &str) -> Result<libc::pid_t, Report> {
    match pid.parse::<libc::pid_t>() {
        // Never 0 or negative: kill(0)/kill(-1) would signal groups, not a process.
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Report::Error(format!("`{pid}` is not a positive pid"))),
    }
}

/// `kill(PID, 0)` and `kill(PID, SIGTERM)` on a pid given by the host.
pub fn kill(pid: &str) -> Report {
    let pid = match parse_pid(pid) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut results = Vec::new();
    for (what, sig) in [("kill 0", 0), ("kill SIGTERM", libc::SIGTERM)] {
        // SAFETY: sending a signal to a positive pid; no memory involved.
        let r = unsafe { libc::kill(pid, sig) };
        results.push((
            format!("{what} {pid}"),
            sys::check_int(r).map(|_| "delivered".to_owned()),
        ));
    }
    Report::all(results)
}

fn visible_pids() -> Result<Vec<u32>, Errno> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .map_err(|e| Errno::of(&e))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Lists the pids in `/proc`: a handful, never HOSTPID. First word of the denial: the
/// count.
pub fn proc_pids(host_pid: Option<&str>) -> Report {
    let host_pid = match host_pid.map(str::parse::<u32>) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return Report::Error("HOSTPID is not a number".to_owned()),
    };
    let pids = match visible_pids() {
        Ok(p) => p,
        Err(e) => return Report::Error(format!("read /proc: {e}")),
    };
    let list: Vec<String> = pids.iter().take(40).map(u32::to_string).collect();
    if let Some(h) = host_pid.filter(|h| pids.contains(h)) {
        return Report::Escaped(format!("host pid {h} is visible among {} pids", pids.len()));
    }
    if pids.len() > 32 {
        return Report::Escaped(format!(
            "{} pids visible (the host's pid namespace?): {}",
            pids.len(),
            list.join(" ")
        ));
    }
    Report::Denied(format!("{} pids visible ({})", pids.len(), list.join(" ")))
}

/// `ptrace(PTRACE_ATTACH, PID)`; detaches at once if it worked.
pub fn ptrace(pid: &str) -> Report {
    let pid = match parse_pid(pid) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH takes no pointers (addr and data are ignored).
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, null, null) };
    if r < 0 {
        return Report::Denied(format!("{} (ptrace attach {pid})", Errno::last()));
    }
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: detaching the tracee we attached; no pointers.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, null, null) };
    Report::Escaped(format!("attached to pid {pid} with ptrace"))
}

/// `process_vm_readv` on PID. EFAULT counts as an escape: the kernel only checks the
/// address after the access check passed.
pub fn process_vm_readv(pid: &str) -> Report {
    let pid = match parse_pid(pid) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: 0x40_0000 as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: local points to our buffer of the stated length; the remote address is only
    // interpreted in the other process.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    match r {
        n if n >= 0 => Report::Escaped(format!("read {n} bytes of pid {pid}'s memory")),
        _ => match Errno::last() {
            e if e.0 == libc::EFAULT => Report::Escaped(format!(
                "process_vm_readv on pid {pid} passed the access check (EFAULT on a guessed address)"
            )),
            e => Report::Denied(format!("{e} (process_vm_readv {pid})")),
        },
    }
}

/// Reaches into the jail's init through `/proc/1`: its fds, memory, environment, root.
pub fn proc_init() -> Report {
    // SAFETY: getpid has no preconditions.
    if unsafe { libc::getpid() } == 1 {
        return Report::Error("this program is pid 1: there is no separate init".to_owned());
    }
    let ok = |s: &str| s.to_owned();
    let results = vec![
        (
            "list /proc/1/fd".to_owned(),
            fs::read_dir("/proc/1/fd")
                .map(|d| format!("{} fds", d.count()))
                .map_err(|e| Errno::of(&e)),
        ),
        (
            "open /proc/1/mem rw".to_owned(),
            fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/proc/1/mem")
                .map(|_| ok("opened"))
                .map_err(|e| Errno::of(&e)),
        ),
        (
            "read /proc/1/environ".to_owned(),
            fs::read("/proc/1/environ")
                .map(|b| format!("{} bytes", b.len()))
                .map_err(|e| Errno::of(&e)),
        ),
        (
            "readlink /proc/1/root".to_owned(),
            fs::read_link("/proc/1/root")
                .map(|p| p.display().to_string())
                .map_err(|e| Errno::of(&e)),
        ),
        (
            "readlink /proc/1/cwd".to_owned(),
            fs::read_link("/proc/1/cwd")
                .map(|p| p.display().to_string())
                .map_err(|e| Errno::of(&e)),
        ),
    ];
    Report::all(results)
}

/// Makes this process and its future children ignore the polite signals, so only
/// SIGKILL (or their own alarm) ends them.
fn ignore_polite_signals() {
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGPIPE] {
        // SAFETY: setting a signal to SIG_IGN installs no handler code.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// The body of a bomb's or tree's child: wait for the alarm, which kills it.
fn sleep_until_alarm(secs: u32) -> ! {
    // SAFETY: alarm and pause are async-signal-safe; SIGALRM's default action ends the
    // process, so this never returns; _exit is the fallback.
    unsafe {
        libc::alarm(secs);
        for _ in 0..(secs * 2) {
            libc::pause();
        }
        libc::_exit(0)
    }
}

/// Forks K children that sleep (at most [`TREE_LIFETIME_SECS`]) plus one daemon that
/// double-forks away and calls setsid, prints `ok: pids …` as seen inside, then sleeps.
/// For the test that SIGKILLs mcp-j and checks that the whole tree dies with it.
pub fn spawn_tree(k: &str) -> Report {
    let k = match k.parse::<usize>() {
        Ok(k) if (1..=64).contains(&k) => k,
        _ => return Report::Error(format!("K must be 1..=64, not `{k}`")),
    };
    ignore_polite_signals();
    // SAFETY: getpid has no preconditions.
    let mut pids = vec![unsafe { libc::getpid() }];
    for _ in 0..k {
        // SAFETY: single-threaded; the child only sleeps.
        match unsafe { libc::fork() } {
            -1 => return Report::Error(format!("fork: {}", Errno::last())),
            0 => sleep_until_alarm(TREE_LIFETIME_SECS),
            pid => pids.push(pid),
        }
    }
    let daemon = sys::in_child(
        || {
            // SAFETY: in the forked child, single-threaded: fork again; the grandchild
            // leaves the session and sleeps; the child reports its pid and exits, so the
            // grandchild is reparented to the jail's init.
            unsafe {
                match libc::fork() {
                    -1 => -i64::from(*libc::__errno_location()),
                    0 => {
                        libc::setsid();
                        sleep_until_alarm(TREE_LIFETIME_SECS)
                    }
                    pid => i64::from(pid),
                }
            }
        },
        Duration::from_secs(10),
    );
    match daemon {
        Ok(sys::ChildEnd::Returned(pid)) if pid > 0 => pids.push(pid as libc::pid_t),
        other => return Report::Error(format!("daemon fork: {other:?}")),
    }
    let list: Vec<String> = pids.iter().map(i32::to_string).collect();
    emit(&Report::Ok(format!("pids {}", list.join(" "))));
    let deadline = Instant::now() + Duration::from_secs(u64::from(TREE_LIFETIME_SECS));
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    std::process::exit(0)
}

/// Forks children until fork fails: at most [`MAX_FORKS`], for at most [`BOMB_TIME`].
/// Each child sleeps at most [`CHILD_LIFETIME_SECS`]; all are killed and reaped before
/// the report. Denial: `<ERRNO> after <N> forks`.
pub fn fork_bomb() -> Report {
    sys::raise_soft_limit(libc::RLIMIT_NPROC);
    let start = Instant::now();
    let mut children = Vec::new();
    let mut failure = None;
    while children.len() < MAX_FORKS && start.elapsed() < BOMB_TIME {
        // SAFETY: single-threaded; the child only sleeps until its alarm.
        match unsafe { libc::fork() } {
            -1 => {
                failure = Some(Errno::last());
                break;
            }
            0 => sleep_until_alarm(CHILD_LIFETIME_SECS),
            pid => children.push(pid),
        }
    }
    let n = children.len();
    for &pid in &children {
        // SAFETY: killing our own child by pid.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &children {
        sys::wait_bounded(pid, Duration::from_secs(5));
    }
    match failure {
        Some(e) => Report::Denied(format!("{e} after {n} forks")),
        None if n >= MAX_FORKS => Report::Escaped(format!("{n} forks succeeded")),
        None => Report::Error(format!("gave up after {:?} at {n} forks", BOMB_TIME)),
    }
}

/// Starts threads until that fails: at most [`MAX_FORKS`], for at most [`BOMB_TIME`];
/// each waits at most [`CHILD_LIFETIME_SECS`]. Denial: `<ERRNO> after <N> threads`.
pub fn thread_bomb() -> Report {
    sys::raise_soft_limit(libc::RLIMIT_NPROC);
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let start = Instant::now();
    let mut threads = Vec::new();
    let mut failure = None;
    while threads.len() < MAX_FORKS && start.elapsed() < BOMB_TIME {
        let stop = Arc::clone(&stop);
        let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let (lock, cvar) = &*stop;
            if let Ok(guard) = lock.lock() {
                let _ =
                    cvar.wait_timeout_while(guard, Duration::from_secs(u64::from(CHILD_LIFETIME_SECS)), |stopped| {
                        !*stopped
                    });
            }
        });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                failure = Some(Errno::of(&e));
                break;
            }
        }
    }
    let n = threads.len();
    {
        let (lock, cvar) = &*stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
    }
    for t in threads {
        let _ = t.join();
    }
    match failure {
        Some(e) => Report::Denied(format!("{e} after {n} threads")),
        None if n >= MAX_FORKS => Report::Escaped(format!("{n} threads started")),
        None => Report::Error(format!("gave up after {:?} at {n} threads", BOMB_TIME)),
    }
}

/// `pidfd_open(PID)` then `pidfd_getfd` on its fds 0..64: copying another process's
/// descriptors (the jail's init may hold host ones).
pub fn pidfd_getfd(pid: &str) -> Report {
    let pid = match parse_pid(pid) {
        Ok(p) => p,
        Err(r) => return r,
    };
    // SAFETY: pidfd_open takes a pid and flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Report::Denied(format!("{} (pidfd_open {pid})", Errno::last()));
    }
    let pidfd = pidfd as libc::c_int;
    let mut errnos = Vec::new();
    for target in 0..64 {
        // SAFETY: pidfd_getfd takes a pidfd, a target fd number and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
        if fd >= 0 {
            sys::close(fd as libc::c_int);
            sys::close(pidfd);
            return Report::Escaped(format!("copied fd {target} of pid {pid}"));
        }
        errnos.push(Errno::last());
    }
    sys::close(pidfd);
    // EBADF only says that fd number is not open; any other answer is the real one.
    let answer = errnos
        .iter()
        .find(|e| e.0 != libc::EBADF)
        .or(errnos.first())
        .copied()
        .unwrap_or(Errno(0));
    Report::Denied(format!("{answer} (pidfd_getfd on pid {pid}, fds 0..64)"))
}
