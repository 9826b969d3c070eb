//! Real MCP servers driven by the official MCP Python SDK's client, through `mcp-j run`.
//!
//! # What runs
//!
//! `scripts/install-test-deps.sh` installs, into `.deps/` at the repository root:
//! `@modelcontextprotocol/server-everything`, `server-filesystem` and `server-memory` (npm,
//! run with the system `/usr/bin/node`) and a venv of the system `/usr/bin/python3` with the
//! SDK (`mcp`), `mcp-server-time`, `mcp-server-git` and `mcp-server-fetch` (PyPI).
//! The client drivers `tests-deps/clients/*.py` run on the HOST, as the runner, with that
//! venv's python; they spawn `mcp-j run … -- SERVER` through the SDK's stdio client,
//! connect, list every tool, call one and print a JSON summary, which these tests check:
//!
//! - `handshake_client.py`: `ClientSession.initialize()`, the handshake era;
//! - `auto_client.py`: `Client(mode="auto")`, which probes `server/discover` and takes the
//!   stateless 2026-07-28 era when the server offers it (mcp-server-time does), and falls
//!   back to the handshake when it does not (server-everything);
//! - `.deps/rmcp/bin/rmcp-client` (built from `tests-deps/rmcp-client`): the Rust SDK's
//!   client, same job and summary, `--mode initialize|auto|discover`.
//!
//! What each server is given in the sandbox is the least it needs (found by trying less):
//! server-everything `--ro .deps/node/node_modules` and nothing else; mcp-server-time
//! `--ro .deps/py` and nothing else. Neither needs an environment variable, network, a
//! writable directory (each test checks the workdir is still empty afterwards) or a
//! subprocess (the `exec` baseline runs them with `--no-subprocess`).
//!
//! Three more servers exercise what a real workload asks of the seccomp allowlist (a node
//! server reading and writing files, one keeping its data in a file, a Python server
//! running `git` as a subprocess): server-filesystem serves its `--workdir`, server-memory
//! keeps its graph in a file there (`--env MEMORY_FILE_PATH=…`), and mcp-server-git works
//! on a repository the test creates there, running `/usr/bin/git` (the sandbox shows
//! `/usr`). Each test checks the result on the host side too.
//!
//! mcp-server-fetch reaches the network: it runs under `--allow-net` inside the test's own
//! network (`common::testnet`, as the `egress` tests do), driver and mcp-j included, and
//! fetches from origins the test serves there.
//!
//! # When `.deps` is missing
//!
//! The test fails with "run scripts/install-test-deps.sh" when `MCP_J_TEST_EXPECT` declares
//! `real-servers` (CI does), and is skipped with that message otherwise; the same for the
//! rmcp client (`install-test-deps.sh --no-rmcp`), which only its own test needs.
//! `MCP_J_TEST_DEPS=DIR` points at another install (default: `<repo>/.deps`).
//!
//! # Time
//!
//! Each driver bounds its session (`--timeout`, 40 s) and SIGKILLs its children past it; the
//! harness SIGKILLs the driver itself past [`DRIVER_BOUND`]. A session takes one to two
//! seconds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::testnet::TestNet;
use crate::common::{EXPECT_VAR, MCP_J, Outcome, Run, euid, expected, run_bounded, sandbox_test, test_name};
use serde_json::Value;

/// The feature `MCP_J_TEST_EXPECT` declares to make a missing install a failure.
const FEATURE: &str = "real-servers";
/// The driver's own bound on its session (it exits 124 past it).
const DRIVER_TIMEOUT_SECS: u32 = 40;
/// The harness's bound on a driver (the driver's watchdog fires 10 s after its timeout).
const DRIVER_BOUND: Duration = Duration::from_secs(60);
/// JSON-RPC "Invalid params": what a refused tool call gets.
const INVALID_PARAMS: i64 = -32602;
/// The stateless era's protocol version.
const MODERN: &str = "2026-07-28";

// ---------------------------------------------------------------------------------------
// The installed servers and clients

/// Where the install script put things.
pub struct Deps {
    /// `.deps/node/node_modules`: exposed read-only to server-everything.
    pub node_modules: PathBuf,
    /// server-everything's entry point.
    pub everything: PathBuf,
    /// server-filesystem's entry point.
    filesystem: PathBuf,
    /// server-memory's entry point.
    memory: PathBuf,
    /// `.deps/py`: the venv, exposed read-only to mcp-server-time.
    venv: PathBuf,
    /// The venv's python (a symlink to /usr/bin/python3, which the sandbox shows).
    pub python: PathBuf,
    /// `tests-deps/clients`: the Python drivers.
    pub clients: PathBuf,
    /// `.deps/rmcp/bin/rmcp-client`: the Rust SDK's client, built from tests-deps/rmcp-client.
    rmcp_client: PathBuf,
}

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.ancestors().nth(2).unwrap_or(manifest);
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned())
}

