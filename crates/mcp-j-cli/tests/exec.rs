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

/// Without `--workdir`, the working directory is the current one — unless that is `/` or a
/// shared temporary directory (`/tmp`): then a private, empty one.
#[test]
fn default_workdir_is_the_current_directory_unless_too_broad() {
    sandbox_test(
        "default_workdir_is_the_current_directory_unless_too_broad",
        &[],
        |run| {
            let dir = run.tempdir();
            run.write_file(&dir.path().join("marker"), b"here\n", 0o644);
            let cwd = dir.path().to_owned();
            let script = "pwd; cat marker; echo made > new";
            let out = run
                .exec()
                .raw(["exec", "--", "/bin/sh", "-c", script])
                .configure(move |cmd| {
                    cmd.current_dir(&cwd);
                })
                .run();
            out.assert_code(0);
            assert_eq!(out.stdout, format!("{}\nhere\n", dir.path().display()), "{out:?}");
            let created = std::fs::read_to_string(dir.path().join("new")).ok();
            assert_eq!(created.as_deref(), Some("made\n"));

            for too_broad in ["/", "/tmp"] {
                let out = run
                    .exec()
                    .raw(["exec", "--", "/bin/sh", "-c", "pwd; ls -A | wc -l"])
                    .configure(move |cmd| {
                        cmd.current_dir(too_broad);
                    })
                    .run();
                out.assert_code(0);
                assert_eq!(out.stdout, "/tmp\n0\n", "cwd {too_broad}: a private, empty directory");
            }
        },
    );
}

/// `--manifest` mirrors the flags, flags win, and unknown fields are refused.
#[test]
fn manifest_sets_limits_and_flags_win() {
    sandbox_test("manifest_sets_limits_and_flags_win", &[], |run| {
        let dir = run.tempdir();
        let manifest = dir.path().join("manifest.json");
        run.write_file(
            &manifest,
            br#"{"fds": 64, "env": ["FROM_MANIFEST=1"], "no_subprocess": true}"#,
            0o644,
        );
        let script = "ulimit -n; echo $FROM_MANIFEST; /bin/true 2>/dev/null && echo exec-allowed; true";
        let out = run
            .exec()
            .opt("--manifest", &manifest)
            .program(["/bin/sh", "-c", script])
            .run();
        out.assert_code(0);
        assert_eq!(out.stdout, "64\n1\n", "the second exec is refused under no_subprocess");

        let out = run
            .exec()
            .opt("--manifest", &manifest)
            .opt("--fds", "32")
            .program(["/bin/sh", "-c", "ulimit -n"])
            .run();
        out.assert_code(0);
        assert_eq!(out.stdout, "32\n");

        run.write_file(&manifest, br#"{"fdz": 64}"#, 0o644);
        let out = run.exec().opt("--manifest", &manifest).program(["/bin/true"]).run();
        out.assert_code(125);
        assert!(out.stderr.contains("fdz"), "the unknown field is named: {}", out.stderr);
    });
}

/// 126 for a program that exists but cannot be executed; `--audit-log` is accepted.
#[test]
fn not_executable_is_126_and_audit_log_is_accepted() {
    sandbox_test("not_executable_is_126_and_audit_log_is_accepted", &[], |run| {
        run.exec().program(["/etc/hostname"]).run().assert_code(126);
        let dir = run.tempdir();
        run.exec()
            .opt("--audit-log", dir.path().join("audit.jsonl"))
            .program(["/bin/true"])
            .run()
            .assert_code(0);
    });
}
