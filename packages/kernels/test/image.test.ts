// relu and affine (image.ts) vs float64: odd and vec4 sizes, f32 and f16 storage, affine's mixed
// input/output dtypes (f16 → f32: TAESD's image output), poisoned outputs, and windows on a device
// whose binding limit is 4 KiB.
import { describe, expect, it } from 'vitest';
import { DTypeError, InvalidArgumentError, type DType, type GpuContext } from '@ssd/tensor';
import { affine, relu } from '../src/image.js';
import { relL2, testContext } from '../../../testing/index.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const SHAPES: number[][] = [[7], [3, 13], [2, 5, 7, 3], [1, 8, 8, 16]];

const reluRef = (v: Float32Array) => Float64Array.from(v, (x) => Math.max(x, 0));
const affineRef = (v: Float32Array, a: number, b: number) => Float64Array.from(v, (x) => Math.fround(a) * x + Math.fround(b));

describe('relu', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const shape of SHAPES) {
      const label = `relu ${dtype} [${shape.join(',')}]`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, shape, dtype, label, -3, 3);
        const r = await runPoisoned(ctx, x.v.length, dtype, () => relu(x.t));
        expect(r.out.shape).toEqual(shape);
        expect(r.out.dtype).toBe(dtype);
        expect(relL2(r.values, reluRef(x.v))).toBeLessThanOrEqual(dtype === 'f32' ? 0 : tolerance(dtype));
        expect(r.tailIntact).toBe(true);
        x.t.dispose();
        r.out.dispose();
      });
    }
  }
});

describe('affine', () => {
  const pairs: [DType, DType][] = [['f32', 'f32'], ['f16', 'f16'], ['f16', 'f32'], ['f32', 'f16']];
  for (const [inDtype, outDtype] of pairs) {
    for (const shape of SHAPES) {
      for (const [a, b] of [[2, -1], [0.5, 0.5]] as const) {
        const label = `affine ${inDtype}→${outDtype} [${shape.join(',')}] ${a}·x${b < 0 ? '' : '+'}${b}`;
        it(label, async ({ skip }) => {
          if ((inDtype === 'f16' || outDtype === 'f16') && !ctx.f16) skip(NO_F16);
          const x = input(ctx, shape, inDtype, label, -2, 2);
          const r = await runPoisoned(ctx, x.v.length, outDtype, () => affine(x.t, a, b, { outDtype }));
          expect(r.out.shape).toEqual(shape);
          expect(r.out.dtype).toBe(outDtype);
          expect(relL2(r.values, affineRef(x.v, a, b))).toBeLessThanOrEqual(tolerance(outDtype));
          expect(r.tailIntact).toBe(true);
          x.t.dispose();
          r.out.dispose();
        });
      }
    }
  }

  it('rejects non-float inputs and non-finite coefficients before recording', () => {
    const x = ctx.empty([4], 'i32');
    expect(() => relu(x)).toThrow(DTypeError);
    expect(() => affine(ctx.empty([4], 'f32'), NaN, 0)).toThrow(InvalidArgumentError);
    expect(() => affine(ctx.empty([4], 'f32'), 1, 0, { outDtype: 'i32' })).toThrow(InvalidArgumentError);
  });
});

it('relu keeps NaN and maps −inf to 0, as torch', async () => {
  for (const dtype of ['f32', 'f16'] as const) {
    if (dtype === 'f16' && !ctx.f16) continue;
    const x = ctx.fromData([NaN, -Infinity, Infinity, -2, 3, NaN, 0.5, -0.5], [8], dtype);
    const v = await relu(x).read();
    expect(Array.from(v)).toEqual([NaN, 0, Infinity, 0, 3, NaN, 0.5, 0]);
    const y = ctx.fromData([NaN, -1, 2], [3], dtype); // scalar path
    expect(Array.from(await relu(y).read())).toEqual([NaN, 0, 2]);
  }
});

describe('binding windows (maxStorageBufferBindingSize = 4 KiB)', () => {
  let small: GpuContext | undefined;
  const get = async () => (small ??= await testContext({ limits: { maxStorageBufferBindingSize: 4096 } }));
  it('relu and affine over 5,000 f32 elements run in windows', async () => {
    const c = await get();
    const x = input(c, [5000], 'f32', 'windows', -1, 1);
    const r = relu(x.t);
    expect(relL2(await r.read(), reluRef(x.v))).toBe(0);
    const a = affine(x.t, 2, -1);
    expect(relL2(await a.read(), affineRef(x.v, 2, -1))).toBeLessThanOrEqual(1e-6);
    for (const t of [x.t, r, a]) t.dispose();
  });
});
