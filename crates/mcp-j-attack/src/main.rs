//! `mcp-j-attack`: a deliberately hostile program for the mcp-j escape tests.
//!
//! # Overview
//!
//! `mcp-j-attack <attack> [args…]` performs one attack from inside the sandbox and prints
//! exactly one line on stdout:
//!
//! - `denied: <ERRNO or short detail>`, exit 0: the attack failed the way the sandbox
//!   intends (the first word is the errno name where there is one);
//! - `escaped: <detail>`, exit 1: the attack worked, the sandbox has a hole;
//! - `error: <detail>`, exit 2: the probe itself could not run;
//! - `ok: <detail>`, exit 0: a fact (`status`, `env`, `uname`, `features`) or a positive
//!   control.
//!
//! `mcp-j-attack control <attack> [args…]` runs the same operation as a positive control:
//! success prints `ok:` (exit 0) and failure `error: control failed: …` (exit 2). Tests use
//! it to show that what they deny elsewhere does work where it should (a file in the
//! working directory is writable, execve works without `--no-subprocess`).
//!
//! # Safety of the program itself
//!
//! Only run it inside a sandbox; `status`, `env`, `uname` and `features` are harmless
//! anywhere. Every loop is bounded in count and in time, so a sandbox that stops nothing
//! makes a test fail instead of taking the machine down: the memory bomb stops at 2 GiB,
//! the fork bomb at 2000 children that each exit within 30 s, the fd bomb at 100 000
//! opens, the CPU burner after 120 s. Attacks that would change the host if they worked
//! are aimed so that success changes nothing that matters (sethostname to the current
//! name, a tmpfs mounted on a fresh directory and unmounted at once, `pivot_root` and
//! `umount` on paths that do not exist).
//!
//! # Test strategy
//!
//! The end-to-end tests in `crates/mcp-j-cli/tests/it/escape/` run every attack under
//! `mcp-j exec` and assert the `denied:` line, its errno where the kernel's answer is
//! certain, and the host-side effect (file absent, listener received nothing).

mod fs;
mod kernel;
mod limits;
mod net;
mod pinning;
mod plant;
mod probe;
mod procs;
mod sys;
mod syscalls;
mod tty;

use std::io::Write;
use std::process::ExitCode;

/// The outcome of one attack or probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The attack failed the way the sandbox intends.
    Denied(String),
    /// The attack worked.
    Escaped(String),
    /// The probe could not run.
    Error(String),
    /// A fact or a successful positive control.
    Ok(String),
}

impl Report {
    /// The report of a single operation: success is an escape, failure a denial named by
    /// its errno.
    pub fn of<T>(what: &str, result: Result<T, sys::Errno>) -> Report {
        match result {
            Ok(_) => Report::Escaped(format!("{what} succeeded")),
            Err(e) => Report::Denied(format!("{e} ({what})")),
        }
    }

    /// The report of several operations that must all fail: an escape if any worked; else
    /// a denial whose first word is the common errno, or `MIXED` when they differ.
    pub fn all(results: Vec<(String, Result<String, sys::Errno>)>) -> Report {
        let worked: Vec<String> = results
            .iter()
            .filter_map(|(what, r)| r.as_ref().ok().map(|d| format!("{what}: {d}")))
            .collect();
        if !worked.is_empty() {
            return Report::Escaped(worked.join("; "));
        }
        let errnos: Vec<String> = results
            .iter()
            .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("{what}={e}")))
            .collect();
        let first = results.iter().find_map(|(_, r)| r.as_ref().err().copied());
        let same = results.iter().all(|(_, r)| r.as_ref().err().copied() == first);
        let head = match first {
            Some(e) if same => e.name(),
            _ => "MIXED".to_owned(),
        };
        Report::Denied(format!("{head} ({})", errnos.join(", ")))
    }

    fn line(&self) -> (String, u8) {
        let (tag, detail, code) = match self {
            Report::Denied(d) => ("denied", d, 0),
            Report::Escaped(d) => ("escaped", d, 1),
            Report::Error(d) => ("error", d, 2),
            Report::Ok(d) => ("ok", d, 0),
        };
        let detail = detail.replace(['\n', '\r'], " ");
        (format!("{tag}: {detail}"), code)
    }
}

/// Prints the report line and flushes it; returns the exit code that goes with it.
pub fn emit(report: &Report) -> u8 {
    let (line, code) = report.line();
    let mut out = std::io::stdout().lock();
    // A closed stdout leaves nothing to report to; the exit code still tells.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    code
}

