// groupNorm vs a float64 GroupNorm: awkward channel counts (1, 3, 7, 13, 67), groups 1/4/32, vec
// widths 1/2/4 of the stats and normalize passes, several row chunks, offset (+100) and
// large-magnitude inputs, fused SiLU, a scaled-down SDXL shape; f32 and f16; poisoned outputs.
import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, type DType } from '@ssd/tensor';
import { groupNorm } from '../src/group-norm.js';
import { relL2, testContext } from '../../../testing/index.js';
import { groupNormRef } from './reference/group-norm.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';

interface Case {
  shape: number[]; // [B, H, W, C] or [B, N, C]
  groups: number;
  /** Rows per stats/normalize invocation (default: the adapter's choice). */
  chunkRows?: number;
  silu?: boolean;
  eps?: number;
  lo?: number;
  hi?: number;
}

const CASES: Case[] = [
  { shape: [2, 5, 7, 12], groups: 4, silu: true },
  { shape: [1, 13, 1], groups: 1 },
  { shape: [2, 9, 3], groups: 1 },
  { shape: [2, 9, 3], groups: 3 },
  { shape: [1, 3, 5, 7], groups: 7 },
  { shape: [2, 11, 13], groups: 1, silu: true },
  { shape: [1, 4, 4, 67], groups: 1 },
  { shape: [2, 3, 3, 64], groups: 32, silu: true, eps: 1e-6 },
  { shape: [1, 6, 5, 40], groups: 4 },
  { shape: [1, 30, 30, 40], groups: 4 }, // several row chunks per group
  { shape: [1, 129, 129, 4], groups: 2 }, // many row chunks, Cg = 2
  { shape: [2, 5, 7, 12], groups: 4, chunkRows: 3 }, // a short last chunk
  { shape: [1, 30, 30, 40], groups: 4, chunkRows: 32, silu: true },
  { shape: [2, 5, 7, 12], groups: 4, lo: 99, hi: 101 }, // offset +100
  { shape: [1, 8, 8, 20], groups: 4, silu: true, lo: -3000, hi: 3000 }, // large magnitude
  { shape: [2, 16, 16, 320], groups: 32, silu: true }, // SDXL's first UNet block, scaled down
];

function caseName(dtype: DType, c: Case): string {
  const dims = c.shape.length === 4 ? `B=${c.shape[0]} H=${c.shape[1]} W=${c.shape[2]} C=${c.shape[3]}` : `B=${c.shape[0]} N=${c.shape[1]} C=${c.shape[2]}`;
  const range = c.lo !== undefined ? ` x∈[${c.lo},${c.hi}]` : '';
  return `groupNorm ${dtype} ${dims} G=${c.groups}${c.silu ? ' silu' : ''}${c.eps ? ` eps=${c.eps}` : ''}${range}${c.chunkRows ? ` chunkRows=${c.chunkRows}` : ''}`;
}

describe('groupNorm', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const c of CASES) {
      const name = caseName(dtype, c);
      it(name, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const C = c.shape[c.shape.length - 1];
        const B = c.shape[0];
        const N = c.shape.slice(1, -1).reduce((a, d) => a * d, 1);
        const eps = c.eps ?? 1e-5;
        const x = input(ctx, c.shape, dtype, name, c.lo, c.hi);
        const w = input(ctx, [C], dtype, name + ' w', 0.5, 1.5);
        const b = input(ctx, [C], dtype, name + ' b');
        const r = await runPoisoned(ctx, x.v.length, dtype, () => groupNorm(x.t, w.t, b.t, { groups: c.groups, eps, silu: c.silu, force: c.chunkRows ? { chunkRows: c.chunkRows } : undefined }));
        expect(r.out.shape).toEqual(c.shape);
        expect(r.out.dtype).toBe(dtype);
        const ref = groupNormRef(x.v, w.v, b.v, B, N, C, c.groups, eps, !!c.silu);
        expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
        expect(r.tailIntact).toBe(true);
        for (const t of [x.t, w.t, b.t, r.out]) t.dispose();
      });
    }
  }

  // a 4 KiB binding limit: x is processed in windows of whole chunks of one sample (chunks shrink to
  // fit); the first window of a sample computes the shift K, later windows read it back
  for (const [dtype, shape, groups, lo, hi] of [
    ['f32', [2, 20, 20, 4], 2, -1, 1],
    ['f32', [2, 20, 20, 3], 3, 99, 101], // vec1, window offsets off the 256-byte grid, offset +100
    ['f16', [1, 24, 24, 8], 4, -1, 1],
  ] as const) {
    const name = `groupNorm ${dtype} B=${shape[0]} H=${shape[1]} W=${shape[2]} C=${shape[3]} G=${groups} silu x∈[${lo},${hi}] in 4 KiB binding windows`;
    it(name, async ({ skip }) => {
      const small = await testContext({ limits: { maxStorageBufferBindingSize: 4096 } });
      if (dtype === 'f16' && !small.f16) skip(NO_F16);
      const C = shape[3];
      const x = input(small, shape, dtype, name, lo, hi);
      const w = input(small, [C], dtype, name + ' w', 0.5, 1.5);
      const b = input(small, [C], dtype, name + ' b');
      const r = await runPoisoned(small, x.v.length, dtype, () => groupNorm(x.t, w.t, b.t, { groups, eps: 1e-5, silu: true }));
      const ref = groupNormRef(x.v, w.v, b.v, shape[0], shape[1] * shape[2], C, groups, 1e-5, true);
      expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
      expect(r.tailIntact).toBe(true);
    });
  }

  it('rejects bad shapes, groups and dtypes before recording', async () => {
    const x = ctx.empty([1, 2, 2, 12], 'f32');
    const w = ctx.empty([12], 'f32');
    expect(() => groupNorm(x, w, w, { groups: 5, eps: 1e-5 })).toThrow(ShapeError);
    expect(() => groupNorm(x, ctx.empty([11], 'f32'), w, { groups: 4, eps: 1e-5 })).toThrow(/weight must have shape \[C\] = \[12\]/);
    expect(() => groupNorm(ctx.empty([12], 'f32'), w, w, { groups: 4, eps: 1e-5 })).toThrow(ShapeError);
    expect(() => groupNorm(ctx.empty([1, 2, 12], 'i32'), w, w, { groups: 4, eps: 1e-5 })).toThrow(DTypeError);
    if (ctx.f16) expect(() => groupNorm(x, ctx.empty([12], 'f16'), w, { groups: 4, eps: 1e-5 })).toThrow(DTypeError);
  });
});
