//! The HTTP side: routes of REGISTRY_API.md, auth, streaming uploads, bounded bodies and
//! timeouts.
//!
//! Decisions where REGISTRY_API.md is silent:
//!
//! - **Private packages** answer exactly like missing ones (404 `not_found`, whose message
//!   says a private package needs a token) to a request without a token or with a token
//!   that has no `read` on the org: nobody learns that a private package exists. A token
//!   that is unknown or expired is 401 `invalid_token` on every endpoint (so `mcp-j login`
//!   is the hint). Writes without a token are 401, with a token short of the scope or for
//!   another org 403.
//! - **Artifacts** belong to the org they were uploaded under (`…/org/{org}/artifacts/…`);
//!   anyone may read one that a version of a public package of that org names, otherwise
//!   only a token with `read` on the org. An uploaded manifest must be for a package of
//!   that org, name a `bundle` already uploaded under it, with the same `size_bytes`.
//! - **`latest`** is the highest version by semver precedence ([`crate::version`]) among
//!   the `published` and `deprecated` ones; `ref=sha256:…` names a manifest digest.
//!   Resolving a version by number or digest answers whatever its status (a client refuses
//!   `revoked` and friends itself, with the reason).
//! - **Versions**: the manifest named by `manifest_digest` must have been uploaded under the
//!   org, its `package.id` must be `org/name` and its `package.version` the version; `git_sha`
//!   defaults to the manifest's. The same version with the same manifest and git_sha again
//!   is 200; otherwise 409 naming the existing manifest digest. Both answer the resolve
//!   answer of the version.
//! - **Logins** get the grant of their user (`push` on every org for [`crate::add_user`]);
//!   an unknown user and a wrong password are the same 401, after the same argon2 work.
//! - **Failed logins**: after `max_login_failures` (10) for one user name within
//!   `login_window` (5 min), that name's logins are 429 `too_many_attempts` with
//!   `Retry-After` until the window has passed, even with the right password.
//! - **Limits**: JSON bodies over `max_json_bytes`, artifacts over `max_artifact_bytes`
//!   (manifests over 1 MiB) are 413, refused from `Content-Length` before reading when it is
//!   given; a body that stalls past `idle_timeout` or takes longer than `body_timeout` is
//!   400 `timeout`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use mcp_j_policy::package::{Digest, PackageManifest};
use mcp_j_policy::{CertLevel, Origin, PackageStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::store::{Inserted, Kind, NewVersion, Store, VersionRow, now};
use crate::{Scope, ServeOptions, ServerError, Visibility, hex, new_token, token_hash, version};

/// What clients read of a manifest (REGISTRY_API.md): a larger one could never be used.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

struct App {
    store: Arc<Store>,
    options: ServeOptions,
    login_failures: LoginFailures,
}

/// Failed logins per user name: (count, start of the window).
#[derive(Default)]
struct LoginFailures(std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>);

/// How many user names the failure table tracks before it forgets the oldest windows.
const MAX_TRACKED_USERS: usize = 10_000;

impl LoginFailures {
    fn table(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u32, std::time::Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long `user` must wait, when it has used up its attempts.
    fn blocked_for(&self, user: &str, options: &ServeOptions) -> Option<std::time::Duration> {
        let table = self.table();
        let (count, since) = table.get(user)?;
        let elapsed = since.elapsed();
        (*count >= options.max_login_failures && elapsed < options.login_window).then(|| options.login_window - elapsed)
    }

    fn failed(&self, user: &str, options: &ServeOptions) {
        let mut table = self.table();
        if table.len() >= MAX_TRACKED_USERS {
            table.retain(|_, (_, since)| since.elapsed() < options.login_window);
            if table.len() >= MAX_TRACKED_USERS {
                table.clear();
            }
        }
        let entry = table.entry(user.to_owned()).or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= options.login_window {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 += 1;
    }

    fn succeeded(&self, user: &str) {
        self.table().remove(user);
    }
}

type Shared = State<Arc<App>>;

/// Accept connections on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    store: Arc<Store>,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let runtime_error = |what, source| ServerError::Runtime { what, source };
    listener
        .set_nonblocking(true)
        .map_err(|e| runtime_error("making the listener non-blocking", e))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| runtime_error("registering the listener", e))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
    let mut options = options;
    options.public_url = options.public_url.trim_end_matches('/').to_owned();
    let app = Arc::new(App {
        store,
        options,
        login_failures: LoginFailures::default(),
    });
    let router = router(app.clone());
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => return Ok(()),
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return Ok(()) };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors or a connection reset before accept: keep serving.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(crate::idle::IdleTimeout::new(stream, app.options.idle_timeout));
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let header_timeout = app.options.header_timeout;
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Some(header_timeout))
                .max_buf_size(64 * 1024)
                .serve_connection(io, service)
                .await;
            drop(slot);
        });
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/catalog", get(catalog))
        .route("/v1/auth/login", post(login))
        .route("/v1/org/{org}/mcps/{name}/resolve", get(resolve))
        .route("/v1/org/{org}/mcps/{name}/versions", post(create_version))
        .route(
            "/v1/org/{org}/mcps/{name}/versions/{version}",
            axum::routing::patch(patch_version),
        )
        .route("/v1/org/{org}/mcps/{name}", axum::routing::patch(patch_package))
        .route(
            "/v1/org/{org}/artifacts/{digest}/{kind}",
            put(put_artifact).get(get_artifact),
        )
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: see REGISTRY_API.md",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method: see REGISTRY_API.md",
            )
        })
        .layer(axum::middleware::from_fn_with_state(app.clone(), access_log))
        .with_state(app)
}

