// Access logs per listener (issue 21, item 6) and PROXY protocol on protocol
// listeners (item 4): the accepted shapes and their defaults, file:line:col
// errors, where the translation puts each log (HTTP connection manager,
// tcp_proxy, udp_proxy), and stock Envoy 1.40 accepting all of it in
// `envoy --mode validate`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createMeshParser, formatConfigError } from '../../xds-server/config/index.ts';
import type { Mesh } from '../../xds-server/model/types.ts';
import { decodeMessage, type AnyMessage } from '../../xds-server/protos/index.ts';
import { ACCESS_LOG_FIELDS } from '../../xds-server/translate/access-log.ts';
import { translate, type EnvoyMessage, type FilterRefs, type Resources } from '../../xds-server/translate/index.ts';
import { envoyValidates } from '../support/envoy-validate.ts';

const FILE = 'mesh.yaml';
const KAFKA_ITEMS = { array: 'brokers', name: 'broker', id: 'id', port: 'port', cluster: 'cluster', setting: 'listener_broker_id' };
const parse = createMeshParser({ protocols: { mqtt: {}, coap: {}, kafka: { itemListeners: KAFKA_ITEMS } } });
const FILTERS: FilterRefs = new Map(
  ['mqtt', 'kafka'].map((p) => [p, { name: p, code: { kind: 'local' as const, path: `/filters/${p}.wasm` } }]),
);
const CLUSTERS = `clusters:
  - { name: back, endpoints: [ 127.0.0.1:18080 ] }
  - { name: k1, endpoints: [ 127.0.0.1:18081 ] }
`;

function meshOf(text: string): Mesh {
  const r = parse(text, FILE);
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join('\n'));
  return r.mesh;
}

function errorsOf(text: string): string[] {
  const r = parse(text, FILE);
  assert.equal(r.ok, false, 'expected the config to be rejected');
  return r.ok ? [] : r.errors.map(formatConfigError);
}

const oneListener = (l: string): string => `listeners:\n  - ${l}\n${CLUSTERS}`;

// Envoy opens (creates) the log files even in validate mode: they live in a temp folder.
const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-access-log-unit-'));
after(() => fs.rmSync(DIR, { recursive: true, force: true }));

/** Every listener kind with an access log. */
const ALL = `listeners:
  - { name: web, port: 10080, protocol: http, access_log: ${DIR}/web.json, routes: [ { match: { prefix: / }, cluster: back } ] }
  - { name: raw, port: 10081, protocol: tcp, proxy_protocol: true, access_log: [ stderr, { path: ${DIR}/raw.log, format: text } ], routes: [ { cluster: back } ] }
  - { name: sni, port: 10082, protocol: tls, access_log: stdout, routes: [ { match: { sni: a.example.com }, cluster: back }, { cluster: back } ] }
  - { name: any, port: 10083, protocol: auto, access_log: /dev/stdout, routes: [ { match: { prefix: / }, cluster: back } ], tcp: { cluster: back } }
  - { name: mq, port: 10084, protocol: mqtt, proxy_protocol: true, access_log: stdout, routes: [ { cluster: back } ] }
  - { name: co, port: 10085, protocol: coap, transport: udp, access_log: stdout, routes: [ { cluster: back } ] }
  - { name: kf, port: 10086, protocol: kafka, proxy_protocol: true, access_log: stdout, filter: { brokers: [ { id: 1, port: 10087, cluster: k1 } ] }, routes: [ { cluster: back } ] }
${CLUSTERS}`;

