//! Registry packages end to end: `mcp-j registry serve` on 127.0.0.1 (a port of its own),
//! `registry token create`, `push`, `pull`, `info`, `cache`, as root and as the
//! unprivileged user; a tampered cache blob and a revoked version are refused (126).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::{MCP_J, Run, cli_test, test_name};

/// A registry on 127.0.0.1 with its store in a temp dir; killed (by pid) when dropped.
pub struct Registry {
    child: Child,
    pub url: String,
    pub store: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(&[])
    }

    /// With more `registry serve` flags (`--default-visibility private`).
    pub fn start_with(flags: &[&str]) -> Registry {
        let store = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(MCP_J)
            .args(["registry", "serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .arg("--root")
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("registry serve: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "registry serve printed `{url}`");
        Registry { child, url, store }
    }

    pub fn token(&self, scope: &str) -> String {
        let out = Command::new(MCP_J)
            .args(["registry", "token", "create", "--scope", scope, "--root"])
            .arg(self.store.path())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Registry {
    /// An admin `PATCH` of the version `acme/NAME@VERSION` (`{"status": …}`,
    /// `{"certification_level": …}`), answered 200.
    pub fn patch_version(&self, name: &str, version: &str, body: &str) {
        let admin = self.token("admin");
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PATCH",
            ])
            .args([
                "-H",
                &format!("Authorization: Bearer {admin}"),
                "-H",
                "Content-Type: application/json",
            ])
            .args(["--data", body])
            .arg(format!("{}/v1/org/acme/mcps/{name}/versions/{version}", self.url))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "PATCH {body}");
    }

    /// Stop it (ours, by its pid): the registry is unreachable from now on.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `mcp-j --registry URL --cache-dir CACHE ARGS…` as the runner, with `token` in
/// MCP_J_REGISTRY_TOKEN; (exit code, stdout, stderr).
pub fn mcpj(run: &Run, registry: &Registry, cache: &Path, token: &str, args: &[&str]) -> (i32, String, String) {
    mcpj_with(run, registry, cache, token, &[], args)
}

/// [`mcpj`] with more variables in mcp-j's environment (configuration, `MCP_J_*`).
pub fn mcpj_with(
    run: &Run,
    registry: &Registry,
    cache: &Path,
    token: &str,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = run.runner.command(MCP_J);
    cmd.args(["--registry", &registry.url, "--cache-dir"])
        .arg(cache)
        .args(args)
        .env("MCP_J_REGISTRY_TOKEN", token)
        .envs(env.iter().copied());
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn package_dir(run: &Run, version: &str) -> tempfile::TempDir {
    let dir = run.tempdir();
    let manifest = format!(
        r#"{{"schema_version":"1.0","package":{{"id":"acme/hello","version":"{version}"}},
        "transport":{{"type":"stdio"}},
        "entrypoints":[{{"os":"linux","arch":"amd64","command":"/usr/bin/python3","args":["/pkg/server.py"]}}],
        "permissions_requested":{{"network":["api.example.com"],"environment":["HELLO_KEY"],"subprocess":false,"filesystem":[]}},
        "limits_recommended":{{"max_memory":"256M"}}}}"#
    );
    run.write_file(&dir.path().join("manifest.json"), manifest.as_bytes(), 0o644);
    run.write_file(&dir.path().join("server.py"), b"print('hello')\n", 0o755);
    dir
}

#[test]
fn push_pull_info_and_the_cache() {
    cli_test(test_name!(), |run| {
        let registry = Registry::start();
        let push_token = registry.token("push");
        let cache = run.tempdir();
        let version = format!("1.0.{}", u32::from(!run.runner.is_root()));
        let dir = package_dir(run, &version);
        let dir_path = dir.path().display().to_string();

        let (code, _, err) = mcpj(run, &registry, cache.path(), &push_token, &["push", &dir_path]);
        assert_eq!(code, 0, "push: {err}");
        assert!(err.contains(&format!("pushed acme/hello@{version}")), "{err}");
        // The same content again is fine; a version is immutable otherwise.
        let (code, _, err) = mcpj(run, &registry, cache.path(), &push_token, &["push", &dir_path]);
        assert_eq!(code, 0, "re-push: {err}");
        run.write_file(&dir.path().join("server.py"), b"print('changed')\n", 0o755);
        let (code, _, err) = mcpj(run, &registry, cache.path(), &push_token, &["push", &dir_path]);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains("409"), "{err}");

        let reference = format!("acme/hello@{version}");
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", &reference]);
        assert_eq!(code, 0, "pull: {err}");
        assert!(err.contains("verified"), "{err}");
        assert!(!err.contains('\r'), "no progress bar in a pipe: {err:?}");
        let (code, out, err) = mcpj(run, &registry, cache.path(), "", &["--json", "info", &reference]);
        assert_eq!(code, 0, "info: {err}");
        let info: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(info["version"], version.as_str());
        assert_eq!(info["status"], "published");
        assert_eq!(info["bundle"]["cached"], true);
        assert_eq!(info["permissions_requested"]["environment"][0], "HELLO_KEY");
        assert_eq!(info["policy"]["decision"], "allowed");

        // A strict certification policy refuses the level-0 package (126), naming the line.
        let strict = [("MCP_J_MIN_CERT_LEVEL", "2"), ("MCP_J_CERT_LEVEL_MODE", "strict")];
        let (code, _, err) = mcpj_with(run, &registry, cache.path(), "", &strict, &["pull", &reference]);
        assert_eq!(code, 126, "{err}");
        assert!(err.contains("min_cert_level"), "{err}");
        let warn = [("MCP_J_MIN_CERT_LEVEL", "2"), ("MCP_J_CERT_LEVEL_MODE", "warn")];
        let (code, _, err) = mcpj_with(run, &registry, cache.path(), "", &warn, &["pull", &reference]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("warning:"), "{err}");
        let (code, out, _) = mcpj_with(
            run,
            &registry,
            cache.path(),
            "",
            &strict,
            &["--json", "info", &reference],
        );
        assert_eq!(code, 0);
        let refused: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(refused["policy"]["decision"], "refused", "{out}");
        // `info` also says what `run` would make of the request: here its network is refused.
        let no_net = [("MCP_J_ALLOW_PACKAGE_NETWORK", "false")];
        let (code, out, _) = mcpj_with(
            run,
            &registry,
            cache.path(),
            "",
            &no_net,
            &["--json", "info", &reference],
        );
        assert_eq!(code, 0);
        let refused: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(refused["policy"]["decision"], "refused", "{out}");
        assert!(out.contains("policy.allow_package_network"), "{out}");
        let origins = [("MCP_J_ALLOWED_ORIGINS", "official,verified")];
        let (code, _, err) = mcpj_with(run, &registry, cache.path(), "", &origins, &["pull", &reference]);
        assert_eq!(code, 126, "{err}");
        assert!(err.contains("allowed_origins"), "{err}");

        let (code, out, _) = mcpj(run, &registry, cache.path(), "", &["--json", "cache", "ls"]);
        assert_eq!(code, 0);
        let blobs: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let kinds: Vec<&str> = blobs
            .as_array()
            .map(|a| a.iter().filter_map(|b| b["kind"].as_str()).collect())
            .unwrap_or_default();
        assert!(kinds.contains(&"manifest") && kinds.contains(&"bundle"), "{out}");

        // A tampered blob in the cache: refused, naming the fix; `cache rm` then a pull fetches again.
        let bundle = info["bundle"]["digest"].as_str().unwrap_or_default().to_owned();
        let blob = cache
            .path()
            .join("v1/blobs/sha256")
            .join(bundle.trim_start_matches("sha256:"));
        let _ = std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        std::fs::write(&blob, b"not the bundle").unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", &reference]);
        assert_eq!(code, 126, "{err}");
        assert!(err.contains("cache rm"), "{err}");
        let (code, _, _) = mcpj(run, &registry, cache.path(), "", &["cache", "rm", &bundle]);
        assert_eq!(code, 0);
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", &reference]);
        assert_eq!(code, 0, "{err}");
        // --no-cache fetches again over whatever the cache holds, tampered or not.
        let _ = std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        std::fs::write(&blob, b"tampered again").unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", "--no-cache", &reference]);
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("already cached"), "{err}");
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", &reference]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("already cached"), "{err}");

        // Revoked: refused (126).
        registry.patch_version("hello", &version, r#"{"status":"revoked"}"#);
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", &reference]);
        assert_eq!(code, 126, "{err}");
        assert!(err.contains("revoked"), "{err}");
    });
}

