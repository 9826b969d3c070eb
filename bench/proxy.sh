#!/usr/bin/env bash
# Benchmark the `mcp-j run` proxy against `mcp-j exec` (same sandbox, no proxy), interleaved
# in one run, around the same fast Rust MCP server (crates/mcp-j-bench-server).
#
#   bench/proxy.sh [--as USER]
#
# Measures (see bench/README.md for how to read the output):
#   1. throughput: N pipelined pings (a writer thread and a reader), msg/s through run and
#      through exec, and the ratio run/exec (goal >= 0.8);
#   2. latency: one ping at a time, p50/p99 round trip, added = run - exec (goal < 50 µs
#      at p50);
#   3. memory: the mcp-j process's own peak RSS (VmHWM) after N=N_SMALL and N=N pings, and
#      while the server floods large results at a client that reads slowly (goal: a few
#      MiB, not growing with N);
#   4. pipelined large messages: N_LARGE tools/call with a LARGE_BYTES argument, each
#      answered with a LARGE_BYTES result, pipelined so that every pipe fills both ways;
#      msg/s through run and exec, and the ratio run/exec (a proxy whose directions wait on
#      each other stalls here, and the run fails at TIMEOUT).
#
# Environment: TESTS (which of tp,lat,flood,large; default all four), ROUNDS (default 5), N (100000), N_SMALL (10000), WINDOW (most pings in
# flight, default 4000: the proxy answers requests beyond its 4096 pending with an error,
# 0 = no limit), LAT_N (5000), LAT_WARMUP (500), FLOOD_ROUNDS (2), FLOOD_COUNTS ("50,200"),
# FLOOD_MIB (4), N_LARGE (5000), LARGE_BYTES (20000), TIMEOUT (per mcp-j invocation, default 120 s), PERF=1 (after the tables,
# profile one more N-ping run of `mcp-j run` with perf record and print where the time goes;
# not with --as), CPUS (e.g. 0: pin the client, mcp-j and the server to these CPUs with
# taskset; default: no pinning).
# With --as USER (needs root) the timed part runs as USER via setpriv. Exits non-zero if any
# measured command fails or a reply is missing or wrong.
set -euo pipefail

as_user=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --as) as_user="${2:?--as needs a user name}"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "proxy.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

TESTS="${TESTS:-tp,lat,flood,large}"
ROUNDS="${ROUNDS:-5}"
N="${N:-100000}"
N_SMALL="${N_SMALL:-10000}"
WINDOW="${WINDOW:-4000}"
LAT_N="${LAT_N:-5000}"
LAT_WARMUP="${LAT_WARMUP:-500}"
FLOOD_ROUNDS="${FLOOD_ROUNDS:-2}"
FLOOD_COUNTS="${FLOOD_COUNTS:-50,200}"
FLOOD_MIB="${FLOOD_MIB:-4}"
N_LARGE="${N_LARGE:-5000}"
LARGE_BYTES="${LARGE_BYTES:-20000}"
TIMEOUT="${TIMEOUT:-120}"
PERF="${PERF:-}"
CPUS="${CPUS:-}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -n "$as_user" && "$(id -u)" -ne 0 ]]; then
  echo "proxy.sh: --as needs root" >&2
  exit 2
fi
if [[ -n "$PERF" && -n "$as_user" ]]; then
  echo "proxy.sh: PERF=1 is not supported with --as" >&2
  exit 2
fi
if [[ -n "$PERF" ]] && ! command -v perf >/dev/null 2>&1; then
  echo "proxy.sh: PERF=1 needs perf" >&2
  exit 2
fi

echo "== building mcp-j and the bench server (release)" >&2
cargo build --release -q -p mcp-j-cli -p mcp-j-bench-server >&2
mcpj="$repo/target/release/mcp-j"

# Scratch: bin/ holds a copy of the server (exposed with --ro), work/ is the sandboxes'
# working directory (read-write) and holds each run's stderr until it succeeds.
scratch="$(mktemp -d "$repo/target/bench-proxy.XXXXXX")"
trap 'rm -rf -- "$scratch"' EXIT
mkdir "$scratch/bin" "$scratch/work"
cp "$repo/target/release/mcp-j-bench-server" "$scratch/bin/"
chmod 755 "$scratch" "$scratch/bin"

runner=()
if [[ -n "$CPUS" ]]; then
  runner=(taskset -c "$CPUS")
fi
if [[ -n "$as_user" ]]; then
  uid="$(id -u "$as_user")"
  gid="$(id -g "$as_user")"
  home="$(getent passwd "$as_user" | cut -d: -f6)"
  chown "$uid:$gid" "$scratch/work"
  runner+=(setpriv --reuid="$uid" --regid="$gid" --init-groups --
          env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$home" "USER=$as_user" "LANG=C.UTF-8")
fi

perf_args=()
if [[ -n "$PERF" ]]; then
  perf_args=(--perf-cmd "perf record -q -F 2999 -g -o $scratch/perf.data")
fi

rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null; then rev="$rev+dirty"; fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($cpu), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $rev"
echo "python:   $(/usr/bin/python3 --version 2>&1) (/usr/bin/python3)"
echo "as:       ${as_user:-root}"
echo "settings: TESTS=$TESTS CPUS=${CPUS:-any} ROUNDS=$ROUNDS N=$N N_SMALL=$N_SMALL WINDOW=$WINDOW LAT_N=$LAT_N LAT_WARMUP=$LAT_WARMUP FLOOD_ROUNDS=$FLOOD_ROUNDS FLOOD_COUNTS=$FLOOD_COUNTS FLOOD_MIB=$FLOOD_MIB N_LARGE=$N_LARGE LARGE_BYTES=$LARGE_BYTES TIMEOUT=$TIMEOUT"
echo

"${runner[@]}" /usr/bin/python3 "$repo/bench/proxy_client.py" \
  --mcpj "$mcpj" --server "$scratch/bin/mcp-j-bench-server" --ro "$scratch/bin" \
  --workdir "$scratch/work" --tests "$TESTS" --rounds "$ROUNDS" --n "$N" --n-small "$N_SMALL" \
  --window "$WINDOW" --lat-n "$LAT_N" --lat-warmup "$LAT_WARMUP" \
  --flood-rounds "$FLOOD_ROUNDS" --flood-counts "$FLOOD_COUNTS" \
  --flood-bytes "$((FLOOD_MIB * 1024 * 1024))" --n-large "$N_LARGE" --large-bytes "$LARGE_BYTES" \
  --timeout "$TIMEOUT" "${perf_args[@]}"

if [[ -n "$PERF" ]]; then
  echo
  echo "where the mcp-j run process spends its CPU (perf report, self time):"
  echo "  by thread:"
  perf report -i "$scratch/perf.data" --stdio --no-children --sort comm -g none 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | sed 's/^/  /'
  echo "  by symbol (>= 1%):"
  perf report -i "$scratch/perf.data" --stdio --no-children --sort dso,sym -g none \
      --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/^/  /'
  echo "  syscalls and scheduler work, inclusive (>= 5%):"
  perf report -i "$scratch/perf.data" --stdio --children --sort sym -g none \
      --percent-limit 5 2>/dev/null | grep -v '^#' | grep -v '^$' \
    | grep -E '\[k\] (__x64_sys|schedule|try_to_wake_up|do_epoll_wait|eventfd|vfs_)' | sed 's/^/  /'
fi
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates upper percentiles and lowers throughput)"
