//! What the jailed `npm` and `pip` may learn from the host's configuration of those tools:
//! the registry or index URLs, the CA settings, nothing else.
//!
//! `mcp-j run npm:…` / `pypi:…` runs the real installer inside the sandbox, with a minimal
//! `/etc`, a clean environment and its network limited to the registry the user's own
//! configuration points at. So mcp-j reads that configuration on the host and hands the
//! jailed installer exactly the values below, as environment variables it builds itself
//! ([`NpmSettings::jail_env`], [`PipSettings::jail_env`]) — never the configuration files
//! themselves, and never credentials: an npmrc may hold `_authToken`, `_auth`, `_password`,
//! `username`, `certfile`, `keyfile`… that an install script could use to publish as the
//! user. Only the keys this module knows are read at all (an allow-list); every other key,
//! credentials included, is dropped while parsing and never reaches a returned value.
//!
//! The precedence and file locations are the tools' own (npm 11's `@npmcli/config`, pip
//! 23's `pip._internal.configuration` and `cli/parser.py`):
//!
//! - npm, later wins: builtin (`<npm's directory>/npmrc`) < global (`globalconfig`, by
//!   default `<prefix>/etc/npmrc`, the prefix being `prefix` from the environment, the user
//!   file or the builtin file, else `$PREFIX`, else the node binary's grandparent with
//!   `$DESTDIR` before it) < user (`npm_config_userconfig`, else `~/.npmrc`) < `npm_config_*`
//!   environment variables (any case; `_` is `-` except at the start; empty values are
//!   skipped). `${VAR}` and `${VAR?}` are expanded in keys and values as npm does.
//! - pip, later wins: global files (`$XDG_CONFIG_DIRS/pip/pip.conf` for each directory,
//!   `/etc/xdg` when unset, then `/etc/pip.conf`) < user files (`~/.pip/pip.conf`, then
//!   `$XDG_CONFIG_HOME/pip/pip.conf` or `~/.config/pip/pip.conf`; skipped when
//!   `PIP_CONFIG_FILE` names a file that exists) < site (`$VIRTUAL_ENV/pip.conf`) < the file
//!   `PIP_CONFIG_FILE` names (all files are skipped when it is `/dev/null`). Across those
//!   files a key of `[install]` beats a key of `[global]` whichever file it is in, and the
//!   `PIP_*` environment variables beat both; empty values are skipped.
//!
//! (Read from the code: `@npmcli/config/lib/index.js` and `env-replace.js`, `ini/lib/ini.js`;
//! pip's `configuration.py`, `cli/parser.py` `_get_ordered_configuration_items`; and checked
//! against `npm config get` and pip's option parser. pip's older documentation says the
//! `PIP_CONFIG_FILE` file loads first; pip's code loads it last.)
//!
//! A project's `.npmrc` is deliberately not read: it belongs to whatever directory mcp-j
//! happens to run in — a cloned repository, an unpacked download — and could point the
//! sandbox's only network destination at a registry the user never chose. For the same
//! reason npm's `--prefix`/project layers and pip's command-line options have no part here.
//!
//! Everything but [`read_npm_config_files`] / [`read_pip_config_files`] (and
//! [`HostFiles`]) is pure: the parsers take file contents and an environment map.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// npm's default registry.
pub const NPM_DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// pip's default index.
pub const PYPI_DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Where the files of pip's default index live: PyPI's simple pages link to this host, so a
/// jailed pip that uses the default index needs it too. Other indexes name their file hosts
/// in their answers; this module does not guess them.
pub const PYPI_FILES_HOST: &str = "files.pythonhosted.org";

/// The largest configuration file read; a larger one is an error, not a truncation.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// pip's `os.devnull`: `PIP_CONFIG_FILE` set to this turns every file off.
const DEV_NULL: &str = "/dev/null";

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

/// One configuration file: where it is and, if it exists, what it holds.
///
/// Its `Debug` shows the path and the size only: the contents may hold credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where the file is (for messages and `sources`).
    pub path: PathBuf,
    /// Its text, or `None` when there is no such file.
    pub contents: Option<String>,
}

impl ConfigFile {
    /// A file with these contents.
    pub fn new(path: impl Into<PathBuf>, contents: impl Into<String>) -> Self {
        ConfigFile {
            path: path.into(),
            contents: Some(contents.into()),
        }
    }

    /// A file that does not exist.
    pub fn absent(path: impl Into<PathBuf>) -> Self {
        ConfigFile {
            path: path.into(),
            contents: None,
        }
    }
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ConfigFile");
        s.field("path", &self.path);
        match &self.contents {
            Some(text) => s.field("bytes", &text.len()),
            None => s.field("contents", &"absent"),
        };
        s.finish()
    }
}

/// Reads configuration files: the only I/O of this module, behind a trait for tests.
pub trait ReadConfig {
    /// The text of `path`, `Ok(None)` if there is no such file.
    fn read(&self, path: &Path) -> Result<Option<String>, String>;
}

/// [`ReadConfig`] on the host's file system: at most [`MAX_CONFIG_FILE_BYTES`], UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostFiles;

impl ReadConfig for HostFiles {
    fn read(&self, path: &Path) -> Result<Option<String>, String> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(format!(
                "{} is larger than {MAX_CONFIG_FILE_BYTES} bytes; not a configuration file",
                path.display()
            ));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8 text", path.display()))
    }
}

// ---------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------

/// The parts of an absolute URL this module needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UrlParts {
    scheme: String,
    has_userinfo: bool,
    host: String,
    port: Option<u16>,
}