fn locate() -> Result<Deps, String> {
    let root = repo_root();
    let dir = std::env::var_os("MCP_J_TEST_DEPS").map_or_else(|| root.join(".deps"), PathBuf::from);
    // `--ro` exposes what a path resolves to, at its resolved path: a symlink on the way to
    // a server's files would leave the server's own path missing in the sandbox. Resolve the
    // directories exposed, but not the files in them: the venv's `bin/python` must stay the
    // symlink from which Python finds its venv.
    let real = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let node_modules = real(dir.join("node/node_modules"));
    let venv = real(dir.join("py"));
    let deps = Deps {
        everything: node_modules.join("@modelcontextprotocol/server-everything/dist/index.js"),
        filesystem: node_modules.join("@modelcontextprotocol/server-filesystem/dist/index.js"),
        memory: node_modules.join("@modelcontextprotocol/server-memory/dist/index.js"),
        python: venv.join("bin/python"),
        node_modules,
        venv,
        clients: root.join("tests-deps/clients"),
        rmcp_client: dir.join("rmcp/bin/rmcp-client"),
    };
    // The stamps are written last: an interrupted install has none.
    let needed = [
        dir.join("node/.installed"),
        deps.everything.clone(),
        deps.filesystem.clone(),
        deps.memory.clone(),
        dir.join("py/.installed"),
        deps.venv.join("lib/python3.11/site-packages/mcp_server_git"),
        deps.venv.join("lib/python3.11/site-packages/mcp_server_fetch"),
        deps.python.clone(),
        deps.clients.join("handshake_client.py"),
        deps.clients.join("auto_client.py"),
    ];
    all_there(&needed).map(|()| deps)
}

fn all_there(paths: &[PathBuf]) -> Result<(), String> {
    let missing: Vec<String> = paths
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// Skips (`None`) or fails the test when `found` is an error, as [`FEATURE`] says.
fn required<T>(test: &str, what: &str, found: Result<T, &String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) if expected(FEATURE) => panic!(
            "{test}: {what} not installed ({why}): run scripts/install-test-deps.sh ({EXPECT_VAR} declares {FEATURE})"
        ),
        Err(why) => {
            eprintln!("SKIP {test}: needs {FEATURE}: {what} not installed ({why}): run scripts/install-test-deps.sh");
            None
        }
    }
}

/// The installed servers and Python clients, or `None` when the test is to be skipped.
pub fn deps(test: &str) -> Option<&'static Deps> {
    static DEPS: OnceLock<Result<Deps, String>> = OnceLock::new();
    required(test, "the real MCP servers are", DEPS.get_or_init(locate).as_ref())
}

/// A real-server test: skipped or failed as [`required`] says, else once per runner.
fn real_test(test: &str, body: impl Fn(&Run, &Deps)) {
    let Some(deps) = deps(test) else { return };
    sandbox_test(test, &[], |run| body(run, deps));
}

/// [`real_test`] that also needs the rmcp client (`install-test-deps.sh --no-rmcp` leaves it
/// out).
fn rmcp_test(test: &str, body: impl Fn(&Run, &Deps)) {
    let Some(deps) = deps(test) else { return };
    let dir = deps.rmcp_client.ancestors().nth(2).unwrap_or(Path::new("/"));
    let found = all_there(&[dir.join(".installed"), deps.rmcp_client.clone()]);
    if required(test, "the rmcp client is", found.as_ref().map(|_| ())).is_none() {
        return;
    }
    sandbox_test(test, &[], |run| body(run, deps));
}

#[derive(Clone, Copy, Debug)]
enum Server {
    /// `@modelcontextprotocol/server-everything` (TypeScript SDK 1.x: handshake era only).
    Everything,
    /// `mcp-server-time` (Python SDK 2.x: both eras).
    Time,
    /// `@modelcontextprotocol/server-filesystem`, serving the workdir.
    Filesystem,
    /// `@modelcontextprotocol/server-memory`, its graph in `memory.jsonl` in the workdir.
    Memory,
    /// `mcp-server-git`, on the repository that is the workdir.
    Git,
    /// `mcp-server-fetch`, which fetches URLs over HTTP (through mcp-j's egress proxy).
    Fetch,
}

impl Server {
    /// What the server needs in the sandbox: its install, read-only, and for the memory
    /// server where to keep its graph. Nothing else.
    fn sandbox_opts(self, deps: &Deps, workdir: &Path) -> Vec<OsString> {
        let dir = match self {
            Server::Everything | Server::Filesystem | Server::Memory => &deps.node_modules,
            Server::Time | Server::Git | Server::Fetch => &deps.venv,
        };
        let mut opts: Vec<OsString> = vec!["--ro".into(), dir.into()];
        if let Server::Memory = self {
            let mut file = OsString::from("MEMORY_FILE_PATH=");
            file.push(workdir.join(MEMORY_FILE));
            opts.extend(["--env".into(), file]);
        }
        if let Server::Fetch = self {
            // No node or npm on its PATH (only the venv's bin): readabilipy, which turns
            // the page into Markdown, otherwise runs `npm install` into its own package
            // directory at the first fetch, and raises when that fails (the venv is
            // read-only, the registry not allowlisted); without node it extracts in Python.
            let mut path = OsString::from("PATH=");
            path.push(deps.venv.join("bin"));
            opts.extend(["--env".into(), path]);
        }
        opts
    }

