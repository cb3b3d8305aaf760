// `protoplane status --etcd ...`: every replica registered in etcd and every
// Envoy node connected to one, per type the version sent and ACKed and the
// last NACK — a table like `istioctl proxy-status`, or --json (the same
// document as an admin server's /fleet.json).
import { parseDuration } from '../config/values.ts';
import { DEFAULT_ETCD_PREFIX } from '../etcd/keys.ts';
import { ETCD_FLAGS, etcdTargetOf } from './etcd.ts';
import { commandHelp, parseCommand, UsageError } from './help.ts';

export const STATUS_FLAGS = {
  ...ETCD_FLAGS,
  json: { type: 'boolean' },
  'admin-token-file': { type: 'string' },
  timeout: { type: 'string' },
} as const;

export async function statusCommand(args: string[]): Promise<number> {
  const parsed = parseCommand('status', args, STATUS_FLAGS);
  if (parsed.help) {
    process.stdout.write(commandHelp('status', STATUS_FLAGS));
    return 0;
  }
  const { values } = parsed;
  const target = etcdTargetOf(values, 'status');
  if (!target) throw new UsageError('status: --etcd is required (the etcd client URLs, e.g. --etcd http://127.0.0.1:2379)', 'status');
  let timeoutMs = 3000;
  if (values.timeout !== undefined) {
    const t = parseDuration(values.timeout);
    if (!t.ok) throw new UsageError(`status: --timeout: ${t.reason}`, 'status');
    timeoutMs = t.value;
  }
  // Loaded here, not at start: the etcd client is only for a command that talks to etcd.
  const { collectFleet, fleetTable } = await import('../fleet/index.ts');
  const view = await collectFleet({ etcd: target.endpoints, prefix: target.prefix ?? DEFAULT_ETCD_PREFIX, adminTokenFile: values['admin-token-file'], timeoutMs });
  process.stdout.write(values.json ? `${JSON.stringify(view, null, 2)}\n` : fleetTable(view));
  return 0;
}
