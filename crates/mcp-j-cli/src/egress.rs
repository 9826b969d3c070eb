//! `--allow-net`: the user's allowlist (flags and the `--manifest` they passed), what the
//! jail gets for it (the engine's [`EgressSpec`]: which listeners init binds, which
//! networks become local), the environment that points programs at the proxy, and
//! [`serve`]: the listeners init handed out, served by `mcp-j-egress` on a thread of their
//! own, each connection told to the audit log and each refusal once to stderr.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_j_egress::event::{ConnectEvent, Outcome};
use mcp_j_engine::network::EgressSocket;
use mcp_j_engine::spec::EgressSpec;
use mcp_j_policy::egress::{Allowlist, Target};

/// Ports the proxy may listen on inside the jail, in order of preference: the first one
/// no rule allows (an allowlisted port has a listener of its own).
pub const PROXY_PORTS: [u16; 4] = [3128, 8118, 18080, 28080];

/// The allowlist from `--allow-net` and the `--manifest`'s `allow_net`, the user's own rules
/// (they may unlock a special range such as loopback), and a package's granted `network`
/// rules (which never do).
pub fn allowlist(flags: &[String], manifest: &[String], package: &[String]) -> Result<Allowlist, String> {
    Allowlist::parse(flags.iter().chain(manifest), package)
}

/// What init sets up for `list` (which must not be empty): the proxy's port, a listener
/// per allowed port, and every allowlisted address or network made local to the jail.
pub fn egress_spec(list: &Allowlist) -> Result<EgressSpec, String> {
    let ports = list.ports();
    let proxy_port = PROXY_PORTS
        .into_iter()
        .find(|p| !ports.contains(p))
        .ok_or_else(|| "every port the egress proxy could use is on the allowlist".to_owned())?;
    let mut local_networks = Vec::new();
    for rule in list.rules() {
        let network = match &rule.target {
            Target::Addr(ip) => (*ip, if ip.is_ipv4() { 32 } else { 128 }),
            Target::Net(net) => (net.network(), net.prefix_len()),
            Target::Name(_) | Target::Subdomains(_) => continue,
        };
        if !local_networks.contains(&network) {
            local_networks.push(network);
        }
    }
    Ok(EgressSpec {
        proxy_port,
        ports: ports.into_iter().collect(),
        local_networks,
        channel_fd: None,
    })
}

