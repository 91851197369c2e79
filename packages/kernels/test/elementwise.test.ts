// Elementwise ops vs float64: unary maps, NumPy-broadcast add/mul (rank 1..6, vec4 and scalar paths,
// [B,C] over NHWC as [B,1,1,C]), GEGLU, combine (mixed f16/f32), guidance and cast; f32 and f16;
// poisoned outputs. A chain recorded in one submit vs one submit per op (same bits). Then the same
// ops on a device whose binding limit is 4 KiB, so that they run in windows, and the
// DeviceLimitError of ops that cannot.
import { describe, expect, it } from 'vitest';
import { DeviceLimitError, DTypeError, f16BitsToF32, f32ToF16Bits, ShapeError, type DType, type GpuContext } from '@ssd/tensor';
import { add, geglu, gelu, mul, scale, silu } from '../src/elementwise.js';
import { cast, combine, guidance } from '../src/combine.js';
import { groupNorm } from '../src/group-norm.js';
import { relL2, testContext } from '../../../testing/index.js';
import { broadcastRef, combineRef, gegluRef, geluRef, geluTanhRef, guidanceRef, siluRef, unaryRef } from './reference/elementwise.js';
import { input, runPoisoned, tolerance } from './poisoned-run.js';

const ctx = await testContext();
const NO_F16 = 'adapter has no shader-f16';
const DTYPES = ['f32', 'f16'] as const;
const size = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

describe('unary', () => {
  const ops = [
    ['silu', (t: Parameters<typeof silu>[0]) => silu(t), siluRef],
    ['gelu', (t: Parameters<typeof silu>[0]) => gelu(t), geluRef],
    ['gelu tanh', (t: Parameters<typeof silu>[0]) => gelu(t, 'tanh'), geluTanhRef],
    ['scale 0.18215', (t: Parameters<typeof silu>[0]) => scale(t, 0.18215), (v: number) => v * Math.fround(0.18215)],
  ] as const;
  for (const dtype of DTYPES) {
    for (const [name, op, ref] of ops) {
      for (const [shape, lo, hi] of [[[3, 7], -1, 1], [[2, 8, 8, 12], -6, 6]] as const) {
        const label = `${name} ${dtype} [${shape.join(',')}] x∈[${lo},${hi}]`;
        it(label, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
          const x = input(ctx, shape, dtype, label, lo, hi);
          const r = await runPoisoned(ctx, x.v.length, dtype, () => op(x.t));
          expect(r.out.shape).toEqual(shape);
          expect(relL2(r.values, unaryRef(x.v, ref))).toBeLessThanOrEqual(tolerance(dtype));
          expect(r.tailIntact).toBe(true);
          x.t.dispose();
          r.out.dispose();
        });
      }
    }
  }
});

describe('add / mul with broadcasting', () => {
  const pairs: [number[], number[]][] = [
    [[2, 5, 7, 3], [2, 1, 1, 3]],
    [[2, 4, 4, 8], [2, 1, 1, 8]], // vec4 along C
    [[13], [13]],
    [[4, 64], [4, 64]],
    [[5, 7], [1]],
    [[6, 8], [8]],
    [[4, 1], [4, 8]], // a splatted along the vec4 axis
    [[3, 1, 5], [1, 4, 1]],
    [[2, 3, 4, 5, 2, 7], [1, 3, 1, 5, 1, 7]], // rank 6
  ];
  for (const dtype of DTYPES) {
    for (const [opName, op, f] of [['add', add, (x: number, y: number) => x + y], ['mul', mul, (x: number, y: number) => x * y]] as const) {
      for (const [sa, sb] of pairs) {
        const label = `${opName} ${dtype} [${sa.join(',')}] [${sb.join(',')}]`;
        it(label, async ({ skip }) => {
          if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
          const a = input(ctx, sa, dtype, label + ' a');
          const b = input(ctx, sb, dtype, label + ' b');
          const ref = broadcastRef(a.v, sa, b.v, sb, f);
          const r = await runPoisoned(ctx, ref.out.length, dtype, () => op(a.t, b.t));
          expect(r.out.shape).toEqual(ref.shape);
          expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(tolerance(dtype));
          expect(r.tailIntact).toBe(true);
          for (const t of [a.t, b.t, r.out]) t.dispose();
        });
      }
    }
  }

  it('add f32 [B,C] over NHWC as [B,1,1,C]: B=2 H=3 W=5 C=12', async () => {
    const x = input(ctx, [2, 3, 5, 12], 'f32', 'nhwc x');
    const emb = input(ctx, [2, 12], 'f32', 'nhwc emb');
    const view = emb.t.reshape([2, 1, 1, 12]);
    const r = await runPoisoned(ctx, x.v.length, 'f32', () => add(x.t, view));
    const ref = broadcastRef(x.v, [2, 3, 5, 12], emb.v, [2, 1, 1, 12], (p, q) => p + q);
    expect(relL2(r.values, ref.out)).toBeLessThanOrEqual(1e-5);
    expect(r.tailIntact).toBe(true);
    expect(() => add(x.t, emb.t)).toThrow(ShapeError); // [2,3,5,12] + [2,12] does not broadcast
  });

  it('rejects mixed dtypes and non-float tensors', async () => {
    const a = ctx.empty([4], 'f32');
    expect(() => add(a, ctx.empty([4], 'i32'))).toThrow(DTypeError);
    expect(() => mul(ctx.empty([4], 'u32'), a)).toThrow(DTypeError);
  });
});

