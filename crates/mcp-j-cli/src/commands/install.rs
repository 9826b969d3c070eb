//! npm and PyPI servers (`mcp-j run npm:…` / `pypi:…`, `mcp-j pull npm:…`): installed *inside
//! the sandbox* into the cache, then run from there with the install read-only.
//!
//! 1. **What to install**: the exact version the reference names; with none, the version
//!    pinned the first time (said on stderr; `pull --update` moves the pin); a local
//!    archive by its digest.
//! 2. **Installed already?** Under the install's lock: a finished install (one with a
//!    record) is checked against its recorded tree digest before anything of it runs — a
//!    change is refused (126), never silently reinstalled.
//! 3. **Else install**, with the real `npm` or `pip` in a jail of its own (`mcp-j exec`, as a
//!    child process): its network only the registry or index the host's npm/pip
//!    configuration names (read by `mcp_j_package::tool_config`, handed over as flags and
//!    variables — never the config files, never their credentials), its own larger limits,
//!    install scripts off (npm `--ignore-scripts`) and wheels only (pip `--only-binary
//!    :all:`) unless asked, writing only into the fresh tree. A failure exits 125 with the
//!    tail of the installer's output.
//! 4. **Record**: the registry's own integrity values are checked in the installer's lock
//!    (npm's `package-lock.json` `integrity`, pip's report `hashes`), the resolved tree and
//!    its digest recorded, the tree sealed read-only.
//! 5. **Run**: node or python from the host's system directories, the package's bin or
//!    console script (`--bin NAME`), the tree exposed read-only at its path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mcp_j_package::install::{Ecosystem, InstallError, InstallRecord, InstallStore, install_id, verify_tree};
use mcp_j_policy::package::Digest;
use mcp_j_policy::reference::{NpmRef, PypiRef};

use super::package::Refused;
use crate::config::Config;

/// The system interpreters installs run with (the jail shows the host's `/usr`).
pub const NODE: &str = "/usr/bin/node";

/// The venv's python, in an installed PyPI tree (a symlink to the system python3).
const VENV_PYTHON: &str = "venv/bin/python";
const NPM: &str = "/usr/bin/npm";
pub const PYTHON: &str = "/usr/bin/python3";

/// How an npm or PyPI package is installed and started.
#[derive(Debug, Clone, Default, Args)]
pub struct InstallOpts {
    /// npm: let the packages' install scripts run (still inside the installer's jail)
    #[arg(long = "allow-install-scripts")]
    pub allow_install_scripts: bool,
    /// PyPI: let pip build source distributions (runs their build code, in the jail)
    #[arg(long = "allow-build")]
    pub allow_build: bool,
    /// Which of the package's programs to run, when it has several
    #[arg(long = "bin", value_name = "NAME")]
    pub bin: Option<String>,
}

/// An npm or PyPI reference, as this module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallRef {
    pub ecosystem: Ecosystem,
    /// The reference as written (`npm:@scope/x@1.2.3`).
    pub text: String,
    pub target: Target,
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A package from the registry; `version` when the reference names one.
    Package { name: String, version: Option<String> },
    /// A local archive: its absolute path, and its digest (the install's key and record),
    /// hashed once when the reference is read.
    Archive { path: PathBuf, digest: Digest },
}

impl InstallRef {
    pub fn npm(text: &str, r: NpmRef) -> Result<InstallRef> {
        let target = match r {
            NpmRef::Package { name, version } => Target::Package { name, version },
            NpmRef::Archive(path) => archive(&path)?,
        };
        Ok(InstallRef {
            ecosystem: Ecosystem::Npm,
            text: text.to_owned(),
            target,
        })
    }

    pub fn pypi(text: &str, r: PypiRef) -> Result<InstallRef> {
        let target = match r {
            PypiRef::Package { name, version } => Target::Package { name, version },
            PypiRef::Archive(path) => archive(&path)?,
        };
        Ok(InstallRef {
            ecosystem: Ecosystem::Pypi,
            text: text.to_owned(),
            target,
        })
    }
}

/// A local archive as a [`Target`]: its absolute path and digest.
fn archive(path: &str) -> Result<Target> {
    let cannot = || format!("the archive `{path}` cannot be read");
    let path = std::fs::canonicalize(path).with_context(cannot)?;
    let file = std::fs::File::open(&path).with_context(cannot)?;
    let digest = mcp_j_package::digest::hash_reader(file, u64::MAX)
        .with_context(cannot)?
        .digest;
    Ok(Target::Archive { path, digest })
}

/// A finished, verified install and the program to start.
pub struct Installed {
    pub record: InstallRecord,
    /// The installed tree on the host (exposed read-only at the same path).
    pub tree: PathBuf,
    /// The program and the arguments that start the package's server.
    pub program: String,
    pub args: Vec<String>,
}

