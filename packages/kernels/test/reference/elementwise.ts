// float64 oracles for the elementwise ops: NumPy-broadcast binary ops, unary maps, GEGLU, linear
// combinations and classifier-free guidance. Plain loops over row-major arrays.
import { activationRef } from '../../src/shader.js';

/** out = f(a, b) with NumPy broadcasting; returns the values and the broadcast shape. */
export function broadcastRef(a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], f: (x: number, y: number) => number): { out: Float64Array; shape: number[] } {
  const r = Math.max(aShape.length, bShape.length);
  const pa = [...Array(r - aShape.length).fill(1), ...aShape];
  const pb = [...Array(r - bShape.length).fill(1), ...bShape];
  const shape = pa.map((d, i) => Math.max(d, pb[i]));
  const n = shape.reduce((x, d) => x * d, 1);
  const out = new Float64Array(n);
  const idx = new Array(r).fill(0);
  for (let e = 0; e < n; e++) {
    let rem = e;
    for (let k = r - 1; k >= 0; k--) {
      idx[k] = rem % shape[k];
      rem = Math.floor(rem / shape[k]);
    }
    let ia = 0;
    let ib = 0;
    for (let k = 0; k < r; k++) {
      ia = ia * pa[k] + (pa[k] === 1 ? 0 : idx[k]);
      ib = ib * pb[k] + (pb[k] === 1 ? 0 : idx[k]);
    }
    out[e] = f(a[ia], b[ib]);
  }
  return { out, shape };
}

export function unaryRef(x: ArrayLike<number>, f: (v: number) => number): Float64Array {
  return Float64Array.from(x, f);
}

export const siluRef = activationRef('silu');
export const geluRef = activationRef('gelu');
export const geluTanhRef = activationRef('gelu_tanh');

/** GEGLU over rows of 2F: out[r, j] = x[r, j] · gelu(x[r, F + j]). */
export function gegluRef(x: ArrayLike<number>, rows: number, F: number): Float64Array {
  const out = new Float64Array(rows * F);
  for (let r = 0; r < rows; r++) for (let j = 0; j < F; j++) out[r * F + j] = x[r * 2 * F + j] * geluRef(x[r * 2 * F + F + j]);
  return out;
}

/** Σ cₖ·xₖ. */
export function combineRef(terms: [ArrayLike<number>, number][]): Float64Array {
  const out = new Float64Array(terms[0][0].length);
  for (const [x, c] of terms) for (let i = 0; i < out.length; i++) out[i] += c * x[i];
  return out;
}

/** uncond + g·(cond − uncond) over the two halves of x. */
export function guidanceRef(x: ArrayLike<number>, g: number): Float64Array {
  const half = x.length / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = x[i] + g * (x[half + i] - x[i]);
  return out;
}
