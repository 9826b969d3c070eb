//! The end-to-end tests of `mcp-j`, one test binary: the harness in `common` compiles
//! once, and `cargo test -p mcp-j-cli --test it escape::` (or `run::`, `exec::`, …) runs
//! one area.
//!
//! - `common`: the harness (runners, bounded processes, the attack binary, sessions).
//! - `escape`: a hostile program tries to get out of `mcp-j exec` (one module per area).
//! - `exec`, `run`, `audit`, `config`, `doctor`, `client_setup`: each subcommand through the
//!   real binary.
//! - `pins`: `mcp-j pins` and tool pinning under `run` (a server whose tools a JSON file gives).
//! - `egress`: `--allow-net` in a network the test makes for itself.
//! - `packages`, `package_run`, `login`: registry packages against `registry serve` on
//!   loopback (`package_run`: `run ORG/NAME@VERSION` driven by the Python SDK client).
//! - `installs`: `run npm:…`/`pypi:…` installed inside the sandbox from the real registries.
//! - `real_servers`: real MCP servers and clients from `.deps/` under `mcp-j run`.
//! - `testnet`: the network namespace the egress tests make (`common::testnet`).

mod common;

mod audit;
mod client_setup;
mod config;
mod doctor;
mod egress;
mod escape;
mod exec;
mod installs;
mod login;
mod package_run;
mod packages;
mod pinning;
mod pins;
mod real_servers;
mod run;
mod testnet;
