// One generation: validate options, encode the prompt, prepare (or img2img-encode) the latents, run
// the scheduler loop with classifier-free guidance, decode, and report per-stage times and peak GPU
// memory. Every GPU tensor of the run is freed on success, error and abort alike.
import { AbortError, DeviceLimitError, InvalidArgumentError, NumericalError, throwIfAborted, type GpuContext, type Tensor } from '@ssd/tensor';
import { cast, guidance, mul, nhwcToNchw, nonFiniteFlag, stdPerSample } from '@ssd/kernels';
import { planUNetMemory } from '@ssd/unet';
import { gatherBatch } from './batch.js';
import { downloadNCHW, GpuLatentOps, randnNHWC, uploadNCHW } from './gpu-latent-ops.js';
import { latentPreview } from './image.js';
import { checkFinite, checkPair, checkSeed, checkSize, checkSteps, promptList, randomSeed, type GenerateOptions, type Img2ImgOptions, type RgbaImage } from './options.js';
import { encodePrompt } from './prompt-encoding.js';
import { AutoencoderTiny, denormalize, toRgba8 } from '@ssd/vae';
import { TorchGenerator } from './random/torch-generator.js';
import type { GenerateResult, StableDiffusionXLPipeline } from './stable-diffusion-xl.js';

export interface StageReport {
  ms: number;
  /** Peak GPU bytes held by the context during the stage. */
  peakBytes: number;
}

export interface RunReport {
  adapter: string;
  dtype: string;
  scheduler: string;
  width: number;
  height: number;
  steps: number;
  batch: number;
  loadMs: number;
  textEncode: StageReport;
  /** Per denoising step, ms (each ended by a completed queue). */
  stepMs: number[];
  denoise: StageReport;
  decode: StageReport;
  totalMs: number;
  itPerSec: number;
  peakBytes: number;
  /** Prompts cut at 77 tokens: [prompt, tokens cut]. */
  truncated: [string, number][];
  notices: string[];
}

export type RunResult = GenerateResult;

const MAX_SIDE = 4096;

