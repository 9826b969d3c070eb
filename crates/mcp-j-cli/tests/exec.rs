//! `mcp-j exec` behaviour that is not an escape: what the program starts with.

mod common;

use common::sandbox_test;

/// Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across execve: the
/// program must start with every disposition at its default and nothing blocked, or a
/// pipeline like `yes | head -1` reports "Broken pipe" instead of ending quietly.
#[test]
fn program_starts_with_default_signal_dispositions() {
    sandbox_test("program_starts_with_default_signal_dispositions", &[], |run| {
        // cat installs no handler of its own, so what it shows is what it was given.
        let out = run.exec().program(["/bin/cat", "/proc/self/status"]).run();
        out.assert_code(0);
        for field in ["SigIgn", "SigBlk", "SigCgt"] {
            let mask = out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
                .unwrap_or_else(|| panic!("no {field} in {}", out.stdout));
            assert_eq!(mask.trim(), "0000000000000000", "{field}");
        }

        let out = run.exec().program(["/bin/sh", "-c", "yes | head -n 1"]).run();
        out.assert_code(0);
        assert_eq!(out.stdout, "y\n");
        assert!(!out.stderr.contains("Broken pipe"), "{}", out.stderr);
    });
}
