// Quantized GEMM timing for development: the f16 (or f32) linear and the same shape with a q8_0 /
// q4_K … weight, A/B interleaved rep by rep (so a shared machine's load hits both alike).
//   node --conditions=source --import tsx bench/kernels-dev/gemm-quantized.ts [--types q8_0,q4_K]
//        [--dtype f16] [--reps 5] [--shapes 1024x640x640,…] [--force …] [--tile 32x4] [--conv]
// Prints each one's median wall ms and GFLOP/s, the ratio quantized / float, and the same from the
// process's CPU time (lavapipe's threads included): steadier than wall time when jobs share the cores.
import { createContext, QUANT_BLOCKS, type DType, type QuantizedWeight, type QuantType, type Tensor } from '@ssd/tensor';
import { conv2d, linear, type GemmVariant } from '@ssd/kernels';
import { randomQuantizedBytes } from '../lib/kernel-cases.js';
import { median } from '../lib/timing.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const types = arg('types', 'q8_0,q4_K')!.split(',') as QuantType[];
const dtype = arg('dtype', 'f16') as DType;
const reps = Number(arg('reps', '5'));
const force = arg('force') as GemmVariant | undefined;
const tileArg = arg('tile');
const tile = tileArg ? { m: Number(tileArg.split('x')[0]), n: Number(tileArg.split('x')[1]) } : undefined;
const conv = args.includes('--conv');
const shapes = arg('shapes', conv ? '32x32x320x320' : '1024x640x640,1024x1280x5120')!.split(',').map((s) => s.split('x').map(Number));

const ctx = await createContext();
console.log(`${ctx.info.description} | ${dtype} | ${force ?? 'default variant'}${tile ? ` | tile ${tileArg}` : ''}`);
const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);

for (const shape of shapes) {
  const [M, K, N] = conv ? [shape[0] * shape[1], 9 * shape[2], shape[3]] : shape;
  const flop = 2 * M * K * N;
  const x = conv ? ctx.fromData(rand(M * shape[2]), [1, shape[0], shape[1], shape[2]], dtype) : ctx.fromData(rand(M * K), [M, K], dtype);
  const wf = conv ? ctx.fromData(rand(N * K), [N, 3, 3, shape[2]], dtype) : ctx.fromData(rand(N * K), [N, K], dtype);
  const runs: { name: string; run: () => Tensor; ms: number[]; cpu: number[] }[] = [];
  const opts = { force, tile, padding: 1 };
  runs.push({ name: dtype, run: () => (conv ? conv2d(x, wf, opts) : linear(x, wf, opts)), ms: [], cpu: [] });
  const ws: QuantizedWeight[] = [];
  for (const type of types) {
    const wshape = conv ? [N, shape[2], 3, 3] : [N, K];
    const bytes = randomQuantizedBytes(type, (N * K) / QUANT_BLOCKS[type].values);
    const data = ctx.fromData(new Uint32Array(bytes.buffer), [bytes.byteLength / 4], 'u32');
    const w: QuantizedWeight = { kind: 'quantized', type, shape: wshape, data, dispose: () => data.dispose() };
    ws.push(w);
    runs.push({ name: type, run: () => (conv ? conv2d(x, w, opts) : linear(x, w, opts)), ms: [], cpu: [] });
  }
  for (const r of runs) {
    const t0 = performance.now();
    r.run().dispose();
    await ctx.sync();
    console.log(`  warm-up ${r.name}: ${(performance.now() - t0).toFixed(0)} ms (compile + run)`);
  }
  for (let i = 0; i < reps; i++) {
    for (const r of runs) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      r.run().dispose();
      await ctx.sync();
      r.ms.push(performance.now() - t0);
      const c = process.cpuUsage(c0);
      r.cpu.push((c.user + c.system) / 1000);
    }
  }
  const base = flop / median(runs[0].ms) / 1e6;
  const baseCpu = median(runs[0].cpu);
  for (const r of runs) {
    const g = flop / median(r.ms) / 1e6;
    const cpu = median(r.cpu);
    console.log(
      `${conv ? 'conv3x3' : 'linear'} ${shape.join('×')} ${r.name.padEnd(5)} ${median(r.ms).toFixed(1).padStart(8)} ms ${g.toFixed(1).padStart(6)} GFLOP/s ×${(g / base).toFixed(2)} | cpu ${cpu.toFixed(0).padStart(6)} ms ×${(baseCpu / cpu).toFixed(2)}  [${r.ms.map((v) => v.toFixed(0)).join(' ')}]`,
    );
  }
  x.dispose();
  wf.dispose();
  for (const w of ws) w.dispose();
}
ctx.destroy();
