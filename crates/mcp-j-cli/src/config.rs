//! The layered configuration: built-in defaults, then the config file, then `MCP_J_*`
//! environment variables, then the global flags; each later layer wins (figment merges
//! them and remembers which layer gave each value, for `mcp-j config show`).
//!
//! # The file
//!
//! `--config FILE` (must exist), else `$XDG_CONFIG_HOME/mcp-j/config.toml`, else
//! `~/.config/mcp-j/config.toml` (may be missing). TOML:
//!
//! ```toml
//! registry_url = "https://registry.example"
//! registry_token = "…"            # a secret: `config show` masks it
//! cache_dir = "/var/cache/mcp-j"
//! audit_log = "/var/log/mcp-j/audit.jsonl"
//!
//! [limits]
//! memory = "512M"                 # or a number of bytes
//! pids = 256
//! fds = 1024
//! cpu = 1000                      # millicores
//! timeout = "10m"
//! max_file_size = "1G"            # RLIMIT_FSIZE
//!
//! [policy]
//! no_subprocess = false
//! require_memory_limit = false    # refuse (126) where no aggregate memory limit holds
//! allow_tools = []
//! deny_tools = []
//! allow_server_requests = []      # sampling, elicitation, roots
//! min_cert_level = 0              # packages: the lowest certification level (0-3)
//! cert_level_mode = "disabled"    # strict (refuse, 126) | warn | disabled
//! allowed_origins = []            # official, verified, community; empty: all
//! offline_max_age = "7d"          # a cached resolve answer stands in this long, offline
//! allow_package_network = true    # a package's manifest may ask for network destinations
//! pins = "enforce"                # tool pinning: enforce | warn | off
//!
//! [secrets]                       # passed to every server, like `--secret`
//! GITHUB_TOKEN = "env:GITHUB_TOKEN"
//! API_KEY = "file:/run/secrets/api_key"
//! ```
//!
//! Unknown keys are errors naming the key's path and the layer it came from.
//!
//! # Environment variables
//!
//! Flat names, listed in [`ENV_VARS`]: `MCP_J_REGISTRY_URL`, `MCP_J_REGISTRY_TOKEN`,
//! `MCP_J_CACHE_DIR`, `MCP_J_AUDIT_LOG`, the limits as `MCP_J_MEMORY`, `MCP_J_PIDS`,
//! `MCP_J_FDS`, `MCP_J_CPU`, `MCP_J_TIMEOUT`, `MCP_J_MAX_FILE_SIZE`, and the policy as
//! `MCP_J_NO_SUBPROCESS`, `MCP_J_REQUIRE_MEMORY_LIMIT`,
//! `MCP_J_ALLOW_TOOLS`, `MCP_J_DENY_TOOLS`, `MCP_J_ALLOW_SERVER_REQUESTS`, `MCP_J_PINS` (lists are
//! comma-separated). Other `MCP_J_*` variables (`MCP_J_CGROUP_PARENT`, …) are not
//! configuration and are ignored here; secrets have no variable (name them in the file or
//! with `--secret`).
//!
//! # Precedence for a run
//!
//! defaults < file < environment < `--manifest` < flags. Within the configuration a later
//! layer replaces a list; the configuration's tool lists and secrets then come before the
//! manifest's and the flags' (which add to them, and replace a secret of the same name).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use figment::error::{Actual, Kind};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use mcp_j_engine::Limits;
use mcp_j_engine::spec::MIN_MEMORY_BYTES;
pub use mcp_j_policy::units::format_size;
use mcp_j_policy::units::{self, Size};
use serde::{Deserialize, Serialize};

use crate::secret::SecretRef;

/// The configuration file's schema (also what every layer must fit). Every value is
/// optional in a layer; the default layer fills in limits and policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub registry_url: Option<String>,
    pub registry_token: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub install: InstallConfig,
    /// Secret name → `env:VAR` or `file:PATH` (a reference, never the value).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

