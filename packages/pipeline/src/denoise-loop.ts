// Step 5 of the pipeline: the denoising loop (diffusers' `for i, t in enumerate(timesteps)`): scale
// the latents, batch them for classifier-free guidance, run the UNet, guide, step the scheduler;
// with hooks for what inpainting adds (the 9-channel UNet input, the per-step blend of the known
// region). Non-finite latents are flagged on the GPU every step and read back every few steps, so a
// NaN costs no per-step readback yet is named exactly. Progress, previews and abort between steps.
import { AbortError, NumericalError, TensorScope, type Tensor } from '@ssd/tensor';
import { nonFiniteFlag } from '@ssd/kernels';
import { guidanceScaleEmbedding, type UNet2DConditionModel } from '@ssd/unet';
import { AutoencoderTiny, denormalize, toRgba8 } from '@ssd/vae';
import { gatherBatch } from './batch.js';
import { unetNoisePrediction } from './cfg-batch.js';
import type { Vae } from './components.js';
import type { GpuLatentOps } from './gpu-latent-ops.js';
import { guidedNoise } from './guidance.js';
import { latentPreview } from './image.js';
import type { RgbaImage, ResolvedRun } from './options.js';
import type { TorchGenerator } from './random/torch-generator.js';
import type { Scheduler } from './schedulers/index.js';

/** Inpainting's additions to the loop (text-to-image and img2img use none). */
export interface DenoiseHooks {
  /** The UNet input from the (CFG-batched, scaled) latents, e.g. with mask channels appended; a new tensor. */
  unetInput?(latentInput: Tensor): Tensor;
  /** After step i (the latents for timesteps[i + 1]): returns new latents (e.g. blended with the known region) or the same tensor. */
  afterStep?(latents: Tensor, i: number): Tensor;
}

export interface DenoiseArgs {
  unet: UNet2DConditionModel;
  scheduler: Scheduler;
  ops: GpuLatentOps;
  generator: TorchGenerator;
  timesteps: readonly number[];
  /** Initial latents, NHWC f32: taken over (freed by the loop). */
  latents: Tensor;
  cond: { encoderHiddenStates: Tensor; textEmbeds: Tensor };
  run: ResolvedRun;
  /** The preview decoder when a TAESD is resident. */
  previewVae: Vae | null;
  dtype: 'f16' | 'f32';
  startedMs: number;
  /** Per-step times are pushed here. */
  stepMs: number[];
  hooks?: DenoiseHooks;
  /** Run CFG's unconditional and conditional halves as two UNet calls (half the activations). */
  splitCfg?: boolean;
}

const CHECK_EVERY = 8;

