//! Escape tests: a hostile program (`mcp-j-attack`) tries to get out of `mcp-j exec`, and
//! every attack must be denied.
//!
//! Each test runs as root and as an unprivileged user (see `common`). Each asserts the
//! attack program's `denied:` line (with the errno where the kernel's answer is certain)
//! and, where the attack would leave a trace on the host, that the trace is absent: no
//! file, nothing received by the test's own loopback listener, the host process still
//! alive. Positive controls in each test show that the same operation works where it
//! should, so no test passes because nothing works at all.
//!
//! Network tests only use listeners this file binds itself on 127.0.0.1 and ::1 (port 0)
//! and unix sockets it creates.

// The leaked-fd test dup2()s a descriptor in `pre_exec`; the SIGKILL test cleans up
// survivors with kill(2).
#![allow(unsafe_code)]
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod limits;
mod paths;
mod protect;
mod seccomp;
mod tty;

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::{Failures, Outcome, Run, cli_test, sandbox_test, test_name, unique};
use serde_json::Value;

/// What a connect or send from a jail without network may fail with.
const NET_DENIED: &[&str] = &[
    "ENETUNREACH",
    "EACCES",
    "EPERM",
    "ECONNREFUSED",
    "EHOSTUNREACH",
    "ENETDOWN",
    "EADDRNOTAVAIL",
];
/// A host path that must not exist in the jail.
const ABSENT: &[&str] = &["ENOENT", "EACCES"];
/// A write to a read-only place.
const READ_ONLY: &[&str] = &["EROFS", "EACCES", "EPERM"];
/// What `write` of the attack program puts in a file.
const MARKER: &str = "written by mcp-j-attack\n";

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The number that follows `word` in a report detail: `EAGAIN after 61 forks` → 61.
fn number_before(detail: &str, word: &str) -> Option<u64> {
    let words: Vec<&str> = detail.split_whitespace().collect();
    words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok())
}

fn parse_json(detail: &str) -> Value {
    serde_json::from_str(detail).unwrap_or_else(|e| panic!("bad JSON `{detail}`: {e}"))
}

/// A host process the test started, killed (by its pid) when the test is done with it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Baseline

#[test]
fn sandbox_runs_a_program() {
    sandbox_test(test_name!(), &[], |run| {
        run.exec().program(["/bin/true"]).run().assert_code(0);
        run.attack(&["uname"]).assert_ok();
    });
}

