//! The I/O around the [`Session`]: three concurrent loops on one task (client → server,
//! server → client, server stderr), each reading only when its previous message has been
//! written, so a peer that stops reading stops the flow instead of growing a queue.

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};

use crate::codec::{Frame, LineReader};
use crate::config::ProxyConfig;
use crate::event::EventSink;
use crate::message::IdKey;
use crate::session::{Outcome, Session, sanitize};

/// Write buffer per output stream; larger messages bypass it.
const WRITE_BUFFER: usize = 64 * 1024;

/// How long the end of the session waits for a client message already taken in to be
/// dealt with (its answer written) before returning.
const CLIENT_SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// How the session ended. Either way [`run_proxy`] returned because the server's stdout
/// reached end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The server's stdout ended while the client was still connected.
    ServerClosedFirst,
    /// The client closed our stdin first; the server's stdin was closed then, and its
    /// stdout has ended since.
    ClientClosedFirst,
}

/// What can make [`run_proxy`] fail. Peers going away is not a failure: a client that
/// stops reading or a server that stops reading its input is handled and logged.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Reading the server's stdout failed (not end of file: an I/O error). Pending client
    /// requests were answered before returning.
    #[error("reading the MCP server's stdout failed")]
    ServerRead(#[source] io::Error),
}

/// Runs the proxy until the server's stdout ends. See the crate docs for every rule.
///
/// - `client_in` / `client_out`: the MCP client (our stdin / stdout).
/// - `server_in` / `server_out` / `server_err`: the server's stdin / stdout / stderr.
/// - `our_stderr`: where server stderr lines (prefixed) and the proxy's own log lines go.
/// - `events`: one [`crate::ProxyEvent`] per decision.
///
/// When the client's input ends first, the server's stdin is shut down and dropped at
/// once, and server output keeps flowing to the client until the server's stdout ends
/// (the caller runs the grace period → SIGTERM → SIGKILL meanwhile). When the server's
/// stdout ends, every client request still pending is answered with
/// [`ProxyConfig::pending_error_code`] before this returns.
#[allow(clippy::too_many_arguments)]
pub async fn run_proxy<CI, CO, SI, SO, SE, LOG>(
    config: &ProxyConfig,
    client_in: CI,
    client_out: CO,
    server_in: SI,
    server_out: SO,
    server_err: SE,
    our_stderr: LOG,
    events: &dyn EventSink,
) -> Result<Ended, ProxyError>
where
    CI: AsyncRead + Unpin,
    CO: AsyncWrite + Unpin,
    SI: AsyncWrite + Unpin,
    SO: AsyncRead + Unpin,
    SE: AsyncRead + Unpin,
    LOG: AsyncWrite + Unpin,
{
    let mut client = LineReader::new(client_in, config.max_message_bytes, false);
    let mut server = LineReader::new(server_out, config.max_message_bytes, false);
    let mut stderr = LineReader::new(server_err, config.stderr_line_bytes, true);
    run_readers(
        config,
        &mut client,
        client_out,
        server_in,
        &mut server,
        &mut stderr,
        our_stderr,
        events,
    )
    .await
}

/// [`run_proxy`] with the readers supplied, so tests can look at their memory afterwards.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_readers<CI, CO, SI, SO, SE, LOG>(
    config: &ProxyConfig,
    client: &mut LineReader<CI>,
    client_out: CO,
    server_in: SI,
    server: &mut LineReader<SO>,
    stderr: &mut LineReader<SE>,
    our_stderr: LOG,
    events: &dyn EventSink,
) -> Result<Ended, ProxyError>
where
    CI: AsyncRead + Unpin,
    CO: AsyncWrite + Unpin,
    SI: AsyncWrite + Unpin,
    SO: AsyncRead + Unpin,
    SE: AsyncRead + Unpin,
    LOG: AsyncWrite + Unpin,
{
    let io = Io {
        session: Mutex::new(Session::new(config)),
        client_out: tokio::sync::Mutex::new(ClientOut {
            w: BufWriter::with_capacity(WRITE_BUFFER, client_out),
            dead: false,
        }),
        server_in: tokio::sync::Mutex::new(Some(BufWriter::with_capacity(WRITE_BUFFER, server_in))),
        log: tokio::sync::Mutex::new(our_stderr),
        client_turn: tokio::sync::Mutex::new(()),
        pending_space: tokio::sync::Notify::new(),
        unflushed: tokio::sync::Mutex::new(Vec::new()),
        events,
        stderr_prefix: &config.stderr_prefix,
    };

    let client_fut = io.client_loop(client);
    let server_fut = io.server_loop(server);
    let stderr_fut = io.stderr_loop(stderr);
    tokio::pin!(client_fut, server_fut, stderr_fut);
    let mut client_done = false;
    let mut stderr_done = false;
    let result = loop {
        tokio::select! {
            r = &mut server_fut => break r,
            () = &mut client_fut, if !client_done => client_done = true,
            () = &mut stderr_fut, if !stderr_done => stderr_done = true,
        }
    };
    if !stderr_done {
        // The server's last words (a crash trace) usually follow its stdout closing.
        let _ = tokio::time::timeout(config.stderr_drain, &mut stderr_fut).await;
    }
    result.map(|()| {
        if client_done {
            Ended::ClientClosedFirst
        } else {
            Ended::ServerClosedFirst
        }
    })
}

