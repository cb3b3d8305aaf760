// The YAML layer: parse with positions, turn YAML problems into ConfigErrors,
// and map config paths (listeners[2].routes[0].cluster) back to line:col.

import {
  LineCounter,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  type Document,
  type Pair,
  type YAMLError,
} from 'yaml';
import type { ConfigError } from './errors.ts';
import { quickYaml } from './quick-yaml.ts';

export type PathSegment = string | number;
export type Path = readonly PathSegment[];

const SIMPLE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `["listeners", 2, "routes", 0, "cluster"]` -> `listeners[2].routes[0].cluster`. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (SIMPLE_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Decodes an ajv instancePath (JSON pointer) into path segments. */
export function pointerToPath(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

interface Found {
  /** The deepest node reached (the value node when the whole path exists). */
  node: unknown;
  /** The key node of the last segment, when the last step was a map key. */
  key?: unknown;
  /** True when every segment was found. */
  complete: boolean;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) {
    return typeof key.value === 'symbol' ? undefined : String(key.value);
  }
  return key == null ? undefined : String(key);
}

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && (typeof key.value === 'symbol' || key.value === '<<');
}

/** The `yaml` options of every parse: YAML 1.2 core schema, duplicate keys refused, `<<` merge keys. */
function parseWithPositions(text: string): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  return { doc, lines };
}

/**
 * A config file's text with the position of every node. Built from a full
 * parse, or (quick-yaml.ts) from the text alone: then `yaml` parses it the
 * first time a position is asked for, which only a problem to report does.
 */
export class YamlSource {
  /** Each alias's target, found in one pass (Alias.resolve walks the whole document per call). */
  private readonly targets = new Map<unknown, unknown>();

  constructor(
    readonly file: string,
    private readonly text: string,
    private parsed?: { doc: Document.Parsed; lines: LineCounter },
  ) {}

  private get doc(): Document.Parsed {
    return this.positions().doc;
  }

  private positions(): { doc: Document.Parsed; lines: LineCounter } {
    return (this.parsed ??= parseWithPositions(this.text));
  }

  /** Records where an alias points (set by the bounds check, which walks the document once). */
  setTarget(alias: unknown, target: unknown): void {
    this.targets.set(alias, target);
  }

  target(alias: unknown): unknown {
    return this.targets.get(alias);
  }

  position(offset: number): { line: number; col: number } {
    const { line, col } = this.positions().lines.linePos(offset);
    return { line, col };
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? this.targets.get(node) : node;
  }

  private findPair(map: unknown, seg: string, depth = 0): Pair | undefined {
    const m = this.deref(map);
    if (!isMap(m) || depth > 10) return undefined;
    for (const pair of m.items) {
      if (!isMergeKey(pair.key) && keyText(pair.key) === seg) return pair;
    }
    // `<<: *base` merge keys: the key lives in the merged map.
    for (const pair of m.items) {
      if (!isMergeKey(pair.key)) continue;
      const v = this.deref(pair.value);
      const sources = isSeq(v) ? v.items : [v];
      for (const s of sources) {
        const p = this.findPair(s, seg, depth + 1);
        if (p) return p;
      }
    }
    return undefined;
  }

  private find(path: Path): Found {
    let node: unknown = this.doc.contents;
    let key: unknown;
    for (const seg of path) {
      const cur = this.deref(node);
      let next: unknown;
      key = undefined;
      if (isMap(cur)) {
        const pair = this.findPair(cur, String(seg));
        if (pair) {
          next = pair.value ?? pair.key;
          key = pair.key;
        }
      } else if (isSeq(cur) && typeof seg === 'number') {
        next = cur.items[seg];
      }
      if (next == null) return { node, complete: false };
      node = next;
    }
    return { node, key, complete: true };
  }

  private nodeOffset(node: unknown): number {
    if (node && typeof node === 'object' && 'range' in node) {
      const range = (node as { range?: unknown }).range;
      if (Array.isArray(range) && typeof range[0] === 'number') return range[0];
    }
    return 0;
  }

