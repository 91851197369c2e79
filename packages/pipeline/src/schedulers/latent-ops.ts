// The array algebra schedulers need, kept abstract so one scheduler runs on GPU tensors (the pipeline) and
// on Float32Arrays (tests, CPU users). Float32LatentOps is the CPU implementation: float64 accumulation,
// float32 storage, and ownership bookkeeping so tests can prove a scheduler frees exactly what it made.
import { InvalidArgumentError, ShapeError } from '@ssd/tensor';
import type { TorchGenerator } from '../random/torch-generator.js';

/** The array algebra a scheduler needs; T is a latent array (GPU Tensor in the pipeline, Float32 array in tests). */
export interface LatentOps<T> {
  /** A new array Σ coefᵢ·xᵢ (all the same shape). */
  combine(terms: ReadonlyArray<readonly [T, number]>): T;
  /** A new standard-normal array shaped like `like`, drawn from the generator (torch.randn order). */
  randnLike(like: T, generator: TorchGenerator): T;
  /** A new array min(max(x, lo), hi) (torch.clamp; DDPM/DDIM clip_sample). */
  clamp(x: T, lo: number, hi: number): T;
  /**
   * A new array: diffusers' dynamic thresholding per sample b of x [B, ...] —
   * s_b = clamp(quantile(|x_b|, ratio), 1, maxValue), x_b ↦ clamp(x_b, −s_b, s_b) / s_b.
   */
  threshold(x: T, ratio: number, maxValue: number): T;
  /** The scheduler no longer needs an array it created (dispose it). */
  release(x: T): void;
}

/** A float32 latent on the CPU: row-major data with its shape (NCHW for diffusers latents). */
export interface Float32Latent {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Wraps caller-owned data as a latent (not created by any ops object, so never released by one). */
export function float32Latent(data: Float32Array, shape: readonly number[]): Float32Latent {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== data.length) throw new ShapeError('float32Latent', 'data', `${n} elements for [${shape.join(', ')}]`, `${data.length}`);
  return { shape: [...shape], data };
}

/** LatentOps on Float32Latent: combine accumulates in float64 and stores float32. */
export class Float32LatentOps implements LatentOps<Float32Latent> {
  private readonly owned = new Set<Float32Latent>();
  private createdCount = 0;

  /** Arrays this object created and has not released yet. */
  get live(): number {
    return this.owned.size;
  }

  /** Arrays this object has created in total. */
  get created(): number {
    return this.createdCount;
  }

  combine(terms: ReadonlyArray<readonly [Float32Latent, number]>): Float32Latent {
    if (terms.length === 0) throw new InvalidArgumentError('Float32LatentOps.combine: needs at least one term');
    const shape = terms[0][0].shape;
    const n = terms[0][0].data.length;
    for (const [x, c] of terms) {
      if (x.data.length !== n || x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
        throw new ShapeError('Float32LatentOps.combine', 'terms', `[${shape.join(', ')}]`, `[${x.shape.join(', ')}]`);
      }
      if (!Number.isFinite(c)) throw new InvalidArgumentError(`Float32LatentOps.combine: coefficient ${c} is not finite`);
    }
    const out = new Float32Array(n);
    const acc = new Float64Array(n);
    for (const [x, c] of terms) {
      if (c === 0) continue;
      const d = x.data;
      for (let i = 0; i < n; i++) acc[i] += c * d[i];
    }
    out.set(acc);
    return this.adopt({ shape: [...shape], data: out });
  }

  randnLike(like: Float32Latent, generator: TorchGenerator): Float32Latent {
    return this.adopt({ shape: [...like.shape], data: generator.randn(like.shape) });
  }

  clamp(x: Float32Latent, lo: number, hi: number): Float32Latent {
    return this.adopt({ shape: [...x.shape], data: x.data.map((v) => Math.min(Math.max(v, lo), hi)) });
  }

  threshold(x: Float32Latent, ratio: number, maxValue: number): Float32Latent {
    const b = x.shape[0];
    const p = x.data.length / b;
    // torch.quantile on float32: position and lerp weight in float32, torch.lerp's two forms
    const r = Math.fround(Math.fround(ratio) * (p - 1));
    const lo = Math.floor(r);
    const hi = Math.ceil(r);
    const w = Math.fround(r - lo);
    const out = new Float32Array(x.data.length);
    for (let k = 0; k < b; k++) {
      const row = x.data.subarray(k * p, (k + 1) * p);
      const sorted = Float32Array.from(row, Math.abs).sort();
      const [a, e] = [sorted[lo], sorted[hi]];
      const q = Math.abs(w) < 0.5 ? Math.fround(a + Math.fround(w * Math.fround(e - a))) : Math.fround(e - Math.fround(Math.fround(e - a) * Math.fround(1 - w)));
      const s = Math.min(Math.max(q, 1), maxValue);
      for (let i = 0; i < p; i++) out[k * p + i] = Math.min(Math.max(row[i], -s), s) / s;
    }
    return this.adopt({ shape: [...x.shape], data: out });
  }

  release(x: Float32Latent): void {
    if (!this.owned.delete(x)) {
      throw new InvalidArgumentError('Float32LatentOps.release: the array was not created by this ops object (or was released twice)');
    }
  }

  private adopt(x: Float32Latent): Float32Latent {
    this.owned.add(x);
    this.createdCount++;
    return x;
  }
}
