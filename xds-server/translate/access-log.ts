// Access logs per listener: one JSON object per HTTP request (the HTTP
// connection manager's log), per TCP connection (tcp_proxy's, written when the
// connection closes) or per UDP session (udp_proxy's). Field names follow
// Istio's JSON access log, which is what most Envoy users have read before.
// Stock Envoy 1.40 extensions: envoy.access_loggers.file, .stdout, .stderr.
import type { AccessLog, Listener } from '../model/types.ts';
import { toAny } from '../protos/index.ts';
import type { EnvoyMessage } from '../model/resources.ts';

/** What a line describes; each kind has its own fields. */
export type AccessLogKind = 'http' | 'tcp' | 'udp';

/** Fields every kind logs (connection-level command operators). */
const CONNECTION_FIELDS: Readonly<Record<string, string>> = {
  start_time: '%START_TIME%',
  duration: '%DURATION%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
};

/** Envoy command operators per JSON key, by kind (see docs/config.md "Access logs"). */
export const ACCESS_LOG_FIELDS: Readonly<Record<AccessLogKind, Readonly<Record<string, string>>>> = {
  http: {
    ...CONNECTION_FIELDS,
    method: '%REQ(:METHOD)%',
    // the path before any rewrite
    path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
    authority: '%REQ(:AUTHORITY)%',
    protocol: '%PROTOCOL%',
    response_code: '%RESPONSE_CODE%',
    response_code_details: '%RESPONSE_CODE_DETAILS%',
    response_flags: '%RESPONSE_FLAGS%',
    bytes_received: '%BYTES_RECEIVED%',
    bytes_sent: '%BYTES_SENT%',
    upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
    upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
    requested_server_name: '%REQUESTED_SERVER_NAME%',
    user_agent: '%REQ(USER-AGENT)%',
    request_id: '%REQ(X-REQUEST-ID)%',
    x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  },
  tcp: {
    ...CONNECTION_FIELDS,
    response_flags: '%RESPONSE_FLAGS%',
    bytes_received: '%BYTES_RECEIVED%',
    bytes_sent: '%BYTES_SENT%',
    upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
    requested_server_name: '%REQUESTED_SERVER_NAME%',
    connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  },
  // udp_proxy puts a session's counts in dynamic metadata, not in the byte operators.
  udp: {
    ...CONNECTION_FIELDS,
    upstream_cluster: '%DYNAMIC_METADATA(udp.proxy.session:cluster_name)%',
    bytes_received: '%DYNAMIC_METADATA(udp.proxy.session:bytes_received)%',
    bytes_sent: '%DYNAMIC_METADATA(udp.proxy.session:bytes_sent)%',
    datagrams_received: '%DYNAMIC_METADATA(udp.proxy.session:datagrams_received)%',
    datagrams_sent: '%DYNAMIC_METADATA(udp.proxy.session:datagrams_sent)%',
  },
};

/** A google.protobuf.Struct of string values (protobufjs's built-in struct.proto spells its fields in camelCase). */
function struct(values: Readonly<Record<string, string>>): EnvoyMessage {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

/** JSON lines with the kind's fields plus the listener's name; absent for `text` (Envoy's default line). */
function logFormat(listener: Listener, kind: AccessLogKind, log: AccessLog): EnvoyMessage | undefined {
  if (log.format === 'text') return undefined;
  // Sorted keys: the same line layout on every Envoy, and the translation stays byte-identical.
  const fields = { ...ACCESS_LOG_FIELDS[kind], listener: listener.name };
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { json_format: struct(sorted), json_format_options: { sort_properties: true } };
}

function accessLog(listener: Listener, kind: AccessLogKind, log: AccessLog): EnvoyMessage {
  const format = logFormat(listener, kind, log);
  const withFormat = format === undefined ? {} : { log_format: format };
  if (log.kind === 'file') {
    return {
      name: 'envoy.access_loggers.file',
      typed_config: toAny('envoy.extensions.access_loggers.file.v3.FileAccessLog', { path: log.path, ...withFormat }),
    };
  }
  const type = log.kind === 'stdout' ? 'StdoutAccessLog' : 'StderrAccessLog';
  return {
    name: `envoy.access_loggers.${log.kind}`,
    typed_config: toAny(`envoy.extensions.access_loggers.stream.v3.${type}`, withFormat),
  };
}

/** The `access_log` entries of a listener's HTTP connection manager, tcp_proxy or udp_proxy (none: []). */
export function accessLogs(listener: Listener, kind: AccessLogKind): EnvoyMessage[] {
  return (listener.accessLogs ?? []).map((log) => accessLog(listener, kind, log));
}

/**
 * The Listener's own `access_log`: Envoy 1.40 writes it for every connection
 * when it closes (connection-level fields only), which would double the
 * tcp_proxy and HTTP lines; so only connections no filter chain took
 * (response flag NR: a tls client whose SNI no route names) are kept.
 */
export function unroutedConnectionLogs(listener: Listener): EnvoyMessage[] {
  return accessLogs(listener, 'tcp').map((log) => ({ ...log, filter: { response_flag_filter: { flags: ['NR'] } } }));
}
