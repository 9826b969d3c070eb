//! mcp-j's self-hostable registry (`mcp-j registry serve`): the whole of REGISTRY_API.md —
//! the read half every registry speaks and the upload and admin endpoints — over a store in
//! one directory (SQLite metadata, content-addressed blobs; see the `store` module).
//!
//! What the CLI calls:
//!
//! - `registry serve --listen ADDR --root DIR [--default-visibility private]`: bind the
//!   listener, then [`serve`] (blocking; its own tokio runtime), or [`spawn`] for a handle
//!   that stops the server when dropped.
//! - `registry token create --root DIR --scope S [--org ORG]`: [`create_token`], which prints
//!   nothing: the caller prints the token once; only its SHA-256 is stored.
//! - `registry user add --root DIR NAME`: [`add_user`] (argon2id password hash; the user's
//!   logins get the `push` scope on every org — [`add_user_with_grant`] chooses otherwise).
//!
//! Decisions REGISTRY_API.md leaves open are in `http.rs`'s module documentation.

#![forbid(unsafe_code)]

mod http;
mod idle;
mod store;
pub mod version;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::store::Store;

/// What a token may do: each scope implies the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Resolve and download private packages.
    Read,
    /// Upload artifacts and create versions.
    Push,
    /// Change a version's status, level and origin, and a package's visibility.
    Admin,
}

impl Scope {
    /// As written on the command line and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Push => "push",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Scope::Read),
            "push" => Ok(Scope::Push),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("`{text}` is not a token scope: use read, push or admin")),
        }
    }
}

/// Whether anyone may read a package, or only tokens with `read` on its org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Anyone (the default for new packages).
    #[default]
    Public,
    /// Only tokens with `read` on the org.
    Private,
}

impl Visibility {
    /// As written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "public" => Ok(Visibility::Public),
            "private" => Ok(Visibility::Private),
            _ => Err(format!("`{text}` is not a visibility: use public or private")),
        }
    }
}

/// How the server behaves; [`ServeOptions::default`] is what `registry serve` uses
/// without flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The visibility of a package created by its first version (`--default-visibility`).
    pub default_visibility: Visibility,
    /// The largest artifact a PUT may upload (413 above); manifests are also capped at
    /// 1 MiB, what clients read.
    pub max_artifact_bytes: u64,
    /// The largest JSON request body (413 above).
    pub max_json_bytes: usize,
    /// How long a `/v1/auth/login` access token lives.
    pub login_ttl: Duration,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a connection may make no progress (reading or writing) before it is closed.
    pub idle_timeout: Duration,
    /// How long one request's body may take to arrive in full.
    pub body_timeout: Duration,
    /// How many connections are served at once (more wait to be accepted).
    pub max_connections: usize,
    /// How many failed logins a user name may have within `login_window` before further
    /// attempts are refused (429) until the window has passed.
    pub max_login_failures: u32,
    /// The window of `max_login_failures`.
    pub login_window: Duration,
    /// The registry's public base URL (`https://registry.example`), put before the artifact
    /// paths in the resolve answer's informational `url` fields; empty (the default) leaves
    /// them as paths (`/v1/org/…`), since behind a proxy the server cannot know its URL.
    pub public_url: String,
    /// Write one line per request on stderr: method, path (no query, no headers: tokens
    /// never appear), status, milliseconds.
    pub access_log: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            default_visibility: Visibility::Public,
            max_artifact_bytes: 256 * 1024 * 1024,
            max_json_bytes: 64 * 1024,
            login_ttl: Duration::from_secs(3600),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30 * 60),
            max_connections: 1024,
            max_login_failures: 10,
            login_window: Duration::from_secs(300),
            public_url: String::new(),
            access_log: false,
        }
    }
}

