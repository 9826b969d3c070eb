//! # mcp-j-proxy: the strict JSON-RPC / MCP proxy of `mcp-j run`
//!
//! ## Overview
//! [`run_proxy`] stands between an MCP client (our stdin/stdout) and an untrusted MCP
//! server speaking the stdio transport (its stdin/stdout/stderr). Every line in either
//! direction is framed by a bounded [`codec`], validated as one JSON-RPC 2.0 message
//! ([`message`]), and decided on by the [`session`] (pending requests per direction, tool
//! policy, server-request policy). Messages that pass are forwarded as their original
//! bytes; only what the proxy rewrites is re-serialised, and even then every value it does
//! not touch keeps its original text. Each decision becomes one [`ProxyEvent`] for the
//! audit layer. The crate knows nothing of the sandbox; the caller spawns the server and
//! hands over its pipes.
//!
//! ## Modules
//! - [`codec`]: the bounded line framing.
//! - [`message`]: one line validated as one JSON-RPC 2.0 message; ids and error codes.
//! - [`session`]: the decisions, without I/O; its `pending` part keeps the request ids of
//!   both directions (pending tables, forged and late responses), its `policy` part the
//!   MCP policy (tools, client capabilities, server requests), its `pins` part tool
//!   pinning.
//! - `json`: generic JSON helpers: the depth scan, one object level kept as raw text, the
//!   responses the proxy writes, and the RFC 8785 canonical form behind `args_sha256`.
//! - [`config`]: [`ProxyConfig`] and the policies; [`event`]: [`ProxyEvent`] for the audit;
//!   [`pins`]: [`ToolPins`], the caller's side of tool pinning.
//! - `proxy`: [`run_proxy`], the I/O: readers, outboxes, writers, the stderr relay.
//!
//! ## The rules
//! **Framing.** One message per line (`\n`; a `\r` before it is removed). A line longer
//! than [`ProxyConfig::max_message_bytes`] (default 5 MiB, both directions) is never
//! buffered: it is read through and discarded up to its newline. From the client it is
//! answered `-32600` with `"id": null` (its id cannot be read); from the server it is
//! dropped, logged and reported. The session goes on. Blank lines are ignored.
//!
//! **Client → server.** Not UTF-8 or not JSON: `-32700`, `"id": null`. JSON that is not a
//! single JSON-RPC 2.0 message (`jsonrpc` not exactly `"2.0"`, a batch array, a non-object,
//! an id that is not a string or integer, a non-string method, both `result` and `error`,
//! duplicate members, …): `-32600` with the request's id when it can be read, else `null`.
//! Nesting deeper than [`ProxyConfig::max_depth`] (default 64): `-32600`, found by a byte
//! scan before any parser runs (and no parser here recurses). Nothing invalid is forwarded.
//! A request whose id is already pending is refused (`-32600`). While
//! [`ProxyConfig::max_pending`] requests are pending the proxy stops reading the client
//! (backpressure); a request that still gets past that is answered with
//! [`ProxyConfig::pending_error_code`] ("too many requests pending").
//!
//! **Server → client.** Anything that is not a valid message (garbage, logs printed to
//! stdout, oversize lines, batches) is dropped, logged on our stderr and reported; the
//! client never sees it.
//!
//! **Request ids per direction.** Client requests and server requests are tracked in
//! separate tables (their ids may collide). A server response must match a pending client
//! request, else it is dropped: a hostile server cannot inject responses. The same holds
//! for client responses to server requests.
//!
//! **Tools.** With [`ToolPolicy`] (`--allow-tool`, `--deny-tool`), a `tools/call` for a
//! tool that is not allowed is answered `-32602` "tool not allowed" and never reaches the
//! server; the answer is the same whether or not the server has the tool, so the policy is
//! no oracle. Every `tools/list` result is filtered (each page of a paginated listing, and
//! the listings that follow `notifications/tools/list_changed`, since every result to a
//! `tools/list` request is filtered); a tool without a readable, unique `name` is removed
//! too. A `tools` array in a `server/discover` result is filtered the same way. When the
//! first complete listing (every page, up to the one without `nextCursor`) lacks a tool the
//! policy names, a warning goes to stderr once, with close matches: a typo in
//! `--deny-tool` denies nothing.
//!
//! **Tool pinning.** With [`run_proxy_with_pins`] and a [`ToolPins`] (the caller's pin
//! store and mode; [`run_proxy`] has none and does none of this), every tool of every
//! `tools/list` result page, and of a `tools` array in a `server/discover` result, that the
//! tool policy lets through is checked: its pinned fields
//! (`mcp_j_policy::pins::pinned_definition`: `name`, `title`, `description`,
//! `inputSchema`, `outputSchema`, `annotations`; `_meta` and other members do not count)
//! are put in RFC 8785 canonical form (so key order, whitespace, string escapes and number
//! spellings do not matter), and [`ToolPins::check`] gets the name, that definition parsed
//! back from the canonical text, and the SHA-256 hex of the text. [`PinCheck::Changed`]
//! with `hide` removes the tool from the page (one [`Decision::ToolHidden`] event per
//! hidden tool, after the response's `rewritten` event) and remembers it: a `tools/call`
//! for it is answered `-32602` with the pins' message (naming the tool and what changed)
//! and never reaches the server. `Changed` without `hide` (warn mode) and [`PinCheck::Pass`]
//! keep the tool, and `Pass` forgets an earlier refusal (after `mcp-j pins accept` and a
//! re-list). The tool policy comes first: a denied tool is never checked and its call gets
//! "tool not allowed" as before. A tool without a readable `name` is removed, and a name
//! listed twice in a page with one copy hidden is hidden altogether.
//!
//! Prompts and resource templates are pinned the same way ([`PinKind`]): every entry of a
//! `prompts/list` result's `prompts` and of a `resources/templates/list` result's
//! `resourceTemplates` is checked with its own pinned fields (`name`, `title`,
//! `description`, `arguments`; `name`, `title`, `description`, `uriTemplate`, `mimeType`,
//! `annotations`), a changed one is removed from the page, and a `prompts/get` for a hidden
//! prompt is answered `-32602` with the pins' message, never reaching the server. Unlike a
//! `tools/call`, a `prompts/get` is not held for a listing: a prompt is chosen by the user
//! from a listing, and what it returns is not pinned. A resource template is only a hint
//! for building URIs (`resources/read` takes any URI the server serves), so hiding it is
//! all there is to do.
//!
//! A `tools/call` that arrives before the session has checked a complete listing (a page
//! without `nextCursor`, or a `server/discover` result with tools), or after the server's
//! `notifications/tools/list_changed`, is held and the proxy lists the tools itself first:
//! it sends `tools/list` with ids `"mcp-j-pins-1"`, `"mcp-j-pins-2"`, … (one per page,
//! following `nextCursor`, at most 1000 pages), carrying the `io.modelcontextprotocol/…`
//! members of the call's `_meta` (2026-07-28: protocol version, client capabilities, as
//! forwarded) and nothing else. Its answers are never forwarded (each gets a `dropped`
//! event). Client `tools/call`s arriving meanwhile are held too (they count as pending).
//! When the last page is checked, each held call is forwarded as it would have been, or
//! refused `-32602` if its tool is now hidden. If the server answers the listing with an
//! error, or with a result that is not a listing (no `tools` array), or pages without end,
//! each held call is answered `-32603` "mcp-j: could not list the MCP server's tools to
//! check them against their pins (…)" (never forwarded unchecked), and the next call tries
//! again. If the
//! server exits first, held calls are answered like pending ones. A client request reusing
//! the listing's id (or a held call's) while it is in flight is refused as a duplicate id,
//! and a client `notifications/cancelled` naming it is dropped; cancelling a held call
//! drops it unanswered. A listing not complete within
//! [`ProxyConfig::pin_listing_timeout`] (default 30 s) is abandoned: its held calls get the
//! same `-32603` ("no answer within … ms"), a late answer is dropped as unmatched, and the
//! next call lists again.
//!
//! **Request methods without an id.** Policy applies to every message, request or not. A
//! client notification whose method is one the policy works on (`tools/call`,
//! `tools/list`, `server/discover`, `initialize`, and for the pins `prompts/get`,
//! `prompts/list`, `resources/templates/list`) and a server notification whose method is
//! `sampling/createMessage`, `elicitation/create` or `roots/list` are not valid MCP, and a
//! peer that dispatches on the method name would act on them (run a denied tool, show an
//! elicitation): they are dropped and logged, whatever the policy, and never answered
//! (there is no id to answer).
//!
//! **Server → client requests.** `sampling/createMessage`, `elicitation/create` and
//! `roots/list` are governed by [`ServerRequestPolicy`]. A denied one is answered by the
//! proxy itself (`-32601` "method not found", what a client without the feature answers)
//! and the client never sees it; the matching client capabilities (`sampling`,
//! `elicitation`, `roots`) are removed from the client's `initialize` params and from the
//! per-request `_meta` capabilities of the 2026-07-28 era, so a well-behaved server does not
//! try; a 2026-07-28 `input_required` result whose `inputRequests` ask for a denied feature
//! is replaced by an error `-32003` (missing client capability); and
//! `notifications/roots/list_changed` is dropped while roots are denied. `ping`, other
//! server requests and all server notifications pass.
//!
//! **Cancellation.** `notifications/cancelled` passes both ways. When the client cancels,
//! the request leaves the pending table, so a late response to it is dropped; likewise for
//! server requests the server cancels.
//!
//! **Lifecycle.** [`run_proxy`] returns only when the server's stdout ends. If the client's
//! input ends first, the server's stdin is closed at once and server output keeps flowing
//! until the server's stdout ends (the caller runs grace period → SIGTERM → SIGKILL). When
//! the server's stdout ends, every client request still pending gets an error response
//! ([`ProxyConfig::pending_error_code`]); if the server stops reading its stdin, pending and
//! later requests are answered the same way. Server stderr is relayed line by line to our
//! stderr with a prefix, each line cut at [`ProxyConfig::stderr_line_bytes`], control
//! characters escaped (a server must not drive the user's terminal); its end does not end
//! the session.
//!
//! **Backpressure and memory.** No direction waits on the other. Readers never write:
//! what a line turns into is queued in the outbox of the stream it goes to, and that
//! stream's writer drains it (see `proxy.rs`). While a write to the server waits for the
//! server to read, the proxy goes on reading and relaying what the server writes, and the
//! other way round. A direction's own messages are queued while less than 256 KiB of them
//! are queued or being written; past that its reader waits, so a client that stops reading
//! stops the proxy reading the server (the server then blocks on its own stdout), and a
//! server that stops reading stops the proxy reading the client, and nothing else. The
//! proxy's own answers to a peer (error replies to the client, refusals of server
//! requests) are bounded in number (1024 waiting) rather than by the other direction's
//! bytes. Per direction the proxy holds at most one line being read (≤ the limit) with a
//! 64 KiB read buffer, and 256 KiB plus one message queued or being written, plus the
//! answers; session state is bounded by `max_pending` and a 1 KiB cap on ids.
//!
//! **Parser differentials.** Wherever the proxy reads a key it refuses duplicates (after
//! unescaping) and names it cannot decode (a lone surrogate escape): `{"name":"allowed",
//! "name":"denied"}` would otherwise mean one tool to the proxy and another to a last-wins
//! server. The first level of every object `params` is checked so, whatever the method. A
//! line starting with a byte order mark is not JSON (`-32700`). docs/CLI.md ("Proxy: cases
//! the contract leaves open") lists these cases and what each gets.
//!
//! ## Both MCP generations on one pipe
//! Nothing is decided per connection: the handshake era (`initialize`, protocol versions
//! 2024-11-05 … 2025-11-25) and the stateless 2026-07-28 era (`server/discover`, protocol
//! version and client capabilities in every request's `_meta`
//! (`io.modelcontextprotocol/clientCapabilities`), multi round-trip `input_required`
//! results instead of server-to-client requests) are handled by the same rules, method by
//! method. A dual-era client's `server/discover` probe and a legacy server's `-32601`
//! answer pass like any request and response.
//!
//! ## The server-request default, and why
//! All three server→client features are denied by default:
//! - **sampling** lets an untrusted server spend the user's model quota and feed the model
//!   text of its choosing under the client's name: a prompt-injection channel into the
//!   user's own assistant;
//! - **elicitation** lets it put questions to the user inside a trusted client window, the
//!   classic phishing shape (asking for tokens, passwords, personal data);
//! - **roots** reveal local directory paths (user names, project names, layout) that the
//!   sandbox otherwise hides from it.
//!
//! None is needed for tools to work. Each can be allowed separately by the caller's policy.
//!
//! ## Test strategy
//! Unit tests per module (codec framing, validation codes and ids, JSON helpers and the
//! canonical form against RFC 8785's examples and number table, policy,
//! events); session tests in `src/tests.rs` drive [`run_proxy`] over in-memory duplex pipes
//! with a fake client and a fake server, one test per rule, asserting what each side
//! receives (and does not), byte for byte where bytes must be kept; a bounded-memory test
//! streams a 50 MiB line and max-size floods at a client that does not read, asserting the
//! readers' peak buffer sizes and that the server is blocked; two deadlock tests pipeline
//! large requests through 4 KiB pipes to a server that answers one at a time (and to one
//! that writes a megabyte before it reads), bounded by a timeout. Property tests
//! (`tests/properties.rs`) check that the codec never panics nor yields a frame over the
//! limit for arbitrary bytes split anywhere (against a reference model), that validation
//! never panics on arbitrary JSON, and that no disallowed tool ever appears in a filtered
//! list. `fuzz/` at the repository root has a cargo-fuzz target over codec + validation +
//! session. End-to-end tests against real servers live with the CLI.

pub mod codec;
pub mod config;
pub mod event;
mod json;
pub mod message;
pub mod pins;
mod proxy;
pub mod session;

#[cfg(test)]
mod tests;

pub use config::{ClientFeature, ProxyConfig, ServerRequestPolicy, ToolPolicy};
pub use event::{Decision, Direction, EventSink, MessageKind, NoEvents, ProxyEvent};
pub use pins::{PinCheck, PinKind, ToolPins};
pub use proxy::{Ended, ProxyError, run_proxy, run_proxy_with_pins};
