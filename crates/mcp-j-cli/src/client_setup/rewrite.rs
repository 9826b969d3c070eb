//! Pure: one server entry of a client's config → the `command` and `args` that run it under
//! mcp-j, or why it is left alone. What the host machine holds (which paths exist, where a
//! bare program name is found) comes through [`Host`], so the decision is testable without
//! touching the filesystem. The way back is not computed from the wrapped arguments: `--undo`
//! puts back the exact text recorded when the entry was wrapped (`record.rs`).
//!
//! - `npx [-y|--yes] PKG [ARGS]` → `run npm:PKG -- ARGS` (`@scope/name@1.2.3` stays as is).
//! - `uvx [--from SPEC] PKG [ARGS]`, `uv tool run …`, `pipx run [--spec SPEC] PKG [ARGS]` →
//!   `run pypi:PKG -- ARGS` (`pkg@1.2` becomes `pkg==1.2`; with `--from`, the package is SPEC
//!   and PKG, when it differs, the `--bin`).
//! - Anything else → `run --ro DIR… -- PROG ARGS`, exposing read-only the program's install
//!   directory and the project of each absolute path argument that exists here.
//!
//! Whatever the form, the entry's `env` names become `--secret NAME=env:NAME` (a name that
//! looks like a credential) or `--env NAME`: the client still sets them, in mcp-j's
//! environment, and mcp-j passes them on by name.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// What the rewrite needs to know about this machine.
pub trait Host {
    /// Whether `path` is a file, a directory, or neither (follows symlinks).
    fn kind(&self, path: &Path) -> PathKind;
    /// `path` with every symlink resolved, when it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
    /// Where a bare program name is found on this machine's `PATH`.
    fn which(&self, program: &str) -> Option<PathBuf>;
    /// The variable names a VS Code `envFile` sets, when the file can be read here.
    fn env_file_names(&self, path: &str) -> Option<Vec<String>>;
    /// The user's home directory: never exposed as a project root.
    fn home(&self) -> Option<PathBuf>;
}

/// What a host path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    File,
    Dir,
    Missing,
}

/// What to do with one server entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Replace its `command` and `args` with these.
    Wrap(Wrapped),
    /// Leave it as it is, for this reason.
    Leave(Leave),
}

/// The entry's new `command` and `args`, and what to tell the user about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    pub command: String,
    pub args: Vec<String>,
    /// What the server now runs as: `npm:PKG`, `pypi:PKG`, or the program.
    pub runs: String,
    /// Host paths exposed read-only.
    pub exposed: Vec<PathBuf>,
    /// The variables of the entry's `env` passed on to the server, secrets marked.
    pub passed: Vec<String>,
    /// Anything the user should check by hand.
    pub notes: Vec<String>,
}

/// Why an entry is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leave {
    /// A remote server (`url`, or `type` http/sse): nothing runs on this machine.
    Remote,
    /// Its command already is mcp-j.
    AlreadyWrapped,
    /// Not something mcp-j can wrap as it stands; the text says why.
    Unsupported(String),
}

impl std::fmt::Display for Leave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leave::Remote => f.write_str("a remote server, nothing runs here"),
            Leave::AlreadyWrapped => f.write_str("already runs under mcp-j"),
            Leave::Unsupported(why) => f.write_str(why),
        }
    }
}

/// `type` values of remote entries across clients.
const REMOTE_TYPES: &[&str] = &["http", "sse", "streamable-http", "streamableHttp", "streamable_http"];

/// Trees every jail already sees (INTERFACE.md, *Sandbox options*): nothing to expose.
const VISIBLE_TREES: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The decision for one entry. `mcp_j` is the absolute path of the mcp-j to put in `command`.
pub fn wrap(entry: &Value, mcp_j: &str, host: &dyn Host) -> Decision {
    match try_wrap(entry, mcp_j, host) {
        Ok(wrapped) => Decision::Wrap(wrapped),
        Err(leave) => Decision::Leave(leave),
    }
}

fn unsupported(why: impl Into<String>) -> Leave {
    Leave::Unsupported(why.into())
}

