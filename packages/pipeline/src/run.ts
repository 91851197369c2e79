// One generation as diffusers' StableDiffusionXLPipeline.__call__ runs it (v0.26), step by step over
// the components: 1 encode the prompt, 2 the timesteps, 3 the initial latents, 4 the added
// conditions, 5 the denoising loop, 6 the VAE decode — with per-stage times and peak GPU memory.
// Text-to-image and img2img are this one algorithm (inpainting adds hooks to step 5). Every GPU
// tensor of the run is freed on success, error and abort alike.
import { throwIfAborted, TensorScope, type Tensor } from '@ssd/tensor';
import { denormalize, toRgba8 } from '@ssd/vae';
import type { SdxlComponents } from './components.js';
import { checkDecodedImage, checkFinalLatents } from './degenerate.js';
import { denoise, type DenoiseHooks } from './denoise-loop.js';
import { downloadNCHW, GpuLatentOps } from './gpu-latent-ops.js';
import { prepareLatents, prepareTimesteps } from './latents.js';
import type { ResolvedRun, RgbaImage } from './options.js';
import { encodePrompt, needsTextEncoders, unetConditioning, type PromptEmbeddings, type PromptInputs } from './prompt-encoding.js';
import { TorchGenerator } from './random/torch-generator.js';
import { StageClock, type GenerateResult, type RunReport } from './report.js';
import type { Scheduler } from './schedulers/index.js';

export type { GenerateResult, RunReport, StageReport } from './report.js';

/** What a run needs besides the components and its options. */
export interface RunContext {
  /** A fresh scheduler for this run (configured, timesteps not yet set). */
  scheduler: Scheduler;
  /** The name reported (CLI name or diffusers class). */
  schedulerName: string;
  /** Inpainting: prepares its latents and hooks instead of step 3's default. */
  latents?: (run: RunState) => Promise<{ latents: Tensor; hooks?: DenoiseHooks }>;
}

/** What custom latent preparation gets (inpainting). */
export interface RunState {
  components: SdxlComponents;
  run: ResolvedRun;
  scheduler: Scheduler;
  ops: GpuLatentOps;
  generator: TorchGenerator;
  timesteps: number[];
  latentTimestep: number;
  scope: TensorScope;
}