  /**
   * Position of the node at `path`: its value, or its key with `at: 'key'`.
   * Falls back to the deepest existing ancestor (e.g. the map missing a key).
   */
  locate(path: Path, at: 'value' | 'key' = 'value'): { line: number; col: number } {
    const found = this.find(path);
    const node = at === 'key' && found.complete && found.key !== undefined ? found.key : found.node;
    return this.position(this.nodeOffset(node));
  }

  /** Path of the deepest node whose source range contains `offset`. */
  pathAt(offset: number): PathSegment[] {
    const path: PathSegment[] = [];
    const within = (n: unknown): boolean => {
      if (!n || typeof n !== 'object' || !('range' in n)) return false;
      const r = (n as { range?: unknown }).range;
      return Array.isArray(r) && typeof r[0] === 'number' && typeof r[2] === 'number'
        ? offset >= r[0] && offset < Math.max(r[2], r[0] + 1)
        : false;
    };
    let node: unknown = this.doc.contents;
    for (let depth = 0; depth < 1000; depth++) {
      if (isMap(node)) {
        const pair = node.items.find((p) => within(p.key) || within(p.value));
        const k = pair && keyText(pair.key);
        if (!pair || k === undefined) break;
        path.push(k);
        if (within(pair.key)) break;
        node = pair.value;
      } else if (isSeq(node)) {
        const i = node.items.findIndex((it) => within(it));
        if (i < 0) break;
        path.push(i);
        node = node.items[i];
      } else break;
    }
    return path;
  }
}

export type ParsedYaml =
  | { ok: true; source: YamlSource; data: unknown }
  | { ok: false; source: YamlSource | undefined; errors: ConfigError[] };

function lowerFirst(s: string): string {
  return s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s;
}

/**
 * Bounds on what a config file may cost to load. Aliases are checked in one
 * linear pass (anchors looked up in a map, expanded sizes memoised per
 * anchor), so the check itself cannot be the slow part.
 */
export interface YamlLimits {
  /** Largest file, in bytes (UTF-8). */
  maxBytes: number;
  /** Most aliases (`*name`) in one file. */
  maxAliases: number;
  /** Most nodes (maps, lists, scalars) once every alias is expanded. */
  maxExpandedNodes: number;
}

export const DEFAULT_YAML_LIMITS: YamlLimits = { maxBytes: 16 * 1024 * 1024, maxAliases: 10_000, maxExpandedNodes: 2_000_000 };

type Bounds = { ok: true } | { ok: false; offset: number; message: string };

/**
 * Walks the document once in source order: resolves every alias to the last
 * anchor of its name seen before it (YAML's rule), counts aliases, and sums
 * the size of the document with every alias expanded (an anchor's size is
 * computed once, so `a: &a [*b, *b]` chains cost one step each).
 */
function checkAliases(doc: Document.Parsed, source: YamlSource, limits: YamlLimits): Bounds {
  const anchors = new Map<string, unknown>();
  const sizes = new Map<unknown, number>();
  const inProgress = new Set<unknown>();
  let aliases = 0;
  let failure: Bounds | undefined;
  const fail = (node: unknown, message: string): number => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    failure ??= { ok: false, offset: range?.[0] ?? 0, message };
    return 0;
  };
  const size = (node: unknown): number => {
    if (failure) return 0;
    if (isAlias(node)) {
      aliases += 1;
      if (aliases > limits.maxAliases) return fail(node, `too many aliases: over the limit of ${limits.maxAliases} (--config-max-aliases)`);
      const target = anchors.get(node.source);
      if (target === undefined) return fail(node, `unknown alias "*${node.source}" (an anchor must be defined before it is used)`);
      if (inProgress.has(target)) return fail(node, `alias "*${node.source}" refers to a node that contains it`);
      source.setTarget(node, target);
      return sizes.get(target) ?? 1;
    }
    let total = 1;
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor) {
      inProgress.add(node);
      anchors.set(anchor, node); // an alias inside its own anchor's node is caught as recursive
    }
    if (isMap(node) || isSeq(node)) {
      const items = node.items as unknown[];
      for (let i = 0; i < items.length; i++) {
        const item = items[i];
        if (isPair(item)) {
          total += size(item.key) + size(item.value);
          if (isAlias(item.value)) item.value = (source.target(item.value) ?? item.value) as typeof item.value;
        } else {
          total += size(item);
          // toJS would resolve each alias by scanning every anchor and alias before it (quadratic): point at the target instead
          if (isAlias(item)) items[i] = source.target(item) ?? item;
        }
        if (total > limits.maxExpandedNodes) return fail(node, `the config expands to more than ${limits.maxExpandedNodes} values once aliases are expanded (--config-max-nodes)`);
      }
    }
    if (anchor) {
      inProgress.delete(node);
      sizes.set(node, total);
    }
    return total;
  };
  let total = size(doc.contents);
  if (isAlias(doc.contents)) {
    doc.contents = source.target(doc.contents) as typeof doc.contents;
    total = Math.max(total, 1);
  }
  if (failure) return failure;
  if (total > limits.maxExpandedNodes) fail(doc.contents, `the config expands to more than ${limits.maxExpandedNodes} values once aliases are expanded (--config-max-nodes)`);
  return failure ?? { ok: true };
}

