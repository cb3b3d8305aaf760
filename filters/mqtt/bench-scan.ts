// Entry of the scan micro-benchmark (test/bench/mqtt-scan.ts), not of the
// filter: it runs fastpath.ts's scan over bytes already in memory, with no
// host, so the figure is the scan's alone. Built by that benchmark.
import { setScan, scanPublishes, scannedPackets, writePrefixEntry, PREFIX_ENTRY } from "./fastpath";

const BUFFER = heap.alloc(8 << 20);
const TABLE = heap.alloc(PREFIX_ENTRY * 4);
const PREFIX = heap.alloc(64);
let withTopics = false;

/** Where the stream goes (up to 8 MiB) and where the prefix bytes go (up to 64). */
export function bufferPointer(): usize { return BUFFER; }
export function prefixPointer(): usize { return PREFIX; }

/** Settings as the filter's defaults, with one topic_metrics prefix of `prefixLen` bytes (0: none). */
export function setup(prefixLen: usize, v5: bool): void {
  withTopics = prefixLen > 0;
  if (withTopics) writePrefixEntry(TABLE, PREFIX, prefixLen);
  setScan(268435460, 65535, 65535, v5, TABLE, withTopics ? 1 : 0, 0, 0, true);
}

/** Scans the `len` bytes `rounds` times; returns the packets passed. */
export function scanRounds(len: usize, rounds: u32): u32 {
  let total: u32 = 0;
  for (let r: u32 = 0; r < rounds; r++) {
    scanPublishes(BUFFER, BUFFER + len, false, withTopics, false);
    total += scannedPackets();
  }
  return total;
}
