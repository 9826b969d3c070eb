//! The sandbox options shared by `exec` and `run`, the `--manifest` file that mirrors them,
//! and how they become a [`SandboxSpec`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mcp_j_engine::{Limits, SandboxSpec, Workdir};
use serde::Deserialize;

use crate::config::Config;
use crate::units::{parse_duration, parse_size};

/// Sandbox options (docs: ../shared/INTERFACE.md, "Sandbox options").
#[derive(Debug, Clone, Default, Args)]
pub struct SandboxOpts {
    /// Permissions and limits as JSON (mirrors these flags; flags win)
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Also expose a host path read-only (and executable), at the same path
    #[arg(long = "ro", value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Also expose a host path read-write (never executable), at the same path
    #[arg(long = "rw", value_name = "PATH")]
    pub rw: Vec<PathBuf>,
    /// Host directory exposed read-write and used as the working directory
    /// [default: the current directory, unless it is /, the home directory or an ancestor
    /// of it: then a private empty directory]
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Allow egress to this host name or IP (not available yet)
    #[arg(long = "allow-net", value_name = "HOST[:PORT]")]
    pub allow_net: Vec<String>,
    /// Set a variable (NAME=VALUE) or pass one from the host (NAME)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Pass a secret: NAME=env:VAR or NAME=file:PATH; its value is never logged
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    pub secret: Vec<String>,
    /// Memory limit [default: 512M]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// Task (process + thread) limit [default: 256]
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Open-file limit [default: 1024]
    #[arg(long, value_name = "N")]
    pub fds: Option<u64>,
    /// CPU quota, 1000 = one core [default: 1000]
    #[arg(long, value_name = "MILLICORES")]
    pub cpu: Option<u64>,
    /// Wall-clock limit (30s, 10m); the whole jail is killed and mcp-j exits 124
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The program may not start other programs
    #[arg(long = "no-subprocess")]
    pub no_subprocess: bool,
    /// Append audit events (JSON Lines) to FILE
    #[arg(long = "audit-log", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// The configuration (file, then `MCP_J_*` variables) under the manifest and these
    /// flags; `main` sets it from the loaded configuration.
    #[arg(skip)]
    pub config: Config,
}

/// `--manifest`: the same settings as the flags, as JSON. Unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    ro: Vec<PathBuf>,
    #[serde(default)]
    rw: Vec<PathBuf>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    allow_net: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    memory: Option<String>,
    pids: Option<u64>,
    fds: Option<u64>,
    cpu: Option<u64>,
    timeout: Option<String>,
    no_subprocess: Option<bool>,
    /// `run` only: `--allow-tool`, `--deny-tool`, `--allow-server-request`.
    #[serde(default)]
    allow_tools: Vec<String>,
    #[serde(default)]
    deny_tools: Vec<String>,
    #[serde(default)]
    allow_server_requests: Vec<String>,
}

/// Where secrets come from; their values never reach a log or an error message.
fn read_secret(spec: &str) -> Result<(String, String)> {
    let Some((name, source)) = spec.split_once('=') else {
        bail!(
            "`--secret {}`: expected NAME=env:VAR or NAME=file:PATH",
            redact_value(spec)
        );
    };
    check_env_name(name)?;
    let value = if let Some(var) = source.strip_prefix("env:") {
        std::env::var(var).with_context(|| format!("secret `{name}`: environment variable `{var}` is not set"))?
    } else if let Some(path) = source.strip_prefix("file:") {
        let text = std::fs::read_to_string(path).with_context(|| format!("secret `{name}`: cannot read `{path}`"))?;
        text.strip_suffix('\n').unwrap_or(&text).to_string()
    } else {
        bail!("secret `{name}`: the source must be env:VAR or file:PATH");
    };
    Ok((name.to_string(), value))
}

fn redact_value(spec: &str) -> String {
    match spec.split_once('=') {
        Some((name, _)) => format!("{name}=…"),
        None => spec.to_string(),
    }
}

pub(crate) fn check_env_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        bail!("`{name}` is not a valid environment variable name");
    }
    Ok(())
}

/// The default environment: nothing of the host's but `TERM`.
fn base_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), std::env::var("TERM").unwrap_or_else(|_| "dumb".into())),
    ]
}

fn set_env(env: &mut Vec<(String, String)>, name: String, value: String) {
    env.retain(|(k, _)| *k != name);
    env.push((name, value));
}

