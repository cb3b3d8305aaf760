/** One problem in a config file, positioned at the most specific YAML node. */
export interface ConfigError {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** Config path, e.g. `listeners[2].routes[0].cluster`; '' for the whole file. */
  path: string;
  message: string;
}

/** `file:line:col: message (at path)`; the `(at ...)` part is left out when path is ''. */
export function formatConfigError(e: ConfigError): string {
  const where = e.path === '' ? '' : ` (at ${e.path})`;
  return `${e.file}:${e.line}:${e.col}: ${e.message}${where}`;
}

/** Sorted by line, then column; stable otherwise; exact duplicates dropped. */
export function sortErrors(errors: readonly ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const k = `${e.line}:${e.col}:${e.path}:${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return unique
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.line - b.e.line || a.e.col - b.e.col || a.i - b.i)
    .map(({ e }) => e);
}
