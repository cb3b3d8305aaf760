#!/usr/bin/env bash
# Every test: installs its own peers (cached under .cache/), type-checks, then
# runs unit, protocol and real-Envoy end-to-end tests with node's test runner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
bash test/support/install-peers.sh
npx --no-install tsc --noEmit -p .

mapfile -t files < <(find test -name '*.test.ts' -not -path '*/node_modules/*' | sort)
# A safety net, not a budget: node 20 applies --test-timeout to each test
# file's process as a whole, so a file that wedges (a hook that never returns,
# a child process that keeps it alive) fails as "not ok - <file> ... test timed
# out" and the run exits non-zero, instead of stalling CI until its own limit.
# The slowest file on a fresh clone took ~110 s (test/e2e/new-filter.test.ts,
# test/unit/cli-help.test.ts), so 10 minutes leaves room for a slow machine.
file_timeout_ms="${PROTOPLANE_TEST_FILE_TIMEOUT_MS:-600000}"
exec node --import tsx --test --test-concurrency=2 --test-timeout="$file_timeout_ms" "$@" "${files[@]}"
