// pnpm bench:inpaint [--arch ssd-1b] [--size 1024] [--steps 25] [--strength 0.75] [--dtype f16|f32]
//                    [--model <dir>] [--models-dir models] [--out file.json]
//
// Inpainting against text-to-image on the same adapter and model, one run after the other (issue 18):
// StableDiffusionXLPipeline.generate, then .inpaint of that image with a centred mask at --strength
// (4-channel UNet: ⌊steps·strength⌋ steps, one VAE encode of the image; the masked image's encode is
// skipped, see the pipeline README). Expected cost: ~strength × the denoising time plus one encode.
// A one-step warm-up of each compiles the kernels first.
// On a CPU adapter the size defaults to 256² (a 1024² run takes hours there) and the result says so.
// Model: a random-weight folder from make-random-model, as bench:pipeline. Writes
// bench/results/inpaint-<arch>-<size>-<adapter>.json and prints a table.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createContext } from '@ssd/tensor';
import { StableDiffusionXLPipeline, type GenerateResult } from '@ssd/pipeline';
import { makeRandomModel } from './lib/make-random-model.js';
import { ARCHS, repoRoot, type Arch } from './lib/random-model.js';
import { adapterRecord, fmtMs, hostRecord, mib, resultSlug } from './lib/timing.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    arch: { type: 'string', default: 'ssd-1b' },
    size: { type: 'string' },
    steps: { type: 'string', default: '25' },
    strength: { type: 'string', default: '0.75' },
    dtype: { type: 'string' },
    model: { type: 'string' },
    'models-dir': { type: 'string', default: join(repoRoot, 'models') },
    prompt: { type: 'string', default: 'a bowl of oranges on a wooden table, soft light' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});

function summary(r: GenerateResult) {
  const rep = r.report;
  const steady = rep.stepMs.slice(1);
  return {
    totalMs: rep.totalMs, textEncodeMs: rep.textEncode.ms, denoiseMs: rep.denoise.ms, decodeMs: rep.decode.ms, steps: rep.stepMs.length,
    stepMsMean: rep.stepMs.reduce((a, b) => a + b, 0) / Math.max(1, rep.stepMs.length),
    steadyStepMsMean: steady.length ? steady.reduce((a, b) => a + b, 0) / steady.length : null, peakBytes: rep.peakBytes,
    // the denoise stage starts with the initial latents: for inpainting the image's VAE encode
    latentsMs: rep.denoise.ms - rep.stepMs.reduce((x, y) => x + y, 0),
  };
}

async function main(): Promise<void> {
  const arch = args.arch as Arch;
  if (!ARCHS.includes(arch)) throw new Error(`--arch ${JSON.stringify(args.arch)}: use ${ARCHS.join(', ')}`);
  const ctx = await createContext();
  const cpu = ctx.info.isCpu;
  const size = Number(args.size ?? (cpu ? 256 : 1024));
  const steps = Number(args.steps);
  const strength = Number(args.strength);
  const dtype = (args.dtype ?? (ctx.f16 ? 'f16' : 'f32')) as 'f16' | 'f32';
  console.log(`adapter: ${ctx.info.description} (${ctx.f16 ? 'f16' : 'no f16'})`);
  const reduced = size < 1024;
  if (reduced) console.log(`note: ${size}² instead of the issue's 1024²${cpu ? ' (a CPU adapter: 1024² takes hours)' : ''}; pass --size 1024 for the recorded measurement`);
  const dir = resolve(args.model ?? join(args['models-dir']!, `${arch}-${dtype}`));
  if (!existsSync(join(dir, 'model_index.json'))) {
    if (args.model) throw new Error(`--model ${dir}: no model_index.json there`);
    console.log(`making the random ${arch} model in ${dir} (make-random-model --dtype ${dtype})`);
    await makeRandomModel({ arch, out: dir, dtypes: [dtype === 'f16' ? 'F16' : 'F32'], log: (l) => console.log(`  ${l}`) });
  }
  const pipe = await StableDiffusionXLPipeline.fromPretrained(dir, { context: ctx, dtype, variant: dtype === 'f16' ? 'fp16' : undefined, onNotice: (m) => console.log(`note: ${m}`) });
  try {
    const common = { prompt: args.prompt!, numInferenceSteps: steps, width: size, height: size, seed: Number(args.seed), guidanceScale: 5, allowDegenerate: true };
    const log = (what: string) => ({ step, total }: { step: number; total: number }) => void (cpu && console.log(`  ${what} step ${step}/${total}`));
    // a centred square mask over a quarter of the image
    const mask = new Uint8Array(size * size);
    for (let y = size / 4; y < (3 * size) / 4; y++) mask.fill(255, y * size + size / 4, y * size + (3 * size) / 4);
    const maskImage = { width: size, height: size, data: mask, channels: 1 as const };
    // warm-up: one step of each compiles their kernels (the VAE encoder's too), so neither timed run pays for compiling
    console.log('warm-up: one step of each');
    const warm = await pipe.generate({ ...common, numInferenceSteps: 1 });
    await pipe.inpaint({ ...common, numInferenceSteps: 1, strength: 1, image: warm.images[0], maskImage });
    console.log(`text-to-image: ${size}², ${steps} steps`);
    const t2i = await pipe.generate({ ...common, onStep: log('text-to-image') });
    console.log(`inpaint: strength ${strength} (${Math.floor(steps * strength)} steps)`);
    const inp = await pipe.inpaint({ ...common, strength, image: t2i.images[0], maskImage, onStep: log('inpaint') });
    const a = summary(t2i);
    const b = summary(inp);
    const out = {
      bench: 'inpaint', date: new Date().toISOString(), arch, size, reducedSize: reduced, steps, strength, dtype, unetInChannels: pipe.components.unetSpec.inChannels,
      adapter: adapterRecord(ctx), host: await hostRecord(), model: dir,
      textToImage: a, inpaint: b,
      ratio: { total: b.totalMs / a.totalMs, denoise: b.denoiseMs / a.denoiseMs, expectedDenoise: Math.floor(steps * strength) / steps },
    };
    console.log('\n| run | steps | text encode | initial latents (inpaint: the image encode) | steps | decode | total | peak GPU |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [name, s] of [['text-to-image', a], ['inpaint', b]] as const) {
      console.log(`| ${name} | ${s.steps} | ${fmtMs(s.textEncodeMs)} ms | ${fmtMs(s.latentsMs)} ms | ${fmtMs(s.denoiseMs - s.latentsMs)} ms | ${fmtMs(s.decodeMs)} ms | ${fmtMs(s.totalMs)} ms | ${mib(s.peakBytes)} MiB |`);
    }
    console.log(`inpaint / text-to-image: total ${out.ratio.total.toFixed(2)}, denoise ${out.ratio.denoise.toFixed(2)} (steps ratio ${out.ratio.expectedDenoise.toFixed(2)})`);
    const file = args.out ?? `${here}results/inpaint-${arch}-${size}-${resultSlug(ctx)}.json`;
    await mkdir(`${here}results`, { recursive: true });
    await writeFile(file, JSON.stringify(out, null, 2) + '\n');
    console.log(`wrote ${file}`);
  } finally {
    await pipe.dispose();
    ctx.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
