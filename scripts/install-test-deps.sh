#!/usr/bin/env bash
# Installs the real MCP servers and clients the end-to-end tests run (crates/mcp-j-cli/tests/it/real_servers.rs)
# into .deps/ at the repository root, and nowhere else (caches included):
#
#   .deps/node   @modelcontextprotocol/server-everything, server-filesystem and server-memory,
#                from tests-deps/package-lock.json (npm ci: exact versions and integrity
#                hashes), run with /usr/bin/node
#   .deps/py     a venv of the system /usr/bin/python3 with the official MCP Python SDK
#                (`mcp`), mcp-server-time, mcp-server-git and mcp-server-fetch, exactly
#                tests-deps/requirements.txt
#   .deps/rmcp   bin/rmcp-client: the official Rust SDK's client (rmcp), built from
#                tests-deps/rmcp-client with cargo --locked (about 40 s; skip: --no-rmcp)
#   .deps/cache  npm's and pip's download caches (cargo uses its usual CARGO_HOME, as the
#                workspace build does)
#
# Idempotent: each part records a digest of its inputs and is skipped while they are
# unchanged, so a second run takes well under a second. A part whose inputs changed (or
# whose install was interrupted) is wiped and installed again.
#
# Everything under .deps is made readable by other users (o+rX): the tests also run as an
# unprivileged user. The system interpreters are used on purpose: the sandbox shows /usr but
# not /root, /home or /opt, so a pyenv/nvm interpreter would not run inside it.
#
#   scripts/install-test-deps.sh           install what is missing or stale
#   scripts/install-test-deps.sh --force   wipe .deps/{node,py,rmcp} and install again
#   scripts/install-test-deps.sh --no-rmcp leave the Rust client out (its tests then skip,
#                                          or fail where MCP_J_TEST_EXPECT has real-servers)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.deps
SRC=$ROOT/tests-deps
NODE=/usr/bin/node
NPM=/usr/bin/npm
PYTHON=/usr/bin/python3

