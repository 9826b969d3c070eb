//! The sandbox options shared by `exec` and `run`, the `--manifest` file that mirrors them,
//! and how they become a [`SandboxSpec`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mcp_j_engine::{HostPath, HostPathError, Limits, SandboxSpec, Workdir};
use mcp_j_policy::Manifest;
use mcp_j_policy::units::{parse_duration, parse_size};

use crate::config::Config;
use crate::secret::{SecretRef, is_env_name};

/// Sandbox options (docs/CLI.md, "Sandbox options").
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
    /// Host directory exposed read-write and used as the working directory; `private`: a
    /// fresh empty one; `state`: a private one that persists, per server
    /// [default: the current directory when it is an ordinary directory you own, not a
    /// system directory, /, your home or an ancestor of it, or a shared temp dir; else
    /// private, said on stderr]
    #[arg(long, value_name = "DIR|private|state")]
    pub workdir: Option<PathBuf>,
    /// Allow `--rw`/`--workdir` of a system directory (/etc, /usr, /var, …)
    #[arg(long = "allow-system-path")]
    pub allow_system_path: bool,
    /// Let the program reach this destination (repeatable): a name, *.domain, an IP or a
    /// CIDR, with :PORT (default 443 and 80); nothing else leaves
    #[arg(long = "allow-net", value_name = "HOST[:PORT]")]
    pub allow_net: Vec<String>,
    /// Set a variable (NAME=VALUE) or pass one from the host (NAME)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Pass a secret: NAME=env:VAR or NAME=file:PATH; its value is never logged
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    pub secret: Vec<String>,
    /// Memory limit, at least 16M [default: 512M]
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
    /// Largest file the program may write (RLIMIT_FSIZE) [default: 1G]
    #[arg(long = "max-file-size", value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,
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
    /// flags; `commands::exec` and `commands::run` set it from the loaded configuration.
    #[arg(skip)]
    pub config: Config,
    /// The server's identity for `--workdir state` when it is a package (`npm:NAME`,
    /// `pypi:NAME`): its state is kept across versions. `None`: the program and arguments.
    #[arg(skip)]
    pub state_id: Option<String>,
}

fn check_env_name(name: &str) -> Result<()> {
    if !is_env_name(name) {
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

/// Resolve a `--ro`/`--rw`/`--workdir` path once, on the host: an open descriptor and its
/// real path ([`HostPath`]). A last component that is a symlink is refused, naming its
/// target: a jail that could write the directory holding it may have planted it.
fn open_exposed(path: &Path, what: &str) -> Result<HostPath> {
    HostPath::open(path).map_err(|e| match e {
        HostPathError::Symlink { target } => anyhow::anyhow!(
            "`{what} {}` is a symlink to `{}`; pass the target instead (a jail may have planted the link)",
            path.display(),
            target.display()
        ),
        HostPathError::Open(err) if err.kind() == std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("`{what} {}`: no such file or directory", path.display())
        }
        e => anyhow::Error::new(e).context(format!("`{what} {}`", path.display())),
    })
}

/// Directories whose whole tree belongs to the system.
const SYSTEM_TREES: &[&str] = &[
    "/etc", "/usr", "/boot", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// Directories that belong to the system themselves, though what is under them may not.
const SYSTEM_DIRS: &[&str] = &["/", "/var", "/opt", "/srv", "/root"];

/// Whether a real (resolved) host path is a system directory, or in one.
pub(crate) fn is_system_path(path: &Path) -> bool {
    SYSTEM_TREES.iter().any(|t| path.starts_with(t)) || SYSTEM_DIRS.iter().any(|d| path == Path::new(d))
}

/// What the default working directory decision looks at: the current directory, as found
/// from its descriptor.
#[derive(Debug, Clone, Copy)]
struct CurrentDir<'a> {
    /// Its real path.
    path: &'a Path,
    owner: u32,
    mode: u32,
    /// The caller's uid.
    caller: u32,
    /// The caller's home directory (resolved), if known.
    home: Option<&'a Path>,
}

/// Why the current directory must not be the default working directory, if it must not:
/// it is exposed read-write, so it has to be an ordinary directory of the caller's own.
fn why_not_default_workdir(cwd: &CurrentDir<'_>) -> Option<&'static str> {
    if cwd.path == Path::new("/") {
        return Some("it is /");
    }
    if cwd.home == Some(cwd.path) {
        return Some("it is your home directory");
    }
    if cwd.home.is_some_and(|h| h.starts_with(cwd.path)) {
        return Some("it is an ancestor of your home directory");
    }
    if is_system_path(cwd.path) {
        return Some("it is a system directory");
    }
    if cwd.mode & 0o1000 != 0 && cwd.mode & 0o002 != 0 {
        return Some("it is a shared temporary directory");
    }
    if cwd.owner != cwd.caller {
        return Some("you do not own it");
    }
    None
}

/// The default working directory: the current one when [`why_not_default_workdir`] finds
/// nothing against it, else a private one, said once on stderr.
fn default_workdir() -> Workdir {
    let why = match HostPath::open_current_dir() {
        Ok(cwd) => {
            let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
            let why = match cwd.info() {
                Some(info) => why_not_default_workdir(&CurrentDir {
                    path: &cwd.path,
                    owner: info.uid,
                    mode: info.mode,
                    caller: rustix::process::getuid().as_raw(),
                    home: home.as_deref(),
                }),
                None => Some("its owner cannot be told"),
            };
            match why {
                None => return Workdir::Host(cwd),
                Some(why) => format!("`{}`: {why}", cwd.path.display()),
            }
        }
        Err(e) => format!("the current directory: {e}"),
    };
    eprintln!(
        "mcp-j: the working directory is a private empty one, not the current directory ({why}); \
         pass --workdir DIR to expose a directory, --workdir state for a private one that \
         persists, or --workdir private to choose this and silence this note"
    );
    Workdir::Private
}

/// `--workdir state`: `$XDG_STATE_HOME/mcp-j/state/ID` (else `~/.local/state/...`), where ID
/// names the server: its program and arguments (a hash; secrets come from `--secret`, never
/// from arguments).
fn state_dir(program: &str, args: &[String]) -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => match std::env::var_os("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() => home.join(".local/state"),
            _ => bail!("--workdir state: neither XDG_STATE_HOME nor HOME is set to an absolute path; set one"),
        },
    };
    Ok(base.join("mcp-j/state").join(server_id(program, args)))
}

