// Process metrics: prom-client's defaults, minus the ones that list every
// socket on each scrape (with 10,000 Envoys connected each scrape would block
// the event loop for tens of ms).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from '../../xds-server/metrics.ts';

describe('process metrics', () => {
  it('keep the cheap defaults and drop the per-handle listings', async () => {
    const text = await new Metrics().registry.metrics();
    for (const name of ['process_cpu_seconds_total', 'process_open_fds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_max_seconds', 'protoplane_xds_connected_streams']) {
      assert.match(text, new RegExp(`^${name}`, 'm'), name);
    }
    for (const name of ['nodejs_active_handles', 'nodejs_active_resources']) {
      assert.doesNotMatch(text, new RegExp(`^${name}`, 'm'), name);
    }
  });

  it('are left out altogether when asked', async () => {
    const text = await new Metrics({ processMetrics: false }).registry.metrics();
    assert.doesNotMatch(text, /^process_cpu_seconds_total/m);
    assert.match(text, /^protoplane_xds_connected_streams/m);
  });
});
