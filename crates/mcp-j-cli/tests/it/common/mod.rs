//! The harness of the end-to-end tests: drives the real `mcp-j` binary, as root and as an
//! unprivileged user, with a time bound on every process it starts.
//!
//! # Overview
//!
//! A test is a body run once per [`Runner`] by [`sandbox_test`] (named by [`test_name!`],
//! the test function's own path): as root and as the user
//! named by `MCP_J_TEST_USER` (through `setpriv`) when the test process is root, or only
//! as itself when it is not. The body gets a [`Run`]: temp dirs owned by the runner,
//! [`Run::exec`] to build an `mcp-j exec` command line, [`Run::attack`] to run one
//! `mcp-j-attack` attack in the jail, and [`Outcome`] assertions (`assert_denied`,
//! `assert_ok`, `assert_code`).
//!
//! # Skips
//!
//! A missing kernel feature prints `SKIP <test> (<runner>): needs <feature>` and skips that
//! run, unless `MCP_J_TEST_EXPECT` (a comma list: `userns,seccomp,landlock,landlock-net,
//! unprivileged`, …) declares the feature: then the test fails. Features are probed on
//! the host, as the runner, with `mcp-j-attack features` (which only asks the kernel).
//!
//! # Processes
//!
//! Every process the harness starts has a deadline; past it the harness SIGKILLs that
//! process (by the pid it started, nothing else) and fails the test. After `mcp-j` exits,
//! its stdout must reach EOF within a grace period: a jail process holding it open
//! outlived `mcp-j`.
//!
//! # The attack binary
//!
//! `mcp-j-attack` lives in another package. The harness builds it once per test binary
//! (`cargo build -p mcp-j-attack`, same profile) and takes it from next to `mcp-j`;
//! `MCP_J_ATTACK_BIN` overrides that (for prebuilt test runs without cargo).

#![allow(dead_code)]

pub mod session;
pub mod testnet;

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The binary under test.
pub const MCP_J: &str = env!("CARGO_BIN_EXE_mcp-j");

/// How long one `mcp-j` run may take unless the test says otherwise.
pub const RUN_BOUND: Duration = Duration::from_secs(60);
/// How long stdout and stderr may stay open after the process the harness started exited.
pub const EOF_GRACE: Duration = Duration::from_secs(5);
/// How much of a child's stdout or stderr the harness keeps.
const CAPTURE_LIMIT: usize = 1 << 20;

/// What every sandbox test needs from the machine.
pub const BASE_NEEDS: &[&str] = &["userns", "seccomp"];

/// The environment variable that names the unprivileged user when the tests run as root.
pub const TEST_USER_VAR: &str = "MCP_J_TEST_USER";
/// The environment variable that declares which features the machine offers.
pub const EXPECT_VAR: &str = "MCP_J_TEST_EXPECT";

// ---------------------------------------------------------------------------------------
// The attack binary

/// The path of `mcp-j-attack`, built once per test binary.
pub fn attack_bin() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_attack_bin) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The directory of `mcp-j-attack`, which tests expose with `--ro`.
pub fn attack_dir() -> &'static Path {
    attack_bin().parent().unwrap_or(Path::new("/"))
}

fn build_attack_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MCP_J_ATTACK_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("MCP_J_ATTACK_BIN={} is not a file", p.display()))
        };
    }
    let mcp_j = Path::new(MCP_J);
    let dir = mcp_j
        .parent()
        .ok_or_else(|| format!("`{MCP_J}` has no parent directory"))?;
    let expected = dir.join("mcp-j-attack");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    // Same target dir and profile as mcp-j: `target/debug` is profile `dev`, any other
    // directory name is its profile's name.
    let profile = match dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "-p", "mcp-j-attack", "--profile", profile]);
    if let Some(target_dir) = dir.parent() {
        cmd.arg("--target-dir").arg(target_dir);
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = run_bounded(cmd, Duration::from_secs(600), "cargo build -p mcp-j-attack").map_err(|e| {
        format!(
            "could not build the attack program: {e}\n\
                 hint: run `cargo build -p mcp-j-attack` yourself, or set MCP_J_ATTACK_BIN"
        )
    })?;
    if out.code != Some(0) {
        return Err(format!(
            "`cargo build -p mcp-j-attack` failed ({}):\n{}\n\
             hint: run it yourself to see why, or set MCP_J_ATTACK_BIN",
            out.status_text(),
            out.stderr
        ));
    }
    if !expected.is_file() {
        return Err(format!(
            "`cargo build -p mcp-j-attack` succeeded but {} does not exist (a custom \
             target dir or --target?); set MCP_J_ATTACK_BIN",
            expected.display()
        ));
    }
    Ok(expected)
}

