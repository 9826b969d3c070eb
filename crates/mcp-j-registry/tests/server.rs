//! The registry server end to end on loopback (127.0.0.1, ephemeral ports only): the read
//! half through mcp-j's own registry client, the write half with raw HTTP requests. Every
//! test runs under a time bound.

// Helpers of an integration test may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use mcp_j_package::registry::{Artifact, Registry, RegistryError};
use mcp_j_policy::PackageStatus;
use mcp_j_registry::{Scope, ServeOptions, ServerHandle, Visibility, add_user, create_token, spawn};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Run `test` on a thread and fail if it takes longer than `limit`.
fn bounded(limit: Duration, test: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: surface its panic.
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test took longer than {limit:?}"),
    }
}

const LIMIT: Duration = Duration::from_secs(60);

fn start(root: &Path, options: ServeOptions) -> ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    spawn(listener, root, options).unwrap()
}

fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build(),
    )
}

/// A response's status and JSON body.
fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn put(url: &str, token: Option<&str>, bytes: &[u8]) -> (u16, Value) {
    let mut request = agent().put(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(request.send(bytes))
}

fn send_json(method: &str, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let agent = agent();
    let mut request = match method {
        "POST" => agent.post(url),
        "PATCH" => agent.patch(url),
        other => panic!("{other}"),
    };
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(
        request
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes()),
    )
}

fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    answer(request.call())
}

fn manifest_for(package: &str, version: &str, git_sha: &str, bundle: &[u8]) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "schema_version": "1.0",
        "package": {"id": package, "version": version, "git_sha": git_sha},
        "bundle": {"digest": digest(bundle), "size_bytes": bundle.len()},
        "transport": {"type": "stdio"},
        "entrypoints": [{"os": "linux", "arch": "amd64", "command": "/usr/bin/python3", "args": ["/pkg/server.py"]}],
        "permissions_requested": {"network": [], "environment": [], "subprocess": false, "filesystem": []}
    }))
    .unwrap()
}

struct Pushed {
    manifest: Vec<u8>,
    manifest_digest: String,
    bundle_digest: String,
    status: u16,
    answer: Value,
}

/// Upload a bundle and a manifest for `org/name@version`, then create the version.
fn push(url: &str, token: &str, package: &str, version: &str, bundle: &[u8]) -> Pushed {
    let org = package.split('/').next().unwrap();
    let bundle_digest = digest(bundle);
    let (status, body) = put(
        &format!("{url}/v1/org/{org}/artifacts/{bundle_digest}/bundle"),
        Some(token),
        bundle,
    );
    assert_eq!(status, 201, "{body}");
    let manifest = manifest_for(package, version, "abc123", bundle);
    let manifest_digest = digest(&manifest);
    let (status, body) = put(
        &format!("{url}/v1/org/{org}/artifacts/{manifest_digest}/manifest"),
        Some(token),
        &manifest,
    );
    assert_eq!(status, 201, "{body}");
    let name = package.split('/').nth(1).unwrap();
    let (status, answer) = send_json(
        "POST",
        &format!("{url}/v1/org/{org}/mcps/{name}/versions"),
        Some(token),
        &json!({"version": version, "manifest_digest": manifest_digest}),
    );
    Pushed {
        manifest,
        manifest_digest,
        bundle_digest,
        status,
        answer,
    }
}

fn read_all(mut reader: Box<dyn Read + Send + Sync>) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).unwrap();
    bytes
}

fn status_of(error: RegistryError) -> u16 {
    match error {
        RegistryError::Status { status, .. } => status,
        other => panic!("expected an HTTP status error, got {other}"),
    }
}

