//! A network of the test's own, for the egress tests: new network and mount namespaces,
//! held open by a sleeping process the test starts, with its loopback up and holding
//! documentation-range addresses too (this kernel has no dummy interfaces), and test names
//! in a private `/etc/hosts`
//! bind-mounted in the private mount namespace. No packet sent inside can leave the
//! machine: the namespace has no route out, only its own addresses.
//!
//! Making it needs a root harness. Programs run inside with [`TestNet::command`] (`nsenter`
//! into both namespaces); an unprivileged runner's command drops to its user after the
//! `nsenter`, so the same test runs as root and as the user.

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Runner;

/// The feature name a machine declares in `MCP_J_TEST_EXPECT` when it can make one.
pub const FEATURE: &str = "test-net";

/// The network, for as long as the value lives.
pub struct TestNet {
    holder: Child,
    _hosts: tempfile::NamedTempFile,
}

impl TestNet {
    /// Makes the namespaces, puts `addresses` (documentation ranges only: checked) on its
    /// loopback and `names` (name, address) in its `/etc/hosts`.
    pub fn new(addresses: &[&str], names: &[(&str, &str)]) -> Result<TestNet, String> {
        for address in addresses.iter().copied().chain(names.iter().map(|(_, a)| *a)) {
            if !is_test_address(address) {
                return Err(format!("{address} is not a loopback or documentation-range address"));
            }
        }
        if super::euid() != 0 {
            return Err("making a network namespace needs a root harness".to_owned());
        }
        let holder = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "--", "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut hosts = tempfile::NamedTempFile::new().map_err(|e| format!("hosts file: {e}"))?;
        let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
        for (name, address) in names {
            text.push_str(&format!("{address}\t{name}\n"));
        }
        hosts
            .write_all(text.as_bytes())
            .map_err(|e| format!("hosts file: {e}"))?;
        let mut net = TestNet { holder, _hosts: hosts };
        net.wait_for_namespace()?;
        let hosts_path = net._hosts.path().to_owned();
        // /etc/hosts must stay readable by the unprivileged runner.
        std::fs::set_permissions(&hosts_path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|e| format!("hosts file: {e}"))?;
        let mut steps: Vec<Vec<String>> =
            vec![vec!["ip".into(), "link".into(), "set".into(), "lo".into(), "up".into()]];
        for address in addresses {
            let prefix = if address.contains(':') { "128" } else { "32" };
            steps.push(vec![
                "ip".into(),
                "addr".into(),
                "add".into(),
                format!("{address}/{prefix}"),
                "dev".into(),
                "lo".into(),
            ]);
        }
        steps.push(vec![
            "mount".into(),
            "--bind".into(),
            hosts_path.display().to_string(),
            "/etc/hosts".into(),
        ]);
        for step in steps {
            let status = net
                .root_command(&step[0])
                .args(&step[1..])
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("{step:?}: {e}"))?;
            if !status.success() {
                return Err(format!("{step:?} in the test network failed: {status}"));
            }
        }
        Ok(net)
    }

    /// The holder's pid: `nsenter -t` takes it.
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// `program` inside the network, as root.
    pub fn root_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.pid().to_string())
            .args(["-n", "-m", "--"])
            .arg(program);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `program` inside the network, as `runner` (its clean environment, its user).
    pub fn command(&self, runner: &Runner, program: impl AsRef<OsStr>) -> Command {
        let inner = runner.command(program);
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t").arg(self.pid().to_string()).args(["-n", "-m", "--"]);
        cmd.arg(inner.get_program()).args(inner.get_args());
        cmd.env_clear();
        for (key, value) in inner.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        if let Some(dir) = inner.get_current_dir() {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn wait_for_namespace(&mut self) -> Result<(), String> {
        let ours = std::fs::read_link("/proc/self/ns/net").map_err(|e| format!("own netns: {e}"))?;
        let theirs = PathBuf::from(format!("/proc/{}/ns/net", self.pid()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.holder.try_wait() {
                return Err(format!("unshare ended at once: {status}"));
            }
            if std::fs::read_link(&theirs).is_ok_and(|ns| ns != ours) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err("the test network namespace did not appear within 5 s".to_owned())
    }
}

impl Drop for TestNet {
    /// Ends the holder (ours, by its pid): the namespaces go with their last process.
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Loopback or the documentation ranges (198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32):
/// the only addresses a test may use.
pub fn is_test_address(address: &str) -> bool {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            let [a, b, c, _] = ip.octets();
            ip.is_loopback() || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
        }
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8),
        Err(_) => false,
    }
}