// ---------------------------------------------------------------------------------------
// Features and skips

/// The features `MCP_J_TEST_EXPECT` declares.
pub fn expected_features() -> &'static BTreeSet<String> {
    static EXPECT: OnceLock<BTreeSet<String>> = OnceLock::new();
    EXPECT.get_or_init(|| {
        std::env::var(EXPECT_VAR)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// Whether the machine declared `feature`.
pub fn expected(feature: &str) -> bool {
    expected_features().contains(feature)
}

/// What the kernel offers to one user, from `mcp-j-attack features` run on the host.
#[derive(Debug, Clone)]
pub struct Features {
    /// The probe's JSON, for messages.
    pub raw: String,
    userns: bool,
    landlock_abi: u64,
    seccomp: bool,
}

impl Features {
    fn parse(raw: &str) -> Result<Features, String> {
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| format!("bad features JSON `{raw}`: {e}"))?;
        Ok(Features {
            raw: raw.to_owned(),
            userns: v["userns"].as_bool().unwrap_or(false),
            landlock_abi: v["landlock_abi"].as_u64().unwrap_or(0),
            seccomp: v["seccomp"].as_bool().unwrap_or(false),
        })
    }

    /// Whether the feature is there; `None` for a name this harness does not know.
    pub fn has(&self, feature: &str) -> Option<bool> {
        Some(match feature {
            "userns" => self.userns,
            "seccomp" => self.seccomp,
            "landlock" => self.landlock_abi >= 1,
            "landlock-net" => self.landlock_abi >= 4,
            "landlock-scope" => self.landlock_abi >= 6,
            _ => return None,
        })
    }
}

/// Skips (or, if the feature was declared, fails) one run. Returns the failure message.
fn skip(test: &str, who: &str, feature: &str, why: &str) -> Option<String> {
    if expected(feature) {
        Some(format!(
            "{test} ({who}): needs {feature}, which {EXPECT_VAR} declares, but {why}"
        ))
    } else {
        eprintln!("SKIP {test} ({who}): needs {feature} ({why})");
        None
    }
}

// ---------------------------------------------------------------------------------------
// Runners

/// Who runs `mcp-j`.
#[derive(Debug, Clone)]
pub enum Who {
    /// The test process is root and runs it as itself.
    Root,
    /// The test process is root and runs it as this user, through setpriv.
    User { name: String, uid: u32, gid: u32 },
    /// The test process is not root and runs it as itself.
    Me { uid: u32, gid: u32 },
}

/// One way of running the tests: a user and a home directory of its own.
pub struct Runner {
    /// Who runs mcp-j.
    pub who: Who,
    home: TempDir,
}

fn own_ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::MAX)
    };
    (field("Uid:"), field("Gid:"))
}

/// The effective uid of the test process.
pub fn euid() -> u32 {
    own_ids().0
}

fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let mut cmd = Command::new("id");
        cmd.args([flag, name]);
        let out = run_bounded(cmd, Duration::from_secs(10), "id")?;
        if out.code != Some(0) {
            return Err(format!("`id {flag} {name}` failed: {}", out.stderr.trim()));
        }
        out.stdout
            .trim()
            .parse()
            .map_err(|_| format!("`id {flag} {name}` printed `{}`", out.stdout.trim()))
    };
    Ok((id("-u")?, id("-g")?))
}

fn setpriv_works() -> Result<(), String> {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    OK.get_or_init(|| {
        let mut cmd = Command::new("setpriv");
        cmd.arg("--version");
        let out = run_bounded(cmd, Duration::from_secs(10), "setpriv --version")?;
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(format!("`setpriv --version` failed: {}", out.stderr.trim()))
        }
    })
    .clone()
}

