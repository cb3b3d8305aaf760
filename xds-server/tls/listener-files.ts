// The certificate, key and CA files that listeners terminating TLS name: read
// (and checked) before each translation, and polled so that replacing one
// reloads the config: the Secret it feeds gets a new version and Envoy swaps
// it in over SDS, leaving the listener and its connections alone.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import type { ConfigError } from '../config/index.ts';
import type { Mesh, TlsCertificate } from '../model/types.ts';

type ConfigPath = Array<string | number>;
type Locate = (path: ConfigPath, message: string) => ConfigError;

export type ReadTlsFiles = { ok: true; files: Map<string, string> } | { ok: false; errors: ConfigError[] };

/** Every file the mesh's TLS listeners and clusters name. */
export function tlsFilesOf(mesh: Mesh): string[] {
  return [
    ...mesh.listeners.flatMap((l) =>
      l.tls ? [...l.tls.certificates.flatMap((c) => [c.certFile, c.keyFile]), ...(l.tls.clientCa ? [l.tls.clientCa] : [])] : [],
    ),
    ...mesh.clusters.flatMap((c) =>
      c.tls ? [...(c.tls.ca ? [c.tls.ca] : []), ...(c.tls.certificate ? [c.tls.certificate.certFile, c.tls.certificate.keyFile] : [])] : [],
    ),
  ];
}

async function readText(file: string): Promise<string | Error> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    return error as Error;
  }
}

function reason(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads every TLS file of the mesh; a file that cannot be read, a key that
 * does not match its certificate, or a CA that is not a PEM certificate is a
 * config error at the key naming it (`locate` gives file:line:col).
 */
export async function readTlsFiles(mesh: Mesh, locate: Locate): Promise<ReadTlsFiles> {
  const files = new Map<string, string>();
  const errors: ConfigError[] = [];
  const get = async (file: string, at: ConfigPath): Promise<string | undefined> => {
    const text = files.get(file) ?? (await readText(file));
    if (text instanceof Error) {
      errors.push(locate(at, `cannot read ${file}: ${reason(text)}`));
      return undefined;
    }
    files.set(file, text);
    return text;
  };
  const pair = async (c: TlsCertificate, at: ConfigPath): Promise<void> => {
    const cert = await get(c.certFile, [...at, 'cert']);
    const key = await get(c.keyFile, [...at, 'key']);
    if (cert === undefined || key === undefined) return;
    try {
      tls.createSecureContext({ cert, key });
    } catch (error) {
      errors.push(locate([...at, 'key'], `${c.keyFile} and ${c.certFile} do not make a TLS certificate: ${reason(error)}`));
    }
  };
  const caFile = async (file: string, at: ConfigPath): Promise<void> => {
    const ca = await get(file, at);
    if (ca === undefined) return;
    try {
      new X509Certificate(ca);
    } catch (error) {
      errors.push(locate(at, `${file} is not a PEM certificate: ${reason(error)}`));
    }
  };
  for (const [i, l] of mesh.listeners.entries()) {
    if (!l.tls) continue;
    for (const [j, c] of l.tls.certificates.entries()) await pair(c, ['listeners', i, 'tls', 'certificates', j]);
    if (l.tls.clientCa !== undefined) await caFile(l.tls.clientCa, ['listeners', i, 'tls', 'client_ca']);
  }
  for (const [i, c] of mesh.clusters.entries()) {
    if (!c.tls) continue;
    if (c.tls.certificate) await pair(c.tls.certificate, ['clusters', i, 'tls']);
    if (c.tls.ca !== undefined) await caFile(c.tls.ca, ['clusters', i, 'tls', 'ca']);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, files };
}

/** Polls a set of files (stat every `pollMs`; replaced-by-rename files are seen too) and calls `onChange`. */
export class WatchedFiles {
  private readonly watched = new Set<string>();

  constructor(
    private readonly onChange: () => void,
    private readonly pollMs = 500,
  ) {}

  private readonly listener = (curr: fs.Stats, prev: fs.Stats): void => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) this.onChange();
  };

  /** Watches exactly `files` from now on. */
  set(files: Iterable<string>): void {
    const next = new Set(files);
    for (const file of this.watched) {
      if (!next.has(file)) {
        fs.unwatchFile(file, this.listener);
        this.watched.delete(file);
      }
    }
    for (const file of next) {
      if (this.watched.has(file)) continue;
      fs.watchFile(file, { interval: this.pollMs, persistent: false }, this.listener);
      this.watched.add(file);
    }
  }

  close(): void {
    this.set([]);
  }
}