fn try_wrap(entry: &Value, mcp_j: &str, host: &dyn Host) -> Result<Wrapped, Leave> {
    let Some(entry) = entry.as_object() else {
        return Err(unsupported("not a JSON object"));
    };
    let kind = entry.get("type").and_then(Value::as_str);
    if entry.contains_key("url") || kind.is_some_and(|t| REMOTE_TYPES.contains(&t)) {
        return Err(Leave::Remote);
    }
    if let Some(kind) = kind.filter(|t| *t != "stdio") {
        return Err(unsupported(format!("`type` is `{kind}`, not `stdio`")));
    }
    let Some(command) = entry.get("command").and_then(Value::as_str) else {
        return Err(unsupported("no `command` string"));
    };
    if base_name(command) == "mcp-j" {
        return Err(Leave::AlreadyWrapped);
    }
    let args: Vec<String> = match entry.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| unsupported("`args` holds something other than strings"))?,
        Some(_) => return Err(unsupported("`args` is not a list")),
    };

    let mut notes = Vec::new();
    let mut options = Vec::new();
    if let Some(cwd) = entry.get("cwd").and_then(Value::as_str) {
        // The server ran there and may read relative paths from it.
        options.extend(["--workdir".to_owned(), cwd.to_owned()]);
        notes.push(format!("its `cwd` `{cwd}` becomes its working directory, read-write"));
    }
    let mut passed = Vec::new();
    for name in env_names(entry, host, &mut notes) {
        if crate::preflight::looks_meant_for_the_server(&name) {
            options.extend(["--secret".to_owned(), format!("{name}=env:{name}")]);
            passed.push(format!("`{name}` (as a secret)"));
        } else {
            options.extend(["--env".to_owned(), name.clone()]);
            passed.push(format!("`{name}`"));
        }
    }

    let launcher = crate::preflight::network_launcher(command, &args);
    let (target, rest) = match launcher {
        Some("npx") => {
            let (reference, rest) = npx(&args)?;
            (Target::Package { reference, bin: None }, rest)
        }
        Some("uvx") => python_launcher(&args, "--from")?,
        Some("uv tool run") => python_launcher(&args[2..], "--from")?,
        Some("pipx run") => python_launcher(&args[1..], "--spec")?,
        Some(other) => {
            return Err(unsupported(format!(
                "`{other}` downloads the server when it starts and mcp-j has no mapping for it: install \
                 the server once and point `command` at it"
            )));
        }
        None => (Target::Program(program(command, host)?), args.clone()),
    };

    for url in rest
        .iter()
        .filter(|a| a.starts_with("https://") || a.starts_with("http://"))
    {
        // `mcp-remote URL` and the like: a local bridge to a remote server.
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', '?']).next())
            .unwrap_or(url);
        notes.push(format!(
            "it is given the URL `{url}`: the jail has no network unless `--allow-net {host}` is added to `args`"
        ));
    }
    let mut exposed = Vec::new();
    if let Target::Program(path) = &target
        && path.is_absolute()
    {
        exposed.push(install_dir(path));
        if let Some(real) = host.canonical(path).filter(|real| real != path) {
            exposed.push(install_dir(&real));
        }
    }
    for arg in &rest {
        let path = Path::new(arg);
        if !path.is_absolute() {
            continue;
        }
        match host.kind(path) {
            PathKind::File => exposed.push(project_of(path, host)),
            PathKind::Dir => exposed.push(path.to_path_buf()),
            PathKind::Missing => {}
        }
    }
    let exposed = minimal_cover(exposed.into_iter().filter(|p| !already_visible(p)).collect());

    let mut new_args = vec!["run".to_owned()];
    for dir in &exposed {
        new_args.extend(["--ro".to_owned(), dir.display().to_string()]);
    }
    new_args.extend(options);
    let runs = match target {
        Target::Package { reference, bin } => {
            if let Some(bin) = bin {
                new_args.extend(["--bin".to_owned(), bin]);
            }
            new_args.push(reference.clone());
            if !rest.is_empty() {
                new_args.push("--".to_owned());
                new_args.extend(rest);
            }
            reference
        }
        Target::Program(path) => {
            let program = path.display().to_string();
            new_args.push("--".to_owned());
            new_args.push(program.clone());
            new_args.extend(rest);
            program
        }
    };
    Ok(Wrapped {
        command: mcp_j.to_owned(),
        args: new_args,
        runs,
        exposed,
        passed,
        notes,
    })
}

enum Target {
    Package { reference: String, bin: Option<String> },
    Program(PathBuf),
}

