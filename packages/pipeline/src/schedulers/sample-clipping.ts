// The x̂₀ clipping of DDPMScheduler and DDIMScheduler (diffusers v0.26): `thresholding` (dynamic
// thresholding, _threshold_sample) takes precedence over `clip_sample` (clamp to ±clip_sample_range).
// Both default as diffusers' __init__ does: clip_sample true, so a config without the key clips.
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';

export type SampleClipping =
  | { readonly kind: 'none' }
  | { readonly kind: 'clip'; readonly range: number }
  | { readonly kind: 'threshold'; readonly ratio: number; readonly maxValue: number };

/** `clipDefault`: the class's clip_sample default (true for DDPM/DDIM, false for LCMScheduler). */
export function readSampleClipping(cfg: ConfigReader, clipDefault = true): SampleClipping {
  const clip = cfg.boolean('clip_sample', clipDefault);
  const range = cfg.number('clip_sample_range', 1, (v) => (Number.isFinite(v) && v > 0 ? null : 'must be a finite number > 0'));
  const thresholding = cfg.boolean('thresholding', false);
  const ratio = cfg.number('dynamic_thresholding_ratio', 0.995, (v) => (v >= 0 && v <= 1 ? null : 'must be in [0, 1] (a quantile)'));
  const maxValue = cfg.number('sample_max_value', 1, (v) => (Number.isFinite(v) && v > 0 ? null : 'must be a finite number > 0'));
  if (thresholding) return { kind: 'threshold', ratio, maxValue };
  return clip ? { kind: 'clip', range } : { kind: 'none' };
}

/** The clipped x̂₀ as a new array; `x0` is released. */
export function clipSample<T>(ops: LatentOps<T>, x0: T, c: SampleClipping): T {
  if (c.kind === 'none') return x0;
  const out = c.kind === 'clip' ? ops.clamp(x0, -c.range, c.range) : ops.threshold(x0, c.ratio, c.maxValue);
  ops.release(x0);
  return out;
}
