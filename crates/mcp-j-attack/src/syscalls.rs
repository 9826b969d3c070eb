//! Calls the seccomp allowlist leaves out or refuses by their arguments: system calls it
//! names as refused (EPERM), calls it does not list at all (ENOSYS, as if the kernel did
//! not have them), personas other than the default, and the terminal line-discipline
//! ioctl. Each call is aimed so that, if the filter let it through, it would change nothing
//! outside the jail (a read of the LDT, a listing of the jail's own mounts, the line
//! discipline of a pty this program opened itself).
//!
//! Each runs in a forked child (see `kernel.rs`), so a filter that killed instead of
//! failing would be reported, and a changed persona dies with the child.

use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::Report;
use crate::kernel::single;
use crate::sys::{self, Errno};

/// Numbers the `libc` crate does not have yet (the same on x86_64 and aarch64, as every
/// call numbered 424 or later).
const SYS_STATMOUNT: libc::c_long = 457;
const SYS_LISTMOUNT: libc::c_long = 458;
const SYS_OPEN_TREE_ATTR: libc::c_long = 467;
/// A number no kernel has given a call yet.
const SYS_UNKNOWN: libc::c_long = 1000;

/// `struct mnt_id_req`, first version (24 bytes), for listmount and statmount.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}
const LSMT_ROOT: u64 = u64::MAX;
const STATMOUNT_SB_BASIC: u64 = 0x1;
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// The calls `syscall NAME` knows; the last two are positive controls.
pub const SYSCALL_NAMES: &[&str] = &[
    "modify-ldt",
    "fanotify-init",
    "memfd-secret",
    "listmount",
    "statmount",
    "open-tree-attr",
    "quotactl-fd",
    "get-mempolicy",
    "unknown",
    "getppid",
];

/// `syscall NAME`: one call, harmless if it worked, reported by its errno.
pub fn syscall(name: &str) -> Report {
    let root = match std::fs::File::open("/") {
        Ok(f) => f,
        Err(e) => return Report::Error(format!("open /: {}", Errno::of(&e))),
    };
    let root_fd = root.as_raw_fd();
    let mut buf = vec![0u8; 4096];
    let (b, blen) = (buf.as_mut_ptr(), buf.len());
    let what = format!("syscall {name}");
    match name {
        // Reads the LDT (func 0): none exists, so it returns 0 bytes.
        #[cfg(target_arch = "x86_64")]
        "modify-ldt" => single(&what, || {
            // SAFETY: reading at most 16 bytes into the 4096-byte buffer.
            sys::raw(unsafe { libc::syscall(libc::SYS_modify_ldt, 0, b, 16usize) })
        }),
        #[cfg(not(target_arch = "x86_64"))]
        "modify-ldt" => Report::Ok("modify_ldt is x86 only".to_owned()),
        // The unprivileged form: notification class, events by file handle.
        "fanotify-init" => single(&what, || {
            const FAN_CLOEXEC: libc::c_uint = 0x1;
            const FAN_REPORT_FID: libc::c_uint = 0x200;
            // SAFETY: integers only.
            sys::raw(unsafe { libc::syscall(libc::SYS_fanotify_init, FAN_CLOEXEC | FAN_REPORT_FID, libc::O_RDONLY) })
        }),
        "memfd-secret" => single(&what, || {
            // SAFETY: integers only.
            sys::raw(unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC) })
        }),
        // Lists the mounts under the jail's root: the jail's own mount table.
        "listmount" => {
            let req = MntIdReq {
                size: 24,
                spare: 0,
                mnt_id: LSMT_ROOT,
                param: 0,
            };
            let r = &req as *const MntIdReq;
            single(&what, || {
                // SAFETY: req is a valid mnt_id_req; the buffer holds blen / 8 ids.
                sys::raw(unsafe { libc::syscall(SYS_LISTMOUNT, r, b, blen / 8, 0) })
            })
        }
        // Describes the mount of `/` (found through statx's unique mount id).
        "statmount" => {
            // SAFETY: statx is plain old data; zeroed is a valid value.
            let mut stx: libc::statx = unsafe { std::mem::zeroed() };
            // SAFETY: a valid path, flags and out-pointer.
            let r = unsafe { libc::statx(libc::AT_FDCWD, c"/".as_ptr(), 0, STATX_MNT_ID_UNIQUE, &mut stx) };
            if r != 0 {
                return Report::Error(format!("statx /: {}", Errno::last()));
            }
            let req = MntIdReq {
                size: 24,
                spare: 0,
                mnt_id: stx.stx_mnt_id,
                param: STATMOUNT_SB_BASIC,
            };
            let r = &req as *const MntIdReq;
            single(&what, || {
                // SAFETY: req is a valid mnt_id_req; the buffer is blen bytes.
                sys::raw(unsafe { libc::syscall(SYS_STATMOUNT, r, b, blen, 0) })
            })
        }
        // Without OPEN_TREE_CLONE and attributes it is open_tree: an O_PATH fd of `/`.
        "open-tree-attr" => single(&what, || {
            // SAFETY: a valid path; a null attribute pointer with size 0.
            sys::raw(unsafe {
                libc::syscall(
                    SYS_OPEN_TREE_ATTR,
                    libc::AT_FDCWD,
                    c"/".as_ptr(),
                    libc::O_CLOEXEC,
                    std::ptr::null::<u8>(),
                    0usize,
                )
            })
        }),
        // Q_GETFMT for user quotas on the filesystem of `/`: reads one u32.
        "quotactl-fd" => single(&what, || {
            const Q_GETFMT_USRQUOTA: libc::c_uint = 0x8000_0400; // QCMD(Q_GETFMT, USRQUOTA)
            // SAFETY: the command writes 4 bytes into the buffer.
            sys::raw(unsafe { libc::syscall(libc::SYS_quotactl_fd, root_fd, Q_GETFMT_USRQUOTA, 0, b) })
        }),
        // A call every kernel has and the allowlist leaves out: the kernel alone would
        // answer 0 (the default policy).
        "get-mempolicy" => single(&what, || {
            let null = std::ptr::null_mut::<u8>();
            // SAFETY: null pointers ask for nothing back.
            sys::raw(unsafe { libc::syscall(libc::SYS_get_mempolicy, null, null, 0usize, null, 0usize) })
        }),
        "unknown" => single(&what, || {
            // SAFETY: integers only; no kernel has this number.
            sys::raw(unsafe { libc::syscall(SYS_UNKNOWN, 0, 0, 0) })
        }),
        "getppid" => single(&what, || {
            // SAFETY: no arguments.
            sys::raw(unsafe { libc::syscall(libc::SYS_getppid) })
        }),
        _ => Report::Error(format!("unknown call `{name}`; known: {}", SYSCALL_NAMES.join(" "))),
    }
}

