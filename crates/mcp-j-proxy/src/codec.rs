//! The line codec: one message per line, with a hard size limit and bounded memory.
//!
//! [`LineCodec`] is the sans-I/O core: it is fed byte slices (split anywhere) and yields
//! [`Frame`]s. [`LineReader`] drives it from an [`AsyncRead`] with a fixed read buffer.
//!
//! A line is everything before a `\n`; one `\r` right before the `\n` is removed too (CRLF
//! is tolerated). The limit counts the bytes before the `\n`. A line longer than the limit
//! is never buffered: its bytes are counted and thrown away as they arrive until its
//! newline, and then one [`Frame::Oversize`] stands for it. In "keep head" mode (used for
//! the server's stderr) the first `limit` bytes are kept so the caller can show them.
//!
//! Memory: the codec holds at most `limit` bytes of line (its buffer never grows past
//! that), the reader adds a fixed [`READ_CHUNK`]-byte read buffer. After a long line the
//! line buffer is shrunk back to [`IDLE_CAPACITY`], so an idle session stays small.

use std::io;
use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of the [`LineReader`]'s read buffer.
pub const READ_CHUNK: usize = 64 * 1024;

/// Capacity the line buffer is shrunk back to after a longer line.
pub const IDLE_CAPACITY: usize = 64 * 1024;

/// One framed line, or the trace of one that was too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its terminator (`\n` or `\r\n`). At end of input, an
    /// unterminated last line is also a `Line`.
    Line(&'a [u8]),
    /// A line longer than the limit; its content was discarded as it streamed through.
    Oversize {
        /// The first `limit` bytes when the codec keeps heads, else empty.
        head: &'a [u8],
        /// The line's full length in bytes, terminator excluded (`\r` included).
        len: u64,
    },
}

/// Where a found frame lives: decided first, borrowed afterwards (keeps the borrow
/// checker happy in the reader's loop).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// In the caller's input slice.
    Input(Range<usize>),
    /// In the codec's own line buffer.
    Buffered,
    /// An oversize line; the head (if kept) is in the line buffer.
    Oversize(u64),
}

/// The sans-I/O line splitter. See the module docs.
#[derive(Debug)]
pub struct LineCodec {
    limit: usize,
    keep_head: bool,
    line: Vec<u8>,
    /// Inside an oversize line: how many bytes of it have gone by so far.
    discarding: Option<u64>,
    /// A frame was handed out from `line`: clear it before taking more input.
    reset: bool,
    peak_capacity: usize,
}

impl LineCodec {
    /// A codec for lines of at most `limit` bytes. With `keep_head`, oversize lines keep
    /// their first `limit` bytes (for display); without, they are discarded whole.
    pub fn new(limit: usize, keep_head: bool) -> Self {
        LineCodec {
            limit,
            keep_head,
            line: Vec::new(),
            discarding: None,
            reset: false,
            peak_capacity: 0,
        }
    }

    /// The line limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The largest capacity the line buffer ever had.
    pub fn peak_capacity(&self) -> usize {
        self.peak_capacity
    }

    /// The line buffer's capacity now.
    pub fn capacity(&self) -> usize {
        self.line.capacity()
    }

