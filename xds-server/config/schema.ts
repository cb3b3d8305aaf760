// JSON Schema (draft-07 dialect, as compiled by ajv v8 in strict mode) of the
// mesh file. Structure only: types, enums, value formats and unknown keys.
// Cross-references (names, ports, route targets) are checked in semantic.ts.
//
// Two annotations steer the error messages (validate.ts), both allowed in
// strict mode because they are registered as a vocabulary:
//   title        - what the object is called in messages ("route", "listener")
//   x-message    - replaces the generic message for a schema: a string for
//                  every keyword, or { keyword: message } for some keywords.
//
// Protocol listeners (mqtt, kafka, coap) carry `filter:` settings and route
// `match:` attributes whose schema belongs to the Wasm filter. Pass those to
// buildMeshSchema(); without them both are accepted as any map.

import { BUILTIN_PROTOCOLS, RETRY_ON, type Protocol } from '../model/types.ts';
import {
  parseBindAddress,
  parseDuration,
  parseHostPort,
  parseName,
  parsePositiveDuration,
  parseServerName,
  type Parsed,
} from './values.ts';
import {
  circuitBreakersSchema,
  healthCheckProperties,
  httpHealthCheckProperties,
  outlierDetectionSchema,
  tcpHealthCheckProperties,
} from './resilience.ts';

/** A JSON Schema: `true`/`false` or a schema object. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown };
export type JsonSchemaObject = { readonly [keyword: string]: unknown };

/** Annotation keyword carrying a human message (see top of file). */
export const MESSAGE_KEYWORD = 'x-message';

/** Protocol filters the design names; accepted by the schema even before their filter exists. */
export const FILTER_PROTOCOLS: readonly Protocol[] = ['mqtt', 'kafka', 'coap'];
export const PROTOCOLS: readonly Protocol[] = [...BUILTIN_PROTOCOLS, ...FILTER_PROTOCOLS];
export const LB_POLICIES = ['round_robin', 'least_request', 'random', 'ring_hash'] as const;

/**
 * String formats used by the schema. Each maps the string to a parsed value
 * or a reason that becomes the error message.
 */
export const FORMATS: Readonly<Record<string, (text: string) => Parsed<unknown>>> = {
  duration: parseDuration,
  'positive-duration': parsePositiveDuration,
  endpoint: parseHostPort,
  'bind-address': parseBindAddress,
  'server-name': parseServerName,
  name: parseName,
};

/** What a value of each format looks like, for type errors ("got 5"). */
export const FORMAT_HINTS: Readonly<Record<string, string>> = {
  duration: 'must be a duration string with a unit, like "150ms", "5s", "1.5s", "2m" or "1h"',
  'positive-duration': 'must be a duration string with a unit, like "150ms", "5s", "1.5s", "2m" or "1h"',
  endpoint: 'must be a "host:port" string, e.g. "127.0.0.1:8080"',
  'bind-address': 'must be an IP address string like "0.0.0.0" or "::"',
  'server-name': 'must be a server name string like "a.example.com"',
  name: 'must be a name string',
};

/**
 * A filter's declaration (manifest `item_listeners`) that each item of one of
 * its settings arrays gets an Envoy listener of its own, e.g. for Kafka
 * `{ array: "brokers", name: "broker", id: "id", port: "port", cluster: "cluster",
 * setting: "listener_broker_id" }`: broker `{ id: 1, port: 19101, cluster: kafka-1 }`
 * of listener `kafka` becomes listener `kafka-broker-1` on port 19101, routed to
 * `kafka-1`, whose filter gets the same settings plus `listener_broker_id: 1`.
 * Every other field names a field of the item.
 */
export interface ItemListeners {
  /** The settings key holding the array. */
  readonly array: string;
  /** What one item is called, in listener names and messages ("broker"). */
  readonly name: string;
  /** The item's identifier (a string or an integer, unique in the array). */
  readonly id: string;
  /** The item's port (the spawned listener binds it on the parent's address). */
  readonly port: string;
  /** The item's cluster (the spawned listener's only route). */
  readonly cluster: string;
  /** The settings key that tells the spawned listener's filter which item it fronts. */
  readonly setting: string;
}