fn artifact_error(client: &Registry, kind: Artifact, digest: &mcp_j_policy::package::Digest) -> RegistryError {
    match client.artifact("acme", kind, digest) {
        Ok(_) => panic!("{digest} was served"),
        Err(error) => error,
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn pushed_versions_resolve_by_version_latest_and_digest_with_artifacts_matching_their_digests() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let push_token = create_token(root.path(), Scope::Push, Some("acme")).unwrap();
        let admin = create_token(root.path(), Scope::Admin, None).unwrap();
        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        let mut pushed = Vec::new();
        for version in ["1.2.0", "1.10.0", "1.9.0"] {
            let bundle = format!("bundle of {version}").repeat(1000).into_bytes();
            let p = push(&url, &push_token, "acme/hello", version, &bundle);
            assert_eq!(p.status, 201, "{}", p.answer);
            assert_eq!(p.answer["resolved"]["status"], "published");
            assert_eq!(p.answer["resolved"]["certification_level"], 0);
            assert_eq!(p.answer["origin"], "community");
            pushed.push((version, bundle, p));
        }

        let client = Registry::new(&url, None).unwrap();
        for (version, bundle, p) in &pushed {
            let by_version = client.resolve("acme", "hello", version).unwrap();
            assert_eq!(by_version.resolved.version, *version);
            assert_eq!(by_version.resolved.status, PackageStatus::Published);
            assert_eq!(by_version.resolved.manifest.digest.as_str(), p.manifest_digest);
            assert_eq!(by_version.resolved.bundle.digest.as_str(), p.bundle_digest);
            assert_eq!(by_version.resolved.bundle.size_bytes, bundle.len() as u64);
            assert_eq!(by_version.resolved.git_sha.as_deref(), Some("abc123"));

            let by_digest = client.resolve("acme", "hello", &p.manifest_digest).unwrap();
            assert_eq!(by_digest.resolved.version, *version);

            let manifest = read_all(
                client
                    .artifact("acme", Artifact::Manifest, &by_version.resolved.manifest.digest)
                    .unwrap(),
            );
            assert_eq!(digest(&manifest), p.manifest_digest);
            assert_eq!(manifest, p.manifest);
            let got = read_all(
                client
                    .artifact("acme", Artifact::Bundle, &by_version.resolved.bundle.digest)
                    .unwrap(),
            );
            assert_eq!(digest(&got), p.bundle_digest);
        }

        // Semver, not text: 1.10.0 is newer than 1.9.0.
        assert_eq!(
            client.resolve("acme", "hello", "latest").unwrap().resolved.version,
            "1.10.0"
        );
        let catalog = client.catalog().unwrap();
        assert_eq!(
            catalog["packages"],
            json!([{"package": "acme/hello", "visibility": "public", "latest_version": "1.10.0"}])
        );

        // Revoked: visible as such when asked by version, skipped by `latest`.
        let (status, body) = send_json(
            "PATCH",
            &format!("{url}/v1/org/acme/mcps/hello/versions/1.10.0"),
            Some(&admin),
            &json!({"status": "revoked"}),
        );
        assert_eq!(status, 200, "{body}");
        let revoked = client.resolve("acme", "hello", "1.10.0").unwrap();
        assert_eq!(revoked.resolved.status, PackageStatus::Revoked);
        assert_eq!(
            client.resolve("acme", "hello", "latest").unwrap().resolved.version,
            "1.9.0"
        );
        // Deprecated still counts for `latest`.
        let (status, _) = send_json(
            "PATCH",
            &format!("{url}/v1/org/acme/mcps/hello/versions/1.9.0"),
            Some(&admin),
            &json!({"status": "deprecated", "certification_level": 2, "origin": "verified"}),
        );
        assert_eq!(status, 200);
        let deprecated = client.resolve("acme", "hello", "latest").unwrap();
        assert_eq!(deprecated.resolved.version, "1.9.0");
        assert_eq!(deprecated.resolved.status, PackageStatus::Deprecated);
        assert_eq!(deprecated.resolved.certification_level.get(), 2);
        assert_eq!(deprecated.origin, mcp_j_policy::Origin::Verified);

        // A blob damaged in the store is served as it is, for the client's digest check
        // to refuse (here: a shorter file).
        let (_, bundle, p) = &pushed[0];
        let blob = root
            .path()
            .join("blobs/sha256")
            .join(&p.bundle_digest["sha256:".len()..]);
        std::fs::write(&blob, &bundle[..bundle.len() / 2]).unwrap();
        let bundle_digest = p.bundle_digest.parse().unwrap();
        let damaged = read_all(client.artifact("acme", Artifact::Bundle, &bundle_digest).unwrap());
        assert_eq!(damaged, bundle[..bundle.len() / 2]);
        assert_ne!(digest(&damaged), p.bundle_digest);

        // Unknown version, unknown package, unknown digest: 404 with a JSON error.
        assert_eq!(status_of(client.resolve("acme", "hello", "3.0.0").unwrap_err()), 404);
        assert_eq!(status_of(client.resolve("acme", "nope", "latest").unwrap_err()), 404);
        let (status, body) = get(
            &format!("{url}/v1/org/acme/artifacts/sha256:{}/bundle", "0".repeat(64)),
            None,
        );
        assert_eq!(status, 404);
        assert_eq!(body["error"], "not_found");
        assert!(body["message"].as_str().unwrap().contains("no bundle"), "{body}");
        assert!(body["details"].is_object());
        let (status, body) = get(&format!("{url}/v1/org/acme/mcps/hello/resolve?ref=sha256:XYZ"), None);
        assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
        let (status, body) = get(&format!("{url}/healthz"), None);
        assert_eq!((status, &body["status"]), (200, &json!("ok")));
    });
}