struct ClientOut<W> {
    w: BufWriter<W>,
    dead: bool,
}

struct Io<'a, CO, SI, LOG> {
    session: Mutex<Session>,
    client_out: tokio::sync::Mutex<ClientOut<CO>>,
    /// `None` once closed (client EOF) or broken (the server stopped reading).
    server_in: tokio::sync::Mutex<Option<BufWriter<SI>>>,
    log: tokio::sync::Mutex<LOG>,
    /// Held by the client loop from taking a message in until it is dealt with; taken by
    /// the server loop at the end so such a message is answered before returning.
    client_turn: tokio::sync::Mutex<()>,
    /// Signalled when the server answers: the client loop may have room to read again.
    pending_space: tokio::sync::Notify,
    /// Client requests written into the server's buffer since its last successful flush:
    /// if the flush fails, these are the ones to answer with an error.
    unflushed: tokio::sync::Mutex<Vec<IdKey>>,
    events: &'a dyn EventSink,
    stderr_prefix: &'a str,
}

/// Buffered: the loops flush when their input has no complete line left (see
/// [`Io::flush_if_idle`]), so a burst of messages costs one write, not one per message.
async fn write_line<W: AsyncWrite + Unpin>(w: &mut BufWriter<W>, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes).await?;
    w.write_all(b"\n").await
}

