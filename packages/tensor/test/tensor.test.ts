// Tensors on the GPU: round trips for every dtype, the pool and its accounting, scopes, views, the
// recording path (add + copy), and feature reporting.
import { describe, expect, it } from 'vitest';
import { createContext, f16BitsToF32, f32ToF16Bits, InvalidArgumentError, sizeClass, withScope, type GpuContext } from '@ssd/tensor';
import { add } from '../src/ops/add.js';
import { POISON_WORD, poisonPool, randomArray, readWholeBuffer, testContext } from '../../../testing/index.js';

const isLavapipe = (ctx: GpuContext) => /llvmpipe|lavapipe/i.test(ctx.info.description + ctx.info.device);

describe('tensor round trips', () => {
  it('f32, f16, i32, u32 read back what was written', async () => {
    const ctx = await testContext();
    const f = randomArray(1037, 'rt-f32', -1000, 1000);
    expect([...(await ctx.fromData(f, [1037], 'f32').read())]).toEqual([...f]);
    const h = await ctx.fromData(f, [1037], 'f16').read();
    expect([...h]).toEqual([...f].map((v) => f16BitsToF32(f32ToF16Bits(v))));
    const bits = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000]);
    expect([...(await ctx.fromData(bits, [5], 'f16').read())]).toEqual([1, -2, 65504, 2 ** -24, -0]);
    const i = Int32Array.from({ length: 513 }, (_, k) => (k * 7919) % 100003 - 50000);
    expect([...(await ctx.fromData(i, [513], 'i32').read())]).toEqual([...i]);
    const u = Uint32Array.from({ length: 3 }, (_, k) => 0xffffffff - k);
    expect([...(await ctx.fromData(u, [3], 'u32').read())]).toEqual([...u]);
    expect([...(await ctx.fromData([], [0], 'f32').read())]).toEqual([]);
  });

  it('rejects data that does not fit the shape', async () => {
    const ctx = await testContext();
    expect(() => ctx.fromData([1, 2, 3], [2, 2])).toThrow(InvalidArgumentError);
    expect(() => ctx.empty([2, -1], 'f32')).toThrow(/invalid shape/);
  });
});

describe('pool and accounting', () => {
  it('1,000 tensors of mixed sizes: live bytes back to 0, pool bounded and reused', async () => {
    const ctx = await createContext({ maxPooledBytes: 8 << 20 });
    const before = ctx.memory;
    expect(before.liveBytes).toBe(0);
    const sizes = [1, 3, 17, 255, 256, 1000, 4099, 65536, 100_000, 300_001];
    let maxLive = 0;
    const alive: { dispose(): void }[] = [];
    for (let i = 0; i < 1000; i++) {
      const n = sizes[(i * 7) % sizes.length];
      alive.push(ctx.empty([n], i % 3 === 0 ? 'f16' : 'f32'));
      maxLive = Math.max(maxLive, ctx.memory.liveBytes);
      if (alive.length > 20) alive.shift()!.dispose();
    }
    for (const t of alive) t.dispose();
    const m = ctx.memory;
    expect(m.liveBytes).toBe(0);
    expect(m.liveBuffers).toBe(0);
    expect(m.pooledBytes).toBeLessThanOrEqual(8 << 20);
    expect(m.peakLiveBytes).toBe(maxLive);
    // reuse: the same class comes back from the pool without growing the allocation
    const a = ctx.empty([300_001], 'f32');
    const allocated = ctx.memory.allocatedBytes;
    a.dispose();
    const b = ctx.empty([300_000], 'f32');
    expect(ctx.memory.allocatedBytes).toBe(allocated);
    b.dispose();
    ctx.trim();
    expect(ctx.memory.pooledBytes).toBe(0);
    ctx.destroy();
  });

  it('size classes waste at most 12.5% above 64 KiB', () => {
    for (const n of [70_000, 131_073, 1e6, 123_456_789]) {
      const c = sizeClass(n);
      expect(c).toBeGreaterThanOrEqual(n);
      expect(c / n).toBeLessThanOrEqual(1.125 + 1e-9);
    }
  });

  it('a memory budget refuses an allocation up front with DeviceLimitError', async () => {
    const ctx = await createContext({ memoryBudgetBytes: 1 << 20 });
    const a = ctx.empty([100_000], 'f32');
    expect(() => ctx.empty([300_000], 'f32')).toThrow(/memory budget/);
    a.dispose();
    ctx.empty([200_000], 'f32').dispose();
    ctx.destroy();
  });
});

