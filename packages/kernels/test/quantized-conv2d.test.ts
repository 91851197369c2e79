// conv2d with a QuantizedWeight (OIHW rows in GGUF's order, dequantized in the kernel) vs the float64
// definition over the dequantized weight: every block format on the subgroup path, the portable and
// tiled kernels, f16 and f32, padding, stride 2 with Downsample2D's asymmetric padding, the fused 2×
// upsampling, per-sample bias, 1×1 convs (pointwise and strided), rows of 288 values (K-quant rows that
// end inside a super-block), row chunks past the binding limit, and refusals. Outputs are poisoned.
import { describe, expect, it } from 'vitest';
import { createContext, ShapeError, type DType, type GpuContext, type QuantType } from '@ssd/tensor';
import { conv2d, type Conv2dOptions } from '../src/conv2d.js';
import type { GemmTile, GemmVariant } from '../src/matmul.js';
import type { Activation } from '../src/shader.js';
import { relL2, testContext } from '../../../testing/index.js';
import { conv2dRef } from './reference/conv2d.js';
import { input, runPoisoned } from './poisoned-run.js';
import { QUANT_TOL, QUANT_TYPES, quantPaths, randomQuantized } from './quantized-weight.js';

const ctx = await testContext();
const PATHS = quantPaths(ctx);

interface Case {
  type: QuantType;
  B: number;
  H: number;
  W: number;
  C: number;
  N: number;
  k: number;
  stride?: 1 | 2;
  padding?: [number, number, number, number];
  upsample?: 1 | 2;
  bias?: 'per-channel' | 'per-sample';
  activation?: Activation;
  residual?: boolean;
}

function name(dtype: DType, path: string, c: Case): string {
  const geo = `${c.k}×${c.k}${c.stride === 2 ? ' s2' : ''}${c.padding ? ` pad ${c.padding.join(',')}` : ''}${c.upsample === 2 ? ' up2' : ''}`;
  const epi = [c.bias && (c.bias === 'per-sample' ? 'sample-bias' : 'bias'), c.activation, c.residual && 'residual'].filter(Boolean).join('+');
  return `conv2d ${c.type} ${dtype} ${path} x=${c.B}×${c.H}×${c.W}×${c.C} N=${c.N} ${geo}${epi ? ' ' + epi : ''}`;
}

async function check(g: GpuContext, label: string, dtype: DType, c: Case, opts: { force?: GemmVariant; tile?: GemmTile }): Promise<void> {
  const xShape = [c.B, c.H, c.W, c.C];
  const wShape = [c.N, c.C, c.k, c.k];
  const x = input(g, xShape, dtype, label + ' x');
  const { w, values } = randomQuantized(g, c.type, wShape, label + ' w');
  const bias = c.bias ? input(g, c.bias === 'per-sample' ? [c.B, c.N] : [c.N], dtype, label + ' bias') : null;
  const geo = { stride: c.stride ?? 1, padding: c.padding ?? ([0, 0, 0, 0] as const), upsample: c.upsample ?? 1 };
  const shape = conv2dRef(new Float64Array(x.v.length), xShape, new Float64Array(values.length), wShape, geo).shape;
  const res = c.residual ? input(g, shape, dtype, label + ' residual') : null;
  const o: Conv2dOptions = { ...opts, ...geo, bias: bias?.t, activation: c.activation, residual: res?.t };
  const r = await runPoisoned(g, shape.reduce((a, d) => a * d, 1), dtype, () => conv2d(x.t, w, o));
  expect(r.out.shape).toEqual(shape);
  const ref = conv2dRef(x.v, xShape, values, wShape, { ...geo, bias: bias?.v, perSampleBias: c.bias === 'per-sample', activation: c.activation, residual: res?.v });
  expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(QUANT_TOL[dtype as 'f32' | 'f16']);
  expect(r.tailIntact).toBe(true);
  for (const t of [x.t, w, bias?.t, res?.t, r.out]) t?.dispose();
}

const skipped = (dtype: DType, path?: GemmVariant) => (dtype === 'f16' && !ctx.f16) || (path === 'subgroups' && !ctx.subgroups);
const FULL = { bias: 'per-channel', activation: 'silu', residual: true } as const;
const PAD1: [number, number, number, number] = [1, 1, 1, 1];
// C = 32: rows of 288 values (9 groups); N·288 must be whole 256-value blocks for the K-quants (N = 8k)
const base = (type: QuantType): Case => ({ type, B: 2, H: 5, W: 6, C: 32, N: type.endsWith('_K') ? 24 : 13, k: 3, padding: PAD1, ...FULL });

