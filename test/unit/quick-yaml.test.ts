// The quick read (js-yaml) must give exactly the data the full parser (`yaml`,
// with positions) gives, or step aside. Compared on every YAML file and YAML
// block of the docs in the repo, on the fan-out bench's mesh, and on scalars
// and keys where YAML 1.1 and 1.2 or the two libraries could part ways.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { REPO_ROOT } from '../../xds-server/catalog/index.ts';
import { parseMesh } from '../../xds-server/config/index.ts';
import { quickYaml } from '../../xds-server/config/quick-yaml.ts';
import { DEFAULT_YAML_LIMITS } from '../../xds-server/config/source.ts';
import { benchMesh } from '../bench/xds-fanout/servers.ts';

/** What the full parser makes of `text`: its data, or undefined when it reports any error or warning. */
function fullRead(text: string): { data: unknown } | undefined {
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0 || doc.warnings.length > 0) return undefined;
  return { data: doc.toJS({ maxAliasCount: -1 }) };
}

/** The quick read either agrees with the full parser or steps aside; returns whether it read the text. */
function agrees(text: string, what: string): boolean {
  const quick = quickYaml(text, DEFAULT_YAML_LIMITS);
  if (!quick) return false;
  const full = fullRead(text);
  assert.ok(full, `${what}: the quick read accepted what the full parser refuses:\n${text}`);
  assert.deepEqual(quick.data, full.data, `${what}: the two reads differ:\n${text}`);
  return true;
}

