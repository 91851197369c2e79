// Reductions: argmax (ties, NaN, i32 token ids as CLIP uses it), nonFiniteFlag on real NaN/±inf bit
// patterns in f32 and f16 (and the f16 padding half of an odd-length tensor), windowed on a 4 KiB
// binding limit, and stdPerSample vs float64 including offset and large-magnitude samples.
import { describe, expect, it } from 'vitest';
import { ShapeError } from '@ssd/tensor';
import { argmax, nonFiniteFlag, stdPerSample } from '../src/reduce.js';
import { prng, relL2, testContext } from '../../../testing/index.js';
import { argmaxRef, stdPerSampleRef } from './reference/reduce.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';

describe('argmax', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const shape of [[5, 1], [3, 7], [2, 77], [2, 3, 130]]) {
      const label = `argmax ${dtype} [${shape.join(',')}]`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const { t: planted, v } = input(ctx, shape, dtype, label);
        planted.dispose();
        const L = shape[shape.length - 1];
        // plant ties: every row's maximum appears twice
        const rows = v.length / L;
        if (L > 2) for (let r = 0; r < rows; r++) v[r * L + L - 1] = v[r * L + 1] = 2;
        const t = ctx.fromData(v, shape, dtype);
        const r = await runPoisoned(ctx, rows, 'i32', () => argmax(t));
        expect(r.out.shape).toEqual(shape.slice(0, -1));
        expect([...r.values]).toEqual([...argmaxRef(v, L)]);
        expect(r.tailIntact).toBe(true);
      });
    }
  }

  it('argmax i32 token ids [2,77] (CLIP: the EOS id is the largest)', async () => {
    const ids = new Int32Array(154).fill(49407); // padded with EOS
    const r = prng('ids');
    for (let b = 0; b < 2; b++) {
      ids[b * 77] = 49406;
      for (let t = 1; t < 5 + b * 3; t++) ids[b * 77 + t] = Math.floor(r() * 49000);
    }
    const out = await argmax(ctx.fromData(ids, [2, 77], 'i32')).read();
    expect([...out]).toEqual([5, 8]);
  });

  it('argmax f32: NaN wins, first NaN index; -inf rows', async () => {
    const x = new Float32Array([1, NaN, 3, NaN, -Infinity, -Infinity, -Infinity, -Infinity]);
    const out = await argmax(ctx.fromData(x, [2, 4], 'f32')).read();
    expect([...out]).toEqual([1, 0]);
  });
});

