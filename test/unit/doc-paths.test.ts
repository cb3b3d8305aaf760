// No doc points at a file that is not in the repo: every `path/like.ts` in
// backticks in the README and docs names a file or folder that exists (by
// its path from the repo root, or as the end of one, e.g. `host.ts` of
// wasm-host/). Templates (NAME, DIR) and URL paths (/status.json) are skipped.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { REPO_ROOT } from '../support/envoy.ts';

const DOCS = ['README.md', 'filters/README.md', ...fs.readdirSync(path.join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const PATH_IN_BACKTICKS = /`([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*\.(?:ts|mjs|sh|md|json|yaml|yml|html|png))`/g;
const SKIP_DIRS = new Set(['node_modules', '.git', '.cache', 'build']);

function allFiles(dir: string, out: string[] = []): string[] {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) allFiles(full, out);
    else out.push(path.relative(REPO_ROOT, full));
  }
  return out;
}

it('every file path the docs name exists in the repo', () => {
  const files = allFiles(REPO_ROOT);
  const missing: string[] = [];
  for (const doc of DOCS) {
    const text = fs.readFileSync(path.join(REPO_ROOT, doc), 'utf8');
    for (const [, named] of text.matchAll(PATH_IN_BACKTICKS)) {
      if (/\b(NAME|DIR)\b/.test(named!)) continue;
      const found = files.some((f) => f === named || f.endsWith(`/${named}`));
      if (!found) missing.push(`${doc}: ${named}`);
    }
  }
  assert.deepEqual(missing, [], `docs name files that are not in the repo:\n${missing.join('\n')}`);
});