/// The `mcp-j run` arguments that replace a downloading launcher (`npx -y PKG ARGS` →
/// `run npm:PKG -- ARGS`), when mcp-j maps it: the hint `run` and `exec` give when they
/// refuse one.
pub(crate) fn launcher_run_args(launcher: &str, args: &[String]) -> Option<Vec<String>> {
    let (target, rest) = match launcher {
        "npx" => {
            let (reference, rest) = npx(args).ok()?;
            (Target::Package { reference, bin: None }, rest)
        }
        "uvx" => python_launcher(args, "--from").ok()?,
        "uv tool run" => python_launcher(args.get(2..)?, "--from").ok()?,
        "pipx run" => python_launcher(args.get(1..)?, "--spec").ok()?,
        _ => return None,
    };
    let Target::Package { reference, bin } = target else {
        return None;
    };
    let mut out = vec!["run".to_owned()];
    if let Some(bin) = bin {
        out.extend(["--bin".to_owned(), bin]);
    }
    out.push(reference);
    if !rest.is_empty() {
        out.push("--".to_owned());
        out.extend(rest);
    }
    Some(out)
}

fn base_name(command: &str) -> &str {
    command.rsplit('/').next().unwrap_or(command)
}

/// The names of the variables the client sets for this entry: its `env`, and the names in
/// its `envFile` (VS Code) when that file can be read here.
fn env_names(entry: &serde_json::Map<String, Value>, host: &dyn Host, notes: &mut Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = entry
        .get("env")
        .and_then(Value::as_object)
        .map(|env| env.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(file) = entry.get("envFile").and_then(Value::as_str) {
        match host.env_file_names(file) {
            Some(more) => names.extend(more),
            None => notes.push(format!(
                "its `envFile` `{file}` cannot be read here: pass each variable the server needs with \
                 `--env NAME` (or `--secret NAME=env:NAME`) in `args`"
            )),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| is_env_name(n) && seen.insert(n.clone()));
    names
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// `npx [-y|--yes|-q|--quiet|--silent]… PKG [ARGS]` → (`npm:PKG`, ARGS).
fn npx(args: &[String]) -> Result<(String, Vec<String>), Leave> {
    let mut rest = args.iter();
    let package = loop {
        match rest.next().map(String::as_str) {
            Some("-y" | "--yes" | "-q" | "--quiet" | "--silent") => {}
            Some(flag) if flag.starts_with('-') => {
                return Err(unsupported(format!(
                    "`npx {flag}` is not a form mcp-j maps to `npm:PACKAGE`"
                )));
            }
            Some(package) => break package,
            None => return Err(unsupported("`npx` without a package")),
        }
    };
    let reference = format!("npm:{package}");
    checked(&reference)?;
    Ok((reference, rest.cloned().collect()))
}

/// `uvx [--from SPEC] PKG [ARGS]` (and `pipx run [--spec SPEC] PKG [ARGS]`, `from` being
/// `--spec`) → the package and its arguments.
fn python_launcher(args: &[String], from: &str) -> Result<(Target, Vec<String>), Leave> {
    let mut rest = args.iter();
    let mut spec = None;
    let program = loop {
        match rest.next().map(String::as_str) {
            Some("-q" | "--quiet") => {}
            Some(flag) if flag == from => {
                spec = Some(
                    rest.next()
                        .ok_or_else(|| unsupported(format!("`{from}` without a value")))?
                        .as_str(),
                );
            }
            Some(flag) if flag.strip_prefix(from).is_some_and(|v| v.starts_with('=')) => {
                spec = Some(&flag[from.len() + 1..]);
            }
            Some(flag) if flag.starts_with('-') => {
                return Err(unsupported(format!(
                    "`{flag}` is not a launcher option mcp-j maps to `pypi:PACKAGE`"
                )));
            }
            Some(program) => break program,
            None => return Err(unsupported("no package named")),
        }
    };
    let package = spec.unwrap_or(program);
    let (name, version) = match package.split_once("==").or_else(|| package.split_once('@')) {
        Some((name, "latest")) => (name, None),
        Some((name, version)) => (name, Some(version)),
        None => (package, None),
    };
    let reference = match version {
        Some(version) => format!("pypi:{name}=={version}"),
        None => format!("pypi:{name}"),
    };
    checked(&reference)?;
    // With a separate spec, PROGRAM names the console script; the package's own is the default.
    let program_name = program.split(['@', '=']).next().unwrap_or(program);
    let bin = (spec.is_some() && program_name != name).then(|| program_name.to_owned());
    Ok((Target::Package { reference, bin }, rest.cloned().collect()))
}

fn checked(reference: &str) -> Result<(), Leave> {
    mcp_j_policy::reference::parse(reference)
        .map(|_| ())
        .map_err(|e| unsupported(format!("`{reference}` is not a package reference mcp-j takes: {e}")))
}

/// The program as mcp-j should name it: an absolute path stays; a bare name found outside
/// the system directories becomes its absolute path (a client started from a desktop session
/// may have another PATH, and the jail sees only the system's); a relative path is refused.
fn program(command: &str, host: &dyn Host) -> Result<PathBuf, Leave> {
    let path = Path::new(command);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    if command.contains('/') {
        return Err(unsupported(format!(
            "`{command}` is relative to the client's working directory, which is not known here: \
             write it as an absolute path"
        )));
    }
    match host.which(command) {
        Some(found) if !already_visible(&found) => Ok(found),
        _ => Ok(path.to_path_buf()),
    }
}

/// The directory that holds a program's installation: the prefix of a `bin` directory
/// (`/home/me/.venv` for `/home/me/.venv/bin/python`), else the program's directory.
fn install_dir(program: &Path) -> PathBuf {
    crate::diagnose::dir_to_expose(program)
}

/// What to expose for a file argument (a script, a data file): the package it belongs to —
/// the directory holding `node_modules` when the path goes through one, else the nearest
/// directory above it with a `package.json` or `pyproject.toml` (a script needs its
/// dependencies) — else the file's directory; but never the home directory or `/`: a file
/// directly there is exposed alone.
fn project_of(file: &Path, host: &dyn Host) -> PathBuf {
    let parent = file.parent().unwrap_or(file).to_path_buf();
    let mut prefix = PathBuf::new();
    for component in file.components() {
        if component.as_os_str() == "node_modules" {
            return prefix;
        }
        prefix.push(component);
    }
    let home = host.home();
    for dir in parent.ancestors() {
        if dir == Path::new("/") || home.as_deref() == Some(dir) {
            break;
        }
        if ["package.json", "pyproject.toml"]
            .iter()
            .any(|marker| host.kind(&dir.join(marker)) == PathKind::File)
        {
            return dir.to_path_buf();
        }
    }
    if parent == Path::new("/") || home.as_deref() == Some(parent.as_path()) {
        return file.to_path_buf();
    }
    parent
}

fn already_visible(path: &Path) -> bool {
    VISIBLE_TREES.iter().any(|t| path.starts_with(t)) || crate::sandbox_opts::is_system_path(path)
}

/// The paths in their first order, without repeats and without any path inside another.
fn minimal_cover(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let covered = paths
            .iter()
            .enumerate()
            .any(|(j, other)| (other != path && path.starts_with(other)) || (other == path && j < i));
        if !covered {
            kept.push(path.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    const MCP_J: &str = "/home/me/.cargo/bin/mcp-j";

    /// A machine made of a few paths.
    #[derive(Default)]
    struct FakeHost {
        files: Vec<&'static str>,
        dirs: Vec<&'static str>,
        links: BTreeMap<&'static str, &'static str>,
        path: BTreeMap<&'static str, &'static str>,
        env_files: BTreeMap<&'static str, Vec<&'static str>>,
    }

    impl Host for FakeHost {
        fn kind(&self, path: &Path) -> PathKind {
            let path = self.canonical(path).unwrap_or_else(|| path.to_path_buf());
            if self.files.iter().any(|f| Path::new(f) == path) {
                PathKind::File
            } else if self.dirs.iter().any(|d| Path::new(d) == path) {
                PathKind::Dir
            } else {
                PathKind::Missing
            }
        }
        fn canonical(&self, path: &Path) -> Option<PathBuf> {
            let text = path.to_str()?;
            Some(PathBuf::from(self.links.get(text).copied().unwrap_or(text)))
        }
        fn which(&self, program: &str) -> Option<PathBuf> {
            self.path.get(program).map(PathBuf::from)
        }
        fn env_file_names(&self, path: &str) -> Option<Vec<String>> {
            self.env_files
                .get(path)
                .map(|names| names.iter().map(|n| (*n).to_owned()).collect())
        }
        fn home(&self) -> Option<PathBuf> {
            Some(PathBuf::from("/home/me"))
        }
    }

    fn wrapped(entry: Value, host: &FakeHost) -> Wrapped {
        match wrap(&entry, MCP_J, host) {
            Decision::Wrap(w) => w,
            Decision::Leave(why) => panic!("{entry} was left alone: {why}"),
        }
    }

    fn left(entry: Value) -> Leave {
        match wrap(&entry, MCP_J, &FakeHost::default()) {
            Decision::Leave(why) => why,
            Decision::Wrap(w) => panic!("{entry} was wrapped: {w:?}"),
        }
    }

    #[test]
    fn launchers_become_package_references() {
        let host = FakeHost::default();
        let table: &[(Value, &[&str])] = &[
            (
                json!({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-everything"]}),
                &["run", "npm:@modelcontextprotocol/server-everything"],
            ),
            (
                json!({"command": "/usr/bin/npx", "args": ["--yes", "@scope/name@1.2.3", "stdio", "--port", "0"]}),
                &["run", "npm:@scope/name@1.2.3", "--", "stdio", "--port", "0"],
            ),
            (
                json!({"command": "npx", "args": ["pkg@latest"]}),
                &["run", "npm:pkg@latest"],
            ),
            (
                json!({"command": "uvx", "args": ["mcp-server-time", "--local-timezone", "Europe/Paris"]}),
                &["run", "pypi:mcp-server-time", "--", "--local-timezone", "Europe/Paris"],
            ),
            (
                json!({"command": "uvx", "args": ["mcp-server-fetch@2025.4.7"]}),
                &["run", "pypi:mcp-server-fetch==2025.4.7"],
            ),
            (
                json!({"command": "uvx", "args": ["--from", "mcp-git==1.0", "mcp-git-server"]}),
                &["run", "--bin", "mcp-git-server", "pypi:mcp-git==1.0"],
            ),
            (
                json!({"command": "uvx", "args": ["--from=mcp-git", "mcp-git"]}),
                &["run", "pypi:mcp-git"],
            ),
            (
                json!({"command": "pipx", "args": ["run", "mcp-server-time"]}),
                &["run", "pypi:mcp-server-time"],
            ),
            (
                json!({"command": "uv", "args": ["tool", "run", "mcp-server-time@latest"]}),
                &["run", "pypi:mcp-server-time"],
            ),
        ];
        let bridge = wrapped(
            json!({"command": "npx", "args": ["mcp-remote", "https://mcp.example.com/sse"]}),
            &host,
        );
        assert_eq!(
            bridge.args,
            ["run", "npm:mcp-remote", "--", "https://mcp.example.com/sse"]
        );
        assert!(
            bridge.notes[0].contains("--allow-net mcp.example.com"),
            "{:?}",
            bridge.notes
        );
        for (entry, want) in table {
            let got = wrapped(entry.clone(), &host);
            assert_eq!(got.command, MCP_J, "{entry}");
            assert_eq!(got.args, *want, "{entry}");
            assert!(got.exposed.is_empty(), "{entry}");
        }
    }

    #[test]
    fn a_local_program_gets_its_install_dir_and_path_arguments_exposed() {
        let host = FakeHost {
            files: vec![
                "/home/me/.venv/bin/python3.12",
                "/home/me/srv/dist/index.js",
                "/home/me/srv/package.json",
                "/home/me/notes.txt",
                "/opt/tool/bin/server",
                "/home/me/.mcp/node/node_modules/@x/y/dist/index.js",
            ],
            dirs: vec!["/home/me/data", "/etc"],
            links: BTreeMap::from([("/home/me/.venv/bin/python", "/usr/bin/python3.12")]),
            path: BTreeMap::from([("node", "/usr/bin/node"), ("srv", "/home/me/.local/bin/srv")]),
            ..Default::default()
        };
        // A venv's python: the venv (its real binary is in /usr, already visible).
        let got = wrapped(
            json!({"command": "/home/me/.venv/bin/python", "args": ["-m", "server", "/home/me/data", "/missing/x"]}),
            &host,
        );
        assert_eq!(
            got.args,
            [
                "run",
                "--ro",
                "/home/me/.venv",
                "--ro",
                "/home/me/data",
                "--",
                "/home/me/.venv/bin/python",
                "-m",
                "server",
                "/home/me/data",
                "/missing/x"
            ]
        );
        assert_eq!(got.runs, "/home/me/.venv/bin/python");
        // node with a script: the script's package (its package.json), not just dist/.
        let got = wrapped(
            json!({"command": "node", "args": ["/home/me/srv/dist/index.js", "/home/me/notes.txt", "/etc"]}),
            &host,
        );
        assert_eq!(
            got.args,
            [
                "run",
                "--ro",
                "/home/me/srv",
                "--ro",
                "/home/me/notes.txt",
                "--",
                "node",
                "/home/me/srv/dist/index.js",
                "/home/me/notes.txt",
                "/etc"
            ]
        );
        // A script inside node_modules: the directory holding node_modules.
        let got = wrapped(
            json!({"command": "/usr/bin/node", "args": ["/home/me/.mcp/node/node_modules/@x/y/dist/index.js"]}),
            &host,
        );
        assert_eq!(got.exposed, [PathBuf::from("/home/me/.mcp/node")]);
        // A bare name found outside the system: named by its path, its prefix exposed.
        let got = wrapped(json!({"command": "srv"}), &host);
        assert_eq!(
            got.args,
            ["run", "--ro", "/home/me/.local", "--", "/home/me/.local/bin/srv"]
        );
        let got = wrapped(json!({"command": "/opt/tool/bin/server", "args": []}), &host);
        assert_eq!(got.args, ["run", "--ro", "/opt/tool", "--", "/opt/tool/bin/server"]);
    }

    #[test]
    fn env_names_become_env_and_secret_references() {
        let host = FakeHost {
            env_files: BTreeMap::from([("/home/me/.env", vec!["DEBUG", "SLACK_BOT_TOKEN"])]),
            ..Default::default()
        };
        let got = wrapped(
            json!({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x", "LOG_LEVEL": "debug", "API_KEY": "k"}}),
            &host,
        );
        assert_eq!(
            got.args,
            [
                "run",
                "--secret",
                "API_KEY=env:API_KEY",
                "--secret",
                "GITHUB_PERSONAL_ACCESS_TOKEN=env:GITHUB_PERSONAL_ACCESS_TOKEN",
                "--env",
                "LOG_LEVEL",
                "npm:@modelcontextprotocol/server-github"
            ]
        );
        let got = wrapped(
            json!({"type": "stdio", "command": "uvx", "args": ["x"], "envFile": "/home/me/.env"}),
            &host,
        );
        assert_eq!(
            got.args,
            [
                "run",
                "--env",
                "DEBUG",
                "--secret",
                "SLACK_BOT_TOKEN=env:SLACK_BOT_TOKEN",
                "pypi:x"
            ]
        );
        let got = wrapped(
            json!({"command": "uvx", "args": ["x"], "envFile": "${workspaceFolder}/.env"}),
            &host,
        );
        assert_eq!(got.args, ["run", "pypi:x"]);
        assert!(got.notes[0].contains("envFile"), "{:?}", got.notes);
    }

    #[test]
    fn entries_left_alone() {
        assert_eq!(left(json!({"url": "https://mcp.example.com/mcp"})), Leave::Remote);
        assert_eq!(left(json!({"type": "http", "url": "https://x"})), Leave::Remote);
        assert_eq!(left(json!({"type": "sse", "command": "npx"})), Leave::Remote);
        assert_eq!(
            left(json!({"command": "/home/me/.cargo/bin/mcp-j", "args": ["run", "npm:x"]})),
            Leave::AlreadyWrapped
        );
        assert_eq!(
            left(json!({"command": "mcp-j", "args": ["run", "--", "x"]})),
            Leave::AlreadyWrapped
        );
        for entry in [
            json!({"command": "npx", "args": ["-p", "pkg", "cmd"]}),
            json!({"command": "npx", "args": ["pkg@^1.2"]}),
            json!({"command": "uvx", "args": ["--python", "3.12", "x"]}),
            json!({"command": "bunx", "args": ["x"]}),
            json!({"command": "./server"}),
            json!({"command": "x", "args": "not a list"}),
            json!({"args": ["x"]}),
            json!("npx x"),
        ] {
            assert!(matches!(left(entry.clone()), Leave::Unsupported(_)), "{entry}");
        }
    }

    #[test]
    fn a_wrapped_entry_is_left_alone_the_second_time() {
        let host = FakeHost::default();
        let first = wrapped(json!({"command": "npx", "args": ["-y", "x"]}), &host);
        let again = json!({"command": first.command, "args": first.args});
        assert_eq!(wrap(&again, MCP_J, &host), Decision::Leave(Leave::AlreadyWrapped));
    }

    #[test]
    fn nested_paths_are_exposed_once() {
        let cover = minimal_cover(["/a/b", "/a", "/c", "/a/b/c", "/c"].iter().map(PathBuf::from).collect());
        assert_eq!(cover, [PathBuf::from("/a"), PathBuf::from("/c")]);
    }
}