export async function runPipeline(c: SdxlComponents, r: ResolvedRun, rc: RunContext): Promise<GenerateResult> {
  const ctx = c.ctx;
  const t0 = performance.now();
  const [b, h, w, ch] = r.latentShape;
  const scheduler = rc.scheduler;
  const ops = new GpuLatentOps(ctx);
  const generator = new TorchGenerator(r.seed);
  const clock = new StageClock(c);
  const scope = new TensorScope();
  const report: RunReport = {
    adapter: ctx.info.description, dtype: c.dtype, scheduler: rc.schedulerName, width: r.width, height: r.height, steps: r.steps, batch: b, loadMs: c.loadMs,
    textEncode: { ms: 0, peakBytes: 0 }, stepMs: [], denoise: { ms: 0, peakBytes: 0 }, decode: { ms: 0, peakBytes: 0 }, totalMs: 0, itPerSec: 0, peakBytes: 0, truncated: [], notices: [],
  };
  c.checkFits(r.guided && !c.splitCfg ? 2 * b : b, r.width, r.height, b);
  const endRun = c.beginRun();
  c.loras.beginCall(r.loraScale);
  try {
    throwIfAborted(r.signal, 'generation');
    // 1. encode the prompt (the UNet's conditioning: [negatives…, prompts…] when guided)
    let s0 = clock.start();
    const embeds = await encodePromptStage(c, r);
    report.truncated = embeds.truncated;
    let cond: { encoderHiddenStates: Tensor; textEmbeds: Tensor };
    try {
      cond = unetConditioning(embeds);
    } finally {
      embeds.dispose();
    }
    scope.track(cond.encoderHiddenStates);
    scope.track(cond.textEmbeds);
    await ctx.sync();
    clock.end(report.textEncode, s0);
    throwIfAborted(r.signal, 'text encoding');

    // 2. timesteps
    const { timesteps, latentTimestep } = prepareTimesteps(scheduler, r, scheduler.alphasCumprod.length);

    // 3. initial latents
    s0 = clock.start();
    const state: RunState = { components: c, run: r, scheduler, ops, generator, timesteps, latentTimestep, scope };
    const prepared = rc.latents ? await rc.latents(state) : { latents: await prepareLatents(c, scheduler, ops, r, generator, latentTimestep) };
    scope.track(prepared.latents);

    // 4. added conditions: text_embeds (pooled) and add_time_ids, per UNet row (r.timeIds)
    // 5. denoising loop
    const unet = await c.acquireUNet(r.signal);
    let latents: Tensor;
    try {
      latents = scope.track(await denoise({
        unet, scheduler, ops, generator, timesteps, latents: scope.keep(prepared.latents), cond, run: r, previewVae: c.residentVae,
        dtype: c.dtype, startedMs: t0, stepMs: report.stepMs, hooks: prepared.hooks, splitCfg: c.splitCfg,
      }));
    } finally {
      c.releaseUNet(unet);
    }
    clock.end(report.denoise, s0);
    const latentsNCHW = await downloadNCHW(latents);
    if (!r.allowDegenerate) checkFinalLatents(latentsNCHW);

    // 6. decode
    let images: RgbaImage[] = [];
    let floats: GenerateResult['floats'];
    if (r.outputType !== 'latent') {
      throwIfAborted(r.signal, 'decoding');
      s0 = clock.start();
      const unit = await decode(c, latents, r);
      if (r.outputType === 'float') floats = unit.map((d) => ({ width: r.width, height: r.height, data: d }));
      else images = unit.map((d) => toRgba8(d, r.width, r.height));
      clock.end(report.decode, s0);
    }
    scope.drop(latents);
    report.totalMs = performance.now() - t0;
    report.itPerSec = report.stepMs.length / (report.denoise.ms / 1000 || Infinity);
    report.peakBytes = clock.peakBytes;
    return { images, floats, latents: { shape: [b, ch, h, w], data: latentsNCHW }, seed: r.seed, report };
  } finally {
    scheduler.dispose(ops); // multistep schedulers keep earlier model outputs
    scope.dispose();
    if (!ctx.isLost) ctx.flush();
    c.loras.endCall();
    endRun();
  }
}

/** The prompt inputs of a resolved run. */
export function promptInputs(c: SdxlComponents, r: ResolvedRun): PromptInputs {
  const p = r.prompt;
  const common = { numImagesPerPrompt: r.numImagesPerPrompt, guidance: r.guided, forceZerosForEmptyPrompt: c.forceZerosForEmptyPrompt, clipSkip: r.clipSkip };
  if (p.kind === 'text') return { ...common, prompt: p.prompt, prompt2: p.prompt2, negativePrompt: p.negativePrompt, negativePrompt2: p.negativePrompt2 };
  return { ...common, given: p.embeds, negativePrompt: p.negativePrompt, negativePrompt2: p.negativePrompt2 };
}

/** Step 1: encode_prompt, with the text encoders acquired only when the inputs need them. */
export async function encodePromptStage(c: SdxlComponents, r: ResolvedRun): Promise<PromptEmbeddings> {
  const p = promptInputs(c, r);
  if (!needsTextEncoders(p)) return encodePrompt(null, p);
  const encoders = await c.acquireTextEncoders(r.signal);
  try {
    throwIfAborted(r.signal, 'text encoding');
    const [tokenizer, tokenizer2] = c.tokenizers;
    return encodePrompt({ tokenizer, tokenizer2, textEncoder: encoders[0], textEncoder2: encoders[1] }, p);
  } finally {
    c.releaseTextEncoders(encoders);
  }
}

/** Step 6: the VAE decode, as NHWC floats in [0, 1] per image. */
async function decode(c: SdxlComponents, latents: Tensor, r: ResolvedRun): Promise<Float32Array[]> {
  const vae = await c.acquireVae(r.signal, 'decoder');
  try {
    throwIfAborted(r.signal, 'decoding');
    const img = await vae.decodeLatents(latents, { signal: r.signal });
    const data = (await img.read()) as Float32Array;
    img.dispose();
    const per = r.height * r.width * 3;
    return Array.from({ length: r.batch }, (_, k) => {
      const one = data.subarray(k * per, (k + 1) * per);
      if (!r.allowDegenerate) checkDecodedImage(one, k, r.batch);
      return denormalize(one);
    });
  } finally {
    c.releaseVae(vae);
  }
}
