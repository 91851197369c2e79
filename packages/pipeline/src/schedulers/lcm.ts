// LCMScheduler (diffusers v0.26.3 schedulers/scheduling_lcm.py): multistep latent consistency
// sampling (Luo et al. 2023, arXiv 2310.04378). Timesteps are taken evenly by index from the
// distillation schedule [1 … original_inference_steps]·k − 1; each step maps x_t to the consistency
// function's output denoised = c_out·x̂₀ + c_skip·x_t (boundary condition with timestep_scaling) and,
// except on the last step, re-noises it to the next timestep with noise drawn inside step.
import { InvalidArgumentError } from '@ssd/tensor';
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import { BaseScheduler, f32 } from './base.js';
import { alphaNoise } from './ddpm.js';
import { readNoiseSchedule } from './noise-schedule.js';
import { clipSample, readSampleClipping, type SampleClipping } from './sample-clipping.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { TIMESTEP_SPACINGS } from './timesteps.js';

/** diffusers' sigma_data of the consistency boundary condition. */
const SIGMA_DATA = 0.5;

export class LCMScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'lcm';
  readonly className = 'LCMScheduler';
  readonly timestepDtype = 'int64';
  readonly initNoiseSigma = 1;
  private readonly originalSteps: number;
  private readonly timestepScaling: number;
  private readonly prediction: 'epsilon' | 'v_prediction' | 'sample';
  private readonly clipping: SampleClipping;
  private readonly finalAlphaCumprod: number;

  constructor(cfg: ConfigReader) {
    // LCMScheduler's own defaults differ from DDPM's: SD/SDXL's scaled_linear betas, no clip_sample
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: true, clampLastAlpha: false, defaults: { betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear' } });
    const originalSteps = cfg.integer('original_inference_steps', 50, 1);
    if (originalSteps > schedule.numTrainTimesteps) throw cfg.error('original_inference_steps', originalSteps, `cannot be larger than num_train_timesteps (${schedule.numTrainTimesteps})`);
    const clipping = readSampleClipping(cfg, false);
    const setAlphaToOne = cfg.boolean('set_alpha_to_one', true);
    cfg.integer('steps_offset', 0, 0); // read for .config; LCM's schedule does not use it
    cfg.choice('timestep_spacing', 'leading', TIMESTEP_SPACINGS); // likewise
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
    const timestepScaling = cfg.number('timestep_scaling', 10, (v) => (Number.isFinite(v) && v > 0 ? null : 'must be a finite number > 0'));
    super(cfg, schedule, 'euler');
    this.originalSteps = originalSteps;
    this.timestepScaling = timestepScaling;
    this.prediction = prediction;
    this.clipping = clipping;
    // used when a previous timestep is negative, which LCM's own schedule never produces
    this.finalAlphaCumprod = setAlphaToOne ? 1 : schedule.alphasCumprod[0];
  }

  /**
   * set_timesteps(n) with strength 1: k = T // original_steps, origin = [1 … original_steps]·k − 1
   * reversed, indices = floor(linspace(0, original_steps, n, endpoint=False)).
   */
  protected placeTimesteps(n: number): void {
    const T = this.schedule.numTrainTimesteps;
    const orig = this.originalSteps;
    if (n > orig) {
      throw new InvalidArgumentError(`LCMScheduler.setTimesteps: ${n} inference steps cannot be more than original_inference_steps (${orig}): the schedule is a subset of the ${orig}-step distillation schedule`);
    }
    const k = Math.floor(T / orig);
    const origin = Array.from({ length: orig }, (_, i) => (orig - i) * k - 1); // already reversed
    const step = orig / n; // np.linspace(0, orig, n, endpoint=False) = i · (orig / n)
    this.timesteps = Float64Array.from({ length: n }, (_, i) => origin[Math.floor(i * step)]);
  }

  /**
   * One LCM step. Returns prev_sample; with withPredOriginal also x̂₀ (predOriginalSample) and
   * diffusers' `denoised`. Draws one noise tensor from opts.generator on every step but the last.
   */
  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    const i = this.currentIndex(t);
    const prevT = i + 1 < this.timesteps.length ? this.timesteps[i + 1] : t;
    const ac = this.schedule.alphasCumprod;
    if (!Number.isInteger(t) || t < 0 || t >= ac.length) throw new InvalidArgumentError(`LCMScheduler.step: timestep ${t} is not an integer in [0, ${ac.length - 1}]`);
    const aT = ac[t];
    const aPrev = prevT >= 0 ? ac[prevT] : this.finalAlphaCumprod;
    // torch: the int64 timestep times the float scaling is a float32 tensor; every coefficient is float32
    const scaled = f32(t * this.timestepScaling);
    const denom = f32(f32(scaled * scaled) + SIGMA_DATA ** 2);
    const cSkip = f32(SIGMA_DATA ** 2 / denom);
    const cOut = f32(scaled / f32(Math.sqrt(denom)));
    const sqrtA = f32(Math.sqrt(aT));
    const sqrtB = f32(Math.sqrt(f32(1 - aT)));
    // x̂₀ = px·x + pm·m
    let px: number, pm: number;
    if (this.prediction === 'epsilon') [px, pm] = [1 / sqrtA, -sqrtB / sqrtA];
    else if (this.prediction === 'sample') [px, pm] = [0, 1];
    else [px, pm] = [sqrtA, -sqrtB];
    const clipped = this.clipping.kind !== 'none';
    const wanted = !!opts?.withPredOriginal;
    const x0 = clipped || wanted ? clipSample(ops, ops.combine([[sample, px], [modelOutput, pm]]), this.clipping) : null;
    // denoised = c_out·x̂₀ + c_skip·x, folded into one combination of x and m when x̂₀ is linear in them
    const denoisedTerms = (c: number): Array<readonly [T, number]> => (x0 && clipped ? [[x0, c * cOut], [sample, c * cSkip]] : [[sample, c * (cOut * px + cSkip)], [modelOutput, c * cOut * pm]]);
    const denoised = wanted ? ops.combine(denoisedTerms(1)) : null;
    let prevSample: T;
    if (i !== this.numInferenceSteps - 1) {
      const noise = ops.randnLike(modelOutput, this.requireGenerator(opts, 'every step but the last'));
      prevSample = ops.combine([...denoisedTerms(f32(Math.sqrt(aPrev))), [noise, f32(Math.sqrt(f32(1 - aPrev)))]]);
      ops.release(noise);
    } else prevSample = ops.combine(denoisedTerms(1)); // the last step returns denoised (a separate array)
    this.advance();
    if (!wanted) {
      if (x0 !== null) ops.release(x0);
      return { prevSample };
    }
    return { prevSample, predOriginalSample: x0!, denoised: denoised! };
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    return alphaNoise(ops, this.schedule.alphasCumprod, original, noise, t);
  }
}
