// The error hierarchy every @ssd package throws. Each error has a stable `code` (for programs and the
// CLI's exit codes) and a message that names what failed, the expected and actual values, and the fix.

/** Base class of every error @ssd throws on purpose. */
export class SsdError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A caller passed a value we cannot use (bad size, NaN guidance, unsafe seed, ...). */
export class InvalidArgumentError extends SsdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_ARGUMENT', message, options);
  }
}

/** A tensor of the wrong rank or shape reached an op. Thrown before anything is recorded. */
export class ShapeError extends InvalidArgumentError {
  constructor(
    readonly op: string,
    readonly arg: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${op}: ${arg} must have shape ${expected}, got ${actual}`);
  }
}

/** A tensor of the wrong dtype reached an op. */
export class DTypeError extends InvalidArgumentError {
  constructor(
    readonly op: string,
    readonly arg: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${op}: ${arg} must be ${expected}, got ${actual}`);
  }
}

/** A config.json value we do not support or that contradicts another one. */
export class ConfigError extends SsdError {
  constructor(
    readonly key: string,
    readonly value: unknown,
    reason: string,
    readonly file?: string,
  ) {
    // key '' is the file as a whole (a config.json holding null or a list)
    super('CONFIG', `${file ? file + ': ' : ''}${key ? `config key "${key}" = ${fmtValue(value)}` : `the file holds ${fmtValue(value)}`}: ${reason}`);
  }
}

/** A model file or folder could not be read: missing, truncated, malformed, unreachable. */
export class ModelLoadError extends SsdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_LOAD', message, options);
  }
}

/** A safetensors file whose header or layout is invalid. */
export class SafetensorsError extends ModelLoadError {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor ? `tensor "${tensor}": ` : ''}${problem}`);
  }
}

/** A GGUF file whose header or layout is invalid, or that holds a tensor type we cannot read. */
export class GgufError extends ModelLoadError {
  constructor(
    readonly file: string,
    readonly problem: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor ? `tensor "${tensor}": ` : ''}${problem}`);
  }
}

export interface CheckpointProblem {
  key: string;
  /** 'index': a sharded checkpoint's weight_map and its shards disagree about where the key is. */
  kind: 'missing' | 'unexpected' | 'shape' | 'dtype' | 'index';
  expected?: string;
  actual?: string;
}

/** Weights that do not match the model built from its config: lists every problem at once. */
export class CheckpointError extends ModelLoadError {
  constructor(
    readonly file: string,
    readonly problems: CheckpointProblem[],
  ) {
    // up to 15 of each kind, so a long list of one kind does not hide the others
    const lines: string[] = [];
    let shown = 0;
    for (const kind of ['missing', 'unexpected', 'shape', 'dtype', 'index'] as const) {
      const of = problems.filter((p) => p.kind === kind);
      for (const p of of.slice(0, 15)) {
        if (kind === 'missing') lines.push(`  missing: ${p.key} (expected shape ${p.expected})`);
        else if (kind === 'unexpected') lines.push(`  unexpected: ${p.key} (shape ${p.actual})`);
        else if (kind === 'index') lines.push(`  index mismatch: ${p.key}: ${p.expected}, ${p.actual}`);
        else lines.push(`  ${kind} mismatch: ${p.key}: expected ${p.expected}, found ${p.actual}`);
      }
      shown += Math.min(15, of.length);
    }
    const more = problems.length > shown ? `\n  ... and ${problems.length - shown} more` : '';
    const count = (k: CheckpointProblem['kind']) => problems.filter((p) => p.kind === k).length;
    const [missing, unexpected, shape, index] = [count('missing'), count('unexpected'), count('shape'), count('index')];
    const foreign = missing + shape >= 10 && unexpected + shape >= 10;
    const head = index === problems.length
      ? `the shard index's weight_map does not match its shards (${index} keys)`
      : `the weights do not match the model config (${missing} missing, ${unexpected} unexpected, ${shape} mis-shaped${index ? `, ${index} misplaced by the shard index` : ''})`;
    super(
      `${file}: ${head}:\n` +
        (foreign ? '  (so many keys differ that this file is probably another architecture than config.json describes — e.g. an SD 1.5 UNet in an SDXL folder — or the config belongs to another model)\n' : '') +
        lines.join('\n') +
        more,
    );
  }
}

/** The device lacks a feature, or an op/tensor would exceed one of its limits. */
export class DeviceLimitError extends SsdError {
  constructor(
    readonly limit: string,
    readonly required: number | string,
    readonly available: number | string,
    detail?: string,
  ) {
    super(
      'DEVICE_LIMIT',
      `${detail ? detail + ': ' : ''}needs ${limit} ≥ ${fmtValue(required)}, the device offers ${fmtValue(available)}`,
    );
  }
}

/** The GPU device was lost (driver reset, `device.destroy()`, context destroyed). */
export class DeviceLostError extends SsdError {
  constructor(readonly reason: string) {
    super('DEVICE_LOST', `the WebGPU device was lost (${reason}); create a new context and pipeline to continue`);
  }
}

/** The GPU reported a validation or out-of-memory error for work we recorded. */
export class GpuError extends SsdError {
  constructor(
    readonly kind: 'validation' | 'out-of-memory' | 'internal' | 'unknown',
    message: string,
  ) {
    super(kind === 'out-of-memory' ? 'GPU_OUT_OF_MEMORY' : 'GPU_ERROR', `GPU ${kind} error: ${message}`);
  }
}

/** A WGSL kernel failed to compile; carries the pipeline label and the compiler's messages. */
export class KernelCompileError extends SsdError {
  constructor(
    readonly label: string,
    readonly messages: string[],
  ) {
    super('KERNEL_COMPILE', `kernel ${label} failed to compile:\n${messages.join('\n')}`);
  }
}

/** The caller's AbortSignal fired. `name` is 'AbortError' like the DOM's. */
export class AbortError extends SsdError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ABORTED', message, options);
    this.name = 'AbortError';
  }
}

/** A NaN or infinity appeared in an output; names the stage where it first appeared. */
export class NumericalError extends SsdError {
  /**
   * `problem`: what went wrong in `stage` — by default non-finite values; or, for a finite but
   * degenerate result (a constant or saturated image), a description of it.
   */
  constructor(
    readonly stage: string,
    hint: string,
    readonly problem = 'non-finite values (NaN or ±inf) appeared in',
  ) {
    super('NUMERICAL', `${problem} ${stage}. ${hint}`);
  }
}

/** Throws AbortError if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'the operation'): void {
  if (signal?.aborted) {
    const reason = signal.reason;
    if (reason instanceof AbortError) throw reason;
    throw new AbortError(`${what} was aborted${reason instanceof Error ? ': ' + reason.message : ''}`, { cause: reason });
  }
}

function fmtValue(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) >= 1 << 20 ? v.toLocaleString('en-US') : String(v);
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  // a config value can be a megabyte (trained_betas, a weight_map given as one string): show its start
  return text.length > 120 ? `${text.slice(0, 100)}… (${Array.isArray(v) ? `${v.length} entries` : `${text.length} characters`})` : text;
}
