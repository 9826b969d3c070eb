//! What an installer left, read into an [`InstallRecord`]: the package and version it
//! installed, every package it resolved, the registry's own integrity values checked, the
//! programs the package provides, and the tree's digest.
//!
//! - npm: `package-lock.json` (lockfile v2/v3 `packages`): every installed package must carry
//!   the registry's `integrity` (npm checked the tarball against it while installing); the
//!   package's `bin` from its `package.json`.
//! - pip: the `--report` JSON: every installed distribution must carry the index's
//!   `sha256` (`download_info.archive_info.hashes`); console scripts from the
//!   distribution's `entry_points.txt`.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use mcp_j_package::install::{Ecosystem, InstallRecord, tree_digest};
use serde_json::Value;

use super::install::{InstallRef, Target};
use super::package::Refused;

/// The record of the install in `tree` (installed from `source`).
pub fn record_of(reference: &InstallRef, tree: &Path, source: &str) -> Result<InstallRecord> {
    let (lock_file, read): (&str, LockReader) = match reference.ecosystem {
        Ecosystem::Npm => ("package-lock.json", read_npm),
        Ecosystem::Pypi => ("pip-report.json", read_pip),
    };
    let lock_path = tree.join(lock_file);
    let bytes =
        std::fs::read(&lock_path).with_context(|| format!("the installer left no `{}`", lock_path.display()))?;
    let lock: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("`{}` is not JSON", lock_path.display()))?;
    let installed = read(&lock, reference, tree)?;
    let archive_digest = match &reference.target {
        Target::Archive { digest, .. } => Some(digest.clone()),
        Target::Package { .. } => None,
    };
    Ok(InstallRecord {
        ecosystem: reference.ecosystem,
        name: installed.name,
        version: installed.version,
        source: match &reference.target {
            Target::Archive { path, .. } => path.display().to_string(),
            Target::Package { .. } => source.to_owned(),
        },
        archive_digest,
        lock_digest: mcp_j_package::digest::digest_bytes(&bytes),
        resolved: installed.resolved,
        tree_digest: tree_digest(tree).map_err(|e| anyhow!("{e}"))?,
        bins: installed.bins,
        installed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    })
}

/// Reads one installer's lock.
type LockReader = fn(&Value, &InstallRef, &Path) -> Result<Installed>;

/// `v[key]` when it is a string.
fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// What a lock says was installed.
#[derive(Debug, PartialEq, Eq)]
struct Installed {
    name: String,
    version: String,
    resolved: Vec<String>,
    bins: Vec<(String, String)>,
}

/// npm's lockfile: `packages` maps `node_modules/…/NAME` to `{version, resolved, integrity}`.
fn read_npm(lock: &Value, reference: &InstallRef, tree: &Path) -> Result<Installed> {
    let packages = lock
        .get("packages")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("package-lock.json has no `packages` (npm 7 or later writes it)"))?;
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for (path, entry) in packages {
        if path.is_empty() || entry.get("link").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let name = path.rsplit_once("node_modules/").map_or(path.as_str(), |(_, n)| n);
        let version = str_of(entry, "version").unwrap_or("?");
        resolved.push(format!("{name}@{version}"));
        if str_of(entry, "integrity").is_none() {
            missing.push(format!("{name}@{version}"));
        }
    }
    if !missing.is_empty() {
        return Err(Refused(format!(
            "npm recorded no registry integrity value for {}: the install is not used",
            missing.join(", ")
        ))
        .into());
    }
    resolved.sort();
    // The package asked for: by name, or (an archive) the root's only dependency.
    let name = match &reference.target {
        Target::Package { name, .. } => name.clone(),
        Target::Archive { .. } => {
            let deps = packages
                .get("")
                .and_then(|root| root.get("dependencies"))
                .and_then(Value::as_object)
                .ok_or_else(|| anyhow!("package-lock.json names no installed package"))?;
            deps.keys()
                .next()
                .cloned()
                .ok_or_else(|| anyhow!("package-lock.json names no installed package"))?
        }
    };
    let entry = packages
        .get(&format!("node_modules/{name}"))
        .ok_or_else(|| anyhow!("package-lock.json does not list {name}"))?;
    let version = str_of(entry, "version")
        .ok_or_else(|| anyhow!("package-lock.json gives {name} no version"))?
        .to_owned();
    let manifest_path = tree.join("node_modules").join(&name).join("package.json");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(&manifest_path).with_context(|| format!("cannot read `{}`", manifest_path.display()))?,
    )
    .with_context(|| format!("`{}` is not JSON", manifest_path.display()))?;
    let bins = npm_bins(&name, manifest.get("bin"));
    Ok(Installed {
        name,
        version,
        resolved,
        bins,
    })
}

