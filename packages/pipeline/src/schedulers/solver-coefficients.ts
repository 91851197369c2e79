// Scalar helpers for the exponential-integrator solvers (DPM-Solver, UniPC): the VP quantities of a
// sigma and small linear forms, so every update is one LatentOps.combine of stored arrays.
import { f32, sqrtSigmaSqPlus1 } from './base.js';

/** α_t = (σ² + 1)^-½, σ_t = σ·α_t (torch float32, diffusers _sigma_to_alpha_sigma_t) and λ = ln α − ln σ_t. */
export interface VpPoint {
  readonly alpha: number;
  readonly sigma: number;
  readonly lambda: number;
}

export function vpPoint(sigma: number): VpPoint {
  const alpha = f32(1 / sqrtSigmaSqPlus1(sigma));
  const s = f32(sigma * alpha);
  // At the appended σ = 0, λ = +∞ and e^{−h} = 0: the update reduces to x̂₀, as in diffusers.
  return { alpha, sigma: s, lambda: Math.log(alpha) - Math.log(s) };
}

/** A linear combination over a fixed basis (coefficient i multiplies basis array i). */
export type Form = number[];

export function zeros(n: number): Form {
  return new Array<number>(n).fill(0);
}

/** Σ cᵢ·formᵢ */
export function mix(n: number, ...parts: Array<readonly [Form, number]>): Form {
  const out = zeros(n);
  for (const [form, c] of parts) for (let i = 0; i < n; i++) out[i] += c * form[i];
  return out;
}

/** The unit form selecting basis element i. */
export function unit(n: number, i: number): Form {
  const f = zeros(n);
  f[i] = 1;
  return f;
}

/** Solves the small dense system A·x = b (Gaussian elimination with partial pivoting). */
export function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
    [m[c], m[p]] = [m[p], m[c]];
    for (let r = c + 1; r < n; r++) {
      const k = m[r][c] / m[c][c];
      for (let j = c; j <= n; j++) m[r][j] -= k * m[c][j];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r][n];
    for (let j = r + 1; j < n; j++) s -= m[r][j] * x[j];
    x[r] = s / m[r][r];
  }
  return x;
}