function repoYaml(): Array<{ what: string; text: string }> {
  const files = execFileSync('git', ['ls-files', '*.yaml', '*.yml', '*.md'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
  const out: Array<{ what: string; text: string }> = [];
  for (const file of files) {
    const text = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
    if (!file.endsWith('.md')) {
      out.push({ what: file, text });
      continue;
    }
    const blocks = text.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm);
    let i = 0;
    for (const block of blocks) out.push({ what: `${file} yaml block ${++i}`, text: block[1]! });
  }
  return out;
}

describe('quick YAML read', () => {
  it('reads every YAML file and docs block of the repo as the full parser does', () => {
    const corpus = repoYaml();
    let read = 0;
    for (const { what, text } of corpus) if (agrees(text, what)) read++;
    // Most of them are plain: if the quick read stepped aside for all, it would be dead code.
    assert.ok(corpus.length >= 15 && read > corpus.length / 2, `read ${read} of ${corpus.length}`);
  });

  it('reads the fan-out bench mesh as the full parser does', () => {
    assert.ok(agrees(benchMesh(200, true, true), 'bench mesh'));
  });

  it('agrees on scalars and keys where YAML versions or libraries differ', () => {
    const cases = [
      'a: 0x10', 'a: 0o17', 'a: 017', 'a: 09', 'a: 0b11', 'a: 1_000', 'a: 0x1F_FF', 'a: 99999999999999999999',
      'a: .inf', 'a: -.Inf', 'a: +.INF', 'a: .NaN', 'a: 1e3', 'a: 1E+3', 'a: 1.', 'a: .5', 'a: +.5', 'a: -0', 'a: +1', 'a: 00',
      'a: yes', 'a: No', 'a: On', 'a: off', 'a: y', 'a: TRUE', 'a: True', 'a: tRUE', 'a: NULL', 'a: Null', 'a: ~', 'a:', 'a: nULL',
      'a: 2001-01-01', 'a: 12:30:00', 'a: =', 'a: <', 'a: 1:2', 'a: "1"', "a: '0x10'",
      '1: a', 'true: a', 'TRUE: a', '1.0: a', '1.50: a', '0x10: a', '.inf: a', '.nan: a', '"null": a', "'~': a", '"": a',
      '__proto__: a', 'a: {__proto__: {b: c}}', 'constructor: a',
      'a: "\\x41\\u263A\\U0001F600\\t\\/"', 'a: "\\N\\_\\L\\P"', "a: 'it''s'", 'a: "multi\n  line\n\n  para"', "a: 'single\n\n  multi'",
      'a: plain\n  more\n\n  para', 'a: |\n  x\n   y\n\n', 'a: |-\n  x\n', 'a: |+\n  x\n\n', 'a: |2\n   x\n  y\n',
      'a: >-\n  x\n  y\n\n  z\n', 'a: >\n  folded\n    more\n  back\n', 'a: >+\n\n  x\n\n\n',
      "a: [1, 'x', {b: c}, [d]]", 'a: {b, c: d}', 'a: [b: c]', 'a: [1,]', 'a: {b: 1,}', '- a\n- - b\n  - c\n-\n', '[a, b]', '{a: 1}', 'plain',
      'a: b # comment', 'a: "b" #c', 'a: b#c', '# c\na: 1 # c\n# c\n', '---\na: 1\n', '---\na: 1\n...\n',
      'a: &x 1\nb: 2', 'a:\r\n  b: 1\r\n', '\uFEFFa: 1', 'a: é ü ☺', 'a: "\\u00e9"',
      'listeners:\n  - name: x\n    port: 1\n    routes: [ { cluster: c } ]\nclusters:\n  - name: c\n    endpoints: [ 127.0.0.1:1 ]\n',
    ];
    let read = 0;
    for (const text of cases) if (agrees(text, JSON.stringify(text))) read++;
    assert.ok(read > cases.length * 0.8, `read ${read} of ${cases.length}`);
  });

  it('steps aside for aliases, tags, merge keys, directives, null keys and every error', () => {
    const aside = [
      'a: &x 1\nb: *x', 'a: !!str 1', 'a: !!int "1"', 'a: !custom 1', '<<: {a: 1}\nb: 2', 'b: {<<: {a: 1}}',
      '%YAML 1.1\n---\na: yes', '%TAG !e! tag:example.com,2000:\n---\na: 1',
      '~: a', 'null: a', 'Null: a', 'a: {null: b}', '? [a, b]\n: c', '[a, b]: c', '{a: b}: c',
      'a: 1\na: 2', '', '# only a comment\n', '  \n', 'a: b\n---\nc: d', 'a:\n\t- b', 'a: [b', 'a: "b', 'a: b\n c: d', 'a: - b',
      `a: ${'['.repeat(120)}${']'.repeat(120)}`,
    ];
    for (const text of aside) assert.equal(quickYaml(text, DEFAULT_YAML_LIMITS), undefined, `read ${JSON.stringify(text)}`);
    // Near the node limit, the full parser's exact count decides.
    assert.equal(quickYaml('[1, 2, 3, 4, 5]', { maxExpandedNodes: 10 }), undefined);
    assert.ok(quickYaml('[1, 2, 3, 4, 5]', { maxExpandedNodes: 12 }));
  });

  it('a quickly read mesh reports every problem where the full parse does', () => {
    // `<<` in a comment sends the same text down the full parse (quick-yaml.ts steps aside for it).
    const fullParse = (text: string) => `${text}# <<\n`;
    const text = 'listeners:\n  - name: web\n    port: 8080\n    protocol: tcp\n    routes:\n      - cluster: nowhere\nclusters:\n  - name: api\n    endpoints: [127.0.0.1:9000]\n';
    assert.ok(quickYaml(text, DEFAULT_YAML_LIMITS) && !quickYaml(fullParse(text), DEFAULT_YAML_LIMITS));
    const quick = parseMesh(text, 'mesh.yaml');
    assert.ok(!quick.ok && quick.errors.length === 1 && quick.errors[0]!.line === 6, JSON.stringify(quick));
    assert.deepEqual(quick, parseMesh(fullParse(text), 'mesh.yaml'));
    // A schema problem, and a later check (a filter refusing its settings) through the result's own error():
    const bad = text.replace('port: 8080', 'port: eighty');
    assert.deepEqual(parseMesh(bad, 'mesh.yaml'), parseMesh(fullParse(bad), 'mesh.yaml'));
    const good = text.replace('nowhere', 'api');
    const [a, b] = [parseMesh(good, 'mesh.yaml'), parseMesh(fullParse(good), 'mesh.yaml')];
    assert.ok(a.ok && b.ok);
    const later = a.error(['clusters', 0, 'endpoints', 0], 'refused');
    assert.deepEqual(later, { file: 'mesh.yaml', line: 9, col: 17, path: 'clusters[0].endpoints[0]', message: 'refused' });
    assert.deepEqual(later, b.error(['clusters', 0, 'endpoints', 0], 'refused'));
  });
});
