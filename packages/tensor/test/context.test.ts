// Faults become typed errors on the next call — never a crash or a hang: device loss, GPU validation
// errors, WGSL compile errors, the binding-size guard.
import { describe, expect, it } from 'vitest';
import { createContext, DeviceLimitError, DeviceLostError, GpuError, KernelCompileError, prologue } from '@ssd/tensor';
import { add } from '../src/ops/add.js';

describe('device loss', () => {
  it('device.destroy() mid-work: a pending read and the next op reject with DeviceLostError', async () => {
    const ctx = await createContext();
    const x = ctx.fromData(new Float32Array(1 << 16).fill(1), [1 << 16]);
    const y = add(x, x);
    ctx.device.destroy();
    await expect(y.read()).rejects.toBeInstanceOf(DeviceLostError);
    expect(() => add(x, x)).toThrow(DeviceLostError);
    await expect(ctx.sync()).rejects.toBeInstanceOf(DeviceLostError);
    // a fresh context works
    const ctx2 = await createContext();
    expect([...(await add(ctx2.fromData([1], [1]), ctx2.fromData([2], [1])).read())]).toEqual([3]);
    ctx2.destroy();
  });

  it('ctx.destroy() makes later calls throw DeviceLostError', async () => {
    const ctx = await createContext();
    ctx.destroy();
    expect(() => ctx.empty([4], 'f32')).toThrow(DeviceLostError);
  });
});

describe('GPU errors', () => {
  it('a validation error surfaces as GpuError at the next call', async () => {
    const ctx = await createContext();
    // a buffer without STORAGE usage bound as storage is a validation error inside Dawn
    const pipeline = ctx.kernel('test.copy', { v: 1 }, () =>
      prologue({}) + '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0; }',
    );
    const bad = ctx.device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_DST });
    ctx.dispatch({ pipeline, bindings: [{ buffer: bad }], workgroups: [1], label: 'bad' });
    await expect(ctx.sync()).rejects.toBeInstanceOf(GpuError);
    // the error was reported once; the context keeps working
    expect([...(await add(ctx.fromData([1], [1]), ctx.fromData([1], [1])).read())]).toEqual([2]);
    ctx.destroy();
  });

  it('a WGSL compile error is a KernelCompileError naming the kernel and the line', async () => {
    const ctx = await createContext();
    ctx.kernel('test.broken', { v: 2 }, () => prologue({}) + '@compute @workgroup_size(1) fn main() { let x: f32 = undefined_thing; }');
    let err: unknown;
    try {
      await ctx.sync();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelCompileError);
    expect((err as Error).message).toMatch(/test\.broken/);
    expect((err as Error).message).toMatch(/undefined_thing/);
    ctx.destroy();
  });
});

describe('binding limit guard', () => {
  it('a binding larger than maxStorageBufferBindingSize throws DeviceLimitError naming op, tensor and limit', async () => {
    const ctx = await createContext({ limits: { maxStorageBufferBindingSize: 4096 } });
    expect(ctx.limits.maxStorageBufferBindingSize).toBe(4096);
    const small = ctx.fromData(new Float32Array(1024), [1024]);
    add(small, small).dispose(); // exactly 4 KiB: fine
    const big = ctx.fromData(new Float32Array(1025), [1025]);
    let err: unknown;
    try {
      add(big, big);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DeviceLimitError);
    expect((err as Error).message).toMatch(/add/);
    expect((err as Error).message).toMatch(/maxStorageBufferBindingSize/);
    expect((err as Error).message).toMatch(/4096/);
    expect((err as Error).message).toMatch(/\[1025\]/);
    ctx.destroy();
  });
});
