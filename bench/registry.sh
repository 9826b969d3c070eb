#!/usr/bin/env bash
# Benchmark `mcp-j registry serve` under CONCURRENCY (default 50) concurrent pulls of one
# package whose bundle is BUNDLE_MB (default 10) of random bytes, on 127.0.0.1.
#
#   bench/registry.sh
#
# Measures (see bench/README.md, "bench/registry.sh", for how to read the output):
#   (a) raw HTTP pull sequences (bench/registry_load.py: threads + http.client, keep-alive):
#       each pull is GET resolve, then the manifest and the bundle by the digests in the
#       resolve answer; bodies are counted and dropped, the bundle is sha256-checked on each
#       client's first pull and every VERIFY_EVERY-th after it. Per round (ROUNDS, default 3),
#       interleaved:
#         - mcp-j, 1 client doing SEQ_REQUESTS pulls one after another (the baseline: the
#           server with one client at a time);
#         - mcp-j, CONCURRENCY clients doing REQUESTS pulls each, all at once;
#         - the standard library's http.server (`registry_load.py serve`: keep-alive,
#           TCP_NODELAY, a listen backlog of 1024) serving the same three answers as files (the resolve
#           answer saved, the manifest and the bundle blob), CONCURRENCY clients, the same
#           sequence, twice: copying through Python buffers (a simple server's cost of
#           moving the same bytes over loopback), and with sendfile (zero-copy: the
#           ceiling of this machine with this client).
#       MB/s (1e6 B/s) and requests/s over the phase's wall time, latency p50/p99/max of a
#       whole pull, of the bundle GET and of the resolve GET, the servers' CPU per GB;
#       ratios: mcp-j with CONCURRENCY clients / 1 client, and / each http.server.
#   (b) `mcp-j pull` processes into fresh caches: 1 alone, then CONCURRENCY at once, ROUNDS
#       times (aggregate MB/s and the per-process times; each pull hashes, writes and fsyncs;
#       the baseline is the lone pull).
#   memory: the registry's VmRSS at idle before each phase, its peak (VmHWM, reset with
#       /proc/PID/clear_refs before the phase), the growth per client and the RSS after.
#
# Environment: BUNDLE_MB (10), CONCURRENCY (50), REQUESTS (pulls per client, 6),
# SEQ_REQUESTS (pulls of the single client, 20), VERIFY_EVERY (5), ROUNDS (3), PULLS=0 to
# skip (b), MCPJ (a binary to measure instead of building this tree's release build).
# No network beyond loopback; the servers are this script's children, killed by pid on exit.
# Exits non-zero if any request or pull fails or returns wrong bytes.
set -euo pipefail

BUNDLE_MB="${BUNDLE_MB:-10}"
CONCURRENCY="${CONCURRENCY:-50}"
REQUESTS="${REQUESTS:-6}"
SEQ_REQUESTS="${SEQ_REQUESTS:-20}"
VERIFY_EVERY="${VERIFY_EVERY:-5}"
ROUNDS="${ROUNDS:-3}"
PULLS="${PULLS:-1}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ -n "${MCPJ:-}" ]]; then
  mcpj="$MCPJ"
else
  echo "== building mcp-j (release)" >&2
  cargo build --release -q -p mcp-j-cli >&2
  mcpj="${CARGO_TARGET_DIR:-$repo/target}/release/mcp-j"
fi
load="$repo/bench/registry_load.py"

mkdir -p "$repo/target"
work="$(mktemp -d "$repo/target/bench-registry.XXXXXX")"
registry_pid=""
static_pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for pid in "$registry_pid" "${static_pids[@]}"; do
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf -- "$work"
}
trap cleanup EXIT

# shellcheck source=bench/registry_lib.sh
source "$repo/bench/registry_lib.sh"
start_registry
push_big_package "$BUNDLE_MB"