/// `scheme://[userinfo@]host[:port][/…]`, or `None` when `text` is not such a URL.
fn parse_url(text: &str) -> Option<UrlParts> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let (has_userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (true, &authority[at + 1..]),
        None => (false, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
    };
    Some(UrlParts {
        scheme: scheme.to_ascii_lowercase(),
        has_userinfo,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// Whether `url` carries a user name or password (`https://user:pass@host/…`).
pub fn has_credentials(url: &str) -> bool {
    parse_url(url).is_some_and(|u| u.has_userinfo)
}

/// `url` with any user name and password replaced by `***`, for messages. Text that is not
/// a URL comes back unchanged.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// The local path a `file:` URL or a plain path names, `None` for any other URL.
fn local_path(location: &str) -> Option<PathBuf> {
    if let Some(rest) = location.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        return rest.starts_with('/').then(|| PathBuf::from(rest));
    }
    if location.contains("://") {
        return None;
    }
    Some(PathBuf::from(location))
}

/// The network destinations (host, port) the jailed installer needs for these registry,
/// index or find-links locations: `https` is 443 and `http` 80 unless the URL says
/// otherwise; local paths, `file:` URLs and other schemes give none. Hosts are lowercase,
/// without IPv6 brackets, each pair once, in first-seen order.
pub fn hosts_to_allow<'a>(urls: impl IntoIterator<Item = &'a str>) -> Vec<(String, u16)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for url in urls {
        let Some(parts) = parse_url(url) else {
            continue;
        };
        let default = match parts.scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => continue,
        };
        if parts.host.is_empty() {
            continue;
        }
        let pair = (parts.host, parts.port.unwrap_or(default));
        if seen.insert(pair.clone()) {
            out.push(pair);
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically, as node's `path.resolve` does.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// npm
// ---------------------------------------------------------------------------------------

/// The npm configuration files of the host, read ([`read_npm_config_files`]) or given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NpmConfigFiles {
    /// `<npm's directory>/npmrc`; `None` when npm's directory is unknown.
    pub builtin: Option<ConfigFile>,
    /// The global npmrc (`globalconfig`, by default `<prefix>/etc/npmrc`); `None` when the
    /// prefix could not be determined.
    pub global: Option<ConfigFile>,
    /// The user npmrc (`npm_config_userconfig`, by default `~/.npmrc`).
    pub user: Option<ConfigFile>,
}

/// What the jailed npm gets from the host's npm configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpmSettings {
    /// `registry` (default [`NPM_DEFAULT_REGISTRY`]); an `http`/`https` URL.
    pub registry: String,
    /// `@scope:registry` settings: the scope (with its `@`) and its registry URL, by scope.
    pub scoped_registries: Vec<(String, String)>,
    /// `cafile`: an absolute path the jail must see read-only. npm trusts only the CAs in it
    /// (it replaces the default roots, and wins over `ca` when both are set).
    pub cafile: Option<PathBuf>,
    /// `ca` / `ca[]`: inline PEM certificates (public data). The caller writes them to a
    /// file and hands that to the jailed npm as its `cafile`; empty when unset.
    pub ca: Vec<String>,
    /// `strict-ssl` (default `true`).
    pub strict_ssl: bool,
    /// Whether a registry URL carries a user name or password: it is kept (npm needs it),
    /// but the caller may refuse or warn. Use [`redacted`] to show such a URL.
    pub registry_has_credentials: bool,
    /// The proxy settings found (`proxy`, `https-proxy`, `http-proxy`, `noproxy`) and where,
    /// without their values: ignored, mcp-j's egress proxy replaces them.
    pub ignored_proxies: Vec<String>,
    /// Where each returned value came from, e.g. `registry: /root/.npmrc line 3`.
    pub sources: Vec<String>,
    /// Things worth telling the user: ignored lines, sections and credential keys (by name).
    pub notes: Vec<String>,
}

impl NpmSettings {
    /// The registry URLs: the default one, then the scoped ones.
    pub fn registry_urls(&self) -> Vec<&str> {
        std::iter::once(self.registry.as_str())
            .chain(self.scoped_registries.iter().map(|(_, url)| url.as_str()))
            .collect()
    }

    /// The destinations the jailed npm needs ([`hosts_to_allow`] of the registries).
    pub fn hosts_to_allow(&self) -> Vec<(String, u16)> {
        hosts_to_allow(self.registry_urls())
    }

    /// The environment that gives the jailed npm these settings and no configuration file:
    /// `npm_config_userconfig` and `npm_config_globalconfig` are `/dev/null`. `ca` is not
    /// in it: the caller writes [`NpmSettings::ca`] to a file and passes that as `cafile`.
    pub fn jail_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("npm_config_userconfig".to_string(), DEV_NULL.to_string()),
            ("npm_config_globalconfig".to_string(), DEV_NULL.to_string()),
            ("npm_config_registry".to_string(), self.registry.clone()),
            ("npm_config_strict_ssl".to_string(), self.strict_ssl.to_string()),
        ];
        for (scope, url) in &self.scoped_registries {
            env.push((format!("npm_config_{scope}:registry"), url.clone()));
        }
        if let Some(cafile) = &self.cafile {
            env.push(("npm_config_cafile".to_string(), cafile.display().to_string()));
        }
        env
    }
}

/// An npmrc value as npm's `ini` parser yields it.
#[derive(Clone, PartialEq, Eq)]
enum NpmValue {
    Str(String),
    Bool(bool),
    Null,
    List(Vec<String>),
}

/// One layer of npm configuration: raw key → value and where it was set.
type NpmLayer = BTreeMap<String, (NpmValue, String)>;

/// The keys read from npm's configuration; everything else is dropped while parsing.
fn npm_key_wanted(key: &str) -> bool {
    matches!(
        key,
        "registry"
            | "cafile"
            | "ca"
            | "strict-ssl"
            | "proxy"
            | "https-proxy"
            | "http-proxy"
            | "noproxy"
            | "prefix"
            | "globalconfig"
            | "userconfig"
    ) || scoped_registry_scope(key).is_some()
}

