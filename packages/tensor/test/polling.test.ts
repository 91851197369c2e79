// quietPolling: while a GPU wait runs in Node, Dawn's setImmediate polling becomes a 1 ms timer (its
// native callbacks only), and the original setImmediate is back when the last wait ends; ctx.sync's
// wait goes through it and Dawn's binding really polls through the global (else the quiet wait would
// silently be a spin again).
import { describe, expect, it } from 'vitest';
import { createContext, quietPolling } from '@ssd/tensor';
import { add } from '../src/ops/add.js';

describe('quietPolling', () => {
  it('defers native setImmediate callbacks while waits run, passes JS ones through, restores the original after the last', async () => {
    const original = globalThis.setImmediate;
    let release!: () => void;
    const outer = quietPolling(new Promise<void>((r) => (release = r)));
    expect(globalThis.setImmediate).not.toBe(original);
    const inner = quietPolling(Promise.resolve(7));
    expect(await inner).toBe(7);
    expect(globalThis.setImmediate).not.toBe(original); // the outer wait still runs
    const { promisify } = await import('node:util');
    expect(await promisify(globalThis.setImmediate)('value')).toBe('value'); // util.promisify.custom kept
    const ran: string[] = [];
    await new Promise<void>((r) => globalThis.setImmediate(() => (ran.push('js'), r())));
    expect(ran).toEqual(['js']);
    // a native function (what dawn.node passes) goes to a timer: it runs, after the timers phase
    const nativeFn = Math.random.bind(null) as unknown as () => void; // bound functions print as native code
    expect(Function.prototype.toString.call(nativeFn)).toContain('[native code]');
    const handle = globalThis.setImmediate(nativeFn);
    expect(typeof (handle as unknown as { hasRef?: unknown }).hasRef).toBe('function'); // a Timeout or Immediate, never undefined
    release();
    await outer;
    expect(globalThis.setImmediate).toBe(original);
    await expect(quietPolling(Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(globalThis.setImmediate).toBe(original);
  });

  it("ctx.sync waits through it, and Dawn's binding polls through the global setImmediate", async () => {
    const ctx = await createContext();
    const x = ctx.fromData(new Float32Array(1 << 20).map((_, i) => i % 7), [1 << 20]);
    const realTimeout = globalThis.setTimeout;
    let nativePolls = 0;
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      if (Function.prototype.toString.call(fn).includes('[native code]')) nativePolls++;
      return realTimeout(fn, ms, ...rest);
    }) as typeof setTimeout;
    try {
      let h = x;
      for (let i = 0; i < 40; i++) {
        const y = add(h, x);
        if (h !== x) h.dispose();
        h = y;
      }
      await ctx.sync();
      h.dispose();
    } finally {
      globalThis.setTimeout = realTimeout;
    }
    expect(nativePolls).toBeGreaterThan(0);
    x.dispose();
    ctx.destroy();
  });
});
