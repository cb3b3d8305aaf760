// protoplane serve | validate | bootstrap
import { parseArgs } from 'node:util';
import { serve } from '../app.ts';
import { bootstrapYaml } from '../bootstrap.ts';
import { FilterCatalog } from '../catalog/index.ts';
import { formatConfigError, loadMeshFile } from '../config/index.ts';
import { parseDuration } from '../config/values.ts';
import { DEFAULT_DEBOUNCE } from '../debounce.ts';
import { createLogger } from '../log.ts';
import { REPO_ROOT } from '../wasm-host/build.ts';
import { scaffoldFilter } from './new-filter.ts';
import { replayCommand } from './replay.ts';

const USAGE = `usage:
  protoplane serve --config mesh.yaml [--xds-port 18000] [--admin-port 18001] [--host 0.0.0.0]
                   [--debounce 100ms] [--debounce-max 10s] [--keepalive 30s] [--max-stream-age 0s]
                   [--max-stream-age-grace 30s] [--wasm-code remote|local]
  protoplane validate mesh.yaml
  protoplane replay --filter NAME [--config FILE] [--chunk N] CAPTURE   (pcap/pcapng, or raw client bytes)
  protoplane new-filter NAME              (scaffolds filters/NAME/ and test/filters/NAME.test.ts)
  protoplane bootstrap --xds 127.0.0.1:18000 --node-id ID [--node-cluster C] [--delta] [--per-type] [--admin-port 9901] [--admin-address 127.0.0.1]
                       [--protoplane-admin HOST:18001]   (where Envoy fetches Wasm modules)`;

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function duration(value: string | undefined, fallbackMs: number, flag: string): number {
  if (value === undefined) return fallbackMs;
  const parsed = parseDuration(value);
  if (!parsed.ok) fail(`${flag}: ${parsed.reason}`);
  return parsed.value;
}

function wasmCode(value: string | undefined): 'remote' | 'local' {
  if (value === undefined || value === 'remote' || value === 'local') return value ?? 'remote';
  fail(`--wasm-code: expected remote or local, got ${value}`);
}

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`${flag}: not a port: ${value}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: 'string', short: 'c' },
          'xds-port': { type: 'string' },
          'admin-port': { type: 'string' },
          host: { type: 'string' },
          debounce: { type: 'string' },
          'debounce-max': { type: 'string' },
          keepalive: { type: 'string' },
          'max-stream-age': { type: 'string' },
          'max-stream-age-grace': { type: 'string' },
          'wasm-code': { type: 'string' },
        },
      });
      if (!values.config) fail('serve: --config is required');
      const log = createLogger();
      const server = await serve({
        configPath: values.config,
        xdsPort: port(values['xds-port'], 18000, '--xds-port'),
        adminPort: port(values['admin-port'], 18001, '--admin-port'),
        host: values.host,
        log,
        debounce: {
          quietMs: duration(values.debounce, DEFAULT_DEBOUNCE.quietMs, '--debounce'),
          maxMs: duration(values['debounce-max'], DEFAULT_DEBOUNCE.maxMs, '--debounce-max'),
        },
        keepaliveMs: duration(values.keepalive, 30_000, '--keepalive'),
        maxStreamAgeMs: duration(values['max-stream-age'], 0, '--max-stream-age'),
        maxStreamAgeGraceMs: duration(values['max-stream-age-grace'], 30_000, '--max-stream-age-grace'),
        wasmCode: wasmCode(values['wasm-code']),
      });
      const stop = () => {
        log.info('shutting down');
        void server.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return new Promise<number>(() => {});
    }
    case 'validate': {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true });
      if (positionals.length !== 1) fail('validate: pass exactly one file');
      // Filters under filters/ bring their protocols and schemas, and check their own settings.
      const catalog = await FilterCatalog.load();
      const result = await loadMeshFile(positionals[0]!, { protocols: catalog.protocolSchemas() });
      const problems = result.ok ? await catalog.check(result.mesh) : [];
      if (result.ok && problems.length > 0) {
        for (const p of problems) process.stderr.write(`${formatConfigError(result.error(['listeners', p.listener, 'protocol'], p.message))}\n`);
        return 1;
      }
      if (result.ok) {
        process.stdout.write(
          `${positionals[0]}: ok (${result.mesh.listeners.length} listeners, ${result.mesh.clusters.length} clusters)\n`,
        );
        return 0;
      }
      for (const error of result.errors) process.stderr.write(`${formatConfigError(error)}\n`);
      return 1;
    }
    case 'bootstrap': {
      const { values } = parseArgs({
        args: rest,
        options: {
          xds: { type: 'string' },
          'node-id': { type: 'string' },
          'node-cluster': { type: 'string' },
          delta: { type: 'boolean' },
          'per-type': { type: 'boolean' },
          'admin-port': { type: 'string' },
          'admin-address': { type: 'string' },
          'protoplane-admin': { type: 'string' },
        },
      });
      if (!values['node-id']) fail('bootstrap: --node-id is required');
      process.stdout.write(
        bootstrapYaml({
          xds: values.xds ?? '127.0.0.1:18000',
          nodeId: values['node-id'],
          nodeCluster: values['node-cluster'],
          delta: values.delta ?? false,
          perType: values['per-type'] ?? false,
          adminPort: port(values['admin-port'], 9901, '--admin-port'),
          adminAddress: values['admin-address'],
          protoplaneAdmin: values['protoplane-admin'],
        }),
      );
      return 0;
    }
    case 'replay': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { filter: { type: 'string' }, config: { type: 'string' }, chunk: { type: 'string' } },
      });
      if (!values.filter || positionals.length !== 1) fail('replay: pass --filter NAME and one capture file');
      const chunk = values.chunk === undefined ? undefined : Number(values.chunk);
      if (chunk !== undefined && !(Number.isInteger(chunk) && chunk > 0)) fail('replay: --chunk must be a positive integer');
      return replayCommand({ filter: values.filter, config: values.config, capture: positionals[0]!, chunk });
    }
    case 'new-filter': {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true });
      if (positionals.length !== 1) fail('new-filter: pass exactly one name');
      const { files } = scaffoldFilter(REPO_ROOT, positionals[0]!);
      process.stdout.write(`created:\n${files.map((f) => `  ${f}`).join('\n')}\nbuild: npm run build:filters   test: node --import tsx --test test/filters/${positionals[0]}.test.ts\n`);
      return 0;
    }
    default:
      fail(command ? `unknown command: ${command}` : 'no command');
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`protoplane: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
