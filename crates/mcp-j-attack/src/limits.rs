//! Resource bombs: memory, file descriptors, CPU. Each first raises its soft limit to the
//! hard one (a limit that only sets the soft value stops nothing), and each is bounded
//! even when nothing stops it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::Report;
use crate::sys::{self, Errno};

/// The memory bomb allocates in chunks of this many MiB…
const CHUNK_MIB: usize = 16;
/// …up to this many MiB in total.
const MAX_MIB: usize = 2048;
/// How long the memory bomb keeps going (touching pages under pressure can be slow).
const MEM_TIME: Duration = Duration::from_secs(60);
/// The fd bomb's ceiling.
const MAX_FDS: usize = 100_000;
/// How long the fd bomb keeps going.
const FD_TIME: Duration = Duration::from_secs(30);
/// The CPU burner stops itself after this long.
const BURN_TIME: Duration = Duration::from_secs(120);

/// Maps and touches [`CHUNK_MIB`] MiB chunks until allocation fails, up to MAX_MIB (at
/// most [`MAX_MIB`]). Denial: `<ERRNO> at <N> MiB`, N being what was allocated before the
/// failure. A cgroup limit kills the process instead (no line, exit 137).
pub fn mem_bomb(max: Option<&str>) -> Report {
    let max_mib = match max.map(str::parse::<usize>) {
        None => MAX_MIB,
        Some(Ok(m)) => m.min(MAX_MIB),
        Some(Err(_)) => return Report::Error("MAX_MIB is not a number".to_owned()),
    };
    sys::raise_soft_limit(libc::RLIMIT_AS);
    sys::raise_soft_limit(libc::RLIMIT_DATA);
    let chunk = CHUNK_MIB << 20;
    let start = Instant::now();
    let mut mib = 0usize;
    while mib + CHUNK_MIB <= max_mib {
        if start.elapsed() > MEM_TIME {
            return Report::Error(format!("gave up after {MEM_TIME:?} at {mib} MiB"));
        }
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                chunk,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Report::Denied(format!("{} at {mib} MiB", Errno::last()));
        }
        let base = addr.cast::<u8>();
        for offset in (0..chunk).step_by(4096) {
            // SAFETY: offset < chunk, inside the mapping made above, which is writable and
            // never unmapped while this process runs.
            unsafe { base.add(offset).write_volatile(1) };
        }
        mib += CHUNK_MIB;
    }
    if max_mib < MAX_MIB {
        Report::Escaped(format!("allocated {mib} MiB (the requested maximum)"))
    } else {
        Report::Escaped(format!("allocated {mib} MiB and stopped itself"))
    }
}

/// How many descriptors below `limit` are open (without opening one to find out).
fn count_open_fds(limit: i32) -> usize {
    (0..limit)
        // SAFETY: F_GETFD only queries the descriptor table.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
        .count()
}

/// Opens `/dev/null` until open fails, at most [`MAX_FDS`] times. Denial:
/// `<ERRNO> at <N> fds`, N counting every fd open at the failure (stdio included).
pub fn fd_bomb() -> Report {
    sys::raise_soft_limit(libc::RLIMIT_NOFILE);
    let start = Instant::now();
    let mut files = Vec::new();
    while files.len() < MAX_FDS {
        if start.elapsed() > FD_TIME {
            return Report::Error(format!("gave up after {FD_TIME:?} at {} fds", files.len()));
        }
        match File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                let highest = files.last().map_or(2, |f| f.as_raw_fd());
                return Report::Denied(format!("{} at {} fds", Errno::of(&e), count_open_fds(highest + 64)));
            }
        }
    }
    Report::Escaped(format!("opened {} fds", files.len()))
}

/// Burns CPU until something stops it; stops itself after [`BURN_TIME`].
pub fn cpu_burn() -> Report {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < BURN_TIME {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    Report::Error(format!("cpu-burn ran {BURN_TIME:?} without being stopped ({x})"))
}
