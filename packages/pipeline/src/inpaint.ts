// Step 3 of the pipeline for inpainting (diffusers v0.26.3 StableDiffusionXLInpaintPipeline:
// prepare_latents, then prepare_mask_latents) and its hooks into the shared denoising loop: the
// 9-channel UNet input cat([latents, mask, masked_image_latents]) or, for 4-channel UNets, the
// per-step blend of the known region with the image latents noised to the next timestep. Generator
// draws follow diffusers' order: image posterior sample, noise, masked-image posterior sample.
import { InvalidArgumentError, type Tensor } from '@ssd/tensor';
import { combine, concatChannels, mul } from '@ssd/kernels';
import { AutoencoderKL } from '@ssd/vae';
import { gatherBatch } from './batch.js';
import type { DenoiseHooks } from './denoise-loop.js';
import { uploadNCHW } from './gpu-latent-ops.js';
import { latentMask } from './image-processor.js';
import type { ResolvedInpaint } from './inpaint-options.js';
import { encodeWith, noiseLatents, repeatRows } from './latents.js';
import type { RunState } from './run.js';

/** Everything prepare_latents and prepare_mask_latents produce (tensors owned by the run's scope). */
export interface InpaintLatents {
  /** The initial latents, NHWC [b, h, w, 4] (the loop takes them over). */
  latents: Tensor;
  hooks: DenoiseHooks;
  noise: Tensor;
  /** The image's latents (4-channel UNets, or strength < 1). */
  imageLatents: Tensor | null;
  /** The latent-resolution mask, NHWC [b, h, w, 1]. */
  maskLatents: Tensor;
  /** The masked image's latents, NHWC [b, h, w, 4] (9-channel UNets; 4-channel ones only with encodeMaskedImage). */
  maskedImageLatents: Tensor | null;
}

export interface InpaintLatentsOptions {
  /**
   * Also VAE-encode the masked image for a 4-channel UNet, which never uses it (diffusers does; by
   * default only its generator draw is made, which leaves the generator in the same state).
   */
  encodeMaskedImage?: boolean;
}

export async function prepareInpaintLatents(s: RunState, inp: ResolvedInpaint, o: InpaintLatentsOptions = {}): Promise<InpaintLatents> {
  const { components: c, run: r, scheduler, ops, generator, scope } = s;
  const ctx = c.ctx;
  const [b, h, w, ch] = r.latentShape;
  const nineChannels = inp.unetInChannels !== ch;
  const isStrengthMax = r.strength === 1;
  // diffusers: return_image_latents = (unet in_channels == 4); the image is encoded for those, or to noise it (strength < 1)
  const needImage = !nineChannels || (!r.latents && !isStrengthMax);
  const needMaskedEncode = (nineChannels && !inp.maskedImageLatents) || (!nineChannels && !!o.encodeMaskedImage);
  const vae = needImage || needMaskedEncode || !nineChannels ? await c.acquireVae(r.signal, 'encoder') : null;
  try {
    // prepare_latents
    const imageLatents = needImage ? scope.track(await encodeWith(vae!, r.image!, b, generator, r.signal)) : null;
    const noise = scope.track(noiseLatents(ctx, r, generator));
    const latents = r.latents || isStrengthMax ? ops.combine([[noise, scheduler.initNoiseSigma]]) : scheduler.addNoise(ops, imageLatents!, noise, s.latentTimestep);
    scope.track(latents);
    // prepare_mask_latents
    const maskOne = latentMask(inp.mask, r.width, r.height);
    const maskData = repeatData(maskOne, b);
    const maskLatents = scope.track(ctx.fromData(maskData, [b, h, w, 1], 'f32', 'mask latents'));
    let maskedImageLatents: Tensor | null = null;
    if (inp.maskedImageLatents) {
      const given = inp.maskedImageLatents;
      maskedImageLatents = scope.track(repeatRows(uploadNCHW(ctx, given, [given.length / (ch * h * w), ch, h, w], 'masked image latents'), given.length === ch * h * w ? b : 1));
    } else if (needMaskedEncode) {
      maskedImageLatents = scope.track(await encodeWith(vae!, inp.maskedPixels, b, generator, r.signal, { width: r.width, height: r.height }));
    } else if (vae instanceof AutoencoderKL) {
      // the 4-channel path never reads the masked image's latents; diffusers still samples its posterior
      generator.randn([1, ch, h, w]);
    }
    const hooks = nineChannels ? unetInputHook(s, inp, maskLatents, maskedImageLatents!) : blendHook(s, maskLatents, imageLatents!, noise, maskData);
    return { latents, hooks, noise, imageLatents, maskLatents, maskedImageLatents };
  } finally {
    if (vae) c.releaseVae(vae);
  }
}

function repeatData(one: Float32Array, b: number): Float32Array {
  const out = new Float32Array(one.length * b);
  for (let k = 0; k < b; k++) out.set(one, k * one.length);
  return out;
}

/** 9 channels: cat([scale_model_input(latents), mask, masked_image_latents], dim=1), each CFG-doubled. */
function unetInputHook(s: RunState, inp: ResolvedInpaint, mask: Tensor, masked: Tensor): DenoiseHooks {
  const rows = s.run.guided ? 2 * s.run.batch : s.run.batch;
  const pick = Array.from({ length: rows }, (_, i) => ({ from: 0, row: i % s.run.batch }));
  const m = s.run.guided ? s.scope.track(gatherBatch([mask], pick, 'mask (cfg)')) : mask;
  const mi = s.run.guided ? s.scope.track(gatherBatch([masked], pick, 'masked image latents (cfg)')) : masked;
  const cond = s.scope.track(concatChannels(m, mi));
  const want = inp.unetInChannels;
  return {
    unetInput(x: Tensor): Tensor {
      if (x.shape[3] + cond.shape[3] !== want) {
        throw new InvalidArgumentError(`inpaint: the UNet takes ${want} channels but latents (${x.shape[3]}) + mask (1) + masked image latents (${cond.shape[3] - 1}) make ${x.shape[3] + cond.shape[3]}`);
      }
      return concatChannels(x, cond);
    },
  };
}

/**
 * 4 channels: after step i, latents = (1 − mask)·init_latents_proper + mask·latents, with
 * init_latents_proper the image latents noised to timesteps[i + 1] (the clean latents after the last
 * step). The mask is 0 or 1, so each value is exactly one of the two, as in diffusers.
 */
function blendHook(s: RunState, mask: Tensor, imageLatents: Tensor, noise: Tensor, maskData: Float32Array): DenoiseHooks {
  const inverse = s.scope.track(s.components.ctx.fromData(maskData.map((v) => 1 - v), mask.shape, 'f32', 'kept region'));
  return {
    afterStep(latents: Tensor, i: number): Tensor {
      const ts = s.timesteps;
      const proper = i < ts.length - 1 ? s.scheduler.addNoise(s.ops, imageLatents, noise, ts[i + 1]) : imageLatents;
      const a = mul(latents, mask);
      const k = mul(proper, inverse);
      if (proper !== imageLatents) proper.dispose();
      try {
        return combine([[a, 1], [k, 1]], { outDtype: 'f32' });
      } finally {
        a.dispose();
        k.dispose();
      }
    },
  };
}