/// The access log line of a request, when `access_log` is on.
async fn access_log(State(app): Shared, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !app.options.access_log {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    eprintln!(
        "{method} {path} {} {}ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    response
}

/// An error answer: `{"error", "message", "details"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<ServerError> for ApiError {
    fn from(error: ServerError) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            format!("the registry's store failed: {error}; the operator should look at the server's root directory"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "message": self.message, "details": self.details});
        (self.status, axum::Json(body)).into_response()
    }
}

type Answer = Result<Response, ApiError>;

/// What the request's token allows.
struct Grant {
    scope: Scope,
    org: Option<String>,
}

impl Grant {
    fn allows(&self, scope: Scope, org: &str) -> bool {
        self.scope >= scope && self.org.as_deref().is_none_or(|o| o == org)
    }
}

/// The request's grant: `None` without a token; 401 for a token that is unknown or expired.
async fn grant(app: &App, headers: &HeaderMap) -> Result<Option<Grant>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the bearer token is unknown or expired: log in again (`mcp-j login`) or ask for a new token",
        )
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(invalid)?;
    let hash = token_hash(token);
    let store = app.store.clone();
    let stored = blocking(move || store.token(&hash)).await?.ok_or_else(invalid)?;
    if stored.expires_at.is_some_and(|at| at <= now()) {
        return Err(invalid());
    }
    Ok(Some(Grant {
        scope: stored.scope,
        org: stored.org,
    }))
}

/// A grant of at least `scope` on `org`: 401 without a token, 403 with one short of it.
async fn require(app: &App, headers: &HeaderMap, scope: Scope, org: &str) -> Result<(), ApiError> {
    match grant(app, headers).await? {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "this needs a token with `{scope}` on `{org}`: `mcp-j login`, or a token from `mcp-j registry token create --scope {scope} --org {org}`"
            ),
        )),
        Some(grant) if grant.allows(scope, org) => Ok(()),
        Some(grant) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token has `{}`{} but this needs `{scope}` on `{org}`: use a token with that scope",
                grant.scope,
                grant.org.map(|o| format!(" on `{o}`")).unwrap_or_default()
            ),
        )
        .details(json!({"required_scope": scope.as_str(), "org": org}))),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a registry task failed; see the server's log",
        )),
    }
}

