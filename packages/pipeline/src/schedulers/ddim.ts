// DDIMScheduler (diffusers v0.26 schedulers/scheduling_ddim.py): Song et al. (2020) eq. 12 — x_{t−Δ} =
// sqrt(ᾱ_prev)·x̂₀ + sqrt(1 − ᾱ_prev − σ_t²)·ε̂ (+ σ_t·noise), σ_t = η·sqrt(β̃_t) (eq. 16); η = 0 by default.
import { InvalidArgumentError } from '@ssd/tensor';
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import { BaseScheduler, f32 } from './base.js';
import { alphaNoise, predOriginal } from './ddpm.js';
import { readNoiseSchedule } from './noise-schedule.js';
import { clipSample, readSampleClipping, type SampleClipping } from './sample-clipping.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { TIMESTEP_SPACINGS, timestepsN, type TimestepSpacing } from './timesteps.js';

export class DDIMScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'ddim';
  readonly className = 'DDIMScheduler';
  readonly timestepDtype = 'int64';
  readonly initNoiseSigma = 1;
  private readonly prediction: 'epsilon' | 'v_prediction' | 'sample';
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly finalAlphaCumprod: number;
  private readonly clipping: SampleClipping;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: true, clampLastAlpha: false });
    const clipping = readSampleClipping(cfg);
    const setAlphaToOne = cfg.boolean('set_alpha_to_one', true);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
    const spacing = cfg.choice('timestep_spacing', 'leading', TIMESTEP_SPACINGS);
    super(cfg, schedule, 'euler');
    this.prediction = prediction;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
    this.clipping = clipping;
    // The "previous" ᾱ of the last step: 1, or ᾱ_0 when set_alpha_to_one is false (SDXL's config).
    this.finalAlphaCumprod = setAlphaToOne ? 1 : schedule.alphasCumprod[0];
  }

  protected placeTimesteps(n: number): void {
    this.timesteps = Float64Array.from(timestepsN(this.spacing, n, this.schedule.numTrainTimesteps, this.stepsOffset, false));
  }

  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    this.currentIndex(t);
    const eta = opts?.eta ?? 0;
    if (!(eta >= 0) || !Number.isFinite(eta)) throw new InvalidArgumentError(`DDIMScheduler.step: eta must be ≥ 0, got ${eta}`);
    const ac = this.schedule.alphasCumprod;
    const prevT = t - Math.floor(this.schedule.numTrainTimesteps / this.numInferenceSteps);
    const aT = ac[t];
    const aPrev = prevT >= 0 ? ac[prevT] : this.finalAlphaCumprod;
    const betaProdT = f32(1 - aT);
    const sqrtA = f32(Math.sqrt(aT));
    const sqrtB = f32(Math.sqrt(betaProdT));
    // x̂₀ = px·x + pm·m and ε̂ = ex·x + em·m
    let px: number, pm: number, ex: number, em: number;
    if (this.prediction === 'epsilon') [px, pm, ex, em] = [1 / sqrtA, -sqrtB / sqrtA, 0, 1];
    else if (this.prediction === 'sample') [px, pm, ex, em] = [0, 1, 1 / sqrtB, -sqrtA / sqrtB];
    else [px, pm, ex, em] = [sqrtA, -sqrtB, sqrtB, sqrtA];
    const variance = f32(f32(f32(1 - aPrev) / betaProdT) * f32(1 - f32(aT / aPrev)));
    const std = f32(eta * f32(Math.sqrt(variance)));
    const cx0 = f32(Math.sqrt(aPrev));
    const cEps = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    // x_prev = cx0·x̂₀ + cEps·ε̂ (ε̂ from the unclipped x̂₀, as with use_clipped_model_output false):
    // folded into one combination of x and m unless x̂₀ is clipped (a nonlinear step)
    const clipped = this.clipping.kind !== 'none';
    const x0 = clipped || opts?.withPredOriginal ? clipSample(ops, ops.combine([[sample, px], [modelOutput, pm]]), this.clipping) : null;
    const terms: Array<readonly [T, number]> =
      x0 && clipped ? [[x0, cx0], [sample, cEps * ex], [modelOutput, cEps * em]] : [[sample, cx0 * px + cEps * ex], [modelOutput, cx0 * pm + cEps * em]];
    let noise: T | null = null;
    if (eta > 0) {
      noise = ops.randnLike(modelOutput, this.requireGenerator(opts, 'eta > 0'));
      terms.push([noise, std]);
    }
    const prevSample = ops.combine(terms);
    if (noise !== null) ops.release(noise);
    this.advance();
    return { prevSample, predOriginalSample: predOriginal(ops, x0, opts) };
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    return alphaNoise(ops, this.schedule.alphasCumprod, original, noise, t);
  }
}
