// The snapshot cache: holds the current snapshot and tells watchers when it
// changes. Streams read from it; they never translate or encode.
import { EventEmitter } from 'node:events';
import type { Snapshot } from './snapshot.ts';

export { buildSnapshot, encodeEntry, Snapshot, TypeSnapshot, viewVersion, type ResourceEntry, type View } from './snapshot.ts';

export class SnapshotCache {
  private current: Snapshot | undefined;
  private readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  get snapshot(): Snapshot | undefined {
    return this.current;
  }

  /** Installs a snapshot; returns false (and notifies nobody) when nothing changed. */
  set(snapshot: Snapshot): boolean {
    if (this.current?.version === snapshot.version) return false;
    this.current = snapshot;
    this.events.emit('snapshot', snapshot);
    return true;
  }

  onChange(listener: (snapshot: Snapshot) => void): () => void {
    this.events.on('snapshot', listener);
    return () => this.events.off('snapshot', listener);
  }
}
