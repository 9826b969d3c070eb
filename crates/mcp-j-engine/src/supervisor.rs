//! The supervisor's side: start the jail helper (a fork of this single-threaded process:
//! no second `execve`, see docs/SANDBOX.md), hand it the spec, read its report, enforce the
//! wall-clock timeout, and turn the end into an [`Outcome`].

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::cgroup::{AnyJailCgroup, CgroupParent};
use crate::host_ids::{self, HostIdClaim};
use crate::report::{FIRST_PATH_FD, Layer, LayerStatus, RECORD_SIZE, REPORT_FD, Record, SPEC_FD, SandboxReport, Step};
use crate::spec::SandboxSpec;
use crate::{limits, sys};

/// Why the sandbox could not run the program.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The helper process could not be started.
    #[error("cannot start the jail helper")]
    Spawn(#[source] std::io::Error),
    /// [`Jail::spawn`] was called while other threads run: the helper is forked, and a fork
    /// of a multi-threaded process may only call async-signal-safe functions.
    #[error("internal error: a jail was started while {0} threads ran; mcp-j starts jails before it starts threads")]
    MultiThreaded(usize),
    /// A pipe to or from the helper failed.
    #[error("cannot talk to the jail helper")]
    Pipe(#[source] std::io::Error),
    /// The jail's mount plan is invalid.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A setup step failed inside the jail.
    #[error("sandbox setup failed at step `{}`: {}", step.name(), std::io::Error::from_raw_os_error(*errno))]
    Setup {
        /// Which step.
        step: Step,
        /// The errno.
        errno: i32,
    },
    /// The helper could not be moved into the jail's cgroup.
    #[error("cannot move the jail into its cgroup `{0}`")]
    Cgroup(String),
    /// A user path reached the supervisor without its descriptor ([`crate::HostPath::open`]).
    #[error("`{}` was not opened on the host before the jail started", .0.display())]
    Unopened(std::path::PathBuf),
    /// `policy.require_memory_limit` is set and no aggregate memory limit can be enforced:
    /// a policy refusal (exit 126), nothing ran.
    #[error(
        "refusing to run: `policy.require_memory_limit` is set and no aggregate memory limit can be \
         enforced here ({reason}); `mcp-j doctor` shows what this machine offers (run as root for cgroup v1, \
         or set MCP_J_CGROUP_PARENT to a delegated cgroup v2), or unset the policy"
    )]
    MemoryLimitRequired {
        /// Why there is no cgroup.
        reason: String,
    },
    /// No host id could be claimed for a root caller's jail.
    #[error("cannot give the jail a host uid of its own")]
    HostIds(#[source] host_ids::ClaimError),
    /// The helper ended without saying how.
    #[error("the jail helper ended unexpectedly ({0})")]
    Lost(String),
}

/// How a sandboxed run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The program exited with this code.
    Exited(i32),
    /// A signal killed the program.
    Signaled(i32),
    /// The wall-clock limit ran out; the whole jail was killed.
    TimedOut,
    /// The program could not be executed (errno: ENOENT = not found in the jail).
    ExecFailed(i32),
}

impl Outcome {
    /// The exit status `mcp-j` reports, as docs/CLI.md ("Exit status") says: the program's own;
    /// 128+N for signal N; 124 on timeout; 127 not found; 126 not executable.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Exited(code) => code,
            Outcome::Signaled(sig) => 128 + sig,
            Outcome::TimedOut => 124,
            Outcome::ExecFailed(errno) if errno == libc::ENOENT => 127,
            Outcome::ExecFailed(_) => 126,
        }
    }
}

/// What the jail used, and how that was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// CPU time of every process of the jail, in microseconds.
    pub cpu_time_usec: u64,
    /// Peak memory in bytes: of the whole jail with a cgroup; without, of its largest
    /// single process (the kernel keeps no total for a process tree).
    pub peak_memory_bytes: u64,
    /// `cgroup` or `rusage`.
    pub measured_by: &'static str,
}

