//! `mcp-j run ORG/NAME@VERSION` end to end: a package pushed to `registry serve` on
//! 127.0.0.1 and run by version, `latest` and digest, driven by the official Python SDK
//! client; every refusal (a tampered blob in the cache or in the store, revoked, quarantined,
//! a strict certification policy, a network request local policy forbids) exits 126 before
//! anything ran: the package's server writes a marker on start, and it is absent. As root
//! and as the unprivileged user.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{MCP_J, Outcome, Run, run_bounded, sandbox_test, test_name};
use crate::packages::{Registry, mcpj};

const BOUND: Duration = Duration::from_secs(60);

/// The package: `fixtures/package_server.py` as `server.py`, a VERSION file, and a manifest
/// whose requests the tests look for.
fn package_dir(run: &Run, name: &str, version: &str, network: &str) -> tempfile::TempDir {
    let dir = run.tempdir();
    let manifest = format!(
        r#"{{"schema_version":"1.0","package":{{"id":"acme/{name}","version":"{version}"}},
        "transport":{{"type":"stdio"}},
        "entrypoints":[{{"os":"linux","arch":"amd64","command":"/usr/bin/python3","args":["/pkg/server.py"]}},
                       {{"os":"linux","arch":"arm64","command":"/usr/bin/python3","args":["/pkg/server.py"]}}],
        "permissions_requested":{{"network":[{network}],"environment":["HELLO_KEY"],"subprocess":false,"filesystem":[]}},
        "limits_recommended":{{"max_memory":"256M","max_pids":40}}}}"#
    );
    let server = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/package_server.py"))
        .unwrap_or_else(|e| panic!("the fixture: {e}"));
    run.write_file(&dir.path().join("manifest.json"), manifest.as_bytes(), 0o644);
    run.write_file(&dir.path().join("server.py"), &server, 0o755);
    run.write_file(&dir.path().join("VERSION"), version.as_bytes(), 0o644);
    dir
}

fn push(run: &Run, registry: &Registry, dir: &Path) {
    let token = registry.token("push");
    let scratch = run.tempdir();
    let path = dir.display().to_string();
    let (code, _, err) = mcpj(run, registry, scratch.path(), &token, &["push", &path]);
    assert_eq!(code, 0, "push: {err}");
}

/// `mcp-j --registry URL --cache-dir CACHE run --workdir WORKDIR ARGS…` as the runner, its
/// stdin the file `requests` (or empty), bounded.
fn run_package(
    run: &Run,
    registry: &Registry,
    cache: &Path,
    workdir: &Path,
    env: &[(&str, &str)],
    requests: Option<&Path>,
    args: &[&str],
) -> Outcome {
    let mut cmd = run.runner.command("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" < "${REQUESTS:-/dev/null}""#)
        .arg(MCP_J)
        .args(["--registry", &registry.url, "--cache-dir"])
        .arg(cache)
        .args(["run", "--workdir"])
        .arg(workdir)
        .args(args)
        .envs(env.iter().copied());
    if let Some(requests) = requests {
        cmd.env("REQUESTS", requests);
    }
    run_bounded(cmd, BOUND, "mcp-j run REF").unwrap_or_else(|e| panic!("{e}"))
}

/// Nothing of the package ran: its marker is not in the workdir.
fn assert_nothing_ran(workdir: &Path, out: &Outcome) {
    assert!(
        !workdir.join("started").exists(),
        "the server started although the run was refused\n{}",
        out.context()
    );
}

/// A file of requests that initialize the server and call `hello` (for a run without a
/// client: the answers are on stdout).
fn hello_requests(run: &Run) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = run.tempdir();
    let path = dir.path().join("requests.jsonl");
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hello","arguments":{}}}"#,
    ];
    run.write_file(&path, format!("{}\n", lines.join("\n")).as_bytes(), 0o644);
    (dir, path)
}

/// The `hello` tool's answer, from the SDK client's summary.
fn hello_of(out: &Outcome) -> Value {
    let summary: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the client's summary: {e}\n{}", out.context()));
    assert_eq!(summary["ok"], true, "{}", out.context());
    let text = summary["call"]["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the hello answer: {e}\n{}", out.context()))
}

