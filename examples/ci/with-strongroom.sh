#!/usr/bin/env bash
# Runs a command against a throwaway Strongroom: a generic CI step.
#
#   examples/ci/with-strongroom.sh [--vault NAME]... [--seed FILE] -- COMMAND [ARGS...]
#
# Starts `strongroom serve --ephemeral`, waits until it answers (its environment file appears),
# exports that environment (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID,
# AZURE_AUTHORITY_HOST, AZURE_KEYVAULT_URL, REQUESTS_CA_BUNDLE, SSL_CERT_FILE,
# NODE_EXTRA_CA_CERTS, STRONGROOM_*), runs COMMAND, and stops the server, which removes
# everything it made. The exit code is COMMAND's.
set -euo pipefail

args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
[ "${1:-}" = "--" ] || { echo "usage: $0 [serve options] -- COMMAND [ARGS...]" >&2; exit 2; }
shift

STRONGROOM=${STRONGROOM:-strongroom}
workdir=$(mktemp -d)
env_file="$workdir/strongroom.env"
"$STRONGROOM" serve --ephemeral --env-file "$env_file" "${args[@]}" 2>"$workdir/server.log" &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$workdir"; }
trap cleanup EXIT

for _ in $(seq 600); do
  [ -s "$env_file" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$workdir/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$env_file" ] || { echo "Strongroom did not start within 60 s" >&2; exit 1; }

set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
"$@"
