//! `--allow-net` end to end: the real binary, as root and as the unprivileged user, inside
//! a network the test makes for itself (`common::testnet`: documentation-range addresses
//! on its own loopback, test names in its own hosts file, no route out). Every origin
//! server here is the test's own, in that network.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::testnet::{FEATURE, TestNet};
use crate::common::{Run, euid, expected, sandbox_test, test_name};

/// The origin: 203.0.113.9 (`origin.test`), a second address on the same network
/// (`other.test`, 203.0.113.10), a name that resolves to loopback (`evil.test`), and
/// `*.wild.test` names.
const ORIGIN: &str = "203.0.113.9";
const OTHER: &str = "203.0.113.10";
const PORT: u16 = 8080;
const BODY: &str = "hello from the origin\n";

struct Origin {
    net: TestNet,
    servers: Vec<Child>,
    _site: tempfile::TempDir,
}

impl Drop for Origin {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// The test network with HTTP origins on ORIGIN:PORT, OTHER:PORT, ORIGIN:8081 and
/// 127.0.0.1:PORT, each serving `f` = [`BODY`]; `None` (after saying why) where the machine
/// cannot make it and does not declare it.
fn origin() -> Option<Origin> {
    if euid() != 0 {
        assert!(!expected(FEATURE), "{FEATURE} is declared but the harness is not root");
        eprintln!("SKIP: the egress tests need {FEATURE} (a root harness)");
        return None;
    }
    let net = TestNet::new(
        &[ORIGIN, OTHER],
        &[
            ("origin.test", ORIGIN),
            ("other.test", OTHER),
            ("evil.test", "127.0.0.1"),
            ("a.wild.test", ORIGIN),
            ("wild.test", ORIGIN),
        ],
    )
    .unwrap_or_else(|e| panic!("the test network: {e}"));
    let site = tempfile::tempdir().unwrap_or_else(|e| panic!("site dir: {e}"));
    std::fs::write(site.path().join("f"), BODY).unwrap_or_else(|e| panic!("site file: {e}"));
    std::fs::set_permissions(site.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("site dir mode: {e}"));
    let mut servers = Vec::new();
    for (address, port) in [(ORIGIN, PORT), (OTHER, PORT), (ORIGIN, 8081), ("127.0.0.1", PORT)] {
        let server = net
            .root_command("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", address, "--directory"])
            .arg(site.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("origin server: {e}"));
        servers.push(server);
    }
    let origin = Origin {
        net,
        servers,
        _site: site,
    };
    // Up when each answers (from the test network, outside any jail).
    let deadline = Instant::now() + Duration::from_secs(10);
    for (address, port) in [(ORIGIN, PORT), (OTHER, PORT), (ORIGIN, 8081), ("127.0.0.1", PORT)] {
        loop {
            let ok = origin
                .net
                .root_command("curl")
                .args(["-sS", "--max-time", "2", &format!("http://{address}:{port}/f")])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "origin {address}:{port} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(origin)
}

/// `mcp-j exec --allow-net RULE… -- sh -c SCRIPT` inside the test network; stdout.
fn jailed(run: &Run, origin: &Origin, rules: &[&str], script: &str) -> crate::common::Outcome {
    let mut opts = Vec::new();
    for rule in rules {
        opts.push("--allow-net".to_owned());
        opts.push((*rule).to_owned());
    }
    run.exec()
        .in_net(&origin.net)
        .opts(opts)
        .program(["/bin/sh", "-c", script])
        .bound(Duration::from_secs(60))
        .run()
}

/// Each line `NAME CODE` of a script that runs curl for several cases.
fn codes(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

fn curl_case(name: &str, args: &str) -> String {
    // curl prints the HTTP code (000 when no HTTP answer came); --max-time bounds each.
    format!("printf '{name} '; curl -s -o /dev/null --max-time 5 -w '%{{http_code}}\\n' {args} || true\n")
}

#[test]
fn allowed_destinations_are_reachable_by_every_route() {
    sandbox_test(test_name!(), &[], |run| {
        let Some(origin) = origin() else { return };
        let url = format!("http://origin.test:{PORT}/f");
        let script = format!(
            "set -u\n\
             curl -sS --max-time 5 {url}\n\
             curl -sS --max-time 5 --proxytunnel -x \"$HTTPS_PROXY\" {url}\n\
             curl -sS --max-time 5 --noproxy '' -x \"$ALL_PROXY\" {url}\n\
             python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(\"{url}\", timeout=5).read().decode())'\n\
             node -e 'fetch(\"{url}\").then(r => r.text()).then(t => process.stdout.write(t))'\n"
        );
        let out = jailed(run, &origin, &[&format!("origin.test:{PORT}")], &script);
        out.assert_code(0);
        assert_eq!(
            out.stdout,
            BODY.repeat(5),
            "HTTP proxy, CONNECT, SOCKS5, urllib, Node fetch (DNS stub)\n{out:?}"
        );
    });
}

#[test]
fn everything_else_is_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let Some(origin) = origin() else { return };
        let mut script = String::new();
        // Positive control, through the proxy.
        script += &curl_case("allowed", &format!("http://origin.test:{PORT}/f"));
        // Another name, another port of the allowed name: the proxy answers 403.
        script += &curl_case("other-name", &format!("http://other.test:{PORT}/f"));
        script += &curl_case("other-port", "http://origin.test:8081/f");
        // Straight to the origin's real address, past the proxy: no route.
        script += &curl_case("direct-address", &format!("--noproxy '*' http://{ORIGIN}:{PORT}/f"));
        // A name that resolves to loopback: refused, though the name is allowlisted (the
        // other special ranges, cloud metadata among them, are the policy crate's unit
        // tests: no test sends anything their way).
        script += &curl_case("to-loopback", &format!("http://evil.test:{PORT}/f"));
        // The DNS stub answers only allowlisted names.
        script += "printf 'dns-other '; python3 -c 'import socket\ntry:\n socket.getaddrinfo(\"other.test\", 80); print(\"resolved\")\nexcept OSError: print(\"refused\")'\n";
        script += "printf 'dns-allowed '; python3 -c 'import socket; print(socket.getaddrinfo(\"origin.test\", 80)[0][4][0])'\n";
        // UDP does not leave.
        script += "printf 'udp '; python3 -c 'import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n s.sendto(b\"x\", (\"203.0.113.10\", 53)); print(\"sent\")\nexcept OSError as e: print(e.errno)'\n";
        let audit = run.tempdir();
        let audit_log = audit.path().join("audit.jsonl");
        let out = run
            .exec()
            .in_net(&origin.net)
            .opt("--audit-log", &audit_log)
            .opts([
                "--allow-net",
                &format!("origin.test:{PORT}"),
                "--allow-net",
                &format!("evil.test:{PORT}"),
            ])
            .program(["/bin/sh", "-c", &script])
            .bound(Duration::from_secs(60))
            .run();
        out.assert_code(0);
        let got = codes(&out.stdout);
        let get = |name: &str| {
            got.iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c.as_str())
                .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        };
        assert_eq!(get("allowed"), "200");
        assert_eq!(get("other-name"), "403");
        assert_eq!(get("other-port"), "403");
        assert_eq!(get("direct-address"), "000");
        assert_eq!(get("to-loopback"), "403");
        assert_eq!(get("dns-other"), "refused");
        assert!(get("dns-allowed").starts_with("127.77."), "{out:?}");
        assert_eq!(get("udp"), libc::ENETUNREACH.to_string());

        // Each refusal said once on stderr, naming the destination and the fix.
        for destination in ["other.test", "evil.test"] {
            assert!(
                out.stderr
                    .lines()
                    .any(|l| l.starts_with("mcp-j: network: ") && l.contains(destination)),
                "{destination}: {out:?}"
            );
        }
        // And every connection, allowed or refused, on record.
        let events: Vec<serde_json::Value> = std::fs::read_to_string(&audit_log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|e: &serde_json::Value| e["event_type"] == "net.connect")
            .collect();
        let find = |destination: &str, decision: &str| {
            events
                .iter()
                .any(|e| e["destination"] == destination && e["decision"] == decision)
        };
        assert!(find("origin.test", "allowed"), "{events:#?}");
        assert!(find("other.test", "refused"), "{events:#?}");
        assert!(find("evil.test", "refused"), "{events:#?}");
        let allowed = events
            .iter()
            .find(|e| e["destination"] == "origin.test" && e["decision"] == "allowed")
            .unwrap();
        assert_eq!(allowed["address"], ORIGIN);
        assert_eq!(allowed["rule"], format!("origin.test:{PORT}"));
        assert!(
            allowed["bytes_received"].as_u64().unwrap() >= BODY.len() as u64,
            "{allowed}"
        );
    });
}

