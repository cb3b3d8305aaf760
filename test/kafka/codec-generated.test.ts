// The committed codec (filters/kafka/gen/) is what the generator makes from
// Kafka's own message definitions in the kafka-clients 4.2.0 and 3.9.1
// sources jars (Maven Central, cached under .cache/ by
// scripts/kafka-codegen/sources.sh): regenerated here and compared.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

describe('kafka codec generator', () => {
  it('regenerating from the kafka-clients 4.2.0 + 3.9.1 sources jars gives the committed files', { timeout: 300_000 }, async () => {
    const sources = await run('bash', [path.join(ROOT, 'scripts/kafka-codegen/sources.sh'), '4.2.0', '3.9.1'], { cwd: ROOT });
    process.stdout.write(sources.stdout);
    const dirs = ['4.2.0', '3.9.1'].map((v) => path.join(ROOT, '.cache/kafka-messages', v));
    const check = await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/kafka-codegen/generate.ts'), '--check', ...dirs], { cwd: ROOT })
      .catch((err: { stdout?: string; stderr?: string; code?: number }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: err.code }));
    assert.ok(!('code' in check) || check.code === undefined, `generated files differ: ${check.stderr}`);
    assert.match(check.stdout, /4 generated files match/);
  });

  it('the version table covers what both releases define (spot checks against the JSON)', async () => {
    const { readFileSync } = await import('node:fs');
    const apis = readFileSync(path.join(ROOT, 'filters/kafka/gen/apis.ts'), 'utf8');
    const table = (name: string) => JSON.parse(/export const [A-Z_]+: StaticArray<i16> = (\[[^\]]*\]);/g.exec(apis.slice(apis.indexOf(`export const ${name}:`)))![1]!) as number[];
    const min = table('API_MIN_VERSION');
    const max = table('API_MAX_VERSION');
    // Produce: 3.9 still serves v0-2 (removed in 4.0), 4.2 adds v13 (topic ids)
    assert.deepEqual([min[0], max[0]], [0, 13]);
    // Fetch v0-18; Metadata v0-13; ApiVersions v0-4
    assert.deepEqual([min[1], max[1], min[3], max[3], min[18], max[18]], [0, 18, 0, 13, 0, 4]);
    // LeaderAndIsr (4) exists only in 3.9 (4.2 marks it "none")
    assert.ok(max[4]! >= 7);
    const reqFlex = table('API_REQUEST_FLEXIBLE_FROM');
    assert.equal(reqFlex[0], 9); // Produce flexible from v9
    assert.equal(reqFlex[17], 0x7fff); // SaslHandshake never flexible
  });
});

describe('kafka manifest', () => {
  it('acl.deny_api_keys accepts exactly the API names of the generated table', async () => {
    const { readFileSync } = await import('node:fs');
    const names = [...readFileSync(path.join(ROOT, 'filters/kafka/gen/apis.ts'), 'utf8').matchAll(/^ {2}"([A-Za-z]*)",$/gm)].map((m) => m[1]).filter((n) => n !== '');
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'filters/kafka/filter.json'), 'utf8')) as {
      settings: { properties: { acl: { properties: { deny_api_keys: { items: { anyOf: [unknown, { enum: string[] }] } } } } } };
    };
    assert.deepEqual(manifest.settings.properties.acl.properties.deny_api_keys.items.anyOf[1].enum, names);
    assert.ok(names.includes('DeleteTopics') && names.includes('Produce'));
  });
});