    fn argv(self, deps: &Deps, workdir: &Path) -> Vec<OsString> {
        let node = |entry: &Path| -> Vec<OsString> { vec!["/usr/bin/node".into(), entry.into()] };
        match self {
            Server::Everything => vec!["/usr/bin/node".into(), deps.everything.clone().into(), "stdio".into()],
            Server::Time => vec![deps.python.clone().into(), "-m".into(), "mcp_server_time".into()],
            Server::Filesystem => {
                let mut argv = node(&deps.filesystem);
                argv.push(workdir.into());
                argv
            }
            Server::Memory => node(&deps.memory),
            Server::Git => vec![
                deps.python.clone().into(),
                "-m".into(),
                "mcp_server_git".into(),
                "--repository".into(),
                workdir.into(),
            ],
            // --allow-private-ips: inside the jail an allowlisted name resolves (through
            // mcp-j's DNS stub) to a synthetic 127.77.x.y address, which the server's own
            // guard against private destinations would refuse before any request. Where it
            // may connect is mcp-j's allowlist's to decide, and that is what is tested.
            Server::Fetch => vec![
                deps.python.clone().into(),
                "-m".into(),
                "mcp_server_fetch".into(),
                "--allow-private-ips".into(),
            ],
        }
    }
}

/// Where server-memory keeps its graph, in the workdir.
const MEMORY_FILE: &str = "memory.jsonl";

#[derive(Clone, Copy, Debug)]
enum Client {
    /// `handshake_client.py`: the Python SDK's `ClientSession` + `initialize`.
    Handshake,
    /// `auto_client.py`: the Python SDK's `Client(mode="auto")` (or `--mode`).
    Auto,
    /// `rmcp-client`: the Rust SDK's client, `--mode initialize|auto|discover`.
    Rmcp,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Handshake => "handshake_client.py",
            Client::Auto => "auto_client.py",
            Client::Rmcp => "rmcp-client",
        }
    }

    /// The driver, run as the runner (inside `net` when there is one: mcp-j, which the
    /// driver starts, then serves the jail's egress there).
    fn command(self, run: &Run, deps: &Deps, net: Option<&TestNet>) -> Command {
        let program = match self {
            Client::Handshake | Client::Auto => &deps.python,
            Client::Rmcp => &deps.rmcp_client,
        };
        let mut cmd = match net {
            Some(net) => net.command(run.runner, program),
            None => run.runner.command(program),
        };
        if let Client::Handshake | Client::Auto = self {
            // -B: the drivers live in the repository; no __pycache__ there.
            cmd.arg("-B").arg(deps.clients.join(self.name()));
        }
        cmd
    }
}

// ---------------------------------------------------------------------------------------
// One session: driver → mcp-j → server

/// Builds and runs `python DRIVER [ARGS] -- mcp-j SUBCOMMAND --workdir W [OPTS] -- SERVER`.
struct Session<'a> {
    run: &'a Run<'a>,
    deps: &'a Deps,
    client: Client,
    server: Server,
    subcommand: &'static str,
    opts: Vec<OsString>,
    driver_args: Vec<String>,
    /// A workdir the test made (and checks afterwards); `None`: a fresh one that must stay
    /// empty.
    workdir: Option<&'a Path>,
    /// The test's own network, where driver, mcp-j and server run.
    net: Option<&'a TestNet>,
}

