//! `mcp-j run npm:…` / `pypi:…` end to end: real packages installed from the real registries
//! *inside* the sandbox, driven by the official Python SDK client (both protocol eras for
//! the PyPI one); the second run offline, in a network namespace with no route; a tampered
//! install refused; a local test package (`npm pack`ed here) showing the install read-only
//! to its server, install scripts off by default, and no npm token from the host's
//! configuration reaching the installer; `--server-json`. As root and as the unprivileged
//! user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::testnet::TestNet;
use crate::common::{MCP_J, Outcome, Run, run_bounded, sandbox_test, test_name};

/// The pinned versions (tests-deps/package.json and requirements.txt pin the same ones).
const EVERYTHING: &str = "npm:@modelcontextprotocol/server-everything@2026.8.31";
const TIME: &str = "pypi:mcp-server-time==2026.10.19";
/// A cold install from the registry takes ~10 s here; the bound is for a slow mirror.
const INSTALL_BOUND: Duration = Duration::from_secs(300);

/// `python -B DRIVER --call TOOL --arguments ARGS [--mode MODE] -- mcp-j --cache-dir C run
/// RUN_ARGS…`, as the runner, in `net` when given; the driver's summary, checked `ok`.
#[allow(clippy::too_many_arguments)]
fn drive(
    run: &Run,
    deps: &crate::real_servers::Deps,
    net: Option<&TestNet>,
    driver: &str,
    mode: Option<&str>,
    call: (&str, &str),
    cache: &Path,
    run_args: &[&str],
) -> (Value, Outcome) {
    let mut cmd = match net {
        Some(net) => net.command(run.runner, &deps.python),
        None => run.runner.command(&deps.python),
    };
    cmd.arg("-B").arg(deps.clients.join(driver));
    if let Some(mode) = mode {
        cmd.args(["--mode", mode]);
    }
    cmd.args([
        "--call",
        call.0,
        "--arguments",
        call.1,
        "--timeout",
        "240",
        "--",
        MCP_J,
        "--cache-dir",
    ])
    .arg(cache)
    .args(["run", "--workdir", "private"])
    .args(run_args);
    let out = run_bounded(cmd, INSTALL_BOUND, driver).unwrap_or_else(|e| panic!("{e}"));
    let line = out.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let summary: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("the driver printed no JSON summary ({e})\n{}", out.context()));
    assert_eq!(summary["ok"], true, "{}", out.context());
    (summary, out)
}

