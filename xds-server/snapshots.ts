// A mesh as the snapshots the cache serves: translated (pure) for each way
// Envoy can connect, each built and encoded once. The composition of
// translate/ and cache/, which do not know each other.
import { buildSnapshot, SnapshotSet, type Encodings } from './cache/index.ts';
import type { Mesh } from './model/types.ts';
import { translate, type FilterRefs, type TlsFileContents } from './translate/index.ts';

/** `encodings`: a server's across its reloads, so that what did not change is not encoded again. */
export function snapshotsOf(mesh: Mesh, filters?: FilterRefs, tlsFiles?: TlsFileContents, encodings?: Encodings): SnapshotSet {
  const createdAt = Date.now();
  return new SnapshotSet((flavour) => buildSnapshot(translate(mesh, flavour, filters, tlsFiles), createdAt, encodings));
}
