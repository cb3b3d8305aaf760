// The passthrough filter's CoAP frame walk ({"read": true, "walk": "coap"}) is
// the floor test/bench/coap.ts holds the coap filter to: it must find every
// RFC 8323 frame (all four length forms, tokens of 0–8 bytes) whatever the
// chunking, or the floor would be cheaper than an honest walk.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadFilter } from '../../xds-server/catalog/index.ts';
import { splitAt } from '../support/bytes.ts';
import { rng } from '../support/random.ts';
import { signalingFrames, tcpFrame } from './packets.ts';

describe('passthrough filter, CoAP frame walk (the bench floor)', () => {
  it('counts frames of every length form across any chunk boundary', async () => {
    // Len 0..12 inline, 13 (one byte), 14 (two bytes), 15 (four bytes)
    const bodies = [0, 1, 12, 13, 100, 268, 269, 1000, 65_804, 65_805, 70_000];
    const frames = bodies.map((n, i) => tcpFrame(0x03, Buffer.alloc(i % 9, 0xe0 | i), Buffer.alloc(n, 0xff)));
    frames.push(...signalingFrames().map((s) => s.bytes));
    const stream = Buffer.concat(frames);
    const random = rng(11);
    const splits: Buffer[][] = [[stream]];
    for (const size of [1, 2, 3, 5]) {
      // small chunks over the short frames (every header cut everywhere), then the rest whole
      const cuts = Array.from({ length: Math.floor(2_000 / size) }, (_, i) => (i + 1) * size);
      splits.push(splitAt(stream, cuts));
    }
    for (let k = 0; k < 20; k++) {
      const cuts = [...new Set(Array.from({ length: 12 }, () => 1 + Math.floor(random() * (stream.length - 1))))].sort((a, b) => a - b);
      splits.push(splitAt(stream, cuts));
    }
    // a cut inside each frame's length bytes
    let at = 0;
    for (const f of frames) {
      for (let cut = 1; cut < Math.min(f.length, 6); cut++) splits.push(splitAt(stream, [at + cut]));
      at += f.length;
    }
    const passthrough = await loadFilter('passthrough');
    for (const chunks of splits) {
      const plugin = await passthrough.instantiate({ configuration: { read: true, walk: 'coap' }, record: false });
      const conn = plugin.newConnection();
      for (const c of chunks) conn.downstream(c);
      assert.equal(plugin.metric('passthrough.frames'), frames.length, `chunks of ${chunks.map((c) => c.length).join(',')}`);
      plugin.close();
    }
  });

  it('refuses a walk it does not know', async () => {
    const passthrough = await loadFilter('passthrough');
    await assert.rejects(passthrough.instantiate({ configuration: { read: true, walk: 'amqp' }, record: false }));
  });
});
