//! Kernel feature probes for `mcp-j doctor`. Each probe runs for real, in a throwaway
//! process (`mcp-j __mcp-j-probe NAME`), so a restriction it installs dies with it; it
//! prints one line, `ok <detail>` or `no <detail>`, and exits 0 or 1.

use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::thread::UnshareFlags;

use crate::landlock_rules::{self, FsPolicy};
use crate::report::LayerStatus;
use crate::{seccomp, sys};

/// The hidden first argument that makes `mcp-j` run one probe.
pub const PROBE_ARG: &str = "__mcp-j-probe";

/// Every probe, with what it stands for.
pub const PROBES: &[(&str, &str)] = &[
    ("user_namespace", "unprivileged user namespace with a uid/gid map"),
    ("mount_namespace", "mount namespace"),
    ("pid_namespace", "PID namespace"),
    ("ipc_namespace", "IPC namespace"),
    ("uts_namespace", "UTS namespace"),
    ("network_namespace", "network namespace"),
    ("cgroup_namespace", "cgroup namespace"),
    (
        "mount_api",
        "new mount API (fsopen, fsmount, move_mount) in a user namespace",
    ),
    ("openat2", "openat2 with RESOLVE_BENEATH"),
    ("landlock", "Landlock (filesystem, TCP, scoping)"),
    ("no_new_privs", "PR_SET_NO_NEW_PRIVS"),
    ("seccomp", "seccomp BPF filters"),
    ("seccomp_user_notify", "seccomp user notification"),
    ("pidfd", "pidfd_open"),
];

/// Entry point of a probe process. Never returns.
pub fn probe_main() -> ! {
    let name = std::env::args().nth(2).unwrap_or_default();
    let result = run_probe(&name);
    let (code, line) = match result {
        Ok(detail) => (0, format!("ok {detail}")),
        Err(detail) => (1, format!("no {detail}")),
    };
    // The doctor reads this one line.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), format!("{line}\n").as_bytes());
    sys::exit_now(code)
}

fn errno_text(e: impl Into<std::io::Error>) -> String {
    e.into().to_string()
}

fn enter_user_namespace(extra: UnshareFlags) -> Result<(), String> {
    let (uid, gid) = sys::real_ids();
    sys::unshare_namespaces(UnshareFlags::NEWUSER | extra).map_err(|e| format!("unshare: {e}"))?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| format!("setgroups: {e}"))?;
    std::fs::write("/proc/self/uid_map", format!("1000 {uid} 1\n")).map_err(|e| format!("uid_map: {e}"))?;
    std::fs::write("/proc/self/gid_map", format!("1000 {gid} 1\n")).map_err(|e| format!("gid_map: {e}"))?;
    Ok(())
}

fn seccomp_mode() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
}

fn run_probe(name: &str) -> Result<String, String> {
    match name {
        "user_namespace" => enter_user_namespace(UnshareFlags::empty()).map(|_| "uid and gid mapped".into()),
        "mount_namespace" => enter_user_namespace(UnshareFlags::NEWNS).map(|_| String::new()),
        "pid_namespace" => enter_user_namespace(UnshareFlags::NEWPID).map(|_| String::new()),
        "ipc_namespace" => enter_user_namespace(UnshareFlags::NEWIPC).map(|_| String::new()),
        "uts_namespace" => enter_user_namespace(UnshareFlags::NEWUTS).map(|_| String::new()),
        "network_namespace" => enter_user_namespace(UnshareFlags::NEWNET).map(|_| String::new()),
        "cgroup_namespace" => enter_user_namespace(UnshareFlags::NEWCGROUP).map(|_| String::new()),
        "mount_api" => {
            enter_user_namespace(UnshareFlags::NEWNS)?;
            use rustix::mount::*;
            let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| format!("fsopen: {}", errno_text(e)))?;
            fsconfig_create(fs.as_fd()).map_err(|e| format!("fsconfig: {}", errno_text(e)))?;
            let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
                .map_err(|e| format!("fsmount: {}", errno_text(e)))?;
            sys::mount_setattr(mnt.as_fd(), true, sys::MOUNT_ATTR_RDONLY).map_err(|e| format!("mount_setattr: {e}"))?;
            Ok("fsopen, fsmount, mount_setattr".into())
        }
        "openat2" => {
            let root = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(errno_text)?;
            rustix::fs::openat2(root.as_fd(), "proc", OFlags::PATH, Mode::empty(), ResolveFlags::BENEATH)
                .map_err(errno_text)?;
            Ok(String::new())
        }
        "landlock" => {
            let abi = sys::landlock_abi_version().map_err(|e| format!("not available: {e}"))?;
            let policy = FsPolicy {
                read: vec!["/".into()],
                write: vec![],
                exec: vec![],
                devices: vec![],
                connect_ports: vec![],
            };
            let status = landlock_rules::restrict_self(&policy).map_err(|e| e.to_string())?;
            // Enforced for real: writing anywhere must now fail.
            if std::fs::write("/dev/null", "x").is_ok() {
                return Err(format!("ABI {abi}: a ruleset was accepted but a write was not denied"));
            }
            match status {
                LayerStatus::Enforced => Ok(format!("ABI {abi}, all requested rights enforced")),
                LayerStatus::Partial => Ok(format!("ABI {abi}, partially enforced (older kernel)")),
                LayerStatus::Absent => Err(format!("ABI {abi}, not enforced")),
            }
        }
        "no_new_privs" => {
            rustix::thread::set_no_new_privs(true).map_err(errno_text)?;
            match rustix::thread::no_new_privs() {
                Ok(true) => Ok(String::new()),
                _ => Err("flag did not stick".into()),
            }
        }
        "seccomp" => {
            rustix::thread::set_no_new_privs(true).map_err(errno_text)?;
            let allowlist = seccomp::syscall_filter().map_err(|e| e.to_string())?;
            sys::install_seccomp_filter(&allowlist, false).map_err(errno_text)?;
            // Enforced for real: a denied call must now fail with EPERM.
            match rustix::process::chroot("/") {
                Err(rustix::io::Errno::PERM) if seccomp_mode().as_deref() == Some("2") => Ok("filter mode".into()),
                other => Err(format!("filter installed but chroot gave {other:?}")),
            }
        }
        "seccomp_user_notify" => {
            rustix::thread::set_no_new_privs(true).map_err(errno_text)?;
            match sys::install_seccomp_filter(&seccomp::guard_filter(true), true) {
                Ok(Some(_listener)) => Ok(String::new()),
                Ok(None) => Err("no listener returned".into()),
                Err(e) => Err(e.to_string()),
            }
        }
        "pidfd" => {
            let me = rustix::process::getpid();
            rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).map_err(errno_text)?;
            Ok(String::new())
        }
        other => Err(format!("unknown probe `{other}`")),
    }
}
