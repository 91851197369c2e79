// The training-noise tables every scheduler starts from, built as torch builds them in float32 on an x86-64
// AVX2 CPU (diffusers v0.26 schedulers' __init__): betas from torch.linspace (+ square for scaled_linear),
// alphas = 1 − β, ᾱ = cumprod (double accumulator, float32 stores) and σ(t) = sqrt((1 − ᾱ)/ᾱ).
// Matching these bit for bit keeps every timestep and sigma identical to diffusers'.
import { fma32 } from '../random/fma.js';

const f32 = Math.fround;

/**
 * torch.linspace(start, end, steps, dtype=float32) as the AVX2 CPU kernel computes it
 * (native/cpu/RangeFactoriesKernel.cpp): the first half counts up from `start`, the second half down
 * from `end`; whole 8-lane vectors take their base from the first index and add k·step (GCC fuses each
 * multiply-add into an FMA), and the last n mod 16 elements go through the scalar loop.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = f32(start);
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const at = (i: number): number => (i < halfway ? fma32(step, i, s) : fma32(-step, steps - i - 1, e));
  let i = 0;
  for (; i <= steps - 16; i += 8) {
    const base = at(i);
    out[i] = base;
    for (let k = 1; k < 8; k++) out[i + k] = fma32(k, step, base);
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/** torch.cumprod of float32 values on the CPU: accumulates in double, stores float32. */
export function cumprodF32(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i];
    out[i] = acc;
  }
  return out;
}

/** 1 − x elementwise, in float32. */
export function oneMinusF32(values: ArrayLike<number>): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = 1 - values[i];
  return out;
}

/**
 * diffusers' rescale_zero_terminal_snr (scheduling_ddim.py), in torch float32: shifts sqrt(ᾱ) so the
 * last timestep has zero SNR and rescales so the first is unchanged, then converts back to betas.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const abarSqrt = cumprodF32(oneMinusF32(betas)).map((a) => Math.sqrt(a));
  const first = abarSqrt[0];
  const last = abarSqrt[n - 1];
  const scale = f32(first / f32(first - last));
  const abar = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = f32(f32(abarSqrt[i] - last) * scale);
    abar[i] = v * v;
  }
  const out = new Float32Array(n);
  out[0] = 1 - abar[0];
  for (let i = 1; i < n; i++) out[i] = 1 - f32(abar[i] / abar[i - 1]);
  return out;
}

/** σ(t) = ((1 − ᾱ)/ᾱ)^½ elementwise in float32 (torch's pow(·, 0.5) is sqrt). */
export function sigmaTableF32(alphasCumprod: Float32Array): Float32Array {
  const out = new Float32Array(alphasCumprod.length);
  for (let i = 0; i < out.length; i++) {
    const a = alphasCumprod[i];
    out[i] = Math.sqrt(f32(f32(1 - a) / a));
  }
  return out;
}

/** Glide's cosine schedule (diffusers betas_for_alpha_bar, "cosine"): computed in double, stored float32. */
export function squaredCosCapV2Betas(numTrainTimesteps: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number): number => {
    const c = Math.cos(((t + 0.008) / 1.008) * Math.PI / 2);
    return c * c;
  };
  const out = new Float32Array(numTrainTimesteps);
  for (let i = 0; i < numTrainTimesteps; i++) {
    const t1 = i / numTrainTimesteps;
    const t2 = (i + 1) / numTrainTimesteps;
    out[i] = Math.min(1 - alphaBar(t2) / alphaBar(t1), maxBeta);
  }
  return out;
}
