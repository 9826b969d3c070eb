//! `mcp-j run` end to end: a hostile client (this test, writing raw bytes) and a
//! deliberately misbehaving server (`fixtures/fake_mcp_server.py`), through the real binary,
//! as root and as the unprivileged user. Every rule of docs/CLI.md's proxy section.

// Test helpers outside #[test] functions may panic on broken plumbing.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::session::{REPLY_TIMEOUT, Session};
use crate::common::{sandbox_test, test_name, wait_bounded};
use serde_json::{Value, json};

fn error_code(reply: &Value) -> Option<i64> {
    reply["error"]["code"].as_i64()
}

#[test]
fn malformed_client_messages_are_answered_and_never_forwarded() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &[], &[]);
        s.send_bytes(b"this is not json\n");
        let r = s.recv();
        assert_eq!((error_code(&r), &r["id"]), (Some(-32700), &Value::Null), "{r}");

        s.send_bytes(b"\xff\xfe{}\n");
        let r = s.recv();
        assert_eq!(
            (error_code(&r), &r["id"]),
            (Some(-32700), &Value::Null),
            "invalid UTF-8: {r}"
        );

        s.send(&json!({"jsonrpc": "1.0", "id": 7, "method": "ping"}));
        let r = s.recv();
        assert_eq!(
            (error_code(&r), &r["id"]),
            (Some(-32600), &json!(7)),
            "wrong jsonrpc: {r}"
        );

        s.send(&json!([{"jsonrpc": "2.0", "id": 8, "method": "ping"}]));
        let r = s.recv();
        assert_eq!(error_code(&r), Some(-32600), "batch: {r}");

        s.send(&json!({"jsonrpc": "2.0", "id": 9, "method": 5}));
        let r = s.recv();
        assert_eq!((error_code(&r), &r["id"]), (Some(-32600), &json!(9)), "bad shape: {r}");

        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        s.send_bytes(format!("{{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"ping\",\"params\":{deep}}}\n").as_bytes());
        let r = s.recv();
        assert_eq!(error_code(&r), Some(-32600), "deep nesting: {r}");

        // The session goes on, and only the valid request reached the server.
        let r = s.request(11, "ping", json!({}));
        assert_eq!(r, json!({"jsonrpc": "2.0", "id": 11, "result": {}}));
        let methods: Vec<Value> = s.received().iter().map(|m| m["id"].clone()).collect();
        assert_eq!(methods, vec![json!(11)], "the server saw: {:?}", s.received());
    });
}

#[test]
fn oversize_lines_are_discarded_in_both_directions() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &["--max-message-bytes", "4K"], &[]);
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"x\":\"{}\"}}}}\n",
            "a".repeat(64 * 1024)
        );
        s.send_bytes(big.as_bytes());
        let r = s.recv();
        assert_eq!((error_code(&r), &r["id"]), (Some(-32600), &Value::Null), "{r}");
        assert_eq!(s.request(2, "ping", json!({}))["result"], json!({}));

        // The server's oversize answer is dropped; the session goes on.
        s.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "big", "params": {"size": 20000}}));
        assert_eq!(s.request(4, "ping", json!({}))["id"], json!(4));
        s.assert_silent(Duration::from_millis(300));
        assert!(
            !s.received().iter().any(|m| m["id"] == json!(1)),
            "the oversize line reached the server"
        );
    });
}

#[test]
fn server_garbage_and_forged_responses_never_reach_the_client() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &[], &[]);
        let r = s.request(1, "garbage", json!({}));
        assert_eq!(r, json!({"jsonrpc": "2.0", "id": 1, "result": {"after": "garbage"}}));
        let r = s.request(2, "forge", json!({}));
        assert_eq!(r, json!({"jsonrpc": "2.0", "id": 2, "result": {"real": true}}));
        s.assert_silent(Duration::from_millis(300));
    });
}

