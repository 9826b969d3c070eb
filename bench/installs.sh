#!/usr/bin/env bash
# Benchmark npm/PyPI servers under mcp-j: cold install inside the sandbox against the same
# install outside it, and warm start against running the installed server directly, in one
# run.
#
#   bench/installs.sh
#
# Cold (INSTALL_ROUNDS, default 3, interleaved; each into fresh directories and caches, so
# every byte comes from the registry mirror again):
#   - npm: `npm install --ignore-scripts --omit=dev --prefix DIR PKG@VER` on the host, against
#     `mcp-j pull npm:PKG@VER` (npm in the installer's jail, through the egress proxy, then
#     the lock check, the tree digest and the seal);
#   - PyPI: `python3 -m venv DIR && DIR/bin/pip install --only-binary :all: PKG==VER` on the
#     host, against `mcp-j pull pypi:PKG==VER`.
# Warm (ROUNDS, default 20, interleaved): the time to the answer of `initialize` for
# server-everything started as `node …/index.js stdio` (bare), as `mcp-j run --ro TREE -- node
# …` (the sandbox alone), as `mcp-j run npm:…` (the tree digest checked first), and as
# `npx -y PKG@VER stdio` (today's way, with npx's cache warm).
# Goals: cold install <= 1.5x the unsandboxed install; warm start <= 1.2x the installed server
# run directly. The registries are the machine's npm/PyPI (a mirror here).
set -euo pipefail

INSTALL_ROUNDS="${INSTALL_ROUNDS:-3}"
ROUNDS="${ROUNDS:-20}"
NPM_PKG="@modelcontextprotocol/server-everything"
NPM_VER="2026.8.31"
PY_PKG="mcp-server-time"
PY_VER="2026.10.19"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "== building mcp-j (release)" >&2
cargo build --release -q -p mcp-j-cli >&2
mcpj="$repo/target/release/mcp-j"
work="$(mktemp -d "$repo/target/bench-installs.XXXXXX")"
cleanup() { chmod -R u+w -- "$work" 2>/dev/null || true; rm -rf -- "$work"; }
trap cleanup EXIT

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown); npm $(npm --version), $(/usr/bin/python3 --version)"

now() { date +%s.%N; }
: > "$work/cold"
for round in $(seq "$INSTALL_ROUNDS"); do
  r="$work/r$round"; mkdir -p "$r"
  start="$(now)"
  npm_config_cache="$r/npm-cache" npm install --silent --ignore-scripts --omit=dev --no-audit --no-fund \
    --prefix "$r/npm" "$NPM_PKG@$NPM_VER" > /dev/null 2>&1
  echo "npm-host $(now) $start" >> "$work/cold"
  start="$(now)"
  "$mcpj" --cache-dir "$r/mcpj-npm" pull "npm:$NPM_PKG@$NPM_VER" 2> /dev/null
  echo "npm-mcp-j $(now) $start" >> "$work/cold"
  start="$(now)"
  /usr/bin/python3 -m venv "$r/venv" && "$r/venv/bin/pip" install -q --no-cache-dir --only-binary :all: \
    "$PY_PKG==$PY_VER" > /dev/null 2>&1
  echo "pypi-host $(now) $start" >> "$work/cold"
  start="$(now)"
  "$mcpj" --cache-dir "$r/mcpj-py" pull "pypi:$PY_PKG==$PY_VER" 2> /dev/null
  echo "pypi-mcp-j $(now) $start" >> "$work/cold"
done
python3 - "$work/cold" <<'PY'
import statistics, sys
times = {}
for what, end, start in (l.split() for l in open(sys.argv[1])):
    times.setdefault(what, []).append(float(end) - float(start))
for what, v in times.items():
    print(f"  cold {what:<11} median {statistics.median(v):6.2f} s   min {min(v):6.2f}   max {max(v):6.2f}")
for eco in ("npm", "pypi"):
    r = statistics.median(times[f"{eco}-mcp-j"]) / statistics.median(times[f"{eco}-host"])
    print(f"  cold {eco}: mcp-j / host install {r:.2f}x   goal <= 1.5x: {'met' if r <= 1.5 else 'NOT met'}")
PY

# Warm: one installed tree, four ways to start it.
cache="$work/r1/mcpj-npm"
record="$(find "$cache/v1/installs" -mindepth 2 -maxdepth 2 -name install.json | head -1)"
tree="$(dirname "$record")/tree"
entry="$tree/node_modules/$NPM_PKG/dist/index.js"
npx -y "$NPM_PKG@$NPM_VER" --help > /dev/null 2>&1 < /dev/null || true   # warm npx's own cache
GOAL="ratio:1.2" python3 "$repo/bench/run_ref.py" "$ROUNDS" \
  node-bare -- /usr/bin/node "$entry" stdio \
  --- mcp-j-run-PROG -- "$mcpj" run --workdir private --ro "$tree" -- /usr/bin/node "$entry" stdio \
  --- mcp-j-run-npm -- "$mcpj" --cache-dir "$cache" run --workdir private "npm:$NPM_PKG@$NPM_VER" -- stdio \
  --- npx -- npx -y "$NPM_PKG@$NPM_VER" stdio
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