impl Runner {
    fn new(who: Who) -> Result<Runner, String> {
        let home = tempfile::Builder::new()
            .prefix("mcp-j-test-home-")
            .tempdir()
            .map_err(|e| format!("temp home: {e}"))?;
        let runner = Runner { who, home };
        runner.chown(runner.home.path());
        Ok(runner)
    }

    /// A short name for messages: `root`, `user mcpj-test (uid 999)`, `uid 1000`.
    pub fn label(&self) -> String {
        match &self.who {
            Who::Root => "root".to_owned(),
            Who::User { name, uid, .. } => format!("user {name} (uid {uid})"),
            Who::Me { uid, .. } => format!("uid {uid}"),
        }
    }

    /// This runner's home directory (a temp dir of its own: `HOME` in its commands).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The host uid and gid of this runner.
    pub fn ids(&self) -> (u32, u32) {
        match self.who {
            Who::Root => (0, 0),
            Who::User { uid, gid, .. } | Who::Me { uid, gid } => (uid, gid),
        }
    }

    /// Whether this runner is root on the host.
    pub fn is_root(&self) -> bool {
        matches!(self.who, Who::Root)
    }

    /// Gives `path` to this runner (a no-op unless the harness is root running as another
    /// user).
    pub fn chown(&self, path: &Path) {
        if let Who::User { uid, gid, .. } = self.who
            && let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid))
        {
            panic!("chown {} to {uid}:{gid}: {e}", path.display());
        }
    }

    /// A command that runs `program` as this runner, with a clean environment.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = match &self.who {
            Who::User { uid, gid, .. } => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program);
                c
            }
            Who::Root | Who::Me { .. } => Command::new(program),
        };
        cmd.env_clear();
        cmd.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
        );
        cmd.env("HOME", self.home.path());
        for (key, value) in std::env::vars_os() {
            let k = key.to_string_lossy();
            let keep = matches!(k.as_ref(), "LANG" | "RUST_BACKTRACE" | "RUST_LOG")
                || (k.starts_with("MCP_J_") && !k.starts_with("MCP_J_TEST_") && k != "MCP_J_ATTACK_BIN");
            if keep {
                cmd.env(key, value);
            }
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// What the kernel offers this runner (probed once per uid).
    pub fn features(&self) -> Result<Features, String> {
        type Probed = Vec<(u32, Result<Features, String>)>;
        static CACHE: OnceLock<Mutex<Probed>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
        let uid = self.ids().0;
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, f)) = cache.iter().find(|(u, _)| *u == uid) {
            return f.clone();
        }
        let mut cmd = self.command(attack_bin());
        cmd.arg("features").current_dir(self.home.path());
        let result = run_bounded(cmd, Duration::from_secs(30), "mcp-j-attack features").and_then(|out| {
            match out.stdout.trim().strip_prefix("ok: ") {
                Some(json) => Features::parse(json),
                None => Err(format!("`mcp-j-attack features` said: {}", out.context())),
            }
        });
        cache.push((uid, result.clone()));
        result
    }
}

/// The runners for this test process. Returns them and the failures of runs that could
/// not be set up though declared.
fn runners(test: &str) -> (Vec<Runner>, Vec<String>) {
    let mut runners = Vec::new();
    let mut failures = Vec::new();
    let mut add = |who: Who, failures: &mut Vec<String>| match Runner::new(who) {
        Ok(r) => runners.push(r),
        Err(e) => failures.push(format!("{test}: {e}")),
    };
    let (uid, gid) = own_ids();
    if uid != 0 {
        add(Who::Me { uid, gid }, &mut failures);
        return (runners, failures);
    }
    add(Who::Root, &mut failures);
    let unprivileged = match std::env::var(TEST_USER_VAR) {
        Err(_) => Err(format!("{TEST_USER_VAR} is not set")),
        Ok(name) => setpriv_works().and_then(|()| {
            let (uid, gid) = lookup_user(&name)?;
            if uid == 0 {
                Err(format!("{TEST_USER_VAR}={name} is root"))
            } else {
                Ok(Who::User { name, uid, gid })
            }
        }),
    };
    match unprivileged {
        Ok(who) => add(who, &mut failures),
        Err(why) => failures.extend(skip(test, "unprivileged", "unprivileged", &why)),
    }
    (runners, failures)
}