impl<CO, SI, LOG> Io<'_, CO, SI, LOG>
where
    CO: AsyncWrite + Unpin,
    SI: AsyncWrite + Unpin,
    LOG: AsyncWrite + Unpin,
{
    fn session(&self) -> MutexGuard<'_, Session> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping would; carry on with them.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn log(&self, text: &str) {
        let mut line = Vec::with_capacity(text.len() + 8);
        line.extend_from_slice(b"mcp-j: ");
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        let mut log = self.log.lock().await;
        let _ = log.write_all(&line).await;
        let _ = log.flush().await;
    }

    async fn write_client(&self, bytes: &[u8]) {
        let mut out = self.client_out.lock().await;
        if out.dead {
            return;
        }
        if let Err(e) = write_line(&mut out.w, bytes).await {
            out.dead = true;
            drop(out);
            self.log(&format!(
                "writing to the client failed ({e}); discarding what is left for it"
            ))
            .await;
        }
    }

    /// Writes to the server's stdin; `false` when it is closed or the write failed.
    async fn write_server(&self, bytes: &[u8]) -> bool {
        let mut guard = self.server_in.lock().await;
        let Some(w) = guard.as_mut() else { return false };
        match write_line(w, bytes).await {
            Ok(()) => true,
            Err(e) => {
                *guard = None;
                drop(guard);
                self.log(&format!(
                    "writing to the MCP server failed ({e}); it no longer reads requests"
                ))
                .await;
                false
            }
        }
    }

    /// Flush both outputs unless `reader` already holds another whole line: the loop is
    /// about to read, and may block, so nothing may stay in a buffer.
    async fn flush_if_idle<R: AsyncRead + Unpin>(&self, reader: &LineReader<R>) {
        if !reader.has_complete_line() {
            self.flush_outputs().await;
        }
    }

    /// Answer a request that could not be written to the server.
    async fn server_input_failed(&self, request: Option<&IdKey>) {
        let failed = self.session().server_input_failed(request);
        if let Some((reply, event)) = failed {
            self.events.event(&event);
            self.write_client(&reply).await;
        }
    }

    async fn flush_outputs(&self) {
        // The server first: a failed flush answers the requests it held, to the client.
        let mut server = self.server_in.lock().await;
        let unsent = match server.as_mut() {
            Some(w) => match w.flush().await {
                Ok(()) => {
                    self.unflushed.lock().await.clear();
                    None
                }
                Err(e) => {
                    *server = None;
                    Some(e)
                }
            },
            None => None,
        };
        drop(server);
        if let Some(e) = unsent {
            self.log(&format!(
                "writing to the MCP server failed ({e}); it no longer reads requests"
            ))
            .await;
            let requests = std::mem::take(&mut *self.unflushed.lock().await);
            for request in &requests {
                self.server_input_failed(Some(request)).await;
            }
        }
        let mut out = self.client_out.lock().await;
        if !out.dead
            && let Err(e) = out.w.flush().await
        {
            out.dead = true;
            drop(out);
            self.log(&format!(
                "writing to the client failed ({e}); discarding what is left for it"
            ))
            .await;
        }
    }

    async fn apply(&self, outcome: Outcome, line: &[u8]) {
        if let Some(event) = &outcome.event {
            self.events.event(event);
        }
        if let Some(text) = &outcome.log {
            self.log(text).await;
        }
        if let Some(payload) = &outcome.to_server {
            if self.write_server(payload.bytes(line)).await {
                if let Some(request) = outcome.request.clone() {
                    self.unflushed.lock().await.push(request);
                }
            } else {
                self.server_input_failed(outcome.request.as_ref()).await;
            }
        }
        if let Some(payload) = &outcome.to_client {
            self.write_client(payload.bytes(line)).await;
        }
    }

    async fn client_loop<CI: AsyncRead + Unpin>(&self, reader: &mut LineReader<CI>) {
        loop {
            // Backpressure: with the pending table full, wait for answers before reading
            // the client again (after flushing, so the server has what it must answer).
            loop {
                let space = self.pending_space.notified();
                if !self.session().client_pending_full() {
                    break;
                }
                self.flush_outputs().await;
                space.await;
            }
            let frame = match reader.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.log(&format!(
                        "reading from the client failed ({e}); treating it as end of input"
                    ))
                    .await;
                    break;
                }
            };
            let _turn = self.client_turn.lock().await;
            let line = match frame {
                Frame::Line(line) => line,
                Frame::Oversize { .. } => &[],
            };
            let outcome = self.session().client_frame(&frame);
            self.apply(outcome, line).await;
            self.flush_if_idle(reader).await;
        }
        self.flush_outputs().await;
        // The client hung up: close the server's stdin now, so it can exit on its own.
        let writer = self.server_in.lock().await.take();
        if let Some(mut w) = writer {
            let _ = w.shutdown().await;
        }
    }

    async fn server_loop<SO: AsyncRead + Unpin>(&self, reader: &mut LineReader<SO>) -> Result<(), ProxyError> {
        let result = loop {
            let frame = match reader.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(ProxyError::ServerRead(e)),
            };
            let line = match frame {
                Frame::Line(line) => line,
                Frame::Oversize { .. } => &[],
            };
            let outcome = self.session().server_frame(&frame);
            self.apply(outcome, line).await;
            self.pending_space.notify_waiters();
            self.flush_if_idle(reader).await;
        };
        self.flush_outputs().await;
        let replies = self.session().server_closed();
        for (reply, event) in replies {
            self.events.event(&event);
            self.write_client(&reply).await;
        }
        self.flush_outputs().await;
        // A client message taken in concurrently is answered (the session now answers
        // requests itself) before we return; don't wait on a stuck write for long.
        let _turn = tokio::time::timeout(CLIENT_SETTLE, self.client_turn.lock()).await;
        result
    }

    async fn stderr_loop<SE: AsyncRead + Unpin>(&self, reader: &mut LineReader<SE>) {
        loop {
            let text = match reader.next_frame().await {
                Ok(Some(Frame::Line(line))) => sanitize(line),
                Ok(Some(Frame::Oversize { head, len })) => {
                    let cut = len.saturating_sub(head.len() as u64);
                    format!("{} [mcp-j: line cut, {cut} more bytes dropped]", sanitize(head))
                }
                Ok(None) | Err(_) => break,
            };
            let mut line = Vec::with_capacity(self.stderr_prefix.len() + text.len() + 1);
            line.extend_from_slice(self.stderr_prefix.as_bytes());
            line.extend_from_slice(text.as_bytes());
            line.push(b'\n');
            let mut log = self.log.lock().await;
            let _ = log.write_all(&line).await;
            let _ = log.flush().await;
        }
    }
}
