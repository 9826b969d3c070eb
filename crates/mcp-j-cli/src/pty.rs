//! The caller's terminal never reaches the jail.
//!
//! A program holding the host terminal can switch its line discipline, turn echo off,
//! shrink the window or leave `O_NONBLOCK` on the shared file description, and the damage
//! outlives it. So, as `script` and `ssh` do, every one of our fds 0–2 that is a terminal
//! is replaced, for the jail, by the slave of a pseudo-terminal that mcp-j owns; a relay
//! thread copies the host terminal's input to the pty and the pty's output back.
//!
//! While relaying, the host terminal is in raw mode when stdin is a terminal and mcp-j is
//! in its foreground (the pty's own line discipline does echo and line editing), except
//! that `ISIG` stays on, so Ctrl-C and Ctrl-\ still signal mcp-j's process group as before
//! (the program runs in its own session and has no controlling terminal to get them from);
//! Ctrl-Z is passed through as a byte instead of stopping mcp-j with the terminal raw.
//! The window size is copied to the pty at the start and on every `SIGWINCH`. The host
//! terminal's termios and file status flags are put back when the run ends, on every
//! error path (drop), and on SIGINT, SIGTERM, SIGHUP and SIGQUIT (then mcp-j exits with
//! 128+N and the jail dies with it).

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mcp_j_engine::{JailStdio, JailStream};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex, Termios};

/// How long the relay keeps draining the pty after the jail ended, if a slave is still
/// open somewhere (it should not be: every jail process is gone by then).
const DRAIN_BOUND: Duration = Duration::from_secs(2);

/// One of our fds 0–2 that is a terminal, as it was before we touched it.
struct Saved {
    /// A duplicate: the same open file description as the original fd.
    fd: OwnedFd,
    termios: Termios,
    flags: OFlags,
}

/// What to put back on the host terminal.
#[derive(Default)]
struct HostState {
    saved: Vec<Saved>,
    restored: bool,
}

impl HostState {
    fn restore(&mut self) {
        if self.restored {
            return;
        }
        self.restored = true;
        for s in &self.saved {
            let _ = rustix::termios::tcsetattr(&s.fd, OptionalActions::Now, &s.termios);
            let _ = rustix::fs::fcntl_setfl(&s.fd, s.flags);
        }
    }
}

/// The pty between the host terminal and the jail, from before the jail starts until
/// [`Terminal::finish`] (or drop) puts the host terminal back.
pub struct Terminal {
    host: Arc<Mutex<HostState>>,
    master: Arc<OwnedFd>,
    /// The slave, for the jail's fds that are terminals; dropped once the jail has it.
    slave: Option<OwnedFd>,
    /// Which of fds 0–2 get the slave.
    is_tty: [bool; 3],
    /// Our stdin, when its input is relayed.
    input: Option<OwnedFd>,
    /// Where the pty's output goes (stdout if a terminal, else stderr, else stdin).
    output: OwnedFd,
    relay: Option<(JoinHandle<()>, OwnedFd)>,
}

impl Terminal {
    /// A pty for the jail if any of fds 0–2 is a terminal; `None` otherwise (then the
    /// jail gets our fds as they are).
    pub fn attach() -> Result<Option<Terminal>> {
        let fds: [BorrowedFd<'static>; 3] = [rustix::stdio::stdin(), rustix::stdio::stdout(), rustix::stdio::stderr()];
        let is_tty = fds.map(rustix::termios::isatty);
        let Some(first) = is_tty.iter().position(|t| *t) else {
            return Ok(None);
        };
        let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().context("cannot duplicate a terminal fd");

        let mut saved = Vec::new();
        for (fd, _) in fds.iter().zip(is_tty).filter(|(_, t)| *t) {
            let termios = rustix::termios::tcgetattr(fd).context("cannot read the terminal's settings")?;
            let flags = rustix::fs::fcntl_getfl(fd).context("cannot read the terminal's file status flags")?;
            saved.push(Saved {
                fd: dup(*fd)?,
                termios,
                flags,
            });
        }

        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).context(
            "cannot open a pseudo-terminal (/dev/ptmx) for the jail, which never gets the caller's \
             terminal; run without a terminal on stdin/stdout/stderr (`< /dev/null`, `| cat`)",
        )?;
        rustix::pty::grantpt(&master).context("cannot set up the jail's pseudo-terminal (grantpt)")?;
        rustix::pty::unlockpt(&master).context("cannot set up the jail's pseudo-terminal (unlockpt)")?;
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)
            .context("cannot open the jail's pseudo-terminal slave (TIOCGPTPEER)")?;
        // Input is relayed (and the host terminal made raw) only from the foreground.
        let input = if is_tty[0] && in_foreground(fds[0]) {
            Some(dup(fds[0])?)
        } else {
            None
        };
        // The program sees the host terminal's settings and size, on a pty of its own.
        // Output is processed once: by the pty when the host terminal is raw, else by the
        // host terminal (which then keeps its own `OPOST`).
        if let Ok(mut termios) = rustix::termios::tcgetattr(fds[first]) {
            if input.is_none() {
                termios.output_modes.remove(rustix::termios::OutputModes::OPOST);
            }
            let _ = rustix::termios::tcsetattr(&slave, OptionalActions::Now, &termios);
        }
        if let Ok(size) = rustix::termios::tcgetwinsize(fds[first]) {
            let _ = rustix::termios::tcsetwinsize(&master, size);
        }
        // Our end never blocks: a program that stops reading its input must not stop
        // its output from being relayed.
        let master_flags = rustix::fs::fcntl_getfl(&master).context("cannot read the pty's flags")?;
        rustix::fs::fcntl_setfl(&master, master_flags | OFlags::NONBLOCK).context("cannot set the pty's flags")?;

