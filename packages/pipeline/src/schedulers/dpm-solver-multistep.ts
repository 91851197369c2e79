// DPMSolverMultistepScheduler (diffusers v0.26 schedulers/scheduling_dpmsolver_multistep.py): DPM-Solver++
// 2M by default — multistep exponential integrator on the data prediction x̂₀, first order on the first step
// and (lower_order_final / final_sigmas_type "zero") on the last. Karras sigmas give "DPM++ 2M Karras".
import type { ConfigReader } from './config.js';
import { BaseScheduler, f32 } from './base.js';
import { firstOrder, secondOrder, thirdOrder, type DpmAlgorithm, type DpmSolverType } from './dpm-solver-updates.js';
import type { LatentOps } from './latent-ops.js';
import { readNoiseSchedule } from './noise-schedule.js';
import type { SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';
import { interpSigmas, karrasFrom, logSigmaTable, luSigmas, timestepsForSigmas } from './sigma-schedule.js';
import { vpPoint, type Form } from './solver-coefficients.js';
import { TIMESTEP_SPACINGS, timestepsNPlus1, type TimestepSpacing } from './timesteps.js';

type Prediction = 'epsilon' | 'v_prediction' | 'sample';

export class DPMSolverMultistepScheduler extends BaseScheduler {
  readonly name: SchedulerName;
  readonly className = 'DPMSolverMultistepScheduler';
  readonly timestepDtype = 'int64';
  readonly initNoiseSigma = 1;
  private readonly solverOrder: number;
  private readonly prediction: Prediction;
  private readonly algorithm: DpmAlgorithm;
  private readonly solverType: DpmSolverType;
  private readonly lowerOrderFinal: boolean;
  private readonly eulerAtFinal: boolean;
  private readonly useKarras: boolean;
  private readonly useLu: boolean;
  private readonly finalSigmasType: 'zero' | 'sigma_min';
  private readonly lambdaMinClipped: number;
  private readonly spacing: TimestepSpacing;
  private readonly stepsOffset: number;
  private readonly reader: ConfigReader;
  /** Converted model outputs, oldest first (diffusers self.model_outputs); arrays we own. */
  private modelOutputs: unknown[] = [];
  private lowerOrderNums = 0;

  constructor(cfg: ConfigReader) {
    const schedule = readNoiseSchedule(cfg, { hasRescaleZeroSnr: false, clampLastAlpha: false });
    const solverOrder = cfg.integer('solver_order', 2, 1);
    const prediction = cfg.choice('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
    cfg.require('thresholding', false, false, 'dynamic thresholding is not supported');
    // diffusers maps the DEIS and UniPC names onto its own (register_to_config in __init__).
    const algRaw = cfg.choice('algorithm_type', 'dpmsolver++', ['dpmsolver++', 'sde-dpmsolver++', 'dpmsolver', 'sde-dpmsolver', 'deis'] as const);
    const algorithm: DpmAlgorithm = algRaw === 'deis' ? 'dpmsolver++' : algRaw;
    const typeRaw = cfg.choice('solver_type', 'midpoint', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2'] as const);
    const solverType: DpmSolverType = typeRaw === 'heun' ? 'heun' : 'midpoint';
    cfg.used.algorithm_type = algorithm;
    cfg.used.solver_type = solverType;
    const lowerOrderFinal = cfg.boolean('lower_order_final', true);
    const eulerAtFinal = cfg.boolean('euler_at_final', false);
    const useKarras = cfg.boolean('use_karras_sigmas', false);
    const useLu = cfg.boolean('use_lu_lambdas', false);
    const finalSigmasType = cfg.choice('final_sigmas_type', 'zero', ['zero', 'sigma_min'] as const);
    const lambdaMinClipped = readLambdaMinClipped(cfg);
    const variance = cfg.raw('variance_type');
    if (variance !== undefined && variance !== null) {
      throw cfg.error('variance_type', variance, 'learned-variance models are not supported (only null)');
    }
    cfg.used.variance_type = null;
    const spacing = cfg.choice('timestep_spacing', 'linspace', TIMESTEP_SPACINGS);
    const stepsOffset = cfg.integer('steps_offset', 0, 0);
    if (solverOrder > 3) throw cfg.error('solver_order', solverOrder, 'must be 1, 2 or 3');
    if (solverOrder === 3 && algorithm.startsWith('sde-')) {
      throw cfg.error('solver_order', solverOrder, `third order is not defined for algorithm_type ${algorithm} in diffusers`);
    }
    if (!algorithm.endsWith('++') && finalSigmasType === 'zero') {
      throw cfg.error('final_sigmas_type', finalSigmasType, `is not supported with algorithm_type ${algorithm}; use "sigma_min" (as diffusers requires)`);
    }
    super(cfg, schedule, 'multistep');
    this.name = useKarras ? 'dpm++2m-karras' : 'dpm++2m';
    this.reader = cfg;
    this.solverOrder = solverOrder;
    this.prediction = prediction;
    this.algorithm = algorithm;
    this.solverType = solverType;
    this.lowerOrderFinal = lowerOrderFinal;
    this.eulerAtFinal = eulerAtFinal;
    this.useKarras = useKarras;
    this.useLu = useLu;
    this.finalSigmasType = finalSigmasType;
    this.lambdaMinClipped = lambdaMinClipped;
    this.spacing = spacing;
    this.stepsOffset = stepsOffset;
  }

  protected placeTimesteps(n: number): void {
    const { numTrainTimesteps: T, sigmas: table, alphasCumprod: ac } = this.schedule;
    const last = T - clippedCount(ac, this.lambdaMinClipped);
    let ts = timestepsNPlus1(this.spacing, n, T, last, this.stepsOffset);
    let sigmas: number[];
    if (this.useKarras) {
      sigmas = karrasFrom(this.reader, table[0], table[T - 1], n);
      ts = timestepsForSigmas(sigmas, logSigmaTable(table), true);
    } else if (this.useLu) {
      sigmas = luSigmas(logSigmaTable(table), n);
      ts = timestepsForSigmas(sigmas, logSigmaTable(table), true);
    } else {
      sigmas = interpSigmas(ts, table);
    }
    const sigmaLast = this.finalSigmasType === 'zero' ? 0 : table[0];
    this.timesteps = Float64Array.from(ts);
    this.sigmas = Float64Array.from([...sigmas, sigmaLast], f32);
  }

  protected override clearHistory(): void {
    this.modelOutputs = [];
    this.lowerOrderNums = 0;
  }

  // diffusers' SchedulerOutput of the multistep solvers has prev_sample only.
  step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T> {
    const i = this.currentIndex(t);
    const n = this.timesteps.length;
    const sig = this.sigmas!;
    const lowerOrderFinal =
      i === n - 1 && (this.eulerAtFinal || (this.lowerOrderFinal && n < 15) || this.finalSigmasType === 'zero');
    const lowerOrderSecond = i === n - 2 && this.lowerOrderFinal && n < 15;

    const converted = this.track(ops, ops.combine(this.convert(modelOutput, sample, sig[i])));
    this.modelOutputs.push(converted);
    if (this.modelOutputs.length > this.solverOrder) this.drop(ops, this.modelOutputs.shift() as T);
    const noise = this.algorithm.startsWith('sde-')
      ? ops.randnLike(modelOutput, this.requireGenerator(opts, `algorithm_type ${this.algorithm}`))
      : null;

    const at = (k: number) => vpPoint(sig[k]);
    let form: Form;
    if (this.solverOrder === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      form = firstOrder(this.algorithm, at(i + 1), at(i));
    } else if (this.solverOrder === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) {
      form = secondOrder(this.algorithm, this.solverType, at(i + 1), at(i), at(i - 1));
    } else {
      form = thirdOrder(this.algorithm as 'dpmsolver++' | 'dpmsolver', at(i + 1), at(i), at(i - 1), at(i - 2));
    }
    const history = [...this.modelOutputs].reverse() as T[]; // m₀ newest
    const terms: Array<readonly [T, number]> = [[sample, form[0]]];
    for (let k = 0; k < 3; k++) if (form[k + 1] !== 0) terms.push([history[k], form[k + 1]]);
    if (noise !== null) terms.push([noise, form[4]]);
    const out = ops.combine(terms);
    if (noise !== null) ops.release(noise);
    if (this.lowerOrderNums < this.solverOrder) this.lowerOrderNums++;
    this.advance();
    return { prevSample: out };
  }

  /** convert_model_output: x̂₀ for the ++ algorithms, ε̂ for the others, as [sample, model] coefficients. */
  private convert<T>(m: T, x: T, sigma: number): Array<readonly [T, number]> {
    const { alpha, sigma: s } = vpPoint(sigma);
    if (this.algorithm.endsWith('++')) {
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

/** lambda_min_clipped: −∞ by default (JSON cannot spell it: accept null, "-inf" and "-Infinity"). */
function readLambdaMinClipped(cfg: ConfigReader): number {
  const v = cfg.raw('lambda_min_clipped');
  let out: number;
  if (v === undefined || v === null || v === '-inf' || v === '-Infinity') out = -Infinity;
  else if (typeof v === 'number' && !Number.isNaN(v)) out = v;
  else throw cfg.error('lambda_min_clipped', v, 'must be a number, null or "-inf"');
  cfg.used.lambda_min_clipped = out;
  return out;
}

/** How many λ_t (float32) lie below the clip: torch.searchsorted(flip(λ), clip). */
function clippedCount(ac: Float32Array, clip: number): number {
  if (clip === -Infinity) return 0;
  let count = 0;
  for (let t = 0; t < ac.length; t++) {
    const lambda = f32(f32(Math.log(f32(Math.sqrt(ac[t])))) - f32(Math.log(f32(Math.sqrt(f32(1 - ac[t]))))));
    if (lambda < clip) count++;
  }
  return count;
}