/** Settings schema a protocol's Wasm filter owns. */
export interface ProtocolSchema {
  /** Schema of a route's `match:` map (the filter's match attributes). */
  readonly match?: JsonSchema;
  /** Schema of the listener's `filter:` settings. */
  readonly filter?: JsonSchema;
  /** Listeners spawned from items of the settings (see ItemListeners). */
  readonly itemListeners?: ItemListeners;
}

const str = (format: string): JsonSchemaObject => ({ type: 'string', format });

const name = str('name');
const duration = str('duration');
const positiveDuration = str('positive-duration');

const httpMatch: JsonSchemaObject = {
  title: 'match',
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string' },
    path: { type: 'string' },
    regex: { type: 'string' },
    headers: {
      title: 'headers',
      type: 'object',
      additionalProperties: {
        type: 'string',
        [MESSAGE_KEYWORD]: {
          type: 'header value must be a string; quote numbers and booleans, e.g. "1"',
        },
      },
    },
  },
};

const sniMatch: JsonSchemaObject = {
  title: 'match',
  type: 'object',
  additionalProperties: false,
  required: ['sni'],
  properties: { sni: str('server-name') },
};

const route: JsonSchemaObject = {
  title: 'route',
  type: 'object',
  additionalProperties: false,
  properties: {
    match: { type: 'object' },
    cluster: name,
    clusters: {
      title: 'clusters',
      type: 'object',
      minProperties: 1,
      additionalProperties: {
        type: 'integer',
        minimum: 1,
        [MESSAGE_KEYWORD]: 'weight must be a positive integer',
      },
      [MESSAGE_KEYWORD]: {
        minProperties: 'weighted "clusters" needs at least one cluster',
      },
    },
    timeout: duration,
    websocket: { type: 'boolean' },
    // Streams (gRPC streaming, long polls): see "Timeouts and streams" in docs/config.md.
    idle_timeout: positiveDuration,
    max_stream_duration: duration,
  },
  oneOf: [
    { properties: { cluster: true }, required: ['cluster'] },
    { properties: { clusters: true }, required: ['clusters'] },
  ],
};

/** `protocol: auto`'s fallback for connections that are not HTTP: a tcp route (no match). */
const tcpFallback: JsonSchemaObject = {
  title: 'tcp',
  type: 'object',
  additionalProperties: false,
  properties: {
    cluster: name,
    clusters: (route['properties'] as JsonSchemaObject)['clusters'],
    timeout: duration,
  },
  oneOf: [
    { properties: { cluster: true }, required: ['cluster'] },
    { properties: { clusters: true }, required: ['clusters'] },
  ],
};

const path: JsonSchemaObject = { type: 'string', minLength: 1, [MESSAGE_KEYWORD]: 'must be a file path (relative to the mesh file, or absolute)' };

/** TLS termination on http and tcp listeners. */
const downstreamTls: JsonSchemaObject = {
  title: 'tls',
  type: 'object',
  additionalProperties: false,
  required: ['certificates'],
  properties: {
    certificates: {
      type: 'array',
      minItems: 1,
      items: {
        title: 'certificate',
        type: 'object',
        additionalProperties: false,
        required: ['cert', 'key'],
        properties: { cert: path, key: path },
      },
      [MESSAGE_KEYWORD]: { minItems: 'tls needs at least one certificate' },
    },
    min_version: { enum: ['1.0', '1.1', '1.2', '1.3'], [MESSAGE_KEYWORD]: { type: 'must be a quoted version string: "1.2" or "1.3" (also "1.0", "1.1")' } },
    alpn: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    client_ca: path,
    allowed_sans: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  },
};

/** Where Envoy writes a listener's access log: its stdout or stderr, or a file on Envoy's machine (so no relative paths). */
const accessLogPath: JsonSchemaObject = {
  type: 'string',
  pattern: '^(stdout|stderr|/.*)$',
  [MESSAGE_KEYWORD]: { pattern: 'must be "stdout", "stderr" or an absolute file path (Envoy writes it, on its own machine)' },
};

/** One access log: a path (shorthand) or { path, format }. */
const accessLog: JsonSchemaObject = {
  if: { type: 'string' },
  then: accessLogPath,
  else: {
    title: 'access_log',
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: accessLogPath, format: { enum: ['json', 'text'] } },
    [MESSAGE_KEYWORD]: { type: 'must be "stdout", "stderr", an absolute file path, or a map { path, format: json | text }' },
  },
};

