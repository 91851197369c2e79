// UniPCMultistepScheduler (diffusers v0.26 schedulers/scheduling_unipc_multistep.py; Zhao et al. 2023,
// arXiv 2302.04867): each step first corrects the previous prediction with the new model output (UniC),
// then predicts the next sample (UniP), B(h) = e^h − 1 ("bh2") by default, on x̂₀ (predict_x0).
import type { ConfigReader } from './config.js';
import { BaseScheduler, f32 } from './base.js';
import type { LatentOps } from './latent-ops.js';
import { readNoiseSchedule } from './noise-schedule.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { interpSigmas, karrasFrom, logSigmaTable, timestepsForSigmas } from './sigma-schedule.js';
import { uniCorrector, uniPredictor } from './unipc-updates.js';
import { vpPoint } from './solver-coefficients.js';
import { TIMESTEP_SPACINGS, timestepsNPlus1, type TimestepSpacing } from './timesteps.js';

export class UniPCMultistepScheduler extends BaseScheduler {
  readonly name: SchedulerName = 'unipc';
  readonly className = 'UniPCMultistepScheduler';
  readonly timestepDtype = 'int64';
  readonly initNoiseSigma = 1;
  private readonly solverOrder: number;
  private readonly prediction: 'epsilon' | 'v_prediction' | 'sample';
  private readonly predictX0: boolean;
  private readonly bh2: boolean;
  private readonly lowerOrderFinal: boolean;
  private readonly disableCorrector: readonly number[];
  private readonly useKarras: boolean;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly reader: ConfigReader;
  /** Converted model outputs m, oldest first; the corrected sample x_{i−1} before the last predictor. */
  private modelOutputs: unknown[] = [];
  private lastSample: unknown = null;
  private thisOrder = 0;
  private lowerOrderNums = 0;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: false, clampLastAlpha: false });
    const solverOrder = cfg.integer('solver_order', 2, 1);
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
    cfg.require('thresholding', false, false, 'dynamic thresholding is not supported');
    const predictX0 = cfg.boolean('predict_x0', true);
    // diffusers maps the DPM-Solver names onto bh2 (register_to_config in __init__).
    const type = cfg.choice('solver_type', 'bh2', ['bh1', 'bh2', 'midpoint', 'heun', 'logrho'] as const);
    cfg.used.solver_type = type === 'bh1' ? 'bh1' : 'bh2';
    const lowerOrderFinal = cfg.boolean('lower_order_final', true);
    const disable = cfg.raw('disable_corrector') ?? [];
    if (!Array.isArray(disable) || !disable.every((v) => Number.isSafeInteger(v))) {
      throw cfg.error('disable_corrector', disable, 'must be a list of step indices');
    }
    cfg.used.disable_corrector = disable;
    const solverP = cfg.raw('solver_p');
    if (solverP !== undefined && solverP !== null) throw cfg.error('solver_p', solverP, 'an external predictor scheduler is not supported');
    cfg.used.solver_p = null;
    const useKarras = cfg.boolean('use_karras_sigmas', false);
    const spacing = cfg.choice('timestep_spacing', 'linspace', TIMESTEP_SPACINGS);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    if (solverOrder > 3) throw cfg.error('solver_order', solverOrder, 'must be 1, 2 or 3');
    super(cfg, schedule, 'multistep');
    this.reader = cfg;
    this.solverOrder = solverOrder;
    this.prediction = prediction;
    this.predictX0 = predictX0;
    this.bh2 = type !== 'bh1';
    this.lowerOrderFinal = lowerOrderFinal;
    this.disableCorrector = disable as number[];
    this.useKarras = useKarras;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
  }

  protected placeTimesteps(n: number): void {
    const { numTrainTimesteps: T, sigmas: table } = this.schedule;
    let ts = timestepsNPlus1(this.spacing, n, T, T, this.stepsOffset);
    let sigmas: number[];
    if (this.useKarras) {
      sigmas = karrasFrom(this.reader, table[0], table[T - 1], n);
      ts = timestepsForSigmas(sigmas, logSigmaTable(table), true);
      sigmas.push(sigmas[sigmas.length - 1]); // v0.26 repeats the last Karras sigma
    } else {
      sigmas = interpSigmas(ts, table);
      sigmas.push(table[0]); // ... and appends σ_min of the training table otherwise
    }
    this.timesteps = Float64Array.from(ts);
    this.sigmas = Float64Array.from(sigmas, f32);
  }

  protected override clearHistory(): void {
    this.modelOutputs = [];
    this.lastSample = null;
    this.thisOrder = 0;
    this.lowerOrderNums = 0;
  }

  // diffusers' SchedulerOutput of the multistep solvers has prev_sample only.
  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, _opts?: StepOptions): SchedulerOutput<T> {
    const i = this.currentIndex(t);
    const sig = this.sigmas!;
    const at = (k: number) => vpPoint(sig[k]);
    const useCorrector = i > 0 && !this.disableCorrector.includes(i - 1) && this.lastSample !== null;
    const converted = this.track(ops, ops.combine(this.convert(modelOutput, sample, sig[i])));
    const history = [...this.modelOutputs].reverse() as T[]; // m₀ = newest before this step

    let x = sample; // x_i: the caller's sample, or our corrected copy of it
    if (useCorrector) {
      const f = uniCorrector(this.predictX0, this.bh2, this.thisOrder, at, i);
      const terms: Array<readonly [T, number]> = [[this.lastSample as T, f[0]], [converted, f[4]]];
      for (let k = 0; k < 3; k++) if (f[k + 1] !== 0) terms.push([history[k], f[k + 1]]);
      x = this.track(ops, ops.combine(terms));
    }

    this.modelOutputs.push(converted);
    if (this.modelOutputs.length > this.solverOrder) this.drop(ops, this.modelOutputs.shift() as T);
    const order = this.lowerOrderFinal ? Math.min(this.solverOrder, this.timesteps.length - i) : this.solverOrder;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1); // warm-up of the multistep method

    this.drop(ops, this.lastSample as T | null);
    this.lastSample = x === sample ? this.keep(ops, sample) : x;

    const p = uniPredictor(this.predictX0, this.bh2, this.thisOrder, at, i);
    const now = [...this.modelOutputs].reverse() as T[];
    const terms: Array<readonly [T, number]> = [[x, p[0]]];
    for (let k = 0; k < 3; k++) if (p[k + 1] !== 0) terms.push([now[k], p[k + 1]]);
    const out = ops.combine(terms);
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.advance();
    return { prevSample: out };
  }

  /** convert_model_output: x̂₀ when predict_x0, else ε̂, as [sample, model] coefficients. */
  private convert<T>(m: T, x: T, sigma: number): Array<readonly [T, number]> {
    const { alpha, sigma: s } = vpPoint(sigma);
    if (this.predictX0) {
      if (this.prediction === 'epsilon') return [[x, 1 / alpha], [m, -s / alpha]];
      if (this.prediction === 'sample') return [[m, 1]];
      return [[x, alpha], [m, -s]];
    }
    if (this.prediction === 'epsilon') return [[m, 1]];
    if (this.prediction === 'sample') return [[x, 1 / s], [m, -alpha / s]];
    return [[x, s], [m, alpha]];
  }

  addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T {
    const { alpha, sigma } = vpPoint(this.sigmas![this.noiseIndex(t)]);
    return ops.combine([[original, alpha], [noise, sigma]]);
  }
}
