// matmul / linear vs float64: awkward M, K, N (1, 3, 7, 13, 63, 65, 67, 129; K and N not multiples of
// 4), batched, shared B (a Linear weight) and shared A, every epilogue (bias, each activation, residual),
// f32 and f16, and every variant — portable register tiles, subgroup broadcast (at the adapter's size,
// at a smaller workgroup and at one wider than the subgroup, which takes the fallback path), and the
// workgroup-tiled GPU kernel — on the same cases. Outputs are poisoned; every element is checked.
// Small tiles keep lavapipe's shader compile time down; the default tiles get their own cases.
import { describe, expect, it } from 'vitest';
import { createContext, DeviceLimitError, DTypeError, ShapeError, type DType } from '@ssd/tensor';
import { linear, matmul, type MatmulOptions } from '../src/matmul.js';
import { chooseGemmVariant, type GemmTile } from '../src/gemm.js';
import type { GemmVariant } from '../src/gemm-wgsl.js';
import { ACTIVATIONS, type Activation } from '../src/shader.js';
import { relL2, testContext } from '../../../testing/index.js';
import { matmulRef } from './reference/matmul.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const NO_SUBGROUPS = 'adapter has no subgroups';

/** A variant and tile as the tests run it: small tiles compile fast on lavapipe. */
interface Path {
  name: string;
  force: GemmVariant;
  tile?: GemmTile;
}
const sg = ctx.info.subgroupMinSize ?? 8;
const PATHS: Path[] = [
  { name: 'portable', force: 'portable', tile: { m: 2, n: 2, lanes: 8 } },
  { name: 'subgroups', force: 'subgroups', tile: { m: sg, n: 1, lanes: sg } },
  { name: 'tiled', force: 'tiled', tile: { m: 32, n: 32 } },
];

interface Case {
  M: number;
  K: number;
  N: number;
  /** batches of a ([B, M, K]); with sharedB the weight is [N, K] */
  batches?: number;
  sharedA?: boolean;
  sharedB?: boolean;
  bias?: boolean;
  activation?: Activation;
  residual?: boolean;
}

function caseName(op: string, dtype: DType, path: string, c: Case): string {
  const batch = c.batches ? ` B=${c.batches}${c.sharedA ? ' shared-a' : ''}${c.sharedB ? ' shared-b' : ''}` : '';
  const epi = [c.bias && 'bias', c.activation && c.activation !== 'none' && c.activation, c.residual && 'residual'].filter(Boolean).join('+');
  return `${op} ${dtype} ${path}${batch} M=${c.M} K=${c.K} N=${c.N}${epi ? ' ' + epi : ''}`;
}

/** Runs one case through matmul (or linear when unbatched and flagged) and checks it against float64. */
async function check(name: string, dtype: DType, c: Case, opts: Pick<MatmulOptions, 'force' | 'tile'>, viaLinear = false): Promise<void> {
  const B = c.batches ?? 0;
  const aShape = B && !c.sharedA ? [B, c.M, c.K] : [c.M, c.K];
  const bShape = B && !c.sharedB ? [B, c.N, c.K] : [c.N, c.K];
  const outShape = B ? [B, c.M, c.N] : [c.M, c.N];
  const a = input(ctx, aShape, dtype, name + ' a');
  const b = input(ctx, bShape, dtype, name + ' b');
  const bias = c.bias ? input(ctx, [c.N], dtype, name + ' bias') : null;
  const res = c.residual ? input(ctx, outShape, dtype, name + ' residual') : null;
  const o: MatmulOptions = { ...opts, bias: bias?.t, activation: c.activation, residual: res?.t };
  const size = outShape.reduce((x, d) => x * d, 1);
  const r = await runPoisoned(ctx, size, dtype, () => (viaLinear ? linear(a.t, b.t, o) : matmul(a.t, b.t, o)));
  expect(r.out.shape).toEqual(outShape);
  expect(r.out.dtype).toBe(dtype);
  const ref = matmulRef(a.v, b.v, c.M, c.K, c.N, { batches: B || 1, sharedA: c.sharedA, sharedB: !B || c.sharedB, bias: bias?.v, activation: c.activation, residual: res?.v });
  expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
  expect(r.tailIntact).toBe(true);
  for (const t of [a.t, b.t, bias?.t, res?.t, r.out]) t?.dispose();
}