// ---------------------------------------------------------------------------------------
// The test driver

/// The path of the test function it is written in, as libtest names the test
/// (`escape::limits::memory_pinning_with_memfds`): the name in the harness's messages, without
/// the test repeating its own name as a string.
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::common::test_path(::std::any::type_name_of_val(&here))
    }};
}
pub(crate) use test_name;

/// The test path from the type name of a fn declared in the test's body
/// (`it::escape::limits::memory_pinning_with_memfds::here`): without the crate and the fn.
pub fn test_path(here: &'static str) -> &'static str {
    let function = here.strip_suffix("::here").unwrap_or(here);
    function.split_once("::").map_or(function, |(_crate, path)| path)
}

/// [`test_name!`] names the test as libtest does, which runs each test on a thread named
/// after it.
#[test]
fn test_name_is_the_path_libtest_runs() {
    assert_eq!(Some(test_name!()), thread::current().name());
}

/// Every test driver call names its test with [`test_name!`], never a string that could
/// drift from the function's name.
#[test]
fn no_test_spells_its_own_name() {
    const DRIVERS: &[&str] = &["sandbox_test", "cli_test", "real_test", "rmcp_test"];
    let mut spelled = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for path in entries.map(|e| e.unwrap_or_else(|e| panic!("read {}: {e}", dir.display())).path()) {
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            for driver in DRIVERS {
                let call = format!("{driver}(");
                for (at, _) in text.match_indices(&call) {
                    if text[at + call.len()..].trim_start().starts_with('"') {
                        spelled.push(format!("{}: {call}\"…", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        spelled.is_empty(),
        "name these tests with test_name!():\n{}",
        spelled.join("\n")
    );
}

/// Runs `body` once per runner (root and unprivileged, or only the current user), after
/// checking [`BASE_NEEDS`] and `needs`. A failing run does not stop the others; the test
/// fails at the end with every failing runner named.
pub fn sandbox_test(test: &str, needs: &[&str], body: impl Fn(&Run)) {
    drive(test, Some(needs), body)
}

/// A test that does not need the sandbox to work (usage errors): still once per runner,
/// but without feature checks.
pub fn cli_test(test: &str, body: impl Fn(&Run)) {
    drive(test, None, body)
}

fn drive(test: &str, needs: Option<&[&str]>, body: impl Fn(&Run)) {
    let (runners, mut failures) = runners(test);
    for runner in &runners {
        let who = runner.label();
        if let Some(needs) = needs {
            match missing_feature(test, runner, needs) {
                Ok(None) => {}
                Ok(Some(skip_failure)) => {
                    failures.extend(skip_failure);
                    continue;
                }
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            }
        }
        eprintln!("=== {test} as {who}");
        let run = Run { runner, test };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&run))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(non-string panic)".to_owned());
            // The panic hook printed the whole message already; the summary names the run.
            let first = msg.lines().next().unwrap_or_default();
            failures.push(format!("{test} FAILED as {who}: {first} (details above)"));
        }
    }
    if !failures.is_empty() {
        panic!("{}", failures.join("\n"));
    }
}

/// `Ok(None)`: the runner has every feature. `Ok(Some(failure))`: one is missing (skipped,
/// or a failure if it was declared). `Err`: the probe itself failed.
fn missing_feature(test: &str, runner: &Runner, needs: &[&str]) -> Result<Option<Option<String>>, String> {
    let who = runner.label();
    let features = runner
        .features()
        .map_err(|e| format!("{test} ({who}): cannot probe features: {e}"))?;
    for &feature in BASE_NEEDS.iter().chain(needs) {
        match features.has(feature) {
            Some(true) => {}
            Some(false) => {
                let why = format!("this machine lacks it for {who} ({})", features.raw);
                return Ok(Some(skip(test, &who, feature, &why)));
            }
            None => return Err(format!("{test}: unknown feature `{feature}`")),
        }
    }
    Ok(None)
}

/// One run of a test body: a runner and the helpers that go with it.
pub struct Run<'a> {
    /// Who runs mcp-j.
    pub runner: &'a Runner,
    /// The test's name, for messages.
    pub test: &'a str,
}

impl Run<'_> {
    /// A fresh temp dir owned by the runner (mode 0700).
    pub fn tempdir(&self) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("mcp-j-test-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temp dir: {e}"));
        self.runner.chown(dir.path());
        dir
    }

    /// Writes a file owned by the runner (mode 0644 unless `mode` says otherwise).
    pub fn write_file(&self, path: &Path, contents: &[u8], mode: u32) {
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        self.runner.chown(path);
    }

    /// Creates a directory owned by the runner.
    pub fn mkdir(&self, path: &Path) {
        std::fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        self.runner.chown(path);
    }

    /// An `mcp-j exec` command line to build.
    pub fn exec(&self) -> Exec<'_> {
        Exec {
            run: self,
            opts: Vec::new(),
            argv: Vec::new(),
            raw: None,
            env: Vec::new(),
            workdir: None,
            bound: RUN_BOUND,
            hooks: Vec::new(),
            net: None,
        }
    }

    /// Runs one attack in the jail with default options.
    pub fn attack(&self, args: &[&str]) -> Outcome {
        self.exec().attack(args).run()
    }

    /// Runs `mcp-j-attack` directly on the host, as the runner, without any sandbox.
    /// Only for harmless probes and positive controls (reading a file the runner owns,
    /// connecting to the test's own listener), never for an attack.
    pub fn host_probe(&self, args: &[&str]) -> Outcome {
        self.host_probe_with(args, |_| {})
    }

    /// [`Run::host_probe`] with a hook on the command (to pass an fd, say).
    pub fn host_probe_with(&self, args: &[&str], hook: impl FnOnce(&mut Command)) -> Outcome {
        let mut cmd = self.runner.command(attack_bin());
        cmd.args(args).current_dir(self.runner.home.path());
        hook(&mut cmd);
        let desc = format!(
            "host: mcp-j-attack {} (as {}, no sandbox)",
            args.join(" "),
            self.runner.label()
        );
        Running::start(cmd, desc, Duration::from_secs(30), None).finish()
    }
}

