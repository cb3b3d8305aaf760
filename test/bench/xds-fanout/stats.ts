// Percentiles, Prometheus text parsing and the number formats of the table.

/** Nearest-rank percentile (p in 0..100) of ascending-sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface Summary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  min: number;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = values.filter((v) => v >= 0).sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    min: sorted.length ? sorted[0]! : NaN,
  };
}

/** One sample value by metric name and exact label set (`{type="Cluster"}`), or 0. */
export function sample(text: string, name: string, labels = ''): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels} `)) return Number(line.slice(name.length + labels.length + 1).split(' ')[0]);
  }
  return 0;
}

/** Cumulative histogram buckets (le → count) of one series. */
export function buckets(text: string, name: string, labels: Record<string, string>): Map<number, number> {
  const out = new Map<number, number>();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`)) continue;
    const labelText = line.slice(line.indexOf('{') + 1, line.indexOf('}'));
    if (!want.every((w) => labelText.split(',').includes(w))) continue;
    const le = /le="([^"]+)"/.exec(labelText)?.[1];
    if (le === undefined) continue;
    out.set(le === '+Inf' ? Infinity : Number(le), Number(line.slice(line.indexOf('}') + 2).split(' ')[0]));
  }
  return out;
}

/** after − before, bucket by bucket. */
export function bucketDelta(after: Map<number, number>, before: Map<number, number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [le, count] of after) out.set(le, count - (before.get(le) ?? 0));
  return out;
}

/**
 * The bucket holding the q-quantile (q in 0..1) of a cumulative histogram, as
 * [lower, upper] bounds; upper is Infinity past the last finite bucket. The
 * buckets are too coarse to interpolate inside honestly.
 */
export function quantileBucket(cumulative: Map<number, number>, q: number): [number, number] | undefined {
  const entries = [...cumulative.entries()].sort((a, b) => a[0] - b[0]);
  const total = entries.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = Math.ceil(q * total);
  let lower = 0;
  for (const [le, count] of entries) {
    if (count >= rank) return [lower, le];
    lower = le;
  }
  return [lower, Infinity];
}

/** A bucket as text, in seconds: "1–2.5 s", ">10 s". */
export function bucketText(bucket: [number, number] | undefined): string {
  if (!bucket) return '-';
  const [lo, hi] = bucket;
  return hi === Infinity ? `>${lo} s` : `${lo}–${hi} s`;
}

/** Milliseconds, for the table. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 100) return `${value.toFixed(0)} ms`;
  return `${value.toFixed(1)} ms`;
}

/** The largest finite bucket bound. */
export function lastFiniteBucket(cumulative: Map<number, number>): number {
  return Math.max(...[...cumulative.keys()].filter(Number.isFinite));
}

export function seconds(ticks: number, tck: number): string {
  return `${(ticks / tck).toFixed(2)} s`;
}

export function kib(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  return `${(bytes / 1024).toFixed(1)} KB`;
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

export function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}
