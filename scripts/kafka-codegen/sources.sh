#!/usr/bin/env bash
# Fetches the kafka-clients sources jars the codec is generated from (Maven
# Central, cached in <repo>/.cache/m2) and extracts their common/message/*.json
# into <repo>/.cache/kafka-messages/VERSION/. Idempotent; prints one line per version.
#
# Usage: scripts/kafka-codegen/sources.sh [VERSION...]   (default: 4.2.0 3.9.1)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$REPO_ROOT/.cache"
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(4.2.0 3.9.1)
command -v mvn >/dev/null || { echo "kafka-codegen: mvn is required (apt-get install maven)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "kafka-codegen: unzip is required (apt-get install unzip)" >&2; exit 1; }
for v in "${versions[@]}"; do
  out="$CACHE/kafka-messages/$v"
  if [ ! -f "$out/.done" ]; then
    jar="$CACHE/m2/org/apache/kafka/kafka-clients/$v/kafka-clients-$v-sources.jar"
    if [ ! -f "$jar" ]; then
      echo "kafka-codegen: fetching org.apache.kafka:kafka-clients:$v:jar:sources (mvn)"
      mvn -B -q -Dmaven.repo.local="$CACHE/m2" dependency:get \
        -Dartifact="org.apache.kafka:kafka-clients:$v:jar:sources" -Dtransitive=false >&2 \
        || { echo "kafka-codegen: mvn could not fetch kafka-clients $v sources" >&2; exit 1; }
    fi
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    unzip -q -o -j "$jar" 'common/message/*.json' -d "$out.tmp"
    rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/.done"
  fi
  echo "kafka-codegen: $out ($(ls "$out"/*.json | wc -l) message files)"
done