// ---------------------------------------------------------------------------------------
// mcp-j command lines

type Hook<'r> = Box<dyn FnOnce(&mut Command) + 'r>;

/// Builds and runs `mcp-j exec [OPTS] -- PROG ARGS`.
pub struct Exec<'r> {
    run: &'r Run<'r>,
    opts: Vec<OsString>,
    argv: Vec<OsString>,
    raw: Option<Vec<OsString>>,
    env: Vec<(OsString, OsString)>,
    workdir: Option<PathBuf>,
    bound: Duration,
    hooks: Vec<Hook<'r>>,
    net: Option<&'r testnet::TestNet>,
}

impl<'r> Exec<'r> {
    /// Runs mcp-j inside the test's own network ([`testnet::TestNet`]).
    pub fn in_net(mut self, net: &'r testnet::TestNet) -> Self {
        self.net = Some(net);
        self
    }

    /// Adds sandbox options (`--pids 64`, `--no-subprocess`, …).
    pub fn opts<I, S>(mut self, opts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.opts.extend(opts.into_iter().map(|s| s.as_ref().to_owned()));
        self
    }

    /// Adds one option and its value (`--ro`, path).
    pub fn opt(self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.opts([OsStr::new(name), value.as_ref()])
    }

    /// The working directory (`--workdir`, and mcp-j's own cwd). Default: a fresh temp dir
    /// owned by the runner.
    pub fn workdir(mut self, dir: &Path) -> Self {
        self.workdir = Some(dir.to_owned());
        self
    }

    /// Sets a variable in mcp-j's own environment (not the jail's).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The time bound of this run (default [`RUN_BOUND`]).
    pub fn bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// Runs `mcp-j-attack ARGS` in the jail, its directory exposed with `--ro`.
    pub fn attack(mut self, args: &[&str]) -> Self {
        let mut opts = vec![OsString::from("--ro"), attack_dir().as_os_str().to_owned()];
        opts.append(&mut self.opts);
        self.opts = opts;
        self.argv = std::iter::once(attack_bin().as_os_str().to_owned())
            .chain(args.iter().map(OsString::from))
            .collect();
        self
    }

