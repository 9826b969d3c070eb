//! `mcp-j doctor` end to end, as root and as the unprivileged user: it must find what the
//! machine declares (`MCP_J_TEST_EXPECT`), prove `exec` works with a real run, and never
//! report more than rlimits can do when there is no cgroup (v2 delegated, or v1 for root).

use crate::common::{expected, sandbox_test, test_name};
use serde_json::Value;

fn layer<'a>(doctor: &'a Value, name: &str) -> &'a Value {
    doctor["layers"]
        .as_array()
        .and_then(|layers| layers.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("no layer `{name}` in {doctor}"))
}

fn feature<'a>(doctor: &'a Value, name: &str) -> &'a Value {
    doctor["features"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no feature `{name}` in {doctor}"))
}

#[test]
fn doctor_reports_what_exec_enforces_and_never_over_reports() {
    sandbox_test(test_name!(), &[], |run| {
        let out = run.exec().raw(["doctor", "--json"]).run();
        assert_eq!(out.code, Some(0), "{out:?}");
        let doctor: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));

        assert_eq!(doctor["exec_works"], true, "{doctor}");
        // `--allow-net` set up for real: the jail's listeners reached the supervisor.
        assert_eq!(doctor["egress"]["works"], true, "{doctor}");
        assert!(
            doctor["egress"]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("no route out"),
            "{doctor}"
        );
        // Declared features must be found by the probes.
        let declared = [
            ("userns", "user_namespace"),
            ("seccomp", "seccomp"),
            ("seccomp-notify", "seccomp_user_notify"),
            ("landlock", "landlock"),
        ];
        for (declared_name, probe) in declared {
            if expected(declared_name) {
                assert_eq!(feature(&doctor, probe)["available"], true, "{probe}: {doctor}");
            }
        }
        // Every isolation layer is enforced when exec works; Landlock at least partially.
        for name in [
            "namespaces",
            "filesystem",
            "capabilities",
            "no_new_privs",
            "seccomp",
            "network",
        ] {
            assert_eq!(layer(&doctor, name)["status"], "enforced", "{name}");
        }
        if expected("landlock-scope") {
            assert_eq!(layer(&doctor, "landlock")["status"], "enforced");
        }
        assert_eq!(layer(&doctor, "no_subprocess")["status"], "enforced");
        assert_eq!(layer(&doctor, "fds")["status"], "enforced");
        assert_eq!(layer(&doctor, "pids")["status"], "enforced");
        // Without a cgroup (v2 delegated, or v1 for root), nothing bounds the jail's total
        // memory or a CPU rate: memory is absent (never partial) and per process only.
        let per_process: Vec<&str> = doctor["per_process_only"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            per_process.contains(&"fds") && per_process.contains(&"file_size"),
            "{doctor}"
        );
        let has_cgroup = doctor["cgroup_v2"]["available"] == true || doctor["cgroup_v1"]["available"] == true;
        if has_cgroup {
            assert_eq!(layer(&doctor, "memory")["status"], "enforced", "{doctor}");
            assert!(!per_process.contains(&"memory"), "{doctor}");
        } else {
            assert_eq!(layer(&doctor, "memory")["status"], "absent", "{doctor}");
            assert_eq!(layer(&doctor, "cpu")["status"], "absent", "{doctor}");
            assert!(per_process.contains(&"memory"), "{doctor}");
        }
        // This machine: cgroup v1 holds the controllers, for root only; v2 has none.
        if run.runner.is_root() {
            assert_eq!(doctor["cgroup_v1"]["available"], true, "{doctor}");
        } else {
            assert_eq!(doctor["cgroup_v1"]["available"], false, "{doctor}");
            assert!(
                doctor["cgroup_v1"]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("root only")),
                "{doctor}"
            );
        }
        let notes = doctor["notes"].to_string();
        assert!(notes.contains("systemd"), "{doctor}");
        if doctor["cgroup_v2"]["available"] == false {
            assert!(notes.contains("tested against a fake cgroup tree only"), "{doctor}");
        }
    });
}

#[test]
fn doctor_human_output_names_every_layer() {
    sandbox_test(test_name!(), &[], |run| {
        let out = run.exec().raw(["doctor"]).run();
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("`mcp-j exec` works here"), "{}", out.stdout);
        for name in [
            "namespaces",
            "landlock",
            "seccomp",
            "memory",
            "pids",
            "cpu",
            "file_size",
            "user_quotas",
            "ipc_limits",
            "cgroup_v1",
            "Per process only: ",
        ] {
            assert!(out.stdout.contains(name), "{name} missing: {}", out.stdout);
        }
    });
}
