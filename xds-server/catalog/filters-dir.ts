// A filters folder: its manifests (NAME/filter.json) and their builds
// (scripts/build-filters.sh). The repo's filters/ and build/filters/ are the
// defaults; any folder laid out the same way (with the SDK beside the filters
// as sdk/) can be listed, built and loaded through FilterFolders.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ItemListeners } from '../config/schema.ts';
import { WasmFilterModule } from '../wasm-host/index.ts';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FILTERS_DIR = path.join(REPO_ROOT, 'filters');
export const FILTER_BUILD_DIR = path.join(REPO_ROOT, 'build', 'filters');

/** Where filter sources live and where their .wasm builds go. */
export interface FilterFolders {
  /** Folders with a filter.json each, and the SDK as sdk/. */
  readonly sources: string;
  /** NAME.wasm for each filter. */
  readonly builds: string;
}

/**
 * A filters folder and where its builds go: build/NAME beside it (for the
 * repo's filters/, build/filters), outside the folder so a build does not
 * look like an edit to whoever watches it.
 */
export function filterFolders(sources: string): FilterFolders {
  const dir = path.resolve(sources);
  return { sources: dir, builds: path.join(path.dirname(dir), 'build', path.basename(dir)) };
}

export const REPO_FILTERS: FilterFolders = filterFolders(FILTERS_DIR);

export interface FilterManifest {
  name: string;
  protocol: string;
  entry: string;
  description?: string;
  /** JSON Schema of the listener's `filter:` settings (mesh config). */
  settings?: Record<string, unknown>;
  /** JSON Schema of a route's `match:` attributes (mesh config). */
  match?: Record<string, unknown>;
  /** Settings array whose items each get a listener of their own (see ItemListeners). */
  itemListeners?: ItemListeners;
  /** The folder under filters/. */
  dir: string;
}

function schemaField(rec: Record<string, unknown>, field: string, file: string): Record<string, unknown> | undefined {
  const value = rec[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${file}: "${field}" must be a JSON Schema object`);
  return value as Record<string, unknown>;
}

const ITEM_LISTENER_FIELDS = ['array', 'name', 'id', 'port', 'cluster', 'setting'] as const;

function itemListenersField(rec: Record<string, unknown>, file: string): ItemListeners | undefined {
  const value = rec['item_listeners'];
  if (value === undefined) return undefined;
  const v = (typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  const bad = ITEM_LISTENER_FIELDS.filter((f) => typeof v[f] !== 'string' || v[f] === '');
  const extra = Object.keys(v).filter((k) => !(ITEM_LISTENER_FIELDS as readonly string[]).includes(k));
  if (bad.length > 0 || extra.length > 0) {
    throw new Error(`${file}: "item_listeners" must be an object of non-empty strings ${ITEM_LISTENER_FIELDS.join(', ')}${extra.length ? ` (unknown: ${extra.join(', ')})` : ''}`);
  }
  return v as unknown as ItemListeners;
}

/**
 * Every filters/NAME/filter.json, sorted by name; throws naming a bad
 * manifest, or with `onBroken` reports it there (folder, reason) and lists
 * the others.
 */
export function listFilters(root = FILTERS_DIR, onBroken?: (folder: string, reason: string) => void): FilterManifest[] {
  const out: FilterManifest[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    if (!onBroken) {
      readManifest(root, entry.name, out);
      continue;
    }
    try {
      readManifest(root, entry.name, out);
    } catch (error) {
      onBroken(path.join(root, entry.name), (error as Error).message);
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** Reads one folder's filter.json into `out` (nothing when there is none); throws naming a bad manifest. */
function readManifest(root: string, folder: string, out: FilterManifest[]): void {
  const file = path.join(root, folder, 'filter.json');
  if (!existsSync(file)) return;
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    // Removed between the listing and the read: a folder being deleted, not a broken one.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  const rec = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
  for (const field of ['name', 'protocol', 'entry']) {
    if (typeof rec[field] !== 'string' || rec[field] === '') throw new Error(`${file}: "${field}" must be a non-empty string`);
  }
  out.push({
    name: rec.name as string,
    protocol: rec.protocol as string,
    entry: rec.entry as string,
    description: typeof rec.description === 'string' ? rec.description : undefined,
    settings: schemaField(rec, 'settings', file),
    match: schemaField(rec, 'match', file),
    itemListeners: itemListenersField(rec, file),
    dir: path.join(root, folder),
  });
}

/** Where a built filter lives: build/filters/NAME.wasm by default. */
export function filterWasmPath(name: string, folders: FilterFolders = REPO_FILTERS): string {
  return path.join(folders.builds, `${name}.wasm`);
}

let building: Promise<void> | undefined;

const ASCONFIG = path.join(REPO_ROOT, 'asconfig.json');
const FILTER_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** The newest mtime (ns) of the regular files under `dir`, symlinks not followed (as find's default). */
function newestFileUnder(dir: string): bigint {
  let newest = 0n;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = newestFileUnder(full);
      if (inner > newest) newest = inner;
    } else if (entry.isFile()) {
      const mtime = statSync(full, { bigint: true }).mtimeNs;
      if (mtime > newest) newest = mtime;
    }
  }
  return newest;
}

/**
 * True only when scripts/build-filters.sh would build nothing: every manifest
 * is valid, and each NAME.wasm is at least as new as every file of its folder,
 * the SDK and asconfig.json (the script's own test). Starting bash and node
 * for a build with nothing to do cost ~25 ms with no filter and ~190 ms with
 * the repo's; apply, validate, serve and most tests load a catalog. Anything
 * unexpected (a bad manifest, a missing file) is left to the script, which
 * reports it.
 */
function buildsUpToDate(folders: FilterFolders): boolean {
  try {
    let broken = false;
    const manifests = listFilters(folders.sources, () => (broken = true));
    if (broken) return false;
    const shared = [newestFileUnder(path.join(folders.sources, 'sdk')), statSync(ASCONFIG, { bigint: true }).mtimeNs];
    for (const manifest of manifests) {
      if (!FILTER_NAME.test(manifest.name) || !existsSync(path.join(manifest.dir, manifest.entry))) return false;
      const built = statSync(filterWasmPath(manifest.name, folders), { bigint: true, throwIfNoEntry: false });
      if (!built) return false;
      for (const mtime of [...shared, newestFileUnder(manifest.dir)]) if (mtime > built.mtimeNs) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** Builds every filter that is missing or older than its sources (not memoized: the server calls it on each reload). */
export async function buildFilters(folders: FilterFolders = REPO_FILTERS): Promise<void> {
  if (buildsUpToDate(folders)) return;
  const args = [path.join(REPO_ROOT, 'scripts', 'build-filters.sh'), '--filters', folders.sources, '--out', folders.builds];
  try {
    await run('bash', args, { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`building the Wasm filters failed (scripts/build-filters.sh):\n${e.stderr || e.stdout || e.message}`);
  }
}

/**
 * Builds every filter that is missing or older than its sources, once per
 * process (scripts/build-filters.sh is incremental and safe to run from
 * several processes at once). Rejects with the compiler's output on failure.
 */
export function ensureFiltersBuilt(): Promise<void> {
  building ??= buildFilters().catch((err: unknown) => {
    building = undefined;
    throw err;
  });
  return building;
}

/** Builds the filters if needed and loads build/filters/NAME.wasm. */
export async function loadFilter(name: string): Promise<WasmFilterModule> {
  await ensureFiltersBuilt();
  return WasmFilterModule.loadFile(filterWasmPath(name));
}