#[test]
fn addresses_networks_wildcards_and_the_users_loopback() {
    sandbox_test(test_name!(), &[], |run| {
        let Some(origin) = origin() else { return };
        let mut script = String::new();
        // An allowlisted address, straight (it is local to the jail) and through the proxy.
        script += &curl_case("address-direct", &format!("--noproxy '*' http://{ORIGIN}:{PORT}/f"));
        script += &curl_case("address-proxy", &format!("http://{ORIGIN}:{PORT}/f"));
        // A CIDR holds OTHER too; a wildcard holds a.wild.test, not wild.test itself.
        script += &curl_case("cidr", &format!("http://{OTHER}:{PORT}/f"));
        script += &curl_case("wildcard", &format!("http://a.wild.test:{PORT}/f"));
        script += &curl_case("apex", &format!("http://wild.test:{PORT}/f"));
        // The user's own loopback rule: the host's 127.0.0.1 (here the test network's).
        script += &curl_case("loopback", &format!("http://127.0.0.1:{PORT}/f"));
        let out = jailed(
            run,
            &origin,
            &[
                &format!("{ORIGIN}:{PORT}"),
                &format!("198.51.100.0/24:{PORT}"),
                &format!("203.0.113.8/30:{PORT}"),
                &format!("*.wild.test:{PORT}"),
                &format!("127.0.0.1:{PORT}"),
            ],
            &script,
        );
        out.assert_code(0);
        let got = codes(&out.stdout);
        let expect = [
            ("address-direct", "200"),
            ("address-proxy", "200"),
            ("cidr", "200"),
            ("wildcard", "200"),
            ("apex", "403"),
            ("loopback", "200"),
        ];
        for (name, code) in expect {
            assert!(
                got.iter().any(|(n, c)| n == name && c == code),
                "{name}: expected {code}\n{out:?}"
            );
        }
    });
}
