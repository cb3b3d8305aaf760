// The Go programs the benches run beside the server under test
// (test/bench/peers/cmd/*): built once into .cache/bench-bin/, rebuilt when
// their sources change.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const PEERS_DIR = path.join(ROOT, 'test/bench/peers');
export const BIN_DIR = path.join(ROOT, '.cache/bench-bin');

/** Path of a built peer: loadgen, gcp-server, tcpblast. */
export const peerBinary = (name: string): string => path.join(BIN_DIR, name);

function sourcesHash(): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.(go|mod|sum|binpb)$/.test(entry.name)) hash.update(`${path.relative(PEERS_DIR, full)}\0`).update(fs.readFileSync(full));
    }
  };
  walk(PEERS_DIR);
  return hash.digest('hex');
}

/** Builds every peer into .cache/bench-bin/ unless all are up to date with the sources. */
export function buildPeers(log: (line: string) => void): void {
  const stampFile = path.join(BIN_DIR, '.sources-sha256');
  const hash = sourcesHash();
  const commands = fs.readdirSync(path.join(PEERS_DIR, 'cmd'));
  const fresh =
    fs.existsSync(stampFile) &&
    fs.readFileSync(stampFile, 'utf8') === hash &&
    commands.every((name) => fs.existsSync(peerBinary(name)));
  if (fresh) return;
  log('building test/bench/peers (go build) into .cache/bench-bin/ ...');
  fs.mkdirSync(BIN_DIR, { recursive: true });
  execFileSync('go', ['build', '-o', BIN_DIR + path.sep, './cmd/...'], {
    cwd: PEERS_DIR,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOFLAGS: '-mod=readonly' },
  });
  fs.writeFileSync(stampFile, hash);
}
