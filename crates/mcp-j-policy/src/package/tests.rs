//! Both manifest shapes, malformed manifests, and the narrowing table.

use super::*;
use crate::egress::Target;

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The example of REGISTRY_API.md, with a real digest.
fn registry_example() -> String {
    format!(
        r#"{{
  "schema_version": "1.0",
  "package": {{"id": "acme/hello", "version": "1.2.3", "git_sha": "abc"}},
  "bundle": {{"digest": "{DIGEST}", "size_bytes": 1234}},
  "transport": {{"type": "stdio"}},
  "entrypoints": [
    {{"os": "linux", "arch": "amd64", "command": "/usr/bin/python3", "args": ["server.py"]}},
    {{"os": "linux", "arch": "arm64", "command": "/usr/bin/python3", "args": ["server-arm.py"]}}
  ],
  "permissions_requested": {{
    "network": ["api.example.com", "*.example.org:8443"],
    "environment": ["EXAMPLE_API_KEY"],
    "subprocess": false,
    "filesystem": ["/data"]
  }},
  "limits_recommended": {{"max_cpu": 1000, "max_memory": "512M", "max_pids": 64, "max_fds": 256, "timeout": "10m"}},
  "some_future_field": {{"ignored": true}}
}}"#
    )
}

const HUB_EXAMPLE: &str = r#"{
  "package": {"id": "acme/hub-tool", "version": "2.0.0", "git_sha": "def"},
  "runtime": {"type": "python"},
  "entrypoint": {"command": ["python3", "-m", "hub_tool"], "args": ["--stdio"]},
  "permissions": {
    "network": {"outbound": ["api.hub.example"]},
    "filesystem": {"read": ["/etc/ssl"], "write": ["/tmp/out"]},
    "env_vars": ["HUB_TOKEN"]
  },
  "resources": {"memory_mb": 256, "cpu_millicores": 500, "timeout_seconds": 30},
  "certification": {"level": 2, "score": 0.87}
}"#;

#[test]
fn registry_shape_reads_every_field() {
    let m = PackageManifest::from_json(&registry_example()).expect("manifest");
    assert_eq!(m.shape, Shape::Registry);
    assert_eq!(m.schema_version.as_deref(), Some("1.0"));
    assert_eq!(
        m.package,
        PackageInfo {
            id: "acme/hello".into(),
            version: "1.2.3".into(),
            git_sha: Some("abc".into())
        }
    );
    let bundle = m.bundle.as_ref().expect("bundle");
    assert_eq!((bundle.digest.as_str(), bundle.size_bytes), (DIGEST, 1234));
    assert_eq!(bundle.digest.hex().len(), 64);
    assert_eq!(m.transport.as_deref(), Some("stdio"));
    assert_eq!(m.entrypoints.len(), 2);
    let p = &m.permissions_requested;
    let rules: Vec<String> = p.network.iter().map(|r| r.to_string()).collect();
    assert_eq!(rules, ["api.example.com", "*.example.org:8443"]);
    assert!(p.network.iter().all(|r| r.source == RuleSource::Package));
    assert_eq!(p.environment, ["EXAMPLE_API_KEY"]);
    assert!(!p.subprocess);
    assert_eq!(
        p.filesystem,
        [FsRequest {
            path: "/data".into(),
            access: FsAccess::Unspecified
        }]
    );
    assert_eq!(
        m.limits_recommended,
        RecommendedLimits {
            cpu_millicores: Some(1000),
            memory: Some(Size(512 << 20)),
            pids: Some(64),
            fds: Some(256),
            timeout: Some(Duration(std::time::Duration::from_secs(600))),
        }
    );
}

#[test]
fn hub_shape_maps_onto_the_same_fields() {
    let m = PackageManifest::from_json(HUB_EXAMPLE).expect("manifest");
    assert_eq!(m.shape, Shape::Hub);
    assert_eq!(m.package.id, "acme/hub-tool");
    assert_eq!(m.runtime.as_deref(), Some("python"));
    assert_eq!(m.bundle, None);
    assert_eq!(
        m.entrypoints,
        [Entrypoint {
            os: None,
            arch: None,
            command: "python3".into(),
            args: vec!["-m".into(), "hub_tool".into(), "--stdio".into()],
        }]
    );
    let p = &m.permissions_requested;
    assert_eq!(p.network[0].target, Target::Name("api.hub.example".into()));
    assert_eq!(p.environment, ["HUB_TOKEN"]);
    assert!(!p.subprocess, "a missing subprocess means false");
    assert_eq!(
        p.filesystem,
        [
            FsRequest {
                path: "/etc/ssl".into(),
                access: FsAccess::Read
            },
            FsRequest {
                path: "/tmp/out".into(),
                access: FsAccess::Write
            },
        ]
    );
    assert_eq!(m.limits_recommended.memory, Some(Size(256 << 20)));
    assert_eq!(m.limits_recommended.cpu_millicores, Some(500));
    assert_eq!(
        m.limits_recommended.timeout,
        Some(Duration(std::time::Duration::from_secs(30)))
    );
    assert_eq!((m.limits_recommended.pids, m.limits_recommended.fds), (None, None));
    assert_eq!(
        m.certification,
        Some(ManifestCertification {
            level: Some(2),
            score: Some(0.87)
        })
    );
}