#[test]
fn program_has_no_privileges() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let status = parse_json(&run.exec().workdir(wd.path()).attack(&["status"]).run().assert_ok());
        let mut f = Failures::new();
        let mut expect = |key: &str, want: &str| {
            if status[key].as_str() != Some(want) {
                f.fail(key, format!("is {}, expected `{want}` (status: {status})", status[key]));
            }
        };
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            expect(cap, "0000000000000000");
        }
        expect("NoNewPrivs", "1");
        expect("Seccomp", "2");
        expect("Uid", "1000 1000 1000 1000");
        expect("Gid", "1000 1000 1000 1000");
        let filters: u64 = status["Seccomp_filters"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if filters < 1 {
            f.fail("Seccomp_filters", format!("{filters}, expected at least 1"));
        }
        if status["pid"] != 2 {
            f.fail(
                "pid",
                format!("the program is pid {}, expected 2 (init is 1)", status["pid"]),
            );
        }
        let cwd = fs::canonicalize(wd.path()).unwrap();
        if status["cwd"].as_str() != Some(s(&cwd)) {
            f.fail(
                "cwd",
                format!("{}, expected the workdir {}", status["cwd"], cwd.display()),
            );
        }
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Environment

#[test]
fn environment_is_minimal_and_host_variables_do_not_leak() {
    sandbox_test(test_name!(), &[], |run| {
        let canary = unique("canary-value");
        let out = run.exec().env("ESCAPE_TEST_CANARY", &canary).attack(&["env"]).run();
        let env = parse_json(&out.assert_ok());
        let env = env.as_object().expect("env is an object");
        let mut f = Failures::new();
        let allowed: BTreeSet<&str> = ["PATH", "HOME", "LANG", "TERM"].into();
        for (k, v) in env {
            if !allowed.contains(k.as_str()) {
                f.fail("env", format!("unexpected variable {k}={v}"));
            }
            if v.as_str().is_some_and(|v| v.contains(&canary)) {
                f.fail("env", format!("the host canary leaked into {k}"));
            }
        }
        if env.get("HOME").and_then(Value::as_str) != Some("/tmp") {
            f.fail("HOME", format!("{:?}, expected /tmp", env.get("HOME")));
        }
        // The init's environment is not a way around it.
        f.check(
            "/proc/1/environ",
            run.exec()
                .env("ESCAPE_TEST_CANARY", &canary)
                .attack(&["grep-file", "/proc/1/environ", &canary])
                .run()
                .check_denied(&[]),
        );

        // Positive controls: --env NAME=VALUE, --env NAME (pass-through), --secret.
        let out = run
            .exec()
            .env("ESCAPE_TEST_CANARY", &canary)
            .env("ESCAPE_TEST_PASS", "passed-through")
            .env("ESCAPE_TEST_SECRET_SOURCE", "s3cret-value")
            .opt("--env", "ESCAPE_TEST_SET=set-value")
            .opt("--env", "ESCAPE_TEST_PASS")
            .opt("--secret", "ESCAPE_TEST_SECRET=env:ESCAPE_TEST_SECRET_SOURCE")
            .attack(&["env"])
            .run();
        if let Some(detail) = f.check("env with --env/--secret", out.check_ok()) {
            let env = parse_json(&detail);
            for (k, want) in [
                ("ESCAPE_TEST_SET", Some("set-value")),
                ("ESCAPE_TEST_PASS", Some("passed-through")),
                ("ESCAPE_TEST_SECRET", Some("s3cret-value")),
                ("ESCAPE_TEST_SECRET_SOURCE", None),
                ("ESCAPE_TEST_CANARY", None),
            ] {
                if env[k].as_str() != want {
                    f.fail(k, format!("is {}, expected {want:?}", env[k]));
                }
            }
        }
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Files

#[test]
fn host_files_are_not_readable() {
    sandbox_test(test_name!(), &[], |run| {
        let secret_dir = run.tempdir();
        let secret = secret_dir.path().join("secret.txt");
        run.write_file(&secret, b"host secret\n", 0o644);
        // The runner can read it on the host: a denial in the jail is the jail's.
        run.host_probe(&["control", "read", s(&secret)]).assert_ok();

        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let mut f = Failures::new();
        for path in [
            s(&secret),
            s(&manifest),
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/machine-id",
            "/etc/ssh",
            "/root",
            "/home",
            "/var/log",
            "/var/lib",
            "/boot",
            "/opt",
            "/srv",
            "/mnt",
            "/run",
            "/sys/kernel",
            "/sys/fs/cgroup",
            "/proc/1/root/etc/shadow",
            "/proc/kcore",
        ] {
            f.check(
                path,
                run.attack(&["read", path]).check_denied(&["ENOENT", "EACCES", "EPERM"]),
            );
        }
        // The jail's /etc/hostname, if any, is its own.
        let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        f.check(
            "/etc/hostname has the host's name",
            run.attack(&["grep-file", "/etc/hostname", &format!("{}\n", host_name.trim())])
                .check_denied(&[]),
        );
        // The jail's passwd is synthetic: no host accounts.
        if let common::Who::User { name, .. } = &run.runner.who {
            f.check(
                "/etc/passwd has host users",
                run.attack(&["grep-file", "/etc/passwd", &format!("{name}:")])
                    .check_denied(&[]),
            );
        }
        // Positive control: a --ro file is readable.
        let ro = run.tempdir();
        let shared = ro.path().join("shared.txt");
        run.write_file(&shared, b"shared\n", 0o644);
        f.check(
            "--ro file",
            run.exec()
                .opt("--ro", ro.path())
                .attack(&["control", "read", s(&shared)])
                .run()
                .check_ok(),
        );
        f.assert_none();
    });
}

#[test]
fn only_the_workdir_and_rw_paths_are_writable() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let rw = run.tempdir();
        let ro = run.tempdir();
        let outside = run.tempdir();
        let existing = ro.path().join("existing.txt");
        run.write_file(&existing, b"original\n", 0o644);
        let jail = |args: &[&str]| -> Outcome {
            run.exec()
                .workdir(wd.path())
                .opt("--rw", rw.path())
                .opt("--ro", ro.path())
                .attack(args)
                .run()
        };
        let mut f = Failures::new();

        // Positive controls: the workdir and --rw paths are writable, and it shows.
        for dir in [wd.path(), rw.path()] {
            let file = dir.join("written.txt");
            f.check(
                &format!("write {}", file.display()),
                jail(&["control", "write", s(&file)]).check_ok(),
            );
            match fs::read_to_string(&file) {
                Ok(text) if text == MARKER => {}
                other => f.fail(&format!("{} on the host", file.display()), format!("{other:?}")),
            }
        }

        let denied: Vec<(Vec<String>, &[&str])> = vec![
            (vec!["write".into(), format!("{}/new.txt", s(outside.path()))], ABSENT),
            (vec!["mkdir".into(), format!("{}/newdir", s(outside.path()))], ABSENT),
            (vec!["write".into(), format!("{}/new.txt", s(ro.path()))], READ_ONLY),
            (vec!["write".into(), s(&existing).into()], READ_ONLY),
            (vec!["unlink".into(), s(&existing).into()], READ_ONLY),
            (vec!["chmod".into(), s(&existing).into(), "777".into()], READ_ONLY),
            (vec!["mkdir".into(), format!("{}/newdir", s(ro.path()))], READ_ONLY),
            (vec!["write".into(), "/mcp-j-escape".into()], READ_ONLY),
            (vec!["write".into(), "/etc/mcp-j-escape".into()], READ_ONLY),
            (vec!["write".into(), "/etc/passwd".into()], READ_ONLY),
            (vec!["write".into(), "/usr/mcp-j-escape".into()], READ_ONLY),
            (vec!["write".into(), "/usr/bin/mcp-j-escape".into()], READ_ONLY),
            (vec!["write".into(), "/bin/mcp-j-escape".into()], READ_ONLY),
            (
                vec!["write".into(), format!("{}/mcp-j-escape", s(common::attack_dir()))],
                READ_ONLY,
            ),
            // Out of a read-only place into a writable one: a hard link would be writable.
            (
                vec!["link".into(), s(&existing).into(), format!("{}/hardlink", s(wd.path()))],
                &["EXDEV", "EACCES", "EPERM", "EROFS"],
            ),
            (
                vec!["rename".into(), s(&existing).into(), format!("{}/moved", s(wd.path()))],
                &["EXDEV", "EACCES", "EPERM", "EROFS"],
            ),
        ];
        for (args, errnos) in &denied {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            f.check(&args.join(" "), jail(&args).check_denied(errnos));
        }

        // Nothing happened on the host.
        for path in [
            outside.path().join("new.txt"),
            outside.path().join("newdir"),
            ro.path().join("new.txt"),
            ro.path().join("newdir"),
            wd.path().join("hardlink"),
            wd.path().join("moved"),
            PathBuf::from("/mcp-j-escape"),
            PathBuf::from("/etc/mcp-j-escape"),
            PathBuf::from("/usr/mcp-j-escape"),
            PathBuf::from("/usr/bin/mcp-j-escape"),
            common::attack_dir().join("mcp-j-escape"),
        ] {
            if fs::symlink_metadata(&path).is_ok() {
                f.fail(&format!("{}", path.display()), "ESCAPE: exists on the host");
                let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir(&path));
            }
        }
        match fs::read_to_string(&existing) {
            Ok(text) if text == "original\n" => {}
            other => f.fail("--ro file on the host", format!("changed: {other:?}")),
        }
        match fs::metadata(&existing).map(|m| m.permissions().mode() & 0o7777) {
            Ok(0o644) => {}
            other => f.fail("--ro file mode on the host", format!("{other:?}")),
        }
        f.assert_none();
    });
}

