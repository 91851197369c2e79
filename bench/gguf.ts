// pnpm bench:gguf --fp16 <single file.safetensors> --gguf <a.gguf> [--gguf <b.gguf> …] [--size 1024]
//                 [--memory resident,low|targets [--skip-fp16-memory] [--budget-targets]] [--cfg-batch together|split] [--decode] [--latent 16] [--dtype f16|f32] [--name ssd-1b] [--out file.json]
// pnpm bench:gguf --plan [--arch ssd-1b|vega|sdxl]   (also with ssd quantize --quantize-convs)
//
// Issue 21's measurements on one fp16 single file and its GGUFs (`make-random-model --single-file`, then
// `ssd quantize`): per file and memory mode, peak GPU memory of one denoising step (CFG) at --size² — with
// the VAE decode when --decode — and the weights resident after loading (--memory targets: only the modes
// issue 21 sets a target for (--budget-targets: only those, each inside a memory budget of its target), resident for the fp16 baseline unless --skip-fp16-memory — each 1024² step takes
// minutes on a CPU adapter); then one UNet forward (batch 2)
// at a --latent² latent from each file on the same inputs: noise_pred rel-L2 vs the fp16 file's (targets:
// q8_0 ≤ 1e-2, q4_K ≤ 6e-2); with --step-latent N, the UNet CFG step (batch 2, N² latent) of every file,
// the UNets loaded together and run in turn (--step-rounds), and each one's time over fp16's (target: q8_0
// ≤ 1.25×). --plan needs no file: what sd.cpp's type rules make of each component (sizes
// from the key lists). Writes bench/results/gguf-<name>-<adapter>.json (or gguf-plan-<arch>.json).
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext, GgufFile, NodeFileSource, SingleFileSource, type GpuContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline } from '@ssd/pipeline';
import { UNet2DConditionModel } from '@ssd/unet';
import { ggufPlan } from './lib/gguf-plan.js';
import { ARCHS, type Arch } from './lib/random-model.js';
import { adapterRecord, hostRecord, mib, resultSlug, timeGpuInterleaved } from './lib/timing.js';
import { stats, unetInputs } from './lib/unet-inputs.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    fp16: { type: 'string' },
    gguf: { type: 'string', multiple: true, default: [] },
    size: { type: 'string', default: '1024' },
    memory: { type: 'string', default: 'resident,low' },
    decode: { type: 'boolean', default: false },
    'skip-fp16-memory': { type: 'boolean', default: false },
    'step-latent': { type: 'string', default: '0' },
    'budget-targets': { type: 'boolean', default: false },
    'cfg-batch': { type: 'string' },
    'step-rounds': { type: 'string', default: '3' },
    latent: { type: 'string', default: '16' },
    dtype: { type: 'string' },
    name: { type: 'string' },
    plan: { type: 'boolean', default: false },
    arch: { type: 'string', default: 'ssd-1b' },
    out: { type: 'string' },
  },
});

/** Issue 21's targets, decimal GB: GPU memory at 1024² with CFG, and UNet noise_pred rel-L2 vs fp16. */
const MEMORY_TARGETS: Record<string, number> = { 'ssd-1b/q8_0/resident': 3.0e9, 'ssd-1b/q4_K/resident': 2.0e9, 'ssd-1b/q8_0/low': 1.6e9, 'vega/q8_0/resident': 2.3e9, 'vega/q4_K/resident': 1.6e9 };
const QUALITY_TARGETS: Record<string, number> = { q8_0: 1e-2, q4_K: 6e-2 };

interface MemoryRun {
  file: string;
  mode: 'resident' | 'low';
  residentBytes: number;
  peakBytes: number;
  /** Highest bytes held by live tensors (peakBytes also counts the pool's free buffers). */
  peakLiveBytes: number;
  stagePeaks: Record<string, number>;
  stepMs: number;
  target?: number;
  /** With --budget-targets: the run with the context's memoryBudgetBytes set to the target (the pool gives way first). */
  underBudget?: { budgetBytes: number; ok: boolean; peakBytes?: number; peakLiveBytes?: number; stepMs?: number; error?: string };
}