/// Where a host path is exposed in the jail: "at the same path" — the path as given (made
/// absolute), with its directory part resolved but its last component kept, so a symlink
/// the user names (`--ro ~/.mcp`, a link to `/data/mcp`) appears under its own name. The
/// bind itself follows the link to its target. The path must exist.
fn exposed_path(path: &Path, what: &str) -> Result<PathBuf> {
    let absolute = std::path::absolute(path).with_context(|| format!("{what} `{}`", path.display()))?;
    std::fs::metadata(&absolute).with_context(|| format!("{what} `{}` does not exist", path.display()))?;
    let name = absolute.file_name().filter(|n| *n != ".." && *n != ".");
    match (absolute.parent(), name) {
        (Some(parent), Some(name)) => {
            let parent = std::fs::canonicalize(parent).with_context(|| format!("{what} `{}`", path.display()))?;
            Ok(parent.join(name))
        }
        _ => std::fs::canonicalize(&absolute).with_context(|| format!("{what} `{}`", path.display())),
    }
}

/// The default working directory: the current one, unless that is `/`, the home directory
/// or an ancestor of it (exposing those would expose everything), or a shared temporary
/// directory such as `/tmp` (sticky and world-writable: other users' files and sockets
/// live there): then a private one.
fn default_workdir() -> Workdir {
    let Ok(cwd) = std::env::current_dir().and_then(std::fs::canonicalize) else {
        return Workdir::Private;
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| std::fs::canonicalize(h).ok());
    let too_broad = cwd == Path::new("/")
        || cwd.starts_with("/proc")
        || cwd.starts_with("/dev")
        || home.is_some_and(|h| h.starts_with(&cwd))
        || is_shared_temp_dir(&cwd);
    if too_broad {
        Workdir::Private
    } else {
        Workdir::Host(cwd)
    }
}

/// Sticky and writable by everyone: `/tmp`, `/var/tmp`, `/dev/shm` and the like.
fn is_shared_temp_dir(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir).is_ok_and(|m| {
        let mode = m.permissions().mode();
        mode & 0o1000 != 0 && mode & 0o002 != 0
    })
}

/// What the options resolve to: the spec plus what the supervisor itself enforces.
pub struct Resolved {
    pub spec: SandboxSpec,
    pub timeout: Option<Duration>,
    /// The manifest's tool and server-request policy (`run` adds the flags to these).
    pub allow_tools: Vec<String>,
    pub deny_tools: Vec<String>,
    pub allow_server_requests: Vec<String>,
    /// Where audit events go: `--audit-log`, else the configuration's `audit_log`.
    pub audit_log: Option<PathBuf>,
    /// The secrets, `(name, value)`: for the redactor only. Their values are also in
    /// `spec.env`, the one place they are meant to be.
    pub secrets: Vec<(String, String)>,
}

impl SandboxOpts {
    /// Merge configuration, manifest and flags (in that order, later wins), read secrets,
    /// check paths: a ready spec.
    pub fn resolve(&self, program: &str, args: &[String]) -> Result<Resolved> {
        let manifest: Manifest = match &self.manifest {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read manifest `{}`", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("invalid manifest `{}`", path.display()))?
            }
            None => Manifest::default(),
        };
        if !self.allow_net.is_empty() || !manifest.allow_net.is_empty() {
            bail!("network egress (`--allow-net`) is not available yet; the sandbox has no network");
        }

        let config = &self.config;
        let defaults = config.limits();
        let manifest_memory = manifest
            .memory
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let limits = Limits {
            memory_bytes: self.memory.or(manifest_memory).unwrap_or(defaults.memory_bytes),
            pids: self.pids.or(manifest.pids).unwrap_or(defaults.pids),
            fds: self.fds.or(manifest.fds).unwrap_or(defaults.fds),
            cpu_millicores: self.cpu.or(manifest.cpu).unwrap_or(defaults.cpu_millicores),
        };
        if limits.pids == 0 || limits.fds < 4 || limits.cpu_millicores == 0 {
            bail!("limits too small: --pids must be at least 1, --fds at least 4, --cpu at least 1");
        }
        let manifest_timeout = manifest
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(anyhow::Error::msg)?;