    /// Runs PROG ARGS in the jail.
    pub fn program<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.argv = argv.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Replaces the whole command line after `mcp-j` (for usage errors).
    pub fn raw<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.raw = Some(args.into_iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// A hook on the `mcp-j` command before it starts (`pre_exec`, say).
    pub fn configure(mut self, hook: impl FnOnce(&mut Command) + 'r) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    fn build(self) -> (Command, String, Duration, Option<TempDir>) {
        let (own, dir) = match &self.workdir {
            Some(d) => (None, d.clone()),
            None => {
                let t = self.run.tempdir();
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        let args: Vec<OsString> = match self.raw {
            Some(raw) => raw,
            None => {
                let mut a = vec![
                    OsString::from("exec"),
                    OsString::from("--workdir"),
                    dir.clone().into_os_string(),
                ];
                a.extend(self.opts);
                a.push(OsString::from("--"));
                a.extend(self.argv);
                a
            }
        };
        let mut cmd = match self.net {
            Some(net) => net.command(self.run.runner, MCP_J),
            None => self.run.runner.command(MCP_J),
        };
        cmd.args(&args).current_dir(&dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for hook in self.hooks {
            hook(&mut cmd);
        }
        let desc = format!(
            "mcp-j {} (as {})",
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            self.run.runner.label()
        );
        (cmd, desc, self.bound, own)
    }

    /// Runs mcp-j to the end (within the bound) and returns what happened.
    pub fn run(self) -> Outcome {
        self.spawn().finish()
    }

    /// Starts mcp-j and returns the running process.
    pub fn spawn(self) -> Running {
        let (cmd, desc, bound, own) = self.build();
        Running::start(cmd, desc, bound, own)
    }
}

// ---------------------------------------------------------------------------------------
// Running processes

/// One captured stream: its bytes so far, the lines as they come, and EOF.
struct Capture {
    data: Arc<Mutex<Vec<u8>>>,
    lines: Receiver<String>,
}

impl Capture {
    fn start(mut stream: impl Read + Send + 'static) -> Capture {
        let data = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&data);
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut partial = Vec::new();
            loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut d) = sink.lock()
                            && d.len() < CAPTURE_LIMIT
                        {
                            d.extend_from_slice(&buf[..n]);
                        }
                        partial.extend_from_slice(&buf[..n]);
                        while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
                            let line: Vec<u8> = partial.drain(..=pos).collect();
                            let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                        }
                    }
                }
            }
            if !partial.is_empty() {
                let _ = tx.send(String::from_utf8_lossy(&partial).into_owned());
            }
            // Dropping tx tells the reader: EOF.
        });
        Capture { data, lines }
    }

    fn text(&self) -> String {
        let d = self.data.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&d).into_owned()
    }

    /// Waits until the stream ends; false if it is still open at `deadline`.
    fn wait_eof(&self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

/// A process the harness started, with its deadline.
pub struct Running {
    child: Child,
    desc: String,
    start: Instant,
    bound: Duration,
    stdout: Capture,
    stderr: Capture,
    _workdir: Option<TempDir>,
}

impl Running {
    fn start(cmd: Command, desc: String, bound: Duration, workdir: Option<TempDir>) -> Running {
        Running::try_start(cmd, desc, bound, workdir).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(mut cmd: Command, desc: String, bound: Duration, workdir: Option<TempDir>) -> Result<Running, String> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {desc}: {e}"))?;
        let stdout = child.stdout.take().map(Capture::start);
        let stderr = child.stderr.take().map(Capture::start);
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(format!("{desc}: no stdout/stderr pipes"));
        };
        Ok(Running {
            child,
            desc,
            start,
            bound,
            stdout,
            stderr,
            _workdir: workdir,
        })
    }

    /// The pid of the process the harness started (mcp-j itself; setpriv execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `timeout`, and within the run's bound) for a stdout line that
    /// satisfies `pred`; returns it. Panics with what was seen if none came.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = (Instant::now() + timeout).min(self.start + self.bound);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(e) => {
                    self.kill();
                    let why = match e {
                        RecvTimeoutError::Timeout => "no such line in time",
                        RecvTimeoutError::Disconnected => "stdout closed first",
                    };
                    panic!(
                        "{}: waiting for a line on stdout: {why}\nstdout:\n{}\nstderr:\n{}",
                        self.desc,
                        self.stdout.text(),
                        self.stderr.text()
                    );
                }
            }
        }
    }

    /// SIGKILLs the process the harness started (by its pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process within its bound (SIGKILL and a panic past it), then for its
    /// stdout and stderr to close.
    pub fn finish(self) -> Outcome {
        self.try_finish().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_finish(mut self) -> Result<Outcome, String> {
        let deadline = self.start + self.bound;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    self.kill();
                    return Err(format!(
                        "{}: still running after {:?}; killed it\nstdout:\n{}\nstderr:\n{}",
                        self.desc,
                        self.bound,
                        self.stdout.text(),
                        self.stderr.text()
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("{}: wait: {e}", self.desc)),
            }
        };
        let elapsed = self.start.elapsed();
        let grace = Instant::now() + EOF_GRACE;
        let stdout_closed = self.stdout.wait_eof(grace);
        let stderr_closed = self.stderr.wait_eof(grace);
        use std::os::unix::process::ExitStatusExt;
        Ok(Outcome {
            desc: self.desc.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
            elapsed,
            outlived: !(stdout_closed && stderr_closed),
        })
    }
}

