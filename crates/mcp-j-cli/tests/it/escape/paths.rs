//! Exposed paths (`--ro`, `--rw`, `--workdir`): a symlink a jail planted earlier, or flips
//! while mcp-j starts, must not redirect a mount; the default workdir is never a system
//! directory; a read-only path is not idmapped; `--workdir state` persists.
//!
//! The "secret" directory of each test stands for `~/.ssh`: a 0700 directory of the
//! runner's with a 0600 file in it. Every test asserts on the host that it was neither
//! read nor written, beside a positive control showing the same write works where it
//! should.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{READ_ONLY, s};
use crate::common::{Failures, sandbox_test, test_name, unique};

const KEY: &str = "PRIVATE KEY (mcp-j test)\n";

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_planted_symlink_cannot_redirect_an_exposed_path() {
    sandbox_test(test_name!(), &[], |run| {
        let proj = run.tempdir();
        let secret = run.tempdir();
        let key = secret.path().join("id_rsa");
        run.write_file(&key, KEY.as_bytes(), 0o600);
        let cache = proj.path().join("cache");
        let mut f = Failures::new();

        // A jail plants the link in the project it may write.
        f.check(
            "the jail plants `cache -> secret`",
            run.exec()
                .workdir(proj.path())
                .program(["/bin/ln", "-s", s(secret.path()), s(&cache)])
                .run()
                .check_code(0),
        );
        assert!(
            fs::symlink_metadata(&cache).is_ok_and(|m| m.file_type().is_symlink()),
            "the jail could not plant the link: the test proves nothing"
        );

        // A later run exposes the planted path: refused, naming where it leads.
        let script = format!("cat {0}/id_rsa; echo pwned > {0}/id_rsa", s(&cache));
        for flag in ["--rw", "--ro", "--workdir"] {
            let out = run
                .exec()
                .raw(["exec", flag, s(&cache), "--", "/bin/sh", "-c", script.as_str()])
                .run();
            f.check(&format!("{flag} of the planted link"), out.check_code(125));
            let named = format!("is a symlink to `{}`", s(secret.path()));
            if !out.stderr.contains(&named) || !out.stderr.contains("pass the target instead") {
                f.fail(
                    &format!("{flag} message"),
                    format!("expected `{named}` and the fix\n{}", out.context()),
                );
            }
            if out.stdout.contains("PRIVATE KEY") {
                f.fail(
                    &format!("{flag} of the planted link"),
                    format!("ESCAPE: the key was read\n{}", out.context()),
                );
            }
        }
        match fs::read_to_string(&key) {
            Ok(text) if text == KEY => {}
            other => f.fail("the key on the host", format!("ESCAPE: changed: {other:?}")),
        }
        if listing(secret.path()) != ["id_rsa"] {
            f.fail(
                "the secret directory",
                format!("ESCAPE: now holds {:?}", listing(secret.path())),
            );
        }

        // Positive controls: the link's target passed as such is the user's own choice and
        // works; a real directory at the same place is exposed and writable.
        f.check(
            "--ro of the target itself",
            run.exec()
                .opt("--ro", secret.path())
                .program(["/bin/true"])
                .run()
                .check_code(0),
        );
        fs::remove_file(&cache).expect("remove the planted link");
        run.mkdir(&cache);
        let write = format!("echo ok > {}/written", s(&cache));
        f.check(
            "--rw of a real directory",
            run.exec()
                .opt("--rw", &cache)
                .program(["/bin/sh", "-c", write.as_str()])
                .run()
                .check_code(0),
        );
        if fs::read_to_string(cache.join("written")).ok().as_deref() != Some("ok\n") {
            f.fail("--rw of a real directory", "the write did not reach the host");
        }
        f.assert_none();
    });
}

/// Swaps two names in one directory atomically (`renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let a = CString::new(a.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let b = CString::new(b.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: two valid NUL-terminated paths, relative to no descriptor.
    let ret = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// At most this many launches, and at most this long, per runner. Before the fix about
