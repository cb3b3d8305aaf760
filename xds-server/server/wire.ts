// DiscoveryRequest decoding and DiscoveryResponse encoding. Responses are
// assembled from the snapshot's pre-encoded Any bytes: the body (version,
// resources, type_url) is cached per view, and only the nonce is per stream.
import protobuf from 'protobufjs';
import { decodeMessage } from '../protos/index.ts';
import type { View } from '../cache/index.ts';

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
  const body = responseBody(typeUrl, view);
  const tail = protobuf.Writer.create().uint32((5 << 3) | 2).string(nonce).finish();
  return Buffer.concat([body, tail]);
}
