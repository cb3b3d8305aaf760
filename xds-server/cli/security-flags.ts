// The `serve` and `bootstrap` flags of docs/security.md: where the servers
// listen, TLS, the admin token, and every limit. Declared here (with their
// help words) so main.ts and help.ts only spread them in.
import type { ServeOptions } from '../app.ts';
import { DEFAULT_PREFLIGHT, type PreflightLimits } from '../catalog/preflight.ts';
import type { YamlLimits } from '../config/source.ts';
import { parseDuration } from '../config/values.ts';
import { DEFAULT_LIMITS, LIMIT_FLAGS, type XdsLimits } from '../server/limits.ts';

type StringFlag = { type: 'string' };
const string: StringFlag = { type: 'string' };

/** Which limits are durations (the others are counts or bytes). */
const DURATION_LIMITS = new Set<keyof XdsLimits>(['partialMessageTimeoutMs', 'slowStreamMs', 'drainTimeoutMs']);

const CONFIG_LIMIT_FLAGS: Record<keyof YamlLimits, string> = {
  maxBytes: 'config-max-bytes',
  maxAliases: 'config-max-aliases',
  maxExpandedNodes: 'config-max-nodes',
};

const ms = (n: number) => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);

/** Below this a worker thread cannot even load the Wasm host. */
const MIN_PREFLIGHT_HEAP_MB = 16;

/**
 * The filter pre-flight's limits (serve and validate): a filter started with
 * a listener's configuration must finish configuring within the timeout, on
 * a worker thread with this JS heap, its module's linear memory capped.
 */
export const PREFLIGHT_FLAGS: Record<string, StringFlag> = { 'preflight-timeout': string, 'preflight-heap-mb': string, 'preflight-memory-mb': string };

export const PREFLIGHT_HELP: Record<string, string> = {
  'preflight-timeout': `longest a filter may take to configure in the pre-flight before its listener is refused (default ${ms(DEFAULT_PREFLIGHT.timeoutMs)})`,
  'preflight-heap-mb': `JS heap of the pre-flight worker thread, in MiB, at least ${MIN_PREFLIGHT_HEAP_MB} (default ${DEFAULT_PREFLIGHT.maxHeapMb})`,
  'preflight-memory-mb': `most linear memory a filter module may grow to in the pre-flight, in MiB (default ${DEFAULT_PREFLIGHT.maxMemoryMb})`,
};

export const SERVE_SECURITY_FLAGS: Record<string, StringFlag> = {
  'admin-host': string,
  'admin-token-file': string,
  'admin-max-connections': string,
  'admin-timeout': string,
  'xds-tls-cert': string,
  'xds-tls-key': string,
  'xds-client-ca': string,
  ...Object.fromEntries(Object.values(LIMIT_FLAGS).map((flag) => [flag, string])),
  ...Object.fromEntries(Object.values(CONFIG_LIMIT_FLAGS).map((flag) => [flag, string])),
  ...PREFLIGHT_FLAGS,
};

export const SERVE_SECURITY_HELP: Record<string, string> = {
  'admin-host': 'address the admin server listens on (default 127.0.0.1)',
  'admin-token-file': 'file holding a bearer token that /debug/* requires (re-read on change)',
  'admin-max-connections': 'most admin connections at once; more are closed at accept (default 64)',
  'admin-timeout': 'an admin request must arrive whole, and be answered, within this (default 10s)',
  'xds-tls-cert': 'serve xDS over TLS with this certificate chain (PEM; re-read on change)',
  'xds-tls-key': 'the private key of --xds-tls-cert (PEM)',
  'xds-client-ca': 'require client certificates signed by this CA; a stream\'s node id must be a URI SAN\'s last path segment or a DNS SAN',
  [LIMIT_FLAGS.maxNamesPerRequest]: `resource names in one request (default ${DEFAULT_LIMITS.maxNamesPerRequest})`,
  [LIMIT_FLAGS.maxNamesPerSubscription]: `names one stream may subscribe to per type (default ${DEFAULT_LIMITS.maxNamesPerSubscription})`,
  [LIMIT_FLAGS.maxStreamsPerConnection]: `concurrent xDS streams per connection (default ${DEFAULT_LIMITS.maxStreamsPerConnection})`,
  [LIMIT_FLAGS.maxStreamsPerNode]: `concurrent xDS streams per node id (default ${DEFAULT_LIMITS.maxStreamsPerNode})`,
  [LIMIT_FLAGS.maxMessageBytes]: `largest xDS request message in bytes (default ${DEFAULT_LIMITS.maxMessageBytes})`,
  [LIMIT_FLAGS.maxPartialBytes]: `bytes of unfinished request messages held across all clients (default ${DEFAULT_LIMITS.maxPartialBytes})`,
  [LIMIT_FLAGS.partialMessageTimeoutMs]: `time a client may take to finish a request message (default ${ms(DEFAULT_LIMITS.partialMessageTimeoutMs)})`,
  [LIMIT_FLAGS.slowStreamMs]: `unread response bytes older than this stop holding back other streams (default ${ms(DEFAULT_LIMITS.slowStreamMs)})`,
  [LIMIT_FLAGS.drainTimeoutMs]: `a stream whose response is not read within this is reset (default ${ms(DEFAULT_LIMITS.drainTimeoutMs)})`,
  [CONFIG_LIMIT_FLAGS.maxBytes]: 'largest mesh file in bytes (default 16777216)',
  [CONFIG_LIMIT_FLAGS.maxAliases]: 'most YAML aliases in the mesh file (default 10000)',
  [CONFIG_LIMIT_FLAGS.maxExpandedNodes]: 'most YAML values once aliases are expanded (default 2000000)',
  ...PREFLIGHT_HELP,
};