/// A server's identity as a directory name: the program's name, then a hash of the program
/// and its arguments.
fn server_id(program: &str, args: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in std::iter::once(program).chain(args.iter().map(String::as_str)) {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let name: String = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    format!("{}-{hex}", name.trim_start_matches('.'))
}

/// Create (0700) and open the state directory; say where it is when it is new.
fn open_state_dir(dir: &Path) -> Result<HostPath> {
    use std::os::unix::fs::DirBuilderExt;
    let new = std::fs::symlink_metadata(dir).is_err();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("--workdir state: cannot create `{}`", dir.display()))?;
    let opened = open_exposed(dir, "--workdir state:")?;
    let info = opened.info();
    if !info.is_some_and(|i| i.is_dir && i.uid == rustix::process::getuid().as_raw()) {
        bail!(
            "--workdir state: `{}` is not a directory of yours; remove it or pass --workdir DIR",
            dir.display()
        );
    }
    if new {
        eprintln!(
            "mcp-j: --workdir state: this server's files are kept in `{}`",
            opened.path.display()
        );
    }
    Ok(opened)
}

/// PROG as the jail finds it. Exposed paths appear at their real paths, so an absolute PROG
/// with `..` in it (`--ro /a/b/../c -- /a/b/../c/bin/prog`) has its directory part resolved
/// on the host the same way; its last component stays, as PROG may be a symlink.
fn program_in_jail(program: &str) -> String {
    let path = Path::new(program);
    if !path.is_absolute() || !path.components().any(|c| c == std::path::Component::ParentDir) {
        return program.to_string();
    }
    match (path.parent().map(std::fs::canonicalize), path.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir
            .join(name)
            .into_os_string()
            .into_string()
            .unwrap_or_else(|_| program.to_string()),
        _ => program.to_string(),
    }
}

/// Refuse a system directory asked for read-write, unless `--allow-system-path`.
fn check_system_path(what: &str, given: &Path, opened: &HostPath, allow: bool) -> Result<bool> {
    if !is_system_path(&opened.path) {
        return Ok(false);
    }
    if !allow {
        bail!(
            "`{what} {}` is a system directory (`{}`): the program could change the host's own \
             files there; pass --allow-system-path to expose it anyway",
            given.display(),
            opened.path.display()
        );
    }
    Ok(true)
}

