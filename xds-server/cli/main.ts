// protoplane serve | validate | bootstrap
// The server (app.ts: gRPC, Fastify, the xDS engine) and replay are imported when their command runs,
// so that help, validate and bootstrap start without loading them.
import { REPLICA_FLAGS, replicaOptionsOf } from '../fleet/flags.ts';
import { statusCommand } from './status.ts';
import { bootstrapYaml, parseHostPort } from '../bootstrap.ts';
import { FilterCatalog, filterFolders, REPO_ROOT, type CodeDelivery } from '../catalog/index.ts';
import { formatConfigError, loadMeshFile } from '../config/index.ts';
import { parseDuration } from '../config/values.ts';
import { DEFAULT_DEBOUNCE } from '../debounce.ts';
import { createLogger, type LogFormat } from '../log.ts';
import { COMMANDS, commandHelp, parseCommand, plural, topLevelHelp, UsageError, type FlagSpecs } from './help.ts';
import { scaffoldFilter } from './new-filter.ts';
import { BOOTSTRAP_TLS_FLAGS, bootstrapTlsOptions, PREFLIGHT_FLAGS, preflightOptions, SERVE_SECURITY_FLAGS, securityServeOptions } from './security-flags.ts';
import { ETCD_FLAGS, etcdCommand, etcdTargetOf } from './etcd.ts';

/** A command line the user got wrong: say what, and how to get that command's help; exit 2. */
function fail(message: string, command?: string): never {
  throw new UsageError(message, command);
}

/** Parses a command's flags, or prints its help and exits 0 on --help/-h. */
function flagsOf<F extends FlagSpecs>(command: string, args: string[], flags: F, positionals = false) {
  const parsed = parseCommand(command, args, flags, positionals);
  if (parsed.help) {
    process.stdout.write(commandHelp(command, flags));
    process.exit(0);
  }
  return parsed;
}

function duration(value: string | undefined, fallbackMs: number, flag: string): number {
  if (value === undefined) return fallbackMs;
  const parsed = parseDuration(value);
  if (!parsed.ok) fail(`${flag}: ${parsed.reason}`);
  return parsed.value;
}

function wasmCode(value: string | undefined): CodeDelivery {
  if (value === undefined || value === 'inline' || value === 'remote' || value === 'local') return value ?? 'inline';
  fail(`--wasm-code: expected inline, remote or local, got ${value}`, 'serve');
}

function logFormat(value: string | undefined): LogFormat | undefined {
  if (value === undefined || value === 'pretty' || value === 'json') return value;
  fail(`--log-format: expected pretty or json, got ${value}`, 'serve');
}

