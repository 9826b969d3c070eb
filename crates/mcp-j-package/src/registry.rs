//! The registry client: the read half of REGISTRY_API.md (resolve, artifacts by digest,
//! catalog) and login, against any registry that speaks it.
//!
//! - A registry is `https://…`, or `http://` on a loopback address only (a local or test
//!   registry); TLS is verified against the system's roots (`RootCerts::PlatformVerifier`:
//!   a mirror or a TLS-inspecting proxy whose CA is in the system store works).
//! - Redirects are followed here, not by the HTTP library, so that each hop is checked: only
//!   to `https`, or `http` on loopback, and never to an address in a special range (private,
//!   link-local, …: the policy crate's classification, over every address the name
//!   resolves to). The bearer token goes only to the registry's own origin, never to a
//!   redirect's.
//! - Timeouts on every phase; artifact downloads are retried on 5xx and 429 with backoff
//!   (`Retry-After` honoured up to a cap); at most 4 KiB of an error body is read, and its
//!   `message` shown. Every request says `User-Agent: mcp-j/VERSION`.
//!
//! What comes back is unverified: the caller hashes artifacts while streaming
//! (`crate::digest`) against the resolve answer's digests.

use std::io::Read;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use mcp_j_policy::package::Digest;
use mcp_j_policy::resolve::{MAX_RESOLVE_BYTES, ResolveAnswer};

/// How many redirects one request follows.
const MAX_REDIRECTS: usize = 5;
/// How much of an error body is read.
const MAX_ERROR_BODY: u64 = 4096;
/// Attempts for an artifact download (5xx, 429, transport errors).
const ARTIFACT_ATTEMPTS: u32 = 4;
/// The first backoff; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// What went wrong talking to a registry. Every message names the URL.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry URL cannot be used.
    #[error("registry `{url}`: {why}")]
    BadUrl {
        /// As given.
        url: String,
        /// Why, and what works instead.
        why: String,
    },
    /// The registry answered with an error status.
    #[error("{url}: HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The error code of the body, if it had one.
        code: Option<String>,
        /// The body's `message`, or the start of the body.
        message: String,
    },
    /// A redirect was refused.
    #[error("{from}: refused to follow a redirect to `{to}`: {why}")]
    Redirect {
        /// The URL that redirected.
        from: String,
        /// Where to.
        to: String,
        /// Why not.
        why: String,
    },
    /// The connection failed or timed out.
    #[error("{url}: {source}")]
    Transport {
        /// The request URL.
        url: String,
        /// The error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The answer could not be used.
    #[error("{url}: {why}")]
    Invalid {
        /// The request URL.
        url: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Which artifact of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// `manifest.json`.
    Manifest,
    /// The `.tar.gz` bundle.
    Bundle,
}

impl Artifact {
    fn path(self) -> &'static str {
        match self {
            Artifact::Manifest => "manifest",
            Artifact::Bundle => "bundle",
        }
    }
}

