//! `mcp-j client setup`: the real binary against fixture configs of each client, in the real
//! formats (`tests/fixtures/clients/`), installed where each client keeps its config under a
//! temporary HOME. No sandbox is started: these run as whoever runs the tests.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common::MCP_J;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clients");

/// A home directory of its own, and a project directory to run from.
struct Machine {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let base = std::fs::canonicalize(tmp.path()).unwrap_or_else(|e| panic!("canonicalize: {e}"));
        let home = base.join("home/me");
        let project = base.join("work/project");
        for dir in [&home, &project] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        Machine {
            _tmp: tmp,
            home,
            project,
        }
    }

    /// A fixture with `/home/me` made this machine's home, written at `path` (mode 0600).
    fn install(&self, fixture: &str, path: &Path) -> String {
        let text = std::fs::read_to_string(Path::new(FIXTURES).join(fixture))
            .unwrap_or_else(|e| panic!("fixture {fixture}: {e}"))
            .replace("/home/me", &self.home.display().to_string());
        self.write(path, &text);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        text
    }

    fn write(&self, path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    fn home(&self, rest: &str) -> PathBuf {
        self.home.join(rest)
    }

    fn h(&self, rest: &str) -> String {
        self.home(rest).display().to_string()
    }

    fn mcp_j(&self, args: &[&str]) -> Output {
        Command::new(MCP_J)
            .arg("client")
            .arg("setup")
            .args(args)
            .current_dir(&self.project)
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("MCP_J_REGISTRY_URL")
            .output()
            .unwrap_or_else(|e| panic!("{MCP_J}: {e}"))
    }

    fn records(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.home(".local/state/mcp-j/client-setup")) {
            Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
}

fn jsonc(text: &str) -> Value {
    jsonc_parser::parse_to_serde_value::<Value>(text, &Default::default())
        .unwrap_or_else(|e| panic!("not JSONC: {e}\n{text}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    err
}

/// The mcp-j that setup writes into `command`.
fn mcp_j_path() -> String {
    std::fs::canonicalize(MCP_J)
        .unwrap_or_else(|e| panic!("{MCP_J}: {e}"))
        .display()
        .to_string()
}

/// The text with the value of every `"command"` and `"args"` member replaced by a mark: two
/// texts equal under this mask differ in nothing else (comments, other keys, formatting).
fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = ["\"command\"", "\"args\""].iter().filter_map(|k| rest.find(k)).min() {
        let key_end = at + rest[at + 1..].find('"').map_or(0, |i| i + 2);
        out.push_str(&rest[..key_end]);
        let after = &rest[key_end..];
        let Some(colon) = after.find(':') else { break };
        let value = after[colon + 1..].trim_start();
        let start = after.len() - value.len();
        let len = value_len(value);
        out.push_str(": <value>");
        rest = &after[start + len..];
    }
    out.push_str(rest);
    out
}

/// The length of the JSON string or flat array at the start of `text`.
fn value_len(text: &str) -> usize {
    let (mut in_string, mut escaped, mut depth) = (false, false, 0);
    for (i, c) in text.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => {
                in_string = false;
                if depth == 0 {
                    return i + 1;
                }
            }
            (false, _, '"') => in_string = true,
            (false, _, '[') => depth += 1,
            (false, _, ']') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

fn args_of(value: &Value) -> Vec<String> {
    value["args"]
        .as_array()
        .unwrap_or_else(|| panic!("no args in {value}"))
        .iter()
        .map(|a| a.as_str().unwrap_or_else(|| panic!("{a}")).to_owned())
        .collect()
}

#[test]
fn claude_desktop_entries_are_wrapped_with_a_backup_and_a_record() {
    let m = Machine::new();
    let config = m.home(".config/Claude/claude_desktop_config.json");
    let original = m.install("claude_desktop_config.json", &config);
    m.write(&m.home(".venv/bin/python"), "");
    for dir in ["Desktop", "notes"] {
        std::fs::create_dir_all(m.home(dir)).unwrap_or_else(|e| panic!("mkdir: {e}"));
    }

    let err = succeeded(&m.mcp_j(&["claude-desktop"]));
    let text = read(&config);
    let servers = &jsonc(&text)["mcpServers"];
    let me = mcp_j_path();
    for name in ["filesystem", "time", "notes", "github"] {
        assert_eq!(servers[name]["command"], me.as_str(), "{name}: {text}");
    }
    assert_eq!(
        args_of(&servers["filesystem"]),
        [
            "run",
            "--ro",
            &m.h("Desktop"),
            "npm:@modelcontextprotocol/server-filesystem",
            "--",
            &m.h("Desktop")
        ]
    );
    assert_eq!(
        args_of(&servers["time"]),
        ["run", "pypi:mcp-server-time", "--", "--local-timezone=Europe/Paris"]
    );
    assert_eq!(
        args_of(&servers["notes"]),
        [
            "run",
            "--ro",
            &m.h(".venv"),
            "--ro",
            &m.h("notes"),
            "--",
            &m.h(".venv/bin/python"),
            "-m",
            "notes_server",
            &m.h("notes")
        ]
    );
    assert_eq!(
        args_of(&servers["github"]),
        [
            "run",
            "--secret",
            "GITHUB_PERSONAL_ACCESS_TOKEN=env:GITHUB_PERSONAL_ACCESS_TOKEN",
            "npm:@modelcontextprotocol/server-github"
        ]
    );
    // The client keeps setting the variable (for mcp-j, which passes it on by name).
    assert_eq!(
        servers["github"]["env"],
        json!({"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})
    );
    assert_eq!(mask(&text), mask(&original), "only command and args changed:\n{text}");
    assert_eq!(mode(&config), 0o600);

    let backup = m.home(".config/Claude/claude_desktop_config.json.mcp-j-backup");
    assert_eq!(read(&backup), original);
    assert_eq!(mode(&backup), 0o600);
    assert!(err.contains(&backup.display().to_string()), "{err}");
    assert!(err.contains(&format!("exposed read-only: `{}`", m.h(".venv"))), "{err}");

    let records = m.records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(mode(&records[0]), 0o600);
    assert_eq!(mode(records[0].parent().unwrap_or_else(|| panic!("a dir"))), 0o700);
    let record: Value = serde_json::from_str(&read(&records[0])).unwrap_or_else(|e| panic!("record: {e}"));
    assert_eq!(record["entries"].as_array().map(Vec::len), Some(4));
    assert_eq!(record["entries"][1]["original"]["command"], "uvx");
}

#[test]
fn vscode_keeps_comments_trailing_commas_inputs_and_remote_entries() {
    let m = Machine::new();
    let config = m.home(".config/Code/User/mcp.json");
    let original = m.install("vscode_mcp.json", &config);

    let err = succeeded(&m.mcp_j(&["vscode"]));
    let text = read(&config);
    let value = jsonc(&text);
    let servers = &value["servers"];
    assert_eq!(
        args_of(&servers["Perplexity"]),
        [
            "run",
            "--secret",
            "PERPLEXITY_API_KEY=env:PERPLEXITY_API_KEY",
            "npm:server-perplexity-ask"
        ]
    );
    assert_eq!(servers["Perplexity"]["type"], "stdio");
    assert_eq!(
        servers["Perplexity"]["env"]["PERPLEXITY_API_KEY"],
        "${input:perplexity-key}"
    );
    assert_eq!(args_of(&servers["fetch"]), ["run", "pypi:mcp-server-fetch"]);
    assert_eq!(
        servers["github"],
        json!({"type": "http", "url": "https://api.githubcopilot.com/mcp/"})
    );
    assert_eq!(value["inputs"], jsonc(&original)["inputs"]);
    assert_eq!(mask(&text), mask(&original), "{text}");
    assert!(
        text.contains("\"command\": \"") && text.contains("\", // from PyPI"),
        "{text}"
    );
    assert!(err.contains("`github`: left alone: a remote server"), "{err}");
}

#[test]
fn cursor_user_and_project_configs_are_all_found_without_a_target() {
    let m = Machine::new();
    // The user file is a dotfile manager's link: it stays a link, its target is written.
    let dotfile = m.home("dotfiles/cursor.json");
    let original = m.install("cursor_mcp.json", &dotfile);
    let link = m.home(".cursor/mcp.json");
    std::fs::create_dir_all(m.home(".cursor")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::os::unix::fs::symlink(&dotfile, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
    let project = m.project.join(".cursor/mcp.json");
    m.install("cursor_mcp.json", &project);

    let err = succeeded(&m.mcp_j(&[]));
    assert!(err.contains(&format!("Cursor (user): {}", link.display())), "{err}");
    assert!(
        err.contains(&format!("Cursor (project): {}", project.display())),
        "{err}"
    );
    assert!(err.contains("`hello`: left alone: already runs under mcp-j"), "{err}");
    assert!(err.contains("`linear`: left alone: a remote server"), "{err}");
    assert!(
        std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "the link was replaced"
    );
    for file in [&dotfile, &project] {
        let text = read(file);
        let servers = &jsonc(&text)["mcpServers"];
        assert_eq!(
            args_of(&servers["sequential-thinking"]),
            ["run", "npm:@modelcontextprotocol/server-sequential-thinking"]
        );
        assert_eq!(servers["hello"], jsonc(&original)["mcpServers"]["hello"]);
        assert_eq!(servers["linear"], json!({"url": "https://mcp.linear.app/sse"}));
        assert_eq!(mask(&text), mask(&original));
    }
    assert_eq!(m.records().len(), 2);
}

#[test]
fn claude_code_user_project_and_local_scopes() {
    let m = Machine::new();
    let user = m.home(".claude.json");
    let original = m.install("claude.json", &user);
    let project = m.project.join(".mcp.json");
    m.install("claude_code_project_mcp.json", &project);
    m.write(&m.home("src/app/app.db"), "");

    let err = succeeded(&m.mcp_j(&["claude-code"]));
    let text = read(&user);
    let value = jsonc(&text);
    assert_eq!(
        args_of(&value["mcpServers"]["memory"]),
        [
            "run",
            "--env",
            "MEMORY_FILE_PATH",
            "npm:@modelcontextprotocol/server-memory"
        ]
    );
    let app = &value["projects"][m.h("src/app")]["mcpServers"];
    assert_eq!(
        args_of(&app["db"]),
        [
            "run",
            "--ro",
            &m.h("src/app"),
            "pypi:mcp-server-sqlite==0.6.2",
            "--",
            "--db-path",
            &m.h("src/app/app.db")
        ]
    );
    assert_eq!(
        app["sentry"],
        json!({"type": "http", "url": "https://mcp.sentry.dev/mcp"})
    );
    for key in ["numStartups", "installMethod", "autoUpdates", "tipsHistory", "userID"] {
        assert_eq!(value[key], jsonc(&original)[key], "{key}");
    }
    assert_eq!(mask(&text), mask(&original));
    assert!(err.contains(&format!("`db` (project `{}`)", m.h("src/app"))), "{err}");
    let servers = &jsonc(&read(&project))["mcpServers"];
    assert_eq!(
        args_of(&servers["playwright"]),
        ["run", "npm:@playwright/mcp@0.0.41", "--", "--headless"]
    );
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let m = Machine::new();
    let config = m.home(".cursor/mcp.json");
    let original = m.install("cursor_mcp.json", &config);

    let out = m.mcp_j(&["cursor", "--dry-run"]);
    succeeded(&out);
    let diff = String::from_utf8_lossy(&out.stdout);
    let name = config.display().to_string();
    assert!(diff.starts_with(&format!("--- {name}\n+++ {name}\n@@ ")), "{diff}");
    assert!(diff.contains("-      \"command\": \"npx\",\n"), "{diff}");
    assert!(
        diff.contains(&format!("+      \"command\": \"{}\",\n", mcp_j_path())),
        "{diff}"
    );
    assert_eq!(read(&config), original);
    assert!(!m.home(".cursor/mcp.json.mcp-j-backup").exists());
    assert!(m.records().is_empty());
}

#[test]
fn undo_restores_the_original_bytes() {
    let m = Machine::new();
    let config = m.home(".config/Code/User/mcp.json");
    let original = m.install("vscode_mcp.json", &config);
    succeeded(&m.mcp_j(&["vscode"]));
    assert_ne!(read(&config), original);

    // --dry-run --undo shows the way back and changes nothing.
    let out = m.mcp_j(&["vscode", "--undo", "--dry-run"]);
    succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("+      \"command\": \"npx\",\n"));
    assert_eq!(m.records().len(), 1);

    let err = succeeded(&m.mcp_j(&["vscode", "--undo"]));
    assert_eq!(read(&config), original);
    assert_eq!(mode(&config), 0o600);
    assert!(err.contains("`Perplexity`: put back as it was"), "{err}");
    assert!(m.records().is_empty(), "the record goes with the last entry");
    let err = succeeded(&m.mcp_j(&["vscode", "--undo"]));
    assert!(err.contains("nothing to undo"), "{err}");
}

#[test]
fn undo_leaves_an_entry_edited_since_alone_and_keeps_other_edits() {
    let m = Machine::new();
    let config = m.home(".config/Claude/claude_desktop_config.json");
    let original = m.install("claude_desktop_config.json", &config);
    succeeded(&m.mcp_j(&["claude-desktop"]));

    // The user tightens one wrapped entry and changes a setting of the client.
    let wrapped = read(&config);
    let edited = wrapped
        .replacen(
            "\"run\", \"pypi:mcp-server-time\"",
            "\"run\", \"--deny-tool\", \"convert_time\", \"pypi:mcp-server-time\"",
            1,
        )
        .replace("Alt+Space", "Ctrl+Space");
    assert_ne!(edited, wrapped);
    m.write(&config, &edited);

    let err = succeeded(&m.mcp_j(&["claude-desktop", "--undo"]));
    assert!(err.contains("`time`: left alone: changed since"), "{err}");
    let text = read(&config);
    let value = jsonc(&text);
    assert_eq!(value["globalShortcut"], "Ctrl+Space");
    assert_eq!(
        value["mcpServers"]["filesystem"],
        jsonc(&original)["mcpServers"]["filesystem"]
    );
    assert_eq!(value["mcpServers"]["github"], jsonc(&original)["mcpServers"]["github"]);
    assert_eq!(
        args_of(&value["mcpServers"]["time"]),
        [
            "run",
            "--deny-tool",
            "convert_time",
            "pypi:mcp-server-time",
            "--",
            "--local-timezone=Europe/Paris"
        ]
    );
    // Everything but that entry and that setting is as it was before setup, byte for byte.
    let time_start = original.find("\"time\"").unwrap_or(0);
    let time_end = original.find("\"notes\"").unwrap_or(0);
    assert_eq!(text[..time_start], original[..time_start]);
    assert_eq!(
        text[text.find("\"notes\"").unwrap_or(0)..],
        original[time_end..].replace("Alt+Space", "Ctrl+Space")
    );
    // A second backup was taken before this write.
    assert!(
        m.home(".config/Claude/claude_desktop_config.json.mcp-j-backup.1")
            .exists()
    );
    // The entry left alone stays recorded.
    let records = m.records();
    assert_eq!(records.len(), 1);
    let record: Value = serde_json::from_str(&read(&records[0])).unwrap_or_else(|e| panic!("record: {e}"));
    assert_eq!(record["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(record["entries"][0]["path"], json!(["mcpServers", "time"]));
}

#[test]
fn a_second_setup_changes_nothing() {
    let m = Machine::new();
    let config = m.home(".claude.json");
    m.install("claude.json", &config);
    succeeded(&m.mcp_j(&["claude-code"]));
    let once = read(&config);
    let record = read(&m.records()[0]);

    let err = succeeded(&m.mcp_j(&["claude-code"]));
    assert_eq!(read(&config), once);
    assert_eq!(read(&m.records()[0]), record);
    assert!(!m.home(".claude.json.mcp-j-backup.1").exists());
    assert!(err.contains("nothing to change"), "{err}");
    assert!(err.contains("`memory`: left alone: already runs under mcp-j"), "{err}");
}

#[test]
fn errors_name_the_file_and_the_fix() {
    let m = Machine::new();
    // Nothing found: where it looked.
    let out = m.mcp_j(&["cursor"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("no Cursor config found; looked in:"), "{err}");
    assert!(err.contains(&m.h(".cursor/mcp.json")), "{err}");
    let out = m.mcp_j(&[]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains(&m.h(".config/Claude/claude_desktop_config.json")));

    // Not JSON: the file, and what to do.
    let broken = m.home(".cursor/mcp.json");
    m.write(&broken, "{\"mcpServers\": {\"a\": {\"command\": \"npx\",, }}");
    let out = m.mcp_j(&["cursor"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("`{}` is not valid JSON", broken.display())),
        "{err}"
    );

    // An unknown client name.
    let out = m.mcp_j(&["cursr"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("`cursr` is neither a client"));

    // A file without servers: nothing to do, not an error; a file named by its path.
    let other = m.project.join("settings.json");
    m.write(&other, "{\"editor.fontSize\": 14}\n");
    let err = succeeded(&m.mcp_j(&[other.to_str().unwrap_or_else(|| panic!("utf-8"))]));
    assert!(err.contains("nothing to do"), "{err}");
    let servers = m.project.join("servers.json");
    m.write(
        &servers,
        "{\"servers\": {\"t\": {\"command\": \"uvx\", \"args\": [\"mcp-server-time\"]}}}\n",
    );
    succeeded(&m.mcp_j(&[servers.to_str().unwrap_or_else(|| panic!("utf-8"))]));
    assert_eq!(
        args_of(&jsonc(&read(&servers))["servers"]["t"]),
        ["run", "pypi:mcp-server-time"]
    );
}

#[test]
fn a_config_keeps_its_owner_when_root_rewrites_it() {
    use std::os::unix::fs::MetadataExt;
    if crate::common::euid() != 0 {
        eprintln!("SKIP a_config_keeps_its_owner_when_root_rewrites_it: needs root");
        return;
    }
    let m = Machine::new();
    let config = m.home(".cursor/mcp.json");
    m.install("cursor_mcp.json", &config);
    std::os::unix::fs::chown(&config, Some(65534), Some(65534)).unwrap_or_else(|e| panic!("chown: {e}"));
    succeeded(&m.mcp_j(&["cursor"]));
    for file in [config.clone(), m.home(".cursor/mcp.json.mcp-j-backup")] {
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("stat {}: {e}", file.display()));
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{}", file.display());
    }
}
