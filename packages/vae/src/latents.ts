// The latent-space conventions shared by both autoencoders: pipeline (UNet) latents ↔ VAE latents,
// the host staging of NHWC tensors, the f16 range check of inputs, and the noise source for
// sampling the latent distribution.
import { InvalidArgumentError, ShapeError, formatShape, type DType, type Tensor } from '@ssd/tensor';
import type { LatentScaling } from './config.js';
import { firstNonFinite, maxAbs, numericalError } from './numerics.js';
import type { HostImage } from './tiling/tiling.js';

/** A torch-compatible generator: `randn(shape)` returns torch.randn(shape) in row-major (NCHW) order. */
export interface NoiseGenerator {
  randn(shape: readonly number[]): Float32Array;
}

/** Largest finite f16. */
const F16_MAX = 65504;

/** Reads an NHWC float tensor [B, H, W, C] to the host as f32, checking rank, channels and dtype. */
export async function readNHWC(t: Tensor, op: string, arg: string, channels: number): Promise<HostImage> {
  if (t.rank !== 4 || t.shape[3] !== channels) throw new ShapeError(op, arg, `[B, H, W, ${channels}] (NHWC)`, formatShape(t.shape));
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new InvalidArgumentError(`${op}: ${arg} must be f32 or f16, got ${t.dtype}`);
  const data = (await t.read()) as Float32Array;
  return { data: new Float32Array(data), shape: t.shape as [number, number, number, number] };
}

/**
 * Pipeline latents → the VAE's latents, per channel, in place (f32 as torch computes it):
 * `z = x · latents_std / scaling_factor + latents_mean`, or `z = x / scaling_factor + shift_factor`.
 */
export function toVaeLatents(x: HostImage, s: LatentScaling): HostImage {
  const c = x.shape[3];
  const d = x.data;
  for (let i = 0; i < d.length; i++) {
    const k = i % c;
    const v = s.std ? Math.fround(d[i] * s.std[k]) : d[i];
    d[i] = Math.fround(Math.fround(v / s.scalingFactor) + s.shift[k]);
  }
  return x;
}

/**
 * The VAE's latents → pipeline latents, in place: `x = (z − latents_mean) · scaling_factor / latents_std`,
 * or `x = (z − shift_factor) · scaling_factor` (diffusers' img2img `prepare_latents`).
 */
export function toPipelineLatents(z: Float32Array, channels: number, s: LatentScaling): Float32Array {
  for (let i = 0; i < z.length; i++) {
    const k = i % channels;
    const v = Math.fround(Math.fround(z[i] - s.shift[k]) * s.scalingFactor);
    z[i] = s.std ? Math.fround(v / s.std[k]) : v;
  }
  return z;
}

/** Throws NumericalError when an input is non-finite, or out of f16's range for an f16 model. */
export function checkInput(x: HostImage, dtype: DType, stage: string, what: string): void {
  const bad = firstNonFinite(x.data);
  if (bad >= 0) {
    throw numericalError(`${stage} (its input holds ${x.data[bad]} at element ${bad}, before the ${what} ran)`, 'f32', what);
  }
  if (dtype === 'f16') {
    const m = maxAbs(x.data);
    if (m > F16_MAX) throw numericalError(`${stage} (an input value of magnitude ${m.toExponential(3)} does not fit f16)`, 'f16', what);
  }
}

/** NCHW-ordered values (torch's randn order) → NHWC. */
export function nchwToNhwcHost(src: Float32Array, b: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let n = 0; n < b; n++) {
    for (let k = 0; k < c; k++) {
      for (let p = 0; p < h * w; p++) out[(n * h * w + p) * c + k] = src[(n * c + k) * h * w + p];
    }
  }
  return out;
}
