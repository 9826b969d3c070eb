//! `--allow-net`: the user's allowlist (flags and the `--manifest` they passed), what the
//! jail gets for it (the engine's [`EgressSpec`]: which listeners init binds, which
//! networks become local), and the environment that points programs at the proxy.
//! Pure functions; serving the listeners is `mcp-j-egress`'s.

use mcp_j_engine::spec::EgressSpec;
use mcp_j_policy::egress::{Allowlist, Target};

/// Ports the proxy may listen on inside the jail, in order of preference: the first one
/// no rule allows (an allowlisted port has a listener of its own).
pub const PROXY_PORTS: [u16; 4] = [3128, 8118, 18080, 28080];

/// The allowlist from `--allow-net` and the manifest's `allow_net`. Both are the user's own
/// rules (they may unlock a special range such as loopback); a package's come later.
pub fn allowlist(flags: &[String], manifest: &[String]) -> Result<Allowlist, String> {
    Allowlist::parse(flags.iter().chain(manifest), std::iter::empty::<&str>())
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
    env.push(("npm_config_proxy".to_owned(), http.clone()));
    env.push(("npm_config_https_proxy".to_owned(), http.clone()));
    env.push(("PIP_PROXY".to_owned(), http));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> Allowlist {
        let rules: Vec<String> = rules.iter().map(|r| (*r).to_owned()).collect();
        allowlist(&rules, &[]).unwrap()
    }

    #[test]
    fn listeners_are_the_allowed_ports_and_the_proxy_avoids_them() {
        let spec = egress_spec(&list(&["api.example.com", "203.0.113.9:8080"])).unwrap();
        assert_eq!(spec.ports, [80, 443, 8080]);
        assert_eq!(spec.proxy_port, 3128);
        let spec = egress_spec(&list(&["a.example:3128", "b.example:8118"])).unwrap();
        assert_eq!(spec.proxy_port, 18080);
        let all: Vec<String> = PROXY_PORTS.iter().map(|p| format!("x.example:{p}")).collect();
        assert!(egress_spec(&allowlist(&all, &[]).unwrap()).is_err());
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
        let err = allowlist(&["*".to_owned()], &[]).unwrap_err();
        assert!(err.contains("invalid network rule `*`"), "{err}");
        let err = allowlist(&[], &["example.com:0".to_owned()]).unwrap_err();
        assert!(err.contains("example.com:0"), "{err}");
    }

    #[test]
    fn the_environment_points_every_tool_at_the_proxy() {
        let env = proxy_env(3128);
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        for name in ["HTTP_PROXY", "https_proxy", "npm_config_https_proxy", "PIP_PROXY"] {
            assert_eq!(get(name), Some("http://127.0.0.1:3128"), "{name}");
        }
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:3128"));
        assert_eq!(get("no_proxy"), Some("localhost,127.0.0.1,::1"));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
    }
}
