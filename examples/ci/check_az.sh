#!/usr/bin/env bash
# The real az against the ephemeral server whose environment is exported: a config directory
# of its own, the cloud registered and logged in by `strongroom az-setup --apply`.
set -euo pipefail
AZ=${AZ:-az}
STRONGROOM=${STRONGROOM:-strongroom}
export AZURE_CONFIG_DIR
AZURE_CONFIG_DIR=$(mktemp -d)
trap 'rm -rf "$AZURE_CONFIG_DIR"' EXIT
port=${STRONGROOM_AUTHORITY##*:}
vault=${AZURE_KEYVAULT_URL#https://}
vault=${vault%%.*}
"$STRONGROOM" az-setup --apply --az "$AZ" --data-dir "$STRONGROOM_DATA_DIR" --port "$port" \
  --client-id "$AZURE_CLIENT_ID" --client-secret "$AZURE_CLIENT_SECRET" \
  --config-dir "$AZURE_CONFIG_DIR" >/dev/null
# az-setup logs az in; the AZURE_* credential variables are the SDK's, not az's.
env -u AZURE_CLIENT_ID -u AZURE_CLIENT_SECRET -u AZURE_TENANT_ID -u AZURE_AUTHORITY_HOST \
  "$AZ" keyvault secret set --vault-name "$vault" --name from-az --value hello --only-show-errors >/dev/null
env -u AZURE_CLIENT_ID -u AZURE_CLIENT_SECRET -u AZURE_TENANT_ID -u AZURE_AUTHORITY_HOST \
  "$AZ" keyvault secret show --vault-name "$vault" --name from-az --query value -o tsv --only-show-errors
