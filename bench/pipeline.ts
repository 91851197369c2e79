// pnpm bench:pipeline --arch ssd-1b|vega|sdxl --size 1024 --steps N [--low-memory] [--dtype f16|f32]
//                      [--model <dir>] [--models-dir models] [--guidance 5] [--scheduler euler] [--out file.json]
//
// One text-to-image generation through StableDiffusionXLPipeline on a random-weight folder written by
// make-random-model (created in <models-dir>/<arch>-<dtype> when missing): load time per component
// (MB/s from disk — the page cache when the files were just written), text-encode time, UNet it/s with
// classifier-free guidance (all steps, and steady state without the first, compiling step), VAE decode
// time, seconds per image, peak GPU memory per stage and overall against the issue's targets, peak
// process RSS, and RSS while each component loads. Writes bench/results/pipeline-<arch>-<size>[-low-memory]-<adapter>.json
// and prints a table.
//
// On CPU adapters (lavapipe) GPU buffers live in the process, so RSS includes them; the "host"
// column subtracts the weight bytes uploaded so far to show what loading itself holds.
import { existsSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext, resolveWeightFiles, FolderSource } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type ComponentLoadProgress, type RunReport } from '@ssd/pipeline';
import { makeRandomModel } from './lib/make-random-model.js';
import { ARCHS, repoRoot, type Arch } from './lib/random-model.js';
import { adapterRecord, fmtMs, hostRecord, median, mib, peakRssBytes, resultSlug } from './lib/timing.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'ssd-1b' },
    size: { type: 'string', default: '1024' },
    steps: { type: 'string', default: '25' },
    'low-memory': { type: 'boolean', default: false },
    dtype: { type: 'string' },
    model: { type: 'string' },
    'models-dir': { type: 'string', default: join(repoRoot, 'models') },
    guidance: { type: 'string', default: '5' },
    scheduler: { type: 'string' },
    prompt: { type: 'string', default: 'a photo of an astronaut riding a horse on mars, cinematic lighting' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});

/** Issue 10's GPU-memory targets at 1024² with CFG and fp16 weights (decimal GB). */
const TARGETS: Partial<Record<string, number>> = { 'ssd-1b/resident': 4e9, 'ssd-1b/low': 3e9, 'vega/resident': 2.5e9, 'vega/low': 2.5e9 };

interface ComponentLoad {
  component: string;
  phase: 'load' | 'generate';
  bytes: number;
  ms: number;
  mbPerSec: number;
  peakRssBytes: number;
  /** Peak of RSS minus the weight bytes uploaded so far (CPU adapters: what loading holds beyond the weights). */
  peakHostBytes: number;
}

