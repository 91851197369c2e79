// The beta schedule keys shared by all six schedulers (num_train_timesteps, beta_start, beta_end,
// beta_schedule, trained_betas, rescale_betas_zero_snr) turned into ᾱ and σ tables, as each diffusers
// v0.26 scheduler's __init__ does.
import type { ConfigReader } from './config.js';
import {
  cumprodF32,
  oneMinusF32,
  rescaleZeroTerminalSnr,
  sigmaTableF32,
  squaredCosCapV2Betas,
  torchLinspaceF32,
} from './torch-tables.js';

export interface NoiseSchedule {
  readonly numTrainTimesteps: number;
  /** ᾱ_t for t = 0 … T−1 (float32, exactly diffusers' alphas_cumprod). */
  readonly alphasCumprod: Float32Array;
  /** σ_t = sqrt((1 − ᾱ_t)/ᾱ_t) (float32, exactly the table diffusers interpolates). */
  readonly sigmas: Float32Array;
}

export interface NoiseScheduleOptions {
  /** Whether this class has rescale_betas_zero_snr in v0.26 (Euler, Euler a, DDPM, DDIM). */
  hasRescaleZeroSnr: boolean;
  /** Euler schedulers then set ᾱ_T to 2^-24 so the first sigma stays finite. */
  clampLastAlpha: boolean;
  /** The class's __init__ defaults when they are not DDPM's (LCMScheduler: 0.00085, 0.012, scaled_linear). */
  defaults?: { betaStart: number; betaEnd: number; betaSchedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' };
}

export function readNoiseSchedule(cfg: ConfigReader, opts: NoiseScheduleOptions): NoiseSchedule {
  const numTrainTimesteps = cfg.integer('num_train_timesteps', 1000, 2);
  const betaStart = cfg.number('beta_start', opts.defaults?.betaStart ?? 0.0001, finite);
  const betaEnd = cfg.number('beta_end', opts.defaults?.betaEnd ?? 0.02, finite);
  const schedule = cfg.choice('beta_schedule', opts.defaults?.betaSchedule ?? 'linear', ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const, {
    sigmoid: 'the GeoDiff sigmoid schedule is not supported',
  });
  const trained = cfg.raw('trained_betas');
  let betas: Float32Array;
  if (trained !== undefined && trained !== null) {
    if (!Array.isArray(trained) || trained.length !== numTrainTimesteps) {
      throw cfg.error('trained_betas', trained, `must be null or a list of num_train_timesteps (${numTrainTimesteps}) numbers${Array.isArray(trained) ? `, found ${trained.length}` : ''}`);
    }
    const bad = trained.findIndex((b) => typeof b !== 'number' || !(b >= 0 && b <= 1));
    if (bad >= 0) throw cfg.error('trained_betas', trained, `entry ${bad} is ${JSON.stringify(trained[bad])}: every beta must be a number in [0, 1]`);
    betas = Float32Array.from(trained as number[]);
    cfg.used.trained_betas = trained;
  } else {
    cfg.used.trained_betas = null;
    if (schedule === 'linear') betas = torchLinspaceF32(betaStart, betaEnd, numTrainTimesteps);
    else if (schedule === 'scaled_linear') {
      betas = torchLinspaceF32(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTrainTimesteps).map((b) => b * b);
    } else betas = squaredCosCapV2Betas(numTrainTimesteps);
  }
  const rescale = opts.hasRescaleZeroSnr ? cfg.boolean('rescale_betas_zero_snr', false) : false;
  const betaKey = trained !== undefined && trained !== null ? 'trained_betas' : 'beta_end';
  // all-zero betas add no noise: every σ is 0, and each prediction type then divides by zero
  if (betas.every((b) => b === 0)) {
    throw cfg.error(betaKey, cfg.used[betaKey], 'every beta is 0, so the schedule adds no noise and nothing can be denoised (σ = 0 at every timestep)');
  }
  if (rescale) betas = rescaleZeroTerminalSnr(betas);
  const alphasCumprod = cumprodF32(oneMinusF32(betas));
  // a beta of 1 makes ᾱ 0 and σ infinite from there on; only the zero-terminal-SNR rescale means it
  const firstZero = alphasCumprod.findIndex((a) => !(a > 0));
  if (!rescale && firstZero >= 0) {
    throw cfg.error(betaKey, cfg.used[betaKey], `ᾱ (the product of 1 − β) reaches 0 at timestep ${firstZero} of ${numTrainTimesteps}, so σ is infinite there: a beta is 1, or so many timesteps underflow float32; use betas below 1, fewer num_train_timesteps, or rescale_betas_zero_snr`);
  }
  // diffusers (Euler): "Close to 0 without being 0 so first sigma is not inf" — fp16's smallest subnormal.
  if (rescale && opts.clampLastAlpha) alphasCumprod[numTrainTimesteps - 1] = 2 ** -24;
  return { numTrainTimesteps, alphasCumprod, sigmas: sigmaTableF32(alphasCumprod) };
}

function finite(v: number): string | null {
  return Number.isFinite(v) && v >= 0 && v < 1 ? null : 'must be a finite number in [0, 1)';
}
