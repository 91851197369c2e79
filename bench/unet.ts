// pnpm bench:unet --model ssd-1b|vega|sdxl --size 1024 [--dtype f16|f32] [--latent N] [--batch 2]
//                  [--runs N] [--no-profile] [--from <make-random-model folder>] [--out file.json]
//
// One UNet evaluation with batch 2 (a classifier-free-guidance step) on random weights synthesised
// in-process from the real config and key list (no file): ms per step, achieved TFLOP/s against the
// counted work of the shape that ran (bench/lib/unet-flops.ts; 4.21 / 2.82 / 6.76 TFLOP per sample at
// 1024²), a per-layer-kind breakdown (matmul, conv, attention, norm, other) from timestamp queries, and
// peak GPU memory (weights + activations + pool). --from loads the UNet from a folder written by
// make-random-model instead (faster than synthesising 1.3 G values on one core). On CPU adapters the latent defaults to 32×32 (a
// 256² image; the output says so) because a 1024² step takes tens of minutes there.
// Writes bench/results/unet-<model>-<adapter>.json.
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext, type DispatchTime } from '@ssd/tensor';
import { UNet2DConditionModel } from '@ssd/unet';
import { ARCHS, UNET_TFLOP_1024, syntheticModelSource, type Arch } from './lib/random-model.js';
import { adapterRecord, fmtMs, hostRecord, median, mib, peakGflops, peakRssBytes, resultSlug } from './lib/timing.js';
import { KINDS, summarizeProfile } from './lib/profile.js';
import { unetWork } from './lib/unet-flops.js';
import { stats, unetInputs } from './lib/unet-inputs.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'ssd-1b' },
    size: { type: 'string', default: '1024' },
    dtype: { type: 'string' },
    latent: { type: 'string' },
    batch: { type: 'string', default: '2' },
    runs: { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    from: { type: 'string' },
    out: { type: 'string' },
  },
});