describe('geglu', () => {
  for (const dtype of DTYPES) {
    for (const shape of [[3, 14], [2, 5, 16]]) {
      const label = `geglu ${dtype} [${shape.join(',')}]`;
      it(label, async ({ skip }) => {
        if (dtype === 'f16' && !ctx.f16) skip(NO_F16);
        const x = input(ctx, shape, dtype, label, -3, 3);
        const F = shape[shape.length - 1] / 2;
        const rows = size(shape) / (2 * F);
        const r = await runPoisoned(ctx, rows * F, dtype, () => geglu(x.t));
        expect(r.out.shape).toEqual([...shape.slice(0, -1), F]);
        expect(relL2(r.values, gegluRef(x.v, rows, F))).toBeLessThanOrEqual(tolerance(dtype));
        expect(r.tailIntact).toBe(true);
      });
    }
  }
  it('rejects an odd last axis', () => expect(() => geglu(ctx.empty([2, 7], 'f32'))).toThrow(ShapeError));
});

describe('combine / guidance / cast', () => {
  const combos: { dtypes: DType[]; out?: DType; shape: number[] }[] = [
    { dtypes: ['f32'], shape: [67] },
    { dtypes: ['f32', 'f32'], shape: [2, 4, 5, 8] },
    { dtypes: ['f32', 'f16', 'f32'], out: 'f32', shape: [3, 13] },
    { dtypes: ['f16', 'f32', 'f16', 'f16'], out: 'f16', shape: [2, 4, 5, 8] },
  ];
  for (const c of combos) {
    const outDtype = c.out ?? c.dtypes[0];
    const label = `combine ${c.dtypes.join('+')}→${outDtype} [${c.shape.join(',')}]`;
    it(label, async ({ skip }) => {
      if ([...c.dtypes, outDtype].includes('f16') && !ctx.f16) skip(NO_F16);
      const xs = c.dtypes.map((d, k) => input(ctx, c.shape, d, `${label} ${k}`));
      const coefs = [1, -0.75, 0.3125, 2.5];
      const r = await runPoisoned(ctx, size(c.shape), outDtype, () => combine(xs.map((x, k) => [x.t, coefs[k]] as const), { outDtype: c.out }));
      expect(r.out.dtype).toBe(outDtype);
      const ref = combineRef(xs.map((x, k) => [x.v, coefs[k]]));
      expect(relL2(r.values, ref)).toBeLessThanOrEqual(tolerance(outDtype));
      expect(r.tailIntact).toBe(true);
    });
  }

  for (const [dtype, outDtype, shape] of [
    ['f32', 'f32', [2, 3, 5]],
    ['f32', 'f32', [4, 4, 8, 8]],
    ['f16', 'f16', [4, 4, 8, 8]],
    ['f16', 'f32', [2, 7, 3]],
  ] as const) {
    const label = `guidance ${dtype}→${outDtype} [${shape.join(',')}] g=7.5`;
    it(label, async ({ skip }) => {
      if ((dtype === 'f16' || outDtype === 'f16') && !ctx.f16) skip(NO_F16);
      const x = input(ctx, shape, dtype, label);
      const r = await runPoisoned(ctx, x.v.length / 2, outDtype, () => guidance(x.t, 7.5, { outDtype }));
      expect(r.out.shape).toEqual([shape[0] / 2, ...shape.slice(1)]);
      expect(relL2(r.values, guidanceRef(x.v, 7.5))).toBeLessThanOrEqual(tolerance(outDtype));
      expect(r.tailIntact).toBe(true);
    });
  }

  for (const n of [7, 1024]) {
    it(`cast f32→f16→f32 n=${n}: round to nearest even, exact back`, async ({ skip }) => {
      if (!ctx.f16) skip(NO_F16);
      const x = input(ctx, [n], 'f32', `cast ${n}`, -70000, 70000);
      x.v[0] = 1 + 2 ** -11; // a tie: rounds to even (1.0)
      x.v[1] = 65504;
      x.v[2] = 2 ** -20; // subnormal in f16
      ctx.write(x.t, x.v, 0);
      const h = await runPoisoned(ctx, n, 'f16', () => cast(x.t, 'f16'));
      const expected = Array.from(x.v, (v) => f16BitsToF32(f32ToF16Bits(v)));
      // |x| > 65520 overflows: WGSL leaves the value of an out-of-range conversion to the implementation
      const inRange = (i: number) => Math.abs(x.v[i]) < 65520;
      for (let i = 0; i < n; i++) if (inRange(i)) expect(h.values[i]).toBe(expected[i]);
      expect(h.tailIntact).toBe(true);
      const back = await runPoisoned(ctx, n, 'f32', () => cast(h.out, 'f32'));
      for (let i = 0; i < n; i++) if (inRange(i)) expect(back.values[i]).toBe(expected[i]);
      expect(back.tailIntact).toBe(true);
    });
  }

  it('rejects mismatched shapes, odd batches and bad dtypes', () => {
    const a = ctx.empty([2, 4], 'f32');
    expect(() => combine([[a, 1], [ctx.empty([4, 2], 'f32'), 1]])).toThrow(ShapeError);
    expect(() => combine([])).toThrow(/1 to 4 terms/);
    expect(() => guidance(ctx.empty([3, 4], 'f32'), 5)).toThrow(ShapeError);
    expect(() => cast(ctx.empty([4], 'i32'), 'f32')).toThrow(DTypeError);
  });
});

