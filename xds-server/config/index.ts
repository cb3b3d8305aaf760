// Config loader: mesh.yaml text -> validated, normalised Mesh, or every
// problem as file:line:col + config path. See docs/config.md.
//
//   YAML (syntax, duplicate keys, aliases)  source.ts
//   -> JSON Schema via ajv (structure)       schema.ts, validate.ts
//   -> semantic checks (cross-references)    semantic.ts
//   -> normalisation into the model          normalise.ts

import { readFile } from 'node:fs/promises';
import type { Mesh } from '../model/types.ts';
import { sortErrors, type ConfigError } from './errors.ts';
import { normalise } from './normalise.ts';
import type { RawMesh } from './raw.ts';
import { buildMeshSchema, meshSchema, type ProtocolSchema } from './schema.ts';
import { checkSemantics } from './semantic.ts';
import { parseYaml } from './source.ts';
import { createSchemaCheck, type SchemaCheck } from './validate.ts';

export type { ConfigError } from './errors.ts';
export { formatConfigError } from './errors.ts';
export {
  buildMeshSchema,
  meshSchema,
  type JsonSchema,
  type JsonSchemaObject,
  type ProtocolSchema,
} from './schema.ts';
export { DEFAULTS } from './normalise.ts';

export type LoadResult = { ok: true; mesh: Mesh } | { ok: false; errors: ConfigError[] };

export interface MeshParserOptions {
  /** Schemas owned by protocol filters: route match attributes and `filter:` settings. */
  protocols?: Readonly<Record<string, ProtocolSchema>>;
}

/** A parser with protocol filter schemas plugged in. parseMesh() is the one without. */
export function createMeshParser(options: MeshParserOptions = {}): (text: string, file: string) => LoadResult {
  let check: SchemaCheck | undefined;
  const schemaCheck = (): SchemaCheck =>
    (check ??= createSchemaCheck(options.protocols ? buildMeshSchema(options.protocols) : meshSchema));

  return (text, file) => {
    try {
      const parsed = parseYaml(text, file);
      if (!parsed.ok) return { ok: false, errors: sortErrors(parsed.errors) };
      const structural = schemaCheck()(parsed.data, parsed.source);
      if (structural.length > 0) return { ok: false, errors: sortErrors(structural) };
      // The schema accepted the data, so it has the RawMesh shape.
      const raw = parsed.data as RawMesh;
      const semantic = checkSemantics(raw, parsed.source);
      if (semantic.length > 0) return { ok: false, errors: sortErrors(semantic) };
      return { ok: true, mesh: normalise(raw) };
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

/** Reads and parses a mesh file; an unreadable file is one error at 1:1. */
export async function loadMeshFile(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
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
  return parseMesh(text, file);
}