fn check_org(org: &str) -> Result<(), ApiError> {
    if mcp_j_policy::package::is_package_id(&format!("{org}/x")) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{org}` is not an org name: use letters, digits, `_` and `-`"
        )))
    }
}

fn check_package(org: &str, name: &str) -> Result<(), ApiError> {
    if mcp_j_policy::package::is_package_id(&format!("{org}/{name}")) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{org}/{name}` is not a package name: org and name use letters, digits, `_` and `-`"
        )))
    }
}

fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    text.parse().map_err(ApiError::bad_request)
}

fn hidden(org: &str, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no package `{org}/{name}` (a private package needs a token with `read` on `{org}`: `mcp-j login`)"
    ))
}

/// The package's visibility if the request may read it; 404 otherwise (missing or private).
async fn readable(app: &App, headers: &HeaderMap, org: &str, name: &str) -> Result<(), ApiError> {
    let grant = grant(app, headers).await?;
    let store = app.store.clone();
    let (o, n) = (org.to_owned(), name.to_owned());
    match blocking(move || store.visibility(&o, &n)).await? {
        Some(Visibility::Public) => Ok(()),
        Some(Visibility::Private) if grant.is_some_and(|g| g.allows(Scope::Read, org)) => Ok(()),
        _ => Err(hidden(org, name)),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The resolve answer for one version.
fn resolve_answer(base: &str, org: &str, name: &str, reference: &str, row: &VersionRow) -> Value {
    let artifact = |digest: &Digest, kind: &str| format!("{base}/v1/org/{org}/artifacts/{digest}/{kind}");
    json!({
        "package": format!("{org}/{name}"),
        "ref": reference,
        "origin": row.origin.as_str(),
        "resolved": {
            "version": row.version,
            "git_sha": row.git_sha,
            "status": row.status.as_str(),
            "certification_level": row.level.get(),
            "manifest": {"digest": row.manifest_digest.as_str(), "url": artifact(&row.manifest_digest, "manifest")},
            "bundle": {
                "digest": row.bundle_digest.as_str(),
                "url": artifact(&row.bundle_digest, "bundle"),
                "size_bytes": row.bundle_size,
            },
            "evidence": [],
        }
    })
}

/// The version `latest` names: see [`crate::version`].
fn latest(rows: &[VersionRow]) -> Option<&VersionRow> {
    rows.iter()
        .filter(|r| r.status.may_run())
        .max_by(|a, b| version::compare(&a.version, &b.version))
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

#[derive(Deserialize)]
struct ResolveQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

async fn resolve(
    State(app): Shared,
    UrlPath((org, name)): UrlPath<(String, String)>,
    query: Result<Query<ResolveQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Answer {
    check_package(&org, &name)?;
    let reference = query
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?
        .0
        .reference
        .ok_or_else(|| {
            ApiError::bad_request("missing `ref`: ask for `?ref=1.2.3`, `?ref=latest` or `?ref=sha256:…`")
        })?;
    readable(&app, &headers, &org, &name).await?;
    let store = app.store.clone();
    let (o, n) = (org.clone(), name.clone());
    let rows = blocking(move || store.versions(&o, &n)).await?;
    let found = if reference == "latest" {
        latest(&rows)
    } else if reference.starts_with("sha256:") {
        let digest = parse_digest(&reference)?;
        rows.iter()
            .filter(|r| r.manifest_digest == digest)
            .max_by(|a, b| version::compare(&a.version, &b.version))
    } else {
        rows.iter().find(|r| r.version == reference)
    };
    let Some(row) = found else {
        let mut known: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        known.sort_by(|a, b| version::compare(b, a));
        known.truncate(20);
        let why = if reference == "latest" {
            "has no published or deprecated version".to_owned()
        } else {
            format!("has no version `{reference}`")
        };
        return Err(
            ApiError::not_found(format!("`{org}/{name}` {why}; its versions: {}", known.join(", ")))
                .details(json!({"versions": known})),
        );
    };
    Ok(json_response(
        StatusCode::OK,
        resolve_answer(&app.options.public_url, &org, &name, &reference, row),
    ))
}

fn parse_kind(kind: &str) -> Result<Kind, ApiError> {
    match kind {
        "manifest" => Ok(Kind::Manifest),
        "bundle" => Ok(Kind::Bundle),
        _ => Err(ApiError::not_found(format!(
            "no artifact kind `{kind}`: use `manifest` or `bundle`"
        ))),
    }
}

async fn get_artifact(
    State(app): Shared,
    UrlPath((org, digest, kind)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    check_org(&org)?;
    let kind = parse_kind(&kind)?;
    let digest = parse_digest(&digest)?;
    let grant = grant(&app, &headers).await?;
    let store = app.store.clone();
    let (o, d) = (org.clone(), digest.clone());
    let (size, public) =
        blocking(move || Ok((store.artifact_size(&o, &d, kind)?, store.artifact_is_public(&o, &d)?))).await?;
    let may_read = public || grant.is_some_and(|g| g.allows(Scope::Read, &org));
    let missing = || {
        ApiError::not_found(format!(
            "no {} `{digest}` in `{org}` (a private package's artifacts need a token with `read` on `{org}`)",
            kind.as_str()
        ))
    };
    if size.is_none() || !may_read {
        return Err(missing());
    }
    let path = app.store.blob_path(&digest);
    let unreadable = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            format!("the blob of `{digest}` cannot be read from the store ({e}): push it again"),
        )
    };
    let file = tokio::fs::File::open(&path).await.map_err(unreadable)?;
    // The length of what is served is the file's: the bytes are not re-hashed here (the
    // client verifies them), and a length from the database would make a damaged blob a
    // broken connection instead of a digest mismatch the client can name.
    let size = file.metadata().await.map_err(unreadable)?.len();
    let content_type = match kind {
        Kind::Manifest => "application/json",
        Kind::Bundle => "application/gzip",
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// A temporary file removed when dropped, unless committed.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn too_large(what: &str, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the {what} is over the registry's limit of {limit} bytes"),
    )
    .details(json!({"limit_bytes": limit}))
}

fn timeout_error() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "timeout",
        "the request body arrived too slowly: send it again on a faster connection",
    )
}

/// The next chunk of a request body, within the body's overall deadline and the idle
/// timeout (either passing is [`timeout_error`]).
async fn next_chunk<S: futures_util::Stream + Unpin>(
    app: &App,
    stream: &mut S,
    deadline: tokio::time::Instant,
) -> Result<Option<S::Item>, ApiError> {
    tokio::time::timeout_at(deadline, tokio::time::timeout(app.options.idle_timeout, stream.next()))
        .await
        .map_err(|_| timeout_error())?
        .map_err(|_| timeout_error())
}

/// Read `body` whole into memory, at most `limit` bytes (413 above), within the timeouts.
async fn read_small(app: &App, body: Body, headers: &HeaderMap, limit: u64, what: &str) -> Result<Vec<u8>, ApiError> {
    if content_length(headers).is_some_and(|n| n > limit) {
        return Err(too_large(what, limit));
    }
    let mut data = Vec::new();
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + app.options.body_timeout;
    loop {
        let next = next_chunk(app, &mut stream, deadline).await?;
        match next {
            None => return Ok(data),
            Some(Ok(chunk)) => {
                if data.len() as u64 + chunk.len() as u64 > limit {
                    return Err(too_large(what, limit));
                }
                data.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return Err(ApiError::bad_request(format!("reading the request body: {e}"))),
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(app: &App, body: Body, headers: &HeaderMap) -> Result<T, ApiError> {
    let limit = app.options.max_json_bytes as u64;
    let bytes = read_small(app, body, headers, limit, "JSON body").await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))
}

/// Stream `body` to a temporary file in the store, hashing it, at most `limit` bytes.
/// Returns the file (removed unless committed), its size and its digest.
async fn receive(
    app: &App,
    body: Body,
    headers: &HeaderMap,
    limit: u64,
    what: &str,
) -> Result<(TempFile, u64, String), ApiError> {
    if content_length(headers).is_some_and(|n| n > limit) {
        return Err(too_large(what, limit));
    }
    let name = new_token().map_err(ApiError::from)?;
    let path = app.store.tmp_dir().join(format!("upload-{}", &name[5..37]));
    let io_error = |e: std::io::Error| {
        ApiError::from(ServerError::Io {
            path: app.store.tmp_dir(),
            what: "writing an upload",
            source: e,
        })
    };
    let mut file = tokio::fs::File::create(&path).await.map_err(io_error)?;
    let temp = TempFile { path: Some(path) };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + app.options.body_timeout;
    loop {
        let next = next_chunk(app, &mut stream, deadline).await?;
        match next {
            None => break,
            Some(Ok(chunk)) => {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large(what, limit));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_error)?;
            }
            Some(Err(e)) => return Err(ApiError::bad_request(format!("reading the upload: {e}"))),
        }
    }
    file.sync_all().await.map_err(io_error)?;
    drop(file);
    Ok((temp, size, format!("sha256:{}", hex(&hasher.finalize()))))
}

/// Move a verified upload into place under its digest, durably.
fn commit_blob(store: &Store, mut temp: TempFile, digest: &Digest) -> Result<(), ServerError> {
    let Some(from) = temp.path.take() else {
        return Ok(());
    };
    let to = store.blob_path(digest);
    std::fs::rename(&from, &to).map_err(|source| {
        let _ = std::fs::remove_file(&from);
        ServerError::Io {
            path: to.clone(),
            what: "moving an upload into the store",
            source,
        }
    })?;
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ServerError::Io {
            path: dir.to_path_buf(),
            what: "syncing the blob directory",
            source,
        })
}