#[test]
fn uploads_are_verified_capped_and_authorised() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let push_token = create_token(root.path(), Scope::Push, Some("acme")).unwrap();
        let other_org = create_token(root.path(), Scope::Push, Some("evil")).unwrap();
        let read_token = create_token(root.path(), Scope::Read, Some("acme")).unwrap();
        let options = ServeOptions {
            max_artifact_bytes: 4096,
            max_json_bytes: 1024,
            ..ServeOptions::default()
        };
        let server = start(root.path(), options);
        let url = server.url();
        let bundle = vec![7u8; 1000];
        let good = digest(&bundle);
        let wrong = digest(b"something else");

        // Digest mismatch: 400, and nothing stored under either digest.
        let (status, body) = put(
            &format!("{url}/v1/org/acme/artifacts/{wrong}/bundle"),
            Some(&push_token),
            &bundle,
        );
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "digest_mismatch");
        assert_eq!(body["details"]["actual"], good);
        let blobs = root.path().join("blobs/sha256");
        assert!(files_under(&blobs).is_empty());
        assert!(files_under(&root.path().join("tmp")).is_empty());

        // Over the limit: 413, whether announced by Content-Length or streamed chunked.
        let big = vec![1u8; 5000];
        let (status, body) = put(
            &format!("{url}/v1/org/acme/artifacts/{}/bundle", digest(&big)),
            Some(&push_token),
            &big,
        );
        assert_eq!((status, body["error"].as_str()), (413, Some("too_large")), "{body}");
        let mut reader: &[u8] = &big;
        let (status, _) = answer(
            agent()
                .put(&format!("{url}/v1/org/acme/artifacts/{}/bundle", digest(&big)))
                .header("Authorization", format!("Bearer {push_token}"))
                .send(ureq::SendBody::from_reader(&mut reader)),
        );
        assert_eq!(status, 413);
        assert!(files_under(&blobs).is_empty());
        assert!(files_under(&root.path().join("tmp")).is_empty());

        // Auth: none 401, read-only 403, push on another org 403.
        let artifact = format!("{url}/v1/org/acme/artifacts/{good}/bundle");
        assert_eq!(put(&artifact, None, &bundle).0, 401);
        assert_eq!(put(&artifact, Some(&read_token), &bundle).0, 403);
        let (status, body) = put(&artifact, Some(&other_org), &bundle);
        assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
        assert_eq!(put(&artifact, Some("mcpj_not-a-token"), &bundle).0, 401);
        assert!(files_under(&blobs).is_empty());

        // A manifest whose bundle was not uploaded: 400; then it is, and the manifest is taken.
        let manifest = manifest_for("acme/hello", "1.0.0", "abc", &bundle);
        let manifest_url = format!("{url}/v1/org/acme/artifacts/{}/manifest", digest(&manifest));
        let (status, body) = put(&manifest_url, Some(&push_token), &manifest);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bundle_missing")),
            "{body}"
        );
        assert_eq!(put(&artifact, Some(&push_token), &bundle).0, 201);
        assert_eq!(put(&manifest_url, Some(&push_token), &manifest).0, 201);

        // A manifest that does not validate, or is for another org: 400.
        let invalid = br#"{"package": {"id": "acme/hello"}}"#;
        let (status, body) = put(
            &format!("{url}/v1/org/acme/artifacts/{}/manifest", digest(invalid)),
            Some(&push_token),
            invalid,
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_manifest")),
            "{body}"
        );
        let foreign = manifest_for("other/hello", "1.0.0", "abc", &bundle);
        let (status, _) = put(
            &format!("{url}/v1/org/acme/artifacts/{}/manifest", digest(&foreign)),
            Some(&push_token),
            &foreign,
        );
        assert_eq!(status, 400);

        // Versions: a manifest not uploaded, a version that is not the manifest's: 400.
        let versions = format!("{url}/v1/org/acme/mcps/hello/versions");
        let (status, body) = send_json(
            "POST",
            &versions,
            Some(&push_token),
            &json!({"version": "1.0.0", "manifest_digest": wrong}),
        );
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("manifest_missing")),
            "{body}"
        );
        let (status, _) = send_json(
            "POST",
            &versions,
            Some(&push_token),
            &json!({"version": "1.0.1", "manifest_digest": digest(&manifest)}),
        );
        assert_eq!(status, 400);
        let (status, _) = send_json(
            "POST",
            &versions,
            Some(&push_token),
            &json!({"version": "latest", "manifest_digest": digest(&manifest)}),
        );
        assert_eq!(status, 400);
        // A JSON body over the limit: 413.
        let (status, _) = send_json(
            "POST",
            &versions,
            Some(&push_token),
            &json!({"version": "x".repeat(2000), "manifest_digest": ""}),
        );
        assert_eq!(status, 413);
        let (status, _) = send_json(
            "POST",
            &versions,
            Some(&push_token),
            &json!({"version": "1.0.0", "manifest_digest": digest(&manifest)}),
        );
        assert_eq!(status, 201);
        assert!(files_under(&root.path().join("tmp")).is_empty());
    });
}