describe('scopes and views', () => {
  it('a scope disposes intermediates and keeps what leaves it', async () => {
    const ctx = await testContext();
    const x = ctx.fromData([1, 2, 3, 4], [4]);
    const live0 = ctx.memory.liveBuffers;
    const y = await withScope((s) => {
      const t1 = s.track(add(x, x));
      const t2 = s.track(add(t1, x));
      return s.keep(s.track(add(t2, t2)));
    });
    expect(ctx.memory.liveBuffers).toBe(live0 + 1);
    expect([...(await y.read())]).toEqual([6, 12, 18, 24]);
    expect(x.disposed).toBe(false);
    y.dispose();
    await expect(withScope((s) => { s.track(add(x, x)); throw new Error('boom'); })).rejects.toThrow('boom');
    expect(ctx.memory.liveBuffers).toBe(live0);
  });

  it('reshape shares the buffer until the last view is disposed', async () => {
    const ctx = await testContext();
    const t = ctx.fromData([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = t.reshape([3, -1]);
    expect(v.shape).toEqual([3, 2]);
    const live = ctx.memory.liveBytes;
    t.dispose();
    expect(ctx.memory.liveBytes).toBe(live);
    expect([...(await v.read())]).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(ctx.memory.liveBytes).toBe(live - v.storage.buffer.size);
    expect(() => v.buffer).toThrow(/after dispose/);
    expect(() => ctx.fromData([1, 2], [2]).reshape([3])).toThrow(InvalidArgumentError);
  });
});

describe('recording', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`add ${dtype} at an awkward size writes every element and nothing past it`, async () => {
      const ctx = await testContext();
      if (dtype === 'f16' && !ctx.f16) return; // covered by the forced-f32 test below
      const n = 70_001; // several workgroups, not a multiple of the workgroup size
      const a = randomArray(n, `add-a-${dtype}`);
      const b = randomArray(n, `add-b-${dtype}`);
      const ta = ctx.fromData(a, [n], dtype);
      const tb = ctx.fromData(b, [n], dtype);
      poisonPool(ctx, n * (dtype === 'f16' ? 2 : 4));
      const out = add(ta, tb);
      const got = await out.read();
      const round = (v: number) => (dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(v)) : v);
      for (let i = 0; i < n; i++) {
        const want = round(Math.fround(round(a[i]) + round(b[i])));
        if (got[i] !== want) throw new Error(`element ${i}: ${got[i]} ≠ ${want}`);
      }
      // the pool-class tail beyond the tensor still holds the poison
      const whole = await readWholeBuffer(out);
      const firstTailWord = Math.ceil(out.byteSize / 4);
      for (let w = firstTailWord; w < whole.length; w++) expect(whole[w]).toBe(POISON_WORD);
      for (const t of [ta, tb, out]) t.dispose();
    });
  }

  it('batches many ops into few submits and matches op-by-op submission', async () => {
    const ctx = await testContext();
    const x = ctx.fromData(randomArray(1000, 'batch'), [1000]);
    const chain = (flushEach: boolean) =>
      withScope(async (s) => {
        let y = x;
        for (let i = 0; i < 600; i++) {
          y = s.track(add(y, x));
          if (flushEach) ctx.flush();
        }
        return y.read();
      });
    const batched = await chain(false);
    const stepwise = await chain(true);
    expect([...batched]).toEqual([...stepwise]);
  });

  it('clone copies through a recorded buffer copy, ordered after the op that wrote the source', async () => {
    const ctx = await testContext();
    const x = ctx.fromData([1, 2, 3], [3]);
    const y = add(x, x);
    const z = ctx.clone(y);
    y.dispose(); // its buffer goes back to the pool and is reused right away
    const w = add(x, ctx.fromData([100, 100, 100], [3]));
    expect([...(await z.read())]).toEqual([2, 4, 6]);
    expect([...(await w.read())]).toEqual([101, 102, 103]);
  });

  it('a small write after recorded work is ordered after it (pool reuse hazard)', async () => {
    const ctx = await testContext();
    const x = ctx.fromData([1, 2, 3, 4], [4]);
    const y = add(x, x); // recorded, not submitted
    const sum = add(y, x);
    y.dispose(); // y's buffer back to the pool while the add that reads it is unsubmitted
    const fresh = ctx.fromData([9, 9, 9, 9], [4]); // takes y's buffer: must not clobber it early
    expect([...(await sum.read())]).toEqual([3, 6, 9, 12]);
    expect([...(await fresh.read())]).toEqual([9, 9, 9, 9]);
  });
});

describe('profiling', () => {
  it('times every dispatch with timestamp queries when the adapter has them', async () => {
    const ctx = await createContext();
    if (!ctx.timestampQuery) return console.warn('skipped: no timestamp-query');
    const x = ctx.fromData(randomArray(100_000, 'prof'), [100_000]);
    ctx.startProfiling();
    const y = add(add(x, x), x);
    expect([...(await y.read())].slice(0, 3).length).toBe(3);
    const times = await ctx.stopProfiling();
    expect(times.map((t) => t.label)).toEqual(['add', 'add']);
    for (const t of times) expect(t.ms).toBeGreaterThanOrEqual(0);
    // results are the same with and without profiling
    expect([...(await add(add(x, x), x).read())]).toEqual([...(await y.read())]);
    ctx.destroy();
  });
});

describe('device info', () => {
  it('reports the adapter, its features and limits (shader-f16 and subgroups on lavapipe)', async () => {
    const ctx = await testContext();
    expect(ctx.info.description.length).toBeGreaterThan(0);
    expect(ctx.info.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);
    expect(ctx.info.limits.maxBufferSize).toBeGreaterThanOrEqual(256 << 20);
    if (isLavapipe(ctx)) {
      expect(ctx.info.features).toContain('shader-f16');
      expect(ctx.info.features).toContain('subgroups');
      expect(ctx.f16 && ctx.subgroups).toBe(true);
      expect(ctx.info.limits.maxStorageBufferBindingSize).toBe(128 << 20);
      expect(ctx.info.limits.maxBufferSize).toBeGreaterThan(1 << 30); // the adapter's best, not the default 256 MiB
    }
  });

  it('with shader-f16 disabled the context reports f32 only and still runs the smoke op', async () => {
    const ctx = await createContext({ disableFeatures: ['shader-f16'] });
    expect(ctx.f16).toBe(false);
    expect(ctx.info.features).not.toContain('shader-f16');
    const y = add(ctx.fromData([1.5, 2], [2]), ctx.fromData([0.25, -4], [2]));
    expect([...(await y.read())]).toEqual([1.75, -2]);
    ctx.destroy();
  });
});
