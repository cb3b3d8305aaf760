// Envoy v3 API messages, loaded from the real .proto files that ship inside
// the npm package @grpc/grpc-js-xds (there is no @envoyproxy/protos package),
// plus the few messages that snapshot lacks, declared under proto/ (see
// proto/README.md). Loaded once per process; field names keep Envoy's
// snake_case so translated objects read like Envoy's own YAML.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);
const xdsPackageDir = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const ownProtoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

const includeDirs = [
  ownProtoDir,
  path.join(xdsPackageDir, 'deps/envoy-api'),
  path.join(xdsPackageDir, 'deps/xds'),
  path.join(xdsPackageDir, 'deps/googleapis'),
  path.join(xdsPackageDir, 'deps/protoc-gen-validate'),
  // google/protobuf/descriptor.proto, which the annotation protos extend
  path.dirname(require.resolve('protobufjs/package.json')),
];

/** Every .proto the server encodes or decodes; their imports are followed. */
const entryFiles = [
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  // protocol: auto; TLS termination (SDS secrets, DownstreamTlsContext)
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  // PROXY protocol: accepted on listeners, sent to clusters
  'envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto',
  'envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  // local rate limits: requests/s (http, auto) and connections/s (tcp)
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/network/local_ratelimit/v3/local_rate_limit.proto',
  // connection limits per listener; the Health Discovery Service (server/hds.ts)
  'envoy/extensions/filters/network/connection_limit/v3/connection_limit.proto',
  'envoy/service/health/v3/hds.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  // access logs per listener: JSON lines to a file, stdout or stderr
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/admin/v3/config_dump.proto',
  'envoy/config/core/v3/extension.proto',
  'envoy/extensions/filters/network/wasm/v3/wasm.proto',
  'envoy/extensions/filters/listener/set_filter_state/v3/set_filter_state.proto',
  'google/protobuf/wrappers.proto',
  // coap over UDP: udp_proxy with a source-range matcher
  'envoy/extensions/filters/udp/udp_proxy/v3/udp_proxy.proto',
  'envoy/extensions/filters/udp/udp_proxy/v3/route.proto',
  'envoy/extensions/matching/common_inputs/network/v3/network_inputs.proto',
  'envoy/extensions/matching/input_matchers/ip/v3/ip.proto',
];

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string | null => {
    if (path.isAbsolute(target)) return target;
    for (const dir of includeDirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return null;
  };
  root.loadSync(entryFiles, { keepCase: true });
  root.resolveAll();
  return root;
}

let root: protobuf.Root | undefined;

/**
 * The loaded root, on first use: parsing the .proto files takes ~250 ms,
 * which commands that never encode a message (help, status, get, prune)
 * should not pay at start.
 */
export function envoyProtos(): protobuf.Root {
  return (root ??= loadRoot());
}

export const TYPE_PREFIX = 'type.googleapis.com/';

const typeCache = new Map<string, protobuf.Type>();

/** Looks up a message type by its full name (no leading dot). */
export function messageType(fullName: string): protobuf.Type {
  let t = typeCache.get(fullName);
  if (!t) {
    t = envoyProtos().lookupType(fullName);
    typeCache.set(fullName, t);
  }
  return t;
}

/**
 * protobufjs's fromObject drops unknown keys silently; a typo in translation
 * must fail loudly instead, so every key is checked against the message.
 * Returns where the first unknown field is (".a.b[2]: Type has no field "x""),
 * or undefined; the path is built only for that one.
 */
function unknownField(type: protobuf.Type, value: unknown): string | undefined {
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return undefined;
  for (const key in value) {
    const field = type.fields[key];
    if (!field) return `: ${type.fullName.slice(1)} has no field "${key}"`;
    const resolved = field.resolve().resolvedType;
    if (!(resolved instanceof protobuf.Type)) continue;
    const fieldValue = (value as Record<string, unknown>)[key];
    if (Array.isArray(fieldValue)) {
      for (let i = 0; i < fieldValue.length; i++) {
        const found = unknownField(resolved, fieldValue[i]);
        if (found !== undefined) return `.${key}[${i}]${found}`;
      }
    } else {
      for (const item of field.map ? Object.values(fieldValue as object) : [fieldValue]) {
        const found = unknownField(resolved, item);
        if (found !== undefined) return `.${key}${found}`;
      }
    }
  }
  return undefined;
}

/** Encodes a plain object as the named message, failing on fields the message lacks. */
export function encodeMessage(fullName: string, value: Record<string, unknown>): Uint8Array {
  const type = messageType(fullName);
  const unknown = unknownField(type, value);
  if (unknown !== undefined) throw new Error(fullName + unknown);
  return type.encode(type.fromObject(value)).finish();
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** google.protobuf.Any around an encoded message. */
export function toAny(fullName: string, value: Record<string, unknown>): AnyMessage {
  return { type_url: TYPE_PREFIX + fullName, value: encodeMessage(fullName, value) };
}

export function decodeMessage(fullName: string, bytes: Uint8Array): Record<string, unknown> {
  const type = messageType(fullName);
  return type.toObject(type.decode(bytes), { longs: Number, enums: String, bytes: Buffer, defaults: false, oneofs: false }) as Record<string, unknown>;
}