/** Runs every timestep; returns the final latents (NHWC f32, the caller's to free). */
export async function denoise(a: DenoiseArgs): Promise<Tensor> {
  const { scheduler, ops, timesteps, run } = a;
  const ctx = a.latents.ctx;
  const b = run.batch;
  const scope = new TensorScope();
  let latents = scope.track(a.latents);
  try {
    const flags = scope.track(ctx.fromData(new Uint32Array(timesteps.length), [timesteps.length], 'u32', 'non-finite flags'));
    const checkFlags = async (upTo: number) => {
      const f = (await flags.read()) as Uint32Array;
      const bad = f.subarray(0, upTo).findIndex((v) => v !== 0);
      if (bad >= 0) {
        throw new NumericalError(
          `the latents after denoising step ${bad + 1} of ${timesteps.length} (timestep ${timesteps[bad]})`,
          a.dtype === 'f16' ? 'The UNet runs in f16 here: retry with dtype f32 (--dtype f32); also check guidanceScale and the inputs.' : 'Check guidanceScale, the given latents and the model weights (a corrupt file?).',
        );
      }
    };
    const timestepCond = guidanceScaleCondition(a.unet, run, b);
    if (timestepCond) scope.track(timestepCond);
    for (let i = 0; i < timesteps.length; i++) {
      if (run.signal?.aborted) throw new AbortError(`generation aborted at step ${i + 1} of ${timesteps.length}`, { cause: run.signal.reason });
      const ts = performance.now();
      const t = timesteps[i];
      // expand the latents for classifier-free guidance, scale, add what the UNet's extra channels need
      const scaled = scope.track(scheduler.scaleModelInput(ops, latents, t));
      const batched = run.guided ? scope.then(scaled, (x) => gatherBatch([x], [...Array(b).keys(), ...Array(b).keys()].map((row) => ({ from: 0, row })), 'cfg batch')) : scaled;
      const input = a.hooks?.unetInput ? scope.then(batched, (x) => a.hooks!.unetInput!(x)) : batched;
      const eps = scope.track(unetNoisePrediction(a.unet, { sample: input, timestep: t, encoderHiddenStates: a.cond.encoderHiddenStates, textEmbeds: a.cond.textEmbeds, timeIds: run.timeIds, timestepCond }, !!a.splitCfg && run.guided));
      scope.drop(input);
      const noisePred = scope.track(await guidedNoise(eps, b, run.guided, run.guidanceScale, run.guidanceRescale));
      scope.drop(eps);
      const preview = wantsPreview(run, i, timesteps.length);
      const out = scheduler.step(ops, noisePred, t, latents, { generator: a.generator, eta: run.eta, withPredOriginal: preview === 'denoised' });
      scope.drop(noisePred, latents);
      latents = scope.track(out.prevSample);
      const x0 = out.predOriginalSample ? scope.track(out.predOriginalSample) : undefined;
      if (a.hooks?.afterStep) {
        const next = a.hooks.afterStep(latents, i);
        if (next !== latents) latents = scope.then(latents, () => next);
      }
      const flag = nonFiniteFlag(latents);
      ctx.copyBuffer(flag.buffer, 0, flags.buffer, i * 4, 4);
      flag.dispose();
      // steps cost the same: sleep through most of a recent step's time before waiting. Not the
      // first step's: it compiles every kernel (a minute on a CPU adapter), and sleeping that long
      // would delay step 2 and a Cancel by as much.
      const measured = a.stepMs.slice(1).slice(-3);
      await ctx.sync({ expectedMs: measured.length ? Math.min(...measured) : 0 });
      if ((i + 1) % CHECK_EVERY === 0 || i === timesteps.length - 1) await checkFlags(i + 1);
      a.stepMs.push(performance.now() - ts);
      if (run.onStep) {
        let image: RgbaImage | undefined;
        if (preview) image = await makePreview(a.previewVae, x0 ?? latents, run);
        await run.onStep({ step: i + 1, total: timesteps.length, timestep: t, elapsedMs: performance.now() - a.startedMs, preview: image });
      }
      scope.drop(x0);
    }
    return scope.keep(latents);
  } finally {
    scope.dispose();
  }
}

function wantsPreview(run: ResolvedRun, i: number, total: number): false | 'latents' | 'denoised' {
  if (!run.onStep || run.preview === false) return false;
  return i % run.previewEvery === 0 || i === total - 1 ? run.preview : false;
}

/**
 * UNets with time_cond_proj_dim (LCM-distilled) embed the guidance scale instead of batching for CFG:
 * diffusers' get_guidance_scale_embedding(w − 1) per sample, fed through time_embedding.cond_proj.
 */
function guidanceScaleCondition(unet: UNet2DConditionModel, run: ResolvedRun, b: number): Tensor | undefined {
  const dim = unet.spec.timeCondProjDim;
  if (dim === null) return undefined;
  const w = guidanceScaleEmbedding(Array(b).fill(run.guidanceScale - 1), dim);
  return unet.ctx.fromData(w, [b, dim], 'f32', 'guidance scale embedding');
}

/**
 * A preview of the first image: TAESD's decode when a TAESD is resident (full resolution, cheap), else
 * the linear latent → RGB map at latent resolution.
 */
async function makePreview(vae: Vae | null, latents: Tensor, run: ResolvedRun): Promise<RgbaImage> {
  const [, h, w, c] = run.latentShape;
  if (vae instanceof AutoencoderTiny) {
    const first = latents.shape[0] === 1 ? latents : gatherBatch([latents], [{ from: 0, row: 0 }], 'preview latents');
    try {
      const img = await vae.decodeLatents(first);
      const data = (await img.read()) as Float32Array;
      img.dispose();
      return toRgba8(denormalize(data), w * 8, h * 8);
    } finally {
      if (first !== latents) first.dispose();
    }
  }
  const lat = (await latents.read()) as Float32Array;
  return latentPreview(lat.subarray(0, h * w * c), w, h, c);
}
