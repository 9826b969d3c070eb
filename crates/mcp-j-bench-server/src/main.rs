//! A minimal, fast stdio MCP server for `bench/proxy.sh`, so that the benchmark measures the
//! proxy and not the server.
//!
//! It reads its stdin in large chunks, answers every complete line in the chunk, and writes
//! all the answers with one `write`. It does not parse JSON: it finds the top-level `"id"`
//! and `"method"` members by scanning bytes and copies the id's bytes into the reply. That
//! is enough for the benchmark's own client, which sends compact one-line messages whose
//! first `"id"` member is the request id; it is not a general MCP server.
//!
//! Answers:
//! - `ping` → `{"jsonrpc":"2.0","id":ID,"result":{}}`
//! - `initialize` → a minimal result (tools capability)
//! - `tools/list` → one tool, `fill`
//! - `tools/call` → a text content of `--result-bytes N` bytes of `x` (default 0), written
//!   straight to stdout (large results are not gathered in memory)
//! - any other request → error -32601; notifications and responses → nothing.
//!
//! Usage: `mcp-j-bench-server [--result-bytes N]`

use std::io::{self, Read, Write};
use std::process::ExitCode;

/// Read chunk; lines longer than this grow the buffer.
const CHUNK: usize = 256 * 1024;
/// Pending answers are written out once they reach this size.
const OUT_FLUSH: usize = 256 * 1024;

const INITIALIZE_RESULT: &[u8] = br#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"mcp-j-bench-server","version":"0.1.0"}}"#;
const TOOLS_LIST_RESULT: &[u8] = br#"{"tools":[{"name":"fill","description":"Returns a text of the configured size","inputSchema":{"type":"object"}}]}"#;

fn main() -> ExitCode {
    let mut result_bytes = 0usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--result-bytes", Some(n)) => result_bytes = n,
            _ => {
                let _ = writeln!(io::stderr(), "usage: mcp-j-bench-server [--result-bytes N]");
                return ExitCode::from(2);
            }
        }
    }
    match serve(&mut io::stdin().lock(), &mut io::stdout().lock(), result_bytes) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away: that is how a benchmark run ends.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "mcp-j-bench-server: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(input: &mut impl Read, output: &mut impl Write, result_bytes: usize) -> io::Result<()> {
    let filler = vec![b'x'; result_bytes];
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut out = Vec::with_capacity(OUT_FLUSH + 4096);
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        let mut start = 0;
        while let Some(nl) = buf[start..filled].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            answer(line, &mut out, output, &filler)?;
            if out.len() >= OUT_FLUSH {
                output.write_all(&out)?;
                out.clear();
            }
        }
        if !out.is_empty() {
            output.write_all(&out)?;
            out.clear();
        }
        output.flush()?;
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    Ok(())
}

/// Appends the answer to `line` (if any) to `out`; a large `tools/call` result is written
/// to `output` directly.
fn answer(line: &[u8], out: &mut Vec<u8>, output: &mut impl Write, filler: &[u8]) -> io::Result<()> {
    let (Some(id), Some(method)) = (member(line, b"\"id\""), member(line, b"\"method\"")) else {
        return Ok(()); // a notification, a response, or a blank line
    };
    let method = method
        .strip_prefix(b"\"")
        .and_then(|m| m.strip_suffix(b"\""))
        .unwrap_or(method);
    let head = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(id);
    };
    match method {
        b"ping" => {
            head(out);
            out.extend_from_slice(b",\"result\":{}}\n");
        }
        b"initialize" => {
            head(out);
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(INITIALIZE_RESULT);
            out.extend_from_slice(b"}\n");
        }
        b"tools/list" => {
            head(out);
            out.extend_from_slice(b",\"result\":");
            out.extend_from_slice(TOOLS_LIST_RESULT);
            out.extend_from_slice(b"}\n");
        }
        b"tools/call" => {
            head(out);
            out.extend_from_slice(b",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"");
            if filler.len() > OUT_FLUSH {
                output.write_all(out)?;
                out.clear();
                output.write_all(filler)?;
            } else {
                out.extend_from_slice(filler);
            }
            out.extend_from_slice(b"\"}]}}\n");
        }
        _ => {
            head(out);
            out.extend_from_slice(b",\"error\":{\"code\":-32601,\"message\":\"method not found\"}}\n");
        }
    }
    Ok(())
}

/// The raw value of the first member named `key` (with its quotes): a string value with
/// its quotes, or anything else up to the next `,` or `}`.
fn member<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = line.windows(key.len()).position(|w| w == key)?;
    let mut i = at + key.len();
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if line.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    let start = i;
    if line.get(i) == Some(&b'"') {
        i += 1;
        while let Some(&b) = line.get(i) {
            match b {
                b'\\' => i += 2,
                b'"' => return line.get(start..=i),
                _ => i += 1,
            }
        }
        return None;
    }
    while line
        .get(i)
        .is_some_and(|b| !matches!(b, b',' | b'}') && !b.is_ascii_whitespace())
    {
        i += 1;
    }
    (i > start).then(|| &line[start..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str, result_bytes: usize) -> String {
        let mut out = Vec::new();
        serve(&mut input.as_bytes(), &mut out, result_bytes).unwrap_or_else(|e| panic!("serve: {e}"));
        String::from_utf8(out).unwrap_or_else(|e| panic!("utf-8: {e}"))
    }

    #[test]
    fn answers_ping_with_the_id_bytes() {
        let got = run(
            "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"ping\"}\n{\"jsonrpc\":\"2.0\",\"id\": \"a,}\\\"b\" ,\"method\":\"ping\"}\n",
            0,
        );
        assert_eq!(
            got,
            "{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{}}\n{\"jsonrpc\":\"2.0\",\"id\":\"a,}\\\"b\",\"result\":{}}\n"
        );
    }

    #[test]
    fn notifications_get_nothing_and_tools_call_gets_the_filler() {
        let got = run(
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"fill\"}}\n",
            3,
        );
        assert_eq!(
            got,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"xxx\"}]}}\n"
        );
    }
}