async fn put_artifact(
    State(app): Shared,
    UrlPath((org, digest, kind)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_org(&org)?;
    let kind = parse_kind(&kind)?;
    let digest = parse_digest(&digest)?;
    require(&app, &headers, Scope::Push, &org).await?;
    let limit = match kind {
        Kind::Manifest => MAX_MANIFEST_BYTES.min(app.options.max_artifact_bytes),
        Kind::Bundle => app.options.max_artifact_bytes,
    };
    let (temp, size, actual) = receive(&app, body, &headers, limit, kind.as_str()).await?;
    if actual != digest.as_str() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "digest_mismatch",
            format!(
                "the uploaded {} hashes to `{actual}`, not `{digest}`: upload the bytes that digest names",
                kind.as_str()
            ),
        )
        .details(json!({"expected": digest.as_str(), "actual": actual})));
    }
    if kind == Kind::Manifest {
        check_manifest(&app, &org, temp.path.as_deref()).await?;
    }
    let store = app.store.clone();
    let (o, d) = (org.clone(), digest.clone());
    blocking(move || {
        commit_blob(&store, temp, &d)?;
        store.record_artifact(&o, &d, kind, size)
    })
    .await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({"digest": digest.as_str(), "kind": kind.as_str(), "size_bytes": size}),
    ))
}

