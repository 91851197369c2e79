// ggml's reference quantizers for the K-quant super-blocks of 256 values (quantize_row_q4_K_ref,
// _q5_K_ref, _q6_K_ref with their helpers make_qkx2_quants and make_qx_quants, ggml-quants.c),
// transcribed operation for operation in f32 (Math.fround after every float operation, in C's order).
import { f16BitsToF32 } from '../dtype.js';
import { scaleMinK4 } from './dequantize.js';
import { putHalf, type BlockQuantizer } from './quantize-legacy.js';

const f = Math.fround;
export const GROUP_MAX_EPS = f(1e-15);

/** ggml's nearest_int: the f32 sum with 1.5·2^23 rounds to the nearest integer, ties to even. */
export function nearestInt(v: number): number {
  return f(v + 12582912) - 12582912;
}

export const half = (y: Uint8Array, o: number) => f16BitsToF32(y[o] | (y[o + 1] << 8));

/**
 * make_qkx2_quants: a scale and a min for n values (weighted least squares over nstep+1 trial scales);
 * writes the levels 0..nmax to L[lAt..] and returns [scale, -min]. `qkx3`: make_qkx3_quants, the same
 * but for its test of a constant block.
 */
export function makeQkx2Quants(n: number, nmax: number, x: Float32Array, at: number, weights: Float32Array, L: Uint8Array, lAt: number, laux: Uint8Array, rmin: number, rdelta: number, nstep: number, qkx3 = false): [number, number] {
  let min = x[at];
  let max = x[at];
  let sumW = weights[0];
  let sumX = f(sumW * x[at]);
  for (let i = 1; i < n; i++) {
    if (x[at + i] < min) min = x[at + i];
    if (x[at + i] > max) max = x[at + i];
    const w = weights[i];
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * x[at + i]));
  }
  if (min > 0) min = 0;
  if (qkx3 ? max <= min : max === min) { // make_qkx3_quants (the importance-weighted path) tests <=
    for (let i = 0; i < n; i++) L[lAt + i] = 0;
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(f(iscale * f(x[at + i] - min)));
    L[lAt + i] = Math.max(0, Math.min(nmax, l));
    const diff = f(f(f(scale * L[lAt + i]) + min) - x[at + i]);
    bestError = f(bestError + f(weights[i] * f(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(x[at + i] - min)))));
      laux[i] = l;
      const wl = f(weights[i] * l);
      sumL = f(sumL + wl);
      sumL2 = f(sumL2 + f(wl * l));
      sumXL = f(sumXL + f(wl * x[at + i]));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = f(f(f(thisScale * laux[i]) + thisMin) - x[at + i]);
        curError = f(curError + f(weights[i] * f(diff * diff)));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[lAt + i] = laux[i];
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** make_qx_quants with rmse_type 1 (weights x², or `qw`): levels L = l + nmax for l in [-nmax, nmax). */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, at: number, L: Uint8Array, lAt: number, qw?: Float32Array): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[at + i]);
    if (ax > amax) {
      amax = ax;
      max = x[at + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lAt + i] = 0;
    return 0;
  }
  const level = (iscale: number, i: number) => Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[at + i]))));
  const sums = (iscale: number): [number, number] => {
    let sumlx = 0, suml2 = 0;
    for (let i = 0; i < n; i++) {
      const l = level(iscale, i);
      const w = qw ? qw[i] : f(x[at + i] * x[at + i]);
      sumlx = f(sumlx + f(f(w * x[at + i]) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    return [sumlx, suml2];
  };
  let iscale = f(-nmax / max);
  for (let i = 0; i < n; i++) L[lAt + i] = level(iscale, i) + nmax;
  let [sumlx, suml2] = sums(iscale);
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    [sumlx, suml2] = sums(iscale);
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) L[lAt + i] = level(iscale, i) + nmax;
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** q4_K and q5_K share everything but the level count and the search range; they differ in packing. */
function quantizeScaleMinK(x: Float32Array, at: number, y: Uint8Array, o: number, nmax: number, rmin: number, nstep: number, L: Uint8Array): void {
  const weights = new Float32Array(32);
  const laux = new Uint8Array(32);
  const scales = new Float32Array(8);
  const mins = new Float32Array(8);
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[at + 32 * j + l] * x[at + 32 * j + l]));
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[at + 32 * j + l]));
    [scales[j], mins[j]] = makeQkx2Quants(32, nmax, x, at + 32 * j, weights, L, 32 * j, laux, rmin, f(0.1), nstep);
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  const ls = Array.from(scales, (v) => Math.min(63, nearestInt(f(invScale * v)) & 0xff));
  const lm = Array.from(mins, (v) => Math.min(63, nearestInt(f(invMin * v)) & 0xff));
  writeScaleMinK(x, at, y, o, nmax, L, ls, lm, f(maxScale / 63), f(maxMin / 63));
}

