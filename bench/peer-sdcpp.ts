// pnpm bench:peer-sdcpp --arch ssd-1b|vega [--size 512] [--steps 2] [--threads N] [--models-dir models]
//                       [--peer-dir ../shared/peers/sdcpp] [--out file.json] [--note text]
//
// @ssd against stable-diffusion.cpp's CPU backend (the native engine a user without a GPU would pick)
// on the same machine, one after the other: the same random weights (make-random-model, fp16; made
// or reused in <models-dir>/<arch>-f16), merged into one file for sd.cpp by the peer's
// merge_diffusers_sdxl.py, the same size, steps, CFG 5, Euler and seed — the logic of
// ../shared/peers/sdcpp/side-by-side.sh. Per stage (text encoders, each UNet step, VAE decode) the
// time of each engine and the ratio @ssd / sd.cpp (≤ 1 means ours is as fast or faster), peak RSS,
// and the CPU: model, cores, the fp32 FMA peak (and the AVX2 one sd-cli is built for). Writes
// bench/results/peer-sdcpp-<adapter>.json and prints the table. sd.cpp loads the UNet during its
// first step, so steady steps (2…) are compared; @ssd's step 1 compiles its kernels.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeRandomModel } from './lib/make-random-model.js';
import { ARCHS, repoRoot, type Arch } from './lib/random-model.js';
import { cpuRecord, parseSdcppLog } from './lib/sdcpp.js';
import { median } from './lib/timing.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'ssd-1b' },
    size: { type: 'string', default: '512' },
    steps: { type: 'string', default: '2' },
    threads: { type: 'string', default: String(availableParallelism()) },
    'models-dir': { type: 'string', default: join(repoRoot, 'models') },
    'peer-dir': { type: 'string', default: resolve(repoRoot, '../shared/peers/sdcpp') },
    out: { type: 'string' },
    note: { type: 'string' },
  },
});
const PROMPT = 'a lovely cat';
const CFG = 5;
const SEED = 42;

function fail(msg: string): never {
  console.error(`bench:peer-sdcpp: ${msg}`);
  process.exit(1);
}