#[test]
fn versions_are_immutable_same_content_is_200_other_content_409() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let token = create_token(root.path(), Scope::Push, None).unwrap();
        let server = start(
            root.path(),
            ServeOptions {
                public_url: "https://registry.example/".to_owned(),
                access_log: true,
                ..ServeOptions::default()
            },
        );
        let url = server.url();
        let first = push(&url, &token, "acme/hello", "1.0.0", b"first bundle");
        assert_eq!(first.status, 201, "{}", first.answer);
        assert_eq!(
            first.answer["resolved"]["bundle"]["url"],
            format!(
                "https://registry.example/v1/org/acme/artifacts/{}/bundle",
                first.bundle_digest
            )
        );
        let again = push(&url, &token, "acme/hello", "1.0.0", b"first bundle");
        assert_eq!(again.status, 200, "{}", again.answer);
        assert_eq!(again.answer["resolved"]["manifest"]["digest"], first.manifest_digest);
        let other = push(&url, &token, "acme/hello", "1.0.0", b"other bundle");
        assert_eq!(other.status, 409, "{}", other.answer);
        assert_eq!(other.answer["error"], "version_exists");
        assert_eq!(other.answer["details"]["manifest_digest"], first.manifest_digest);
        // The version still names the first content.
        let client = Registry::new(&url, None).unwrap();
        let resolved = client.resolve("acme", "hello", "1.0.0").unwrap();
        assert_eq!(resolved.resolved.manifest.digest.as_str(), first.manifest_digest);
        assert_eq!(resolved.resolved.bundle.digest.as_str(), first.bundle_digest);
    });
}