impl<'a> Session<'a> {
    fn new(run: &'a Run<'a>, deps: &'a Deps, client: Client, server: Server) -> Session<'a> {
        Session {
            run,
            deps,
            client,
            server,
            subcommand: "run",
            opts: Vec::new(),
            driver_args: Vec::new(),
            workdir: None,
            net: None,
        }
    }

    /// Run the driver (so mcp-j and the server) inside the test's own network.
    fn in_net(mut self, net: &'a TestNet) -> Self {
        self.net = Some(net);
        self
    }

    /// Run the server in `dir` (the test's own, which the server may write to).
    fn in_workdir(mut self, dir: &'a Path) -> Self {
        self.workdir = Some(dir);
        self
    }

    /// `mcp-j exec` instead of `run`: stdio straight through, no proxy.
    fn via_exec(mut self) -> Self {
        self.subcommand = "exec";
        self
    }

    /// mcp-j options (`--deny-tool`, `get-env`).
    fn opts(mut self, opts: &[&str]) -> Self {
        self.opts.extend(opts.iter().map(OsString::from));
        self
    }

    /// `--mode` of the auto and rmcp drivers.
    fn mode(mut self, mode: &str) -> Self {
        self.driver_args.extend(["--mode".to_owned(), mode.to_owned()]);
        self
    }

    /// Call `tool` with `arguments` (a JSON object) after listing the tools.
    fn call(mut self, tool: &str, arguments: &str) -> Self {
        self.driver_args.extend([
            "--call".to_owned(),
            tool.to_owned(),
            "--arguments".to_owned(),
            arguments.to_owned(),
        ]);
        self
    }

    /// The call must be answered with a JSON-RPC error.
    fn expect_error(mut self) -> Self {
        self.driver_args.push("--expect-error".to_owned());
        self
    }

    /// Runs the driver to the end; panics unless it reports success.
    fn go(self) -> Summary {
        self.finish(Summary::parse)
    }

    /// Runs the driver to the end; panics unless the call got a result with `isError` (a
    /// tool's own failure, not a JSON-RPC error), which the driver reports as a failed
    /// session.
    fn go_expecting_tool_error(self) -> Summary {
        self.finish(Summary::parse_tool_error)
    }

    fn finish(self, parse: fn(Outcome) -> Summary) -> Summary {
        let fresh = self.run.tempdir();
        let workdir = self.workdir.unwrap_or(fresh.path());
        let mut mcp_j: Vec<OsString> = vec![MCP_J.into(), self.subcommand.into(), "--workdir".into(), workdir.into()];
        mcp_j.extend(self.server.sandbox_opts(self.deps, workdir));
        mcp_j.extend(self.opts);
        mcp_j.push("--".into());
        mcp_j.extend(self.server.argv(self.deps, workdir));

        let mut cmd = self.client.command(self.run, self.deps, self.net);
        cmd.args(&self.driver_args)
            .args(["--timeout", &DRIVER_TIMEOUT_SECS.to_string()])
            .arg("--")
            .args(&mcp_j)
            .current_dir(workdir);
        let desc = format!(
            "{} {} -- {} (as {})",
            self.client.name(),
            self.driver_args.join(" "),
            join(&mcp_j),
            self.run.runner.label()
        );
        let out = run_bounded(cmd, DRIVER_BOUND, &desc).unwrap_or_else(|e| panic!("{e}"));
        let summary = parse(out);
        if self.workdir.is_some() {
            return summary;
        }
        let leftovers: Vec<String> = std::fs::read_dir(fresh.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "the server wrote {leftovers:?} into its workdir (it needs none)\n{}",
            summary.out.context()
        );
        summary
    }
}

fn join(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a driver printed, checked to be a success.
struct Summary {
    json: Value,
    out: Outcome,
}

impl Summary {
    /// The summary, whatever it says.
    fn read(out: Outcome) -> Summary {
        assert!(
            !out.outlived,
            "a process outlived the driver (mcp-j or the server kept its stderr open)\n{}",
            out.context()
        );
        let line = out.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        let json: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("the driver printed no JSON summary ({e})\n{}", out.context()));
        Summary { json, out }
    }

    fn parse(out: Outcome) -> Summary {
        let summary = Summary::read(out);
        if summary.out.code != Some(0) || summary.json["ok"] != Value::Bool(true) {
            panic!(
                "the session failed: {}\n{}",
                summary.json["error"].as_str().unwrap_or("(no error in the summary)"),
                summary.out.context()
            );
        }
        summary
    }

    /// A session that went through but whose call's result was `isError` (the driver
    /// exits 1 for it): anything else fails the test.
    fn parse_tool_error(out: Outcome) -> Summary {
        let summary = Summary::read(out);
        let call = &summary.json["call"];
        if summary.out.code != Some(1) || call["is_error"] != Value::Bool(true) || call["text"].as_str().is_none() {
            summary.fail("expected the call to return a result with isError");
        }
        summary
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}\n  summary: {}\n{}", self.json, self.out.context())
    }

    fn protocol_version(&self) -> &str {
        self.json["protocol_version"].as_str().unwrap_or("")
    }

    fn server_name(&self) -> &str {
        self.json["server_info"]["name"].as_str().unwrap_or("")
    }

    fn tools(&self) -> Vec<&str> {
        self.json["tools"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The call's text result (a success, the driver checked, unless the test expected
    /// `isError`).
    fn call_text(&self) -> &str {
        match self.json["call"]["text"].as_str() {
            Some(t) => t,
            None => self.fail("no call result"),
        }
    }

    /// The JSON-RPC error the call got (`--expect-error`: the driver checked there is one).
    fn call_error(&self) -> (i64, &str) {
        let err = &self.json["call"]["error"];
        match (err["code"].as_i64(), err["message"].as_str()) {
            (Some(code), Some(message)) => (code, message),
            _ => self.fail("no call error"),
        }
    }

    fn assert_handshake_era(&self) {
        let v = self.protocol_version();
        if !v.starts_with("20") || v >= MODERN {
            self.fail(&format!("expected a handshake-era protocol version, got `{v}`"));
        }
    }

    fn assert_modern_era(&self) {
        if self.protocol_version() != MODERN {
            self.fail(&format!("expected protocol version {MODERN}"));
        }
    }

    fn assert_lists(&self, present: &[&str], absent: &[&str]) {
        let tools = self.tools();
        for t in present {
            if !tools.contains(t) {
                self.fail(&format!("`{t}` is missing from tools/list"));
            }
        }
        for t in absent {
            if tools.contains(t) {
                self.fail(&format!("`{t}` is listed but must not be"));
            }
        }
    }

    fn assert_echo(&self, message: &str) {
        if self.call_text() != format!("Echo: {message}") {
            self.fail(&format!("echo did not echo `{message}`"));
        }
    }

    /// get_current_time for UTC: a structured result naming UTC, with a +00:00 time.
    fn assert_utc_time(&self) {
        let s = &self.json["call"]["structured"];
        let ok = s["timezone"] == "UTC"
            && s["datetime"]
                .as_str()
                .is_some_and(|d| d.ends_with("+00:00") && d.len() >= 19)
            && self.call_text().contains("\"timezone\": \"UTC\"");
        if !ok {
            self.fail("get_current_time did not return a UTC time");
        }
    }

    fn assert_refused(&self) {
        let (code, _) = self.call_error();
        if code != INVALID_PARAMS {
            self.fail(&format!("expected JSON-RPC error {INVALID_PARAMS}, got {code}"));
        }
    }
}

/// server-everything's tools that need no client capability (sampling, elicitation and
/// roots tools only appear when the client declares those).
const EVERYTHING_TOOLS: &[&str] = &["echo", "get-env", "get-sum", "get-tiny-image", "get-structured-content"];
const TIME_TOOLS: &[&str] = &["get_current_time", "convert_time"];
const ECHO_ARGS: &str = r#"{"message": "hello from mcp-j"}"#;
const UTC_ARGS: &str = r#"{"timezone": "UTC"}"#;

// ---------------------------------------------------------------------------------------
// The sandbox alone (exec: no proxy) — the baseline that tells a sandbox problem from a proxy
// problem

/// Both servers start and serve inside the sandbox with only their install exposed
/// read-only, without starting any subprocess.
#[test]
fn real_servers_serve_inside_the_sandbox_without_the_proxy() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .via_exec()
            .opts(&["--no-subprocess"])
            .call("echo", ECHO_ARGS)
            .go();
        s.assert_handshake_era();
        s.assert_lists(EVERYTHING_TOOLS, &[]);
        s.assert_echo("hello from mcp-j");

        let s = Session::new(run, deps, Client::Auto, Server::Time)
            .via_exec()
            .opts(&["--no-subprocess"])
            .call("get_current_time", UTC_ARGS)
            .go();
        s.assert_modern_era();
        s.assert_lists(TIME_TOOLS, &[]);
        s.assert_utc_time();
    });
}

