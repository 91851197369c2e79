// The image helpers reproduce diffusers' postprocess: (x/2 + 0.5).clamp(0, 1) in f32, then numpy's
// (x * 255).round() with ties to even, RGBA with alpha 255, one image per batch entry.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '@ssd/tensor';
import { denormalize, imagesToFloat, imagesToRgba8, roundHalfEven, toRgba8 } from '@ssd/vae';
import { testContext } from '../../../testing/index.js';

const ctx = await testContext();

describe('image helpers', () => {
  it('numpy rounding: halves go to even', () => {
    expect([0.5, 1.5, 2.5, 254.5, 253.5, 0.49999997, 127.50001].map(roundHalfEven)).toEqual([0, 2, 2, 254, 254, 0, 128]);
  });
  it('denormalize clamps and maps [-1, 1] → [0, 1] in f32', () => {
    expect(Array.from(denormalize([-3, -1, 0, 0.5, 1, 7]))).toEqual([0, 0, 0.5, 0.75, 1, 1]);
    expect(Number.isNaN(denormalize([NaN])[0])).toBe(true);
  });
  it('toRgba8: a value whose ×255 is exactly k + 0.5 rounds to even', () => {
    // 0.5·255 = 127.5 → 128 (even); 1.5/255·255 rounds in f32 to 1.5 → 2
    const unit = new Float32Array([0.5, 0, 1, Math.fround(1.5 / 255), Math.fround(2.5 / 255), 0.25]);
    const img = toRgba8(unit, 2, 1);
    expect(Array.from(img.data)).toEqual([128, 0, 255, 255, roundHalfEven(Math.fround(Math.fround(1.5 / 255) * 255)), roundHalfEven(Math.fround(Math.fround(2.5 / 255) * 255)), 64, 255]);
    expect(() => toRgba8(unit, 3, 1)).toThrow(/needs 9/);
  });
  it('imagesToRgba8 / imagesToFloat split the batch of an NHWC tensor', async () => {
    const data = Float32Array.from({ length: 2 * 2 * 3 * 3 }, (_, i) => (i % 7) / 3 - 1);
    const t = ctx.fromData(data, [2, 2, 3, 3], 'f32');
    const rgba = await imagesToRgba8(t);
    const floats = await imagesToFloat(t);
    expect(rgba).toHaveLength(2);
    expect(rgba[1]).toMatchObject({ width: 3, height: 2 });
    expect(rgba[1].data[0]).toBe(roundHalfEven(Math.fround(denormalize([data[18]])[0] * 255)));
    expect(floats[0].data).toHaveLength(18);
    await expect(imagesToRgba8(ctx.empty([1, 2, 2, 4], 'f32'))).rejects.toThrow(ShapeError);
    t.dispose();
  });
});