        let output_fd = [1, 2, 0].into_iter().find(|&i| is_tty[i]).unwrap_or(first);
        let output = dup(fds[output_fd])?;
        Ok(Some(Terminal {
            host: Arc::new(Mutex::new(HostState { saved, restored: false })),
            master: Arc::new(master),
            slave: Some(slave),
            is_tty,
            input,
            output,
            relay: None,
        }))
    }

    /// The jail's stdio: the pty slave for each of fds 0–2 that is a terminal, our own
    /// fd for the others.
    pub fn jail_stdio(&self) -> Result<JailStdio> {
        let slave = self
            .slave
            .as_ref()
            .context("the jail's pseudo-terminal was already handed out")?;
        let stdio = |i: usize| -> Result<JailStream> {
            Ok(if self.is_tty[i] {
                JailStream::Fd(slave.try_clone().context("cannot duplicate the pty slave")?)
            } else {
                JailStream::Inherit
            })
        };
        Ok(JailStdio {
            stdin: stdio(0)?,
            stdout: stdio(1)?,
            stderr: stdio(2)?,
        })
    }

    /// Start relaying (after the jail has its copies of the slave: ours is closed here,
    /// so the pty reports the end once the jail's are closed too). Puts the host
    /// terminal in raw mode when its input is relayed.
    pub fn start(&mut self) -> Result<()> {
        self.slave = None;
        watch_signals(Arc::clone(&self.host), Arc::clone(&self.master))?;
        if let Some(input) = &self.input {
            let raw = {
                let host = self
                    .host
                    .lock()
                    .map_err(|_| anyhow::anyhow!("terminal state poisoned"))?;
                host.saved.first().map(|s| raw_keeping_signals(&s.termios))
            };
            if let Some(raw) = raw {
                rustix::termios::tcsetattr(input, OptionalActions::Now, &raw)
                    .context("cannot put the terminal in raw mode")?;
            }
        }
        let (stop_read, stop_write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("cannot create the relay's stop pipe")?;
        let master = Arc::clone(&self.master);
        let input = match &self.input {
            Some(fd) => Some(fd.try_clone().context("cannot duplicate stdin")?),
            None => None,
        };
        let output = self.output.try_clone().context("cannot duplicate the terminal")?;
        // The pty got the host terminal's settings: its end-of-file character too.
        let eof = match self.host.lock() {
            Ok(host) => host
                .saved
                .first()
                .map(|s| s.termios.special_codes[SpecialCodeIndex::VEOF]),
            Err(_) => None,
        }
        .filter(|&c| c != 0)
        .unwrap_or(4);
        let handle = std::thread::Builder::new()
            .name("pty-relay".into())
            .spawn(move || relay(&master, input, &output, &stop_read, eof))
            .context("cannot start the terminal relay")?;
        self.relay = Some((handle, stop_write));
        Ok(())
    }

    /// The jail has ended: relay what it wrote last, stop, and put the host terminal back.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some((handle, stop)) = self.relay.take() {
            let _ = rustix::io::write(&stop, b"x");
            let _ = handle.join();
        }
        if let Ok(mut host) = self.host.lock() {
            host.restore();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether we may read the terminal and change its settings: it is not our controlling
/// terminal, or our process group is its foreground one (else the kernel would stop us
/// with SIGTTIN/SIGTTOU).
fn in_foreground(fd: BorrowedFd<'_>) -> bool {
    match rustix::termios::tcgetpgrp(fd) {
        Ok(pgrp) => pgrp == rustix::process::getpgrp(),
        Err(_) => true,
    }
}

/// Raw mode, but Ctrl-C and Ctrl-\ still signal us (the program has no controlling
/// terminal to get them from) and Ctrl-Z does not stop us with the terminal raw.
fn raw_keeping_signals(saved: &Termios) -> Termios {
    let mut raw = saved.clone();
    raw.make_raw();
    raw.local_modes |= LocalModes::ISIG;
    raw.special_codes[SpecialCodeIndex::VSUSP] = 0; // _POSIX_VDISABLE
    raw
}

/// Window changes go to the pty; a terminating signal puts the terminal back and ends
/// mcp-j (the jail dies with it, by its parent-death signal). Returns once the handlers
/// are installed.
fn watch_signals(host: Arc<Mutex<HostState>>, master: Arc<OwnedFd>) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pty-signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                let _ = ready_tx.send(Err(std::io::Error::other("cannot start the signal runtime")));
                return;
            };
            runtime.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let streams = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::window_change())?,
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::hangup())?,
                        signal(SignalKind::quit())?,
                    ))
                })();
                let (mut winch, mut int, mut term, mut hup, mut quit) = match streams {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let ended = tokio::select! {
                        _ = winch.recv() => None,
                        _ = int.recv() => Some(libc::SIGINT),
                        _ = term.recv() => Some(libc::SIGTERM),
                        _ = hup.recv() => Some(libc::SIGHUP),
                        _ = quit.recv() => Some(libc::SIGQUIT),
                    };
                    let Ok(mut host) = host.lock() else { return };
                    match ended {
                        None => {
                            if let Some(size) = host
                                .saved
                                .first()
                                .and_then(|s| rustix::termios::tcgetwinsize(&s.fd).ok())
                            {
                                let _ = rustix::termios::tcsetwinsize(&*master, size);
                            }
                        }
                        Some(sig) => {
                            host.restore();
                            std::process::exit(128 + sig);
                        }
                    }
                }
            });
        })
        .context("cannot start the signal thread")?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("cannot watch signals for the terminal")),
        Err(_) => anyhow::bail!("the signal thread ended early"),
    }
}