async function plan(): Promise<void> {
  const arch = args.arch as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--arch: use ${ARCHS.join(', ')}`);
  const out: Record<string, unknown> = { arch, rules: "stable-diffusion.cpp 97d2990 tensor_should_be_converted (convs, biases, embeddings, time/label embeddings keep f16)", types: {} };
  console.log(`| ${arch} | ${['unet', 'text_encoder', 'text_encoder_2', 'vae'].join(' | ')} | total |\n|---|---|---|---|---|---|`);
  for (const [type, convs] of [['f16', false], ['q8_0', false], ['q5_0', false], ['q4_0', false], ['q4_K', false], ['q8_0', true], ['q4_K', true]] as const) {
    const p = await ggufPlan(arch, type, convs);
    (out.types as Record<string, unknown>)[`${type}${convs ? ' --quantize-convs' : ''}`] = p;
    const total = p.reduce((a, c) => a + c.bytes, 0);
    console.log(`| ${type}${convs ? ' + convs' : ''} | ${p.map((c) => `${(c.bytes / 1e9).toFixed(3)} GB${type === 'f16' ? '' : ` (${((100 * c.quantizedParams) / c.params).toFixed(0)}% of params quantized)`}`).join(' | ')} | ${(total / 1e9).toFixed(3)} GB |`);
  }
  const file = args.out ?? `${here}results/gguf-plan-${arch}.json`;
  await mkdir(`${here}results`, { recursive: true });
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

function typeOf(path: string, gguf: GgufFile | null): string {
  if (!gguf) return 'fp16';
  const counts = new Map<string, number>();
  for (const t of gguf.tensors.values()) if (t.type.quant) counts.set(t.type.name, (counts.get(t.type.name) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? path;
}

async function memoryRun(ctx: GpuContext, file: string, mode: 'resident' | 'low', size: number, dtype: 'f16' | 'f32'): Promise<Omit<MemoryRun, 'target'>> {
  ctx.resetPeak();
  const pipe = await StableDiffusionXLPipeline.fromSingleFile(file, { context: ctx, dtype, memory: mode, cfgBatch: args['cfg-batch'] as 'together' | 'split' | undefined, onNotice: (m) => console.log(`  note: ${m}`) });
  const residentBytes = ctx.memory.liveBytes;
  try {
    const r = await pipe.generate({ prompt: 'a photo of an astronaut riding a horse on mars', numInferenceSteps: 1, guidanceScale: 5, width: size, height: size, seed: 1, outputType: args.decode ? 'rgba' : 'latent' });
    const stagePeaks = { textEncode: r.report.textEncode.peakBytes, denoise: r.report.denoise.peakBytes, ...(args.decode ? { decode: r.report.decode.peakBytes } : {}) };
    return { file, mode, residentBytes, peakBytes: Math.max(ctx.memory.peakBytes, ...Object.values(stagePeaks)), peakLiveBytes: ctx.memory.peakLiveBytes, stagePeaks, stepMs: r.report.stepMs[0] };
  } finally {
    await pipe.dispose();
  }
}

/** noise_pred of one UNet forward (batch 2, the same inputs for every file). */
async function noisePred(ctx: GpuContext, file: string, latent: number, dtype: 'f16' | 'f32'): Promise<Float32Array> {
  const sf = await SingleFileSource.open(file, { onNotice: () => {} });
  const unet = await UNet2DConditionModel.fromPretrained(sf, { context: ctx, dtype });
  const inputs = unetInputs(ctx, unet, 2, latent, latent);
  try {
    const out = unet.forward(inputs);
    const data = (await out.read()) as Float32Array;
    out.dispose();
    return data;
  } finally {
    inputs.dispose();
    unet.dispose();
    await sf.close();
  }
}

/** One UNet CFG step per file at a latent² latent, interleaved (fp16, a, b, fp16, a, b, …) so load falls alike. */
async function stepTimes(ctx: GpuContext, files: string[], latent: number, rounds: number, dtype: 'f16' | 'f32'): Promise<{ file: string; ms: number; runsMs: number[]; overFp16: number }[]> {
  const opened: { sf: SingleFileSource; unet: UNet2DConditionModel; inputs: ReturnType<typeof unetInputs> }[] = [];
  try {
    for (const f of files) {
      const sf = await SingleFileSource.open(f, { onNotice: () => {} });
      const unet = await UNet2DConditionModel.fromPretrained(sf, { context: ctx, dtype });
      opened.push({ sf, unet, inputs: unetInputs(ctx, unet, 2, latent, latent) });
    }
    const t = await timeGpuInterleaved(ctx, opened.map((o) => () => o.unet.forward(o.inputs)), rounds);
    return files.map((file, i) => ({ file, ms: t[i].ms, runsMs: t[i].runs, overFp16: t[i].ms / t[0].ms }));
  } finally {
    for (const o of opened) {
      o.inputs.dispose();
      o.unet.dispose();
      await o.sf.close();
    }
  }
}

function relL2(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
}

async function main(): Promise<void> {
  if (args.plan) return plan();
  if (!args.fp16 || !args.gguf!.length) throw new Error('give --fp16 <single file> and at least one --gguf <file> (or --plan)');
  const ctx = await createContext();
  const dtype = (args.dtype ?? (ctx.f16 ? 'f16' : 'f32')) as 'f16' | 'f32';
  const size = Number(args.size);
  const latent = Number(args.latent);
  const name = args.name ?? 'model';
  const modesFor = (type: string): ('resident' | 'low')[] => {
    if (args.memory !== 'targets') return args.memory!.split(',').filter(Boolean) as ('resident' | 'low')[];
    if (type === 'fp16') return args['skip-fp16-memory'] ? [] : ['resident'];
    return (['resident', 'low'] as const).filter((m) => MEMORY_TARGETS[`${name}/${type}/${m}`] !== undefined);
  };
  console.log(`adapter: ${ctx.info.description} (${ctx.f16 ? 'f16' : 'no f16'}); compute ${dtype}; ${size}² one CFG step${args.decode ? ' + VAE decode' : ''}; UNet quality at a ${latent}² latent`);
  const files = [args.fp16, ...args.gguf!];
  const types = new Map<string, string>();
  const fileBytes: Record<string, number> = {};
  for (const f of files) {
    const g = f.endsWith('.gguf') ? await GgufFile.open(new NodeFileSource(f)) : null;
    types.set(f, typeOf(f, g));
    await g?.close();
    fileBytes[f] = (await stat(f)).size;
  }
  const memory: MemoryRun[] = [];
  for (const f of files) {
    for (const mode of modesFor(types.get(f)!)) {
      const target = size === 1024 ? MEMORY_TARGETS[`${name}/${types.get(f)}/${mode}`] : undefined;
      if (args['budget-targets']) {
        if (!target) continue;
        // the run inside a budget of its target: allocations past it first shrink the pool, then fail
        ctx.memoryBudgetBytes = target;
        let underBudget: NonNullable<MemoryRun['underBudget']>;
        try {
          const b = await memoryRun(ctx, f, mode, size, dtype);
          underBudget = { budgetBytes: target, ok: true, peakBytes: b.peakBytes, peakLiveBytes: b.peakLiveBytes, stepMs: b.stepMs };
          memory.push({ ...b, target, underBudget });
        } catch (e) {
          underBudget = { budgetBytes: target, ok: false, error: e instanceof Error ? e.message : String(e) };
          memory.push({ file: f, mode, residentBytes: NaN, peakBytes: NaN, peakLiveBytes: NaN, stagePeaks: {}, stepMs: NaN, target, underBudget });
        } finally {
          ctx.memoryBudgetBytes = Infinity;
          ctx.trim();
        }
        console.log(`${types.get(f)} ${mode} within a ${(target / 1e9).toFixed(1)} GB budget: ${underBudget.ok ? `ran, peak ${mib(underBudget.peakBytes!)} MiB (live tensors ${mib(underBudget.peakLiveBytes!)} MiB), step ${(underBudget.stepMs! / 1000).toFixed(0)} s` : `refused: ${underBudget.error}`}`);
        continue;
      }
      const r = await memoryRun(ctx, f, mode, size, dtype);
      memory.push({ ...r, target });
      console.log(`${types.get(f)} ${mode}: resident ${mib(r.residentBytes)} MiB, peak ${mib(r.peakBytes)} MiB (live tensors ${mib(r.peakLiveBytes)} MiB)${target ? ` (target ≤ ${(target / 1e9).toFixed(1)} GB: ${r.peakBytes <= target ? 'met' : 'EXCEEDED'})` : ''}`);
    }
  }
  const ref = await noisePred(ctx, args.fp16, latent, dtype);
  const st = stats(ref);
  if (!st.finite) throw new Error(`the fp16 UNet's noise_pred has ${st.nonFinite} non-finite values`);
  const quality: { file: string; type: string; relL2: number; target?: number }[] = [];
  for (const f of args.gguf!) {
    const e = relL2(await noisePred(ctx, f, latent, dtype), ref);
    const type = types.get(f)!;
    quality.push({ file: f, type, relL2: e, target: QUALITY_TARGETS[type] });
    console.log(`${type}: UNet noise_pred rel-L2 vs fp16 ${e.toExponential(2)}${QUALITY_TARGETS[type] ? ` (target ≤ ${QUALITY_TARGETS[type]})` : ''}`);
  }
  const stepLatent = Number(args['step-latent']);
  const steps = stepLatent > 0 ? await stepTimes(ctx, files, stepLatent, Number(args['step-rounds']), dtype) : [];
  for (const s of steps) console.log(`${types.get(s.file)}: UNet CFG step at a ${stepLatent}² latent ${(s.ms / 1000).toFixed(1)} s (×${s.overFp16.toFixed(2)} fp16)`);
  const out = args.out ?? `${here}results/gguf-${name}-${resultSlug(ctx)}.json`;
  await mkdir(`${here}results`, { recursive: true });
  const convAlgorithm = process.env.SSD_CONV_ALGORITHM ?? 'auto (the adapter table)';
  await writeFile(out, `${JSON.stringify({ adapter: adapterRecord(ctx), host: await hostRecord(), convAlgorithm, cfgBatch: args['cfg-batch'] ?? 'the memory mode\'s default (resident: together, low: split)', dtype, size, decode: args.decode, latent, files: files.map((f) => ({ file: f, type: types.get(f), bytes: fileBytes[f] })), memory, quality, ...(steps.length ? { step: { latent: stepLatent, batch: 2, method: 'UNets loaded together, one warm-up each, then rounds of fp16, a, b … in turn; median', rows: steps.map((s) => ({ ...s, type: types.get(s.file) })) } } : {}) }, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