/// A package.json `bin`: a string (the program is named after the package, without its
/// scope) or a map of names to paths; paths relative to the tree.
fn npm_bins(name: &str, bin: Option<&Value>) -> Vec<(String, String)> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let in_package = |path: &str| format!("node_modules/{name}/{}", path.trim_start_matches("./"));
    let mut bins: Vec<(String, String)> = match bin {
        Some(Value::String(path)) => vec![(base.to_owned(), in_package(path))],
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(n, p)| p.as_str().map(|p| (n.clone(), in_package(p))))
            .collect(),
        _ => Vec::new(),
    };
    // A path that leaves the package is not one of its programs.
    bins.retain(|(_, p)| !p.split('/').any(|c| c == ".."));
    bins.sort();
    bins
}

/// pip's `--report`: `install` lists each distribution with `metadata` and `download_info`.
fn read_pip(report: &Value, reference: &InstallRef, tree: &Path) -> Result<Installed> {
    let items = report
        .get("install")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("pip's report has no `install` list"))?;
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    let mut requested = None;
    for item in items {
        let meta = item.get("metadata").unwrap_or(&Value::Null);
        let (Some(name), Some(version)) = (str_of(meta, "name"), str_of(meta, "version")) else {
            return Err(anyhow!("pip's report lists a distribution without a name or version"));
        };
        resolved.push(format!("{name}=={version}"));
        let info = item.get("download_info").unwrap_or(&Value::Null);
        let local = str_of(info, "url").is_some_and(|u| u.starts_with("file:"));
        let sha256 = info
            .get("archive_info")
            .and_then(|a| a.get("hashes"))
            .and_then(|h| h.get("sha256"))
            .and_then(Value::as_str);
        if sha256.is_none() && !local {
            missing.push(format!("{name}=={version}"));
        }
        if item.get("requested").and_then(Value::as_bool) == Some(true) {
            requested = Some((name.to_owned(), version.to_owned()));
        }
    }
    if !missing.is_empty() {
        return Err(Refused(format!(
            "the index gave no sha256 for {}: the install is not used",
            missing.join(", ")
        ))
        .into());
    }
    resolved.sort();
    let (name, version) = match (requested, &reference.target) {
        (Some(found), _) => found,
        (None, _) => return Err(anyhow!("pip's report marks no distribution as the one requested")),
    };
    let bins = pip_console_scripts(tree, &name, &version)?;
    Ok(Installed {
        name,
        version,
        resolved,
        bins,
    })
}

/// The console scripts of distribution `name` `version` in the tree's venv: `[console_scripts]`
/// of its `entry_points.txt`; paths `venv/bin/NAME`.
fn pip_console_scripts(tree: &Path, name: &str, version: &str) -> Result<Vec<(String, String)>> {
    let lib = tree.join("venv/lib");
    let normalized = name.replace(['-', '.'], "_").to_lowercase();
    let mut scripts = Vec::new();
    for python in std::fs::read_dir(&lib).with_context(|| format!("cannot list `{}`", lib.display()))? {
        let site = python?.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().to_lowercase();
            if file_name == format!("{normalized}-{version}.dist-info").to_lowercase() {
                let text = std::fs::read_to_string(entry.path().join("entry_points.txt")).unwrap_or_default();
                scripts.extend(console_scripts(&text).into_iter().map(|n| {
                    let path = format!("venv/bin/{n}");
                    (n, path)
                }));
            }
        }
    }
    scripts.sort();
    Ok(scripts)
}

