// DiscoveryRequest decoding and DiscoveryResponse encoding. Responses are
// assembled from the snapshot's pre-encoded Any bytes: the body (version,
// resources, type_url) is cached per view, and only the nonce is per stream.
import protobuf from 'protobufjs';
import type { ResourceEntry, View } from '../cache/index.ts';

export interface NodeInfo {
  id: string;
  cluster: string;
  userAgent: string;
}

export interface DiscoveryRequest {
  versionInfo: string;
  node?: NodeInfo;
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

// Requests are read field by field with protobufjs's Reader rather than its
// generated decoder: stock Envoy's first request on a stream carries its
// whole Node (~61 KB in 1.40, mostly 516 `extensions`), which the generated
// decoder turns into objects (~190 µs per request) when the server needs four
// strings of it. Unknown fields are skipped; a known field with the wrong
// wire type, or a length past the end, throws (the request is undecodable).

const VARINT = 0;
const LENGTH_DELIMITED = 2;

function expectWireType(field: number, wireType: number, want: number): void {
  if (wireType !== want) throw new Error(`field ${field}: wire type ${wireType}, expected ${want}`);
}

/** The end of a length-delimited field that starts at the reader's position. */
function messageEnd(reader: protobuf.Reader): number {
  const length = reader.uint32();
  const end = reader.pos + length;
  if (end > reader.len) throw new RangeError(`length ${length} runs past the end of the message`);
  return end;
}

/** Reads fields up to `end`, handing each (field number, wire type) to `read`; `read` returns false to skip it. */
function readFields(reader: protobuf.Reader, end: number, read: (field: number, wireType: number) => boolean): void {
  while (reader.pos < end) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    const wireType = tag & 7;
    if (field === 0) throw new Error('field number 0');
    if (!read(field, wireType)) reader.skipType(wireType);
  }
  if (reader.pos !== end) throw new RangeError('a field runs past the end of its message');
}

/** envoy.config.core.v3.Node: id (1), cluster (2), user_agent_name (6), user_agent_version (7). */
function readNode(reader: protobuf.Reader): NodeInfo {
  const end = messageEnd(reader);
  let id = '';
  let cluster = '';
  let agentName = '';
  let agentVersion = '';
  readFields(reader, end, (field, wireType) => {
    if (field !== 1 && field !== 2 && field !== 6 && field !== 7) return false;
    expectWireType(field, wireType, LENGTH_DELIMITED);
    const value = checkedString(reader);
    if (field === 1) id = value;
    else if (field === 2) cluster = value;
    else if (field === 6) agentName = value;
    else agentVersion = value;
    return true;
  });
  return { id, cluster, userAgent: `${agentName} ${agentVersion}`.trim() };
}

/** google.rpc.Status: code (1), message (2). */
function readStatus(reader: protobuf.Reader): { code: number; message: string } {
  const end = messageEnd(reader);
  const status = { code: 0, message: '' };
  readFields(reader, end, (field, wireType) => {
    if (field === 1) {
      expectWireType(field, wireType, VARINT);
      status.code = reader.int32();
    } else if (field === 2) {
      expectWireType(field, wireType, LENGTH_DELIMITED);
      status.message = checkedString(reader);
    } else return false;
    return true;
  });
  return status;
}

function readString(reader: protobuf.Reader, field: number, wireType: number): string {
  expectWireType(field, wireType, LENGTH_DELIMITED);
  return checkedString(reader);
}

/** reader.string(), except that a length past the end throws (for a Buffer, protobufjs cuts the string short). */
function checkedString(reader: protobuf.Reader): string {
  const start = reader.pos;
  const length = reader.uint32();
  if (reader.pos + length > reader.len) throw new RangeError(`length ${length} runs past the end of the message`);
  reader.pos = start;
  return reader.string();
}

/** envoy.service.discovery.v3.DiscoveryRequest. */
export function decodeDiscoveryRequest(bytes: Uint8Array): DiscoveryRequest {
  const reader = protobuf.Reader.create(bytes);
  const request: DiscoveryRequest = { versionInfo: '', resourceNames: [], typeUrl: '', responseNonce: '' };
  readFields(reader, reader.len, (field, wireType) => {
    switch (field) {
      case 1: request.versionInfo = readString(reader, field, wireType); return true;
      case 2: expectWireType(field, wireType, LENGTH_DELIMITED); request.node = readNode(reader); return true;
      case 3: request.resourceNames.push(readString(reader, field, wireType)); return true;
      case 4: request.typeUrl = readString(reader, field, wireType); return true;
      case 5: request.responseNonce = readString(reader, field, wireType); return true;
      case 6: expectWireType(field, wireType, LENGTH_DELIMITED); request.errorDetail = readStatus(reader); return true;
      default: return false;
    }
  });
  return request;
}

const bodies = new WeakMap<View, Uint8Array>();

