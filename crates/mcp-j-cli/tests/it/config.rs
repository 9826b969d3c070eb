//! `mcp-j config show` and configuration errors end to end: layering (file < `MCP_J_*`
//! environment < flags) with each value's source, secrets never printed, and bad
//! configuration files refused with exit 125 and a message that says where.

use crate::common;
use crate::common::{cli_test, test_name};
use serde_json::Value;

const CONFIG: &str = r#"
registry_url = "https://registry.from-file.example"
registry_token = "tok-file-s3cr3t"
audit_log = "/var/log/mcp-j-file.jsonl"

[limits]
memory = "1G"
pids = 64

[policy]
deny_tools = ["delete_everything"]

[secrets]
GITHUB_TOKEN = "env:GH_TOKEN_FOR_TEST"
"#;

#[test]
fn config_show_layers_file_env_and_flags_and_masks_secrets() {
    cli_test(test_name!(), |run| {
        let dir = run.tempdir();
        let file = dir.path().join("config.toml");
        run.write_file(&file, CONFIG.as_bytes(), 0o600);
        let file_source = format!("file {}", file.display());

        let out = run
            .exec()
            .env("MCP_J_PIDS", "99")
            .env("MCP_J_REGISTRY_TOKEN", "tok-env-s3cr3t")
            .env("GH_TOKEN_FOR_TEST", "gh-value-s3cr3t")
            .raw([
                "--config".as_ref(),
                file.as_os_str(),
                "--registry".as_ref(),
                "https://registry.from-flag.example".as_ref(),
                "config".as_ref(),
                "show".as_ref(),
                "--json".as_ref(),
            ])
            .run();
        out.assert_code(0);
        let stdout = &out.stdout;
        let show: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        let check = |key: &str, value: Value, source: &str| {
            assert_eq!(show[key]["value"], value, "{key} in {show}");
            assert_eq!(show[key]["source"], source, "{key} in {show}");
        };
        check(
            "registry_url",
            "https://registry.from-flag.example".into(),
            "flag --registry",
        );
        check("limits.pids", 99.into(), "env MCP_J_PIDS");
        check("limits.memory", "1G".into(), &file_source);
        check("audit_log", "/var/log/mcp-j-file.jsonl".into(), &file_source);
        check(
            "policy.deny_tools",
            serde_json::json!(["delete_everything"]),
            &file_source,
        );
        check("limits.fds", 1024.into(), "default");
        check("registry_token", "********".into(), "env MCP_J_REGISTRY_TOKEN");
        check("secrets.GITHUB_TOKEN", "env:GH_TOKEN_FOR_TEST".into(), &file_source);
        for secret in ["tok-file-s3cr3t", "tok-env-s3cr3t", "gh-value-s3cr3t"] {
            assert!(!out.stdout.contains(secret), "secret in stdout: {}", out.stdout);
            assert!(!out.stderr.contains(secret), "secret in stderr: {}", out.stderr);
        }

        // The human table: same sources, still no secret.
        let out = run
            .exec()
            .env("MCP_J_REGISTRY_TOKEN", "tok-env-s3cr3t")
            .raw([
                "--config".as_ref(),
                file.as_os_str(),
                "config".as_ref(),
                "show".as_ref(),
            ])
            .run();
        out.assert_code(0);
        let table = &out.stdout;
        assert!(table.contains("env MCP_J_REGISTRY_TOKEN"), "{table}");
        assert!(!table.contains("s3cr3t"), "{table}");
    });
}

#[test]
fn a_malformed_config_file_exits_125_with_line_and_column() {
    cli_test(test_name!(), |run| {
        let dir = run.tempdir();
        let file = dir.path().join("config.toml");
        run.write_file(&file, b"registry_url = \"https://x\"\n[limits\npids = 3\n", 0o600);
        let out = run
            .exec()
            .raw([
                "--config".as_ref(),
                file.as_os_str(),
                "config".as_ref(),
                "show".as_ref(),
            ])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("line 2"), "{}", out.stderr);
        assert!(out.stderr.contains("column"), "{}", out.stderr);
        assert!(out.stderr.contains(&file.display().to_string()), "{}", out.stderr);
    });
}