#[test]
fn a_pulled_package_survives_gc_and_the_registry_going_away() {
    cli_test(test_name!(), |run| {
        let mut registry = Registry::start();
        let push_token = registry.token("push");
        let cache = run.tempdir();
        let dir = package_dir(run, "2.0.0");
        let dir_path = dir.path().display().to_string();
        let (code, _, err) = mcpj(run, &registry, cache.path(), &push_token, &["push", &dir_path]);
        assert_eq!(code, 0, "push: {err}");
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", "acme/hello@2.0.0"]);
        assert_eq!(code, 0, "pull: {err}");
        // gc keeps what a cached resolve answer names.
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["cache", "gc"]);
        assert_eq!(code, 0, "{err}");
        let (_, out, _) = mcpj(run, &registry, cache.path(), "", &["--json", "cache", "ls"]);
        let blobs: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(blobs.as_array().map(Vec::len), Some(2), "{out}");

        // The registry gone: the cached answer stands in, and says so.
        registry.stop();
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", "acme/hello@2.0.0"]);
        assert_eq!(code, 0, "offline pull: {err}");
        assert!(err.contains("offline"), "{err}");
        let (code, out, err) = mcpj(
            run,
            &registry,
            cache.path(),
            "",
            &["--json", "info", "acme/hello@2.0.0"],
        );
        assert_eq!(code, 0, "offline info: {err}");
        assert!(out.contains(r#""version": "2.0.0""#), "{out}");
        // An answer older than policy.offline_max_age does not stand in.
        let short = [("MCP_J_OFFLINE_MAX_AGE", "1ms")];
        let (code, _, err) = mcpj_with(run, &registry, cache.path(), "", &short, &["pull", "acme/hello@2.0.0"]);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains("policy.offline_max_age"), "{err}");
        // A version never resolved has nothing to go offline with: 125, naming why.
        let (code, _, err) = mcpj(run, &registry, cache.path(), "", &["pull", "acme/hello@9.9.9"]);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains("nothing to go offline with"), "{err}");
    });
}
