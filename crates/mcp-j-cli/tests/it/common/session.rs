//! An interactive `mcp-j run` of the fake MCP server (`tests/fixtures/fake_mcp_server.py`),
//! driven line by line: for the proxy and audit end-to-end tests.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{MCP_J, Run};

pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One `mcp-j run` of the fake server, driven line by line.
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    pub workdir: tempfile::TempDir,
}

impl Session {
    pub fn start(run: &Run, opts: &[&str], server_args: &[&str]) -> Session {
        Session::start_with_env(run, opts, server_args, &[])
    }

    /// `mcp-j run --workdir WORKDIR --ro <fixtures> OPTS -- python3 fake_mcp_server.py ARGS`
    /// as the runner's user; stdio left to the caller.
    pub fn command(run: &Run, workdir: &Path, opts: &[&str], server_args: &[&str]) -> Command {
        let mut cmd: Command = run.runner.command(MCP_J);
        cmd.arg("run")
            .arg("--workdir")
            .arg(workdir)
            .arg("--ro")
            .arg(fixtures())
            .args(opts)
            .arg("--")
            .arg("/usr/bin/python3")
            .arg(fixtures().join("fake_mcp_server.py"))
            .args(server_args);
        cmd
    }

    /// As [`Session::start`], with variables in mcp-j's own environment.
    pub fn start_with_env(run: &Run, opts: &[&str], server_args: &[&str], env: &[(&str, &str)]) -> Session {
        let workdir = run.tempdir();
        let mut cmd = Session::command(run, workdir.path(), opts, server_args);
        cmd.envs(env.iter().copied())
            .current_dir(workdir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn mcp-j run: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr_pipe = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Session {
            child,
            stdin,
            lines,
            stderr,
            workdir,
        }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write to mcp-j");
        stdin.flush().expect("flush");
    }

    pub fn send(&mut self, msg: &Value) {
        self.send_bytes(format!("{msg}\n").as_bytes());
    }

    pub fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.recv()
    }

    /// The next line from mcp-j's stdout, which must be one JSON-RPC message.
    pub fn recv(&mut self) -> Value {
        match self.lines.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("mcp-j wrote a non-JSON line `{line}`: {e}"))
            }
            Err(e) => panic!("no reply within {REPLY_TIMEOUT:?} ({e:?}); stderr: {}", self.stderr()),
        }
    }

    /// No further line arrives within `wait`.
    pub fn assert_silent(&mut self, wait: Duration) {
        match self.lines.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("unexpected line from mcp-j: {line}"),
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Wait for mcp-j to exit (bounded); its exit code.
    pub fn wait(&mut self, bound: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if start.elapsed() > bound {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("mcp-j did not exit within {bound:?}; stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every line the server received.
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.workdir.path().join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or(Value::String(l.to_string())))
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