#[test]
fn tmp_and_dev_shm_are_private() {
    sandbox_test(test_name!(), &[], |run| {
        let name = unique("mcp-j-escape-private");
        let mut f = Failures::new();
        for dir in ["/tmp", "/dev/shm"] {
            let path = format!("{dir}/{name}");
            // Writable inside (positive control)…
            f.check(
                &format!("write {path}"),
                run.attack(&["control", "write", &path]).check_ok(),
            );
            // …invisible on the host…
            if Path::new(&path).exists() {
                f.fail(&path, "ESCAPE: the jail's file appeared on the host");
                let _ = fs::remove_file(&path);
            }
            // …and gone in the next jail.
            f.check(
                &format!("read {path} in a new jail"),
                run.attack(&["read", &path]).check_denied(&["ENOENT"]),
            );
        }
        f.assert_none();
    });
}

#[test]
fn writable_places_are_not_executable() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let rw = run.tempdir();
        let jail =
            |args: &[&str]| -> Outcome { run.exec().workdir(wd.path()).opt("--rw", rw.path()).attack(args).run() };
        let mut f = Failures::new();
        // Positive control: exec itself works.
        f.check("exec /bin/true", jail(&["control", "exec-true"]).check_ok());
        for dir in [s(wd.path()), s(rw.path()), "/tmp", "/dev/shm"] {
            f.check(
                &format!("exec-payload {dir}"),
                jail(&["exec-payload", dir]).check_denied(&["EACCES", "EPERM"]),
            );
        }
        f.check(
            "mmap-exec workdir",
            jail(&["mmap-exec", s(wd.path())]).check_denied(&["EPERM", "EACCES"]),
        );
        f.check(
            "ldso-exec workdir",
            jail(&["ldso-exec", s(wd.path())]).check_denied(&[]),
        );
        f.check("ldso-exec /tmp", jail(&["ldso-exec", "/tmp"]).check_denied(&[]));
        f.assert_none();
    });
}

/// A memfd is writable memory with a file's face: `execveat` of one runs a downloaded
/// binary without any file in a writable place, which is what the noexec rule is for.
#[test]
fn memfd_payloads_are_not_executable() {
    sandbox_test(test_name!(), &[], |run| {
        run.attack(&["memfd-exec"]).assert_denied(&[]);
    });
}

