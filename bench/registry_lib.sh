# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # $mcpj and $work come from the caller; $registry_pid and $url go back to it
# Sourced by the bench scripts that need `mcp-j registry serve` on 127.0.0.1 with a package
# pushed to it (packages.sh, registry.sh, run_ref.sh). Uses the caller's $mcpj and $work.

# Serves a store in $work/store on a port of its own; sets $registry_pid (the caller's EXIT
# trap kills it by that pid) and $url.
start_registry() {
  "$mcpj" registry serve --listen 127.0.0.1:0 --root "$work/store" > "$work/url" 2>/dev/null &
  registry_pid=$!
  for _ in $(seq 100); do [[ -s "$work/url" ]] && break; sleep 0.05; done
  url="$(head -1 "$work/url")"
  [[ "$url" == http://127.0.0.1:* ]] || { echo "$(basename "$0"): registry serve printed '$url'" >&2; exit 1; }
}

# Pushes the package in directory $1 with a fresh push token.
push_package() {
  local token
  token="$("$mcpj" registry token create --root "$work/store" --scope push)"
  MCP_J_REGISTRY_TOKEN="$token" "$mcpj" --registry "$url" push "$1" 2>/dev/null
}

# Makes bench/big@1.0.0 in $work/pkg, $1 MB of incompressible bytes (the bundle is gzip:
# random data keeps its size) and an entrypoint of /bin/true, and pushes it.
push_big_package() {
  mkdir -p "$work/pkg"
  head -c "$(($1 * 1000 * 1000))" /dev/urandom > "$work/pkg/data.bin"
  cat > "$work/pkg/manifest.json" <<'JSON'
{"schema_version":"1.0","package":{"id":"bench/big","version":"1.0.0"},"transport":{"type":"stdio"},
 "entrypoints":[{"os":"linux","arch":"amd64","command":"/bin/true","args":[]}]}
JSON
  push_package "$work/pkg"
}
