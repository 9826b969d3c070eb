//! Tool pinning at the wire (INTERFACE, *Proxy behaviour*): what the proxy asks about every
//! tool a server lists, and what it does with the answer. The pins themselves — the store,
//! the server's identity, the mode (`--pins enforce|warn|off`) — are the caller's: the
//! proxy only sees [`ToolPins`].

pub use mcp_j_policy::pins::PinKind;
use serde_json::Value;

/// The proxy's question about one listed tool, prompt or resource template.
pub trait ToolPins: Send + Sync {
    /// `kind`: what is listed; `name`: its name; `definition`: it reduced to its pinned
    /// fields (`mcp_j_policy::pins::pinned_definition_of`), parsed back from its RFC 8785
    /// canonical form; `digest`: the lowercase hex SHA-256 of that canonical form. One
    /// seen for the first time is pinned by the implementation and passes.
    fn check(&self, kind: PinKind, name: &str, definition: &Value, digest: &str) -> PinCheck;
}

/// The answer about one listed tool, prompt or resource template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// Pinned and unchanged, or new (and now pinned): listed and callable.
    Pass,
    /// Changed since it was pinned. `message` names the tool and what changed (for the
    /// `-32602` answer and the log). `hide`: remove it from listings and refuse calls to it
    /// (`enforce`); `false`: let it through (`warn`: the implementation has warned).
    Changed {
        /// What the refusal says.
        message: String,
        /// Hide and refuse.
        hide: bool,
    },
}