#[test]
fn admin_patches_need_admin_and_valid_values() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let push_token = create_token(root.path(), Scope::Push, None).unwrap();
        let admin_other = create_token(root.path(), Scope::Admin, Some("other")).unwrap();
        let admin = create_token(root.path(), Scope::Admin, Some("acme")).unwrap();
        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        assert_eq!(push(&url, &push_token, "acme/hello", "1.0.0", b"b").status, 201);
        let version = format!("{url}/v1/org/acme/mcps/hello/versions/1.0.0");
        assert_eq!(send_json("PATCH", &version, None, &json!({"status": "revoked"})).0, 401);
        assert_eq!(
            send_json("PATCH", &version, Some(&push_token), &json!({"status": "revoked"})).0,
            403
        );
        assert_eq!(
            send_json("PATCH", &version, Some(&admin_other), &json!({"status": "revoked"})).0,
            403
        );
        assert_eq!(
            send_json("PATCH", &version, Some(&admin), &json!({"status": "gone"})).0,
            400
        );
        assert_eq!(
            send_json("PATCH", &version, Some(&admin), &json!({"certification_level": 4})).0,
            400
        );
        assert_eq!(send_json("PATCH", &version, Some(&admin), &json!({})).0, 400);
        assert_eq!(
            send_json(
                "PATCH",
                &format!("{url}/v1/org/acme/mcps/hello/versions/9.9.9"),
                Some(&admin),
                &json!({"status": "revoked"})
            )
            .0,
            404
        );
        let (status, body) = send_json(
            "PATCH",
            &version,
            Some(&admin),
            &json!({"status": "quarantined", "certification_level": 3, "origin": "official"}),
        );
        assert_eq!(status, 200, "{body}");
        let client = Registry::new(&url, None).unwrap();
        let resolved = client.resolve("acme", "hello", "1.0.0").unwrap();
        assert_eq!(resolved.resolved.status, PackageStatus::Quarantined);
        assert_eq!(resolved.resolved.certification_level.get(), 3);
        assert_eq!(resolved.origin, mcp_j_policy::Origin::Official);
        // Nothing runnable left: `latest` is 404.
        assert_eq!(status_of(client.resolve("acme", "hello", "latest").unwrap_err()), 404);
        let package = format!("{url}/v1/org/acme/mcps/hello");
        assert_eq!(
            send_json("PATCH", &package, Some(&push_token), &json!({"visibility": "private"})).0,
            403
        );
        assert_eq!(
            send_json("PATCH", &package, Some(&admin), &json!({"visibility": "secret"})).0,
            400
        );
        assert_eq!(
            send_json(
                "PATCH",
                &format!("{url}/v1/org/acme/mcps/nope"),
                Some(&admin),
                &json!({"visibility": "private"})
            )
            .0,
            404
        );
    });
}

#[test]
fn private_packages_need_a_read_token_for_their_org() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let push_token = create_token(root.path(), Scope::Push, Some("acme")).unwrap();
        let read_acme = create_token(root.path(), Scope::Read, Some("acme")).unwrap();
        let read_other = create_token(root.path(), Scope::Read, Some("other")).unwrap();
        let admin = create_token(root.path(), Scope::Admin, None).unwrap();
        let options = ServeOptions {
            default_visibility: Visibility::Private,
            ..ServeOptions::default()
        };
        let server = start(root.path(), options);
        let url = server.url();
        let p = push(&url, &push_token, "acme/secret", "1.0.0", b"secret bundle");
        assert_eq!(p.status, 201);
        let bundle: mcp_j_policy::package::Digest = p.bundle_digest.parse().unwrap();
        let manifest: mcp_j_policy::package::Digest = p.manifest_digest.parse().unwrap();

        // Without a token, or with one for another org: exactly like a missing package.
        for token in [None, Some(read_other.clone())] {
            let client = Registry::new(&url, token).unwrap();
            let err = client.resolve("acme", "secret", "1.0.0").unwrap_err();
            assert!(err.to_string().contains("needs a token"), "{err}");
            assert_eq!(status_of(err), 404);
            assert_eq!(status_of(artifact_error(&client, Artifact::Bundle, &bundle)), 404);
            assert_eq!(status_of(artifact_error(&client, Artifact::Manifest, &manifest)), 404);
            assert_eq!(client.catalog().unwrap()["packages"], json!([]));
        }
        // A token that is not one: 401.
        let bogus = Registry::new(&url, Some("mcpj_bogus".to_owned())).unwrap();
        assert_eq!(status_of(bogus.resolve("acme", "secret", "1.0.0").unwrap_err()), 401);

        // A read token for the org: everything works.
        let client = Registry::new(&url, Some(read_acme)).unwrap();
        assert_eq!(
            client.resolve("acme", "secret", "latest").unwrap().resolved.version,
            "1.0.0"
        );
        assert_eq!(
            read_all(client.artifact("acme", Artifact::Bundle, &bundle).unwrap()),
            b"secret bundle"
        );
        assert_eq!(
            client.catalog().unwrap()["packages"],
            json!([{"package": "acme/secret", "visibility": "private", "latest_version": "1.0.0"}])
        );

        // Made public by an admin: anyone may read it.
        let (status, body) = send_json(
            "PATCH",
            &format!("{url}/v1/org/acme/mcps/secret"),
            Some(&admin),
            &json!({"visibility": "public"}),
        );
        assert_eq!(status, 200, "{body}");
        let anonymous = Registry::new(&url, None).unwrap();
        assert_eq!(
            anonymous.resolve("acme", "secret", "1.0.0").unwrap().resolved.version,
            "1.0.0"
        );
        assert_eq!(
            read_all(anonymous.artifact("acme", Artifact::Bundle, &bundle).unwrap()),
            b"secret bundle"
        );
    });
}

