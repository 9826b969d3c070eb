//! Edits a client's config in its own text: the file is parsed as JSONC (comments, trailing
//! commas: VS Code's `mcp.json`) only to find where each server entry's values lie, and the
//! new values are spliced in at those byte ranges. Every byte outside the values changed —
//! comments, formatting, key order, other entries, other settings — stays as it was.

use std::ops::Range;

use anyhow::{Result, anyhow};
use jsonc_parser::ast::{Object, ObjectProp, Value as Ast};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
use serde_json::Value;

/// Where a client keeps its servers in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `mcpServers` at the top (Claude Desktop, Cursor, Claude Code's `.mcp.json`).
    McpServers,
    /// `servers` at the top (VS Code's `mcp.json`).
    Servers,
    /// Claude Code's `~/.claude.json`: `mcpServers` at the top (user scope) and in each
    /// `projects.<path>` (local scope).
    ClaudeCode,
}

/// One server entry as it stands in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The keys from the top of the file to the entry: `["mcpServers", "time"]`.
    pub path: Vec<String>,
    /// Its value.
    pub value: Value,
    /// Where its value lies in the text.
    pub span: Range<usize>,
    /// Where the value of its `command` lies.
    command: Option<Range<usize>>,
    /// Where the value of its `args` lies.
    args: Option<Range<usize>>,
    /// Where an `args` member goes when there is none, and what comes before it.
    args_insert: Option<(usize, String)>,
}

/// A piece of text to put in place of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub range: Range<usize>,
    pub text: String,
}

fn parse(text: &str) -> Result<Ast<'_>> {
    let collect = CollectOptions::default();
    let parsed = parse_to_ast(text, &collect, &ParseOptions::default()).map_err(|e| anyhow!("{e}"))?;
    match parsed.value {
        Some(value @ Ast::Object(_)) => Ok(value),
        Some(_) => Err(anyhow!("the file holds something other than a JSON object")),
        None => Err(anyhow!("the file is empty")),
    }
}

/// Checks that `text` is JSONC with an object at the top.
pub fn check(text: &str) -> Result<()> {
    parse(text).map(|_| ())
}

/// Which layout a config file of unknown client has: `mcpServers` if it has that key, else
/// `servers`.
pub fn detect_layout(text: &str) -> Result<Layout> {
    let root = parse(text)?;
    let root = root.as_object().ok_or_else(|| anyhow!("not a JSON object"))?;
    Ok(if root.get("servers").is_some() && root.get("mcpServers").is_none() {
        Layout::Servers
    } else {
        Layout::McpServers
    })
}

/// Every server entry of the file, in the order of the text.
pub fn entries(text: &str, layout: Layout) -> Result<Vec<Entry>> {
    let root = parse(text)?;
    let root = root.as_object().ok_or_else(|| anyhow!("not a JSON object"))?;
    let mut found = Vec::new();
    let key = match layout {
        Layout::Servers => "servers",
        Layout::McpServers | Layout::ClaudeCode => "mcpServers",
    };
    collect(text, root, &[key], &mut found)?;
    if layout == Layout::ClaudeCode
        && let Some(projects) = root.get_object("projects")
    {
        for project in &projects.properties {
            if let Ast::Object(project_object) = &project.value {
                collect(
                    text,
                    project_object,
                    &["projects", project.name.as_str(), "mcpServers"],
                    &mut found,
                )?;
            }
        }
    }
    Ok(found)
}