// Every path runs these. The full epilogue (bias + SiLU + residual) is on by default: each distinct
// epilogue, load width and variant is a separate lavapipe compile (~0.5 s), so the cases share them —
// vec1 (K % 4 ≠ 0), vec4, f16's vec8 (K % 8 = 0), and one plain kernel.
const FULL = { bias: true, activation: 'silu', residual: true } as const;
const SHAPES: Case[] = [
  { M: 1, K: 1, N: 1, ...FULL },
  { M: 13, K: 67, N: 65, ...FULL },
  { M: 67, K: 36, N: 129, ...FULL },
  { M: 63, K: 64, N: 13, ...FULL },
  { M: 13, K: 36, N: 7, batches: 2, ...FULL },
  { M: 9, K: 20, N: 11, batches: 3, sharedB: true, ...FULL },
  { M: 7, K: 64, N: 10, batches: 2, sharedA: true, ...FULL },
  { M: 65, K: 12, N: 7 },
  { M: 3, K: 36, N: 5 },
];
// f16 (every load width on the portable kernel: vec4 K = 36, vec8 K = 64, vec1 K = 7; the
// others share the load code and run their widest)
const SHAPES_F16: Case[] = [
  { M: 63, K: 64, N: 13, ...FULL },
  { M: 7, K: 64, N: 10, batches: 2, ...FULL },
  { M: 67, K: 36, N: 129, ...FULL },
  { M: 3, K: 7, N: 5, ...FULL },
];

describe('matmul', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const path of PATHS) {
      const shapes = dtype === 'f32' ? SHAPES.filter((c) => path.force === 'portable' || c.bias) : path.force === 'portable' ? SHAPES_F16 : SHAPES_F16.slice(0, 2);
      for (const c of shapes) {
        const name = caseName('matmul', dtype, path.name, c);
        it(name, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
          if (path.force === 'subgroups' && !ctx.subgroups) skip(NO_SUBGROUPS);
          await check(name, dtype, c, { force: path.force, tile: path.tile });
        });
      }
    }
  }

  // each activation (with bias; 'none' with the residual alone), on one path
  for (const activation of ACTIVATIONS) {
    const c: Case = activation === 'none' ? { M: 13, K: 36, N: 67, residual: true } : { M: 13, K: 36, N: 67, bias: true, activation };
    const name = caseName('linear', 'f32', 'portable', c);
    it(name, () => check(name, 'f32', c, { force: 'portable', tile: PATHS[0].tile }, true));
  }

  // the subgroup kernel at a workgroup narrower than the subgroup (still one subgroup) and wider
  // (two subgroups: the fallback path)
  for (const lanes of [sg / 2, sg * 2]) {
    if (lanes < 1 || lanes !== Math.floor(lanes)) continue;
    const c: Case = { M: 35, K: 36, N: 21, ...FULL };
    const name = caseName('matmul', 'f32', `subgroups lanes=${lanes}`, c);
    it(name, async ({ skip }) => {
      if (!ctx.subgroups) skip(NO_SUBGROUPS);
      await check(name, 'f32', c, { force: 'subgroups', tile: { m: lanes * 2, n: 2, lanes } });
    });
  }

  // the default tiles (what models get on this adapter) at scaled-down SDXL-like sizes:
  // 2 × 77 tokens through a projection, and the GPU kernel's own default tile
  for (const [dtype, force] of [['f32', undefined], ['f16', undefined], ['f32', 'portable'], ['f32', 'tiled']] as const) {
    const c: Case = { M: 154, K: 64, N: 260, ...FULL };
    const name = caseName('linear', dtype, `${force ?? chooseGemmVariant(ctx)} default tile`, c);
    it(name, async ({ skip }) => {
      if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
      await check(name, dtype, c, { force }, true);
    });
  }

  it('batched and submit-per-op runs agree bit for bit', async () => {
    const a = input(ctx, [2, 19, 36], 'f32', 'agree a');
    const b = input(ctx, [23, 36], 'f32', 'agree b');
    const opts: MatmulOptions = { force: 'portable', tile: PATHS[0].tile };
    const batched = [matmul(a.t, b.t, opts), matmul(a.t, b.t, opts)];
    const x = await batched[0].read();
    const y = await batched[1].read();
    const single = matmul(a.t, b.t, opts);
    await ctx.sync();
    const z = await single.read();
    expect(Array.from(x)).toEqual(Array.from(y));
    expect(Array.from(x)).toEqual(Array.from(z));
    for (const t of [a.t, b.t, single, ...batched]) t.dispose();
  });

  it('rejects bad shapes and dtypes before recording', () => {
    const a = ctx.empty([3, 8], 'f32');
    const w = ctx.empty([5, 8], 'f32');
    expect(() => linear(a, ctx.empty([5, 7], 'f32'))).toThrow(ShapeError);
    expect(() => linear(a, w, { bias: ctx.empty([4], 'f32') })).toThrow(/bias must have shape \[N\] = \[5\]/);
    expect(() => linear(a, w, { residual: ctx.empty([3, 4], 'f32') })).toThrow(ShapeError);
    expect(() => matmul(ctx.empty([2, 3, 8], 'f32'), ctx.empty([3, 5, 8], 'f32'))).toThrow(ShapeError);
    expect(() => matmul(ctx.empty([8], 'f32'), w)).toThrow(ShapeError);
    expect(() => linear(ctx.empty([3, 8], 'i32'), w)).toThrow(DTypeError);
    if (ctx.f16) expect(() => linear(a, ctx.empty([5, 8], 'f16'))).toThrow(DTypeError);
  });
});