const USAGE: &str = "usage: mcp-j-attack [control] <attack> [args…]

files:     read PATH | open PATH | write PATH | open-write PATH | mkdir PATH | unlink PATH
           chmod PATH OCTAL | list DIR | grep-file PATH NEEDLE | setuid-file PATH
           setcap PATH | mknod PATH | fds | openat-fd FD NAME | link SRC DST
           rename SRC DST
project:   plant-hook REPO | plant-repo DIR
exec:      exec-true | execveat-true | exec-payload DIR | ldso-exec DIR | mmap-exec DIR
           memfd-exec
processes: kill PID | proc-pids [HOSTPID] | ptrace PID | process-vm-readv PID | proc-init
           pidfd-getfd PID
           spawn-tree K | fork-bomb | thread-bomb
limits:    mem-bomb [MAX_MIB] | fd-bomb | cpu-burn
pinning:   pin-memfd MAX_MIB | pin-memfd-one MAX_MIB | pin-shm MAX_MIB | pin-unix MAX_MIB
           inotify [HOLD_SECS [MAX]]
kernel:    io-uring | unshare NS | clone-ns NS | clone3-ns NS | setns NS | mount KIND [PATH]
           keyctl | bpf | perf-event | userfaultfd | ioctl KIND FD | open-by-handle-at
           sethostname | setuid | raise-limits | sched | settime | syslog
           x32-syscall | int80-syscall
allowlist: syscall NAME | personality PERSONA | tiocsetd | ioctl-fionbio
           ioctl-socket gifmetric|gifindex
network:   tcp-connect ADDR:PORT | tcp-bind ADDR:PORT | udp-send ADDR:PORT
           unix-abstract NAME | unix-path PATH | socket FAMILY | socket-highbits FAMILY
           netlink-up
terminal:  tty (echo off, 1x1 window, O_NONBLOCK, TIOCSETD on fds 0-2 that are ttys)
facts:     status | env | uname | features

NS: user mount net pid ipc uts cgroup time
mount KIND: tmpfs bind remount-rw(PATH) fsopen open-tree move-mount mount-setattr umount
            pivot-root chroot
syscall NAME: modify-ldt fanotify-init memfd-secret listmount statmount open-tree-attr
            quotactl-fd get-mempolicy unknown getppid
personality PERSONA: read-implies-exec addr-no-randomize linux32 linux query
ioctl KIND: tiocsti tioclinux tiocsti-highbits tioclinux-highbits; FD: a number or `null`
socket FAMILY: see `mcp-j-attack socket help`";