export async function runDenoise(pipe: StableDiffusionXLPipeline, o: GenerateOptions, img2img: Img2ImgOptions | null): Promise<RunResult> {
  const ctx = pipe.ctx;
  const t0 = performance.now();
  // ---- options
  const prompt = promptList('prompt', o.prompt, true)!;
  const prompt2 = promptList('prompt2', o.prompt2, false);
  const negativePrompt = promptList('negativePrompt', o.negativePrompt, false);
  const negativePrompt2 = promptList('negativePrompt2', o.negativePrompt2, false);
  const steps = checkSteps(o.numInferenceSteps ?? 50);
  const g = checkFinite('guidanceScale', o.guidanceScale ?? 5.0);
  const phi = checkFinite('guidanceRescale', o.guidanceRescale ?? 0, 0);
  if (phi > 1) throw new InvalidArgumentError(`guidanceRescale = ${phi}: must be in [0, 1]`);
  const width = checkSize('width', o.width ?? img2img?.image.width ?? pipe.defaultSize, MAX_SIDE);
  const height = checkSize('height', o.height ?? img2img?.image.height ?? pipe.defaultSize, MAX_SIDE);
  const n = o.numImagesPerPrompt ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`numImagesPerPrompt = ${n}: must be an integer in 1..64`);
  const seed = o.seed === undefined ? randomSeed() : checkSeed(o.seed);
  const originalSize = o.originalSize ? checkPair('originalSize', o.originalSize) : [height, width];
  const crops = o.cropsCoordsTopLeft ? checkPair('cropsCoordsTopLeft', o.cropsCoordsTopLeft) : [0, 0];
  const targetSize = o.targetSize ? checkPair('targetSize', o.targetSize) : [height, width];
  const negOriginal = o.negativeOriginalSize ? checkPair('negativeOriginalSize', o.negativeOriginalSize) : originalSize;
  const negCrops = o.negativeCropsCoordsTopLeft ? checkPair('negativeCropsCoordsTopLeft', o.negativeCropsCoordsTopLeft) : crops;
  const negTarget = o.negativeTargetSize ? checkPair('negativeTargetSize', o.negativeTargetSize) : targetSize;
  const strength = img2img ? checkFinite('strength', img2img.strength ?? 0.3) : 1;
  if (img2img && !(strength > 0 && strength <= 1)) throw new InvalidArgumentError(`strength = ${strength}: must be in (0, 1]`);
  const b = prompt.length * n;
  const h = height / 8;
  const w = width / 8;
  const cin = pipe.unetSpec.inChannels;
  if (o.latents && o.latents.length !== b * cin * h * w) {
    throw new InvalidArgumentError(`latents has ${o.latents.length} values; expected ${b}×${cin}×${h}×${w} = ${b * cin * h * w} (NCHW for ${width}×${height})`);
  }
  if (img2img) checkInitImage(img2img.image, width, height);
  const guided = g > 1; // diffusers: do_classifier_free_guidance = guidance_scale > 1 (and no time_cond_proj_dim)
  checkFits(pipe, guided ? 2 * b : b, width, height);
  const signal = o.signal;
  const scheduler = pipe.makeScheduler();
  scheduler.setTimesteps(steps);
  const ops = new GpuLatentOps(ctx);
  const generator = new TorchGenerator(seed);
  const notices: string[] = [];
  const live = new Set<Tensor>(); // everything of this run still on the GPU
  const track = <T extends Tensor>(t: T) => (live.add(t), t);
  const drop = (t: Tensor | undefined) => {
    if (t) {
      live.delete(t);
      t.dispose();
    }
  };
  // low-memory mode: the pool keeps only small free buffers during the run. A large pool holds
  // buffers of many size classes at once — SSD-1B at 1024²: 255 MiB of live UNet activations but
  // 629 MiB with the default 512 MiB pool, 268 MiB with this cap — at the cost of creating the
  // large buffers again every step.
  const releasePoolCap = pipe.lowMemory ? capPool(ctx) : () => {};
  const stage = () => {
    // low-memory mode: free buffers the last stage pooled, so each stage's peak is its own
    if (pipe.lowMemory) ctx.trim();
    ctx.resetPeak();
    return performance.now();
  };
  const report: RunReport = {
    adapter: ctx.info.description, dtype: pipe.dtype, scheduler: pipe.scheduler, width, height, steps, batch: b, loadMs: pipe.loadMs,
    textEncode: { ms: 0, peakBytes: 0 }, stepMs: [], denoise: { ms: 0, peakBytes: 0 }, decode: { ms: 0, peakBytes: 0 }, totalMs: 0, itPerSec: 0, peakBytes: 0, truncated: [], notices,
  };
  let peak = 0;
  const endStage = (s: { ms: number; peakBytes: number }, start: number) => {
    s.ms = performance.now() - start;
    s.peakBytes = ctx.memory.peakBytes;
    peak = Math.max(peak, s.peakBytes);
  };
  try {
    throwIfAborted(signal, 'generation');
    // ---- text
    let s0 = stage();
    const encoders = await pipe.acquireTextEncoders(signal);
    let embeds;
    try {
      throwIfAborted(signal, 'text encoding');
      embeds = encodePrompt(
        { tokenizer: pipe.tokenizers[0], tokenizer2: pipe.tokenizers[1], textEncoder: encoders[0], textEncoder2: encoders[1] },
        { prompt, prompt2, negativePrompt, negativePrompt2, numImagesPerPrompt: n, guidance: guided, forceZerosForEmptyPrompt: pipe.forceZerosForEmptyPrompt },
      );
      track(embeds.promptEmbeds);
      track(embeds.pooled);
      await ctx.sync();
    } finally {
      pipe.releaseTextEncoders(encoders);
    }
    report.truncated = embeds.truncated;
    endStage(report.textEncode, s0);
    throwIfAborted(signal, 'text encoding');
    const timeIds = [
      ...(guided ? Array(b).fill([...negOriginal, ...negCrops, ...negTarget]) : []),
      ...Array(b).fill([...originalSize, ...crops, ...targetSize]),
    ] as number[][];

    // ---- latents
    s0 = stage();
    let timesteps = Array.from(scheduler.timesteps);
    let latents: Tensor;
    if (img2img) {
      const init = await encodeInitImage(pipe, img2img, b, generator, signal, track, drop);
      // diffusers get_timesteps: skip the first (1 − strength) of the schedule
      const initTimestep = Math.min(Math.floor(steps * strength), steps);
      const tStart = Math.max(steps - initTimestep, 0);
      timesteps = timesteps.slice(tStart * scheduler.order);
      if (!timesteps.length) throw new InvalidArgumentError(`strength = ${strength} with ${steps} steps leaves no step to run; raise strength or steps`);
      scheduler.setBeginIndex(tStart * scheduler.order);
      const noise = track(o.latents ? uploadNCHW(ctx, o.latents, [b, cin, h, w]) : randnNHWC(ctx, generator, [b, h, w, cin]));
      latents = track(scheduler.addNoise(ops, init, noise, timesteps[0]));
      drop(init);
      drop(noise);
    } else {
      const x = track(o.latents ? uploadNCHW(ctx, o.latents, [b, cin, h, w]) : randnNHWC(ctx, generator, [b, h, w, cin]));
      latents = track(ops.combine([[x, scheduler.initNoiseSigma]]));
      drop(x);
    }

    // ---- denoise
    const unet = await pipe.acquireUNet(signal);
    try {
      // non-finite values are flagged on the GPU after every step (one u32 per step) and read back only
      // every CHECK_EVERY steps and at the end, so a NaN costs no per-step readback yet is named exactly
      const flags = track(ctx.fromData(new Uint32Array(timesteps.length), [timesteps.length], 'u32', 'non-finite flags'));
      const checkFlags = async (upTo: number) => {
        const f = (await flags.read()) as Uint32Array;
        const bad = f.subarray(0, upTo).findIndex((v) => v !== 0);
        if (bad >= 0) {
          throw new NumericalError(
            `the latents after denoising step ${bad + 1} of ${timesteps.length} (timestep ${timesteps[bad]})`,
            pipe.dtype === 'f16' ? 'The UNet runs in f16 here: retry with dtype f32 (--dtype f32); also check guidanceScale and the inputs.' : 'Check guidanceScale, the given latents and the model weights (a corrupt file?).',
          );
        }
      };
      for (let i = 0; i < timesteps.length; i++) {
        if (signal?.aborted) throw new AbortError(`generation aborted at step ${i + 1} of ${timesteps.length}`, { cause: signal.reason });
        const ts = performance.now();
        const t = timesteps[i];
        const scaled = track(scheduler.scaleModelInput(ops, latents, t));
        const input = guided ? track(gatherBatch([scaled], [...Array(b).keys(), ...Array(b).keys()].map((row) => ({ from: 0, row })), 'cfg batch')) : scaled;
        const eps = track(unet.forward({ sample: input, timestep: t, encoderHiddenStates: embeds.promptEmbeds, textEmbeds: embeds.pooled, timeIds }));
        if (input !== scaled) drop(input);
        drop(scaled);
        let noisePred: Tensor = track(guided ? guidance(eps, g, { outDtype: 'f32' }) : cast(eps, 'f32'));
        if (guided && phi > 0) noisePred = await rescaleNoiseCfg(noisePred, eps, b, phi, track, drop);
        drop(eps);
        const next = track(scheduler.step(ops, noisePred, t, latents, { generator }).prevSample);
        drop(noisePred);
        drop(latents);
        latents = next;
        const flag = nonFiniteFlag(latents);
        ctx.copyBuffer(flag.buffer, 0, flags.buffer, i * 4, 4);
        flag.dispose();
        // steps cost the same: sleep through most of a recent step's time before waiting. Not the
        // first step's: it compiles every kernel (a minute on a CPU adapter), and sleeping that long
        // would delay step 2 and a Cancel by as much.
        const measured = report.stepMs.slice(1).slice(-3);
        await ctx.sync({ expectedMs: measured.length ? Math.min(...measured) : 0 });
        if ((i + 1) % CHECK_EVERY === 0 || i === timesteps.length - 1) await checkFlags(i + 1);
        report.stepMs.push(performance.now() - ts);
        if (o.onStep) {
          const every = o.previewEvery ?? 1;
          let preview: RgbaImage | undefined;
          if (o.preview && (i % every === 0 || i === timesteps.length - 1)) preview = await makePreview(pipe, latents, w, h, cin);
          await o.onStep({ step: i + 1, total: timesteps.length, timestep: t, elapsedMs: performance.now() - t0, preview });
        }
      }
    } finally {
      pipe.releaseUNet(unet);
    }
    endStage(report.denoise, s0);
    const latentsNCHW = await downloadNCHW(latents);

    // ---- decode
    let images: RgbaImage[] = [];
    let floats: GenerateResult['floats'];
    if ((o.outputType ?? 'rgba') !== 'latent') {
      throwIfAborted(signal, 'decoding');
      s0 = stage();
      const vae = await pipe.acquireVae(signal, 'decoder');
      try {
        throwIfAborted(signal, 'decoding');
        const img = track(await vae.decodeLatents(latents, { signal }));
        const data = (await img.read()) as Float32Array;
        drop(img);
        const per = height * width * 3;
        const unit = Array.from({ length: b }, (_, k) => denormalize(data.subarray(k * per, (k + 1) * per)));
        if (o.outputType === 'float') floats = unit.map((d) => ({ width, height, data: d }));
        else images = unit.map((d) => toRgba8(d, width, height));
      } finally {
        pipe.releaseVae(vae);
      }
      endStage(report.decode, s0);
    }
    drop(latents);
    report.totalMs = performance.now() - t0;
    report.itPerSec = report.stepMs.length / (report.denoise.ms / 1000 || Infinity);
    report.peakBytes = peak;
    return { images, floats, latents: { shape: [b, cin, h, w], data: latentsNCHW }, seed, report };
  } finally {
    scheduler.dispose(ops); // multistep schedulers keep earlier model outputs
    for (const t of live) t.dispose();
    live.clear();
    if (!ctx.isLost) ctx.flush();
    releasePoolCap();
  }
}

