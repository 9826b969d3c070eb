//! The I/O around the [`Session`]: two readers (the client's input, the server's output),
//! two writers (to the client, to the server) and the relay of the server's stderr, as
//! concurrent futures on one task.
//!
//! A reader never writes. It decides on each line and queues what is to be sent in the
//! [`Outbox`] of that output stream, and the stream's writer drains its outbox. So a write
//! that waits (a peer not reading) holds up only what is queued behind it, never the
//! reading of the other direction: while the proxy waits for the server to take the next
//! request, it keeps reading and relaying the server's answers, and the other way round.
//!
//! Each outbox is bounded. Before a reader reads the next line of its direction (the
//! client's messages to the server; the server's messages to the client), it drops its copy
//! of the last one and waits until fewer than [`OUTBOX_BYTES`] of that direction are queued
//! or being written: that is the backpressure. A peer that stops reading stops the flow
//! towards it, and only that flow, and a direction holds at most the line being read plus
//! what its outbox holds (under the bound, plus one message). The proxy's own answers to the stream's peer, queued by the *other* reader (an
//! error answer to a client line, the refusal of a denied server request), are bounded in
//! number instead ([`ANSWER_BACKLOG`]), so that a reader never waits on the bytes of the
//! opposite direction; only a peer that stops reading its answers altogether for that many
//! of them stops the reader that makes them.

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::codec::{Frame, LineReader};
use crate::config::ProxyConfig;
use crate::event::EventSink;
use crate::message::IdKey;
use crate::pins::ToolPins;
use crate::session::{Outcome, Session, sanitize};

/// Bytes of a direction's own messages an outbox takes while earlier ones are queued or
/// being written (one message is always taken when the outbox is empty, whatever its size).
pub const OUTBOX_BYTES: usize = 256 * 1024;

/// How many of the proxy's own answers may wait in an outbox before the reader making
/// them waits too.
pub const ANSWER_BACKLOG: usize = 1024;

/// Capacity an outbox's buffers are shrunk back to after a large message.
const IDLE_CAPACITY: usize = 2 * OUTBOX_BYTES;

/// How long the end of the session waits for a client message already taken in to be
/// dealt with (its answer queued) before returning.
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
    run_proxy_with_pins(
        config, client_in, client_out, server_in, server_out, server_err, our_stderr, events, None,
    )
    .await
}

/// [`run_proxy`] with tool pinning: every listed tool, prompt and resource template is
/// checked with `pins` ([`ToolPins`]), changed ones are hidden and calls to them refused,
/// and a tool call before any listing makes the proxy list the tools first (crate docs,
/// *Tool pinning*). `None` is [`run_proxy`].
#[allow(clippy::too_many_arguments)]
pub async fn run_proxy_with_pins<CI, CO, SI, SO, SE, LOG>(
    config: &ProxyConfig,
    client_in: CI,
    client_out: CO,
    server_in: SI,
    server_out: SO,
    server_err: SE,
    our_stderr: LOG,
    events: &dyn EventSink,
    pins: Option<&dyn ToolPins>,
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
        pins,
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
    pins: Option<&dyn ToolPins>,
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
        session: Mutex::new(Session::with_pins(config, pins)),
        to_server: Outbox::default(),
        to_client: Outbox::default(),
        log: tokio::sync::Mutex::new(our_stderr),
        client_turn: tokio::sync::Mutex::new(()),
        pending_space: Notify::new(),
        pin_started: Notify::new(),
        server_turn: tokio::sync::Mutex::new(()),
        pin_timeout: config.pin_listing_timeout,
        events,
        stderr_prefix: &config.stderr_prefix,
    };

    let client_fut = io.client_reader(client);
    let server_fut = io.server_reader(server);
    let stderr_fut = io.stderr_loop(stderr);
    let to_server_fut = io.server_writer(server_in);
    let to_client_fut = io.client_writer(client_out);
    let pin_fut = io.pin_watch();
    tokio::pin!(
        client_fut,
        server_fut,
        stderr_fut,
        to_server_fut,
        to_client_fut,
        pin_fut
    );
    let mut client_done = false;
    let mut stderr_done = false;
    let mut to_server_done = false;
    let mut to_client_done = false;
    let mut result: Option<(Result<(), ProxyError>, bool)> = None;
    // Until the server's output has ended and everything queued for the client is written
    // (or the client is gone).
    while result.is_none() || !to_client_done {
        tokio::select! {
            r = &mut server_fut, if result.is_none() => result = Some((r, client_done)),
            () = &mut to_client_fut, if !to_client_done => to_client_done = true,
            () = &mut client_fut, if !client_done => client_done = true,
            () = &mut to_server_fut, if !to_server_done => to_server_done = true,
            () = &mut stderr_fut, if !stderr_done => stderr_done = true,
            () = &mut pin_fut => {}
        }
    }
    if !stderr_done {
        // The server's last words (a crash trace) usually follow its stdout closing.
        let _ = tokio::time::timeout(config.stderr_drain, &mut stderr_fut).await;
    }
    let (result, client_closed_first) = result.unwrap_or((Ok(()), false));
    result.map(|()| {
        if client_closed_first {
            Ended::ClientClosedFirst
        } else {
            Ended::ServerClosedFirst
        }
    })
}

