#!/usr/bin/env bash
# Installs the Kafka peers the Kafka tests run against, idempotently:
#   - Apache Kafka broker + tools jars (4.2.0 and 3.9.1) from Maven Central, no tarball:
#     a packaging-pom project per version, then `mvn dependency:copy-dependencies` into
#     <repo>/.cache/kafka/<version>/libs (classpath = libs/*).
#   - Debian kcat (librdkafka's command-line client).
# Prints one line per peer. Called by test/support/install-peers.sh (peer "kafka").
# Usage: test/kafka/install-kafka.sh
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CACHE="$REPO_ROOT/.cache/kafka"
# 4.2.0: the cluster every e2e test runs. 3.9.1: still serves the API versions 4.0 removed (KIP-896).
KAFKA_VERSIONS=(4.2.0 3.9.1)
SLF4J_VERSION=1.7.36

die() { echo "install-kafka: $*" >&2; exit 1; }

quiet() {
  local out
  if ! out="$("$@" 2>&1)"; then
    echo "$out" | tail -n 30 >&2
    return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null || die "need Debian packages ($*) but apt-get is not available; install them by hand"
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    sudo=(sudo)
  fi
  quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update || die "apt-get update failed"
  quiet "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
    || die "apt-get install $* failed"
}

# The broker (kafka_2.13), the console/perf tools (kafka-tools) and a logger, for one version.
write_pom() {
  cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>protoplane.test</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>$1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$1</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$1</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
}

install_kafka_jars() {
  local version="$1" dir="$CACHE/$1"
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  mkdir -p "$dir"
  local pom
  pom="$(write_pom "$version")"
  # The stamp holds the pom the libs were copied for: a changed recipe re-copies.
  if [ -f "$dir/libs.stamp" ] && [ "$(cat "$dir/libs.stamp")" = "$pom" ] && ls "$dir/libs/"kafka_2.13-*.jar >/dev/null 2>&1; then
    :
  else
    echo "kafka $version: fetching broker and tools jars from Maven Central into $dir/libs" >&2
    printf '%s\n' "$pom" > "$dir/pom.xml"
    rm -rf "$dir/libs"
    (cd "$dir" && quiet mvn -B -q dependency:copy-dependencies -DoutputDirectory=libs -DincludeScope=runtime) \
      || die "kafka $version: mvn dependency:copy-dependencies failed (is Maven Central reachable?)"
    ls "$dir/libs/"kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka $version: no kafka_2.13 jar in $dir/libs after mvn"
    printf '%s\n' "$pom" > "$dir/libs.stamp"
  fi
  echo "kafka $version: $dir/libs ($(ls "$dir/libs" | wc -l) jars)"
}

install_kcat() {
  command -v kcat >/dev/null || apt_install kcat
  command -v kcat >/dev/null || die "kcat: still not on PATH after apt-get install kcat"
  echo "kcat: $(command -v kcat) ($(kcat -V 2>&1 | sed -n "s/^Version \([^ ]*\).*librdkafka \([^ ]*\).*/\1, librdkafka \2/p"))"
}

for v in "${KAFKA_VERSIONS[@]}"; do install_kafka_jars "$v"; done
install_kcat