/// An uploaded manifest must validate, be for a package of `org`, and name a bundle
/// already uploaded under `org` with the same size.
async fn check_manifest(app: &App, org: &str, path: Option<&Path>) -> Result<(), ApiError> {
    let Some(path) = path else {
        return Err(ApiError::bad_request("the manifest upload was lost"));
    };
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the manifest: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| ApiError::bad_request("invalid package manifest: not UTF-8"))?;
    let manifest =
        PackageManifest::from_json(&text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_manifest", e))?;
    let manifest_org = manifest.package.id.split('/').next().unwrap_or("");
    if manifest_org != org {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_manifest",
            format!(
                "the manifest is for `{}`, not a package of `{org}`: upload it under `/v1/org/{manifest_org}/`",
                manifest.package.id
            ),
        ));
    }
    let Some(bundle) = manifest.bundle else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_manifest",
            "the manifest has no `bundle`: fill in the bundle's digest and size_bytes (`mcp-j push` does)",
        ));
    };
    let store = app.store.clone();
    let (o, d) = (org.to_owned(), bundle.digest.clone());
    match blocking(move || store.artifact_size(&o, &d, Kind::Bundle)).await? {
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bundle_missing",
            format!(
                "the manifest's bundle `{}` was not uploaded to `{org}`: upload the bundle first",
                bundle.digest
            ),
        )
        .details(json!({"bundle_digest": bundle.digest.as_str()}))),
        Some(size) if size != bundle.size_bytes => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_manifest",
            format!(
                "the manifest says the bundle is {} bytes, the uploaded bundle is {size}: fix `bundle.size_bytes`",
                bundle.size_bytes
            ),
        )),
        Some(_) => Ok(()),
    }
}

