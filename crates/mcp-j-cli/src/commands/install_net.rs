//! What the jailed npm or pip may reach, see and is told: the host's npm/pip configuration
//! read by `mcp_j_package::tool_config` (URLs, CA files, local find-links — never a
//! credential, never the files themselves) turned into `mcp-j exec` flags.
//!
//! A registry host that resolves on this machine to an address the egress layer treats as
//! special (a corporate mirror on a private network, say) is the user's own configuration
//! pointing there: its addresses are added as rules of their own, for that port only, and
//! said on stderr.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use mcp_j_package::tool_config::{self, redacted};

use super::install::InstallerJail;

fn host_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn home(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    env.get("HOME").map(PathBuf::from).filter(|p| p.is_absolute())
}

/// The jail of `npm install`. With `token` (`--secret NPM_TOKEN=…`), the installer gets a
/// user npmrc in `scratch` naming `${NPM_TOKEN}` as the `_authToken` of each registry host
/// (npm reads the variable; the value is never written anywhere) and the secret itself.
pub fn npm_jail(token: Option<&crate::secret::SecretRef>, scratch: &Path) -> Result<InstallerJail> {
    let env = host_env();
    let files = tool_config::read_npm_config_files(&env, home(&env).as_deref()).map_err(|e| anyhow!(e))?;
    let settings = tool_config::npm_settings(&files, &env).map_err(|e| anyhow!(e))?;
    if settings.registry_has_credentials {
        bail!(
            "the npm registry URL in your npm configuration carries credentials ({}); mcp-j does not hand \
             credentials to the installer: use a registry URL without them",
            redacted(&settings.registry)
        );
    }
    if !settings.ca.is_empty() {
        bail!(
            "your npm configuration gives inline `ca` certificates, which mcp-j does not pass to the \
             installer: put them in a file and set `cafile` to it"
        );
    }
    for note in &settings.notes {
        eprintln!("mcp-j: npm configuration: {note}");
    }
    let mut jail = InstallerJail {
        source: redacted(&settings.registry),
        ..InstallerJail::default()
    };
    for (name, value) in settings.jail_env() {
        // `npm_config_@scope:registry` is not a name `--env` takes: scoped registries go
        // to npm as flags instead.
        if name.contains(['@', ':']) {
            continue;
        }
        // npm refuses to load one file as both the user and the global configuration: the
        // global one is a path that does not exist in the jail's private /tmp.
        if name == "npm_config_globalconfig" {
            jail.env.push((name, "/tmp/.mcp-j-no-global-npmrc".to_owned()));
            continue;
        }
        jail.env.push((name, value));
    }
    for (scope, url) in &settings.scoped_registries {
        jail.args.push(format!("--{scope}:registry={url}"));
    }
    jail.env.extend([
        ("npm_config_cache".to_owned(), "/tmp/npm-cache".to_owned()),
        ("npm_config_update_notifier".to_owned(), "false".to_owned()),
        ("npm_config_fund".to_owned(), "false".to_owned()),
        ("npm_config_audit".to_owned(), "false".to_owned()),
    ]);
    jail.ro = outside_the_jail(settings.read_only_paths());
    jail.allow_net = allow_rules(&settings.hosts_to_allow());
    if let Some(token) = token {
        let npmrc = scratch.join("npmrc");
        let mut text = String::new();
        for (host, port) in settings.hosts_to_allow() {
            let authority = if [80, 443].contains(&port) {
                host
            } else {
                format!("{host}:{port}")
            };
            text.push_str(&format!("//{authority}/:_authToken=${{{}}}\n", token.name));
        }
        std::fs::write(&npmrc, text).with_context(|| format!("cannot write `{}`", npmrc.display()))?;
        jail.env.retain(|(name, _)| name != "npm_config_userconfig");
        jail.env
            .push(("npm_config_userconfig".to_owned(), npmrc.display().to_string()));
        jail.ro.push(npmrc);
        jail.secrets.push(secret_flag(token));
        eprintln!(
            "mcp-j: the installer authenticates to the npm registry with the secret `{}` (the server does not get it)",
            token.name
        );
    }
    Ok(jail)
}

