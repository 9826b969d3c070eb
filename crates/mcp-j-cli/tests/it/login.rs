//! `mcp-j login` / `logout`: a token per registry origin, stored 0600 under the runner's
//! configuration directory; a user name and password are exchanged for a token at the
//! registry (a stand-in on 127.0.0.1 the test starts).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{MCP_J, cli_test, test_name};

/// A registry stand-in that answers `POST /v1/auth/login` (user `alice`, password `pw`),
/// for `count` requests; returns its URL.
fn login_registry(count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().map(|a| a.port()).unwrap_or(0)
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = stream.try_clone() else { return };
            let mut reader = BufReader::new(clone);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let ok = String::from_utf8_lossy(&body).contains(r#""password":"pw""#);
            let (status, answer) = if ok {
                (
                    "200 OK",
                    r#"{"access_token":"tok-from-the-registry","expires_in":3600}"#,
                )
            } else {
                (
                    "401 Unauthorized",
                    r#"{"error":"unauthorized","message":"wrong user name or password"}"#,
                )
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

#[test]
fn login_stores_a_token_per_registry_and_logout_forgets_it() {
    cli_test(test_name!(), |run| {
        let url = "https://registry.example";
        let out = run
            .exec()
            .raw(["--registry", url, "login", "--token", "tok-given"])
            .run();
        out.assert_code(0);
        let home = run.runner.home();
        let file = home.join(".config/mcp-j/credentials/registry.example");
        let stored = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}\n{out:?}", file.display()));
        assert_eq!(stored, "tok-given\n");
        let mode = std::fs::metadata(&file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert!(!out.stderr.contains("tok-given"), "the token is never echoed: {out:?}");

        let out = run.exec().raw(["--registry", url, "logout"]).run();
        out.assert_code(0);
        assert!(!file.exists());
        let out = run.exec().raw(["--registry", url, "logout"]).run();
        out.assert_code(0);
        assert!(out.stderr.contains("no token was stored"), "{out:?}");

        // No registry configured, plain http to a non-loopback host: refused, naming the fix.
        let out = run.exec().raw(["login", "--token", "t"]).run();
        out.assert_code(125);
        assert!(out.stderr.contains("--registry URL"), "{out:?}");
        let out = run
            .exec()
            .raw(["--registry", "http://registry.example", "login", "--token", "t"])
            .run();
        out.assert_code(125);
        assert!(out.stderr.contains("use https://"), "{out:?}");
    });
}

#[test]
fn login_with_a_password_gets_the_token_from_the_registry() {
    cli_test(test_name!(), |run| {
        let url = login_registry(2);
        for (password, code) in [("pw", 0), ("nope", 125)] {
            let mut cmd = run.runner.command(MCP_J);
            cmd.args(["--registry", &url, "login", "--username", "alice", "--password-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
            if let Some(mut stdin) = child.stdin.take() {
                let _ = writeln!(stdin, "{password}");
            }
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{stderr}");
            if code != 0 {
                assert!(stderr.contains("wrong user name or password"), "{stderr}");
            }
        }
        let port = url.rsplit(':').next().unwrap_or("");
        let file = run
            .runner
            .home()
            .join(format!(".config/mcp-j/credentials/http-127.0.0.1:{port}"));
        let stored = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(stored, "tok-from-the-registry\n");
    });
}
