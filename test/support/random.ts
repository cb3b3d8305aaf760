// Deterministic randomness for tests: the same seed gives the same inputs.

/** xorshift32: numbers in [0, 1), deterministic for a seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