#[test]
fn tool_policy_hides_and_refuses_tools() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &["--deny-tool", "secret"], &[]);
        let names = |r: &Value| -> Vec<String> {
            r["result"]["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("no tools in {r}"))
                .iter()
                .map(|t| t["name"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let list = s.request(1, "tools/list", json!({}));
        assert_eq!(names(&list), ["echo", "ask_sampling"]);
        let r = s.request(2, "tools/call", json!({"name": "secret", "arguments": {}}));
        assert_eq!((error_code(&r), &r["id"]), (Some(-32602), &json!(2)), "{r}");
        let r = s.request(3, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
        assert_eq!(r["result"]["content"][0]["text"], "hi");
        let calls: Vec<String> = s
            .received()
            .iter()
            .filter(|m| m["method"] == "tools/call")
            .map(|m| m["params"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(calls, ["echo"], "the denied call reached the server");
        drop(s);

        let mut s = Session::start(run, &["--allow-tool", "echo"], &[]);
        assert_eq!(names(&s.request(1, "tools/list", json!({}))), ["echo"]);
        let r = s.request(2, "tools/call", json!({"name": "ask_sampling", "arguments": {}}));
        assert_eq!(error_code(&r), Some(-32602));
        // A tool that does not exist gets the same answer: nothing is revealed.
        let r2 = s.request(3, "tools/call", json!({"name": "no-such-tool", "arguments": {}}));
        assert_eq!(r["error"], r2["error"]);
    });
}

#[test]
fn server_requests_for_sampling_are_refused_by_default() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &[], &[]);
        let r = s.request(1, "tools/call", json!({"name": "ask_sampling", "arguments": {}}));
        // The client never saw the server's request: the first line back is the result,
        // and the server got an error answer from the proxy.
        assert_eq!(r["id"], json!(1), "{r}");
        let answer: Value =
            serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        assert_eq!(answer["id"], json!("s-1"), "{answer}");
        assert!(answer["error"]["code"].is_i64(), "the server got no error: {answer}");
    });
}

#[test]
fn a_crash_answers_every_pending_request_and_sets_the_exit_status() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &[], &[]);
        s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "hang"}));
        s.send(&json!({"jsonrpc": "2.0", "id": "two", "method": "crash"}));
        let replies = [s.recv(), s.recv()];
        for r in &replies {
            assert!(error_code(r).is_some(), "a pending request got no error: {r}");
        }
        let ids: Vec<Value> = replies.iter().map(|r| r["id"].clone()).collect();
        assert!(ids.contains(&json!(1)) && ids.contains(&json!("two")), "{ids:?}");
        assert_eq!(s.wait(Duration::from_secs(20)), Some(3));
    });
}

#[test]
fn client_hangup_ends_the_server_with_escalation() {
    sandbox_test(test_name!(), &[], |run| {
        // A polite server exits on stdin EOF: mcp-j exits with its status, quickly.
        let mut s = Session::start(run, &["--grace-period", "5s"], &[]);
        assert_eq!(s.request(1, "ping", json!({}))["id"], json!(1));
        let start = Instant::now();
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(0));
        assert!(start.elapsed() < Duration::from_secs(4), "took {:?}", start.elapsed());

        // A server that ignores EOF and SIGTERM is killed after two grace periods.
        let mut s = Session::start(run, &["--grace-period", "300ms"], &["--linger"]);
        assert_eq!(s.request(1, "ping", json!({}))["id"], json!(1));
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(128 + 9));
    });
}

#[test]
fn server_stderr_is_relayed_line_by_line() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &[], &[]);
        s.request(1, "log", json!({"text": "hello from the server's stderr"}));
        s.close_stdin();
        s.wait(Duration::from_secs(20));
        assert!(s.stderr().contains("hello from the server's stderr"), "{}", s.stderr());
    });
}

#[test]
fn manifest_tool_policy_applies_like_the_flags() {
    sandbox_test(test_name!(), &[], |run| {
        let dir = run.tempdir();
        let manifest = dir.path().join("manifest.json");
        run.write_file(&manifest, br#"{"deny_tools": ["secret", "ask_sampling"]}"#, 0o644);
        let manifest = manifest.display().to_string();
        let mut s = Session::start(run, &["--manifest", &manifest], &[]);
        let list = s.request(1, "tools/list", json!({}));
        let names: Vec<&str> = list["result"]["tools"]
            .as_array()
            .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["echo"], "{list}");
        let r = s.request(2, "tools/call", json!({"name": "secret", "arguments": {}}));
        assert_eq!(error_code(&r), Some(-32602));
    });
}