/// `NAME=SOURCE` for the child's `--secret`.
fn secret_flag(secret: &crate::secret::SecretRef) -> String {
    match &secret.source {
        crate::secret::SecretSource::Env(var) => format!("{}=env:{var}", secret.name),
        crate::secret::SecretSource::File(path) => format!("{}=file:{}", secret.name, path.display()),
    }
}

/// The jail of `python3 -m venv` and `pip install`. With `index` (`--secret
/// PIP_INDEX_URL=…`, an index URL with credentials), pip uses that index, its host is
/// allowed, and the URL reaches the installer only as that secret.
pub fn pip_jail(index: Option<&crate::secret::SecretRef>) -> Result<InstallerJail> {
    let env = host_env();
    let files = tool_config::read_pip_config_files(&env, home(&env).as_deref()).map_err(|e| anyhow!(e))?;
    let settings = tool_config::pip_settings(&files, &env).map_err(|e| anyhow!(e))?;
    if settings.index_has_credentials {
        bail!(
            "a package index URL in your pip configuration carries credentials ({}); mcp-j does not hand \
             credentials to the installer: use an index URL without them",
            redacted(&settings.index_url)
        );
    }
    for note in &settings.notes {
        eprintln!("mcp-j: pip configuration: {note}");
    }
    let mut jail = InstallerJail {
        source: redacted(&settings.index_url),
        ..InstallerJail::default()
    };
    jail.env = settings.jail_env();
    jail.env.extend([
        ("PIP_DISABLE_PIP_VERSION_CHECK".to_owned(), "1".to_owned()),
        ("PIP_NO_INPUT".to_owned(), "1".to_owned()),
    ]);
    jail.ro = outside_the_jail(settings.read_only_paths());
    jail.allow_net = allow_rules(&settings.hosts_to_allow());
    if let Some(index) = index {
        let url = index.read()?;
        let hosts = tool_config::hosts_to_allow([url.as_str()]);
        if hosts.is_empty() {
            bail!("the secret `{}` is not an http(s) index URL", index.name);
        }
        for rule in allow_rules(&hosts) {
            if !jail.allow_net.contains(&rule) {
                jail.allow_net.push(rule);
            }
        }
        jail.env.retain(|(name, _)| name != "PIP_INDEX_URL");
        jail.source = redacted(&url);
        jail.secrets.push(secret_flag(index));
        eprintln!(
            "mcp-j: the installer uses the index in the secret `{}` ({}; the server does not get it)",
            index.name,
            redacted(&url)
        );
    }
    Ok(jail)
}

/// The paths of `paths` that exist and that the jail does not already show (it shows the
/// system directories and the CA stores under `/etc`).
fn outside_the_jail(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    const SHOWN: [&str; 5] = [
        "/usr",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/pki",
        "/etc/crypto-policies",
    ];
    let mut out: Vec<PathBuf> = Vec::new();
    for path in paths {
        let Ok(real) = std::fs::canonicalize(&path) else {
            eprintln!(
                "mcp-j: `{}` from your configuration does not exist here; not passed",
                path.display()
            );
            continue;
        };
        if SHOWN.iter().any(|s| real.starts_with(Path::new(s))) || out.contains(&real) {
            continue;
        }
        out.push(real);
    }
    out
}

/// `--allow-net` rules for `hosts`: `host:port` each, and for a host that resolves to a
/// special address here, that address and port too (said on stderr).
fn allow_rules(hosts: &[(String, u16)]) -> Vec<String> {
    let mut rules = Vec::new();
    for (host, port) in hosts {
        let name_rule = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        rules.push(name_rule);
        let Ok(addrs) = (host.as_str(), *port).to_socket_addrs() else {
            continue;
        };
        for addr in addrs {
            if let Some(special) = mcp_j_policy::egress::classify(addr.ip()) {
                let rule = match addr.ip() {
                    std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
                };
                if !rules.contains(&rule) {
                    eprintln!(
                        "mcp-j: your package registry {host} is at {} ({}): the installer may reach that address on port {port}",
                        addr.ip(),
                        special
                    );
                    rules.push(rule);
                }
            }
        }
    }
    rules
}