impl Config {
    /// The effective limits: these values over the engine's [`Limits::default`].
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        let l = &self.limits;
        Limits {
            memory_bytes: l.memory.map_or(d.memory_bytes, |s| s.0),
            pids: l.pids.unwrap_or(d.pids),
            fds: l.fds.unwrap_or(d.fds),
            cpu_millicores: l.cpu.unwrap_or(d.cpu_millicores),
            max_file_size_bytes: l.max_file_size.map_or(d.max_file_size_bytes, |s| s.0),
        }
    }
}

/// `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub memory: Option<Size>,
    pub pids: Option<u64>,
    pub fds: Option<u64>,
    pub cpu: Option<u64>,
    pub timeout: Option<units::Duration>,
    pub max_file_size: Option<Size>,
}

/// `[install]`: the limits of the jail npm or pip installs a package in (larger than a
/// server's: resolving and unpacking a dependency tree takes memory and processes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    pub memory: Option<Size>,
    pub pids: Option<u64>,
    pub timeout: Option<units::Duration>,
}

/// `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub no_subprocess: Option<bool>,
    pub require_memory_limit: Option<bool>,
    pub allow_tools: Option<Vec<String>>,
    pub deny_tools: Option<Vec<String>>,
    pub allow_server_requests: Option<Vec<String>>,
    /// Packages: the lowest certification level (0–3) a package may have.
    pub min_cert_level: Option<mcp_j_policy::CertLevel>,
    /// Packages: what a lower level does: `strict` (refuse), `warn`, `disabled`.
    pub cert_level_mode: Option<mcp_j_policy::CertMode>,
    /// Packages: the origins that may run (`official`, `verified`, `community`); empty: all.
    pub allowed_origins: Option<Vec<mcp_j_policy::Origin>>,
    /// Packages: how old a cached resolve answer may be to stand in for an unreachable
    /// registry.
    pub offline_max_age: Option<units::Duration>,
    /// Packages: whether a package's manifest may ask for network destinations (each then
    /// an `--allow-net` entry that never unlocks a special address).
    pub allow_package_network: Option<bool>,
    /// `run`: tool pinning, `enforce` (hide a changed tool), `warn` or `off`.
    pub pins: Option<mcp_j_policy::PinMode>,
}

/// How an `MCP_J_*` variable's text becomes a value.
#[derive(Debug, Clone, Copy)]
enum EnvKind {
    /// Taken as a string, never guessed at (a token of digits stays a string).
    Text,
    /// A number or a bool (`64`, `true`).
    Scalar,
    /// A comma-separated list of strings.
    List,
}

/// The environment variables that are configuration, and the key each one sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("MCP_J_REGISTRY_URL", "registry_url"),
    ("MCP_J_REGISTRY_TOKEN", "registry_token"),
    ("MCP_J_CACHE_DIR", "cache_dir"),
    ("MCP_J_AUDIT_LOG", "audit_log"),
    ("MCP_J_MEMORY", "limits.memory"),
    ("MCP_J_PIDS", "limits.pids"),
    ("MCP_J_FDS", "limits.fds"),
    ("MCP_J_CPU", "limits.cpu"),
    ("MCP_J_TIMEOUT", "limits.timeout"),
    ("MCP_J_MAX_FILE_SIZE", "limits.max_file_size"),
    ("MCP_J_NO_SUBPROCESS", "policy.no_subprocess"),
    ("MCP_J_REQUIRE_MEMORY_LIMIT", "policy.require_memory_limit"),
    ("MCP_J_ALLOW_TOOLS", "policy.allow_tools"),
    ("MCP_J_DENY_TOOLS", "policy.deny_tools"),
    ("MCP_J_ALLOW_SERVER_REQUESTS", "policy.allow_server_requests"),
    ("MCP_J_MIN_CERT_LEVEL", "policy.min_cert_level"),
    ("MCP_J_CERT_LEVEL_MODE", "policy.cert_level_mode"),
    ("MCP_J_ALLOWED_ORIGINS", "policy.allowed_origins"),
    ("MCP_J_OFFLINE_MAX_AGE", "policy.offline_max_age"),
    ("MCP_J_ALLOW_PACKAGE_NETWORK", "policy.allow_package_network"),
    ("MCP_J_PINS", "policy.pins"),
];

