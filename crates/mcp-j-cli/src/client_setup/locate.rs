//! Where each MCP client keeps its servers on Linux, from the environment (`HOME`,
//! `XDG_CONFIG_HOME` where the client honours it, `CLAUDE_CONFIG_DIR`) and the current
//! directory (the project-scoped files). Only lists places; the caller reads those that exist.
//!
//! | client | user scope | project scope | key |
//! |---|---|---|---|
//! | Claude Desktop | `$XDG_CONFIG_HOME/Claude/claude_desktop_config.json` | — | `mcpServers` |
//! | Claude Code | `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json`), also its `projects.<path>.mcpServers` | `./.mcp.json` | `mcpServers` |
//! | VS Code | `$XDG_CONFIG_HOME/Code/User/mcp.json` | `./.vscode/mcp.json` | `servers` |
//! | Cursor | `~/.cursor/mcp.json` | `./.cursor/mcp.json` | `mcpServers` |

use std::path::{Path, PathBuf};

use super::edit::Layout;

/// The clients `client setup` knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    ClaudeDesktop,
    ClaudeCode,
    VsCode,
    Cursor,
}

impl Client {
    pub const ALL: [Client; 4] = [
        Client::ClaudeDesktop,
        Client::ClaudeCode,
        Client::VsCode,
        Client::Cursor,
    ];

    /// The name the command line takes.
    pub fn arg(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "claude-desktop",
            Client::ClaudeCode => "claude-code",
            Client::VsCode => "vscode",
            Client::Cursor => "cursor",
        }
    }

    pub fn from_arg(arg: &str) -> Option<Client> {
        Client::ALL.into_iter().find(|c| c.arg() == arg)
    }

    /// The name people know it by.
    pub fn title(self) -> &'static str {
        match self {
            Client::ClaudeDesktop => "Claude Desktop",
            Client::ClaudeCode => "Claude Code",
            Client::VsCode => "VS Code",
            Client::Cursor => "Cursor",
        }
    }
}

/// What the places depend on.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub claude_config_dir: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
}

impl Env {
    /// From this process's environment; relative values are ignored, as the XDG spec says.
    pub fn from_process() -> Env {
        let absolute = |name: &str| std::env::var_os(name).map(PathBuf::from).filter(|p| p.is_absolute());
        Env {
            home: absolute("HOME"),
            xdg_config_home: absolute("XDG_CONFIG_HOME"),
            claude_config_dir: absolute("CLAUDE_CONFIG_DIR"),
            cwd: std::env::current_dir().ok(),
        }
    }

    fn config_home(&self) -> Option<PathBuf> {
        self.xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))
    }
}

/// One config file a client may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub client: Client,
    /// `user` or `project`.
    pub scope: &'static str,
    pub path: PathBuf,
    pub layout: Layout,
}

/// Where `client` keeps its servers: user scope first, then the current directory's project.
pub fn places(client: Client, env: &Env) -> Vec<Place> {
    let mut found = Vec::new();
    let mut add = |scope, path: Option<PathBuf>, layout| {
        if let Some(path) = path {
            found.push(Place {
                client,
                scope,
                path,
                layout,
            });
        }
    };
    let home = |rest: &str| env.home.as_ref().map(|h| h.join(rest));
    let project = |rest: &str| env.cwd.as_ref().map(|d| d.join(rest));
    match client {
        Client::ClaudeDesktop => add(
            "user",
            env.config_home().map(|c| c.join("Claude/claude_desktop_config.json")),
            Layout::McpServers,
        ),
        Client::ClaudeCode => {
            let user = match &env.claude_config_dir {
                Some(dir) => Some(dir.join(".claude.json")),
                None => home(".claude.json"),
            };
            add("user", user, Layout::ClaudeCode);
            add("project", project(".mcp.json"), Layout::McpServers);
        }
        Client::VsCode => {
            add(
                "user",
                env.config_home().map(|c| c.join("Code/User/mcp.json")),
                Layout::Servers,
            );
            add("project", project(".vscode/mcp.json"), Layout::Servers);
        }
        Client::Cursor => {
            add("user", home(".cursor/mcp.json"), Layout::McpServers);
            add("project", project(".cursor/mcp.json"), Layout::McpServers);
        }
    }
    found
}

/// Whether `path` is a file here (following links: dotfile managers link configs).
pub fn exists(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(client: Client, env: &Env) -> Vec<String> {
        places(client, env)
            .into_iter()
            .map(|p| p.path.display().to_string())
            .collect()
    }

    #[test]
    fn each_client_has_its_places() {
        let env = Env {
            home: Some("/home/me".into()),
            cwd: Some("/work/p".into()),
            ..Env::default()
        };
        assert_eq!(
            paths(Client::ClaudeDesktop, &env),
            ["/home/me/.config/Claude/claude_desktop_config.json"]
        );
        assert_eq!(
            paths(Client::ClaudeCode, &env),
            ["/home/me/.claude.json", "/work/p/.mcp.json"]
        );
        assert_eq!(
            paths(Client::VsCode, &env),
            ["/home/me/.config/Code/User/mcp.json", "/work/p/.vscode/mcp.json"]
        );
        assert_eq!(
            paths(Client::Cursor, &env),
            ["/home/me/.cursor/mcp.json", "/work/p/.cursor/mcp.json"]
        );
        let env = Env {
            xdg_config_home: Some("/xdg".into()),
            claude_config_dir: Some("/cc".into()),
            ..env
        };
        assert_eq!(
            paths(Client::ClaudeDesktop, &env),
            ["/xdg/Claude/claude_desktop_config.json"]
        );
        assert_eq!(paths(Client::ClaudeCode, &env)[0], "/cc/.claude.json");
        assert_eq!(places(Client::ClaudeCode, &env)[0].layout, Layout::ClaudeCode);
        assert_eq!(Client::from_arg("vscode"), Some(Client::VsCode));
        assert_eq!(Client::from_arg("code"), None);
    }
}
