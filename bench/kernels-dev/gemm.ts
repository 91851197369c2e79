// GEMM timing for development: matmul and conv2d at the issue's shapes, per variant / tile / dtype.
//   node --conditions=source --import tsx bench/kernels-dev/gemm.ts [--only mm,conv] [--dtype f32,f16]
//        [--force portable|subgroups|tiled] [--tile 32x4] [--lanes 8] [--reps 5] [--small]
// One warm-up, then the median of --reps runs, each ended by ctx.sync(). "cpu" is GFLOP/s computed
// from the process CPU time × the core count: on a shared machine it shows what the kernel would do
// on idle cores (wall time is what counts; report both).
import { availableParallelism } from 'node:os';
import { createContext, type DType, type Tensor } from '@ssd/tensor';
import { conv2d } from '../../packages/kernels/src/conv2d.js';
import { matmul } from '../../packages/kernels/src/matmul.js';
import { chooseGemmVariant } from '../../packages/kernels/src/gemm.js';
import type { GemmVariant } from '../../packages/kernels/src/gemm-wgsl.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt?: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const only = (arg('only', 'mm,conv') as string).split(',');
const dtypes = (arg('dtype', 'f32,f16') as string).split(',') as DType[];
const reps = Number(arg('reps', '5'));
const force = arg('force') as GemmVariant | undefined;
const tileArg = arg('tile');
const lanes = arg('lanes');
const tile = tileArg || lanes ? { ...(tileArg ? { m: Number(tileArg.split('x')[0]), n: Number(tileArg.split('x')[1]) } : {}), ...(lanes ? { lanes: Number(lanes) } : {}) } : undefined;
const small = args.includes('--small');
const cores = availableParallelism();

const ctx = await createContext();
console.log(`${ctx.info.description} | subgroups ${ctx.subgroups} (${ctx.info.subgroupMinSize}-${ctx.info.subgroupMaxSize}) | f16 ${ctx.f16} | default variant ${chooseGemmVariant(ctx)}${force ? ` | forced ${force}` : ''}${tile ? ` | tile ${JSON.stringify(tile)}` : ''}`);

function random(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

async function time(label: string, flops: number, run: () => Tensor): Promise<void> {
  const t0 = performance.now();
  run().dispose();
  await ctx.sync();
  const firstMs = performance.now() - t0;
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    run().dispose();
    await ctx.sync();
    wall.push(performance.now() - w0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const ms = med(wall);
  console.log(
    `${label.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms ${(flops / ms / 1e6).toFixed(1).padStart(6)} GFLOP/s  (min ${(flops / Math.min(...wall) / 1e6).toFixed(1)}, cpu ${((flops * cores) / med(cpu) / 1e6).toFixed(1)}, first ${firstMs.toFixed(0)} ms)`,
  );
}

const mmShapes = small ? [[256, 640, 640]] : [[1024, 640, 640], [4096, 640, 640], [1024, 1280, 5120], [4096, 640, 5120], [77, 2048, 1280]];
const convShapes = small ? [[16, 16, 320, 320]] : [[32, 32, 320, 320], [32, 32, 640, 640], [64, 64, 128, 128], [64, 64, 320, 320]];
for (const dtype of dtypes) {
  if (dtype === 'f16' && !ctx.f16) continue;
  if (only.includes('mm')) {
    for (const [M, K, N] of mmShapes) {
      const a = ctx.fromData(random(M * K), [M, K], dtype);
      const b = ctx.fromData(random(N * K), [N, K], dtype);
      await time(`matmul ${dtype} ${M}×${K}×${N}`, 2 * M * K * N, () => matmul(a, b, { force, tile }));
      a.dispose();
      b.dispose();
    }
  }
  if (only.includes('conv')) {
    for (const [H, W, C, N] of convShapes) {
      const x = ctx.fromData(random(H * W * C), [1, H, W, C], dtype);
      const w = ctx.fromData(random(N * 9 * C), [N, 3, 3, C], dtype);
      await time(`conv3x3 ${dtype} ${H}×${W}×${C}→${N}`, 2 * H * W * N * 9 * C, () => conv2d(x, w, { padding: 1, force, tile }));
      x.dispose();
      w.dispose();
    }
  }
}
ctx.destroy();