/// `@scope` for a key `@scope:registry`.
fn scoped_registry_scope(key: &str) -> Option<&str> {
    let scope = key.strip_suffix(":registry")?;
    (scope.len() > 1 && scope.starts_with('@') && !scope.contains([':', '/'])).then_some(scope)
}

/// Keys that are credentials: named in a note (never with their value) when present.
fn npm_key_is_credential(key: &str) -> bool {
    let base = key.rsplit(':').next().unwrap_or(key);
    key.starts_with("//")
        || matches!(
            base.to_ascii_lowercase().as_str(),
            "_authtoken"
                | "-authtoken"
                | "_auth"
                | "_password"
                | "username"
                | "email"
                | "certfile"
                | "keyfile"
                | "cert"
                | "key"
                | "otp"
        )
}

/// npm's `${VAR}` / `${VAR?}` expansion (`@npmcli/config/lib/env-replace.js`): an unset
/// variable stays as written (`${VAR?}` becomes empty); a `\` before `$` escapes it.
fn npm_env_replace(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find("${") {
        let before = &rest[..dollar];
        let after = &rest[dollar + 2..];
        let name_len = after.find(['$', '{', '}', '?']).unwrap_or(after.len());
        let name = &after[..name_len];
        let tail = &after[name_len..];
        let (optional, close) = if let Some(t) = tail.strip_prefix("?}") {
            (true, Some(t))
        } else {
            (false, tail.strip_prefix('}'))
        };
        let Some(remaining) = close.filter(|_| !name.is_empty()) else {
            out.push_str(&rest[..dollar + 2]);
            rest = after;
            continue;
        };
        let slashes = before.len() - before.trim_end_matches('\\').len();
        out.push_str(&before[..before.len() - slashes]);
        if slashes % 2 == 1 {
            // An escaped expression: half the backslashes (rounded down) and the text.
            out.push_str(&"\\".repeat(slashes / 2));
            out.push_str(&rest[dollar..rest.len() - remaining.len()]);
        } else {
            out.push_str(&"\\".repeat(slashes / 2));
            match env.get(name) {
                Some(value) => out.push_str(value),
                None if optional => {}
                None => out.push_str(&rest[dollar..rest.len() - remaining.len()]),
            }
        }
        rest = remaining;
    }
    out.push_str(rest);
    out
}

/// npm's `ini` value decoding (`unsafe` in `ini/lib/ini.js`): quoted values are JSON
/// strings (single quotes stripped first), others end at the first unescaped `;` or `#`.
fn npm_ini_unquote(raw: &str) -> String {
    let val = raw.trim();
    let quoted = (val.starts_with('"') && val.ends_with('"')) || (val.starts_with('\'') && val.ends_with('\''));
    if quoted {
        let inner = if val.starts_with('\'') {
            val.get(1..val.len().saturating_sub(1)).unwrap_or("")
        } else {
            val
        };
        return match serde_json::from_str::<serde_json::Value>(inner) {
            Ok(serde_json::Value::String(s)) => s,
            _ => inner.to_string(),
        };
    }
    let mut out = String::new();
    let mut escaped = false;
    for c in val.chars() {
        if escaped {
            if !matches!(c, '\\' | ';' | '#') {
                out.push('\\');
            }
            out.push(c);
            escaped = false;
        } else if c == ';' || c == '#' {
            break;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    if escaped {
        out.push('\\');
    }
    out.trim().to_string()
}

/// Parses an npmrc with npm's `ini` rules, keeping only the wanted keys (`${VAR}` expanded
/// in keys). Lines npm would skip are skipped with a note.
fn parse_npmrc(file: &ConfigFile, env: &BTreeMap<String, String>, notes: &mut Vec<String>) -> NpmLayer {
    let mut layer = NpmLayer::new();
    let Some(text) = &file.contents else {
        return layer;
    };
    let path = file.path.display();
    let mut section: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with([';', '#']) {
            continue;
        }
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|l| l.trim_end().strip_suffix(']'))
            .filter(|name| !name.contains(']'))
        {
            notes.push(format!(
                "{path} line {lineno}: section [{name}] ignored (npm does not read sections)"
            ));
            section = Some(name.to_string());
            continue;
        }
        let (raw_key, raw_value) = match line.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (line, None),
        };
        let mut key = npm_ini_unquote(raw_key);
        if raw_key.is_empty() || key.is_empty() {
            notes.push(format!("{path} line {lineno}: ignored (no key before `=`)"));
            continue;
        }
        if section.is_some() {
            continue;
        }
        let is_array = key.len() > 2 && key.ends_with("[]");
        if is_array {
            key.truncate(key.len() - 2);
        }
        let key = npm_env_replace(&key, env);
        if npm_key_is_credential(&key) {
            notes.push(format!(
                "{path} line {lineno}: `{key}` is a credential or a per-registry setting; it is \
                 not passed to the sandbox"
            ));
            continue;
        }
        if !npm_key_wanted(&key) {
            continue;
        }
        let value = match raw_value.map(npm_ini_unquote) {
            None => NpmValue::Bool(true),
            Some(v) if v == "true" => NpmValue::Bool(true),
            Some(v) if v == "false" => NpmValue::Bool(false),
            Some(v) if v == "null" => NpmValue::Null,
            Some(v) => NpmValue::Str(v),
        };
        let source = format!("{path} line {lineno}");
        match layer.get_mut(&key) {
            Some((NpmValue::List(items), where_)) => {
                items.push(npm_value_text(&value));
                *where_ = source;
            }
            Some((old, where_)) if is_array => {
                *old = NpmValue::List(vec![npm_value_text(old), npm_value_text(&value)]);
                *where_ = source;
            }
            _ => {
                let value = if is_array {
                    NpmValue::List(vec![npm_value_text(&value)])
                } else {
                    value
                };
                layer.insert(key, (value, source));
            }
        }
    }
    layer
}