const decode = (any: unknown): EnvoyMessage => {
  const a = any as AnyMessage;
  return decodeMessage(a.type_url.replace(/^.*\//, ''), a.value) as EnvoyMessage;
};
const listener = (r: Resources, name: string): EnvoyMessage => {
  const l = r.listeners.find((x) => x['name'] === name);
  assert.ok(l, `listener ${name}`);
  return l;
};
/** The network filters of every chain (the default chain last), decoded. */
const networkFilters = (l: EnvoyMessage): Array<{ name: string; config: EnvoyMessage }> => {
  const chains = [...((l['filter_chains'] as EnvoyMessage[] | undefined) ?? []), ...(l['default_filter_chain'] ? [l['default_filter_chain'] as EnvoyMessage] : [])];
  return chains.flatMap((c) => (c['filters'] as EnvoyMessage[]).filter((f) => f['typed_config']).map((f) => ({ name: String(f['name']), config: decode(f['typed_config']) })));
};
/** Each access log entry: its logger name and decoded config. */
const logsOf = (config: EnvoyMessage): Array<{ name: string; config: EnvoyMessage }> =>
  ((config['access_log'] as EnvoyMessage[] | undefined) ?? []).map((a) => ({ name: String(a['name']), config: decode(a['typed_config']) }));
/** The JSON keys of a logger's json_format (protobufjs decodes the Struct as { fields }). */
const jsonKeys = (config: EnvoyMessage): string[] => {
  const format = config['log_format'] as { json_format?: { fields: Record<string, { stringValue: string }> } } | undefined;
  return Object.keys(format?.json_format?.fields ?? {});
};

describe('access_log: config', () => {
  it('accepts stdout, stderr, an absolute path, { path, format } and lists; JSON by default, /dev/stdout is stdout', () => {
    const mesh = meshOf(ALL);
    const logs = Object.fromEntries(mesh.listeners.map((l) => [l.name, l.accessLogs]));
    assert.deepEqual(logs['web'], [{ kind: 'file', path: `${DIR}/web.json`, format: 'json' }]);
    assert.deepEqual(logs['raw'], [{ kind: 'stderr', format: 'json' }, { kind: 'file', path: `${DIR}/raw.log`, format: 'text' }]);
    assert.deepEqual(logs['any'], [{ kind: 'stdout', format: 'json' }]);
    assert.deepEqual(logs['sni'], [{ kind: 'stdout', format: 'json' }]);
    // a filter's spawned listeners (Kafka brokers) log and read PROXY headers like their parent
    const broker = mesh.listeners.find((l) => l.name === 'kf')!.generated![0]!;
    assert.deepEqual(broker.accessLogs, [{ kind: 'stdout', format: 'json' }]);
    assert.equal(broker.proxyProtocol, true);
    assert.equal(meshOf(oneListener('{ name: t, port: 1, protocol: tcp, routes: [ { cluster: back } ] }')).listeners[0]!.accessLogs, undefined);
  });

  it('names file:line:col for a relative path, a bad format, an unknown key, an empty list, and a grpc listener', () => {
    const tcp = (log: string) => oneListener(`{ name: t, port: 1, protocol: tcp, access_log: ${log}, routes: [ { cluster: back } ] }`);
    assert.deepEqual(errorsOf(tcp('logs/t.json')), [
      'mesh.yaml:2:52: must be "stdout", "stderr" or an absolute file path (Envoy writes it, on its own machine) (got "logs/t.json") (at listeners[0].access_log)',
    ]);
    assert.deepEqual(errorsOf(tcp('{ path: /t.log, format: yaml }')), [
      'mesh.yaml:2:76: must be one of "json", "text" (got "yaml") (at listeners[0].access_log.format)',
    ]);
    assert.deepEqual(errorsOf(tcp('{ path: /t.log, fromat: json }')), [
      'mesh.yaml:2:68: unknown key "fromat" (did you mean "format"?) (at listeners[0].access_log.fromat)',
    ]);
    assert.deepEqual(errorsOf(tcp('[]')), ['mesh.yaml:2:52: access_log needs at least one log (got an empty list) (at listeners[0].access_log)']);
    assert.deepEqual(errorsOf(tcp('[ stdout, 5 ]')), [
      'mesh.yaml:2:62: must be "stdout", "stderr", an absolute file path, or a map { path, format: json | text } (got 5) (at listeners[0].access_log[1])',
    ]);
    assert.deepEqual(errorsOf(oneListener('{ name: g, protocol: grpc, access_log: stdout, routes: [ { match: { prefix: / }, cluster: back } ] }')), [
      'mesh.yaml:2:32: "access_log" is for listeners Envoy serves; a grpc API listener runs in the gRPC client (at listeners[0].access_log)',
    ]);
  });

  it('takes proxy_protocol on protocol (Wasm filter) listeners, refuses it on UDP and grpc ones', () => {
    assert.equal(meshOf(oneListener('{ name: m, port: 1883, protocol: mqtt, proxy_protocol: true, routes: [ { cluster: back } ] }')).listeners[0]!.proxyProtocol, true);
    assert.deepEqual(errorsOf(oneListener('{ name: g, protocol: grpc, proxy_protocol: true, routes: [ { match: { prefix: / }, cluster: back } ] }')), [
      'mesh.yaml:2:32: "proxy_protocol" is for listeners that accept TCP connections, not grpc API listeners (at listeners[0].proxy_protocol)',
    ]);
  });
});

describe('access_log: translation', () => {
  const resources = translate(meshOf(ALL), 'ads', FILTERS);

  it('http: the connection manager logs each request with the HTTP fields; Envoy is the edge (use_remote_address)', () => {
    const [hcm] = networkFilters(listener(resources, 'web'));
    assert.equal(hcm!.name, 'envoy.filters.network.http_connection_manager');
    assert.deepEqual(hcm!.config['use_remote_address'], { value: true });
    const [log, ...more] = logsOf(hcm!.config);
    assert.equal(more.length, 0);
    assert.equal(log!.name, 'envoy.access_loggers.file');
    assert.equal(log!.config['path'], `${DIR}/web.json`);
    const keys = jsonKeys(log!.config);
    assert.deepEqual(keys, [...keys].sort(), 'keys sorted: the same bytes every translation');
    for (const k of ['start_time', 'method', 'path', 'authority', 'protocol', 'response_code', 'response_flags', 'bytes_received', 'bytes_sent', 'duration', 'upstream_host', 'upstream_cluster', 'downstream_remote_address', 'user_agent', 'request_id', 'x_forwarded_for', 'listener']) {
      assert.ok(keys.includes(k), `HTTP lines have ${k}`);
    }
    const fields = (log!.config['log_format'] as { json_format: { fields: Record<string, { stringValue: string }> } }).json_format.fields;
    assert.equal(fields['listener']!.stringValue, 'web');
    assert.equal(fields['downstream_remote_address']!.stringValue, '%DOWNSTREAM_REMOTE_ADDRESS%');
  });

  it('tcp: tcp_proxy logs each connection (TCP fields); format text leaves Envoy its default line', () => {
    const [tcpProxy] = networkFilters(listener(resources, 'raw'));
    assert.equal(tcpProxy!.name, 'envoy.filters.network.tcp_proxy');
    const logs = logsOf(tcpProxy!.config);
    assert.deepEqual(logs.map((l) => l.name), ['envoy.access_loggers.stderr', 'envoy.access_loggers.file']);
    assert.deepEqual(jsonKeys(logs[0]!.config), Object.keys({ ...ACCESS_LOG_FIELDS.tcp, listener: '' }).sort());
    assert.ok(!jsonKeys(logs[0]!.config).includes('method'));
    assert.deepEqual(logs[1]!.config, { path: `${DIR}/raw.log` });
    // the listener's own log (Envoy writes it for every connection): kept for unrouted connections only
    const own = listener(resources, 'raw')['access_log'] as EnvoyMessage[];
    assert.deepEqual(own.map((a) => a['name']), ['envoy.access_loggers.stderr', 'envoy.access_loggers.file']);
    for (const a of own) assert.deepEqual(a['filter'], { response_flag_filter: { flags: ['NR'] } });
    assert.equal(listener(resources, 'co')['access_log'], undefined, 'udp_proxy logs sessions itself');
  });

  it('tls passthrough: every SNI chain and the default chain log; auto: HTTP lines from the HTTP chain, TCP lines from the fallback', () => {
    const sni = networkFilters(listener(resources, 'sni'));
    assert.equal(sni.length, 2);
    for (const f of sni) assert.deepEqual(logsOf(f.config).map((l) => l.name), ['envoy.access_loggers.stdout']);
    const [http, tcp] = networkFilters(listener(resources, 'any'));
    assert.ok(jsonKeys(logsOf(http!.config)[0]!.config).includes('method'));
    assert.equal(tcp!.name, 'envoy.filters.network.tcp_proxy');
    assert.ok(!jsonKeys(logsOf(tcp!.config)[0]!.config).includes('method'));
  });

  it('protocol listeners: the tcp_proxy after the Wasm filter logs, PROXY header first; kafka broker listeners too', () => {
    for (const name of ['mq', 'kf', 'kf-broker-1']) {
      const l = listener(resources, name);
      assert.deepEqual((l['listener_filters'] as EnvoyMessage[]).map((f) => f['name']), ['envoy.filters.listener.proxy_protocol', 'envoy.filters.listener.set_filter_state'], name);
      const tcpProxy = networkFilters(l).find((f) => f.name === 'envoy.filters.network.tcp_proxy')!;
      const [log] = logsOf(tcpProxy.config);
      const format = log!.config['log_format'] as { json_format: { fields: Record<string, { stringValue: string }> } };
      assert.equal(format.json_format.fields['listener']!.stringValue, name);
    }
  });

  it('udp: udp_proxy logs each session with its datagram counts', () => {
    const l = listener(resources, 'co');
    const udp = decode((l['listener_filters'] as EnvoyMessage[])[0]!['typed_config']);
    const [log] = logsOf(udp);
    assert.ok(jsonKeys(log!.config).includes('datagrams_received'));
  });

  it('is deterministic, and stock Envoy 1.40 accepts every listener kind with its logs', async () => {
    const again = translate(meshOf(ALL), 'ads', FILTERS);
    assert.deepEqual(again.listeners, resources.listeners);
    const result = await envoyValidates(resources);
    assert.ok(result.ok, result.output);
  });
});
