//! Attacks on the kernel's wider surface, most of which the sandbox's seccomp filter must
//! refuse with EPERM: namespaces, the mount API, keyrings, BPF, perf, io_uring,
//! userfaultfd, terminal-injection ioctls, handle-based opens, and syscall-number tricks
//! (x32 numbers, the i386 `int 0x80` entry, ioctl commands with high bits set).
//!
//! Each syscall runs in a forked child, so a filter that kills instead of failing is
//! reported (as the signal's name) rather than taking the reporter with it, and a call
//! that changes process state (unshare, chroot, setns) does not outlive the probe.

use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::Report;
use crate::sys::{self, ChildEnd, Errno};

/// How long one syscall in a child may take.
const STEP_BOUND: Duration = Duration::from_secs(10);

/// A path that exists nowhere: the mount-family probes aim at it, so that if the filter
/// lets them through, the kernel fails them on the path instead of changing any mount.
const NOWHERE: &CStr = c"/nonexistent-mcp-j-attack";

/// Runs one syscall step in a child: `Ok(detail)` if it succeeded, else its errno (or the
/// signal that killed the child).
pub(crate) fn attempt(step: impl FnOnce() -> i64) -> Result<String, Errno> {
    match sys::in_child(step, STEP_BOUND) {
        Ok(ChildEnd::Returned(r)) if r < 0 => Err(Errno(-r as i32)),
        Ok(ChildEnd::Returned(r)) => Ok(format!("returned {r}")),
        Ok(ChildEnd::Signaled(sig)) => Err(Errno::killed_by(sig)),
        Ok(ChildEnd::Exited(code)) => Ok(format!("child exited {code}")),
        Ok(ChildEnd::TimedOut) => Err(Errno(libc::ETIMEDOUT)),
        Err(e) => Err(Errno(if e.contains("EAGAIN") { libc::EAGAIN } else { libc::EIO })),
    }
}

pub(crate) fn single(what: &str, step: impl FnOnce() -> i64) -> Report {
    Report::all(vec![(what.to_owned(), attempt(step))])
}

/// The namespace kinds: the clone flag and the name under `/proc/self/ns`.
fn namespace(ns: &str) -> Option<(libc::c_int, &'static str)> {
    const CLONE_NEWTIME: libc::c_int = 0x80;
    Some(match ns {
        "user" => (libc::CLONE_NEWUSER, "user"),
        "mount" | "mnt" => (libc::CLONE_NEWNS, "mnt"),
        "net" => (libc::CLONE_NEWNET, "net"),
        "pid" => (libc::CLONE_NEWPID, "pid"),
        "ipc" => (libc::CLONE_NEWIPC, "ipc"),
        "uts" => (libc::CLONE_NEWUTS, "uts"),
        "cgroup" => (libc::CLONE_NEWCGROUP, "cgroup"),
        "time" => (CLONE_NEWTIME, "time"),
        _ => return None,
    })
}

fn unknown_ns(ns: &str) -> Report {
    Report::Error(format!(
        "unknown namespace `{ns}` (user mount net pid ipc uts cgroup time)"
    ))
}

/// `io_uring_setup`.
pub fn io_uring() -> Report {
    // struct io_uring_params is 120 bytes; zeroed asks for defaults.
    let mut params = [0u8; 120];
    let p = params.as_mut_ptr();
    single("io_uring_setup", || {
        // SAFETY: params is a zeroed buffer of io_uring_params' size, writable.
        sys::raw(unsafe { libc::syscall(libc::SYS_io_uring_setup, 8u32, p) })
    })
}

/// `unshare(CLONE_NEW<NS>)`.
pub fn unshare(ns: &str) -> Report {
    let Some((flag, _)) = namespace(ns) else {
        return unknown_ns(ns);
    };
    single(&format!("unshare {ns}"), || {
        // SAFETY: unshare takes flags only.
        sys::raw(unsafe { libc::syscall(libc::SYS_unshare, flag as libc::c_ulong) })
    })
}

/// The raw `clone` syscall with `CLONE_NEW<NS>`: the flags are in a register, so a filter
/// must check them here too, not only in unshare.
pub fn clone_ns(ns: &str) -> Report {
    let Some((flag, _)) = namespace(ns) else {
        return unknown_ns(ns);
    };
    let flags = (flag | libc::SIGCHLD) as libc::c_ulong;
    single(&format!("clone {ns}"), || {
        // SAFETY: clone without CLONE_VM and with a null stack behaves like fork; the new
        // child exits at once without touching shared state.
        let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        finish_fork_like(r)
    })
}

