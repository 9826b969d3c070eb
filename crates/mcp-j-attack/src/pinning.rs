//! Pinning kernel memory that no process's own memory counts: memfds filled with
//! `write`, SysV shared memory segments, unix socket buffers; and the per-user inotify
//! instances. Every loop stops at a cap in MiB (at most [`MAX_PIN_MIB`]) and after
//! [`PIN_TIME`].
//!
//! Reports: `denied: <ERRNO> at <N> MiB` when the kernel stopped the attack (N pinned
//! before), `escaped: pinned <N> MiB` when the cap was reached. A memory cgroup may kill
//! the process instead (no line, exit 137).

use std::time::{Duration, Instant};

use crate::Report;
use crate::sys::Errno;

/// The most any pinning attack takes, whatever it is asked.
const MAX_PIN_MIB: usize = 512;
/// How long a pinning attack keeps going.
const PIN_TIME: Duration = Duration::from_secs(60);
/// How many inotify instances the inotify attack tries at most.
const MAX_INOTIFY: usize = 1024;

const MIB: usize = 1 << 20;
/// `MFD_NOEXEC_SEAL` (Linux 6.3): the jail refuses executable memfds, not these.
const MFD_NOEXEC_SEAL: libc::c_uint = 0x0008;

fn cap(max: &str) -> Result<usize, Report> {
    max.parse::<usize>()
        .map(|m| m.min(MAX_PIN_MIB))
        .map_err(|_| Report::Error("MAX_MIB is not a number".to_owned()))
}

fn stopped(e: Errno, mib: usize) -> Report {
    Report::Denied(format!("{e} at {mib} MiB"))
}

/// Writes 1 MiB blocks into memfds up to `max` MiB. With `one_file`, into a single memfd
/// (what `RLIMIT_FSIZE` bounds); else a new memfd whenever one refuses to grow (`EFBIG`),
/// so only an aggregate limit stops it.
pub fn memfd(max: &str, one_file: bool) -> Report {
    let max = match cap(max) {
        Ok(m) => m,
        Err(r) => return r,
    };
    // SIGXFSZ would kill us at the per-file limit; a program that wants more ignores it.
    // SAFETY: setting a signal's disposition to ignore.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let block = vec![0x5au8; MIB];
    let start = Instant::now();
    let mut mib = 0usize;
    let mut fd = -1;
    let mut fds = Vec::new();
    while mib < max {
        if start.elapsed() > PIN_TIME {
            return Report::Error(format!("gave up after {PIN_TIME:?} at {mib} MiB"));
        }
        if fd < 0 {
            // SAFETY: a NUL-terminated name and no flags that touch existing memory.
            fd = unsafe { libc::memfd_create(c"pin".as_ptr(), libc::MFD_CLOEXEC | MFD_NOEXEC_SEAL) };
            if fd < 0 {
                return stopped(Errno::last(), mib);
            }
            fds.push(fd);
        }
        // SAFETY: writing from a live buffer of MIB bytes.
        let n = unsafe { libc::write(fd, block.as_ptr().cast(), MIB) };
        if n < 0 {
            let e = Errno::last();
            if e.0 == libc::EFBIG && !one_file {
                fd = -1;
                continue;
            }
            return stopped(e, mib);
        }
        if (n as usize) < MIB {
            // A short write: the next one says why.
            continue;
        }
        mib += 1;
    }
    Report::Escaped(format!("pinned {mib} MiB in {} memfds", fds.len()))
}

/// Creates SysV shared memory segments of up to 16 MiB, touches every page and detaches,
/// keeping the segments (they outlive every attachment), up to `max` MiB.
pub fn sysv_shm(max: &str) -> Report {
    let max = match cap(max) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let start = Instant::now();
    let mut mib = 0usize;
    while mib < max {
        if start.elapsed() > PIN_TIME {
            return Report::Error(format!("gave up after {PIN_TIME:?} at {mib} MiB"));
        }
        let size_mib = (max - mib).min(16);
        let size = size_mib * MIB;
        // SAFETY: a new private segment; no existing memory is touched.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, size, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return stopped(Errno::last(), mib);
        }
        // SAFETY: attaching the new segment at an address the kernel picks.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            return stopped(Errno::last(), mib);
        }
        let base = addr.cast::<u8>();
        for offset in (0..size).step_by(4096) {
            // SAFETY: offset < size, inside the attached, writable segment.
            unsafe { base.add(offset).write_volatile(1) };
        }
        // SAFETY: detaching what we attached; the segment itself stays.
        unsafe { libc::shmdt(addr) };
        mib += size_mib;
    }
    Report::Escaped(format!("pinned {mib} MiB of SysV shared memory"))
}

/// Fills unix stream socket pairs (non-blocking, both directions) until each is full, new
/// pairs until `max` MiB are queued or a pair cannot be made.
pub fn unix_buffers(max: &str) -> Report {
    let max = match cap(max) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let block = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut bytes = 0usize;
    while bytes < max * MIB {
        if start.elapsed() > PIN_TIME {
            return Report::Error(format!("gave up after {PIN_TIME:?} at {} MiB", bytes / MIB));
        }
        let mut pair = [0 as libc::c_int; 2];
        // SAFETY: pair is a valid array of two ints for socketpair to fill.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        if r < 0 {
            return stopped(Errno::last(), bytes / MIB);
        }
        for fd in pair {
            while bytes < max * MIB {
                // SAFETY: writing from a live buffer of its own length.
                let n = unsafe { libc::write(fd, block.as_ptr().cast(), block.len()) };
                if n <= 0 {
                    let e = Errno::last();
                    if e.0 == libc::EAGAIN {
                        break;
                    }
                    return stopped(e, bytes / MIB);
                }
                bytes += n as usize;
            }
        }
    }
    Report::Escaped(format!("pinned {} MiB in unix socket buffers", bytes / MIB))
}

/// Takes inotify instances until refused (at most `max`, at most [`MAX_INOTIFY`]), then,
/// with a hold time, prints its line and keeps them for that many seconds so the host can
/// look. Denial: `<ERRNO> after <N> instances`.
pub fn inotify_instances(hold: Option<&str>, max: Option<&str>) -> Report {
    let max = max
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(MAX_INOTIFY)
        .min(MAX_INOTIFY);
    let mut taken = 0usize;
    let mut refused = None;
    while taken < max {
        // SAFETY: no pointers; a new descriptor or -1.
        if unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } < 0 {
            refused = Some(Errno::last());
            break;
        }
        taken += 1;
    }
    let report = match refused {
        Some(e) => Report::Denied(format!("{e} after {taken} instances")),
        None => Report::Escaped(format!("took {taken} instances")),
    };
    if let Some(secs) = hold.and_then(|h| h.parse::<u64>().ok()).filter(|s| *s > 0) {
        let code = crate::emit(&report);
        std::thread::sleep(Duration::from_secs(secs.min(60)));
        std::process::exit(i32::from(code));
    }
    report
}