describe('matmul past maxStorageBufferBindingSize', () => {
  // 4 KiB bindings: A, out and residual are split into row chunks bound as windows
  const small = createContext({ limits: { maxStorageBufferBindingSize: 4096 } });

  for (const path of PATHS) {
    it(`linear f32 ${path.name} M=150 K=36 N=20 bias+silu+residual in row chunks`, async ({ skip }) => {
      const c = await small;
      if (path.force === 'subgroups' && !c.subgroups) skip(NO_SUBGROUPS);
      const a = input(c, [150, 36], 'f32', 'chunk a'); // 21,600 bytes
      const w = input(c, [20, 36], 'f32', 'chunk w');
      const bias = input(c, [20], 'f32', 'chunk bias');
      const res = input(c, [150, 20], 'f32', 'chunk res'); // 12,000 bytes
      const r = await runPoisoned(c, 150 * 20, 'f32', () => linear(a.t, w.t, { ...FULL, bias: bias.t, residual: res.t, force: path.force, tile: path.tile }));
      const ref = matmulRef(a.v, w.v, 150, 36, 20, { sharedB: true, bias: bias.v, activation: 'silu', residual: res.v });
      expect(relL2(r.values, ref)).toBeLessThanOrEqual(1e-5);
      expect(r.tailIntact).toBe(true);
    });
  }

  it('a weight past the limit is a DeviceLimitError naming the op and the tensor', async () => {
    const c = await small;
    const a = c.empty([4, 64], 'f32', 'x');
    const w = c.empty([20, 64], 'f32', 'big weight'); // 5,120 bytes
    expect(() => linear(a, w, { force: 'portable', tile: PATHS[0].tile })).toThrow(DeviceLimitError);
    expect(() => linear(a, w, { force: 'portable', tile: PATHS[0].tile })).toThrow(/linear.*big weight/);
  });

  it('a single row past the limit is a DeviceLimitError', async () => {
    const c = await small;
    const a = c.empty([2, 1100], 'f32', 'wide x'); // one row is 4,400 bytes
    const w = c.empty([1, 1100], 'f32', 'w');
    expect(() => linear(a, w, { force: 'portable' })).toThrow(DeviceLimitError);
  });
});