#[derive(Deserialize)]
struct VersionRequest {
    version: String,
    manifest_digest: String,
    #[serde(default)]
    git_sha: Option<String>,
}

async fn create_version(
    State(app): Shared,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_package(&org, &name)?;
    require(&app, &headers, Scope::Push, &org).await?;
    let request: VersionRequest = read_json(&app, body, &headers).await?;
    if !version::is_valid(&request.version) {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a version: use up to 128 letters, digits, `.`, `_`, `+`, `-` (not `latest`)",
            request.version
        )));
    }
    let manifest_digest = parse_digest(&request.manifest_digest)?;
    let store = app.store.clone();
    let (o, d) = (org.clone(), manifest_digest.clone());
    let uploaded = blocking(move || store.artifact_size(&o, &d, Kind::Manifest)).await?;
    if uploaded.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "manifest_missing",
            format!("the manifest `{manifest_digest}` was not uploaded to `{org}`: upload it first"),
        ));
    }
    let text = tokio::fs::read_to_string(app.store.blob_path(&manifest_digest))
        .await
        .map_err(|e| {
            ApiError::from(ServerError::Io {
                path: app.store.blob_path(&manifest_digest),
                what: "reading a manifest",
                source: e,
            })
        })?;
    let manifest =
        PackageManifest::from_json(&text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_manifest", e))?;
    let package = format!("{org}/{name}");
    if manifest.package.id != package {
        return Err(ApiError::bad_request(format!(
            "the manifest is for `{}`, not `{package}`: create the version under its own package",
            manifest.package.id
        )));
    }
    if manifest.package.version != request.version {
        return Err(ApiError::bad_request(format!(
            "the manifest is for version `{}`, not `{}`: the version must be the manifest's",
            manifest.package.version, request.version
        )));
    }
    let git_sha = match (request.git_sha, manifest.package.git_sha) {
        (Some(asked), Some(written)) if asked != written => {
            return Err(ApiError::bad_request(format!(
                "git_sha `{asked}` differs from the manifest's `{written}`: leave it out or make them agree"
            )));
        }
        (asked, written) => asked.or(written),
    };
    let Some(bundle) = manifest.bundle else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_manifest",
            "the manifest has no `bundle`",
        ));
    };
    let store = app.store.clone();
    let visibility = app.options.default_visibility;
    let (o, n, v) = (org.clone(), name.clone(), request.version.clone());
    let inserted = blocking(move || {
        store.insert_version(
            &NewVersion {
                org: &o,
                name: &n,
                version: &v,
                manifest_digest: &manifest_digest,
                bundle_digest: &bundle.digest,
                bundle_size: bundle.size_bytes,
                git_sha: git_sha.as_deref(),
            },
            visibility,
        )
    })
    .await?;
    match inserted {
        Inserted::Created(row) => Ok(json_response(
            StatusCode::CREATED,
            resolve_answer(&app.options.public_url, &org, &name, &row.version, &row),
        )),
        Inserted::Same(row) => Ok(json_response(
            StatusCode::OK,
            resolve_answer(&app.options.public_url, &org, &name, &row.version, &row),
        )),
        Inserted::Conflict(row) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_exists",
            format!(
                "`{package}@{}` already exists with manifest `{}`{}: versions are immutable, publish a new version",
                row.version,
                row.manifest_digest,
                row.git_sha
                    .as_deref()
                    .map(|s| format!(" and git_sha `{s}`"))
                    .unwrap_or_default()
            ),
        )
        .details(json!({"manifest_digest": row.manifest_digest.as_str(), "git_sha": row.git_sha}))),
    }
}