fn npm_value_text(value: &NpmValue) -> String {
    match value {
        NpmValue::Str(s) => s.clone(),
        NpmValue::Bool(b) => b.to_string(),
        NpmValue::Null => "null".to_string(),
        NpmValue::List(items) => items.join("\n\n"),
    }
}

/// The `npm_config_*` environment variables as npm reads them (`loadEnv`): any case of the
/// prefix, empty values skipped, `_` turned into `-` except at the start and the key
/// lowercased unless it starts with `//`.
fn npm_env_layer(env: &BTreeMap<String, String>, notes: &mut Vec<String>) -> NpmLayer {
    let mut layer = NpmLayer::new();
    for (name, value) in env {
        let Some(prefix) = name.get(..11) else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("npm_config_") || value.is_empty() {
            continue;
        }
        let raw = &name[11..];
        let key = if raw.starts_with("//") {
            raw.to_string()
        } else {
            let mut key = String::with_capacity(raw.len());
            for (i, c) in raw.chars().enumerate() {
                key.push(if c == '_' && i > 0 { '-' } else { c });
            }
            key.to_lowercase()
        };
        let key = npm_env_replace(&key, env);
        if npm_key_is_credential(&key) {
            notes.push(format!(
                "environment variable {name} is a credential or a per-registry setting; it is \
                 not passed to the sandbox"
            ));
            continue;
        }
        if npm_key_wanted(&key) {
            layer.insert(
                key,
                (NpmValue::Str(value.clone()), format!("environment variable {name}")),
            );
        }
    }
    layer
}

/// A path setting as npm resolves it: `${VAR}` expanded, `~/` under `home`, `.`/`..`
/// resolved; a relative path (npm would take it from the current directory) is an error.
fn npm_path(
    value: &str,
    key: &str,
    source: &str,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
) -> Result<PathBuf, String> {
    let value = npm_env_replace(value.trim(), env);
    let path = match (value.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(&value),
    };
    if !path.is_absolute() {
        return Err(format!(
            "npm's `{key}` ({source}) is the relative path {value:?}; mcp-j needs an absolute \
             path there"
        ));
    }
    Ok(normalize(&path))
}

/// The value of `key` in the highest of `layers` (listed lowest first) that sets it.
fn npm_lookup<'a>(layers: &'a [&NpmLayer], key: &str) -> Option<&'a (NpmValue, String)> {
    layers.iter().rev().find_map(|layer| layer.get(key))
}

/// The `HOME` of `env`, if set and absolute.
fn env_home(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    env.get("HOME").map(PathBuf::from).filter(|home| home.is_absolute())
}

/// The settings the jailed npm gets, from the host's npm files and environment (see the
/// module's documentation for the precedence). `env` is the host's environment; `HOME` in
/// it expands `~/`. Errors name the setting and where it was set, never a credential.
pub fn npm_settings(files: &NpmConfigFiles, env: &BTreeMap<String, String>) -> Result<NpmSettings, String> {
    let home = env_home(env);
    let mut notes = Vec::new();
    let builtin = files
        .builtin
        .as_ref()
        .map(|f| parse_npmrc(f, env, &mut notes))
        .unwrap_or_default();
    let global = files
        .global
        .as_ref()
        .map(|f| parse_npmrc(f, env, &mut notes))
        .unwrap_or_default();
    let user = files
        .user
        .as_ref()
        .map(|f| parse_npmrc(f, env, &mut notes))
        .unwrap_or_default();
    let env_layer = npm_env_layer(env, &mut notes);
    let layers = [&builtin, &global, &user, &env_layer];
    let mut sources = Vec::new();

    let mut registry_has_credentials = false;
    let mut url_setting = |key: &str, value: &NpmValue, source: &str| -> Result<String, String> {
        let NpmValue::Str(raw) = value else {
            return Err(format!("npm's `{key}` ({source}) is not a URL"));
        };
        let url = npm_env_replace(raw.trim(), env);
        match parse_url(&url) {
            Some(parts) if matches!(parts.scheme.as_str(), "http" | "https") => {
                registry_has_credentials |= parts.has_userinfo;
                Ok(url)
            }
            _ => Err(format!(
                "npm's `{key}` ({source}) is {:?}, not an http or https URL",
                redacted(&url)
            )),
        }
    };

    let registry = match npm_lookup(&layers, "registry") {
        Some((value, source)) => {
            sources.push(format!("registry: {source}"));
            url_setting("registry", value, source)?
        }
        None => {
            sources.push("registry: npm's default".to_string());
            NPM_DEFAULT_REGISTRY.to_string()
        }
    };

    let mut scoped = BTreeMap::new();
    for layer in layers {
        for (key, entry) in layer.iter() {
            if let Some(scope) = scoped_registry_scope(key) {
                scoped.insert(scope.to_string(), (key.clone(), entry));
            }
        }
    }
    let mut scoped_registries = Vec::new();
    for (scope, (key, (value, source))) in scoped {
        sources.push(format!("{key}: {source}"));
        scoped_registries.push((scope, url_setting(&key, value, source)?));
    }

    let cafile = match npm_lookup(&layers, "cafile") {
        Some((NpmValue::Str(value), source)) if !value.trim().is_empty() => {
            sources.push(format!("cafile: {source}"));
            Some(npm_path(value, "cafile", source, env, home.as_deref())?)
        }
        Some((NpmValue::Null | NpmValue::Str(_), source)) => {
            sources.push(format!("cafile (unset): {source}"));
            None
        }
        Some((_, source)) => return Err(format!("npm's `cafile` ({source}) is not a path")),
        None => None,
    };

    let ca = match npm_lookup(&layers, "ca") {
        Some((value, source)) => {
            sources.push(format!("ca: {source}"));
            let items = match value {
                NpmValue::Null => Vec::new(),
                NpmValue::Str(s) => s.split("\n\n").map(str::to_string).collect(),
                NpmValue::List(items) => items.clone(),
                NpmValue::Bool(_) => {
                    return Err(format!("npm's `ca` ({source}) is not a certificate"));
                }
            };
            items
                .iter()
                .map(|item| npm_env_replace(item.trim(), env))
                .filter(|item| !item.is_empty())
                .collect()
        }
        None => Vec::new(),
    };

    let strict_ssl = match npm_lookup(&layers, "strict-ssl") {
        Some((value, source)) => {
            sources.push(format!("strict-ssl: {source}"));
            match value {
                NpmValue::Bool(b) => *b,
                NpmValue::Str(s) if s.trim() == "true" || s.trim().is_empty() => true,
                NpmValue::Str(s) if s.trim() == "false" => false,
                _ => {
                    return Err(format!("npm's `strict-ssl` ({source}) is neither true nor false"));
                }
            }
        }
        None => true,
    };

    let mut ignored_proxies = Vec::new();
    for key in ["proxy", "https-proxy", "http-proxy", "noproxy"] {
        if let Some((_, source)) =
            npm_lookup(&layers, key).filter(|(value, _)| !matches!(value, NpmValue::Null | NpmValue::Bool(false)))
        {
            ignored_proxies.push(format!("{key} ({source})"));
        }
    }

    Ok(NpmSettings {
        registry,
        scoped_registries,
        cafile,
        ca,
        strict_ssl,
        registry_has_credentials,
        ignored_proxies,
        sources,
        notes,
    })
}

