// What stable-diffusion.cpp's convert actually runs: it hands ggml_quantize_chunk an importance matrix of
// ones (model_loader.cpp convert_tensor), which sends every type but q8_0 down ggml's importance-weighted
// search (quantize_row_*_impl in ggml-quants.c: weights √(σ² + x²) per value, σ² over the row or
// super-block; make_qkx3_quants, make_qp_quants) instead of the reference quantizers. Transcribed in f32
// like quantize-k.ts, row by row (the legacy types' σ² spans the whole row), so sd.cpp's bytes come out.
import { QUANT_BLOCKS, type QuantType } from '../quantized.js';
import { GROUP_MAX_EPS, makeQkx2Quants, makeQxQuants, nearestInt, packQ4K, packQ5K, writeQ6K, writeScaleMinK } from './quantize-k.js';
import { putHalf, quantizeQ8_0 } from './quantize-legacy.js';

const f = Math.fround;

/** ggml's make_qp_quants: levels 0..nmax for n non-negative values (a super-block's scales or mins). */
function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, x[i]);
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f(iscale * x[i])) & 0xff;
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[i] - f(scale * L[i]));
    bestMse = f(bestMse + f(f(qw[i] * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(f(0.1) * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f(iscaleIs * x[i])));
      const diff = f(x[i] - f(scaleIs * l));
      mse = f(mse + f(f(qw[i] * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f(iscale * x[i])));
    L[i] = l & 0xff;
    sumlx = f(sumlx + f(f(qw[i] * x[i]) * l));
    suml2 = f(suml2 + f(f(qw[i] * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i];
      let slx = f(sumlx - f(f(w * x[i]) * L[i]));
      let sl2 = f(suml2 - f(f(w * L[i]) * L[i]));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f(f(x[i] * sl2) / slx)));
        if (newL !== L[i]) {
          slx = f(slx + f(f(w * x[i]) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[i] = newL & 0xff;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/** √(σ² + x²) for the 32 or 16 values at x[at] (the importance, all ones, times that). */
function weightsOf(x: Float32Array, at: number, n: number, sigma2: number, out: Float32Array): Float32Array {
  for (let j = 0; j < n; j++) out[j] = f(Math.sqrt(f(sigma2 + f(x[at + j] * x[at + j]))));
  return out;
}

function sumSquares(x: Float32Array, at: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s = f(s + f(x[at + j] * x[at + j]));
  return s;
}

/** One row of `n` values at x[at] into y[o], as quantize_row_<type>_impl with unit importance. */
function quantizeRow(type: QuantType, x: Float32Array, at: number, n: number, y: Uint8Array, o: number): void {
  const { values, bytes } = QUANT_BLOCKS[type];
  const L = new Uint8Array(256);
  const laux = new Uint8Array(32);
  const w = new Float32Array(32);
  const nb = n / values;
  if (type === 'q8_0') {
    for (let b = 0; b < nb; b++) quantizeQ8_0(x, at + 32 * b, y, o + 34 * b);
    return;
  }
  if (type === 'q4_0' || type === 'q5_0' || type === 'q4_1' || type === 'q5_1') {
    const sigma2 = f(sumSquares(x, at, n) / n); // over the whole row
    for (let b = 0; b < nb; b++) {
      const xb = at + 32 * b;
      const yb = o + bytes * b;
      weightsOf(x, xb, 32, sigma2, w);
      if (type === 'q4_0' || type === 'q5_0') {
        putHalf(y, yb, makeQxQuants(32, type === 'q4_0' ? 8 : 16, x, xb, L, 0, w));
      } else {
        const [d, min] = makeQkx2Quants(32, type === 'q4_1' ? 15 : 31, x, xb, w, L, 0, laux, f(-0.9), f(0.05), 36, true);
        putHalf(y, yb, d);
        putHalf(y, yb + 2, -min);
      }
      const qs = yb + (type === 'q4_0' ? 2 : type === 'q4_1' ? 4 : type === 'q5_0' ? 6 : 8);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        y[qs + j] = (L[j] & 0xf) | ((L[j + 16] & 0xf) << 4);
        qh |= ((L[j] & 0x10) >> 4) << j;
        qh |= ((L[j + 16] & 0x10) >> 4) << (j + 16);
      }
      if (type === 'q5_0' || type === 'q5_1') {
        const h = type === 'q5_0' ? yb + 2 : yb + 4;
        for (let k = 0; k < 4; k++) y[h + k] = (qh >>> (8 * k)) & 0xff;
      }
    }
    return;
  }
  for (let b = 0; b < nb; b++) {
    const xb = at + 256 * b;
    const yb = o + bytes * b;
    if (type === 'q6_K') {
      // the importance itself (ones) weighs each of the 16-value sub-blocks
      const scales = new Float32Array(16);
      for (let ib = 0; ib < 16; ib++) scales[ib] = makeQxQuants(16, 32, x, xb + 16 * ib, L, 16 * ib, ONES);
      writeQ6K(x, xb, y, yb, L, scales);
      continue;
    }
    const nmax = type === 'q4_K' ? 15 : 31;
    const sigma2 = f(f(2 * sumSquares(x, xb, 256)) / 256); // over the super-block
    const scales = new Float32Array(8);
    const mins = new Float32Array(8);
    const sw = new Float32Array(8);
    for (let j = 0; j < 8; j++) {
      weightsOf(x, xb + 32 * j, 32, sigma2, w);
      let sumw = 0;
      for (let l = 0; l < 32; l++) sumw = f(sumw + w[l]);
      sw[j] = sumw;
      [scales[j], mins[j]] = makeQkx2Quants(32, nmax, x, xb + 32 * j, w, L, 32 * j, laux, f(-0.9), f(0.05), 36, true);
    }
    const ls = new Uint8Array(8);
    const lm = new Uint8Array(8);
    const d = makeQpQuants(8, 63, scales, ls, sw);
    const m = makeQpQuants(8, 63, mins, lm, sw);
    writeScaleMinK(x, xb, y, yb, nmax, L, [...ls].map((v) => Math.min(63, v)), [...lm].map((v) => Math.min(63, v)), d, m);
    (type === 'q4_K' ? packQ4K : packQ5K)(y, yb, L);
  }
}

const ONES = new Float32Array(16).fill(1);

/** Quantizes rows of `rowLength` values laid end to end, as stable-diffusion.cpp's convert does. */
export function quantizeRowsSdcpp(type: QuantType, x: Float32Array, rowLength: number, out?: Uint8Array): Uint8Array {
  const { values, bytes } = QUANT_BLOCKS[type];
  if (rowLength % values || x.length % rowLength) throw new RangeError(`quantizeRowsSdcpp: rows of ${rowLength} values are not whole ${type} blocks, or ${x.length} values not whole rows`);
  const rowBytes = (rowLength / values) * bytes;
  const y = out ?? new Uint8Array((x.length / rowLength) * rowBytes);
  for (let r = 0; r < x.length / rowLength; r++) quantizeRow(type, x, r * rowLength, rowLength, y, r * rowBytes);
  return y;
}
