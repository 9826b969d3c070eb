//! What the proxy enforces: limits, the tool policy, the server-request policy (the last
//! two defined in `mcp-j-policy`).

use std::time::Duration;

// The tool and server-request policy is plain data in the policy crate; re-exported so
// `mcp_j_proxy::ToolPolicy` and friends keep their paths.
pub use mcp_j_policy::tools::{ClientFeature, ServerRequestPolicy, ToolPolicy};

/// Proxy settings. [`Default`] is the documented secure default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Longest line accepted, in bytes before the newline, in both directions
    /// (`--max-message-bytes`). Default 5 MiB.
    pub max_message_bytes: usize,
    /// Deepest JSON nesting accepted (a top-level object is depth 1). Default 64.
    pub max_depth: usize,
    /// Which tools may be listed and called.
    pub tools: ToolPolicy,
    /// Which server→client requests may reach the client.
    pub server_requests: ServerRequestPolicy,
    /// Server stderr lines longer than this are cut (with a marker). Default 8 KiB.
    pub stderr_line_bytes: usize,
    /// Prefix of every relayed server stderr line. Default `[server] `.
    pub stderr_prefix: String,
    /// JSON-RPC error code for "the server exited (or stopped reading) with your request
    /// pending". Default -32000.
    pub pending_error_code: i64,
    /// Most requests pending at once per direction; more are answered with an error
    /// (client requests) or refused (server requests). Bounds the session state. Default
    /// 4096.
    pub max_pending: usize,
    /// After the server's stdout ends, how long to wait for its stderr to end so its last
    /// words (a crash trace) are relayed. Default 500 ms.
    pub stderr_drain: Duration,
    /// Tool pinning: how long the proxy's own `tools/list` (all its pages), made before a
    /// first `tools/call`, may take before the calls held for it are refused. Default 30 s.
    pub pin_listing_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_message_bytes: 5 * 1024 * 1024,
            max_depth: 64,
            tools: ToolPolicy::default(),
            server_requests: ServerRequestPolicy::default(),
            stderr_line_bytes: 8 * 1024,
            stderr_prefix: "[server] ".to_owned(),
            pending_error_code: -32000,
            max_pending: 4096,
            stderr_drain: Duration::from_millis(500),
            pin_listing_timeout: Duration::from_secs(30),
        }
    }
}