# The same three answers as files, for the http.server baselines (they drop the query string).
resolve_path="v1/org/bench/mcps/big/resolve"
mkdir -p "$work/static/$(dirname "$resolve_path")"
python3 - "$url/$resolve_path?ref=1.0.0" "$work/static/$resolve_path" <<'PY'
import sys, urllib.request
open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())
PY
read -r manifest_digest bundle_digest size < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["resolved"]
print(r["manifest"]["digest"], r["bundle"]["digest"], r["bundle"]["size_bytes"])' "$work/static/$resolve_path")
for kind in manifest bundle; do
  digest="${manifest_digest}"; [[ "$kind" == bundle ]] && digest="$bundle_digest"
  mkdir -p "$work/static/v1/org/bench/artifacts/$digest"
  ln -s "$work/store/blobs/sha256/${digest#sha256:}" "$work/static/v1/org/bench/artifacts/$digest/$kind"
done
start_static() { # OUT [--sendfile]: start a baseline server; its pid in static_pids, its URL in OUT
  python3 "$load" serve "$work/static" "${@:2}" > "$1.port" 2>/dev/null &
  static_pids+=("$!")
  for _ in $(seq 100); do [[ -s "$1.port" ]] && break; sleep 0.05; done
  local port
  port="$(sed -n 's/^port \([0-9]*\)$/\1/p' "$1.port")"
  [[ -n "$port" ]] || { echo "registry.sh: the baseline server printed '$(cat "$1.port")'" >&2; exit 1; }
  echo "http://127.0.0.1:$port" > "$1"
}
start_static "$work/copy.url"
start_static "$work/sendfile.url" --sendfile
copy_url="$(cat "$work/copy.url")"
sendfile_url="$(cat "$work/sendfile.url")"

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "bundle:   $size bytes; $CONCURRENCY clients x $REQUESTS pulls, 1 client x $SEQ_REQUESTS pulls, $ROUNDS interleaved rounds"

# Warm up the servers and the page cache (one pull each, not counted).
for u in "$url" "$copy_url" "$sendfile_url"; do
  python3 "$load" http --url "$u" --package bench/big --ref 1.0.0 --clients 1 --requests 1 --out "$work/warm.json"
done
sleep 0.5

status=0
results=()
phase() { # 1..4: one measured phase of (a); its JSON is added to results
  local label u pid clients requests
  case "$1" in
    1) label="mcp-j, 1 client"; u="$url"; pid="$registry_pid"; clients=1; requests="$SEQ_REQUESTS" ;;
    2) label="mcp-j"; u="$url"; pid="$registry_pid"; clients="$CONCURRENCY"; requests="$REQUESTS" ;;
    3) label="http.server (copy)"; u="$copy_url"; pid="${static_pids[0]}"; clients="$CONCURRENCY"; requests="$REQUESTS" ;;
    4) label="http.server+sendfile"; u="$sendfile_url"; pid="${static_pids[1]}"; clients="$CONCURRENCY"; requests="$REQUESTS" ;;
  esac
  python3 "$load" http --label "$label" --url "$u" --pid "$pid" --clients "$clients" --requests "$requests" \
    --package bench/big --ref 1.0.0 --verify-every "$VERIFY_EVERY" --out "$work/a-$round-$1.json" || status=1
  results+=("$work/a-$round-$1.json")
  sleep 0.5 # let the server settle back to idle before the next phase's "RSS before"
}
for round in $(seq "$ROUNDS"); do
  # The order alternates so that no phase always follows the same one.
  if (( round % 2 )); then order="1 2 3 4"; else order="4 3 2 1"; fi
  for p in $order; do phase "$p"; done
done

if [[ "$PULLS" != 0 ]]; then
  for round in $(seq "$ROUNDS"); do
    for n in 1 "$CONCURRENCY"; do
      python3 "$load" pulls --label "mcp-j pull" --mcpj "$mcpj" --url "$url" --ref bench/big@1.0.0 --clients "$n" \
        --dir "$work/caches" --bundle-size "$size" --pid "$registry_pid" --out "$work/b-$round-$n.json" || status=1
      results+=("$work/b-$round-$n.json")
      sleep 0.5
    done
  done
fi

echo
python3 "$load" report "${results[@]}" || status=1
echo "registry serve now: $(grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$registry_pid/status" | tr -s ' \t' ' ' | paste -sd ' ')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