/** TLS from Envoy to a cluster's endpoints. */
const upstreamTls: JsonSchemaObject = {
  title: 'tls',
  type: 'object',
  additionalProperties: false,
  properties: {
    sni: str('server-name'),
    ca: path,
    cert: path,
    key: path,
    alpn: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
  },
  dependencies: { cert: ['key'], key: ['cert'] },
};

const healthCheck: JsonSchemaObject = {
  title: 'health_check',
  type: 'object',
  additionalProperties: false,
  required: ['interval'],
  properties: {
    interval: positiveDuration,
    timeout: positiveDuration,
    ...healthCheckProperties,
    tcp: {
      title: 'tcp health check',
      type: 'object',
      additionalProperties: false,
      properties: { send: { type: 'string' }, expect: { type: 'string' }, ...tcpHealthCheckProperties },
    },
    http: {
      title: 'http health check',
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        path: { type: 'string', pattern: '^/', [MESSAGE_KEYWORD]: { pattern: 'must start with "/"' } },
        ...httpHealthCheckProperties,
      },
    },
  },
  oneOf: [
    { properties: { tcp: true }, required: ['tcp'] },
    { properties: { http: true }, required: ['http'] },
  ],
};

const cluster: JsonSchemaObject = {
  title: 'cluster',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'endpoints'],
  properties: {
    name,
    endpoints: { type: 'array', items: str('endpoint') },
    lb: { enum: [...LB_POLICIES] },
    http2: { type: 'boolean' },
    connect_timeout: positiveDuration,
    health_check: { $ref: '#/$defs/healthCheck' },
    retries: {
      title: 'retries',
      type: 'object',
      additionalProperties: false,
      properties: {
        on: {
          oneOf: [{ enum: [...RETRY_ON] }, { type: 'array', minItems: 1, items: { enum: [...RETRY_ON] } }],
          [MESSAGE_KEYWORD]: `must be one of ${RETRY_ON.map((r) => `"${r}"`).join(', ')}, or a list of them`,
        },
        count: { type: 'integer', minimum: 1, maximum: 10, [MESSAGE_KEYWORD]: 'count must be an integer from 1 to 10' },
        per_try_timeout: positiveDuration,
      },
    },
    tls: { $ref: '#/$defs/upstreamTls' },
    proxy_protocol: { enum: ['v1', 'v2'] },
    outlier_detection: outlierDetectionSchema,
    circuit_breakers: circuitBreakersSchema,
  },
};

/**
 * Protocols whose listeners may say `transport: udp` (served by Envoy's
 * udp_proxy: proxy-wasm has no UDP hooks, so no filter runs there in Envoy).
 */
export const UDP_PROTOCOLS: readonly Protocol[] = ['coap'];

/** A UDP listener's route match: the client's source address in one of the CIDR ranges. */
const sourceMatch: JsonSchemaObject = {
  title: 'match',
  type: 'object',
  additionalProperties: false,
  required: ['source'],
  properties: {
    source: {
      oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: { type: 'string' } }],
      [MESSAGE_KEYWORD]: 'source must be a CIDR range like "10.0.0.0/8", or a list of them',
    },
  },
};

/** A protocol branch that does not apply to `transport: udp` listeners. */
function udpExempt(branch: JsonSchemaObject): JsonSchemaObject {
  const cond = branch['if'] as JsonSchemaObject;
  const props = cond['properties'] as JsonSchemaObject;
  return { ...branch, if: { ...cond, properties: { ...props, transport: { not: { const: 'udp' } } } } };
}

/** `then` branch selecting the route match schema (and filter schema) for one protocol. */
function protocolBranch(protocol: Protocol, match: JsonSchema, filter?: JsonSchema): JsonSchemaObject {
  const properties: Record<string, unknown> = {
    routes: { type: 'array', items: { type: 'object', properties: { match } } },
  };
  if (filter !== undefined) properties['filter'] = filter;
  return {
    if: { properties: { protocol: { const: protocol } }, required: ['protocol'] },
    then: { properties },
  };
}

/**
 * The mesh file schema. `protocols` plugs in the schemas a protocol filter
 * owns (route match attributes and `filter:` settings).
 */
