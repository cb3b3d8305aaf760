// Where things live under the prefix, and the --etcd / --etcd-prefix values:
// no etcd client here, so that commands parse their flags without loading one
// (store.ts re-exports all of it).

export const DEFAULT_ETCD_PREFIX = '/protoplane/';

export function meshKey(prefix: string): string {
  return `${prefix}mesh`;
}

export function modulesPrefix(prefix: string): string {
  return `${prefix}modules/`;
}

export function moduleKey(prefix: string, sha256: string): string {
  return `${modulesPrefix(prefix)}${sha256}`;
}

/** A value read or parsed: what it is, or why it is not one (a stored key written by hand or by something else). */
export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** `--etcd http://a:2379,http://b:2379`: one or more client URLs (or host:port, taken as http). */
export function parseEtcdEndpoints(values: readonly string[]): Decoded<string[]> {
  const list = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
  if (list.length === 0) return { ok: false, reason: 'expected one or more etcd client URLs, e.g. http://127.0.0.1:2379' };
  const out: string[] = [];
  for (const item of list) {
    const url = /^[a-z]+:\/\//i.test(item) ? item : `http://${item}`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { ok: false, reason: `not a URL: ${item}` };
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { ok: false, reason: `${item}: only http:// and https:// etcd endpoints` };
    if (!parsed.port) return { ok: false, reason: `${item}: give the port (etcd's client port is usually 2379)` };
    out.push(`${parsed.protocol}//${parsed.host}`);
  }
  return { ok: true, value: out };
}

/** A prefix as given by --etcd-prefix: must start and end with "/". */
export function checkPrefix(prefix: string): Decoded<string> {
  if (!prefix.startsWith('/') || !prefix.endsWith('/')) return { ok: false, reason: `must start and end with "/" (got ${JSON.stringify(prefix)})` };
  return { ok: true, value: prefix };
}