    /// Feeds `input`. Returns how many bytes were consumed and, when a line ended inside
    /// them, its frame. Call again with the rest (`&input[consumed..]`) for more frames.
    /// Consumes everything when no line ends in `input`.
    pub fn feed<'a>(&'a mut self, input: &'a [u8]) -> (usize, Option<Frame<'a>>) {
        let (consumed, found) = self.scan(input);
        (consumed, found.map(|f| self.frame(f, input)))
    }

    /// End of input: the unterminated last line, if any (or the trace of an oversize one).
    pub fn finish(&mut self) -> Option<Frame<'_>> {
        self.begin();
        if let Some(len) = self.discarding.take() {
            self.reset = true;
            return Some(self.frame(Found::Oversize(len), &[]));
        }
        if self.line.is_empty() {
            return None;
        }
        strip_cr(&mut self.line);
        self.reset = true;
        Some(self.frame(Found::Buffered, &[]))
    }

    fn frame<'a>(&'a self, found: Found, input: &'a [u8]) -> Frame<'a> {
        match found {
            Found::Input(range) => Frame::Line(&input[range]),
            Found::Buffered => Frame::Line(&self.line),
            Found::Oversize(len) => Frame::Oversize {
                head: if self.keep_head { &self.line } else { &[] },
                len,
            },
        }
    }

    /// Drops the previous frame's bytes.
    fn begin(&mut self) {
        if self.reset {
            self.reset = false;
            self.line.clear();
            if self.line.capacity() > IDLE_CAPACITY {
                self.line.shrink_to(IDLE_CAPACITY);
            }
        }
    }

    fn scan(&mut self, input: &[u8]) -> (usize, Option<Found>) {
        self.begin();
        if input.is_empty() {
            return (0, None);
        }
        match memchr::memchr(b'\n', input) {
            Some(pos) => {
                let consumed = pos + 1;
                let part = &input[..pos];
                if let Some(seen) = self.discarding.take() {
                    self.reset = true;
                    return (consumed, Some(Found::Oversize(seen + pos as u64)));
                }
                if self.line.len() + pos > self.limit {
                    let len = (self.line.len() + pos) as u64;
                    if self.keep_head {
                        self.push_head(part);
                    }
                    self.reset = true;
                    return (consumed, Some(Found::Oversize(len)));
                }
                if self.line.is_empty() {
                    // The whole line is in the input: hand it out without copying.
                    let end = if pos > 0 && input[pos - 1] == b'\r' {
                        pos - 1
                    } else {
                        pos
                    };
                    return (consumed, Some(Found::Input(0..end)));
                }
                self.push(part);
                strip_cr(&mut self.line);
                self.reset = true;
                (consumed, Some(Found::Buffered))
            }
            None => {
                let n = input.len();
                if let Some(seen) = self.discarding.as_mut() {
                    *seen += n as u64;
                    return (n, None);
                }
                if self.line.len() + n > self.limit {
                    self.discarding = Some((self.line.len() + n) as u64);
                    if self.keep_head {
                        self.push_head(input);
                    } else {
                        self.line.clear();
                        if self.line.capacity() > IDLE_CAPACITY {
                            self.line.shrink_to(IDLE_CAPACITY);
                        }
                    }
                    return (n, None);
                }
                self.push(input);
                (n, None)
            }
        }
    }

    /// Appends what still fits under the limit (for heads of oversize lines).
    fn push_head(&mut self, data: &[u8]) {
        let room = self.limit.saturating_sub(self.line.len());
        let take = room.min(data.len());
        self.push(&data[..take]);
    }

    /// Appends `data` (the caller has checked it fits under the limit), growing the buffer
    /// geometrically but never past the limit.
    fn push(&mut self, data: &[u8]) {
        let need = self.line.len() + data.len();
        if need > self.line.capacity() {
            let target = (self.line.capacity() * 2).max(need).max(256).min(self.limit.max(need));
            self.line.reserve_exact(target - self.line.len());
        }
        self.line.extend_from_slice(data);
        self.peak_capacity = self.peak_capacity.max(self.line.capacity());
    }
}

fn strip_cr(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
}

