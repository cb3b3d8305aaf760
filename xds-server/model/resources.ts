// The xDS resources the server serves, as plain data: type URLs, their
// order, and how Envoy connects. Imports nothing, so translate/, cache/ and
// server/ all depend on it and not on each other.

/** A plain object shaped like an Envoy message (snake_case field names). */
export type EnvoyMessage = Record<string, unknown>;

export const TYPE = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  /** ECDS: filter configs (e.g. Wasm) that listeners name through config_discovery. */
  extension: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
  /** SDS: certificates and CAs of terminating TLS listeners, named by the listener's transport socket. */
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

export type ResourceType = (typeof TYPE)[keyof typeof TYPE];

/** Make-before-break: what a resource refers to is sent before it. */
export const TYPE_ORDER: readonly ResourceType[] = [TYPE.cluster, TYPE.endpoint, TYPE.extension, TYPE.secret, TYPE.listener, TYPE.route];

export interface Resources {
  listeners: EnvoyMessage[];
  routes: EnvoyMessage[];
  clusters: EnvoyMessage[];
  endpoints: EnvoyMessage[];
  extensions: EnvoyMessage[];
  secrets: EnvoyMessage[];
}

/** How an Envoy is connected: one ADS stream, per-type SotW streams, or (per-type or ADS) delta. */
export type XdsFlavour = 'ads' | 'sotw' | 'delta';
