// State every scheduler shares: the timestep/sigma schedule, diffusers' step counter (step_index,
// begin_index, index_for_timestep) and the arrays a scheduler keeps between steps, which it creates
// through LatentOps and releases through the same ops (never an array the caller owns).
import { InvalidArgumentError } from '@ssd/tensor';
import type { TorchGenerator } from '../random/torch-generator.js';
import type { ConfigReader } from './config.js';
import type { LatentOps } from './latent-ops.js';
import type { NoiseSchedule } from './noise-schedule.js';
import type { Scheduler, SchedulerName, SchedulerOutput, StepOptions } from './scheduler.js';

/** How a class finds its first step index from a timestep (diffusers index_for_timestep). */
type IndexStyle = 'euler' | 'multistep';

export abstract class BaseScheduler implements Scheduler {
  abstract readonly name: SchedulerName;
  abstract readonly className: string;
  abstract readonly timestepDtype: 'float32' | 'int64';
  readonly order = 1;
  readonly config: Readonly<Record<string, unknown>>;
  timesteps = new Float64Array(0);
  sigmas?: Float64Array;
  protected numInferenceSteps = 0;
  private stepIdx: number | null = null;
  private beginIdx: number | null = null;
  private historyOps: LatentOps<unknown> | null = null;
  private held: unknown[] = [];

  protected constructor(
    cfg: ConfigReader,
    protected readonly schedule: NoiseSchedule,
    private readonly indexStyle: IndexStyle,
  ) {
    this.config = Object.freeze({ ...cfg.used });
  }

  abstract get initNoiseSigma(): number;
  abstract step<T>(ops: LatentOps<T>, modelOutput: T, t: number, sample: T, opts?: StepOptions): SchedulerOutput<T>;
  abstract addNoise<T>(ops: LatentOps<T>, original: T, noise: T, t: number): T;
  /** Fills timesteps (and sigmas) for n inference steps. */
  protected abstract placeTimesteps(n: number): void;
  /** Clears solver history after the held arrays were released. */
  protected clearHistory(): void {}

  /** diffusers' alphas_cumprod (float32 values) for t = 0 … num_train_timesteps − 1. */
  get alphasCumprod(): Float32Array {
    return this.schedule.alphasCumprod;
  }

  get stepIndex(): number | null {
    return this.stepIdx;
  }

  setTimesteps(numInferenceSteps: number): void {
    const T = this.schedule.numTrainTimesteps;
    if (!Number.isSafeInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > T) {
      throw new InvalidArgumentError(
        `${this.className}.setTimesteps: the number of inference steps must be an integer in [1, ${T}] ` +
          `(num_train_timesteps), got ${String(numInferenceSteps)}`,
      );
    }
    this.reset();
    this.beginIdx = null;
    this.numInferenceSteps = numInferenceSteps;
    this.placeTimesteps(numInferenceSteps);
  }

  setBeginIndex(i: number): void {
    if (!Number.isSafeInteger(i) || i < 0 || i >= Math.max(this.timesteps.length, 1)) {
      throw new InvalidArgumentError(
        `${this.className}.setBeginIndex: index must be an integer in [0, ${this.timesteps.length - 1}], got ${String(i)}`,
      );
    }
    this.beginIdx = i;
  }

  inputScale(_t: number): number {
    return 1;
  }

  scaleModelInput<T>(ops: LatentOps<T>, x: T, t: number): T {
    return ops.combine([[x, this.inputScale(t)]]);
  }

  reset(): void {
    if (this.historyOps) this.dispose(this.historyOps);
    this.held = [];
    this.stepIdx = null;
    this.clearHistory();
  }

  dispose<T>(ops: LatentOps<T>): void {
    for (const x of this.held) ops.release(x as T);
    this.held = [];
    this.clearHistory();
  }

  /** diffusers _init_step_index: begin_index if set, else the position of t in the timesteps. */
  protected currentIndex(t: number): number {
    if (this.timesteps.length === 0) {
      throw new InvalidArgumentError(`${this.className}: call setTimesteps before stepping`);
    }
    if (this.stepIdx === null) this.stepIdx = this.beginIdx ?? this.indexForTimestep(t);
    if (this.stepIdx >= this.timesteps.length) {
      throw new InvalidArgumentError(
        `${this.className}.step: all ${this.timesteps.length} timesteps were already taken; call setTimesteps or reset`,
      );
    }
    return this.stepIdx;
  }

  protected advance(): void {
    this.stepIdx = (this.stepIdx ?? 0) + 1;
  }

  /**
   * diffusers index_for_timestep: with duplicates the second match (so img2img does not skip a sigma);
   * Euler raises when t is absent, the multistep solvers take the last index.
   */
  protected indexForTimestep(t: number, schedule: Float64Array = this.timesteps): number {
    const hits: number[] = [];
    for (let i = 0; i < schedule.length; i++) if (schedule[i] === t) hits.push(i);
    if (hits.length === 0) {
      if (this.indexStyle === 'multistep') return schedule.length - 1;
      throw new InvalidArgumentError(`${this.className}: timestep ${t} is not one of the scheduler's timesteps`);
    }
    return hits.length > 1 ? hits[1] : hits[0];
  }

  /**
   * The index add_noise uses: the timestep's position in the schedule, as in diffusers v0.26 (not
   * begin_index: inpainting noises the image latents to every later timestep, timesteps[i + 1]).
   */
  protected noiseIndex(t: number): number {
    return this.indexForTimestep(t);
  }

  /** A scheduler-owned copy of a caller's array (diffusers keeps references; we may not). */
  protected keep<T>(ops: LatentOps<T>, x: T): T {
    return this.track(ops, ops.combine([[x, 1]]));
  }

  /** Records an array this scheduler created and will release later. */
  protected track<T>(ops: LatentOps<T>, x: T): T {
    this.bindOps(ops);
    this.held.push(x);
    return x;
  }

  /** Releases a held array now. */
  protected drop<T>(ops: LatentOps<T>, x: T | null): void {
    if (x === null) return;
    const i = this.held.indexOf(x);
    if (i < 0) throw new Error(`${this.className}: internal error, releasing an array it does not hold`);
    this.held.splice(i, 1);
    ops.release(x);
  }

  /** Noise for this step; schedulers that need it cannot fall back to torch's global RNG. */
  protected requireGenerator(opts: StepOptions | undefined, why: string): TorchGenerator {
    if (!opts?.generator) {
      throw new InvalidArgumentError(`${this.className}.step: ${why} needs opts.generator (a TorchGenerator)`);
    }
    return opts.generator;
  }

  private bindOps<T>(ops: LatentOps<T>): void {
    if (this.historyOps && this.historyOps !== ops && this.held.length > 0) {
      throw new InvalidArgumentError(`${this.className}: a run must use one LatentOps object; call reset() before switching`);
    }
    this.historyOps = ops as LatentOps<unknown>;
  }
}

/** torch 0-dim float32 arithmetic helpers for scheduler coefficients. */
export const f32 = Math.fround;
/** (σ² + 1)^½ as torch computes it on a float32 0-dim tensor. */
export function sqrtSigmaSqPlus1(sigma: number): number {
  return f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
}
