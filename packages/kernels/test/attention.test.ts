// attention vs float64 softmax(q·kᵀ·scale)·v: token counts that are not multiples of any tile (1, 7,
// 13, 67, 77, 130), Nq ≠ Nk, 77-key cross-attention, heads 1/2/5 at head dims 13 (no vector loads),
// 40, 64, 80, 128 and 512 (one head; split in parts whose partial scores meet in workgroup memory),
// the causal mask, batch 2, q/k/v read in place from a packed [B, N, 3C] projection, a custom scale,
// f32 and f16, on the portable kernel and the subgroup kernel (at the adapter's subgroup size, at
// half of it — a workgroup inside one subgroup — and at twice it, which must take the in-kernel
// fallback). Outputs are poisoned; every element is checked. Small tiles keep lavapipe's shader
// compile time down (seconds each); the default tile (what models get) has its own case, whose
// unrolled kernel takes lavapipe ~30–60 s to compile once per machine (Mesa's shader cache keeps it).
import { describe, expect, it } from 'vitest';
import { createContext, DeviceLimitError, DTypeError, ShapeError, type DType, type Tensor } from '@ssd/tensor';
import { attention, chooseAttentionVariant, type AttentionOptions, type AttentionTile, type AttentionVariant } from '../src/attention.js';
import { relL2, testContext } from '../../../testing/index.js';
import { attentionRef } from './reference/attention.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const NO_SUBGROUPS = 'adapter has no subgroups';
const sg = ctx.info.subgroupMinSize ?? 8;

interface Path {
  name: string;
  force?: AttentionVariant;
  tile?: AttentionTile;
}
const PATHS: Path[] = [
  { name: 'portable', force: 'portable', tile: { rows: 2, keyBlock: 16 } },
  { name: 'subgroups', force: 'subgroups', tile: { rows: 1 } },
];

/** The test tile for a head dim: parts of ≤ 40 channels (the default is ≤ 64), so that the unrolled subgroup kernel compiles in seconds. */
function testTile(path: Path, D: number): AttentionTile | undefined {
  if (path.force !== 'subgroups') return path.tile;
  let parts = Math.ceil(D / 40);
  while (D % parts) parts++;
  return { ...path.tile, parts };
}

interface Case {
  B: number;
  Nq: number;
  Nk: number;
  H: number;
  D: number;
  causal?: boolean;
  /** q, k, v read from one [B, N, 3·H·D] tensor at channel offsets 0, C, 2C (self-attention only) */
  packed?: boolean;
  scale?: number;
}

function caseName(dtype: DType, path: string, c: Case): string {
  const extra = [c.causal && 'causal', c.packed && 'packed-qkv', c.scale !== undefined && `scale=${c.scale}`].filter(Boolean).join(' ');
  return `attention ${dtype} ${path} B=${c.B} Nq=${c.Nq} Nk=${c.Nk} H=${c.H} D=${c.D}${extra ? ' ' + extra : ''}`;
}

/** Runs one case and checks it against float64; returns the output values. */
async function check(name: string, dtype: DType, c: Case, opts: Pick<AttentionOptions, 'force' | 'tile'>, seed = name): Promise<Float32Array> {
  const C = c.H * c.D;
  const owned: Tensor[] = [];
  let q, k, v;
  if (c.packed) {
    const x = input(ctx, [c.B, c.Nq, 3 * C], dtype, seed);
    owned.push(x.t);
    [q, k, v] = [0, C, 2 * C].map((channelOffset) => ({ t: { tensor: x.t, channelOffset }, ref: { data: x.v, stride: 3 * C, offset: channelOffset } }));
  } else {
    [q, k, v] = (['q', 'k', 'v'] as const).map((n) => {
      const x = input(ctx, [c.B, n === 'q' ? c.Nq : c.Nk, C], dtype, `${seed} ${n}`);
      owned.push(x.t);
      return { t: x.t, ref: { data: x.v, stride: C, offset: 0 } };
    });
  }
  const o: AttentionOptions = { ...opts, heads: c.H, headDim: c.D, causal: c.causal, scale: c.scale };
  const r = await runPoisoned(ctx, c.B * c.Nq * C, dtype, () => attention(q.t, k.t, v.t, o));
  expect(r.out.shape).toEqual([c.B, c.Nq, C]);
  expect(r.out.dtype).toBe(dtype);
  const ref = attentionRef(q.ref, k.ref, v.ref, c.B, c.Nq, c.Nk, c.H, c.D, c.scale ?? 1 / Math.sqrt(c.D), !!c.causal);
  expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
  expect(r.tailIntact).toBe(true);
  for (const t of [...owned, r.out]) t.dispose();
  return r.values as Float32Array;
}

// Each distinct (variant, head dim, dtype, load width) is one lavapipe compile, so the cases share
// head dims: 64 (the SDXL family and CLIP), 40, 80, 128, 512 (the VAE), 13 (vec1). The subgroup
// kernel runs them in parts of ≤ 40 channels (64 → 2 × 32, 512 → 16 × 32), which exercises the
// partial-score exchange; the default tile (parts of ≤ 64) has its own case.
const SHAPES: Case[] = [
  { B: 1, Nq: 1, Nk: 1, H: 1, D: 64 },
  { B: 2, Nq: 67, Nk: 77, H: 2, D: 64 },
  { B: 1, Nq: 130, Nk: 7, H: 1, D: 64, scale: 0.3 },
  { B: 2, Nq: 77, Nk: 77, H: 2, D: 64, causal: true, packed: true },
  { B: 2, Nq: 13, Nk: 7, H: 5, D: 40 },
  { B: 1, Nq: 67, Nk: 67, H: 5, D: 40, causal: true, packed: true },
  { B: 1, Nq: 67, Nk: 67, H: 2, D: 80, causal: true },
  { B: 1, Nq: 7, Nk: 130, H: 2, D: 128 },
  { B: 1, Nq: 67, Nk: 67, H: 1, D: 512 },
  { B: 2, Nq: 13, Nk: 7, H: 1, D: 13, causal: true },
];
// f16: the packed vec8 loads (64, 40), the P = 2 split (80) and the scalar path (13)
const SHAPES_F16: Case[] = [
  { B: 2, Nq: 67, Nk: 77, H: 2, D: 64 },
  { B: 2, Nq: 77, Nk: 77, H: 2, D: 64, causal: true, packed: true },
  { B: 1, Nq: 67, Nk: 67, H: 2, D: 80, causal: true },
  { B: 2, Nq: 13, Nk: 7, H: 1, D: 13, causal: true },
];

