//! Facts rather than attacks: what the process looks like from inside (`status`, `env`,
//! `uname`) and which isolation features the kernel offers (`features`, harmless to run on
//! the host: it only asks).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Report;
use crate::sys::{self, ChildEnd, Errno};

/// The `/proc/self/status` lines the tests look at.
const STATUS_KEYS: &[&str] = &[
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

/// `ok: {json}` with the [`STATUS_KEYS`] of `/proc/self/status` (whitespace collapsed),
/// plus `pid`, `ppid` and `cwd`.
pub fn status() -> Report {
    let text = match std::fs::read_to_string("/proc/self/status") {
        Ok(t) => t,
        Err(e) => return Report::Error(format!("read /proc/self/status: {}", Errno::of(&e))),
    };
    let mut map = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':')
            && STATUS_KEYS.contains(&key)
        {
            let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
            map.insert(key.to_owned(), Value::String(value));
        }
    }
    map.insert("pid".to_owned(), json!(std::process::id()));
    // SAFETY: getppid has no preconditions.
    map.insert("ppid".to_owned(), json!(unsafe { libc::getppid() }));
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("? ({})", Errno::of(&e)));
    map.insert("cwd".to_owned(), json!(cwd));
    Report::Ok(Value::Object(map.into_iter().collect()).to_string())
}

/// `ok: {json}`: the whole environment.
pub fn env() -> Report {
    let map: serde_json::Map<String, Value> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                Value::String(v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    Report::Ok(Value::Object(map).to_string())
}

/// `ok: nodename=<name>`.
pub fn uname() -> Report {
    match crate::kernel::nodename() {
        Some(n) => Report::Ok(format!("nodename={n}")),
        None => Report::Error(format!("uname: {}", Errno::last())),
    }
}

/// `ok: {json}`: whether this process could create a user namespace (tried in a child),
/// the Landlock ABI version (0 if none), whether seccomp filters are available, and the
/// uid it ran as.
pub fn features() -> Report {
    let userns = sys::in_child(
        || {
            // SAFETY: unshare takes flags only; the child exits right after.
            sys::raw(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER as libc::c_ulong) })
        },
        Duration::from_secs(10),
    );
    let (userns_ok, userns_err) = match userns {
        Ok(ChildEnd::Returned(0)) => (true, None),
        Ok(ChildEnd::Returned(r)) if r < 0 => (false, Some(Errno(-r as i32).name())),
        other => (false, Some(format!("{other:?}"))),
    };
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no attribute (null, size 0).
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    let landlock_err = (abi < 0).then(|| Errno::last().name());
    const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let action = SECCOMP_RET_ERRNO;
    // SAFETY: the query reads one u32 through the pointer, which points to `action`.
    let seccomp =
        unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0u32, &action as *const u32) } == 0;
    Report::Ok(
        json!({
            "userns": userns_ok,
            "userns_error": userns_err,
            "landlock_abi": abi.max(0),
            "landlock_error": landlock_err,
            "seccomp": seccomp,
            // SAFETY: geteuid has no preconditions.
            "euid": unsafe { libc::geteuid() },
        })
        .to_string(),
    )
}