#[test]
fn users_log_in_for_short_lived_tokens() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        add_user(root.path(), "alice", "correct horse battery").unwrap();
        let options = ServeOptions {
            login_ttl: Duration::from_secs(2),
            ..ServeOptions::default()
        };
        let server = start(root.path(), options);
        let url = server.url();
        let client = Registry::new(&url, None).unwrap();
        let err = client.login("alice", "wrong password").unwrap_err();
        assert!(err.to_string().contains("invalid_credentials"), "{err}");
        assert_eq!(
            status_of(client.login("mallory", "correct horse battery").unwrap_err()),
            401
        );

        let (status, body) = send_json(
            "POST",
            &format!("{url}/v1/auth/login"),
            None,
            &json!({"username": "alice", "password": "correct horse battery"}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expires_in"], 2);
        let token = client.login("alice", "correct horse battery").unwrap();
        // A user's login may push.
        assert_eq!(push(&url, &token, "acme/hello", "1.0.0", b"x").status, 201);
        // And expires.
        std::thread::sleep(Duration::from_millis(3100));
        let (status, body) = put(
            &format!("{url}/v1/org/acme/artifacts/{}/bundle", digest(b"y")),
            Some(&token),
            b"y",
        );
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "{body}");
        // The password is stored as an argon2id hash, not as itself.
        for file in files_under(root.path()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(!contains(&bytes, b"correct horse battery"), "{}", file.display());
        }
        let db = std::fs::read(root.path().join("registry.db")).unwrap();
        let wal = std::fs::read(root.path().join("registry.db-wal")).unwrap_or_default();
        assert!(contains(&db, b"$argon2id$") || contains(&wal, b"$argon2id$"));
    });
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn repeated_failed_logins_are_throttled() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        add_user(root.path(), "dave", "dave's password").unwrap();
        add_user(root.path(), "erin", "erin's password").unwrap();
        let options = ServeOptions {
            max_login_failures: 2,
            ..ServeOptions::default()
        };
        let server = start(root.path(), options);
        let login = format!("{}/v1/auth/login", server.url());
        let attempt = |user: &str, password: &str| {
            send_json("POST", &login, None, &json!({"username": user, "password": password}))
        };
        assert_eq!(attempt("dave", "wrong one").0, 401);
        assert_eq!(attempt("dave", "wrong two").0, 401);
        let (status, body) = attempt("dave", "dave's password");
        assert_eq!(
            (status, body["error"].as_str()),
            (429, Some("too_many_attempts")),
            "{body}"
        );
        assert!(body["details"]["retry_after_seconds"].as_u64().unwrap() > 0);
        // Another user is not affected.
        assert_eq!(attempt("erin", "erin's password").0, 200);
    });
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let tokens: Vec<String> = [Scope::Read, Scope::Push, Scope::Admin]
            .into_iter()
            .map(|s| create_token(root.path(), s, Some("acme")).unwrap())
            .collect();
        add_user(root.path(), "bob", "a long password").unwrap();
        let server = start(root.path(), ServeOptions::default());
        let login = Registry::new(&server.url(), None)
            .unwrap()
            .login("bob", "a long password")
            .unwrap();
        // They work...
        assert_eq!(push(&server.url(), &tokens[1], "acme/hello", "1.0.0", b"x").status, 201);
        drop(server);
        // ...and no file of the store holds one (nor its random part), only hashes.
        let files = files_under(root.path());
        assert!(files.iter().any(|f| f.ends_with("registry.db")));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.path().join("registry.db"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        for token in tokens.iter().chain([&login]) {
            for file in &files {
                let bytes = std::fs::read(file).unwrap();
                assert!(!contains(&bytes, token.as_bytes()), "{token} in {}", file.display());
                assert!(
                    !contains(&bytes, &token.as_bytes()[5..]),
                    "{token} in {}",
                    file.display()
                );
            }
        }
    });
}

