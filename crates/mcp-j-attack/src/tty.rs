//! Attacks on the terminal the program was given as stdio: each one, done to the caller's
//! own terminal, outlives the jail (a line discipline that swallows everything, no echo,
//! a 1×1 window, a non-blocking file description the caller's shell shares).
//!
//! Whether they harm anything is decided on the host side: the program cannot tell the
//! caller's terminal from a pty mcp-j made for it. So `tty` reports what it managed as
//! `ok:` facts, and the test checks its own terminal afterwards. Unlike the other attacks
//! it prints two lines: the first before `TIOCSETD` (after which a terminal may take no
//! more output), the second with the `TIOCSETD` results, if it gets through.

use crate::Report;
use crate::sys::{Errno, check_int};

/// `N_NULL`: a line discipline that discards all input and fails every write.
const N_NULL: libc::c_int = 27;

/// On each of fds 0–2 that is a terminal: echo off, a 1×1 window, `O_NONBLOCK` (first
/// line), then `TIOCSETD` to `N_NULL` (the returned report).
pub fn tty() -> Report {
    // SAFETY: isatty takes any fd number.
    let ttys: Vec<libc::c_int> = (0..3).filter(|&fd| unsafe { libc::isatty(fd) } == 1).collect();
    if ttys.is_empty() {
        return Report::Error("none of fds 0-2 is a terminal".to_owned());
    }
    let outcome = |r: Result<libc::c_int, Errno>| match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.name(),
    };
    let mut done = Vec::new();
    for &fd in &ttys {
        let echo_off = (|| {
            // SAFETY: termios is plain old data; all zeroes is a valid value.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: `t` is a live termios the call fills.
            check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
            t.c_lflag &= !libc::ECHO;
            // SAFETY: `t` is a live termios the call reads.
            check_int(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) })
        })();
        let size = libc::winsize {
            ws_row: 1,
            ws_col: 1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize, which `size` is.
        let winsize = check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) });
        let nonblock = (|| {
            // SAFETY: F_GETFL takes no argument.
            let flags = check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
            // SAFETY: F_SETFL takes an int.
            check_int(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })
        })();
        done.push(format!(
            "fd {fd}: echo-off={} winsize-1x1={} nonblock={}",
            outcome(echo_off),
            outcome(winsize),
            outcome(nonblock)
        ));
    }
    crate::emit(&Report::Ok(format!("tty attacked: {}; TIOCSETD next", done.join("; "))));
    let mut done = Vec::new();
    for &fd in &ttys {
        let ldisc = N_NULL;
        // SAFETY: TIOCSETD reads one int, which `ldisc` is.
        let setd = check_int(unsafe { libc::ioctl(fd, libc::TIOCSETD, &ldisc) });
        done.push(format!("fd {fd}: TIOCSETD(N_NULL)={}", outcome(setd)));
    }
    Report::Ok(format!("tty line discipline: {}", done.join("; ")))
}