// ---------------------------------------------------------------------------------------
// Through the proxy: both eras

/// server-everything, handshake era: initialize, list, echo.
#[test]
fn everything_handshake_era_through_run() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .call("echo", ECHO_ARGS)
            .go();
        s.assert_handshake_era();
        if s.server_name() != "mcp-servers/everything" {
            s.fail("serverInfo.name is not server-everything's");
        }
        s.assert_lists(EVERYTHING_TOOLS, &[]);
        s.assert_echo("hello from mcp-j");
    });
}

/// `Client(mode="auto")` against a handshake-only server: its `server/discover` probe is
/// answered with an error through the proxy, it falls back to `initialize`, and the session
/// works.
#[test]
fn everything_auto_mode_falls_back_to_the_handshake_through_run() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Auto, Server::Everything)
            .call("echo", ECHO_ARGS)
            .go();
        s.assert_handshake_era();
        s.assert_lists(EVERYTHING_TOOLS, &[]);
        s.assert_echo("hello from mcp-j");
    });
}

/// mcp-server-time, handshake era.
#[test]
fn time_handshake_era_through_run() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Time)
            .call("get_current_time", UTC_ARGS)
            .go();
        s.assert_handshake_era();
        if s.server_name() != "mcp-time" {
            s.fail("serverInfo.name is not mcp-server-time's");
        }
        s.assert_lists(TIME_TOOLS, &[]);
        s.assert_utc_time();
    });
}

/// mcp-server-time, 2026-07-28 era: `Client(mode="auto")` discovers it, and a client that
/// pins the version (no `server/discover` at all, every request carries its own `_meta`)
/// works too.
#[test]
fn time_modern_era_through_run() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Auto, Server::Time)
            .call("get_current_time", UTC_ARGS)
            .go();
        s.assert_modern_era();
        s.assert_lists(TIME_TOOLS, &[]);
        s.assert_utc_time();

        let s = Session::new(run, deps, Client::Auto, Server::Time)
            .mode(MODERN)
            .call("get_current_time", UTC_ARGS)
            .go();
        s.assert_modern_era();
        s.assert_lists(TIME_TOOLS, &[]);
        s.assert_utc_time();
    });
}

// ---------------------------------------------------------------------------------------
// Tool policy on real servers

/// `--deny-tool get-env`: the tool that would show the server's environment vanishes from
/// the list, and calling it anyway is refused with -32602; the rest still works.
#[test]
fn everything_denied_tool_vanishes_and_is_refused() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--deny-tool", "get-env"])
            .call("get-env", "{}")
            .expect_error()
            .go();
        s.assert_lists(&["echo", "get-sum"], &["get-env"]);
        s.assert_refused();

        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--deny-tool", "get-env"])
            .call("echo", ECHO_ARGS)
            .go();
        s.assert_echo("hello from mcp-j");
    });
}

/// `--allow-tool echo`: only echo is listed and callable; a tool that exists but is not
/// allowed and one that does not exist get the same refusal (existence is not revealed).
#[test]
fn everything_allow_list_shows_only_the_allowed_tool() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--allow-tool", "echo"])
            .call("echo", ECHO_ARGS)
            .go();
        if s.tools() != ["echo"] {
            s.fail("--allow-tool echo: tools/list must show exactly [echo]");
        }
        s.assert_echo("hello from mcp-j");

        let exists = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--allow-tool", "echo"])
            .call("get-sum", r#"{"a": 1, "b": 2}"#)
            .expect_error()
            .go();
        exists.assert_refused();
        let missing = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--allow-tool", "echo"])
            .call("no-such-tool", "{}")
            .expect_error()
            .go();
        missing.assert_refused();
        let (_, a) = exists.call_error();
        let (_, b) = missing.call_error();
        assert_eq!(
            a.replace("get-sum", "TOOL"),
            b.replace("no-such-tool", "TOOL"),
            "the refusal of an existing tool and of a missing one must read the same"
        );
    });
}

