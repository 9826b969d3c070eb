//! The caller's terminal: a jail given a terminal as stdin, stdout and stderr must not be
//! able to change it. The test opens a pty of its own (its "host terminal"), makes it the
//! controlling terminal of `mcp-j exec` (a new session, as a shell's terminal would be),
//! and after mcp-j exits checks, on that pty: the line discipline is still `N_TTY`, its
//! settings (echo, canonical mode: mcp-j's raw mode undone) are as before, the window size
//! is unchanged, and `O_NONBLOCK` is not set on the file description mcp-j shared.
//! Positive controls: what the program writes arrives on the test's pty master, input
//! written to the master reaches the program, the window size (at start and after a
//! resize) reaches the program, Ctrl-D is its end of input, and its exit status comes
//! through. SIGTERM to mcp-j puts the terminal back. `mcp-j run` hands the server pipes
//! only: a terminal on its stderr does not reach the jail either.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::termios::{LocalModes, Winsize};

use super::s;
use crate::common::{MCP_J, Run, attack_bin, attack_dir, sandbox_test, test_name};

/// The test's "host terminal".
struct HostPty {
    master: File,
    slave: OwnedFd,
    /// Everything read from the master so far (a thread keeps reading it).
    seen: Arc<Mutex<Vec<u8>>>,
}

const SIZE: Winsize = Winsize {
    ws_row: 40,
    ws_col: 120,
    ws_xpixel: 0,
    ws_ypixel: 0,
};