async function main(): Promise<void> {
  const arch = args.arch as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--arch ${JSON.stringify(args.arch)}: use ${ARCHS.join(', ')}`);
  const size = Number(args.size);
  const steps = Number(args.steps);
  const low = !!args['low-memory'];
  const ctx = await createContext();
  const dtype = (args.dtype ?? (ctx.f16 ? 'f16' : 'f32')) as 'f16' | 'f32';
  if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`--dtype must be f16 or f32, got ${args.dtype}`);
  const cpu = ctx.info.isCpu;
  console.log(`adapter: ${ctx.info.description} (${ctx.f16 ? 'f16' : 'no f16'})`);
  if (cpu && size >= 1024) console.log(`note: a CPU adapter: a ${size}² image takes tens of minutes per UNet step and for the VAE decode`);

  // 1. the model folder
  const dir = resolve(args.model ?? join(args['models-dir']!, `${arch}-${dtype}`));
  if (!existsSync(join(dir, 'model_index.json'))) {
    if (args.model) throw new Error(`--model ${dir}: no model_index.json there`);
    console.log(`making the random ${arch} model in ${dir} (make-random-model --dtype ${dtype})`);
    await makeRandomModel({ arch, out: dir, dtypes: [dtype === 'f16' ? 'F16' : 'F32'], log: (l) => console.log(`  ${l}`) });
  }
  const variant = dtype === 'f16' ? 'fp16' : undefined;
  const fileBytes: Record<string, number> = {};
  for (const c of ['text_encoder', 'text_encoder_2', 'unet', 'vae']) {
    const files = await resolveWeightFiles(new FolderSource(dir), c, variant);
    fileBytes[c] = 0;
    for (const p of files.paths) fileBytes[c] += (await stat(join(dir, p))).size;
  }

  // 2. load, sampling RSS at every progress callback
  const loads: ComponentLoad[] = [];
  let phase: 'load' | 'generate' = 'load';
  let uploadedBefore = 0; // weight bytes of the components loaded earlier (still resident or not)
  let current: { c: ComponentLoad; start: number; loaded: number } | null = null;
  const finish = () => {
    if (!current) return;
    current.c.ms = performance.now() - current.start;
    current.c.mbPerSec = current.c.bytes / 1e6 / (current.c.ms / 1000);
    uploadedBefore += current.loaded;
    loads.push(current.c);
    current = null;
  };
  const onLoadProgress = (p: ComponentLoadProgress) => {
    if (!current || current.c.component !== p.component) {
      finish();
      current = { c: { component: p.component, phase, bytes: p.totalBytes, ms: 0, mbPerSec: 0, peakRssBytes: 0, peakHostBytes: 0 }, start: performance.now(), loaded: 0 };
    }
    current.loaded = p.loadedBytes;
    const rss = process.memoryUsage().rss;
    current.c.peakRssBytes = Math.max(current.c.peakRssBytes, rss);
    current.c.peakHostBytes = Math.max(current.c.peakHostBytes, rss - (cpu ? uploadedBefore + p.loadedBytes : 0));
  };
  ctx.resetPeak();
  const t0 = performance.now();
  const pipe = await StableDiffusionXLPipeline.fromPretrained(dir, {
    context: ctx, dtype, variant, scheduler: args.scheduler, memory: low ? 'low' : 'resident', onLoadProgress,
    onNotice: (m) => console.log(`note: ${m}`),
  });
  finish();
  const loadMs = performance.now() - t0;
  const loadPeakBytes = ctx.memory.peakBytes;
  const residentAfterLoad = ctx.memory.liveBytes;
  const loadedBytes = loads.reduce((a, l) => a + l.bytes, 0);
  console.log(`loaded in ${(loadMs / 1000).toFixed(1)} s (${(loadedBytes / 1e6 / (loadMs / 1000)).toFixed(0)} MB/s over ${mib(loadedBytes)} MiB); resident ${mib(residentAfterLoad)} MiB of GPU memory`);

  // 3. generate
  phase = 'generate';
  uploadedBefore = 0;
  let result;
  try {
    result = await pipe.generate({
      prompt: args.prompt!, numInferenceSteps: steps, width: size, height: size, guidanceScale: Number(args.guidance), seed: Number(args.seed),
      onStep: ({ step, total }) => console.log(`  step ${step}/${total} (${((performance.now() - t0 - loadMs) / 1000).toFixed(0)} s)`),
    });
    finish();
  } finally {
    await pipe.dispose();
  }
  const r: RunReport = result.report;
  const steady = r.stepMs.length > 1 ? median(r.stepMs.slice(1)) : r.stepMs[0];
  const stagePeaks = { load: loadPeakBytes, textEncode: r.textEncode.peakBytes, denoise: r.denoise.peakBytes, decode: r.decode.peakBytes };
  const peakGpu = Math.max(...Object.values(stagePeaks));
  const target = TARGETS[`${arch}/${low ? 'low' : 'resident'}`];
  const meetsTarget = target !== undefined && size === 1024 && dtype === 'f16' ? peakGpu <= target : null;
  const rows: [string, string, string][] = [
    ['load', `${(loadMs / 1000).toFixed(1)} s`, `${mib(loadPeakBytes)} MiB`],
    ...loads.map((l): [string, string, string] => [`  ${l.component}${l.phase === 'generate' ? ' (in generate)' : ''}`, `${(l.ms / 1000).toFixed(1)} s, ${l.mbPerSec.toFixed(0)} MB/s`, `RSS ≤ ${mib(l.peakRssBytes)} MiB${cpu ? ` (host ≤ ${mib(l.peakHostBytes)} MiB)` : ''}`]),
    ['text encode', `${fmtMs(r.textEncode.ms)} ms`, `${mib(r.textEncode.peakBytes)} MiB`],
    [`UNet × ${r.stepMs.length} (CFG, batch ${2 * r.batch})`, `${r.itPerSec.toFixed(3)} it/s (steady ${(1000 / steady).toFixed(3)} it/s, ${fmtMs(steady)} ms/step)`, `${mib(r.denoise.peakBytes)} MiB`],
    ['VAE decode', `${fmtMs(r.decode.ms)} ms`, `${mib(r.decode.peakBytes)} MiB`],
    ['per image', `${(r.totalMs / 1000).toFixed(1)} s (+ load ${(loadMs / 1000).toFixed(1)} s)`, `${mib(peakGpu)} MiB${target ? ` (target ≤ ${(target / 1e9).toFixed(1)} GB: ${meetsTarget === null ? 'n/a at this size' : meetsTarget ? 'met' : 'EXCEEDED'})` : ''}`],
    ['process RSS', `peak ${mib(peakRssBytes())} MiB`, ''],
  ];
  console.log(`\n${arch} ${size}² ${steps} steps ${dtype}${low ? ' --low-memory' : ''} on ${ctx.info.description}\n`);
  console.log('| stage | time | peak GPU memory |\n|---|---|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);

  const out = {
    bench: 'pipeline', arch, date: new Date().toISOString(), size, steps, dtype, memory: low ? 'low' : 'resident', guidanceScale: Number(args.guidance),
    model: dir, adapter: adapterRecord(ctx), host: await hostRecord(), fileBytes,
    load: { ms: loadMs, bytes: loadedBytes, mbPerSec: loadedBytes / 1e6 / (loadMs / 1000), peakGpuBytes: loadPeakBytes, residentGpuBytes: residentAfterLoad, components: loads },
    textEncode: r.textEncode, denoise: { ...r.denoise, stepMs: r.stepMs, itPerSec: r.itPerSec, steadyMsPerStep: steady, steadyItPerSec: 1000 / steady }, decode: r.decode,
    perImageMs: r.totalMs, peakGpuBytes: peakGpu, stagePeakGpuBytes: stagePeaks,
    target: target ? { bytes: target, met: meetsTarget } : null,
    peakRssBytes: peakRssBytes(), report: r,
  };
  const file = args.out ?? `${here}results/pipeline-${arch}-${size}${low ? '-low-memory' : ''}-${resultSlug(ctx)}.json`;
  await mkdir(`${here}results`, { recursive: true });
  await writeFile(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nwrote ${file}`);
  ctx.destroy();
}

await main();
