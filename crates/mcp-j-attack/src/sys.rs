//! Small syscall helpers shared by the attacks: errno values with names, C strings, and
//! running a step in a forked child so that a seccomp kill or a changed process state does
//! not take the reporting process with it.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// An errno value, printed by name (`EPERM`) so that the tests can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's errno after a failed libc call.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The errno carried by an I/O error; `ETIMEDOUT` for std's own connect timeout.
    pub fn of(err: &io::Error) -> Errno {
        match err.raw_os_error() {
            Some(raw) => Errno(raw),
            None if err.kind() == io::ErrorKind::TimedOut => Errno(libc::ETIMEDOUT),
            None => Errno(0),
        }
    }

    /// Stands for "the process was killed by signal `sig`" where an errno is expected:
    /// a seccomp filter that kills instead of failing the syscall.
    pub fn killed_by(sig: i32) -> Errno {
        Errno(-sig)
    }

    /// The symbolic name, or `errno<N>` for one this table does not know; a signal name
    /// for [`Errno::killed_by`].
    pub fn name(self) -> String {
        if self.0 < 0 {
            return signal_name(-self.0);
        }
        let known = match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::ESRCH => "ESRCH",
            libc::EINTR => "EINTR",
            libc::EIO => "EIO",
            libc::ENXIO => "ENXIO",
            libc::E2BIG => "E2BIG",
            libc::ENOEXEC => "ENOEXEC",
            libc::EBADF => "EBADF",
            libc::ECHILD => "ECHILD",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::EXDEV => "EXDEV",
            libc::ENODEV => "ENODEV",
            libc::ENOTDIR => "ENOTDIR",
            libc::EISDIR => "EISDIR",
            libc::EINVAL => "EINVAL",
            libc::ENFILE => "ENFILE",
            libc::EMFILE => "EMFILE",
            libc::ENOTTY => "ENOTTY",
            libc::ETXTBSY => "ETXTBSY",
            libc::EFBIG => "EFBIG",
            libc::ENOSPC => "ENOSPC",
            libc::ESPIPE => "ESPIPE",
            libc::EROFS => "EROFS",
            libc::EMLINK => "EMLINK",
            libc::EPIPE => "EPIPE",
            libc::ERANGE => "ERANGE",
            libc::EDEADLK => "EDEADLK",
            libc::ENAMETOOLONG => "ENAMETOOLONG",
            libc::ENOSYS => "ENOSYS",
            libc::ENOTEMPTY => "ENOTEMPTY",
            libc::ELOOP => "ELOOP",
            libc::ENODATA => "ENODATA",
            libc::EOVERFLOW => "EOVERFLOW",
            libc::ENOTSOCK => "ENOTSOCK",
            libc::EDESTADDRREQ => "EDESTADDRREQ",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::EPROTOTYPE => "EPROTOTYPE",
            libc::ENOPROTOOPT => "ENOPROTOOPT",
            libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
            libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EPFNOSUPPORT => "EPFNOSUPPORT",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::ENETDOWN => "ENETDOWN",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::ECONNRESET => "ECONNRESET",
            libc::ENOBUFS => "ENOBUFS",
            libc::EISCONN => "EISCONN",
            libc::ENOTCONN => "ENOTCONN",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::EHOSTDOWN => "EHOSTDOWN",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::EALREADY => "EALREADY",
            libc::EINPROGRESS => "EINPROGRESS",
            libc::ESTALE => "ESTALE",
            libc::EDQUOT => "EDQUOT",
            libc::ENOKEY => "ENOKEY",
            libc::EKEYREVOKED => "EKEYREVOKED",
            libc::EKEYREJECTED => "EKEYREJECTED",
            libc::EKEYEXPIRED => "EKEYEXPIRED",
            libc::EOWNERDEAD => "EOWNERDEAD",
            _ => return format!("errno{}", self.0),
        };
        known.to_owned()
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The raw-syscall convention of a step run in a child: the return value, or `-errno`.
pub fn raw(ret: libc::c_long) -> i64 {
    if ret < 0 { -i64::from(Errno::last().0) } else { ret }
}

