#!/usr/bin/env bash
# Benchmark mcp-j's network egress (the supervisor's proxy) against direct downloads,
# interleaved in one run, inside a network namespace of the script's own.
#
#   bench/egress.sh [--as USER] [--also LABEL=MCPJ]...
#
# Measures (see bench/README.md, "bench/egress.sh", for how to read the output):
#   1. bulk throughput: a BIG_MB file (default 200 MB) from an origin server in the namespace
#      (bench/origin.py, sendfile), downloaded to /dev/null by curl (a) directly in the
#      namespace, outside any jail (the baseline), and inside one `mcp-j exec --allow-net
#      origin.test:PORT` (b) through the HTTP proxy (http_proxy), (c) through CONNECT
#      (--proxytunnel), (d) by a direct connection (--noproxy '*': the DNS stub's address, the
#      jail's direct listener); also, outside the jail: directly from `python3 -m http.server`
#      (why it is not the origin), and through bench/relay.py's reference relays (`copy`:
#      64 KiB recv/send, the same per-byte work as mcp-j's; `splice`: zero-copy). MB/s from
#      curl's own speed_download, so the jail's start-up is not in it; ratios to direct
#      (goal ≥ 0.9×).
#   2. connection setup: REQUESTS (default 25) sequential requests of a 64-byte file per route
#      per round, one curl each, in the same jail; curl's time_total (connect, first byte,
#      total) direct vs each route; added ms per connection (goal < 0.5 ms).
#   3. proxy memory: the mcp-j process's peak RSS (VmHWM, sampled) in a jail that relays
#      nothing, SMALL_MB (default 20 MB) and BIG_MB once per route (goal: flat), and its
#      CPU time per GB relayed.
#
# The namespace: `unshare --net --mount --propagation private` holding a `sleep`, loopback
# up, 203.0.113.9/32 (documentation range) on it, `origin.test` in a private /etc/hosts
# bind-mounted there. It has no route out: no packet can leave the machine. Everything
# (origin, curl, mcp-j) runs in it via `nsenter -t PID -n -m`.
#
# --also LABEL=MCPJ (repeatable): also measure the bulk routes through another mcp-j binary
# (an experimental build, a copy of an earlier one), interleaved in the same rounds.
# Environment: ROUNDS (default 8), REQUESTS (small requests per route per round, default 25),
# MEM_ROUNDS (default 3), BIG_MB (200), SMALL_MB (20), PORT (8080).
# Must start as root (it makes the namespace and builds the binary); with --as USER curl and
# mcp-j run as USER via setpriv after nsenter (the origin stays root). Exits non-zero if any
# transfer fails or comes back short.
set -euo pipefail