#[test]
fn a_package_runs_by_version_latest_and_digest_under_the_sdk_client() {
    let test = test_name!();
    let Some(deps) = crate::real_servers::deps(test) else {
        return;
    };
    sandbox_test(test, &[], |run| {
        let mut registry = Registry::start();
        for version in ["1.0.0", "1.1.0"] {
            push(run, &registry, package_dir(run, "hello", version, "").path());
        }
        let cache = run.tempdir();
        let logs = run.tempdir();
        let url = registry.url.clone();
        let client = |workdir: Option<&Path>, audit: &Path, reference: &str, extra: &[&str]| {
            let mut cmd = run.runner.command(&deps.python);
            cmd.arg("-B")
                .arg(deps.clients.join("handshake_client.py"))
                .args(["--call", "hello", "--", MCP_J, "--registry", &url, "--cache-dir"])
                .arg(cache.path())
                .args(["run", "--audit-log"])
                .arg(audit);
            if let Some(dir) = workdir {
                cmd.arg("--workdir").arg(dir);
            }
            cmd.arg(reference);
            if !extra.is_empty() {
                cmd.arg("--").args(extra);
            }
            run_bounded(cmd, BOUND, "the SDK client").unwrap_or_else(|e| panic!("{e}"))
        };

        // By version, with arguments for the package and a workdir of our own.
        let workdir = run.tempdir();
        let audit = logs.path().join("by-version.jsonl");
        let out = client(Some(workdir.path()), &audit, "acme/hello@1.0.0", &["--extra", "x"]);
        let hello = hello_of(&out);
        assert_eq!(hello["version"], "1.0.0", "{hello}");
        assert_eq!(hello["argv"], serde_json::json!(["--extra", "x"]), "ARGS are appended");
        assert_eq!(hello["file"], "/pkg/server.py");
        assert_eq!(hello["pkg_writable"], false, "the package is read-only to its server");
        assert_eq!(hello["cwd"], workdir.path().display().to_string());
        assert!(workdir.path().join("started").exists(), "{}", out.context());

        // The story in the audit log: resolve, verify, decide, then the session.
        let text = std::fs::read_to_string(&audit).unwrap_or_else(|e| panic!("{}: {e}", audit.display()));
        let events: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let types: Vec<&str> = events.iter().filter_map(|e| e["event_type"].as_str()).collect();
        assert_eq!(
            types[..5],
            [
                "package.resolve",
                "package.verify",
                "package.verify",
                "policy.decision",
                "session.start"
            ],
            "{text}"
        );
        assert_eq!(events[1]["artifact"], "manifest");
        assert_eq!(events[2]["artifact"], "bundle");
        assert_eq!(events[2]["result"], "verified");
        assert_eq!(events[3]["decision"], "allowed");
        let source = &events[4]["source"];
        assert_eq!(source["kind"], "registry", "{source}");
        assert_eq!(source["package"], "acme/hello");
        assert_eq!(source["version"], "1.0.0");
        assert_eq!(source["registry"], registry.url.as_str());
        assert_eq!(source["digests"]["bundle"], events[0]["bundle_digest"]);
        assert_eq!(source["digests"]["manifest"], events[0]["manifest_digest"]);
        // The manifest's recommendations tightened the defaults; subprocess: false holds.
        assert_eq!(events[4]["limits"]["memory_bytes"], 256 << 20);
        assert_eq!(events[4]["limits"]["pids"], 40);
        assert_eq!(events[4]["limits"]["no_subprocess"], true);
        let ids: Vec<&str> = events.iter().filter_map(|e| e["session_id"].as_str()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one session id: {ids:?}");
        assert_eq!(types.last(), Some(&"session.end"));

        // `latest` is the newest version; the working directory is then the package.
        let out = client(None, &logs.path().join("latest.jsonl"), "acme/hello@latest", &[]);
        let hello = hello_of(&out);
        assert_eq!(hello["version"], "1.1.0", "{hello}");
        assert_eq!(hello["cwd"], "/pkg");

        // By digest: the manifest's.
        let (code, info, err) = mcpj(
            run,
            &registry,
            cache.path(),
            "",
            &["--json", "info", "acme/hello@1.0.0"],
        );
        assert_eq!(code, 0, "{err}");
        let info: Value = serde_json::from_str(&info).unwrap_or_else(|e| panic!("{e}: {info}"));
        let digest = info["manifest"]["digest"].as_str().unwrap_or_default().to_owned();
        let by_digest = format!("acme/hello@{digest}");
        let out = client(None, &logs.path().join("digest.jsonl"), &by_digest, &[]);
        assert_eq!(hello_of(&out)["version"], "1.0.0");

        // A cache that knows both versions by number only, for an offline `latest` below.
        let by_number = run.tempdir();
        for reference in ["acme/hello@1.0.0", "acme/hello@1.1.0"] {
            let (code, _, err) = mcpj(run, &registry, by_number.path(), "", &["pull", reference]);
            assert_eq!(code, 0, "{err}");
        }

        // Offline: the registry is gone, the cached answer stands in, and the run says so.
        registry.stop();
        let out = client(None, &logs.path().join("offline.jsonl"), "acme/hello@1.0.0", &[]);
        assert_eq!(hello_of(&out)["version"], "1.0.0");
        assert!(out.stderr.contains("offline"), "{}", out.context());
        // Offline `latest` with no answer for `latest` cached: the newest cached version.
        let (_requests_dir, requests) = hello_requests(run);
        let workdir = run.tempdir();
        let out = run_package(
            run,
            &registry,
            by_number.path(),
            workdir.path(),
            &[],
            Some(&requests),
            &["acme/hello@latest"],
        );
        assert_eq!(out.code, Some(0), "{}", out.context());
        assert!(out.stdout.contains(r#"\"version\": \"1.1.0\""#), "{}", out.context());
        assert!(
            out.stderr.contains("`latest` is taken to be 1.1.0"),
            "{}",
            out.context()
        );
    });
}

#[test]
fn refused_packages_exit_126_and_nothing_runs() {
    sandbox_test(test_name!(), &[], |run| {
        let registry = Registry::start();
        push(run, &registry, package_dir(run, "hello", "1.0.0", "").path());
        push(
            run,
            &registry,
            package_dir(run, "net", "1.0.0", r#""api.example.com""#).path(),
        );
        let cache = run.tempdir();
        let fresh_workdir = || run.tempdir();

        // It runs, and gets the variable it asked for when the host has it.
        let (_requests_dir, requests) = hello_requests(run);
        let workdir = fresh_workdir();
        let env = [("HELLO_KEY", "hello-key-value-1234")];
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &env,
            Some(&requests),
            &["acme/hello@1.0.0"],
        );
        assert_eq!(out.code, Some(0), "{}", out.context());
        assert!(out.stdout.contains(r#"\"hello_key\": true"#), "{}", out.context());
        assert!(workdir.path().join("started").exists());

        // A bundle over --max-bundle-size: refused, naming the flag, cached or not.
        let workdir = fresh_workdir();
        let small = ["--max-bundle-size", "100", "acme/hello@1.0.0"];
        let out = run_package(run, &registry, cache.path(), workdir.path(), &[], None, &small);
        assert_eq!(out.code, Some(126), "{}", out.context());
        assert!(out.stderr.contains("--max-bundle-size"), "{}", out.context());
        assert_nothing_ran(workdir.path(), &out);

        // A tampered bundle in the cache: refused, naming the fix; nothing ran.
        let (_, info, _) = mcpj(
            run,
            &registry,
            cache.path(),
            "",
            &["--json", "info", "acme/hello@1.0.0"],
        );
        let info: Value = serde_json::from_str(&info).unwrap_or_else(|e| panic!("{e}: {info}"));
        let bundle = info["bundle"]["digest"].as_str().unwrap_or_default().to_owned();
        let hex = bundle.trim_start_matches("sha256:").to_owned();
        let blob = cache.path().join("v1/blobs/sha256").join(&hex);
        let original = std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
        let mut tampered = original.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let _ = std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        std::fs::write(&blob, &tampered).unwrap_or_else(|e| panic!("{e}"));
        let workdir = fresh_workdir();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &[],
            None,
            &["acme/hello@1.0.0"],
        );
        assert_eq!(out.code, Some(126), "{}", out.context());
        assert!(
            out.stderr.contains(&format!("mcp-j cache rm {bundle}")),
            "{}",
            out.context()
        );
        assert_nothing_ran(workdir.path(), &out);
        let (code, _, _) = mcpj(run, &registry, cache.path(), "", &["cache", "rm", &bundle]);
        assert_eq!(code, 0);

        // Deprecated runs, with a warning.
        registry.patch_version("hello", "1.0.0", r#"{"status":"deprecated"}"#);
        let workdir = fresh_workdir();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &[],
            None,
            &["acme/hello@1.0.0"],
        );
        assert_eq!(out.code, Some(0), "{}", out.context());
        assert!(out.stderr.contains("deprecated"), "{}", out.context());
        assert!(workdir.path().join("started").exists());

        // A strict certification policy refuses the level-0 package, naming the line.
        let strict = [("MCP_J_MIN_CERT_LEVEL", "1"), ("MCP_J_CERT_LEVEL_MODE", "strict")];
        let workdir = fresh_workdir();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &strict,
            None,
            &["acme/hello@1.0.0"],
        );
        assert_eq!(out.code, Some(126), "{}", out.context());
        assert!(out.stderr.contains("min_cert_level"), "{}", out.context());
        assert_nothing_ran(workdir.path(), &out);

        // Revoked and quarantined: refused, even with the package in the cache.
        for status in ["quarantined", "revoked"] {
            registry.patch_version("hello", "1.0.0", &format!(r#"{{"status":"{status}"}}"#));
            let workdir = fresh_workdir();
            let audit = workdir.path().join("audit.jsonl");
            let audit_flag = audit.display().to_string();
            let out = run_package(
                run,
                &registry,
                cache.path(),
                workdir.path(),
                &[],
                None,
                &["--audit-log", &audit_flag, "acme/hello@1.0.0"],
            );
            assert_eq!(out.code, Some(126), "{status}: {}", out.context());
            assert!(out.stderr.contains(status), "{}", out.context());
            assert_nothing_ran(workdir.path(), &out);
            // The refusal is on record, without a session.
            let text = std::fs::read_to_string(&audit).unwrap_or_default();
            assert!(text.contains(r#""event_type":"policy.decision""#), "{text}");
            assert!(text.contains(r#""decision":"refused""#), "{text}");
            assert!(!text.contains("session.start"), "{text}");
        }

        // A package asking for network where local policy forbids packages to: refused,
        // naming the line; allowed, the destination is its grant.
        let no_net = [("MCP_J_ALLOW_PACKAGE_NETWORK", "false")];
        let workdir = fresh_workdir();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &no_net,
            None,
            &["acme/net@1.0.0"],
        );
        assert_eq!(out.code, Some(126), "{}", out.context());
        assert!(out.stderr.contains("policy.allow_package_network"), "{}", out.context());
        assert_nothing_ran(workdir.path(), &out);
        let workdir = fresh_workdir();
        let audit = workdir.path().join("audit.jsonl");
        let audit_flag = audit.display().to_string();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &[],
            None,
            &["--audit-log", &audit_flag, "acme/net@1.0.0"],
        );
        assert_eq!(out.code, Some(0), "{}", out.context());
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        assert!(text.contains(r#""network_granted":["api.example.com"]"#), "{text}");

        // A tampered bundle in the registry's store, into a fresh cache: refused, not kept.
        let (_, info, _) = mcpj(run, &registry, cache.path(), "", &["--json", "info", "acme/net@1.0.0"]);
        let info: Value = serde_json::from_str(&info).unwrap_or_else(|e| panic!("{e}: {info}"));
        let net_hex = info["bundle"]["digest"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:");
        let net_bundle = registry.store.path().join("blobs/sha256").join(net_hex);
        let mut bytes = std::fs::read(&net_bundle).unwrap_or_else(|e| panic!("{e}"));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let _ = std::fs::set_permissions(&net_bundle, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        std::fs::write(&net_bundle, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let fresh_cache = run.tempdir();
        let workdir = fresh_workdir();
        let out = run_package(
            run,
            &registry,
            fresh_cache.path(),
            workdir.path(),
            &[],
            None,
            &["acme/net@1.0.0"],
        );
        assert_eq!(out.code, Some(126), "{}", out.context());
        assert_nothing_ran(workdir.path(), &out);
        let (_, listed, _) = mcpj(run, &registry, fresh_cache.path(), "", &["--json", "cache", "ls"]);
        assert!(!listed.contains("\"bundle\""), "a bad bundle is not kept: {listed}");
    });
}

#[test]
fn a_private_package_needs_a_token() {
    sandbox_test(test_name!(), &[], |run| {
        let registry = Registry::start_with(&["--default-visibility", "private"]);
        push(run, &registry, package_dir(run, "secretive", "1.0.0", "").path());
        let cache = run.tempdir();
        let workdir = run.tempdir();
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &[],
            None,
            &["acme/secretive@1.0.0"],
        );
        assert_eq!(out.code, Some(125), "{}", out.context());
        assert!(
            out.stderr.contains("404") || out.stderr.contains("401"),
            "{}",
            out.context()
        );
        assert_nothing_ran(workdir.path(), &out);
        let token = registry.token("read");
        let env = [("MCP_J_REGISTRY_TOKEN", token.as_str())];
        let out = run_package(
            run,
            &registry,
            cache.path(),
            workdir.path(),
            &env,
            None,
            &["acme/secretive@1.0.0"],
        );
        assert_eq!(out.code, Some(0), "{}", out.context());
        assert!(workdir.path().join("started").exists());
    });
}
