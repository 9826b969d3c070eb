//! The package manifest (`manifest.json`, REGISTRY_API.md): its two shapes read into one
//! [`PackageManifest`], the permissions and limits a package *requests*, and [`narrow`],
//! which turns a request into what local policy grants (a package never widens it).
//!
//! # The two shapes
//!
//! - The registry format: `schema_version`, `package{id, version, git_sha}`,
//!   `bundle{digest, size_bytes}`, `transport{type}`, `entrypoints[{os, arch, command,
//!   args}]`, `permissions_requested{network, environment, subprocess, filesystem}`,
//!   `limits_recommended{max_cpu, max_memory, max_pids, max_fds, timeout}`.
//! - The MCP Hub format, recognised by a top-level `runtime` key: `package`,
//!   `runtime{type}`, `entrypoint{command[] (argv), args[]}`, `permissions{network{outbound},
//!   filesystem{read, write}, env_vars}`, `resources{memory_mb, cpu_millicores,
//!   timeout_seconds}`, `certification{level, score}`. Its single entrypoint names no
//!   platform, so it fits every os/arch.
//!
//! Unknown fields are ignored (readers must tolerate them); known fields are checked:
//! `package.id` is `org/name` of `[A-Za-z0-9_-]+`, digests are `sha256:` and 64 lowercase
//! hex digits, `os`/`arch` are the values REGISTRY_API.md lists, network entries are
//! `--allow-net` rules, environment names are variable names, sizes and durations use the
//! crate's units. A missing `subprocess` means *false* in both shapes: a package that does
//! not ask to start programs does not get to.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::egress::{Rule, RuleSource};
use crate::units::{Duration, Size};

/// A SHA-256 digest as the registry writes it: `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The digest as written (`sha256:…`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let ok = text
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if ok {
            Ok(Digest(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a digest: write `sha256:` and 64 lowercase hex digits"
            ))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `id` is `org/name`, each part `[A-Za-z0-9_-]+`.
pub fn is_package_id(id: &str) -> bool {
    let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    id.split_once('/').is_some_and(|(org, name)| part(org) && part(name))
}

/// Whether `name` can be an environment variable's name: letters, digits and `_`, not
/// starting with a digit.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `package` object: which package and version this manifest describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    /// `org/name`.
    pub id: String,
    /// The version.
    pub version: String,
    /// The source commit, when given.
    pub git_sha: Option<String>,
}

/// The `bundle` object: the digest and size of the bundle this manifest goes with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRef {
    /// `sha256:…`.
    pub digest: Digest,
    /// The bundle's size in bytes.
    pub size_bytes: u64,
}

/// An operating system an entrypoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// `linux`.
    Linux,
    /// `darwin`.
    Darwin,
    /// `windows`.
    Windows,
}

/// A CPU architecture an entrypoint is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// `amd64` (x86_64).
    Amd64,
    /// `arm64` (aarch64).
    Arm64,
}

impl Arch {
    /// The manifest's name for a Rust `std::env::consts::ARCH` value (`x86_64` → amd64).
    pub fn from_rust(arch: &str) -> Option<Arch> {
        match arch {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

/// One way to start the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entrypoint {
    /// The operating system; `None` (the Hub shape) fits every one.
    pub os: Option<Os>,
    /// The architecture; `None` (the Hub shape) fits every one.
    pub arch: Option<Arch>,
    /// An absolute path inside the jail, a program name found on `PATH`, or a path relative
    /// to the package root.
    pub command: String,
    /// Arguments, passed as written.
    pub args: Vec<String>,
}

/// How a filesystem request asks for access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsAccess {
    /// The registry shape lists paths without a mode: the user's flag (`--ro`/`--rw`)
    /// decides.
    Unspecified,
    /// Read (Hub `filesystem.read`).
    Read,
    /// Read and write (Hub `filesystem.write`).
    Write,
}

/// One requested path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsRequest {
    /// The path as the manifest writes it.
    pub path: String,
    /// The access asked for.
    pub access: FsAccess,
}

/// What a package asks to be allowed (`permissions_requested`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Destinations, as egress rules of [`RuleSource::Package`].
    pub network: Vec<Rule>,
    /// Host environment variables it may receive (passed when set).
    pub environment: Vec<String>,
    /// Whether it may start other programs (`false` = `--no-subprocess`).
    pub subprocess: bool,
    /// Paths, granted only when the user also passes them.
    pub filesystem: Vec<FsRequest>,
}