as_user=""
also=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --as) as_user="${2:?--as needs a user name}"; shift 2 ;;
    --also)
      [[ "${2:-}" == *=* && -x "${2#*=}" ]] || { echo "egress.sh: --also needs LABEL=PATH of an mcp-j binary" >&2; exit 2; }
      also+=(--also "${2%%=*}=$(realpath "${2#*=}")"); shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "egress.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROUNDS="${ROUNDS:-8}"
REQUESTS="${REQUESTS:-25}"
MEM_ROUNDS="${MEM_ROUNDS:-3}"
BIG_MB="${BIG_MB:-200}"
SMALL_MB="${SMALL_MB:-20}"
PORT="${PORT:-8080}"
PY_PORT=$((PORT + 1))
COPY_PORT=$((PORT + 2))
SPLICE_PORT=$((PORT + 3))
ORIGIN_ADDR=203.0.113.9

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "egress.sh: run as root (it makes a network namespace; use --as USER to measure as another user)" >&2
  exit 2
fi
for tool in unshare nsenter ip curl setpriv; do
  command -v "$tool" >/dev/null 2>&1 || { echo "egress.sh: needs $tool on PATH" >&2; exit 2; }
done

echo "== building mcp-j (release)" >&2
cargo build --release -q -p mcp-j-cli >&2
mcpj="$repo/target/release/mcp-j"

# Only processes this script started, by pid; the namespace goes with its holder.
work="$(mktemp -d "$repo/target/bench-egress.XXXXXX")"
holder=""
origins=()
cleanup() {
  for pid in "${origins[@]}" $holder; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf -- "$work"
}
trap cleanup EXIT

site="$work/site"
mkdir -p "$site" "$work/jail"
chmod 755 "$work" "$site"
head -c $((BIG_MB * 1000000)) /dev/urandom >"$site/big"
head -c $((SMALL_MB * 1000000)) /dev/urandom >"$site/small"
head -c 64 /dev/urandom >"$site/tiny"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n%s\torigin.test\n' "$ORIGIN_ADDR" >"$work/hosts"
chmod 644 "$work/hosts" "$site"/*

unshare --net --mount --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
holder=$!
for _ in $(seq 500); do
  [[ "$(readlink "/proc/$holder/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ]] \
    && [[ -n "$(readlink "/proc/$holder/ns/net" 2>/dev/null)" ]] && break
  sleep 0.01
done
ns=(nsenter -t "$holder" -n -m --)
"${ns[@]}" ip link set lo up
"${ns[@]}" ip addr add "$ORIGIN_ADDR/32" dev lo
"${ns[@]}" mount --bind "$work/hosts" /etc/hosts

"${ns[@]}" /usr/bin/python3 "$repo/bench/origin.py" "$ORIGIN_ADDR" "$PORT" "$site" </dev/null >/dev/null 2>&1 &
origins+=($!)
"${ns[@]}" /usr/bin/python3 -m http.server "$PY_PORT" --bind "$ORIGIN_ADDR" --directory "$site" \
  </dev/null >/dev/null 2>&1 &
origins+=($!)
# Reference relays (no jail, no policy): what plain copying and zero-copy relays reach here.
for relay in "copy $COPY_PORT" "splice $SPLICE_PORT"; do
  read -r mode port <<<"$relay"
  "${ns[@]}" /usr/bin/python3 "$repo/bench/relay.py" "$mode" 127.0.0.1 "$port" "$ORIGIN_ADDR" "$PORT" \
    </dev/null >/dev/null 2>&1 &
  origins+=($!)
done
for url in "http://origin.test:$PORT/tiny" "http://$ORIGIN_ADDR:$PY_PORT/tiny" \
           "http://127.0.0.1:$COPY_PORT/tiny" "http://127.0.0.1:$SPLICE_PORT/tiny"; do
  for i in $(seq 100); do
    "${ns[@]}" curl -sf -o /dev/null --max-time 2 "$url" && break
    [[ $i -lt 100 ]] || { echo "egress.sh: origin $url did not come up" >&2; exit 1; }
    sleep 0.05
  done
done

runner=()
if [[ -n "$as_user" ]]; then
  uid="$(id -u "$as_user")"
  gid="$(id -g "$as_user")"
  home="$(getent passwd "$as_user" | cut -d: -f6)"
  chown "$uid:$gid" "$work/jail"
  runner=(--uid "$uid" --gid "$gid" --home "$home" --user "$as_user")
fi

rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$repo" diff --quiet HEAD -- crates 2>/dev/null; then rev="$rev+dirty"; fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(nproc) CPUs ($cpu), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mcp-j:    $rev"
echo "curl:     $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "as:       ${as_user:-root}"
echo "sizes:    BIG_MB=$BIG_MB SMALL_MB=$SMALL_MB (1 MB = 1e6 bytes)"

/usr/bin/python3 "$repo/bench/egress.py" \
  --pid "$holder" --mcpj "$mcpj" --workdir "$work/jail" \
  --origin "origin.test:$PORT" --py-origin "$ORIGIN_ADDR:$PY_PORT" \
  --relay-copy "127.0.0.1:$COPY_PORT" --relay-splice "127.0.0.1:$SPLICE_PORT" \
  --big "big:$((BIG_MB * 1000000))" --small "small:$((SMALL_MB * 1000000))" --tiny "tiny:64" \
  --rounds "$ROUNDS" --requests "$REQUESTS" --mem-rounds "$MEM_ROUNDS" "${runner[@]}" "${also[@]}"
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine lowers every route's speed; the paired ratio compares each round with its own direct run)"
