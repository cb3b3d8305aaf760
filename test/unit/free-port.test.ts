// freePort() (test/support/envoy.ts) hands a port to one test process only:
// two processes picking at once, as two suites' servers and Envoys do, never
// get the same port. Without the reservations, 500 random picks each from the
// 22,768 ports below the ephemeral range would share ~11 ports.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { REPO_ROOT } from '../support/envoy.ts';

const run = promisify(execFile);
const PICKS = 500;

it('two processes picking ports at once never get the same one', async () => {
  const script = `import { freePort } from './test/support/envoy.ts';
const ports = [];
for (let i = 0; i < ${PICKS}; i++) ports.push(await freePort());
console.log(JSON.stringify(ports));`;
  const pick = async (): Promise<number[]> => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT });
    return JSON.parse(stdout) as number[];
  };
  const [a, b] = await Promise.all([pick(), pick()]);
  assert.equal(new Set(a).size, PICKS);
  assert.equal(new Set(b).size, PICKS);
  const inB = new Set(b);
  const shared = a.filter((port) => inB.has(port));
  assert.deepEqual(shared, [], 'ports handed to both processes');
});
