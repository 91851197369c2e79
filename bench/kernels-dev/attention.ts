// Attention timing for development: the issue's shapes, per variant / tile / dtype.
//   node --conditions=source --import tsx bench/kernels-dev/attention.ts [--only self4096,self1024,cross77]
//        [--dtype f32,f16] [--force portable|subgroups] [--tile '{"rows":4}'] [--reps 5] [--heads 4] [--wait sync|sleep|both]
// One warm-up (includes the pipeline compile), then the median of --reps runs, each ended by
// ctx.sync() (--wait sleep: after a timer sleep, see run(); both: the two interleaved).
// FLOP = 4·B·H·Nq·Nk·D. "cpu" is GFLOP/s from the process CPU time × the core count: on a shared
// machine it shows what the kernel would do on idle cores (wall time is what counts).
// --heads N scales the head count down (say so when quoting numbers).
import { availableParallelism } from 'node:os';
import { createContext, type DType } from '@ssd/tensor';
import { attention, attentionSpec, chooseAttentionVariant, type AttentionTile, type AttentionVariant } from '../../packages/kernels/src/attention.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const cases = [
  { name: 'self4096', B: 1, Nq: 4096, Nk: 4096, H: 10, D: 64, causal: false },
  { name: 'self1024', B: 1, Nq: 1024, Nk: 1024, H: 20, D: 64, causal: false },
  { name: 'cross77', B: 1, Nq: 1024, Nk: 77, H: 20, D: 64, causal: false },
  { name: 'clip77', B: 1, Nq: 77, Nk: 77, H: 20, D: 64, causal: true },
  { name: 'vae1024', B: 1, Nq: 1024, Nk: 1024, H: 1, D: 512, causal: false },
];
const only = (arg('only', 'self4096,self1024,cross77') as string).split(',');
const dtypes = (arg('dtype', 'f32,f16') as string).split(',') as DType[];
const reps = Number(arg('reps', '5'));
const force = arg('force') as AttentionVariant | undefined;
const tile = arg('tile') ? (JSON.parse(arg('tile') as string) as AttentionTile) : undefined;
const headsOverride = arg('heads') ? Number(arg('heads')) : undefined;
const cores = availableParallelism();
const waitMode = (arg('wait', 'sync') as 'sync' | 'sleep' | 'both');

const ctx = await createContext();
console.log(`${ctx.info.description} | subgroups ${ctx.subgroups} (${ctx.info.subgroupMinSize}-${ctx.info.subgroupMaxSize}) | f16 ${ctx.f16} | default variant ${chooseAttentionVariant(ctx)}${force ? ` | forced ${force}` : ''}${tile ? ` | tile ${JSON.stringify(tile)}` : ''}`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const c of cases.filter((c) => only.includes(c.name))) {
  for (const dtype of dtypes) {
    if (dtype === 'f16' && !ctx.f16) continue;
    const H = headsOverride ?? c.H;
    const C = H * c.D;
    const fill = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311) * 0.9 + 0.05);
    const q = ctx.fromData(fill(c.B * c.Nq * C), [c.B, c.Nq, C], dtype, 'q');
    const k = ctx.fromData(fill(c.B * c.Nk * C).reverse(), [c.B, c.Nk, C], dtype, 'k');
    const v = ctx.fromData(fill(c.B * c.Nk * C).map((x) => -x), [c.B, c.Nk, C], dtype, 'v');
    const opts = { heads: H, causal: c.causal, force, tile };
    const spec = attentionSpec(ctx, dtype as 'f32' | 'f16', c.D, () => true, opts);
    let t0 = performance.now();
    attention(q, k, v, opts).dispose();
    await ctx.sync();
    const warm = performance.now() - t0;
    // one run, ended by ctx.sync(); with `sleep`, the queue is flushed and the thread sleeps through
    // ~75% of the fastest time seen so far first: dawn.node resolves onSubmittedWorkDone by polling on
    // this thread, and on a 2-core machine that poll takes a core's share from lavapipe's 2 threads
    let guess = warm;
    const run = async (sleep: boolean): Promise<{ ms: number; cpuMs: number }> => {
      const t = performance.now();
      const c0 = process.cpuUsage();
      attention(q, k, v, opts).dispose();
      if (sleep) {
        ctx.flush();
        await new Promise((r) => setTimeout(r, guess * 0.75));
      }
      await ctx.sync();
      const ms = performance.now() - t;
      guess = Math.min(guess, ms);
      const c1 = process.cpuUsage(c0);
      return { ms, cpuMs: (c1.user + c1.system) / 1000 };
    };
    const modes = waitMode === 'both' ? [false, true] : [waitMode === 'sleep'];
    for (let i = 0; i < 2; i++) await run(modes[modes.length - 1]); // settle `guess`
    const res = modes.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
    for (let i = 0; i < reps; i++) {
      // interleaved, so both modes see the same machine load
      for (const [m, sleep] of modes.entries()) {
        const r = await run(sleep);
        res[m].wall.push(r.ms);
        res[m].cpu.push(r.cpuMs);
      }
    }
    // causal: about half the keys are visited, but FLOP are counted as for the full product
    const flop = 4 * c.B * H * c.Nq * c.Nk * c.D;
    const head = `${c.name} B=${c.B} Nq=${c.Nq} Nk=${c.Nk} H=${H} D=${c.D}${c.causal ? ' causal' : ''} ${dtype} ${spec.variant} R=${spec.rows} L=${spec.lanes} P=${spec.parts} V=${spec.vec}`;
    const cols = modes.map((sleep, m) => {
      const ms = median(res[m].wall);
      return `${sleep ? 'sleep-wait' : 'sync'} ${ms.toFixed(1)} ms (${res[m].wall.map((t) => t.toFixed(0)).join(' ')}) ${(flop / ms / 1e6).toFixed(2)} GFLOP/s, cpu ${((flop / median(res[m].cpu) / 1e6) * cores).toFixed(2)}`;
    });
    console.log(`${head}: ${cols.join(' | ')} | first run ${warm.toFixed(0)} ms`);
    for (const t of [q, k, v]) t.dispose();
  }
}
ctx.destroy();