#[test]
fn minimal_manifests_default_to_asking_nothing() {
    let m = PackageManifest::from_json(
        r#"{"package": {"id": "a/b", "version": "1"}, "entrypoints": [{"os": "linux", "arch": "arm64", "command": "srv"}]}"#,
    )
    .expect("manifest");
    assert_eq!(m.permissions_requested, Permissions::default());
    assert!(!m.permissions_requested.subprocess);
    assert_eq!(m.limits_recommended, RecommendedLimits::default());
    assert_eq!(m.entrypoints[0].args, Vec::<String>::new());
    let hub = PackageManifest::from_json(
        r#"{"package": {"id": "a/b", "version": "1"}, "runtime": {}, "entrypoint": {"command": ["srv"]}}"#,
    )
    .expect("hub");
    assert_eq!(hub.permissions_requested, Permissions::default());
    let subprocess = PackageManifest::from_json(
        r#"{"package": {"id": "a/b", "version": "1"}, "runtime": {"type": "node"},
            "entrypoint": {"command": ["srv"]}, "permissions": {"subprocess": true}}"#,
    )
    .expect("hub");
    assert!(subprocess.permissions_requested.subprocess);
}

#[test]
fn entrypoint_for_picks_the_exact_platform() {
    let m = PackageManifest::from_json(&registry_example()).expect("manifest");
    let pick = |os, arch| m.entrypoint_for(os, arch).map(|e| e.args[0].as_str());
    assert_eq!(pick(Os::Linux, Arch::Amd64), Some("server.py"));
    assert_eq!(pick(Os::Linux, Arch::Arm64), Some("server-arm.py"));
    assert_eq!(pick(Os::Darwin, Arch::Amd64), None);
    let hub = PackageManifest::from_json(HUB_EXAMPLE).expect("hub");
    assert!(hub.entrypoint_for(Os::Windows, Arch::Arm64).is_some());
    assert_eq!(Arch::from_rust("x86_64"), Some(Arch::Amd64));
    assert_eq!(Arch::from_rust("aarch64"), Some(Arch::Arm64));
    assert_eq!(Arch::from_rust("riscv64"), None);
}