impl Drop for Running {
    /// A process the harness started never outlives its handle (a test that panics midway
    /// must not leave mcp-j running).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Outcomes

/// What a finished process did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command line and runner, for messages.
    pub desc: String,
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Everything it wrote to stdout (up to 1 MiB).
    pub stdout: String,
    /// Everything it wrote to stderr (up to 1 MiB).
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
    /// Its stdout or stderr stayed open [`EOF_GRACE`] after it exited: something it
    /// started outlived it.
    pub outlived: bool,
}

impl Outcome {
    /// The outcome in a few lines, for failure messages.
    pub fn context(&self) -> String {
        fn clip(s: &str) -> String {
            const MAX: usize = 4000;
            if s.len() <= MAX {
                s.trim_end().to_owned()
            } else {
                let mut cut = MAX;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}… ({} bytes)", &s[..cut], s.len())
            }
        }
        format!(
            "  command: {}\n  status:  {}{}\n  stdout:  {}\n  stderr:  {}",
            self.desc,
            self.status_text(),
            if self.outlived {
                " (stdout/stderr still open after exit: a process outlived it)"
            } else {
                ""
            },
            clip(&self.stdout).replace('\n', "\n           "),
            clip(&self.stderr).replace('\n', "\n           "),
        )
    }

    /// `exit 3`, `signal 9`.
    pub fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown".to_owned(),
        }
    }

    /// The attack program's report: its single stdout line, split into tag and detail.
    pub fn report(&self) -> Result<(&str, &str), String> {
        let lines: Vec<&str> = self.stdout.lines().filter(|l| !l.is_empty()).collect();
        let [line] = lines.as_slice() else {
            return Err(format!(
                "expected exactly one report line on stdout, got {}",
                lines.len()
            ));
        };
        line.split_once(": ")
            .filter(|(tag, _)| ["denied", "escaped", "error", "ok"].contains(tag))
            .ok_or_else(|| format!("not a report line: `{line}`"))
    }

    fn fail(&self, what: String) -> String {
        format!("{what}\n{}", self.context())
    }

    fn check_tree_gone(&self) -> Result<(), String> {
        if self.outlived {
            Err(self.fail("a jail process outlived mcp-j (its stdout/stderr stayed open)".into()))
        } else {
            Ok(())
        }
    }

    /// The report is `denied: <errno> …` with exit 0, and the errno is one of `errnos`
    /// (any, if empty; for a `MIXED` denial of several steps, each step's). Returns the
    /// detail.
    pub fn check_denied(&self, errnos: &[&str]) -> Result<String, String> {
        self.check_tree_gone()?;
        let (tag, detail) = self.report().map_err(|e| self.fail(e))?;
        if tag != "denied" {
            let hint = if tag == "escaped" { "ESCAPE: " } else { "" };
            return Err(self.fail(format!("{hint}expected `denied:`, got `{tag}: {detail}`")));
        }
        if self.code != Some(0) {
            return Err(self.fail("`denied:` but not exit 0".into()));
        }
        if errnos.is_empty() {
            return Ok(detail.to_owned());
        }
        // `EPERM (…)`, or `MIXED (a=EPERM, b=EINVAL)` for several steps that failed
        // differently: then every step's errno must be acceptable.
        let first = detail.split_whitespace().next().unwrap_or("");
        let seen: Vec<&str> = if first == "MIXED" {
            detail
                .split('=')
                .skip(1)
                .filter_map(|part| part.split([',', ')']).next())
                .map(str::trim)
                .collect()
        } else {
            vec![first]
        };
        if let Some(bad) = seen.iter().find(|e| !errnos.contains(e)) {
            return Err(self.fail(format!("denied with `{bad}`, expected one of {errnos:?}")));
        }
        Ok(detail.to_owned())
    }

    /// [`Outcome::check_denied`], panicking on failure.
    pub fn assert_denied(&self, errnos: &[&str]) -> String {
        self.check_denied(errnos).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The report is `ok: …` with exit 0. Returns the detail.
    pub fn check_ok(&self) -> Result<String, String> {
        self.check_tree_gone()?;
        let (tag, detail) = self.report().map_err(|e| self.fail(e))?;
        if tag != "ok" || self.code != Some(0) {
            return Err(self.fail(format!("expected `ok:` and exit 0, got `{tag}: {detail}`")));
        }
        Ok(detail.to_owned())
    }

    /// [`Outcome::check_ok`], panicking on failure.
    pub fn assert_ok(&self) -> String {
        self.check_ok().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The process exited with `code`.
    pub fn check_code(&self, code: i32) -> Result<(), String> {
        self.check_tree_gone()?;
        if self.code == Some(code) {
            Ok(())
        } else {
            Err(self.fail(format!("expected exit {code}")))
        }
    }

    /// [`Outcome::check_code`], panicking on failure.
    pub fn assert_code(&self, code: i32) {
        self.check_code(code).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Collects failures of a table of checks, to report them all at once.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    /// No failures yet.
    pub fn new() -> Failures {
        Failures::default()
    }

    /// Records `result`'s error, if any, under `what`.
    pub fn check<T>(&mut self, what: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(format!("- {what}: {e}"));
                None
            }
        }
    }

    /// Records a failure.
    pub fn fail(&mut self, what: &str, why: impl Into<String>) {
        self.0.push(format!("- {what}: {}", why.into()));
    }

    /// Panics with every failure recorded.
    pub fn assert_none(self) {
        if !self.0.is_empty() {
            panic!("{} check(s) failed:\n{}", self.0.len(), self.0.join("\n"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Host processes

/// Runs a short host command to the end within `bound` (SIGKILL past it).
pub fn run_bounded(mut cmd: Command, bound: Duration, what: &str) -> Result<Outcome, String> {
    cmd.stdin(Stdio::null());
    Running::try_start(cmd, what.to_owned(), bound, None)?.try_finish()
}

/// Waits for a child the test started itself (when [`run_bounded`]'s captured stdio does
/// not fit): its exit status within `bound`, else the child is killed (by its pid) and the
/// test fails naming `what`.
pub fn wait_bounded(child: &mut Child, bound: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("{what}: wait: {e}")) {
            return status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {bound:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A host process as seen in `/proc/PID/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its start time (clock ticks after boot): with the pid, names the process.
    pub start_time: u64,
    /// Its state letter (`Z` for a zombie).
    pub state: char,
    /// Its command name.
    pub comm: String,
}

/// Reads `/proc/PID/stat`; `None` if the process is gone.
pub fn proc_entry(pid: u32) -> Option<ProcEntry> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    Some(ProcEntry {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
        comm,
    })
}

/// Every host process descended from `root` (not `root` itself).
pub fn descendants(root: u32) -> Vec<ProcEntry> {
    let all: Vec<ProcEntry> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter_map(proc_entry)
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<ProcEntry> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            if !found.iter().any(|f| f.pid == p.pid) {
                frontier.push(p.pid);
                found.push(p.clone());
            }
        }
    }
    found
}

/// Whether this very process (same pid and start time) still runs (zombies count as
/// gone).
pub fn still_alive(p: &ProcEntry) -> bool {
    proc_entry(p.pid).is_some_and(|now| now.start_time == p.start_time && now.state != 'Z')
}

/// A unique name for files and sockets of one test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