fn cache_ls(run: &Run, cache: &Path) -> Vec<Value> {
    let mut cmd = run.runner.command(MCP_J);
    cmd.arg("--cache-dir").arg(cache).args(["--json", "cache", "ls"]);
    let out = run_bounded(cmd, Duration::from_secs(30), "cache ls").unwrap_or_else(|e| panic!("{e}"));
    out.assert_code(0);
    serde_json::from_str::<Vec<Value>>(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The tree of the one install of `package` (`npm:NAME@VERSION`) in `cache`, and its digest.
fn install_of(run: &Run, cache: &Path, package: &str) -> (PathBuf, String) {
    let entry = cache_ls(run, cache)
        .into_iter()
        .find(|e| e["kind"] == "install" && e["package"] == package)
        .unwrap_or_else(|| panic!("no install of {package} in the cache"));
    let digest = entry["digest"].as_str().unwrap_or_default().to_owned();
    let installs = cache.join("v1/installs");
    let tree = std::fs::read_dir(&installs)
        .unwrap_or_else(|e| panic!("{}: {e}", installs.display()))
        .filter_map(Result::ok)
        .map(|e| e.path().join("tree"))
        .find(|tree| std::fs::read_to_string(tree.with_file_name("install.json")).is_ok_and(|t| t.contains(&digest)))
        .unwrap_or_else(|| panic!("no tree for {digest}"));
    (tree, digest)
}

#[test]
fn npm_and_pypi_servers_install_in_the_sandbox_and_run_offline_after() {
    let test = test_name!();
    let Some(deps) = crate::real_servers::deps(test) else {
        return;
    };
    if crate::common::euid() != 0 {
        let feature = crate::common::testnet::FEATURE;
        assert!(
            !crate::common::expected(feature),
            "{feature} is declared but the harness is not root"
        );
        eprintln!("SKIP: {test} runs offline in a network namespace: it needs {feature} (a root harness)");
        return;
    }
    sandbox_test(test, &[], |run| {
        let cache = run.tempdir();
        let echo = ("echo", r#"{"message":"hi"}"#);
        let utc = ("get_current_time", r#"{"timezone":"UTC"}"#);

        // First runs: installed inside the sandbox, then served.
        let (s, out) = drive(
            run,
            deps,
            None,
            "handshake_client.py",
            None,
            echo,
            cache.path(),
            &[EVERYTHING, "--", "stdio"],
        );
        assert_eq!(s["call"]["text"], "Echo: hi", "{}", out.context());
        assert!(out.stderr.contains("inside the sandbox"), "{}", out.context());
        // The PyPI one without a version, into an empty cache: installed under a temporary
        // name, then filed under the version it turned out to be, and pinned (the mirror's
        // latest is the version tests-deps pins). The moved venv still runs: its console
        // script's `#!` line names the temporary path.
        let mut cmd = run.runner.command(MCP_J);
        cmd.arg("--cache-dir")
            .arg(cache.path())
            .args(["pull", "pypi:mcp-server-time"]);
        let out = run_bounded(cmd, INSTALL_BOUND, "pull unversioned").unwrap_or_else(|e| panic!("{e}"));
        out.assert_code(0);
        assert!(
            out.stderr.contains("resolved to 2026.10.19 and pinned"),
            "{}",
            out.context()
        );
        let (s, out) = drive(
            run,
            deps,
            None,
            "handshake_client.py",
            None,
            utc,
            cache.path(),
            &["pypi:mcp-server-time"],
        );
        assert!(out.stderr.contains("is pinned to 2026.10.19"), "{}", out.context());
        assert!(
            s["call"]["text"].as_str().is_some_and(|t| t.contains("UTC")),
            "{}",
            out.context()
        );
        assert!(
            !s["protocol_version"].as_str().unwrap_or("2026").starts_with("2026-07"),
            "{s}"
        );

        // Without a version: the latest is installed once and pinned (here the version already
        // installed, so the install is filed under it); later runs use the pin, offline.
        let mut cmd = run.runner.command(MCP_J);
        cmd.arg("--cache-dir")
            .arg(cache.path())
            .args(["pull", "npm:@modelcontextprotocol/server-everything"]);
        let out = run_bounded(cmd, INSTALL_BOUND, "pull unversioned").unwrap_or_else(|e| panic!("{e}"));
        out.assert_code(0);
        assert!(
            out.stderr.contains("resolved to 2026.8.31 and pinned"),
            "{}",
            out.context()
        );
        let installs = cache_ls(run, cache.path())
            .iter()
            .filter(|e| e["kind"] == "install")
            .count();
        assert_eq!(
            installs, 2,
            "one install per version: server-everything and mcp-server-time"
        );

        // Again, offline: a network namespace with no route anywhere; the modern era too.
        let net = TestNet::new(&[], &[]).unwrap_or_else(|e| panic!("{e}"));
        let logs = run.tempdir();
        let audit = logs.path().join("audit.jsonl");
        let audit_flag = audit.display().to_string();
        let (s, out) = drive(
            run,
            deps,
            Some(&net),
            "handshake_client.py",
            None,
            echo,
            cache.path(),
            &["--audit-log", &audit_flag, EVERYTHING, "--", "stdio"],
        );
        assert_eq!(s["call"]["text"], "Echo: hi");
        assert!(
            !out.stderr.contains("installing"),
            "a second run installs nothing: {}",
            out.context()
        );
        let pinned = ["npm:@modelcontextprotocol/server-everything", "--", "stdio"];
        let (s, out) = drive(
            run,
            deps,
            Some(&net),
            "handshake_client.py",
            None,
            echo,
            cache.path(),
            &pinned,
        );
        assert_eq!(s["call"]["text"], "Echo: hi");
        assert!(out.stderr.contains("is pinned to 2026.8.31"), "{}", out.context());
        // The session says what ran: the npm package, its version and tree digest.
        let log = std::fs::read_to_string(&audit).unwrap_or_else(|e| panic!("{e}"));
        let start: Value = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event_type"] == "session.start")
            .unwrap_or_else(|| panic!("no session.start in {log}"));
        let source = &start["source"];
        assert_eq!(source["kind"], "npm", "{source}");
        assert_eq!(source["package"], "@modelcontextprotocol/server-everything");
        assert_eq!(source["version"], "2026.8.31");
        assert!(
            source["digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{source}"
        );
        assert!(
            source["lock_digest"].as_str().is_some_and(|d| d.starts_with("sha256:")),
            "{source}"
        );
        let (s, _) = drive(
            run,
            deps,
            Some(&net),
            "auto_client.py",
            Some("auto"),
            utc,
            cache.path(),
            &[TIME],
        );
        assert_eq!(s["protocol_version"], "2026-07-28", "{s}");
        assert_eq!(s["call"]["structured"]["timezone"], "UTC", "{s}");

        // --server-json: the fixture's PyPI entry, with its package arguments.
        let server_json = run.tempdir();
        let path = server_json.path().join("server.json");
        let text = r#"{"name":"io.github.example/time","version":"2026.10.19","packages":[
            {"registryType":"oci","identifier":"docker.io/example/time","transport":{"type":"stdio"}},
            {"registryType":"pypi","identifier":"mcp-server-time","version":"2026.10.19","runtimeHint":"uvx",
             "transport":{"type":"stdio"},
             "packageArguments":[{"type":"named","name":"--local-timezone","value":"UTC"}]}]}"#;
        run.write_file(&path, text.as_bytes(), 0o644);
        let flag = path.display().to_string();
        let (s, out) = drive(
            run,
            deps,
            Some(&net),
            "handshake_client.py",
            None,
            utc,
            cache.path(),
            // Its `--local-timezone UTC` changes get_current_time's schema from the one
            // pinned above for pypi:mcp-server-time (a pin is per package, whatever its
            // arguments): pinning would rightly hide it. Pinning is tested in `pinning`.
            &["--pins", "off", "--server-json", &flag],
        );
        assert!(
            out.stderr.contains("running pypi:mcp-server-time==2026.10.19"),
            "{}",
            out.context()
        );
        assert!(s["call"]["text"].as_str().is_some_and(|t| t.contains("UTC")), "{s}");

        // An installer failure: 125 with the tail of the installer's output.
        let mut cmd = run.runner.command(MCP_J);
        cmd.arg("--cache-dir")
            .arg(cache.path())
            .args(["pull", "npm:@mcp-j-test/this-package-does-not-exist@1.0.0"]);
        let out = run_bounded(cmd, INSTALL_BOUND, "pull a missing package").unwrap_or_else(|e| panic!("{e}"));
        out.assert_code(125);
        assert!(
            out.stderr.contains("npm install failed inside the sandbox"),
            "{}",
            out.context()
        );
        assert!(
            out.stderr.contains("404"),
            "the installer's own words: {}",
            out.context()
        );

        // A tampered install: refused, naming the fix, nothing served.
        let (tree, digest) = install_of(run, cache.path(), "pypi:mcp-server-time==2026.10.19");
        let file = tree.join("venv/pyvenv.cfg");
        let parent = file.parent().unwrap_or(&tree).to_path_buf();
        std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        text.push_str("# changed\n");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = net.command(run.runner, MCP_J);
        cmd.arg("--cache-dir")
            .arg(cache.path())
            .args(["run", "--workdir", "private", TIME]);
        let out = run_bounded(cmd, Duration::from_secs(60), "run tampered").unwrap_or_else(|e| panic!("{e}"));
        out.assert_code(126);
        assert!(
            out.stderr.contains(&format!("mcp-j cache rm {digest}")),
            "{}",
            out.context()
        );
        assert!(out.stdout.is_empty(), "{}", out.context());
        // `cache rm` of that digest removes the install.
        let mut cmd = run.runner.command(MCP_J);
        cmd.arg("--cache-dir").arg(cache.path()).args(["cache", "rm", &digest]);
        run_bounded(cmd, Duration::from_secs(30), "cache rm")
            .unwrap_or_else(|e| panic!("{e}"))
            .assert_code(0);
        assert!(
            !cache_ls(run, cache.path())
                .iter()
                .any(|e| e["digest"] == digest.as_str()),
            "the install is gone"
        );
    });
}

/// `npm pack` of the test package (tests/fixtures/npm-test-package) into `dir`.
fn packed_test_package(run: &Run, dir: &Path) -> PathBuf {
    let source = run.tempdir();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npm-test-package");
    for name in ["package.json", "server.js", "postinstall.js"] {
        let bytes = std::fs::read(fixture.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        run.write_file(&source.path().join(name), &bytes, 0o644);
    }
    let npm_cache = run.tempdir();
    let mut cmd = Command::new("npm");
    cmd.args(["pack", "--silent", "--pack-destination"])
        .arg(dir)
        .current_dir(source.path())
        .env("npm_config_cache", npm_cache.path());
    let out = run_bounded(cmd, Duration::from_secs(60), "npm pack").unwrap_or_else(|e| panic!("{e}"));
    out.assert_code(0);
    let archive = dir.join("mcpj-test-server-1.0.0.tgz");
    std::fs::set_permissions(&archive, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    archive
}

#[test]
fn install_scripts_are_off_by_default_and_the_installer_never_sees_a_token() {
    sandbox_test(test_name!(), &[], |run| {
        let dir = run.tempdir();
        let archive = packed_test_package(run, dir.path());
        let reference = format!("npm:{}", archive.display());
        // A user npmrc with a token, and the token's other spellings in mcp-j's environment.
        let token = "npm_NEVERSEENTOKEN0123456789abcdef";
        let npmrc = dir.path().join("npmrc");
        run.write_file(
            &npmrc,
            format!("//registry.npmjs.org/:_authToken={token}\n_auth={token}\n").as_bytes(),
            0o600,
        );
        let requests = dir.path().join("requests.jsonl");
        let lines = [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#,
        ];
        run.write_file(&requests, format!("{}\n", lines.join("\n")).as_bytes(), 0o644);
        let whoami_with = |cache: &Path, extra: &[&str], registry_token: &str| -> (Value, Outcome) {
            let mut cmd = run.runner.command("/bin/sh");
            cmd.arg("-c")
                .arg(r#"exec "$0" "$@" < "$REQUESTS""#)
                .arg(MCP_J)
                .arg("--cache-dir")
                .arg(cache)
                .args(["run", "--workdir", "private"])
                .args(extra)
                .arg(&reference)
                .env("REQUESTS", &requests)
                .env("NPM_CONFIG_USERCONFIG", &npmrc)
                .env("NPM_TOKEN", token)
                .env("npm_config__authToken", token)
                .env("MY_REGISTRY_TOKEN", registry_token);
            let out = run_bounded(cmd, INSTALL_BOUND, "run the test package").unwrap_or_else(|e| panic!("{e}"));
            out.assert_code(0);
            let line = out.stdout.lines().find(|l| l.contains(r#""id":2"#)).unwrap_or("");
            let answer: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}\n{}", out.context()));
            let text = answer["result"]["content"][0]["text"].as_str().unwrap_or("{}");
            (
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")),
                out,
            )
        };
        let whoami = |cache: &Path, extra: &[&str]| whoami_with(cache, extra, "unused");

        // By default: scripts off, the install read-only to its server.
        let cache = run.tempdir();
        let (seen, out) = whoami(cache.path(), &[]);
        assert_eq!(seen["postinstall_ran"], false, "{}", out.context());
        assert_eq!(seen["install_writable"], false, "{}", out.context());
        assert!(
            out.stderr.contains("_authToken"),
            "the token line is named as not passed: {}",
            out.context()
        );
        assert!(!out.stderr.contains(token), "{}", out.context());

        // --allow-install-scripts: the script runs (in the installer's jail) and records
        // everything it could see; no spelling of the token is anywhere in the install.
        let cache = run.tempdir();
        let (seen, out) = whoami(cache.path(), &["--allow-install-scripts"]);
        assert_eq!(seen["postinstall_ran"], true, "{}", out.context());
        assert_eq!(seen["install_writable"], false);
        let mut stack = vec![cache.path().to_path_buf()];
        let mut looked = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{e}"))
                .filter_map(Result::ok)
            {
                let path = entry.path();
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    looked += 1;
                    assert!(
                        !String::from_utf8_lossy(&bytes).contains(token),
                        "the token reached {}",
                        path.display()
                    );
                }
            }
        }
        let recorded = std::fs::read_to_string(
            install_of(run, cache.path(), "npm:mcpj-test-server@1.0.0")
                .0
                .join("node_modules/mcpj-test-server/postinstall-ran.json"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            recorded.contains("\"HOME\":\"/tmp\""),
            "the script ran jailed: {recorded}"
        );

        // A registry credential given with --secret NPM_TOKEN goes to the installer (npm reads
        // it through an npmrc that names the variable) and never to the server.
        let cache = run.tempdir();
        let given = "npm_GIVENTOKEN0123456789abcdefghij";
        let flags = ["--allow-install-scripts", "--secret", "NPM_TOKEN=env:MY_REGISTRY_TOKEN"];
        let (seen, out) = whoami_with(cache.path(), &flags, given);
        assert!(
            out.stderr
                .contains("authenticates to the npm registry with the secret `NPM_TOKEN`"),
            "{}",
            out.context()
        );
        assert_eq!(seen["npm_token"], false, "the server does not get the registry token");
        let recorded = std::fs::read_to_string(
            install_of(run, cache.path(), "npm:mcpj-test-server@1.0.0")
                .0
                .join("node_modules/mcpj-test-server/postinstall-ran.json"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let recorded: Value = serde_json::from_str(&recorded).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(recorded["env"]["NPM_TOKEN"], given, "the installer got it");
        let npmrc = recorded["files"]
            .as_object()
            .and_then(|f| f.values().find_map(|v| v.as_str().filter(|t| t.contains("_authToken"))))
            .unwrap_or_else(|| panic!("no npmrc with the token's variable: {recorded}"));
        assert!(npmrc.contains("${NPM_TOKEN}") && !npmrc.contains(given), "{npmrc}");
        assert!(looked > 3, "looked at {looked} files");
    });
}
