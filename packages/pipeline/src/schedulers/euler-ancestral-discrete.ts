// EulerAncestralDiscreteScheduler (diffusers v0.26 schedulers/scheduling_euler_ancestral_discrete.py): an
// Euler step down to σ_down followed by fresh noise of std σ_up, σ_up² + σ_down² = σ_next², drawn from the
// generator every step (the last one too, where σ_up = 0), as k-diffusion's sample_euler_ancestral does.
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import { BaseScheduler, f32, sqrtSigmaSqPlus1 } from './base.js';
import { eulerUpdate, eulerX0 } from './euler-discrete.js';
import { readNoiseSchedule } from './noise-schedule.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { interpSigmas } from './sigma-schedule.js';
import { TIMESTEP_SPACINGS, timestepsN, type TimestepSpacing } from './timesteps.js';

export class EulerAncestralDiscreteScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'euler-a';
  readonly className = 'EulerAncestralDiscreteScheduler';
  readonly timestepDtype = 'float32';
  private readonly prediction: 'epsilon' | 'v_prediction';
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: true, clampLastAlpha: true });
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction'] as const, {
      sample: "diffusers v0.26 raises NotImplementedError for prediction_type 'sample' in this scheduler",
    });
    const spacing = cfg.choice('timestep_spacing', 'linspace', TIMESTEP_SPACINGS);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    super(cfg, schedule, 'euler');
    this.prediction = prediction;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
  }

  get initNoiseSigma(): number {
    const sigmas = this.sigmas;
    if (!sigmas) return NaN;
    const max = sigmas.reduce((a, b) => Math.max(a, b), 0);
    return this.spacing === 'leading' ? sqrtSigmaSqPlus1(max) : max;
  }

  protected placeTimesteps(n: number): void {
    const ts = timestepsN(this.spacing, n, this.schedule.numTrainTimesteps, this.stepsOffset, true).map(f32);
    const sigmas = interpSigmas(ts, this.schedule.sigmas).map(f32);
    this.timesteps = Float64Array.from(ts);
    this.sigmas = Float64Array.from([...sigmas, 0]);
  }

  override inputScale(t: number): number {
    return 1 / sqrtSigmaSqPlus1(this.sigmas![this.currentIndex(t)]);
  }

  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    const generator = this.requireGenerator(opts, 'ancestral sampling adds fresh noise every step and');
    const i = this.currentIndex(t);
    const from = this.sigmas![i];
    const to = this.sigmas![i + 1];
    // σ_up and σ_down in torch's float32 scalar arithmetic (the subtraction in σ_down cancels).
    const from2 = f32(from * from);
    const to2 = f32(to * to);
    const up = f32(Math.sqrt(f32(f32(to2 * f32(from2 - to2)) / from2)));
    const down = f32(Math.sqrt(f32(to2 - f32(up * up))));
    const update = eulerUpdate(this.prediction, sample, modelOutput, from, f32(down - from));
    const noise = ops.randnLike(modelOutput, generator);
    const prevSample = ops.combine([...update, [noise, up]]);
    ops.release(noise);
    const predOriginalSample = opts?.withPredOriginal ? ops.combine(eulerX0(this.prediction, sample, modelOutput, from)) : undefined;
    this.advance();
    return { prevSample, predOriginalSample };
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    return ops.combine([[original, 1], [noise, this.sigmas![this.noiseIndex(t)]]]);
  }
}