/// Where npm is installed on the host, to find its builtin and global npmrc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NpmInstall {
    /// The node binary npm runs under (npm's `process.execPath`), resolved.
    pub node: Option<PathBuf>,
    /// npm's own directory (holding `bin/npm-cli.js` and the builtin `npmrc`).
    pub npm_dir: Option<PathBuf>,
}

impl NpmInstall {
    /// Finds `node` and `npm` on `PATH` (of `env`) and resolves their symbolic links:
    /// `/usr/bin/npm` → `/usr/lib/node_modules/npm/bin/npm-cli.js` → npm's directory
    /// `/usr/lib/node_modules/npm`.
    pub fn locate(env: &BTreeMap<String, String>) -> NpmInstall {
        let find = |name: &str| -> Option<PathBuf> {
            let path = env.get("PATH")?;
            path.split(':')
                .filter(|dir| dir.starts_with('/'))
                .map(|dir| Path::new(dir).join(name))
                .find(|candidate| candidate.is_file())
                .and_then(|found| std::fs::canonicalize(found).ok())
        };
        NpmInstall {
            node: find("node"),
            npm_dir: find("npm")
                .and_then(|cli| cli.parent()?.parent().map(Path::to_path_buf))
                .filter(|dir| dir.join("package.json").is_file()),
        }
    }
}

/// Reads the host's npm configuration files: [`NpmInstall::locate`] and [`HostFiles`].
pub fn read_npm_config_files(env: &BTreeMap<String, String>, home: Option<&Path>) -> Result<NpmConfigFiles, String> {
    read_npm_config_files_with(&HostFiles, env, home, &NpmInstall::locate(env))
}

/// Reads the npm configuration files through `reader`. The user file is
/// `npm_config_userconfig` or `<home>/.npmrc`; the global file is `globalconfig` (from the
/// environment, the user file or the builtin file, in that order), else `<prefix>/etc/npmrc`
/// with `prefix` found the same way, else npm's default prefix: `$PREFIX`, or the node
/// binary's grandparent with `$DESTDIR` before it.
pub fn read_npm_config_files_with(
    reader: &dyn ReadConfig,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
    install: &NpmInstall,
) -> Result<NpmConfigFiles, String> {
    let read = |path: PathBuf| -> Result<ConfigFile, String> {
        let contents = reader.read(&path)?;
        Ok(ConfigFile { path, contents })
    };
    let mut notes = Vec::new();
    let env_layer = npm_env_layer(env, &mut notes);

    let user_path = match env_layer.get("userconfig") {
        Some((value, source)) => Some(npm_path(&npm_value_text(value), "userconfig", source, env, home)?),
        None => home.map(|home| home.join(".npmrc")),
    };
    let user = user_path.map(read).transpose()?;
    let builtin = install
        .npm_dir
        .as_ref()
        .map(|dir| read(dir.join("npmrc")))
        .transpose()?;

    let user_layer = user
        .as_ref()
        .map(|f| parse_npmrc(f, env, &mut notes))
        .unwrap_or_default();
    let builtin_layer = builtin
        .as_ref()
        .map(|f| parse_npmrc(f, env, &mut notes))
        .unwrap_or_default();
    let layers = [&builtin_layer, &user_layer, &env_layer];
    let global_path = if let Some((value, source)) = npm_lookup(&layers, "globalconfig") {
        Some(npm_path(&npm_value_text(value), "globalconfig", source, env, home)?)
    } else {
        let prefix = match npm_lookup(&layers, "prefix") {
            Some((value, source)) => Some(npm_path(&npm_value_text(value), "prefix", source, env, home)?),
            None => npm_default_prefix(env, install.node.as_deref()),
        };
        prefix.map(|prefix| prefix.join("etc/npmrc"))
    };
    let global = global_path.map(read).transpose()?;
    Ok(NpmConfigFiles { builtin, global, user })
}