/// The names under `[console_scripts]` in an `entry_points.txt`.
fn console_scripts(text: &str) -> Vec<String> {
    let mut in_section = false;
    let mut names = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
        } else if in_section && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.contains('/') {
                names.push(name.to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npm_ref(target: Target) -> InstallRef {
        InstallRef {
            ecosystem: Ecosystem::Npm,
            text: "npm:x".into(),
            target,
        }
    }

    #[test]
    fn npm_bins_are_named_and_kept_inside_the_package() {
        let one = serde_json::json!("./dist/index.js");
        assert_eq!(
            npm_bins("@scope/server", Some(&one)),
            [(
                "server".to_owned(),
                "node_modules/@scope/server/dist/index.js".to_owned()
            )]
        );
        let map = serde_json::json!({"a": "bin/a.js", "evil": "../../x.js"});
        assert_eq!(
            npm_bins("pkg", Some(&map)),
            [("a".to_owned(), "node_modules/pkg/bin/a.js".to_owned())]
        );
        assert!(npm_bins("pkg", None).is_empty());
    }

    #[test]
    fn an_npm_lock_without_integrity_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pkg = dir.path().join("node_modules/pkg");
        std::fs::create_dir_all(&pkg).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(pkg.join("package.json"), r#"{"name":"pkg","bin":"cli.js"}"#).unwrap_or_else(|e| panic!("{e}"));
        let target = Target::Package {
            name: "pkg".into(),
            version: None,
        };
        let good = serde_json::json!({"packages": {
            "": {"dependencies": {"pkg": "^1"}},
            "node_modules/pkg": {"version": "1.2.3", "resolved": "https://r/pkg.tgz", "integrity": "sha512-x"},
            "node_modules/dep": {"version": "0.1.0", "resolved": "https://r/dep.tgz", "integrity": "sha512-y"}
        }});
        let installed = read_npm(&good, &npm_ref(target.clone()), dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed.version, "1.2.3");
        assert_eq!(installed.resolved, ["dep@0.1.0", "pkg@1.2.3"]);
        assert_eq!(
            installed.bins,
            [("pkg".to_owned(), "node_modules/pkg/cli.js".to_owned())]
        );

        let mut bad = good.clone();
        bad["packages"]["node_modules/dep"]
            .as_object_mut()
            .map(|o| o.remove("integrity"));
        let err = read_npm(&bad, &npm_ref(target), dir.path())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(err.downcast_ref::<Refused>().is_some(), "{err:#}");
        assert!(format!("{err:#}").contains("dep@0.1.0"), "{err:#}");
    }

    #[test]
    fn pip_reports_need_the_index_hash_and_console_scripts_are_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let info = dir
            .path()
            .join("venv/lib/python3.11/site-packages/mcp_server_time-1.0.dist-info");
        std::fs::create_dir_all(&info).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            info.join("entry_points.txt"),
            "[console_scripts]\nmcp-server-time = mcp_server_time:main\n\n[other]\nx = y\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let report = serde_json::json!({"install": [
            {"requested": true, "metadata": {"name": "mcp-server-time", "version": "1.0"},
             "download_info": {"url": "https://files/x.whl", "archive_info": {"hashes": {"sha256": "ab"}}}},
            {"metadata": {"name": "tzdata", "version": "2026.1"},
             "download_info": {"url": "https://files/t.whl", "archive_info": {"hashes": {"sha256": "cd"}}}}
        ]});
        let reference = InstallRef {
            ecosystem: Ecosystem::Pypi,
            text: "pypi:mcp-server-time".into(),
            target: Target::Package {
                name: "mcp-server-time".into(),
                version: None,
            },
        };
        let installed = read_pip(&report, &reference, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(installed.version, "1.0");
        assert_eq!(
            installed.bins,
            [("mcp-server-time".to_owned(), "venv/bin/mcp-server-time".to_owned())]
        );
        let mut bad = report.clone();
        bad["install"][1]["download_info"]["archive_info"] = serde_json::json!({});
        let err = read_pip(&bad, &reference, dir.path())
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(format!("{err:#}").contains("tzdata==2026.1"), "{err:#}");
    }
}
