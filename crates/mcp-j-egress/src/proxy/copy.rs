//! Relaying bytes between the jail's connection and the destination: tokio's
//! bidirectional copy with large buffers (no per-byte work), byte counts and an idle
//! timeout kept by a thin wrapper that records each read.

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
