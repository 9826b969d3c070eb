//! Tool policy (`--allow-tool`, `--deny-tool`) and server-request policy
//! (`--allow-server-request`): which tools a server may list and have called, and which
//! server→client requests may reach the client. The proxy enforces them.

use std::collections::BTreeSet;

/// `--allow-tool` / `--deny-tool`: a tool is allowed when `allow` is empty or names it,
/// and `deny` does not name it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicy {
    /// When non-empty, only these tools.
    pub allow: BTreeSet<String>,
    /// Never these tools (wins over `allow`).
    pub deny: BTreeSet<String>,
}

impl ToolPolicy {
    /// A policy from allow and deny lists.
    pub fn new<A, D>(allow: A, deny: D) -> Self
    where
        A: IntoIterator,
        A::Item: Into<String>,
        D: IntoIterator,
        D::Item: Into<String>,
    {
        ToolPolicy {
            allow: allow.into_iter().map(Into::into).collect(),
            deny: deny.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `name` may be listed and called.
    pub fn allowed(&self, name: &str) -> bool {
        (self.allow.is_empty() || self.allow.contains(name)) && !self.deny.contains(name)
    }

    /// True when every tool is allowed (nothing to filter).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Which server→client requests may reach the client; `true` = allowed. The default
/// denies all three (see `mcp-j-proxy`'s crate docs for why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerRequestPolicy {
    /// `sampling/createMessage`: the server asks the client's model to generate text.
    pub sampling: bool,
    /// `elicitation/create`: the server asks the user for input.
    pub elicitation: bool,
    /// `roots/list`: the server asks which local directories the client works in.
    pub roots: bool,
}

/// One of the client features a server can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFeature {
    /// `sampling/createMessage`, capability `sampling`.
    Sampling,
    /// `elicitation/create`, capability `elicitation`.
    Elicitation,
    /// `roots/list`, capability `roots`.
    Roots,
}

impl ClientFeature {
    /// All three.
    pub const ALL: [ClientFeature; 3] = [
        ClientFeature::Sampling,
        ClientFeature::Elicitation,
        ClientFeature::Roots,
    ];

    /// The feature a server→client request method belongs to.
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "sampling/createMessage" => Some(ClientFeature::Sampling),
            "elicitation/create" => Some(ClientFeature::Elicitation),
            "roots/list" => Some(ClientFeature::Roots),
            _ => None,
        }
    }

    /// The client capability key that announces the feature.
    pub fn capability(self) -> &'static str {
        match self {
            ClientFeature::Sampling => "sampling",
            ClientFeature::Elicitation => "elicitation",
            ClientFeature::Roots => "roots",
        }
    }

    /// The feature a capability key announces.
    pub fn of_capability(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.capability() == key)
    }

    /// The request method.
    pub fn method(self) -> &'static str {
        match self {
            ClientFeature::Sampling => "sampling/createMessage",
            ClientFeature::Elicitation => "elicitation/create",
            ClientFeature::Roots => "roots/list",
        }
    }
}

impl ServerRequestPolicy {
    /// Everything allowed (the behaviour of a plain pipe).
    pub fn allow_all() -> Self {
        ServerRequestPolicy {
            sampling: true,
            elicitation: true,
            roots: true,
        }
    }

    /// Whether the feature may be used.
    pub fn allows(&self, feature: ClientFeature) -> bool {
        match feature {
            ClientFeature::Sampling => self.sampling,
            ClientFeature::Elicitation => self.elicitation,
            ClientFeature::Roots => self.roots,
        }
    }

    /// True when at least one feature is denied.
    pub fn denies_any(&self) -> bool {
        ClientFeature::ALL.into_iter().any(|f| !self.allows(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_policy_allow_and_deny() {
        let open = ToolPolicy::default();
        assert!(open.allowed("anything") && open.is_open());
        let p = ToolPolicy::new(["a", "b"], ["b"]);
        assert!(p.allowed("a"));
        assert!(!p.allowed("b"), "deny wins over allow");
        assert!(!p.allowed("c"), "allow list is exclusive");
        let d = ToolPolicy::new(Vec::<String>::new(), ["x"]);
        assert!(d.allowed("y") && !d.allowed("x"));
    }

    #[test]
    fn server_requests_denied_by_default() {
        let p = ServerRequestPolicy::default();
        assert!(ClientFeature::ALL.iter().all(|f| !p.allows(*f)));
        assert!(!ServerRequestPolicy::allow_all().denies_any());
    }
}