/// `personality PERSONA`: set (or, for `query`, read) the execution domain.
pub fn personality(persona: &str) -> Report {
    let value: libc::c_ulong = match persona {
        "read-implies-exec" => 0x0040_0000,
        "addr-no-randomize" => 0x0004_0000,
        "linux32" => 0x0008,
        "linux" => 0,
        "query" => 0xffff_ffff,
        _ => {
            return Report::Error(format!(
                "unknown persona `{persona}` (read-implies-exec addr-no-randomize linux32 linux query)"
            ));
        }
    };
    single(&format!("personality {persona}"), || {
        // SAFETY: integers only; the child exits right after.
        sys::raw(unsafe { libc::syscall(libc::SYS_personality, value) })
    })
}

/// The descriptor the ioctl attacks use: a pty master this program opens itself when the
/// jail has `/dev/ptmx`, else `/dev/null` (where the kernel alone would answer ENOTTY, so
/// EPERM can only come from the filter).
fn own_terminal() -> Result<(std::fs::File, &'static str), Report> {
    let open = |path: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
    };
    match open("/dev/ptmx") {
        Ok(f) => Ok((f, "a pty of its own")),
        Err(_) => match open("/dev/null") {
            Ok(f) => Ok((f, "/dev/null (no /dev/ptmx in the jail)")),
            Err(e) => Err(Report::Error(format!("open /dev/null: {}", Errno::of(&e)))),
        },
    }
}

/// `tiocsetd`: switch the line discipline to N_TTY (the one every terminal already has,
/// so success changes nothing) on [`own_terminal`].
pub fn tiocsetd() -> Report {
    let (file, which) = match own_terminal() {
        Ok(t) => t,
        Err(r) => return r,
    };
    let fd = file.as_raw_fd();
    let ldisc: libc::c_int = 0; // N_TTY
    let p = &ldisc as *const libc::c_int;
    single(&format!("ioctl TIOCSETD on {which}"), || {
        // SAFETY: TIOCSETD reads one int through p.
        sys::raw(unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::TIOCSETD as libc::c_ulong, p) })
    })
}

/// `ioctl-fionbio` (a positive control): an ordinary ioctl on the same kind of descriptor,
/// FIONBIO, which every file accepts.
pub fn ioctl_fionbio() -> Report {
    let (file, which) = match own_terminal() {
        Ok(t) => t,
        Err(r) => return r,
    };
    let fd = file.as_raw_fd();
    let on: libc::c_int = 1;
    let p = &on as *const libc::c_int;
    single(&format!("ioctl FIONBIO on {which}"), || {
        // SAFETY: FIONBIO reads one int through p.
        sys::raw(unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::FIONBIO as libc::c_ulong, p) })
    })
}

/// `ioctl-socket REQUEST`: an interface query on an ordinary UDP socket, for `lo`.
/// `gifmetric` (SIOCGIFMETRIC) is one the kernel answers for anyone and the allowlist
/// leaves out; `gifindex` (SIOCGIFINDEX, what `if_nametoindex` uses) is allowed.
pub fn ioctl_socket(request: &str) -> Report {
    let req: libc::c_ulong = match request {
        "gifmetric" => 0x891d,
        "gifindex" => 0x8933,
        _ => return Report::Error(format!("unknown request `{request}` (gifmetric gifindex)")),
    };
    // SAFETY: socket takes integers only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Report::Error(format!("socket: {}", Errno::last()));
    }
    // struct ifreq: the interface name, then a 24-byte union for the answer.
    let mut ifreq = [0u8; 40];
    ifreq[..2].copy_from_slice(b"lo");
    let p = ifreq.as_mut_ptr();
    let report = single(&format!("ioctl {request} on a socket"), || {
        // SAFETY: both requests read and write one struct ifreq, which p points to.
        sys::raw(unsafe { libc::syscall(libc::SYS_ioctl, fd, req, p) })
    });
    sys::close(fd);
    report
}
