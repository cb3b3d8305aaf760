// The admin root's status page, in headless Chromium (Debian's `chromium`,
// driven by puppeteer-core), against protoplane and a stock Envoy: the page
// shows the Envoy in sync with its transport and versions and the loaded
// filter with its sha256; then, without reloading, it shows a change Envoy
// NACKs with Envoy's own error text, and a refused edit with file:line:col.
// PROTOPLANE_SCREENSHOT=docs/status-page.png saves the final page (the
// README's picture).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import { httpGet } from '../support/upstreams.ts';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function meshYaml(web: number, lines: number, extraRoute = ''): string {
  return `listeners:
  - name: web
    port: ${web}
    protocol: http
    routes:
${extraRoute}      - match: { prefix: / }
        cluster: api
  - name: lines
    port: ${lines}
    protocol: contract
    filter: { route_prefix: "A:", route_cluster: api }
    routes:
      - cluster: api
clusters:
  - name: api
    endpoints: [ 127.0.0.1:9 ]
`;
}

describe('the status page, in headless Chromium', () => {
  let env: MeshEnv;
  let browser: Browser;
  let page: Page;
  let web = 0;
  let lines = 0;

  before(async () => {
    // Loud, not skipped: test/support/install-peers.sh installs it.
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: run bash test/support/install-peers.sh (apt chromium)`);
    web = await freePort();
    lines = await freePort();
    env = await startMeshEnv({ yaml: meshYaml(web, lines), nodeId: 'status-envoy', bootstrap: { delta: true }, listeners: ['web', 'lines'] });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  });

  after(async () => {
    await browser?.close();
    await env?.close();
  });

  const text = (selector: string) => page.$eval(selector, (e) => e.textContent ?? '').catch(() => '');

  it('shows the connected Envoy in sync, its transport and versions, and the filter with its sha256', async () => {
    await page.goto(`http://127.0.0.1:${env.server.adminPort}/`);
    await page.waitForFunction(() => document.querySelector('[data-node="status-envoy"]')?.textContent?.includes('● in sync'), { timeout: 15_000 });
    const node = await text('[data-node="status-envoy"]');
    assert.match(node, /Delta ADS/);
    for (const type of ['Cluster', 'Listener', 'RouteConfiguration', 'TypedExtensionConfig']) assert.match(node, new RegExp(type));
    assert.equal(await text('#config-version'), env.server.cache.snapshot!.version);
    const sha256 = env.server.filters().entries.get('contract')!.sha256;
    assert.ok(await page.$(`#filters td[title="${sha256}"]`), 'the contract filter is listed with its sha256');
  });

  it('shows a change Envoy NACKs, with Envoy\'s error, without a reload', async () => {
    const loads: string[] = [];
    page.on('framenavigated', (frame) => loads.push(frame.url()));
    // Lookahead passes our schema (JS RegExp) but not Envoy's RE2: Envoy NACKs the route.
    env.write(meshYaml(web, lines, `      - match: { regex: "^/(?=look)ahead" }\n        cluster: api\n`));
    await page.waitForFunction(() => document.querySelector('[data-node="status-envoy"]')?.textContent?.includes('NACKed'), { timeout: 15_000 });
    const node = await text('[data-node="status-envoy"]');
    assert.match(node, /● out of sync/);
    const nack = await page.$$eval('[data-node="status-envoy"] tr', (rows) => rows.map((r) => r.textContent ?? '').find((t) => t.startsWith('RouteConfiguration')) ?? '');
    assert.match(nack, /NACKed/);
    assert.match(nack, /regex|RE2|invalid/i, 'Envoy\'s own error text');
    assert.deepEqual(loads, [], 'the page updated itself');
  });

  it('shows a refused edit with file:line:col, and the version still served', async () => {
    const served = env.server.cache.snapshot!.version;
    env.write(meshYaml(web, lines).replace('cluster: api\n  - name: lines', 'cluster: missing\n  - name: lines'));
    await page.waitForSelector('#config-errors', { timeout: 15_000 });
    assert.match(await text('#config-errors'), /mesh\.yaml:\d+:\d+: .*"missing".*\(at listeners\[0\]\.routes\[\d\]\.cluster\)/);
    assert.equal(await text('#config-version'), served);
    const shot = process.env.PROTOPLANE_SCREENSHOT;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
  });

  it('/debug/nodes is pretty JSON for curl, one line with ?compact', async () => {
    const pretty = await httpGet(env.server.adminPort, '/debug/nodes');
    assert.match(pretty.body, /^\{\n {2}"nodes": \[\n/);
    const compact = await httpGet(env.server.adminPort, '/debug/nodes?compact');
    assert.equal(compact.body.trim().split('\n').length, 1);
    assert.deepEqual(JSON.parse(compact.body), JSON.parse(pretty.body));
  });
});
