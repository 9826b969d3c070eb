//! What the exposed trees hand over beyond their files (issue 7): project config a host
//! program runs code from (git hooks, `core.fsmonitor`, `.envrc`), unix sockets inside a
//! `--ro` directory, and host fingerprints in `/proc`. Each test asserts on the host, with
//! a positive control beside it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

use super::{MARKER, drain_unix, s, thread_sleep_ms};
use crate::common::{Failures, cli_test, sandbox_test, test_name};

/// The host repository's config before the jail runs.
const CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n";

#[test]
fn project_config_in_the_workdir_stays_read_only() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let repo = wd.path().join("repo");
        let git = repo.join(".git");
        run.mkdir(&repo);
        run.mkdir(&git);
        run.mkdir(&git.join("hooks"));
        run.write_file(&git.join("config"), CONFIG.as_bytes(), 0o644);
        let hook = git.join("hooks/pre-commit");
        let mut f = Failures::new();

        let out = run.exec().workdir(wd.path()).attack(&["plant-hook", s(&repo)]).run();
        f.check("plant-hook", out.check_denied(&["EROFS"]));
        if hook.exists() {
            f.fail("host hook", "ESCAPE: the jail planted .git/hooks/pre-commit");
        }
        if fs::read_to_string(git.join("config")).unwrap() != CONFIG {
            f.fail("host config", "ESCAPE: the jail changed .git/config");
        }
        if !(out.stderr.contains(s(&git)) && out.stderr.contains("--rw")) {
            f.fail(
                "stderr",
                format!(
                    "mcp-j did not say that {} is read-only:\n{}",
                    git.display(),
                    out.context()
                ),
            );
        }

        // Positive control: an ordinary file beside it is written.
        let ordinary = repo.join("notes.txt");
        f.check(
            "control write",
            run.exec()
                .workdir(wd.path())
                .attack(&["control", "write", s(&ordinary)])
                .run()
                .check_ok(),
        );
        if fs::read(&ordinary).ok().as_deref() != Some(MARKER.as_bytes()) {
            f.fail("control write", "the ordinary file is not on the host");
        }

        // Naming `.git` itself with --rw makes it writable.
        f.check(
            "control plant-hook with --rw .git",
            run.exec()
                .workdir(wd.path())
                .opt("--rw", &git)
                .attack(&["control", "plant-hook", s(&repo)])
                .run()
                .check_ok(),
        );
        if !hook.exists() || !fs::read_to_string(git.join("config")).unwrap().contains("fsmonitor") {
            f.fail("control plant-hook", "--rw .git did not make it writable");
        }
        f.assert_none();
    });
}

#[test]
fn project_config_the_jail_creates_is_quarantined() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let repo = wd.path().join("repo");
        run.mkdir(&repo);
        run.mkdir(&repo.join(".git"));
        run.write_file(&repo.join(".git/config"), CONFIG.as_bytes(), 0o644);
        let sub = repo.join("sub");
        run.mkdir(&sub);
        // A name already taken: the quarantine counts up rather than replace it.
        run.write_file(&sub.join(".envrc.mcp-j-quarantine"), b"older", 0o644);
        let mut f = Failures::new();

        // Creating them works (the jail may write its workdir): the control form.
        let out = run
            .exec()
            .workdir(wd.path())
            .attack(&["control", "plant-repo", s(&sub)])
            .run();
        f.check("plant-repo", out.check_ok());
        for (planted, moved) in [
            (".git", ".git.mcp-j-quarantine"),
            (".envrc", ".envrc.mcp-j-quarantine.1"),
        ] {
            let planted = sub.join(planted);
            let moved = sub.join(moved);
            if fs::symlink_metadata(&planted).is_ok() {
                f.fail(
                    "quarantine",
                    format!("ESCAPE: {} is still there after the jail", planted.display()),
                );
            }
            if fs::symlink_metadata(&moved).is_err() {
                f.fail("quarantine", format!("{} does not exist", moved.display()));
            }
            if !(out.stderr.contains(s(&planted)) && out.stderr.contains(s(&moved))) {
                f.fail(
                    "stderr",
                    format!("mcp-j did not say it moved {}:\n{}", planted.display(), out.context()),
                );
            }
        }
        if !sub.join(".git.mcp-j-quarantine/config").is_file() {
            f.fail("quarantine", "the planted config did not move with its .git");
        }
        if fs::read_to_string(sub.join(".envrc.mcp-j-quarantine")).unwrap() != "older" {
            f.fail(
                "quarantine",
                "a file already named .envrc.mcp-j-quarantine was replaced",
            );
        }
        // Positive control: the repository that was there before is left alone.
        if fs::read_to_string(repo.join(".git/config")).unwrap() != CONFIG {
            f.fail("host repo", "the existing .git was changed");
        }
        f.assert_none();
    });
}