/// After a fork-like `clone`/`clone3` returned `r`: the new child leaves at once, the
/// parent reaps it and reports the call's result.
fn finish_fork_like(r: libc::c_long) -> i64 {
    if r == 0 {
        // SAFETY: leaving the grandchild immediately.
        unsafe { libc::_exit(0) };
    }
    let ret = sys::raw(r);
    if r > 0 {
        let mut status = 0;
        // SAFETY: reaping the grandchild we just made.
        unsafe { libc::waitpid(r as libc::pid_t, &mut status, 0) };
    }
    ret
}

/// `clone3` with `CLONE_NEW<NS>`: its flags are behind a pointer that seccomp cannot read,
/// so a sandbox must refuse clone3 as a whole (ENOSYS makes libc fall back to clone).
pub fn clone3_ns(ns: &str) -> Report {
    let Some((flag, _)) = namespace(ns) else {
        return unknown_ns(ns);
    };
    // struct clone_args, version 0 (64 bytes): flags, pidfd, child_tid, parent_tid,
    // exit_signal, stack, stack_size, tls.
    let mut args = [0u64; 8];
    args[0] = flag as u64;
    args[4] = libc::SIGCHLD as u64;
    let ptr = args.as_ptr();
    single(&format!("clone3 {ns}"), || {
        // SAFETY: ptr points to a clone_args of the stated size; without CLONE_VM and with
        // no stack this behaves like fork; the new child exits at once.
        let r = unsafe { libc::syscall(libc::SYS_clone3, ptr, 64usize) };
        finish_fork_like(r)
    })
}

/// `setns` into one of our own namespaces (`/proc/self/ns/<NS>`): the kernel alone would
/// answer EINVAL or EPERM; the filter answers EPERM first.
pub fn setns(ns: &str) -> Report {
    let Some((_, name)) = namespace(ns) else {
        return unknown_ns(ns);
    };
    let path = format!("/proc/self/ns/{name}");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => return Report::Error(format!("open {path}: {}", Errno::of(&e))),
    };
    let fd = file.as_raw_fd();
    single(&format!("setns {path}"), || {
        // SAFETY: setns takes an fd and flags.
        sys::raw(unsafe { libc::syscall(libc::SYS_setns, fd, 0) })
    })
}

/// The mount family. KIND: tmpfs, bind (each on a fresh directory, unmounted at once if
/// it worked), remount-rw PATH (restored read-only if it worked), fsopen, open-tree,
/// move-mount, mount-setattr, umount, pivot-root (aimed at a path that does not exist),
/// chroot (in a child).
pub fn mount(kind: &str, path: Option<&str>) -> Report {
    match kind {
        "tmpfs" | "bind" => mount_fresh(kind),
        "remount-rw" => {
            let Some(path) = path else {
                return Report::Error("`mount remount-rw` needs PATH".to_owned());
            };
            let Ok(cpath) = sys::cstring(path) else {
                return Report::Error("bad path".to_owned());
            };
            let p = cpath.as_ptr();
            single(&format!("remount {path} read-write"), || {
                let null = std::ptr::null::<libc::c_char>();
                // SAFETY: p is NUL-terminated; source, type and data may be null for a
                // remount. If it worked, put the read-only flag back.
                unsafe {
                    let r = libc::mount(null, p, null, libc::MS_REMOUNT | libc::MS_BIND, std::ptr::null());
                    let ret = sys::raw(r.into());
                    if r == 0 {
                        libc::mount(
                            null,
                            p,
                            null,
                            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                            std::ptr::null(),
                        );
                    }
                    ret
                }
            })
        }
        "fsopen" => single("fsopen tmpfs", || {
            const FSOPEN_CLOEXEC: libc::c_uint = 1;
            // SAFETY: the name is NUL-terminated; the fd, if any, dies with the child.
            sys::raw(unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) })
        }),
        "open-tree" => single("open_tree / OPEN_TREE_CLONE", || {
            const OPEN_TREE_CLONE: libc::c_uint = 1;
            let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
            // SAFETY: the path is NUL-terminated; a detached clone dies with the child.
            sys::raw(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), flags) })
        }),
        "move-mount" => single("move_mount", || {
            const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
            // SAFETY: both paths are NUL-terminated; the source fd is invalid on purpose.
            sys::raw(unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    -1,
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    NOWHERE.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                )
            })
        }),
        "mount-setattr" => {
            // struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
            const MOUNT_ATTR_RDONLY: u64 = 1;
            let attr = [0, MOUNT_ATTR_RDONLY, 0, 0u64];
            let a = attr.as_ptr();
            single("mount_setattr (clear read-only)", || {
                // SAFETY: the path is NUL-terminated; a points to a mount_attr of 32 bytes.
                sys::raw(unsafe {
                    libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        NOWHERE.as_ptr(),
                        0u32,
                        a,
                        32usize,
                    )
                })
            })
        }
        "umount" => single("umount2", || {
            // SAFETY: the path is NUL-terminated and names nothing.
            sys::raw(unsafe { libc::umount2(NOWHERE.as_ptr(), libc::MNT_DETACH) }.into())
        }),
        "pivot-root" => single("pivot_root", || {
            // SAFETY: both paths are NUL-terminated and name nothing.
            sys::raw(unsafe { libc::syscall(libc::SYS_pivot_root, NOWHERE.as_ptr(), NOWHERE.as_ptr()) })
        }),
        "chroot" => single("chroot /tmp", || {
            // SAFETY: the path is NUL-terminated; the chroot, if any, dies with the child.
            sys::raw(unsafe { libc::chroot(c"/tmp".as_ptr()) }.into())
        }),
        _ => Report::Error(format!("unknown mount kind `{kind}`")),
    }
}

