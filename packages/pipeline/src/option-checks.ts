// The small checks every option goes through (sizes, steps, finite numbers, pairs, prompts, seeds);
// each failure is an InvalidArgumentError of the form "<option> = <value>: <fix>". Shared by the
// library's option resolution and the CLI's early checks.
import { InvalidArgumentError } from '@ssd/tensor';

/** A seed as given: a safe integer, a bigint, or a decimal string (for seeds beyond 2^53). */
export type Seed = number | bigint | string;

export const MAX_STEPS = 1000;
const SEED_MAX = 2n ** 64n - 1n;

/** "<option> = <value>: <fix>" (a CLI flag: "--flag <value>: <fix>"). */
function fail(option: string, value: unknown, fix: string): never {
  const v = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new InvalidArgumentError(option.startsWith('--') ? `${option} ${v}: ${fix}` : `${option} = ${v}: ${fix}`);
}

export function checkSize(option: string, v: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, v, 'must be a number');
  if (!Number.isInteger(v) || v <= 0) fail(option, v, 'must be a positive integer');
  if (v % 8) {
    const lo = Math.max(8, Math.floor(v / 8) * 8);
    fail(option, v, `must be a multiple of 8 (the VAE downsamples 8×); nearest valid: ${lo} or ${lo + 8}`);
  }
  if (v > max) fail(option, v, `is larger than ${max}, the largest size supported here`);
  return v;
}

export function checkSteps(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail('numInferenceSteps', v, 'must be an integer ≥ 1');
  if (v > MAX_STEPS) fail('numInferenceSteps', v, `must be at most ${MAX_STEPS} (the scheduler's training timesteps)`);
  return v;
}

export function checkFinite(option: string, v: unknown, lo = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, v, 'must be a finite number');
  if (v < lo) fail(option, v, `must be ≥ ${lo}`);
  return v;
}

/**
 * A seed for torch's manual_seed: an integer in 0 … 2^64 − 1 (torch's uint64 seed). Numbers must be
 * safe integers; larger seeds come as a bigint or a decimal string. Returned as a number when it is a
 * safe integer, else as a bigint. (torch also takes negative seeds, as two's complement: give 2^64 − |s|.)
 */
export function parseSeed(v: unknown, option = 'seed'): number | bigint {
  let big: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail(option, v, 'must be an integer; above 2^53 give it as a bigint or a decimal string');
    big = BigInt(v);
  } else if (typeof v === 'bigint') {
    big = v;
  } else if (typeof v === 'string' && /^\d+$/.test(v.trim())) {
    big = BigInt(v.trim());
  } else {
    fail(option, v, 'must be an integer (a number, bigint or decimal string)');
  }
  if (big < 0n || big > SEED_MAX) fail(option, v, 'must be an integer in [0, 2^64 − 1] (torch.manual_seed takes a uint64)');
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** Kept for callers of the earlier API: a seed that is a safe non-negative integer. */
export function checkSeed(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('seed', v, 'must be an integer in [0, 2^53)');
  return v;
}

export function checkPair(option: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(option, v, 'must be a pair of finite numbers [height, width]');
  return [v[0], v[1]];
}

/** Prompts as a list; each must be a string (control characters and lone surrogates are the tokenizer's business). */
export function promptList(option: string, v: unknown, required: boolean): string[] | undefined {
  if (v === undefined || v === null) {
    if (required) fail(option, v, 'is required');
    return undefined;
  }
  const list = Array.isArray(v) ? v : [v];
  if (!list.length) fail(option, '[]', 'needs at least one prompt');
  for (const p of list) if (typeof p !== 'string') fail(option, p, 'must be a string');
  return list as string[];
}

/** A random seed when the caller gives none (reported back so the image can be reproduced). */
export function randomSeed(): number {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.getRandomValues) {
    const a = new Uint32Array(2);
    c.getRandomValues(a);
    return (a[0] & 0x1fffff) * 2 ** 32 + a[1];
  }
  return Math.floor(Math.random() * 2 ** 32);
}
