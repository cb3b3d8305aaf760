// Watching the config file for changes, robustly:
//  - the folder is watched, not the file (editors save by renaming a new
//    file over the old one, which ends a watch on the file);
//  - a Kubernetes ConfigMap volume updates by swapping a symlink
//    (`mesh.yaml -> ..data/mesh.yaml`, `..data -> ..2026_12_06_...`): the
//    event names `..data`, never `mesh.yaml`, so every event in the folder
//    is checked against the file's fingerprint (where its path resolves to,
//    inode, size, mtime);
//  - the folder may be removed and created again (a volume remounted, a
//    deploy tool replacing the folder): a watch on a removed folder stays
//    silent forever, so a slow poll re-arms the watch and catches whatever
//    the watch missed.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

export interface WatchOptions {
  /** How often the file's fingerprint and the folder are checked without an event (default 1 s). */
  pollMs?: number;
}

/** Where the path resolves to and what is there; a missing file has a fingerprint too ("missing"). */
function fingerprint(file: string): string {
  try {
    const real = fs.realpathSync(file);
    const stat = fs.statSync(real);
    return `${real}\0${stat.dev}:${stat.ino}\0${stat.size}\0${stat.mtimeMs}\0${stat.ctimeMs}`;
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

function folderIdentity(dir: string): string | undefined {
  try {
    const stat = fs.statSync(dir);
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return undefined;
  }
}

/** Calls onChange when the file may have changed; returns a function that stops watching. */
export function watchConfigFile(file: string, log: Logger, onChange: () => void, options: WatchOptions = {}): () => void {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  let last = fingerprint(file);
  let watcher: fs.FSWatcher | undefined;
  let watchedFolder: string | undefined;
  let folderGone = false;

  const check = (certain: boolean): void => {
    const now = fingerprint(file);
    if (!certain && now === last) return;
    last = now;
    onChange();
  };

  const arm = (): void => {
    watcher?.close();
    watcher = undefined;
    watchedFolder = folderIdentity(dir);
    if (watchedFolder === undefined) return;
    try {
      watcher = fs.watch(dir, (_event, name) => check(name === base));
      watcher.on('error', (error) => {
        log.warn({ err: error, dir }, 'watching the config folder failed; watching again once it is back');
        watcher?.close();
        watcher = undefined;
      });
    } catch (error) {
      log.warn({ err: error, dir }, 'cannot watch the config folder yet; polling');
    }
  };

  const poll = (): void => {
    const identity = folderIdentity(dir);
    if (identity === undefined) {
      if (!folderGone) log.error({ dir }, 'the config folder is gone; still serving the last good config, and watching for it to come back');
      folderGone = true;
    } else if (folderGone || identity !== watchedFolder || !watcher) {
      if (folderGone) log.info({ dir }, 'the config folder is back; watching it again');
      folderGone = false;
      arm();
    }
    check(false);
  };

  arm();
  const timer = setInterval(poll, options.pollMs ?? 1000).unref();
  return () => {
    clearInterval(timer);
    watcher?.close();
  };
}