        let mut env = base_env();
        for item in manifest.env.iter().chain(&self.env) {
            match item.split_once('=') {
                Some((name, value)) => {
                    check_env_name(name)?;
                    set_env(&mut env, name.to_string(), value.to_string());
                }
                None => {
                    check_env_name(item)?;
                    let value = std::env::var(item)
                        .with_context(|| format!("`--env {item}`: `{item}` is not set in the environment"))?;
                    set_env(&mut env, item.clone(), value);
                }
            }
        }
        let config_secrets: Vec<String> = config.secrets.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut secrets: Vec<(String, String)> = Vec::new();
        for item in config_secrets.iter().chain(&manifest.secrets).chain(&self.secret) {
            let (name, value) = read_secret(item)?;
            secrets.retain(|(n, _)| *n != name);
            secrets.push((name.clone(), value.clone()));
            set_env(&mut env, name, value);
        }

        let workdir = match self.workdir.as_ref().or(manifest.workdir.as_ref()) {
            Some(dir) => {
                let dir = exposed_path(dir, "--workdir")?;
                if !dir.is_dir() {
                    bail!("--workdir `{}` is not a directory", dir.display());
                }
                Workdir::Host(dir)
            }
            None => default_workdir(),
        };
        let ro_paths = manifest
            .ro
            .iter()
            .chain(&self.ro)
            .map(|p| exposed_path(p, "--ro path"))
            .collect::<Result<Vec<_>>>()?;
        let rw_paths = manifest
            .rw
            .iter()
            .chain(&self.rw)
            .map(|p| exposed_path(p, "--rw path"))
            .collect::<Result<Vec<_>>>()?;

        Ok(Resolved {
            spec: SandboxSpec {
                program: program.to_string(),
                args: args.to_vec(),
                env,
                workdir,
                ro_paths,
                rw_paths,
                limits,
                no_subprocess: self.no_subprocess
                    || manifest.no_subprocess.or(config.policy.no_subprocess).unwrap_or(false),
                limits_by_cgroup: false,
                covers: Vec::new(),
            },
            timeout: self.timeout.or(manifest_timeout).or(config.limits.timeout.map(|t| t.0)),
            allow_tools: concat(&config.policy.allow_tools, manifest.allow_tools),
            deny_tools: concat(&config.policy.deny_tools, manifest.deny_tools),
            allow_server_requests: concat(&config.policy.allow_server_requests, manifest.allow_server_requests),
            audit_log: self.audit_log.clone().or_else(|| config.audit_log.clone()),
            secrets,
        })
    }
}