#[test]
fn setuid_files_and_device_nodes_cannot_be_planted() {
    sandbox_test(test_name!(), &[], |run| {
        let wd = run.tempdir();
        let jail = |args: &[&str]| run.exec().workdir(wd.path()).attack(args).run();
        let mut f = Failures::new();
        let suid = wd.path().join("suid");
        f.check("setuid-file", jail(&["setuid-file", s(&suid)]).check_denied(&[]));
        if let Ok(meta) = fs::metadata(&suid) {
            let mode = meta.permissions().mode();
            if mode & 0o6000 != 0 {
                f.fail(
                    "setuid file on the host",
                    format!("ESCAPE: {} has mode {mode:o}", suid.display()),
                );
            }
        }
        let capfile = wd.path().join("capfile");
        f.check("setcap", jail(&["setcap", s(&capfile)]).check_denied(&["EPERM"]));
        let node = wd.path().join("devnode");
        // Landlock (EACCES) or the missing CAP_MKNOD (EPERM), whichever the kernel asks first.
        f.check(
            "mknod workdir",
            jail(&["mknod", s(&node)]).check_denied(&["EPERM", "EACCES"]),
        );
        f.check(
            "mknod /tmp",
            jail(&["mknod", "/tmp/devnode"]).check_denied(&["EPERM", "EACCES"]),
        );
        if fs::symlink_metadata(&node).is_ok() {
            f.fail("device node on the host", format!("ESCAPE: {} exists", node.display()));
        }
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Processes

#[test]
fn host_processes_are_out_of_reach() {
    sandbox_test(test_name!(), &[], |run| {
        // A host process of the same user: only the namespace stands in the way.
        let mut sleeper = run.runner.command("sleep");
        sleeper.arg("60");
        let victim = KillOnDrop(sleeper.spawn().expect("start sleep"));
        let pid = victim.0.id();
        assert!(pid > 100, "host pid {pid} could collide with jail pids");
        let pid_s = pid.to_string();
        let mut f = Failures::new();
        f.check("kill", run.attack(&["kill", &pid_s]).check_denied(&["ESRCH"]));
        if let Some(detail) = f.check("proc-pids", run.attack(&["proc-pids", &pid_s]).check_denied(&[])) {
            match number_before(&detail, "pids") {
                Some(n) if n <= 4 => {}
                other => f.fail(
                    "proc-pids",
                    format!("{other:?} pids visible, expected at most 4: {detail}"),
                ),
            }
        }
        f.check(
            "ptrace host pid",
            run.attack(&["ptrace", &pid_s]).check_denied(&["EPERM"]),
        );
        f.check("ptrace 1", run.attack(&["ptrace", "1"]).check_denied(&["EPERM"]));
        f.check(
            "process_vm_readv host pid",
            run.attack(&["process-vm-readv", &pid_s]).check_denied(&["EPERM"]),
        );
        f.check(
            "process_vm_readv 1",
            run.attack(&["process-vm-readv", "1"]).check_denied(&["EPERM"]),
        );
        // The host process survived.
        let mut victim = victim;
        if !matches!(victim.0.try_wait(), Ok(None)) {
            f.fail("host process", "ESCAPE: the host process died");
        }
        f.assert_none();
    });
}

#[test]
fn the_jail_init_is_out_of_reach() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        f.check("/proc/1", run.attack(&["proc-init"]).check_denied(&[]));
        f.check("pidfd_getfd 1", run.attack(&["pidfd-getfd", "1"]).check_denied(&[]));
        for exe in ["/proc/1/exe", "/proc/self/exe"] {
            f.check(
                &format!("open {exe} for writing"),
                run.attack(&["open-write", exe])
                    .check_denied(&["ETXTBSY", "EACCES", "EROFS", "EPERM", "ENOENT"]),
            );
        }
        f.assert_none();
    });
}

