// Minimal protobuf wire-format reader for the arguments of Envoy's foreign
// functions (set_envoy_filter_state). Unknown fields are skipped.

export interface ProtoField {
  field: number;
  wireType: number;
  /** Varint / fixed values. */
  int?: bigint;
  /** Length-delimited values. */
  bytes?: Uint8Array;
}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  throw new Error('varint longer than 10 bytes');
}

/** Decodes a message into its fields, in order; throws on malformed input. */
export function decodeFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, next] = readVarint(buf, pos);
    pos = next;
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (field === 0) throw new Error('field number 0');
    switch (wireType) {
      case 0: {
        const [v, p] = readVarint(buf, pos);
        pos = p;
        out.push({ field, wireType, int: v });
        break;
      }
      case 1:
      case 5: {
        const n = wireType === 1 ? 8 : 4;
        if (pos + n > buf.length) throw new Error('truncated fixed field');
        const view = new DataView(buf.buffer, buf.byteOffset + pos, n);
        out.push({ field, wireType, int: n === 8 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true)) });
        pos += n;
        break;
      }
      case 2: {
        const [len, p] = readVarint(buf, pos);
        const end = p + Number(len);
        if (end > buf.length) throw new Error('truncated length-delimited field');
        out.push({ field, wireType, bytes: buf.subarray(p, end) });
        pos = end;
        break;
      }
      default:
        throw new Error(`unsupported wire type ${wireType}`);
    }
  }
  return out;
}

export interface SetEnvoyFilterStateArguments {
  path: string;
  value: string;
  /** LifeSpan: 0 FilterChain, 1 DownstreamRequest, 2 DownstreamConnection. */
  span: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes envoy.source.extensions.common.wasm.SetEnvoyFilterStateArguments. */
export function decodeSetEnvoyFilterState(buf: Uint8Array): SetEnvoyFilterStateArguments {
  const args: SetEnvoyFilterStateArguments = { path: '', value: '', span: 0 };
  for (const f of decodeFields(buf)) {
    if (f.field === 1 && f.bytes) args.path = utf8.decode(f.bytes);
    else if (f.field === 2 && f.bytes) args.value = utf8.decode(f.bytes);
    else if (f.field === 3 && f.int !== undefined) args.span = Number(f.int);
  }
  return args;
}

/** Encodes SetEnvoyFilterStateArguments (for tests and tools). */
export function encodeSetEnvoyFilterState(args: SetEnvoyFilterStateArguments): Uint8Array {
  const out: number[] = [];
  const varint = (v: number) => {
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
  };
  const str = (field: number, s: string) => {
    const b = new TextEncoder().encode(s);
    if (b.length === 0) return;
    varint((field << 3) | 2);
    varint(b.length);
    out.push(...b);
  };
  str(1, args.path);
  str(2, args.value);
  if (args.span) {
    varint(3 << 3);
    varint(args.span);
  }
  return Uint8Array.from(out);
}