/// libuv-based clients (Node, Electron: Claude Desktop, VS Code) give their servers unix
/// socketpairs, not pipes, as stdin and stdout.
#[test]
fn a_socketpair_as_stdio_works() {
    sandbox_test(test_name!(), &[], |run| {
        let workdir = run.tempdir();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let theirs_out = theirs.try_clone().expect("clone");
        let mut cmd = Session::command(run, workdir.path(), &[], &[]);
        cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn mcp-j run");
        drop(cmd); // our copies of the child's end
        ours.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        let mut writer = ours.try_clone().expect("clone");
        let mut reader = BufReader::new(ours);
        for id in 1..=3 {
            writeln!(writer, r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).expect("write");
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply");
            let reply: Value = serde_json::from_str(&line).expect("JSON");
            assert_eq!(reply, json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        }
        writer.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let status = wait_bounded(&mut child, Duration::from_secs(20), "mcp-j after the client hung up");
        assert_eq!(status.code(), Some(0));
    });
}

/// A client config's `env` block sets mcp-j's environment, not the server's: a variable
/// that looks meant for the server and is not passed gets one warning naming it and the
/// flag that passes it (never its value); passed, no warning.
#[test]
fn a_credential_in_mcp_js_environment_that_is_not_passed_is_named() {
    sandbox_test(test_name!(), &[], |run| {
        let value = "value-of-the-token-0123456789";
        let env = [("MY_SERVICE_TOKEN", value)];
        let mut s = Session::start_with_env(run, &[], &[], &env);
        assert_eq!(s.request(1, "ping", json!({}))["id"], json!(1));
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(0));
        let stderr = s.stderr();
        let warning = "`MY_SERVICE_TOKEN` is set in mcp-j's environment but not passed to the server";
        assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
        assert!(
            stderr.contains("--secret MY_SERVICE_TOKEN=env:MY_SERVICE_TOKEN"),
            "{stderr}"
        );
        assert!(!stderr.contains(value), "the value was printed: {stderr}");

        let opts = ["--secret", "MY_SERVICE_TOKEN=env:MY_SERVICE_TOKEN"];
        let mut s = Session::start_with_env(run, &opts, &[], &env);
        assert_eq!(s.request(1, "ping", json!({}))["id"], json!(1));
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(0));
        assert!(!s.stderr().contains("MY_SERVICE_TOKEN"), "{}", s.stderr());
    });
}

/// The Inspector form `mcp-j run … -- -- PROG` serves as well when the client keeps both.
#[test]
fn a_doubled_separator_runs_the_server() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &["--"], &[]);
        assert_eq!(s.request(1, "ping", json!({}))["id"], json!(1));
        s.close_stdin();
        assert_eq!(s.wait(Duration::from_secs(20)), Some(0));
    });
}

