// clamp and thresholdSample (DDPM/DDIM clip_sample and dynamic thresholding) vs float64, poisoned
// outputs, awkward sample sizes, ties, samples whose quantile lands below 1 and above sample_max_value.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@ssd/tensor';
import { clamp, quantileRanks, thresholdSample } from '../src/threshold.js';
import { relL2, testContext } from '../../../testing/index.js';
import { clampRef, thresholdRef } from './reference/threshold.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();

describe('clamp', () => {
  for (const n of [1, 7, 1000, 4099]) {
    it(`clamp f32 n=${n} [-0.3, 0.5]`, async () => {
      const { t, v } = input(ctx, [n], 'f32', `clamp ${n}`);
      const r = await runPoisoned(ctx, n, 'f32', () => clamp(t, -0.3, 0.5));
      expect(relL2(r.values, clampRef(v, -0.3, 0.5))).toBeLessThanOrEqual(tolerance('f32'));
      expect(r.tailIntact).toBe(true);
    });
  }
  it('refuses lo > hi', () => {
    const { t } = input(ctx, [4], 'f32', 'bad clamp');
    expect(() => clamp(t, 1, -1)).toThrow(InvalidArgumentError);
  });
});

describe('thresholdSample', () => {
  const cases: [string, number[], number, number, number][] = [
    // label, shape, ratio, sample_max_value, input scale (values uniform in ±scale)
    ['B=2 4×5×7 ratio 0.995 max 1.5 (quantile between 1 and max)', [2, 5, 7, 4], 0.995, 1.5, 1.3],
    ['B=1 one element', [1, 1], 0.995, 1, 3],
    ['B=3 13×3×1 ratio 0.5 (quantile < 1 → s = 1)', [3, 13, 3, 1], 0.5, 2, 1],
    ['B=2 P=4096 ratio 0.9 max 2 (large values → s = max)', [2, 16, 16, 16], 0.9, 2, 8],
    ['B=2 P=1001 ratio 0.37 max 3', [2, 1001], 0.37, 3, 4],
  ];
  for (const [label, shape, ratio, maxValue, scale] of cases) {
    it(`thresholdSample f32 ${label}`, async () => {
      const { t, v } = input(ctx, shape, 'f32', label, -scale, scale);
      const B = shape[0];
      const P = v.length / B;
      const r = await runPoisoned(ctx, v.length, 'f32', () => thresholdSample(t, ratio, maxValue));
      const ref = thresholdRef(v, B, P, ratio, maxValue);
      expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(1e-6);
      expect(r.tailIntact).toBe(true);
    });
  }
  it('ties: many equal magnitudes at the quantile', async () => {
    const v = new Float32Array(2 * 300).map((_, i) => ((i % 7) - 3) * 0.75 * (i % 2 ? 1 : -1) + (i === 5 ? 0.1 : 0));
    const t = ctx.fromData(v, [2, 300], 'f32');
    const out = await thresholdSample(t, 0.8, 1.8).read();
    expect(relL2(out, thresholdRef(v, 2, 300, 0.8, 1.8).out)).toBeLessThanOrEqual(1e-6);
  });
  it('quantile ranks follow torch (float32 position)', () => {
    expect(quantileRanks(0.995, 16384)).toEqual({ lo: 16301, hi: 16302, weight: Math.fround(Math.fround(Math.fround(0.995) * 16383) - 16301) });
    expect(quantileRanks(1, 5)).toEqual({ lo: 4, hi: 4, weight: 0 });
  });
  it('sample_max_value < 1 gives s = sample_max_value, as torch.clamp(min=1, max<1) does', async () => {
    const { t, v } = input(ctx, [2, 50], 'f32', 'max below one', -2, 2);
    const out = await thresholdSample(t, 0.9, 0.5).read();
    expect(relL2(out, thresholdRef(v, 2, 50, 0.9, 0.5).out)).toBeLessThanOrEqual(1e-6);
  });
  it('refuses a ratio outside [0, 1] and sample_max_value ≤ 0', () => {
    const { t } = input(ctx, [1, 8], 'f32', 'bad');
    expect(() => thresholdSample(t, 1.5, 2)).toThrow(/ratio/);
    expect(() => thresholdSample(t, 0.9, 0)).toThrow(/sample_max_value/);
  });
});