#[derive(Deserialize)]
struct VersionPatch {
    #[serde(default)]
    status: Option<PackageStatus>,
    #[serde(default)]
    certification_level: Option<CertLevel>,
    #[serde(default)]
    origin: Option<Origin>,
}

async fn patch_version(
    State(app): Shared,
    UrlPath((org, name, version)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_package(&org, &name)?;
    require(&app, &headers, Scope::Admin, &org).await?;
    let patch: VersionPatch = read_json(&app, body, &headers).await?;
    if patch.status.is_none() && patch.certification_level.is_none() && patch.origin.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give `status`, `certification_level` or `origin`",
        ));
    }
    let store = app.store.clone();
    let (o, n, v) = (org.clone(), name.clone(), version.clone());
    let row = blocking(move || store.patch_version(&o, &n, &v, patch.status, patch.certification_level, patch.origin))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("`{org}/{name}` has no version `{version}`")))?;
    Ok(json_response(
        StatusCode::OK,
        resolve_answer(&app.options.public_url, &org, &name, &version, &row),
    ))
}

#[derive(Deserialize)]
struct PackagePatch {
    visibility: String,
}

async fn patch_package(
    State(app): Shared,
    UrlPath((org, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_package(&org, &name)?;
    require(&app, &headers, Scope::Admin, &org).await?;
    let patch: PackagePatch = read_json(&app, body, &headers).await?;
    let visibility: Visibility = patch.visibility.parse().map_err(ApiError::bad_request)?;
    let store = app.store.clone();
    let (o, n) = (org.clone(), name.clone());
    if !blocking(move || store.set_visibility(&o, &n, visibility)).await? {
        return Err(ApiError::not_found(format!(
            "no package `{org}/{name}`: push a version first"
        )));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"package": format!("{org}/{name}"), "visibility": visibility.as_str()}),
    ))
}