/// What the options resolve to: the spec plus what the supervisor itself enforces.
pub struct Resolved {
    pub spec: SandboxSpec,
    pub timeout: Option<Duration>,
    /// The manifest's tool and server-request policy (`run` adds the flags to these).
    pub allow_tools: Vec<String>,
    pub deny_tools: Vec<String>,
    pub allow_server_requests: Vec<String>,
    /// Tool pinning: the manifest's `pins`, else the configuration's `policy.pins` (`run`'s
    /// `--pins` wins over both).
    pub pins: mcp_j_policy::PinMode,
    /// Where audit events go: `--audit-log`, else the configuration's `audit_log`.
    pub audit_log: Option<PathBuf>,
    /// A CPU quota was asked for (flag, manifest or configuration), not just defaulted:
    /// where none can be enforced, that is said once.
    pub cpu_requested: bool,
    /// The secrets, `(name, value)`: for the redactor only. Their values are also in
    /// `spec.env`, the one place they are meant to be.
    pub secrets: Vec<(String, String)>,
    /// The system directories exposed read-write under `--allow-system-path` (real paths),
    /// for the audit log.
    pub system_paths: Vec<PathBuf>,
    /// The egress allowlist (`--allow-net`, the manifest's `allow_net`, a package's
    /// granted `network`); empty: no network.
    pub allowlist: mcp_j_policy::egress::Allowlist,
    /// What a package (`run REF`) was granted of what it asked.
    pub grant: Option<mcp_j_policy::package::Grant>,
}

/// A registry package's side of the options (`run REF`): where it is unpacked and what its
/// manifest asks for. Local policy narrows the request ([`mcp_j_policy::package::narrow`]):
/// the package never gets more than the flags, `--manifest` and configuration allow.
pub struct PackageRequest<'a> {
    /// `org/name`: the server's identity (its `--workdir state` is kept across versions).
    pub id: &'a str,
    /// `org/name@version`, for messages.
    pub name: String,
    /// The unpacked bundle, exposed read-only at `/pkg`.
    pub dir: &'a Path,
    pub permissions: &'a mcp_j_policy::package::Permissions,
    pub recommended: &'a mcp_j_policy::package::RecommendedLimits,
}

/// A package's request that local policy refuses whole (exit 126).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PackageRefused(pub String);

impl SandboxOpts {
    /// Merge configuration, manifest and flags (in that order, later wins), read secrets,
    /// check paths: a ready spec.
    pub fn resolve(&self, program: &str, args: &[String]) -> Result<Resolved> {
        self.resolve_with(program, args, None)
    }

    /// [`SandboxOpts::resolve`], for a package when `package` is given: its request narrowed
    /// by everything else, its files at `/pkg` (the working directory unless one is given).
    pub fn resolve_with(
        &self,
        program: &str,
        args: &[String],
        package: Option<PackageRequest<'_>>,
    ) -> Result<Resolved> {
        let manifest: Manifest = match &self.manifest {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read manifest `{}`", path.display()))?;
                Manifest::from_json(&text).with_context(|| format!("invalid manifest `{}`", path.display()))?
            }
            None => Manifest::default(),
        };
        let config = &self.config;
        let defaults = config.limits();
        let manifest_memory = manifest
            .memory
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let manifest_file_size = manifest
            .max_file_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let limits = Limits {
            memory_bytes: self.memory.or(manifest_memory).unwrap_or(defaults.memory_bytes),
            pids: self.pids.or(manifest.pids).unwrap_or(defaults.pids),
            fds: self.fds.or(manifest.fds).unwrap_or(defaults.fds),
            cpu_millicores: self.cpu.or(manifest.cpu).unwrap_or(defaults.cpu_millicores),
            max_file_size_bytes: self
                .max_file_size
                .or(manifest_file_size)
                .unwrap_or(defaults.max_file_size_bytes),
        };
        // The configuration's value was checked when it was loaded.
        let memory_source = if self.memory.is_some() {
            Some("--memory")
        } else {
            manifest_memory.map(|_| "the manifest's `memory`")
        };
        if let Some(source) = memory_source
            && limits.memory_bytes < mcp_j_engine::spec::MIN_MEMORY_BYTES
        {
            bail!("{}", crate::config::memory_too_small(limits.memory_bytes, source));
        }
        let cpu_requested = self.cpu.or(manifest.cpu).or(config.limits.cpu).is_some_and(|c| {
            // The default layer fills `limits.cpu` too: only a different value was asked.
            self.cpu.is_some() || manifest.cpu.is_some() || c != Limits::default().cpu_millicores
        });
        if limits.pids == 0 || limits.fds < 4 || limits.cpu_millicores == 0 {
            bail!("limits too small: --pids must be at least 1, --fds at least 4, --cpu at least 1");
        }
        let manifest_timeout = manifest
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let mut limits = limits;
        let mut timeout = self.timeout.or(manifest_timeout).or(config.limits.timeout.map(|t| t.0));
        let mut no_subprocess =
            self.no_subprocess || manifest.no_subprocess.or(config.policy.no_subprocess).unwrap_or(false);
        let grant = match &package {
            Some(package) => {
                let grant = self.narrow(package, &manifest, limits, timeout, no_subprocess)?;
                limits.memory_bytes = grant.limits.memory.0;
                limits.pids = grant.limits.pids;
                limits.fds = grant.limits.fds;
                limits.cpu_millicores = grant.limits.cpu_millicores;
                timeout = grant.limits.timeout.map(|t| t.0);
                no_subprocess = grant.no_subprocess;
                Some(grant)
            }
            None => None,
        };