#[test]
fn a_restart_on_the_same_root_keeps_everything() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let push_token = create_token(root.path(), Scope::Push, None).unwrap();
        let admin = create_token(root.path(), Scope::Admin, None).unwrap();
        let read = create_token(root.path(), Scope::Read, Some("acme")).unwrap();
        add_user(root.path(), "carol", "carol's password").unwrap();
        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        let one = push(&url, &push_token, "acme/hello", "1.0.0", b"one");
        let two = push(&url, &push_token, "acme/hello", "2.0.0", b"two");
        assert_eq!((one.status, two.status), (201, 201));
        assert_eq!(
            send_json(
                "PATCH",
                &format!("{url}/v1/org/acme/mcps/hello/versions/2.0.0"),
                Some(&admin),
                &json!({"status": "revoked"})
            )
            .0,
            200
        );
        assert_eq!(
            send_json(
                "PATCH",
                &format!("{url}/v1/org/acme/mcps/hello"),
                Some(&admin),
                &json!({"visibility": "private"})
            )
            .0,
            200
        );
        server.stop().unwrap();

        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        let anonymous = Registry::new(&url, None).unwrap();
        assert_eq!(status_of(anonymous.resolve("acme", "hello", "1.0.0").unwrap_err()), 404);
        let client = Registry::new(&url, Some(read)).unwrap();
        let latest = client.resolve("acme", "hello", "latest").unwrap();
        assert_eq!(latest.resolved.version, "1.0.0");
        assert_eq!(latest.resolved.manifest.digest.as_str(), one.manifest_digest);
        assert_eq!(
            client.resolve("acme", "hello", "2.0.0").unwrap().resolved.status,
            PackageStatus::Revoked
        );
        let bundle = read_all(
            client
                .artifact("acme", Artifact::Bundle, &latest.resolved.bundle.digest)
                .unwrap(),
        );
        assert_eq!(bundle, b"one");
        // Tokens and users survive too; versions stay immutable.
        assert_eq!(push(&url, &push_token, "acme/hello", "1.0.0", b"changed").status, 409);
        assert!(client.login("carol", "carol's password").is_ok());
    });
}

#[test]
fn concurrent_uploads_of_one_blob_leave_one_correct_blob() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let token = create_token(root.path(), Scope::Push, None).unwrap();
        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        let bundle: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let bundle_digest = digest(&bundle);
        let target = format!("{url}/v1/org/acme/artifacts/{bundle_digest}/bundle");
        for _round in 0..3 {
            let uploads: Vec<_> = (0..4)
                .map(|_| {
                    let (target, token, bundle) = (target.clone(), token.clone(), bundle.clone());
                    std::thread::spawn(move || put(&target, Some(&token), &bundle).0)
                })
                .collect();
            for upload in uploads {
                assert_eq!(upload.join().unwrap(), 201);
            }
        }
        let blobs = files_under(&root.path().join("blobs/sha256"));
        assert_eq!(blobs.len(), 1);
        assert_eq!(digest(&std::fs::read(&blobs[0]).unwrap()), bundle_digest);
        assert!(files_under(&root.path().join("tmp")).is_empty());
        // And it is usable: a manifest naming it is accepted.
        let manifest = manifest_for("acme/big", "1.0.0", "x", &bundle);
        assert_eq!(
            put(
                &format!("{url}/v1/org/acme/artifacts/{}/manifest", digest(&manifest)),
                Some(&token),
                &manifest
            )
            .0,
            201
        );
    });
}

