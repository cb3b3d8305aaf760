// The quick read of a mesh file, for the common case: valid YAML without
// aliases, tags, merge keys or directives. `yaml` (source.ts) is the parser
// of record: it keeps every node's position, so every error names
// file:line:col, and it handles aliases within the limits. It is also slow:
// ~45 ms for the fan-out bench's 1,000 clusters (its CST parser), where
// js-yaml 5 reads the same text into the same data in ~5 ms. A config that
// passes every check needs no position, so it is read with js-yaml, and
// positions are parsed with `yaml` only when a check reports a problem
// (source.ts parses lazily). Both follow YAML 1.2 with the core schema and
// pass the YAML test suite; for everything here where they could differ, the
// quick read steps aside and the full parser decides:
//   - aliases (the full parser bounds their expansion), explicit tags and
//     `%` directives (a `%YAML 1.1` document changes what `yes` means);
//   - merge keys `<<` (merged on the full path, a plain key in js-yaml's core
//     schema);
//   - a `null` key (js-yaml names it "null", `yaml` "");
//   - anything js-yaml refuses (syntax, duplicate keys, an empty file, more
//     than one document, nesting past 100), so every error is the full
//     parser's own;
//   - more than half the node limit (the full parser's count is the exact one).
// test/unit/quick-yaml.test.ts compares both on every YAML file in the repo.
import { CORE_SCHEMA, EVENT_ID, constructFromEvents, parseEvents, type Event } from 'js-yaml';
import type { YamlLimits } from './source.ts';

/** The data of `text` as the full parser would give it, or undefined: let the full parser read it. */
export function quickYaml(text: string, limits: Pick<YamlLimits, 'maxExpandedNodes'>): { data: unknown } | undefined {
  if (text.includes('<<')) return undefined;
  let events: Event[];
  try {
    events = parseEvents(text, {});
  } catch {
    return undefined;
  }
  let nodes = 0;
  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.DOCUMENT:
        if (event.directives.length > 0) return undefined;
        break;
      case EVENT_ID.ALIAS:
        return undefined;
      case EVENT_ID.SCALAR:
      case EVENT_ID.SEQUENCE:
      case EVENT_ID.MAPPING:
        if (event.tagStart !== -1) return undefined;
        nodes++;
        break;
    }
  }
  if (nodes > limits.maxExpandedNodes / 2) return undefined;
  let documents: unknown[];
  try {
    documents = constructFromEvents(events, { source: text, schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
  if (documents.length !== 1 || hasNullKey(documents[0])) return undefined;
  return { data: documents[0] };
}

function hasNullKey(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasNullKey);
  if (value === null || typeof value !== 'object') return false;
  for (const key of Object.keys(value)) {
    if (key === 'null' || hasNullKey((value as Record<string, unknown>)[key])) return true;
  }
  return false;
}