/// A denial the sandbox observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// What was refused (`execve`).
    pub what: &'static str,
    /// The errno the program got.
    pub errno: i32,
    /// When the supervisor heard of it.
    pub at: std::time::SystemTime,
    /// The program it refused to run, as the caller named it, when init could read it
    /// (for messages only: the caller could have changed it).
    pub program: Option<String>,
}

/// Called with each denial as it happens (the CLI tells the user on stderr).
pub type DenialHook = Box<dyn FnMut(&Denial) + Send>;

/// A jail that has ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// How the program ended.
    pub outcome: Outcome,
    /// What the jail enforced.
    pub report: SandboxReport,
    /// What it used.
    pub usage: Usage,
    /// Denials the sandbox observed (at most a bounded number).
    pub denials: Vec<Denial>,
    /// The limits the jail ran under (for messages such as a `SIGXFSZ` death's).
    pub limits: crate::spec::Limits,
    /// The jail's cgroup reached its memory limit and the kernel killed a task of it.
    pub memory_limit_hit: bool,
}

/// What the jail's standard streams are connected to.
pub struct JailStdio {
    /// The program's stdin.
    pub stdin: JailStream,
    /// The program's stdout.
    pub stdout: JailStream,
    /// The program's stderr.
    pub stderr: JailStream,
}

impl JailStdio {
    /// Pass our own streams straight through.
    pub fn inherit() -> JailStdio {
        JailStdio {
            stdin: JailStream::Inherit,
            stdout: JailStream::Inherit,
            stderr: JailStream::Inherit,
        }
    }
}

/// Where one of the program's standard streams goes.
#[derive(Debug)]
pub enum JailStream {
    /// Ours, shared.
    Inherit,
    /// `/dev/null`.
    Null,
    /// A new pipe; our end is in [`Jail::take_stdio`].
    Piped,
    /// This descriptor (a pty slave, say).
    Fd(OwnedFd),
}

/// The helper process, as the supervisor holds it.
struct Helper {
    pid: libc::pid_t,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// A running jail.
pub struct Jail {
    helper: Helper,
    report: std::fs::File,
    pending: Vec<u8>,
    control: JailControl,
    /// Our end of the socket pair init sends the egress listeners on (with an allowlist).
    egress_channel: Option<OwnedFd>,
    /// What the network layer enforces, for the report.
    network_means: String,
    landlock: Option<(LayerStatus, i32)>,
    setup_failure: Option<(Step, i32)>,
    exec_failure: Option<i32>,
    program_end: Option<Outcome>,
    denials: Vec<Denial>,
    /// The path bytes of the next denial, as [`Record::ExecDeniedName`]s bring them.
    denied_name: Vec<u8>,
    on_denial: Option<DenialHook>,
    report_closed: bool,
    no_subprocess: bool,
    limits: crate::spec::Limits,
    /// The jail's own cgroup, removed (its processes killed first) on drop.
    cgroup: Option<AnyJailCgroup>,
    /// Why a cgroup the machine offered could not be made for this jail (then rlimits
    /// enforce the limits), for the report.
    cgroup_unused: Option<String>,
    /// What init reported of [`crate::namespace_limits`].
    namespace_limits: Option<u32>,
    /// A root caller's host id, held until the jail is gone. Declared after `cgroup`
    /// and `helper` so it is released last.
    _host_id: Option<HostIdClaim>,
}

/// Signals and kills a jail from any thread. Processes are addressed by pidfd, so a
/// signal can never reach an unrelated process that reused a pid.
#[derive(Clone)]
pub struct JailControl {
    inner: std::sync::Arc<std::sync::Mutex<ControlFds>>,
}

struct ControlFds {
    helper: Option<OwnedFd>,
    init: Option<OwnedFd>,
    /// [`JailControl::kill`] was called: a program that ends without a status was killed.
    killed: bool,
}

impl JailControl {
    fn new(helper_pid: libc::pid_t) -> JailControl {
        let helper = rustix::process::Pid::from_raw(helper_pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok());
        JailControl {
            inner: std::sync::Arc::new(std::sync::Mutex::new(ControlFds {
                helper,
                init: None,
                killed: false,
            })),
        }
    }

