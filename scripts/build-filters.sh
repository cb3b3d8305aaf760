#!/usr/bin/env bash
# Compiles every filter folder with a manifest (filters/NAME/filter.json:
# { "name", "protocol", "entry" }) to build/filters/NAME.wasm with the one
# AssemblyScript config at the repo root (asconfig.json, target release).
# --filters DIR and --out DIR build another folder laid out the same way; its
# filters import the SDK as ../sdk, so DIR/sdk must be the SDK (a symlink to
# this repo's filters/sdk will do).
#
# Incremental: a filter is rebuilt only when its folder, the SDK or
# asconfig.json has a file newer than its .wasm. Outputs are written to a temp
# file and renamed, so concurrent builds (parallel test processes) are safe.
#
# Usage: scripts/build-filters.sh [--force] [--filters DIR] [--out DIR] [NAME...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

force=0
only=()
sources="$repo/filters"
out_dir="$repo/build/filters"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --filters) sources="$(cd "${2:?--filters needs a folder}" && pwd)"; shift ;;
    --out) out_dir="${2:?--out needs a folder}"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) only+=("$1") ;;
  esac
  shift
done
[ -d "$sources/sdk" ] || { echo "build-filters: $sources/sdk not found: the filters import the SDK as ../sdk (link it: ln -s $repo/filters/sdk $sources/sdk)" >&2; exit 1; }

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
config="$repo/asconfig.json"
asc="$repo/node_modules/.bin/asc"
# asc names the SDK's abort/trace/seed handlers by their path from its working
# directory, so it runs beside the sources folder: filters/sdk/abort/... in the repo.
cd "$(dirname "$sources")"
base="$(basename "$sources")"
use=(--use "abort=$base/sdk/abort/abortHandler" --use "trace=$base/sdk/abort/traceHandler" --use "seed=$base/sdk/abort/seedHandler")
# One build at a time (parallel test processes); the others then find it done.
if command -v flock >/dev/null; then
  exec 9>"$out_dir/.lock"
  flock 9
fi
[ -x "$asc" ] || { echo "build-filters: $asc not found (run npm ci)" >&2; exit 1; }

# manifest_table FILE... — one node process reads every manifest (a node
# start per field per filter was most of a no-op build's 2.5 s). Prints
# "FILE<TAB>name<TAB>entry" per valid manifest, "FILE<TAB>!" per bad one (the
# reason, naming the file, on stderr) and nothing for one that vanished.
manifest_table() {
  node -e '
    const fs = require("fs");
    for (const file of process.argv.slice(1)) {
      let m;
      try { m = JSON.parse(fs.readFileSync(file, "utf8")); }
      catch (e) {
        if (e.code === "ENOENT") continue; // a folder removed after the glob listed it is simply gone
        console.error(`${file}: not valid JSON: ${e.message}`);
        process.stdout.write(`${file}\t!\n`);
        continue;
      }
      const bad = ["name", "protocol", "entry"].find((f) => typeof m?.[f] !== "string" || m[f] === "" || /[\t\n]/.test(m[f]));
      if (bad) {
        console.error(`${file}: "${bad}" must be a non-empty string`);
        process.stdout.write(`${file}\t!\n`);
        continue;
      }
      process.stdout.write(`${file}\t${m.name}\t${m.entry}\n`);
    }
  ' "$@"
}

# A broken filter (bad manifest, compile error) is reported and the others
# still built; the exit status is 1 if any failed (the server leaves the
# broken ones out, naming them, and serves the rest).
built=0 skipped=0 found=0 failed=()
manifests=()
for manifest in "$base"/*/filter.json; do
  # A folder removed after the glob listed it is simply gone, not an error.
  [ -e "$manifest" ] && manifests+=("$manifest")
done
table=""
if [ ${#manifests[@]} -gt 0 ]; then table="$(manifest_table "${manifests[@]}")"; fi
# (read from fd 3, so that nothing in the loop, asc included, can read the table from stdin)
while IFS=$'\t' read -r -u 3 manifest name entry; do
  [ -n "$manifest" ] || continue
  [ "$name" != "!" ] || { failed+=("$manifest"); continue; }
  dir="$(dirname "$manifest")"
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $name " ]]; then continue; fi
  found=$((found + 1))
  [[ "$name" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "build-filters: $manifest: name '$name' must match [a-z0-9][a-z0-9_-]*" >&2; failed+=("$manifest"); continue; }
  [ -f "$dir/$entry" ] || { echo "build-filters: $manifest: entry $dir/$entry does not exist" >&2; failed+=("$manifest"); continue; }
  out="$out_dir/$name.wasm"
  if [ "$force" = 0 ] && [ -f "$out" ] \
      && [ -z "$(find "$dir" "$base/sdk/" "$config" -newer "$out" -type f -print -quit)" ]; then
    skipped=$((skipped + 1))
    continue
  fi
  tmp="$(mktemp "$out_dir/.$name.XXXXXX")"
  if ! "$asc" "$dir/$entry" --config "$config" --target release "${use[@]}" -o "$tmp" 2> "$tmp.log"; then
    grep -v 'Unknown user config' "$tmp.log" >&2 || true
    rm -f "$tmp" "$tmp.log"
    echo "build-filters: $name: compile failed" >&2
    failed+=("$manifest")
    continue
  fi
  rm -f "$tmp.log"
  chmod 644 "$tmp"
  mv -f "$tmp" "$out"
  built=$((built + 1))
  echo "build-filters: $out ($(wc -c < "$out") bytes)"
done 3<<< "$table"
if [ ${#failed[@]} -gt 0 ]; then
  echo "build-filters: failed: ${failed[*]}" >&2
  exit 1
fi
if [ ${#only[@]} -gt 0 ] && [ "$found" = 0 ]; then
  echo "build-filters: no filter named ${only[*]}" >&2
  exit 1
fi
[ "$built" = 0 ] && echo "build-filters: $skipped filter(s) up to date"
exit 0
