#!/usr/bin/env bash
# Benchmark `mcp-j run REF` start-up with a warm cache against `mcp-j run -- PROG` of the same
# server, interleaved in one run (ROUNDS, default 40; STRIP=0 for a 4.4 MB server binary).
#
#   bench/run_ref.sh
#
# The server is mcp-j-bench-server (a fast stdio MCP server), pushed as a package to
# `mcp-j registry serve` on 127.0.0.1 and pulled once; then each round starts both:
#   - `run -- PROG`: `mcp-j run --workdir private --ro DIR -- DIR/mcp-j-bench-server`;
#   - `run REF`: `mcp-j --registry URL run --workdir private bench/server@1.0.0`, which
#     resolves over HTTP (every run does, so a revocation takes effect), fetches nothing
#     (cached), re-hashes the bundle while unpacking it into a fresh run directory, and
#     serves it from /pkg.
# Reported: the median time to the answer of `initialize` and of the whole run, and the
# difference. Goal: run REF under 5 ms more than run -- PROG, the resolve included.
# No network beyond loopback; the registry is this script's child, killed by pid on exit.
set -euo pipefail

ROUNDS="${ROUNDS:-40}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "== building mcp-j and mcp-j-bench-server (release)" >&2
cargo build --release -q -p mcp-j-cli -p mcp-j-bench-server >&2
mcpj="$repo/target/release/mcp-j"

work="$(mktemp -d "$repo/target/bench-run-ref.XXXXXX")"
registry_pid=""
cleanup() {
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf -- "$work"
}
trap cleanup EXIT

mkdir -p "$work/pkg"
chmod 755 "$work" "$work/pkg"
cp "$repo/target/release/mcp-j-bench-server" "$work/pkg/"
# STRIP=0 keeps the debug line tables (a 4.4 MB file instead of 0.35 MB): what a larger
# package costs, since every run unpacks its bundle afresh.
if [[ "${STRIP:-1}" != 0 ]]; then strip "$work/pkg/mcp-j-bench-server"; fi
cat > "$work/pkg/manifest.json" <<'JSON'
{"schema_version":"1.0","package":{"id":"bench/server","version":"1.0.0"},"transport":{"type":"stdio"},
 "entrypoints":[{"os":"linux","arch":"amd64","command":"mcp-j-bench-server","args":[]},
                {"os":"linux","arch":"arm64","command":"mcp-j-bench-server","args":[]}]}
JSON

# shellcheck source=bench/registry_lib.sh
source "$repo/bench/registry_lib.sh"
start_registry
push_package "$work/pkg"
"$mcpj" --registry "$url" --cache-dir "$work/cache" pull bench/server@1.0.0 2>/dev/null

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), bundle $(stat -c %s "$work/pkg/mcp-j-bench-server") bytes unpacked, $ROUNDS interleaved rounds"

python3 "$repo/bench/run_ref.py" "$ROUNDS" \
  run-PROG -- "$mcpj" run --workdir private --ro "$work/pkg" -- "$work/pkg/mcp-j-bench-server" \
  --- run-REF -- "$mcpj" --registry "$url" --cache-dir "$work/cache" run --workdir private bench/server@1.0.0
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