/// Which queue-bound applies to a message in an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A message of the outbox's own direction, queued by the reader that feeds it:
    /// bounded by [`OUTBOX_BYTES`].
    Relay,
    /// The proxy's answer to the outbox's peer, queued by the other reader: bounded by
    /// [`ANSWER_BACKLOG`], never by the bytes of the direction.
    Answer,
}

/// Why an [`Outbox`] did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The stream was closed on purpose (the client hung up, or the session is over).
    Closed,
    /// Writing to the stream failed: its peer no longer reads.
    Broken,
}

/// The bytes waiting for one output stream: whole lines, in order, and the client requests
/// among them (answered with an error if the write fails).
#[derive(Default)]
struct Outbox {
    state: Mutex<OutboxState>,
    /// Wakes the writer: something was queued, or the outbox was closed.
    ready: Notify,
    /// Wakes producers: room was made.
    space: Notify,
}

#[derive(Default)]
struct OutboxState {
    queued: Vec<u8>,
    requests: Vec<IdKey>,
    /// [`Class::Relay`] bytes queued, and being written by the writer.
    relay_queued: usize,
    relay_writing: usize,
    /// [`Class::Answer`] messages queued.
    answers: usize,
    closed: bool,
    broken: bool,
}

impl Outbox {
    fn state(&self) -> MutexGuard<'_, OutboxState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the outbox has room for [`Class::Relay`] bytes (or is closed or broken).
    /// The reader feeding the outbox calls this before reading its next line.
    async fn wait_for_room(&self) {
        loop {
            let space = self.space.notified();
            {
                let s = self.state();
                if s.closed || s.broken || s.relay_queued + s.relay_writing < OUTBOX_BYTES {
                    return;
                }
            }
            space.await;
        }
    }

    /// Queues `line` (a newline is added). A [`Class::Relay`] message is always taken (its
    /// reader waited for room before reading it); an [`Class::Answer`] waits while
    /// [`ANSWER_BACKLOG`] answers are queued.
    async fn push(&self, class: Class, line: &[u8], request: Option<&IdKey>) -> Result<(), Refused> {
        loop {
            let space = self.space.notified();
            {
                let mut s = self.state();
                if s.broken {
                    return Err(Refused::Broken);
                }
                if s.closed {
                    return Err(Refused::Closed);
                }
                let room = match class {
                    Class::Relay => true,
                    Class::Answer => s.answers < ANSWER_BACKLOG,
                };
                if room {
                    s.queued.extend_from_slice(line);
                    s.queued.push(b'\n');
                    match class {
                        Class::Relay => s.relay_queued += line.len() + 1,
                        Class::Answer => s.answers += 1,
                    }
                    if let Some(request) = request {
                        s.requests.push(request.clone());
                    }
                    drop(s);
                    self.ready.notify_one();
                    return Ok(());
                }
            }
            space.await;
        }
    }

    /// No more messages: the writer ends once what is queued is written.
    fn close(&self) {
        self.state().closed = true;
        self.ready.notify_one();
        self.space.notify_waiters();
    }

