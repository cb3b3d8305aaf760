// Byte helpers for driving filters with arbitrary chunking.

/** Splits data at the given sorted cut positions (Buffers stay Buffers). */
export function splitAt<T extends Uint8Array>(data: T, cuts: number[]): T[] {
  const out: T[] = [];
  let at = 0;
  for (const c of cuts) {
    out.push(data.subarray(at, c) as T);
    at = c;
  }
  out.push(data.subarray(at) as T);
  return out;
}