        let package_rules: Vec<String> = grant
            .iter()
            .flat_map(|g| g.network.iter().map(ToString::to_string))
            .collect();
        let allowlist = crate::egress::allowlist(&self.allow_net, &manifest.allow_net, &package_rules)
            .map_err(anyhow::Error::msg)?;
        let egress = if allowlist.is_empty() {
            None
        } else {
            Some(crate::egress::egress_spec(&allowlist).map_err(anyhow::Error::msg)?)
        };

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
        // With an allowlist, the proxy's variables: ours win over the same names given
        // with `--env` (a program that used those would reach nothing), which is said once.
        if let Some(egress) = &egress {
            for (name, value) in crate::egress::proxy_env(egress.proxy_port) {
                if env.iter().any(|(k, v)| *k == name && *v != value) {
                    eprintln!(
                        "mcp-j: `{name}` is set to mcp-j's egress proxy (the jail's only way out), not the value given"
                    );
                }
                set_env(&mut env, name, value);
            }
        }
        let mut secrets: Vec<(String, String)> = Vec::new();
        // The host variables a package asked for, passed when set (and not set otherwise):
        // treated as secrets, so their values never reach a log.
        for name in grant.iter().flat_map(|g| &g.environment) {
            if env.iter().any(|(k, _)| k == name) {
                continue;
            }
            if let Ok(value) = std::env::var(name) {
                secrets.push((name.clone(), value.clone()));
                set_env(&mut env, name.clone(), value);
            }
        }
        for secret in self.secret_refs(&manifest)? {
            let value = secret.read()?;
            secrets.retain(|(n, _)| *n != secret.name);
            secrets.push((secret.name.clone(), value.clone()));
            set_env(&mut env, secret.name, value);
        }

        // Each path is resolved once, here; the descriptor is what gets mounted.
        let allow_system = self.allow_system_path;
        let mut system_paths = Vec::new();
        let workdir = match self.workdir.as_ref().or(manifest.workdir.as_ref()) {
            Some(dir) if dir == Path::new("private") => Workdir::Private,
            Some(dir) if dir == Path::new("state") => {
                let dir = match (&package, &self.state_id) {
                    (Some(package), _) => state_dir(package.id, &[])?,
                    (None, Some(id)) => state_dir(id, &[])?,
                    (None, None) => state_dir(program, args)?,
                };
                Workdir::Host(open_state_dir(&dir)?)
            }
            Some(dir) => {
                let opened = open_exposed(dir, "--workdir")?;
                if !opened.info().is_some_and(|i| i.is_dir) {
                    bail!("`--workdir {}` is not a directory", dir.display());
                }
                if check_system_path("--workdir", dir, &opened, allow_system)? {
                    system_paths.push(opened.path.clone());
                }
                Workdir::Host(opened)
            }
            None if package.is_some() => Workdir::Package,
            None => default_workdir(),
        };
        let ro_paths = manifest
            .ro
            .iter()
            .chain(&self.ro)
            .map(|p| open_exposed(p, "--ro"))
            .collect::<Result<Vec<_>>>()?;
        let mut rw_paths = Vec::new();
        for path in manifest.rw.iter().chain(&self.rw) {
            let opened = open_exposed(path, "--rw")?;
            if check_system_path("--rw", path, &opened, allow_system)? {
                system_paths.push(opened.path.clone());
            }
            rw_paths.push(opened);
        }

