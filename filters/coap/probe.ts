// Entry of the parser probe (test/coap/parser.test.ts, fuzz, bench), not of
// the filter: parser.ts and describe.ts over bytes already in memory, with no
// host. Built with filters/coap/probe.asconfig.json.
import { CoapMessage, FRAME_BAD, FRAME_NEED_MORE, ParseError, Transport, buildResponse, parseErrorName, parseTcp, parseTcpHead, parseUdp, tcpFrameLength, tcpHeadLength } from "./parser";
import { describeMessage } from "./describe";
import { resetTallies, runCount, scanRun, setRun } from "./fastscan";

const BUFFER = heap.alloc(1 << 20);
const message = new CoapMessage();
let lastError: ParseError = ParseError.None;

/** Where input goes (up to 1 MiB). */
export function bufferPointer(): usize { return BUFFER; }

/** Parses one message at BUFFER; returns its JSON, or "error: REASON". */
export function describe(transport: i32, len: u32, maxOptions: u32): string {
  const e = transport == Transport.Udp ? parseUdp(BUFFER, len, message, maxOptions) : parseTcp(BUFFER, len, message, maxOptions);
  lastError = e;
  if (e != ParseError.None) return "error: " + parseErrorName(e);
  return describeMessage(BUFFER, message, "downstream");
}

/** tcpHeadLength of the frame at BUFFER (`total` long) with `avail` bytes there; -1: needs more. */
export function headLength(avail: u32, total: u32): i64 { return tcpHeadLength(BUFFER, avail, total); }

/** Parses the TCP frame at BUFFER (`total` long) from its first `head` bytes only. */
export function describeHead(head: u32, total: u32): string {
  const e = parseTcpHead(BUFFER, head, total, message, 256);
  if (e != ParseError.None) return "error: " + parseErrorName(e);
  return describeMessage(BUFFER, message, "downstream");
}

/** tcpFrameLength at BUFFER + offset. */
export function frameLength(offset: u32, avail: u32): i64 { return tcpFrameLength(BUFFER + offset, avail); }

/** Walks `len` bytes of TCP frames `rounds` times, parsing each; returns frames parsed, or -1 on a bad one. */
export function parseTcpRounds(len: u32, rounds: u32): i64 {
  let frames: i64 = 0;
  for (let r: u32 = 0; r < rounds; r++) {
    let at: u32 = 0;
    while (at < len) {
      const n = tcpFrameLength(BUFFER + at, len - at);
      if (n == FRAME_NEED_MORE || n == FRAME_BAD || at + <u32>n > len) return -1;
      if (parseTcp(BUFFER + at, <u32>n, message, 64) != ParseError.None) return -1;
      at += <u32>n;
      frames++;
    }
  }
  return frames;
}

/** Parses the datagrams laid out as [u16 length][bytes]... `rounds` times; returns datagrams parsed, or -1. */
export function parseUdpRounds(len: u32, rounds: u32): i64 {
  let count: i64 = 0;
  for (let r: u32 = 0; r < rounds; r++) {
    let at: u32 = 0;
    while (at + 2 <= len) {
      const n = (<u32>load<u8>(BUFFER + at) << 8) | <u32>load<u8>(BUFFER + at + 1);
      at += 2;
      if (parseUdp(BUFFER + at, n, message, 64) != ParseError.None) return -1;
      at += n;
      count++;
    }
  }
  return count;
}

/** The proxy's 4.03 to the message last parsed (describe first), as JSON of its parse. */
export function forbiddenFor(transport: i32, len: u32): string {
  const e = transport == Transport.Udp ? parseUdp(BUFFER, len, message, 64) : parseTcp(BUFFER, len, message, 64);
  if (e != ParseError.None) return "error: " + parseErrorName(e);
  const reply = buildResponse(BUFFER, message, 0x83, "forbidden", 0x1234);
  const n = <u32>reply.byteLength;
  memory.copy(BUFFER, changetype<usize>(reply), n);
  return describe(transport, n, 64);
}

export function lastErrorCode(): i32 { return lastError; }

/** The fast path's scan (fastscan.ts) over `len` bytes of TCP frames, `rounds` times; returns messages passed (benchmarks). */
export function fastScanRounds(len: u32, rounds: u32): i64 {
  let frames: i64 = 0;
  setRun(65536, 64, 8);
  for (let r: u32 = 0; r < rounds; r++) {
    scanRun(BUFFER, BUFFER + len);
    frames += <i64>runCount();
    resetTallies();
  }
  return frames;
}