    /// Writes everything queued to `w`, batch by batch, until the outbox is closed and
    /// empty. On a failed write the outbox breaks (later pushes are refused) and the error
    /// comes back with the client requests that were in the failed batch or still queued.
    async fn drain<W: AsyncWrite + Unpin>(&self, w: &mut W) -> Result<(), (io::Error, Vec<IdKey>)> {
        let mut batch: Vec<u8> = Vec::new();
        loop {
            let requests = loop {
                let ready = self.ready.notified();
                {
                    let mut s = self.state();
                    if !s.queued.is_empty() {
                        std::mem::swap(&mut s.queued, &mut batch);
                        s.relay_writing = std::mem::take(&mut s.relay_queued);
                        s.answers = 0;
                        break std::mem::take(&mut s.requests);
                    }
                    if s.closed {
                        return Ok(());
                    }
                }
                ready.await;
            };
            // Answers taken out: room for more of them.
            self.space.notify_waiters();
            let written = async {
                w.write_all(&batch).await?;
                w.flush().await
            }
            .await;
            batch.clear();
            if batch.capacity() > IDLE_CAPACITY {
                batch.shrink_to(IDLE_CAPACITY);
            }
            let mut s = self.state();
            s.relay_writing = 0;
            if let Err(e) = written {
                s.broken = true;
                let mut failed = requests;
                failed.append(&mut s.requests);
                s.queued = Vec::new();
                s.relay_queued = 0;
                s.answers = 0;
                drop(s);
                self.space.notify_waiters();
                return Err((e, failed));
            }
            drop(s);
            self.space.notify_waiters();
        }
    }
}

struct Io<'a, LOG> {
    session: Mutex<Session<'a>>,
    to_server: Outbox,
    to_client: Outbox,
    log: tokio::sync::Mutex<LOG>,
    /// Held by the client reader from taking a message in until it is dealt with; taken
    /// by the server reader at the end so such a message is answered before returning.
    client_turn: tokio::sync::Mutex<()>,
    /// Held while a server message (or a pin-listing timeout) is taken into the session and
    /// acted on: the client reader, at the client's end of input, checks between two of
    /// them whether calls held for the proxy's own tool listing are still to be sent.
    server_turn: tokio::sync::Mutex<()>,
    /// Signalled when client requests leave the pending table: the client reader may
    /// have room to read again.
    pending_space: Notify,
    /// Signalled after each client message: the proxy's own tool listing may have begun.
    pin_started: Notify,
    /// [`ProxyConfig::pin_listing_timeout`].
    pin_timeout: std::time::Duration,
    events: &'a dyn EventSink,
    stderr_prefix: &'a str,
}

/// Which reader a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Client,
    Server,
}

