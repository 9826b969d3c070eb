//! [`RedactingWriter`]: relays a byte stream (the server's stderr, our own log lines) line
//! by line, each line redacted.

use std::sync::Arc;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::redact::{PRIVATE_KEY_MARKER, Redactor, SHAPE_OVERLAP};

/// Default bound on a buffered line before it is written out in pieces.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Buffers what is written until a newline, then writes the redacted line to `inner`.
/// It is an [`AsyncWrite`] (see the impl for what flush and shutdown do), and
/// [`RedactingWriter::copy_from`] relays a whole stream.
///
/// - A line longer than the bound (default [`DEFAULT_MAX_LINE`]) is written in pieces,
///   keeping a tail of the buffer back (4 KiB, or the longest secret if longer) so that a
///   secret or token straddling the cut is still seen whole; a match that straddles the cut
///   moves the cut to its end. Only a single token longer than that tail could be cut.
/// - A private-key block spread over several lines is removed whole: from the line with
///   `-----BEGIN … PRIVATE KEY-----` up to and including `-----END … PRIVATE KEY-----`, each
///   line of it becoming `[REDACTED:private-key]`.
/// - Bytes need not be UTF-8; they pass through unchanged except for what is redacted.
#[derive(Debug)]
pub struct RedactingWriter<W> {
    inner: W,
    redactor: Arc<Redactor>,
    buf: Vec<u8>,
    max_line: usize,
    in_private_key: bool,
    /// Redacted output not yet taken by `inner`, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
}