const CHECK_EVERY = 8;
/** The pool's cap during a low-memory run. */
export const LOW_MEMORY_POOL_BYTES = 16 * 2 ** 20;
const poolCaps = new WeakMap<GpuContext, { runs: number; before: number }>();

/** Caps ctx's pool until the returned function is called by every run that capped it (runs of two pipelines sharing a context may overlap). */
function capPool(ctx: GpuContext): () => void {
  const cap = poolCaps.get(ctx) ?? { runs: 0, before: ctx.maxPooledBytes };
  if (cap.runs++ === 0) poolCaps.set(ctx, cap);
  ctx.maxPooledBytes = Math.min(cap.before, LOW_MEMORY_POOL_BYTES);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--cap.runs === 0) {
      poolCaps.delete(ctx);
      ctx.maxPooledBytes = cap.before;
    }
  };
}

/**
 * A preview of the first image: TAESD's decode when the pipeline's resident VAE is an AutoencoderTiny
 * (full resolution, cheap), else the linear latent → RGB map at latent resolution.
 */
async function makePreview(pipe: StableDiffusionXLPipeline, latents: Tensor, w: number, h: number, cin: number): Promise<RgbaImage> {
  const tiny = pipe.residentVae;
  if (tiny instanceof AutoencoderTiny) {
    const first = latents.shape[0] === 1 ? latents : gatherBatch([latents], [{ from: 0, row: 0 }], 'preview latents');
    try {
      const img = await tiny.decodeLatents(first);
      const data = (await img.read()) as Float32Array;
      img.dispose();
      return toRgba8(denormalize(data), w * 8, h * 8);
    } finally {
      if (first !== latents) first.dispose();
    }
  }
  const lat = (await latents.read()) as Float32Array;
  return latentPreview(lat.subarray(0, h * w * cin), w, h, cin);
}