fn env_kind(key: &str) -> EnvKind {
    match key {
        "limits.pids"
        | "limits.fds"
        | "limits.cpu"
        | "policy.no_subprocess"
        | "policy.require_memory_limit"
        | "policy.min_cert_level"
        | "policy.allow_package_network" => EnvKind::Scalar,
        "policy.allow_tools" | "policy.deny_tools" | "policy.allow_server_requests" | "policy.allowed_origins" => {
            EnvKind::List
        }
        _ => EnvKind::Text,
    }
}

/// Keys whose values are never shown, in output or in error messages.
fn is_secret_key(key: &str) -> bool {
    key == "registry_token" || key.starts_with("secrets.")
}

/// One layer: a named set of values (the defaults, one environment variable, one flag).
struct Layer {
    name: String,
    dict: Dict,
}

impl Layer {
    fn new(name: impl Into<String>, dict: Dict) -> Layer {
        Layer {
            name: name.into(),
            dict,
        }
    }

    /// A layer that sets one dotted key.
    fn one(name: impl Into<String>, key: &str, value: Value) -> Layer {
        let dict = match figment::util::nest(key, value) {
            Value::Dict(_, dict) => dict,
            _ => Dict::new(),
        };
        Layer::new(name, dict)
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The global flags that are configuration.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub registry: Option<String>,
    pub cache_dir: Option<PathBuf>,
}

/// Where the config file is: `--config FILE` (must exist), else the default path (may be
/// missing). `env` is the process environment (a parameter for tests).
fn config_path(explicit: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("config file `{}` does not exist or is not a file", path.display());
        }
        return Ok(Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())));
    }
    Ok(default_config_path(env).filter(|path| path.is_file()))
}

/// Where the config file is looked for without `--config`: `$XDG_CONFIG_HOME/mcp-j/
/// config.toml`, else `~/.config/mcp-j/config.toml`; `None` with neither variable set.
fn default_config_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    config_dir(env).map(|dir| dir.join("config.toml"))
}

/// mcp-j's configuration directory: `$XDG_CONFIG_HOME/mcp-j`, else `~/.config/mcp-j`;
/// `None` with neither variable set.
pub fn config_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let dir = match (env.get("XDG_CONFIG_HOME"), env.get("HOME")) {
        (Some(xdg), _) if !xdg.is_empty() => PathBuf::from(xdg),
        (_, Some(home)) if !home.is_empty() => Path::new(home).join(".config"),
        _ => return None,
    };
    Some(dir.join("mcp-j"))
}

/// The merged configuration and where each value came from.
pub struct Loaded {
    pub config: Config,
    figment: Figment,
    /// `file /path`, when there was a file.
    file: Option<PathBuf>,
    /// Where the file was looked for (`--config`, or the default place), found or not.
    looked_for: Option<PathBuf>,
    /// Whether `--config` named it.
    explicit: bool,
}

