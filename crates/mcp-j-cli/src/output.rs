//! Data on stdout. A reader that stops early (`mcp-j doctor | head -3`) is not an error:
//! what it did not read is simply not wanted, so a broken pipe ends the output quietly
//! instead of panicking as `println!` does.

use std::io::Write;

/// Write `text` to stdout and flush it; a closed pipe on the other end counts as done.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
