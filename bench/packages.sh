#!/usr/bin/env bash
# Benchmark `mcp-j pull`: fetch and verify a large bundle from a registry on loopback,
# against `sha256sum` of the same bytes, interleaved in one run.
#
#   bench/packages.sh
#
# Measures, per round (ROUNDS, default 7; BUNDLE_MB, default 100):
#   - `sha256sum` of the bundle's bytes as the registry stores them (the file is in the page
#     cache: this is the speed of hashing alone, the baseline), and `openssl dgst -sha256`
#     (which uses SHA-NI where the CPU has it, as mcp-j's sha2 does; coreutils may not);
#   - `mcp-j pull ORG/NAME@VERSION` into a fresh cache: resolve, the manifest, then the
#     bundle over HTTP from `mcp-j registry serve` on 127.0.0.1, hashed while streaming,
#     written to a temp file, fsync'd and renamed (everything a real pull does).
# and prints both in MB/s (1e6 B/s) with the ratio of medians. Goal: pull >= 0.9x sha256sum.
# No network beyond loopback; the registry is this script's child, killed by pid on exit.
set -euo pipefail

ROUNDS="${ROUNDS:-7}"
BUNDLE_MB="${BUNDLE_MB:-100}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "== building mcp-j (release)" >&2
cargo build --release -q -p mcp-j-cli >&2
mcpj="$repo/target/release/mcp-j"

work="$(mktemp -d "$repo/target/bench-packages.XXXXXX")"
registry_pid=""
cleanup() {
  if [[ -n "$registry_pid" ]]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
  rm -rf -- "$work"
}
trap cleanup EXIT

# shellcheck source=bench/registry_lib.sh
source "$repo/bench/registry_lib.sh"
start_registry
push_big_package "$BUNDLE_MB"
blob="$(ls -S "$work/store/blobs/sha256/" | head -1)"
blob="$work/store/blobs/sha256/$blob"
size="$(stat -c %s "$blob")"

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "sha-ni:   $(grep -q -m1 -w sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "bundle:   $size bytes, $ROUNDS interleaved rounds"

now() { date +%s.%N; }
: > "$work/times"
for round in $(seq "$ROUNDS"); do
  for what in sha256sum openssl pull; do
    case "$what" in
      sha256sum)
        start="$(now)"; sha256sum "$blob" > /dev/null; end="$(now)" ;;
      openssl)
        command -v openssl >/dev/null || continue
        start="$(now)"; openssl dgst -sha256 "$blob" > /dev/null; end="$(now)" ;;
      pull)
        cache="$work/cache-$round"
        start="$(now)"
        "$mcpj" --registry "$url" --cache-dir "$cache" pull bench/big@1.0.0 2>/dev/null
        end="$(now)"
        rm -rf -- "$cache" ;;
    esac
    echo "$what $start $end" >> "$work/times"
  done
done

python3 - "$work/times" "$size" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
speeds = {}
for what, start, end in rows:
    speeds.setdefault(what, []).append(size / (float(end) - float(start)) / 1e6)
for what, v in speeds.items():
    v.sort()
    print(f"  {what:<10} median {statistics.median(v):8.0f} MB/s   min {v[0]:8.0f}   max {v[-1]:8.0f}")
ratio = statistics.median(speeds["pull"]) / statistics.median(speeds["sha256sum"])
print(f"  pull / sha256sum: {ratio:.2f}   goal >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'}")
if "openssl" in speeds:
    r = statistics.median(speeds["pull"]) / statistics.median(speeds["openssl"])
    print(f"  pull / openssl dgst -sha256 (SHA-NI where the CPU has it): {r:.2f}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