        Ok(Resolved {
            spec: SandboxSpec {
                program: program_in_jail(program),
                args: args.to_vec(),
                env,
                workdir,
                ro_paths,
                rw_paths,
                limits,
                no_subprocess,
                limits_by_cgroup: false,
                host_ids: None,
                require_memory_limit: config.policy.require_memory_limit.unwrap_or(false),
                covers: Vec::new(),
                egress,
                package: package
                    .as_ref()
                    .map(|p| open_exposed(p.dir, "the package"))
                    .transpose()?,
            },
            timeout,
            allow_tools: concat(&config.policy.allow_tools, manifest.allow_tools),
            deny_tools: concat(&config.policy.deny_tools, manifest.deny_tools),
            allow_server_requests: concat(&config.policy.allow_server_requests, manifest.allow_server_requests),
            pins: manifest.pins.or(config.policy.pins).unwrap_or_default(),
            audit_log: self.audit_log.clone().or_else(|| config.audit_log.clone()),
            cpu_requested,
            secrets,
            system_paths,
            allowlist,
            grant,
        })
    }

    /// A package's request narrowed by local policy (the flags, `--manifest` and the
    /// configuration, already merged into `limits`, `timeout` and `no_subprocess`). A limit
    /// set by flag or `--manifest` is the user's choice and stays; a configured one may be
    /// lowered by the package's recommendation.
    fn narrow(
        &self,
        package: &PackageRequest<'_>,
        manifest: &Manifest,
        limits: Limits,
        timeout: Option<Duration>,
        no_subprocess: bool,
    ) -> Result<mcp_j_policy::package::Grant> {
        use mcp_j_policy::package::{LimitKind, LimitValues, LocalPolicy};
        let mut set_by_flag = std::collections::BTreeSet::new();
        for (set, kind) in [
            (self.memory.is_some() || manifest.memory.is_some(), LimitKind::Memory),
            (self.pids.is_some() || manifest.pids.is_some(), LimitKind::Pids),
            (self.fds.is_some() || manifest.fds.is_some(), LimitKind::Fds),
            (self.cpu.is_some() || manifest.cpu.is_some(), LimitKind::Cpu),
            (self.timeout.is_some() || manifest.timeout.is_some(), LimitKind::Timeout),
        ] {
            if set {
                set_by_flag.insert(kind);
            }
        }
        let as_written = |paths: &[PathBuf]| paths.iter().map(|p| p.display().to_string()).collect();
        let local = LocalPolicy {
            allow_package_network: self.config.policy.allow_package_network.unwrap_or(true),
            no_subprocess,
            limits: LimitValues {
                memory: mcp_j_policy::Size(limits.memory_bytes),
                pids: limits.pids,
                fds: limits.fds,
                cpu_millicores: limits.cpu_millicores,
                timeout: timeout.map(mcp_j_policy::Duration),
            },
            set_by_flag,
            ro: as_written(&[manifest.ro.clone(), self.ro.clone()].concat()),
            rw: as_written(&[manifest.rw.clone(), self.rw.clone()].concat()),
        };
        mcp_j_policy::package::narrow(&package.name, package.permissions, package.recommended, &local)
            .map_err(|e| PackageRefused(e).into())
    }
}