/// Mounts a tmpfs (or binds `/`) on a fresh directory in /tmp; unmounts at once if it
/// worked.
fn mount_fresh(kind: &str) -> Report {
    let dir = format!("/tmp/mcp-j-attack-mnt-{}", std::process::id());
    if let Err(e) = std::fs::create_dir(&dir) {
        return Report::Error(format!("mkdir {dir}: {}", Errno::of(&e)));
    }
    let Ok(cdir) = sys::cstring(&dir) else {
        return Report::Error("bad path".to_owned());
    };
    let d = cdir.as_ptr();
    let bind = kind == "bind";
    let report = single(&format!("mount {kind} on {dir}"), || {
        // SAFETY: all strings are NUL-terminated; if the mount worked it is detached
        // again before the child exits.
        unsafe {
            let r = if bind {
                libc::mount(
                    c"/".as_ptr(),
                    d,
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            } else {
                libc::mount(
                    c"tmpfs".as_ptr(),
                    d,
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=1m".as_ptr().cast(),
                )
            };
            let ret = sys::raw(r.into());
            if r == 0 {
                libc::umount2(d, libc::MNT_DETACH);
            }
            ret
        }
    });
    let _ = std::fs::remove_dir(&dir);
    report
}

/// The keyring syscalls: add_key, keyctl(JOIN_SESSION_KEYRING), request_key.
pub fn keyctl() -> Report {
    const KEY_SPEC_PROCESS_KEYRING: libc::c_int = -2;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let results = vec![
        (
            "add_key".to_owned(),
            attempt(|| {
                // SAFETY: all strings are NUL-terminated; the payload is 1 byte long.
                sys::raw(unsafe {
                    libc::syscall(
                        libc::SYS_add_key,
                        c"user".as_ptr(),
                        c"mcp-j-attack".as_ptr(),
                        c"x".as_ptr(),
                        1usize,
                        KEY_SPEC_PROCESS_KEYRING,
                    )
                })
            }),
        ),
        (
            "keyctl join".to_owned(),
            attempt(|| {
                // SAFETY: the keyring name is NUL-terminated.
                sys::raw(unsafe {
                    libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c"mcp-j-attack".as_ptr())
                })
            }),
        ),
        (
            "request_key".to_owned(),
            attempt(|| {
                // SAFETY: the strings are NUL-terminated; no callout info.
                sys::raw(unsafe {
                    libc::syscall(
                        libc::SYS_request_key,
                        c"user".as_ptr(),
                        c"mcp-j-attack".as_ptr(),
                        std::ptr::null::<libc::c_char>(),
                        0,
                    )
                })
            }),
        ),
    ];
    Report::all(results)
}

