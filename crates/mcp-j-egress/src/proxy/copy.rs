//! Relaying bytes between the jail's connection and the destination, with byte counts and
//! an idle timeout. Zero-copy where the kernel allows: each direction moves data socket →
//! pipe → socket with `splice(2)`, so no byte passes through user space (a copy loop
//! costs two copies per byte and reached 0.6× of a direct transfer, `splice` 0.85–1×:
//! bench/README.md, `bench/egress.sh`). Where a pipe cannot be made, tokio's
//! bidirectional copy with large buffers does it instead.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How a relay ended, and what it carried.
#[derive(Debug)]
pub(crate) struct Relayed {
    /// Bytes read from the jail's side (and written to the destination).
    pub(crate) up: u64,
    /// Bytes read from the destination (and written to the jail).
    pub(crate) down: u64,
}

/// When the last byte moved, in milliseconds since `base`.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that counts the bytes read from it and notes when.
struct Metered<'a, S> {
    inner: &'a mut S,
    bytes: &'a AtomicU64,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut *self.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n > 0 {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Copy both ways between `client` (the jail) and `upstream` (the destination) until both
/// sides have closed, an error, or `idle` passes with no byte either way. An end of file on
/// one side is passed on as a half-close, so request-then-response protocols finish.
pub(crate) async fn relay(client: &mut TcpStream, upstream: &mut TcpStream, buffer: usize, idle: Duration) -> Relayed {
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let activity = Activity {
        base: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    if let (Ok(up_pipe), Ok(down_pipe)) = (Pipe::new(), Pipe::new()) {
        tokio::select! {
            // An error (a reset) on either side ends both directions; an end of file ends
            // one (the other may still carry the answer).
            _ = async {
                tokio::try_join!(
                    splice_one_way(client, upstream, &up_pipe, &up, &activity),
                    splice_one_way(upstream, client, &down_pipe, &down, &activity),
                )
            } => {}
            () = idle_expired(&activity, idle) => {}
        }
        return Relayed {
            up: up.load(Ordering::Relaxed),
            down: down.load(Ordering::Relaxed),
        };
    }
    let mut a = Metered {
        inner: client,
        bytes: &up,
        activity: &activity,
    };
    let mut b = Metered {
        inner: upstream,
        bytes: &down,
        activity: &activity,
    };
    tokio::select! {
        // An I/O error (a reset) ends the relay like an end of file: nothing to report
        // beyond the bytes, which the counters hold either way.
        _ = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, buffer, buffer) => {}
        () = idle_expired(&activity, idle) => {}
    }
    Relayed {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
    }
}

/// Completes once `idle` has passed since the last byte moved.
async fn idle_expired(activity: &Activity, idle: Duration) {
    loop {
        let deadline = activity.last() + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// A pipe for one direction of a spliced relay, as large as the system lets it be.
struct Pipe {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
    capacity: usize,
}

/// The pipe size asked for (the default `/proc/sys/fs/pipe-max-size` allows it
/// unprivileged); a smaller one works too, with more system calls.
const PIPE_BYTES: usize = 1024 * 1024;

impl Pipe {
    fn new() -> io::Result<Pipe> {
        use rustix::pipe::{PipeFlags, fcntl_getpipe_size, fcntl_setpipe_size, pipe_with};
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        let capacity = fcntl_setpipe_size(&write, PIPE_BYTES).or_else(|_| fcntl_getpipe_size(&write))?;
        Ok(Pipe { read, write, capacity })
    }
}

/// One direction: `src` → pipe → `dst` until `src` ends (then `dst`'s write side is shut,
/// a half-close) or an error. The pipe is filled only when empty, so a `splice` into it
/// that would block means `src` has nothing to read (an empty pipe has all its room), and
/// tokio's readiness is cleared only then; it is drained whole before the next fill.
async fn splice_one_way(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    bytes: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    use rustix::pipe::{SpliceFlags, splice};
    use tokio::io::Interest;
    let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
    loop {
        let filled = loop {
            match src.try_io(Interest::READABLE, || {
                Ok(splice(src, None, &pipe.write, None, pipe.capacity, flags)?)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => src.readable().await?,
                Err(e) => return Err(e),
            }
        };
        if filled == 0 {
            // End of file: pass it on, so the other side sees the request end.
            let _ = rustix::net::shutdown(dst, rustix::net::Shutdown::Write);
            return Ok(());
        }
        bytes.fetch_add(filled as u64, Ordering::Relaxed);
        activity.touch();
        let mut left = filled;
        while left > 0 {
            match dst.try_io(Interest::WRITABLE, || {
                Ok(splice(&pipe.read, None, dst, None, left, flags)?)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left -= n;
                    activity.touch();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
                Err(e) => return Err(e),
            }
        }
    }
}
