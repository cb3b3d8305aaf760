// A snapshot is one immutable, fully encoded set of resources. Every resource
// is encoded to google.protobuf.Any bytes exactly once here; streams only
// concatenate those bytes into responses, so nothing is encoded per client.
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { encodeMessage, TYPE_PREFIX } from '../protos/index.ts';
import { TYPE, TYPE_ORDER, type EnvoyMessage, type Resources, type ResourceType } from '../translate/index.ts';

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
  return hash(entries.flatMap((e) => [e.name, '\0', e.version, '\n']));
}

export class TypeSnapshot {
  readonly version: string;
  private readonly namedViews = new Map<string, View>();
  private wildcardView: View | undefined;

  constructor(
    readonly typeUrl: ResourceType,
    readonly entries: ReadonlyMap<string, ResourceEntry>,
  ) {
    this.version = viewVersion([...entries.values()]);
  }

  /** All resources (wildcard), or those of the given names that exist, in name order. */
  view(names: ReadonlySet<string> | 'wildcard'): View {
    if (names === 'wildcard') {
      this.wildcardView ??= { version: this.version, entries: [...this.entries.values()] };
      return this.wildcardView;
    }
    const key = [...names].sort().join('\n');
    let view = this.namedViews.get(key);
    if (!view) {
      const entries = [...names]
        .sort()
        .map((n) => this.entries.get(n))
        .filter((e): e is ResourceEntry => e !== undefined);
      view = { version: viewVersion(entries), entries };
      this.namedViews.set(key, view);
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

export function buildSnapshot(resources: Resources): Snapshot {
  const byType: Array<[ResourceType, EnvoyMessage[]]> = [
    [TYPE.listener, resources.listeners],
    [TYPE.route, resources.routes],
    [TYPE.cluster, resources.clusters],
    [TYPE.endpoint, resources.endpoints],
  ];
  const types = new Map<ResourceType, TypeSnapshot>();
  for (const [typeUrl, messages] of byType) {
    const entries = new Map<string, ResourceEntry>();
    for (const message of messages) {
      const entry = encodeEntry(typeUrl, message);
      if (entries.has(entry.name)) throw new Error(`${typeUrl}: duplicate resource name ${entry.name}`);
      entries.set(entry.name, entry);
    }
    types.set(typeUrl, new TypeSnapshot(typeUrl, entries));
  }
  return new Snapshot(types);
}
