//! `mcp-j pull`, `info` and `cache`: registry packages into the verified, content-addressed
//! cache, and what the cache holds. The resolve answer is the root of trust: the manifest
//! and the bundle are fetched by its digests, hashed while streaming, and kept only when
//! they match; a manifest must then be the resolved bundle's, the asked package's and the
//! resolved version's. Every refusal exits 126 and keeps nothing bad; a registry that
//! cannot be reached or answers an error exits 125 with its message.

use std::io::Read;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use mcp_j_package::cache::{AnswerKey, BlobKind, Cache, GcOptions};
use mcp_j_package::digest::MANIFEST_CAP;
use mcp_j_package::registry::{Artifact, Registry, RegistryError};
use mcp_j_package::unpack::DEFAULT_MAX_UNPACKED_BYTES;
use mcp_j_policy::certification::{CertPolicy, Decision, PackageFacts, decide};
use mcp_j_policy::package::{Digest, PackageManifest};
use mcp_j_policy::reference::{PackageRef, RegistryRef, Selector};
use mcp_j_policy::resolve::{ResolveAnswer, compare_versions, manifest_mismatches};

use crate::config::Config;

/// Exit status of a refusal (integrity, status, policy).
const EXIT_REFUSED: u8 = 126;

#[derive(Debug, Args)]
pub struct RefArgs {
    /// The package: ORG/NAME, ORG/NAME@VERSION, ORG/NAME@latest or ORG/NAME@sha256:DIGEST;
    /// for `pull` also `npm:NAME[@VERSION]` and `pypi:NAME[==VERSION]`
    #[arg(value_name = "REF")]
    reference: String,
    #[command(flatten)]
    fetch: FetchOpts,
}

/// `mcp-j pull`'s arguments: a reference, how to fetch it, and for npm/PyPI how to install.
#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub reference: RefArgs,
    #[command(flatten)]
    pub install: super::install::InstallOpts,
    /// npm/PyPI without a version: resolve the latest again and move the pin to it
    #[arg(long)]
    pub update: bool,
    /// npm/PyPI: install again, replacing what the cache holds
    #[arg(long)]
    pub force: bool,
    /// npm/PyPI: the registry credential for the installer: NPM_TOKEN=env:VAR or
    /// PIP_INDEX_URL=file:PATH (an index URL with credentials)
    #[arg(long = "secret", value_name = "NAME=SOURCE")]
    pub secret: Vec<String>,
}

/// How a package is fetched (`pull`, `info`, `run REF`).
#[derive(Debug, Clone, Default, Args)]
pub struct FetchOpts {
    /// Fetch the manifest and the bundle again, replacing what the cache holds
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// The largest bundle accepted, unpacked (and downloaded) [default: 512M]
    #[arg(long = "max-bundle-size", value_name = "SIZE", value_parser = mcp_j_policy::units::parse_size)]
    pub max_bundle_size: Option<u64>,
}

impl FetchOpts {
    pub fn max_bundle_size(&self) -> u64 {
        self.max_bundle_size.unwrap_or(DEFAULT_MAX_UNPACKED_BYTES)
    }
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The blobs in the cache (`--json`: an array)
    Ls,
    /// Remove blobs by digest, or all of them
    Rm {
        /// Digests (`sha256:…`)
        #[arg(value_name = "DIGEST", required_unless_present = "all")]
        digests: Vec<String>,
        /// Remove everything
        #[arg(long, conflicts_with = "digests")]
        all: bool,
    },
    /// Remove what no cached resolve answer needs, what was unused for longer than
    /// `--max-age`, then the least recently used beyond `--max-size`
    Gc {
        /// e.g. 30d
        #[arg(long = "max-age", value_name = "DURATION")]
        max_age: Option<mcp_j_policy::Duration>,
        /// e.g. 2G
        #[arg(long = "max-size", value_name = "SIZE")]
        max_size: Option<mcp_j_policy::Size>,
    },
}

/// A refusal: said on stderr, exit 126.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

