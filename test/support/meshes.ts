// Small meshes for protocol tests: clusters on 127.0.0.1, and optionally one
// HTTP listener "web" routing everything to one cluster.
import type { Cluster, Mesh } from '../../xds-server/model/types.ts';

export function cluster(name: string, port = 9000, connectTimeout = 1000): Cluster {
  return { name, endpoints: [{ host: '127.0.0.1', port }], lb: 'round_robin', http2: false, connectTimeout };
}

export function mesh(clusters: Cluster[], routeTo?: string): Mesh {
  return {
    clusters,
    listeners: routeTo
      ? [
          {
            name: 'web',
            address: '0.0.0.0',
            port: 10080,
            protocol: 'http',
            routes: [{ match: { kind: 'http', prefix: '/', headers: [] }, target: { kind: 'cluster', cluster: routeTo } }],
          },
        ]
      : [],
  };
}