#[test]
fn sockets_inside_exposed_dirs_are_covered() {
    sandbox_test(test_name!(), &[], |run| {
        let ro_dir = run.tempdir();
        let ro_sock = ro_dir.path().join("agent.sock");
        let ro_l = UnixListener::bind(&ro_sock).expect("bind a socket in the --ro dir");
        let wd = run.tempdir();
        let wd_sock = wd.path().join("dev.sock");
        let wd_l = UnixListener::bind(&wd_sock).expect("bind a socket in the workdir");
        for (l, p) in [(&ro_l, &ro_sock), (&wd_l, &wd_sock)] {
            l.set_nonblocking(true).unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        // Positive control: the runner reaches both from the host.
        run.host_probe(&["control", "unix-path", s(&ro_sock)]).assert_ok();
        run.host_probe(&["control", "unix-path", s(&wd_sock)]).assert_ok();
        thread_sleep_ms(100);
        assert_eq!(
            drain_unix(&ro_l) + drain_unix(&wd_l),
            2,
            "the host cannot reach its own sockets"
        );

        let mut f = Failures::new();
        let out = run
            .exec()
            .workdir(wd.path())
            .opt("--ro", ro_dir.path())
            .attack(&["unix-path", s(&ro_sock)])
            .run();
        f.check("unix-path in --ro dir", out.check_denied(&["ECONNREFUSED"]));
        if !(out.stderr.contains(s(&ro_sock)) && out.stderr.contains("--ro")) {
            f.fail(
                "stderr",
                format!("mcp-j did not say the socket is covered:\n{}", out.context()),
            );
        }
        f.check(
            "unix-path in the workdir",
            run.exec()
                .workdir(wd.path())
                .attack(&["unix-path", s(&wd_sock)])
                .run()
                .check_denied(&["ECONNREFUSED"]),
        );
        thread_sleep_ms(200);
        let got = drain_unix(&ro_l) + drain_unix(&wd_l);
        if got != 0 {
            f.fail(
                "host listeners",
                format!("ESCAPE: received {got} connection(s) from the jail"),
            );
        }

        // Positive control: the socket named with --ro itself is reachable.
        f.check(
            "control unix-path --ro SOCKET",
            run.exec()
                .workdir(wd.path())
                .opt("--ro", ro_dir.path())
                .opt("--ro", &ro_sock)
                .attack(&["control", "unix-path", s(&ro_sock)])
                .run()
                .check_ok(),
        );
        thread_sleep_ms(100);
        if drain_unix(&ro_l) != 1 {
            f.fail("control", "the named socket's listener got no connection");
        }
        f.assert_none();
    });
}

#[test]
fn proc_does_not_show_host_fingerprints() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        for path in ["/proc/cmdline", "/proc/sys/kernel/random/boot_id"] {
            let host = fs::read_to_string(path).unwrap_or_else(|e| panic!("read the host's {path}: {e}"));
            let needle = host.trim();
            assert!(!needle.is_empty(), "the host's {path} is empty");
            // Positive control: the runner sees it on the host.
            run.host_probe(&["control", "grep-file", path, needle]).assert_ok();
            f.check(path, run.attack(&["grep-file", path, needle]).check_denied(&[]));
        }
        f.assert_none();
    });
}

#[test]
fn an_exposed_tree_too_deep_to_check_is_refused() {
    cli_test(test_name!(), |run| {
        let wd = run.tempdir();
        // Positive control: a tree just within the depth cap (64 levels) runs.
        let mut deep = wd.path().to_path_buf();
        for _ in 0..64 {
            deep.push("d");
            run.mkdir(&deep);
        }
        run.exec()
            .workdir(wd.path())
            .program(["/bin/true"])
            .run()
            .assert_code(0);
        // One level more, and mcp-j refuses before the jail starts, naming cap and path.
        deep.push("d");
        run.mkdir(&deep);
        let out = run.exec().workdir(wd.path()).program(["/bin/true"]).run();
        out.assert_code(125);
        assert!(
            out.stderr.contains("more than 64 levels") && out.stderr.contains(s(&deep)),
            "the refusal does not name the cap and the path:\n{}",
            out.context()
        );
    });
}
