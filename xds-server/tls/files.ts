// The xDS server's TLS files: read at start (a bad file stops the start),
// then polled, and swapped in for new connections when they change and
// still make a valid TLS context together (a half-written or mismatched
// pair is logged and the previous pair kept). Certificates rotate without a
// restart; open connections keep the certificate they were made with.
import fs from 'node:fs';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { TlsFiles } from '../server/index.ts';

export interface TlsPaths {
  certFile: string;
  keyFile: string;
  /** With it, clients must present a certificate this CA signed. */
  clientCaFile?: string;
}

function read(paths: TlsPaths): TlsFiles {
  const files: TlsFiles = {
    cert: fs.readFileSync(paths.certFile),
    key: fs.readFileSync(paths.keyFile),
    ...(paths.clientCaFile ? { ca: fs.readFileSync(paths.clientCaFile) } : {}),
  };
  // throws when the key does not match the certificate, or a file is not PEM
  tls.createSecureContext({ cert: files.cert, key: files.key, ...(files.ca ? { ca: files.ca } : {}) });
  return files;
}

/** Reads the files now and calls `apply` with new contents whenever they change (checked every `pollMs`). */
export function watchTlsFiles(paths: TlsPaths, log: Logger, apply: (files: TlsFiles) => void, pollMs = 1000): { files: TlsFiles; stop(): void } {
  const files = read(paths);
  let current = files;
  const watched = [paths.certFile, paths.keyFile, ...(paths.clientCaFile ? [paths.clientCaFile] : [])];
  const onChange = () => {
    let next: TlsFiles;
    try {
      next = read(paths);
    } catch (error) {
      log.error({ err: error, files: watched }, 'the xDS TLS files changed but do not load; keeping the previous certificate');
      return;
    }
    if (next.cert.equals(current.cert) && next.key.equals(current.key) && (next.ca?.equals(current.ca ?? Buffer.alloc(0)) ?? !current.ca)) return;
    current = next;
    apply(next);
    log.info({ files: watched }, 'xDS TLS certificate reloaded; new connections use it');
  };
  for (const file of watched) fs.watchFile(file, { interval: pollMs, persistent: false }, onChange);
  return {
    files,
    stop: () => {
      for (const file of watched) fs.unwatchFile(file, onChange);
    },
  };
}