/// npm's default global prefix (`loadGlobalPrefix`): `$PREFIX`, else the node binary's
/// grandparent (`/usr/bin/node` → `/usr`) with `$DESTDIR` joined before it.
pub fn npm_default_prefix(env: &BTreeMap<String, String>, node: Option<&Path>) -> Option<PathBuf> {
    if let Some(prefix) = env.get("PREFIX").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(prefix));
    }
    let prefix = node?.parent()?.parent()?;
    match env.get("DESTDIR").filter(|d| !d.is_empty()) {
        Some(destdir) => Some(Path::new(destdir).join(prefix.strip_prefix("/").unwrap_or(prefix))),
        None => Some(prefix.to_path_buf()),
    }
}

// ---------------------------------------------------------------------------------------
// pip
// ---------------------------------------------------------------------------------------

/// The pip configuration files of the host, read ([`read_pip_config_files`]) or given, each
/// list in pip's loading order. Which of them count is [`pip_settings`]'s business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipConfigFiles {
    /// `<dir>/pip/pip.conf` for each directory of `$XDG_CONFIG_DIRS` (`/etc/xdg` when
    /// unset), then `/etc/pip.conf`.
    pub global: Vec<ConfigFile>,
    /// `~/.pip/pip.conf` (legacy), then `$XDG_CONFIG_HOME/pip/pip.conf` (or
    /// `~/.config/pip/pip.conf`).
    pub user: Vec<ConfigFile>,
    /// `$VIRTUAL_ENV/pip.conf` when a virtual environment is active. pip reads
    /// `sys.prefix/pip.conf` of the interpreter it runs under; on the host that is the active
    /// virtual environment the user chose, the closest equivalent mcp-j can see.
    pub site: Option<ConfigFile>,
    /// The file `PIP_CONFIG_FILE` names (unless it is `/dev/null`).
    pub env_file: Option<ConfigFile>,
}

/// What the jailed pip gets from the host's pip configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipSettings {
    /// `index-url` (default [`PYPI_DEFAULT_INDEX`]).
    pub index_url: String,
    /// `extra-index-url`: whitespace-separated in a value, one or several lines.
    pub extra_index_urls: Vec<String>,
    /// `find-links`: URLs or local paths (a local directory must be exposed read-only).
    pub find_links: Vec<String>,
    /// `cert`: a CA bundle path (`~` expanded), to expose read-only.
    pub cert: Option<PathBuf>,
    /// `trusted-host`: hosts pip reaches without TLS verification or over plain http.
    pub trusted_hosts: Vec<String>,
    /// `no-index`.
    pub no_index: bool,
    /// Whether an index or find-links URL carries a user name or password: kept (pip needs
    /// it), but the caller may refuse or warn. Use [`redacted`] to show such a URL.
    pub index_has_credentials: bool,
    /// The proxy setting (`proxy`) if found, and where, without its value: ignored, mcp-j's
    /// egress proxy replaces it.
    pub ignored_proxies: Vec<String>,
    /// Where each returned value came from, e.g. `cert: PIP_CERT`.
    pub sources: Vec<String>,
    /// Things worth telling the user: files skipped and why, credential keys ignored.
    pub notes: Vec<String>,
}

impl PipSettings {
    /// Whether the index is pip's default, PyPI (whose files live on [`PYPI_FILES_HOST`]).
    pub fn uses_pypi(&self) -> bool {
        !self.no_index
            && matches!(
                self.index_url.trim_end_matches('/'),
                "https://pypi.org/simple" | "https://pypi.python.org/simple"
            )
    }

    /// The index URLs pip will ask (none with `no-index`), then the find-links locations.
    pub fn urls(&self) -> Vec<&str> {
        let mut urls = Vec::new();
        if !self.no_index {
            urls.push(self.index_url.as_str());
            urls.extend(self.extra_index_urls.iter().map(String::as_str));
        }
        urls.extend(self.find_links.iter().map(String::as_str));
        urls
    }

    /// The destinations the jailed pip needs: [`hosts_to_allow`] of [`PipSettings::urls`],
    /// and [`PYPI_FILES_HOST`] on 443 when the index is PyPI.
    pub fn hosts_to_allow(&self) -> Vec<(String, u16)> {
        let mut hosts = hosts_to_allow(self.urls());
        let files = (PYPI_FILES_HOST.to_string(), 443);
        if self.uses_pypi() && !hosts.contains(&files) {
            hosts.push(files);
        }
        hosts
    }

    /// The local paths the jail must see read-only: `cert`, then the local indexes and
    /// find-links locations (plain paths and `file:` URLs) of [`PipSettings::urls`].
    pub fn read_only_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.cert.iter().cloned().collect();
        paths.extend(self.urls().into_iter().filter_map(local_path));
        paths
    }

    /// The environment that gives the jailed pip these settings and no configuration file
    /// (`PIP_CONFIG_FILE=/dev/null`).
    pub fn jail_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PIP_CONFIG_FILE".to_string(), DEV_NULL.to_string()),
            ("PIP_INDEX_URL".to_string(), self.index_url.clone()),
        ];
        let lists = [
            ("PIP_EXTRA_INDEX_URL", &self.extra_index_urls),
            ("PIP_FIND_LINKS", &self.find_links),
            ("PIP_TRUSTED_HOST", &self.trusted_hosts),
        ];
        for (name, values) in lists {
            if !values.is_empty() {
                env.push((name.to_string(), values.join(" ")));
            }
        }
        if let Some(cert) = &self.cert {
            env.push(("PIP_CERT".to_string(), cert.display().to_string()));
        }
        if self.no_index {
            env.push(("PIP_NO_INDEX".to_string(), "1".to_string()));
        }
        env
    }
}

impl NpmSettings {
    /// The local paths the jail must see read-only: `cafile`.
    pub fn read_only_paths(&self) -> Vec<PathBuf> {
        self.cafile.iter().cloned().collect()
    }
}

/// One `key = value` of a configparser file: name (lowercase), value, line of the key.
type IniItem = (String, String, usize);