describe('conv2d with a quantized weight', () => {
  for (const type of QUANT_TYPES) {
    const c = base(type);
    const label = name('f16', 'subgroups', c);
    it(label, async ({ skip }) => {
      if (skipped('f16', 'subgroups')) skip();
      await check(ctx, label, 'f16', c, { force: 'subgroups', tile: PATHS[1].tile });
    });
  }

  for (const type of ['q8_0', 'q4_K'] as const) {
    for (const path of PATHS) {
      for (const dtype of ['f32', 'f16'] as const) {
        if (path.name === 'subgroups' && dtype === 'f16') continue; // above
        const c = base(type);
        const label = name(dtype, path.name, c);
        it(label, async ({ skip }) => {
          if (skipped(dtype, path.name)) skip();
          await check(ctx, label, dtype, c, { force: path.name, tile: path.tile });
        });
      }
    }
  }

  // geometry: Downsample2D (stride 2, pad bottom/right), Upsample2D's fused 2×, a time-embedding bias,
  // 1×1 pointwise (the linear kernel) and strided 1×1 (the conv kernel with one tap)
  const geometry: Case[] = [
    { ...base('q8_0'), H: 7, W: 6, stride: 2, padding: [0, 0, 1, 1] },
    { ...base('q5_0'), H: 3, W: 4, upsample: 2 },
    { ...base('q4_K'), bias: 'per-sample' },
    { ...base('q8_0'), k: 1, padding: undefined, C: 64 },
    { ...base('q6_K'), k: 1, stride: 2, padding: undefined, C: 64, N: 8 },
  ];
  for (const c of geometry) {
    const label = name('f16', 'subgroups', c);
    it(label, async ({ skip }) => {
      if (skipped('f16', 'subgroups')) skip();
      await check(ctx, label, 'f16', c, { force: 'subgroups', tile: PATHS[1].tile });
    });
  }

  it('conv2d q4_1 f16 on the subgroup kernel\'s fallback (a workgroup wider than the subgroup)', async ({ skip }) => {
    if (skipped('f16', 'subgroups')) skip();
    const lanes = 2 * (ctx.info.subgroupMaxSize ?? 8);
    await check(ctx, 'conv2d q4_1 fallback', 'f16', base('q4_1'), { force: 'subgroups', tile: { m: lanes, n: 1, lanes } });
  });

  it('the adapter default (variant and tile) on an SDXL-like layer: x 1×8×8×64 → 32, 3×3 q8_0', async ({ skip }) => {
    if (skipped('f16')) skip();
    await check(ctx, 'conv2d q8_0 default', 'f16', { ...base('q8_0'), B: 1, H: 8, W: 8, C: 64, N: 32 }, {});
  });

  it('rejects weights that do not fit before recording', () => {
    const x = input(ctx, [1, 4, 4, 32], 'f32', 'bad x').t;
    const w = randomQuantized(ctx, 'q8_0', [4, 32, 3, 3], 'bad w').w;
    const before = ctx.pipelineCount;
    expect(() => conv2d(x, { ...w, shape: [4, 16, 3, 3] })).toThrow(ShapeError); // Cin ≠ x's
    expect(() => conv2d(x, { ...w, shape: [4, 32, 9] })).toThrow(ShapeError); // not OIHW
    const x12 = input(ctx, [1, 4, 4, 12], 'f32', 'bad x12').t;
    expect(() => conv2d(x12, { ...w, shape: [4, 12, 1, 1] })).toThrow(/multiple of 32/);
    expect(ctx.pipelineCount).toBe(before);
    for (const t of [x, x12, w]) t.dispose();
  });
});

describe('quantized conv2d past maxStorageBufferBindingSize', () => {
  const small = createContext({ limits: { maxStorageBufferBindingSize: 4096 } });
  it('conv2d q8_0 f32 portable x=1×20×5×32 N=5 3×3 pad 1 in chunks of image rows', async () => {
    // x is 12,800 bytes: chunks of output rows, each binding the input rows it reads
    await check(await small, 'chunked conv', 'f32', { ...base('q8_0'), B: 1, H: 20, W: 5, N: 5 }, { force: 'portable', tile: PATHS[0].tile });
  });
});
