// TorchGenerator: torch.Generator("cpu").manual_seed(seed) followed by torch.randn / torch.rand, bit for bit.
// Follows ATen's CPUGeneratorImpl (random(), random64(), the cached second Box–Muller sample),
// core/TransformationHelper.h (uniform_real), core/DistributionsHelper.h (normal_distribution<double>)
// and native/cpu/DistributionTemplates.h (normal_kernel: the scalar path below 16 elements, normal_fill above).
import { InvalidArgumentError } from '@ssd/tensor';
import { MT19937 } from './mt19937.js';
import { normalFill, type NormalFillPath } from './normal-fill.js';

export type { NormalFillPath } from './normal-fill.js';

export interface TorchGeneratorOptions {
  /** Which torch CPU kernel `randn` reproduces for ≥ 16 elements (default 'avx2'; see NormalFillPath). */
  normalPath?: NormalFillPath;
}

const TWO_POW_24 = 16777216;
const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/**
 * A torch CPU generator. `new TorchGenerator(seed)` equals `torch.Generator("cpu").manual_seed(seed)`;
 * `randn(shape)` then returns exactly what `torch.randn(shape, generator=g)` (float32) returns, and the
 * generator advances as torch's does, so a sequence of calls (diffusers' initial latents, then an
 * ancestral scheduler's per-step noise) matches call for call.
 *
 * What a `seed` guarantees:
 * - Any integer torch's manual_seed accepts: −2^63 … 2^64 − 1, as a number (a safe integer) or a
 *   bigint. torch keeps the seed as a uint64 (a negative seed is taken in two's complement) and
 *   mt19937 uses only its low 32 bits, so seeds equal modulo 2^32 (e.g. 7, 2^32 + 7, 7 − 2^32 and
 *   2^64 − 2^32 + 7) give identical streams — exactly as in torch.
 * - `rand` and `randn` of fewer than 16 elements are bit-exact with every torch build (pure integer
 *   and double-precision arithmetic, rounded to float32 at the end).
 * - `randn` of ≥ 16 elements (latents are always that) depends on the CPU kernel torch ran: with
 *   normalPath 'avx2' (default) it reproduces x86-64 AVX2 builds, with 'default' the scalar kernel of
 *   non-AVX2 x86-64 Linux builds (glibc libm). The two differ in ~40% of elements by ≤ 2e-6 (the last
 *   bits of log/sin/cos); other builds (ARM, macOS, MSVC) may differ from both by as little.
 */
export class TorchGenerator {
  readonly normalPath: NormalFillPath;
  private engine: MT19937;
  private seedValue: number | bigint;
  private nextDoubleNormal: number | null = null;

  constructor(seed: number | bigint = 67280421310721, options: TorchGeneratorOptions = {}) {
    // torch's default seed for a fresh Generator is 67280421310721 (c10::detail::default_rng_seed_val).
    const path = options.normalPath ?? 'avx2';
    if (path !== 'avx2' && path !== 'default') {
      throw new InvalidArgumentError(`TorchGenerator: normalPath must be 'avx2' or 'default', got ${JSON.stringify(path)}`);
    }
    this.normalPath = path;
    this.seedValue = checkSeed(seed);
    this.engine = new MT19937(low32(this.seedValue));
  }

  /** The seed last given to the constructor or manualSeed (as given). */
  get seed(): number | bigint {
    return this.seedValue;
  }

  /** torch's Generator.manual_seed: re-seeds and forgets the cached normal sample. Returns this. */
  manualSeed(seed: number | bigint): this {
    this.seedValue = checkSeed(seed);
    this.engine.seed(low32(this.seedValue));
    this.nextDoubleNormal = null;
    return this;
  }

  /** A copy at the same point of the stream (torch: `Generator().set_state(g.get_state())`). */
  clone(): TorchGenerator {
    const c = new TorchGenerator(this.seedValue, { normalPath: this.normalPath });
    c.engine = this.engine.clone();
    c.nextDoubleNormal = this.nextDoubleNormal;
    return c;
  }

  /** torch.randn(shape, generator=this), float32, row-major. */
  randn(shape: number | readonly number[]): Float32Array {
    const n = numelOf(shape, 'randn');
    const out = new Float32Array(n);
    if (n >= 16) {
      normalFill(out, () => this.uniformFloat(), this.normalPath);
    } else {
      for (let i = 0; i < n; i++) out[i] = Math.fround(this.normalDouble());
    }
    return out;
  }

  /** torch.rand(shape, generator=this): uniform float32 in [0, 1) with 24 random bits each. */
  rand(shape: number | readonly number[]): Float32Array {
    const n = numelOf(shape, 'rand');
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    return out;
  }

  /** The next raw 32-bit draw (CPUGeneratorImpl::random). */
  nextU32(): number {
    return this.engine.nextU32();
  }

  /** uniform_real_distribution<float>(0, 1): (random() & (2^24 − 1)) · 2^-24. */
  private uniformFloat(): number {
    return (this.engine.nextU32() & 0xffffff) / TWO_POW_24;
  }

  /** uniform_real_distribution<double>(0, 1) on random64() = hi << 32 | lo, masked to 53 bits. */
  private uniformDouble(): number {
    const hi = this.engine.nextU32();
    const lo = this.engine.nextU32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) / TWO_POW_53;
  }

  /**
   * normal_distribution<double>(0, 1): Box–Muller on two 53-bit uniforms; the sine half is cached in
   * the generator and returned by the next call (until re-seeded), as torch does.
   */
  private normalDouble(): number {
    if (this.nextDoubleNormal !== null) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    // torch 1.13 computes log(1 − u2); later releases log1p(−u2): the same double after rounding to float.
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

const SEED_MIN = -(2n ** 63n);
const SEED_MAX = 2n ** 64n - 1n;

function checkSeed(seed: number | bigint): number | bigint {
  if (typeof seed === 'bigint') {
    if (seed < SEED_MIN || seed > SEED_MAX) throw new InvalidArgumentError(`TorchGenerator: seed ${seed} is outside torch's range −2^63 … 2^64 − 1`);
    return seed;
  }
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new InvalidArgumentError(
      `TorchGenerator: seed must be a safe integer (|seed| ≤ 2^53 − 1) or a bigint, got ${String(seed)}`,
    );
  }
  return seed;
}

/** The low 32 bits of the seed's two's-complement value: what torch's mt19937 is seeded with. */
function low32(seed: number | bigint): number {
  if (typeof seed === 'bigint') return Number(BigInt.asUintN(32, seed));
  const r = seed % TWO_POW_32;
  return r < 0 ? r + TWO_POW_32 : r;
}

function numelOf(shape: number | readonly number[], op: string): number {
  const dims = typeof shape === 'number' ? [shape] : shape;
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new InvalidArgumentError(`TorchGenerator.${op}: shape must hold non-negative integers, got [${dims.join(', ')}]`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`TorchGenerator.${op}: shape [${dims.join(', ')}] is too large`);
  return n;
}
