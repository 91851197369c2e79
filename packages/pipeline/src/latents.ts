// Steps 2 and 3 of the pipeline: the timesteps to run (all of them, or img2img's tail by strength,
// cut by denoising_end) and the initial latents — noise × init_noise_sigma for text-to-image, the
// VAE-encoded image noised to the first timestep for img2img. The image encoding and noising here
// are what inpainting builds on too (diffusers' prepare_latents of the three SDXL pipelines).
import { InvalidArgumentError, type GpuContext, type Tensor } from '@ssd/tensor';
import { gatherBatch } from './batch.js';
import type { SdxlComponents, Vae } from './components.js';
import { randnNHWC, uploadNCHW, type GpuLatentOps } from './gpu-latent-ops.js';
import type { InitImage, ResolvedRun } from './options.js';
import type { TorchGenerator } from './random/torch-generator.js';
import { img2imgTimesteps, type Scheduler } from './schedulers/index.js';

export interface RunTimesteps {
  /** The timesteps the loop runs. */
  timesteps: number[];
  /** The timestep the image latents are noised to (img2img / inpainting with strength < 1). */
  latentTimestep: number;
}

/**
 * diffusers' retrieve_timesteps + get_timesteps: setTimesteps(steps); with strength < 1 only the last
 * ⌊steps·strength⌋ are run (setBeginIndex at the first); denoising_end keeps the timesteps ≥
 * round(T − denoising_end·T).
 */
export function prepareTimesteps(scheduler: Scheduler, r: ResolvedRun, numTrainTimesteps: number): RunTimesteps {
  scheduler.setTimesteps(r.steps);
  let timesteps = Array.from(scheduler.timesteps);
  let latentTimestep = timesteps[0];
  if (r.image) {
    const start = img2imgTimesteps(scheduler, r.steps, r.strength);
    timesteps = start.timesteps;
    latentTimestep = start.latentTimestep;
  }
  if (r.denoisingEnd !== undefined) {
    const cutoff = Math.round(numTrainTimesteps - r.denoisingEnd * numTrainTimesteps);
    timesteps = timesteps.slice(0, timesteps.filter((t) => t >= cutoff).length);
    if (!timesteps.length) throw new InvalidArgumentError(`denoisingEnd = ${r.denoisingEnd} leaves no step to run with ${r.steps} steps`);
  }
  return { timesteps, latentTimestep };
}

/** torch.randn latents NHWC [b, h, w, c], or the caller's NCHW `latents` (uploaded). */
export function noiseLatents(ctx: GpuContext, r: ResolvedRun, generator: TorchGenerator): Tensor {
  const [b, h, w, c] = r.latentShape;
  return r.latents ? uploadNCHW(ctx, r.latents, [b, c, h, w]) : randnNHWC(ctx, generator, r.latentShape);
}

/**
 * Text-to-image: noise × init_noise_sigma. Img2img: scheduler.add_noise(image latents, noise,
 * latentTimestep), the image encoded first (its posterior sample draws from the generator before the
 * noise, as in diffusers).
 */
export async function prepareLatents(c: SdxlComponents, scheduler: Scheduler, ops: GpuLatentOps, r: ResolvedRun, generator: TorchGenerator, latentTimestep: number): Promise<Tensor> {
  if (!r.image) {
    const x = noiseLatents(c.ctx, r, generator);
    try {
      return ops.combine([[x, scheduler.initNoiseSigma]]);
    } finally {
      x.dispose();
    }
  }
  const init = await encodeImage(c, r.image, r.batch, generator, r.signal);
  let noise: Tensor | undefined;
  try {
    noise = noiseLatents(c.ctx, r, generator);
    return scheduler.addNoise(ops, init, noise, latentTimestep);
  } finally {
    init.dispose();
    noise?.dispose();
  }
}

/** VaeImageProcessor.preprocess's normalize (2x − 1) of an RGBA8 or RGB-float image into NHWC RGB f32. */
export function imagePixels(image: InitImage): Float32Array {
  const { width, height } = image;
  const px = new Float32Array(width * height * 3);
  const src = image.data;
  const isFloat = src instanceof Float32Array;
  for (let p = 0; p < width * height; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = isFloat ? src[p * 3 + ch] : src[p * 4 + ch] / 255;
      px[p * 3 + ch] = Math.fround(Math.fround(2 * Math.fround(v)) - 1);
    }
  }
  return px;
}

/**
 * VAE-encodes an image (NHWC RGB in [-1, 1]) once and returns scaled NHWC latents repeated to a batch
 * of b: the posterior's sample drawn from the generator (diffusers' retrieve_latents(...,
 * sample_mode="sample")), × scaling_factor. Like diffusers' prepare_latents, one image is encoded
 * (one draw of [1, C, h, w]) and its latents repeated, whatever the batch.
 */
export async function encodeImage(c: SdxlComponents, image: InitImage | Float32Array, b: number, generator: TorchGenerator, signal: AbortSignal | undefined, size?: { width: number; height: number }): Promise<Tensor> {
  const vae = await c.acquireVae(signal, 'encoder');
  try {
    return await encodeWith(vae, image, b, generator, signal, size);
  } finally {
    c.releaseVae(vae);
  }
}

/** encodeImage with a VAE the caller holds. */
export async function encodeWith(vae: Vae, image: InitImage | Float32Array, b: number, generator: TorchGenerator, signal: AbortSignal | undefined, size?: { width: number; height: number }): Promise<Tensor> {
  const px = image instanceof Float32Array ? image : imagePixels(image);
  const { width, height } = image instanceof Float32Array ? size! : image;
  const one = vae.ctx.fromData(px, [1, height, width, 3], 'f32', 'init image');
  let latents: Tensor;
  try {
    latents = await vae.encodeLatents(one, { generator, signal });
  } finally {
    one.dispose();
  }
  return repeatRows(latents, b);
}

/** A [1, …] tensor as [b, …] (taken over; the same tensor when b is 1). */
export function repeatRows(t: Tensor, b: number): Tensor {
  if (b === 1) return t;
  try {
    return gatherBatch([t], Array.from({ length: b }, () => ({ from: 0, row: 0 })), t.label);
  } finally {
    t.dispose();
  }
}
