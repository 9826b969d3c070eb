#!/usr/bin/env bash
# The README's first command: build mcp-j and run an MCP server in the sandbox.
# Sends initialize, tools/list and a tools/call to examples/hello_mcp.py running under
# `mcp-j exec`, and prints the server's answers.
set -euo pipefail
cd "$(dirname "$0")/.."
# Cargo's own progress, on stderr: the first build takes a minute or two.
echo "--- building mcp-j (cargo build --release -p mcp-j-cli):" >&2
cargo build --release -p mcp-j-cli
mcp_j=target/release/mcp-j

"$mcp_j" doctor | sed -n '/mcp-j exec/,$p'
echo
echo "--- an MCP session with examples/hello_mcp.py inside the sandbox:"
printf '%s\n' \
  '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"demo","version":"0"}}}' \
  '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
  '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}' |
  "$mcp_j" exec --workdir examples --no-subprocess --timeout 30s -- /usr/bin/python3 ./hello_mcp.py
