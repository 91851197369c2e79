// Layout ops vs index-arithmetic oracles (exact, element by element): upsampleNearest2x,
// concatChannels, concatBatch (copy path and the odd-f16 kernel path), NCHW ⇄ NHWC; awkward channel
// counts (1, 3, 7, 13, 67) and vec4/vec2/scalar paths; f32, f16 and i32; poisoned outputs.
import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, type DType } from '@ssd/tensor';
import { concatBatch, concatChannels, nchwToNhwc, nhwcToNchw, upsampleNearest2x } from '../src/layout.js';
import { testContext } from '../../../testing/index.js';
import { concatChannelsRef, nchwToNhwcRef, nhwcToNchwRef, upsampleNearest2xRef } from './reference/layout.js';
import { input, runPoisoned } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const DTYPES = ['f32', 'f16'] as const;

function expectExact(got: ArrayLike<number>, ref: ArrayLike<number>): void {
  expect(got.length).toBe(ref.length);
  let bad = -1;
  for (let i = 0; i < ref.length && bad < 0; i++) if (got[i] !== ref[i]) bad = i;
  expect(bad, bad >= 0 ? `element ${bad}: ${got[bad]} vs ${ref[bad]}` : '').toBe(-1);
}

describe('upsampleNearest2x', () => {
  for (const dtype of DTYPES) {
    for (const [B, H, W, C] of [[1, 3, 5, 1], [2, 2, 3, 7], [1, 3, 2, 6], [2, 4, 4, 16], [1, 5, 3, 67]]) {
      const label = `upsampleNearest2x ${dtype} B=${B} H=${H} W=${W} C=${C}`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, [B, H, W, C], dtype, label);
        const r = await runPoisoned(ctx, x.v.length * 4, dtype, () => upsampleNearest2x(x.t));
        expect(r.out.shape).toEqual([B, 2 * H, 2 * W, C]);
        expectExact(r.values, upsampleNearest2xRef(x.v, B, H, W, C));
        expect(r.tailIntact).toBe(true);
      });
    }
  }
  it('upsampleNearest2x i32 B=1 H=2 W=2 C=3', async () => {
    const ids = Int32Array.from({ length: 12 }, (_, i) => i * 7 - 30);
    const x = ctx.fromData(ids, [1, 2, 2, 3], 'i32');
    const r = await runPoisoned(ctx, 48, 'i32', () => upsampleNearest2x(x));
    expectExact(r.values, upsampleNearest2xRef(ids, 1, 2, 2, 3));
  });
});

describe('concatChannels', () => {
  for (const dtype of DTYPES) {
    for (const [lead, ca, cb] of [[[2, 3, 5], 3, 13], [[2, 2, 2], 8, 4], [[7], 6, 2], [[1, 3, 3], 1, 67], [[2, 4, 4], 32, 16]] as const) {
      const label = `concatChannels ${dtype} [${lead.join(',')},${ca}] ++ [${lead.join(',')},${cb}]`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const a = input(ctx, [...lead, ca], dtype, label + ' a');
        const b = input(ctx, [...lead, cb], dtype, label + ' b');
        const r = await runPoisoned(ctx, a.v.length + b.v.length, dtype, () => concatChannels(a.t, b.t));
        expect(r.out.shape).toEqual([...lead, ca + cb]);
        expectExact(r.values, concatChannelsRef(a.v, ca, b.v, cb));
        expect(r.tailIntact).toBe(true);
      });
    }
  }
  it('rejects mismatched leading shapes and dtypes', () => {
    const a = ctx.empty([2, 3, 4], 'f32');
    expect(() => concatChannels(a, ctx.empty([2, 4, 4], 'f32'))).toThrow(ShapeError);
    expect(() => concatChannels(a, ctx.empty([2, 3, 4], 'i32'))).toThrow(DTypeError);
  });
});

describe('concatBatch', () => {
  const cases: [DType, number[][]][] = [
    ['f32', [[1, 3, 5], [1, 3, 5]]],
    ['f32', [[2, 7], [1, 7], [3, 7]]],
    ['f16', [[1, 4, 4], [1, 4, 4]]], // 4-byte aligned: buffer copies
    ['f16', [[1, 3], [2, 3], [1, 3]]], // odd f16 parts: placed by a kernel
  ];
  for (const [dtype, shapes] of cases) {
    const label = `concatBatch ${dtype} ${shapes.map((s) => `[${s.join(',')}]`).join(' ++ ')}`;
    it(label, async ({ skip }) => {
      if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
      const parts = shapes.map((s, k) => input(ctx, s, dtype, `${label} ${k}`));
      const total = parts.reduce((s, p) => s + p.v.length, 0);
      const r = await runPoisoned(ctx, total, dtype, () => concatBatch(parts.map((p) => p.t)));
      expect(r.out.shape).toEqual([shapes.reduce((s, x) => s + x[0], 0), ...shapes[0].slice(1)]);
      expectExact(r.values, Float64Array.from(parts.flatMap((p) => [...p.v])));
      expect(r.tailIntact).toBe(true);
    });
  }
  it('rejects mismatched trailing shapes', () => {
    expect(() => concatBatch([ctx.empty([1, 3], 'f32'), ctx.empty([1, 4], 'f32')])).toThrow(ShapeError);
  });
});

describe('NCHW ⇄ NHWC', () => {
  for (const dtype of DTYPES) {
    for (const [B, C, H, W] of [[1, 3, 5, 7], [2, 4, 8, 8], [2, 13, 3, 2]]) {
      const label = `nchwToNhwc / nhwcToNchw ${dtype} B=${B} C=${C} H=${H} W=${W}`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, [B, C, H, W], dtype, label);
        const r = await runPoisoned(ctx, x.v.length, dtype, () => nchwToNhwc(x.t));
        expect(r.out.shape).toEqual([B, H, W, C]);
        const nhwc = nchwToNhwcRef(x.v, B, C, H, W);
        expectExact(r.values, nhwc);
        expect(r.tailIntact).toBe(true);
        const back = await runPoisoned(ctx, x.v.length, dtype, () => nhwcToNchw(r.out));
        expect(back.out.shape).toEqual([B, C, H, W]);
        expectExact(back.values, nhwcToNchwRef(nhwc, B, H, W, C));
        expectExact(back.values, x.v);
        expect(back.tailIntact).toBe(true);
      });
    }
  }
  it('rejects other ranks', () => expect(() => nchwToNhwc(ctx.empty([2, 3, 4], 'f32'))).toThrow(ShapeError));
});