force=0
rmcp=1
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --no-rmcp) rmcp=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install-test-deps: unknown argument \`$arg\` (try --help)" >&2
      exit 2
      ;;
  esac
done

say() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

for tool in "$NODE" "$NPM" "$PYTHON"; do
  [ -x "$tool" ] || die "$tool is missing (the tests need the system one; apt-get install nodejs npm python3 python3-venv)"
done
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
  die "$PYTHON cannot make a venv (apt-get install python3-venv)"
# The egress tests' own network namespace (tests/it/common/testnet.rs) and their client.
for tool in ip unshare nsenter curl; do
  command -v "$tool" >/dev/null || die "$tool is missing (the network tests need it; apt-get install iproute2 util-linux curl)"
done

umask 022
mkdir -p "$DEPS/cache"
# Nothing outside .deps: no ~/.npm, ~/.cache/pip, ~/.config, update checks or telemetry.
export npm_config_cache=$DEPS/cache/npm
export npm_config_update_notifier=false
export npm_config_audit=false
export npm_config_fund=false
export npm_config_loglevel=warn
export PIP_CACHE_DIR=$DEPS/cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
export XDG_CACHE_HOME=$DEPS/cache
export XDG_CONFIG_HOME=$DEPS/cache/config
unset PYTHONHOME PYTHONPATH PIP_REQUIRE_VIRTUALENV PIP_USER

# One installer at a time (two `cargo test` runs, or a developer and CI).
exec 9>"$DEPS/.lock"
flock 9

digest() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [ "$force" = 0 ] && [ -f "$1/.installed" ] && [ "$(cat "$1/.installed")" = "$2" ]; }
readable() { chmod -R go+rX,go-w "$1"; }

start=$(date +%s.%N)
did=()

# --- npm: the node servers ---------------------------------------------------------------
node_key=$(
  {
    digest "$SRC/package.json" "$SRC/package-lock.json"
    "$NODE" --version
  } | sha256sum | cut -d' ' -f1
)
if fresh "$DEPS/node" "$node_key"; then
  say "node servers: up to date"
else
  say "node servers: installing into .deps/node ($("$NODE" --version))"
  rm -rf "$DEPS/node"
  mkdir -p "$DEPS/node"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DEPS/node/"
  # --ignore-scripts: no package runs code at install time (none of these needs to).
  (cd "$DEPS/node" && "$NPM" ci --ignore-scripts --omit=dev --no-audit --no-fund >&2) ||
    die "npm ci failed"
  for server in everything filesystem memory; do
    entry=$DEPS/node/node_modules/@modelcontextprotocol/server-$server/dist/index.js
    [ -f "$entry" ] || die "npm ci succeeded but $entry is missing"
  done
  readable "$DEPS/node"
  echo "$node_key" >"$DEPS/node/.installed"
  did+=(node)
fi

# --- PyPI: the MCP Python SDK, mcp-server-time, mcp-server-git, mcp-server-fetch ---------
py_key=$(
  {
    digest "$SRC/requirements.txt"
    "$PYTHON" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
)
if fresh "$DEPS/py" "$py_key"; then
  say "python venv: up to date"
else
  say "python venv: installing into .deps/py ($("$PYTHON" --version))"
  rm -rf "$DEPS/py"
  # --copies would put a copy of the interpreter in the venv; the symlink to
  # /usr/bin/python3 is what lets it run inside the sandbox, which shows /usr.
  "$PYTHON" -m venv "$DEPS/py" || die "python3 -m venv failed"
  # Exactly the pinned list: --no-deps so nothing unlisted comes in, wheels only so nothing
  # is compiled, then `pip check` to prove the list is complete and consistent.
  "$DEPS/py/bin/python" -m pip install --quiet --no-deps --only-binary=:all: \
    --require-virtualenv -r "$SRC/requirements.txt" >&2 || die "pip install failed"
  "$DEPS/py/bin/python" -m pip check >&2 || die "tests-deps/requirements.txt is not self-consistent"
  "$DEPS/py/bin/python" -c 'import mcp, mcp.client.stdio, mcp_server_time, mcp_server_git, mcp_server_fetch' ||
    die "the venv cannot import mcp / mcp_server_time / mcp_server_git / mcp_server_fetch"
  readable "$DEPS/py"
  echo "$py_key" >"$DEPS/py/.installed"
  did+=(py)
fi

# --- crates.io: the rmcp client ----------------------------------------------------------
if [ "$rmcp" = 1 ]; then
  command -v cargo >/dev/null || die "cargo is missing (or pass --no-rmcp)"
  rmcp_key=$(
    {
      digest "$SRC/rmcp-client/Cargo.toml" "$SRC/rmcp-client/Cargo.lock" "$SRC/rmcp-client/src/main.rs"
      cargo --version
      rustc --version
    } | sha256sum | cut -d' ' -f1
  )
  if fresh "$DEPS/rmcp" "$rmcp_key"; then
    say "rmcp client: up to date"
  else
    say "rmcp client: building into .deps/rmcp ($(cargo --version))"
    rm -rf "$DEPS/rmcp"
    mkdir -p "$DEPS/rmcp/bin"
    # Its own target dir (not the workspace's), removed once the binary is out: ~200 MB.
    cargo build --quiet --locked --manifest-path "$SRC/rmcp-client/Cargo.toml" \
      --target-dir "$DEPS/rmcp/target" >&2 || die "cargo build of tests-deps/rmcp-client failed"
    cp "$DEPS/rmcp/target/debug/rmcp-client" "$DEPS/rmcp/bin/rmcp-client"
    rm -rf "$DEPS/rmcp/target"
    readable "$DEPS/rmcp"
    echo "$rmcp_key" >"$DEPS/rmcp/.installed"
    did+=(rmcp)
  fi
fi

# The venv's interpreter must resolve to the system one, which the sandbox shows.
target=$(readlink -f "$DEPS/py/bin/python")
[ "$target" = "$(readlink -f "$PYTHON")" ] ||
  die ".deps/py/bin/python resolves to $target, not $PYTHON (remove .deps/py and run again)"

# The directories above .deps must let the unprivileged test user through.
dir=$DEPS
while [ "$dir" != / ]; do
  perms=$(stat -c %A "$dir")
  [ "${perms:9:1}" = x ] || [ "${perms:9:1}" = t ] ||
    say "warning: $dir is not searchable by other users; the unprivileged test runs will fail"
  dir=$(dirname "$dir")
done
chmod go+rx "$DEPS"

took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [ ${#did[@]} -eq 0 ]; then
  say "everything up to date (${took}s)"
else
  say "installed ${did[*]} in ${took}s"
fi