fn dispatch(attack: &str, args: &[String]) -> Report {
    let arg = |i: usize| args.get(i).map(String::as_str);
    macro_rules! need {
        ($i:expr, $what:expr) => {
            match arg($i) {
                Some(v) => v,
                None => return Report::Error(format!("`{attack}` needs {}", $what)),
            }
        };
    }
    match attack {
        // Files.
        "read" => fs::read(need!(0, "PATH")),
        "open" => fs::open(need!(0, "PATH")),
        "write" => fs::write(need!(0, "PATH")),
        "open-write" => fs::open_write(need!(0, "PATH")),
        "mkdir" => fs::mkdir(need!(0, "PATH")),
        "unlink" => fs::unlink(need!(0, "PATH")),
        "chmod" => fs::chmod(need!(0, "PATH"), need!(1, "OCTAL mode")),
        "list" => fs::list(need!(0, "DIR")),
        "grep-file" => fs::grep_file(need!(0, "PATH"), need!(1, "NEEDLE")),
        "setuid-file" => fs::setuid_file(need!(0, "PATH")),
        "setcap" => fs::setcap(need!(0, "PATH")),
        "mknod" => fs::mknod(need!(0, "PATH")),
        "fds" => fs::fds(),
        "openat-fd" => fs::openat_fd(need!(0, "FD"), need!(1, "NAME")),
        "link" => fs::link(need!(0, "SRC"), need!(1, "DST")),
        "rename" => fs::rename(need!(0, "SRC"), need!(1, "DST")),
        // The user's project.
        "plant-hook" => plant::plant_hook(need!(0, "REPO")),
        "plant-repo" => plant::plant_repo(need!(0, "DIR")),
        // Exec.
        "exec-true" => fs::exec_true(),
        "execveat-true" => fs::execveat_true(),
        "exec-payload" => fs::exec_payload(need!(0, "DIR")),
        "ldso-exec" => fs::ldso_exec(need!(0, "DIR")),
        "mmap-exec" => fs::mmap_exec(need!(0, "DIR")),
        "memfd-exec" => fs::memfd_exec(),
        // Processes.
        "kill" => procs::kill(need!(0, "PID")),
        "proc-pids" => procs::proc_pids(arg(0)),
        "ptrace" => procs::ptrace(need!(0, "PID")),
        "process-vm-readv" => procs::process_vm_readv(need!(0, "PID")),
        "proc-init" => procs::proc_init(),
        "pidfd-getfd" => procs::pidfd_getfd(need!(0, "PID")),
        "spawn-tree" => procs::spawn_tree(need!(0, "K")),
        "fork-bomb" => procs::fork_bomb(),
        "thread-bomb" => procs::thread_bomb(),
        // Limits.
        "mem-bomb" => limits::mem_bomb(arg(0)),
        "fd-bomb" => limits::fd_bomb(),
        "cpu-burn" => limits::cpu_burn(),
        "pin-memfd" => pinning::memfd(need!(0, "MAX_MIB"), false),
        "pin-memfd-one" => pinning::memfd(need!(0, "MAX_MIB"), true),
        "pin-shm" => pinning::sysv_shm(need!(0, "MAX_MIB")),
        "pin-unix" => pinning::unix_buffers(need!(0, "MAX_MIB")),
        "inotify" => pinning::inotify_instances(arg(0), arg(1)),
        // Kernel surface.
        "io-uring" => kernel::io_uring(),
        "unshare" => kernel::unshare(need!(0, "NS")),
        "clone-ns" => kernel::clone_ns(need!(0, "NS")),
        "clone3-ns" => kernel::clone3_ns(need!(0, "NS")),
        "setns" => kernel::setns(need!(0, "NS")),
        "mount" => kernel::mount(need!(0, "KIND"), arg(1)),
        "keyctl" => kernel::keyctl(),
        "bpf" => kernel::bpf(),
        "perf-event" => kernel::perf_event(),
        "userfaultfd" => kernel::userfaultfd(),
        "ioctl" => kernel::ioctl(need!(0, "KIND"), need!(1, "FD")),
        "open-by-handle-at" => kernel::open_by_handle_at(),
        "sethostname" => kernel::sethostname(),
        "setuid" => kernel::setuid(),
        "raise-limits" => kernel::raise_limits(),
        "sched" => kernel::sched(),
        "settime" => kernel::settime(),
        "syslog" => kernel::syslog(),
        "x32-syscall" => kernel::x32_syscall(),
        "int80-syscall" => kernel::int80_syscall(),
        // Outside the seccomp allowlist, or refused by its arguments.
        "syscall" => syscalls::syscall(need!(0, "NAME")),
        "personality" => syscalls::personality(need!(0, "PERSONA")),
        "tiocsetd" => syscalls::tiocsetd(),
        "ioctl-fionbio" => syscalls::ioctl_fionbio(),
        "ioctl-socket" => syscalls::ioctl_socket(need!(0, "REQUEST")),
        // Network.
        "tcp-connect" => net::tcp_connect(need!(0, "ADDR:PORT")),
        "tcp-bind" => net::tcp_bind(need!(0, "ADDR:PORT")),
        "udp-send" => net::udp_send(need!(0, "ADDR:PORT")),
        "unix-abstract" => net::unix_abstract(need!(0, "NAME")),
        "unix-path" => net::unix_path(need!(0, "PATH")),
        "socket" => net::socket(need!(0, "FAMILY"), false),
        "socket-highbits" => net::socket(need!(0, "FAMILY"), true),
        "netlink-up" => net::netlink_up(),
        // The terminal given as stdio.
        "tty" => tty::tty(),
        // Facts.
        "status" => probe::status(),
        "env" => probe::env(),
        "uname" => probe::uname(),
        "features" => probe::features(),
        _ => {
            let _ = writeln!(std::io::stderr(), "{USAGE}");
            Report::Error(format!("unknown attack `{attack}` (usage on stderr)"))
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (control, rest) = match argv.split_first() {
        Some((first, rest)) if first == "control" => (true, rest),
        _ => (false, argv.as_slice()),
    };
    let Some((attack, args)) = rest.split_first() else {
        let _ = writeln!(std::io::stderr(), "{USAGE}");
        return ExitCode::from(emit(&Report::Error("no attack named".to_owned())));
    };
    let mut report = dispatch(attack, args);
    if control {
        report = match report {
            Report::Escaped(d) => Report::Ok(d),
            Report::Denied(d) => Report::Error(format!("control failed: {d}")),
            other => other,
        };
    }
    ExitCode::from(emit(&report))
}
