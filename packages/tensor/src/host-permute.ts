// A host-side layout helper for weights read from files: axis permutation of a row-major array (e.g.
// a PyTorch OIHW conv kernel into the OHWI order a kernel reads).
import type { HostData } from './weights.js';

/** Permutes a row-major array of `shape` by `perm` (out dim i = in dim perm[i]). */
export function permute<T extends HostData>(src: T, shape: readonly number[], perm: readonly number[]): T {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]);
  const inStrides = new Array<number>(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i];
  }
  const strideForOut = perm.map((p) => inStrides[p]);
  const out = new (src.constructor as new (n: number) => T)(src.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let off = 0;
    for (let d = 0; d < rank; d++) off += idx[d] * strideForOut[d];
    out[o] = src[off];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < outShape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}