/// every second launch mounted the secret directory.
const RACE_LAUNCHES: u32 = 200;
const RACE_TIME: Duration = Duration::from_secs(60);

#[test]
fn a_symlink_flipped_during_launch_cannot_redirect_an_exposed_path() {
    sandbox_test(test_name!(), &[], |run| {
        let proj = run.tempdir();
        let secret = run.tempdir();
        let wd = run.tempdir();
        let key = secret.path().join("id_rsa");
        run.write_file(&key, KEY.as_bytes(), 0o600);
        let cache = proj.path().join("cache");
        let swap = proj.path().join("swap");
        run.mkdir(&cache);
        std::os::unix::fs::symlink(secret.path(), &swap).expect("symlink");
        let (uid, gid) = run.runner.ids();
        std::os::unix::fs::lchown(&swap, Some(uid), Some(gid)).expect("lchown");

        // The flipper: `cache` is the directory, then the link, then the directory, …
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(AtomicU64::new(0));
        let flipper = {
            let (stop, flips, cache, swap) = (stop.clone(), flips.clone(), cache.clone(), swap.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if exchange(&cache, &swap).is_err() {
                        break;
                    }
                    flips.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };

        let mut f = Failures::new();
        let (mut wrote, mut refused, mut other) = (0u32, 0u32, 0u32);
        let started = Instant::now();
        for n in 0..RACE_LAUNCHES {
            if started.elapsed() > RACE_TIME {
                break;
            }
            let script = format!("echo {n} > {}/probe-{n}", s(&cache));
            let out = run
                .exec()
                .workdir(wd.path())
                .opt("--rw", &cache)
                .program(["/bin/sh", "-c", script.as_str()])
                .bound(Duration::from_secs(30))
                .run();
            match out.code {
                Some(0) => wrote += 1,
                Some(125) if out.stderr.contains("is a symlink to") => refused += 1,
                _ => other += 1,
            }
            if listing(secret.path()) != ["id_rsa"] {
                f.fail(
                    "the secret directory",
                    format!(
                        "ESCAPE at launch {n}: it now holds {:?}\n{}",
                        listing(secret.path()),
                        out.context()
                    ),
                );
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().expect("flipper");
        eprintln!(
            "race: {wrote} wrote, {refused} refused (the link), {other} other, {} flips, {:?}",
            flips.load(Ordering::Relaxed),
            started.elapsed()
        );

        match fs::read_to_string(&key) {
            Ok(text) if text == KEY => {}
            other => f.fail("the key on the host", format!("ESCAPE: changed: {other:?}")),
        }
        // Positive controls: the race was run (both states were seen), and the real
        // directory, wherever the flipper left its name, was exposed and written.
        let real: PathBuf = if fs::symlink_metadata(&cache).is_ok_and(|m| m.is_dir()) {
            cache.clone()
        } else {
            swap.clone()
        };
        let probes = listing(&real).iter().filter(|n| n.starts_with("probe-")).count();
        if wrote == 0 || probes == 0 {
            f.fail(
                "positive control",
                format!("no launch wrote the real directory ({wrote} exits 0, {probes} probes)"),
            );
        }
        if refused == 0 {
            f.fail("the race", "no launch saw the link: the flipper did not race");
        }
        f.assert_none();
    });
}

#[test]
fn read_only_paths_are_not_idmapped() {
    sandbox_test(test_name!(), &[], |run| {
        let dir = run.tempdir();
        let private = dir.path().join("private");
        run.write_file(&private, KEY.as_bytes(), 0o600);
        let mut f = Failures::new();
        if run.runner.is_root() {
            // Host root's 0600 file stays host root's: the jail is someone else.
            let ro = run.exec().opt("--ro", dir.path()).attack(&["read", s(&private)]).run();
            f.check("--ro of root's 0600 file", ro.check_denied(&["EACCES"]));
        } else {
            // The runner's own file, and the jail is the runner.
            let ro = run
                .exec()
                .opt("--ro", dir.path())
                .attack(&["control", "read", s(&private)])
                .run();
            f.check("--ro of the runner's own file", ro.check_ok());
        }
        // Positive control: read-write paths are idmapped, so root's file there is the
        // jail user's.
        f.check(
            "--rw of the same file",
            run.exec()
                .opt("--rw", dir.path())
                .attack(&["control", "read", s(&private)])
                .run()
                .check_ok(),
        );
        // And a read-only path stays read-only.
        f.check(
            "write under --ro",
            run.exec()
                .opt("--ro", dir.path())
                .attack(&["write", &format!("{}/new", s(dir.path()))])
                .run()
                .check_denied(READ_ONLY),
        );
        f.assert_none();
    });
}

/// A directory of `/etc` that exists on every system the tests run on.
fn an_etc_directory() -> PathBuf {
    ["/etc/ssl", "/etc/default", "/etc/security"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("/etc"))
}

#[test]
fn the_default_workdir_is_never_a_system_directory() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        let name = unique("mcp-j-probe");
        let probe = Path::new("/etc").join(&name);
        assert!(
            fs::symlink_metadata(&probe).is_err(),
            "{} exists already",
            probe.display()
        );
        let script = format!("echo > ./{name} && pwd");
        let out = run
            .exec()
            .workdir(Path::new("/etc"))
            .raw(["exec", "--", "/bin/sh", "-c", script.as_str()])
            .run();
        if fs::symlink_metadata(&probe).is_ok() {
            // Only the file this test created, by its unique name.
            let _ = fs::remove_file(&probe);
            f.fail(
                "/etc",
                format!("ESCAPE: the jail created {}\n{}", probe.display(), out.context()),
            );
        }
        // Positive control: the program ran, in a private directory, and mcp-j said so
        // with the flags to use instead.
        f.check("run from /etc", out.check_code(0));
        if out.stdout.trim() != "/tmp" {
            f.fail("the workdir", format!("expected the private /tmp\n{}", out.context()));
        }
        for word in [
            "private",
            "system directory",
            "--workdir DIR",
            "--workdir state",
            "--workdir private",
        ] {
            if !out.stderr.contains(word) {
                f.fail(
                    "the note on stderr",
                    format!("does not say `{word}`\n{}", out.context()),
                );
            }
        }
        if out.stderr.matches("mcp-j: the working directory").count() != 1 {
            f.fail(
                "the note on stderr",
                format!("not said exactly once\n{}", out.context()),
            );
        }
        // `--workdir private` asks for it: no note.
        let quiet = run
            .exec()
            .workdir(Path::new("/etc"))
            .raw(["exec", "--workdir", "private", "--", "/bin/true"])
            .run();
        f.check("--workdir private", quiet.check_code(0));
        if quiet.stderr.contains("working directory") {
            f.fail("--workdir private", format!("still a note\n{}", quiet.context()));
        }

        // An explicit system directory read-write needs --allow-system-path.
        let etc_dir = an_etc_directory();
        for flag in ["--rw", "--workdir"] {
            let out = run.exec().raw(["exec", flag, s(&etc_dir), "--", "/bin/true"]).run();
            f.check(&format!("{flag} {}", etc_dir.display()), out.check_code(125));
            if !out.stderr.contains("--allow-system-path") {
                f.fail(
                    &format!("{flag} message"),
                    format!("does not name the flag\n{}", out.context()),
                );
            }
        }
        // Read-only, it needs nothing.
        f.check(
            "--ro of a system directory",
            run.exec()
                .opt("--ro", &etc_dir)
                .program(["/bin/true"])
                .run()
                .check_code(0),
        );
        // With the flag it runs (a program that writes nothing), and the audit log says so.
        let logs = run.tempdir();
        let log = logs.path().join("audit.jsonl");
        f.check(
            "--rw with --allow-system-path",
            run.exec()
                .opt("--rw", &etc_dir)
                .opts(["--allow-system-path"])
                .opt("--audit-log", &log)
                .program(["/bin/true"])
                .run()
                .check_code(0),
        );
        let text = fs::read_to_string(&log).unwrap_or_default();
        let start: Option<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event_type"] == "session.start");
        let recorded = start.as_ref().is_some_and(|v| {
            v["exposed_paths"].as_array().is_some_and(|paths| {
                paths
                    .iter()
                    .any(|p| p["path"].as_str() == Some(s(&etc_dir)) && p["access"] == "rw" && p["system_path"] == true)
            })
        });
        if !recorded {
            f.fail(
                "the audit log",
                format!("no system_path entry for {}: {text}", etc_dir.display()),
            );
        }
        f.assert_none();
    });
}