/// What to do about an install that exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refresh {
    /// A reference without a version resolves the latest again and moves its pin
    /// (`pull --update`).
    pub update: bool,
    /// Install again even when installed (`pull --force`).
    pub force: bool,
}

/// The name of the `--secret` that is the installer's registry credential, never the
/// server's: npm's conventional `NPM_TOKEN` (the registry's `_authToken`), pip's
/// `PIP_INDEX_URL` (an index URL with its credentials).
pub fn registry_secret_name(ecosystem: Ecosystem) -> &'static str {
    match ecosystem {
        Ecosystem::Npm => "NPM_TOKEN",
        Ecosystem::Pypi => "PIP_INDEX_URL",
    }
}

/// Takes the registry credential ([`registry_secret_name`]) out of the sandbox options'
/// secrets (`--secret`, then the configuration's `[secrets]`): the installer gets it, the
/// server does not.
pub fn take_registry_secret(
    ecosystem: Ecosystem,
    opts: &mut crate::sandbox_opts::SandboxOpts,
) -> Result<Option<crate::secret::SecretRef>> {
    let name = registry_secret_name(ecosystem);
    let mut found = None;
    if let Some(source) = opts.config.secrets.remove(name) {
        found = Some(crate::secret::SecretRef::new(name, &source).with_context(|| format!("`secrets.{name}`"))?);
    }
    let mut kept = Vec::new();
    for item in std::mem::take(&mut opts.secret) {
        let secret: crate::secret::SecretRef = item.parse().context("`--secret`")?;
        if secret.name == name {
            found = Some(secret);
        } else {
            kept.push(item);
        }
    }
    opts.secret = kept;
    Ok(found)
}

/// Steps 1–5 of the module documentation, up to the program to run. `registry_secret`: the
/// `--secret` ([`registry_secret_name`]) the installer authenticates to its registry with.
pub fn ensure_installed(
    reference: &InstallRef,
    opts: &InstallOpts,
    config: &Config,
    audit_log: Option<&Path>,
    refresh: Refresh,
    registry_secret: Option<&crate::secret::SecretRef>,
) -> Result<Installed> {
    let Refresh { update, force } = refresh;
    let cache = super::package::cache(config)?;
    let store = cache.installs().map_err(|e| anyhow!("{e}"))?;
    let now = SystemTime::now();
    let (name_hint, version) = match &reference.target {
        Target::Package { name, version } => (Some(name.clone()), version.clone()),
        Target::Archive { .. } => (None, None),
    };
    let pinned = match (&name_hint, &version) {
        (Some(name), None) if !update => store.pinned(reference.ecosystem, name),
        _ => None,
    };
    let key = match (&reference.target, version.as_ref().or(pinned.as_ref())) {
        (Target::Archive { digest, .. }, _) => Some(digest.as_str().to_owned()),
        (Target::Package { .. }, Some(version)) => Some(version.clone()),
        (Target::Package { .. }, None) => None,
    };
    if let (Some(name), Some(version)) = (&name_hint, &pinned) {
        eprintln!(
            "mcp-j: {}:{name} is pinned to {version} (`mcp-j pull --update {}` moves the pin)",
            reference.ecosystem.as_str(),
            reference.text
        );
    }

    let record = match key {
        Some(key) => {
            let name = name_hint.clone().unwrap_or_default();
            let id = install_id(reference.ecosystem, &name, &key);
            let _lock = store.lock(&id).map_err(|e| anyhow!("{e}"))?;
            match store.record(&id).map_err(|e| anyhow!("{e}"))? {
                Some(record) if !force => record,
                _ => install(reference, opts, config, audit_log, &store, &id, registry_secret)?,
            }
        }
        None => {
            // No version: install what the registry calls the latest, then file it under
            // the version it turned out to be, and pin that.
            let scratch = format!(
                "{}-resolving-{}-{}",
                reference.ecosystem.as_str(),
                std::process::id(),
                now.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
            );
            let record = {
                let _lock = store.lock(&scratch).map_err(|e| anyhow!("{e}"))?;
                install(reference, opts, config, audit_log, &store, &scratch, registry_secret)?
            };
            let id = install_id(reference.ecosystem, &record.name, &record.version);
            {
                let _lock = store.lock(&id).map_err(|e| anyhow!("{e}"))?;
                if store.record(&id).map_err(|e| anyhow!("{e}"))?.is_some() && !force {
                    store.remove(&scratch).map_err(|e| anyhow!("{e}"))?;
                } else {
                    store.remove(&id).map_err(|e| anyhow!("{e}"))?;
                    store.adopt(&scratch, &id).map_err(|e| anyhow!("{e}"))?;
                }
            }
            let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            store
                .pin(reference.ecosystem, &record.name, &record.version, seconds)
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!(
                "mcp-j: {}:{} resolved to {} and pinned: later runs use it offline (`mcp-j pull --update {}` moves the pin)",
                reference.ecosystem.as_str(),
                record.name,
                record.version,
                reference.text
            );
            record
        }
    };
    let id = record_id(&record, &reference.target)?;
    let tree = store.tree_path(&id);
    store.touch(&id);
    verify_tree(&tree, &record).map_err(|e| match e {
        e @ InstallError::Tampered { .. } => anyhow::Error::new(Refused(e.to_string())),
        e => anyhow!("{e}"),
    })?;
    let (program, args) = entry_program(&record, &tree, opts.bin.as_deref())?;
    Ok(Installed {
        record,
        tree,
        program,
        args,
    })
}

