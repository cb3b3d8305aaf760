// What the command line says about itself: `protoplane help [COMMAND]`,
// `--help`/`-h` on every command, and flag errors that name the command's
// flags. The flags themselves stay declared where each command parses them
// (main.ts); the help lists whatever a command declares, with the words below.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BOOTSTRAP_TLS_HELP, PREFLIGHT_HELP, SERVE_SECURITY_HELP } from './security-flags.ts';

export type FlagSpec = NonNullable<ParseArgsConfig['options']>[string];
export type FlagSpecs = Record<string, FlagSpec>;

interface CommandHelp {
  /** One line for the top-level list. */
  summary: string;
  /** The synopsis after `protoplane NAME`. */
  synopsis: string;
  /** A paragraph or two. */
  description?: string;
  /** What each flag means, by long name (its default in the text). */
  flags: Record<string, string>;
  examples: string[];
}

export const COMMANDS: Record<string, CommandHelp> = {
  serve: {
    summary: 'serve a mesh file over xDS to Envoy (and an admin HTTP server)',
    synopsis: 'serve --config mesh.yaml | --etcd URL[,URL...] [flags]',
    description:
      'Loads the mesh file, builds the filters under filters/, and serves listeners, routes, clusters,\n' +
      'endpoints and Wasm filter configs over xDS (SotW and Delta; ADS or per-type). Edits to the file\n' +
      'or to filters/ are applied live; a broken edit is logged with file:line:col and the last good\n' +
      'config keeps being served. The admin server shows a status page at / .',
    flags: {
      config: 'the mesh YAML file (or --etcd)',
      etcd: 'serve the mesh applied to etcd instead of a file: its client URLs as a comma list; filter modules come from etcd too, nothing is built (docs/ha.md)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      'replica-id': 'with --etcd: this replica\'s name in the fleet, under <prefix>replicas/ (default HOSTNAME-XDSPORT)',
      'advertise-host': 'with --etcd: the host Envoy and `protoplane status` reach this replica by (default: --host, or the host name when that is 0.0.0.0)',
      'replica-ttl': 'with --etcd: how long a replica that died stays registered (its etcd lease TTL; default 10s, at least 1s)',
      'xds-port': 'gRPC xDS port (default 18000)',
      'admin-port': 'admin HTTP port: status page, /metrics, /debug/* (default 18001)',
      host: 'address xDS listens on (default 127.0.0.1; 0.0.0.0 with --xds-client-ca); plaintext on another address logs a warning',
      debounce: 'quiet period before a changed file is reloaded (default 100ms)',
      'debounce-max': 'longest a reload waits for the file to go quiet (default 10s)',
      keepalive: 'HTTP/2 ping interval on xDS connections (default 30s)',
      'max-stream-age': 'GOAWAY connections after this long, 0 = never (default 0s)',
      'max-stream-age-grace': 'how long streams may finish after the GOAWAY (default 30s)',
      'wasm-code': 'how Envoy gets filter modules: inline (in ECDS, hot-swaps; default), remote (fetched from the admin server, sha256-checked), local (a file path on this machine)',
      'log-format': 'pretty or json (default: pretty on a terminal, json otherwise)',
      filters: 'the filters folder (default: the repo\'s filters/); built into build/NAME beside it; it needs the SDK as sdk/ (docs/filters.md)',
      ...SERVE_SECURITY_HELP,
    },
    examples: [
      'protoplane serve --config envoy-configs/mesh.example.yaml',
      'protoplane serve -c mesh.yaml --xds-port 19000 --admin-port 19001 --log-format json',
      'protoplane serve --etcd http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379',
    ],
  },
  validate: {
    summary: 'check a mesh file; exit 0, or 1 with file:line:col: message lines',
    synopsis: 'validate mesh.yaml [--filters DIR]',
    description: 'Checks YAML, structure, references and each protocol filter\'s own settings, as serve would.',
    flags: { filters: 'the filters folder (default: the repo\'s filters/), as for serve', ...PREFLIGHT_HELP },
    examples: ['protoplane validate envoy-configs/mesh.example.yaml'],
  },
  apply: {
    summary: 'check a mesh file as validate does, then write it and its filter modules to etcd in one compare-and-swap',
    synopsis: 'apply mesh.yaml --etcd URL[,URL...] [--etcd-prefix P] [--expect-revision N] [--filters DIR]',
    description:
      'Refused config: file:line:col errors, exit 1, etcd untouched. The write is one transaction that\n' +
      'succeeds only if the mesh is still at the revision read (or --expect-revision): otherwise a conflict\n' +
      'error names both revisions, exit 1, etcd untouched. Prints the new revision (docs/ha.md).',
    flags: {
      etcd: 'etcd client URLs, a comma list (required)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      'expect-revision': 'write only if the live mesh is at this revision (0: only if there is none yet); default: the revision read just before writing',
      filters: 'the filters folder (default: the repo\'s filters/), as for validate',
    },
    examples: ['protoplane apply mesh.yaml --etcd http://127.0.0.1:2379', 'protoplane apply mesh.yaml --etcd http://127.0.0.1:2379 --expect-revision 42'],
  },
  get: {
    summary: 'print the mesh live in etcd (YAML on stdout, exactly as applied; its revision on stderr)',
    synopsis: 'get --etcd URL[,URL...] [--etcd-prefix P] [--revision N]',
    flags: {
      etcd: 'etcd client URLs, a comma list (required)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      revision: 'print the mesh as it was at this etcd revision (until etcd compacts it away)',
    },
    examples: ['protoplane get --etcd http://127.0.0.1:2379 > live.yaml'],
  },
  rollback: {
    summary: 'restore the mesh (and its filter modules) of an earlier etcd revision, through the same checks and compare-and-swap as apply',
    synopsis: 'rollback --to N --etcd URL[,URL...] [--etcd-prefix P] [--expect-revision N]',
    flags: {
      etcd: 'etcd client URLs, a comma list (required)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      to: 'the etcd revision whose mesh to restore (as printed by apply and get; required)',
      'expect-revision': 'write only if the live mesh is at this revision (default: the revision read just before writing)',
    },
    examples: ['protoplane rollback --to 41 --etcd http://127.0.0.1:2379'],
  },
  prune: {
    summary: 'delete the filter modules in etcd that neither the live mesh nor a mesh revision rollback can still restore uses',
    synopsis: 'prune --etcd URL[,URL...] [--etcd-prefix P] [--keep-revisions N] [--dry-run]',
    description:
      'Keeps the modules of the live mesh and of the N-1 mesh revisions before it that etcd has not compacted;\n' +
      'deletes the other <prefix>modules/<sha256> keys, only if nobody applied meanwhile (compare-and-swap on\n' +
      'the mesh revision; otherwise a conflict error, exit 1). A rollback to an older revision then fails\n' +
      'naming the missing module (docs/ha.md).',
    flags: {
      etcd: 'etcd client URLs, a comma list (required)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      'keep-revisions': 'how many mesh revisions, the live one included, keep their modules (default 10, at least 1)',
      'dry-run': 'print what would be deleted and kept; delete nothing',
    },
    examples: ['protoplane prune --etcd http://127.0.0.1:2379 --dry-run', 'protoplane prune --etcd http://127.0.0.1:2379 --keep-revisions 3'],
  },
  status: {
    summary: 'the fleet served from etcd: every replica, every connected Envoy, per type SYNCED / STALE / NACKED (like istioctl proxy-status)',
    synopsis: 'status --etcd URL[,URL...] [--etcd-prefix P] [--json] [--admin-token-file FILE] [--timeout 3s]',
    description:
      'Lists the replicas registered under <prefix>replicas/ (each `serve --etcd` registers itself), then asks\n' +
      'each one\'s admin server for its connected nodes (/debug/sync). A replica that does not answer is shown\n' +
      'as UNREACHABLE. Versions are the first 8 characters of the content hashes (docs/ha.md).',
    flags: {
      etcd: 'etcd client URLs, a comma list (required)',
      'etcd-prefix': 'the etcd key prefix (default /protoplane/)',
      json: 'print the fleet as JSON (the same document as /fleet.json on any replica\'s admin server)',
      'admin-token-file': 'the bearer token the replicas\' /debug/* require (serve --admin-token-file)',
      timeout: 'how long to wait for each replica (default 3s)',
    },
    examples: ['protoplane status --etcd http://127.0.0.1:2379', 'protoplane status --etcd http://10.0.0.2:2379,http://10.0.0.3:2379 --json'],
  },
  bootstrap: {
    summary: 'print an Envoy bootstrap that takes everything from protoplane',
    synopsis: 'bootstrap --node-id ID [flags]',
    flags: {
      xds: 'host:port of protoplane\'s xDS server (default 127.0.0.1:18000); repeat it or give a comma list for several replicas, and Envoy fails over between them (docs/ha.md)',
      'node-id': 'the Envoy node id (required)',
      'node-cluster': 'the Envoy node cluster (default protoplane)',
      delta: 'use the Delta xDS protocol instead of SotW',
      'per-type': 'one stream per resource type instead of ADS',
      'admin-port': 'Envoy\'s own admin port (default 9901)',
      'admin-address': 'Envoy\'s own admin address (default 127.0.0.1)',
      'protoplane-admin': 'host:port of protoplane\'s admin server, where Envoy fetches modules with serve --wasm-code remote (default: none; inline code needs no second address)',
      ...BOOTSTRAP_TLS_HELP,
    },
    examples: [
      'protoplane bootstrap --node-id edge-1 > bootstrap.yaml && envoy -c bootstrap.yaml',
      'protoplane bootstrap --xds 10.0.0.5:18000 --node-id edge-1 --delta --per-type',
      'protoplane bootstrap --xds 10.0.0.5:18000,10.0.0.6:18000,10.0.0.7:18000 --node-id edge-1 --delta',
    ],
  },
  'new-filter': {
    summary: 'scaffold a protocol filter: filters/NAME/ and its starter test',
    synopsis: 'new-filter NAME [--framed]',
    flags: {
      framed: 'a codec on the SDK\'s framed-stream layer (a length-prefixed protocol, docs/filters.md) instead of a line protocol',
    },
    examples: ['protoplane new-filter redis && npm run build:filters', 'protoplane new-filter beacon --framed'],
  },
  replay: {
    summary: 'run a capture (pcap/pcapng or raw bytes) through a filter in the in-process host',
    synopsis: 'replay --filter NAME [--config FILE] [--chunk N] [--trace] CAPTURE',
    flags: {
      filter: 'the filter to run (a folder under filters/)',
      config: 'the filter\'s configuration: a .json file, or a mesh YAML whose listener of that protocol supplies it',
      chunk: 'feed the bytes in chunks of N bytes (default: as captured)',
      trace: 'also print every ABI-level event (data callbacks, rewrites, routing, closes, logs) and the metrics; by default only the messages the filter parsed',
    },
    examples: ['protoplane replay --filter mqtt --config envoy-configs/mesh.mqtt.yaml capture.pcapng'],
  },
  help: {
    summary: 'show this help, or a command\'s',
    synopsis: 'help [COMMAND]',
    flags: {},
    examples: ['protoplane help serve'],
  },
};