/** `--xds` given several times or as a comma list; each a host:port. */
function xdsAddresses(values: string[] | undefined): string[] {
  const list = (values ?? ['127.0.0.1:18000']).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (list.length === 0) fail('--xds: expected host:port', 'bootstrap');
  for (const address of list) {
    try {
      parseHostPort(address);
    } catch (error) {
      fail(`--xds: ${(error as Error).message}`, 'bootstrap');
    }
  }
  return list;
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
      const { values } = flagsOf('serve', rest, {
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
          'log-format': { type: 'string' },
          ...ETCD_FLAGS,
          ...REPLICA_FLAGS,
          filters: { type: 'string' },
          ...SERVE_SECURITY_FLAGS,
      });
      const etcd = etcdTargetOf(values, 'serve');
      if (!values.config && !etcd) fail('serve: --config FILE or --etcd URL[,URL...] is required', 'serve');
      if (values.config && etcd) fail('serve: --config and --etcd exclude each other (serve a file, or the mesh applied to etcd)', 'serve');
      const log = createLogger(undefined, logFormat(values['log-format']));
      const { serve } = await import('../app.ts');
      const server = await serve({
        configPath: values.config,
        etcd,
        replica: replicaOptionsOf(values, (message) => fail(message, 'serve')),
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
        filters: values.filters === undefined ? undefined : filterFolders(values.filters),
        ...securityServeOptions(values, (message) => fail(message, 'serve')),
      });
      const stop = () => {
        log.info('shutting down');
        void server.close().then(() => process.exit(0));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return new Promise<number>(() => {});
    }
    case 'status':
      return statusCommand(rest);
    case 'apply':
    case 'get':
    case 'rollback':
    case 'prune':
      return etcdCommand(command, rest);
    case 'validate': {
      const { positionals, values } = flagsOf('validate', rest, { filters: { type: 'string' }, ...PREFLIGHT_FLAGS }, true);
      if (positionals.length !== 1) fail('validate: pass exactly one file', 'validate');
      // Filters under filters/ bring their protocols and schemas, and check their own settings.
      const catalog = await FilterCatalog.load(values.filters === undefined ? undefined : filterFolders(values.filters));
      const result = await loadMeshFile(positionals[0]!, { protocols: catalog.protocolSchemas() });
      const problems = result.ok ? await catalog.check(result.mesh, preflightOptions(values, (message) => fail(message, 'validate'))) : [];
      if (result.ok && problems.length > 0) {
        for (const p of problems) process.stderr.write(`${formatConfigError(result.error(['listeners', p.listener, 'protocol'], p.message))}\n`);
        return 1;
      }
      if (result.ok) {
        process.stdout.write(
          `${positionals[0]}: ok (${plural(result.mesh.listeners.length, 'listener')}, ${plural(result.mesh.clusters.length, 'cluster')})\n`,
        );
        return 0;
      }
      for (const error of result.errors) process.stderr.write(`${formatConfigError(error)}\n`);
      return 1;
    }
    case 'bootstrap': {
      const { values } = flagsOf('bootstrap', rest, {
          xds: { type: 'string', multiple: true },
          'node-id': { type: 'string' },
          'node-cluster': { type: 'string' },
          delta: { type: 'boolean' },
          'per-type': { type: 'boolean' },
          'admin-port': { type: 'string' },
          'admin-address': { type: 'string' },
          'protoplane-admin': { type: 'string' },
          ...BOOTSTRAP_TLS_FLAGS,
      });
      if (!values['node-id']) fail('bootstrap: --node-id is required', 'bootstrap');
      process.stdout.write(
        bootstrapYaml({
          // Repeated or comma-separated: every replica (docs/ha.md).
          xds: xdsAddresses(values.xds),
          nodeId: values['node-id'],
          nodeCluster: values['node-cluster'],
          delta: values.delta ?? false,
          perType: values['per-type'] ?? false,
          adminPort: port(values['admin-port'], 9901, '--admin-port'),
          adminAddress: values['admin-address'],
          protoplaneAdmin: values['protoplane-admin'],
          xdsTls: bootstrapTlsOptions(values, (message) => fail(message, 'bootstrap')),
        }),
      );
      return 0;
    }
    case 'replay': {
      const { values, positionals } = flagsOf('replay', rest, { filter: { type: 'string' }, config: { type: 'string' }, chunk: { type: 'string' }, trace: { type: 'boolean' } }, true);
      if (!values.filter || positionals.length !== 1) fail('replay: pass --filter NAME and one capture file', 'replay');
      const chunk = values.chunk === undefined ? undefined : Number(values.chunk);
      if (chunk !== undefined && !(Number.isInteger(chunk) && chunk > 0)) fail('replay: --chunk must be a positive integer', 'replay');
      const { replayCommand } = await import('./replay.ts');
      return replayCommand({ filter: values.filter, config: values.config, capture: positionals[0]!, chunk, trace: values.trace === true });
    }
    case 'new-filter': {
      const { values, positionals } = flagsOf('new-filter', rest, { framed: { type: 'boolean' } }, true);
      if (positionals.length !== 1) fail('new-filter: pass exactly one name', 'new-filter');
      const { files } = scaffoldFilter(REPO_ROOT, positionals[0]!, { framed: values.framed === true });
      process.stdout.write(`created:\n${files.map((f) => `  ${f}`).join('\n')}\nbuild: npm run build:filters   test: node --import tsx --test test/filters/${positionals[0]}.test.ts\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h': {
      const topic = command === 'help' ? rest[0] : undefined;
      if (topic !== undefined && !(topic in COMMANDS)) fail(`help: no command "${topic}"`);
      // A command's help lists the flags it declares below.
      if (topic) return main([topic, '--help']);
      // No command at all is a mistake (exit 2); asking for help is not.
      process[command === undefined ? 'stderr' : 'stdout'].write(topLevelHelp());
      return command === undefined ? 2 : 0;
    }
    default:
      fail(`unknown command: ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      const hint = error.command ? `protoplane ${error.command} --help` : 'protoplane --help';
      process.stderr.write(`protoplane ${error.message}\n(${hint} shows the usage)\n`);
      process.exit(2);
    }
    process.stderr.write(`protoplane: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