/** Runs a command under run-with-rss.sh: its log, wall seconds and peak RSS. */
function runWithRss(prefix: string, cmd: string[]): { log: string; wallS: number; peakRssBytes: number; exit: number } {
  try {
    execFileSync('bash', [join(here, 'lib/run-with-rss.sh'), prefix, ...cmd], { cwd: repoRoot, stdio: 'inherit' });
  } catch {
    /* the exit status is in the .rss summary */
  }
  const rss = readFileSync(`${prefix}.rss`, 'utf8');
  const num = (re: RegExp) => Number(re.exec(rss)?.[1] ?? NaN);
  return { log: readFileSync(`${prefix}.log`, 'utf8'), wallS: num(/# wall_s ([\d.]+)/), peakRssBytes: num(/# peak_rss_kib (\d+)/) * 1024, exit: num(/exit (\d+)/) };
}

/** The adapter's name in result files, as bench/lib/timing.ts's resultSlug names it. */
function slug(adapter: string): string {
  const d = adapter.toLowerCase();
  if (d.includes('llvmpipe')) return 'lavapipe';
  if (d.includes('swiftshader')) return 'swiftshader';
  return d.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 48) || 'adapter';
}

const steady = (xs: number[]) => (xs.length > 1 ? median(xs.slice(1)) : xs[0]);
const s1 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(1)} s`);

async function main(): Promise<void> {
  const arch = args.arch as Arch;
  if (arch !== 'ssd-1b' && arch !== 'vega') fail(`--arch ${JSON.stringify(args.arch)}: use ssd-1b or vega (${ARCHS.join(', ')} are made; sd.cpp's SDXL loader takes these two)`);
  const size = Number(args.size);
  const steps = Number(args.steps);
  if (!Number.isInteger(size) || size % 64 || size < 256) fail(`--size must be a multiple of 64 ≥ 256, got ${args.size}`);
  if (!Number.isInteger(steps) || steps < 1) fail(`--steps must be a positive integer, got ${args.steps}`);
  const sdcli = join(args['peer-dir']!, 'sd-cli');
  const merger = join(args['peer-dir']!, 'merge_diffusers_sdxl.py');
  if (!existsSync(sdcli) || !existsSync(merger)) fail(`no sd-cli or merge_diffusers_sdxl.py in ${args['peer-dir']} (--peer-dir; see ../shared/peers/sdcpp/README.md)`);
  const cli = join(repoRoot, 'packages/pipeline/dist/cli.js');
  if (!existsSync(cli)) fail(`${cli} is missing: build first (pnpm exec tsc -b)`);

  // 1. the random model (made or completed; files already complete are kept) and sd.cpp's merged file
  const folder = join(resolve(args['models-dir']!), `${arch}-f16`);
  await makeRandomModel({ arch, out: folder, dtypes: ['F16'], log: (l) => console.log(l) });
  const merged = `${folder}-sdcpp.safetensors`;
  const unetFile = join(folder, 'unet/diffusion_pytorch_model.fp16.safetensors');
  if (!existsSync(merged) || statSync(merged).mtimeMs < statSync(unetFile).mtimeMs) {
    console.log(`merging ${folder} for sd.cpp → ${merged}`);
    execFileSync('python3', [merger, folder, merged, '--variant', 'fp16'], { stdio: 'inherit' });
  } else console.log(`kept   ${merged}`);

  // 2. both engines, one after the other
  const cpu = cpuRecord();
  const dir = await mkdtemp(join(tmpdir(), 'peer-sdcpp-'));
  const load: Record<string, number[]> = { before: loadavg() };
  console.log(`\n@ssd: ${arch} ${size}² ${steps} steps, CFG ${CFG}, Euler, seed ${SEED} (load ${load.before.map((l) => l.toFixed(1)).join(' ')})`);
  const ssdRun = runWithRss(join(dir, 'ssd'), ['node', cli, 'generate', '--model', folder, '--prompt', PROMPT, '--width', String(size), '--height', String(size), '--steps', String(steps), '--guidance', String(CFG), '--scheduler', 'euler', '--seed', String(SEED), '--out', join(dir, 'ssd.png'), '--report', join(dir, 'ssd.json')]);
  if (ssdRun.exit !== 0 || !existsSync(join(dir, 'ssd.json'))) fail(`ssd generate failed (exit ${ssdRun.exit}): ${ssdRun.log.trim().split('\n').slice(-3).join(' | ')} (logs in ${dir})`);
  const ssd = JSON.parse(readFileSync(join(dir, 'ssd.json'), 'utf8')) as { adapter: string; dtype: string; loadMs: number; textEncode: { ms: number }; stepMs: number[]; decode: { ms: number }; totalMs: number };
  load.between = loadavg();
  console.log(`sd.cpp: -t ${args.threads} (load ${load.between.map((l) => l.toFixed(1)).join(' ')})`);
  const sdRun = runWithRss(join(dir, 'sdcpp'), [sdcli, '-m', merged, '-p', PROMPT, '-W', String(size), '-H', String(size), '--steps', String(steps), '--cfg-scale', String(CFG), '--sampling-method', 'euler', '-s', String(SEED), '-t', args.threads!, '-v', '-o', join(dir, 'sdcpp.png')]);
  load.after = loadavg();
  if (sdRun.exit !== 0) fail(`sd-cli failed (exit ${sdRun.exit}): ${sdRun.log.trim().split('\n').slice(-3).join(' | ')} (logs in ${dir})`);
  const sd = parseSdcppLog(sdRun.log);
  if (sd.stepS.length !== steps) fail(`sd-cli's log gave ${sd.stepS.length} step times for ${steps} steps (logs in ${dir})`);

  // 3. the result
  const ours = { textEncodeS: ssd.textEncode.ms / 1000, stepS: ssd.stepMs.map((m) => m / 1000), decodeS: ssd.decode.ms / 1000 };
  const rows = [
    { stage: 'text encoders', ssd: ours.textEncodeS, sdcpp: sd.textEncodeS },
    { stage: `UNet CFG step (steady${steps > 1 ? ', median of steps 2…' : ': only one step, includes compiling/loading'})`, ssd: steady(ours.stepS), sdcpp: steady(sd.stepS) },
    { stage: `VAE decode ${size}²`, ssd: ours.decodeS, sdcpp: sd.decodeS },
  ].map((r) => ({ ...r, ratio: r.sdcpp ? r.ssd / r.sdcpp : NaN }));
  // other processes on the cores skew both engines, and not alike: say so in the file. Only the load
  // before the first run is other processes'; the later samples follow an engine's own two threads.
  const maxLoad = load.before[0];
  const loadNote = maxLoad > cpu.cpus * 0.5 ? `measured under load: 1-minute load average ${maxLoad.toFixed(1)} on ${cpu.cpus} CPUs before the runs; other processes shared the cores, which slows the engines unequally, so these ratios need a quiet rerun` : undefined;
  const result = {
    bench: 'peer-sdcpp', date: new Date().toISOString(), arch, size, steps, cfg: CFG, scheduler: 'euler', seed: SEED, prompt: PROMPT,
    note: [loadNote, args.note].filter(Boolean).join('; ') || undefined,
    method: 'both engines one after the other on the same fp16 random weights (sd.cpp: the merged single file); ratio = @ssd time / sd.cpp time (≤ 1: ours as fast or faster); sd.cpp loads the UNet during step 1 and @ssd compiles its kernels in step 1, so the step row compares steady steps',
    host: { ...cpu, loadAverage: load },
    ssd: { adapter: ssd.adapter, dtype: ssd.dtype, loadS: ssd.loadMs / 1000, ...ours, steadyStepS: steady(ours.stepS), totalS: ssd.totalMs / 1000, wallS: ssdRun.wallS, peakRssBytes: ssdRun.peakRssBytes },
    sdcpp: { binary: sdcli, threads: Number(args.threads), ...sd, steadyStepS: steady(sd.stepS), wallS: sdRun.wallS, peakRssBytes: sdRun.peakRssBytes },
    stages: rows,
    logs: dir,
  };
  const file = args.out ?? join(here, 'results', `peer-sdcpp-${slug(ssd.adapter)}.json`);
  await mkdir(join(here, 'results'), { recursive: true });
  await writeFile(file, JSON.stringify(result, null, 2) + '\n');

  console.log(`\n${cpu.cpuModel}, ${cpu.cpus} CPUs (${cpu.simd}); fp32 FMA peak ≈ ${cpu.fp32FmaPeakGflops ?? '?'} GFLOP/s (sd-cli's AVX2 build: ${cpu.avx2PeakGflops ?? '?'}); @ssd on ${ssd.adapter}`);
  console.log(`| stage | @ssd | sd.cpp (-t ${args.threads}) | @ssd / sd.cpp |\n|---|---|---|---|`);
  for (const r of rows) console.log(`| ${r.stage} | ${s1(r.ssd)} | ${s1(r.sdcpp)} | ${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) + '×' : '—'} |`);
  console.log(`| every step | ${ours.stepS.map((v) => v.toFixed(1)).join(' / ')} s | ${sd.stepS.map((v) => v.toFixed(1)).join(' / ')} s (step 1 loads the UNet) | |`);
  console.log(`| peak RSS | ${(ssdRun.peakRssBytes / 2 ** 30).toFixed(1)} GiB | ${(sdRun.peakRssBytes / 2 ** 30).toFixed(1)} GiB | |`);
  if (result.note) console.log(`note: ${result.note}`);
  console.log(`wrote ${file} (logs in ${dir})`);
}

await main();
