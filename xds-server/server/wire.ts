// DiscoveryRequest decoding and DiscoveryResponse encoding. Responses are
// assembled from the snapshot's pre-encoded Any bytes: the body (version,
// resources, type_url) is cached per view, and only the nonce is per stream.
import protobuf from 'protobufjs';
import { decodeMessage } from '../protos/index.ts';
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

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
}

export function decodeDiscoveryRequest(bytes: Uint8Array): DiscoveryRequest {
  const raw = decodeMessage('envoy.service.discovery.v3.DiscoveryRequest', bytes);
  const node = record(raw.node);
  const error = record(raw.error_detail);
  return {
    versionInfo: text(raw.version_info),
    node: node && {
      id: text(node.id),
      cluster: text(node.cluster),
      userAgent: `${text(node.user_agent_name)} ${text(node.user_agent_version)}`.trim(),
    },
    resourceNames: Array.isArray(raw.resource_names) ? raw.resource_names.map(text) : [],
    typeUrl: text(raw.type_url),
    responseNonce: text(raw.response_nonce),
    errorDetail: error && { code: Number(error.code ?? 0), message: text(error.message) },
  };
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

export function encodeDiscoveryResponse(typeUrl: string, view: View, nonce: string): Buffer {
  return withNonce(responseBody(typeUrl, view), nonce);
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

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(text) : [];
}

export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): DeltaDiscoveryRequest {
  const raw = decodeMessage('envoy.service.discovery.v3.DeltaDiscoveryRequest', bytes);
  const node = record(raw.node);
  const error = record(raw.error_detail);
  const initial = record(raw.initial_resource_versions) ?? {};
  return {
    node: node && {
      id: text(node.id),
      cluster: text(node.cluster),
      userAgent: `${text(node.user_agent_name)} ${text(node.user_agent_version)}`.trim(),
    },
    typeUrl: text(raw.type_url),
    subscribe: strings(raw.resource_names_subscribe),
    unsubscribe: strings(raw.resource_names_unsubscribe),
    initialResourceVersions: new Map(Object.entries(initial).map(([k, v]) => [k, text(v)])),
    responseNonce: text(raw.response_nonce),
    errorDetail: error && { code: Number(error.code ?? 0), message: text(error.message) },
  };
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

/** body + nonce (field 5 of both response types), in one allocation. */
export function withNonce(body: Uint8Array, nonce: string): Buffer {
  const nonceBytes = Buffer.byteLength(nonce);
  if (nonceBytes > 127) {
    const tail = protobuf.Writer.create().uint32((5 << 3) | 2).string(nonce).finish();
    return Buffer.concat([body, tail]);
  }
  // the nonces this server makes are short: one tag byte, one length byte
  const out = Buffer.allocUnsafe(body.length + 2 + nonceBytes);
  out.set(body, 0);
  out[body.length] = (5 << 3) | 2;
  out[body.length + 1] = nonceBytes;
  out.write(nonce, body.length + 2, 'utf8');
  return out;
}
