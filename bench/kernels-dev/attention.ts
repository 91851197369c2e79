// Attention timing for development: the issue's shapes, per variant / tile / dtype.
//   node --conditions=source --import tsx bench/kernels-dev/attention.ts [--only self4096,self1024,cross77]
//        [--dtype f32,f16] [--force portable|subgroups] [--tile '{"rows":4}'] [--reps 5] [--heads 4] [--sleep-wait]
// One warm-up (includes the pipeline compile), then the median of --reps runs, each ended by
// ctx.sync(). FLOP = 4·B·H·Nq·Nk·D. "cpu" is GFLOP/s from the process CPU time × the core count: on a
// shared machine it shows what the kernel would do on idle cores (wall time is what counts).
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
const sleepWait = args.includes('--sleep-wait');

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
    let guess = Infinity;
    for (let i = 0; i < (sleepWait ? 2 : 0); i++) {
      t0 = performance.now();
      attention(q, k, v, opts).dispose();
      await ctx.sync();
      guess = Math.min(guess, performance.now() - t0);
    }
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < reps; i++) {
      t0 = performance.now();
      const c0 = process.cpuUsage();
      attention(q, k, v, opts).dispose();
      if (sleepWait) {
        // dawn.node resolves onSubmittedWorkDone by polling on this thread; sleeping through most of
        // the expected time keeps that poll from taking a core away from the driver's threads
        ctx.flush();
        await new Promise((r) => setTimeout(r, guess * 0.75));
      }
      await ctx.sync();
      guess = Math.min(guess, performance.now() - t0);
      wall.push(performance.now() - t0);
      const c1 = process.cpuUsage(c0);
      cpu.push((c1.user + c1.system) / 1000);
    }
    // causal: about half the keys are visited, but FLOP are counted as for the full product
    const flop = 4 * c.B * H * c.Nq * c.Nk * c.D;
    const ms = median(wall);
    console.log(
      `${c.name} B=${c.B} Nq=${c.Nq} Nk=${c.Nk} H=${H} D=${c.D}${c.causal ? ' causal' : ''} ${dtype} ${spec.variant} R=${spec.rows} L=${spec.lanes} P=${spec.parts} V=${spec.vec}: ` +
        `${ms.toFixed(1)} ms (${wall.map((t) => t.toFixed(0)).join(' ')}), ${(flop / ms / 1e6).toFixed(2)} GFLOP/s, cpu ${((flop / median(cpu) / 1e6) * cores).toFixed(2)} GFLOP/s, first run ${warm.toFixed(0)} ms`,
    );
    for (const t of [q, k, v]) t.dispose();
  }
}
ctx.destroy();