#[test]
fn inherited_fds_are_closed() {
    sandbox_test(test_name!(), &[], |run| {
        let dir = run.tempdir();
        run.write_file(&dir.path().join("secret.txt"), b"fd secret\n", 0o644);
        let dir_fd = fs::File::open(dir.path()).expect("open the temp dir");
        let raw = dir_fd.as_raw_fd();
        let leak = |cmd: &mut Command| {
            // SAFETY: dup2 is async-signal-safe; raw stays open until the child has
            // started (dir_fd lives to the end of this closure's caller). dup2 clears
            // FD_CLOEXEC on fd 7, so the child inherits it.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(raw, 7) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        };
        // Positive control: without the jail, fd 7 reaches the secret.
        run.host_probe_with(&["control", "openat-fd", "7", "secret.txt"], leak)
            .assert_ok();
        let mut f = Failures::new();
        f.check(
            "fds",
            run.exec().configure(leak).attack(&["fds"]).run().check_denied(&[]),
        );
        f.check(
            "openat-fd 7",
            run.exec()
                .configure(leak)
                .attack(&["openat-fd", "7", "secret.txt"])
                .run()
                .check_denied(&["EBADF"]),
        );
        drop(dir_fd);
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Network

/// Accepts every pending connection; how many there were.
fn drain_tcp(listener: &TcpListener) -> usize {
    let mut n = 0;
    while let Ok((_stream, _)) = listener.accept() {
        n += 1;
    }
    n
}

fn drain_unix(listener: &UnixListener) -> usize {
    let mut n = 0;
    while let Ok((_stream, _)) = listener.accept() {
        n += 1;
    }
    n
}

/// Every datagram waiting on `socket`.
fn drain_udp(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Binds a loopback listener of the test's own; `None` if this host has no such address
/// (IPv6 disabled).
fn tcp_listener(addr: &str) -> Option<(TcpListener, u16)> {
    let l = TcpListener::bind(addr).ok()?;
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    Some((l, port))
}

#[test]
fn tcp_to_host_loopback_is_denied() {
    sandbox_test(test_name!(), &[], |run| {
        let (l4, p4) = tcp_listener("127.0.0.1:0").expect("bind 127.0.0.1");
        let v6 = tcp_listener("[::1]:0");
        // Positive controls: the host reaches its own listeners.
        run.host_probe(&["control", "tcp-connect", &format!("127.0.0.1:{p4}")])
            .assert_ok();
        TcpStream::connect(("127.0.0.1", p4)).expect("connect to our own listener");
        thread_sleep_ms(100);
        assert_eq!(drain_tcp(&l4), 2, "the host could not reach its own listener");
        let mut targets = vec![format!("127.0.0.1:{p4}"), format!("[::ffff:127.0.0.1]:{p4}")];
        if let Some((l6, p6)) = &v6 {
            run.host_probe(&["control", "tcp-connect", &format!("[::1]:{p6}")])
                .assert_ok();
            thread_sleep_ms(100);
            assert_eq!(drain_tcp(l6), 1, "the host could not reach its own [::1] listener");
            targets.push(format!("[::1]:{p6}"));
        } else {
            eprintln!("note: no IPv6 loopback on this host; [::1] not tested");
        }
        let mut f = Failures::new();
        for t in &targets {
            f.check(
                &format!("tcp-connect {t}"),
                run.attack(&["tcp-connect", t]).check_denied(NET_DENIED),
            );
        }
        thread_sleep_ms(200);
        let got = drain_tcp(&l4) + v6.as_ref().map_or(0, |(l, _)| drain_tcp(l));
        if got != 0 {
            f.fail(
                "host listener",
                format!("ESCAPE: received {got} connection(s) from the jail"),
            );
        }
        f.assert_none();
    });
}

fn udp_socket(addr: &str) -> Option<(UdpSocket, u16)> {
    let u = UdpSocket::bind(addr).ok()?;
    u.set_nonblocking(true).unwrap();
    let port = u.local_addr().unwrap().port();
    Some((u, port))
}

#[test]
fn udp_to_host_loopback_is_denied() {
    sandbox_test(test_name!(), &[], |run| {
        let (u4, p4) = udp_socket("127.0.0.1:0").expect("bind udp 127.0.0.1");
        let v6 = udp_socket("[::1]:0");
        // Positive control: the host's own datagram arrives.
        run.host_probe(&["control", "udp-send", &format!("127.0.0.1:{p4}")])
            .assert_ok();
        thread_sleep_ms(100);
        assert_eq!(drain_udp(&u4).len(), 1, "the host's own datagram did not arrive");
        let mut targets = vec![format!("127.0.0.1:{p4}"), format!("[::ffff:127.0.0.1]:{p4}")];
        if let Some((_, p6)) = &v6 {
            targets.push(format!("[::1]:{p6}"));
        }
        let mut f = Failures::new();
        for t in &targets {
            f.check(
                &format!("udp-send {t}"),
                run.attack(&["udp-send", t]).check_denied(NET_DENIED),
            );
        }
        thread_sleep_ms(300);
        let got = drain_udp(&u4).len() + v6.as_ref().map_or(0, |(u, _)| drain_udp(u).len());
        if got != 0 {
            f.fail(
                "host socket",
                format!("ESCAPE: received {got} datagram(s) from the jail"),
            );
        }
        f.assert_none();
    });
}

#[test]
fn host_unix_sockets_are_unreachable() {
    sandbox_test(test_name!(), &[], |run| {
        let name = unique("mcp-j-escape");
        let abstract_l = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .expect("bind an abstract socket");
        abstract_l.set_nonblocking(true).unwrap();
        let dir = run.tempdir();
        let path = dir.path().join("sock");
        let path_l = UnixListener::bind(&path).expect("bind a path socket");
        path_l.set_nonblocking(true).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        // Positive controls: the runner reaches both from the host.
        run.host_probe(&["control", "unix-abstract", &name]).assert_ok();
        run.host_probe(&["control", "unix-path", s(&path)]).assert_ok();
        thread_sleep_ms(100);
        assert_eq!(drain_unix(&abstract_l), 1, "no connection on our own abstract socket");
        assert_eq!(drain_unix(&path_l), 1, "no connection on our own path socket");
        let mut f = Failures::new();
        f.check(
            "unix-abstract",
            run.attack(&["unix-abstract", &name])
                .check_denied(&["ECONNREFUSED", "EPERM", "EACCES"]),
        );
        f.check(
            "unix-path",
            run.attack(&["unix-path", s(&path)]).check_denied(&["ENOENT", "EACCES"]),
        );
        thread_sleep_ms(200);
        let got = drain_unix(&abstract_l) + drain_unix(&path_l);
        if got != 0 {
            f.fail(
                "host listeners",
                format!("ESCAPE: received {got} connection(s) from the jail"),
            );
        }
        f.assert_none();
    });
}

/// Families the filter must refuse (all but unix, inet, inet6, netlink).
const REFUSED_FAMILIES: &[&str] = &[
    "packet",
    "packet-dgram",
    "alg",
    "vsock",
    "key",
    "xdp",
    "bluetooth",
    "can",
    "tipc",
    "rds",
    "llc",
    "x25",
    "ax25",
    "appletalk",
    "netrom",
    "rose",
    "atmpvc",
    "phonet",
    "ieee802154",
    "nfc",
    "kcm",
    "qipcrtr",
    "smc",
    "mctp",
    "rxrpc",
    "pppox",
];

#[test]
fn socket_families_outside_the_allowlist_are_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        for fam in REFUSED_FAMILIES {
            f.check(
                &format!("socket {fam}"),
                run.attack(&["socket", fam]).check_denied(&["EPERM"]),
            );
            // Bit 32 set: the kernel drops it, the filter must not be fooled by it.
            f.check(
                &format!("socket {fam} with high bits"),
                run.attack(&["socket-highbits", fam]).check_denied(&["EPERM"]),
            );
        }
        for raw in ["inet-raw", "inet6-raw"] {
            f.check(
                &format!("socket {raw}"),
                run.attack(&["socket", raw]).check_denied(&["EPERM"]),
            );
        }
        for ping in ["ping", "ping6"] {
            f.check(
                &format!("socket {ping}"),
                run.attack(&["socket", ping]).check_denied(&["EACCES", "EPERM"]),
            );
        }
        // Positive controls: the allowed families work.
        for ok in ["unix", "inet-tcp", "inet6-udp", "netlink-route"] {
            f.check(
                &format!("socket {ok}"),
                run.attack(&["control", "socket", ok]).check_ok(),
            );
        }
        f.assert_none();
    });
}

#[test]
fn the_jail_network_cannot_be_reconfigured() {
    sandbox_test(test_name!(), &[], |run| {
        run.attack(&["netlink-up"]).assert_denied(&["EPERM"]);
    });
}

#[test]
fn tcp_bind_is_denied_by_landlock() {
    sandbox_test(test_name!(), &["landlock-net"], |run| {
        let mut f = Failures::new();
        for addr in ["0.0.0.0:0", "[::]:0", "127.0.0.1:8080"] {
            f.check(
                &format!("tcp-bind {addr}"),
                run.attack(&["tcp-bind", addr])
                    .check_denied(&["EACCES", "EADDRNOTAVAIL"]),
            );
        }
        // 0.0.0.0 always exists: only Landlock can refuse that one.
        f.check(
            "tcp-bind 0.0.0.0:0 is EACCES",
            run.attack(&["tcp-bind", "0.0.0.0:0"]).check_denied(&["EACCES"]),
        );
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// The kernel's surface

/// Runs a table of attacks, each expected to be denied with one of its errnos.
fn expect_denied_table(run: &Run, table: &[(Vec<&str>, &[&str])]) {
    let mut f = Failures::new();
    for (args, errnos) in table {
        f.check(&args.join(" "), run.attack(args).check_denied(errnos));
    }
    f.assert_none();
}

const NAMESPACES: &[&str] = &["user", "mount", "net", "pid", "ipc", "uts", "cgroup", "time"];

#[test]
fn new_namespaces_are_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let mut table: Vec<(Vec<&str>, &[&str])> = Vec::new();
        for ns in NAMESPACES {
            table.push((vec!["unshare", ns], &["EPERM"]));
            table.push((vec!["setns", ns], &["EPERM"]));
            // clone(2) carries the exit signal in the low byte, where CLONE_NEWTIME would be.
            if *ns != "time" {
                table.push((vec!["clone-ns", ns], &["EPERM"]));
            }
            // clone3's flags are behind a pointer: refused as a whole (ENOSYS lets libc
            // fall back to clone).
            table.push((vec!["clone3-ns", ns], &["EPERM", "ENOSYS"]));
        }
        expect_denied_table(run, &table);
    });
}

#[test]
fn the_mount_family_is_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let mut table: Vec<(Vec<&str>, &[&str])> = Vec::new();
        for kind in [
            "tmpfs",
            "bind",
            "fsopen",
            "open-tree",
            "move-mount",
            "mount-setattr",
            "umount",
            "pivot-root",
            "chroot",
        ] {
            table.push((vec!["mount", kind], &["EPERM"]));
        }
        expect_denied_table(run, &table);
        // Making a --ro path writable again.
        let ro = run.tempdir();
        run.exec()
            .opt("--ro", ro.path())
            .attack(&["mount", "remount-rw", s(ro.path())])
            .run()
            .assert_denied(&["EPERM"]);
    });
}

