// Reading a diffusers scheduler_config.json the way ConfigMixin.from_config does: each scheduler takes the
// keys of its own __init__ (with diffusers' defaults) and ignores the rest; a value we cannot honour is a
// ConfigError naming the key, the value and why.
import { ConfigError } from '@ssd/tensor';

export type SchedulerConfig = Readonly<Record<string, unknown>>;

/**
 * The most training timesteps a config may declare. The noise tables hold one float32 per timestep
 * (diffusers' SDXL-family models use 1000); 2·10⁹ would be gigabytes before the first step.
 */
export const MAX_TRAIN_TIMESTEPS = 100_000;

/**
 * Bounds of keys several schedulers share, checked when the config is read, whichever class reads
 * them (and whether or not it does: a config asking for impossible tables is wrong for every class).
 * `t` is the config's num_train_timesteps (1000 when absent).
 */
const SHARED_BOUNDS: Record<string, (v: number, t: number, src: SchedulerConfig) => string | null> = {
  num_train_timesteps: (v) => (Number.isSafeInteger(v) && v >= 2 && v <= MAX_TRAIN_TIMESTEPS ? null : `must be an integer in [2, ${MAX_TRAIN_TIMESTEPS}] (one table entry per training timestep; diffusers' models use 1000)`),
  steps_offset: (v, t) => (Number.isSafeInteger(v) && v >= 0 && v < t ? null : `must be an integer in [0, num_train_timesteps = ${t}) (it shifts every timestep; diffusers' models use 0 or 1)`),
  original_inference_steps: (v, t) => (Number.isSafeInteger(v) && v >= 1 && v <= t ? null : `must be an integer in [1, num_train_timesteps = ${t}]`),
  sigma_min: (v) => (Number.isFinite(v) && v >= 0 ? null : 'must be a finite noise level ≥ 0'),
  sigma_max: (v, _t, src) => {
    const min = typeof src.sigma_min === 'number' ? src.sigma_min : 0;
    return Number.isFinite(v) && v > 0 && v > min ? null : `must be a finite noise level > 0 and > sigma_min (${min})`;
  },
};

/** Typed access to one scheduler's keys; `used` records the resolved values (the scheduler's .config). */
export class ConfigReader {
  readonly used: Record<string, unknown> = {};

  constructor(
    private readonly source: SchedulerConfig,
    private readonly className: string,
  ) {
    const declared = this.raw('num_train_timesteps');
    const t = typeof declared === 'number' && Number.isSafeInteger(declared) ? declared : 1000;
    for (const [key, bound] of Object.entries(SHARED_BOUNDS)) {
      const v = this.raw(key);
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number') throw this.error(key, v, 'must be a number');
      const problem = bound(v, t, source);
      if (problem) throw this.error(key, v, problem);
    }
  }

  /** The raw value, or undefined when absent (null counts as present). */
  raw(key: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.source, key) ? this.source[key] : undefined;
  }

  number(key: string, fallback: number, check?: (v: number) => string | null): number {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'number' || Number.isNaN(v)) throw this.error(key, v, 'must be a number');
    const problem = check?.(v);
    if (problem) throw this.error(key, v, problem);
    this.used[key] = v;
    return v;
  }

  integer(key: string, fallback: number, min: number): number {
    return this.number(key, fallback, (v) =>
      Number.isSafeInteger(v) && v >= min ? null : `must be an integer ≥ ${min}`,
    );
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw(key) ?? fallback;
    if (typeof v !== 'boolean') throw this.error(key, v, 'must be true or false');
    this.used[key] = v;
    return v;
  }

  /** A string from `allowed`; `unsupported` maps values diffusers knows but we do not to the reason. */
  choice<T extends string>(key: string, fallback: T, allowed: readonly T[], unsupported: Record<string, string> = {}): T {
    const v = this.raw(key) ?? fallback;
    if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) {
      this.used[key] = v;
      return v as T;
    }
    const reason =
      typeof v === 'string' && unsupported[v]
        ? unsupported[v]
        : `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`;
    throw this.error(key, v, reason);
  }

  /** A key whose only supported value is `expected` (e.g. thresholding: false). */
  require(key: string, fallback: unknown, expected: unknown, reason: string): void {
    const v = this.raw(key) ?? fallback;
    if (v !== expected) throw this.error(key, v, reason);
    this.used[key] = v;
  }

  /** An optional finite number (null or absent → null). */
  optionalNumber(key: string): number | null {
    const v = this.raw(key);
    if (v === undefined || v === null) {
      this.used[key] = null;
      return null;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.error(key, v, 'must be a finite number or null');
    this.used[key] = v;
    return v;
  }

  error(key: string, value: unknown, reason: string): ConfigError {
    return new ConfigError(key, value, `${reason} (${this.className})`);
  }
}
