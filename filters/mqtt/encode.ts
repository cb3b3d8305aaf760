// Packets the proxy writes: PINGREQ (the solicit whose PINGRESP a refusal
// replaces), acks with a refusal code, SUBACKs of refusals, a SUBSCRIBE
// without its refused filters and the broker's SUBACK with their codes put
// back. Pure.
import { Packet, varintSize, writeVarint } from "./parser";

export function pingreq(): ArrayBuffer {
  const b = new ArrayBuffer(2);
  store<u8>(changetype<usize>(b), 0xc0);
  store<u8>(changetype<usize>(b) + 1, 0);
  return b;
}

/** PUBACK / PUBREC / PUBCOMP for packetId, with a 5.0 reason code when reason >= 0. */
export function ackPacket(type: u8, packetId: i32, reason: i32): ArrayBuffer {
  const b = new ArrayBuffer(reason >= 0 ? 5 : 4);
  const p = changetype<usize>(b);
  store<u8>(p, type << 4);
  store<u8>(p + 1, reason >= 0 ? 3 : 2);
  store<u8>(p + 2, <u8>(packetId >> 8));
  store<u8>(p + 3, <u8>packetId);
  if (reason >= 0) store<u8>(p + 4, <u8>reason);
  return b;
}

/** SUBACK with `codes` (5.0: an empty property block first). */
export function subackPacket(packetId: i32, codes: Uint8Array, v5: bool): ArrayBuffer {
  const rl = <u32>(2 + (v5 ? 1 : 0) + codes.length);
  const size = 1 + varintSize(rl) + rl;
  const b = new ArrayBuffer(<i32>size);
  const p = changetype<usize>(b);
  store<u8>(p, 0x90);
  let at = <usize>1 + <usize>writeVarint(p + 1, rl);
  store<u8>(p + at, <u8>(packetId >> 8));
  store<u8>(p + at + 1, <u8>packetId);
  at += 2;
  if (v5) { store<u8>(p + at, 0); at++; }
  memory.copy(p + at, codes.dataStart, <usize>codes.length);
  return b;
}

/** FORWARDED in a refusal-code list: the filter went to the broker (take the broker's code). */
export const FORWARDED: u8 = 0xff;

/** The SUBSCRIBE at `at` (parsed into pkt) without the filters whose code is not FORWARDED: same variable header, the kept entries verbatim. */
export function subscribeWithout(at: usize, pkt: Packet, codes: Uint8Array): ArrayBuffer {
  const n = pkt.filterPtrs.length;
  const listStart = <usize>pkt.listOffset;
  let body = listStart - <usize>pkt.fixedLen;
  for (let i = 0; i < n; i++) {
    if (codes[i] != FORWARDED) continue;
    body += 2 + <usize>pkt.filterLens[i] + 1;
  }
  const size: usize = <usize>1 + <usize>varintSize(<u32>body) + body;
  const b = new ArrayBuffer(<i32>size);
  const p = changetype<usize>(b);
  store<u8>(p, load<u8>(at));
  let o = <usize>1 + <usize>writeVarint(p + 1, <u32>body);
  memory.copy(p + o, at + <usize>pkt.fixedLen, listStart - <usize>pkt.fixedLen);
  o += listStart - <usize>pkt.fixedLen;
  for (let i = 0; i < n; i++) {
    if (codes[i] != FORWARDED) continue;
    const start = <usize>pkt.filterStarts[i];
    const entry: usize = <usize>2 + <usize>pkt.filterLens[i] + 1;
    memory.copy(p + o, at + start, entry);
    o += entry;
  }
  return b;
}

/** The broker's SUBACK at `at` (parsed into pkt) with the refused filters' codes put back in place. */
export function subackWith(at: usize, pkt: Packet, codes: Uint8Array): ArrayBuffer {
  const n = codes.length;
  const head = <usize>pkt.listOffset - <usize>pkt.fixedLen; // packet id (+ properties)
  const body = head + <usize>n;
  const size: usize = <usize>1 + <usize>varintSize(<u32>body) + body;
  const b = new ArrayBuffer(<i32>size);
  const p = changetype<usize>(b);
  store<u8>(p, 0x90);
  let o = <usize>1 + <usize>writeVarint(p + 1, <u32>body);
  memory.copy(p + o, at + <usize>pkt.fixedLen, head);
  o += head;
  let k: usize = 0;
  for (let i = 0; i < n; i++) {
    const c = codes[i];
    store<u8>(p + o + <usize>i, c == FORWARDED ? load<u8>(pkt.codesPtr + k++) : c);
  }
  return b;
}