/// One registry, with its token (for its own origin only).
pub struct Registry {
    base: String,
    origin: Origin,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Scheme, host and port: what a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) https: bool,
    /// Lowercased; an IPv6 address without its brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Registry {
    /// A client for the registry at `url` (`https://registry.example`, or
    /// `http://127.0.0.1:PORT` for a local one), sending `token` to it.
    pub fn new(url: &str, token: Option<String>) -> Result<Registry, RegistryError> {
        let base = url.trim_end_matches('/').to_owned();
        let origin = parse_origin(&base).map_err(|why| RegistryError::BadUrl {
            url: url.to_owned(),
            why,
        })?;
        if !origin.https && !is_loopback_host(&origin.host) {
            return Err(RegistryError::BadUrl {
                url: url.to_owned(),
                why: "plain http is allowed only on a loopback address; use https://".to_owned(),
            });
        }
        // No resolve timeout, no global or per-call timeout: with any of them ureq resolves
        // on a detached thread of its own, and that thread can still be alive when `mcp-j run`
        // forks the jail helper, which must fork a single-threaded process (the run then
        // fails with "a jail was started while 2 threads ran"). The lookup is bounded by the
        // resolver's own timeouts (resolv.conf) instead; every later phase has its own.
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("mcp-j/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_send_request(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(Duration::from_secs(600)))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Ok(Registry {
            base,
            origin,
            token,
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// `GET …/resolve?ref=REF` for `org/name`, parsed and checked to be for that package.
    pub fn resolve(&self, org: &str, name: &str, reference: &str) -> Result<ResolveAnswer, RegistryError> {
        let url = format!(
            "{}/v1/org/{}/mcps/{}/resolve?ref={}",
            self.base,
            encode(org),
            encode(name),
            encode(reference)
        );
        let mut body = self.get(&url, 1)?;
        let mut text = String::new();
        body.by_ref()
            .take(MAX_RESOLVE_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|e| RegistryError::Invalid {
                url: url.clone(),
                why: format!("reading the resolve answer: {e}"),
            })?;
        ResolveAnswer::from_json(&text, &format!("{org}/{name}")).map_err(|why| RegistryError::Invalid { url, why })
    }

    /// The bytes of an artifact, by digest, from this registry's artifact endpoint
    /// (following checked redirects; retried on 5xx and 429). Unverified: hash them.
    pub fn artifact(
        &self,
        org: &str,
        kind: Artifact,
        digest: &Digest,
    ) -> Result<Box<dyn Read + Send + Sync + 'static>, RegistryError> {
        let url = format!(
            "{}/v1/org/{}/artifacts/{}/{}",
            self.base,
            encode(org),
            digest.as_str(),
            kind.path()
        );
        self.get(&url, ARTIFACT_ATTEMPTS)
    }

    /// `GET /v1/catalog`, as JSON.
    pub fn catalog(&self) -> Result<serde_json::Value, RegistryError> {
        let url = format!("{}/v1/catalog", self.base);
        let body = self.get(&url, 1)?;
        serde_json::from_reader(body.take(4 * 1024 * 1024)).map_err(|e| RegistryError::Invalid {
            url,
            why: format!("the catalog is not JSON: {e}"),
        })
    }

    /// `POST /v1/auth/login`: the access token for `username`.
    pub fn login(&self, username: &str, password: &str) -> Result<String, RegistryError> {
        let url = format!("{}/v1/auth/login", self.base);
        let body = serde_json::json!({"username": username, "password": password}).to_string();
        let response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| transport(&url, e))?;
        let status = response.status().as_u16();
        let mut reader = response.into_body().into_reader();
        if status != 200 {
            return Err(status_error(&url, status, &mut reader));
        }
        let answer: serde_json::Value =
            serde_json::from_reader(reader.take(64 * 1024)).map_err(|e| RegistryError::Invalid {
                url: url.clone(),
                why: format!("the login answer is not JSON: {e}"),
            })?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RegistryError::Invalid {
                url,
                why: "the login answer has no `access_token`".to_owned(),
            })
    }

    /// `PUT …/artifacts/DIGEST/{manifest,bundle}` (scope `push`): upload an artifact whose
    /// digest the caller computed (the registry checks it). `Ok(())` on 201 or 200.
    pub fn put_artifact(&self, org: &str, kind: Artifact, digest: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
        let url = format!(
            "{}/v1/org/{}/artifacts/{}/{}",
            self.base,
            encode(org),
            digest.as_str(),
            kind.path()
        );
        let content_type = match kind {
            Artifact::Manifest => "application/json",
            Artifact::Bundle => "application/gzip",
        };
        self.write("PUT", &url, content_type, bytes)
    }

    /// `POST …/mcps/NAME/versions` (scope `push`): publish `version` of `org/name` as the
    /// manifest `manifest_digest` (already uploaded). A version is immutable: the registry
    /// answers 409 when it exists with other content.
    pub fn create_version(
        &self,
        org: &str,
        name: &str,
        version: &str,
        manifest_digest: &Digest,
        git_sha: Option<&str>,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v1/org/{}/mcps/{}/versions", self.base, encode(org), encode(name));
        let mut body = serde_json::json!({"version": version, "manifest_digest": manifest_digest.as_str()});
        if let Some(sha) = git_sha {
            body["git_sha"] = serde_json::Value::from(sha);
        }
        self.write("POST", &url, "application/json", body.to_string().as_bytes())
    }

    /// A write to our own origin (the token always goes with it); no redirect is followed,
    /// as a write must not be replayed elsewhere.
    fn write(&self, method: &str, url: &str, content_type: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let mut request = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        }
        .header("Content-Type", content_type);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send(bytes).map_err(|e| transport(url, e))?;
        let status = response.status().as_u16();
        if matches!(status, 200 | 201) {
            return Ok(());
        }
        Err(status_error(url, status, &mut response.into_body().into_reader()))
    }

    /// GET with checked redirects, the token for our own origin only, and up to
    /// `attempts` tries on 5xx, 429 and transport errors.
    fn get(&self, url: &str, attempts: u32) -> Result<Box<dyn Read + Send + Sync + 'static>, RegistryError> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.get_once(url) {
                // The error of a try that is retried is replaced by the next try's.
                Err(RetryAfter::Retry(wait, _)) if attempt < attempts => {
                    std::thread::sleep(wait.unwrap_or(backoff).min(MAX_RETRY_AFTER));
                    backoff *= 2;
                    attempt += 1;
                }
                Err(RetryAfter::Retry(_, error) | RetryAfter::Final(error)) => return Err(error),
                Ok(body) => return Ok(body),
            }
        }
    }

    fn get_once(&self, first: &str) -> Result<Box<dyn Read + Send + Sync + 'static>, RetryAfter> {
        let mut url = first.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let origin = parse_origin(&url)
                .map_err(|why| RetryAfter::Final(RegistryError::Invalid { url: url.clone(), why }))?;
            let mut request = self.agent.get(&url);
            if let Some(token) = &self.token
                && origin == self.origin
            {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = request
                .call()
                .map_err(|e| RetryAfter::Retry(None, transport(&url, e)))?;
            let status = response.status().as_u16();
            match status {
                200 => return Ok(Box::new(response.into_body().into_reader())),
                301 | 302 | 303 | 307 | 308 => {
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| {
                            RetryAfter::Final(RegistryError::Invalid {
                                url: url.clone(),
                                why: format!("HTTP {status} without a Location"),
                            })
                        })?;
                    let next = join(&url, location);
                    check_redirect(&next).map_err(|why| {
                        RetryAfter::Final(RegistryError::Redirect {
                            from: url.clone(),
                            to: next.clone(),
                            why,
                        })
                    })?;
                    url = next;
                }
                _ => {
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let error = status_error(&url, status, &mut response.into_body().into_reader());
                    return Err(if status == 429 || status >= 500 {
                        RetryAfter::Retry(retry_after, error)
                    } else {
                        RetryAfter::Final(error)
                    });
                }
            }
        }
        Err(RetryAfter::Final(RegistryError::Invalid {
            url: first.to_owned(),
            why: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }
}

enum RetryAfter {
    Retry(Option<Duration>, RegistryError),
    Final(RegistryError),
}

fn transport(url: &str, error: ureq::Error) -> RegistryError {
    RegistryError::Transport {
        url: url.to_owned(),
        source: Box::new(error),
    }
}

/// The error a status and (at most [`MAX_ERROR_BODY`] bytes of) its body make.
fn status_error(url: &str, status: u16, body: &mut dyn Read) -> RegistryError {
    let mut text = String::new();
    let _ = body.take(MAX_ERROR_BODY).read_to_string(&mut text);
    let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v[name].as_str())
            .map(|s| s.chars().take(500).collect::<String>())
    };
    let message = field("message").unwrap_or_else(|| {
        let start: String = text.chars().take(200).filter(|c| !c.is_control()).collect();
        if start.is_empty() {
            "(no message)".to_owned()
        } else {
            start
        }
    });
    RegistryError::Status {
        url: url.to_owned(),
        status,
        code: field("error"),
        message,
    }
}