/// The id a record is filed under.
fn record_id(record: &InstallRecord, target: &Target) -> Result<String> {
    Ok(match (target, &record.archive_digest) {
        (Target::Archive { .. }, Some(digest)) => install_id(record.ecosystem, "", digest.as_str()),
        _ => install_id(record.ecosystem, &record.name, &record.version),
    })
}

/// The installer's jail, as `mcp-j exec` flags: what it may reach, see and is told.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InstallerJail {
    /// `--allow-net` rules.
    pub allow_net: Vec<String>,
    /// `--ro` paths (a CA file, a local find-links directory, a local archive).
    pub ro: Vec<PathBuf>,
    /// `--env NAME=VALUE`.
    pub env: Vec<(String, String)>,
    /// More arguments for the installer (npm's `--@scope:registry=URL`).
    pub args: Vec<String>,
    /// `--secret NAME=SOURCE`: the registry credential, read by the child mcp-j.
    pub secrets: Vec<String>,
    /// The registry or index, for the record and messages (credentials removed).
    pub source: String,
}

/// Installs into a fresh tree for `id` (the lock held by the caller) and records it.
fn install(
    reference: &InstallRef,
    opts: &InstallOpts,
    config: &Config,
    audit_log: Option<&Path>,
    store: &InstallStore,
    id: &str,
    registry_secret: Option<&crate::secret::SecretRef>,
) -> Result<InstallRecord> {
    let tree = store.begin(id).map_err(|e| anyhow!("{e}"))?;
    // A private directory for what the installer is given besides the tree (an npmrc that
    // names the token's variable, never its value); removed when the install ends.
    let scratch = tempfile::Builder::new()
        .prefix(".installer-")
        .tempdir_in(tree.parent().unwrap_or(&tree))
        .context("cannot make a directory for the installer")?;
    let mut jail = match reference.ecosystem {
        Ecosystem::Npm => super::install_net::npm_jail(registry_secret, scratch.path())?,
        Ecosystem::Pypi => super::install_net::pip_jail(registry_secret)?,
    };
    if let Target::Archive { path, .. } = &reference.target {
        jail.ro.push(path.clone());
    }
    let spec = match &reference.target {
        Target::Archive { path, .. } => path.display().to_string(),
        Target::Package { name, version } => match (reference.ecosystem, version) {
            (Ecosystem::Npm, Some(v)) => format!("{name}@{v}"),
            (Ecosystem::Pypi, Some(v)) => format!("{name}=={v}"),
            (_, None) => name.clone(),
        },
    };
    eprintln!(
        "mcp-j: installing {} inside the sandbox (network: {})…",
        reference.text,
        if jail.allow_net.is_empty() {
            "none".to_owned()
        } else {
            jail.allow_net.join(", ")
        }
    );
    let limits = InstallerLimits::from_config(config);
    match reference.ecosystem {
        Ecosystem::Npm => {
            let mut args = vec![
                "install".to_owned(),
                "--omit=dev".to_owned(),
                "--no-audit".to_owned(),
                "--no-fund".to_owned(),
                "--no-update-notifier".to_owned(),
                "--prefix".to_owned(),
                tree.display().to_string(),
            ];
            if !opts.allow_install_scripts {
                args.push("--ignore-scripts".to_owned());
            }
            args.extend(jail.args.iter().cloned());
            args.push(spec);
            run_installer(&jail, &limits, &tree, audit_log, NPM, &args, "npm install")?;
        }
        Ecosystem::Pypi => {
            let venv = tree.join("venv");
            let venv_text = venv.display().to_string();
            run_installer(
                &jail,
                &limits,
                &tree,
                audit_log,
                PYTHON,
                &["-m".into(), "venv".into(), venv_text],
                "python3 -m venv",
            )?;
            let mut args = vec![
                "-m".to_owned(),
                "pip".to_owned(),
                "install".to_owned(),
                "--no-input".to_owned(),
                "--no-cache-dir".to_owned(),
                "--disable-pip-version-check".to_owned(),
                "--report".to_owned(),
                tree.join("pip-report.json").display().to_string(),
            ];
            if !opts.allow_build {
                args.extend(["--only-binary".to_owned(), ":all:".to_owned()]);
            }
            args.push(spec);
            let python = tree.join(VENV_PYTHON).display().to_string();
            run_installer(&jail, &limits, &tree, audit_log, &python, &args, "pip install")?;
        }
    }
    let record = super::install_lock::record_of(reference, &tree, &jail.source)?;
    store.finish(id, &record).map_err(|e| anyhow!("{e}"))?;
    eprintln!(
        "mcp-j: installed {}@{} ({} packages; tree {})",
        record.name,
        record.version,
        record.resolved.len(),
        record.tree_digest.as_str()
    );
    Ok(record)
}