/// The environment that sends programs through the proxy on `port` (INTERFACE, *Network
/// egress*), including the tool-specific names npm and pip read.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{port}");
    let socks = format!("socks5h://127.0.0.1:{port}");
    let no_proxy = "localhost,127.0.0.1,::1".to_owned();
    let mut env = Vec::new();
    for (name, value) in [
        ("HTTP_PROXY", &http),
        ("HTTPS_PROXY", &http),
        ("ALL_PROXY", &socks),
        ("NO_PROXY", &no_proxy),
    ] {
        env.push((name.to_owned(), value.clone()));
        env.push((name.to_lowercase(), value.clone()));
    }
    env.push(("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned()));
    // Tools with names of their own: npm, yarn (v1 and berry), pip, and Node programs that
    // bootstrap `global-agent`.
    for name in [
        "npm_config_proxy",
        "npm_config_https_proxy",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "PIP_PROXY",
        "GLOBAL_AGENT_HTTP_PROXY",
        "GLOBAL_AGENT_HTTPS_PROXY",
    ] {
        env.push((name.to_owned(), http.clone()));
    }
    env.push(("GLOBAL_AGENT_NO_PROXY".to_owned(), no_proxy));
    env
}

/// How many refused connections are named on stderr; the audit log has them all.
const MAX_NAMED_REFUSALS: usize = 20;

/// The egress layer of one jail, served until the value is dropped (or mcp-j exits).
pub struct Service {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// After [`mcp_j_engine::Jail::wait_ready`]: serve the jail's egress sockets, if it has
/// an allowlist, recording each connection as `net.connect`. Keep the value until the
/// jail has ended.
pub fn serve_jail(
    jail: &mut mcp_j_engine::Jail,
    resolved: &crate::sandbox_opts::Resolved,
    session: &crate::audit::Session,
) -> anyhow::Result<Option<Service>> {
    let sockets = jail.take_egress_sockets().map_err(crate::commands::setup_context)?;
    if sockets.is_empty() {
        return Ok(None);
    }
    let log = Arc::clone(&session.log);
    let service = serve(sockets, resolved.allowlist.clone(), move |event| {
        let _ = log.net_connect(crate::audit_glue::net_connect(event));
    })
    .map_err(|e| anyhow::anyhow!("cannot start the egress proxy: {e}"))?;
    Ok(Some(service))
}

/// Serve the sockets init bound in the jail (proxy, DNS stub, direct listeners) on a
/// thread with a current-thread runtime: the supervisor's own thread stays free (`exec`
/// has no runtime; `run`'s runs the MCP proxy). `on_event` gets each connection.
pub fn serve(
    sockets: Vec<(EgressSocket, OwnedFd)>,
    allowlist: Allowlist,
    on_event: impl Fn(&ConnectEvent) + Send + Sync + 'static,
) -> std::io::Result<Service> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refusals = AtomicUsize::new(0);
    let sink: mcp_j_egress::event::EventSink = Arc::new(move |event: ConnectEvent| {
        if let Outcome::Refused { reason } | Outcome::Failed { reason } = &event.outcome {
            let seen = refusals.fetch_add(1, Ordering::Relaxed) + 1;
            if seen <= MAX_NAMED_REFUSALS {
                eprintln!("mcp-j: network: {reason}");
            } else if seen == MAX_NAMED_REFUSALS + 1 {
                eprintln!("mcp-j: network: more connections were refused; the audit log (--audit-log) lists them");
            }
        }
        on_event(&event);
    });
    let thread = std::thread::Builder::new().name("egress".into()).spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            eprintln!("mcp-j: cannot start the egress runtime; the jail's network reaches nothing");
            return;
        };
        runtime.block_on(async move {
            let allow = Arc::new(allowlist.clone());
            let names =
                mcp_j_egress::names::SyntheticNames::avoiding(mcp_j_egress::names::DEFAULT_CAPACITY, &allowlist);
            let egress = mcp_j_egress::proxy::Egress::new(
                allowlist,
                Arc::new(mcp_j_egress::resolve::SystemResolver),
                Arc::new(names.clone()),
                mcp_j_egress::proxy::Limits::default(),
                sink,
            );
            let mut tasks = tokio::task::JoinSet::new();
            for (kind, fd) in sockets {
                match kind {
                    EgressSocket::Proxy | EgressSocket::Direct { .. } => {
                        let listener = match mcp_j_egress::proxy::into_tokio(std::net::TcpListener::from(fd)) {
                            Ok(l) => l,
                            Err(e) => {
                                eprintln!("mcp-j: cannot serve an egress listener: {e}");
                                continue;
                            }
                        };
                        let egress = egress.clone();
                        if kind == EgressSocket::Proxy {
                            tasks.spawn(async move { egress.serve_proxy(listener).await });
                        } else {
                            tasks.spawn(async move { egress.serve_direct(listener).await });
                        }
                    }
                    EgressSocket::Dns => {
                        let socket = std::net::UdpSocket::from(fd);
                        let socket = match socket
                            .set_nonblocking(true)
                            .and_then(|()| tokio::net::UdpSocket::from_std(socket))
                        {
                            Ok(s) => s,
                            Err(e) => {
                                eprintln!("mcp-j: cannot serve the DNS stub: {e}");
                                continue;
                            }
                        };
                        let (allow, names) = (Arc::clone(&allow), names.clone());
                        tasks.spawn(async move {
                            if let Err(e) = mcp_j_egress::dns::serve_dns(socket, allow, names, |_| {}).await {
                                eprintln!("mcp-j: the DNS stub stopped: {e}");
                            }
                        });
                    }
                }
            }
            // Until the jail is gone; dropping the tasks closes every connection.
            let _ = stopped.await;
            tasks.abort_all();
        });
    })?;
    Ok(Service {
        stop: Some(stop),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> Allowlist {
        let rules: Vec<String> = rules.iter().map(|r| (*r).to_owned()).collect();
        allowlist(&rules, &[], &[]).unwrap()
    }

    #[test]
    fn listeners_are_the_allowed_ports_and_the_proxy_avoids_them() {
        let spec = egress_spec(&list(&["api.example.com", "203.0.113.9:8080"])).unwrap();
        assert_eq!(spec.ports, [80, 443, 8080]);
        assert_eq!(spec.proxy_port, 3128);
        let spec = egress_spec(&list(&["a.example:3128", "b.example:8118"])).unwrap();
        assert_eq!(spec.proxy_port, 18080);
        let all: Vec<String> = PROXY_PORTS.iter().map(|p| format!("x.example:{p}")).collect();
        assert!(egress_spec(&allowlist(&all, &[], &[]).unwrap()).is_err());
    }

    #[test]
    fn addresses_and_networks_become_local_names_do_not() {
        let spec = egress_spec(&list(&[
            "api.example.com",
            "*.example.org",
            "203.0.113.9:8080",
            "203.0.113.9:8081",
            "198.51.100.0/24",
            "[2001:db8::1]:443",
            "127.0.0.1:9000",
        ]))
        .unwrap();
        let nets: Vec<String> = spec
            .local_networks
            .iter()
            .map(|(ip, prefix)| format!("{ip}/{prefix}"))
            .collect();
        assert_eq!(
            nets,
            ["203.0.113.9/32", "198.51.100.0/24", "2001:db8::1/128", "127.0.0.1/32"]
        );
    }

    #[test]
    fn bad_rules_name_themselves() {
        let err = allowlist(&["*".to_owned()], &[], &[]).unwrap_err();
        assert!(err.contains("invalid network rule `*`"), "{err}");
        let err = allowlist(&[], &["example.com:0".to_owned()], &[]).unwrap_err();
        assert!(err.contains("example.com:0"), "{err}");
    }

    #[test]
    fn the_environment_points_every_tool_at_the_proxy() {
        let env = proxy_env(3128);
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        for name in [
            "HTTP_PROXY",
            "https_proxy",
            "npm_config_https_proxy",
            "YARN_HTTPS_PROXY",
            "PIP_PROXY",
            "GLOBAL_AGENT_HTTP_PROXY",
        ] {
            assert_eq!(get(name), Some("http://127.0.0.1:3128"), "{name}");
        }
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:3128"));
        assert_eq!(get("no_proxy"), Some("localhost,127.0.0.1,::1"));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
    }
}