    /// Called when the helper reports init's pid: open a pidfd for it at once, while init
    /// is alive (or a zombie its parent, the helper, has not reaped).
    fn set_init(&self, host_pid: i32) {
        let fd = rustix::process::Pid::from_raw(host_pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok());
        if let Ok(mut fds) = self.inner.lock() {
            fds.init = fd;
        }
    }

    /// Send `signal` to the jail's init, which forwards it to the program (SIGKILL ends
    /// the whole PID namespace).
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        let fds = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))?;
        let init = fds
            .init
            .as_ref()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        let sig = rustix::process::Signal::from_named_raw(signal)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        rustix::process::pidfd_send_signal(init, sig)?;
        Ok(())
    }

    /// Kill the whole jail now: SIGKILL to its init ends every process in the PID
    /// namespace; SIGKILL to the helper covers a jail still being set up.
    pub fn kill(&self) {
        if let Ok(mut fds) = self.inner.lock() {
            fds.killed = true;
            for fd in [&fds.init, &fds.helper].into_iter().flatten() {
                let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
            }
        }
    }
}

impl JailControl {
    fn was_killed(&self) -> bool {
        self.inner.lock().map(|fds| fds.killed).unwrap_or(false)
    }
}

/// Makes each jail's cgroup name unique within this process.
static JAIL_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Jail {
    /// Start the helper and hand it `spec`. The helper is a fork of this process, which
    /// must be single-threaded (else [`SandboxError::MultiThreaded`]): the child runs
    /// ordinary Rust code, and a fork of a multi-threaded process could inherit a lock
    /// that a thread, absent in the child, holds. With a cgroup parent (v2 or v1), the jail gets a
    /// cgroup of its own with the spec's limits (then the rlimits it covers are skipped);
    /// without, or if that cgroup cannot be made, rlimits enforce the limits.
    pub fn spawn(
        spec: &SandboxSpec,
        stdio: JailStdio,
        cgroup_parent: Option<&CgroupParent>,
    ) -> Result<Jail, SandboxError> {
        let threads = sys::thread_count().map_err(SandboxError::Spawn)?;
        if threads != 1 {
            return Err(SandboxError::MultiThreaded(threads));
        }
        // Refuse a bad plan here, with a message, rather than as an errno from the jail.
        crate::plan::mount_plan(spec, &crate::plan::HostLayout::probe(spec))?;

        let name = format!(
            "mcp-j-{}-{}",
            std::process::id(),
            JAIL_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cgroup_unused = None;
        let cgroup = match cgroup_parent.map(|parent| (parent, AnyJailCgroup::create(parent, &name, &spec.limits))) {
            Some((_, Ok(cgroup))) => Some(cgroup),
            Some((_, Err(e))) if spec.require_memory_limit => {
                return Err(SandboxError::MemoryLimitRequired { reason: e.to_string() });
            }
            None if spec.require_memory_limit => {
                return Err(SandboxError::MemoryLimitRequired {
                    reason: "no delegated cgroup v2, and no cgroup v1 memory controller usable by this user".into(),
                });
            }
            Some((parent, Err(e))) => {
                let version = match parent {
                    CgroupParent::V2(_) => 2,
                    CgroupParent::V1(_) => 1,
                };
                cgroup_unused = Some(format!("cgroup v{version} not used: {}", error_chain(&e)));
                None
            }
            None => None,
        };
        // A root caller's jail gets a host uid of its own, never host root or a shared one.
        let host_id = if sys::real_ids().0 == 0 {
            Some(host_ids::claim_for_root_caller().map_err(SandboxError::HostIds)?)
        } else {
            None
        };
        let mut spec = spec.clone();
        spec.limits_by_cgroup = cgroup.is_some();
        spec.host_ids = host_id.as_ref().map(HostIdClaim::ids);

        // The user's paths travel as the descriptors opened on the host, at FIRST_PATH_FD
        // and up; the spec says which is where.
        let path_count = spec.host_paths().count() as RawFd;
        // Move the child's ends above every fixed number so the dup2s cannot collide.
        let above = (FIRST_PATH_FD + path_count + 1).max(10);
        let mut passed = Vec::new();
        for (i, path) in spec.host_paths_mut().enumerate() {
            let fd = path.fd().ok_or_else(|| SandboxError::Unopened(path.path.clone()))?;
            let moved = sys::dup_at_least(fd, above).map_err(SandboxError::Pipe)?;
            let number = FIRST_PATH_FD + i as RawFd;
            path.helper_fd = Some(number);
            passed.push((moved, number));
        }
        // With an allowlist: the socket pair init sends the egress listeners on, its end
        // passed after the paths' (the spec says where).
        let mut egress_channel = None;
        if let Some(egress) = spec.egress.as_mut() {
            let (ours, jails) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| SandboxError::Pipe(e.into()))?;
            let number = FIRST_PATH_FD + path_count;
            let moved = sys::dup_at_least(jails.as_fd(), above).map_err(SandboxError::Pipe)?;
            egress.channel_fd = Some(number);
            passed.push((moved, number));
            egress_channel = Some(ours);
        }
        let spec = &spec;

        let (spec_read, spec_write) = pipe()?;
        let (report_read, report_write) = pipe()?;
        let spec_read = sys::dup_at_least(spec_read.as_fd(), above).map_err(SandboxError::Pipe)?;
        let report_write = sys::dup_at_least(report_write.as_fd(), above).map_err(SandboxError::Pipe)?;
        passed.push((spec_read, SPEC_FD));
        passed.push((report_write, REPORT_FD));

        // The program's streams: the child's ends also go above every fixed number.
        let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
        for (number, (stream, our_end)) in [stdio.stdin, stdio.stdout, stdio.stderr]
            .into_iter()
            .zip(ours.iter_mut())
            .enumerate()
        {
            let childs_end = match stream {
                JailStream::Inherit => continue,
                JailStream::Null => rustix::fs::open(
                    "/dev/null",
                    rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| SandboxError::Pipe(e.into()))?,
                JailStream::Piped => {
                    let (read, write) = pipe()?;
                    let (child, parent) = if number == 0 { (read, write) } else { (write, read) };
                    *our_end = Some(parent);
                    child
                }
                JailStream::Fd(fd) => fd,
            };
            let moved = sys::dup_at_least(childs_end.as_fd(), above).map_err(SandboxError::Pipe)?;
            passed.push((moved, number as RawFd));
        }

        // The helper moves itself into the jail's cgroup, first thing, and says on this
        // pipe whether it could ("1"); a process moving itself is cheap where moving
        // another one can wait for an RCU grace period (`JailCgroupV1::join`).
        let (joined_read, joined_write) = pipe()?;
        let helper_pid = match sys::fork().map_err(SandboxError::Spawn)? {
            sys::Forked::Child => {
                // Named for `ps` (the command line stays the supervisor's).
                let _ = rustix::thread::set_name(c"mcp-j-helper");
                let joined = cgroup.as_ref().is_none_or(|cg| cg.join().is_ok());
                let _ = rustix::io::write(&joined_write, if joined { b"1" } else { b"0" });
                if !joined {
                    sys::exit_now(crate::jail::SETUP_FAILED_EXIT);
                }
                // The helper: put the passed descriptors at their numbers and close every
                // other one the supervisor had (an `execve` would have closed them, being
                // close-on-exec: our end of the spec pipe must go, or the helper never
                // reads the spec's end), clear the signal mask and the environment (which
                // an `execve` with an empty one would have left behind), and run. A panic
                // must never unwind into the supervisor's code in this process.
                let mut keep: Vec<RawFd> = passed.iter().map(|(_, n)| *n).filter(|n| *n > 2).collect();
                keep.sort_unstable();
                let placed = sys::place_fds(&passed)
                    .and_then(|()| sys::close_fds_from(3, &keep))
                    .and_then(|()| sys::set_signal_mask(&sys::SignalSet::of(&[])));
                if placed.is_ok() {
                    sys::scrub_environment();
                    let _ = std::panic::catch_unwind(|| {
                        crate::jail::helper_main();
                    });
                }
                sys::exit_now(crate::jail::SETUP_FAILED_EXIT)
            }
            sys::Forked::Parent(pid) => pid,
        };
        drop(passed); // closes our copies of the child's ends
        let [stdin, stdout, stderr] = ours;
        let helper = Helper {
            pid: helper_pid,
            stdin,
            stdout,
            stderr,
        };
        drop(joined_write);
        let mut joined = [0u8; 1];
        let answer = rustix::io::read(&joined_read, &mut joined);
        if let Some(cg) = &cgroup
            && !matches!(answer, Ok(1) if joined == *b"1")
        {
            let _ = sys::kill(helper.pid, libc::SIGKILL);
            let _ = sys::wait_blocking(helper.pid);
            return Err(SandboxError::Cgroup(cg.path().display().to_string()));
        }

        let json = serde_json::to_vec(spec).map_err(|e| SandboxError::Pipe(e.into()))?;
        let mut spec_write = std::fs::File::from(spec_write);
        // A helper that died early closes its end: the error shows in the report instead.
        let _ = spec_write.write_all(&json);
        drop(spec_write);

        let control = JailControl::new(helper.pid);
        Ok(Jail {
            helper,
            report: std::fs::File::from(report_read),
            pending: Vec::new(),
            control,
            egress_channel,
            network_means: crate::network::describe(spec.egress.as_ref()),
            landlock: None,
            setup_failure: None,
            exec_failure: None,
            program_end: None,
            denials: Vec::new(),
            denied_name: Vec::new(),
            on_denial: None,
            report_closed: false,
            no_subprocess: spec.no_subprocess,
            limits: spec.limits,
            cgroup,
            cgroup_unused,
            namespace_limits: None,
            _host_id: host_id,
        })
    }

    /// The program's stdin, stdout and stderr, when [`JailStdio`] asked for pipes.
    pub fn take_stdio(
        &mut self,
    ) -> (
        Option<std::process::ChildStdin>,
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (
            self.helper.stdin.take().map(Into::into),
            self.helper.stdout.take().map(Into::into),
            self.helper.stderr.take().map(Into::into),
        )
    }

    /// The egress listeners init bound in the jail (docs/SANDBOX.md, step 18), once: call
    /// after [`Jail::wait_ready`], when init has sent them all and closed its end. Empty
    /// without an allowlist.
    pub fn take_egress_sockets(&mut self) -> Result<Vec<(crate::network::EgressSocket, OwnedFd)>, SandboxError> {
        match self.egress_channel.take() {
            Some(channel) => crate::network::receive_sockets(channel.as_fd()).map_err(SandboxError::Pipe),
            None => Ok(Vec::new()),
        }
    }

    /// Call `hook` with each denial as the supervisor hears of it.
    pub fn on_denial(&mut self, hook: DenialHook) {
        self.on_denial = Some(hook);
    }

    /// A handle to signal or kill the jail from another thread while [`Jail::wait`] runs.
    pub fn control(&self) -> JailControl {
        self.control.clone()
    }

    /// Kill the whole jail now.
    pub fn kill(&mut self) {
        self.control.kill();
        if let Some(cgroup) = &self.cgroup {
            let _ = cgroup.kill();
        }
    }

    /// Wait until the program is about to start (its last setup step reported) or setup
    /// failed, at most `timeout`: the sandbox report is then known, for a session's start.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<SandboxReport, SandboxError> {
        let deadline = Instant::now() + timeout;
        while self.landlock.is_none() && self.setup_failure.is_none() && !self.report_closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.read_report(Some(left))?;
        }
        if let Some((step, errno)) = self.setup_failure {
            return Err(SandboxError::Setup { step, errno });
        }
        Ok(self.report())
    }

    /// Wait for the program to end, at most `timeout` (then kill the jail).
    pub fn wait(mut self, timeout: Option<Duration>) -> Result<Finished, SandboxError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut timed_out = false;
        while !self.report_closed {
            let remaining = match deadline {
                Some(d) if !timed_out => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        timed_out = true;
                        self.kill();
                        continue;
                    }
                    Some(left)
                }
                _ => None,
            };
            self.read_report(remaining)?;
        }
        let (status, rusage) = sys::wait_with_usage(self.helper.pid).map_err(SandboxError::Pipe)?;
        let usage = match &self.cgroup {
            Some(cg) => Usage {
                cpu_time_usec: cg.cpu_usage_usec().unwrap_or(rusage.cpu_usec),
                peak_memory_bytes: cg.peak_memory().ok().flatten().unwrap_or(rusage.max_rss_bytes),
                measured_by: "cgroup",
            },
            None => Usage {
                cpu_time_usec: rusage.cpu_usec,
                peak_memory_bytes: rusage.max_rss_bytes,
                measured_by: "rusage",
            },
        };
        let report = self.report();
        let memory_limit_hit = self.cgroup.as_ref().and_then(AnyJailCgroup::oom_kills).unwrap_or(0) > 0;
        let finished = |outcome| Finished {
            outcome,
            report: report.clone(),
            usage,
            denials: self.denials.clone(),
            limits: self.limits,
            memory_limit_hit,
        };
        if timed_out {
            return Ok(finished(Outcome::TimedOut));
        }
        if let Some((step, errno)) = self.setup_failure {
            return Err(SandboxError::Setup { step, errno });
        }
        if let Some(errno) = self.exec_failure {
            return Ok(finished(Outcome::ExecFailed(errno)));
        }
        match self.program_end {
            Some(outcome) => Ok(finished(outcome)),
            // We killed the jail (grace period over) before init could report.
            None if self.control.was_killed() => Ok(finished(Outcome::Signaled(libc::SIGKILL))),
            // The OOM killer of the jail's cgroup picked the helper or init: the jail ended
            // as a whole, killed.
            None if memory_limit_hit => Ok(finished(Outcome::Signaled(libc::SIGKILL))),
            None => Err(SandboxError::Lost(format!("{status:?}"))),
        }
    }

    /// Read records for at most `timeout` (forever with `None`).
    fn read_report(&mut self, timeout: Option<Duration>) -> Result<(), SandboxError> {
        use rustix::event::{PollFd, PollFlags, poll};
        let ts = timeout.map(|t| rustix::time::Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = [PollFd::new(&self.report, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(SandboxError::Pipe(e.into())),
        }
        let mut buf = [0u8; 256];
        let n = match self.report.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(SandboxError::Pipe(e)),
        };
        if n == 0 {
            self.report_closed = true;
            return Ok(());
        }
        self.pending.extend_from_slice(&buf[..n]);
        while self.pending.len() >= RECORD_SIZE {
            let mut rec = [0u8; RECORD_SIZE];
            rec.copy_from_slice(&self.pending[..RECORD_SIZE]);
            self.pending.drain(..RECORD_SIZE);
            match Record::decode(&rec) {
                Some(Record::InitStarted { host_pid }) => self.control.set_init(host_pid),
                Some(Record::SetupFailed { step, errno }) => {
                    self.setup_failure.get_or_insert((step, errno));
                }
                Some(Record::Landlock { status, abi }) => self.landlock = Some((status, abi)),
                Some(Record::ExecFailed { errno }) => self.exec_failure = Some(errno),
                Some(Record::ProgramExited { code }) => self.program_end = Some(Outcome::Exited(code)),
                Some(Record::ProgramSignaled { signal }) => self.program_end = Some(Outcome::Signaled(signal)),
                // The helper (an unprivileged caller's IPC limits) and init each report.
                Some(Record::NamespaceLimits { applied }) => {
                    self.namespace_limits = Some(self.namespace_limits.unwrap_or(0) | applied);
                }
                Some(Record::ExecDeniedName { chunk }) => {
                    self.denied_name.extend(chunk.iter().take_while(|&&b| b != 0));
                }
                Some(Record::ExecDenied { errno }) => {
                    let name = std::mem::take(&mut self.denied_name);
                    let denial = Denial {
                        what: "execve",
                        errno,
                        at: std::time::SystemTime::now(),
                        program: (!name.is_empty()).then(|| String::from_utf8_lossy(&name).into_owned()),
                    };
                    if let Some(hook) = &mut self.on_denial {
                        hook(&denial);
                    }
                    self.denials.push(denial);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The sandbox report: what this jail enforced, layer by layer.
    pub fn report(&self) -> SandboxReport {
        let mut layers = vec![
            Layer::new(
                "namespaces",
                LayerStatus::Enforced,
                "user, mount, pid, ipc, uts, network, cgroup",
            ),
            Layer::new(
                "filesystem",
                LayerStatus::Enforced,
                "pivot_root into a read-only tmpfs root; system dirs bound read-only",
            ),
            match self.landlock {
                Some((status, abi)) => Layer::new("landlock", status, format!("Landlock ABI {abi}")),
                None => Layer::new("landlock", LayerStatus::Absent, "not reached"),
            },
            Layer::new(
                "capabilities",
                LayerStatus::Enforced,
                "all sets empty, bounding set included",
            ),
            Layer::new("no_new_privs", LayerStatus::Enforced, "prctl(PR_SET_NO_NEW_PRIVS)"),
            Layer::new(
                "seccomp",
                LayerStatus::Enforced,
                "allowlist (unlisted calls ENOSYS, named refusals EPERM, argument filters), x32 guard, foreign architectures killed",
            ),
            Layer::new("network", LayerStatus::Enforced, self.network_means.clone()),
        ];
        if self.no_subprocess {
            layers.push(Layer::new(
                "no_subprocess",
                LayerStatus::Enforced,
                "seccomp user notification: execve after the first fails with EPERM",
            ));
        }
        let coverage = self.cgroup.as_ref().map(AnyJailCgroup::coverage);
        for l in limits::describe_limit_enforcement(coverage, self.namespace_limits) {
            layers.push(limit_layer(l, self.cgroup_unused.as_deref()));
        }
        SandboxReport { layers }
    }
}

/// The layer of one limit; the memory, pids and cpu layers, which a cgroup would have
/// enforced, also say why none was used when the machine offered one.
fn limit_layer(limit: limits::LimitEnforcement, cgroup_unused: Option<&str>) -> Layer {
    use limits::LimitKind::{Cpu, Memory, Pids};
    let means = match cgroup_unused {
        Some(why) if matches!(limit.kind, Memory | Pids | Cpu) => format!("{} ({why})", limit.means),
        _ => limit.means,
    };
    Layer::new(limit.kind.name(), limit.status, means)
}

/// An error and each of its sources, `: `-separated (the cgroup errors name the file;
/// their source says what the kernel answered).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| SandboxError::Pipe(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_names_every_cause() {
        let e = crate::cgroup::CgroupError::Create {
            path: "/sys/fs/cgroup/memory/mcp-j-1".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        let text = error_chain(&e);
        assert!(
            text.starts_with("cannot create cgroup `/sys/fs/cgroup/memory/mcp-j-1`: "),
            "{text}"
        );
        assert!(
            text.contains(&std::io::Error::from_raw_os_error(libc::EACCES).to_string()),
            "{text}"
        );
    }

    #[test]
    fn the_cgroup_layers_say_why_no_cgroup_was_used() {
        let why = "cgroup v1 not used: cannot create cgroup `/x`: Permission denied";
        let layers: Vec<Layer> = limits::describe_limit_enforcement(None, None)
            .into_iter()
            .map(|l| limit_layer(l, Some(why)))
            .collect();
        for layer in &layers {
            let noted = layer.means.ends_with(&format!("({why})"));
            assert_eq!(
                noted,
                ["memory", "pids", "cpu"].contains(&layer.name.as_str()),
                "{layer:?}"
            );
        }
        assert_eq!(layers.iter().filter(|l| l.means.contains(why)).count(), 3);
        let plain: Vec<Layer> = limits::describe_limit_enforcement(None, None)
            .into_iter()
            .map(|l| limit_layer(l, None))
            .collect();
        assert!(plain.iter().all(|l| !l.means.contains("not used")), "{plain:?}");
    }

    #[test]
    fn exit_codes_follow_the_interface() {
        assert_eq!(Outcome::Exited(3).exit_code(), 3);
        assert_eq!(Outcome::Signaled(9).exit_code(), 137);
        assert_eq!(Outcome::TimedOut.exit_code(), 124);
        assert_eq!(Outcome::ExecFailed(libc::ENOENT).exit_code(), 127);
        assert_eq!(Outcome::ExecFailed(libc::EACCES).exit_code(), 126);
    }
}