/// The installer's own limits (`[install]` in the configuration): larger than a server's.
struct InstallerLimits {
    memory: String,
    pids: u64,
    timeout: Duration,
}

impl InstallerLimits {
    fn from_config(config: &Config) -> InstallerLimits {
        let install = &config.install;
        // The defaults are in the configuration's default layer (2G, 512, 10m).
        InstallerLimits {
            memory: install.memory.map_or_else(|| "2G".to_owned(), |s| s.0.to_string()),
            pids: install.pids.unwrap_or(512),
            timeout: install.timeout.map_or(Duration::from_secs(600), |d| d.0),
        }
    }
}

/// Runs `program args` in an installer jail (`mcp-j exec`, a child process: the jail and
/// its egress thread end with it), its working directory the tree. Its output is kept; on
/// failure the tail of it is the error (125).
fn run_installer(
    jail: &InstallerJail,
    limits: &InstallerLimits,
    tree: &Path,
    audit_log: Option<&Path>,
    program: &str,
    args: &[String],
    what: &str,
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find mcp-j's own binary to start the installer")?;
    let mut cmd = Command::new(exe);
    cmd.arg("exec")
        .arg("--workdir")
        .arg(tree)
        .args(["--memory", &limits.memory, "--pids", &limits.pids.to_string()])
        .args(["--timeout", &format!("{}s", limits.timeout.as_secs())]);
    for rule in &jail.allow_net {
        cmd.args(["--allow-net", rule]);
    }
    for path in &jail.ro {
        cmd.arg("--ro").arg(path);
    }
    for (name, value) in &jail.env {
        cmd.arg("--env").arg(format!("{name}={value}"));
    }
    for secret in &jail.secrets {
        cmd.arg("--secret").arg(secret);
    }
    if let Some(log) = audit_log {
        cmd.arg("--audit-log").arg(log);
    }
    cmd.arg("--").arg(program).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd
        .output()
        .with_context(|| format!("cannot start the installer ({what})"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n");
    bail!(
        "{what} failed inside the sandbox ({}); its last output:\n{tail}",
        match out.status.code() {
            Some(code) => format!("exit {code}"),
            None => "killed".to_owned(),
        }
    )
}

/// The program that starts an installed package: its bin (npm) or console script (PyPI),
/// `--bin` choosing among several, run by its interpreter named explicitly: the system
/// node, or the venv's python. A console script's `#!` line names the venv's python by the
/// absolute path it was installed at, which is not where the tree is when an unversioned
/// install was made under a temporary name and then filed under its version; the venv's
/// python finds its venv from where it is (its `pyvenv.cfg`), wherever the tree is.
fn entry_program(record: &InstallRecord, tree: &Path, chosen: Option<&str>) -> Result<(String, Vec<String>)> {
    let bins = &record.bins;
    let (_, path) = match (chosen, bins.as_slice()) {
        (Some(want), _) => bins
            .iter()
            .find(|(n, _)| n == want)
            .ok_or_else(|| anyhow!("{} has no program `{want}`; it has: {}", record.name, names(bins)))?,
        (None, [one]) => one,
        (None, []) => bail!(
            "{}@{} declares no program to run (no `bin` in package.json, no console script)",
            record.name,
            record.version
        ),
        (None, several) => {
            // The one named like the package, if there is one; else the user chooses.
            let base = record.name.rsplit('/').next().unwrap_or(&record.name);
            match several.iter().find(|(n, _)| n == base) {
                Some(one) => one,
                None => bail!(
                    "{} has several programs: {}; choose one with --bin NAME",
                    record.name,
                    names(bins)
                ),
            }
        }
    };
    let full = tree.join(path);
    Ok(match record.ecosystem {
        Ecosystem::Npm => (NODE.to_owned(), vec![full.display().to_string()]),
        Ecosystem::Pypi => (
            tree.join(VENV_PYTHON).display().to_string(),
            vec![full.display().to_string()],
        ),
    })
}

fn names(bins: &[(String, String)]) -> String {
    bins.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
}