function flagName(name: string, spec: FlagSpec): string {
  const short = spec.short ? `-${spec.short}, ` : '    ';
  return `${short}--${name}${spec.type === 'string' ? ' VALUE' : ''}`;
}

/** `protoplane help COMMAND`: synopsis, description, every declared flag, examples. */
export function commandHelp(command: string, flags: FlagSpecs = {}): string {
  const help = COMMANDS[command];
  if (!help) return topLevelHelp();
  const all: FlagSpecs = { ...flags, help: { type: 'boolean', short: 'h' } };
  const rows = Object.entries(all).map(([name, spec]) => [flagName(name, spec), name === 'help' ? 'show this help' : (help.flags[name] ?? '')] as const);
  const width = Math.max(...rows.map(([n]) => n.length));
  const lines = [`usage: protoplane ${help.synopsis}`, '', help.summary];
  if (help.description) lines.push('', help.description);
  lines.push('', 'flags:', ...rows.map(([n, d]) => `  ${n.padEnd(width)}  ${d}`.trimEnd()));
  lines.push('', 'examples:', ...help.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

export function topLevelHelp(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  return [
    'protoplane: an xDS control plane for stock Envoy, with proxy-wasm protocol filters',
    '',
    'usage: protoplane COMMAND [flags]      protoplane COMMAND --help for its flags',
    '',
    'commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n]!.summary}`),
    '',
    'examples:',
    '  protoplane validate envoy-configs/mesh.example.yaml',
    '  protoplane serve --config envoy-configs/mesh.example.yaml',
    '  protoplane bootstrap --node-id edge-1 > bootstrap.yaml',
    '',
  ].join('\n');
}

/** A command line the user got wrong: the message, and the command whose usage to show. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

export type Parsed<F extends FlagSpecs> = { help: true } | ({ help: false } & ReturnType<typeof parseArgs<{ args: string[]; options: F; allowPositionals: true; strict: true }>>);

/**
 * parseArgs with `--help`/`-h` on every command, and errors in the user's
 * terms: an unknown flag lists the command's flags, a missing value says which.
 */
export function parseCommand<F extends FlagSpecs>(command: string, args: string[], flags: F, positionals = false): Parsed<F> {
  if (args.includes('--help') || args.includes('-h')) return { help: true };
  try {
    const parsed = parseArgs({ args, options: flags, allowPositionals: true, strict: true });
    if (!positionals && parsed.positionals.length > 0) {
      throw new UsageError(`${command}: unexpected argument "${parsed.positionals[0]}"`, command);
    }
    return { help: false, ...parsed };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as { code?: string }).code;
    const known = Object.keys(flags).map((n) => `--${n}`).join(', ') || '(none)';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec((error as Error).message)?.[1] ?? '';
      throw new UsageError(`${command}: unknown flag ${flag}; ${command}'s flags are ${known}, --help`, command);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /(--[\w-]+)/.exec((error as Error).message)?.[1] ?? 'a flag';
      const missing = /argument missing/.test((error as Error).message);
      throw new UsageError(`${command}: ${flag} ${missing ? 'needs a value' : 'takes no value'}`, command);
    }
    throw new UsageError(`${command}: ${(error as Error).message}`, command);
  }
}

/** "1 listener", "2 listeners". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