impl Loaded {
    /// Load every layer: `explicit` is `--config`, `env` the process environment.
    pub fn load(explicit: Option<&Path>, env: &BTreeMap<String, String>, flags: &Flags) -> Result<Loaded> {
        let file = config_path(explicit, env)?;
        let defaults = default_layer()?;
        let mut figment = Figment::new();
        // Each layer is first checked alone, so an error names the layer it is in.
        let add = |figment: Figment, layer: Figment| -> Result<Figment> {
            layer.extract::<Config>().map_err(describe)?;
            Ok(figment.merge(layer))
        };
        figment = add(figment, Figment::from(defaults))?;
        if let Some(path) = &file {
            // Read it first: figment takes an unreadable file for an empty one.
            std::fs::read_to_string(path).map_err(|e| anyhow!("cannot read config file `{}`: {e}", path.display()))?;
            figment = add(figment, Figment::from(Toml::file_exact(path)))?;
        }
        for (var, key) in ENV_VARS {
            if let Some(text) = env.get(*var) {
                let value = match env_kind(key) {
                    EnvKind::Text => Value::from(text.clone()),
                    EnvKind::Scalar => text.parse().unwrap_or_else(|e: std::convert::Infallible| match e {}),
                    EnvKind::List => Value::from(
                        text.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>(),
                    ),
                };
                figment = add(figment, Figment::from(Layer::one(format!("env {var}"), key, value)))?;
            }
        }
        if let Some(url) = &flags.registry {
            let layer = Layer::one("flag --registry", "registry_url", Value::from(url.clone()));
            figment = add(figment, Figment::from(layer))?;
        }
        if let Some(dir) = &flags.cache_dir {
            let text = dir.to_string_lossy().into_owned();
            figment = add(
                figment,
                Figment::from(Layer::one("flag --cache-dir", "cache_dir", Value::from(text))),
            )?;
        }
        let config: Config = figment.extract().map_err(describe)?;
        let looked_for = match &file {
            Some(path) => Some(path.clone()),
            None => default_config_path(env),
        };
        let loaded = Loaded {
            config,
            figment,
            file,
            looked_for,
            explicit: explicit.is_some(),
        };
        loaded.check_secrets()?;
        loaded.check_memory()?;
        Ok(loaded)
    }

    /// Load from the real environment.
    pub fn from_process(explicit: Option<&Path>, flags: &Flags) -> Result<Loaded> {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Loaded::load(explicit, &env, flags)
    }

    /// A memory limit below [`MIN_MEMORY_BYTES`] is a missing unit (`512` is bytes): refused,
    /// naming where it came from.
    fn check_memory(&self) -> Result<()> {
        match self.config.limits.memory {
            Some(Size(bytes)) if bytes < MIN_MEMORY_BYTES => Err(anyhow!(
                "{}",
                memory_too_small(bytes, &format!("`limits.memory` in {}", self.source("limits.memory")))
            )),
            _ => Ok(()),
        }
    }

    /// Secret references must parse as a [`SecretRef`] (`env:VAR`, `file:PATH`); the
    /// message never shows one that does not (it may be a value pasted by mistake).
    fn check_secrets(&self) -> Result<()> {
        for (name, reference) in &self.config.secrets {
            let key = format!("secrets.{name}");
            SecretRef::new(name, reference).map_err(|e| anyhow!("`{key}` in {}: {e}", self.source(&key)))?;
        }
        Ok(())
    }

    /// The config file looked for (if any) and what became of it.
    pub fn file_status(&self) -> (Option<String>, &'static str) {
        let path = self.looked_for.as_ref().map(|p| p.display().to_string());
        let status = match (&self.looked_for, &self.file, self.explicit) {
            (_, Some(_), true) => "flag --config, read",
            (_, Some(_), false) => "default location, read",
            (Some(_), None, _) => "default location, not found: defaults, MCP_J_* variables and flags apply",
            (None, None, _) => "not looked for: neither XDG_CONFIG_HOME nor HOME is set",
        };
        (path, status)
    }

    /// Where the value of a dotted key came from.
    pub fn source(&self, key: &str) -> String {
        match self.figment.find_metadata(key) {
            None => "default".to_string(),
            Some(md) => match md.source.as_ref().and_then(figment::Source::file_path) {
                Some(path) => format!("file {}", path.display()),
                None if md.name == "TOML file" => match &self.file {
                    Some(path) => format!("file {}", path.display()),
                    None => "file".to_string(),
                },
                None => md.name.to_string(),
            },
        }
    }

