#!/usr/bin/env bash
# Benchmark `mcp-j exec` against bubblewrap and the bare program, interleaved in one run.
#
#   bench/exec.sh [--as USER] [--against OLD_MCPJ]
#
# Measures (see bench/README.md for how to read the output):
#   1. startup, wall and CPU time (user+sys of the process tree): `mcp-j exec -- /bin/true`
#      vs an equivalent `bwrap … -- /bin/true` (namespaces and mounts only), the same bwrap
#      plus seccomp programs the sizes of mcp-j's ("bwrap doing the same work"), issue 8's
#      "typical hardened bwrap", and bare /bin/true, round-robin, so machine noise hits all
#      alike;
#   1b. lone starts: the same variants, each run after a 150 ms pause, as a client starting
#      one server sees them (back-to-back rounds keep kernel state warm);
#   2. per-syscall overhead: /usr/bin/python3 import-heavy, getppid and open+close loops,
#      sandboxed vs bare, each minus its own /bin/true median so startup cancels out;
#   3. with --against OLD_MCPJ (a copy of an earlier build's target/release/mcp-j): startup of
#      that binary vs this one, interleaved (AB_ROUNDS, default 150), with the median of the
#      paired ratios — what a change to mcp-j itself (a larger seccomp filter, say) costs,
#      with machine noise hitting both alike.
#
# Environment: FILTER_LENS (instruction counts of mcp-j's seccomp filters, e.g. "624,10";
# default: read from `strace -e trace=seccomp` of one `mcp-j exec`), ROUNDS (startup rounds,
# default 300), LONE_ROUNDS (rounds of lone starts, each after a pause, default 20; 0 skips),
# PY_ROUNDS (python rounds, spread evenly
# over the startup rounds, default 30), WARMUP (default 3), SHOW_BWRAP=1 (print the bwrap
# command line used).
# Must start as root (it may install bubblewrap and builds the binary); with --as USER the
# timed part runs as USER via setpriv. Exits non-zero if any measured command fails.
set -euo pipefail

as_user=""
against=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --as) as_user="${2:?--as needs a user name}"; shift 2 ;;
    --against) against="${2:?--against needs the path of an earlier mcp-j binary}"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "exec.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROUNDS="${ROUNDS:-300}"
PY_ROUNDS="${PY_ROUNDS:-30}"
WARMUP="${WARMUP:-3}"
AB_ROUNDS="${AB_ROUNDS:-150}"
LONE_ROUNDS="${LONE_ROUNDS:-20}"
if [[ -n "$against" && ! -x "$against" ]]; then
  echo "exec.sh: --against $against is not an executable (copy target/release/mcp-j of the earlier build)" >&2
  exit 2
fi

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

# The sizes of the seccomp programs mcp-j installs, in order, as strace sees them
# (seccomp(SECCOMP_SET_MODE_FILTER, 0, {len=N, ...})): "bwrap+seccomp" installs programs of
# the same sizes. The engine has no way to dump its programs, so their contents are stand-ins.
if [[ -z "${FILTER_LENS:-}" ]]; then
  if ! command -v strace >/dev/null 2>&1; then
    echo "== installing strace (to read the sizes of mcp-j's seccomp filters)" >&2
    apt-get update -qq >&2 && apt-get install -y -qq strace >&2
  fi
  FILTER_LENS="$(strace -f -qq -e trace=seccomp -o /dev/stdout \
                   "$mcpj" exec --workdir "$work" -- /bin/true \
                 | sed -n 's/.*SECCOMP_SET_MODE_FILTER.*len=\([0-9]*\).*/\1/p' | paste -sd,)"
  if [[ -z "$FILTER_LENS" ]]; then
    echo "exec.sh: strace saw no seccomp filter installed by mcp-j exec; set FILTER_LENS" >&2
    exit 1
  fi
fi

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
echo "filters:  mcp-j installs seccomp programs of $FILTER_LENS instructions"
echo "rounds:   ROUNDS=$ROUNDS PY_ROUNDS=$PY_ROUNDS WARMUP=$WARMUP"
echo

"${runner[@]}" /usr/bin/python3 "$repo/bench/stats.py" \
  --mcpj "$mcpj" --bwrap "$bwrap_bin" --workdir "$work" \
  --rounds "$ROUNDS" --py-rounds "$PY_ROUNDS" --warmup "$WARMUP" --filter-lens "$FILTER_LENS" \
  --lone-rounds "$LONE_ROUNDS" \
  ${SHOW_BWRAP:+--show-bwrap}
echo
if [[ -n "$against" ]]; then
  "${runner[@]}" /usr/bin/python3 - "$against" "$mcpj" "$work" "$AB_ROUNDS" "$WARMUP" "$LONE_ROUNDS" <<'PY'
import statistics, subprocess, sys, time

old, new, work, rounds, warmup = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lone_rounds = int(sys.argv[6])
times = {old: [], new: []}
for i in range(warmup + rounds):
    for binary in (old, new) if i % 2 == 0 else (new, old):
        start = time.perf_counter()
        done = subprocess.run([binary, "exec", "--workdir", work, "--", "/bin/true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            sys.exit(f"exec.sh: {binary} exec -- /bin/true exited {done.returncode}")
        if i >= warmup:
            times[binary].append(elapsed)
print(f"startup A/B: /bin/true, {rounds} interleaved rounds")
print(f"  {'variant':40s} {'median':>7s} {'p10':>7s} {'p25':>7s}   (ms)")
for label, binary in (("this build", new), (old, old)):
    v = sorted(times[binary])
    q = lambda p: v[int(p * (len(v) - 1))]
    print(f"  {label[-40:]:40s} {statistics.median(v):7.2f} {q(0.10):7.2f} {q(0.25):7.2f}")
paired = statistics.median(n / o for n, o in zip(times[new], times[old]))
print(f"  this build / earlier: median of paired ratios {paired:.3f}")
if lone_rounds:
    lone = {old: [], new: []}
    for i in range(lone_rounds):
        for binary in (old, new) if i % 2 == 0 else (new, old):
            time.sleep(0.15)
            start = time.perf_counter()
            subprocess.run([binary, "exec", "--workdir", work, "--", "/bin/true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            lone[binary].append((time.perf_counter() - start) * 1000)
    print(f"lone start A/B: {lone_rounds} rounds, each run after a 150 ms pause")
    for label, binary in (("this build", new), (old, old)):
        v = sorted(lone[binary])
        print(f"  {label[-40:]:40s} median {statistics.median(v):7.2f}  p90 {v[int(0.9 * (len(v) - 1))]:7.2f}   (ms)")
    print(f"  this build / earlier: {statistics.median(lone[new]) / statistics.median(lone[old]):.3f}")
PY
  echo
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates means and upper percentiles; p10 is the least disturbed)"
