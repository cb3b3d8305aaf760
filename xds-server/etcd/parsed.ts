// The mesh as `apply` parsed it, stored beside its YAML, so that a replica
// serves a change without parsing the YAML again (on the fan-out bench's
// 1,000 clusters, YAML, schema and semantic checks are most of a replica's
// reload, and every replica would do it at the same moment).
//
// A replica uses the stored mesh only when it would have parsed the same
// thing itself: the parsed form names its parser by a fingerprint of the
// parsing code (xds-server/config and model, as read from disk), the filter
// manifests (their schemas) and the YAML limits. A replica whose code,
// limits or filters differ parses the YAML, as it would without it. Errors
// found after parsing (a filter refusing its settings, a TLS file) still
// point at file:line:col: the YAML is parsed then, for its positions only.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { plainJson } from '../cache/index.ts';
import type { LoadResult, MeshParser } from '../config/index.ts';
import { DEFAULT_YAML_LIMITS, formatPath, type YamlLimits } from '../config/source.ts';
import type { Mesh } from '../model/types.ts';
import type { MeshRecord, ParsedMesh, StoredFilter } from './store.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The code that turns mesh YAML into a Mesh. */
const PARSER_DIRS = [path.join(here, '../config'), path.join(here, '../model')];

/** Largest parsed form stored (JSON characters): etcd refuses requests over 1.5 MiB, and modules share the transaction. */
export const MAX_PARSED_CHARS = 512 * 1024;

let codeHash: string | null | undefined;

/** sha256 over the parser's source files; null when they cannot be read (then nothing is stored or used). */
function parserCodeHash(): string | null {
  if (codeHash === undefined) {
    try {
      const h = createHash('sha256');
      for (const dir of PARSER_DIRS) {
        for (const name of fs.readdirSync(dir).sort()) {
          h.update(`${path.basename(dir)}/${name}\0`);
          h.update(fs.readFileSync(path.join(dir, name)));
        }
      }
      codeHash = h.digest('hex');
    } catch {
      codeHash = null;
    }
  }
  return codeHash;
}

/** Names a parser: this code, with these filters' schemas, under these YAML limits. */
export function parserFingerprint(filters: readonly StoredFilter[], limits: YamlLimits = DEFAULT_YAML_LIMITS): string | undefined {
  const code = parserCodeHash();
  if (code === null) return undefined;
  return createHash('sha256')
    .update(code)
    .update(JSON.stringify(filters.map((f) => f.manifest)))
    .update(JSON.stringify(limits))
    .digest('hex')
    .slice(0, 32);
}

/** What apply stores beside the YAML: the parsed mesh when JSON carries it exactly and it is not too large. */
export function parsedForRecord(mesh: Mesh, filters: readonly StoredFilter[]): ParsedMesh | undefined {
  const parser = parserFingerprint(filters);
  if (parser === undefined || !plainJson(mesh, false)) return undefined;
  return JSON.stringify(mesh).length <= MAX_PARSED_CHARS ? { parser, mesh } : undefined;
}

/**
 * `parse`, except for the record's own YAML and source when its parsed form
 * is from this parser: then that mesh, and the YAML is parsed only if a
 * later check needs a position.
 */
export function withStoredParse(record: MeshRecord, parse: MeshParser, limits?: Partial<YamlLimits>): MeshParser {
  const stored = record.parsed;
  if (!stored || stored.parser !== parserFingerprint(record.filters, { ...DEFAULT_YAML_LIMITS, ...limits })) return parse;
  return (text, file): LoadResult => {
    if (text !== record.yaml || file !== record.source) return parse(text, file);
    let located: LoadResult | undefined;
    return {
      ok: true,
      // Fingerprint-checked: what parse(text, file) returns, as JSON carried it.
      mesh: stored.mesh as Mesh,
      error(at, message, side) {
        located ??= parse(text, file);
        return located.ok ? located.error(at, message, side) : { file, line: 1, col: 1, path: formatPath(at), message };
      },
    };
  };
}
