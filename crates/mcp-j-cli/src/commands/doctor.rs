//! `mcp-j doctor`: what this machine offers, probed for real, and what `exec` enforces here.

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use mcp_j_engine::probe::{PROBE_ARG, PROBES};
use mcp_j_engine::{Jail, JailStdio, JailStream, Limits, SandboxSpec, Workdir};
use serde::Serialize;

/// One kernel feature and whether its probe succeeded.
#[derive(Debug, Serialize)]
struct Feature {
    name: &'static str,
    what: &'static str,
    available: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Cgroup {
    available: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Doctor {
    features: Vec<Feature>,
    cgroup_v2: Cgroup,
    /// The v1 memory/pids/cpu hierarchies, usable by root only.
    cgroup_v1: Cgroup,
    /// Which limits hold per process (or per file) only, from the real run.
    per_process_only: Vec<String>,
    /// What this machine's checks cannot show.
    notes: Vec<String>,
    /// Whether `exec` works here end to end (`/bin/true` in a full jail).
    exec_works: bool,
    exec_error: Option<String>,
    /// What `exec` enforces here, layer by layer (from that real run).
    layers: Vec<mcp_j_engine::Layer>,
    /// Whether `--allow-net` works here (a jail with an allowlist, its listeners received).
    egress: Egress,
}

#[derive(Debug, Serialize)]
struct Egress {
    works: bool,
    /// What the network layer enforces with an allowlist, or why it could not be set up.
    detail: String,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn run_probe(name: &str) -> (bool, String) {
    let child = Command::new("/proc/self/exe")
        .args([PROBE_ARG, name])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot start probe: {e}")),
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    let line = out.lines().next().unwrap_or("").to_string();
    match status {
        None => (false, "probe timed out".into()),
        Some(s) if s.success() => (true, line.strip_prefix("ok").unwrap_or("").trim().to_string()),
        Some(s) => {
            let detail = line.strip_prefix("no").unwrap_or(&line).trim().to_string();
            (
                false,
                if detail.is_empty() {
                    format!("probe failed ({s})")
                } else {
                    detail
                },
            )
        }
    }
}

/// A jail with an allowlist (a documentation address: nothing is sent anywhere): init
/// brings its loopback up, makes the address local, binds the listeners and hands them out.
fn egress_smoke_test() -> Egress {
    let mut spec = smoke_spec();
    spec.egress = Some(mcp_j_engine::spec::EgressSpec {
        proxy_port: 3128,
        ports: vec![443],
        local_networks: vec![(std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1)), 32)],
        channel_fd: None,
    });
    let means = mcp_j_engine::network::describe(spec.egress.as_ref());
    let parent = super::cgroup_parent();
    let result = Jail::spawn(&spec, null_stdio(), parent.as_ref()).and_then(|mut jail| {
        jail.wait_ready(Duration::from_secs(20))?;
        let sockets = jail.take_egress_sockets()?;
        let done = jail.wait(Some(Duration::from_secs(20)))?;
        Ok((sockets.len(), done.outcome))
    });
    match result {
        // The proxy, the DNS stub, and port 443 on IPv4 and IPv6.
        Ok((4, mcp_j_engine::Outcome::Exited(0))) => Egress {
            works: true,
            detail: means,
        },
        Ok((n, outcome)) => Egress {
            works: false,
            detail: format!("{n} listeners of 4 received, /bin/true ended with {outcome:?}"),
        },
        Err(e) => Egress {
            works: false,
            detail: format!("{e}"),
        },
    }
}

fn null_stdio() -> JailStdio {
    JailStdio {
        stdin: JailStream::Null,
        stdout: JailStream::Null,
        stderr: JailStream::Null,
    }
}

fn smoke_spec() -> SandboxSpec {
    SandboxSpec {
        program: "/bin/true".into(),
        args: vec![],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        workdir: Workdir::Private,
        ro_paths: vec![],
        rw_paths: vec![],
        limits: Limits::default(),
        no_subprocess: true,
        limits_by_cgroup: false,
        host_ids: None,
        require_memory_limit: false,
        covers: Vec::new(),
        egress: None,
        package: None,
    }
}

fn exec_smoke_test() -> (Option<String>, Vec<mcp_j_engine::Layer>) {
    let spec = smoke_spec();
    let parent = super::cgroup_parent();
    let result =
        Jail::spawn(&spec, null_stdio(), parent.as_ref()).and_then(|jail| jail.wait(Some(Duration::from_secs(20))));
    match result {
        Ok(done) if done.outcome == mcp_j_engine::Outcome::Exited(0) => (None, done.report.layers),
        Ok(mcp_j_engine::Finished { outcome, report, .. }) => (
            Some(format!("`/bin/true` in the sandbox ended with {outcome:?}")),
            report.layers,
        ),
        Err(e) => (Some(format!("{e}")), vec![]),
    }
}

pub fn doctor(json: bool) -> Result<ExitCode> {
    let features: Vec<Feature> = PROBES
        .iter()
        .map(|(name, what)| {
            let (available, detail) = run_probe(name);
            Feature {
                name,
                what,
                available,
                detail,
            }
        })
        .collect();
    let configured = std::env::var_os("MCP_J_CGROUP_PARENT").map(std::path::PathBuf::from);
    let cgroup_v2 = match mcp_j_engine::cgroup::detect(configured.as_deref()) {
        Ok(parent) => Cgroup {
            available: true,
            detail: format!("delegated parent `{}`", parent.path().display()),
        },
        Err(why) => Cgroup {
            available: false,
            detail: why.to_string(),
        },
    };
    let cgroup_v1 = match mcp_j_engine::cgroup::detect_v1().and_then(|parents| parents.probe().map(|()| parents)) {
        Ok(parents) => Cgroup {
            available: true,
            detail: format!(
                "jail cgroups under {}",
                parents
                    .dirs()
                    .iter()
                    .map(|(c, p)| format!("`{}` ({})", p.display(), c.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Err(why) => Cgroup {
            available: false,
            detail: why.to_string(),
        },
    };
    let mut notes =
        vec!["a transient systemd scope is not used (out of scope: mcp-j does not talk to systemd)".to_owned()];
    if !cgroup_v2.available {
        notes.push(
            "the cgroup v2 delegation path is not usable here: it is tested against a fake cgroup tree only".to_owned(),
        );
    }
    let (exec_error, layers) = exec_smoke_test();
    let per_process_only = mcp_j_engine::SandboxReport { layers: layers.clone() }
        .per_process_only()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let report = Doctor {
        features,
        cgroup_v2,
        cgroup_v1,
        per_process_only,
        notes,
        exec_works: exec_error.is_none(),
        exec_error,
        layers,
        egress: egress_smoke_test(),
    };
    if json {
        crate::output::write_stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::output::write_stdout(&human(&report)?)?;
    }
    Ok(if report.exec_works {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report as text for a person.
fn human(d: &Doctor) -> Result<String, std::fmt::Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    writeln!(out, "Kernel features (each probed in a throwaway process):")?;
    for f in &d.features {
        let mark = if f.available { "yes" } else { "NO " };
        writeln!(
            out,
            "  {mark}  {:<20} {}",
            f.name,
            if f.detail.is_empty() { f.what } else { &f.detail }
        )?;
    }
    let mark = if d.cgroup_v2.available { "yes" } else { "NO " };
    writeln!(out, "  {mark}  {:<20} {}", "cgroup_v2", d.cgroup_v2.detail)?;
    let mark = if d.cgroup_v1.available { "yes" } else { "NO " };
    writeln!(out, "  {mark}  {:<20} {}", "cgroup_v1", d.cgroup_v1.detail)?;
    writeln!(out)?;
    match &d.exec_error {
        None => writeln!(
            out,
            "`mcp-j exec` works here and enforces (from a real run of /bin/true):"
        )?,
        Some(e) => writeln!(out, "`mcp-j exec` does NOT work here: {e}")?,
    }
    for l in &d.layers {
        let status = format!("{:?}", l.status).to_lowercase();
        writeln!(out, "  {:<14} {:<9} {}", l.name, status, l.means)?;
    }
    if !d.layers.is_empty() {
        writeln!(out, "Per process only: {}", d.per_process_only.join(", "))?;
    }
    match d.egress.works {
        true => writeln!(
            out,
            "With --allow-net (a real jail with an allowlist): {}",
            d.egress.detail
        )?,
        false => writeln!(out, "--allow-net does NOT work here: {}", d.egress.detail)?,
    }
    for note in &d.notes {
        writeln!(out, "Note: {note}")?;
    }
    Ok(out)
}
