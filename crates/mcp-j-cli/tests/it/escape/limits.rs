//! Resources and limits (issue 7): memory pinned outside any process (memfds, SysV shared
//! memory, unix socket buffers), the caller's per-user kernel quotas, file sizes, a root
//! caller's host uid, and the limits' own papercuts.
//!
//! As root the jail gets a cgroup v1 (this machine's controllers are there) and every
//! pinning attack must be stopped near `--memory`: killed (137, with mcp-j's message), or
//! refused at most a little past it. As the unprivileged user there is no aggregate
//! mechanism: the tests assert that `-v` and doctor say memory is absent, that
//! `policy.require_memory_limit` refuses, and what still bounds what (the per-file
//! limit on a memfd). Every attack stops itself at 512 MiB and after 60 s.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::{Outcome, Run, descendants, sandbox_test, test_name};

/// The memory limit the pinning tests set.
const LIMIT_MIB: u64 = 64;
/// How far past the limit a refusal may come: the limit counts the jail's processes too,
/// and a refusal is reported after the block that failed.
const SLACK_MIB: u64 = 16;

/// The MiB figure of a `<ERRNO> at <N> MiB` denial.
fn mib_of(detail: &str) -> Option<u64> {
    let words: Vec<&str> = detail.split_whitespace().collect();
    words.windows(2).find(|w| w[1] == "MiB").and_then(|w| w[0].parse().ok())
}

/// As root (cgroup v1): the pinning attack `attack` must end killed by the memory limit,
/// with mcp-j's message, or be refused at most [`SLACK_MIB`] past the limit.
fn assert_stopped_near_the_limit(attack: &str, out: &Outcome) {
    if out.code == Some(137) {
        assert!(
            out.stderr.contains("reached its memory limit of 64M"),
            "{attack}: killed without mcp-j saying why\n{}",
            out.context()
        );
        return;
    }
    let detail = out.assert_denied(&["ENOMEM", "ENOSPC", "EFBIG", "ENOBUFS", "EMFILE"]);
    let mib = mib_of(&detail).unwrap_or(u64::MAX);
    assert!(
        mib <= LIMIT_MIB + SLACK_MIB,
        "{attack}: pinned {mib} MiB under --memory {LIMIT_MIB}M\n{}",
        out.context()
    );
}

/// The `-v` report line of `layer`, e.g. `memory         absent    …`.
fn verbose_line(run: &Run, layer: &str) -> String {
    let out = run.exec().opts(["-v"]).program(["/bin/true"]).run();
    out.assert_code(0);
    out.stderr
        .lines()
        .find(|l| {
            l.strip_prefix("mcp-j: ")
                .is_some_and(|rest| rest.split_whitespace().next() == Some(layer))
        })
        .unwrap_or_else(|| panic!("no `{layer}` line in -v output\n{}", out.context()))
        .to_owned()
}

fn pin(run: &Run, attack: &str, max_mib: &str) -> Outcome {
    run.exec()
        .opts(["--memory", "64M"])
        .bound(Duration::from_secs(120))
        .attack(&[attack, max_mib])
        .run()
}

#[test]
fn memory_pinning_with_memfds() {
    sandbox_test(test_name!(), &[], |run| {
        // Positive control: a few MiB of memfd work anywhere.
        run.exec()
            .opts(["--memory", "64M"])
            .attack(&["control", "pin-memfd", "8"])
            .run()
            .assert_ok();
        // One memfd is a file: RLIMIT_FSIZE stops it, for every caller.
        let out = run
            .exec()
            .opts(["--memory", "64M", "--max-file-size", "32M"])
            .attack(&["pin-memfd-one", "512"])
            .run();
        if !(run.runner.is_root() && out.code == Some(137)) {
            let detail = out.assert_denied(&["EFBIG"]);
            assert_eq!(mib_of(&detail), Some(32), "{}", out.context());
        }
        if run.runner.is_root() {
            assert_stopped_near_the_limit("pin-memfd", &pin(run, "pin-memfd", "512"));
        } else {
            // Many memfds: nothing aggregate bounds them here, and the report says so.
            let line = verbose_line(run, "memory");
            assert!(line.contains(" absent "), "{line}");
            assert!(line.contains("each memfd <= --max-file-size"), "{line}");
        }
    });
}

