//! `mcp-j config show`: the effective configuration (file, `MCP_J_*` variables, flags), each
//! value with its source; secrets masked. The layering itself is `config.rs`.

use anyhow::Result;

use crate::config::Loaded;

/// `mcp-j config show [--json]`: the effective configuration, each value with its source.
pub fn show(loaded: &Loaded, json: bool) -> Result<()> {
    let rows = loaded.rows();
    let (file_value, file_status) = loaded.file_status();
    if json {
        let mut object: serde_json::Map<String, serde_json::Value> = rows
            .into_iter()
            .map(|r| (r.key, serde_json::json!({ "value": r.value, "source": r.source })))
            .collect();
        object.insert(
            "config_file".to_string(),
            serde_json::json!({ "value": file_value, "source": file_status }),
        );
        crate::output::write_stdout(&format!("{}\n", serde_json::to_string_pretty(&object)?))?;
    } else {
        use std::fmt::Write as _;
        let mut out = String::new();
        match &file_value {
            Some(path) => writeln!(out, "config file: {path} ({file_status})")?,
            None => writeln!(out, "config file: none ({file_status})")?,
        }
        writeln!(out)?;
        writeln!(out, "{:<30} {:<24} SOURCE", "KEY", "VALUE")?;
        for row in rows {
            writeln!(out, "{row}")?;
        }
        crate::output::write_stdout(&out)?;
    }
    Ok(())
}