/// A syscall's raw return value as a result: negative means the errno is set.
pub fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// [`check`] for the `int`-returning libc wrappers.
pub fn check_int(ret: libc::c_int) -> Result<libc::c_int, Errno> {
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// A C string for a path or name given on the command line.
pub fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("`{s}` contains a NUL byte"))
}

/// Closes a file descriptor this program opened, ignoring errors.
pub fn close(fd: libc::c_int) {
    // SAFETY: closing an fd we own; a bad fd only makes close fail.
    unsafe {
        libc::close(fd);
    }
}

/// What happened to a step run in a forked child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// The step returned this value (a syscall's return: `>= 0` or `-errno`).
    Returned(i64),
    /// The child died of this signal before it could report (seccomp's SIGSYS, say).
    Signaled(i32),
    /// The child exited without reporting: its step replaced the process (a successful
    /// execve) and the new program exited with this status.
    Exited(i32),
    /// The child did not end within the time bound and was killed.
    TimedOut,
}

/// Runs `step` in a forked child and reports how it ended. The child writes the step's
/// return value to a close-on-exec pipe, so a step that execs successfully is seen as
/// `Exited` with the new program's status.
///
/// `step` runs between fork and exit in a copy of this single-threaded process: it must
/// only make raw syscalls (no allocation, no locks).
pub fn in_child(step: impl FnOnce() -> i64, bound: Duration) -> Result<ChildEnd, String> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    check_int(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).map_err(|e| format!("pipe2: {e}"))?;
    let [read_end, write_end] = fds;
    // SAFETY: this program is single-threaded when it forks (no std threads are running in
    // the attacks that use this), so the child may run the raw-syscall step.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = Errno::last();
        close(read_end);
        close(write_end);
        return Err(format!("fork: {e}"));
    }
    if pid == 0 {
        let value = step();
        let bytes = value.to_ne_bytes();
        // SAFETY: writing a local buffer to our pipe, then leaving the child without
        // running any destructor or atexit handler of the parent's copy.
        unsafe {
            libc::write(write_end, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    close(write_end);
    let mut buf = [0u8; 8];
    let mut got = 0usize;
    loop {
        // SAFETY: reading into the unfilled tail of a local buffer.
        let n = unsafe { libc::read(read_end, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n > 0 {
            got += n as usize;
            if got == buf.len() {
                break;
            }
        } else if n == 0 || Errno::last().0 != libc::EINTR {
            break;
        }
    }
    close(read_end);
    let status = wait_bounded(pid, bound);
    match status {
        None => Ok(ChildEnd::TimedOut),
        Some(_) if got == buf.len() => Ok(ChildEnd::Returned(i64::from_ne_bytes(buf))),
        Some(status) if libc::WIFSIGNALED(status) => Ok(ChildEnd::Signaled(libc::WTERMSIG(status))),
        Some(status) => Ok(ChildEnd::Exited(libc::WEXITSTATUS(status))),
    }
}

/// Waits for `pid` at most `bound`, then SIGKILLs and reaps it. `None` if it had to be
/// killed.
pub fn wait_bounded(pid: libc::pid_t, bound: Duration) -> Option<libc::c_int> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: polling our own child; status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && Errno::last().0 != libc::EINTR {
            return None;
        }
        if start.elapsed() > bound {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Raises a resource limit's soft value to its hard value, as a program that wants more
/// would: a limit that only sets the soft value is no limit.
pub fn raise_soft_limit(resource: libc::__rlimit_resource_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer for getrlimit, then a valid in-pointer.
    unsafe {
        if libc::getrlimit(resource, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(resource, &lim);
        }
    }
}

/// The host-independent name of a signal for reports.
pub fn signal_name(sig: i32) -> String {
    let known = match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSYS => "SIGSYS",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGALRM => "SIGALRM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        _ => return format!("signal{sig}"),
    };
    known.to_owned()
}