#[test]
fn memory_pinning_with_sysv_shm() {
    sandbox_test(test_name!(), &[], |run| {
        run.exec()
            .opts(["--memory", "64M"])
            .attack(&["control", "pin-shm", "8"])
            .run()
            .assert_ok();
        // As root the cgroup and kernel.shmall (= --memory) both hold; as the unprivileged
        // user, kernel.shmall of the jail's own IPC namespace does.
        let out = pin(run, "pin-shm", "512");
        if run.runner.is_root() {
            assert_stopped_near_the_limit("pin-shm", &out);
        } else {
            let detail = out.assert_denied(&["ENOSPC"]);
            assert!(mib_of(&detail).is_some_and(|m| m <= LIMIT_MIB), "{}", out.context());
            let line = verbose_line(run, "memory");
            assert!(line.contains("SysV shm in total <= the limit"), "{line}");
        }
        let line = verbose_line(run, "ipc_limits");
        assert!(line.contains(" enforced "), "{line}");
    });
}

#[test]
fn memory_pinning_with_unix_socket_buffers() {
    sandbox_test(test_name!(), &[], |run| {
        run.exec()
            .opts(["--memory", "64M"])
            .attack(&["control", "pin-unix", "4"])
            .run()
            .assert_ok();
        if run.runner.is_root() {
            // Measured: cgroup v1 charges AF_UNIX socket buffers here.
            assert_stopped_near_the_limit("pin-unix", &pin(run, "pin-unix", "512"));
        } else {
            let line = verbose_line(run, "memory");
            assert!(line.contains("unix socket buffers not bounded"), "{line}");
        }
    });
}

#[test]
fn memory_absent_is_reported_and_the_policy_refuses() {
    sandbox_test(test_name!(), &[], |run| {
        let line = verbose_line(run, "memory");
        let doctor = run
            .exec()
            .raw(["doctor", "--json"])
            .bound(Duration::from_secs(120))
            .run();
        doctor.assert_code(0);
        let json: serde_json::Value =
            serde_json::from_str(&doctor.stdout).unwrap_or_else(|e| panic!("{e}: {}", doctor.stdout));
        let layer = json["layers"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["name"] == "memory"))
            .cloned()
            .unwrap_or_default();
        let refused = run
            .exec()
            .env("MCP_J_REQUIRE_MEMORY_LIMIT", "true")
            .program(["/bin/true"])
            .run();
        if run.runner.is_root() {
            assert!(line.contains(" enforced ") && line.contains("cgroup v1"), "{line}");
            assert_eq!(layer["status"], "enforced", "{json}");
            refused.assert_code(0); // the policy is met: the run goes on
        } else {
            assert!(line.contains(" absent "), "{line}");
            assert_eq!(layer["status"], "absent", "{json}");
            refused.assert_code(126);
            assert!(
                refused.stderr.contains("policy.require_memory_limit"),
                "{}",
                refused.context()
            );
            // Positive control: without the policy the same run works.
            run.exec().program(["/bin/true"]).run().assert_code(0);
        }
    });
}

#[test]
fn inotify_quota_is_the_jails_own() {
    sandbox_test(test_name!(), &[], |run| {
        // The jail takes every inotify instance it can and holds them for 20 s.
        let mut jail = run.exec().attack(&["inotify", "20"]).spawn();
        let line = jail.wait_line(Duration::from_secs(30), |l| {
            l.starts_with("denied:") || l.starts_with("escaped:") || l.starts_with("error:")
        });
        // Meanwhile the caller, on the host, can still make one.
        let host = run.host_probe(&["control", "inotify", "0", "1"]);
        jail.kill();
        host.assert_ok();
        assert!(line.starts_with("denied: EMFILE after "), "{line}");
        let taken: u64 = line
            .split_whitespace()
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        // Positive control: the jail could make a few; and no more than its own quota.
        assert!((4..=16).contains(&taken), "{line}");
    });
}

