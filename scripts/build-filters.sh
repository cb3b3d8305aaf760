#!/usr/bin/env bash
# Compiles every filter folder with a manifest (filters/NAME/filter.json:
# { "name", "protocol", "entry" }) to build/filters/NAME.wasm with the one
# AssemblyScript config at the repo root (asconfig.json, target release).
#
# Incremental: a filter is rebuilt only when its folder, filters/sdk/ or
# asconfig.json has a file newer than its .wasm. Outputs are written to a temp
# file and renamed, so concurrent builds (parallel test processes) are safe.
#
# Usage: scripts/build-filters.sh [--force] [NAME...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

force=0
only=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) only+=("$arg") ;;
  esac
done

out_dir=build/filters
mkdir -p "$out_dir"
asc=node_modules/.bin/asc
# One build at a time (parallel test processes); the others then find it done.
if command -v flock >/dev/null; then
  exec 9>"$out_dir/.lock"
  flock 9
fi
[ -x "$asc" ] || { echo "build-filters: $asc not found (run npm ci)" >&2; exit 1; }

# manifest_field FILE FIELD — prints a string field of a manifest, or fails naming the file.
manifest_field() {
  node -e '
    const [file, field] = process.argv.slice(1);
    let m;
    try { m = JSON.parse(require("fs").readFileSync(file, "utf8")); }
    catch (e) { console.error(`${file}: not valid JSON: ${e.message}`); process.exit(1); }
    const v = m[field];
    if (typeof v !== "string" || v === "") { console.error(`${file}: "${field}" must be a non-empty string`); process.exit(1); }
    process.stdout.write(v);
  ' "$1" "$2"
}

# A broken filter (bad manifest, compile error) is reported and the others
# still built; the exit status is 1 if any failed (the server leaves the
# broken ones out, naming them, and serves the rest).
built=0 skipped=0 found=0 failed=()
for manifest in filters/*/filter.json; do
  # A folder removed after the glob listed it is simply gone, not an error.
  [ -e "$manifest" ] || continue
  dir="$(dirname "$manifest")"
  name="$(manifest_field "$manifest" name)" || { [ -e "$manifest" ] || continue; failed+=("$manifest"); continue; }
  manifest_field "$manifest" protocol >/dev/null || { failed+=("$manifest"); continue; }
  entry="$(manifest_field "$manifest" entry)" || { failed+=("$manifest"); continue; }
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $name " ]]; then continue; fi
  found=$((found + 1))
  [[ "$name" =~ ^[a-z0-9][a-z0-9_-]*$ ]] || { echo "build-filters: $manifest: name '$name' must match [a-z0-9][a-z0-9_-]*" >&2; failed+=("$manifest"); continue; }
  [ -f "$dir/$entry" ] || { echo "build-filters: $manifest: entry $dir/$entry does not exist" >&2; failed+=("$manifest"); continue; }
  out="$out_dir/$name.wasm"
  if [ "$force" = 0 ] && [ -f "$out" ] \
      && [ -z "$(find "$dir" filters/sdk asconfig.json -newer "$out" -type f -print -quit)" ]; then
    skipped=$((skipped + 1))
    continue
  fi
  tmp="$(mktemp "$out_dir/.$name.XXXXXX")"
  if ! "$asc" "$dir/$entry" --config asconfig.json --target release -o "$tmp" 2> "$tmp.log"; then
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
done
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