/// Issue 7: 5000 `tools/call echo` with a 20 000-byte argument, pipelined (a writer thread
/// and a reader thread) through `mcp-j run` to a plain Python server that answers one
/// request at a time. Every answer must come back; a stall fails the test at the deadline
/// instead of hanging it. (Before the proxy's outboxes, this stopped after 31–721 answers.)
#[test]
fn pipelined_large_requests_all_come_back() {
    sandbox_test(test_name!(), &[], |run| {
        const REQUESTS: usize = 5000;
        const ARGUMENT: usize = 20_000;
        const DEADLINE: Duration = Duration::from_secs(180);
        // A deadlock shows as no answer at all for this long.
        const STALL: Duration = Duration::from_secs(30);
        let workdir = run.tempdir();
        let mut cmd = Session::command(run, workdir.path(), &[], &["--no-record"]);
        cmd.current_dir(workdir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mcp-j run");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr_text = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let writer = std::thread::spawn(move || {
            let text = "x".repeat(ARGUMENT);
            let mut out = std::io::BufWriter::new(&mut stdin);
            for id in 0..REQUESTS {
                let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"text": text}}});
                if writeln!(out, "{call}").is_err() {
                    break;
                }
            }
            let _ = out.flush();
            drop(out);
            stdin // kept open until every answer is in
        });
        let (progress_tx, progress) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut seen = vec![false; REQUESTS];
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let reply: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                let text_len = reply["result"]["content"][0]["text"].as_str().map(str::len);
                let answer = match reply["id"].as_u64().map(|id| id as usize) {
                    Some(id) if id < REQUESTS && !seen[id] && text_len == Some(ARGUMENT) => {
                        seen[id] = true;
                        Ok(())
                    }
                    _ => Err(line.chars().take(200).collect::<String>()),
                };
                if progress_tx.send(answer).is_err() || seen.iter().all(|s| *s) {
                    break;
                }
            }
        });
        let start = Instant::now();
        let mut answers = 0;
        while answers < REQUESTS {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let failure = match progress.recv_timeout(left.min(STALL)) {
                Ok(Ok(())) => {
                    answers += 1;
                    continue;
                }
                Ok(Err(line)) => format!("a wrong or duplicate answer: {line}"),
                Err(_) => {
                    format!("{answers} of {REQUESTS} answers, then none for {STALL:?} or past {DEADLINE:?} (deadlock?)")
                }
            };
            let _ = child.kill();
            let _ = child.wait();
            panic!("{failure}; stderr: {}", stderr_text.join().unwrap_or_default());
        }
        reader.join().expect("reader");
        drop(writer.join().expect("writer")); // the client hangs up
        let status = wait_bounded(&mut child, Duration::from_secs(20), "mcp-j after the client hung up");
        assert_eq!(
            status.code(),
            Some(0),
            "stderr: {}",
            stderr_text.join().unwrap_or_default()
        );
    });
}

/// Issue 7: a `tools/call` without an id naming a denied tool was forwarded untouched. It
/// is dropped (and logged); the server's own record proves it never arrived.
#[test]
fn a_tools_call_notification_never_reaches_the_server() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(run, &["--deny-tool", "secret"], &[]);
        s.send(&json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "secret", "arguments": {}}}));
        s.send(
            &json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}),
        );
        // Positive control: the allowed call with an id reaches the server and is answered.
        let r = s.request(1, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
        assert_eq!(r["result"]["content"][0]["text"], "hi", "{r}");
        s.assert_silent(Duration::from_millis(300));
        let calls: Vec<Value> = s
            .received()
            .into_iter()
            .filter(|m| m["method"] == "tools/call")
            .collect();
        assert_eq!(
            calls,
            [json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "hi"}}})],
            "the server received a tools/call notification"
        );
        s.close_stdin();
        s.wait(Duration::from_secs(20));
        assert!(
            s.stderr()
                .contains("dropped a client tools/call notification for tool `secret`"),
            "{}",
            s.stderr()
        );
    });
}

/// Issue 7: `--deny-tool` naming a tool the server never lists (a typo) denies nothing; mcp-j
/// says so once, after the first complete `tools/list`, with the close matches.
#[test]
fn a_tool_policy_naming_unlisted_tools_is_warned_about_once() {
    sandbox_test(test_name!(), &[], |run| {
        let mut s = Session::start(
            run,
            &[
                "--deny-tool",
                "secrets",
                "--deny-tool",
                "echo",
                "--allow-tool",
                "nothing-like-it",
            ],
            &[],
        );
        for id in 1..=2 {
            let list = s.request(id, "tools/list", json!({}));
            assert!(list["result"]["tools"].is_array(), "{list}");
        }
        s.close_stdin();
        s.wait(Duration::from_secs(20));
        let stderr = s.stderr();
        assert_eq!(
            stderr.matches("warning: the server lists no tool named by").count(),
            1,
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "--allow-tool `nothing-like-it`, --deny-tool `secrets` (did you mean `secret`?) among its 3 tools"
            ),
            "{stderr}"
        );
        assert!(!stderr.contains("`echo`"), "echo is listed: {stderr}");

        // Positive control: names the server lists, no warning.
        let mut s = Session::start(run, &["--deny-tool", "secret"], &[]);
        s.request(1, "tools/list", json!({}));
        s.close_stdin();
        s.wait(Duration::from_secs(20));
        assert!(!s.stderr().contains("warning"), "{}", s.stderr());
    });
}
