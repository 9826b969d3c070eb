//! The attack program's harmless probes, run directly: the report format, exit codes and
//! `control` mode. (The attacks themselves only ever run inside mcp-j: see
//! `crates/mcp-j-cli/tests/it/escape/`.)

use std::process::{Command, Output};

fn attack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-j-attack"))
        .args(args)
        .output()
        .expect("run mcp-j-attack")
}

fn line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one report line: {stdout:?}");
    lines[0].to_owned()
}

#[test]
fn status_reports_json() {
    let out = attack(&["status"]);
    assert_eq!(out.status.code(), Some(0));
    let l = line(&out);
    let json = l.strip_prefix("ok: ").expect("ok line");
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    for key in ["CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "Uid", "pid", "cwd"] {
        assert!(v.get(key).is_some(), "{key} missing from {json}");
    }
}

#[test]
fn env_reports_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-j-attack"))
        .arg("env")
        .env_clear()
        .env("PROBE_VAR", "probe value")
        .output()
        .expect("run");
    let l = line(&out);
    let v: serde_json::Value = serde_json::from_str(l.strip_prefix("ok: ").expect("ok line")).expect("json");
    assert_eq!(v, serde_json::json!({"PROBE_VAR": "probe value"}));
}

#[test]
fn features_and_uname_report_facts() {
    let l = line(&attack(&["features"]));
    let v: serde_json::Value = serde_json::from_str(l.strip_prefix("ok: ").expect("ok line")).expect("json");
    assert!(v["userns"].is_boolean() && v["landlock_abi"].is_u64() && v["seccomp"].is_boolean());
    assert!(line(&attack(&["uname"])).starts_with("ok: nodename="));
}

#[test]
fn bad_usage_is_an_error_with_exit_2() {
    for args in [&[][..], &["no-such-attack"], &["read"], &["kill", "-1"], &["kill", "0"]] {
        let out = attack(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(line(&out).starts_with("error: "), "{args:?}");
    }
}

#[test]
fn reads_report_denied_and_control_maps_outcomes() {
    // Harmless: reading a file that does not exist, and one this test wrote.
    let dir = tempfile_dir();
    let missing = format!("{dir}/missing");
    let out = attack(&["read", &missing]);
    assert_eq!(out.status.code(), Some(0));
    assert!(line(&out).starts_with("denied: ENOENT"), "{}", line(&out));
    let out = attack(&["control", "read", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(line(&out).starts_with("error: control failed: ENOENT"));

    let present = format!("{dir}/present");
    std::fs::write(&present, "x").expect("write");
    let out = attack(&["read", &present]);
    assert_eq!(out.status.code(), Some(1));
    assert!(line(&out).starts_with("escaped: "));
    let out = attack(&["control", "read", &present]);
    assert_eq!(out.status.code(), Some(0));
    assert!(line(&out).starts_with("ok: "));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("mcp-j-attack-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir.to_string_lossy().into_owned()
}
