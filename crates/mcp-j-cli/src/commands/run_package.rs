//! `mcp-j run ORG/NAME[@VERSION] [-- ARGS]`: a registry package, from its reference to a
//! program the sandbox can start.
//!
//! 1. Resolve (offline: a cached answer younger than `policy.offline_max_age`), fetch the
//!    manifest by digest and check it against the answer ([`super::package`]).
//! 2. The certification and status policy: a refusal ends here.
//! 3. The bundle, downloaded when not cached, then unpacked into a fresh run directory while
//!    it is hashed: one read, and nothing unpacked is used unless the bytes read were the
//!    resolved digest (a blob changed in the cache is refused, naming `mcp-j cache rm`).
//! 4. The entrypoint for this os/arch; its command resolved against `/pkg`, `-- ARGS`
//!    appended.
//!
//! What the package *requests* is narrowed by local policy later, with the other sandbox
//! options ([`crate::sandbox_opts::PackageRequest`]). Every refusal is a
//! [`super::package::Refused`] (exit 126) and every step leaves its audit event in
//! [`PackageEvents`].

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Result, anyhow};
use mcp_j_package::cache::RunDir;
use mcp_j_package::digest::HashingReader;
use mcp_j_package::unpack::{Durability, UnpackLimits, unpack_bundle_with};
use mcp_j_policy::certification::Decision;
use mcp_j_policy::package::{Arch, Entrypoint, Os, PackageManifest};
use mcp_j_policy::reference::PackageRef;
use mcp_j_policy::resolve::ResolveAnswer;

use super::package::{FetchOpts, PackageEvents, Refused, verify_event};
use crate::config::Config;

/// A registry package ready to run: verified, allowed, unpacked.
pub struct PreparedPackage {
    /// The reference as the user wrote it.
    pub reference: String,
    /// The registry's base URL.
    pub registry: String,
    pub answer: ResolveAnswer,
    pub manifest: PackageManifest,
    /// The program, as the jail finds it.
    pub program: String,
    /// The entrypoint's arguments, then the user's.
    pub args: Vec<String>,
    /// The status and certification verdict (allowed or warned; refusals never get here).
    pub verdict: Decision,
    /// Holds the unpacked bundle until the run ends.
    pub run_dir: RunDir,
}

impl PreparedPackage {
    /// The unpacked bundle on the host (the jail sees it at `/pkg`).
    pub fn dir(&self) -> std::path::PathBuf {
        self.run_dir.package_path()
    }
}

/// REF, or a program given without `--`: a message that says which was meant.
fn parse_reference(text: &str) -> Result<mcp_j_policy::reference::RegistryRef> {
    match mcp_j_policy::reference::parse(text) {
        Ok(PackageRef::Registry(r)) => Ok(r),
        Ok(PackageRef::Npm(_) | PackageRef::Pypi(_)) => Err(anyhow!(
            "`{text}`: npm and PyPI packages are not available yet; a registry package is ORG/NAME[@VERSION]"
        )),
        Err(e) if !text.contains('/') || text.starts_with('/') || text.starts_with('.') => Err(anyhow!(
            "`{text}` is not a package reference ({e}); to run a program, put it after `--`: \
             `mcp-j run [OPTIONS] -- {text} [ARGS]...`"
        )),
        Err(e) => Err(anyhow!("`{text}`: {e}")),
    }
}

/// Steps 1–4 of the module documentation.
pub fn prepare(
    reference_text: &str,
    user_args: &[String],
    config: &Config,
    opts: &FetchOpts,
    events: &mut PackageEvents,
) -> Result<PreparedPackage> {
    let reference = parse_reference(reference_text)?;
    let (url, registry) = super::package::registry_client(config)?;
    let cache = super::package::cache(config)?;
    let fetched = super::package::resolve_and_manifest(
        &reference,
        &url,
        &registry,
        &cache,
        super::package::offline_max_age(config),
        opts.no_cache,
        events,
    )?;
    let answer = fetched.answer;
    let manifest = fetched.manifest;

    let verdict = super::package::decision(config, &answer);
    if let Decision::Refused(reasons) = &verdict {
        let reasons: Vec<String> = reasons.iter().map(|r| r.message.clone()).collect();
        events.push(policy_event(
            &answer,
            mcp_j_audit::PolicyVerdict::Refused,
            reasons.clone(),
        ));
        return Err(Refused(reasons.join("; ")).into());
    }

    let bundle = &answer.resolved.bundle;
    super::package::refuse_oversized(&answer, opts, events)?;
    let downloaded = opts.no_cache || !cache.contains(&bundle.digest);
    if downloaded {
        super::package::store_bundle(&reference, &registry, &cache, &answer, opts, events)?;
    }
    let run_dir = cache
        .run_dir()
        .map_err(|e| anyhow!("cannot prepare a directory for the package: {e}"))?;
    unpack_verified(
        &cache,
        &answer,
        &run_dir.package_path(),
        opts.max_bundle_size(),
        downloaded,
        events,
    )?;

    let os = Os::Linux;
    let arch = Arch::from_rust(std::env::consts::ARCH).ok_or_else(|| {
        anyhow!(
            "registry packages name amd64 and arm64; this is {}",
            std::env::consts::ARCH
        )
    })?;
    let entrypoint = manifest
        .entrypoint_for(os, arch)
        .ok_or_else(|| Refused(no_entrypoint(&answer, &manifest, arch)))?;
    let program = program_in_package(&entrypoint.command, &run_dir.package_path());
    let mut args = entrypoint.args.clone();
    args.extend(user_args.iter().cloned());
    Ok(PreparedPackage {
        reference: reference_text.to_owned(),
        registry: url,
        answer,
        manifest,
        program,
        args,
        verdict,
        run_dir,
    })
}