describe('recording', () => {
  it('a chain (groupNorm+SiLU → add → geglu → combine → guidance) gives the same bits batched and submitted per op', async () => {
    const x = input(ctx, [2, 6, 6, 16], 'f32', 'chain x');
    const w = input(ctx, [16], 'f32', 'chain w');
    const emb = input(ctx, [2, 1, 1, 16], 'f32', 'chain emb');
    const run = async (flushEachOp: boolean) => {
      const step = <T>(t: T): T => {
        if (flushEachOp) ctx.flush();
        return t;
      };
      const h = step(groupNorm(x.t, w.t, w.t, { groups: 4, eps: 1e-5, silu: true }));
      const r = step(add(h, emb.t));
      const g = step(geglu(r));
      const c = step(combine([[g, 0.5], [g, 0.25]]));
      const out = step(guidance(c, 7.5));
      return new Uint32Array((await out.readBytes()).buffer.slice(0));
    };
    expect([...(await run(true))]).toEqual([...(await run(false))]);
  });
});

describe('binding windows (maxStorageBufferBindingSize = 4 KiB)', () => {
  let small: GpuContext;
  const get = async () => (small ??= await testContext({ limits: { maxStorageBufferBindingSize: 4096 } }));
  const N = 5000; // 20 kB of f32: 7 windows

  it('silu, add (flat and broadcast), mul by a scalar, combine, guidance and cast run in windows', async ({ skip }) => {
    const c = await get();
    const a = input(c, [N], 'f32', 'win a');
    const b = input(c, [N], 'f32', 'win b');
    const s = input(c, [1], 'f32', 'win s');
    const check = async (got: { values: ArrayLike<number>; tailIntact: boolean }, ref: ArrayLike<number>) => {
      expect(relL2(got.values, ref)).toBeLessThanOrEqual(1e-5);
      expect(got.tailIntact).toBe(true);
    };
    await check(await runPoisoned(c, N, 'f32', () => silu(a.t)), unaryRef(a.v, siluRef));
    await check(await runPoisoned(c, N, 'f32', () => add(a.t, b.t)), broadcastRef(a.v, [N], b.v, [N], (p, q) => p + q).out);
    await check(await runPoisoned(c, N, 'f32', () => mul(a.t, s.t)), broadcastRef(a.v, [N], s.v, [1], (p, q) => p * q).out);
    const col = input(c, [40, 1], 'f32', 'win col'); // a 6.4 kB outer sum of two small operands
    const row = input(c, [1, 40], 'f32', 'win row');
    await check(await runPoisoned(c, 1600, 'f32', () => add(col.t, row.t)), broadcastRef(col.v, [40, 1], row.v, [1, 40], (p, q) => p + q).out);
    await check(await runPoisoned(c, N, 'f32', () => combine([[a.t, 0.5], [b.t, -2]])), combineRef([[a.v, 0.5], [b.v, -2]]));
    const x2 = input(c, [2, 2501], 'f32', 'win g'); // odd half: the cond window starts mid-alignment
    await check(await runPoisoned(c, 2501, 'f32', () => guidance(x2.t, 3)), guidanceRef(x2.v, 3));
    if (!c.f16) skip(NO_F16);
    const h = await runPoisoned(c, N, 'f16', () => cast(a.t, 'f16'));
    expect(h.tailIntact).toBe(true);
    expect([...h.values]).toEqual(Array.from(a.v, (v) => f16BitsToF32(f32ToF16Bits(v))));
  });

  it('ops that cannot be windowed throw DeviceLimitError naming the limit', async () => {
    const c = await get();
    const x = c.empty([2, 10, 10, 16], 'f32'); // 12.8 kB
    const wide = c.empty([1, 2, 2, 2048], 'f32'); // one 8 kB row: not even groupNorm's smallest window fits
    const w = c.empty([2048], 'f32');
    const bias = c.empty([2, 1, 1, 16], 'f32');
    const live = c.memory.liveBytes;
    expect(() => groupNorm(wide, w, w, { groups: 32, eps: 1e-5 })).toThrow(DeviceLimitError);
    expect(() => add(x, bias)).toThrow(/maxStorageBufferBindingSize/);
    expect(c.memory.liveBytes).toBe(live); // thrown before anything was allocated
  });
});