describe('attention', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const path of PATHS) {
      for (const c of dtype === 'f32' ? SHAPES : SHAPES_F16) {
        const name = caseName(dtype, path.name, c);
        it(name, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
          if (path.force === 'subgroups' && !ctx.subgroups) skip(NO_SUBGROUPS);
          await check(name, dtype, c, { force: path.force, tile: testTile(path, c.D) });
        });
      }
    }
  }

  // the subgroup kernel built for lane counts that are not the adapter's subgroup size: half (the
  // workgroup is part of one subgroup: broadcasts stay valid) and double (a group of LANES spans two
  // subgroups: the kernel must take its in-kernel portable fallback)
  for (const lanes of [sg / 2, sg * 2]) {
    if (lanes < 1 || lanes !== Math.floor(lanes)) continue;
    const c: Case = { B: 2, Nq: 67, Nk: 13, H: 2, D: 16, causal: true };
    const name = caseName('f32', `subgroups lanes=${lanes}`, c);
    it(name, async ({ skip }) => {
      if (!ctx.subgroups) skip(NO_SUBGROUPS);
      await check(name, 'f32', c, { force: 'subgroups', tile: { rows: 1, lanes } });
    });
  }

  // the default tile (what models get on this adapter) at a scaled-down SDXL-like shape, checked
  // against float64 and against the portable kernel
  for (const dtype of ['f32', 'f16'] as const) {
    const c: Case = { B: 2, Nq: 256, Nk: 256, H: 2, D: 64 };
    const name = caseName(dtype, `${chooseAttentionVariant(ctx)} default tile vs portable`, c);
    it(name, async ({ skip }) => {
      if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
      // one default-tile compile per run of this file: f16 where the adapter has it
      if (dtype === 'f32' && ctx.f16) skip('the default tile is compiled once, in f16, on this adapter');
      const fast = await check(name, dtype, c, {});
      const portable = await check(name, dtype, c, { force: 'portable', tile: PATHS[0].tile }, name);
      expect(relL2(fast, portable)).toBeLessThanOrEqual(tolerance(dtype));
    });
  }

  it('submit-per-op and batched runs agree bit for bit', async () => {
    const [q, k, v] = ['q', 'k', 'v'].map((n) => input(ctx, [1, 13, 64], 'f32', `agree ${n}`).t);
    const opts: AttentionOptions = { heads: 1, ...PATHS[0] };
    const batched = [attention(q, k, v, opts), attention(q, k, v, opts)];
    const x = await batched[0].read();
    const y = await batched[1].read();
    const single = attention(q, k, v, opts);
    await ctx.sync();
    const z = await single.read();
    expect(Array.from(x)).toEqual(Array.from(y));
    expect(Array.from(x)).toEqual(Array.from(z));
    for (const t of [q, k, v, single, ...batched]) t.dispose();
  });

  it('rejects bad shapes, dtypes and options before recording', () => {
    const q = ctx.empty([2, 5, 8], 'f32');
    const kv = ctx.empty([2, 7, 8], 'f32');
    expect(() => attention(q, kv, ctx.empty([2, 6, 8], 'f32'), { heads: 2 })).toThrow(ShapeError);
    expect(() => attention(q, ctx.empty([1, 7, 8], 'f32'), kv, { heads: 2 })).toThrow(ShapeError);
    expect(() => attention(q, kv, kv, { heads: 3 })).toThrow(/headDim/);
    expect(() => attention(ctx.empty([5, 8], 'f32'), kv, kv, { heads: 2 })).toThrow(ShapeError);
    expect(() => attention({ tensor: q, channelOffset: 4 }, kv, kv, { heads: 2 })).toThrow(/headDim/);
    expect(() => attention({ tensor: q, channelOffset: 4 }, kv, kv, { heads: 2, headDim: 4 })).toThrow(/channelOffset 4/);
    expect(() => attention(q, ctx.empty([2, 0, 8], 'f32'), ctx.empty([2, 0, 8], 'f32'), { heads: 2 })).toThrow(ShapeError);
    expect(() => attention(ctx.empty([2, 5, 8], 'i32'), kv, kv, { heads: 2 })).toThrow(DTypeError);
    if (ctx.f16) expect(() => attention(q, ctx.empty([2, 7, 8], 'f16'), kv, { heads: 2 })).toThrow(DTypeError);
  });
});

describe('attention past maxStorageBufferBindingSize', () => {
  it('throws a DeviceLimitError naming the op and the tensor', async () => {
    const small = await createContext({ limits: { maxStorageBufferBindingSize: 4096 } });
    const q = small.empty([1, 40, 64], 'f32', 'q');
    const kv = small.empty([1, 4, 64], 'f32', 'kv');
    expect(() => attention(q, kv, kv, { heads: 1 })).toThrow(DeviceLimitError);
    expect(() => attention(q, kv, kv, { heads: 1 })).toThrow(/attention: q \[1, 40, 64\] f32/);
    small.destroy();
  });
});