async function main(): Promise<void> {
  const arch = args.model as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--model ${JSON.stringify(args.model)}: use ${ARCHS.join(', ')}`);
  const size = Number(args.size);
  if (!Number.isInteger(size) || size % 8 || size < 64) throw new Error(`--size must be a multiple of 8 ≥ 64, got ${args.size}`);
  const batch = Number(args.batch);
  const ctx = await createContext();
  const cpu = ctx.info.isCpu;
  const dtype = (args.dtype ?? (ctx.f16 ? 'f16' : 'f32')) as 'f16' | 'f32';
  if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`--dtype must be f16 or f32, got ${args.dtype}`);
  if (dtype === 'f16' && !ctx.f16) throw new Error('--dtype f16: this adapter has no shader-f16');
  const latent = args.latent ? Number(args.latent) : cpu ? 32 : size / 8;
  const reduced = latent !== size / 8;
  const runs = Number(args.runs ?? (cpu ? 1 : 5));
  const log = (s: string) => console.log(s);
  log(`adapter: ${ctx.info.description} (${ctx.info.features.includes('shader-f16') ? 'f16' : 'no f16'}, ${ctx.info.features.includes('subgroups') ? 'subgroups' : 'no subgroups'})`);
  if (reduced) log(`note: latent ${latent}×${latent} (a ${latent * 8}² image) instead of ${size / 8}² for --size ${size}${cpu ? ': a CPU adapter' : ''}; the work counted is that of the shape that ran`);

  const t0 = performance.now();
  const src = args.from ?? (await syntheticModelSource(arch, dtype === 'f16' ? 'F16' : 'F32', ['unet']));
  const unet = await UNet2DConditionModel.fromPretrained(src, { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined, onNotice: (m) => log(`note: ${m}`) });
  const loadMs = performance.now() - t0;
  const weightBytes = unet.weightBytes;
  log(`${arch} UNet: ${unet.parameterCount.toLocaleString('en-US')} parameters, ${mib(weightBytes)} MiB of ${dtype} weights, built and uploaded in ${(loadMs / 1000).toFixed(1)} s (${args.from ? `from ${args.from}` : 'weights synthesised on the CPU'})`);

  const work = unetWork(unet.spec, batch, latent, latent);
  const inputs = unetInputs(ctx, unet, batch, latent, latent, 999);
  await ctx.sync();

  // warm-up: compiles every pipeline
  let t = performance.now();
  let out = unet.forward(inputs);
  await ctx.sync();
  const firstMs = performance.now() - t;
  const s = stats(await out.read());
  out.dispose();
  log(`first step (compiles): ${fmtMs(firstMs)} ms; output finite: ${s.finite} (std ${s.std.toExponential(2)})`);

  const times: number[] = [];
  let peakBytes = 0;
  let peakLiveBytes = 0;
  for (let r = 0; r < runs; r++) {
    ctx.resetPeak();
    t = performance.now();
    out = unet.forward(inputs);
    await ctx.sync();
    times.push(performance.now() - t);
    out.dispose();
    peakBytes = Math.max(peakBytes, ctx.memory.peakBytes);
    peakLiveBytes = Math.max(peakLiveBytes, ctx.memory.peakLiveBytes);
    if (cpu) log(`  run ${r + 1}/${runs}: ${fmtMs(times[r])} ms`);
  }
  const ms = median(times);
  const tflops = work.total / (ms / 1000) / 1e12;
  const peak = peakGflops(ctx.info.description, dtype);
  log(`step (batch ${batch}, latent ${latent}²): ${fmtMs(ms)} ms median of ${runs} → ${(1000 / ms).toFixed(2)} it/s; ${(work.total / 1e12).toFixed(3)} TFLOP counted → ${(tflops * 1000).toFixed(1)} GFLOP/s${peak ? ` (${((tflops * 1e3) / peak * 100).toFixed(1)}% of ${peak} GFLOP/s peak)` : ''}`);
  log(`GPU memory: peak ${mib(peakBytes)} MiB held (live peak ${mib(peakLiveBytes)} MiB; weights ${mib(weightBytes)} MiB, activations ≤ ${mib(peakLiveBytes - weightBytes)} MiB)`);

  let breakdown: Record<string, unknown> | null = null;
  if (!args['no-profile'] && ctx.info.features.includes('timestamp-query')) {
    ctx.startProfiling();
    out = unet.forward(inputs);
    out.dispose();
    const dispatches: DispatchTime[] = await ctx.stopProfiling();
    const p = summarizeProfile(dispatches, { matmul: work.matmul, conv: work.conv, attention: work.attention });
    const kinds = Object.fromEntries(KINDS.map((k) => [k, { ...p.kinds[k], fractionOfPeak: p.kinds[k].gflops !== undefined && peak ? p.kinds[k].gflops! / peak : undefined }]));
    const gpuMs = p.gpuMs;
    breakdown = {
      method: 'one extra step with every dispatch in its own timestamped compute pass (ctx.startProfiling); the sum of dispatch times excludes submission gaps',
      dispatches: p.dispatches,
      gpuMs,
      kinds,
      families: p.families,
    };
    log(`profile: ${dispatches.length} dispatches, ${fmtMs(gpuMs)} ms of GPU time`);
    for (const k of KINDS) {
      const e = kinds[k] as { ms: number; share: number; dispatches: number; gflops?: number; fractionOfPeak?: number };
      log(`  ${k.padEnd(10)} ${fmtMs(e.ms).padStart(9)} ms ${(e.share * 100).toFixed(1).padStart(5)}%  ${String(e.dispatches).padStart(5)} dispatches${e.gflops !== undefined ? `  ${e.gflops.toFixed(1)} GFLOP/s${e.fractionOfPeak !== undefined ? ` (${(e.fractionOfPeak * 100).toFixed(1)}% of peak)` : ''}` : ''}`);
    }
  } else if (!args['no-profile']) {
    log('profile: skipped (no timestamp-query on this adapter)');
  }
  inputs.dispose();
  unet.dispose();

  const result = {
    bench: 'unet', model: arch, date: new Date().toISOString(), dtype, size, batch,
    latent: { height: latent, width: latent, reduced, note: reduced ? `latent ${latent}² (${latent * 8}² image) instead of ${size / 8}²` : undefined },
    adapter: adapterRecord(ctx), host: await hostRecord(),
    weights: args.from ? `folder ${args.from}` : 'synthesised in-process', parameters: unet.parameterCount, weightBytes,
    loadMs, firstStepMs: firstMs, runs: times, msPerStep: ms, itPerSec: 1000 / ms,
    work: { flopTotal: work.total, flopConv: work.conv, flopMatmul: work.matmul, flopAttention: work.attention, publishedTflopPerSampleAt1024: UNET_TFLOP_1024[arch] },
    tflops, peakGflops: peak, fractionOfPeak: peak ? (tflops * 1e3) / peak : null,
    memory: { peakBytes, peakLiveBytes, activationPeakBytes: peakLiveBytes - weightBytes },
    output: s, breakdown, peakRssBytes: peakRssBytes(),
  };
  const file = args.out ?? `${here}results/unet-${arch}-${resultSlug(ctx)}.json`;
  await mkdir(`${here}results`, { recursive: true });
  await writeFile(file, JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${file}`);
  ctx.destroy();
}

await main();
