#!/usr/bin/env node
// The `ssd` command line: generate (text-to-image and img2img), tokenize, info. Errors are one line on
// stderr with a distinct exit code per error class (see docs/errors.md).
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AbortError, add, ConfigError, createContext, DeviceLimitError, DeviceLostError, encodeSafetensors, GpuError, InvalidArgumentError,
  KernelCompileError, ModelLoadError, NumericalError, SsdError,
} from '@ssd/tensor';
import { CLIPTokenizer } from '@ssd/clip';
import { num, parseArgs, str } from './cli-args.js';
import { checkFinite, checkSize, checkSteps } from './options.js';
import { encodePng, formatParameters } from './png.js';
import { decodePng } from './png-decode.js';
import { Progress } from './progress.js';
import { createScheduler, SCHEDULER_NAMES } from './schedulers/index.js';
import { StableDiffusionXLPipeline } from './stable-diffusion-xl.js';

const HELP = `usage: ssd <command> [options]

commands:
  generate    make an image (text-to-image, or img2img with --init-image)
  tokenize    print the 77 token ids of a prompt as JSON
  info        print the WebGPU adapter, its features and limits, and run a smoke kernel
  help        this text

ssd generate [--model <dir|url>] --prompt <text> [--negative <text>] [--steps N] [--guidance G]
             [--width W] [--height H] [--seed S] [--scheduler ${SCHEDULER_NAMES.join('|')}]
             [--dtype f16|f32] [--num-images N] [--strength X --init-image <png>] [--vae <dir|url>]
             [--out <file.png>] [--out-latents <file.safetensors>] [--report <file.json>] [--low-memory]
  Without --model, the bundled tiny test model is used (random weights: its images are noise).
ssd tokenize --model <dir> [--which 1|2] <text>
`;

/** Exit codes per error class (docs/errors.md). */
export function exitCode(e: unknown): number {
  if (e instanceof AbortError) return 130;
  if (e instanceof InvalidArgumentError) return 2;
  if (e instanceof ConfigError) return 3;
  if (e instanceof ModelLoadError) return 4;
  if (e instanceof DeviceLimitError) return 5;
  if (e instanceof DeviceLostError) return 6;
  if (e instanceof NumericalError) return 7;
  if (e instanceof GpuError || e instanceof KernelCompileError) return 8;
  return 1;
}

function bundledModel(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../../fixtures/models/tiny-ssd1b', '../fixtures/tiny-ssd1b']) {
    const p = resolve(here, rel);
    if (existsSync(`${p}/model_index.json`)) return p;
  }
  return null;
}

