//! `mcp-j registry serve | token create | user add` (the self-hostable registry,
//! `mcp-j-registry`) and `mcp-j push DIR` (the client side of publishing).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

use mcp_j_package::bundle::{MANIFEST_FILE, build_bundle};
use mcp_j_package::digest::digest_bytes;
use mcp_j_package::registry::Artifact;
use mcp_j_package::unpack::UnpackLimits;
use mcp_j_policy::package::PackageManifest;
use mcp_j_registry::{Scope, ServeOptions, Visibility};

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the registry API (REGISTRY_API.md) from a store in DIR; prints its URL on stdout
    Serve {
        /// Address to listen on (port 0: any free port)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5080")]
        listen: String,
        /// The store (created if needed)
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Visibility of a new package
        #[arg(long = "default-visibility", value_name = "public|private", default_value = "public")]
        default_visibility: String,
    },
    /// Mint a token; printed alone on stdout (`--json`: `{"token","scope","org"}`), stored
    /// only as a hash
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Users who log in with a password
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token with a scope (read < push < admin), optionally for one org
    Create {
        /// The store
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// read, push or admin
        #[arg(long, default_value = "read")]
        scope: String,
        /// Only this org
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (their logins get the push scope); the password is read from stdin
    Add {
        /// The store
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// The user name
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The package directory: DIR/manifest.json names the package and its version
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn registry(command: &RegistryCommand, json: bool) -> Result<ExitCode> {
    match command {
        RegistryCommand::Serve {
            listen,
            root,
            default_visibility,
        } => {
            let default_visibility: Visibility = default_visibility.parse().map_err(|e: String| anyhow!(e))?;
            let listener = std::net::TcpListener::bind(listen)
                .with_context(|| format!("cannot listen on {listen} (pass another `--listen ADDR`)"))?;
            let addr = listener.local_addr()?;
            crate::output::write_stdout(&format!("http://{addr}\n"))?;
            eprintln!("mcp-j: registry on http://{addr}, store {}", root.display());
            let options = ServeOptions {
                default_visibility,
                ..ServeOptions::default()
            };
            mcp_j_registry::serve(listener, root, options)?;
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::Token {
            command: TokenCommand::Create { root, scope, org },
        } => {
            let scope: Scope = scope.parse().map_err(|e: String| anyhow!(e))?;
            let token = mcp_j_registry::create_token(root, scope, org.as_deref())?;
            let text = if json {
                format!(
                    "{}\n",
                    serde_json::json!({"token": token, "scope": scope.as_str(), "org": org})
                )
            } else {
                format!("{token}\n")
            };
            crate::output::write_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        RegistryCommand::User {
            command: UserCommand::Add { root, name },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            mcp_j_registry::add_user(root, name, password)?;
            eprintln!("mcp-j: user `{name}` added to {}", root.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `mcp-j push DIR`: build the bundle of DIR (deterministic, `manifest.json` left out),
/// fill the manifest's `bundle` object in, check the manifest, upload bundle and manifest by
/// digest, then create the version.
pub fn push(args: &PushArgs, config: &Config) -> Result<ExitCode> {
    let dir = &args.dir;
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {} (a package directory holds its manifest.json)",
            manifest_path.display()
        )
    })?;
    let mut manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    let bundle = build_bundle(dir, &UnpackLimits::default())
        .with_context(|| format!("cannot build the bundle of {}", dir.display()))?;
    manifest["bundle"] = serde_json::json!({"digest": bundle.summary.digest(), "size_bytes": bundle.summary.size});
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    let checked = PackageManifest::from_json(&String::from_utf8_lossy(&manifest_bytes))
        .map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    let (org, name) = checked
        .package
        .id
        .split_once('/')
        .ok_or_else(|| anyhow!("{}: package.id must be ORG/NAME", manifest_path.display()))?;
    let (url, registry) = super::package::registry_client(config)?;
    let bundle_digest = bundle.summary.digest().parse().map_err(|e: String| anyhow!(e))?;
    registry
        .put_artifact(org, Artifact::Bundle, &bundle_digest, &bundle.bytes)
        .map_err(super::package::registry_context)?;
    let manifest_digest = digest_bytes(&manifest_bytes);
    registry
        .put_artifact(org, Artifact::Manifest, &manifest_digest, &manifest_bytes)
        .map_err(super::package::registry_context)?;
    registry
        .create_version(
            org,
            name,
            &checked.package.version,
            &manifest_digest,
            checked.package.git_sha.as_deref(),
        )
        .map_err(super::package::registry_context)?;
    eprintln!(
        "mcp-j: pushed {}@{} to {url}: manifest {}, bundle {} ({} bytes, {} files)",
        checked.package.id,
        checked.package.version,
        manifest_digest.as_str(),
        bundle_digest.as_str(),
        bundle.summary.size,
        bundle.summary.files
    );
    Ok(ExitCode::SUCCESS)
}
