// DDPMScheduler (diffusers v0.26 schedulers/scheduling_ddpm.py): ancestral sampling of Ho et al. (2020),
// posterior mean μ̃(x_t, x̂₀) (their eq. 7) plus noise of the "fixed_small" variance β̃_t at t > 0.
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import { BaseScheduler, f32 } from './base.js';
import { readNoiseSchedule } from './noise-schedule.js';
import { clipSample, readSampleClipping, type SampleClipping } from './sample-clipping.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { TIMESTEP_SPACINGS, timestepsN, type TimestepSpacing } from './timesteps.js';

type Prediction = 'epsilon' | 'v_prediction' | 'sample';
type VarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

export class DDPMScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'ddpm';
  readonly className = 'DDPMScheduler';
  readonly timestepDtype = 'int64';
  readonly initNoiseSigma = 1;
  private readonly prediction: Prediction;
  private readonly varianceType: VarianceType;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly clipping: SampleClipping;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: true, clampLastAlpha: false });
    const varianceType = cfg.choice('variance_type', 'fixed_small', ['fixed_small', 'fixed_small_log', 'fixed_large'] as const, {
      fixed_large_log: 'takes the square root of a log-variance (NaN in diffusers v0.26)',
      learned: 'needs the variance channels of a learned-variance model',
      learned_range: 'needs the variance channels of a learned-variance model',
    });
    const clipping = readSampleClipping(cfg);
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
    const spacing = cfg.choice('timestep_spacing', 'leading', TIMESTEP_SPACINGS);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    super(cfg, schedule, 'euler');
    this.prediction = prediction;
    this.varianceType = varianceType;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
    this.clipping = clipping;
  }

  protected placeTimesteps(n: number): void {
    this.timesteps = Float64Array.from(timestepsN(this.spacing, n, this.schedule.numTrainTimesteps, this.stepsOffset, false));
  }

  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    this.currentIndex(t); // counts steps; DDPM itself works from t
    const ac = this.schedule.alphasCumprod;
    // previous_timestep: t − T // n for non-custom timesteps (not the next list entry).
    const prevT = t - Math.floor(this.schedule.numTrainTimesteps / this.numInferenceSteps);
    const aT = ac[t];
    const aPrev = prevT >= 0 ? ac[prevT] : 1;
    const betaProdT = f32(1 - aT);
    const betaProdPrev = f32(1 - aPrev);
    const alphaT = f32(aT / aPrev);
    const betaT = f32(1 - alphaT);
    const sqrtA = f32(Math.sqrt(aT));
    const sqrtB = f32(Math.sqrt(betaProdT));
    // x̂₀ = px·x + pm·m
    const [px, pm] =
      this.prediction === 'epsilon' ? [1 / sqrtA, -sqrtB / sqrtA] : this.prediction === 'v_prediction' ? [sqrtA, -sqrtB] : [0, 1];
    const c0 = f32(f32(f32(Math.sqrt(aPrev)) * betaT) / betaProdT);
    const c1 = f32(f32(f32(Math.sqrt(alphaT)) * betaProdPrev) / betaProdT);
    // μ̃ = c0·x̂₀ + c1·x: folded into one combination of x and m unless x̂₀ is clipped (a nonlinear step)
    const clipped = this.clipping.kind !== 'none';
    const x0 = clipped || opts?.withPredOriginal ? clipSample(ops, ops.combine([[sample, px], [modelOutput, pm]]), this.clipping) : null;
    const terms: Array<readonly [T, number]> = x0 && clipped ? [[x0, c0], [sample, c1]] : [[sample, c0 * px + c1], [modelOutput, c0 * pm]];
    let noise: T | null = null;
    if (t > 0) {
      noise = ops.randnLike(modelOutput, this.requireGenerator(opts, 'adding the posterior noise at t > 0'));
      terms.push([noise, this.noiseStd(betaProdPrev, betaProdT, betaT)]);
    }
    const prevSample = ops.combine(terms);
    if (noise !== null) ops.release(noise);
    this.advance();
    return { prevSample, predOriginalSample: predOriginal(ops, x0, opts) };
  }

  /** The std of the added noise (_get_variance, then ** 0.5 except for fixed_small_log). */
  private noiseStd(betaProdPrev: number, betaProdT: number, betaT: number): number {
    if (this.varianceType === 'fixed_large') return f32(Math.sqrt(betaT));
    const variance = Math.max(f32(f32(betaProdPrev / betaProdT) * betaT), 1e-20);
    if (this.varianceType === 'fixed_small_log') return f32(Math.exp(f32(0.5 * f32(Math.log(f32(variance))))));
    return f32(Math.sqrt(f32(variance)));
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    return alphaNoise(ops, this.schedule.alphasCumprod, original, noise, t);
  }
}

/** x̂₀ handed to the caller when asked for, else released. */
export function predOriginal<T>(ops: LatentOps<T>, x0: T | null, opts: StepOptions | undefined): T | undefined {
  if (x0 === null) return undefined;
  if (opts?.withPredOriginal) return x0;
  ops.release(x0);
  return undefined;
}

/** add_noise of DDPM/DDIM: sqrt(ᾱ_t)·x₀ + sqrt(1 − ᾱ_t)·ε (float32 coefficients). */
export function alphaNoise<T>(ops: LatentOps<T>, ac: Float32Array, original: T, noise: T, t: number): T {
  if (!Number.isInteger(t) || t < 0 || t >= ac.length) {
    throw new RangeError(`add_noise: timestep ${t} is not an integer in [0, ${ac.length - 1}]`);
  }
  const a = ac[t];
  return ops.combine([[original, f32(Math.sqrt(a))], [noise, f32(Math.sqrt(f32(1 - a)))]]);
}