/**
 * Refuses up front a size the device cannot run: a tensor some op must bind whole above
 * maxStorageBufferBindingSize, or activations beyond the context's memory budget (in low-memory
 * mode: a stage's weights, or the UNet's weights plus its activations, beyond it).
 */
function checkFits(pipe: StableDiffusionXLPipeline, rows: number, width: number, height: number): void {
  const ctx = pipe.ctx;
  const el = pipe.dtype === 'f16' ? 2 : 4;
  const plan = planUNetMemory(pipe.unetSpec, rows, height / 8, width / 8, el);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  const worst = plan.wholeBindings.reduce((a, x) => (x.bytes > a.bytes ? x : a), { what: '', bytes: 0 });
  if (worst.bytes > limit) {
    throw new DeviceLimitError('maxStorageBufferBindingSize', worst.bytes, limit, `${width}×${height} (UNet batch ${rows}, ${pipe.dtype}) needs ${worst.what} in one binding; choose a smaller size${el === 4 && ctx.f16 ? ' or dtype f16' : ''}`);
  }
  const free = ctx.memoryBudgetBytes - ctx.memory.liveBytes;
  const stages = pipe.stageWeightBytes;
  if (stages) {
    // low-memory mode: nothing of the model is loaded yet; the largest stage must fit on its own
    if (stages.textEncoders > free) {
      throw new DeviceLimitError('GPU memory budget (bytes)', stages.textEncoders, Math.max(0, Math.round(free)), 'the two text encoders\' weights (low-memory mode loads them for the text stage)');
    }
    const unetStage = stages.unet + plan.peakActivationBytes;
    if (unetStage > free) {
      throw new DeviceLimitError('GPU memory budget (bytes)', Math.round(unetStage), Math.max(0, Math.round(free)), `${width}×${height} (UNet batch ${rows}): the UNet's weights (${stages.unet.toLocaleString('en-US')} bytes) plus its estimated activations; choose a smaller size or fewer images`);
    }
    return;
  }
  if (plan.peakActivationBytes > free) {
    throw new DeviceLimitError('GPU memory budget (bytes)', Math.round(plan.peakActivationBytes), Math.max(0, Math.round(free)), `${width}×${height} (UNet batch ${rows}): estimated UNet activations beyond the weights already loaded; choose a smaller size or fewer images`);
  }
}

