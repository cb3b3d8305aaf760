#!/usr/bin/env bash
# Every test: installs its own peers (cached under .cache/), type-checks, then
# runs unit, protocol and real-Envoy end-to-end tests with node's test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
bash test/support/install-peers.sh
npx --no-install tsc --noEmit -p .

mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
exec node --import tsx --test --test-concurrency=2 "$@" "${files[@]}"