/// A `policy.decision` event with nothing granted (a refusal before the narrowing).
pub fn policy_event(
    answer: &ResolveAnswer,
    decision: mcp_j_audit::PolicyVerdict,
    reasons: Vec<String>,
) -> mcp_j_audit::PolicyDecision {
    mcp_j_audit::PolicyDecision {
        package: answer.package.clone(),
        version: answer.resolved.version.clone(),
        decision,
        reasons,
        network_granted: Vec::new(),
        environment_granted: Vec::new(),
        notes: Vec::new(),
    }
}

/// Unpacks the cached bundle into `dest` while hashing what is read, then reads the rest
/// and compares: a digest other than the resolved one refuses the run (whatever was
/// unpacked is removed with the run directory), naming `mcp-j cache rm`. A bundle just
/// `downloaded` has its `package.verify` already; this second check adds one only when it
/// refuses.
fn unpack_verified(
    cache: &mcp_j_package::cache::Cache,
    answer: &ResolveAnswer,
    dest: &Path,
    max_bundle_size: u64,
    downloaded: bool,
    events: &mut PackageEvents,
) -> Result<()> {
    let bundle = &answer.resolved.bundle;
    let digest = &bundle.digest;
    let event =
        |size, refusal: Option<&str>| verify_event(answer, mcp_j_audit::Artifact::Bundle, digest, size, true, refusal);
    let file = cache
        .open_to_verify(digest, SystemTime::now())?
        .ok_or_else(|| anyhow!("the bundle {digest} left the cache while it was being used; run again"))?;
    let mut hashing = HashingReader::new(file, u64::MAX);
    let limits = UnpackLimits::with_max_total_bytes(max_bundle_size);
    let unpacked = unpack_bundle_with(&mut hashing, dest, &limits, Durability::Transient);
    // Whatever the unpacker made of them, the bytes must be the resolved ones.
    let drained = std::io::copy(&mut hashing, &mut std::io::sink());
    let hashed = hashing.finish();
    if drained.is_err() || hashed.digest != *digest {
        let why = format!(
            "{}: the cached bundle {digest} was changed on disk (it hashes to {}): it is not used; \
             remove it with `mcp-j cache rm {digest}` and run again",
            answer.package, hashed.digest
        );
        events.push(event(Some(hashed.size), Some(&why)));
        return Err(Refused(why).into());
    }
    if let Err(e) = unpacked {
        let why = format!(
            "{}@{}: its bundle cannot be unpacked safely: {e}",
            answer.package, answer.resolved.version
        );
        events.push(event(Some(hashed.size), Some(&why)));
        return Err(Refused(why).into());
    }
    if !downloaded {
        events.push(event(Some(hashed.size), None));
    }
    Ok(())
}

fn no_entrypoint(answer: &ResolveAnswer, manifest: &PackageManifest, arch: Arch) -> String {
    let offered: Vec<String> = manifest.entrypoints.iter().map(platform).collect();
    format!(
        "{}@{} has no entrypoint for linux/{} (it offers: {})",
        answer.package,
        answer.resolved.version,
        serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        if offered.is_empty() {
            "none".to_owned()
        } else {
            offered.join(", ")
        }
    )
}

fn platform(e: &Entrypoint) -> String {
    let name = |v: Option<serde_json::Value>| {
        v.and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "any".to_owned())
    };
    format!(
        "{}/{}",
        name(e.os.and_then(|o| serde_json::to_value(o).ok())),
        name(e.arch.and_then(|a| serde_json::to_value(a).ok()))
    )
}

/// The entrypoint's command as the jail finds it: an absolute path as it is; a path with a
/// `/` in it relative to `/pkg`; a bare name in the package when the package has a file of
/// that name at its root, else on the jail's `PATH` (`python3`, `node`).
fn program_in_package(command: &str, unpacked: &Path) -> String {
    let pkg = mcp_j_engine::spec::PACKAGE_DIR;
    if command.starts_with('/') {
        command.to_owned()
    } else if command.contains('/') {
        format!("{pkg}/{}", command.trim_start_matches("./"))
    } else if unpacked.join(command).is_file() {
        format!("{pkg}/{command}")
    } else {
        command.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entrypoint_command_is_found_in_the_package_or_on_path() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("server"), "x").unwrap_or_else(|e| panic!("{e}"));
        let rows = [
            ("/usr/bin/python3", "/usr/bin/python3"),
            ("bin/server", "/pkg/bin/server"),
            ("./server", "/pkg/server"),
            ("server", "/pkg/server"),
            ("node", "node"),
        ];
        for (command, expected) in rows {
            assert_eq!(program_in_package(command, dir.path()), expected, "{command}");
        }
    }

    #[test]
    fn a_program_without_dashes_is_told_how_to_run_it() {
        for text in ["python3", "/usr/bin/python3", "./server.py"] {
            let e = parse_reference(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("-- {text}")), "{text}: {e}");
        }
        assert!(parse_reference("acme/hello@1.0.0").is_ok());
    }
}
