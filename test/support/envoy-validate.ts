// Asks the real Envoy binary whether it accepts resources: they are placed in
// a binary (.pb) bootstrap and checked with `envoy --mode validate`, which
// runs Envoy's own proto validation and config factories without serving.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { messageType, toAny } from '../../xds-server/protos/index.ts';
import type { Resources } from '../../xds-server/translate/index.ts';
import { envoyBinary } from './envoy.ts';

const run = promisify(execFile);

export interface ValidateResult {
  ok: boolean;
  output: string;
}

/**
 * Listeners and clusters go in static_resources as they are; each route
 * configuration is inlined into the HttpConnectionManager of a probe listener,
 * and each endpoint assignment into a probe STATIC cluster.
 */
export async function envoyValidates(resources: Resources): Promise<ValidateResult> {
  const bootstrapType = messageType('envoy.config.bootstrap.v3.Bootstrap');
  const adsSource = { ads: {}, resource_api_version: 'V3' };
  const bootstrap = {
    node: { id: 'validate', cluster: 'validate' },
    dynamic_resources: {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }],
      },
      cds_config: adsSource,
      lds_config: adsSource,
    },
    static_resources: {
      listeners: [
        ...resources.listeners,
        ...resources.routes.map((route, i) => ({
          name: `probe-route-${i}`,
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: toAny('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
                    stat_prefix: 'probe',
                    route_config: route,
                    http_filters: [
                      { name: 'envoy.filters.http.router', typed_config: toAny('envoy.extensions.filters.http.router.v3.Router', {}) },
                    ],
                  }),
                },
              ],
            },
          ],
        })),
      ],
      clusters: [
        {
          name: 'xds',
          type: 'STATIC',
          connect_timeout: { seconds: 1 },
          load_assignment: {
            cluster_name: 'xds',
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 1 } } } }] }],
          },
        },
        ...resources.clusters,
        ...resources.endpoints.map((assignment, i) => ({
          name: `probe-endpoints-${i}`,
          type: 'STATIC',
          connect_timeout: { seconds: 1 },
          load_assignment: { ...assignment, cluster_name: `probe-endpoints-${i}` },
        })),
      ],
      // SDS secrets (TLS termination): checked as static secrets.
      secrets: resources.secrets,
    },
  };
  const bytes = bootstrapType.encode(bootstrapType.fromObject(bootstrap)).finish();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-validate-'));
  const file = path.join(dir, 'bootstrap.pb');
  fs.writeFileSync(file, bytes);
  try {
    const { stdout, stderr } = await run(envoyBinary(), ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'error']);
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