/// A file parsed as Python's `configparser.RawConfigParser()` does (pip's reader).
#[derive(Debug, Default)]
struct IniFile {
    /// The `[DEFAULT]` items, which every section inherits.
    defaults: Vec<IniItem>,
    sections: Vec<(String, Vec<IniItem>)>,
}

/// Python's `RawConfigParser` with its defaults: `=` or `:` between key and value; whole-line
/// `#`/`;` comments only; keys lowercased; lines indented deeper than their key continue its
/// value (blank lines inside kept, trailing ones dropped); a duplicate section or key in one
/// file, a key before any section or a line without a delimiter is an error.
fn parse_configparser(path: &Path, text: &str) -> Result<IniFile, String> {
    #[derive(Clone, Copy)]
    enum Cursor {
        None,
        Defaults,
        Section(usize),
    }
    /// A key being read: its name, the lines of its value, its line number.
    type Open = (String, Vec<String>, usize);
    let mut defaults: Vec<Open> = Vec::new();
    let mut sections: Vec<(String, Vec<Open>)> = Vec::new();
    let mut cursor = Cursor::None;
    // The key whose value may continue on the next, deeper-indented lines.
    let mut option: Option<(Cursor, usize)> = None;
    let mut indent_level = 0;
    let mut added_sections = BTreeSet::new();
    let mut added_options = BTreeSet::new();
    let err = |lineno: usize, what: &str| format!("{} line {lineno}: {what}", path.display());
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let is_comment = line.trim().starts_with(['#', ';']);
        let value = if is_comment { "" } else { line.trim() };
        let open = match option {
            Some((Cursor::Defaults, i)) => defaults.get_mut(i),
            Some((Cursor::Section(s), i)) => sections.get_mut(s).and_then(|(_, it)| it.get_mut(i)),
            _ => None,
        };
        if value.is_empty() {
            if let (false, Some(open)) = (is_comment, open) {
                open.1.push(String::new());
            }
            continue;
        }
        let cur_indent = line.len() - line.trim_start().len();
        if let Some(open) = open.filter(|_| cur_indent > indent_level) {
            open.1.push(value.to_string());
            continue;
        }
        indent_level = cur_indent;
        if let Some(header) = value
            .strip_prefix('[')
            .and_then(|v| v.rfind(']').map(|end| &v[..end]))
            .filter(|h| !h.is_empty())
        {
            if header == "DEFAULT" {
                cursor = Cursor::Defaults;
            } else {
                if !added_sections.insert(header.to_string()) {
                    return Err(err(lineno, &format!("section [{header}] appears twice")));
                }
                sections.push((header.to_string(), Vec::new()));
                cursor = Cursor::Section(sections.len() - 1);
            }
            option = None;
            continue;
        }
        let (section, items) = match cursor {
            Cursor::None => {
                return Err(err(lineno, "a setting before any [section] header"));
            }
            Cursor::Defaults => ("DEFAULT", &mut defaults),
            Cursor::Section(i) => {
                let (name, items) = &mut sections[i];
                (name.as_str(), items)
            }
        };
        let Some(delim) = value.find(['=', ':']) else {
            return Err(err(lineno, "not `key = value` (no `=` or `:`)"));
        };
        let name = value[..delim].trim_end().to_lowercase();
        if name.is_empty() {
            return Err(err(lineno, "no key before the `=` or `:`"));
        }
        if !added_options.insert((section.to_string(), name.clone())) {
            return Err(err(lineno, &format!("`{name}` appears twice in section [{section}]")));
        }
        items.push((name, vec![value[delim + 1..].trim().to_string()], lineno));
        option = Some((cursor, items.len() - 1));
    }
    let finish = |items: Vec<Open>| -> Vec<IniItem> {
        items
            .into_iter()
            .map(|(name, lines, lineno)| (name, lines.join("\n").trim_end().to_string(), lineno))
            .collect()
    };
    Ok(IniFile {
        defaults: finish(defaults),
        sections: sections
            .into_iter()
            .map(|(name, items)| (name, finish(items)))
            .collect(),
    })
}

/// pip's key normalization (`_normalize_name`): lowercase, `_` → `-`, no leading `--`;
/// `pypi-url` is an alias of `index-url`.
fn pip_key(name: &str) -> String {
    let key = name.to_lowercase().replace('_', "-");
    let key = key.strip_prefix("--").unwrap_or(&key).to_string();
    if key == "pypi-url" {
        "index-url".to_string()
    } else {
        key
    }
}