async function generate(argv: string[]): Promise<void> {
  const args = parseArgs(argv, {
    values: ['model', 'prompt', 'negative', 'steps', 'guidance', 'width', 'height', 'seed', 'scheduler', 'dtype', 'num-images', 'strength', 'init-image', 'vae', 'out', 'out-latents', 'report', 'guidance-rescale', 'variant'],
    flags: ['low-memory', 'quiet'],
  });
  if (args.positionals.length) throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(args.positionals[0])} (quote the prompt and pass it with --prompt)`);
  const prompt = str(args, 'prompt');
  if (prompt === undefined) throw new InvalidArgumentError('--prompt is required');
  let model = str(args, 'model');
  if (!model) {
    model = bundledModel() ?? undefined;
    if (!model) throw new InvalidArgumentError('no --model given and the bundled tiny test model is not installed here');
    console.error('note: no --model given: using the bundled tiny test model (random weights, so the image is noise)');
  } else if (!/^https?:\/\//.test(model) && !existsSync(model)) {
    throw new ModelLoadError(`model folder not found: ${model}`);
  }
  const dtype = str(args, 'dtype');
  if (dtype !== undefined && dtype !== 'f16' && dtype !== 'f32') throw new InvalidArgumentError(`--dtype ${JSON.stringify(dtype)}: use f16 or f32`);
  const scheduler = str(args, 'scheduler');
  if (scheduler !== undefined) createScheduler(scheduler, {}); // unknown names fail now, with the list
  const initImagePath = str(args, 'init-image');
  const strength = num(args, 'strength', 'float');
  if (strength !== undefined && !initImagePath) throw new InvalidArgumentError('--strength needs --init-image');
  const seedArg = args.options.get('seed');
  if (seedArg !== undefined && (seedArg === true || !/^\d+$/.test(seedArg) || !Number.isSafeInteger(Number(seedArg)))) {
    throw new InvalidArgumentError(`--seed ${JSON.stringify(seedArg)}: must be an integer in [0, 2^53)`);
  }
  // cheap checks before minutes of loading (the pipeline checks everything again)
  const w = num(args, 'width', 'int');
  const h = num(args, 'height', 'int');
  if (w !== undefined) checkSize('width', w, 4096);
  if (h !== undefined) checkSize('height', h, 4096);
  const steps = num(args, 'steps', 'int');
  if (steps !== undefined) checkSteps(steps);
  const g = num(args, 'guidance', 'float');
  if (g !== undefined) checkFinite('guidanceScale', g);
  const quiet = args.options.has('quiet');
  const out = str(args, 'out') ?? 'out.png';
  const loadStart = performance.now();
  const loadBar = new Progress('loading', quiet);
  const pipe = await StableDiffusionXLPipeline.fromPretrained(model, {
    dtype: dtype as 'f16' | 'f32' | undefined,
    variant: str(args, 'variant') ?? (dtype === 'f32' ? undefined : 'fp16'),
    scheduler,
    vae: str(args, 'vae'),
    memory: args.options.has('low-memory') ? 'low' : 'resident',
    onLoadProgress: (p) => loadBar.bytes(p.component, p.loadedBytes, p.totalBytes),
    onNotice: (m) => console.error(`note: ${m}`),
  });
  loadBar.done(`loaded ${model} in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);
  try {
    const common = {
      prompt,
      negativePrompt: str(args, 'negative'),
      numInferenceSteps: num(args, 'steps', 'int'),
      guidanceScale: num(args, 'guidance', 'float'),
      guidanceRescale: num(args, 'guidance-rescale', 'float'),
      width: num(args, 'width', 'int'),
      height: num(args, 'height', 'int'),
      seed: seedArg === undefined ? undefined : Number(seedArg),
      numImagesPerPrompt: num(args, 'num-images', 'int'),
    };
    const bar = new Progress('denoising', quiet);
    const onStep = ({ step, total }: { step: number; total: number }) => bar.step(step, total);
    let result;
    if (initImagePath) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(initImagePath));
      } catch (e) {
        throw new InvalidArgumentError(`--init-image ${initImagePath}: cannot read it (${(e as Error).message})`);
      }
      const image = decodePng(bytes, initImagePath);
      result = await pipe.img2img({ ...common, width: common.width ?? image.width, height: common.height ?? image.height, image, strength, onStep });
    } else {
      result = await pipe.generate({ ...common, onStep });
    }
    bar.done(`${result.report.stepMs.length} steps, ${result.report.itPerSec.toFixed(2)} it/s`);
    for (const w of result.report.truncated) console.error(`note: the prompt was cut to 77 tokens (${w[1]} tokens dropped): "${w[0].slice(0, 60)}…"`);
    const params = {
      prompt,
      negativePrompt: common.negativePrompt,
      steps: result.report.steps,
      scheduler: pipe.scheduler,
      guidanceScale: common.guidanceScale ?? 5,
      seed: result.seed,
      width: result.report.width,
      height: result.report.height,
      model,
      strength: initImagePath ? strength ?? 0.3 : undefined,
    };
    const files: string[] = [];
    for (let k = 0; k < result.images.length; k++) {
      const file = result.images.length === 1 ? out : out.replace(/(\.png)?$/i, `-${k + 1}.png`);
      await mkdir(dirname(resolve(file)), { recursive: true });
      await writeFile(file, encodePng(result.images[k], { text: { parameters: formatParameters({ ...params, seed: result.seed }) } }));
      files.push(file);
    }
    const latentsOut = str(args, 'out-latents');
    if (latentsOut) {
      await writeFile(latentsOut, encodeSafetensors({ latents: { dtype: 'F32', shape: result.latents.shape, data: result.latents.data } }, { format: 'pt', seed: String(result.seed) }));
      files.push(latentsOut);
    }
    const reportOut = str(args, 'report');
    if (reportOut) {
      await writeFile(reportOut, JSON.stringify({ ...result.report, model, seed: result.seed, files, processPeakRssBytes: process.resourceUsage().maxRSS * 1024 }, null, 2));
      files.push(reportOut);
    }
    console.error(`wrote ${files.join(', ')} (seed ${result.seed})`);
  } finally {
    await pipe.dispose();
  }
}