export function buildMeshSchema(protocols: Readonly<Record<string, ProtocolSchema>> = {}): JsonSchemaObject {
  const filterProtocols = [...new Set([...FILTER_PROTOCOLS, ...Object.keys(protocols)])];
  const anyMap: JsonSchemaObject = { type: 'object' };
  const branches: JsonSchemaObject[] = [
    protocolBranch('http', { $ref: '#/$defs/httpMatch' }),
    protocolBranch('grpc', { $ref: '#/$defs/httpMatch' }),
    protocolBranch('auto', { $ref: '#/$defs/httpMatch' }),
    // Every listener binds a port except grpc API listeners.
    { if: { properties: { protocol: { not: { const: 'grpc' } } } }, then: { title: 'listener', properties: { port: true }, required: ['port'] } },
    protocolBranch('tls', { $ref: '#/$defs/sniMatch' }),
    ...filterProtocols.map((p) =>
      udpExempt(protocolBranch(p, protocols[p]?.match ?? anyMap, protocols[p]?.filter ?? anyMap)),
    ),
    // A UDP listener's routes are udp_proxy's (source ranges), not the filter's.
    {
      if: { properties: { transport: { const: 'udp' } }, required: ['transport'] },
      then: { properties: { routes: { type: 'array', items: { type: 'object', properties: { match: { $ref: '#/$defs/sourceMatch' } } } } } },
    },
  ];
  const listener: JsonSchemaObject = {
    title: 'listener',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'protocol', 'routes'],
    properties: {
      name,
      address: str('bind-address'),
      port: {
        type: 'integer',
        minimum: 1,
        maximum: 65535,
        [MESSAGE_KEYWORD]: 'port must be an integer from 1 to 65535',
      },
      protocol: { enum: [...BUILTIN_PROTOCOLS, ...filterProtocols] },
      routes: {
        type: 'array',
        minItems: 1,
        items: { $ref: '#/$defs/route' },
        [MESSAGE_KEYWORD]: { minItems: 'a listener needs at least one route' },
      },
      filter: { type: 'object' },
      transport: { enum: ['tcp', 'udp'] },
      idle_timeout: positiveDuration,
      tcp: { $ref: '#/$defs/tcpFallback' },
      detection_timeout: positiveDuration,
      tls: { $ref: '#/$defs/downstreamTls' },
      max_connections: { type: 'integer', minimum: 1, [MESSAGE_KEYWORD]: 'must be an integer >= 1' },
      proxy_protocol: { type: 'boolean' },
      access_log: {
        // if/then rather than anyOf: one error from the form the value has, not one per form
        if: { type: 'array' },
        then: { type: 'array', minItems: 1, items: { $ref: '#/$defs/accessLog' }, [MESSAGE_KEYWORD]: { minItems: 'access_log needs at least one log' } },
        else: { $ref: '#/$defs/accessLog' },
      },
      rate_limit: {
        title: 'rate_limit',
        type: 'object',
        additionalProperties: false,
        minProperties: 1,
        maxProperties: 1,
        properties: {
          requests_per_second: { type: 'integer', minimum: 1, [MESSAGE_KEYWORD]: 'must be an integer >= 1' },
          connections_per_second: { type: 'integer', minimum: 1, [MESSAGE_KEYWORD]: 'must be an integer >= 1' },
        },
        [MESSAGE_KEYWORD]: { minProperties: 'rate_limit needs "requests_per_second" or "connections_per_second"', maxProperties: 'rate_limit takes one of "requests_per_second" or "connections_per_second"' },
      },
    },
    allOf: branches,
  };
  return {
    $id: 'https://protoplane.dev/schema/mesh-v1.json',
    title: 'mesh',
    type: 'object',
    additionalProperties: false,
    properties: {
      listeners: { type: 'array', items: { $ref: '#/$defs/listener' } },
      clusters: { type: 'array', items: { $ref: '#/$defs/cluster' } },
    },
    // Extension keys, ignored: a place for YAML anchors (`x-defaults: &d ...`).
    patternProperties: { '^x-': true },
    [MESSAGE_KEYWORD]: { type: 'the mesh file must be a map with "listeners" and "clusters"' },
    $defs: { listener, route, tcpFallback, accessLog, downstreamTls, upstreamTls, httpMatch, sniMatch, sourceMatch, cluster, healthCheck },
  };
}

/** The schema with no protocol filter schemas plugged in. */
export const meshSchema: JsonSchemaObject = buildMeshSchema();
