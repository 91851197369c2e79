// Winograd vs direct 3×3 conv for development: the algorithms interleaved run by run (A/B/C, then again)
// so that a shared machine's load hits each alike; GFLOP/s-equivalent = the direct conv's FLOPs / time.
//   node --conditions=source --import tsx bench/kernels-dev/winograd.ts [--shapes 32x32x320,64x64x128]
//        [--dtype f32,f16] [--reps 5] [--algos direct,winograd2,winograd4] [--batch 1] [--tiles 32x8] [--nocap] [--profile]
//        [--out bench/results/winograd-<adapter>.json]  (rows appended to the file's runs)
// "cpu": the process's CPU time per run (lavapipe's threads are ours), steadier than wall time on a
// shared machine; the ratios of both are printed. --profile adds one timestamp-query run per algorithm: GPU ms of the input transform, GEMM and output transform.
import { createContext, type DType, type Tensor } from '@ssd/tensor';
import { conv2d } from '../../packages/kernels/src/conv2d.js';
import { conv2dWinograd } from '../../packages/kernels/src/conv2d-winograd.js';
import { winogradWeightFromOIHW } from '../../packages/kernels/src/winograd-weights.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { adapterRecord, hostRecord, median } from '../lib/timing.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const shapes = arg('shapes', '32x32x320,32x32x640,64x64x128,64x64x320').split(',').map((s) => s.split('x').map(Number));
const batch = Number(arg('batch', '1'));
const dtypes = arg('dtype', 'f32,f16').split(',') as DType[];
const reps = Number(arg('reps', '5'));
const algos = arg('algos', 'direct,winograd2,winograd4').split(',');
// --tiles 32x4,16x8: extra Winograd rows with these GEMM tiles (rows × columns per lane)
const tiles = arg('tiles', '').split(',').filter(Boolean).map((t) => ({ m: Number(t.split('x')[0]), n: Number(t.split('x')[1]) }));

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

const ctx = await createContext();
const rows: Record<string, unknown>[] = [];
const load0 = (await import('node:os')).loadavg();
console.log(`${ctx.info.description} | subgroups ${ctx.subgroups} | f16 ${ctx.f16} | load ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
for (const [h, w, c, n = c] of shapes) {
  for (const dtype of dtypes) {
    if (dtype === 'f16' && !ctx.f16) continue;
    const flop = 2 * batch * h * w * c * n * 9;
    const x = ctx.fromData(rand(batch * h * w * c, 1), [batch, h, w, c], dtype);
    const oihw = rand(n * c * 9, 2, 1 / Math.sqrt(9 * c));
    const run: Record<string, () => Tensor> = {};
    const weights: Tensor[] = [];
    for (const a of algos) {
      if (a === 'direct') {
        const wt = ctx.fromData(rand(n * 9 * c, 2, 1 / Math.sqrt(9 * c)), [n, 3, 3, c], dtype);
        weights.push(wt);
        run[a] = () => conv2d(x, wt, { padding: 1 });
      } else {
        const tile = a === 'winograd2' ? 2 : 4;
        const u = winogradWeightFromOIHW(oihw, [n, c, 3, 3], tile);
        const wt = ctx.fromData(u.data, u.shape, dtype);
        weights.push(wt);
        run[a] = () => conv2dWinograd(x, wt, { padding: 1 });
        for (const t of tiles) run[`${a}@${t.m}x${t.n}`] = () => conv2dWinograd(x, wt, { padding: 1, gemm: { tile: t } });
        if (args.includes('--nocap')) run[`${a} cap2x`] = () => conv2dWinograd(x, wt, { padding: 1, maxScratchBytes: 2 * x.byteSize });
        if (args.includes('--nocap')) run[`${a} nocap`] = () => conv2dWinograd(x, wt, { padding: 1, maxScratchBytes: ctx.limits.maxStorageBufferBindingSize });
      }
    }
    const names = Object.keys(run);
    const best: Record<string, number> = {};
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((a) => [a, []]));
    const once = async (a: string) => {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const out = run[a]();
      await ctx.sync({ expectedMs: best[a] ?? 0 });
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      cpu[a]?.push((c.user + c.system) / 1000);
      out.dispose();
      return ms;
    };
    for (const a of names) await once(a); // compile + warm-up
    for (const a of names) cpu[a] = [];
    const times: Record<string, number[]> = Object.fromEntries(names.map((a) => [a, []]));
    for (let r = 0; r < reps; r++) {
      for (const a of names) {
        const ms = await once(a);
        times[a].push(ms);
        best[a] = Math.min(best[a] ?? Infinity, ms);
      }
    }
    const base = median(times[algos[0]]);
    const cpuBase = median(cpu[algos[0]]);
    const cells = names.map((a) => {
      const ms = median(times[a]);
      const c = median(cpu[a]);
      return `${a} ${ms.toFixed(1)} ms ${(flop / ms / 1e6).toFixed(1)} GF/s ${(base / ms).toFixed(2)}× (cpu ${c.toFixed(0)} ms ${(cpuBase / c).toFixed(2)}×)`;
    });
    console.log(`${h}×${w}×${c}→${n} ${dtype}: ${cells.join(' | ')}`);
    rows.push({
      shape: `${batch}×${h}×${w}×${c}→${n} 3×3`, dtype, directGflop: flop / 1e9,
      algorithms: Object.fromEntries(names.map((a) => [a, { ms: median(times[a]), cpuMs: median(cpu[a]), gflopsEquivalent: flop / median(times[a]) / 1e6, speedupWall: base / median(times[a]), speedupCpu: cpuBase / median(cpu[a]), runsMs: times[a], runsCpuMs: cpu[a] }])),
    });
    if (args.includes('--profile') && ctx.timestampQuery) {
      for (const a of names) {
        ctx.startProfiling();
        run[a]().dispose();
        const t = await ctx.stopProfiling();
        console.log(`  ${a}: ${t.map((d) => `${d.label} ${d.ms.toFixed(1)}`).join(', ')}`);
      }
    }
    for (const t of [x, ...weights]) t.dispose();
  }
}
const out = arg('out', '');
if (out) {
  const prev = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : { bench: 'winograd (bench/kernels-dev/winograd.ts)', runs: [] };
  prev.method = 'per shape and dtype: one warm-up each, then --reps rounds running every algorithm once in turn (interleaved, so a shared machine\'s load hits each alike); median wall ms (each run ended by ctx.sync with a 75% nap) and median process CPU ms (lavapipe\'s threads are the process\'s; steadier than wall under load); GFLOP/s-equivalent = the direct conv\'s FLOPs / wall time';
  prev.runs.push({ date: new Date().toISOString(), note: 'measured under load (2 shared cores; see host.loadAverage)', adapter: adapterRecord(ctx), host: { ...(await hostRecord()), loadAverageAtStart: load0.map((l) => Number(l.toFixed(2))) }, reps, rows });
  writeFileSync(out, JSON.stringify(prev, null, 2) + '\n');
  console.log(`wrote ${out}`);
}
ctx.destroy();