impl SandboxOpts {
    /// The secrets of the configuration, the manifest and `--secret`, in that order (a
    /// later one replaces an earlier one of the same name). Errors say where the bad
    /// reference is, never what it says.
    fn secret_refs(&self, manifest: &Manifest) -> Result<Vec<SecretRef>> {
        let mut refs = Vec::new();
        for (name, source) in &self.config.secrets {
            refs.push(SecretRef::new(name, source).with_context(|| format!("`secrets.{name}` in the configuration"))?);
        }
        for item in &manifest.secrets {
            let manifest_path = self.manifest.as_deref().unwrap_or(Path::new("")).display();
            refs.push(
                item.parse::<SecretRef>()
                    .with_context(|| format!("`secrets` in manifest `{manifest_path}`"))?,
            );
        }
        for item in &self.secret {
            refs.push(item.parse::<SecretRef>().context("`--secret`")?);
        }
        Ok(refs)
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
            workdir: Some("private".into()),
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
            workdir: Some("private".into()),
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
            workdir: Some("private".into()),
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

    fn cwd<'a>(path: &'a str, owner: u32, mode: u32, home: Option<&'a str>) -> CurrentDir<'a> {
        CurrentDir {
            path: Path::new(path),
            owner,
            mode,
            caller: 1000,
            home: home.map(Path::new),
        }
    }

    #[test]
    fn the_default_workdir_is_only_an_ordinary_directory_of_the_callers_own() {
        let home = Some("/home/u");
        let ok = |p| why_not_default_workdir(&cwd(p, 1000, 0o755, home));
        assert_eq!(ok("/home/u/proj"), None);
        assert_eq!(ok("/home/u/proj/sub"), None);
        assert_eq!(ok("/srv/data/proj"), None, "under /srv is not /srv itself");
        assert_eq!(ok("/var/lib/mine"), None, "under /var is not /var itself");
        for refused in [
            "/",
            "/home/u",
            "/home",
            "/etc",
            "/etc/nginx",
            "/usr/local/src",
            "/boot",
            "/proc/self",
            "/sys/fs",
            "/dev/shm",
            "/run/user/1000",
            "/var",
            "/opt",
            "/srv",
            "/root",
        ] {
            assert!(ok(refused).is_some(), "{refused} accepted as the default workdir");
        }
        // Shared sticky temp dirs, and directories of someone else.
        assert!(why_not_default_workdir(&cwd("/tmp", 0, 0o1777, home)).is_some());
        assert!(why_not_default_workdir(&cwd("/var/tmp", 0, 0o1777, home)).is_some());
        assert!(why_not_default_workdir(&cwd("/home/other/proj", 1001, 0o755, home)).is_some());
        // Root's own: /root is a system directory, a project of root's elsewhere is not.
        let root = |p| {
            why_not_default_workdir(&CurrentDir {
                caller: 0,
                ..cwd(p, 0, 0o755, Some("/root"))
            })
        };
        assert!(root("/root").is_some());
        assert!(root("/etc").is_some());
        assert_eq!(root("/root/proj"), None);
        assert_eq!(root("/data/proj"), None);
        // Without a known home, only the other rules apply.
        assert_eq!(why_not_default_workdir(&cwd("/home/u/proj", 1000, 0o755, None)), None);
    }

    #[test]
    fn system_paths_are_told_apart() {
        for p in [
            "/etc",
            "/etc/ssl",
            "/usr/lib",
            "/run/docker.sock",
            "/var",
            "/opt",
            "/srv",
            "/root",
            "/",
        ] {
            assert!(is_system_path(Path::new(p)), "{p}");
        }
        for p in [
            "/var/lib/app",
            "/opt/tool",
            "/srv/www",
            "/root/proj",
            "/home/u",
            "/tmp/x",
            "/etcetera",
        ] {
            assert!(!is_system_path(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn a_last_symlink_is_refused_naming_its_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("target")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("target"), root.join("link")).expect("symlink");
        let err = open_exposed(&root.join("link"), "--rw").expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("is a symlink to `{}`", root.join("target").display())),
            "{msg}"
        );
        assert!(msg.contains("pass the target instead"), "{msg}");
        // `..` and links on the way resolve; the real path is what is exposed.
        let p = open_exposed(&root.join("link/../target"), "--ro").expect("dotdot");
        assert_eq!(p.path, root.join("target"));
        let err = open_exposed(&root.join("missing"), "--ro").expect_err("missing");
        assert!(format!("{err:#}").contains("no such file"), "{err:#}");
    }

    #[test]
    fn a_system_directory_read_write_needs_the_flag() {
        let etc = open_exposed(Path::new("/etc"), "--rw").expect("/etc");
        let err = check_system_path("--rw", Path::new("/etc"), &etc, false).expect_err("refused");
        assert!(format!("{err}").contains("--allow-system-path"), "{err}");
        assert!(check_system_path("--rw", Path::new("/etc"), &etc, true).expect("allowed"));
        let dir = tempfile::tempdir().expect("tempdir");
        let own = open_exposed(dir.path(), "--rw").expect("tempdir");
        assert!(!check_system_path("--rw", dir.path(), &own, false).expect("not a system path"));
        let err = resolve(SandboxOpts {
            workdir: Some("/etc".into()),
            ..Default::default()
        })
        .err()
        .expect("--workdir /etc refused");
        assert!(format!("{err:#}").contains("--allow-system-path"), "{err:#}");
    }

    #[test]
    fn the_state_directory_is_per_server() {
        let a = server_id("/usr/bin/python3", &["-m".into(), "srv_a".into()]);
        assert_eq!(a, server_id("/usr/bin/python3", &["-m".into(), "srv_a".into()]));
        assert_ne!(a, server_id("/usr/bin/python3", &["-m".into(), "srv_b".into()]));
        // Argument boundaries count: ["a b"] is not ["a", "b"].
        assert_ne!(
            server_id("p", &["a b".into()]),
            server_id("p", &["a".into(), "b".into()])
        );
        assert!(a.starts_with("python3-"), "{a}");
        assert_eq!(server_id("../../x y", &[]).split('-').next(), Some("x_y"));

        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state/one");
        let opened = open_state_dir(&state).expect("created");
        let info = opened.info().expect("info");
        assert!(info.is_dir);
        assert_eq!(info.mode & 0o777, 0o700);
        assert!(open_state_dir(&state).is_ok(), "reused");
    }

    #[test]
    fn a_program_path_with_dotdot_is_found_where_the_jail_sees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::create_dir_all(root.join("c/bin")).expect("mkdir");
        let given = format!("{}/a/b/../../c/bin/prog", root.display());
        assert_eq!(program_in_jail(&given), format!("{}/c/bin/prog", root.display()));
        for unchanged in ["python3", "./server.sh", "/usr/bin/python3", "../x/prog"] {
            assert_eq!(program_in_jail(unchanged), unchanged);
        }
    }

