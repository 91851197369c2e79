// How waiting on the GPU queue costs a CPU adapter: the same recorded work (a chain of GEMMs, about a
// second on lavapipe) ended three ways, interleaved run by run:
//   spin   flush + await queue.onSubmittedWorkDone() directly: dawn.node polls with setImmediate (a spin)
//   quiet  ctx.sync(): its wait polls once a millisecond (quietPolling)
//   nap    ctx.sync({ expectedMs }): sleeps 75% of the best time so far first, then the quiet wait
//   node --conditions=source --import tsx bench/kernels-dev/wait.ts [--reps 5] [--ops 24]
import { createContext } from '@ssd/tensor';
import { linear } from '../../packages/kernels/src/matmul.js';
import { median } from '../lib/timing.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const reps = Number(arg('reps', '5'));
const ops = Number(arg('ops', '24'));

const ctx = await createContext();
const dtype = ctx.f16 ? 'f16' : 'f32';
const x = ctx.fromData(new Float32Array(1024 * 1280).map((_, i) => Math.sin(i)), [1024, 1280], dtype);
const w = ctx.fromData(new Float32Array(1280 * 1280).map((_, i) => Math.cos(i) / 36), [1280, 1280], dtype);


const best: Record<string, number> = {};
async function once(mode: string): Promise<{ ms: number; cpuMs: number }> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let h = x;
  for (let i = 0; i < ops; i++) {
    const y = linear(h, w);
    if (h !== x) h.dispose();
    h = y;
  }
  if (mode === 'nap') await ctx.sync({ expectedMs: best[mode] ?? 0 });
  else if (mode === 'quiet') await ctx.sync();
  else {
    ctx.flush();
    await ctx.device.queue.onSubmittedWorkDone();
  }
  h.dispose();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  best[mode] = Math.min(best[mode] ?? Infinity, ms);
  return { ms, cpuMs: (c.user + c.system) / 1000 };
}

const modes = ['spin', 'quiet', 'nap'];
for (const m of modes) await once(m); // compile, warm up, and a first best for nap
const res: Record<string, { ms: number[]; cpu: number[] }> = Object.fromEntries(modes.map((m) => [m, { ms: [], cpu: [] }]));
for (let r = 0; r < reps; r++) {
  for (const m of modes) {
    const t = await once(m);
    res[m].ms.push(t.ms);
    res[m].cpu.push(t.cpuMs);
  }
}
const os = await import('node:os');
console.log(`${ctx.info.description} | ${ops} × linear 1024×1280×1280 ${dtype} | load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const m of modes) console.log(`${m.padEnd(9)} wall ${median(res[m].ms).toFixed(0)} ms (${res[m].ms.map((v) => v.toFixed(0)).join(' ')})  cpu ${median(res[m].cpu).toFixed(0)} ms`);
x.dispose();
w.dispose();
ctx.destroy();