/// Reads [`Frame`]s from an [`AsyncRead`] through a [`LineCodec`], with a fixed
/// [`READ_CHUNK`]-byte read buffer. Reads only when asked for the next frame: a caller
/// that stops asking stops reading (backpressure).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    codec: LineCodec,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader of lines of at most `limit` bytes; see [`LineCodec::new`] for `keep_head`.
    pub fn new(inner: R, limit: usize, keep_head: bool) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
            codec: LineCodec::new(limit, keep_head),
            eof: false,
        }
    }

    /// The next frame; `None` at end of input.
    pub async fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let found = loop {
            if self.eof {
                return Ok(self.codec.finish());
            }
            if self.start < self.end {
                let (consumed, found) = self.codec.scan(&self.buf[self.start..self.end]);
                let base = self.start;
                self.start += consumed;
                if let Some(found) = found {
                    // Ranges found in the input are relative to `base`.
                    break match found {
                        Found::Input(r) => Found::Input(base + r.start..base + r.end),
                        other => other,
                    };
                }
                continue;
            }
            self.start = 0;
            self.end = 0;
            let n = self.inner.read(&mut self.buf).await?;
            if n == 0 {
                self.eof = true;
            } else {
                self.end = n;
            }
        };
        Ok(Some(self.codec.frame(found, &self.buf)))
    }

    /// Drops the bytes of the frame last returned (the codec would at the next
    /// [`LineReader::next_frame`]), so that a caller about to wait holds no copy of a line
    /// it has already passed on.
    pub fn release(&mut self) {
        self.codec.begin();
    }

    /// Whether a whole line is already buffered, so the next [`LineReader::next_frame`]
    /// returns without reading (and so without blocking). Writers flush when it is not.
    pub fn has_complete_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.start..self.end]).is_some()
    }

    /// Bytes this reader holds on to at most: the read buffer plus the codec's peak line
    /// capacity.
    pub fn peak_memory(&self) -> usize {
        self.buf.len() + self.codec.peak_capacity()
    }

    /// The codec's line limit.
    pub fn limit(&self) -> usize {
        self.codec.limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(frame: Frame<'_>) -> (Vec<u8>, Option<u64>) {
        match frame {
            Frame::Line(l) => (l.to_vec(), None),
            Frame::Oversize { head, len } => (head.to_vec(), Some(len)),
        }
    }

    fn run(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<(Vec<u8>, Option<u64>)> {
        let mut out = Vec::new();
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            while !rest.is_empty() {
                let (n, frame) = codec.feed(rest);
                if let Some(f) = frame {
                    out.push(owned(f));
                }
                rest = &rest[n..];
            }
        }
        if let Some(f) = codec.finish() {
            out.push(owned(f));
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        let mut c = LineCodec::new(100, false);
        let got = run(&mut c, &[b"ab\r\ncd\n\nef"]);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), None),
                (b"cd".to_vec(), None),
                (b"".to_vec(), None),
                (b"ef".to_vec(), None)
            ]
        );
    }

    #[test]
    fn joins_lines_split_across_chunks() {
        let mut c = LineCodec::new(100, false);
        let got = run(&mut c, &[b"a", b"bc\r", b"\nd", b"e\n"]);
        assert_eq!(got, vec![(b"abc".to_vec(), None), (b"de".to_vec(), None)]);
    }

    #[test]
    fn oversize_line_is_discarded_and_next_line_survives() {
        let mut c = LineCodec::new(4, false);
        let got = run(&mut c, &[b"123", b"456", b"78\nok\n"]);
        assert_eq!(got, vec![(vec![], Some(8)), (b"ok".to_vec(), None)]);
        assert!(c.peak_capacity() <= 4);
    }

    #[test]
    fn keep_head_keeps_the_first_limit_bytes() {
        let mut c = LineCodec::new(4, true);
        let got = run(&mut c, &[b"12", b"3456789\nxy\n"]);
        assert_eq!(got, vec![(b"1234".to_vec(), Some(9)), (b"xy".to_vec(), None)]);
    }

    #[test]
    fn exactly_the_limit_is_allowed() {
        let mut c = LineCodec::new(3, false);
        let got = run(&mut c, &[b"abc\nabcd\n"]);
        assert_eq!(got, vec![(b"abc".to_vec(), None), (vec![], Some(4))]);
    }

    #[test]
    fn oversize_at_eof_is_reported() {
        let mut c = LineCodec::new(2, false);
        let got = run(&mut c, &[b"abcdef"]);
        assert_eq!(got, vec![(vec![], Some(6))]);
    }

    #[tokio::test]
    async fn reader_streams_a_50_mib_line_in_bounded_memory() {
        let limit = 1024 * 1024;
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let chunk = vec![b'x'; 1024 * 1024];
            for _ in 0..50 {
                w.write_all(&chunk).await.unwrap();
            }
            w.write_all(b"\n{\"after\":1}\n").await.unwrap();
        });
        let mut reader = LineReader::new(r, limit, false);
        match reader.next_frame().await.unwrap() {
            Some(Frame::Oversize { head, len }) => {
                assert!(head.is_empty());
                assert_eq!(len, 50 * 1024 * 1024);
            }
            other => panic!("expected oversize, got {other:?}"),
        }
        assert_eq!(reader.next_frame().await.unwrap(), Some(Frame::Line(b"{\"after\":1}")));
        assert_eq!(reader.next_frame().await.unwrap(), None);
        writer.await.unwrap();
        assert!(
            reader.peak_memory() <= READ_CHUNK + limit,
            "peak {} over bound",
            reader.peak_memory()
        );
    }
}
