// winogradWeightTransform (the GPU's G·w·Gᵀ, used to merge LoRA deltas into Winograd layers) and the
// host's winogradWeightFromOIHW vs the float64 definition: F(2×2) and F(4×4), f32 and f16, N and C not
// multiples of 4, with and without the residual (U + G·Δ·Gᵀ). Outputs are poisoned.
import { describe, expect, it } from 'vitest';
import { f32ArrayToF16, ShapeError, type DType } from '@ssd/tensor';
import { conv2dWeightFromOIHW } from '../src/conv2d-weights.js';
import { winogradWeightTransform } from '../src/winograd-weight-gpu.js';
import { winogradWeightFromOIHW, type WinogradTile } from '../src/winograd-weights.js';
import { relL2, testContext } from '../../../testing/index.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';
import { winogradWeightRef } from './reference/winograd.js';

const ctx = await testContext();

describe('Winograd weight transform vs float64', () => {
  for (const dtype of ['f32', 'f16'] as DType[]) {
    for (const tile of [2, 4] as WinogradTile[]) {
      for (const residual of [false, true]) {
        const [N, C] = [7, 5];
        const name = `winogradWeightTransform ${dtype} F(${tile}×${tile}) N=${N} C=${C}${residual ? ' +residual' : ''}`;
        it(name, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip('adapter has no shader-f16');
          const T = (tile + 2) ** 2;
          const w = input(ctx, [N, C, 3, 3], dtype, name + ' w');
          w.t.dispose();
          const ohwi = conv2dWeightFromOIHW(w.v, [N, C, 3, 3]);
          const wt = ctx.fromData(ohwi.data, ohwi.shape, dtype, 'w');
          const res = residual ? input(ctx, [T, N, C], dtype, name + ' res') : null;
          const ref = winogradWeightRef(w.v, N, C, tile);
          if (res) for (let i = 0; i < ref.length; i++) ref[i] += res.v[i];
          const r = await runPoisoned(ctx, ref.length, dtype, () => winogradWeightTransform(wt, tile, { residual: res?.t }));
          expect(r.out.shape).toEqual([T, N, C]);
          expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
          expect(r.tailIntact).toBe(true);
          // the host transform (what nn.Conv2d loads) agrees with the same definition
          const host = winogradWeightFromOIHW(dtype === 'f16' ? f32ArrayToF16(w.v) : w.v, [N, C, 3, 3], tile);
          const hostValues = host.data instanceof Uint16Array ? (await ctx.fromData(host.data, host.shape, 'f16').read()) : host.data;
          expect(relL2(hostValues, winogradWeightRef(w.v, N, C, tile))).toBeLessThanOrEqual(tolerance(dtype));
          for (const t of [wt, res?.t, r.out]) t?.dispose();
        });
      }
    }
  }
  it('rejects a weight that is not OHWI 3×3 and a residual of another shape', () => {
    expect(() => winogradWeightTransform(ctx.empty([4, 1, 1, 3], 'f32'), 2)).toThrow(ShapeError);
    expect(() => winogradWeightTransform(ctx.empty([4, 3, 3, 3], 'f32'), 2, { residual: ctx.empty([36, 4, 3], 'f32') })).toThrow(ShapeError);
  });
});
