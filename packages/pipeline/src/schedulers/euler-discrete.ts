// EulerDiscreteScheduler (diffusers v0.26 schedulers/scheduling_euler_discrete.py): Karras et al. (2022)
// Algorithm 2 with s_churn = 0, i.e. x ← x + (x − x̂₀)/σ · (σ_next − σ). The SDXL default scheduler.
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import { BaseScheduler, f32, sqrtSigmaSqPlus1 } from './base.js';
import { readNoiseSchedule } from './noise-schedule.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { interpSigmas, karrasFrom, logSigmaTable, timestepsForSigmas } from './sigma-schedule.js';
import { TIMESTEP_SPACINGS, timestepsN, type TimestepSpacing } from './timesteps.js';

type Prediction = 'epsilon' | 'v_prediction' | 'sample';

export class EulerDiscreteScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'euler';
  readonly className = 'EulerDiscreteScheduler';
  readonly timestepDtype = 'float32';
  private readonly prediction: Prediction;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly useKarras: boolean;
  private readonly continuous: boolean;
  private readonly reader: ConfigReader;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: true, clampLastAlpha: true });
    const prediction = readPrediction(cfg);
    cfg.choice('interpolation_type', 'linear', ['linear'], {
      log_linear: "v0.26 builds num_inference_steps + 1 log-linear sigmas for num_inference_steps timesteps; only 'linear' is supported",
    });
    const useKarras = cfg.boolean('use_karras_sigmas', false);
    cfg.optionalNumber('sigma_min');
    cfg.optionalNumber('sigma_max');
    const spacing = cfg.choice('timestep_spacing', 'linspace', TIMESTEP_SPACINGS);
    const timestepType = cfg.choice('timestep_type', 'discrete', ['discrete', 'continuous'] as const);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    super(cfg, schedule, 'euler');
    this.reader = cfg;
    this.prediction = prediction;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
    this.useKarras = useKarras;
    this.continuous = timestepType === 'continuous' && prediction === 'v_prediction';
  }

  get initNoiseSigma(): number {
    const sigmas = this.sigmas;
    if (!sigmas) return NaN;
    const max = sigmas.reduce((a, b) => Math.max(a, b), 0);
    // diffusers: max σ for linspace/trailing spacing, (max σ² + 1)^½ for leading.
    return this.spacing === 'leading' ? sqrtSigmaSqPlus1(max) : max;
  }

  protected placeTimesteps(n: number): void {
    const table = this.schedule.sigmas;
    let ts = timestepsN(this.spacing, n, this.schedule.numTrainTimesteps, this.stepsOffset, true);
    let sigmas = interpSigmas(ts, table);
    if (this.useKarras) {
      sigmas = karrasFrom(this.reader, sigmas[sigmas.length - 1], sigmas[0], n);
      ts = timestepsForSigmas(sigmas, logSigmaTable(table), false);
    }
    const sig32 = sigmas.map(f32);
    // timestep_type "continuous" with v-prediction feeds the UNet 0.25·log σ (EDM's c_noise). torch takes
    // the log with Sleef's logf (≤ 1 ulp); Math.log rounded to float32 may differ from it in the last bit.
    this.timesteps = Float64Array.from(this.continuous ? sig32.map((s) => f32(0.25 * f32(Math.log(s)))) : ts.map(f32));
    this.sigmas = Float64Array.from([...sig32, 0]);
  }

  override inputScale(t: number): number {
    const sigma = this.sigmas![this.currentIndex(t)];
    return 1 / sqrtSigmaSqPlus1(sigma);
  }

  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    const i = this.currentIndex(t);
    const sigma = this.sigmas![i];
    // diffusers draws (and, with s_churn = 0, discards) one noise tensor per step from the generator.
    if (opts?.generator) ops.release(ops.randnLike(modelOutput, opts.generator));
    const dt = f32(this.sigmas![i + 1] - sigma);
    const prevSample = ops.combine(eulerUpdate(this.prediction, sample, modelOutput, sigma, dt));
    const predOriginalSample = opts?.withPredOriginal ? ops.combine(eulerX0(this.prediction, sample, modelOutput, sigma)) : undefined;
    this.advance();
    return { prevSample, predOriginalSample };
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    return ops.combine([[original, 1], [noise, this.sigmas![this.noiseIndex(t)]]]);
  }
}

export function readPrediction(cfg: ConfigReader): Prediction {
  const p = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample', 'original_sample'] as const);
  return p === 'original_sample' ? 'sample' : p;
}

/** x̂₀ of the Euler schedulers (diffusers' pred_original_sample) as a combination of x and m. */
export function eulerX0<T>(prediction: Prediction, x: T, m: T, sigma: number): Array<readonly [T, number]> {
  if (prediction === 'epsilon') return [[x, 1], [m, -sigma]];
  if (prediction === 'v_prediction') {
    const s2 = sigma * sigma + 1;
    return [[x, 1 / s2], [m, -sigma / Math.sqrt(s2)]];
  }
  return [[m, 1]];
}

/**
 * x + (x − x̂₀)/σ · dt written as a combination of x and the model output m:
 * ε: x̂₀ = x − σm; v: x̂₀ = x/(σ²+1) − m·σ/(σ²+1)^½ (EDM's c_skip, c_out); sample: x̂₀ = m.
 */
export function eulerUpdate<T>(prediction: Prediction, x: T, m: T, sigma: number, dt: number): Array<readonly [T, number]> {
  if (prediction === 'epsilon') return [[x, 1], [m, dt]];
  if (prediction === 'v_prediction') {
    const s2 = sigma * sigma + 1;
    return [[x, 1 + (dt * sigma) / s2], [m, dt / Math.sqrt(s2)]];
  }
  return [[x, 1 + dt / sigma], [m, -dt / sigma]];
}
