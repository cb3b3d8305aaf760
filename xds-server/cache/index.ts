// The snapshot cache. Nodes that receive the same config form a group (keyed
// by a node-hash function, by default node.cluster, else node.id) and share
// one Snapshot object; a group exists only while it has watching streams, so
// memory does not grow per node beyond stream state. Streams read from here;
// they never translate or encode. The cache takes built snapshots
// (xds-server/snapshots.ts translates a mesh into them); it knows nothing of
// the mesh or of translation.
import type { XdsFlavour } from '../model/resources.ts';
import type { Snapshot } from './snapshot.ts';

export {
  buildSnapshot,
  diffViews,
  encodeEntry,
  Encodings,
  entryIn,
  plainJson,
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

export interface GroupMembership {
  /** The group's snapshot as the cache has it now. */
  snapshot(): Snapshot | undefined;
  leave(): void;
}

/**
 * One config version as snapshots for each way Envoy can be connected: over
 * ADS, or with per-type streams (whose clusters and listeners must name the
 * per-type source for their EDS and RDS). The ADS one is built at once; the
 * others only when a stream of that flavour exists.
 */
export class SnapshotSet {
  readonly version: string;
  private readonly built = new Map<XdsFlavour, Snapshot>();

  constructor(private readonly build: (flavour: XdsFlavour) => Snapshot) {
    const ads = build('ads');
    this.built.set('ads', ads);
    this.version = ads.version;
  }

  get(flavour: XdsFlavour): Snapshot {
    let snapshot = this.built.get(flavour);
    if (!snapshot) {
      snapshot = this.build(flavour);
      this.built.set(flavour, snapshot);
    }
    return snapshot;
  }
}

interface Group {
  name: string;
  flavour: XdsFlavour;
  snapshot: Snapshot | undefined;
  watchers: Set<Watcher>;
}

export class SnapshotCache {
  private base: SnapshotSet | undefined;
  private readonly groups = new Map<string, Group>();
  private readonly globalWatchers = new Set<Watcher>();

  constructor(private readonly forGroup: GroupSnapshot = (_group, base) => base) {}

  /** The mesh-wide snapshot (ADS flavour). */
  get snapshot(): Snapshot | undefined {
    return this.base?.get('ads');
  }

  /** Installs a config version; returns false (and notifies nobody) when nothing changed. */
  set(snapshots: SnapshotSet): boolean {
    if (this.base?.version === snapshots.version) return false;
    this.base = snapshots;
    for (const group of this.groups.values()) {
      const next = this.forGroup(group.name, snapshots.get(group.flavour));
      if (group.snapshot?.version === next.version) continue;
      group.snapshot = next;
      for (const watcher of group.watchers) watcher(next);
    }
    const ads = snapshots.get('ads');
    for (const watcher of this.globalWatchers) watcher(ads);
    return true;
  }

  snapshotOf(group: string, flavour: XdsFlavour = 'ads'): Snapshot | undefined {
    return this.groups.get(`${flavour}\0${group}`)?.snapshot;
  }

  /** Joins a group (creating it on first use). The membership reads the group's current snapshot without a lookup. */
  watch(group: string, flavour: XdsFlavour, watcher: Watcher): GroupMembership {
    const key = `${flavour}\0${group}`;
    let entry = this.groups.get(key);
    if (!entry) {
      entry = { name: group, flavour, snapshot: undefined, watchers: new Set() };
      // Written after creation, not in the literal: V8 then treats the field as one that changes, and code
      // inlining a group's snapshot is not thrown away (and recompiled) at the group's first new snapshot.
      entry.snapshot = this.base && this.forGroup(group, this.base.get(flavour));
      this.groups.set(key, entry);
    }
    entry.watchers.add(watcher);
    const joined = entry;
    return {
      snapshot: () => joined.snapshot,
      leave: () => {
        joined.watchers.delete(watcher);
        if (joined.watchers.size === 0 && this.groups.get(key) === joined) this.groups.delete(key);
      },
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
