//! Drives a stdio MCP server with the official Rust SDK (rmcp) and prints a JSON summary:
//! the same job, options and summary as `tests-deps/clients/_driver.py`.
//!
//! ```text
//! rmcp-client [--mode initialize|auto|discover] [--call TOOL [--arguments JSON] [--expect-error]]
//!             [--timeout SECS] -- COMMAND [ARGS...]
//! ```
//!
//! `--mode` is rmcp's `ClientLifecycleMode`: `initialize` (the handshake era, the default of
//! `ServiceExt::serve`), `auto` (probe `server/discover`, fall back to `initialize`),
//! `discover` (2026-07-28 only). Exit status: 0 when the session went as asked, 1 on any
//! error (`"ok": false` and `"error"` in the summary), 2 for bad usage, 124 past the time
//! bound. The server is spawned with kill-on-drop, closed gracefully at the end (stdin
//! closed, then SIGTERM, then SIGKILL), and killed when the time bound passes.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, ServiceError};
use rmcp::transport::TokioChildProcess;
use serde_json::{Map, Value, json};

/// How long after the time bound the watchdog thread stops waiting for a clean exit.
const WATCHDOG_GRACE: Duration = Duration::from_secs(10);

struct Args {
    mode: String,
    call: Option<String>,
    arguments: Map<String, Value>,
    expect_error: bool,
    timeout: Duration,
    command: Vec<String>,
}

fn usage(why: &str) -> ! {
    eprintln!("rmcp-client: {why}");
    eprintln!(
        "usage: rmcp-client [--mode initialize|auto|discover] [--call TOOL [--arguments JSON] [--expect-error]] [--timeout SECS] -- COMMAND [ARGS...]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        mode: "initialize".to_owned(),
        call: None,
        arguments: Map::new(),
        expect_error: false,
        timeout: Duration::from_secs(45),
        command: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let value = |it: &mut dyn Iterator<Item = String>, flag: &str| {
        it.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mode" => {
                args.mode = value(&mut it, "--mode");
                if !["initialize", "auto", "discover"].contains(&args.mode.as_str()) {
                    usage("--mode is initialize, auto or discover");
                }
            }
            "--call" => args.call = Some(value(&mut it, "--call")),
            "--arguments" => {
                let raw = value(&mut it, "--arguments");
                match serde_json::from_str(&raw) {
                    Ok(Value::Object(map)) => args.arguments = map,
                    _ => usage("--arguments must be a JSON object"),
                }
            }
            "--expect-error" => args.expect_error = true,
            "--timeout" => {
                let raw = value(&mut it, "--timeout");
                match raw.parse::<f64>() {
                    Ok(s) if s > 0.0 && s < 86_400.0 => args.timeout = Duration::from_secs_f64(s),
                    _ => usage("--timeout is a number of seconds"),
                }
            }
            "--" => {
                args.command = it.collect();
                break;
            }
            other => usage(&format!("unknown option `{other}`")),
        }
    }
    if args.command.is_empty() {
        usage("the server command must follow `--`");
    }
    if args.expect_error && args.call.is_none() {
        usage("--expect-error needs --call");
    }
    args
}

fn lifecycle(mode: &str) -> ClientLifecycleMode {
    let modern = vec![ProtocolVersion::V_2026_07_28];
    match mode {
        "auto" => ClientLifecycleMode::Auto {
            preferred_versions: modern,
            legacy_version: None,
        },
        "discover" => ClientLifecycleMode::Discover {
            preferred_versions: modern,
        },
        _ => ClientLifecycleMode::Initialize,
    }
}

/// The session's outcome; the summary is filled in as it goes.
async fn session(args: &Args, summary: &mut Map<String, Value>) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]).kill_on_drop(true);
    let transport = TokioChildProcess::new(cmd).map_err(|e| format!("spawn {}: {e}", args.command[0]))?;
    let client = ().serve_with_lifecycle(transport, lifecycle(&args.mode)).await.map_err(|e| format!("connect: {e}"))?;

    let result = talk(args, &client, summary).await;
    // Close stdin, wait, SIGTERM, SIGKILL (rmcp's graceful shutdown), within bounds.
    let _ = tokio::time::timeout(Duration::from_secs(10), client.cancel()).await;
    result
}