describe('nonFiniteFlag', () => {
  const specials: [string, number][] = [
    ['NaN', NaN],
    ['+inf', Infinity],
    ['-inf', -Infinity],
  ];
  it('f32: finite → 0; one NaN / ±inf anywhere → 1 (bit patterns checked)', async () => {
    const base = new Float32Array(3001).map((_, i) => Math.sin(i) * 65000);
    const clean = await nonFiniteFlag(ctx.fromData(base, [3001], 'f32')).read();
    expect([...clean]).toEqual([0]);
    for (const [name, v] of specials) {
      for (const at of [0, 1234, 3000]) {
        const x = base.slice();
        x[at] = v;
        // the bits uploaded are the real pattern (0x7fc00000 / 0x7f800000 / 0xff800000)
        const bits = new Uint32Array(x.buffer)[at];
        expect(bits, name).toBe(name === 'NaN' ? 0x7fc00000 : name === '+inf' ? 0x7f800000 : 0xff800000);
        const flag = await nonFiniteFlag(ctx.fromData(x, [3001], 'f32')).read();
        expect([...flag], `${name} at ${at}`).toEqual([1]);
      }
    }
    // a signalling-NaN payload and the largest finite value
    const snan = new Uint32Array([0x3f800000, 0x7f800001]);
    expect([...(await nonFiniteFlag(ctx.fromData(new Float32Array(snan.buffer), [2], 'f32')).read())]).toEqual([1]);
    const maxFinite = new Float32Array(new Uint32Array([0x7f7fffff, 0xff7fffff]).buffer);
    expect([...(await nonFiniteFlag(ctx.fromData(maxFinite, [2], 'f32')).read())]).toEqual([0]);
  });

  it('f16: finite (65504) → 0; NaN / ±inf halves in either half of a word → 1; the padding half is ignored', async ({ skip }) => {
    if (!ctx.f16) skip(NO_F16);
    const n = 1001; // odd: the last word's high half is padding
    const base = new Uint16Array(n).map((_, i) => (i % 2 ? 0x7bff : 0x3c00 + (i % 700))); // 65504 and finite values
    expect([...(await nonFiniteFlag(ctx.fromData(base, [n], 'f16')).read())]).toEqual([0]);
    for (const [name, bits] of [['NaN', 0x7e00], ['+inf', 0x7c00], ['-inf', 0xfc00], ['NaN payload', 0x7c01]] as const) {
      for (const at of [0, 1, 500, 1000]) {
        const x = base.slice();
        x[at] = bits;
        expect([...(await nonFiniteFlag(ctx.fromData(x, [n], 'f16')).read())], `${name} at ${at}`).toEqual([1]);
      }
    }
    // the padding half of the last word holds a NaN pattern: not an element, must not count
    const t = ctx.fromData(base, [n], 'f16');
    ctx.write(t, new Uint32Array([0x7e00_0000 | base[n - 1]]), (n - 1) * 2);
    expect([...(await nonFiniteFlag(t).read())]).toEqual([0]);
  });

  it('runs in windows on a 4 KiB binding limit', async ({ skip }) => {
    const small = await testContext({ limits: { maxStorageBufferBindingSize: 4096 } });
    const x = new Float32Array(5000).fill(1.5);
    expect([...(await nonFiniteFlag(small.fromData(x, [5000], 'f32')).read())]).toEqual([0]);
    x[4990] = NaN;
    expect([...(await nonFiniteFlag(small.fromData(x, [5000], 'f32')).read())]).toEqual([1]);
    if (!small.f16) skip(NO_F16);
    const h = new Uint16Array(5001).fill(0x3c00);
    h[4100] = 0x7c00;
    expect([...(await nonFiniteFlag(small.fromData(h, [5001], 'f16')).read())]).toEqual([1]);
  });
});

describe('stdPerSample', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    for (const [shape, lo, hi] of [
      [[2, 3], -1, 1],
      [[3, 7, 13], -1, 1],
      [[2, 4, 16, 16], -1, 1],
      [[2, 4, 9, 11], 99, 101],
      [[2, 5, 67], -3000, 3000],
    ] as const) {
      const label = `stdPerSample ${dtype} [${shape.join(',')}] x∈[${lo},${hi}]`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, shape, dtype, label, lo, hi);
        const B = shape[0];
        const r = await runPoisoned(ctx, B, 'f32', () => stdPerSample(x.t));
        expect(r.out.shape).toEqual([B]);
        expect(r.out.dtype).toBe('f32');
        // f32 statistics either way: the f16 case sees f16-rounded inputs, so f32's bound applies
        expect(relL2(r.values, stdPerSampleRef(x.v, B, x.v.length / B))).toBeLessThanOrEqual(tolerance('f32'));
        expect(r.tailIntact).toBe(true);
      });
    }
  }
  it('stdPerSample f32 [2,3000] x∈[99,101] in 4 KiB binding windows', async () => {
    const small = await testContext({ limits: { maxStorageBufferBindingSize: 4096 } });
    const x = input(small, [2, 3000], 'f32', 'std windows', 99, 101);
    const r = await runPoisoned(small, 2, 'f32', () => stdPerSample(x.t));
    expect(relL2(r.values, stdPerSampleRef(x.v, 2, 3000))).toBeLessThanOrEqual(1e-5);
  });
  it('rejects a single element per sample', () => expect(() => stdPerSample(ctx.empty([3, 1], 'f32'))).toThrow(/≥ 2 elements/));
  it('rejects rank 1', () => expect(() => stdPerSample(ctx.empty([3], 'f32'))).toThrow(ShapeError));
});