pub fn registry_ref(text: &str) -> Result<RegistryRef> {
    match mcp_j_policy::reference::parse(text).map_err(|e| anyhow!(e))? {
        PackageRef::Registry(r) => Ok(r),
        PackageRef::Npm(_) | PackageRef::Pypi(_) => {
            bail!(
                "`{text}`: `info` shows registry packages (ORG/NAME[@VERSION]); an npm or PyPI package is \
                 installed by `mcp-j pull {text}` and listed by `mcp-j cache ls`"
            )
        }
    }
}

/// The registry client for the configured registry, with its stored (or overriding) token.
pub fn registry_client(config: &Config) -> Result<(String, Registry)> {
    let url = super::login::registry_url(config)?.to_owned();
    let token = match super::login::credentials_store() {
        Some(store) => store.token_for(&url, config.registry_token.as_deref())?,
        None => config.registry_token.clone(),
    };
    let registry = Registry::new(&url, token)?;
    Ok((url, registry))
}

pub fn cache(config: &Config) -> Result<Cache> {
    let root = match &config.cache_dir {
        Some(dir) => dir.clone(),
        None => {
            let env = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from);
            mcp_j_package::cache::default_root(env("XDG_CACHE_HOME").as_deref(), env("HOME").as_deref())
                .context("no cache directory: set `--cache-dir DIR`, `cache_dir` or MCP_J_CACHE_DIR")?
        }
    };
    Cache::open(&root).with_context(|| format!("cannot open the cache in {}", root.display()))
}

/// A registry error as the user should read it: 401 gets the login hint.
pub fn registry_context(e: RegistryError) -> anyhow::Error {
    let hint = matches!(e, RegistryError::Status { status: 401, .. })
        .then_some(" (log in with `mcp-j login`, or set MCP_J_REGISTRY_TOKEN)")
        .unwrap_or_default();
    anyhow!("{e}{hint}")
}

/// What a pull, info or run found: the answer and the verified manifest.
pub struct Fetched {
    pub answer: ResolveAnswer,
    pub manifest: PackageManifest,
    pub manifest_size: u64,
}

/// The audit events of a package's way to a run (`package.resolve`, `package.verify`,
/// `policy.decision`), in order, kept until the audit log is open (`pull` and `info`
/// collect them too, and drop them).
#[derive(Debug, Default)]
pub struct PackageEvents(Vec<(SystemTime, mcp_j_audit::EventBody)>);

impl PackageEvents {
    pub fn push(&mut self, body: impl Into<mcp_j_audit::EventBody>) {
        self.0.push((SystemTime::now(), body.into()));
    }

    pub fn take(&mut self) -> Vec<(SystemTime, mcp_j_audit::EventBody)> {
        std::mem::take(&mut self.0)
    }
}

/// A `package.verify` event.
pub fn verify_event(
    answer: &ResolveAnswer,
    artifact: mcp_j_audit::Artifact,
    digest: &Digest,
    size: Option<u64>,
    cached: bool,
    refusal: Option<&str>,
) -> mcp_j_audit::PackageVerify {
    mcp_j_audit::PackageVerify {
        package: answer.package.clone(),
        version: answer.resolved.version.clone(),
        artifact,
        digest: digest.as_str().to_owned(),
        size,
        cached,
        result: if refusal.is_some() {
            mcp_j_audit::VerifyResult::Refused
        } else {
            mcp_j_audit::VerifyResult::Verified
        },
        reason: refusal.map(str::to_owned),
    }
}