#[test]
fn workdir_state_persists_per_server() {
    sandbox_test(test_name!(), &[], |run| {
        let state_home = run.tempdir();
        let mut f = Failures::new();
        let script = "cat note 2>/dev/null; echo kept > note; pwd";
        let launch = |extra: &[&str]| {
            let mut args = vec!["exec", "--workdir", "state", "--", "/bin/sh", "-c", script, "sh"];
            args.extend_from_slice(extra);
            run.exec().env("XDG_STATE_HOME", state_home.path()).raw(args).run()
        };
        let first = launch(&[]);
        f.check("first run", first.check_code(0));
        let dir = PathBuf::from(first.stdout.lines().last().unwrap_or_default());
        if !dir.starts_with(state_home.path().join("mcp-j/state")) || first.stdout.contains("kept") {
            f.fail("first run", format!("not a fresh state dir\n{}", first.context()));
        }
        if !first.stderr.contains(&format!("kept in `{}`", dir.display())) {
            f.fail(
                "first run",
                format!("does not say where the state is\n{}", first.context()),
            );
        }
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&dir).map(|m| m.permissions().mode() & 0o777).ok();
            if mode != Some(0o700) {
                f.fail("the state dir", format!("mode {mode:?}, expected 0700"));
            }
        }
        let second = launch(&[]);
        f.check("second run", second.check_code(0));
        if !second.stdout.starts_with("kept") {
            f.fail("second run", format!("the file did not persist\n{}", second.context()));
        }
        if second.stderr.contains("kept in") {
            f.fail("second run", format!("said again\n{}", second.context()));
        }
        // Another server (other arguments) has a state of its own.
        let other = launch(&["other"]);
        f.check("another server", other.check_code(0));
        if other.stdout.contains("kept") || other.stdout.lines().last() == Some(s(&dir)) {
            f.fail(
                "another server",
                format!("shares the first one's state\n{}", other.context()),
            );
        }
        f.assert_none();
    });
}

#[test]
fn the_program_in_the_workdir_is_bound_executable_and_nothing_else_is() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let script = wd.path().join("server.sh");
        let other = wd.path().join("other.sh");
        run.write_file(&script, b"#!/bin/sh\necho ran\n", 0o700);
        run.write_file(&other, b"#!/bin/sh\necho other\n", 0o700);
        let mut f = Failures::new();
        // Positive control: PROG itself runs from the (noexec) workdir, 0700 and the
        // caller's own, idmapped for root.
        let out = run.exec().workdir(wd.path()).program(["./server.sh"]).run();
        f.check("./server.sh", out.check_code(0));
        if out.stdout != "ran\n" {
            f.fail("./server.sh", format!("did not run\n{}", out.context()));
        }
        // Any other file of the workdir stays not executable.
        let out = run
            .exec()
            .workdir(wd.path())
            .program(["/bin/sh", "-c", "./other.sh"])
            .run();
        if out.code == Some(0) || out.stdout.contains("other") {
            f.fail("./other.sh", format!("ran from the noexec workdir\n{}", out.context()));
        }
        f.assert_none();
    });
}