/// Policy in the 2026-07-28 era: `--deny-tool convert_time` on mcp-server-time.
#[test]
fn time_denied_tool_vanishes_and_is_refused_in_the_modern_era() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Auto, Server::Time)
            .opts(&["--deny-tool", "convert_time"])
            .call(
                "convert_time",
                r#"{"source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"}"#,
            )
            .expect_error()
            .go();
        s.assert_modern_era();
        s.assert_lists(&["get_current_time"], &["convert_time"]);
        s.assert_refused();
    });
}

// ---------------------------------------------------------------------------------------
// What the server sees

/// server-everything's `get-env` shows the server's whole environment: under `mcp-j run` it
/// is the minimal one (PATH, HOME=/tmp, LANG, TERM) plus what `--env` passes, nothing of
/// the host's.
#[test]
fn everything_sees_only_the_minimal_environment() {
    real_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Handshake, Server::Everything)
            .opts(&["--env", "MCP_J_MARKER=passed"])
            .call("get-env", "{}")
            .go();
        let env: Value = serde_json::from_str(s.call_text())
            .unwrap_or_else(|e| s.fail(&format!("get-env did not return a JSON object: {e}")));
        let Some(env) = env.as_object() else {
            s.fail("get-env did not return a JSON object")
        };
        let allowed = ["PATH", "HOME", "LANG", "TERM", "MCP_J_MARKER"];
        let extra: Vec<&String> = env.keys().filter(|k| !allowed.contains(&k.as_str())).collect();
        if !extra.is_empty() {
            s.fail(&format!("the server sees variables beyond the minimal set: {extra:?}"));
        }
        if env.get("MCP_J_MARKER") != Some(&Value::from("passed")) || env.get("HOME") != Some(&Value::from("/tmp")) {
            s.fail("expected MCP_J_MARKER=passed (from --env) and HOME=/tmp");
        }
    });
}

// ---------------------------------------------------------------------------------------
// The Rust SDK's client (rmcp)

/// rmcp's client through `mcp-j run`: the handshake with server-everything, discovery
/// (`auto`, and `discover` with no fallback) with mcp-server-time, and a denied tool.
#[test]
fn rmcp_client_through_run_in_both_eras() {
    rmcp_test(test_name!(), |run, deps| {
        let s = Session::new(run, deps, Client::Rmcp, Server::Everything)
            .mode("initialize")
            .call("echo", ECHO_ARGS)
            .go();
        s.assert_handshake_era();
        s.assert_lists(EVERYTHING_TOOLS, &[]);
        s.assert_echo("hello from mcp-j");

        for mode in ["auto", "discover"] {
            let s = Session::new(run, deps, Client::Rmcp, Server::Time)
                .mode(mode)
                .call("get_current_time", UTC_ARGS)
                .go();
            s.assert_modern_era();
            s.assert_lists(TIME_TOOLS, &[]);
            s.assert_utc_time();
        }

        let s = Session::new(run, deps, Client::Rmcp, Server::Everything)
            .mode("auto")
            .opts(&["--deny-tool", "get-env"])
            .call("get-env", "{}")
            .expect_error()
            .go();
        s.assert_handshake_era();
        s.assert_lists(&["echo"], &["get-env"]);
        s.assert_refused();
    });
}

// ---------------------------------------------------------------------------------------
// Servers that read and write files and run a subprocess: what the seccomp allowlist must
// keep working for node, python and git

/// server-filesystem reads a file the test put in its workdir, and writes one the host then
/// finds there.
#[test]
fn filesystem_server_reads_and_writes_its_workdir() {
    real_test(test_name!(), |run, deps| {
        let dir = run.tempdir();
        let note = dir.path().join("note.txt");
        run.write_file(&note, b"written on the host\n", 0o644);

        let args = serde_json::json!({ "path": note }).to_string();
        let s = Session::new(run, deps, Client::Handshake, Server::Filesystem)
            .in_workdir(dir.path())
            .call("read_text_file", &args)
            .go();
        s.assert_lists(&["read_text_file", "write_file", "list_directory"], &[]);
        if s.call_text() != "written on the host\n" {
            s.fail("read_text_file did not return the file's contents");
        }

        let reply = dir.path().join("reply.txt");
        let args = serde_json::json!({ "path": reply, "content": "written in the jail\n" }).to_string();
        let s = Session::new(run, deps, Client::Auto, Server::Filesystem)
            .in_workdir(dir.path())
            .call("write_file", &args)
            .go();
        match std::fs::read_to_string(&reply) {
            Ok(text) if text == "written in the jail\n" => {}
            other => s.fail(&format!("write_file left {other:?} in {} on the host", reply.display())),
        }
    });
}