#[test]
fn dangerous_kernel_interfaces_are_refused() {
    sandbox_test(test_name!(), &[], |run| {
        let table: Vec<(Vec<&str>, &[&str])> = vec![
            (vec!["io-uring"], &["EPERM"]),
            (vec!["keyctl"], &["EPERM"]),
            (vec!["bpf"], &["EPERM"]),
            (vec!["perf-event"], &["EPERM"]),
            (vec!["userfaultfd"], &["EPERM"]),
            (vec!["open-by-handle-at"], &["EPERM"]),
            // EINVAL: uid 0 is not even mapped in the jail.
            (vec!["setuid"], &["EPERM", "EINVAL"]),
            // Syscall-number tricks: the x32 numbers (guarded, or ENOSYS without x32) and
            // the i386 entry (another architecture: refused or killed).
            (vec!["x32-syscall"], &["EPERM", "ENOSYS"]),
            (vec!["int80-syscall"], &["EPERM", "ENOSYS", "SIGSYS"]),
        ];
        expect_denied_table(run, &table);
    });
}

#[test]
fn scheduling_time_and_the_kernel_log_are_out_of_reach() {
    sandbox_test(test_name!(), &[], |run| {
        let table: Vec<(Vec<&str>, &[&str])> = vec![
            // Real-time scheduling would let one busy loop own a core.
            (vec!["sched"], &["EPERM", "EACCES"]),
            (vec!["settime"], &["EPERM"]),
            (vec!["syslog"], &["EPERM", "EACCES"]),
        ];
        expect_denied_table(run, &table);
    });
}

