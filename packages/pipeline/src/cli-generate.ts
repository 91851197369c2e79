// `ssd generate`: text-to-image, img2img with --init-image, inpainting with --mask or --outpaint. Every option is checked before the
// model loads (minutes for SSD-1B); the PNG carries the generation parameters A1111-style.
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, InvalidArgumentError, openModelSource, readComponentConfig } from '@ssd/tensor';
import { inpaintFromFlags, readPngFlag } from './cli-inpaint.js';
import { resolveInpaint, type InpaintOptions } from './inpaint-options.js';
import { bytesArg, num, parseArgs, str } from './cli-args.js';
import { PROMPT_FILE_OPTIONS, readCliPrompts } from './cli-prompt.js';
import { checkFinite, checkSize, checkSteps, parseSeed, resolveRun, type GenerateOptions, type Img2ImgOptions } from './options.js';
import { prepareOutputPath } from './cli-output-paths.js';
import { encodePng, formatParameters } from './png.js';
import { formatRate, Progress } from './progress.js';
import { createScheduler, SCHEDULER_NAMES } from './schedulers/index.js';
import { loadCliLoras, loraHash, parseLoraArg } from './cli-lora.js';
import { modelKind, openPipeline } from './cli-model.js';

export const GENERATE_HELP = `ssd generate [--model <dir|url|file.safetensors|file.gguf> [--base <dir>]] --prompt <text> [--negative <text>] [--steps N] [--guidance G]
             [--width W] [--height H] [--seed S] [--scheduler ${SCHEDULER_NAMES.join('|')}]
             [--dtype f16|f32] [--num-images N] [--strength X --init-image <png>] [--vae <dir|url>]
             [--mask <png> | --outpaint L,R,T,B] (with --init-image: inpaint; white repaints)
             [--clip-skip N] [--guidance-rescale X] [--variant fp16] [--allow-degenerate]
             [--lora <file|url>[:scale]]… [--lora-scale S] [--unet <dir|url>]
             [--out <file.png>] [--out-latents <file.safetensors>] [--report <file.json>] [--low-memory]
             [--cfg-batch together|split] [--memory-budget <size, e.g. 3GB>]
  Without --model, the bundled tiny test model is used (random weights: its images are noise).
  A single-file checkpoint (.safetensors or .gguf, e.g. from ssd quantize) loads directly; --base gives a UNet-only file the rest.
  --lora (repeatable) loads a LoRA in any common layout at its scale (default 1); --lora-scale scales them all
  for the run (diffusers' cross_attention_kwargs scale); --unet swaps in another UNet (e.g. an LCM-distilled one).
  Few-step: --scheduler lcm --steps 4 --guidance 1 with an LCM-LoRA (Segmind-VegaRT, lcm-lora-ssd-1b).
  --seed takes any integer torch's manual_seed accepts (up to 2^64 − 1).
  --prompt-file <path|->, --negative-prompt-file <path|->: the prompt verbatim from a UTF-8 file or
  stdin (-), for prompts with quotes, !, $ or newlines; only a BOM and one final line break are dropped.
  --cfg-batch split: guidance's two UNet passes one after the other (half the activations; --low-memory's default).
  --memory-budget 3GB (GB = 10^9, GiB = 2^30): the GPU memory the run may hold; what cannot fit is refused
  before loading or before the first step, the VAE decodes in tiles that fit; the report records the peaks.
  --verbose (or SSD_VERBOSE=1): also show Dawn's start-up notes on stderr (generate, info).
`;

/** The bundled tiny test model (the repository's fixtures), when present. */
export function bundledModel(): string | null {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../../fixtures/models/tiny-ssd1b', '../fixtures/tiny-ssd1b']) {
    const p = resolve(here, rel);
    if (existsSync(`${p}/model_index.json`)) return p;
  }
  return null;
}