async function tokenize(argv: string[]): Promise<void> {
  const args = parseArgs(argv, { values: ['model', 'which'], flags: [] });
  const model = str(args, 'model') ?? bundledModel();
  if (!model) throw new InvalidArgumentError('--model is required');
  const which = str(args, 'which') ?? '1';
  if (which !== '1' && which !== '2') throw new InvalidArgumentError(`--which ${JSON.stringify(which)}: use 1 or 2`);
  if (!args.positionals.length) throw new InvalidArgumentError('give the text to tokenize');
  const tok = await CLIPTokenizer.fromPretrained(model, which === '1' ? 'tokenizer' : 'tokenizer_2');
  const e = tok.encode(args.positionals.join(' '));
  console.log(JSON.stringify(e.ids));
  if (e.truncatedTokens) console.error(`note: ${e.truncatedTokens} tokens were cut off at 77`);
}

async function info(): Promise<void> {
  const ctx = await createContext();
  const i = ctx.info;
  console.log(`adapter:  ${i.description} (${i.vendor}/${i.architecture}${i.device ? '/' + i.device : ''}, ${i.runtime})`);
  console.log(`features: ${i.features.join(', ')}`);
  if (i.disabledFeatures.length) console.log(`disabled: ${i.disabledFeatures.join(', ')}`);
  if (i.subgroupMinSize) console.log(`subgroups: ${i.subgroupMinSize}–${i.subgroupMaxSize}`);
  console.log('limits:');
  for (const [k, v] of Object.entries(i.limits)) console.log(`  ${k.padEnd(36)} ${v.toLocaleString('en-US')}`);
  const n = 1 << 20;
  const a = ctx.fromData(Float32Array.from({ length: n }, (_, k) => k), [n]);
  const b = ctx.fromData(Float32Array.from({ length: n }, (_, k) => 2 * k), [n]);
  const t0 = performance.now();
  const c = await add(a, b).read();
  let bad = 0;
  for (let k = 0; k < n; k++) if (c[k] !== 3 * k) bad++;
  console.log(`smoke:    add of 2×${n.toLocaleString('en-US')} floats: ${bad === 0 ? 'correct' : `${bad} WRONG`} (${(performance.now() - t0).toFixed(1)} ms)`);
  ctx.destroy();
  if (bad) process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const [cmd = 'help', ...rest] = argv;
  switch (cmd) {
    case 'generate':
      return generate(rest);
    case 'tokenize':
      return tokenize(rest);
    case 'info':
      return info();
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return;
    default:
      throw new InvalidArgumentError(`unknown command "${cmd}" (commands: generate, tokenize, info, help)`);
  }
}

main(process.argv.slice(2)).catch((e: unknown) => {
  const msg = e instanceof SsdError ? e.message : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  console.error(`ssd: ${msg.split('\n').join('\n     ')}`);
  process.exitCode = exitCode(e);
});