impl<W: AsyncWrite + Unpin> RedactingWriter<W> {
    /// Redact into `inner`.
    pub fn new(inner: W, redactor: Arc<Redactor>) -> Self {
        RedactingWriter {
            inner,
            redactor,
            buf: Vec::new(),
            max_line: DEFAULT_MAX_LINE,
            in_private_key: false,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Bound the buffered line at `max` bytes (raised to twice the kept tail if lower).
    pub fn with_max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    fn overlap(&self) -> usize {
        SHAPE_OVERLAP.max(self.redactor.longest_secret())
    }

    /// Relay everything `reader` yields until end of file, then the partial last line.
    /// Returns the number of bytes read.
    pub async fn copy_from<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> io::Result<u64> {
        let mut total = 0u64;
        let mut chunk = vec![0u8; 8192];
        loop {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            self.write_all(&chunk[..n]).await?;
        }
        self.end_partial();
        self.flush().await?;
        Ok(total)
    }

    /// Write out the partial last line, flush, and give back the inner writer.
    pub async fn finish(mut self) -> io::Result<W> {
        self.end_partial();
        self.flush().await?;
        Ok(self.inner)
    }

    /// Take `data`; queue (redacted) every line it completes.
    fn accept(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let buf = std::mem::take(&mut self.buf);
        let mut out = std::mem::take(&mut self.pending);
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + i;
            self.piece(&buf[start..end], &mut out);
            out.push(b'\n');
            start = end + 1;
        }
        let mut rest = &buf[start..];
        let overlap = self.overlap();
        let max = self.max_line.max(2 * overlap);
        while rest.len() > max {
            let mut cut = rest.len() - overlap;
            for span in self.redactor.spans(rest) {
                if span.start < cut && span.end > cut {
                    cut = span.end;
                }
            }
            self.piece(&rest[..cut], &mut out);
            rest = &rest[cut..];
        }
        self.buf = rest.to_vec();
        self.pending = out;
    }

    /// Queue the partial last line (no newline).
    fn end_partial(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if !buf.is_empty() {
            let mut out = std::mem::take(&mut self.pending);
            self.piece(&buf, &mut out);
            self.pending = out;
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_at < self.pending.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.pending_at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.pending_at += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.pending.clear();
        self.pending_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Redact one line (or piece of a long line), without its newline, into `out`.
    fn piece(&mut self, text: &[u8], out: &mut Vec<u8>) {
        let mut text = text;
        if self.in_private_key {
            out.extend_from_slice(PRIVATE_KEY_MARKER.as_bytes());
            match self.redactor.private_key_end(text) {
                Some(end) => {
                    self.in_private_key = false;
                    text = &text[end..];
                }
                None => return,
            }
        }
        out.extend_from_slice(&self.redactor.redact_bytes(text));
        self.in_private_key = self.redactor.opens_private_key(text);
    }
}

/// Writes are taken whole and queued redacted, one line at a time: `poll_write` first
/// drains what earlier writes queued. `poll_flush` writes out the *complete* lines only (a
/// partial line stays buffered, so a secret split across writes is still seen whole);
/// `poll_shutdown` also writes out the partial last line, then shuts `inner` down.
impl<W: AsyncWrite + Unpin> AsyncWrite for RedactingWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
        this.accept(data);
        // Start writing now; what does not go out yet goes on the next call.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.end_partial();
        match this.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_shutdown(cx),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(redactor: Redactor, writes: &[&[u8]], max: usize) -> String {
        let mut w = RedactingWriter::new(Vec::new(), Arc::new(redactor)).with_max_line(max);
        for data in writes {
            w.write_all(data).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let out = w.finish().await.unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn lines_split_across_writes() {
        let r = Redactor::new([("TOKEN", "s3cr3t-value")]);
        let out = run(
            r,
            &[b"one s3cr", b"3t-value two\nthree s3cr3t-", b"value"],
            DEFAULT_MAX_LINE,
        )
        .await;
        assert_eq!(out, "one [REDACTED:secret:TOKEN] two\nthree [REDACTED:secret:TOKEN]");
    }

    #[tokio::test]
    async fn private_key_over_lines() {
        let text = b"before\n-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBg\nkqhkiG9w0B==\n-----END PRIVATE KEY----- after\nlast\n";
        let out = run(Redactor::default(), &[text], DEFAULT_MAX_LINE).await;
        assert_eq!(
            out,
            "before\n[REDACTED:private-key]\n[REDACTED:private-key]\n[REDACTED:private-key]\n[REDACTED:private-key] after\nlast\n"
        );
    }

    #[tokio::test]
    async fn long_lines_keep_secrets_whole() {
        let secret = "0123456789abcdef";
        let r = Redactor::new([("S", secret)]);
        let mut line = Vec::new();
        for i in 0..20_000 {
            line.extend_from_slice(if i % 7 == 0 { secret.as_bytes() } else { b"xyz" });
        }
        line.push(b'\n');
        // Feed it in odd-sized pieces so cuts fall everywhere.
        let pieces: Vec<&[u8]> = line.chunks(1237).collect();
        let out = run(r, &pieces, 8192).await;
        assert!(!out.contains(secret));
        assert_eq!(out.matches("[REDACTED:secret:S]").count(), 20_000usize.div_ceil(7));
        assert!(out.ends_with('\n'));
    }

    #[tokio::test]
    async fn copy_from_reader() {
        let token = format!("ghp_{}", "a1".repeat(18));
        let input = format!("token {token}\nno newline at end");
        let mut w = RedactingWriter::new(Vec::new(), Arc::new(Redactor::default()));
        let n = w.copy_from(input.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, input.len() as u64);
        let out = w.finish().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, b"token [REDACTED:github-token]\nno newline at end");
    }

    #[tokio::test]
    async fn flush_keeps_the_partial_line_shutdown_writes_it() {
        let r = Arc::new(Redactor::new([("S", "abcdefgh")]));
        let mut w = RedactingWriter::new(Vec::new(), r);
        w.write_all(b"x abcd").await.unwrap();
        w.flush().await.unwrap();
        assert!(w.inner.is_empty());
        w.write_all(b"efgh y").await.unwrap();
        w.shutdown().await.unwrap();
        assert_eq!(w.inner, b"x [REDACTED:secret:S] y");
    }
}