/// `bpf(BPF_MAP_CREATE)` for a one-entry array and `bpf(BPF_PROG_LOAD)` of a two
/// instruction socket filter (`r0 = 0; exit`).
pub fn bpf() -> Report {
    const BPF_MAP_CREATE: libc::c_int = 0;
    const BPF_PROG_LOAD: libc::c_int = 5;
    // union bpf_attr, map create: map_type, key_size, value_size, max_entries.
    let mut map_attr = [0u8; 128];
    for (i, v) in [2u32, 4, 4, 1].iter().enumerate() {
        map_attr[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    // Instructions: BPF_ALU64|BPF_MOV|BPF_K r0 = 0 (0xb7), BPF_JMP|BPF_EXIT (0x95).
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    // union bpf_attr, prog load: prog_type, insn_cnt, insns, license.
    let mut prog_attr = [0u8; 128];
    prog_attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    prog_attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    prog_attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    prog_attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    let (map_ptr, prog_ptr) = (map_attr.as_ptr(), prog_attr.as_ptr());
    let results = vec![
        (
            "bpf map create".to_owned(),
            attempt(|| {
                // SAFETY: map_ptr points to a 128-byte bpf_attr, zero past its fields.
                sys::raw(unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, map_ptr, 128u32) })
            }),
        ),
        (
            "bpf prog load".to_owned(),
            attempt(|| {
                // SAFETY: prog_ptr points to a 128-byte bpf_attr whose pointers (insns,
                // license) stay valid in the child's copy of this stack frame.
                sys::raw(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, prog_ptr, 128u32) })
            }),
        ),
    ];
    Report::all(results)
}

/// `perf_event_open` of a software CPU clock counter on this process.
pub fn perf_event() -> Report {
    // struct perf_event_attr, first version (64 bytes): type, size, config, …, flags.
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&64u32.to_ne_bytes()); // size
    attr[8..16].copy_from_slice(&0u64.to_ne_bytes()); // PERF_COUNT_SW_CPU_CLOCK
    // flags at offset 40: disabled (bit 0), exclude_kernel (bit 5), exclude_hv (bit 6).
    attr[40..48].copy_from_slice(&(1u64 | 1 << 5 | 1 << 6).to_ne_bytes());
    let a = attr.as_ptr();
    single("perf_event_open", || {
        // SAFETY: a points to a perf_event_attr of the size it declares.
        sys::raw(unsafe { libc::syscall(libc::SYS_perf_event_open, a, 0, -1, -1, 0u64) })
    })
}

/// The `userfaultfd` syscall.
pub fn userfaultfd() -> Report {
    single("userfaultfd", || {
        // SAFETY: userfaultfd takes flags only.
        sys::raw(unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) })
    })
}

/// `ioctl(FD, KIND)`: TIOCSTI (push a byte into a terminal's input) and TIOCLINUX (the
/// virtual console's grab bag), also with bits above 32 set in the command: the kernel
/// truncates the command to 32 bits, so a filter comparing all 64 would miss them. FD is a
/// number or `null` (a fresh `/dev/null`): the filter must refuse whatever the fd is.
pub fn ioctl(kind: &str, fd: &str) -> Report {
    let held;
    let fd: libc::c_int = if fd == "null" {
        held = match std::fs::File::open("/dev/null") {
            Ok(f) => f,
            Err(e) => return Report::Error(format!("open /dev/null: {}", Errno::of(&e))),
        };
        held.as_raw_fd()
    } else {
        match fd.parse() {
            Ok(n) if n >= 0 => n,
            _ => return Report::Error(format!("`{fd}` is not an fd")),
        }
    };
    // libc::Ioctl is c_ulong with glibc and c_int with musl.
    #[allow(clippy::unnecessary_cast)]
    let (tiocsti, tioclinux) = (libc::TIOCSTI as u64, libc::TIOCLINUX as u64);
    let (cmd, arg): (u64, u8) = match kind {
        "tiocsti" => (tiocsti, b' '),
        "tioclinux" => (tioclinux, 6), // TIOCL_GETSHIFTSTATE: read-only
        "tiocsti-highbits" => (1 << 32 | tiocsti, b' '),
        "tioclinux-highbits" => (1 << 32 | tioclinux, 6),
        _ => return Report::Error(format!("unknown ioctl `{kind}`")),
    };
    let mut byte = arg;
    let p = &mut byte as *mut u8;
    single(&format!("ioctl {kind} on fd {fd}"), || {
        // SAFETY: both commands take a pointer to one byte, which p is.
        sys::raw(unsafe { libc::syscall(libc::SYS_ioctl, fd, cmd, p) })
    })
}