/// Resolve (or, with the registry unreachable, a cached answer younger than
/// `max_age`, `policy.offline_max_age`, said on stderr), then the manifest by digest into
/// the cache, checked against the answer; the answer is kept for the offline rule and
/// `cache gc`.
pub fn resolve_and_manifest(
    reference: &RegistryRef,
    url: &str,
    registry: &Registry,
    cache: &Cache,
    max_age: std::time::Duration,
    refetch: bool,
    events: &mut PackageEvents,
) -> Result<Fetched> {
    let asked = format!("{}/{}", reference.org, reference.name);
    let key = AnswerKey {
        registry: url.to_owned(),
        package: asked.clone(),
        reference: reference.selector.as_ref_param().to_owned(),
    };
    let now = SystemTime::now();
    let (answer, offline_age) = match registry.resolve(
        &reference.org,
        &reference.name,
        reference.selector.as_ref_param(),
    ) {
        Ok(answer) => (answer, None),
        Err(e @ RegistryError::Transport { .. }) => {
            let (cached, answer) = match cache.load_answer(&key, now, max_age) {
                Some(cached) => {
                    let answer: ResolveAnswer = serde_json::from_value(cached.answer.clone()).map_err(|err| {
                        anyhow!("the cached resolve answer for {asked} is not valid ({err}); `mcp-j cache rm --all`")
                    })?;
                    (cached, answer)
                }
                None if reference.selector == Selector::Latest => {
                    let (cached, answer) = newest_cached(cache, url, &asked, now, max_age).ok_or_else(|| {
                        anyhow!(
                            "{e}; no answer for any version of {asked} younger than {} s (policy.offline_max_age) \
                             is cached, so nothing to go offline with",
                            max_age.as_secs()
                        )
                    })?;
                    eprintln!(
                        "mcp-j: offline: `latest` is taken to be {}, the newest version of {asked} in the cache",
                        answer.resolved.version
                    );
                    (cached, answer)
                }
                None => bail!(
                    "{e}; no answer of it younger than {} s (policy.offline_max_age) is cached, so nothing to go offline with",
                    max_age.as_secs()
                ),
            };
            eprintln!(
                "mcp-j: offline: {e}; using the registry's answer from {} minutes ago (a revocation since then is not seen)",
                cached.age(now).as_secs() / 60
            );
            (answer, Some(cached.age(now)))
        }
        Err(e) => return Err(registry_context(e)),
    };
    let fresh = offline_age.is_none();
    events.push(mcp_j_audit::PackageResolve {
        registry: url.to_owned(),
        reference: format!("{asked}@{}", reference.selector.as_ref_param()),
        package: answer.package.clone(),
        version: answer.resolved.version.clone(),
        status: answer.resolved.status.as_str().to_owned(),
        certification_level: answer.resolved.certification_level.get(),
        origin: answer.origin.as_str().to_owned(),
        manifest_digest: answer.resolved.manifest.digest.as_str().to_owned(),
        bundle_digest: answer.resolved.bundle.digest.as_str().to_owned(),
        bundle_size: answer.resolved.bundle.size_bytes,
        offline: !fresh,
        answer_age_s: offline_age.map(|age| age.as_secs()),
    });
    let manifest_digest = answer.resolved.manifest.digest.clone();
    if refetch && fresh {
        cache.remove(&manifest_digest)?;
    }
    let manifest_event = |size, cached, refusal: Option<&str>| {
        verify_event(
            &answer,
            mcp_j_audit::Artifact::Manifest,
            &manifest_digest,
            size,
            cached,
            refusal,
        )
    };
    let stored = match cache.store(&manifest_digest, BlobKind::Manifest, MANIFEST_CAP, now, || {
        registry
            .artifact(&reference.org, Artifact::Manifest, &manifest_digest)
            .map_err(std::io::Error::other)
    }) {
        Ok(stored) => stored,
        Err(e) => {
            let why = format!("{asked}: the manifest: {e}");
            events.push(manifest_event(None, !cache_fetch_error(&e), Some(&why)));
            return Err(Refused(why).into());
        }
    };
    let manifest_cached = !stored.fetched;
    let mut text = String::new();
    std::fs::File::open(&stored.path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("cannot read {}", stored.path.display()))?;
    let mut refuse = |why: String| {
        let _ = cache.remove(&manifest_digest);
        let why = format!("{asked}: {why}; nothing was kept");
        events.push(manifest_event(Some(stored.size), manifest_cached, Some(&why)));
        Refused(why)
    };
    let manifest = match PackageManifest::from_json(&text) {
        Ok(manifest) => manifest,
        Err(e) => return Err(refuse(format!("its manifest is not valid: {e}")).into()),
    };
    let mismatches = manifest_mismatches(&answer, &manifest, &asked);
    if !mismatches.is_empty() {
        let all: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        return Err(refuse(all.join("; ")).into());
    }
    events.push(manifest_event(Some(stored.size), manifest_cached, None));
    if fresh {
        let value = serde_json::to_value(&answer)?;
        cache
            .save_answer(&key, &value, now)
            .with_context(|| format!("cannot keep the resolve answer for {asked} in the cache"))?;
    }
    Ok(Fetched {
        answer,
        manifest,
        manifest_size: stored.size,
    })
}