/// The configuration's list, then the manifest's.
fn concat(config: &Option<Vec<String>>, manifest: Vec<String>) -> Vec<String> {
    config.iter().flatten().cloned().chain(manifest).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(opts: SandboxOpts) -> Result<Resolved> {
        opts.resolve("prog", &["a".into()])
    }

    #[test]
    fn defaults_follow_the_interface() {
        let r = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.limits, Limits::default());
        assert_eq!(r.spec.limits.memory_bytes, 512 << 20);
        assert_eq!(r.timeout, None);
        let names: Vec<_> = r.spec.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "HOME", "LANG", "TERM"]);
        assert!(!r.spec.no_subprocess);
    }

    #[test]
    fn env_flags_set_and_pass_through() {
        // SAFETY-free: std::env::set_var is unsafe in edition 2024; use a var the test
        // process already has instead.
        let r = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            env: vec!["A=1".into(), "PATH=/x".into(), "CARGO".into()],
            ..Default::default()
        })
        .expect("resolve");
        assert!(r.spec.env.contains(&("A".into(), "1".into())));
        assert!(r.spec.env.contains(&("PATH".into(), "/x".into())));
        assert!(r.spec.env.iter().any(|(k, _)| k == "CARGO"));
        assert_eq!(r.spec.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
    }

    #[test]
    fn missing_pass_through_env_is_an_error() {
        let err = resolve(SandboxOpts {
            env: vec!["MCP_J_SURELY_UNSET_VARIABLE".into()],
            ..Default::default()
        });
        assert!(err.is_err());
    }

    #[test]
    fn secret_from_file_and_errors_never_show_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t-value\n").expect("write");
        let r = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            secret: vec![format!("TOKEN=file:{}", file.display())],
            ..Default::default()
        })
        .expect("resolve");
        assert!(r.spec.env.contains(&("TOKEN".into(), "s3cr3t-value".into())));

        let err = resolve(SandboxOpts {
            secret: vec!["TOKEN=literal-s3cr3t".into()],
            ..Default::default()
        })
        .err()
        .expect("error");
        assert!(!format!("{err:#}").contains("literal-s3cr3t"));
    }

    #[test]
    fn shared_temp_dirs_are_never_the_default_workdir() {
        assert!(is_shared_temp_dir(Path::new("/tmp")));
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_shared_temp_dir(dir.path()));
    }

    #[test]
    fn a_symlink_is_exposed_under_its_own_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("target")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("target"), root.join("link")).expect("symlink");
        assert_eq!(
            exposed_path(&root.join("link"), "--ro").expect("link"),
            root.join("link")
        );
        assert_eq!(
            exposed_path(&root.join("link/../target"), "--ro").expect("dotdot"),
            root.join("target")
        );
        assert!(exposed_path(&root.join("missing"), "--ro").is_err());
    }

    #[test]
    fn allow_net_is_refused_for_now() {
        let err = resolve(SandboxOpts {
            allow_net: vec!["example.com".into()],
            ..Default::default()
        });
        assert!(err.is_err());
    }

    #[test]
    fn manifest_mirrors_flags_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("m.json");
        std::fs::write(
            &m,
            r#"{"memory": "1G", "pids": 10, "no_subprocess": true, "timeout": "5s"}"#,
        )
        .expect("write");
        let r = resolve(SandboxOpts {
            manifest: Some(m.clone()),
            workdir: Some("/tmp".into()),
            pids: Some(20),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.limits.memory_bytes, 1 << 30);
        assert_eq!(r.spec.limits.pids, 20);
        assert!(r.spec.no_subprocess);
        assert_eq!(r.timeout, Some(Duration::from_secs(5)));

        std::fs::write(&m, r#"{"memroy": "1G"}"#).expect("write");
        let err = resolve(SandboxOpts {
            manifest: Some(m),
            ..Default::default()
        })
        .err()
        .expect("unknown field refused");
        assert!(format!("{err:#}").contains("memroy"));
    }

    #[test]
    fn config_is_under_manifest_and_flags() {
        use crate::config::{LimitsConfig, PolicyConfig, Size};
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("m.json");
        std::fs::write(&m, r#"{"pids": 10, "deny_tools": ["b"], "no_subprocess": false}"#).expect("write");
        let config = Config {
            audit_log: Some("/config/audit".into()),
            limits: LimitsConfig {
                memory: Some(Size(1 << 30)),
                pids: Some(5),
                fds: Some(100),
                timeout: Some(crate::config::Timeout(Duration::from_secs(9))),
                ..Default::default()
            },
            policy: PolicyConfig {
                no_subprocess: Some(true),
                deny_tools: Some(vec!["a".into()]),
                ..Default::default()
            },
            secrets: [("CFG_SECRET".to_string(), "env:CARGO".to_string())].into(),
            ..Default::default()
        };
        let r = resolve(SandboxOpts {
            manifest: Some(m),
            workdir: Some("/tmp".into()),
            fds: Some(200),
            config: config.clone(),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.limits.memory_bytes, 1 << 30, "config over the default");
        assert_eq!(r.spec.limits.pids, 10, "manifest over config");
        assert_eq!(r.spec.limits.fds, 200, "flag over all");
        assert_eq!(r.spec.limits.cpu_millicores, Limits::default().cpu_millicores);
        assert_eq!(r.timeout, Some(Duration::from_secs(9)));
        assert!(!r.spec.no_subprocess, "the manifest's false beats the config's true");
        assert_eq!(r.deny_tools, ["a", "b"]);
        assert_eq!(r.audit_log, Some(PathBuf::from("/config/audit")));
        assert!(r.spec.env.iter().any(|(k, _)| k == "CFG_SECRET"));

        let r = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            audit_log: Some("/flag/audit".into()),
            config,
            ..Default::default()
        })
        .expect("resolve");
        assert!(r.spec.no_subprocess);
        assert_eq!(r.audit_log, Some(PathBuf::from("/flag/audit")));
    }

    #[test]
    fn secret_errors_name_the_source_never_the_value() {
        let err = resolve(SandboxOpts {
            secret: vec!["TOKEN=env:MCP_J_SURELY_UNSET_SECRET".into()],
            ..Default::default()
        })
        .err()
        .expect("missing variable");
        assert!(format!("{err:#}").contains("MCP_J_SURELY_UNSET_SECRET"));
        let err = resolve(SandboxOpts {
            secret: vec!["TOKEN=file:/nonexistent/mcp-j-secret".into()],
            ..Default::default()
        })
        .err()
        .expect("unreadable file");
        assert!(format!("{err:#}").contains("/nonexistent/mcp-j-secret"));
    }
}