#[test]
fn an_unknown_key_exits_125_naming_its_path() {
    cli_test(test_name!(), |run| {
        let dir = run.tempdir();
        let file = dir.path().join("config.toml");
        run.write_file(&file, b"[limits]\nmemroy = \"1G\"\n", 0o600);
        // Any command: the configuration is loaded before it runs.
        let out = run
            .exec()
            .raw([
                "--config".as_ref(),
                file.as_os_str(),
                "exec".as_ref(),
                "--".as_ref(),
                "/bin/true".as_ref(),
            ])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("`limits.memroy`"), "{}", out.stderr);
        assert!(out.stderr.contains(&file.display().to_string()), "{}", out.stderr);
    });
}

#[test]
fn an_ill_typed_env_value_or_missing_config_file_exits_125() {
    cli_test(test_name!(), |run| {
        let out = run.exec().env("MCP_J_MEMORY", "lots").raw(["config", "show"]).run();
        out.assert_code(125);
        assert!(out.stderr.contains("limits.memory"), "{}", out.stderr);
        assert!(out.stderr.contains("MCP_J_MEMORY"), "{}", out.stderr);

        let out = run
            .exec()
            .raw(["--config", "/nonexistent/mcp-j/config.toml", "config", "show"])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("/nonexistent/mcp-j/config.toml"), "{}", out.stderr);
    });
}

#[test]
fn secret_errors_exit_125_without_the_value() {
    cli_test(test_name!(), |run| {
        let out = run
            .exec()
            .opts(["--secret", "TOKEN=env:MCP_J_SURELY_UNSET_FOR_TEST"])
            .program(["/bin/true"])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("MCP_J_SURELY_UNSET_FOR_TEST"), "{}", out.stderr);

        let out = run
            .exec()
            .opts(["--secret", "TOKEN=file:/nonexistent/secret"])
            .program(["/bin/true"])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("/nonexistent/secret"), "{}", out.stderr);

        let out = run
            .exec()
            .opts(["--secret", "TOKEN=literal-s3cr3t-value"])
            .program(["/bin/true"])
            .run();
        out.assert_code(125);
        assert!(!out.stderr.contains("literal-s3cr3t-value"), "{}", out.stderr);
    });
}

#[test]
fn config_show_names_the_config_file_it_looked_for() {
    cli_test(test_name!(), |run| {
        let xdg = run.tempdir();
        let expected = xdg.path().join("mcp-j").join("config.toml");
        let show = |json: bool| {
            let mut args = vec!["config", "show"];
            if json {
                args.push("--json");
            }
            let out = run.exec().env("XDG_CONFIG_HOME", xdg.path()).raw(args).run();
            out.assert_code(0);
            out.stdout
        };
        // Not there: the table says where it looked and that it found nothing.
        let table = show(false);
        let first = table.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "config file: {} (default location, not found: defaults, MCP_J_* variables and flags apply)",
                expected.display()
            ),
            "{table}"
        );
        // There: read.
        run.mkdir(&xdg.path().join("mcp-j"));
        run.write_file(&expected, b"[limits]\npids = 7\n", 0o600);
        let table = show(false);
        assert!(
            table.starts_with(&format!("config file: {} (default location, read)", expected.display())),
            "{table}"
        );
        let json: Value = serde_json::from_str(&show(true)).expect("JSON");
        assert_eq!(json["config_file"]["value"], expected.display().to_string(), "{json}");
        assert_eq!(json["config_file"]["source"], "default location, read", "{json}");
        assert_eq!(json["limits.pids"]["value"], 7, "{json}");
    });
}

/// A reader that stops early (`mcp-j config show | head -1`) ends the output quietly: exit
/// 0, no panic. The "pipe" is a socket whose other end is closed before mcp-j starts, so
/// every write fails with EPIPE (Rust ignores SIGPIPE).
#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};
    for args in [&["config", "show"][..], &["config", "show", "--json"][..]] {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        drop(ours);
        let mut child = Command::new(common::MCP_J)
            .args(args)
            .env("XDG_CONFIG_HOME", "/nonexistent/mcp-j-test")
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcp-j");
        let status = crate::common::wait_bounded(&mut child, std::time::Duration::from_secs(30), "mcp-j config show");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
        assert_eq!(status.code(), Some(0), "mcp-j {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "mcp-j {args:?}: {stderr}");
    }
}
