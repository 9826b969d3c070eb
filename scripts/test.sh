#!/usr/bin/env bash
# The README's second command: installs what the tests need, then runs every check.
#
#   scripts/test.sh            fmt, clippy, docs, unit and end-to-end tests
#
# As root it also creates the unprivileged user the sandbox tests run as (every sandbox
# test runs both as root and as that user). MCP_J_TEST_EXPECT (comma list of userns,
# seccomp, seccomp-notify, landlock, landlock-net, landlock-scope, unprivileged,
# real-servers, test-net: a network namespace of the tests' own, root only) declares
# what this machine offers: a declared feature that is missing fails its tests instead of
# skipping them. .ci/run declares them all.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" = 0 ]; then
  step "test prerequisites"
  if ! command -v setpriv >/dev/null || ! command -v nsenter >/dev/null; then
    apt-get update -qq && apt-get install -y -qq util-linux >/dev/null
  fi
  if ! command -v ip >/dev/null || ! command -v curl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq iproute2 curl >/dev/null
  fi
  export MCP_J_TEST_USER="${MCP_J_TEST_USER:-mcpj-test}"
  if ! id "$MCP_J_TEST_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$MCP_J_TEST_USER"
  fi
  # The unprivileged user must reach the binaries under target/.
  if ! setpriv --reuid="$MCP_J_TEST_USER" --regid="$(id -g "$MCP_J_TEST_USER")" --clear-groups -- \
      test -r "$PWD/Cargo.toml"; then
    echo "error: \`$MCP_J_TEST_USER\` cannot read $PWD; clone the repository where other users can traverse (e.g. /var/tmp)" >&2
    exit 1
  fi
  echo "unprivileged test user: $MCP_J_TEST_USER"
fi

step "real MCP servers and clients for the tests (into .deps/)"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "fuzz targets build (cargo-fuzz runs them; CI only compiles)"
cargo build --manifest-path fuzz/Cargo.toml --quiet

step "cargo build (all binaries, for the end-to-end tests)"
cargo build --workspace --bins --quiet

step "cargo test"
cargo test --workspace
