// The snapshot cache. Nodes that receive the same config form a group (keyed
// by a node-hash function, by default node.cluster, else node.id) and share
// one Snapshot object; a group exists only while it has watching streams, so
// memory does not grow per node beyond stream state. Streams read from here;
// they never translate or encode.
import type { Snapshot } from './snapshot.ts';

export {
  buildSnapshot,
  diffViews,
  encodeEntry,
  entryIn,
  Snapshot,
  TypeSnapshot,
  unionViews,
  viewVersion,
  type ResourceEntry,
  type Subscription,
  type View,
  type ViewDiff,
} from './snapshot.ts';

export interface NodeIdentity {
  id: string;
  cluster: string;
}

export type NodeHash = (node: NodeIdentity) => string;

/** Default grouping: Envoy's service cluster, falling back to the node id. */
export const nodeGroup: NodeHash = (node) => node.cluster || node.id;

/** Derives a group's snapshot from the mesh-wide one (identity today: every group gets the same config). */
export type GroupSnapshot = (group: string, base: Snapshot) => Snapshot;

type Watcher = (snapshot: Snapshot) => void;

interface Group {
  snapshot: Snapshot | undefined;
  watchers: Set<Watcher>;
}

export class SnapshotCache {
  private base: Snapshot | undefined;
  private readonly groups = new Map<string, Group>();
  private readonly globalWatchers = new Set<Watcher>();

  constructor(private readonly forGroup: GroupSnapshot = (_group, base) => base) {}

  /** The mesh-wide snapshot. */
  get snapshot(): Snapshot | undefined {
    return this.base;
  }

  /** Installs a snapshot; returns false (and notifies nobody) when nothing changed. */
  set(snapshot: Snapshot): boolean {
    if (this.base?.version === snapshot.version) return false;
    this.base = snapshot;
    for (const [name, group] of this.groups) {
      const next = this.forGroup(name, snapshot);
      if (group.snapshot?.version === next.version) continue;
      group.snapshot = next;
      for (const watcher of group.watchers) watcher(next);
    }
    for (const watcher of this.globalWatchers) watcher(snapshot);
    return true;
  }

  snapshotOf(group: string): Snapshot | undefined {
    return this.groups.get(group)?.snapshot;
  }

  /** Joins a group (creating it on first use); the returned function leaves it. */
  watch(group: string, watcher: Watcher): () => void {
    let entry = this.groups.get(group);
    if (!entry) {
      entry = { snapshot: this.base && this.forGroup(group, this.base), watchers: new Set() };
      this.groups.set(group, entry);
    }
    entry.watchers.add(watcher);
    return () => {
      entry.watchers.delete(watcher);
      if (entry.watchers.size === 0 && this.groups.get(group) === entry) this.groups.delete(group);
    };
  }

  /** Called on every new mesh-wide snapshot (metrics, admin). */
  onChange(watcher: Watcher): () => void {
    this.globalWatchers.add(watcher);
    return () => this.globalWatchers.delete(watcher);
  }

  get groupCount(): number {
    return this.groups.size;
  }
}
