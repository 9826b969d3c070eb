//! Secrets by reference: `NAME=env:VAR` or `NAME=file:PATH`, from `--secret`, the
//! manifest's `secrets` and the configuration's `[secrets]` (`NAME = "env:VAR"`). One
//! parser ([`SecretRef::new`], and [`FromStr`] for the `NAME=SOURCE` form) and one reader
//! ([`SecretRef::read`]) serve all three.
//!
//! No message carries a secret's value, nor echoes text that was not understood as a
//! reference: someone who pastes the value where the reference goes must not find it in
//! a log. Names, variable names and paths are shown; they say where to look.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// One secret: the variable it becomes in the jail and where its value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The environment variable the server gets.
    pub name: String,
    pub source: SecretSource,
}

/// Where a secret's value is read from, on the host, when the sandbox is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:VAR`: a variable of mcp-j's own environment.
    Env(String),
    /// `file:PATH`: a file's text, without one trailing newline.
    File(PathBuf),
}

/// Why a reference was not understood. Nothing of the text is shown but a valid name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRefError {
    /// No `=` between a name and a source.
    NoName,
    /// The name is not an environment variable name.
    BadName,
    /// The source is neither `env:VAR` nor `file:PATH` (with VAR or PATH not empty).
    BadSource { name: String },
}

impl fmt::Display for SecretRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRefError::NoName => f.write_str(
                "expected NAME=env:VAR or NAME=file:PATH (what was given is not shown: it may be the value)",
            ),
            SecretRefError::BadName => f.write_str(
                "the secret's name must be an environment variable name: letters, digits and `_`, not \
                 starting with a digit (what was given is not shown: it may be part of the value)",
            ),
            SecretRefError::BadSource { name } => write!(
                f,
                "secret `{name}`: the source must be env:VAR or file:PATH (what was given is not shown: \
                 it may be the value)"
            ),
        }
    }
}

impl std::error::Error for SecretRefError {}

/// A name a program can read from its environment (one rule, the policy crate's).
pub use mcp_j_policy::package::is_env_name;

impl SecretRef {
    /// A name and its source (`env:VAR`, `file:PATH`), as the configuration's
    /// `[secrets]` table holds them.
    pub fn new(name: &str, source: &str) -> Result<SecretRef, SecretRefError> {
        if !is_env_name(name) {
            return Err(SecretRefError::BadName);
        }
        let source = match (source.strip_prefix("env:"), source.strip_prefix("file:")) {
            (Some(var), _) if !var.is_empty() => SecretSource::Env(var.to_string()),
            (_, Some(path)) if !path.is_empty() => SecretSource::File(PathBuf::from(path)),
            _ => {
                return Err(SecretRefError::BadSource { name: name.to_string() });
            }
        };
        Ok(SecretRef {
            name: name.to_string(),
            source,
        })
    }

    /// The value, read now. Errors name the secret and its source, never a value.
    pub fn read(&self) -> Result<String> {
        let name = &self.name;
        match &self.source {
            SecretSource::Env(var) => match std::env::var_os(var) {
                None => bail!("secret `{name}`: environment variable `{var}` is not set"),
                // Not `std::env::var`: its error for a non-UTF-8 value shows the value.
                Some(value) => value
                    .into_string()
                    .map_err(|_| anyhow::anyhow!("secret `{name}`: environment variable `{var}` is not valid UTF-8")),
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("secret `{name}`: cannot read `{}`", path.display()))?;
                Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
            }
        }
    }
}

/// `NAME=env:VAR` or `NAME=file:PATH` (`--secret`, the manifest's `secrets`).
impl FromStr for SecretRef {
    type Err = SecretRefError;

    fn from_str(text: &str) -> Result<SecretRef, SecretRefError> {
        let (name, source) = text.split_once('=').ok_or(SecretRefError::NoName)?;
        SecretRef::new(name, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_forms_parse() {
        let parsed: SecretRef = "GITHUB_TOKEN=env:GH_TOKEN".parse().expect("env form");
        assert_eq!(parsed.name, "GITHUB_TOKEN");
        assert_eq!(parsed.source, SecretSource::Env("GH_TOKEN".into()));
        let parsed: SecretRef = "_K2=file:/run/secrets/k=v".parse().expect("file form");
        assert_eq!(parsed.name, "_K2");
        assert_eq!(parsed.source, SecretSource::File("/run/secrets/k=v".into()));
        // The configuration's form: name and source apart.
        let parsed = SecretRef::new("API_KEY", "file:key.txt").expect("new");
        assert_eq!(parsed.source, SecretSource::File("key.txt".into()));
    }

    #[test]
    fn bad_forms_are_refused_without_showing_what_was_given() {
        let bad_source = || SecretRefError::BadSource { name: "TOKEN".into() };
        // (input, error, the part that must not be shown)
        let cases: &[(&str, SecretRefError, &str)] = &[
            ("ghp_s3cr3tvalue", SecretRefError::NoName, "ghp_s3cr3tvalue"),
            ("", SecretRefError::NoName, ""),
            ("=env:VAR", SecretRefError::BadName, "env:VAR"),
            ("1TOKEN=env:VAR", SecretRefError::BadName, "1TOKEN"),
            ("s3cr3t+/b64==", SecretRefError::BadName, "s3cr3t+/b64"),
            ("MY-TOKEN=env:VAR", SecretRefError::BadName, "MY-TOKEN"),
            ("TOKEN=s3cr3t-literal", bad_source(), "s3cr3t-literal"),
            ("TOKEN=env:", bad_source(), ""),
            ("TOKEN=file:", bad_source(), ""),
            ("TOKEN=ENV:VAR", bad_source(), "ENV:VAR"),
            ("TOKEN=", bad_source(), ""),
        ];
        for (text, expected, hidden) in cases {
            let err = text.parse::<SecretRef>().expect_err(text);
            assert_eq!(&err, expected, "{text}");
            let shown = err.to_string();
            assert!(
                hidden.is_empty() || !shown.contains(hidden),
                "`{hidden}` shown: {shown}"
            );
            assert!(!shown.contains("s3cr3t"), "{shown}");
            if let SecretRefError::BadSource { name } = &err {
                assert!(shown.contains(&format!("`{name}`")), "a valid name is shown: {shown}");
            }
        }
    }

    #[test]
    fn read_names_the_source_never_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t-value\n\n").expect("write");
        let secret = SecretRef::new("TOKEN", &format!("file:{}", file.display())).expect("ref");
        assert_eq!(secret.read().expect("read"), "s3cr3t-value\n", "one newline is dropped");

        // CARGO is set for every test run by cargo.
        let secret = SecretRef::new("TOKEN", "env:CARGO").expect("ref");
        assert_eq!(secret.read().expect("read"), std::env::var("CARGO").expect("CARGO"));

        let err = SecretRef::new("TOKEN", "env:MCP_J_SURELY_UNSET_SECRET")
            .expect("ref")
            .read()
            .expect_err("unset");
        assert!(
            format!("{err:#}").contains("`MCP_J_SURELY_UNSET_SECRET` is not set"),
            "{err:#}"
        );
        let err = SecretRef::new("TOKEN", "file:/nonexistent/mcp-j-secret")
            .expect("ref")
            .read()
            .expect_err("missing");
        assert!(
            format!("{err:#}").contains("cannot read `/nonexistent/mcp-j-secret`"),
            "{err:#}"
        );
    }
}