/** Parses YAML text; every syntax problem, duplicate key and bad alias is an error. */
export function parseYaml(text: string, file: string, limits: YamlLimits = DEFAULT_YAML_LIMITS): ParsedYaml {
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxBytes) {
    return {
      ok: false,
      source: undefined,
      errors: [{ file, line: 1, col: 1, path: '', message: `the config file is ${bytes} bytes, over the limit of ${limits.maxBytes} (--config-max-bytes)` }],
    };
  }
  // Valid and plain (no aliases, tags or merge keys): read quickly, positions parsed only if a check needs one.
  const quick = quickYaml(text, limits);
  if (quick) return { ok: true, source: new YamlSource(file, text), data: quick.data };
  const { doc, lines } = parseWithPositions(text);
  const source = new YamlSource(file, text, { doc, lines });
  const errors: ConfigError[] = [];

  const fromYaml = (e: YAMLError): void => {
    const offset = e.pos[0];
    const path = source.pathAt(offset);
    const { line, col } = source.position(offset);
    let message: string;
    if (e.code === 'DUPLICATE_KEY') {
      const last = path[path.length - 1];
      message = last === undefined ? 'duplicate key' : `duplicate key "${String(last)}"`;
    } else {
      message = `invalid YAML: ${lowerFirst(e.message)}`;
    }
    errors.push({ file, line, col, path: formatPath(path), message });
  };
  doc.errors.forEach(fromYaml);
  // Warnings (unresolved tags, ...) would silently change a value's meaning.
  doc.warnings.forEach(fromYaml);

  if (errors.length === 0) {
    const bounds = checkAliases(doc, source, limits);
    if (!bounds.ok) {
      errors.push({ file, ...source.position(bounds.offset), path: formatPath(source.pathAt(bounds.offset)), message: bounds.message });
    }
  }
  if (errors.length > 0) return { ok: false, source, errors };

  // An empty file is far more often an accident (a truncated write, a failed
  // template, an unmounted volume) than a wish to remove every listener; an
  // empty mesh must be said: `listeners: []`.
  if (doc.contents === null) {
    const what = text.length === 0 ? 'empty (0 bytes)' : text.trim() === '' ? 'only whitespace' : 'only comments';
    return {
      ok: false,
      source,
      errors: [{ file, line: 1, col: 1, path: '', message: `the config file is ${what}; refusing to serve it (write "listeners: []" for an explicitly empty mesh)` }],
    };
  }
  try {
    // Alias expansion was bounded above (linearly); yaml's own check counts per anchor and refuses harmless files.
    return { ok: true, source, data: doc.toJS({ maxAliasCount: -1 }) as unknown };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      source,
      errors: [{ file, line: 1, col: 1, path: '', message: `invalid YAML: ${lowerFirst(message)}` }],
    };
  }
}
