// The command line explains itself: help on every command, flag errors that
// name the command's flags, one YAML syntax error where the mistake is, and
// counts in words that agree with them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { COMMANDS, plural } from '../../xds-server/cli/help.ts';
import { protoplane } from '../support/cli.ts';



const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-cli-help-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('protoplane help', () => {
  it('--help, -h and `help` print the commands with examples, exit 0', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await protoplane(...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      for (const command of Object.keys(COMMANDS)) assert.match(r.stdout, new RegExp(`^  ${command} `, 'm'));
      assert.match(r.stdout, /examples:\n  protoplane validate /);
    }
  });

  it('no command: the same list on stderr, exit 2', async () => {
    const r = await protoplane();
    assert.equal(r.code, 2);
    assert.match(r.stderr, /commands:/);
  });

  for (const command of ['serve', 'validate', 'bootstrap', 'new-filter', 'replay']) {
    it(`${command} --help / -h / help ${command}: usage, every flag the command takes, examples`, async () => {
      const outputs = await Promise.all([protoplane(command, '--help'), protoplane(command, '-h'), protoplane('help', command)]);
      for (const r of outputs) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, outputs[0]!.stdout);
      }
      const out = outputs[0]!.stdout;
      assert.match(out, new RegExp(`^usage: protoplane ${command}`));
      assert.match(out, /\nexamples:\n  protoplane /);
      // Every flag the help has words for is one the command accepts, and is listed.
      for (const flag of Object.keys(COMMANDS[command]!.flags)) {
        assert.match(out, new RegExp(`--${flag}\\b.*\\S`), `${command} --help lists --${flag} with its meaning`);
      }
    });
  }

  it('an unknown flag names the command and its flags; exit 2', async () => {
    const r = await protoplane('bootstrap', '--node-id', 'a', '--dleta');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^protoplane bootstrap: unknown flag --dleta; bootstrap's flags are --xds, --node-id, .*--delta/);
    assert.match(r.stderr, /protoplane bootstrap --help/);
    assert.doesNotMatch(r.stderr, /ERR_PARSE_ARGS|at parseArgs/);
  });

  it('a flag without its value says which; an unknown command says so', async () => {
    const r = await protoplane('serve', '--config');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^protoplane serve: --config needs a value/);
    const u = await protoplane('srve');
    assert.equal(u.code, 2);
    assert.match(u.stderr, /unknown command: srve/);
  });
});

describe('protoplane validate', () => {
  it('a missing } is one error, on the line that lacks it', async () => {
    const bad = file(
      'missing-brace.yaml',
      [
        'listeners:',
        '  - name: web',
        '    port: 10080',
        '    protocol: http',
        '    routes:',
        '      - match: { prefix: /api, headers: { x-canary: "1" }',
        '        cluster: api-v2',
        '      - match: { prefix: / }',
        '        cluster: api-v1',
        'clusters:',
        '  - name: api-v1',
        '    endpoints: [ 127.0.0.1:18080 ]',
        '  - name: api-v2',
        '    endpoints: [ 127.0.0.1:18081 ]',
        '',
      ].join('\n'),
    );
    const r = await protoplane('validate', bad);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.equal(lines[0], `${bad}:6:16: invalid YAML: this { is never closed: a } is missing on this line or after it (at listeners[0].routes[0].match)`);
  });

  it('an unclosed quote is one error, at the quote', async () => {
    const bad = file('quote.yaml', 'listeners:\n  - name: "web\n    port: 10080\n    protocol: tcp\n    routes: [ { cluster: a } ]\nclusters: []\n');
    const r = await protoplane('validate', bad);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), `${bad}:2:11: invalid YAML: this " quote is never closed (at listeners[0].name)`);
  });

  it('every unknown tag is still reported, each at its line (they do not cascade)', async () => {
    const { parseMesh, formatConfigError } = await import('../../xds-server/config/index.ts');
    const result = parseMesh('listeners: !foo []\nclusters: !bar []\n', 'tags.yaml');
    assert.ok(!result.ok);
    assert.deepEqual(result.errors.map(formatConfigError), ['tags.yaml:1:12: invalid YAML: unresolved tag: !foo', 'tags.yaml:2:11: invalid YAML: unresolved tag: !bar']);
  });

  it('an empty file is an error', async () => {
    const r = await protoplane('validate', file('empty.yaml', ''));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /empty\.yaml:1:1: .*empty/);
  });

  it('counts agree with their nouns', async () => {
    const one = file('one.yaml', 'listeners:\n  - name: raw\n    port: 10081\n    protocol: tcp\n    routes: [ { cluster: echo } ]\nclusters:\n  - name: echo\n    endpoints: [ 127.0.0.1:9 ]\n');
    const r = await protoplane('validate', one);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${one}: ok (1 listener, 1 cluster)\n`);
    assert.equal(plural(0, 'listener'), '0 listeners');
    assert.equal(plural(2, 'cluster'), '2 clusters');
  });
});
