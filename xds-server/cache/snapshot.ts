// A snapshot is one immutable, fully encoded set of resources. Every resource
// is encoded to google.protobuf.Any bytes exactly once here; streams only
// concatenate those bytes into responses, so nothing is encoded per client.
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { encodeMessage, TYPE_PREFIX } from '../protos/index.ts';
import { TYPE, TYPE_ORDER, type EnvoyMessage, type Resources, type ResourceType } from '../model/resources.ts';

export interface ResourceEntry {
  readonly name: string;
  /** Content hash of the encoded resource. */
  readonly version: string;
  /** The encoded google.protobuf.Any wrapping the resource. */
  readonly anyBytes: Uint8Array;
  /** The translated object, kept for config dumps and debugging. */
  readonly message: EnvoyMessage;
}

/** The resources of one type a stream is to receive, with the version naming exactly that content. */
export interface View {
  readonly version: string;
  readonly entries: readonly ResourceEntry[];
}

/** A set of subscribed names; equal sets share one object (see server/subscriptions.ts). */
export interface Subscription {
  readonly key: string;
  readonly names: ReadonlySet<string>;
  readonly sorted: readonly string[];
}

const indexes = new WeakMap<View, ReadonlyMap<string, ResourceEntry>>();

/** Looks a resource up in a view by name (index built once per view). */
export function entryIn(view: View, name: string): ResourceEntry | undefined {
  let index = indexes.get(view);
  if (!index) {
    index = new Map(view.entries.map((e) => [e.name, e]));
    indexes.set(view, index);
  }
  return index.get(name);
}

export interface ViewDiff {
  /** In `to` with a different version than in `from`, or absent from `from`. */
  readonly updated: readonly ResourceEntry[];
  /** In `from`, absent from `to`. */
  readonly removed: readonly string[];
}

/** Something computed once per (from, to) pair of views, kept while both views live. */
function perPair<T>(cache: WeakMap<View, WeakMap<View, T>>, from: View, to: View, compute: () => T): T {
  let byTarget = cache.get(from);
  if (!byTarget) {
    byTarget = new WeakMap();
    cache.set(from, byTarget);
  }
  let value = byTarget.get(to);
  if (value === undefined) {
    value = compute();
    byTarget.set(to, value);
  }
  return value;
}

const diffs = new WeakMap<View, WeakMap<View, ViewDiff>>();

/** What changes from one view to the next; computed once per pair and shared by every stream making that move. */
export function diffViews(from: View, to: View): ViewDiff {
  return perPair(diffs, from, to, () => ({
    updated: to.entries.filter((e) => entryIn(from, e.name)?.version !== e.version),
    removed: from.entries.filter((e) => entryIn(to, e.name) === undefined).map((e) => e.name),
  }));
}

const unions = new WeakMap<View, WeakMap<View, View>>();

/** `to` plus whatever `from` had that `to` lacks: what a client holds before removals are sent. */
export function unionViews(from: View, to: View): View {
  const { removed } = diffViews(from, to);
  if (removed.length === 0) return to;
  return perPair(unions, from, to, () => {
    const entries = [...to.entries, ...removed.map((n) => entryIn(from, n)!)].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    return { version: viewVersion(entries), entries };
  });
}

function hash(parts: Iterable<string | Uint8Array>): string {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return h.digest('hex').slice(0, 16);
}

function nameOf(typeUrl: ResourceType, message: EnvoyMessage): string {
  const name = typeUrl === TYPE.endpoint ? message.cluster_name : message.name;
  if (typeof name !== 'string' || name === '') throw new Error(`${typeUrl}: resource without a name`);
  return name;
}

const anyType = new protobuf.Type('Any')
  .add(new protobuf.Field('type_url', 1, 'string'))
  .add(new protobuf.Field('value', 2, 'bytes'));

export function encodeEntry(typeUrl: ResourceType, message: EnvoyMessage): ResourceEntry {
  const value = encodeMessage(typeUrl.slice(TYPE_PREFIX.length), message);
  const anyBytes = anyType.encode({ type_url: typeUrl, value }).finish();
  return { name: nameOf(typeUrl, message), version: hash([anyBytes]), anyBytes, message };
}

export function viewVersion(entries: readonly ResourceEntry[]): string {
  // One string, hashed once: the same digest as hashing the parts in turn, at a seventh of the cost for 1,000 entries.
  let text = '';
  for (const e of entries) text += `${e.name}\0${e.version}\n`;
  return hash([text]);
}

export class TypeSnapshot {
  readonly version: string;
  /** By interned subscription object: a view goes with the last stream subscribed that way, not at the next config. */
  private readonly namedViews = new WeakMap<Subscription, View>();
  /**
   * Every resource of the type (a wildcard subscription), except API
   * listeners: those are for proxyless gRPC clients that name them, and an
   * Envoy would reject them in its wildcard LDS. Built here rather than by
   * the first stream that asks: a branch taken once per snapshot inside the
   * per-stream push path makes V8 throw away and recompile that path's
   * optimised code on every server's first change.
   */
  private readonly wildcardView: View;

  constructor(
    readonly typeUrl: ResourceType,
    readonly entries: ReadonlyMap<string, ResourceEntry>,
  ) {
    const all = [...entries.values()];
    this.version = viewVersion(all);
    const served = all.filter((e) => e.message.api_listener === undefined);
    this.wildcardView = { version: served.length === all.length ? this.version : viewVersion(served), entries: served };
  }

  all(): View {
    return this.wildcardView;
  }

