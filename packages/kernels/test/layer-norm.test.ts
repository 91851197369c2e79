// layerNorm vs a float64 LayerNorm: awkward widths (1, 3, 7, 13, 67), vec widths 1/2/4, forced
// lanes per row (2..64) besides the adapter's choice, offset (+100) and large-magnitude rows, a
// CLIP-like and a UNet-transformer-like shape; f32 and f16; poisoned outputs.
import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, type DType } from '@ssd/tensor';
import { layerNorm } from '../src/layer-norm.js';
import { relL2, testContext } from '../../../testing/index.js';
import { layerNormRef } from './reference/layer-norm.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';

interface Case {
  shape: number[];
  /** Lanes per row (default: the adapter's choice). */
  lanes?: number;
  eps?: number;
  lo?: number;
  hi?: number;
}

const CASES: Case[] = [
  { shape: [5, 1] },
  { shape: [2, 7, 3] },
  { shape: [3, 7] },
  { shape: [2, 5, 13] },
  { shape: [67, 67] },
  { shape: [9, 130], lanes: 2 }, // vec2
  { shape: [3, 1028], lanes: 16, eps: 1e-6 },
  { shape: [2, 3, 4100], lanes: 64 },
  { shape: [5, 67], lanes: 8 },
  { shape: [2, 77, 64] }, // CLIP-like, scaled down
  { shape: [2, 64, 320] }, // UNet transformer tokens, scaled down
  { shape: [4, 52], lo: 99, hi: 101 }, // offset +100
  { shape: [3, 37], lo: -3000, hi: 3000 }, // large magnitude
];

function caseName(dtype: DType, c: Case): string {
  const range = c.lo !== undefined ? ` x∈[${c.lo},${c.hi}]` : '';
  return `layerNorm ${dtype} [${c.shape.join(',')}]${c.lanes ? ` lanes=${c.lanes}` : ''}${c.eps ? ` eps=${c.eps}` : ''}${range}`;
}

describe('layerNorm', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const c of CASES) {
      const name = caseName(dtype, c);
      it(name, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const C = c.shape[c.shape.length - 1];
        const R = c.shape.slice(0, -1).reduce((a, d) => a * d, 1);
        const eps = c.eps ?? 1e-5;
        const x = input(ctx, c.shape, dtype, name, c.lo, c.hi);
        const w = input(ctx, [C], dtype, name + ' w', 0.5, 1.5);
        const b = input(ctx, [C], dtype, name + ' b');
        const r = await runPoisoned(ctx, x.v.length, dtype, () => layerNorm(x.t, w.t, b.t, { eps, force: c.lanes ? { lanes: c.lanes } : undefined }));
        expect(r.out.shape).toEqual(c.shape);
        const ref = layerNormRef(x.v, w.v, b.v, R, C, eps);
        expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
        expect(r.tailIntact).toBe(true);
        for (const t of [x.t, w.t, b.t, r.out]) t.dispose();
      });
    }
  }

  it('rejects bad shapes and dtypes before recording', async () => {
    const x = ctx.empty([2, 12], 'f32');
    const w = ctx.empty([12], 'f32');
    expect(() => layerNorm(x, ctx.empty([11], 'f32'), w, { eps: 1e-5 })).toThrow(ShapeError);
    expect(() => layerNorm(x, w, ctx.empty([2, 12], 'f32'), { eps: 1e-5 })).toThrow(ShapeError);
    expect(() => layerNorm(ctx.empty([2, 12], 'i32'), w, w, { eps: 1e-5 })).toThrow(DTypeError);
    expect(() => layerNorm(x, w, w, { eps: NaN })).toThrow(/eps/);
  });
});