    /// The effective configuration as (key, shown value, source) rows, secrets masked.
    pub fn rows(&self) -> Vec<Row> {
        let c = &self.config;
        let text = |v: &Option<String>| v.as_ref().map_or(serde_json::Value::Null, |s| s.clone().into());
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map_or(serde_json::Value::Null, |p| p.to_string_lossy().into_owned().into())
        };
        let masked = c
            .registry_token
            .as_ref()
            .map_or(serde_json::Value::Null, |_| MASK.into());
        let mut rows = vec![
            ("registry_url", text(&c.registry_url)),
            ("registry_token", masked),
            ("cache_dir", path(&c.cache_dir)),
            ("audit_log", path(&c.audit_log)),
            ("limits.memory", to_json(&c.limits.memory)),
            ("limits.pids", to_json(&c.limits.pids)),
            ("limits.fds", to_json(&c.limits.fds)),
            ("limits.cpu", to_json(&c.limits.cpu)),
            ("limits.timeout", to_json(&c.limits.timeout)),
            ("limits.max_file_size", to_json(&c.limits.max_file_size)),
            ("install.memory", to_json(&c.install.memory)),
            ("install.pids", to_json(&c.install.pids)),
            ("install.timeout", to_json(&c.install.timeout)),
            ("policy.no_subprocess", to_json(&c.policy.no_subprocess)),
            ("policy.require_memory_limit", to_json(&c.policy.require_memory_limit)),
            ("policy.allow_tools", to_json(&c.policy.allow_tools)),
            ("policy.deny_tools", to_json(&c.policy.deny_tools)),
            ("policy.allow_server_requests", to_json(&c.policy.allow_server_requests)),
            ("policy.min_cert_level", to_json(&c.policy.min_cert_level)),
            ("policy.cert_level_mode", to_json(&c.policy.cert_level_mode)),
            ("policy.allowed_origins", to_json(&c.policy.allowed_origins)),
            ("policy.offline_max_age", to_json(&c.policy.offline_max_age)),
            ("policy.allow_package_network", to_json(&c.policy.allow_package_network)),
            ("policy.pins", to_json(&c.policy.pins)),
        ]
        .into_iter()
        .map(|(key, value)| Row {
            key: key.to_string(),
            value,
            source: self.source(key),
        })
        .collect::<Vec<_>>();
        // A secret shows only its reference (`env:VAR`, `file:PATH`), never its value.
        rows.extend(c.secrets.iter().map(|(name, reference)| {
            let key = format!("secrets.{name}");
            Row {
                source: self.source(&key),
                key,
                value: reference.clone().into(),
            }
        }));
        rows
    }
}

/// The message for a memory limit below [`MIN_MEMORY_BYTES`], from `source` (`--memory`,
/// `` `limits.memory` in env MCP_J_MEMORY ``): the number is most likely missing its unit.
pub fn memory_too_small(bytes: u64, source: &str) -> String {
    format!(
        "memory limit of {bytes} bytes from {source} is below the minimum of 16M (programs cannot start \
         with less); a size without a unit is bytes: for {bytes} MiB write `{bytes}M` (`--memory {bytes}M`)"
    )
}

/// What a masked secret shows.
pub const MASK: &str = "********";

/// One line of `config show`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub value: serde_json::Value,
    pub source: String,
}