export const BOOTSTRAP_TLS_FLAGS = {
  'xds-tls-ca': { type: 'string' },
  'xds-tls-cert': { type: 'string' },
  'xds-tls-key': { type: 'string' },
} as const;

/** The bootstrap's TLS files: all three, or none. */
export function bootstrapTlsOptions(values: Values, fail: (message: string) => never): { ca: string; cert: string; key: string } | undefined {
  const [ca, cert, key] = (['xds-tls-ca', 'xds-tls-cert', 'xds-tls-key'] as const).map((flag) => values[flag] as string | undefined);
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if (ca === undefined || cert === undefined || key === undefined) fail('--xds-tls-ca, --xds-tls-cert and --xds-tls-key go together');
  return { ca, cert, key };
}

export const BOOTSTRAP_TLS_HELP: Record<string, string> = {
  'xds-tls-ca': 'CA that signed the xDS server certificate: Envoy connects over TLS and verifies it',
  'xds-tls-cert': 'client certificate Envoy presents to the xDS server (its SAN names the node id)',
  'xds-tls-key': 'private key of --xds-tls-cert',
};

// A command's parsed flags (repeatable ones are arrays).
type Values = Record<string, string | boolean | string[] | undefined>;

function count(values: Values, flag: string, fail: (message: string) => never): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`--${flag}: expected a positive whole number, got ${String(raw)}`);
  return n;
}

function duration(values: Values, flag: string, fail: (message: string) => never): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const parsed = parseDuration(String(raw));
  if (!parsed.ok) fail(`--${flag}: ${parsed.reason}`);
  return parsed.value;
}

/** The pre-flight limits: the flags given, the defaults for the rest. */
export function preflightOptions(values: Values, fail: (message: string) => never): PreflightLimits {
  const heap = count(values, 'preflight-heap-mb', fail);
  if (heap !== undefined && heap < MIN_PREFLIGHT_HEAP_MB) fail(`--preflight-heap-mb: at least ${MIN_PREFLIGHT_HEAP_MB}, got ${heap}`);
  const memory = count(values, 'preflight-memory-mb', fail);
  if (memory !== undefined && memory > 4096) fail(`--preflight-memory-mb: a module's memory is at most 4096 MiB, got ${memory}`);
  const timeout = duration(values, 'preflight-timeout', fail);
  if (timeout === 0) fail('--preflight-timeout: must be more than 0');
  return {
    timeoutMs: timeout ?? DEFAULT_PREFLIGHT.timeoutMs,
    maxHeapMb: heap ?? DEFAULT_PREFLIGHT.maxHeapMb,
    maxMemoryMb: memory ?? DEFAULT_PREFLIGHT.maxMemoryMb,
  };
}

/** The ServeOptions these flags set (only those given). */
export function securityServeOptions(values: Values, fail: (message: string) => never): Partial<ServeOptions> {
  const xdsLimits: Partial<XdsLimits> = {};
  for (const [key, flag] of Object.entries(LIMIT_FLAGS) as Array<[keyof XdsLimits, string]>) {
    const value = DURATION_LIMITS.has(key) ? duration(values, flag, fail) : count(values, flag, fail);
    if (value !== undefined) xdsLimits[key] = value;
  }
  const configLimits: Partial<YamlLimits> = {};
  for (const [key, flag] of Object.entries(CONFIG_LIMIT_FLAGS) as Array<[keyof YamlLimits, string]>) {
    const value = count(values, flag, fail);
    if (value !== undefined) configLimits[key] = value;
  }
  const cert = values['xds-tls-cert'] as string | undefined;
  const key = values['xds-tls-key'] as string | undefined;
  const clientCa = values['xds-client-ca'] as string | undefined;
  if ((cert === undefined) !== (key === undefined)) fail('--xds-tls-cert and --xds-tls-key go together');
  if (clientCa !== undefined && cert === undefined) fail('--xds-client-ca needs --xds-tls-cert and --xds-tls-key');
  return {
    adminHost: values['admin-host'] as string | undefined,
    adminTokenFile: values['admin-token-file'] as string | undefined,
    adminMaxConnections: count(values, 'admin-max-connections', fail),
    adminTimeoutMs: duration(values, 'admin-timeout', fail),
    xdsTls: cert && key ? { certFile: cert, keyFile: key, clientCaFile: clientCa } : undefined,
    xdsLimits,
    configLimits,
    preflight: preflightOptions(values, fail),
  };
}
