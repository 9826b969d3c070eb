//! `mcp-j run --server-json FILE`: an MCP registry `server.json` read into what `run` needs —
//! the npm or PyPI package, the arguments for it and the environment it asks for.
//!
//! From `packages`, the first stdio entry whose `registryType` is `npm` or `pypi` is taken
//! (others — `oci`, `mcpb`, `nuget` — are named and skipped). `identifier` and `version`
//! make the reference (`npm:ID@VERSION`, `pypi:ID==VERSION`). `packageArguments` become the
//! package's arguments: a positional one its `value` (else its `default`), a named one its
//! `name` then its `value`. `runtimeArguments` are for the launcher a client would have used
//! (`npx`, `uvx`): mcp-j starts the package's program itself, so they are not used, and that
//! is said. `environmentVariables`: a secret one becomes `--secret NAME=env:NAME` (its value
//! comes from mcp-j's own environment and is never logged); another is passed when set, else
//! its `default`; a required one that has neither is an error naming it.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// What a `server.json` asks `run` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerJson {
    /// `npm:…` or `pypi:…`.
    pub reference: String,
    /// Arguments for the package, before any given after `--`.
    pub args: Vec<String>,
    /// `--env NAME` or `--env NAME=VALUE` items.
    pub env: Vec<String>,
    /// `--secret NAME=env:NAME` items.
    pub secrets: Vec<String>,
    /// What was not used, for stderr.
    pub notes: Vec<String>,
}

/// Reads `text` (a `server.json`); `host_has(NAME)` says whether mcp-j's environment sets a
/// variable.
pub fn parse(text: &str, host_has: impl Fn(&str) -> bool) -> Result<ServerJson> {
    let doc: Value = serde_json::from_str(text).context("not valid JSON")?;
    let packages = doc
        .get("packages")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("it has no `packages` list (a server with only `remotes` is not run locally)"))?;
    let mut notes = Vec::new();
    let mut chosen = None;
    for package in packages {
        let kind = package.get("registryType").and_then(Value::as_str).unwrap_or("?");
        let transport = package
            .get("transport")
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("stdio");
        if !matches!(kind, "npm" | "pypi") {
            notes.push(format!(
                "its `{kind}` package is skipped (mcp-j runs npm and PyPI packages)"
            ));
            continue;
        }
        if transport != "stdio" {
            notes.push(format!(
                "its `{kind}` package with transport `{transport}` is skipped (stdio only)"
            ));
            continue;
        }
        chosen = Some((kind, package));
        break;
    }
    let (kind, package) = chosen.ok_or_else(|| {
        anyhow!(
            "it names no npm or PyPI package with the stdio transport{}",
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            }
        )
    })?;
    let field = |name: &str| package.get(name).and_then(Value::as_str);
    let identifier = field("identifier").ok_or_else(|| anyhow!("its {kind} package has no `identifier`"))?;
    let reference = match (kind, field("version")) {
        ("npm", Some(v)) => format!("npm:{identifier}@{v}"),
        (_, Some(v)) => format!("pypi:{identifier}=={v}"),
        (_, None) => format!("{kind}:{identifier}"),
    };
    if package
        .get("runtimeArguments")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        notes.push(format!(
            "its `runtimeArguments` (for {}) are not used: mcp-j starts the package's program itself",
            field("runtimeHint").unwrap_or("the launcher")
        ));
    }
    if field("fileSha256").is_some() {
        notes.push(
            "its `fileSha256` is not checked for an npm or PyPI package: the registry's own integrity values are"
                .into(),
        );
    }
    let mut args = Vec::new();
    for arg in package
        .get("packageArguments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let value = arg.get("value").or_else(|| arg.get("default")).and_then(Value::as_str);
        match arg.get("type").and_then(Value::as_str) {
            Some("positional") => match value {
                Some(v) => args.push(v.to_owned()),
                None if arg.get("isRequired").and_then(Value::as_bool) == Some(true) => bail!(
                    "its required positional argument `{}` has no value or default: pass it after `--`",
                    arg.get("valueHint").and_then(Value::as_str).unwrap_or("?")
                ),
                None => {}
            },
            Some("named") => {
                let name = arg
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| anyhow!("a named argument without a `name`"))?;
                args.push(name.to_owned());
                if let Some(v) = value {
                    args.push(v.to_owned());
                }
            }
            other => bail!("an argument of unknown type {other:?}"),
        }
    }
    let mut env = Vec::new();
    let mut secrets = Vec::new();
    for var in package
        .get("environmentVariables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = var
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("an environment variable without a `name`"))?;
        let is = |key: &str| var.get(key).and_then(Value::as_bool) == Some(true);
        let default = var.get("default").and_then(Value::as_str);
        if is("isSecret") {
            if host_has(name) {
                secrets.push(format!("{name}=env:{name}"));
            } else if is("isRequired") {
                bail!("it needs the secret `{name}`: set it in mcp-j's environment (the client config's `env`)");
            }
        } else if host_has(name) {
            env.push(name.to_owned());
        } else if let Some(default) = default {
            env.push(format!("{name}={default}"));
        } else if is("isRequired") {
            bail!("it needs the variable `{name}`: set it in mcp-j's environment (the client config's `env`)");
        }
    }
    Ok(ServerJson {
        reference,
        args,
        env,
        secrets,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/server.json");

    #[test]
    fn the_npm_package_is_chosen_with_its_arguments_and_environment() {
        let got =
            parse(FIXTURE, |name| name == "WEATHER_API_KEY" || name == "LOG_LEVEL").unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(got.reference, "npm:@example/weather-mcp@1.4.2");
        assert_eq!(got.args, ["stdio", "--units", "metric"]);
        assert_eq!(got.secrets, ["WEATHER_API_KEY=env:WEATHER_API_KEY"]);
        assert_eq!(got.env, ["LOG_LEVEL", "REGION=eu"]);
        assert!(got.notes.iter().any(|n| n.contains("oci")), "{:?}", got.notes);
        assert!(
            got.notes.iter().any(|n| n.contains("runtimeArguments")),
            "{:?}",
            got.notes
        );
    }

    #[test]
    fn a_missing_required_secret_is_named() {
        let err = parse(FIXTURE, |_| false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("WEATHER_API_KEY"), "{err}");
    }

    #[test]
    fn pypi_and_refusals() {
        let pypi = r#"{"packages":[{"registryType":"pypi","identifier":"mcp-server-time","version":"2026.10.19",
            "transport":{"type":"stdio"},"packageArguments":[{"type":"named","name":"--local-timezone","value":"UTC"}]}]}"#;
        let got = parse(pypi, |_| false).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(got.reference, "pypi:mcp-server-time==2026.10.19");
        assert_eq!(got.args, ["--local-timezone", "UTC"]);
        for (text, why) in [
            (
                r#"{"remotes":[{"type":"streamable-http","url":"https://x"}]}"#,
                "packages",
            ),
            (r#"{"packages":[{"registryType":"oci","identifier":"x"}]}"#, "oci"),
            (
                r#"{"packages":[{"registryType":"npm","identifier":"x","transport":{"type":"sse"}}]}"#,
                "sse",
            ),
            ("not json", "JSON"),
        ] {
            let err = parse(text, |_| false)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