/// A field as JSON for display (`null` when unset).
fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The default layer: the engine's [`Limits::default`] and the default policy.
fn default_layer() -> Result<Layer> {
    let d = Limits::default();
    let defaults = Config {
        limits: LimitsConfig {
            memory: Some(Size(d.memory_bytes)),
            pids: Some(d.pids),
            fds: Some(d.fds),
            cpu: Some(d.cpu_millicores),
            timeout: None,
            max_file_size: Some(Size(d.max_file_size_bytes)),
        },
        policy: PolicyConfig {
            no_subprocess: Some(false),
            require_memory_limit: Some(false),
            allow_tools: Some(Vec::new()),
            deny_tools: Some(Vec::new()),
            allow_server_requests: Some(Vec::new()),
            min_cert_level: Some(mcp_j_policy::CertLevel::default()),
            cert_level_mode: Some(mcp_j_policy::CertMode::default()),
            allowed_origins: Some(Vec::new()),
            offline_max_age: Some(units::Duration(std::time::Duration::from_secs(7 * 24 * 3600))),
            allow_package_network: Some(true),
            pins: Some(mcp_j_policy::PinMode::default()),
        },
        install: InstallConfig {
            memory: Some(Size(2 << 30)),
            pids: Some(512),
            timeout: Some(units::Duration(std::time::Duration::from_secs(600))),
        },
        ..Config::default()
    };
    match Value::serialize(&defaults).map_err(|e| anyhow!("default configuration: {e}"))? {
        Value::Dict(_, dict) => Ok(Layer::new("default", dict)),
        _ => bail!("default configuration is not a table"),
    }
}

/// A figment error as one clear message per problem: the key's path, what is wrong, and
/// the layer (`file /path`, `env MCP_J_…`); values of secret keys are never shown.
fn describe(err: figment::Error) -> anyhow::Error {
    let messages: Vec<String> = err.into_iter().map(|e| describe_one(&e)).collect();
    anyhow!("invalid configuration: {}", messages.join("; "))
}

fn describe_one(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let layer = match &e.metadata {
        Some(md) => match md.source.as_ref().and_then(figment::Source::file_path) {
            Some(path) => path.display().to_string(),
            None => md.name.to_string(),
        },
        None => String::new(),
    };
    let origin = if layer.is_empty() {
        layer.clone()
    } else {
        format!(" in {layer}")
    };
    let secret = is_secret_key(&key);
    let what = match &e.kind {
        Kind::UnknownField(field, _) => {
            let full = if key.is_empty() || key.ends_with(field.as_str()) {
                if key.is_empty() { field.clone() } else { key.clone() }
            } else {
                format!("{key}.{field}")
            };
            return format!("unknown key `{full}`{origin}");
        }
        Kind::InvalidType(actual, expected) => {
            format!("expected {}, found {}", plain_type(expected), kind_of(actual, secret))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value {}, expected {expected}", kind_of(actual, secret))
        }
        Kind::Message(_) if secret => "invalid value (not shown)".to_string(),
        other => other.to_string().trim_end().to_string(),
    };
    if key.is_empty() {
        // A parse error (with line and column): the file first, then the parser's report.
        if layer.is_empty() {
            what
        } else {
            format!("{layer}: {what}")
        }
    } else {
        format!("`{key}`: {what}{origin}")
    }
}

/// Serde's type names in words.
fn plain_type(expected: &str) -> &str {
    match expected {
        "u64" | "u32" | "usize" => "a whole number",
        "bool" => "true or false",
        other => other,
    }
}