/// The cached answer (younger than `max_age`) that names the highest version of `package`
/// from `registry`, whatever REF it answered: an offline `latest`.
fn newest_cached(
    cache: &Cache,
    registry: &str,
    package: &str,
    now: SystemTime,
    max_age: std::time::Duration,
) -> Option<(mcp_j_package::cache::CachedAnswer, ResolveAnswer)> {
    cache
        .answers_for(registry, package)
        .ok()?
        .into_iter()
        .filter(|cached| cached.age(now) <= max_age)
        .filter_map(|cached| {
            let answer: ResolveAnswer = serde_json::from_value(cached.answer.clone()).ok()?;
            (answer.package == package).then_some((cached, answer))
        })
        .max_by(|(_, a), (_, b)| compare_versions(&a.resolved.version, &b.resolved.version))
}

/// Whether a cache error came from fetching (a download), not from a cached copy.
fn cache_fetch_error(e: &mcp_j_package::cache::CacheError) -> bool {
    use mcp_j_package::cache::CacheError;
    matches!(
        e,
        CacheError::Fetch { .. } | CacheError::Mismatch { .. } | CacheError::TooLarge { .. }
    )
}

/// A download's progress on stderr, when stderr is a terminal (never in a pipe or a log):
/// `mcp-j: bundle 12.3 / 100.0 MB`, redrawn at most every 200 ms, the line cleared at the end.
struct Progress<R> {
    inner: R,
    total: u64,
    done: u64,
    shown: Option<std::time::Instant>,
}

impl<R: Read> Progress<R> {
    fn on_terminal(inner: R, total: u64) -> Box<dyn Read + Send + Sync>
    where
        R: Send + Sync + 'static,
    {
        if rustix::termios::isatty(std::io::stderr()) {
            Box::new(Progress {
                inner,
                total,
                done: 0,
                shown: None,
            })
        } else {
            Box::new(inner)
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let due = self
            .shown
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(200));
        if n == 0 {
            if self.shown.is_some() {
                eprint!("\r\x1b[K");
            }
        } else if due {
            self.shown = Some(std::time::Instant::now());
            let mb = |b: u64| b as f64 / 1e6;
            eprint!("\rmcp-j: bundle {:.1} / {:.1} MB\x1b[K", mb(self.done), mb(self.total));
        }
        Ok(n)
    }
}

/// `policy.offline_max_age` (7 days unless configured).
pub fn offline_max_age(config: &Config) -> std::time::Duration {
    config
        .policy
        .offline_max_age
        .map_or(std::time::Duration::from_secs(7 * 24 * 3600), |d| d.0)
}

/// The certification and origin policy's decision on a resolved package (status, origin,
/// level: `mcp_j_policy::certification::decide`); its warnings are said on stderr.
pub fn decision(config: &Config, answer: &ResolveAnswer) -> Decision {
    let policy = CertPolicy {
        min_level: config.policy.min_cert_level.unwrap_or_default(),
        mode: config.policy.cert_level_mode.unwrap_or_default(),
        allowed_origins: config.policy.allowed_origins.iter().flatten().copied().collect(),
    };
    let facts = PackageFacts {
        package: &answer.package,
        version: &answer.resolved.version,
        status: answer.resolved.status,
        level: answer.resolved.certification_level,
        origin: answer.origin,
    };
    let decision = decide(&policy, &facts);
    if let Decision::Warned(reasons) = &decision {
        for reason in reasons {
            eprintln!("mcp-j: warning: {}", reason.message);
        }
    }
    decision
}