/// server-memory creates an entity in one session, keeps it in its file in the workdir, and
/// a second session reads the graph back.
#[test]
fn memory_server_keeps_its_graph_across_sessions() {
    real_test(test_name!(), |run, deps| {
        let dir = run.tempdir();
        let entity = r#"{"entities": [{"name": "mcp-j", "entityType": "sandbox",
            "observations": ["runs untrusted MCP servers"]}]}"#;
        let s = Session::new(run, deps, Client::Handshake, Server::Memory)
            .in_workdir(dir.path())
            .call("create_entities", entity)
            .go();
        s.assert_lists(&["create_entities", "read_graph", "search_nodes"], &[]);
        let file = dir.path().join(MEMORY_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) if text.contains("runs untrusted MCP servers") => {}
            other => s.fail(&format!("{} on the host holds {other:?}", file.display())),
        }

        let s = Session::new(run, deps, Client::Auto, Server::Memory)
            .in_workdir(dir.path())
            .call("read_graph", "{}")
            .go();
        let text = s.call_text();
        if !(text.contains("\"mcp-j\"") && text.contains("runs untrusted MCP servers")) {
            s.fail("read_graph did not return the entity the first session created");
        }
    });
}

/// Runs `git ARGS` in `dir` as the runner (so the repository is the runner's own), with no
/// user or system configuration.
fn git(run: &Run, dir: &Path, args: &[&str]) {
    let mut cmd = run.runner.command("/usr/bin/git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "user.name=mcp-j test", "-c", "user.email=test@mcp-j.invalid"])
        .args(args)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let out =
        run_bounded(cmd, Duration::from_secs(30), &format!("git {}", args.join(" "))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.code, Some(0), "git {args:?} failed\n{}", out.context());
}

/// mcp-server-git runs `git` (a subprocess, /usr/bin/git) on a repository the test made:
/// `git_log` finds the commit, `git_status` sees the file the host added after it.
#[test]
fn git_server_runs_git_on_a_repository_in_its_workdir() {
    real_test(test_name!(), |run, deps| {
        let dir = run.tempdir();
        run.write_file(&dir.path().join("README"), b"a repository for mcp-server-git\n", 0o644);
        git(run, dir.path(), &["init", "-q", "-b", "main"]);
        git(run, dir.path(), &["add", "README"]);
        git(run, dir.path(), &["commit", "-q", "-m", "first commit from the host"]);
        run.write_file(&dir.path().join("untracked.txt"), b"new\n", 0o644);

        let repo = serde_json::json!({ "repo_path": dir.path() }).to_string();
        let s = Session::new(run, deps, Client::Handshake, Server::Git)
            .in_workdir(dir.path())
            .call("git_log", &repo)
            .go();
        s.assert_lists(&["git_status", "git_log", "git_diff"], &[]);
        if !s.call_text().contains("first commit from the host") {
            s.fail("git_log did not show the commit");
        }

        let s = Session::new(run, deps, Client::Auto, Server::Git)
            .in_workdir(dir.path())
            .call("git_status", &repo)
            .go();
        if !(s.call_text().contains("On branch main") && s.call_text().contains("untracked.txt")) {
            s.fail("git_status did not report the branch and the untracked file");
        }
    });
}

// ---------------------------------------------------------------------------------------
// A server that reaches the network: mcp-server-fetch under --allow-net, in the test's own
// network

/// The allowlisted origin (`origin.test`) and another (`other.test`), both in the test
/// network, both serving [`FETCH_PAGE`] at `/page`.
const FETCH_ORIGIN: &str = "203.0.113.9";
const FETCH_OTHER: &str = "203.0.113.10";
const FETCH_PORT: u16 = 8080;
/// Starts with `<html`, which is how mcp-server-fetch tells HTML (http.server sends a file
/// without an extension as application/octet-stream) and converts it to Markdown.
const FETCH_PAGE: &str = "<html><head><title>A page for mcp-server-fetch</title></head><body><article>\n\
    <h1>Served in the test network</h1>\n\
    <p>This paragraph came from origin.test through the mcp-j egress proxy.</p>\n\
    </article></body></html>\n";
/// The page's text, as the Markdown the server returns holds it.
const FETCH_PAGE_TEXT: &str = "This paragraph came from origin.test through the mcp-j egress proxy.";

/// One origin: Python's http.server as root inside the test network, its request log (one
/// line per request, on stderr) in a file.
struct HttpOrigin {
    child: std::process::Child,
    log: PathBuf,
    /// The log's length once the origin answered the test's own readiness probe.
    probed: u64,
}

impl HttpOrigin {
    /// The request lines logged since the readiness probe.
    fn requests(&self) -> String {
        let log = std::fs::read(&self.log).unwrap_or_else(|e| panic!("read {}: {e}", self.log.display()));
        let start = usize::try_from(self.probed).unwrap_or(usize::MAX).min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }
}

/// The test network with `origin.test` and `other.test` each served by an [`HttpOrigin`]
/// on [`FETCH_PORT`]: `/page` is [`FETCH_PAGE`], `/robots.txt` allows everything.
struct FetchOrigins {
    /// Declared first: the servers go before their network.
    origin: HttpOrigin,
    other: HttpOrigin,
    net: TestNet,
    _site: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl Drop for FetchOrigins {
    fn drop(&mut self) {
        for server in [&mut self.origin, &mut self.other] {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }
}

impl FetchOrigins {
    /// `None` (after saying why) where the harness cannot make a network and the machine
    /// does not declare it.
    fn start() -> Option<FetchOrigins> {
        use crate::common::testnet::FEATURE as TEST_NET;
        if euid() != 0 {
            assert!(
                !expected(TEST_NET),
                "{TEST_NET} is declared but the harness is not root"
            );
            eprintln!("SKIP: mcp-server-fetch's test needs {TEST_NET} (a root harness)");
            return None;
        }
        let net = TestNet::new(
            &[FETCH_ORIGIN, FETCH_OTHER],
            &[("origin.test", FETCH_ORIGIN), ("other.test", FETCH_OTHER)],
        )
        .unwrap_or_else(|e| panic!("the test network: {e}"));
        let site = tempfile::tempdir().unwrap_or_else(|e| panic!("site dir: {e}"));
        let logs = tempfile::tempdir().unwrap_or_else(|e| panic!("log dir: {e}"));
        std::fs::write(site.path().join("page"), FETCH_PAGE).unwrap_or_else(|e| panic!("page: {e}"));
        std::fs::write(site.path().join("robots.txt"), "User-agent: *\nAllow: /\n")
            .unwrap_or_else(|e| panic!("robots.txt: {e}"));
        let serve = |address: &str| -> HttpOrigin {
            let log = logs.path().join(format!("{address}.log"));
            let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
            let child = net
                .root_command("/usr/bin/python3")
                .args([
                    "-m",
                    "http.server",
                    &FETCH_PORT.to_string(),
                    "--bind",
                    address,
                    "--directory",
                ])
                .arg(site.path())
                .stdout(std::process::Stdio::null())
                .stderr(file)
                .spawn()
                .unwrap_or_else(|e| panic!("http.server on {address}: {e}"));
            HttpOrigin { child, log, probed: 0 }
        };
        let mut origins = FetchOrigins {
            origin: serve(FETCH_ORIGIN),
            other: serve(FETCH_OTHER),
            net,
            _site: site,
            _logs: logs,
        };
        // Up when each answers, from the test network outside any jail (bounded).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for (address, server) in [(FETCH_ORIGIN, &mut origins.origin), (FETCH_OTHER, &mut origins.other)] {
            loop {
                let mut curl = origins.net.root_command("curl");
                curl.args([
                    "-sS",
                    "--max-time",
                    "2",
                    &format!("http://{address}:{FETCH_PORT}/robots.txt"),
                ]);
                if run_bounded(curl, Duration::from_secs(5), "curl").is_ok_and(|o| o.code == Some(0)) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the origin on {address}:{FETCH_PORT} did not come up within 10 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            // http.server writes its log line after the response; wait for it.
            let logged = std::time::Instant::now() + Duration::from_secs(5);
            while server.requests().is_empty() {
                assert!(std::time::Instant::now() < logged, "{address}: no request logged");
                std::thread::sleep(Duration::from_millis(20));
            }
            server.probed = std::fs::metadata(&server.log).map_or(0, |m| m.len());
        }
        Some(origins)
    }
}

/// mcp-server-fetch under `mcp-j run --allow-net origin.test:8080`, in the test's own
/// network. Its `fetch` tool returns the page from origin.test; it checks the origin's
/// robots.txt first (the server's default, kept: a permissive one is served), through the
/// same proxy. For other.test, not allowlisted, the proxy answers 403, which the tool
/// returns as its error, mcp-j names the refusal on stderr, and other.test sees no request.
/// Both eras: the handshake client, then `Client(mode="auto")`.
#[test]
fn fetch_server_fetches_the_allowed_origin_and_is_refused_another() {
    real_test(test_name!(), |run, deps| {
        let Some(origins) = FetchOrigins::start() else { return };
        let allow = format!("origin.test:{FETCH_PORT}");

        let url = format!("http://origin.test:{FETCH_PORT}/page");
        let s = Session::new(run, deps, Client::Handshake, Server::Fetch)
            .in_net(&origins.net)
            .opts(&["--allow-net", &allow])
            .call("fetch", &serde_json::json!({ "url": url }).to_string())
            .go();
        s.assert_lists(&["fetch"], &[]);
        let text = s.call_text();
        if !(text.starts_with(&format!("Contents of {url}:")) && text.contains(FETCH_PAGE_TEXT)) {
            s.fail("fetch did not return the page's text");
        }
        let seen = origins.origin.requests();
        if !(seen.contains("\"GET /robots.txt HTTP/1.1\" 200") && seen.contains("\"GET /page HTTP/1.1\" 200")) {
            s.fail(&format!("origin.test did not log robots.txt and the page: {seen:?}"));
        }

        let other = format!("http://other.test:{FETCH_PORT}/page");
        let s = Session::new(run, deps, Client::Auto, Server::Fetch)
            .in_net(&origins.net)
            .opts(&["--allow-net", &allow])
            .call("fetch", &serde_json::json!({ "url": other }).to_string())
            .go_expecting_tool_error();
        // The robots.txt check asks first and gets the 403.
        let text = s.call_text();
        let robots = format!("http://other.test:{FETCH_PORT}/robots.txt");
        if !(text.contains(&robots) && text.contains("received status 403")) {
            s.fail("fetch of other.test did not fail with the proxy's 403");
        }
        if !s
            .out
            .stderr
            .lines()
            .any(|l| l.starts_with("mcp-j: network:") && l.contains("other.test"))
        {
            s.fail("mcp-j did not name the refused destination on stderr");
        }
        let reached = origins.other.requests();
        if !reached.is_empty() {
            s.fail(&format!("other.test was reached: {reached:?}"));
        }
    });
}
