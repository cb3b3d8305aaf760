// A large Kafka Produce request made from a recorded one (kafkajs's Produce v7
// in test/kafka/fixtures/kafkajs-4.2.pcapng): its one record batch padded to
// the size wanted (the kafka filter reads batch heads only), for tests and
// benchmarks of frames split across buffer callbacks.
import { fixture, frames, streams } from '../kafka/filter-support.ts';

/** The recorded Produce v7 request and its response. */
export function producePair(): { request: Uint8Array; response: Uint8Array } {
  for (const c of fixture('kafkajs-4.2')) {
    const s = streams(c);
    const req = frames(s.down).find((f) => new DataView(f.buffer, f.byteOffset).getInt16(4) === 0);
    if (!req) continue;
    const corr = new DataView(req.buffer, req.byteOffset).getInt32(8);
    const resp = frames(s.up).find((f) => new DataView(f.buffer, f.byteOffset).getInt32(4) === corr);
    if (resp) return { request: req, response: resp };
  }
  throw new Error('no Produce request/response pair in kafkajs-4.2');
}

/** The request with `extra` bytes appended to its one record batch (sizes fixed up: frame, records field, batch length). */
export function padded(req: Uint8Array, extra: number): Uint8Array {
  const v = new DataView(req.buffer, req.byteOffset, req.byteLength);
  let at = 12;
  at += 2 + v.getInt16(at); // client id
  const txn = v.getInt16(at); at += 2 + Math.max(txn, 0); // transactional id
  at += 2 + 4; // acks, timeout
  if (v.getInt32(at) !== 1) throw new Error('expected one topic'); at += 4;
  at += 2 + v.getInt16(at); // topic name
  if (v.getInt32(at) !== 1) throw new Error('expected one partition'); at += 4;
  at += 4; // partition index
  const recordsAt = at;
  const recordsLen = v.getInt32(at);
  if (recordsAt + 4 + recordsLen !== req.length) throw new Error('records field is not last');
  const out = new Uint8Array(req.length + extra);
  out.set(req);
  out.fill(0x61, req.length);
  const o = new DataView(out.buffer);
  o.setInt32(0, v.getInt32(0) + extra);
  o.setInt32(recordsAt, recordsLen + extra);
  o.setInt32(recordsAt + 4 + 8, v.getInt32(recordsAt + 4 + 8) + extra); // batchLength
  return out;
}