impl<'a, LOG: AsyncWrite + Unpin> Io<'a, LOG> {
    fn session(&self) -> MutexGuard<'_, Session<'a>> {
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

    /// Answer a client request that will not reach the server (its stdin is broken).
    async fn server_input_failed(&self, request: &IdKey) {
        let failed = self.session().server_input_failed(Some(request));
        if let Some((reply, event)) = failed {
            self.events.event(&event);
            self.pending_space.notify_waiters();
            let _ = self.to_client.push(Class::Answer, &reply, None).await;
        }
    }

    async fn apply(&self, outcome: Outcome, line: &[u8], from: Source) {
        if let Some(event) = &outcome.event {
            self.events.event(event);
        }
        for event in &outcome.more_events {
            self.events.event(event);
        }
        if let Some(text) = &outcome.log {
            self.log(text).await;
        }
        if let Some(payload) = &outcome.to_server {
            let class = if from == Source::Client {
                Class::Relay
            } else {
                Class::Answer
            };
            let queued = self
                .to_server
                .push(class, payload.bytes(line), outcome.request.as_ref())
                .await;
            if queued.is_err()
                && let Some(request) = &outcome.request
            {
                self.server_input_failed(request).await;
            }
        }
        if let Some(payload) = &outcome.to_client {
            let class = if from == Source::Server {
                Class::Relay
            } else {
                Class::Answer
            };
            // Refused: the client is gone (logged once by its writer).
            let _ = self.to_client.push(class, payload.bytes(line), None).await;
        }
        // Tool pinning: client calls that were held, now forwarded or answered.
        for (bytes, request) in &outcome.more_to_server {
            if self.to_server.push(Class::Relay, bytes, Some(request)).await.is_err() {
                self.server_input_failed(request).await;
            }
        }
        for bytes in &outcome.more_to_client {
            let _ = self.to_client.push(Class::Answer, bytes, None).await;
        }
        if !outcome.more_to_client.is_empty() {
            self.pending_space.notify_waiters();
        }
    }

    async fn client_reader<CI: AsyncRead + Unpin>(&self, reader: &mut LineReader<CI>) {
        loop {
            // Backpressure: with the pending table full, wait for answers before reading
            // the client again.
            loop {
                let space = self.pending_space.notified();
                if !self.session().client_pending_full() {
                    break;
                }
                space.await;
            }
            reader.release();
            self.to_server.wait_for_room().await;
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
            self.apply(outcome, line, Source::Client).await;
            self.pin_started.notify_waiters();
        }
        // Calls held for the proxy's own tool listing still go to the server: its stdin
        // stays open until that listing has ended (answered, failed, timed out, or the
        // server gone; every one of those signals `pending_space`).
        loop {
            let settled = self.pending_space.notified();
            {
                let _server = self.server_turn.lock().await;
                if self.session().pin_listing_in_flight().is_none() {
                    break;
                }
            }
            settled.await;
        }
        // The client hung up: the server's stdin is closed once what is queued for it is
        // written, so the server can exit on its own.
        self.to_server.close();
    }

    async fn server_writer<SI: AsyncWrite + Unpin>(&self, mut server_in: SI) {
        match self.to_server.drain(&mut server_in).await {
            Ok(()) => {
                let _ = server_in.shutdown().await;
            }
            Err((e, requests)) => {
                self.log(&format!(
                    "writing to the MCP server failed ({e}); it no longer reads requests"
                ))
                .await;
                // From now on the session answers client requests itself.
                let _ = self.session().server_input_failed(None);
                for request in &requests {
                    self.server_input_failed(request).await;
                }
            }
        }
        // Dropping it closes the server's stdin.
        drop(server_in);
    }

    async fn client_writer<CO: AsyncWrite + Unpin>(&self, mut client_out: CO) {
        if let Err((e, _)) = self.to_client.drain(&mut client_out).await {
            self.log(&format!(
                "writing to the client failed ({e}); discarding what is left for it"
            ))
            .await;
        }
    }

    async fn server_reader<SO: AsyncRead + Unpin>(&self, reader: &mut LineReader<SO>) -> Result<(), ProxyError> {
        let result = loop {
            reader.release();
            self.to_client.wait_for_room().await;
            let frame = match reader.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(e) => break Err(ProxyError::ServerRead(e)),
            };
            let line = match frame {
                Frame::Line(line) => line,
                Frame::Oversize { .. } => &[],
            };
            {
                let _turn = self.server_turn.lock().await;
                let outcome = self.session().server_frame(&frame);
                self.apply(outcome, line, Source::Server).await;
            }
            self.pending_space.notify_waiters();
        };
        let replies = self.session().server_closed();
        self.pending_space.notify_waiters();
        for (reply, event) in replies {
            self.events.event(&event);
            let _ = self.to_client.push(Class::Relay, &reply, None).await;
        }
        // A client message taken in concurrently is answered (the session now answers
        // requests itself) before the client's stream is closed; don't wait on a stuck
        // write for long.
        let _turn = tokio::time::timeout(CLIENT_SETTLE, self.client_turn.lock()).await;
        self.to_client.close();
        result
    }

    /// Tool pinning: refuses the calls held for the proxy's own tool listing when it takes
    /// longer than [`ProxyConfig::pin_listing_timeout`]. Never ends.
    async fn pin_watch(&self) {
        loop {
            let started = self.pin_started.notified();
            let in_flight = self.session().pin_listing_in_flight();
            match in_flight {
                None => started.await,
                Some((seq, began)) => {
                    let deadline = tokio::time::Instant::from_std(began) + self.pin_timeout;
                    tokio::time::sleep_until(deadline).await;
                    {
                        let _turn = self.server_turn.lock().await;
                        let outcome = self.session().pin_listing_timed_out(seq);
                        self.apply(outcome, &[], Source::Server).await;
                    }
                    self.pending_space.notify_waiters();
                }
            }
        }
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