#[test]
fn malformed_manifests_are_refused_naming_the_field() {
    let base = registry_example();
    let edit = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        base.replace(from, to)
    };
    let table: Vec<(String, &str)> = vec![
        ("not json".into(), "expected"),
        ("[]".into(), "must be a JSON object"),
        ("{}".into(), "missing field `package`"),
        (edit("acme/hello", "acme"), "package.id `acme` is not `org/name`"),
        (edit("acme/hello", "acme/hel lo"), "is not `org/name`"),
        (edit("acme/hello", "a/b/c"), "is not `org/name`"),
        (edit("acme/hello", "/hello"), "is not `org/name`"),
        (
            edit(r#""version": "1.2.3""#, r#""version": " ""#),
            "package.version is empty",
        ),
        (edit(DIGEST, "sha256:ABC"), "is not a digest"),
        (edit(DIGEST, &DIGEST.to_uppercase()), "is not a digest"),
        (
            edit(r#""os": "linux", "arch": "amd64""#, r#""os": "plan9", "arch": "amd64""#),
            "unknown variant `plan9`",
        ),
        (
            edit(r#""arch": "amd64""#, r#""arch": "x86_64""#),
            "unknown variant `x86_64`",
        ),
        (
            edit(
                r#""command": "/usr/bin/python3", "args": ["server.py"]"#,
                r#""command": "", "args": []"#,
            ),
            "command is empty",
        ),
        (
            edit(r#""api.example.com""#, r#""*""#),
            "permissions_requested.network: invalid network rule `*`",
        ),
        (edit(r#""api.example.com""#, r#""127.1""#), "write it as `127.0.0.1`"),
        (
            edit("EXAMPLE_API_KEY", "1BAD"),
            "`1BAD` is not an environment variable name",
        ),
        (edit(r#""512M""#, r#""lots""#), "is not a size"),
        (edit(r#""10m""#, r#""0s""#), "must be positive"),
        (
            edit(r#""max_pids": 64"#, r#""max_pids": 0"#),
            "max_pids: must be positive",
        ),
        (edit(r#""subprocess": false"#, r#""subprocess": "no""#), "invalid type"),
        (
            edit(r#""schema_version": "1.0""#, r#""schema_version": "2.0""#),
            "schema_version `2.0` is not supported",
        ),
    ];
    for (text, why) in &table {
        let err = PackageManifest::from_json(text).expect_err(why);
        assert!(err.starts_with("invalid package manifest: "), "{err}");
        assert!(err.contains(why), "want `{why}` in: {err}");
    }
    let no_entrypoints = edit(
        r#"{"os": "linux", "arch": "amd64", "command": "/usr/bin/python3", "args": ["server.py"]},
    {"os": "linux", "arch": "arm64", "command": "/usr/bin/python3", "args": ["server-arm.py"]}"#,
        "",
    );
    let err = PackageManifest::from_json(&no_entrypoints).expect_err("no entrypoints");
    assert!(err.contains("there is no entrypoint"), "{err}");
}

#[test]
fn malformed_hub_manifests_are_refused_naming_the_field() {
    let edit = |from: &str, to: &str| {
        assert!(HUB_EXAMPLE.contains(from), "{from}");
        HUB_EXAMPLE.replace(from, to)
    };
    let table: Vec<(String, &str)> = vec![
        (
            edit(r#"["python3", "-m", "hub_tool"]"#, "[]"),
            "entrypoint.command: empty",
        ),
        (
            edit(r#""memory_mb": 256"#, r#""memory_mb": 0"#),
            "resources.memory_mb: must be positive",
        ),
        (
            edit(r#""memory_mb": 256"#, r#""memory_mb": 18446744073709551615"#),
            "resources.memory_mb: 18446744073709551615 is out of range",
        ),
        (
            edit(r#""timeout_seconds": 30"#, r#""timeout_seconds": 0"#),
            "timeout_seconds: must be positive",
        ),
        (
            edit(r#""api.hub.example""#, r#""a.*.example""#),
            "permissions.network.outbound: invalid network rule",
        ),
        (edit("HUB_TOKEN", "HUB-TOKEN"), "permissions.env_vars: `HUB-TOKEN`"),
        (
            edit(r#""entrypoint": {"command""#, r#""entry": {"command""#),
            "missing field `entrypoint`",
        ),
    ];
    for (text, why) in &table {
        let err = PackageManifest::from_json(text).expect_err(why);
        assert!(err.contains(why), "want `{why}` in: {err}");
        assert!(err.starts_with("invalid package manifest: "), "{err}");
    }
}

#[test]
fn digests_and_ids() {
    assert!(DIGEST.parse::<Digest>().is_ok());
    for bad in [
        "",
        "sha256:",
        "sha512:0123",
        &DIGEST[..70],
        &format!("{DIGEST}0"),
        &DIGEST.replace('a', "g"),
    ] {
        assert!(
            bad.parse::<Digest>().expect_err(bad).contains("64 lowercase hex"),
            "{bad}"
        );
    }
    for good in ["acme/hello", "a_b/c-d", "A1/B2"] {
        assert!(is_package_id(good), "{good}");
    }
    for bad in ["acme", "acme/", "/x", "a/b/c", "a.b/c", "a/b c", ""] {
        assert!(!is_package_id(bad), "{bad}");
    }
}

fn local() -> LocalPolicy {
    LocalPolicy {
        allow_package_network: true,
        no_subprocess: false,
        limits: LimitValues {
            memory: Size(512 << 20),
            pids: 256,
            fds: 1024,
            cpu_millicores: 1000,
            timeout: None,
        },
        set_by_flag: BTreeSet::new(),
        ro: vec!["/data".into()],
        rw: vec!["/tmp/out".into()],
    }
}

#[test]
fn narrowing_keeps_the_request_within_local_policy() {
    let m = PackageManifest::from_json(&registry_example()).expect("manifest");
    let g = narrow("acme/hello", &m.permissions_requested, &m.limits_recommended, &local()).expect("grant");
    assert_eq!(g.network, m.permissions_requested.network);
    assert_eq!(g.environment, ["EXAMPLE_API_KEY"]);
    assert!(g.no_subprocess, "subprocess: false adds --no-subprocess");
    // 512M recommended = configured; 64 pids and 256 fds tighten; cpu equal; timeout added.
    assert_eq!(
        g.limits,
        LimitValues {
            memory: Size(512 << 20),
            pids: 64,
            fds: 256,
            cpu_millicores: 1000,
            timeout: Some(Duration(std::time::Duration::from_secs(600))),
        }
    );
    assert_eq!(
        g.filesystem,
        [FsOutcome::Granted {
            path: "/data".into(),
            writable: false
        }]
    );
    assert!(g.notes.is_empty(), "{:?}", g.notes);
}

#[test]
fn narrowing_never_widens() {
    let requested = Permissions {
        subprocess: true,
        filesystem: vec![
            FsRequest {
                path: "/home".into(),
                access: FsAccess::Read,
            },
            FsRequest {
                path: "/var/lib/x".into(),
                access: FsAccess::Write,
            },
            FsRequest {
                path: "/tmp/out".into(),
                access: FsAccess::Read,
            },
        ],
        ..Permissions::default()
    };
    let recommended = RecommendedLimits {
        memory: Some(Size(2 << 30)),
        pids: Some(10_000),
        cpu_millicores: Some(4000),
        fds: Some(16),
        timeout: Some(Duration(std::time::Duration::from_secs(3600))),
    };
    let mut policy = local();
    policy.no_subprocess = true;
    policy.limits.timeout = Some(Duration(std::time::Duration::from_secs(60)));
    let g = narrow("acme/big", &requested, &recommended, &policy).expect("grant");
    assert!(
        g.no_subprocess,
        "subprocess: true does not lift the user's --no-subprocess"
    );
    assert_eq!(
        g.limits,
        LimitValues {
            fds: 16,
            ..policy.limits
        },
        "only the lower recommendation applies"
    );
    assert_eq!(
        g.filesystem,
        [
            FsOutcome::NotGranted {
                path: "/home".into(),
                hint: "--ro /home".into()
            },
            FsOutcome::NotGranted {
                path: "/var/lib/x".into(),
                hint: "--rw /var/lib/x".into()
            },
            FsOutcome::Granted {
                path: "/tmp/out".into(),
                writable: true
            },
        ]
    );
    assert_eq!(
        g.notes,
        [
            "acme/big recommends --memory 2G, above the configured 512M; raise it with --memory 2G if it needs it",
            "acme/big recommends --pids 10000, above the configured 256; raise it with --pids 10000 if it needs it",
            "acme/big recommends --cpu 4000, above the configured 1000; raise it with --cpu 4000 if it needs it",
            "acme/big recommends --timeout 3600s, above the configured 60s; raise it with --timeout if it needs it",
            "acme/big requests /home; not granted (grant it with --ro /home)",
            "acme/big requests /var/lib/x; not granted (grant it with --rw /var/lib/x)",
        ]
    );
}

#[test]
fn a_limit_the_user_set_by_flag_is_not_changed_by_the_package() {
    let recommended = RecommendedLimits {
        memory: Some(Size(64 << 20)),
        pids: Some(8),
        timeout: Some(Duration(std::time::Duration::from_secs(5))),
        ..RecommendedLimits::default()
    };
    let mut policy = local();
    policy.set_by_flag = [LimitKind::Memory, LimitKind::Timeout].into_iter().collect();
    let g = narrow("acme/x", &Permissions::default(), &recommended, &policy).expect("grant");
    assert_eq!(g.limits.memory, Size(512 << 20));
    assert_eq!(g.limits.timeout, None);
    assert_eq!(g.limits.pids, 8);
}

#[test]
fn package_network_is_refused_when_local_policy_forbids_it() {
    let m = PackageManifest::from_json(&registry_example()).expect("manifest");
    let mut policy = local();
    policy.allow_package_network = false;
    let err = narrow("acme/hello", &m.permissions_requested, &m.limits_recommended, &policy).expect_err("refused");
    assert_eq!(
        err,
        "acme/hello requests network access (api.example.com, *.example.org:8443) and \
         policy.allow_package_network = false; set policy.allow_package_network = true, or allow the \
         destinations yourself with --allow-net"
    );
    // Asking for nothing is fine under the same policy.
    assert!(
        narrow(
            "acme/hello",
            &Permissions::default(),
            &RecommendedLimits::default(),
            &policy
        )
        .is_ok()
    );
}

#[test]
fn permissions_serialise_for_info_json() {
    let m = PackageManifest::from_json(&registry_example()).expect("manifest");
    let v = serde_json::to_value(&m.permissions_requested).expect("json");
    assert_eq!(
        v["network"],
        serde_json::json!(["api.example.com", "*.example.org:8443"])
    );
    assert_eq!(
        v["filesystem"][0],
        serde_json::json!({"path": "/data", "access": "unspecified"})
    );
    let l = serde_json::to_value(&m.limits_recommended).expect("json");
    assert_eq!(l["memory"], "512M");
    assert_eq!(l["timeout"], "600s");
}
