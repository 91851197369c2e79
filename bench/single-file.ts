// pnpm bench:single-file [--arch ssd-1b|vega|sdxl] [--dtype f16] [--models-dir models] [--runs 2] [--out file.json]
//
// Issue 19's measurement: loading a full-size random model from one SGM single file (make-random-model
// --single-file) against the same model as a diffusers folder (make-random-model), in fresh processes,
// alternating: wall time of fromSingleFile / fromPretrained (resident mode: every weight uploaded) and the
// process's peak RSS. On a CPU adapter the GPU buffers live in the process too, so RSS includes the
// weights; the difference between the two is what reading the single file costs beyond the folder.
// Writes bench/results/single-file-<arch>-<adapter>.json.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline } from '@ssd/pipeline';
import { makeRandomModel, makeRandomSingleFile } from './lib/make-random-model.js';
import { ARCHS, repoRoot, type Arch } from './lib/random-model.js';
import { adapterRecord, hostRecord, median, mib, resultSlug } from './lib/timing.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'ssd-1b' },
    dtype: { type: 'string', default: 'f16' },
    'models-dir': { type: 'string', default: join(repoRoot, 'models') },
    runs: { type: 'string', default: '2' },
    out: { type: 'string' },
    child: { type: 'string' },
    path: { type: 'string' },
  },
});

/** In a child process: load once and print {ms, peakRssBytes, liveBytes} as JSON. */
async function child(kind: 'folder' | 'single-file', path: string, dtype: 'f16' | 'f32'): Promise<void> {
  const ctx = await createContext();
  const t0 = performance.now();
  const opts = { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined, onNotice: () => {} };
  const pipe = kind === 'folder' ? await StableDiffusionXLPipeline.fromPretrained(path, opts) : await StableDiffusionXLPipeline.fromSingleFile(path, opts);
  const ms = performance.now() - t0;
  const liveBytes = ctx.memory.liveBytes;
  await pipe.dispose();
  ctx.destroy();
  console.log(JSON.stringify({ ms, peakRssBytes: process.resourceUsage().maxRSS * 1024, liveBytes }));
}

async function main(): Promise<void> {
  const dtype = args.dtype as 'f16' | 'f32';
  if (args.child) return child(args.child as 'folder' | 'single-file', args.path!, dtype);
  const arch = args.arch as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--arch ${JSON.stringify(args.arch)}: use ${ARCHS.join(', ')}`);
  const w = dtype === 'f16' ? 'F16' : 'F32';
  const folder = resolve(join(args['models-dir']!, `${arch}-${dtype}`));
  const file = resolve(join(args['models-dir']!, `${arch}-${dtype}-sgm.safetensors`));
  if (!existsSync(join(folder, 'model_index.json'))) await makeRandomModel({ arch, out: folder, dtypes: [w], log: (l) => console.log(`  ${l}`) });
  if (!existsSync(file)) await makeRandomSingleFile({ arch, out: file, dtype: w, log: (l) => console.log(`  ${l}`) });
  const runs = Number(args.runs);
  const rows: Record<'folder' | 'single-file', { ms: number; peakRssBytes: number; liveBytes: number }[]> = { folder: [], 'single-file': [] };
  for (let r = 0; r < runs; r++) {
    for (const kind of ['folder', 'single-file'] as const) {
      const p = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', kind, '--path', kind === 'folder' ? folder : file, '--dtype', dtype], { encoding: 'utf8', maxBuffer: 1 << 24 });
      if (p.status !== 0) throw new Error(`${kind} load failed: ${p.stderr}`);
      const row = JSON.parse(p.stdout.trim().split('\n').pop()!);
      rows[kind].push(row);
      console.log(`${kind}: ${(row.ms / 1000).toFixed(1)} s, peak RSS ${mib(row.peakRssBytes)} MiB, GPU ${mib(row.liveBytes)} MiB`);
    }
  }
  const ctx = await createContext();
  const sum = (k: 'folder' | 'single-file') => ({ msMedian: median(rows[k].map((x) => x.ms)), peakRssBytesMax: Math.max(...rows[k].map((x) => x.peakRssBytes)), gpuBytes: rows[k][0].liveBytes, runs: rows[k] });
  const out = {
    bench: 'single-file', date: new Date().toISOString(), arch, dtype, adapter: adapterRecord(ctx), host: await hostRecord(),
    files: { folder, singleFile: file, singleFileBytes: (await stat(file)).size },
    folder: sum('folder'), singleFile: sum('single-file'),
  };
  console.log(`\n| source | load (median) | peak RSS | GPU weights |\n|---|---|---|---|`);
  for (const [name, s] of [['diffusers folder', out.folder], ['single file', out.singleFile]] as const) console.log(`| ${name} | ${(s.msMedian / 1000).toFixed(1)} s | ${mib(s.peakRssBytesMax)} MiB | ${mib(s.gpuBytes)} MiB |`);
  const path = args.out ?? `${here}results/single-file-${arch}-${resultSlug(ctx)}.json`;
  ctx.destroy();
  await mkdir(`${here}results`, { recursive: true });
  await writeFile(path, JSON.stringify(out, null, 2) + '\n');
  console.log(`wrote ${path}`);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
