#!/usr/bin/env bash
# Benchmark `mcp-j exec` against bubblewrap and the bare program, interleaved in one run.
#
#   bench/exec.sh [--as USER]
#
# Measures (see bench/README.md for how to read the output):
#   1. startup: `mcp-j exec -- /bin/true` vs an equivalent `bwrap … -- /bin/true` vs bare
#      /bin/true, round-robin, so machine noise hits all three alike;
#   2. per-syscall overhead: /usr/bin/python3 import-heavy, getppid and open+close loops,
#      sandboxed vs bare, each minus its own /bin/true median so startup cancels out.
#
# Environment: ROUNDS (startup rounds, default 300), PY_ROUNDS (python rounds, spread evenly
# over the startup rounds, default 30), WARMUP (default 3), SHOW_BWRAP=1 (print the bwrap
# command line used).
# Must start as root (it may install bubblewrap and builds the binary); with --as USER the
# timed part runs as USER via setpriv. Exits non-zero if any measured command fails.
set -euo pipefail

as_user=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --as) as_user="${2:?--as needs a user name}"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "exec.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROUNDS="${ROUNDS:-300}"
PY_ROUNDS="${PY_ROUNDS:-30}"
WARMUP="${WARMUP:-3}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "exec.sh: run as root (use --as USER to time as another user)" >&2
  exit 2
fi

if ! command -v bwrap >/dev/null 2>&1; then
  echo "== installing bubblewrap" >&2
  apt-get update -qq >&2 && apt-get install -y -qq bubblewrap >&2
fi
bwrap_bin="$(command -v bwrap)"

echo "== building mcp-j (release)" >&2
cargo build --release -q -p mcp-j-cli >&2
mcpj="$repo/target/release/mcp-j"

# Scratch directory: the sandboxes' working directory (bound read-write by both).
work="$(mktemp -d "$repo/target/bench-exec.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT

runner=()
if [[ -n "$as_user" ]]; then
  uid="$(id -u "$as_user")"
  gid="$(id -g "$as_user")"
  home="$(getent passwd "$as_user" | cut -d: -f6)"
  chown "$uid:$gid" "$work"
  runner=(setpriv --reuid="$uid" --regid="$gid" --init-groups --
          env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$home" "USER=$as_user" "LANG=C.UTF-8")
fi

rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null; then rev="$rev+dirty"; fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($cpu), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bwrap:    $("$bwrap_bin" --version)"
echo "mcp-j:    $rev"
echo "python:   $(/usr/bin/python3 --version 2>&1) (/usr/bin/python3)"
echo "as:       ${as_user:-root}"
echo "rounds:   ROUNDS=$ROUNDS PY_ROUNDS=$PY_ROUNDS WARMUP=$WARMUP"
echo

"${runner[@]}" /usr/bin/python3 "$repo/bench/stats.py" \
  --mcpj "$mcpj" --bwrap "$bwrap_bin" --workdir "$work" \
  --rounds "$ROUNDS" --py-rounds "$PY_ROUNDS" --warmup "$WARMUP" \
  ${SHOW_BWRAP:+--show-bwrap}
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates means and upper percentiles; p10 is the least disturbed)"