/// What a package recommends as limits (`limits_recommended`); they can only tighten
/// the configured ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecommendedLimits {
    /// `max_cpu` (Hub `cpu_millicores`), in millicores.
    pub cpu_millicores: Option<u64>,
    /// `max_memory` (Hub `memory_mb`).
    pub memory: Option<Size>,
    /// `max_pids`.
    pub pids: Option<u64>,
    /// `max_fds`.
    pub fds: Option<u64>,
    /// `timeout` (Hub `timeout_seconds`).
    pub timeout: Option<Duration>,
}

/// A manifest's own `certification` block: informational only (the resolve answer's level
/// is the one that counts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestCertification {
    /// The level the manifest claims.
    pub level: Option<u64>,
    /// A score, when given.
    pub score: Option<f64>,
}

/// Which of the two shapes a manifest was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// The registry format (`entrypoints`, `permissions_requested`, …).
    Registry,
    /// The MCP Hub format (a top-level `runtime`).
    Hub,
}

/// A package manifest, whichever shape it was written in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageManifest {
    /// The shape it was read from.
    pub shape: Shape,
    /// `schema_version`, when given.
    pub schema_version: Option<String>,
    /// `package`.
    pub package: PackageInfo,
    /// `bundle` (absent before `push` fills it in, and in the Hub shape).
    pub bundle: Option<BundleRef>,
    /// `transport.type` (registry shape; `stdio`).
    pub transport: Option<String>,
    /// `runtime.type` (Hub shape).
    pub runtime: Option<String>,
    /// The ways to start it; at least one.
    pub entrypoints: Vec<Entrypoint>,
    /// `permissions_requested` (Hub: `permissions`).
    pub permissions_requested: Permissions,
    /// `limits_recommended` (Hub: `resources`).
    pub limits_recommended: RecommendedLimits,
    /// `certification` (informational).
    pub certification: Option<ManifestCertification>,
}

#[derive(Deserialize)]
struct RawPackage {
    id: String,
    version: String,
    git_sha: Option<String>,
}

