// softmax vs float64: row lengths 1, 7, 63, 64, 65, 77, 1000 (shorter and longer than the workgroup),
// ranks 1–4, inputs in [-1, 1], offset by +100, and of large magnitude (±3·10⁴ in f32, ±6·10⁴ in f16,
// where exp of the raw values would overflow); f32 and f16; outputs poisoned, every element checked.
import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, type DType } from '@ssd/tensor';
import { softmax } from '../src/softmax.js';
import { relL2, testContext } from '../../../testing/index.js';
import { softmaxRef } from './reference/attention.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';

const SHAPES: number[][] = [[1], [7], [3, 63], [2, 64], [5, 65], [2, 3, 77], [2, 1, 3, 13], [3, 1000]];
const RANGES: { name: string; lo: (d: DType) => number; hi: (d: DType) => number }[] = [
  { name: '[-1,1]', lo: () => -1, hi: () => 1 },
  { name: '+100', lo: () => 99, hi: () => 101 },
  { name: 'large', lo: (d) => (d === 'f16' ? -6e4 : -3e4), hi: (d) => (d === 'f16' ? 6e4 : 3e4) },
];

describe('softmax', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const shape of SHAPES) {
      for (const range of RANGES) {
        if (range.name !== '[-1,1]' && shape.length < 2) continue;
        const name = `softmax ${dtype} [${shape.join(', ')}] ${range.name}`;
        it(name, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
          const x = input(ctx, shape, dtype, name, range.lo(dtype), range.hi(dtype));
          const n = shape[shape.length - 1];
          const r = await runPoisoned(ctx, x.v.length, dtype, () => softmax(x.t));
          expect(r.out.shape).toEqual(shape);
          const ref = softmaxRef(x.v, x.v.length / n, n);
          expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(dtype));
          expect(r.tailIntact).toBe(true);
          x.t.dispose();
          r.out.dispose();
        });
      }
    }
  }

  it('rejects integer tensors and scalars', () => {
    expect(() => softmax(ctx.empty([4], 'i32'))).toThrow(DTypeError);
    expect(() => softmax(ctx.empty([], 'f32'))).toThrow(ShapeError);
  });
});
