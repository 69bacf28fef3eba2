/**
 * Shared fuzzing knobs. CI runs a fixed seed and a bounded count; `tests/fuzz-long.sh` (or
 * FUZZ_ITERATIONS=1000000 FUZZ_SEED=123 bun test fuzz) runs longer with another seed.
 */

/** Iterations for a fuzz loop: FUZZ_ITERATIONS if set, else the test's bounded default. */
export function fuzzIterations(defaultCount: number): number {
  const n = Number(process.env.FUZZ_ITERATIONS);
  return Number.isInteger(n) && n > 0 ? n : defaultCount;
}

/** Seed for a fuzz loop: FUZZ_SEED if set (printed by the long script), else the fixed default. */
export function fuzzSeed(defaultSeed: number): number {
  const n = Number(process.env.FUZZ_SEED);
  return Number.isInteger(n) ? n >>> 0 : defaultSeed;
}

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