#[derive(Deserialize)]
struct RawType {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct RawRegistry {
    schema_version: Option<String>,
    package: RawPackage,
    bundle: Option<BundleRef>,
    transport: Option<RawType>,
    #[serde(default)]
    entrypoints: Vec<RawEntrypoint>,
    #[serde(default)]
    permissions_requested: RawRegistryPermissions,
    #[serde(default)]
    limits_recommended: RawRegistryLimits,
    certification: Option<ManifestCertification>,
}

#[derive(Deserialize)]
struct RawEntrypoint {
    os: Os,
    arch: Arch,
    command: String,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawRegistryPermissions {
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    environment: Vec<String>,
    subprocess: Option<bool>,
    #[serde(default)]
    filesystem: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawRegistryLimits {
    max_cpu: Option<u64>,
    max_memory: Option<Size>,
    max_pids: Option<u64>,
    max_fds: Option<u64>,
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
struct RawHub {
    schema_version: Option<String>,
    package: RawPackage,
    bundle: Option<BundleRef>,
    runtime: RawType,
    entrypoint: RawHubEntrypoint,
    #[serde(default)]
    permissions: RawHubPermissions,
    #[serde(default)]
    resources: RawHubResources,
    certification: Option<ManifestCertification>,
}

#[derive(Deserialize)]
struct RawHubEntrypoint {
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawHubPermissions {
    #[serde(default)]
    network: RawHubNetwork,
    #[serde(default)]
    filesystem: RawHubFilesystem,
    #[serde(default)]
    env_vars: Vec<String>,
    subprocess: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawHubNetwork {
    #[serde(default)]
    outbound: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawHubFilesystem {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

#[derive(Deserialize, Default)]
struct RawHubResources {
    memory_mb: Option<u64>,
    cpu_millicores: Option<u64>,
    timeout_seconds: Option<u64>,
}

impl PackageManifest {
    /// Read a manifest from its JSON text, in either shape. Errors start with
    /// `invalid package manifest:` and name the field and what is wrong with it.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let fail = |why: String| format!("invalid package manifest: {why}");
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| fail(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(fail("the manifest must be a JSON object".to_string()));
        };
        let manifest = if object.contains_key("runtime") {
            let raw: RawHub = serde_json::from_value(value).map_err(|e| fail(format!("{e} (MCP Hub shape)")))?;
            from_hub(raw)
        } else {
            let raw: RawRegistry = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
            from_registry(raw)
        }
        .map_err(fail)?;
        Ok(manifest)
    }

    /// The entrypoint for this machine: the exact os/arch match (a Hub entrypoint, which
    /// names no platform, fits every one).
    pub fn entrypoint_for(&self, os: Os, arch: Arch) -> Option<&Entrypoint> {
        self.entrypoints
            .iter()
            .find(|e| e.os.is_none_or(|o| o == os) && e.arch.is_none_or(|a| a == arch))
    }
}

fn check_package(raw: RawPackage) -> Result<PackageInfo, String> {
    if !is_package_id(&raw.id) {
        return Err(format!(
            "package.id `{}` is not `org/name` (each part letters, digits, `_` or `-`)",
            raw.id
        ));
    }
    if raw.version.trim().is_empty() {
        return Err("package.version is empty".to_string());
    }
    Ok(PackageInfo {
        id: raw.id,
        version: raw.version,
        git_sha: raw.git_sha,
    })
}

fn check_schema_version(version: &Option<String>) -> Result<(), String> {
    match version {
        Some(v) if v != "1" && !v.starts_with("1.") => {
            Err(format!("schema_version `{v}` is not supported (this mcp-j reads 1.x)"))
        }
        _ => Ok(()),
    }
}

fn network_rules(field: &str, entries: Vec<String>) -> Result<Vec<Rule>, String> {
    entries
        .iter()
        .map(|e| Rule::parse(e, RuleSource::Package).map_err(|why| format!("{field}: {why}")))
        .collect()
}

fn env_names(field: &str, names: Vec<String>) -> Result<Vec<String>, String> {
    if let Some(bad) = names.iter().find(|n| !is_env_name(n)) {
        return Err(format!(
            "{field}: `{bad}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok(names)
}

fn check_entrypoints(entrypoints: &[Entrypoint], field: &str) -> Result<(), String> {
    if entrypoints.is_empty() {
        return Err(format!(
            "{field}: there is no entrypoint; the package has nothing to run"
        ));
    }
    if entrypoints.iter().any(|e| e.command.is_empty()) {
        return Err(format!("{field}: an entrypoint's command is empty"));
    }
    Ok(())
}

fn from_registry(raw: RawRegistry) -> Result<PackageManifest, String> {
    check_schema_version(&raw.schema_version)?;
    let entrypoints: Vec<Entrypoint> = raw
        .entrypoints
        .into_iter()
        .map(|e| Entrypoint {
            os: Some(e.os),
            arch: Some(e.arch),
            command: e.command,
            args: e.args,
        })
        .collect();
    check_entrypoints(&entrypoints, "entrypoints")?;
    let p = raw.permissions_requested;
    let l = raw.limits_recommended;
    Ok(PackageManifest {
        shape: Shape::Registry,
        schema_version: raw.schema_version,
        package: check_package(raw.package)?,
        bundle: raw.bundle,
        transport: raw.transport.and_then(|t| t.kind),
        runtime: None,
        entrypoints,
        permissions_requested: Permissions {
            network: network_rules("permissions_requested.network", p.network)?,
            environment: env_names("permissions_requested.environment", p.environment)?,
            subprocess: p.subprocess.unwrap_or(false),
            filesystem: p
                .filesystem
                .into_iter()
                .map(|path| FsRequest {
                    path,
                    access: FsAccess::Unspecified,
                })
                .collect(),
        },
        limits_recommended: RecommendedLimits {
            cpu_millicores: positive("limits_recommended.max_cpu", l.max_cpu)?,
            memory: l.max_memory,
            pids: positive("limits_recommended.max_pids", l.max_pids)?,
            fds: positive("limits_recommended.max_fds", l.max_fds)?,
            timeout: l.timeout,
        },
        certification: raw.certification,
    })
}

fn from_hub(raw: RawHub) -> Result<PackageManifest, String> {
    check_schema_version(&raw.schema_version)?;
    let mut argv = raw.entrypoint.command.into_iter();
    let command = argv
        .next()
        .ok_or("entrypoint.command: empty; it must hold the program and its arguments")?;
    let entrypoints = vec![Entrypoint {
        os: None,
        arch: None,
        command,
        args: argv.chain(raw.entrypoint.args).collect(),
    }];
    check_entrypoints(&entrypoints, "entrypoint.command")?;
    let p = raw.permissions;
    let r = raw.resources;
    let memory = match positive("resources.memory_mb", r.memory_mb)? {
        None => None,
        Some(mb) => Some(Size(
            mb.checked_mul(1 << 20)
                .ok_or(format!("resources.memory_mb: {mb} is out of range"))?,
        )),
    };
    let filesystem = p
        .filesystem
        .read
        .into_iter()
        .map(|path| FsRequest {
            path,
            access: FsAccess::Read,
        })
        .chain(p.filesystem.write.into_iter().map(|path| FsRequest {
            path,
            access: FsAccess::Write,
        }))
        .collect();
    Ok(PackageManifest {
        shape: Shape::Hub,
        schema_version: raw.schema_version,
        package: check_package(raw.package)?,
        bundle: raw.bundle,
        transport: None,
        runtime: raw.runtime.kind,
        entrypoints,
        permissions_requested: Permissions {
            network: network_rules("permissions.network.outbound", p.network.outbound)?,
            environment: env_names("permissions.env_vars", p.env_vars)?,
            subprocess: p.subprocess.unwrap_or(false),
            filesystem,
        },
        limits_recommended: RecommendedLimits {
            cpu_millicores: positive("resources.cpu_millicores", r.cpu_millicores)?,
            memory,
            pids: None,
            fds: None,
            timeout: positive("resources.timeout_seconds", r.timeout_seconds)?
                .map(|s| Duration(std::time::Duration::from_secs(s))),
        },
        certification: raw.certification,
    })
}

fn positive(field: &str, value: Option<u64>) -> Result<Option<u64>, String> {
    match value {
        Some(0) => Err(format!("{field}: must be positive")),
        v => Ok(v),
    }
}

/// A limit a package can recommend, for [`LocalPolicy::set_by_flag`] and notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LimitKind {
    /// `--memory`.
    Memory,
    /// `--pids`.
    Pids,
    /// `--fds`.
    Fds,
    /// `--cpu`.
    Cpu,
    /// `--timeout`.
    Timeout,
}

impl LimitKind {
    /// The flag that sets this limit.
    pub fn flag(self) -> &'static str {
        match self {
            LimitKind::Memory => "--memory",
            LimitKind::Pids => "--pids",
            LimitKind::Fds => "--fds",
            LimitKind::Cpu => "--cpu",
            LimitKind::Timeout => "--timeout",
        }
    }
}

/// Limit values, as configured or as granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitValues {
    /// Memory.
    pub memory: Size,
    /// Processes.
    pub pids: u64,
    /// Open files.
    pub fds: u64,
    /// CPU, in millicores.
    pub cpu_millicores: u64,
    /// Wall-clock timeout; `None` = none.
    pub timeout: Option<Duration>,
}

/// What local policy allows a package: configuration, `--manifest` and flags, already
/// merged by the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPolicy {
    /// `policy.allow_package_network` (default true).
    pub allow_package_network: bool,
    /// `policy.no_subprocess` or `--no-subprocess`.
    pub no_subprocess: bool,
    /// The effective limits before the package is looked at.
    pub limits: LimitValues,
    /// Limits the user set with a flag: the package's recommendation does not change them.
    pub set_by_flag: BTreeSet<LimitKind>,
    /// Paths the user passed with `--ro`, as written.
    pub ro: Vec<String>,
    /// Paths the user passed with `--rw`, as written.
    pub rw: Vec<String>,
}

/// What a requested path became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOutcome {
    /// The user passed it too: it is there, with the user's mode.
    Granted {
        /// The path.
        path: String,
        /// Whether the user's flag was `--rw`.
        writable: bool,
    },
    /// The user did not pass it: not there. `hint` is the flag that would grant it.
    NotGranted {
        /// The path.
        path: String,
        /// `--ro PATH` or `--rw PATH`.
        hint: String,
    },
}

/// What a package gets: its request narrowed by local policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Egress rules from the package (they never unlock special addresses).
    pub network: Vec<Rule>,
    /// Host variables it may receive (passed when set).
    pub environment: Vec<String>,
    /// Whether it runs with `--no-subprocess`.
    pub no_subprocess: bool,
    /// The limits it runs under.
    pub limits: LimitValues,
    /// Each requested path and what became of it.
    pub filesystem: Vec<FsOutcome>,
    /// What was not granted as asked, each with the flag or line that changes it (for
    /// `info` and the `-v` report).
    pub notes: Vec<String>,
}

/// Narrow a package's request by local policy: nothing in the result is wider than local
/// policy allows. The network request is refused whole (an error naming the permission
/// and `policy.allow_package_network`) when local policy does not let packages ask for
/// network; a recommended limit lowers a configured one unless the user set that one with
/// a flag, and never raises it (a note says which flag raises it); `subprocess: false`
/// adds `--no-subprocess`, `true` does not lift the user's; a path is there only when the
/// user passed it too.
pub fn narrow(
    package: &str,
    requested: &Permissions,
    recommended: &RecommendedLimits,
    local: &LocalPolicy,
) -> Result<Grant, String> {
    if !requested.network.is_empty() && !local.allow_package_network {
        let hosts: Vec<String> = requested.network.iter().map(Rule::to_string).collect();
        return Err(format!(
            "{package} requests network access ({}) and policy.allow_package_network = false; \
             set policy.allow_package_network = true, or allow the destinations yourself with --allow-net",
            hosts.join(", ")
        ));
    }
    let mut notes = Vec::new();
    let mut limits = local.limits;
    let mut tighten = |kind: LimitKind, configured: &mut u64, wanted: Option<u64>, show: &dyn Fn(u64) -> String| {
        let Some(wanted) = wanted else { return };
        if local.set_by_flag.contains(&kind) {
            return;
        }
        if wanted < *configured {
            *configured = wanted;
        } else if wanted > *configured {
            notes.push(format!(
                "{package} recommends {} {}, above the configured {}; raise it with {} {} if it needs it",
                kind.flag(),
                show(wanted),
                show(*configured),
                kind.flag(),
                show(wanted)
            ));
        }
    };
    let plain = |n: u64| n.to_string();
    let size = |n: u64| crate::units::format_size(n);
    tighten(
        LimitKind::Memory,
        &mut limits.memory.0,
        recommended.memory.map(|s| s.0),
        &size,
    );
    tighten(LimitKind::Pids, &mut limits.pids, recommended.pids, &plain);
    tighten(LimitKind::Fds, &mut limits.fds, recommended.fds, &plain);
    tighten(
        LimitKind::Cpu,
        &mut limits.cpu_millicores,
        recommended.cpu_millicores,
        &plain,
    );
    if let Some(wanted) = recommended.timeout
        && !local.set_by_flag.contains(&LimitKind::Timeout)
    {
        match limits.timeout {
            Some(configured) if wanted.0 > configured.0 => notes.push(format!(
                "{package} recommends --timeout {}s, above the configured {}s; raise it with --timeout if it needs it",
                wanted.0.as_secs(),
                configured.0.as_secs()
            )),
            // None configured, or the recommendation is at most the configured one.
            _ => limits.timeout = Some(wanted),
        }
    }

    let filesystem = requested
        .filesystem
        .iter()
        .map(|req| {
            let writable = local.rw.contains(&req.path);
            if writable || local.ro.contains(&req.path) {
                FsOutcome::Granted {
                    path: req.path.clone(),
                    writable,
                }
            } else {
                let flag = if req.access == FsAccess::Write { "--rw" } else { "--ro" };
                let hint = format!("{flag} {}", req.path);
                notes.push(format!(
                    "{package} requests {}; not granted (grant it with {hint})",
                    req.path
                ));
                FsOutcome::NotGranted {
                    path: req.path.clone(),
                    hint,
                }
            }
        })
        .collect();

    Ok(Grant {
        network: requested.network.clone(),
        environment: requested.environment.clone(),
        no_subprocess: local.no_subprocess || !requested.subprocess,
        limits,
        filesystem,
        notes,
    })
}

#[cfg(test)]
mod tests;