/** diffusers rescale_noise_cfg: φ·x·(std(cond)/std(x)) + (1 − φ)·x, per sample (std unbiased). */
async function rescaleNoiseCfg(x: Tensor, eps: Tensor, b: number, phi: number, track: <T extends Tensor>(t: T) => T, drop: (t: Tensor) => void): Promise<Tensor> {
  const ctx = x.ctx;
  const condRows = gatherBatch([eps], Array.from({ length: b }, (_, k) => ({ from: 0, row: b + k })), 'cond half');
  const cond32 = cast(condRows, 'f32');
  condRows.dispose();
  const stdText = stdPerSample(cond32);
  cond32.dispose();
  const stdCfg = stdPerSample(x);
  const [st, sc] = await Promise.all([stdText.read(), stdCfg.read()]);
  stdText.dispose();
  stdCfg.dispose();
  const factors = Float32Array.from({ length: b }, (_, k) => phi * (st[k] / sc[k]) + (1 - phi));
  const f = ctx.fromData(factors, [b, 1, 1, 1], 'f32', 'rescale');
  const out = track(mul(x, f));
  f.dispose();
  drop(x);
  return out;
}

function checkInitImage(image: Img2ImgOptions['image'], width: number, height: number): void {
  if (!image || typeof image !== 'object' || !('data' in image)) throw new InvalidArgumentError('image: must be { width, height, data } (RGBA8 or float RGB)');
  if (image.width !== width || image.height !== height) {
    throw new InvalidArgumentError(`image is ${image.width}×${image.height} but the output size is ${width}×${height}: resize the image or pass width/height equal to it`);
  }
  const isFloat = image.data instanceof Float32Array;
  const want = width * height * (isFloat ? 3 : 4);
  if (image.data.length !== want) {
    throw new InvalidArgumentError(`image data has ${image.data.length} values; a ${width}×${height} ${isFloat ? 'RGB float' : 'RGBA8'} image has ${want}`);
  }
}

/** VAE-encodes the init image(s) and returns NHWC scaled latents for a batch of b. */
async function encodeInitImage(
  pipe: StableDiffusionXLPipeline,
  opts: Img2ImgOptions,
  b: number,
  generator: TorchGenerator,
  signal: AbortSignal | undefined,
  track: <T extends Tensor>(t: T) => T,
  drop: (t: Tensor) => void,
): Promise<Tensor> {
  const ctx = pipe.ctx;
  const { width, height } = opts.image;
  const px = new Float32Array(width * height * 3);
  const src = opts.image.data;
  const isFloat = src instanceof Float32Array;
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) {
      const v = isFloat ? src[p * 3 + c] : src[p * 4 + c] / 255;
      px[p * 3 + c] = Math.fround(Math.fround(2 * Math.fround(v)) - 1); // VaeImageProcessor.normalize: 2x − 1
    }
  }
  const one = track(ctx.fromData(px, [1, height, width, 3], 'f32', 'init image'));
  const image = b === 1 ? one : track(gatherBatch([one], Array.from({ length: b }, () => ({ from: 0, row: 0 })), 'init images'));
  if (image !== one) drop(one);
  const vae = await pipe.acquireVae(signal, 'encoder');
  try {
    const latents = track(await vae.encodeLatents(image, { generator, signal }));
    drop(image);
    return latents;
  } finally {
    pipe.releaseVae(vae);
  }
}

export { nhwcToNchw };
