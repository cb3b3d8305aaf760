// Config loader: mesh.yaml text -> validated, normalised Mesh, or every
// problem as file:line:col + config path. See docs/config.md.
//
//   YAML (syntax, duplicate keys, aliases)  source.ts
//   -> JSON Schema via ajv (structure)       schema.ts, validate.ts
//   -> semantic checks (cross-references)    semantic.ts
//   -> normalisation into the model          normalise.ts

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Mesh } from '../model/types.ts';
import { sortErrors, type ConfigError } from './errors.ts';
import { normalise } from './normalise.ts';
import type { RawMesh } from './raw.ts';
import { buildMeshSchema, meshSchema, type ProtocolSchema } from './schema.ts';
import { checkSemantics } from './semantic.ts';
import { DEFAULT_YAML_LIMITS, formatPath, parseYaml, type YamlLimits } from './source.ts';
import { createSchemaCheck, type SchemaCheck } from './validate.ts';
import { condenseSyntaxErrors } from './yaml-syntax.ts';

export type { ConfigError } from './errors.ts';
export { formatConfigError } from './errors.ts';
export {
  buildMeshSchema,
  meshSchema,
  type JsonSchema,
  type JsonSchemaObject,
  type ItemListeners,
  type ProtocolSchema,
} from './schema.ts';
export { DEFAULTS } from './normalise.ts';

/** A later check (e.g. a filter refusing its settings) reports through `error` to get file:line:col. */
export type LoadResult =
  | { ok: true; mesh: Mesh; error(path: Array<string | number>, message: string, at?: 'value' | 'key'): ConfigError }
  | { ok: false; errors: ConfigError[] };

export interface MeshParserOptions {
  /** Schemas owned by protocol filters: route match attributes and `filter:` settings. */
  protocols?: Readonly<Record<string, ProtocolSchema>>;
  /** Bounds on the file's size and YAML aliases (docs/security.md). */
  yamlLimits?: Partial<YamlLimits>;
}

/** A parser with protocol filter schemas plugged in. parseMesh() is the one without. */
export function createMeshParser(options: MeshParserOptions = {}): (text: string, file: string) => LoadResult {
  const yamlLimits: YamlLimits = { ...DEFAULT_YAML_LIMITS, ...options.yamlLimits };
  let check: SchemaCheck | undefined;
  const filterProtocols = new Set(Object.keys(options.protocols ?? {}));
  const itemListeners = new Map(
    Object.entries(options.protocols ?? {}).flatMap(([p, schema]) => (schema.itemListeners ? [[p, schema.itemListeners] as const] : [])),
  );
  const schemaCheck = (): SchemaCheck =>
    (check ??= createSchemaCheck(options.protocols ? buildMeshSchema(options.protocols) : meshSchema));

  return (text, file) => {
    try {
      const parsed = parseYaml(text, file, yamlLimits);
      if (!parsed.ok) {
        // One syntax mistake is reported once, at the bracket or quote left open.
        const locate = (offset: number) => {
          const at = parsed.source ? parsed.source.position(offset) : { line: 1, col: 1 };
          return { ...at, path: parsed.source ? formatPath(parsed.source.pathAt(offset)) : '' };
        };
        return { ok: false, errors: sortErrors(condenseSyntaxErrors(parsed.errors, text, locate)) };
      }
      const structural = schemaCheck()(parsed.data, parsed.source);
      if (structural.length > 0) return { ok: false, errors: sortErrors(structural) };
      // The schema accepted the data, so it has the RawMesh shape.
      const raw = parsed.data as RawMesh;
      const semantic = checkSemantics(raw, parsed.source, filterProtocols, itemListeners);
      if (semantic.length > 0) return { ok: false, errors: sortErrors(semantic) };
      return {
        ok: true,
        mesh: normalise(raw, itemListeners, path.dirname(path.resolve(file))),
        error: (path, message, at = 'value') => ({ file, ...parsed.source.locate(path, at), path: formatPath(path), message }),
      };
    } catch (err) {
      // Never a stack trace at the user; this is a bug in the loader.
      const message = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        errors: [{ file, line: 1, col: 1, path: '', message: `internal error while loading config: ${message}` }],
      };
    }
  };
}

const defaultParser = createMeshParser();

/** Parses and validates mesh YAML. Pure: no I/O, never throws. */
export function parseMesh(text: string, file: string): LoadResult {
  return defaultParser(text, file);
}

/** Reads and parses a mesh file (with filter schemas plugged in, if given); an unreadable file is one error at 1:1. */
export type MeshParser = (text: string, file: string) => LoadResult;

export async function loadMeshFile(file: string, parser: MeshParserOptions | MeshParser = parseMesh): Promise<LoadResult> {
  const read = await readMeshFile(file);
  if (!read.ok) return read;
  return (typeof parser === 'function' ? parser : createMeshParser(parser))(read.text, file);
}

/** Reads a mesh file's text; an unreadable file is one error at 1:1. */
export async function readMeshFile(file: string): Promise<{ ok: true; text: string } | { ok: false; errors: ConfigError[] }> {
  try {
    return { ok: true, text: await readFile(file, 'utf8') };
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : err instanceof Error
              ? err.message
              : String(err);
    return { ok: false, errors: [{ file, line: 1, col: 1, path: '', message: `cannot read config file: ${reason}` }] };
  }
}
