//! Name resolution for egress: mcp-j resolves every allowed name itself, outside the jail,
//! and connects only to an address it checked (no second lookup, so no rebinding window).
//!
//! [`Resolver`] is the seam: [`SystemResolver`] asks the host's resolver (getaddrinfo,
//! through tokio's blocking pool), [`FakeResolver`] answers from a table for tests,
//! including a name that answers differently on its second lookup (the rebinding test).
//! Every lookup the proxy makes goes through [`resolve_with_timeout`], so a resolver that
//! hangs costs one connection its resolve timeout, never the supervisor.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

/// What a lookup returns: the name's addresses, in the resolver's order.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Resolves a DNS name (already validated and lowercased by the policy's host parser) to
/// its addresses. Object-safe so the proxy can hold any resolver behind an `Arc`.
pub trait Resolver: Send + Sync {
    /// The addresses of `name`; an error when it has none or the lookup failed.
    fn lookup<'a>(&'a self, name: &'a str) -> ResolveFuture<'a>;
}

/// The host's own resolver (`getaddrinfo` via `tokio::net::lookup_host`, which runs it on
/// tokio's blocking pool: bounded by the runtime's `max_blocking_threads`, and each lookup
/// belongs to a connection the proxy's connection limit already counts).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        Box::pin(async move {
            let mut addrs: Vec<IpAddr> = Vec::new();
            for sa in tokio::net::lookup_host((name, 0u16)).await? {
                // getaddrinfo lists an address once per socket type; keep the first.
                if !addrs.contains(&sa.ip()) {
                    addrs.push(sa.ip());
                }
            }
            Ok(addrs)
        })
    }
}

/// Why a lookup gave no address to check.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The resolver did not answer in time.
    #[error("resolving {name} timed out after {}s", timeout.as_secs_f64())]
    Timeout {
        /// The name.
        name: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The resolver answered with an error (no such name, no network).
    #[error("resolving {name} failed: {source}")]
    Failed {
        /// The name.
        name: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
}

/// Look `name` up with `resolver`, giving up after `timeout`.
///
/// When a system lookup times out, the `getaddrinfo` call itself finishes on its own in the
/// blocking pool; the connection that asked has already been answered.
pub async fn resolve_with_timeout(
    resolver: &dyn Resolver,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, ResolveError> {
    match tokio::time::timeout(timeout, resolver.lookup(name)).await {
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(source)) => Err(ResolveError::Failed {
            name: name.to_string(),
            source,
        }),
        Err(_) => Err(ResolveError::Timeout {
            name: name.to_string(),
            timeout,
        }),
    }
}

/// A resolver that answers from a table, for tests. A name may have a sequence of answers:
/// the n-th lookup gets the n-th answer, the last one repeating (a name that resolves to
/// an allowed address first and to loopback after is the rebinding test). Unknown names
/// fail with `NotFound`. Counts the lookups of each name.
#[derive(Debug, Default)]
pub struct FakeResolver {
    answers: HashMap<String, Vec<Vec<IpAddr>>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl FakeResolver {
    /// A resolver that knows no name.
    pub fn new() -> Self {
        FakeResolver::default()
    }

    /// `name` always resolves to `addrs`.
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.answers.insert(name.to_string(), vec![addrs.to_vec()]);
        self
    }

    /// The first lookup of `name` gets `answers[0]`, the second `answers[1]`, and so on;
    /// the last answer repeats.
    pub fn with_sequence(mut self, name: &str, answers: &[&[IpAddr]]) -> Self {
        self.answers
            .insert(name.to_string(), answers.iter().map(|a| a.to_vec()).collect());
        self
    }

    /// How many times `name` was looked up.
    pub fn calls(&self, name: &str) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.get(name).copied().unwrap_or(0)
    }

    fn answer(&self, name: &str) -> io::Result<Vec<IpAddr>> {
        let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let n = calls.entry(name.to_string()).or_insert(0);
        let index = *n;
        *n += 1;
        let seq = self
            .answers
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name (fake resolver)"))?;
        Ok(seq.get(index).or_else(|| seq.last()).cloned().unwrap_or_default())
    }
}

impl Resolver for FakeResolver {
    fn lookup<'a>(&'a self, name: &'a str) -> ResolveFuture<'a> {
        let answer = self.answer(name);
        Box::pin(async move { answer })
    }
}

/// A resolver that never answers, for testing the resolve timeout.
#[derive(Debug, Clone, Copy, Default)]
pub struct HangingResolver;

impl Resolver for HangingResolver {
    fn lookup<'a>(&'a self, _name: &'a str) -> ResolveFuture<'a> {
        Box::pin(std::future::pending())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test]
    async fn fake_answers_in_sequence_and_counts() {
        let r = FakeResolver::new()
            .with("a.test", &[ip("192.0.2.1")])
            .with_sequence("b.test", &[&[ip("192.0.2.2")], &[ip("127.0.0.1")]]);
        let t = Duration::from_secs(1);
        assert_eq!(
            resolve_with_timeout(&r, "a.test", t).await.expect("a"),
            vec![ip("192.0.2.1")]
        );
        assert_eq!(
            resolve_with_timeout(&r, "b.test", t).await.expect("b1"),
            vec![ip("192.0.2.2")]
        );
        assert_eq!(
            resolve_with_timeout(&r, "b.test", t).await.expect("b2"),
            vec![ip("127.0.0.1")]
        );
        assert_eq!(
            resolve_with_timeout(&r, "b.test", t).await.expect("b3"),
            vec![ip("127.0.0.1")]
        );
        assert_eq!(r.calls("b.test"), 3);
        assert_eq!(r.calls("a.test"), 1);
        let err = resolve_with_timeout(&r, "c.test", t).await.expect_err("unknown");
        assert!(matches!(err, ResolveError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("c.test"), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_resolver_times_out() {
        let err = resolve_with_timeout(&HangingResolver, "slow.test", Duration::from_millis(50))
            .await
            .expect_err("timeout");
        assert!(matches!(err, ResolveError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("slow.test"), "{err}");
    }

    #[tokio::test]
    async fn system_resolver_resolves_localhost_without_duplicates() {
        // `localhost` comes from /etc/hosts on every system this runs on; no packet leaves.
        let addrs = tokio::time::timeout(Duration::from_secs(10), SystemResolver.lookup("localhost"))
            .await
            .expect("in time")
            .expect("localhost resolves");
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.is_loopback()), "{addrs:?}");
        let mut dedup = addrs.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), addrs.len());
    }
}
