// The contract every scheduler implements (diffusers' SchedulerMixin contract, schedulers/scheduling_utils.py):
// set_timesteps, timesteps, init_noise_sigma, scale_model_input, step, add_noise, set_begin_index — with the
// per-step array math delegated to LatentOps so the same scheduler drives GPU tensors and CPU arrays.
import type { TorchGenerator } from '../random/torch-generator.js';
import type { LatentOps } from './latent-ops.js';

export const SCHEDULER_NAMES = ['euler', 'euler-a', 'ddpm', 'ddim', 'dpm++2m', 'dpm++2m-karras', 'unipc', 'lcm'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

export interface StepOptions {
  /**
   * The generator noise is drawn from. Required by schedulers that add noise (Euler ancestral, DDPM at
   * t > 0, SDE DPM-Solver, DDIM with eta > 0). Euler (not ancestral) draws and discards one tensor per
   * step when it is given, as diffusers v0.26 does, so the generator stays in step with diffusers'.
   */
  generator?: TorchGenerator;
  /** DDIM's η (diffusers' pipeline passes eta = 0 by default); ignored by the others. */
  eta?: number;
  /**
   * Also return x̂₀ as `predOriginalSample` (schedulers whose diffusers SchedulerOutput has it: Euler,
   * Euler ancestral, DDPM, DDIM, LCM). Off by default: it costs one more array per step.
   */
  withPredOriginal?: boolean;
}

/** diffusers' SchedulerOutput: arrays the caller owns. */
export interface SchedulerOutput<T> {
  /** x_{t−1}, the sample for the next step. */
  prevSample: T;
  /** x̂₀, the model's estimate of the clean sample (after clip_sample / thresholding), when asked for and defined. */
  predOriginalSample?: T;
  /** LCM: c_out·x̂₀ + c_skip·x (diffusers' LCMSchedulerOutput.denoised), when asked for (withPredOriginal). */
  denoised?: T;
}

export interface Scheduler {
  /** CLI name: 'euler' | 'euler-a' | 'ddpm' | 'ddim' | 'dpm++2m' | 'dpm++2m-karras' | 'unipc' | 'lcm'. */
  readonly name: SchedulerName;
  /** The diffusers class name, e.g. 'EulerDiscreteScheduler'. */
  readonly className: string;
  /** The resolved values of every key this scheduler reads (its diffusers .config). */
  readonly config: Readonly<Record<string, unknown>>;
  /** diffusers' `order` class attribute (1 for all six: multistep solvers step once per model call). */
  readonly order: number;
  /** Places the timesteps for a run of `numInferenceSteps` UNet calls and resets all state. */
  setTimesteps(numInferenceSteps: number): void;
  /** What the UNet receives, exactly diffusers' values, descending. Empty before setTimesteps. */
  readonly timesteps: Float64Array;
  /** 'float32' for the Euler schedulers (fractional with Karras sigmas), 'int64' for the others. */
  readonly timestepDtype: 'float32' | 'int64';
  /** The sigma per timestep plus the final one (float32 values), for the sigma-based schedulers. */
  readonly sigmas?: Float64Array;
  /** diffusers' alphas_cumprod (ᾱ_t, float32 values) for t = 0 … num_train_timesteps − 1. */
  readonly alphasCumprod: Float32Array;
  /** The standard deviation of the initial noise: multiply randn latents by it (text-to-image). */
  readonly initNoiseSigma: number;
  /** The index of the next step (null until the first scale/step call or setBeginIndex). */
  readonly stepIndex: number | null;
  /** scale_model_input's factor for timestep t (starts the step counter at t like diffusers). */
  inputScale(t: number): number;
  /** scale_model_input: a new array inputScale(t)·x. */
  scaleModelInput<T>(ops: LatentOps<T>, x: T, t: number): T;
  /** One solver step: the new sample (and x̂₀ when asked for), new arrays the caller owns. */
  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T>;
  /** diffusers' add_noise for img2img: a new array noising `original` to timestep t. */
  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T;
  /** img2img starts part-way: the first step taken is timesteps[i] (diffusers set_begin_index). */
  setBeginIndex(i: number): void;
  /** Frees the stored history (via the ops last given to step) and restarts the step counter. */
  reset(): void;
  /** Releases any stored history through `ops`. */
  dispose<T>(ops: LatentOps<T>): void;
}