#[test]
fn a_root_callers_jails_get_host_uids_of_their_own() {
    sandbox_test(test_name!(), &[], |run| {
        let mut first = run.exec().program(["/bin/sleep", "20"]).spawn();
        let mut second = run.exec().program(["/bin/sleep", "20"]).spawn();
        let host_uid_of_sleep = |mcp_j: u32| -> Option<u32> {
            let sleep = descendants(mcp_j).into_iter().find(|p| p.comm == "sleep")?;
            let status = fs::read_to_string(format!("/proc/{}/status", sleep.pid)).ok()?;
            let uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            uid.split_whitespace().next()?.parse().ok()
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let (mut a, mut b) = (None, None);
        while (a.is_none() || b.is_none()) && Instant::now() < deadline {
            a = a.or_else(|| host_uid_of_sleep(first.pid()));
            b = b.or_else(|| host_uid_of_sleep(second.pid()));
            std::thread::sleep(Duration::from_millis(50));
        }
        first.kill();
        second.kill();
        let (Some(a), Some(b)) = (a, b) else {
            panic!("the jailed programs were not found running (positive control): {a:?} {b:?}");
        };
        if run.runner.is_root() {
            let range = 0x6d63_0000..0x6d64_0000;
            assert_ne!(a, b, "two live jails share host uid {a}");
            for uid in [a, b] {
                assert!(range.contains(&uid), "host uid {uid} is not in the reserved block");
                assert_ne!(uid, 65534);
            }
        } else {
            let (uid, _) = run.runner.ids();
            assert_eq!((a, b), (uid, uid), "an unprivileged caller's jail runs as the caller");
        }
    });
}

#[test]
fn max_file_size_stops_large_writes() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let size = |name: &str| fs::metadata(wd.path().join(name)).map(|m| m.len()).unwrap_or(0);
        let limit = 16 << 20;
        // Positive control: below the limit, both work.
        run.exec()
            .workdir(wd.path())
            .opts(["--max-file-size", "16M"])
            .program(["/usr/bin/fallocate", "-l", "8M", "small"])
            .run()
            .assert_code(0);
        assert_eq!(size("small"), 8 << 20);
        for (name, argv) in [
            ("big", vec!["/usr/bin/fallocate", "-l", "64M", "big"]),
            ("big2", vec!["/bin/dd", "if=/dev/zero", "of=big2", "bs=1M", "count=64"]),
        ] {
            let out = run
                .exec()
                .workdir(wd.path())
                .opts(["--max-file-size", "16M"])
                .program(argv)
                .run();
            out.assert_code(128 + libc::SIGXFSZ);
            assert!(
                out.stderr.contains("SIGXFSZ") && out.stderr.contains("16M") && out.stderr.contains("--max-file-size"),
                "{}",
                out.context()
            );
            assert!(size(name) <= limit, "{name} is {} bytes on the host", size(name));
        }
    });
}

#[test]
fn a_memory_limit_without_a_unit_is_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let flag = run.exec().opts(["--memory", "512"]).program(["/bin/true"]).run();
        flag.assert_code(125);
        assert!(
            flag.stderr.contains("--memory") && flag.stderr.contains("`512M`"),
            "{}",
            flag.context()
        );
        let env = run.exec().env("MCP_J_MEMORY", "512").program(["/bin/true"]).run();
        env.assert_code(125);
        assert!(
            env.stderr.contains("MCP_J_MEMORY") && env.stderr.contains("`512M`"),
            "{}",
            env.context()
        );
        let wd = run.tempdir();
        let manifest = wd.path().join("m.json");
        run.write_file(&manifest, br#"{"memory": "1024"}"#, 0o644);
        let from_manifest = run
            .exec()
            .workdir(wd.path())
            .opt("--manifest", &manifest)
            .program(["/bin/true"])
            .run();
        from_manifest.assert_code(125);
        assert!(from_manifest.stderr.contains("manifest"), "{}", from_manifest.context());
        // Positive control: the smallest accepted limit runs a program.
        run.exec()
            .opts(["--memory", "16M"])
            .program(["/bin/true"])
            .run()
            .assert_code(0);
    });
}

#[test]
fn a_cpu_quota_that_cannot_be_enforced_is_said_once() {
    sandbox_test(test_name!(), &[], |run| {
        let out = run.exec().opts(["--cpu", "500"]).program(["/bin/true"]).run();
        out.assert_code(0);
        let warnings = out.stderr.matches("--cpu is not enforced here").count();
        if run.runner.is_root() {
            assert_eq!(warnings, 0, "cgroup v1 enforces it\n{}", out.context());
        } else {
            assert_eq!(warnings, 1, "{}", out.context());
            // Positive control: no quota asked, nothing said.
            let quiet = run.exec().program(["/bin/true"]).run();
            assert!(!quiet.stderr.contains("--cpu"), "{}", quiet.context());
        }
    });
}