async fn catalog(State(app): Shared, headers: HeaderMap) -> Answer {
    let grant = grant(&app, &headers).await?;
    let store = app.store.clone();
    let packages = blocking(move || {
        let mut out = Vec::new();
        for (org, name, visibility) in store.packages()? {
            let readable = visibility == Visibility::Public || grant.as_ref().is_some_and(|g| g.allows(Scope::Read, &org));
            if readable {
                let rows = store.versions(&org, &name)?;
                let latest = latest(&rows).map(|r| r.version.clone());
                out.push(json!({"package": format!("{org}/{name}"), "visibility": visibility.as_str(), "latest_version": latest}));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json_response(StatusCode::OK, json!({"packages": packages})))
}

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

/// An argon2id hash (PHC string) of `password`, with a random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, ServerError> {
    use argon2::PasswordHasher;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServerError::Runtime {
        what: "reading random bytes for a salt",
        source: std::io::Error::other(e.to_string()),
    })?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| ServerError::Invalid(format!("encoding a salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServerError::Invalid(format!("hashing the password: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::password_hash::PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Compared against when the user does not exist, so that answer takes as long.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn login(State(app): Shared, headers: HeaderMap, body: Body) -> Answer {
    let request: LoginRequest = read_json(&app, body, &headers).await?;
    let username = request.username.clone();
    if let Some(wait) = app.login_failures.blocked_for(&username, &app.options) {
        let seconds = wait.as_secs().max(1);
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins for `{username}`: try again in {seconds} s"),
        )
        .details(json!({"retry_after_seconds": seconds}));
        return Ok(([(header::RETRY_AFTER, seconds.to_string())], error).into_response());
    }
    let store = app.store.clone();
    let ttl = app.options.login_ttl;
    let token = blocking(move || {
        let user = store.user(&request.username)?;
        let dummy = DUMMY_HASH.get_or_init(|| hash_password("not a password").unwrap_or_default());
        let phc = user.as_ref().map_or(dummy.as_str(), |(phc, _, _)| phc.as_str());
        let ok = verify_password(&request.password, phc) && user.is_some();
        let Some((_, scope, org)) = user.filter(|_| ok) else {
            return Ok(None);
        };
        let token = new_token()?;
        let expires = now() + i64::try_from(ttl.as_secs()).unwrap_or(3600);
        store.insert_token(&token_hash(&token), scope, org.as_deref(), Some(expires), "login")?;
        Ok(Some(token))
    })
    .await?;
    let Some(token) = token else {
        app.login_failures.failed(&username, &app.options);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong user name or password: check them, or ask the registry's operator (`mcp-j registry user add`)",
        ));
    };
    app.login_failures.succeeded(&username);
    Ok(json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "expires_in": ttl.as_secs()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, status: PackageStatus) -> VersionRow {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        VersionRow {
            version: version.to_owned(),
            manifest_digest: digest.clone(),
            bundle_digest: digest,
            bundle_size: 1,
            git_sha: None,
            status,
            level: CertLevel::default(),
            origin: Origin::Community,
        }
    }

    #[test]
    fn latest_is_the_highest_runnable_version() {
        use PackageStatus::*;
        let pick = |rows: &[VersionRow]| latest(rows).map(|r| r.version.clone());
        assert_eq!(pick(&[]), None);
        assert_eq!(
            pick(&[
                row("1.9.0", Published),
                row("1.10.0", Published),
                row("1.2.0", Published)
            ]),
            Some("1.10.0".to_owned())
        );
        assert_eq!(
            pick(&[row("1.0.0", Deprecated), row("2.0.0", Revoked)]),
            Some("1.0.0".to_owned())
        );
        for status in [Draft, Ingested, Scanned, Quarantined, Revoked] {
            assert_eq!(
                pick(&[row("3.0.0", status), row("1.0.0", Published)]),
                Some("1.0.0".to_owned()),
                "{status}"
            );
            assert_eq!(pick(&[row("3.0.0", status)]), None, "{status}");
        }
        assert_eq!(
            pick(&[row("2.0.0-rc.1", Published), row("1.5.0", Published)]),
            Some("2.0.0-rc.1".to_owned())
        );
    }

    #[test]
    fn a_grant_covers_its_scope_and_below_on_its_org_only() {
        let bound = Grant {
            scope: Scope::Push,
            org: Some("acme".to_owned()),
        };
        assert!(bound.allows(Scope::Read, "acme"));
        assert!(bound.allows(Scope::Push, "acme"));
        assert!(!bound.allows(Scope::Admin, "acme"));
        assert!(!bound.allows(Scope::Read, "other"));
        let everywhere = Grant {
            scope: Scope::Admin,
            org: None,
        };
        for scope in [Scope::Read, Scope::Push, Scope::Admin] {
            assert!(everywhere.allows(scope, "acme") && everywhere.allows(scope, "other"));
        }
    }

    #[test]
    fn failed_logins_block_one_name_for_the_window() {
        let options = ServeOptions {
            max_login_failures: 3,
            login_window: std::time::Duration::from_millis(200),
            ..ServeOptions::default()
        };
        let failures = LoginFailures::default();
        for _ in 0..2 {
            failures.failed("alice", &options);
            assert_eq!(failures.blocked_for("alice", &options), None);
        }
        failures.failed("alice", &options);
        assert!(failures.blocked_for("alice", &options).is_some());
        assert_eq!(failures.blocked_for("bob", &options), None);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(failures.blocked_for("alice", &options), None);
        // A new window starts from zero.
        failures.failed("alice", &options);
        assert_eq!(failures.blocked_for("alice", &options), None);
        // A success forgets the failures.
        failures.failed("alice", &options);
        failures.failed("alice", &options);
        assert!(failures.blocked_for("alice", &options).is_some());
        failures.succeeded("alice");
        assert_eq!(failures.blocked_for("alice", &options), None);
    }
}