    #[test]
    fn private_is_a_keyword() {
        let r = resolve(SandboxOpts {
            workdir: Some("private".into()),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.workdir, Workdir::Private);
    }

    #[test]
    fn allow_net_gives_the_jail_listeners_and_the_proxy_environment() {
        let r = resolve(SandboxOpts {
            allow_net: vec!["api.example.com".into(), "203.0.113.9:8080".into()],
            env: vec!["HTTP_PROXY=http://elsewhere:1".into()],
            ..Default::default()
        })
        .unwrap();
        let egress = r.spec.egress.expect("an allowlist gives the jail a network");
        assert_eq!(egress.ports, [80, 443, 8080]);
        assert_eq!(egress.local_networks, [("203.0.113.9".parse().unwrap(), 32)]);
        let proxy = format!("http://127.0.0.1:{}", egress.proxy_port);
        assert!(
            r.spec.env.contains(&("HTTP_PROXY".into(), proxy)),
            "ours replaces the one given"
        );
        assert_eq!(r.allowlist.rules().len(), 2);

        let none = resolve(SandboxOpts::default()).unwrap();
        assert!(none.spec.egress.is_none() && none.allowlist.is_empty());
        assert!(!none.spec.env.iter().any(|(k, _)| k == "HTTP_PROXY"));

        let err = resolve(SandboxOpts {
            allow_net: vec!["*".into()],
            ..Default::default()
        });
        let text = format!("{:#}", err.err().expect("refused"));
        assert!(text.contains("invalid network rule `*`"), "{text}");
    }

    #[test]
    fn a_package_request_is_narrowed_by_local_policy() {
        use mcp_j_policy::package::{Permissions, RecommendedLimits};
        let dir = tempfile::tempdir().unwrap();
        let permissions = Permissions {
            network: vec![
                mcp_j_policy::egress::Rule::parse("api.example.com", mcp_j_policy::egress::RuleSource::Package)
                    .unwrap(),
            ],
            // Cargo sets CARGO_PKG_NAME for the tests it runs.
            environment: vec!["CARGO_PKG_NAME".into(), "MCPJ_TEST_UNSET_VAR".into()],
            subprocess: false,
            filesystem: vec![],
        };
        let recommended = RecommendedLimits {
            memory: Some(mcp_j_policy::Size(64 << 20)),
            pids: Some(10_000),
            fds: Some(64),
            ..Default::default()
        };
        let request = || PackageRequest {
            id: "acme/hello",
            name: "acme/hello@1.0.0".into(),
            dir: dir.path(),
            permissions: &permissions,
            recommended: &recommended,
        };
        let opts = SandboxOpts {
            fds: Some(512),
            ..Default::default()
        };
        let r = opts.resolve_with("/usr/bin/python3", &[], Some(request())).unwrap();
        assert_eq!(
            r.spec.limits.memory_bytes,
            64 << 20,
            "a recommendation lowers the default"
        );
        assert_eq!(r.spec.limits.pids, Limits::default().pids, "and never raises it");
        assert_eq!(r.spec.limits.fds, 512, "a flag is the user's choice and stays");
        assert!(r.spec.no_subprocess, "subprocess: false");
        assert_eq!(r.spec.workdir, Workdir::Package);
        assert!(r.spec.package.is_some());
        assert!(
            r.spec.env.contains(&("CARGO_PKG_NAME".into(), "mcp-j-cli".into())),
            "an asked-for variable is passed when set"
        );
        assert!(!r.spec.env.iter().any(|(k, _)| k == "MCPJ_TEST_UNSET_VAR"));
        assert!(r.secrets.iter().any(|(k, _)| k == "CARGO_PKG_NAME"), "and redacted");
        assert_eq!(r.allowlist.rules().len(), 1);
        assert!(r.spec.egress.is_some());
        let notes = &r.grant.as_ref().unwrap().notes;
        assert!(notes.iter().any(|n| n.contains("--pids 10000")), "{notes:?}");

        let mut opts = SandboxOpts::default();
        opts.config.policy.allow_package_network = Some(false);
        let err = opts
            .resolve_with("/usr/bin/python3", &[], Some(request()))
            .err()
            .unwrap();
        assert!(err.downcast_ref::<PackageRefused>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains("policy.allow_package_network"), "{err:#}");
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
            workdir: Some("private".into()),
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
        use crate::config::{LimitsConfig, PolicyConfig};
        use mcp_j_policy::Size;
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("m.json");
        std::fs::write(&m, r#"{"pids": 10, "deny_tools": ["b"], "no_subprocess": false}"#).expect("write");
        let config = Config {
            audit_log: Some("/config/audit".into()),
            limits: LimitsConfig {
                memory: Some(Size(1 << 30)),
                pids: Some(5),
                fds: Some(100),
                timeout: Some(mcp_j_policy::Duration(Duration::from_secs(9))),
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
            workdir: Some("private".into()),
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
            workdir: Some("private".into()),
            audit_log: Some("/flag/audit".into()),
            config,
            ..Default::default()
        })
        .expect("resolve");
        assert!(r.spec.no_subprocess);
        assert_eq!(r.audit_log, Some(PathBuf::from("/flag/audit")));
    }

    #[test]
    fn memory_below_16m_is_refused_from_flag_and_manifest() {
        let err = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            memory: Some(512),
            ..Default::default()
        })
        .err()
        .expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains("from --memory") && text.contains("`512M`"), "{text}");
        assert!(text.contains("--memory 512M"), "{text}");

        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("m.json");
        std::fs::write(&m, r#"{"memory": "1K", "max_file_size": "8M"}"#).expect("write");
        let err = resolve(SandboxOpts {
            manifest: Some(m.clone()),
            workdir: Some("/tmp".into()),
            ..Default::default()
        })
        .err()
        .expect("refused");
        assert!(format!("{err:#}").contains("the manifest's `memory`"), "{err:#}");

        // The flag wins over a small manifest value; max_file_size comes from the manifest.
        let r = resolve(SandboxOpts {
            manifest: Some(m),
            workdir: Some("/tmp".into()),
            memory: Some(16 << 20),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.limits.max_file_size_bytes, 8 << 20);
        assert!(!r.cpu_requested);
        let r = resolve(SandboxOpts {
            workdir: Some("/tmp".into()),
            max_file_size: Some(1 << 20),
            cpu: Some(500),
            ..Default::default()
        })
        .expect("resolve");
        assert_eq!(r.spec.limits.max_file_size_bytes, 1 << 20);
        assert!(r.cpu_requested);
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

    #[test]
    fn manifest_secrets_use_the_same_parser_and_say_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("m.json");
        std::fs::write(&m, r#"{"secrets": ["M_SECRET=env:CARGO"]}"#).expect("write");
        let r = resolve(SandboxOpts {
            manifest: Some(m.clone()),
            workdir: Some("private".into()),
            ..Default::default()
        })
        .expect("resolve");
        assert!(r.secrets.iter().any(|(name, _)| name == "M_SECRET"));

        std::fs::write(&m, r#"{"secrets": ["M_SECRET=pasted-s3cr3t"]}"#).expect("write");
        let err = resolve(SandboxOpts {
            manifest: Some(m.clone()),
            workdir: Some("private".into()),
            ..Default::default()
        })
        .err()
        .expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains(&format!("`secrets` in manifest `{}`", m.display())),
            "{text}"
        );
        assert!(text.contains("`M_SECRET`") && !text.contains("pasted-s3cr3t"), "{text}");
    }
}