export async function generate(argv: string[]): Promise<void> {
  const args = parseArgs(argv, {
    values: ['model', 'prompt', 'negative', 'steps', 'guidance', 'width', 'height', 'seed', 'scheduler', 'dtype', 'num-images', 'strength', 'init-image', 'vae', 'out', 'out-latents', 'report', 'guidance-rescale', 'variant', 'clip-skip', 'base', 'unet', 'lora-scale', 'mask', 'outpaint', 'cfg-batch', 'memory-budget', ...PROMPT_FILE_OPTIONS],
    repeatable: ['lora'],
    flags: ['low-memory', 'quiet', 'allow-degenerate', 'verbose'],
  });
  if (args.positionals.length) throw new InvalidArgumentError(`unexpected argument ${JSON.stringify(args.positionals[0])} (quote the prompt and pass it with --prompt)`);
  const cfgBatch = str(args, 'cfg-batch');
  if (cfgBatch !== undefined && cfgBatch !== 'together' && cfgBatch !== 'split') throw new InvalidArgumentError(`--cfg-batch ${JSON.stringify(cfgBatch)}: use together or split`);
  const memoryBudgetBytes = bytesArg(args, 'memory-budget');
  const { prompt, negativePrompt } = await readCliPrompts(args); // --prompt / --prompt-file (cli-prompt.ts)
  let model = str(args, 'model');
  if (!model) {
    model = bundledModel() ?? undefined;
    if (!model) throw new InvalidArgumentError('no --model given and the bundled tiny test model is not installed here');
    console.error('note: no --model given: using the bundled tiny test model (random weights, so the image is noise)');
  } else {
    modelKind(model); // a missing path fails now
  }
  const dtype = str(args, 'dtype');
  if (dtype !== undefined && dtype !== 'f16' && dtype !== 'f32') throw new InvalidArgumentError(`--dtype ${JSON.stringify(dtype)}: use f16 or f32`);
  const scheduler = str(args, 'scheduler');
  if (scheduler !== undefined) createScheduler(scheduler, {}); // unknown names fail now, with the list
  const initImagePath = str(args, 'init-image');
  const strength = num(args, 'strength', 'float');
  if (strength !== undefined && !initImagePath) throw new InvalidArgumentError('--strength needs --init-image');
  for (const f of ['mask', 'outpaint']) if (args.options.has(f) && !initImagePath) throw new InvalidArgumentError(`--${f} needs --init-image (the image to ${f === 'mask' ? 'inpaint' : 'outpaint'})`);
  const seedArg = args.options.get('seed');
  if (seedArg === true) throw new InvalidArgumentError('--seed needs a value');
  const seed = seedArg === undefined ? undefined : parseSeed(seedArg, '--seed');
  // cheap checks before minutes of loading (the pipeline checks everything again)
  const w = num(args, 'width', 'int');
  const h = num(args, 'height', 'int');
  if (w !== undefined) checkSize('width', w, 4096);
  if (h !== undefined) checkSize('height', h, 4096);
  const steps = num(args, 'steps', 'int');
  if (steps !== undefined) checkSteps(steps);
  const g = num(args, 'guidance', 'float');
  if (g !== undefined) checkFinite('guidanceScale', g);
  const clipSkip = num(args, 'clip-skip', 'int');
  if (clipSkip !== undefined && clipSkip < 0) throw new InvalidArgumentError(`--clip-skip ${clipSkip}: must be an integer ≥ 0`);
  const quiet = args.options.has('quiet');
  const out = str(args, 'out') ?? 'out.png';
  const common: GenerateOptions = {
    prompt,
    negativePrompt,
    numInferenceSteps: steps,
    guidanceScale: g,
    guidanceRescale: num(args, 'guidance-rescale', 'float'),
    width: w,
    height: h,
    seed,
    clipSkip,
    numImagesPerPrompt: num(args, 'num-images', 'int'),
    allowDegenerate: args.options.has('allow-degenerate'),
    loraScale: num(args, 'lora-scale', 'float'),
  };
  const loras = (args.lists.get('lora') ?? []).map(parseLoraArg);
  // everything a run needs is checked before the model loads (minutes for SSD-1B): output paths,
  // the init image, and every option as the pipeline will check it
  for (const flag of ['out', 'out-latents', 'report']) {
    const file = flag === 'out' ? out : str(args, flag);
    if (file !== undefined) await prepareOutputPath(flag, file);
  }
  let img2img: Img2ImgOptions | null = null;
  let inpaint: InpaintOptions | null = null;
  if (initImagePath) {
    // the PNG's header is checked before anything is inflated (img2img: against the output size; inpainting resizes)
    const image = await readPngFlag('init-image', initImagePath, str(args, 'mask') || str(args, 'outpaint') ? {} : { expectedWidth: w, expectedHeight: h });
    inpaint = await inpaintFromFlags(common, image, strength, str(args, 'mask'), str(args, 'outpaint'));
    if (!inpaint) img2img = { ...common, width: common.width ?? image.width, height: common.height ?? image.height, image, strength };
  }
  // the UNet's config says whether it is an inpainting UNet (9 input channels), which needs --mask
  const unetDir = str(args, 'unet');
  const unetConfig = unetDir ? openModelSource(unetDir).readText('config.json').then(JSON.parse) : modelKind(model) === 'folder' ? readComponentConfig(openModelSource(model), 'unet') : Promise.reject();
  const unetInChannels = await unetConfig.then((c) => (c as { in_channels?: number }).in_channels, () => undefined);
  const facts = { defaultSize: 1024, latentChannels: 4, guidanceEmbedding: false, unetInChannels };
  if (inpaint) resolveInpaint(inpaint, facts);
  else resolveRun(img2img ?? common, facts, img2img);
  const loadStart = performance.now();
  const loadBar = new Progress('loading', quiet);
  const pipe = await openPipeline(model, {
    dtype: dtype as 'f16' | 'f32' | undefined,
    variant: str(args, 'variant') ?? (dtype === 'f32' ? undefined : 'fp16'),
    scheduler,
    vae: str(args, 'vae'),
    unet: str(args, 'unet'),
    memory: args.options.has('low-memory') ? 'low' : 'resident',
    cfgBatch,
    memoryBudgetBytes,
    onLoadProgress: (p) => loadBar.bytes(p.component, p.loadedBytes, p.totalBytes),
    onNotice: (m) => console.error(`note: ${m}`),
  }, str(args, 'base'));
  loadBar.done(`loaded ${model} in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);
  try {
    await loadCliLoras(pipe, loras);
    const bar = new Progress('denoising', quiet);
    const onStep = ({ step, total }: { step: number; total: number }) => bar.step(step, total);
    const result = inpaint ? await pipe.inpaint({ ...inpaint, onStep }) : img2img ? await pipe.img2img({ ...img2img, onStep }) : await pipe.generate({ ...common, onStep });
    bar.done(`${result.report.stepMs.length} steps, ${formatRate(result.report.itPerSec)}`);
    for (const t of result.report.truncated) console.error(`note: the prompt was cut to 77 tokens (${t[2] ? '' : 'at least '}${t[1]} tokens dropped): "${t[0].slice(0, 60)}…"`);
    const params = {
      prompt,
      negativePrompt,
      steps: result.report.steps,
      scheduler: pipe.scheduler,
      guidanceScale: common.guidanceScale ?? 5,
      seed: result.seed,
      width: result.report.width,
      height: result.report.height,
      model,
      strength: inpaint ? strength ?? 0.9999 : initImagePath ? strength ?? 0.3 : undefined,
      loras: await Promise.all(loras.map(async (l) => ({ name: l.name, scale: l.scale * (common.loraScale ?? 1), hash: await loraHash(l.source) }))),
    };
    const files: string[] = [];
    for (let k = 0; k < result.images.length; k++) {
      const file = result.images.length === 1 ? out : out.replace(/(\.png)?$/i, `-${k + 1}.png`);
      await writeFile(file, encodePng(result.images[k], { text: { parameters: formatParameters(params) } }));
      files.push(file);
    }
    const latentsOut = str(args, 'out-latents');
    if (latentsOut) {
      await writeFile(latentsOut, encodeSafetensors({ latents: { dtype: 'F32', shape: result.latents.shape, data: result.latents.data } }, { format: 'pt', seed: String(result.seed) }));
      files.push(latentsOut);
    }
    const reportOut = str(args, 'report');
    if (reportOut) {
      await writeFile(reportOut, JSON.stringify({ ...result.report, model, memoryBudgetBytes, seed: typeof result.seed === 'bigint' ? String(result.seed) : result.seed, files, processPeakRssBytes: process.resourceUsage().maxRSS * 1024 }, null, 2));
      files.push(reportOut);
    }
    const budget = memoryBudgetBytes ? ` of a ${(memoryBudgetBytes / 1e9).toFixed(2)} GB budget` : '';
    console.error(`wrote ${files.join(', ')} (seed ${result.seed}; peak GPU memory ${(result.report.peakBytes / 1e9).toFixed(3)} GB${budget})`);
  } finally {
    await pipe.dispose();
  }
}
