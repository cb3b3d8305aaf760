// A Kafka cluster behind stock Envoy 1.40 configured only by protoplane: the
// issue's config contract (one bootstrap listener, one listener per broker
// generated from filter.brokers), plus a plain tcp_proxy listener to the same
// brokers as the control (no filter, so no rewriting).
import { freePort } from '../support/envoy.ts';
import { startMeshEnv, type MeshEnv } from '../support/mesh-env.ts';
import type { KafkaCluster } from './brokers.ts';

export interface KafkaMesh {
  readonly env: MeshEnv;
  /** Envoy's bootstrap port (listener `kafka`). */
  readonly bootstrapPort: number;
  /** Envoy's port per broker, by broker id (listeners `kafka-broker-<id>`). */
  readonly brokerPorts: ReadonlyMap<number, number>;
  /** A plain tcp_proxy listener (`plain`) to every broker: what a client sees without the filter. */
  readonly plainPort: number;
  close(): Promise<void>;
}

/** Filter settings beside advertise and brokers (YAML at the `filter:` map's indentation, 6 spaces). */
export const DEFAULT_POLICY = `      acl:
        default: allow
        produce:
          - { topic: { prefix: "secret." }, action: deny }
      topic_metrics: [ "orders." ]
      limits: { max_request_bytes: 262144 }
`;

/** `brokerIds`: the brokers listed in `filter.brokers` (default: all of the cluster's). */
export function kafkaMeshYaml(
  cluster: KafkaCluster,
  ports: { bootstrap: number; brokers: ReadonlyMap<number, number>; plain: number },
  policy = DEFAULT_POLICY,
  brokerIds: readonly number[] = cluster.brokers.map((b) => b.id),
): string {
  const brokers = cluster.brokers.filter((b) => brokerIds.includes(b.id)).map((b) => `        - { id: ${b.id}, port: ${ports.brokers.get(b.id)}, cluster: kafka-${b.id} }`).join('\n');
  const clusters = cluster.brokers.map((b) => `  - { name: kafka-${b.id}, endpoints: [ 127.0.0.1:${b.port} ] }`).join('\n');
  const all = cluster.brokers.map((b) => `127.0.0.1:${b.port}`).join(', ');
  return `listeners:
  - name: kafka
    address: 127.0.0.1
    port: ${ports.bootstrap}
    protocol: kafka
    filter:
      advertise: 127.0.0.1
      brokers:
${brokers}
${policy}    routes:
      - cluster: kafka-all
  - name: plain
    address: 127.0.0.1
    port: ${ports.plain}
    protocol: tcp
    routes: [ { cluster: kafka-all } ]
clusters:
${clusters}
  - { name: kafka-all, endpoints: [ ${all} ] }
`;
}

export async function startKafkaMesh(cluster: KafkaCluster, options: { nodeId?: string; policy?: string } = {}): Promise<KafkaMesh> {
  const bootstrapPort = await freePort();
  const plainPort = await freePort();
  const brokerPorts = new Map<number, number>();
  for (const b of cluster.brokers) brokerPorts.set(b.id, await freePort());
  const env = await startMeshEnv({
    yaml: kafkaMeshYaml(cluster, { bootstrap: bootstrapPort, brokers: brokerPorts, plain: plainPort }, options.policy),
    nodeId: options.nodeId ?? 'kafka-envoy',
    listeners: ['kafka', 'plain', ...cluster.brokers.map((b) => `kafka-broker-${b.id}`)],
  });
  return { env, bootstrapPort, brokerPorts, plainPort, close: () => env.close() };
}
