// The YAML layer: parse with positions, turn YAML problems into ConfigErrors,
// and map config paths (listeners[2].routes[0].cluster) back to line:col.

import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseDocument,
  visit,
  type Document,
  type Pair,
  type YAMLError,
} from 'yaml';
import type { ConfigError } from './errors.ts';

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

export class YamlSource {
  constructor(
    readonly file: string,
    readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  position(offset: number): { line: number; col: number } {
    const { line, col } = this.lines.linePos(offset);
    return { line, col };
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
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

/** Parses YAML text; every syntax problem, duplicate key and bad alias is an error. */
export function parseYaml(text: string, file: string): ParsedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    merge: true,
  });
  const source = new YamlSource(file, doc, lines);
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
    visit(doc, {
      Alias: (_key, node) => {
        if (node.resolve(doc) === undefined) {
          const offset = node.range?.[0] ?? 0;
          errors.push({
            file,
            ...source.position(offset),
            path: formatPath(source.pathAt(offset)),
            message: `unknown alias "*${node.source}" (an anchor must be defined before it is used)`,
          });
        }
      },
    });
  }
  if (errors.length > 0) return { ok: false, source, errors };

  if (doc.contents === null) return { ok: true, source, data: {} }; // empty file: empty mesh
  try {
    return { ok: true, source, data: doc.toJS({ maxAliasCount: 1000 }) as unknown };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return {
      ok: false,
      source,
      errors: [{ file, line: 1, col: 1, path: '', message: `invalid YAML: ${lowerFirst(message)}` }],
    };
  }
}
