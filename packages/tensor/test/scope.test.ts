// TensorScope: owned tensors are freed on dispose (also after a throw and across awaits); kept ones survive.
import { describe, expect, it } from 'vitest';
import { TensorScope, withScope, withScopeSync } from '@ssd/tensor';
import { testContext } from '../../../testing/index.js';

describe('TensorScope', () => {
  it('frees what it owns, keeps what leaves, and chains with then()', async () => {
    const ctx = await testContext();
    const before = ctx.memory.liveBytes;
    const s = new TensorScope();
    const a = s.track(ctx.fromData(new Float32Array([1, 2, 3, 4]), [4]));
    const b = s.then(a, (x) => x.reshape([2, 2]));
    expect(a.disposed).toBe(true); // the view b still holds the buffer
    expect(Array.from((await b.read()) as Float32Array)).toEqual([1, 2, 3, 4]);
    const kept = s.keep(ctx.fromData(new Float32Array([5]), [1]));
    await new Promise((r) => setTimeout(r, 1));
    s.dispose();
    expect(b.disposed).toBe(true);
    expect(kept.disposed).toBe(false);
    expect(Array.from((await kept.read()) as Float32Array)).toEqual([5]);
    kept.dispose();
    expect(ctx.memory.liveBytes).toBe(before);
  });

  it('withScope frees everything when the function throws', async () => {
    const ctx = await testContext();
    const before = ctx.memory.liveBytes;
    let t: import('@ssd/tensor').Tensor | undefined;
    await expect(
      withScope(async (s) => {
        t = s.track(ctx.fromData(new Float32Array(16), [16]));
        await Promise.resolve();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(t!.disposed).toBe(true);
    expect(ctx.memory.liveBytes).toBe(before);
  });

  it('withScopeSync returns the kept result and frees the rest, also when the function throws', async () => {
    const ctx = await testContext();
    const before = ctx.memory.liveBytes;
    let scratch: import('@ssd/tensor').Tensor | undefined;
    const kept = withScopeSync((s) => {
      scratch = s.track(ctx.fromData(new Float32Array([1, 2]), [2]));
      return s.keep(s.then(scratch, (x) => x.reshape([1, 2])));
    });
    expect(scratch!.disposed).toBe(true);
    expect(Array.from((await kept.read()) as Float32Array)).toEqual([1, 2]);
    kept.dispose();
    expect(() =>
      withScopeSync((s) => {
        scratch = s.track(ctx.fromData(new Float32Array(16), [16]));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(scratch!.disposed).toBe(true);
    expect(ctx.memory.liveBytes).toBe(before);
  });
});