/** version_info (1), resources (2), type_url (4) of a DiscoveryResponse; cached per view. */
function responseBody(typeUrl: string, view: View): Uint8Array {
  let body = bodies.get(view);
  if (!body) {
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | 2).string(view.version);
    for (const entry of view.entries) w.uint32((2 << 3) | 2).bytes(entry.anyBytes);
    w.uint32((4 << 3) | 2).string(typeUrl);
    body = w.finish();
    bodies.set(view, body);
  }
  return body;
}

/** A SotW response behind `prefixBytes` spare bytes (see withNonce). */
export function encodeDiscoveryResponse(typeUrl: string, view: View, nonce: string, prefixBytes = 0): Buffer {
  return withNonce(responseBody(typeUrl, view), nonce, prefixBytes);
}

// ── Delta ──────────────────────────────────────────────────────────────────

export interface DeltaDiscoveryRequest {
  node?: NodeInfo;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  initialResourceVersions: Map<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

/** One initial_resource_versions map entry: key (1), value (2). */
function readVersionEntry(reader: protobuf.Reader, into: Map<string, string>): void {
  const end = messageEnd(reader);
  let key = '';
  let value = '';
  readFields(reader, end, (field, wireType) => {
    if (field === 1) key = readString(reader, field, wireType);
    else if (field === 2) value = readString(reader, field, wireType);
    else return false;
    return true;
  });
  into.set(key, value);
}

/** envoy.service.discovery.v3.DeltaDiscoveryRequest. */
export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): DeltaDiscoveryRequest {
  const reader = protobuf.Reader.create(bytes);
  const request: DeltaDiscoveryRequest = { typeUrl: '', subscribe: [], unsubscribe: [], initialResourceVersions: new Map(), responseNonce: '' };
  readFields(reader, reader.len, (field, wireType) => {
    switch (field) {
      case 1: expectWireType(field, wireType, LENGTH_DELIMITED); request.node = readNode(reader); return true;
      case 2: request.typeUrl = readString(reader, field, wireType); return true;
      case 3: request.subscribe.push(readString(reader, field, wireType)); return true;
      case 4: request.unsubscribe.push(readString(reader, field, wireType)); return true;
      case 5: expectWireType(field, wireType, LENGTH_DELIMITED); readVersionEntry(reader, request.initialResourceVersions); return true;
      case 6: request.responseNonce = readString(reader, field, wireType); return true;
      case 7: expectWireType(field, wireType, LENGTH_DELIMITED); request.errorDetail = readStatus(reader); return true;
      default: return false;
    }
  });
  return request;
}

const resourceMessages = new WeakMap<ResourceEntry, Uint8Array>();

/** envoy.service.discovery.v3.Resource { version = 1, resource = 2, name = 3 }, once per entry. */
function deltaResource(entry: ResourceEntry): Uint8Array {
  let bytes = resourceMessages.get(entry);
  if (!bytes) {
    bytes = protobuf.Writer.create()
      .uint32((1 << 3) | 2).string(entry.version)
      .uint32((2 << 3) | 2).bytes(entry.anyBytes)
      .uint32((3 << 3) | 2).string(entry.name)
      .finish();
    resourceMessages.set(entry, bytes);
  }
  return bytes;
}

/** DeltaDiscoveryResponse without its nonce: system_version_info (1), resources (2), type_url (4), removed_resources (6). */
export function deltaResponseBody(
  typeUrl: string,
  systemVersion: string,
  updated: readonly ResourceEntry[],
  removed: readonly string[],
): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 2).string(systemVersion);
  for (const entry of updated) w.uint32((2 << 3) | 2).bytes(deltaResource(entry));
  w.uint32((4 << 3) | 2).string(typeUrl);
  for (const name of removed) w.uint32((6 << 3) | 2).string(name);
  return w.finish();
}

/**
 * body + nonce (field 5 of both response types), in one allocation, behind
 * `prefixBytes` spare bytes: the transport's message prefix goes there, so
 * the body, the same for every stream of a group, is copied once per stream.
 */
export function withNonce(body: Uint8Array, nonce: string, prefixBytes = 0): Buffer {
  const nonceBytes = Buffer.byteLength(nonce);
  // the nonces this server makes are short: one tag byte, one length byte
  const tail = nonceBytes > 127 ? protobuf.Writer.create().uint32((5 << 3) | 2).string(nonce).finish() : undefined;
  const out = Buffer.allocUnsafe(prefixBytes + body.length + (tail ? tail.length : 2 + nonceBytes));
  out.set(body, prefixBytes);
  const at = prefixBytes + body.length;
  if (tail) {
    out.set(tail, at);
  } else {
    out[at] = (5 << 3) | 2;
    out[at + 1] = nonceBytes;
    out.write(nonce, at + 2, 'utf8');
  }
  return out;
}
