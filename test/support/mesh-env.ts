// protoplane serving a mesh file from a temp folder, and a stock Envoy
// bootstrapped against it: what most end-to-end tests start with.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serve, type Protoplane, type ServeOptions } from '../../xds-server/app.ts';
import { bootstrapYaml, type BootstrapOptions } from '../../xds-server/bootstrap.ts';
import { silentLogger } from '../../xds-server/log.ts';
import { freePort, startEnvoy, type EnvoyHandle } from './envoy.ts';

/** `protoplane serve` as the tests run it: free ports on 127.0.0.1, no log output, no process metrics. */
export function serveForTest(configPath: string, options: Partial<ServeOptions> = {}): Promise<Protoplane> {
  return serve({ configPath, xdsPort: 0, adminPort: 0, host: '127.0.0.1', log: silentLogger(), processMetrics: false, ...options });
}

export interface MeshEnv {
  readonly configPath: string;
  readonly server: Protoplane;
  readonly envoy: EnvoyHandle;
  /** Replaces the mesh file the way editors do (write + rename), so the watch sees a whole file. */
  write(yaml: string): void;
  close(): Promise<void>;
}

export async function startMeshEnv(options: {
  yaml: string;
  nodeId: string;
  bootstrap?: Partial<Omit<BootstrapOptions, 'xds' | 'nodeId' | 'adminPort'>>;
  /** Listeners to wait for before returning. */
  listeners?: string[];
  /** Extra Envoy command-line arguments (e.g. --file-flush-interval-msec). */
  envoyArgs?: string[];
}): Promise<MeshEnv> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'protoplane-e2e-'));
  const configPath = path.join(dir, 'mesh.yaml');
  const write = (yaml: string) => {
    fs.writeFileSync(`${configPath}.tmp`, yaml);
    fs.renameSync(`${configPath}.tmp`, configPath);
  };
  write(options.yaml);
  const server = await serveForTest(configPath, { watchFilters: false });
  const adminPort = await freePort();
  const envoy = await startEnvoy({
    bootstrapYaml: bootstrapYaml({
      xds: `127.0.0.1:${server.xdsPort}`,
      nodeId: options.nodeId,
      adminPort,
      protoplaneAdmin: `127.0.0.1:${server.adminPort}`,
      ...options.bootstrap,
    }),
    adminPort,
    ...(options.envoyArgs ? { args: options.envoyArgs } : {}),
  }).catch(async (error: unknown) => {
    await server.close();
    throw error;
  });
  try {
    for (const name of options.listeners ?? []) await envoy.waitForListener(name, 20_000);
  } catch (error) {
    // The caller gets no handle to close: left running, Envoy and the server would keep the test process alive forever.
    await envoy.stop();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    configPath,
    server,
    envoy,
    write,
    async close() {
      await envoy.stop();
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
