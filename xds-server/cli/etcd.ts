// protoplane apply | get | rollback | prune (the mesh in etcd, docs/ha.md), and the
// --etcd / --etcd-prefix flags they share with serve.
import { filterFolders } from '../catalog/index.ts';
import type { ApplyResult, EtcdTarget } from '../etcd/apply.ts';
import { checkPrefix, DEFAULT_ETCD_PREFIX, meshKey, parseEtcdEndpoints } from '../etcd/keys.ts';
import { commandHelp, parseCommand, UsageError, type FlagSpecs } from './help.ts';

export const ETCD_FLAGS = {
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
} as const satisfies FlagSpecs;

/** --etcd (a comma list) and --etcd-prefix; undefined without --etcd. Throws a UsageError naming `command`. */
export function etcdTargetOf(values: { etcd?: string; 'etcd-prefix'?: string }, command: string): EtcdTarget | undefined {
  if (values.etcd === undefined) {
    if (values['etcd-prefix'] !== undefined) throw new UsageError(`${command}: --etcd-prefix needs --etcd`, command);
    return undefined;
  }
  const endpoints = parseEtcdEndpoints([values.etcd]);
  if (!endpoints.ok) throw new UsageError(`${command}: --etcd: ${endpoints.reason}`, command);
  const prefix = checkPrefix(values['etcd-prefix'] ?? DEFAULT_ETCD_PREFIX);
  if (!prefix.ok) throw new UsageError(`${command}: --etcd-prefix ${prefix.reason}`, command);
  return { endpoints: endpoints.value, prefix: prefix.value };
}

function revisionFlag(value: string | undefined, flag: string, command: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`${command}: ${flag}: not a revision number: ${value}`, command);
  return n;
}

function parse<F extends FlagSpecs>(command: string, args: string[], flags: F) {
  const parsed = parseCommand(command, args, flags, true);
  if (parsed.help) {
    process.stdout.write(commandHelp(command, flags));
    process.exit(0);
  }
  return parsed;
}

function requireTarget(values: { etcd?: string; 'etcd-prefix'?: string }, command: string): EtcdTarget {
  const target = etcdTargetOf(values, command);
  if (!target) throw new UsageError(`${command}: --etcd is required (the etcd client URLs, e.g. --etcd http://127.0.0.1:2379)`, command);
  return target;
}

/** Prints what apply/rollback did; the exit code. */
async function report(result: ApplyResult, target: EtcdTarget, what: string): Promise<number> {
  const key = meshKey(target.prefix ?? DEFAULT_ETCD_PREFIX);
  if (!result.ok) {
    const { describeFailure } = await import('../etcd/apply.ts');
    for (const line of describeFailure(result, target.prefix)) process.stderr.write(`${line}\n`);
    return 1;
  }
  const modules = result.filters.map((f) => `${f.name}@${f.sha256.slice(0, 12)}`).join(', ') || 'none';
  if (result.unchanged) process.stdout.write(`${what}: unchanged, ${key} already holds it at revision ${result.revision} (modules: ${modules})\n`);
  else {
    const previous = result.previous === null ? 'there was no mesh' : `was revision ${result.previous}`;
    process.stdout.write(`${what}: ${key} is at revision ${result.revision} (${previous}; modules: ${modules}, ${result.modulesWritten} newly stored)\n`);
  }
  return 0;
}

export async function etcdCommand(command: 'apply' | 'get' | 'rollback' | 'prune', args: string[]): Promise<number> {
  // The etcd client loads with these commands, not with every protoplane command.
  const { applyMeshFile, getMesh, rollbackMesh } = await import('../etcd/apply.ts');
  const { commitPrune, DEFAULT_KEEP_REVISIONS, describePrune, planPrune } = await import('../etcd/prune.ts');
  switch (command) {
    case 'apply': {
      const { values, positionals } = parse('apply', args, { ...ETCD_FLAGS, 'expect-revision': { type: 'string' }, filters: { type: 'string' } });
      if (positionals.length !== 1) throw new UsageError('apply: pass exactly one mesh file', 'apply');
      const target = requireTarget(values, 'apply');
      const expectRevision = revisionFlag(values['expect-revision'], '--expect-revision', 'apply');
      const filters = values.filters === undefined ? undefined : filterFolders(values.filters);
      return await report(await applyMeshFile(positionals[0]!, target, { expectRevision, filters }), target, 'applied');
    }
    case 'get': {
      const { values, positionals } = parse('get', args, { ...ETCD_FLAGS, revision: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`get: unexpected argument "${positionals[0]}"`, 'get');
      const target = requireTarget(values, 'get');
      const result = await getMesh(target, revisionFlag(values.revision, '--revision', 'get'));
      if (!result.ok) {
        process.stderr.write(`${result.message}\n`);
        return 1;
      }
      // stdout is the YAML exactly as applied (so `get > mesh.yaml` round-trips); the revision goes to stderr.
      process.stdout.write(result.record.yaml);
      process.stderr.write(`revision ${result.revision} (applied from ${result.record.source})\n`);
      return 0;
    }
    case 'rollback': {
      const { values, positionals } = parse('rollback', args, { ...ETCD_FLAGS, to: { type: 'string' }, 'expect-revision': { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`rollback: unexpected argument "${positionals[0]}"`, 'rollback');
      const target = requireTarget(values, 'rollback');
      const to = revisionFlag(values.to, '--to', 'rollback');
      if (to === undefined) throw new UsageError('rollback: --to REVISION is required', 'rollback');
      const result = await rollbackMesh(target, to, { expectRevision: revisionFlag(values['expect-revision'], '--expect-revision', 'rollback') });
      return await report(result, target, `rolled back to the mesh of revision ${result.from ?? to}`);
    }
    case 'prune': {
      const { values, positionals } = parse('prune', args, { ...ETCD_FLAGS, 'keep-revisions': { type: 'string' }, 'dry-run': { type: 'boolean' } });
      if (positionals.length > 0) throw new UsageError(`prune: unexpected argument "${positionals[0]}"`, 'prune');
      const target = requireTarget(values, 'prune');
      const keep = revisionFlag(values['keep-revisions'], '--keep-revisions', 'prune') ?? DEFAULT_KEEP_REVISIONS;
      if (keep < 1) throw new UsageError('prune: --keep-revisions must be 1 or more (the live mesh is always kept)', 'prune');
      const planned = await planPrune(target, keep);
      if (!planned.ok) {
        process.stderr.write(`${planned.message}\n`);
        return 1;
      }
      const result = values['dry-run'] ? undefined : await commitPrune(target, planned.plan);
      const { out, err } = describePrune(planned.plan, result);
      for (const line of out) process.stdout.write(`${line}\n`);
      for (const line of err) process.stderr.write(`${line}\n`);
      return result && !result.ok ? 1 : 0;
    }
  }
}