pub fn messages(reasons: &[mcp_j_policy::certification::Reason]) -> String {
    reasons
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `pull` and `info` both start with: REF parsed, the registry and the cache opened,
/// the package resolved and its manifest fetched and checked.
fn fetch(args: &RefArgs, config: &Config) -> Result<(RegistryRef, Registry, Cache, Fetched)> {
    let reference = registry_ref(&args.reference)?;
    let (url, registry) = registry_client(config)?;
    let cache = cache(config)?;
    let fetched = resolve_and_manifest(
        &reference,
        &url,
        &registry,
        &cache,
        offline_max_age(config),
        args.fetch.no_cache,
        &mut PackageEvents::default(),
    )?;
    Ok((reference, registry, cache, fetched))
}

/// `mcp-j pull REF`: a registry package into the cache, or an npm/PyPI package installed.
pub fn pull(pull: &PullArgs, config: &Config) -> Result<ExitCode> {
    let args = &pull.reference;
    let install = match mcp_j_policy::reference::parse(&args.reference) {
        Ok(PackageRef::Npm(r)) => Some(super::install::InstallRef::npm(&args.reference, r)?),
        Ok(PackageRef::Pypi(r)) => Some(super::install::InstallRef::pypi(&args.reference, r)?),
        _ => None,
    };
    if let Some(reference) = install {
        return refusals_exit(|| {
            let refresh = super::install::Refresh {
                update: pull.update,
                force: pull.force,
            };
            let mut opts = crate::sandbox_opts::SandboxOpts {
                secret: pull.secret.clone(),
                config: config.clone(),
                ..Default::default()
            };
            let registry_secret = super::install::take_registry_secret(reference.ecosystem, &mut opts)?;
            if let Some(other) = opts.secret.first() {
                bail!(
                    "`pull --secret {other}`: only the registry credential ({}) is for the installer",
                    super::install::registry_secret_name(reference.ecosystem)
                );
            }
            let installed = super::install::ensure_installed(
                &reference,
                &pull.install,
                config,
                config.audit_log.as_deref(),
                refresh,
                registry_secret.as_ref(),
            )?;
            eprintln!(
                "mcp-j: {} is installed and verified (tree {})",
                install_name(&installed.record),
                installed.record.tree_digest.as_str()
            );
            Ok(ExitCode::SUCCESS)
        });
    }
    refusals_exit(|| {
        let (reference, registry, cache, fetched) = fetch(args, config)?;
        let resolved = &fetched.answer.resolved;
        if let Decision::Refused(reasons) = decision(config, &fetched.answer) {
            return Err(Refused(messages(&reasons)).into());
        }
        let bundle = &resolved.bundle;
        let stored = store_bundle(
            &reference,
            &registry,
            &cache,
            &fetched.answer,
            &args.fetch,
            &mut PackageEvents::default(),
        )?;
        eprintln!(
            "mcp-j: {}@{} ({}): manifest {} and bundle {} ({} bytes) verified{}",
            fetched.answer.package,
            resolved.version,
            resolved.status.as_str(),
            resolved.manifest.digest.as_str(),
            bundle.digest.as_str(),
            stored.size,
            if stored.fetched { "" } else { ", already cached" }
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The bundle into the cache: downloaded (with a progress bar on a terminal) when it is
/// not there or `--no-cache` was given, else verified again. A bundle larger than
/// `--max-bundle-size` is refused before a byte is fetched.
pub fn store_bundle(
    reference: &RegistryRef,
    registry: &Registry,
    cache: &Cache,
    answer: &ResolveAnswer,
    opts: &FetchOpts,
    events: &mut PackageEvents,
) -> Result<mcp_j_package::cache::Stored> {
    let bundle = &answer.resolved.bundle;
    let event = |size, cached, refusal: Option<&str>| {
        verify_event(
            answer,
            mcp_j_audit::Artifact::Bundle,
            &bundle.digest,
            size,
            cached,
            refusal,
        )
    };
    refuse_oversized(answer, opts, events)?;
    if opts.no_cache {
        cache.remove(&bundle.digest)?;
    }
    let stored = cache.store(
        &bundle.digest,
        BlobKind::Bundle,
        bundle.size_bytes,
        SystemTime::now(),
        || {
            registry
                .artifact(&reference.org, Artifact::Bundle, &bundle.digest)
                .map(|body| Progress::on_terminal(body, bundle.size_bytes))
                .map_err(std::io::Error::other)
        },
    );
    match stored {
        Ok(stored) => {
            events.push(event(Some(stored.size), !stored.fetched, None));
            Ok(stored)
        }
        Err(e) => {
            let why = format!("{}: the bundle: {e}", answer.package);
            events.push(event(None, !cache_fetch_error(&e), Some(&why)));
            Err(Refused(why).into())
        }
    }
}

/// A bundle larger than `--max-bundle-size` (as the resolve answer says) is refused, cached
/// or not, before a byte of it is read.
pub fn refuse_oversized(answer: &ResolveAnswer, opts: &FetchOpts, events: &mut PackageEvents) -> Result<()> {
    let bundle = &answer.resolved.bundle;
    let max = opts.max_bundle_size();
    if bundle.size_bytes <= max {
        return Ok(());
    }
    let why = format!(
        "{}: the bundle is {} bytes, over the {max} allowed; raise --max-bundle-size if you trust it",
        answer.package, bundle.size_bytes
    );
    let cached = false;
    let event = verify_event(
        answer,
        mcp_j_audit::Artifact::Bundle,
        &bundle.digest,
        Some(bundle.size_bytes),
        cached,
        Some(&why),
    );
    events.push(event);
    Err(Refused(why).into())
}

#[derive(Serialize)]
struct ArtifactInfo {
    digest: String,
    size: u64,
    cached: bool,
}

#[derive(Serialize)]
struct Info<'a> {
    package: &'a str,
    version: &'a str,
    git_sha: Option<&'a str>,
    status: &'a str,
    certification_level: u8,
    origin: &'a str,
    manifest: ArtifactInfo,
    bundle: ArtifactInfo,
    permissions_requested: &'a mcp_j_policy::package::Permissions,
    limits_recommended: &'a mcp_j_policy::package::RecommendedLimits,
    /// What local policy says of running it: `allowed`, `warned` or `refused`, and why.
    policy: PolicyInfo,
}

#[derive(Serialize)]
struct PolicyInfo {
    decision: &'static str,
    reasons: Vec<String>,
    /// What `run` would not grant as asked under the configuration alone (no flags), each
    /// with the flag or line that changes it.
    notes: Vec<String>,
}

/// The package's request narrowed by the configuration alone, as `run` without flags would:
/// the notes, or the refusal.
fn narrowed_by_config(config: &Config, fetched: &Fetched) -> Result<Vec<String>, String> {
    use mcp_j_policy::package::{LimitValues, LocalPolicy, narrow};
    let limits = config.limits();
    let local = LocalPolicy {
        allow_package_network: config.policy.allow_package_network.unwrap_or(true),
        no_subprocess: config.policy.no_subprocess.unwrap_or(false),
        limits: LimitValues {
            memory: mcp_j_policy::Size(limits.memory_bytes),
            pids: limits.pids,
            fds: limits.fds,
            cpu_millicores: limits.cpu_millicores,
            timeout: config.limits.timeout,
        },
        set_by_flag: Default::default(),
        ro: Vec::new(),
        rw: Vec::new(),
    };
    let name = format!("{}@{}", fetched.answer.package, fetched.answer.resolved.version);
    let manifest = &fetched.manifest;
    narrow(
        &name,
        &manifest.permissions_requested,
        &manifest.limits_recommended,
        &local,
    )
    .map(|g| g.notes)
}

/// `mcp-j info REF [--json]`.
pub fn info(args: &RefArgs, config: &Config, json: bool) -> Result<ExitCode> {
    refusals_exit(|| {
        let (_, _, cache, fetched) = fetch(args, config)?;
        let r = &fetched.answer.resolved;
        let info = Info {
            package: &fetched.answer.package,
            version: &r.version,
            git_sha: r.git_sha.as_deref(),
            status: r.status.as_str(),
            certification_level: r.certification_level.get(),
            origin: fetched.answer.origin.as_str(),
            manifest: ArtifactInfo {
                digest: r.manifest.digest.as_str().to_owned(),
                size: fetched.manifest_size,
                cached: true,
            },
            bundle: ArtifactInfo {
                digest: r.bundle.digest.as_str().to_owned(),
                size: r.bundle.size_bytes,
                cached: cache.contains(&r.bundle.digest),
            },
            permissions_requested: &fetched.manifest.permissions_requested,
            limits_recommended: &fetched.manifest.limits_recommended,
            policy: {
                let (mut decision, mut reasons) = match decision(config, &fetched.answer) {
                    Decision::Allowed => ("allowed", Vec::new()),
                    Decision::Warned(r) => ("warned", r.into_iter().map(|r| r.message).collect()),
                    Decision::Refused(r) => ("refused", r.into_iter().map(|r| r.message).collect()),
                };
                let notes = match narrowed_by_config(config, &fetched) {
                    Ok(notes) => notes,
                    Err(refusal) => {
                        decision = "refused";
                        reasons.push(refusal);
                        Vec::new()
                    }
                };
                PolicyInfo {
                    decision,
                    reasons,
                    notes,
                }
            },
        };
        let text = if json {
            format!("{}\n", serde_json::to_string_pretty(&info)?)
        } else {
            let p = info.permissions_requested;
            format!(
                "{}@{} ({}, certification level {}, origin {})\n  manifest {} ({} bytes, cached)\n  bundle   {} ({} bytes{})\n  requests: network {:?}, environment {:?}, subprocess {}, filesystem {:?}\n  recommends: {}\n  policy: {}{}\n{}",
                info.package,
                info.version,
                info.status,
                info.certification_level,
                info.origin,
                info.manifest.digest,
                info.manifest.size,
                info.bundle.digest,
                info.bundle.size,
                if info.bundle.cached { ", cached" } else { ", not cached" },
                p.network.iter().map(ToString::to_string).collect::<Vec<_>>(),
                p.environment,
                p.subprocess,
                p.filesystem.iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
                serde_json::to_string(info.limits_recommended)?,
                info.policy.decision,
                if info.policy.reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", info.policy.reasons.join("; "))
                },
                info.policy
                    .notes
                    .iter()
                    .map(|n| format!("  note: {n}\n"))
                    .collect::<String>(),
            )
        };
        crate::output::write_stdout(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Serialize)]
struct LsEntry {
    digest: String,
    kind: &'static str,
    size: u64,
    last_used: String,
    /// For an install: `npm:NAME@VERSION` or `pypi:NAME==VERSION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    package: Option<String>,
}

/// `npm:NAME@VERSION` / `pypi:NAME==VERSION` of an install.
fn install_name(record: &mcp_j_package::install::InstallRecord) -> String {
    match record.ecosystem {
        mcp_j_package::install::Ecosystem::Npm => format!("npm:{}@{}", record.name, record.version),
        mcp_j_package::install::Ecosystem::Pypi => format!("pypi:{}=={}", record.name, record.version),
    }
}

/// `mcp-j cache ls|rm|gc`.
pub fn cache_command(command: &CacheCommand, config: &Config, json: bool) -> Result<ExitCode> {
    let cache = cache(config)?;
    let installs = cache.installs().map_err(|e| anyhow!("{e}"))?;
    let installed = || installs.list().map_err(|e| anyhow!("{e}"));
    match command {
        CacheCommand::Ls => {
            let entries: Vec<LsEntry> = cache
                .list()?
                .into_iter()
                .map(|e| LsEntry {
                    digest: e.digest.as_str().to_owned(),
                    kind: match e.kind {
                        Some(BlobKind::Manifest) => "manifest",
                        Some(BlobKind::Bundle) => "bundle",
                        Some(BlobKind::Install) => "install",
                        None => "unknown",
                    },
                    size: e.size,
                    last_used: mcp_j_audit::rfc3339_micros(e.last_used),
                    package: None,
                })
                .chain(
                    installs
                        .list()
                        .map_err(|e| anyhow!("{e}"))?
                        .into_iter()
                        .map(|e| LsEntry {
                            digest: e.record.tree_digest.as_str().to_owned(),
                            kind: "install",
                            size: e.size,
                            last_used: mcp_j_audit::rfc3339_micros(e.last_used),
                            package: Some(install_name(&e.record)),
                        }),
                )
                .collect();
            let text = if json {
                format!("{}\n", serde_json::to_string_pretty(&entries)?)
            } else {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{}  {:<8} {:>12}  {}{}\n",
                            e.digest,
                            e.kind,
                            e.size,
                            e.last_used,
                            e.package.as_ref().map(|p| format!("  {p}")).unwrap_or_default()
                        )
                    })
                    .collect()
            };
            crate::output::write_stdout(&text)?;
        }
        CacheCommand::Rm { digests, all } => {
            let removed = if *all {
                for entry in installed()? {
                    installs.remove(&entry.id).map_err(|e| anyhow!("{e}"))?;
                }
                cache.remove_all()?.len()
            } else {
                let mut n = 0;
                let every_install = installed()?;
                for text in digests {
                    let digest: Digest = text.parse().map_err(|e: String| anyhow!(e))?;
                    let matching: Vec<_> = every_install
                        .iter()
                        .filter(|e| e.record.tree_digest == digest)
                        .collect();
                    for entry in &matching {
                        installs.remove(&entry.id).map_err(|e| anyhow!("{e}"))?;
                        eprintln!("mcp-j: removed the install of {}", install_name(&entry.record));
                    }
                    if cache.remove(&digest)? || !matching.is_empty() {
                        n += 1;
                    } else {
                        eprintln!("mcp-j: {text} is not in the cache");
                    }
                }
                n
            };
            eprintln!("mcp-j: removed {removed} entr(y/ies) from the cache");
        }
        CacheCommand::Gc { max_age, max_size } => {
            let report = cache.gc(
                GcOptions {
                    max_age: max_age.map(|d| d.0),
                    max_size: max_size.map(|s| s.0),
                },
                SystemTime::now(),
            )?;
            // Installs: by age, then (least recently used first) while the cache is still
            // over --max-size.
            let now = SystemTime::now();
            let mut removed_installs = 0;
            let mut freed = report.freed;
            let mut kept = Vec::new();
            for entry in installed()? {
                let idle = now.duration_since(entry.last_used).unwrap_or_default();
                if max_age.is_some_and(|max| idle > max.0) {
                    installs.remove(&entry.id).map_err(|e| anyhow!("{e}"))?;
                    removed_installs += 1;
                    freed += entry.size;
                } else {
                    kept.push(entry);
                }
            }
            if let Some(max) = max_size {
                let blobs: u64 = cache.list()?.iter().map(|b| b.size).sum();
                let mut total = blobs + kept.iter().map(|e| e.size).sum::<u64>();
                kept.sort_by_key(|e| e.last_used);
                for entry in kept {
                    if total <= max.0 {
                        break;
                    }
                    installs.remove(&entry.id).map_err(|e| anyhow!("{e}"))?;
                    removed_installs += 1;
                    freed += entry.size;
                    total -= entry.size;
                }
            }
            eprintln!(
                "mcp-j: removed {} blob(s) and {removed_installs} install(s), {freed} bytes",
                report.removed.len(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `f`; a [`Refused`] (or a package request local policy refused) becomes exit 126
/// with its message.
pub fn refusals_exit(f: impl FnOnce() -> Result<ExitCode>) -> Result<ExitCode> {
    match f() {
        Ok(code) => Ok(code),
        Err(e) => {
            let refusal = e.downcast_ref::<Refused>().map(|r| r.0.as_str()).or_else(|| {
                e.downcast_ref::<crate::sandbox_opts::PackageRefused>()
                    .map(|r| r.0.as_str())
            });
            match refusal {
                Some(refusal) => {
                    eprintln!("mcp-j: refused: {refusal}");
                    Ok(ExitCode::from(EXIT_REFUSED))
                }
                None => Err(e),
            }
        }
    }
}