/**
 * The end every q4_K/q5_K quantizer shares: the 6-bit scales and mins packed into scales[12], the f16
 * super-block scales, and every value re-quantized with the stored scales (a sub-block whose scale is 0
 * keeps the levels it had).
 */
export function writeScaleMinK(x: Float32Array, at: number, y: Uint8Array, o: number, nmax: number, L: Uint8Array, ls: readonly number[], lm: readonly number[], d: number, dmin: number): void {
  const s = o + 4; // scales[12]
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      y[s + j] = ls[j];
      y[s + j + 4] = lm[j];
    } else {
      y[s + j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
      y[s + j - 4] |= (ls[j] >> 4) << 6;
      y[s + j] |= (lm[j] >> 4) << 6;
    }
  }
  putHalf(y, o, d);
  putHalf(y, o + 2, dmin);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, y, s);
    const dj = f(half(y, o) * sc);
    if (!dj) continue;
    const dm = f(half(y, o + 2) * m);
    for (let ii = 0; ii < 32; ii++) L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[at + 32 * j + ii] + dm) / dj))));
  }
}

/** q4_K's qs[128]: levels j and j + 32 of each 64 as low and high nibbles. */
export function packQ4K(y: Uint8Array, o: number, L: Uint8Array): void {
  for (let j = 0, q = o + 16; j < 256; j += 64, q += 32) {
    for (let l = 0; l < 32; l++) y[q + l] = L[j + l] | (L[j + l + 32] << 4);
  }
}

/** q5_K's qh[32] (the 5th bits) and qs[128]. */
export function packQ5K(y: Uint8Array, o: number, L: Uint8Array): void {
  const qh = o + 16;
  y.fill(0, qh, qh + 32);
  let m1 = 1, m2 = 2;
  for (let n = 0, ql = o + 48; n < 256; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
    for (let j = 0; j < 32; j++) {
      let l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        y[qh + j] |= m1;
      }
      let l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        y[qh + j] |= m2;
      }
      y[ql + j] = l1 | (l2 << 4);
    }
  }
}

// block_q4_K: d, dmin, scales[12], qs[128]
export const quantizeQ4_K: BlockQuantizer = (x, at, y, o) => {
  const L = new Uint8Array(256);
  quantizeScaleMinK(x, at, y, o, 15, -1, 20, L);
  packQ4K(y, o, L);
};

// block_q5_K: d, dmin, scales[12], qh[32], qs[128]
export const quantizeQ5_K: BlockQuantizer = (x, at, y, o) => {
  const L = new Uint8Array(256);
  quantizeScaleMinK(x, at, y, o, 31, -0.5, 15, L);
  packQ5K(y, o, L);
};

// block_q6_K: ql[128], qh[64], scales[16] (int8), d
export const quantizeQ6_K: BlockQuantizer = (x, at, y, o) => {
  const L = new Uint8Array(256);
  const scales = new Float32Array(16);
  for (let ib = 0; ib < 16; ib++) scales[ib] = makeQxQuants(16, 32, x, at + 16 * ib, L, 16 * ib);
  writeQ6K(x, at, y, o, L, scales);
};

/** The end of every q6_K quantizer: from the 16 sub-block scales, the int8 scales, d, the levels, packed. */
export function writeQ6K(x: Float32Array, at: number, y: Uint8Array, o: number, L: Uint8Array, scales: Float32Array): void {
  let maxScale = 0;
  let maxAbsScale = 0;
  for (const scale of scales) {
    if (Math.abs(scale) > maxAbsScale) {
      maxAbsScale = Math.abs(scale);
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    y.fill(0, o, o + 210);
    return;
  }
  const iscale = f(-128 / maxScale);
  putHalf(y, o + 208, f(1 / iscale));
  const sc = o + 192;
  for (let ib = 0; ib < 16; ib++) y[sc + ib] = Math.min(127, nearestInt(f(iscale * scales[ib]))) & 0xff;
  for (let j = 0; j < 16; j++) {
    const d = f(half(y, o + 208) * ((y[sc + j] << 24) >> 24));
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(f(x[at + 16 * j + ii] / d)))) + 32;
  }
  for (let j = 0, ql = o, qh = o + 128; j < 256; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
      y[ql + l] = q1 | (q3 << 4);
      y[ql + l + 32] = q2 | (q4 << 4);
      y[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
    }
  }
}
