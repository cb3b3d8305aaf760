// Structural validation: ajv compiles the JSON Schema (schema.ts), and each
// ajv error is turned into a human message positioned at the YAML node it is
// about (the key for unknown keys, the map for missing keys, the value
// otherwise).

import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import type { ConfigError } from './errors.ts';
import { FORMATS, FORMAT_HINTS, MESSAGE_KEYWORD, type JsonSchemaObject } from './schema.ts';
import { formatPath, pointerToPath, type YamlSource } from './source.ts';

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, verbose: true });
  ajv.addVocabulary([MESSAGE_KEYWORD]);
  for (const [name, parse] of Object.entries(FORMATS)) {
    ajv.addFormat(name, { type: 'string', validate: (s: string) => parse(s).ok });
  }
  return ajv;
}

type Obj = { readonly [key: string]: unknown };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How a value reads in a message: `"abc"`, `5`, `a map`, `a list`, `an empty value`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list';
  if (typeof v === 'object') return Object.keys(v).length === 0 ? 'an empty map' : 'a map';
  return String(v);
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a map',
  array: 'a list',
  null: 'empty',
};

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** The closest candidate within a small edit distance, for "did you mean". */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  const limit = word.length <= 3 ? 1 : 2;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD && d <= limit) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** The x-message annotation for an error keyword, if the schema has one. */
function customMessage(schema: Obj | undefined, keyword: string): string | undefined {
  const m = schema?.[MESSAGE_KEYWORD];
  if (typeof m === 'string') return m;
  if (isObj(m) && typeof m[keyword] === 'string') return m[keyword];
  return undefined;
}

/** Keys of a oneOf whose branches each only require one key (`cluster` | `clusters`). */
function oneOfKeys(schema: Obj | undefined): string[] | undefined {
  const branches = schema?.['oneOf'];
  if (!Array.isArray(branches)) return undefined;
  const keys: string[] = [];
  for (const b of branches) {
    const req: unknown = isObj(b) ? b['required'] : undefined;
    if (!Array.isArray(req) || req.length !== 1 || typeof req[0] !== 'string') return undefined;
    keys.push(req[0]);
  }
  return keys;
}

const quoteList = (keys: readonly string[]): string => {
  const q = keys.map((k) => `"${k}"`);
  return q.length <= 1 ? q.join('') : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
};

interface Mapped {
  path: (string | number)[];
  at: 'value' | 'key';
  message: string;
}

function mapError(e: ErrorObject): Mapped | undefined {
  const path = pointerToPath(e.instancePath);
  const schema = isObj(e.parentSchema) ? e.parentSchema : undefined;
  const title = typeof schema?.['title'] === 'string' ? schema['title'] : undefined;
  const params: Obj = isObj(e.params) ? e.params : {};
  const got = ` (got ${describeValue(e.data)})`;
  const custom = customMessage(schema, e.keyword);

  switch (e.keyword) {
    case 'if':
      return undefined; // the failing `then` branch reports the real error
    case 'additionalProperties': {
      const key = String(params['additionalProperty']);
      const props = schema?.['properties'];
      const patterns = schema?.['patternProperties'];
      const allowed = [
        ...(isObj(props) ? Object.keys(props) : []),
        // `^x-` -> "x-*"
        ...(isObj(patterns) ? Object.keys(patterns).map((p) => `${p.replace(/^\^/, '')}*`) : []),
      ];
      const guess = closest(key, allowed);
      const hint =
        guess !== undefined
          ? ` (did you mean "${guess}"?)`
          : allowed.length > 0
            ? ` (allowed: ${allowed.join(', ')})`
            : '';
      return { path: [...path, key], at: 'key', message: `unknown key "${key}"${hint}` };
    }
    case 'required': {
      const key = String(params['missingProperty']);
      return {
        path,
        at: 'value',
        message: `${title ?? 'map'} is missing required key "${key}"`,
      };
    }
    case 'oneOf': {
      const keys = oneOfKeys(schema);
      if (keys) {
        const passing = params['passingSchemas'];
        const what = title ?? 'map';
        const message = Array.isArray(passing)
          ? `${what} has ${passing.map((i) => `"${keys[Number(i)]}"`).join(' and ')}; use only one`
          : `${what} needs ${quoteList(keys)}`;
        return { path, at: 'value', message };
      }
      return { path, at: 'value', message: custom ?? `must match exactly one form${got}` };
    }
    case 'type': {
      const format = schema?.['format'];
      let hint = typeof format === 'string' ? FORMAT_HINTS[format] : undefined;
      if ((format === 'duration' || format === 'positive-duration') && typeof e.data === 'number') {
        hint = `must be a duration with a unit, like "${e.data}s" or "${e.data}ms"`;
      }
      const expected = String(params['type'])
        .split(',')
        .map((t) => TYPE_NAMES[t] ?? t)
        .join(' or ');
      return { path, at: 'value', message: `${custom ?? hint ?? `must be ${expected}`}${got}` };
    }
    case 'format': {
      const format = String(params['format']);
      const r = typeof e.data === 'string' && format in FORMATS ? FORMATS[format]!(e.data) : undefined;
      const reason = r && !r.ok ? r.reason : `is not a valid ${format}`;
      return { path, at: 'value', message: custom ?? `${describeValue(e.data)} ${reason}` };
    }
    case 'enum': {
      const values = Array.isArray(params['allowedValues']) ? params['allowedValues'].map(String) : [];
      const guess = typeof e.data === 'string' ? closest(e.data, values) : undefined;
      const hint = guess !== undefined ? `; did you mean "${guess}"?` : '';
      return {
        path,
        at: 'value',
        message: custom ?? `must be one of ${values.map((v) => `"${v}"`).join(', ')}${got}${hint}`,
      };
    }
    default: {
      if (custom) return { path, at: 'value', message: `${custom}${got}` };
      const limit = params['limit'];
      const generic: Readonly<Record<string, string>> = {
        minimum: `must be at least ${String(limit)}`,
        maximum: `must be at most ${String(limit)}`,
        minItems: `must have at least ${String(limit)} item(s)`,
        minProperties: `must have at least ${String(limit)} key(s)`,
        minLength: `must not be empty`,
        pattern: `must match /${String(params['pattern'])}/`,
        const: `must be ${describeValue(params['allowedValue'])}`,
      };
      const base = generic[e.keyword] ?? (e.message ?? 'is invalid');
      return { path, at: 'value', message: `${base}${got}` };
    }
  }
}

/** Drops the per-branch errors of a oneOf that is reported as one message. */
function withoutBranchErrors(errors: readonly ErrorObject[]): ErrorObject[] {
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf');
  return errors.filter(
    (e) =>
      !oneOfs.some(
        (o) =>
          o !== e &&
          e.schemaPath.startsWith(`${o.schemaPath}/`) &&
          (e.instancePath === o.instancePath || e.instancePath.startsWith(`${o.instancePath}/`)),
      ),
  );
}

export type SchemaCheck = (data: unknown, source: YamlSource) => ConfigError[];

/** Compiles a mesh schema into a checker returning positioned, human errors. */
export function createSchemaCheck(schema: JsonSchemaObject): SchemaCheck {
  const validate: ValidateFunction = newAjv().compile(schema as SchemaObject);
  return (data, source) => {
    if (validate(data)) return [];
    const out: ConfigError[] = [];
    for (const e of withoutBranchErrors(validate.errors ?? [])) {
      const m = mapError(e);
      if (!m) continue;
      const { line, col } = source.locate(m.path, m.at);
      out.push({ file: source.file, line, col, path: formatPath(m.path), message: m.message });
    }
    return out;
  };
}
