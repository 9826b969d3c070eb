//! The `--manifest` file: the same settings as the sandbox flags, as JSON.

use std::path::PathBuf;

use serde::Deserialize;

/// `--manifest`: the same settings as the flags, as JSON. Unknown fields are errors.
///
/// Sizes and durations stay text here and are parsed by [`crate::units::parse_size`] and
/// [`crate::units::parse_duration`] when the CLI merges the manifest, so that their errors
/// read exactly like the flags' errors.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub ro: Vec<PathBuf>,
    #[serde(default)]
    pub rw: Vec<PathBuf>,
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub allow_net: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    pub memory: Option<String>,
    pub pids: Option<u64>,
    pub fds: Option<u64>,
    pub cpu: Option<u64>,
    pub timeout: Option<String>,
    pub max_file_size: Option<String>,
    pub no_subprocess: Option<bool>,
    /// `run` only: `--allow-tool`, `--deny-tool`, `--allow-server-request`.
    #[serde(default)]
    pub allow_tools: Vec<String>,
    #[serde(default)]
    pub deny_tools: Vec<String>,
    #[serde(default)]
    pub allow_server_requests: Vec<String>,
    /// `run` only: `--pins`.
    pub pins: Option<crate::pins::PinMode>,
}

impl Manifest {
    /// Parse a manifest from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_defaults() {
        let m = Manifest::from_json(r#"{"pids": 10, "memory": "64M", "deny_tools": ["b"]}"#).expect("manifest");
        assert_eq!(m.pids, Some(10));
        assert_eq!(m.memory.as_deref(), Some("64M"));
        assert_eq!(m.deny_tools, ["b"]);
        assert!(m.ro.is_empty() && m.workdir.is_none());
        assert_eq!(Manifest::from_json("{}").expect("empty"), Manifest::default());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Manifest::from_json(r#"{"memroy": "1G"}"#).expect_err("unknown field");
        assert!(err.to_string().contains("memroy"), "{err}");
    }
}