/// `scheme://host[:port]/…` → its origin; only http and https.
pub(crate) fn parse_origin(url: &str) -> Result<Origin, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("not an http(s) URL; write https://HOST[:PORT]".to_owned());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err("no host (or user:password@ in the URL, which is not accepted)".to_owned());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an unclosed `[` in the host")?;
            let port = after.strip_prefix(':').map(str::parse::<u16>).transpose();
            (host.to_owned(), port.map_err(|_| "an invalid port")?)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (
                host.to_owned(),
                Some(port.parse::<u16>().map_err(|_| "an invalid port")?),
            ),
            None => (authority.to_owned(), None),
        },
    };
    Ok(Origin {
        https,
        host: host.to_ascii_lowercase(),
        port: port.unwrap_or(if https { 443 } else { 80 }),
    })
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where a redirect may go: https anywhere public, http only on loopback, and no address of
/// a special range (checked over every address the name resolves to, here).
fn check_redirect(url: &str) -> Result<(), String> {
    let origin = parse_origin(url)?;
    if is_loopback_host(&origin.host) {
        return Ok(());
    }
    if !origin.https {
        return Err("plain http is followed only to loopback".to_owned());
    }
    let addresses: Vec<IpAddr> = match origin.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => (origin.host.as_str(), origin.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve it: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    for ip in addresses {
        if let Some(special) = mcp_j_policy::egress::classify(ip) {
            return Err(format!("{ip} is {}, not a public address", special.range.describe()));
        }
    }
    Ok(())
}

/// `location` relative to `base` (absolute URL, absolute path, or relative path).
fn join(base: &str, location: &str) -> String {
    // Any scheme makes it absolute (and `check_redirect` refuses all but http(s)).
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if has_scheme {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let origin = &base[..path_start];
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = base[path_start..].split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{origin}{dir}/{location}")
}

/// Percent-encode a path segment or query value (everything but unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
