//! Registry credentials (`mcp-j login` / `logout`): one token per registry origin, in a file
//! of its own under the configuration directory (`…/mcp-j/credentials/HOST[:PORT]`), the
//! directory 0700 and each file 0600, written atomically (a temp file renamed into place).
//! `MCP_J_REGISTRY_TOKEN` overrides the stored token (the caller passes it in). A token is
//! looked up by the origin of the registry it is used for, so it can only ever be sent
//! there (`crate::registry` also never sends it on a redirect to another origin).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where tokens are kept, under the configuration directory.
#[derive(Debug, Clone)]
pub struct Credentials {
    dir: PathBuf,
}

impl Credentials {
    /// The store under `config_dir` (`$XDG_CONFIG_HOME/mcp-j`, say).
    pub fn new(config_dir: &Path) -> Credentials {
        Credentials {
            dir: config_dir.join("credentials"),
        }
    }

    /// The token for `registry_url`: `override_token` (`MCP_J_REGISTRY_TOKEN`) when given,
    /// else the stored one, if any.
    pub fn token_for(&self, registry_url: &str, override_token: Option<&str>) -> std::io::Result<Option<String>> {
        if let Some(token) = override_token.filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_owned()));
        }
        let path = self.path_for(registry_url)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim_end().to_owned()).filter(|t| !t.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Store `token` for `registry_url`, replacing any earlier one. Returns the file.
    pub fn store(&self, registry_url: &str, token: &str) -> std::io::Result<PathBuf> {
        if token.is_empty() || token.contains(['\n', '\r']) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a token is one non-empty line",
            ));
        }
        let path = self.path_for(registry_url)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        // An existing directory keeps whatever mode it had: make sure it is ours alone.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let temp = self.dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("token"),
            std::process::id()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(o_nofollow())
            .open(&temp)?;
        let written = file
            .write_all(token.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&temp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map(|()| path)
    }

    /// Forget the token for `registry_url`; `false` when there was none.
    pub fn remove(&self, registry_url: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path_for(registry_url)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The file for a registry: named by its origin (`host` or `host:port` for a
    /// non-default port; `https` and `http` origins never share a file).
    fn path_for(&self, registry_url: &str) -> std::io::Result<PathBuf> {
        let name = origin_file_name(registry_url)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an http(s) registry URL"))?;
        Ok(self.dir.join(name))
    }
}

/// `https://Host:8443/x` → `host:8443`; `http://127.0.0.1:5000` → `http-127.0.0.1:5000`;
/// `None` for anything that is not an http(s) URL the registry client takes, or whose host
/// is not plain letters, digits, `.`, `-` (and `:` inside an IPv6 address's brackets).
fn origin_file_name(url: &str) -> Option<String> {
    let origin = crate::registry::parse_origin(url).ok()?;
    let plain = !origin.host.is_empty()
        && !origin.host.starts_with('.')
        && origin
            .host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !plain {
        return None;
    }
    let host = if origin.host.contains(':') {
        format!("[{}]", origin.host)
    } else {
        origin.host
    };
    let (prefix, default_port) = if origin.https { ("", 443) } else { ("http-", 80) };
    Some(if origin.port == default_port {
        format!("{prefix}{host}")
    } else {
        format!("{prefix}{host}:{}", origin.port)
    })
}

/// `O_NOFOLLOW`: the temp file is never a planted symlink.
fn o_nofollow() -> i32 {
    // rustix's flag, as the raw value `OpenOptionsExt::custom_flags` takes.
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_per_origin_0600_and_found_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Credentials::new(tmp.path());
        let file = store.store("https://Registry.example/", "tok-a").unwrap();
        assert_eq!(file, tmp.path().join("credentials/registry.example"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(tmp.path().join("credentials"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(
            store
                .token_for("https://registry.example:443/v1", None)
                .unwrap()
                .as_deref(),
            Some("tok-a")
        );
        // Other origins do not see it: another port, plain http, another host.
        for other in [
            "https://registry.example:8443",
            "http://registry.example",
            "https://evil.example",
        ] {
            assert_eq!(store.token_for(other, None).unwrap(), None, "{other}");
        }
        // The environment's token wins; logout forgets.
        assert_eq!(
            store
                .token_for("https://registry.example", Some("env-tok"))
                .unwrap()
                .as_deref(),
            Some("env-tok")
        );
        assert!(store.remove("https://registry.example").unwrap());
        assert!(!store.remove("https://registry.example").unwrap());
        assert_eq!(store.token_for("https://registry.example", None).unwrap(), None);
    }

    #[test]
    fn a_token_replaces_the_last_and_odd_input_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Credentials::new(tmp.path());
        store.store("http://127.0.0.1:5000", "one").unwrap();
        store.store("http://127.0.0.1:5000", "two").unwrap();
        assert_eq!(
            store.token_for("http://127.0.0.1:5000/", None).unwrap().as_deref(),
            Some("two")
        );
        assert_eq!(
            std::fs::read_dir(tmp.path().join("credentials")).unwrap().count(),
            1,
            "no temp file left"
        );
        assert!(store.store("https://r.example", "two\nlines").is_err());
        assert!(store.store("https://r.example", "").is_err());
        for bad in [
            "ftp://r.example",
            "https://",
            "https://../x",
            "https://a/b",
            "r.example",
        ] {
            let stored = store.store(bad, "t");
            assert!(
                stored.is_err()
                    || stored
                        .as_ref()
                        .is_ok_and(|p| p.parent() == Some(&tmp.path().join("credentials"))),
                "{bad}: {stored:?}"
            );
        }
        assert!(store.store("https://../x", "t").is_err());
    }
}