/// Copies the host's input to the pty and the pty's output to the host until the pty
/// reports that every slave is closed, or `stop` says the jail ended (then drains what is
/// left, within [`DRAIN_BOUND`]).
fn relay(master: &OwnedFd, mut input: Option<OwnedFd>, output: &OwnedFd, stop: &OwnedFd, eof: u8) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let mut drain_until: Option<Instant> = None;
    loop {
        let timeout = drain_until.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        let mut master_events = PollFlags::IN;
        if !pending.is_empty() {
            master_events |= PollFlags::OUT;
        }
        // Backpressure on input only: stop reading the host while the pty is full.
        let read_input = input.is_some() && pending.is_empty() && drain_until.is_none();
        let mut fds = vec![PollFd::new(master, master_events)];
        // Once stopped, the stop pipe stays readable: leave it out.
        let stop_at = drain_until.is_none().then(|| {
            fds.push(PollFd::new(stop, PollFlags::IN));
            fds.len() - 1
        });
        let input_at = match (read_input, &input) {
            (true, Some(fd)) => {
                fds.push(PollFd::new(fd, PollFlags::IN));
                Some(fds.len() - 1)
            }
            _ => None,
        };
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => return, // drain bound reached
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => return,
        }
        let events = |at: Option<usize>| at.map(|i| fds[i].revents()).unwrap_or(PollFlags::empty());
        let master_ready = fds[0].revents();
        let stopped = !events(stop_at).is_empty();
        let input_ready = events(input_at);

        if master_ready.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            match rustix::io::read(master, &mut buf) {
                Ok(0) | Err(Errno::IO) => return, // every slave closed: nothing more
                Ok(n) => {
                    if write_all(output, &buf[..n]).is_err() {
                        return;
                    }
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => return,
            }
        }
        if master_ready.contains(PollFlags::OUT) && !pending.is_empty() {
            match rustix::io::write(master, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(_) => pending.clear(),
            }
        }
        if !input_ready.is_empty()
            && let Some(fd) = &input
        {
            match rustix::io::read(fd, &mut buf) {
                Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                Err(Errno::AGAIN | Errno::INTR) => {}
                _ => {
                    // The host terminal hung up: the program reads end-of-file.
                    input = None;
                    pending.push(eof);
                }
            }
        }
        if stopped && drain_until.is_none() {
            drain_until = Some(Instant::now() + DRAIN_BOUND);
            input = None;
        }
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                // The host fd is non-blocking (someone else set it): wait until writable.
                let mut fds = [PollFd::new(fd, PollFlags::OUT)];
                let _ = poll(&mut fds, None);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