async fn talk(
    args: &Args,
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    summary: &mut Map<String, Value>,
) -> Result<(), String> {
    if let Some(info) = client.peer().peer_info() {
        summary.insert("protocol_version".into(), json!(info.protocol_version.to_string()));
        summary.insert(
            "server_info".into(),
            info.server_info
                .as_ref()
                .map_or(Value::Null, |i| json!({"name": i.name, "version": i.version})),
        );
    }
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list: {}", describe(&e)))?;
    summary.insert(
        "tools".into(),
        Value::Array(tools.iter().map(|t| json!(t.name)).collect()),
    );

    let Some(name) = &args.call else { return Ok(()) };
    let params = CallToolRequestParams::new(name.clone()).with_arguments(args.arguments.clone());
    match client.call_tool(params).await {
        Err(ServiceError::McpError(e)) => {
            let outcome = json!({"name": name, "error": {"code": e.code.0, "message": e.message}});
            summary.insert("call".into(), outcome);
            if args.expect_error {
                Ok(())
            } else {
                Err(format!("tools/call {name}: JSON-RPC error {}: {}", e.code.0, e.message))
            }
        }
        Err(e) => Err(format!("tools/call {name}: {}", describe(&e))),
        Ok(result) => {
            let raw = serde_json::to_value(&result).map_err(|e| format!("tools/call {name}: {e}"))?;
            let text: Vec<&str> = raw["content"]
                .as_array()
                .map(|c| c.iter().filter_map(|b| b["text"].as_str()).collect())
                .unwrap_or_default();
            let is_error = raw["isError"].as_bool().unwrap_or(false);
            summary.insert(
                "call".into(),
                json!({
                    "name": name,
                    "is_error": is_error,
                    "text": text.join("\n"),
                    "structured": raw.get("structuredContent").cloned().unwrap_or(Value::Null),
                }),
            );
            if args.expect_error {
                Err(format!("tools/call {name}: expected a JSON-RPC error, got a result"))
            } else if is_error {
                Err(format!(
                    "tools/call {name}: the tool reported an error: {}",
                    text.join("\n")
                ))
            } else {
                Ok(())
            }
        }
    }
}

fn describe(e: &ServiceError) -> String {
    match e {
        ServiceError::McpError(e) => format!("JSON-RPC error {}: {}", e.code.0, e.message),
        other => other.to_string(),
    }
}

fn emit(summary: &Map<String, Value>) {
    println!("{}", Value::Object(summary.clone()));
}

fn main() -> ExitCode {
    let args = parse_args();
    let bound = args.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(bound + WATCHDOG_GRACE);
        // The event loop is stuck: exiting closes the server's stdin, which ends it.
        println!(
            "{}",
            json!({"ok": false, "driver": "rmcp", "error": format!("hard timeout: still running {}s after start", (bound + WATCHDOG_GRACE).as_secs())})
        );
        std::process::exit(124);
    });

    let mut summary = Map::new();
    summary.insert("ok".into(), json!(false));
    summary.insert("driver".into(), json!("rmcp"));
    summary.insert("mode".into(), json!(args.mode));
    summary.insert("command".into(), json!(args.command));
    let started = Instant::now();

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmcp-client: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async { tokio::time::timeout(bound, session(&args, &mut summary)).await });
    // Dropping the runtime drops any transport still alive: kill_on_drop SIGKILLs the server.
    drop(runtime);

    let code = match outcome {
        Ok(Ok(())) => {
            summary.insert("ok".into(), json!(true));
            0
        }
        Ok(Err(e)) => {
            summary.insert("error".into(), json!(e));
            1
        }
        Err(_) => {
            summary.insert(
                "error".into(),
                json!(format!("timeout: the session took more than {}s", bound.as_secs_f64())),
            );
            124
        }
    };
    summary.insert("elapsed_ms".into(), json!(started.elapsed().as_millis() as u64));
    emit(&summary);
    ExitCode::from(code)
}
