//! The test network itself (`common::testnet`), which the egress tests stand on: its names
//! resolve inside it, its addresses answer inside it, and there is no route out.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::testnet::{FEATURE, TestNet};
use crate::common::{cli_test, euid, expected, test_name};

/// curl inside the network as `run`'s runner, bounded.
fn curl(net: &TestNet, run: &crate::common::Run, url: &str) -> std::process::Output {
    let mut cmd = net.command(run.runner, "curl");
    cmd.args(["-sS", "--max-time", "5", url]);
    cmd.output().unwrap_or_else(|e| panic!("curl: {e}"))
}

#[test]
fn the_test_network_holds_its_names_and_nothing_leaves_it() {
    cli_test(test_name!(), |run| {
        if euid() != 0 {
            assert!(!expected(FEATURE), "{FEATURE} is declared but the harness is not root");
            eprintln!("SKIP: {FEATURE} needs a root harness");
            return;
        }
        let net = TestNet::new(&["203.0.113.9"], &[("origin.test", "203.0.113.9")]).unwrap();
        let site = tempfile::tempdir().unwrap();
        std::fs::write(site.path().join("f"), "hello from the test network\n").unwrap();
        let mut server = net
            .root_command("python3")
            .args(["-m", "http.server", "8080", "--bind", "203.0.113.9", "--directory"])
            .arg(site.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let body = loop {
            let out = curl(&net, run, "http://origin.test:8080/f");
            if out.status.success() || Instant::now() > deadline {
                break String::from_utf8_lossy(&out.stdout).into_owned();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Inside: the name resolves from the private hosts file and the address answers.
        assert_eq!(body, "hello from the test network\n");
        // No route out: another documentation address is unreachable at once.
        let out = curl(&net, run, "http://198.51.100.7:8080/");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unreachable") || err.contains("Couldn't connect"), "{err}");
        // Outside, the test's names do not exist (nothing is sent: it is a hosts lookup).
        let host = Command::new("getent").args(["hosts", "origin.test"]).output().unwrap();
        assert!(!host.status.success(), "origin.test resolves on the host");
        let _ = server.kill();
        let _ = server.wait();
    });
}

#[test]
fn only_loopback_and_documentation_addresses_are_test_addresses() {
    use crate::common::testnet::is_test_address;
    for ok in ["127.0.0.1", "198.51.100.1", "203.0.113.254", "2001:db8::1", "::1"] {
        assert!(is_test_address(ok), "{ok}");
    }
    for refused in [
        "10.0.0.1",
        "169.254.169.254",
        "8.8.8.8",
        "192.0.2.1",
        "fe80::1",
        "2001:db9::1",
        "name",
    ] {
        assert!(!is_test_address(refused), "{refused}");
    }
    assert!(TestNet::new(&["169.254.169.254"], &[]).is_err());
}
