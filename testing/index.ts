// Test helpers shared by every package's tests: one GPU context per test file, fixture paths,
// a seeded PRNG, relative-L2 comparison and output poisoning.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createContext, type ByteSink, type ContextOptions, type GpuContext } from '@ssd/tensor';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/**
 * The diffusers fixtures: $SSD_FIXTURES, else ../shared/fixtures beside the checkout (CI), else the
 * copy in this repository (fixtures/), so that a fresh clone tests on its own.
 */
export const fixturesDir: string = (() => {
  const env = process.env.SSD_FIXTURES;
  if (env) return env;
  const shared = fileURLToPath(new URL('../../shared/fixtures', import.meta.url));
  if (existsSync(`${shared}/manifest.json`)) return shared;
  return fileURLToPath(new URL('../fixtures', import.meta.url));
})();

/**
 * Whether the fixture files (paths relative to fixturesDir) exist. Fixtures that are not copied into
 * the repository (the adapter, inpainting and single-file sets live in ../shared/fixtures only) may be
 * missing on a bare clone: then a test skips (`describe.skipIf(!hasFixtures(...))`) — except under
 * CI=true, where a missing fixture throws, so CI can never pass by skipping.
 */
export function hasFixtures(...relPaths: string[]): boolean {
  const missing = relPaths.filter((r) => !existsSync(`${fixturesDir}/${r}`));
  if (!missing.length) return true;
  if (process.env.CI === 'true') throw new Error(`fixtures missing under ${fixturesDir}: ${missing.join(', ')} (CI=true: a test may not skip them)`);
  return false;
}

const contexts = new Map<string, Promise<GpuContext>>();

/** A context shared by the tests of one file (one per distinct options object). */
export function testContext(options: ContextOptions = {}): Promise<GpuContext> {
  const key = JSON.stringify(options);
  let p = contexts.get(key);
  if (!p) contexts.set(key, (p = createContext(options)));
  return p;
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number | string): () => number {
  let a = typeof seed === 'number' ? seed >>> 0 : hashString(seed);
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** n values uniform in [lo, hi), never exactly zero, from a PRNG seeded by `seed`. */
export function randomArray(n: number, seed: number | string, lo = -1, hi = 1): Float32Array {
  const r = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (v === 0) v = 1e-3;
    out[i] = v;
  }
  return out;
}

/** ‖out − ref‖ / ‖ref‖; NaN (never passes a ≤ check) if any output is non-finite or lengths differ. */
export function relL2(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return NaN;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = out[i];
    if (!Number.isFinite(o)) return NaN;
    const d = o - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

export function maxAbsDiff(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(out[i] - ref[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/**
 * A 32-bit word that is NaN read as f32 (0x7fc07e00) and whose halves are both f16 NaNs (0x7fc0,
 * 0x7e00): a buffer filled with it is poisoned whatever dtype an op later reads it as.
 */
export const POISON_WORD = 0x7fc07e00;

/** Fills a tensor's whole buffer with POISON_WORD. */
export function poison(t: import('@ssd/tensor').Tensor): void {
  t.ctx.write(t, new Uint32Array(t.buffer.size / 4).fill(POISON_WORD), 0);
}

/**
 * Poisons the pool: leaves `count` NaN-filled free buffers of the size class an op's `bytes`-sized
 * output will take, so that an output element the op forgets to write reads back as NaN.
 */
export function poisonPool(ctx: GpuContext, bytes: number, count = 4): void {
  const ts = Array.from({ length: count }, () => ctx.empty([Math.ceil(bytes / 4)], 'u32', 'poison'));
  for (const t of ts) poison(t);
  for (const t of ts) t.dispose();
}

/** The tensor's whole buffer (its pool-class tail included), as u32 words. */
export async function readWholeBuffer(t: import('@ssd/tensor').Tensor): Promise<Uint32Array> {
  const ctx = t.ctx;
  const view = ctx.empty([t.buffer.size / 4], 'u32', 'whole');
  ctx.copyBuffer(t.buffer, 0, view.buffer, 0, t.buffer.size);
  const out = (await view.read()) as Uint32Array;
  view.dispose();
  return out;
}

/** A ByteSink that keeps what is written in memory (`bytes`, once closed). */
export class MemoryByteSink implements ByteSink {
  private parts: Uint8Array[] = [];
  bytes = new Uint8Array(0);
  constructor(readonly name = 'memory') {}
  async write(b: Uint8Array): Promise<void> {
    this.parts.push(b.slice());
  }
  async close(): Promise<void> {
    this.bytes = new Uint8Array(this.parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of this.parts) {
      this.bytes.set(p, at);
      at += p.length;
    }
  }
  async abort(): Promise<void> {
    this.parts = [];
  }
}