/// What was found, with its value unless the key is a secret.
fn kind_of(actual: &Actual, secret: bool) -> String {
    if !secret {
        return actual.to_string();
    }
    match actual {
        Actual::Bool(_) => "a bool".into(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer".into(),
        Actual::Float(_) => "a float".into(),
        Actual::Str(_) | Actual::Char(_) => "a string".into(),
        Actual::Bytes(_) => "bytes".into(),
        Actual::Seq => "a list".into(),
        Actual::Map => "a table".into(),
        _ => "another type".into(),
    }
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = match &self.value {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        write!(f, "{:<30} {:<24} {}", self.key, value, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        vars.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn row(loaded: &Loaded, key: &str) -> Row {
        loaded
            .rows()
            .into_iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no row {key}"))
    }

    #[test]
    fn defaults_are_the_engine_defaults() {
        let loaded = Loaded::load(None, &env(&[]), &Flags::default()).expect("load");
        assert_eq!(loaded.config.limits(), Limits::default());
        assert_eq!(row(&loaded, "limits.memory").value, "512M");
        assert_eq!(row(&loaded, "limits.memory").source, "default");
        assert_eq!(row(&loaded, "registry_url").value, serde_json::Value::Null);
    }

    #[test]
    fn file_then_env_then_flags_each_later_wins() {
        let (_dir, path) = file(
            "registry_url = \"https://file\"\ncache_dir = \"/file\"\n[limits]\nmemory = \"1G\"\npids = 10\nfds = 64\n",
        );
        let vars = env(&[
            ("MCP_J_REGISTRY_URL", "https://env"),
            ("MCP_J_PIDS", "20"),
            ("MCP_J_MEMORY", "2G"),
            ("MCP_J_CGROUP_PARENT", "/not/config"),
        ]);
        let flags = Flags {
            registry: Some("https://flag".into()),
            cache_dir: None,
        };
        let loaded = Loaded::load(Some(&path), &vars, &flags).expect("load");
        let from_file = format!("file {}", path.display());
        assert_eq!(loaded.config.registry_url.as_deref(), Some("https://flag"));
        assert_eq!(loaded.source("registry_url"), "flag --registry");
        assert_eq!(loaded.config.cache_dir, Some(PathBuf::from("/file")));
        assert_eq!(loaded.source("cache_dir"), from_file);
        assert_eq!(loaded.config.limits().pids, 20);
        assert_eq!(loaded.source("limits.pids"), "env MCP_J_PIDS");
        assert_eq!(loaded.config.limits().memory_bytes, 2 << 30);
        assert_eq!(loaded.config.limits().fds, 64);
        assert_eq!(loaded.source("limits.fds"), from_file);
        assert_eq!(loaded.config.limits().cpu_millicores, Limits::default().cpu_millicores);
        assert_eq!(loaded.source("limits.cpu"), "default");
    }

    #[test]
    fn limits_and_policy_of_issue_7_load_from_every_layer() {
        let (_dir, path) = file("[limits]\nmax_file_size = \"64M\"\n[policy]\nrequire_memory_limit = true\n");
        let loaded = Loaded::load(Some(&path), &env(&[]), &Flags::default()).expect("load");
        assert_eq!(loaded.config.limits().max_file_size_bytes, 64 << 20);
        assert_eq!(loaded.config.policy.require_memory_limit, Some(true));
        let vars = env(&[("MCP_J_MAX_FILE_SIZE", "2G"), ("MCP_J_REQUIRE_MEMORY_LIMIT", "false")]);
        let loaded = Loaded::load(Some(&path), &vars, &Flags::default()).expect("load");
        assert_eq!(loaded.config.limits().max_file_size_bytes, 2 << 30);
        assert_eq!(
            loaded.source("policy.require_memory_limit"),
            "env MCP_J_REQUIRE_MEMORY_LIMIT"
        );
        assert_eq!(row(&loaded, "limits.max_file_size").value, "2G");
        let defaults = Loaded::load(None, &env(&[]), &Flags::default()).expect("load");
        assert_eq!(row(&defaults, "limits.max_file_size").value, "1G");
        assert_eq!(defaults.config.policy.require_memory_limit, Some(false));
    }

    #[test]
    fn a_memory_limit_below_16m_names_its_layer_and_the_unit() {
        let err = Loaded::load(None, &env(&[("MCP_J_MEMORY", "512")]), &Flags::default())
            .err()
            .expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains("`limits.memory` in env MCP_J_MEMORY"), "{text}");
        assert!(text.contains("write `512M`"), "{text}");
        let (_dir, path) = file("[limits]\nmemory = 1024\n");
        let err = Loaded::load(Some(&path), &env(&[]), &Flags::default())
            .err()
            .expect("refused");
        assert!(
            format!("{err:#}").contains(&format!("file {}", path.display())),
            "{err:#}"
        );
        let loaded = Loaded::load(None, &env(&[("MCP_J_MEMORY", "16M")]), &Flags::default()).expect("16M is fine");
        assert_eq!(loaded.config.limits().memory_bytes, 16 << 20);
    }

    #[test]
    fn env_lists_are_comma_separated_and_tokens_stay_strings() {
        let vars = env(&[("MCP_J_DENY_TOOLS", "rm, exec"), ("MCP_J_REGISTRY_TOKEN", "12345")]);
        let loaded = Loaded::load(None, &vars, &Flags::default()).expect("load");
        assert_eq!(loaded.config.policy.deny_tools, Some(vec!["rm".into(), "exec".into()]));
        assert_eq!(loaded.config.registry_token.as_deref(), Some("12345"));
    }

    #[test]
    fn the_default_file_is_found_and_may_be_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let xdg = dir.path().to_string_lossy().into_owned();
        let loaded =
            Loaded::load(None, &env(&[("XDG_CONFIG_HOME", &xdg)]), &Flags::default()).expect("missing is fine");
        assert_eq!(loaded.config.limits(), Limits::default());
        std::fs::create_dir(dir.path().join("mcp-j")).expect("mkdir");
        std::fs::write(dir.path().join("mcp-j/config.toml"), "[limits]\npids = 7\n").expect("write");
        let loaded = Loaded::load(None, &env(&[("XDG_CONFIG_HOME", &xdg)]), &Flags::default()).expect("load");
        assert_eq!(loaded.config.limits().pids, 7);
        // An explicit file that does not exist is an error.
        let missing = dir.path().join("nope.toml");
        assert!(Loaded::load(Some(&missing), &env(&[]), &Flags::default()).is_err());
    }

    #[test]
    fn unknown_keys_are_named_with_their_path_and_file() {
        let (_dir, path) = file("[limits]\nmemroy = \"1G\"\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("unknown key `limits.memroy`"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");

        let (_dir, path) = file("colour = true\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("unknown key `colour`"), "{err}");
    }

    #[test]
    fn malformed_toml_has_line_and_column() {
        let (_dir, path) = file("registry_url = \"x\"\n[limits\npids = 3\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("column"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn ill_typed_values_name_key_type_and_layer() {
        let (_dir, path) = file("[limits]\npids = \"many\"\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("`limits.pids`") && err.contains("whole number"), "{err}");

        let err = Loaded::load(None, &env(&[("MCP_J_FDS", "lots")]), &Flags::default())
            .err()
            .expect("error");
        let err = format!("{err:#}");
        assert!(err.contains("`limits.fds`") && err.contains("env MCP_J_FDS"), "{err}");
    }

    #[test]
    fn secrets_are_masked_and_never_in_errors() {
        let (_dir, path) = file("registry_token = \"tok-s3cr3t\"\n[secrets]\nGH = \"env:GH_TOKEN\"\n");
        let loaded = Loaded::load(Some(&path), &env(&[("GH_TOKEN", "gh-s3cr3t")]), &Flags::default()).expect("load");
        let rows = loaded.rows();
        let shown: String = rows.iter().map(|r| format!("{r}\n")).collect();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(row(&loaded, "registry_token").value, MASK);
        assert_eq!(row(&loaded, "secrets.GH").value, "env:GH_TOKEN");

        // Ill-typed or malformed secrets: the message never carries the value.
        let (_dir, path) = file("registry_token = 987654321\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("registry_token") && !err.contains("987654321"), "{err}");
        let (_dir, path) = file("[secrets]\nGH = \"ghp_pasted_value\"\n");
        let err = format!(
            "{:#}",
            Loaded::load(Some(&path), &env(&[]), &Flags::default())
                .err()
                .expect("error")
        );
        assert!(err.contains("secrets.GH") && !err.contains("ghp_pasted_value"), "{err}");
    }
}