impl HostPty {
    fn open() -> HostPty {
        use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = openpt(flags).expect("open /dev/ptmx");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let slave = ioctl_tiocgptpeer(&master, flags).expect("TIOCGPTPEER");
        rustix::termios::tcsetwinsize(&slave, SIZE).expect("set the window size");
        let master = File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup master"), Arc::clone(&seen));
        // Reads until every slave is closed (EIO), bounded in bytes.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                let mut seen = sink.lock().unwrap();
                if n == 0 || seen.len() > 1 << 20 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
        });
        HostPty { master, slave, seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until the master has shown `needle`; panics with what it showed if not.
    fn wait_for(&self, needle: &str, child: &mut Child, bound: Duration) {
        let deadline = Instant::now() + bound;
        while !self.text().contains(needle) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{needle}` never reached the terminal; it showed:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `mcp-j exec … -- ARGV` as the runner with this pty as its stdin, stdout,
    /// stderr and controlling terminal (so mcp-j is in its foreground, as from a shell).
    fn start_mcp_j(&self, run: &Run, workdir: &std::path::Path, argv: &[&str]) -> Child {
        let mut cmd = run.runner.command(MCP_J);
        cmd.args(["exec", "--workdir", s(workdir), "--ro", s(attack_dir()), "--"])
            .args(argv);
        cmd.current_dir(workdir);
        let stdio = || Stdio::from(self.slave.try_clone().expect("dup slave"));
        cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe system calls on fd 0,
        // which the child already has; nothing is allocated.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(std::io::stdin().as_fd())?;
                Ok(())
            });
        }
        cmd.spawn().expect("start mcp-j")
    }
}

/// Waits for `child` within `bound` (SIGKILL by its pid past it); its exit code.
fn wait_bounded(child: &mut Child, bound: Duration, pty: &HostPty) -> Option<i32> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mcp-j still running after {bound:?}; terminal showed:\n{}", pty.text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn line_discipline(fd: &OwnedFd) -> libc::c_int {
    let mut ldisc: libc::c_int = -1;
    // SAFETY: TIOCGETD writes one int to the pointer, which points to a live local.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGETD, &mut ldisc) };
    assert_eq!(ret, 0, "TIOCGETD: {}", std::io::Error::last_os_error());
    ldisc
}

#[test]
fn the_callers_terminal_is_not_changed_by_the_jail() {
    sandbox_test(test_name!(), &[], |run| {
        let pty = HostPty::open();
        let before = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        let wd = run.tempdir();
        let mut child = pty.start_mcp_j(run, wd.path(), &[s(attack_bin()), "tty"]);
        let code = wait_bounded(&mut child, Duration::from_secs(60), &pty);
        // Let the reader thread catch up with what mcp-j relayed last.
        std::thread::sleep(Duration::from_millis(200));
        let shown = pty.text();

        // Positive control: the program had a terminal on fds 0-2 and its attacks on it
        // worked (on the pty mcp-j gave it), and its output reached ours.
        for fd in 0..3 {
            let want = format!("fd {fd}: echo-off=ok winsize-1x1=ok nonblock=ok");
            assert!(
                shown.contains(&want),
                "expected `{want}` on the terminal; it showed:\n{shown}"
            );
        }
        // The program's status: 0, or killed by seccomp at TIOCSETD (SIGSYS) where the
        // filter kills rather than fails the call; never mcp-j's own failure (125).
        assert!(
            matches!(code, Some(0) | Some(159)),
            "mcp-j exit code {code:?}; the terminal showed:\n{shown}"
        );

        // The host terminal is as it was.
        assert_eq!(line_discipline(&pty.slave), 0, "the line discipline is no longer N_TTY");
        let after = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        assert!(after.local_modes.contains(LocalModes::ECHO), "ECHO was turned off");
        assert_eq!(
            (after.local_modes, after.input_modes, after.output_modes),
            (before.local_modes, before.input_modes, before.output_modes),
            "the terminal's modes changed"
        );
        let size = rustix::termios::tcgetwinsize(&pty.slave).expect("TIOCGWINSZ");
        assert_eq!(
            (size.ws_row, size.ws_col),
            (SIZE.ws_row, SIZE.ws_col),
            "window size changed"
        );
        let flags = rustix::fs::fcntl_getfl(&pty.slave).expect("F_GETFL");
        assert!(
            !flags.contains(rustix::fs::OFlags::NONBLOCK),
            "O_NONBLOCK was left on the terminal's file description"
        );
    });
}

#[test]
fn the_jail_reads_and_writes_through_its_own_terminal() {
    sandbox_test(test_name!(), &[], |run| {
        let mut pty = HostPty::open();
        let wd = run.tempdir();
        let script = "stty size; read line; echo \"got:$line\"; stty size; cat >/dev/null; exit 3";
        let mut child = pty.start_mcp_j(run, wd.path(), &["/bin/sh", "-c", script]);
        let bound = Duration::from_secs(30);
        // The window size reached the program.
        pty.wait_for("40 120", &mut child, bound);
        // A resize of our terminal reaches it too (SIGWINCH to mcp-j, the foreground).
        let resized = Winsize {
            ws_row: 50,
            ws_col: 100,
            ..SIZE
        };
        rustix::termios::tcsetwinsize(pty.master.as_fd(), resized).expect("resize");
        std::thread::sleep(Duration::from_millis(300));
        // Input typed on our terminal reaches the program (Enter sends CR).
        pty.master.write_all(b"hello\r").expect("write to the master");
        pty.wait_for("got:hello", &mut child, bound);
        pty.wait_for("50 100", &mut child, bound);
        // Ctrl-D on our terminal is end-of-file for the program (`cat` ends).
        std::thread::sleep(Duration::from_millis(100));
        pty.master.write_all(b"\x04").expect("write to the master");
        let code = wait_bounded(&mut child, Duration::from_secs(30), &pty);
        assert_eq!(
            code,
            Some(3),
            "the program's exit status; terminal showed:\n{}",
            pty.text()
        );
        let after = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        assert!(
            after.local_modes.contains(LocalModes::ICANON | LocalModes::ECHO),
            "mcp-j left the terminal in raw mode"
        );
    });
}

#[test]
fn a_signal_to_mcp_j_puts_the_terminal_back() {
    sandbox_test(test_name!(), &[], |run| {
        let pty = HostPty::open();
        let before = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        let wd = run.tempdir();
        let mut child = pty.start_mcp_j(run, wd.path(), &["/bin/sh", "-c", "echo started; sleep 30"]);
        pty.wait_for("started", &mut child, Duration::from_secs(30));
        // mcp-j relays in raw mode now.
        let raw = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        assert!(
            !raw.local_modes.contains(LocalModes::ICANON),
            "mcp-j did not switch to raw mode"
        );
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM to mcp-j");
        let code = wait_bounded(&mut child, Duration::from_secs(20), &pty);
        assert_eq!(code, Some(128 + 15), "terminal showed:\n{}", pty.text());
        let after = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        assert_eq!(
            (after.local_modes, after.input_modes, after.output_modes),
            (before.local_modes, before.input_modes, before.output_modes),
            "the terminal was left as mcp-j had set it"
        );
    });
}

#[test]
fn run_gives_the_server_no_terminal_even_when_its_stderr_is_one() {
    sandbox_test(test_name!(), &[], |run| {
        let pty = HostPty::open();
        let before = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        let wd = run.tempdir();
        let mut cmd = run.runner.command(MCP_J);
        cmd.args([
            "run",
            "--workdir",
            s(wd.path()),
            "--ro",
            s(attack_dir()),
            "--",
            s(attack_bin()),
            "tty",
        ]);
        cmd.current_dir(wd.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(pty.slave.try_clone().expect("dup slave")));
        let mut child = cmd.spawn().expect("start mcp-j run");
        let code = wait_bounded(&mut child, Duration::from_secs(60), &pty);
        // The attack found no terminal on fds 0-2 (its `error:` exit status), so it
        // attacked nothing; our terminal is as it was.
        assert_eq!(code, Some(2), "terminal showed:\n{}", pty.text());
        assert_eq!(line_discipline(&pty.slave), 0, "the line discipline is no longer N_TTY");
        let after = rustix::termios::tcgetattr(&pty.slave).expect("tcgetattr");
        assert_eq!(
            (after.local_modes, after.input_modes, after.output_modes),
            (before.local_modes, before.input_modes, before.output_modes),
            "the terminal's modes changed"
        );
    });
}