  /** The named resources that exist, in name order; cached per subscription, so streams share views. */
  named(subscription: Subscription): View {
    let view = this.namedViews.get(subscription);
    if (!view) {
      const entries = subscription.sorted
        .map((n) => this.entries.get(n))
        .filter((e): e is ResourceEntry => e !== undefined);
      view = { version: viewVersion(entries), entries };
      this.namedViews.set(subscription, view);
    }
    return view;
  }
}

export class Snapshot {
  /** Content hash over every type: equal snapshots have equal versions. */
  readonly version: string;

  constructor(
    readonly types: ReadonlyMap<ResourceType, TypeSnapshot>,
    readonly createdAt: number = Date.now(),
  ) {
    this.version = hash(TYPE_ORDER.map((t) => `${t}=${this.of(t).version};`));
  }

  of(typeUrl: ResourceType): TypeSnapshot {
    const t = this.types.get(typeUrl);
    if (!t) throw new Error(`snapshot has no type ${typeUrl}`);
    return t;
  }
}

/** Messages that translations share (a filter's ECDS config, which may carry the module) are encoded once. */
const encoded = new WeakMap<EnvoyMessage, ResourceEntry>();

const KEYED_TYPES: ReadonlySet<ResourceType> = new Set([TYPE.listener, TYPE.route, TYPE.cluster, TYPE.endpoint]);
/** Entries unused for this many builds are dropped (each flavour's build counts). */
const KEEP_BUILDS = 4;

/**
 * A reload re-translates the whole mesh, but usually only a few resources
 * come out different. Built with the same Encodings, those that come out the
 * same as in one of the last builds reuse that build's entry (bytes and
 * version): the message's JSON is the key, which costs a fraction of
 * protobuf encoding plus hashing (on the fan-out bench's 1,000 clusters, the
 * bulk of a replica's translate time). Only types made of plain JSON values
 * (no module bytes) are keyed; a message holding anything JSON does not carry
 * exactly (bytes, -0, NaN, a class instance) is encoded as before. A server
 * keeps one for its reloads; a build without one reuses nothing.
 */
export class Encodings {
  private readonly byContent = new Map<string, { entry: ResourceEntry; build: number }>();
  private builds = 0;

  /** The entry of a message: an earlier build's when its content is the same, else a new encoding. */
  entry(typeUrl: ResourceType, message: EnvoyMessage): ResourceEntry {
    const key = KEYED_TYPES.has(typeUrl) ? contentKey(typeUrl, message) : undefined;
    const known = key === undefined ? undefined : this.byContent.get(key);
    if (known) {
      known.build = this.builds;
      return known.entry;
    }
    const entry = encodeEntry(typeUrl, message);
    if (key !== undefined) this.byContent.set(key, { entry, build: this.builds });
    return entry;
  }

  /** After a build: forget what the last KEEP_BUILDS builds did not use. */
  endBuild(): void {
    for (const [key, { build }] of this.byContent) if (build <= this.builds - KEEP_BUILDS) this.byContent.delete(key);
    this.builds += 1;
  }
}

/**
 * Whether JSON carries the value exactly: plain objects, arrays, strings,
 * booleans, finite numbers other than -0, null; undefined only as an object
 * field when `undefinedFields` (JSON drops the field, which protobuf encoding
 * treats alike, but code testing for the key would not).
 */
export function plainJson(value: unknown, undefinedFields = true): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'undefined':
      return undefinedFields;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      // (an array's holes and undefined items become null in JSON)
      if (Array.isArray(value)) return value.every((item) => item !== undefined && plainJson(item, undefinedFields));
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) if (!plainJson((value as Record<string, unknown>)[key], undefinedFields)) return false;
      return true;
    }
    default:
      return false;
  }
}

/** The message as JSON, when that names its encoding exactly; else undefined. */
function contentKey(typeUrl: ResourceType, message: EnvoyMessage): string | undefined {
  return plainJson(message) ? `${typeUrl}\n${JSON.stringify(message)}` : undefined;
}

function encodedOnce(typeUrl: ResourceType, message: EnvoyMessage, encodings: Encodings | undefined): ResourceEntry {
  let entry = encoded.get(message);
  if (entry) return entry;
  entry = encodings ? encodings.entry(typeUrl, message) : encodeEntry(typeUrl, message);
  encoded.set(message, entry);
  return entry;
}

/** Encodes every resource (with `encodings`, reusing what an earlier build with them encoded). */
export function buildSnapshot(resources: Resources, createdAt: number = Date.now(), encodings?: Encodings): Snapshot {
  const byType: Array<[ResourceType, EnvoyMessage[]]> = [
    [TYPE.listener, resources.listeners],
    [TYPE.route, resources.routes],
    [TYPE.cluster, resources.clusters],
    [TYPE.endpoint, resources.endpoints],
    [TYPE.extension, resources.extensions],
    [TYPE.secret, resources.secrets],
  ];
  const types = new Map<ResourceType, TypeSnapshot>();
  for (const [typeUrl, messages] of byType) {
    const entries = new Map<string, ResourceEntry>();
    for (const message of messages) {
      const entry = encodedOnce(typeUrl, message, encodings);
      if (entries.has(entry.name)) throw new Error(`${typeUrl}: duplicate resource name ${entry.name}`);
      entries.set(entry.name, entry);
    }
    types.set(typeUrl, new TypeSnapshot(typeUrl, entries));
  }
  encodings?.endBuild();
  return new Snapshot(types, createdAt);
}