#[test]
fn concurrent_pushes_lose_nothing_and_one_version_wins() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let token = create_token(root.path(), Scope::Push, None).unwrap();
        let server = start(root.path(), ServeOptions::default());
        let url = server.url();
        // Eight different versions at once: all of them are there afterwards.
        let pushes: Vec<_> = (0..8)
            .map(|i| {
                let (url, token) = (url.clone(), token.clone());
                std::thread::spawn(move || {
                    let p = push(
                        &url,
                        &token,
                        "acme/many",
                        &format!("1.{i}.0"),
                        format!("bundle {i}").as_bytes(),
                    );
                    (p.status, p.manifest_digest)
                })
            })
            .collect();
        let results: Vec<(u16, String)> = pushes.into_iter().map(|t| t.join().unwrap()).collect();
        let client = Registry::new(&url, None).unwrap();
        for (i, (status, manifest_digest)) in results.iter().enumerate() {
            assert_eq!(*status, 201);
            let resolved = client.resolve("acme", "many", &format!("1.{i}.0")).unwrap();
            assert_eq!(resolved.resolved.manifest.digest.as_str(), manifest_digest);
            let bundle = read_all(
                client
                    .artifact("acme", Artifact::Bundle, &resolved.resolved.bundle.digest)
                    .unwrap(),
            );
            assert_eq!(bundle, format!("bundle {i}").as_bytes());
        }
        assert_eq!(
            client.resolve("acme", "many", "latest").unwrap().resolved.version,
            "1.7.0"
        );
        // Six different contents racing for one version: exactly one wins, the rest are 409.
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let (url, token) = (url.clone(), token.clone());
                std::thread::spawn(move || {
                    let p = push(&url, &token, "acme/race", "1.0.0", format!("racer {i}").as_bytes());
                    (p.status, p.manifest_digest)
                })
            })
            .collect();
        let results: Vec<(u16, String)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<&(u16, String)> = results.iter().filter(|(s, _)| *s == 201).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        assert!(results.iter().all(|(s, _)| *s == 201 || *s == 409), "{results:?}");
        let resolved = client.resolve("acme", "race", "1.0.0").unwrap();
        assert_eq!(resolved.resolved.manifest.digest.as_str(), winners[0].1);
    });
}

#[test]
fn a_slow_client_loses_its_connection() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let options = ServeOptions {
            header_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(500),
            ..ServeOptions::default()
        };
        let server = start(root.path(), options);
        // Headers that never finish: the connection is closed.
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // An idle keep-alive connection is closed too.
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        // A body that stalls: the upload is refused and leaves nothing behind.
        let token = create_token(root.path(), Scope::Push, None).unwrap();
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "PUT /v1/org/acme/artifacts/{}/bundle HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\nhalf",
            digest(&[0u8; 100])
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(8));
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.is_empty() || text.contains("timeout") || text.starts_with("HTTP/1.1 4"),
            "{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(files_under(&root.path().join("tmp")).is_empty());
        // The server still serves.
        assert_eq!(get(&format!("{}/healthz", server.url()), None).0, 200);
    });
}

#[test]
fn unknown_endpoints_answer_structured_errors() {
    bounded(LIMIT, || {
        let root = tempfile::tempdir().unwrap();
        let server = start(root.path(), ServeOptions::default());
        let (status, body) = get(&format!("{}/v2/nothing", server.url()), None);
        assert_eq!(status, 404);
        assert_eq!(body["error"], "not_found");
        assert!(body["message"].is_string() && body["details"].is_object());
        let (status, body) = get(&format!("{}/v1/org/ac%2Fme/mcps/x/resolve?ref=1", server.url()), None);
        assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{body}");
        let (status, _) = get(&format!("{}/v1/org/acme/mcps/x/resolve", server.url()), None);
        assert_eq!(status, 400);
        let (status, body) = get(
            &format!("{}/v1/org/acme/artifacts/sha256:{}/other", server.url(), "0".repeat(64)),
            None,
        );
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    });
}