/// Why the registry could not start or a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The SQLite database failed.
    #[error("registry database `{}`: {source}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An argument cannot be used (a name, an org, a password).
    #[error("{0}")]
    Invalid(String),
    /// The operating system refused something the server needs (the runtime, the listener).
    #[error("{what}: {source}")]
    Runtime {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The SHA-256 of a token, as stored (hex). Tokens are 32 random bytes, so a plain hash
/// is enough: there is nothing to guess that a slow hash would protect.
pub(crate) fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh token: `mcpj_` and 64 hex digits of 32 random bytes.
pub(crate) fn new_token() -> Result<String, ServerError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ServerError::Runtime {
        what: "reading random bytes for a token",
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(format!("mcpj_{}", hex(&bytes)))
}

fn is_org(org: &str) -> bool {
    mcp_j_policy::package::is_package_id(&format!("{org}/x"))
}

/// Mint a token with `scope`, bound to `org` when given, in the store at `root` (created if
/// needed). Returns the token, which is stored only as its SHA-256: show it once.
pub fn create_token(root: &Path, scope: Scope, org: Option<&str>) -> Result<String, ServerError> {
    if let Some(org) = org
        && !is_org(org)
    {
        return Err(ServerError::Invalid(format!(
            "`{org}` is not an org name: use letters, digits, `_` and `-`"
        )));
    }
    let store = Store::open(root)?;
    let token = new_token()?;
    store.insert_token(&token_hash(&token), scope, org, None, "api")?;
    Ok(token)
}

/// Add a user whose logins (`POST /v1/auth/login`) get the `push` scope on every org.
pub fn add_user(root: &Path, name: &str, password: &str) -> Result<(), ServerError> {
    add_user_with_grant(root, name, password, Scope::Push, None)
}

/// Add a user whose logins get `scope`, on `org` only when given. The password is stored
/// as an argon2id hash (PHC string). Refuses a taken name, a name outside
/// `[A-Za-z0-9._-]{1,64}`, and a password shorter than 8 characters.
pub fn add_user_with_grant(
    root: &Path,
    name: &str,
    password: &str,
    scope: Scope,
    org: Option<&str>,
) -> Result<(), ServerError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !name_ok {
        return Err(ServerError::Invalid(format!(
            "`{name}` is not a user name: use 1 to 64 letters, digits, `.`, `_` and `-`"
        )));
    }
    if password.chars().count() < 8 {
        return Err(ServerError::Invalid(
            "the password is shorter than 8 characters: choose a longer one".to_owned(),
        ));
    }
    if let Some(org) = org
        && !is_org(org)
    {
        return Err(ServerError::Invalid(format!(
            "`{org}` is not an org name: use letters, digits, `_` and `-`"
        )));
    }
    let hash = http::hash_password(password)?;
    let store = Store::open(root)?;
    if store.insert_user(name, &hash, scope, org)? {
        Ok(())
    } else {
        Err(ServerError::Invalid(format!(
            "user `{name}` already exists in `{}`: choose another name",
            root.display()
        )))
    }
}

/// Serve the registry on `listener` with the store in `root`, until the process ends.
/// Blocking: it runs its own multi-threaded tokio runtime.
pub fn serve(listener: TcpListener, root: &Path, options: ServeOptions) -> Result<(), ServerError> {
    let store = Arc::new(Store::open(root)?);
    store.remove_stale_uploads();
    let runtime = runtime()?;
    runtime.block_on(http::serve(listener, store, options, std::future::pending()))
}

/// A server running on its own threads; dropping it stops the server (connections are
/// cut) and closes the store.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL of the registry.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop the server and wait for it; the error it stopped on, if any.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServerError::Invalid("the registry server thread panicked".to_owned())),
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Start the registry on `listener` with the store in `root`, on threads of its own. The
/// store is opened before this returns, so its errors are returned here.
pub fn spawn(listener: TcpListener, root: &Path, options: ServeOptions) -> Result<ServerHandle, ServerError> {
    let addr = listener.local_addr().map_err(|source| ServerError::Runtime {
        what: "reading the listener's address",
        source,
    })?;
    let store = Arc::new(Store::open(root)?);
    store.remove_stale_uploads();
    let runtime = runtime()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("mcp-j-registry".to_owned())
        .spawn(move || {
            let result = runtime.block_on(http::serve(listener, store, options, async {
                let _ = stopped.await;
            }));
            // Cut open connections now rather than waiting for them.
            runtime.shutdown_timeout(Duration::from_secs(5));
            result
        })
        .map_err(|source| ServerError::Runtime {
            what: "starting the registry thread",
            source,
        })?;
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ServerError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mcp-j-registry")
        .build()
        .map_err(|source| ServerError::Runtime {
            what: "starting the tokio runtime",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_order_and_parse() {
        assert!(Scope::Read < Scope::Push && Scope::Push < Scope::Admin);
        for scope in [Scope::Read, Scope::Push, Scope::Admin] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert!("root".parse::<Scope>().unwrap_err().contains("read, push or admin"));
        assert!(
            "secret"
                .parse::<Visibility>()
                .unwrap_err()
                .contains("public or private")
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert!(!token_hash(&a).contains(&a[5..]));
    }

    #[test]
    fn bad_names_orgs_and_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = create_token(dir.path(), Scope::Read, Some("ac/me")).unwrap_err();
        assert!(err.to_string().contains("not an org name"), "{err}");
        let err = add_user(dir.path(), "a b", "long enough").unwrap_err();
        assert!(err.to_string().contains("not a user name"), "{err}");
        let err = add_user(dir.path(), "alice", "short").unwrap_err();
        assert!(err.to_string().contains("shorter than 8"), "{err}");
        add_user(dir.path(), "alice", "long enough").unwrap();
        let err = add_user(dir.path(), "alice", "long enough").unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}