/// `open_by_handle_at` with a forged handle for inode 2 (the root of ext4), the
/// "shocker" escape from containers.
pub fn open_by_handle_at() -> Report {
    let root = match std::fs::File::open("/") {
        Ok(f) => f,
        Err(e) => return Report::Error(format!("open /: {}", Errno::of(&e))),
    };
    // struct file_handle: handle_bytes, handle_type (FILEID_INO32_GEN), f_handle[8].
    let mut handle = [0u8; 16];
    handle[0..4].copy_from_slice(&8u32.to_ne_bytes());
    handle[4..8].copy_from_slice(&1i32.to_ne_bytes());
    handle[8..12].copy_from_slice(&2u32.to_ne_bytes());
    let h = handle.as_ptr();
    let mount_fd = root.as_raw_fd();
    single("open_by_handle_at", || {
        // SAFETY: h points to a file_handle of 8 + handle_bytes bytes.
        sys::raw(unsafe { libc::syscall(libc::SYS_open_by_handle_at, mount_fd, h, libc::O_RDONLY) })
    })
}

fn utsname() -> Option<libc::utsname> {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid out-pointer.
    (unsafe { libc::uname(&mut uts) } == 0).then_some(uts)
}

/// The host name the kernel reports.
pub fn nodename() -> Option<String> {
    let uts = utsname()?;
    // SAFETY: uname NUL-terminates nodename inside the array.
    let name = unsafe { CStr::from_ptr(uts.nodename.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `sethostname` and `setdomainname`, each to its current value: an escape if allowed, but
/// one that changes nothing.
pub fn sethostname() -> Report {
    let Some(uts) = utsname() else {
        return Report::Error(format!("uname: {}", Errno::last()));
    };
    // SAFETY: uname NUL-terminates both fields inside their arrays.
    let (node, domain) = unsafe {
        (
            CStr::from_ptr(uts.nodename.as_ptr()),
            CStr::from_ptr(uts.domainname.as_ptr()),
        )
    };
    let (np, nl) = (node.as_ptr(), node.to_bytes().len());
    let (dp, dl) = (domain.as_ptr(), domain.to_bytes().len());
    Report::all(vec![
        (
            "sethostname".to_owned(),
            attempt(|| {
                // SAFETY: np points to nl bytes of the current host name.
                sys::raw(unsafe { libc::syscall(libc::SYS_sethostname, np, nl) })
            }),
        ),
        (
            "setdomainname".to_owned(),
            attempt(|| {
                // SAFETY: dp points to dl bytes of the current domain name.
                sys::raw(unsafe { libc::syscall(libc::SYS_setdomainname, dp, dl) })
            }),
        ),
    ])
}

/// Becoming root: setresuid(0,0,0), setresgid(0,0,0), `setgroups([0])`.
pub fn setuid() -> Report {
    let groups: [libc::gid_t; 1] = [0];
    let g = groups.as_ptr();
    Report::all(vec![
        (
            "setresuid 0".to_owned(),
            attempt(|| {
                // SAFETY: plain integer arguments.
                sys::raw(unsafe { libc::syscall(libc::SYS_setresuid, 0, 0, 0) })
            }),
        ),
        (
            "setresgid 0".to_owned(),
            attempt(|| {
                // SAFETY: plain integer arguments.
                sys::raw(unsafe { libc::syscall(libc::SYS_setresgid, 0, 0, 0) })
            }),
        ),
        (
            "setgroups [0]".to_owned(),
            attempt(|| {
                // SAFETY: g points to one gid.
                sys::raw(unsafe { libc::syscall(libc::SYS_setgroups, 1, g) })
            }),
        ),
    ])
}

/// `unshare(CLONE_NEWUSER)` through its x32 syscall number (`0x40000000 | nr`), which a
/// filter that only checks the architecture would not recognise. ENOSYS means the kernel
/// has no x32 support (so the trick cannot work here either).
pub fn x32_syscall() -> Report {
    #[cfg(target_arch = "x86_64")]
    {
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        single("x32 unshare user", || {
            // SAFETY: unshare takes flags only.
            sys::raw(unsafe {
                libc::syscall(
                    X32_SYSCALL_BIT | libc::SYS_unshare,
                    libc::CLONE_NEWUSER as libc::c_ulong,
                )
            })
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Report::Error("x32 exists only on x86_64".to_owned())
    }
}

/// `unshare(CLONE_NEWUSER)` through the i386 entry (`int 0x80`, syscall 310), which a
/// filter must reject by architecture. ENOSYS means no ia32 emulation.
pub fn int80_syscall() -> Report {
    #[cfg(target_arch = "x86_64")]
    {
        const I386_UNSHARE: u32 = 310;
        single("int 0x80 unshare user", || {
            let ret: i32;
            // SAFETY: the i386 syscall entry reads eax and ebx and returns in eax; it may
            // clobber r8-r11. rbx is reserved by the compiler, so it is saved around the
            // call on the stack (the asm may use the stack: no `nostack`).
            unsafe {
                core::arch::asm!(
                    "push rbx",
                    "mov ebx, {flags:e}",
                    "int 0x80",
                    "pop rbx",
                    flags = in(reg) libc::CLONE_NEWUSER as u32,
                    inlateout("eax") I386_UNSHARE => ret,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                );
            }
            i64::from(ret)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Report::Error("int 0x80 exists only on x86_64".to_owned())
    }
}

/// Raising hard limits above their values (NOFILE, NPROC, AS, FSIZE): needs
/// CAP_SYS_RESOURCE. Unlimited ones are left out.
pub fn raise_limits() -> Report {
    let mut results = Vec::new();
    for (name, res) in [
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ] {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: lim is a valid out-pointer.
        if unsafe { libc::getrlimit(res, &mut lim) } != 0 || lim.rlim_max == libc::RLIM_INFINITY {
            continue;
        }
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max + 1,
            rlim_max: lim.rlim_max + 1,
        };
        // SAFETY: raised is a valid in-pointer; the child exits right after.
        let result = attempt(|| sys::raw(unsafe { libc::setrlimit(res, &raised) }.into()));
        results.push((format!("{name} above {}", lim.rlim_max), result));
    }
    if results.is_empty() {
        return Report::Error("no finite hard limit to raise".to_owned());
    }
    Report::all(results)
}

/// Scheduling above others: SCHED_FIFO (a real-time busy loop owns a core), a negative
/// nice value, the real-time I/O class. Each in a child that exits at once.
pub fn sched() -> Report {
    let param = libc::sched_param { sched_priority: 1 };
    let p = &param as *const libc::sched_param;
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_RT: libc::c_int = 1 << 13;
    Report::all(vec![
        (
            "sched_setscheduler FIFO".to_owned(),
            // SAFETY: p points to a sched_param.
            attempt(|| sys::raw(unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, p) }.into())),
        ),
        (
            "setpriority -5".to_owned(),
            // SAFETY: plain integer arguments.
            attempt(|| sys::raw(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -5) }.into())),
        ),
        (
            "ioprio_set RT".to_owned(),
            // SAFETY: plain integer arguments.
            attempt(|| sys::raw(unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_RT) })),
        ),
    ])
}

/// `clock_settime(CLOCK_REALTIME)` to the time it is: the host's clock is not namespaced.
pub fn settime() -> Report {
    single("clock_settime REALTIME", || {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: now is a valid out-pointer, then in-pointer.
        unsafe {
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
            sys::raw(libc::clock_settime(libc::CLOCK_REALTIME, &now).into())
        }
    })
}

/// `syslog(SYSLOG_ACTION_READ_ALL)`: the host kernel's log.
pub fn syslog() -> Report {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf is a writable buffer of the length passed.
    let n = unsafe { libc::syscall(libc::SYS_syslog, SYSLOG_ACTION_READ_ALL, buf.as_mut_ptr(), buf.len()) };
    match sys::check(n) {
        Ok(0) => Report::Denied("empty (syslog READ_ALL returned nothing)".to_owned()),
        Ok(n) => Report::Escaped(format!("read {n} bytes of the kernel log")),
        Err(e) => Report::Denied(format!("{e} (syslog READ_ALL)")),
    }
}