/// pip's `strtobool`.
fn pip_bool(value: &str) -> Option<bool> {
    match value.to_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The settings the jailed pip gets (`pip install`), from the host's pip files and
/// environment (see the module's documentation for the precedence). Malformed files are
/// errors naming the file and line, as they are for pip.
pub fn pip_settings(files: &PipConfigFiles, env: &BTreeMap<String, String>) -> Result<PipSettings, String> {
    let mut notes = Vec::new();
    let config_file = env.get("PIP_CONFIG_FILE");
    let mut chosen: Vec<&ConfigFile> = Vec::new();
    if config_file.is_some_and(|f| f == DEV_NULL) {
        notes.push("PIP_CONFIG_FILE is /dev/null: no pip configuration file is read".into());
    } else {
        chosen.extend(&files.global);
        let env_file_exists = files.env_file.as_ref().is_some_and(|f| f.contents.is_some());
        if env_file_exists {
            if files.user.iter().any(|f| f.contents.is_some()) {
                notes.push("PIP_CONFIG_FILE names a file that exists: the user files are skipped".into());
            }
        } else {
            chosen.extend(&files.user);
        }
        chosen.extend(&files.site);
        chosen.extend(&files.env_file);
    }

    // key → (value, source) for [global] and for [install], later files winning.
    let mut global: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut install: BTreeMap<String, (String, String)> = BTreeMap::new();
    for file in chosen {
        let Some(text) = &file.contents else {
            continue;
        };
        let parsed = parse_configparser(&file.path, text)?;
        for (section, items) in &parsed.sections {
            let target = match section.as_str() {
                "global" => &mut global,
                "install" => &mut install,
                _ => continue,
            };
            let own: BTreeSet<&str> = items.iter().map(|(n, _, _)| n.as_str()).collect();
            let inherited = parsed.defaults.iter().filter(|(n, _, _)| !own.contains(n.as_str()));
            for (name, value, line) in inherited.chain(items) {
                let key = pip_key(name);
                let source = format!("{} [{section}] line {line}", file.path.display());
                target.insert(key, (value.clone(), source));
            }
        }
    }
    let mut env_vars: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix("PIP_") {
            let lower = rest.to_lowercase();
            if lower != "version" && lower != "help" {
                env_vars.insert(pip_key(&lower), (value.clone(), name.clone()));
            }
        }
    }

    // pip's order: [global], then [install], then the environment; empty values skipped.
    let layers = [&global, &install, &env_vars];
    let lookup = |key: &str| -> Option<&(String, String)> {
        layers
            .iter()
            .rev()
            .find_map(|layer| layer.get(key).filter(|(value, _)| !value.is_empty()))
    };
    for layer in layers {
        for (key, (value, source)) in layer.iter() {
            if key == "client-cert" && !value.is_empty() {
                notes.push(format!(
                    "`client-cert` ({source}) is a credential; it is not passed to the sandbox"
                ));
            }
        }
    }
    let mut sources = Vec::new();
    let mut take = |key: &str| -> Option<(String, String)> {
        let found = lookup(key).cloned();
        if let Some((_, source)) = &found {
            sources.push(format!("{key}: {source}"));
        }
        found
    };

    let index_url = match take("index-url") {
        Some((value, _)) => value.trim().to_string(),
        None => PYPI_DEFAULT_INDEX.to_string(),
    };
    let list = |found: Option<(String, String)>| -> Vec<String> {
        found
            .map(|(value, _)| value.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let extra_index_urls = list(take("extra-index-url"));
    let find_links = list(take("find-links"));
    let trusted_hosts = list(take("trusted-host"));
    let cert = take("cert").map(|(value, _)| {
        let value = value.trim();
        match (value.strip_prefix('~'), env_home(env)) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
                home.join(rest.trim_start_matches('/'))
            }
            _ => PathBuf::from(value),
        }
    });
    let no_index = match take("no-index") {
        Some((value, source)) => pip_bool(value.trim()).ok_or_else(|| {
            format!(
                "pip's `no-index` ({source}) is {value:?}, not a boolean (yes/no, true/false, \
                 1/0)"
            )
        })?,
        None => false,
    };
    let ignored_proxies = take("proxy")
        .map(|(_, source)| format!("proxy ({source})"))
        .into_iter()
        .collect();
    if sources.iter().all(|s| !s.starts_with("index-url:")) {
        sources.push("index-url: pip's default".to_string());
    }
    let index_has_credentials = std::iter::once(&index_url)
        .chain(&extra_index_urls)
        .chain(&find_links)
        .any(|url| has_credentials(url));

    Ok(PipSettings {
        index_url,
        extra_index_urls,
        find_links,
        cert,
        trusted_hosts,
        no_index,
        index_has_credentials,
        ignored_proxies,
        sources,
        notes,
    })
}

/// Reads the host's pip configuration files with [`HostFiles`].
pub fn read_pip_config_files(env: &BTreeMap<String, String>, home: Option<&Path>) -> Result<PipConfigFiles, String> {
    read_pip_config_files_with(&HostFiles, env, home)
}

/// Reads every pip configuration file location (pip's `get_configuration_files` on Linux)
/// through `reader`; [`pip_settings`] decides which of them count.
pub fn read_pip_config_files_with(
    reader: &dyn ReadConfig,
    env: &BTreeMap<String, String>,
    home: Option<&Path>,
) -> Result<PipConfigFiles, String> {
    let read = |path: PathBuf| -> Result<ConfigFile, String> {
        let contents = reader.read(&path)?;
        Ok(ConfigFile { path, contents })
    };
    let xdg_dirs = env
        .get("XDG_CONFIG_DIRS")
        .filter(|d| !d.trim().is_empty())
        .map_or("/etc/xdg", String::as_str);
    let mut global_paths: Vec<PathBuf> = xdg_dirs
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join("pip/pip.conf"))
        .collect();
    global_paths.push(PathBuf::from("/etc/pip.conf"));
    let global = global_paths.into_iter().map(read).collect::<Result<_, _>>()?;

    let mut user_paths = Vec::new();
    if let Some(home) = home {
        user_paths.push(home.join(".pip/pip.conf"));
    }
    match env.get("XDG_CONFIG_HOME").filter(|d| !d.trim().is_empty()) {
        Some(dir) => user_paths.push(Path::new(dir).join("pip/pip.conf")),
        None => user_paths.extend(home.map(|home| home.join(".config/pip/pip.conf"))),
    }
    let user = user_paths.into_iter().map(read).collect::<Result<_, _>>()?;

    let site = env
        .get("VIRTUAL_ENV")
        .filter(|v| !v.is_empty())
        .map(|venv| read(Path::new(venv).join("pip.conf")))
        .transpose()?;
    let env_file = env
        .get("PIP_CONFIG_FILE")
        .filter(|f| !f.is_empty() && f.as_str() != DEV_NULL)
        .map(|f| read(PathBuf::from(f)))
        .transpose()?;
    Ok(PipConfigFiles {
        global,
        user,
        site,
        env_file,
    })
}

#[cfg(test)]
#[path = "tool_config_tests.rs"]
mod tests;
