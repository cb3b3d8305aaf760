// One YAML syntax mistake, reported once, where it is. The YAML parser
// recovers from a syntax error and then reports what the recovery broke
// downstream: an unclosed `{` on line 6 shows up as three to seven errors
// from line 7 on. The cause is nearly always an unclosed bracket or quote, so
// when parsing failed, look for the first one in the concrete syntax tree and
// report only that; with no such cause found, report the first error alone.
import { Parser } from 'yaml';
import type { ConfigError } from './errors.ts';

/** The source offset of the first unclosed flow collection or quoted scalar, with what is missing. */
export function unclosedAt(text: string): { offset: number; message: string } | undefined {
  let found: { offset: number; message: string } | undefined;
  const visit = (token: unknown): void => {
    if (found || !token || typeof token !== 'object') return;
    const t = token as Record<string, unknown>;
    if (t.type === 'flow-collection') {
      const open = (t.start as { source?: string } | undefined)?.source;
      const close = open === '{' ? '}' : ']';
      const ends = Array.isArray(t.end) ? (t.end as Array<{ source?: string }>) : [];
      if (!ends.some((e) => e.source === close)) {
        found = { offset: Number(t.offset), message: `this ${open} is never closed: a ${close} is missing on this line or after it` };
        return;
      }
    }
    if ((t.type === 'double-quoted-scalar' || t.type === 'single-quoted-scalar') && typeof t.source === 'string') {
      const quote = t.source[0]!;
      if (!closesQuote(t.source, quote)) {
        found = { offset: Number(t.offset), message: `this ${quote} quote is never closed` };
        return;
      }
    }
    for (const key of ['start', 'key', 'sep', 'value', 'items']) {
      const child = t[key];
      if (Array.isArray(child)) child.forEach(visit);
      else visit(child);
    }
  };
  for (const token of new Parser().parse(text)) visit(token);
  return found;
}

function closesQuote(source: string, quote: string): boolean {
  if (source.length < 2 || !source.endsWith(quote)) return false;
  if (quote === "'") return true; // '' inside is an escaped quote, and the source ends at the closing one
  let backslashes = 0;
  for (let i = source.length - 2; i > 0 && source[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/** Syntax errors cascade; an unknown tag (a warning the loader treats as an error) is its own problem, kept as is. */
const SYNTAX = /^invalid YAML: (?!unresolved tag)/;

/**
 * Keeps one syntax error: the unclosed bracket or quote that caused them,
 * else the first. Other errors (duplicate keys, aliases) are kept as they are.
 */
export function condenseSyntaxErrors(
  errors: readonly ConfigError[],
  text: string,
  locate: (offset: number) => { line: number; col: number; path: string },
): ConfigError[] {
  const syntax = errors.filter((e) => SYNTAX.test(e.message));
  if (syntax.length === 0) return [...errors];
  const others = errors.filter((e) => !SYNTAX.test(e.message));
  const file = syntax[0]!.file;
  const cause = unclosedAt(text);
  const first = [...syntax].sort((a, b) => a.line - b.line || a.col - b.col)[0]!;
  const one: ConfigError = cause ? { file, ...locate(cause.offset), message: `invalid YAML: ${cause.message}` } : first;
  return [one, ...others];
}
