//! `mcp-j exec` behaviour that is not an escape: what the program starts with.

use crate::common;
use std::time::Duration;

use crate::common::{sandbox_test, test_name};

/// Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across execve: the
/// program must start with every disposition at its default and nothing blocked, or a
/// pipeline like `yes | head -1` reports "Broken pipe" instead of ending quietly.
#[test]
fn program_starts_with_default_signal_dispositions() {
    sandbox_test(test_name!(), &[], |run| {
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
    sandbox_test(test_name!(), &[], |run| {
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
    });
}

/// `--manifest` mirrors the flags, flags win, and unknown fields are refused.
#[test]
fn manifest_sets_limits_and_flags_win() {
    sandbox_test(test_name!(), &[], |run| {
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
    sandbox_test(test_name!(), &[], |run| {
        run.exec().program(["/etc/hostname"]).run().assert_code(126);
        let dir = run.tempdir();
        run.exec()
            .opt("--audit-log", dir.path().join("audit.jsonl"))
            .program(["/bin/true"])
            .run()
            .assert_code(0);
    });
}

/// `npx`, `uvx` and `pipx run` download the server when they start, outside the sandbox's
/// control (and the sandbox has no network). mcp-j refuses them at once (125) and names the
/// `mcp-j run npm:…`/`pypi:…` command that installs the same package inside the sandbox.
#[test]
fn launchers_that_download_are_refused_with_what_to_do_instead() {
    common::cli_test(test_name!(), |run| {
        for (command, hint) in [
            (
                &["npx", "-y", "@modelcontextprotocol/server-everything", "stdio"][..],
                "mcp-j run npm:@modelcontextprotocol/server-everything -- stdio",
            ),
            (
                &["/usr/bin/uvx", "mcp-server-time"][..],
                "mcp-j run pypi:mcp-server-time",
            ),
            (
                &["pipx", "run", "mcp-server-time"][..],
                "mcp-j run pypi:mcp-server-time",
            ),
        ] {
            for sub in ["exec", "run"] {
                let mut args = vec![sub, "--"];
                args.extend_from_slice(command);
                let out = run.exec().raw(&args).bound(std::time::Duration::from_secs(20)).run();
                out.assert_code(125);
                for needle in ["no network", "inside the sandbox", hint] {
                    assert!(out.stderr.contains(needle), "`{needle}` missing:\n{}", out.context());
                }
            }
        }
    });
}

/// MCP Inspector strips the first `--`: the usage error says where the program goes and
/// how to write it for the Inspector, and that form (`-- -- PROG`) works when no one
/// strips anything.
#[test]
fn a_program_without_separator_is_explained_and_a_doubled_separator_works() {
    sandbox_test(test_name!(), &[], |run| {
        for sub in ["exec", "run"] {
            let out = run.exec().raw([sub, "--memory", "64M", "/bin/echo", "hi"]).run();
            out.assert_code(125);
            assert!(out.stderr.contains("unexpected argument"), "{}", out.context());
            assert!(
                out.stderr.contains("go after `--`") && out.stderr.contains("-- -- PROG"),
                "{}",
                out.context()
            );
        }
        let wd = run.tempdir();
        let out = run
            .exec()
            .workdir(wd.path())
            .program(["--", "/bin/echo", "doubled"])
            .run();
        out.assert_code(0);
        assert_eq!(out.stdout, "doubled\n", "{}", out.context());
    });
}

/// `--no-subprocess` says on stderr which programs it refused, as it refuses them: the
/// first 8 by name, then one line for the rest.
#[test]
fn no_subprocess_names_the_programs_it_refuses_on_stderr() {
    sandbox_test(test_name!(), &[], |run| {
        let script = "/bin/true; /usr/bin/git --version; \
                      for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; echo finished";
        let out = run
            .exec()
            .opts(["--no-subprocess"])
            .program(["/bin/sh", "-c", script])
            .run();
        out.assert_code(0);
        assert_eq!(out.stdout, "finished\n", "{}", out.context());
        // The shell writes its own complaints to the same stderr, a line in several
        // writes: ours may land inside one of its lines, so look for ours anywhere.
        let refused: Vec<&str> = out
            .stderr
            .match_indices("mcp-j: --no-subprocess refused to start ")
            .map(|(i, _)| &out.stderr[i..])
            .collect();
        assert_eq!(refused.len(), 8, "{}", out.context());
        let first = "mcp-j: --no-subprocess refused to start `/bin/true` (execve: EPERM) (to let the \
                     program start others, leave out --no-subprocess";
        assert!(refused[0].starts_with(first), "{}", out.context());
        assert!(
            refused[1].starts_with("mcp-j: --no-subprocess refused to start `/usr/bin/git` (execve: EPERM)\n"),
            "{}",
            out.context()
        );
        assert_eq!(
            out.stderr
                .matches("mcp-j: --no-subprocess refused more programs")
                .count(),
            1,
            "{}",
            out.context()
        );
    });
}

/// A program that cannot start in the sandbox gets a reason found on the host: a venv's
/// `bin/python` that is a symlink into an unexposed interpreter tree names the target and
/// the `--ro` that fixes it (and that `--ro` does fix it); a `#!` interpreter that is not
/// exposed is named the same way; one in the workdir is named as not executable there.
#[test]
fn a_program_that_cannot_start_is_explained_from_the_host() {
    sandbox_test(test_name!(), &[], |run| {
        use std::os::unix::fs::symlink;
        let top = run.tempdir();
        let t = top.path();
        // A pyenv-like interpreter tree (the "interpreter" is a copy of /bin/true) and a
        // venv whose python links into it.
        let prefix = t.join("pyenv/versions/3.99");
        for dir in [
            "pyenv",
            "pyenv/versions",
            "pyenv/versions/3.99",
            "pyenv/versions/3.99/bin",
            "venv",
            "venv/bin",
        ] {
            run.mkdir(&t.join(dir));
        }
        let interpreter = prefix.join("bin/python3");
        let true_bin = std::fs::read("/bin/true").expect("read /bin/true");
        run.write_file(&interpreter, &true_bin, 0o755);
        let venv_python = t.join("venv/bin/python");
        symlink(&interpreter, &venv_python).expect("symlink");
        let s = |p: &std::path::Path| p.to_str().expect("UTF-8 path").to_owned();

        let out = run
            .exec()
            .opt("--ro", t.join("venv"))
            .program([s(&venv_python), "-c".into(), "1".into()])
            .run();
        out.assert_code(127);
        let want = format!(
            "the program `{}` is a symlink to `{}`, which is not exposed in the sandbox; add `--ro {}`",
            venv_python.display(),
            interpreter.display(),
            prefix.display()
        );
        assert!(out.stderr.contains(&want), "expected `{want}`:\n{}", out.context());

        // The suggested --ro works.
        let out = run
            .exec()
            .opt("--ro", t.join("venv"))
            .opt("--ro", &prefix)
            .program([s(&venv_python)])
            .run();
        out.assert_code(0);

        // A script whose #! interpreter is not exposed.
        run.mkdir(&t.join("tools"));
        let script = t.join("tools/serve");
        run.write_file(&script, format!("#!{}\n", interpreter.display()).as_bytes(), 0o755);
        let out = run.exec().opt("--ro", t.join("tools")).program([s(&script)]).run();
        out.assert_code(127);
        let want = format!(
            "its interpreter (`#!` line) `{}` is not exposed in the sandbox; add `--ro {}`",
            interpreter.display(),
            prefix.display()
        );
        assert!(out.stderr.contains(&want), "expected `{want}`:\n{}", out.context());

        // A #! interpreter in the (writable, not executable) workdir.
        let wd = run.tempdir();
        let local = wd.path().join("python3");
        run.write_file(&local, &true_bin, 0o755);
        run.write_file(&script, format!("#!{}\n", local.display()).as_bytes(), 0o755);
        let out = run
            .exec()
            .workdir(wd.path())
            .opt("--ro", t.join("tools"))
            .program([s(&script)])
            .run();
        out.assert_code(126);
        let want = format!(
            "its interpreter (`#!` line) `{}` is in `{}`, which the sandbox mounts writable and so not executable",
            local.display(),
            std::fs::canonicalize(wd.path()).expect("canonical workdir").display()
        );
        assert!(out.stderr.contains(&want), "expected `{want}`:\n{}", out.context());
    });
}

/// A program whose shared library lies in the (not executable) workdir: the loader fails
/// with exit 127, and mcp-j says why and what to do.
#[test]
fn a_library_in_the_workdir_that_cannot_map_is_explained() {
    sandbox_test(test_name!(), &[], |run| {
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib64/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("no libc.so.6 found");
        let wd = run.tempdir();
        let program = wd.path().join("prog");
        run.write_file(&program, &std::fs::read("/bin/true").expect("read /bin/true"), 0o755);
        run.write_file(
            &wd.path().join("libc.so.6"),
            &std::fs::read(libc).expect("read libc"),
            0o755,
        );
        let dir = std::fs::canonicalize(wd.path()).expect("canonical workdir");
        let env = format!("LD_LIBRARY_PATH={}", dir.display());
        let out = run
            .exec()
            .workdir(wd.path())
            .opt("--env", &env)
            .program([program.to_str().expect("UTF-8")])
            .run();
        out.assert_code(127);
        assert!(out.stderr.contains("failed to map segment"), "{}", out.context());
        let want = format!(
            "exit 127 from the program `{}`, which is in `{}`: the sandbox mounts that writable and so not executable",
            dir.join("prog").display(),
            dir.display()
        );
        assert!(out.stderr.contains(&want), "expected `{want}`:\n{}", out.context());
        assert!(out.stderr.contains("`--ro DIR`"), "{}", out.context());
    });
}

/// `--registry` and `--cache-dir` are offered in `--help` now that packages use them, and
/// the configuration takes them (`config show`). `--allow-net` works, and is offered.
#[test]
fn global_flags_are_offered_and_parsed() {
    common::cli_test(test_name!(), |run| {
        for (args, shown) in [
            (&["--help"][..], "--config"),
            (&["exec", "--help"][..], "--secret"),
            (&["run", "--help"][..], "--allow-tool"),
            (&["exec", "-h"][..], "--secret"),
        ] {
            let out = run.exec().raw(args).run();
            out.assert_code(0);
            // The help was printed at all: an ordinary flag is in it.
            assert!(out.stdout.contains(shown), "`{shown}` missing:\n{}", out.context());
            if args == ["--help"] {
                for shown in ["--registry", "--cache-dir"] {
                    assert!(out.stdout.contains(shown), "`{shown}` missing:\n{}", out.context());
                }
            }
        }
        // `--allow-net` works now, and says so in --help.
        let out = run.exec().raw(["exec", "--help"]).run();
        assert!(out.stdout.contains("--allow-net <HOST[:PORT]>"), "{}", out.context());

        // An invalid rule is refused before anything runs, naming itself.
        let out = run.exec().opts(["--allow-net", "*"]).program(["/bin/true"]).run();
        out.assert_code(125);
        assert!(out.stderr.contains("invalid network rule `*`"), "{}", out.context());

        let out = run
            .exec()
            .raw([
                "--registry",
                "https://r.example",
                "--cache-dir",
                "/c",
                "config",
                "show",
                "--json",
            ])
            .run();
        out.assert_code(0);
        for (value, source) in [("https://r.example", "flag --registry"), ("/c", "flag --cache-dir")] {
            assert!(
                out.stdout.contains(value) && out.stdout.contains(source),
                "{}",
                out.context()
            );
        }
    });
}

/// The helper is a fork of mcp-j, not a fresh `execve` with an empty environment: it must
/// scrub the environment it inherited, so that neither it nor the jail's init holds the
/// user's variables (tokens and all) that the program was not given.
#[test]
fn jail_processes_do_not_hold_the_callers_environment() {
    sandbox_test(test_name!(), &[], |run| {
        let marker = format!("not-for-the-jail-{}", std::process::id());
        let mut running = run
            .exec()
            .env("MCPJ_TEST_CALLER_SECRET", &marker)
            .program(["/bin/sh", "-c", "echo ready; exec sleep 30"])
            .bound(Duration::from_secs(30))
            .spawn();
        running.wait_line(Duration::from_secs(20), |l| l == "ready");
        let supervisor = running.pid();
        let environ = |pid: u32| std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let holds_marker = |pid: u32| environ(pid).windows(marker.len()).any(|w| w == marker.as_bytes());
        // Positive control: the caller's variable reached mcp-j, and /proc shows it.
        assert!(
            holds_marker(supervisor),
            "the supervisor's environment lacks the marker"
        );
        let mut descendants = Vec::new();
        let mut todo = vec![supervisor];
        while let Some(pid) = todo.pop() {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                descendants.push(child);
                todo.push(child);
            }
        }
        assert!(
            descendants.len() >= 3,
            "helper, init and program expected, found {descendants:?}"
        );
        let holding: Vec<u32> = descendants.iter().copied().filter(|&pid| holds_marker(pid)).collect();
        running.kill();
        assert!(
            holding.is_empty(),
            "jail processes {holding:?} hold the caller's environment"
        );
    });
}