#[test]
fn terminal_injection_ioctls_are_refused_on_any_fd() {
    sandbox_test(test_name!(), &[], |run| {
        let mut table: Vec<(Vec<&str>, &[&str])> = Vec::new();
        for kind in ["tiocsti", "tioclinux", "tiocsti-highbits", "tioclinux-highbits"] {
            for fd in ["0", "1", "2", "null"] {
                table.push((vec!["ioctl", kind, fd], &["EPERM"]));
            }
        }
        expect_denied_table(run, &table);
    });
}

#[test]
fn raw_devices_are_absent() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        for dev in [
            "/dev/sda",
            "/dev/vda",
            "/dev/nvme0n1",
            "/dev/mem",
            "/dev/kmem",
            "/dev/port",
            "/dev/kmsg",
            "/dev/tty",
            "/dev/console",
            "/dev/tty0",
            "/dev/fuse",
            "/dev/net/tun",
            "/dev/kvm",
            "/dev/userfaultfd",
            "/dev/vsock",
            "/dev/loop-control",
        ] {
            f.check(
                dev,
                run.attack(&["open", dev])
                    .check_denied(&["ENOENT", "EACCES", "EPERM", "ENXIO"]),
            );
        }
        // Positive controls: the minimal /dev is there.
        for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"] {
            f.check(dev, run.attack(&["control", "open", dev]).check_ok());
        }
        f.assert_none();
    });
}

#[test]
fn kernel_tunables_are_read_only() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        for path in [
            "/proc/sysrq-trigger",
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/kernel/hostname",
            "/proc/sys/vm/drop_caches",
            "/proc/sys/vm/memfd_noexec",
            "/sys/kernel/uevent_helper",
            "/sys/fs/cgroup/release_agent",
        ] {
            f.check(
                path,
                run.attack(&["open-write", path])
                    .check_denied(&["EACCES", "EROFS", "ENOENT", "EPERM"]),
            );
        }
        f.assert_none();
    });
}

#[test]
fn the_hostname_is_private() {
    sandbox_test(test_name!(), &[], |run| {
        let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let mut f = Failures::new();
        match run.attack(&["uname"]).check_ok() {
            Ok(d) if d == "nodename=mcp-j" => {}
            Ok(d) => f.fail("uname", format!("`{d}`, expected nodename=mcp-j")),
            Err(e) => f.fail("uname", e),
        }
        f.check("sethostname", run.attack(&["sethostname"]).check_denied(&["EPERM"]));
        if fs::read_to_string("/proc/sys/kernel/hostname").unwrap() != host_name {
            f.fail("host name", "ESCAPE: the host's name changed");
        }
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Limits

/// Checks that a bomb was denied with one of `errnos` and that the count it reports
/// (`<ERRNO> after N forks`: the number before `unit`) is in `range`.
fn check_bomb(
    f: &mut Failures,
    what: &str,
    out: &Outcome,
    errnos: &[&str],
    unit: &str,
    range: std::ops::RangeInclusive<u64>,
) {
    let count = out
        .check_denied(errnos)
        .and_then(|detail| number_before(&detail, unit).ok_or_else(|| format!("no `N {unit}` in `{detail}`")));
    if let Some(n) = f.check(what, count)
        && !range.contains(&n)
    {
        f.fail(
            what,
            format!("stopped at {n} {unit}, expected {range:?}\n{}", out.context()),
        );
    }
}

#[test]
fn fork_bombs_are_contained() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        let out = run.exec().opts(["--pids", "64"]).attack(&["fork-bomb"]).run();
        check_bomb(&mut f, "fork-bomb --pids 64", &out, &["EAGAIN"], "forks", 8..=63);
        let out = run.attack(&["fork-bomb"]);
        check_bomb(&mut f, "fork-bomb (default 256)", &out, &["EAGAIN"], "forks", 32..=255);
        let out = run.exec().opts(["--pids", "64"]).attack(&["thread-bomb"]).run();
        check_bomb(&mut f, "thread-bomb --pids 64", &out, &["EAGAIN"], "threads", 8..=63);
        f.assert_none();
    });
}

#[test]
fn memory_bombs_are_contained() {
    sandbox_test(test_name!(), &[], |run| {
        let out = run.exec().opts(["--memory", "256M"]).attack(&["mem-bomb"]).run();
        // A cgroup limit kills (137) instead of failing the allocation; both contain it.
        if out.code == Some(137) && !out.stdout.contains("escaped") {
            return;
        }
        let mut f = Failures::new();
        check_bomb(&mut f, "mem-bomb --memory 256M", &out, &["ENOMEM"], "MiB", 32..=256);
        f.assert_none();
    });
}

#[test]
fn fd_bombs_are_contained() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        let out = run.exec().opts(["--fds", "64"]).attack(&["fd-bomb"]).run();
        check_bomb(&mut f, "fd-bomb --fds 64", &out, &["EMFILE"], "fds", 10..=64);
        let out = run.attack(&["fd-bomb"]);
        check_bomb(&mut f, "fd-bomb (default 1024)", &out, &["EMFILE"], "fds", 512..=1024);
        f.assert_none();
    });
}