/// The entry at `path` (the keys from the top), if the file still has one there.
pub fn entry_at(text: &str, path: &[String]) -> Result<Option<Entry>> {
    let root = parse(text)?;
    let Some((name, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut object = root.as_object();
    for key in parents {
        object = object.and_then(|o| o.get_object(key));
    }
    let Some(prop) = object.and_then(|o| o.get(name)) else {
        return Ok(None);
    };
    entry(text, path.to_vec(), prop).map(Some)
}

/// The entries of the servers object `holder.<last key of path>`, `path` being that
/// object's keys from the top of the file.
fn collect(text: &str, holder: &Object<'_>, path: &[&str], found: &mut Vec<Entry>) -> Result<()> {
    let Some(servers) = path.last().and_then(|key| holder.get_object(key)) else {
        return Ok(());
    };
    for prop in &servers.properties {
        let mut entry_path: Vec<String> = path.iter().map(|k| (*k).to_owned()).collect();
        entry_path.push(prop.name.as_str().to_owned());
        found.push(entry(text, entry_path, prop)?);
    }
    Ok(())
}

fn entry(text: &str, path: Vec<String>, prop: &ObjectProp<'_>) -> Result<Entry> {
    let range = prop.value.range();
    let span = range.start..range.end;
    let value = value_of(&text[span.clone()])?;
    let (mut command, mut args, mut args_insert) = (None, None, None);
    if let Ast::Object(object) = &prop.value {
        if let Some(member) = object.get("command") {
            let r = member.value.range();
            command = Some(r.start..r.end);
            args_insert = Some((r.end, member_separator(text, object, member)));
        }
        if let Some(member) = object.get("args") {
            let r = member.value.range();
            args = Some(r.start..r.end);
        }
    }
    Ok(Entry {
        path,
        value,
        span,
        command,
        args,
        args_insert,
    })
}

/// What goes between two members of `object` in its own style: `,`, a newline (the file's
/// own, `\r\n` or `\n`) and the indentation of `member`'s line when the object spreads over
/// lines, else `, `.
fn member_separator(text: &str, object: &Object<'_>, member: &ObjectProp<'_>) -> String {
    let start = member.range.start;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..start];
    let multiline = text[object.range.start..start].contains('\n');
    if multiline && indent.chars().all(|c| c == ' ' || c == '\t') {
        let newline = if text[..line_start].ends_with("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        format!(",{newline}{indent}")
    } else {
        ", ".to_owned()
    }
}

/// A JSONC value's text as a plain JSON value.
pub fn value_of(text: &str) -> Result<Value> {
    jsonc_parser::parse_to_serde_value::<Value>(text, &ParseOptions::default()).map_err(|e| anyhow!("{e}"))
}

/// The splices that give `entry` this `command` and `args`, leaving the rest of it (its
/// `type`, `env`, comments) as written.
pub fn wrap_splices(entry: &Entry, command: &str, args: &[String]) -> Vec<Splice> {
    let mut splices = Vec::new();
    let args_text = args_text(args);
    if let Some(range) = &entry.command {
        splices.push(Splice {
            range: range.clone(),
            text: json_string(command),
        });
    }
    match (&entry.args, &entry.args_insert) {
        (Some(range), _) => splices.push(Splice {
            range: range.clone(),
            text: args_text,
        }),
        (None, Some((at, separator))) => splices.push(Splice {
            range: *at..*at,
            text: format!("{separator}\"args\": {args_text}"),
        }),
        (None, None) => {}
    }
    splices
}

/// The splice that puts `original` (recorded text) back in place of the entry.
pub fn restore_splice(entry: &Entry, original: &str) -> Splice {
    Splice {
        range: entry.span.clone(),
        text: original.to_owned(),
    }
}

/// `text` with the splices applied (they must not overlap).
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| std::cmp::Reverse(s.range.start));
    let mut out = text.to_owned();
    for splice in splices {
        out.replace_range(splice.range, &splice.text);
    }
    out
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A list of strings on one line, as the clients' own docs write `args`.
fn args_text(args: &[String]) -> String {
    let items: Vec<String> = args.iter().map(|a| json_string(a)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VSCODE: &str = r#"{
  // my servers
  "servers": {
    "time": {
      "type": "stdio",
      "command": "uvx", // the launcher
      "args": ["mcp-server-time",],
    },
    "plain": {"command": "/opt/s/bin/s"},
    "spread": {
      "command": "/opt/s/bin/s",
    },
    "web": { "type": "http", "url": "https://x" },
  },
  "inputs": [],
}
"#;

    #[test]
    fn entries_are_found_with_their_spans() {
        let found = entries(VSCODE, Layout::Servers).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = found.iter().map(|e| e.path[1].as_str()).collect();
        assert_eq!(names, ["time", "plain", "spread", "web"]);
        assert_eq!(found[0].value["args"][0], "mcp-server-time");
        assert!(VSCODE[found[3].span.clone()].starts_with("{ \"type\": \"http\""));
        assert_eq!(detect_layout(VSCODE).ok(), Some(Layout::Servers));
        assert!(entries("{\"mcpServers\": {\"a\": }}", Layout::McpServers).is_err());
        assert!(entries("[1]", Layout::McpServers).is_err());
        assert!(entries("", Layout::McpServers).is_err());
    }

    #[test]
    fn splices_change_only_command_and_args() {
        let found = entries(VSCODE, Layout::Servers).unwrap_or_else(|e| panic!("{e}"));
        let args = ["run".to_owned(), "pypi:mcp-server-time".to_owned()];
        let mut splices = Vec::new();
        for entry in &found[..3] {
            splices.extend(wrap_splices(entry, "/bin/mcp-j", &args));
        }
        let out = apply(VSCODE, splices);
        assert_eq!(
            out,
            r#"{
  // my servers
  "servers": {
    "time": {
      "type": "stdio",
      "command": "/bin/mcp-j", // the launcher
      "args": ["run", "pypi:mcp-server-time"],
    },
    "plain": {"command": "/bin/mcp-j", "args": ["run", "pypi:mcp-server-time"]},
    "spread": {
      "command": "/bin/mcp-j",
      "args": ["run", "pypi:mcp-server-time"],
    },
    "web": { "type": "http", "url": "https://x" },
  },
  "inputs": [],
}
"#
        );
        // And back: the recorded text of each entry in place of its new value.
        let now = entries(&out, Layout::Servers).unwrap_or_else(|e| panic!("{e}"));
        let back: Vec<Splice> = now[..3]
            .iter()
            .zip(&found)
            .map(|(new, old)| restore_splice(new, &VSCODE[old.span.clone()]))
            .collect();
        assert_eq!(apply(&out, back), VSCODE);
    }

    #[test]
    fn an_inserted_args_member_follows_the_file_style() {
        let text = "{\r\n  \"mcpServers\": {\r\n    \"s\": {\r\n      \"command\": \"/opt/s\"\r\n    }\r\n  }\r\n}\r\n";
        let found = entries(text, Layout::McpServers).unwrap_or_else(|e| panic!("{e}"));
        let out = apply(text, wrap_splices(&found[0], "/bin/mcp-j", &["run".to_owned()]));
        assert_eq!(
            out,
            "{\r\n  \"mcpServers\": {\r\n    \"s\": {\r\n      \"command\": \"/bin/mcp-j\",\r\n      \"args\": [\"run\"]\r\n    }\r\n  }\r\n}\r\n"
        );
    }

    #[test]
    fn claude_code_projects_are_searched() {
        let text = r#"{"numStartups": 3, "mcpServers": {"a": {"command": "npx"}},
            "projects": {"/home/me/p": {"allowedTools": [], "mcpServers": {"b": {"command": "uvx"}}}}}"#;
        let found = entries(text, Layout::ClaudeCode).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<Vec<String>> = found.iter().map(|e| e.path.clone()).collect();
        assert_eq!(
            paths,
            [
                vec!["mcpServers".to_owned(), "a".to_owned()],
                ["projects", "/home/me/p", "mcpServers", "b"]
                    .map(str::to_owned)
                    .to_vec()
            ]
        );
        let b = entry_at(text, &paths[1]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.map(|e| e.value["command"].clone()), Some(Value::from("uvx")));
        assert!(entry_at(text, &["mcpServers".to_owned(), "gone".to_owned()]).is_ok_and(|e| e.is_none()));
    }
}