#[test]
fn limits_cannot_be_raised() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        f.check("defaults", run.attack(&["raise-limits"]).check_denied(&["EPERM"]));
        f.check(
            "--fds 64 --pids 64",
            run.exec()
                .opts(["--fds", "64", "--pids", "64"])
                .attack(&["raise-limits"])
                .run()
                .check_denied(&["EPERM"]),
        );
        f.assert_none();
    });
}

#[test]
fn timeout_stops_a_cpu_burner() {
    sandbox_test(test_name!(), &[], |run| {
        let out = run
            .exec()
            .opts(["--timeout", "2s"])
            .bound(Duration::from_secs(60))
            .attack(&["cpu-burn"])
            .run();
        out.assert_code(124);
        assert!(
            out.elapsed >= Duration::from_millis(1500) && out.elapsed <= Duration::from_secs(15),
            "--timeout 2s took {:?}\n{}",
            out.elapsed,
            out.context()
        );
    });
}

#[test]
fn sigkill_of_mcp_j_kills_the_whole_jail() {
    sandbox_test(test_name!(), &[], |run| {
        const K: usize = 5;
        let mut running = run.exec().attack(&["spawn-tree", &K.to_string()]).spawn();
        let line = running.wait_line(Duration::from_secs(30), |l| l.starts_with("ok: pids"));
        let inside: Vec<&str> = line.trim_start_matches("ok: pids").split_whitespace().collect();
        assert_eq!(
            inside.len(),
            K + 2,
            "the tree is the program, {K} children and a daemon: {line}"
        );
        let tree = common::descendants(running.pid());
        // At least the program, its K children and the daemon, plus whatever mcp-j runs.
        assert!(
            tree.len() >= K + 2,
            "found only {} host descendants of mcp-j ({tree:?}), the jail said {line}",
            tree.len()
        );
        running.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut survivors: Vec<_> = tree.clone();
        while Instant::now() < deadline {
            survivors.retain(common::still_alive);
            if survivors.is_empty() {
                break;
            }
            thread_sleep_ms(50);
        }
        if !survivors.is_empty() {
            let report = format!("{survivors:?}");
            // Clean up what we started (checked by pid and start time), then fail.
            for p in &survivors {
                if common::still_alive(p) {
                    // SAFETY: kill takes plain integers; the pid was just checked to be this
                    // very process (same start time), a descendant of the mcp-j we started.
                    unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
                }
            }
            panic!(
                "ESCAPE: {} jail process(es) outlived the SIGKILL of mcp-j by 10 s: {report}",
                survivors.len()
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// --no-subprocess

#[test]
fn no_subprocess_blocks_every_exec_after_the_first() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        // Positive controls: without the flag, exec works.
        f.check("exec-true", run.attack(&["control", "exec-true"]).check_ok());
        f.check("execveat-true", run.attack(&["control", "execveat-true"]).check_ok());
        // With it, the program itself still starts…
        f.check(
            "the program starts",
            run.exec()
                .opts(["--no-subprocess"])
                .program(["/bin/true"])
                .run()
                .check_code(0),
        );
        // …but nothing after it.
        let wd = run.tempdir();
        for args in [
            vec!["exec-true"],
            vec!["execveat-true"],
            vec!["memfd-exec"],
            vec!["ldso-exec", s(wd.path())],
        ] {
            let out = run
                .exec()
                .workdir(wd.path())
                .opts(["--no-subprocess"])
                .attack(&args)
                .run();
            f.check(
                &format!("--no-subprocess {}", args.join(" ")),
                out.check_denied(&["EPERM"]),
            );
        }
        f.assert_none();
    });
}

// ---------------------------------------------------------------------------------------
// Exit codes

#[test]
fn exit_codes_follow_the_interface() {
    sandbox_test(test_name!(), &[], |run| {
        let mut f = Failures::new();
        let sh = |script: &str| run.exec().program(["/bin/sh", "-c", script]).run();
        f.check("exit 3", sh("exit 3").check_code(3));
        f.check("killed by SIGKILL", sh("kill -9 $$").check_code(137));
        f.check("killed by SIGTERM", sh("kill -15 $$").check_code(143));
        f.check(
            "absolute path not found",
            run.exec()
                .program(["/nonexistent/mcp-j-no-such-program"])
                .run()
                .check_code(127),
        );
        f.check(
            "bare name not found",
            run.exec().program(["mcp-j-no-such-program"]).run().check_code(127),
        );
        f.assert_none();
    });
}

#[test]
fn usage_errors_exit_125() {
    cli_test(test_name!(), |run| {
        let mut f = Failures::new();
        f.check(
            "an invalid --allow-net rule",
            run.exec()
                .opts(["--allow-net", "*"])
                .program(["/bin/true"])
                .run()
                .check_code(125),
        );
        f.check(
            "unknown flag",
            run.exec()
                .raw(["exec", "--no-such-flag", "--", "/bin/true"])
                .run()
                .check_code(125),
        );
        f.check("no program", run.exec().raw(["exec", "--"]).run().check_code(125));
        f.assert_none();
    });
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
