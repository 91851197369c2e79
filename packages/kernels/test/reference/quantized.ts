// float64 oracle for the quantized GEMMs: ggml's block formats (ggml-common.h) decoded as ggml's
// dequantize_row_* define them (ggml-quants.c), plus the quantizers that make test data (the
// quantize_row_*_ref algorithms; the K-quants take each sub-block's min/max instead of ggml's iterative
// make_qkx2/make_qx search, which changes which codes are chosen, not the format) and random blocks
// whose every field is random (all scale, min, sign and high-bit patterns).
import { f16BitsToF32, f32ToF16Bits, QUANT_BLOCKS, type QuantType } from '@ssd/tensor';
import { prng } from '../../../../testing/index.js';

const half = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));
const putHalf = (b: Uint8Array, o: number, v: number) => {
  const h = f32ToF16Bits(v);
  b[o] = h & 0xff;
  b[o + 1] = h >> 8;
};
const i8 = (v: number) => (v << 24) >> 24;

/** get_scale_min_k4: 6-bit scale and min of sub-block j from a K-quant's 12 scale bytes at s. */
function scaleMinK4(j: number, b: Uint8Array, s: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

type Decode = (b: Uint8Array, o: number, y: Float64Array, at: number) => void;

const DECODE: Record<QuantType, Decode> = {
  q8_0(b, o, y, at) {
    const d = half(b, o);
    for (let j = 0; j < 32; j++) y[at + j] = i8(b[o + 2 + j]) * d;
  },
  q4_0(b, o, y, at) {
    const d = half(b, o);
    for (let j = 0; j < 16; j++) {
      y[at + j] = ((b[o + 2 + j] & 0xf) - 8) * d;
      y[at + j + 16] = ((b[o + 2 + j] >> 4) - 8) * d;
    }
  },
  q4_1(b, o, y, at) {
    const d = half(b, o);
    const m = half(b, o + 2);
    for (let j = 0; j < 16; j++) {
      y[at + j] = (b[o + 4 + j] & 0xf) * d + m;
      y[at + j + 16] = (b[o + 4 + j] >> 4) * d + m;
    }
  },
  q5_0(b, o, y, at) {
    const d = half(b, o);
    const qh = (b[o + 2] | (b[o + 3] << 8) | (b[o + 4] << 16) | (b[o + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      y[at + j] = (((b[o + 6 + j] & 0xf) | (((qh >>> j) & 1) << 4)) - 16) * d;
      y[at + j + 16] = (((b[o + 6 + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  },
  q5_1(b, o, y, at) {
    const d = half(b, o);
    const m = half(b, o + 2);
    const qh = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      y[at + j] = ((b[o + 8 + j] & 0xf) | (((qh >>> j) & 1) << 4)) * d + m;
      y[at + j + 16] = ((b[o + 8 + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  },
  // 8 sub-blocks of 32: 64-value chunk c holds sub-block 2c in the low nibbles of qs[32c..], 2c+1 in the high
  q4_K(b, o, y, at) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(j, b, o + 4);
      const q = o + 16 + 32 * (j >> 1);
      for (let l = 0; l < 32; l++) y[at + 32 * j + l] = d * sc * ((b[q + l] >> (4 * (j & 1))) & 0xf) - dmin * m;
    }
  },
  // as q4_K, plus a fifth bit: bit j of qh[l] for value l of sub-block j
  q5_K(b, o, y, at) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(j, b, o + 4);
      const q = o + 48 + 32 * (j >> 1);
      for (let l = 0; l < 32; l++) {
        const v = ((b[q + l] >> (4 * (j & 1))) & 0xf) | (((b[o + 16 + l] >> j) & 1) << 4);
        y[at + 32 * j + l] = d * sc * v - dmin * m;
      }
    }
  },
  // two halves of 128: value 32r + l (r < 4) of half n takes ql[64n + 32(r&1) + l] nibble r>>1, bits 2r..2r+1
  // of qh[32n + l], scale scales[8n + 2r + l/16]; minus 32
  q6_K(b, o, y, at) {
    const d = half(b, o + 208);
    for (let n = 0; n < 2; n++) {
      for (let r = 0; r < 4; r++) {
        for (let l = 0; l < 32; l++) {
          const lo = (b[o + 64 * n + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 0xf;
          const hi = (b[o + 128 + 32 * n + l] >> (2 * r)) & 3;
          const sc = i8(b[o + 192 + 8 * n + 2 * r + (l >> 4)]);
          y[at + 128 * n + 32 * r + l] = d * sc * ((lo | (hi << 4)) - 32);
        }
      }
    }
  },
};

/** Every value of a buffer of consecutive blocks, in order (row n of a [N, K] weight is [n·K, n·K + K)). */
export function dequantizeRef(type: QuantType, bytes: Uint8Array): Float64Array {
  const { values, bytes: size } = QUANT_BLOCKS[type];
  const nb = Math.floor(bytes.byteLength / size);
  const y = new Float64Array(nb * values);
  for (let i = 0; i < nb; i++) DECODE[type](bytes, i * size, y, i * values);
  return y;
}

/** `blocks` blocks of `type` with every field random (f16 scales in ±[2⁻⁸, 2⁻⁴]; any quant, sign, high bit). */
export function randomBlocks(type: QuantType, blocks: number, seed: string): Uint8Array {
  const { bytes: size } = QUANT_BLOCKS[type];
  const r = prng(seed);
  const b = new Uint8Array(blocks * size);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  const scale = () => (r() < 0.5 ? -1 : 1) * 2 ** (-8 + 4 * r());
  for (let i = 0; i < blocks; i++) {
    const o = i * size;
    if (type === 'q6_K') putHalf(b, o + 208, Math.abs(scale()));
    else putHalf(b, o, type.endsWith('_K') ? Math.abs(scale()) : scale());
    if (type === 'q4_1' || type === 'q5_1') putHalf(b, o + 2, scale());
    if (type === 'q4_K' || type === 'q5_K') putHalf(b, o + 2, Math.abs(scale()));
  }
  return b;
}

const round = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v)); // C's roundf / nearest_int
const f = Math.fround;

/** Quantizes `x` (a multiple of the block size) into blocks of `type`. */
export function quantizeRef(type: QuantType, x: ArrayLike<number>): Uint8Array {
  const { values, bytes: size } = QUANT_BLOCKS[type];
  if (x.length % values) throw new Error(`quantizeRef: ${x.length} values are not whole ${type} blocks`);
  const out = new Uint8Array((x.length / values) * size);
  for (let i = 0; i < x.length / values; i++) QUANTIZE[type](Array.from({ length: values }, (_, j) => f(x[i * values + j])), out, i * size);
  return out;
}

type Quantize = (x: number[], b: Uint8Array, o: number) => void;

/** The value of largest magnitude, with its sign. */
const signedMax = (x: number[]) => x.reduce((m, v) => (Math.abs(v) > Math.abs(m) ? v : m), 0);
const trunc8 = (v: number) => Math.trunc(v); // C's (int8_t) cast of a value in range

function q5Bits(xi: number[], b: Uint8Array, qs: number, qh: number): void {
  let h = 0;
  for (let j = 0; j < 16; j++) {
    b[qs + j] = (xi[j] & 0xf) | ((xi[j + 16] & 0xf) << 4);
    h |= ((xi[j] >> 4) & 1) << j;
    h |= ((xi[j + 16] >> 4) & 1) << (j + 16);
  }
  for (let k = 0; k < 4; k++) b[qh + k] = (h >>> (8 * k)) & 0xff;
}

/** K-quant scales and mins: 6-bit codes of per-sub-block (scale, -min) relative to their maxima. */
function kScales(x: number[], levels: number, b: Uint8Array, o: number): number[] {
  const scales: number[] = [];
  const mins: number[] = [];
  for (let j = 0; j < 8; j++) {
    const s = x.slice(32 * j, 32 * j + 32);
    const lo = Math.min(0, ...s);
    scales.push((Math.max(...s) - lo) / levels);
    mins.push(-lo);
  }
  const maxScale = Math.max(...scales);
  const maxMin = Math.max(...mins);
  const is = maxScale > 0 ? 63 / maxScale : 0;
  const im = maxMin > 0 ? 63 / maxMin : 0;
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, round(is * scales[j]));
    const lm = Math.min(63, round(im * mins[j]));
    if (j < 4) {
      b[o + 4 + j] = ls;
      b[o + 4 + j + 4] = lm;
    } else {
      b[o + 4 + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      b[o + 4 + j - 4] |= (ls >> 4) << 6;
      b[o + 4 + j] |= (lm >> 4) << 6;
    }
  }
  putHalf(b, o, maxScale / 63);
  putHalf(b, o + 2, maxMin / 63);
  const L: number[] = [];
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, b, o + 4);
    const d = half(b, o) * sc;
    const dm = half(b, o + 2) * m;
    for (let l = 0; l < 32; l++) L.push(d ? Math.max(0, Math.min(levels, round((x[32 * j + l] + dm) / d))) : 0);
  }
  return L;
}

const QUANTIZE: Record<QuantType, Quantize> = {
  q8_0(x, b, o) {
    const d = Math.max(...x.map(Math.abs)) / 127;
    const id = d ? 1 / d : 0;
    putHalf(b, o, d);
    for (let j = 0; j < 32; j++) b[o + 2 + j] = round(x[j] * id) & 0xff;
  },
  q4_0(x, b, o) {
    const d = signedMax(x) / -8;
    const id = d ? 1 / d : 0;
    putHalf(b, o, d);
    for (let j = 0; j < 16; j++) b[o + 2 + j] = Math.min(15, trunc8(x[j] * id + 8.5)) | (Math.min(15, trunc8(x[j + 16] * id + 8.5)) << 4);
  },
  q4_1(x, b, o) {
    const lo = Math.min(...x);
    const d = (Math.max(...x) - lo) / 15;
    const id = d ? 1 / d : 0;
    putHalf(b, o, d);
    putHalf(b, o + 2, lo);
    for (let j = 0; j < 16; j++) b[o + 4 + j] = Math.min(15, trunc8((x[j] - lo) * id + 0.5)) | (Math.min(15, trunc8((x[j + 16] - lo) * id + 0.5)) << 4);
  },
  q5_0(x, b, o) {
    const d = signedMax(x) / -16;
    const id = d ? 1 / d : 0;
    putHalf(b, o, d);
    q5Bits(x.map((v) => Math.min(31, trunc8(v * id + 16.5))), b, o + 6, o + 2);
  },
  q5_1(x, b, o) {
    const lo = Math.min(...x);
    const d = (Math.max(...x) - lo) / 31;
    const id = d ? 1 / d : 0;
    putHalf(b, o, d);
    putHalf(b, o + 2, lo);
    q5Bits(x.map((v) => Math.min(31, trunc8((v - lo) * id + 0.5))), b, o + 8, o + 4);
  },
  q4_K(x, b, o) {
    const L = kScales(x, 15, b, o);
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[o + 16 + 32 * c + l] = L[64 * c + l] | (L[64 * c + 32 + l] << 4);
  },
  q5_K(x, b, o) {
    const L = kScales(x, 31, b, o);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const l1 = L[64 * c + l];
        const l2 = L[64 * c + 32 + l];
        b[o + 48 + 32 * c + l] = (l1 & 0xf) | ((l2 & 0xf) << 4);
        b[o + 16 + l] |= ((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1));
      }
    }
  },
  q6_K(x, b, o) {
    const scales: number[] = [];
    for (let ib = 0; ib < 16; ib++) scales.push(signedMax(x.slice(16 * ib, 16 * ib + 16)) / -32);
    const maxScale = scales.reduce((m, s) => (Math.abs(s) > Math.abs(m) ? s : m), 0);
    if (maxScale === 0) return; // all zeros: a zero block
    const iscale = -128 / maxScale;
    putHalf(b, o + 208, 1 / iscale);
    const L: number[] = [];
    for (let ib = 0; ib < 16; ib++) {
      const sc = Math.min(127, round(iscale * scales[ib]));
      b[o + 192 + ib] = sc & 0xff;
      const d = half(b, o + 208) * sc;
      for (let l = 0; l < 16; l++) L.push(d ? Math.max(-32, Math.min(31, round(x[16 * ib + l] / d))) + 32 : 32);
    }
    for (let n = 0; n < 2; n++) {
      for (let l = 0; l < 32; l++) {
        const q = [0, 1, 2, 3].map((r) => L[128 * n + 32 * r + l]);
        b[o + 64 * n + l] = (q[0] & 0xf) | ((q[2] & 0xf) << 4);
        b[o + 64 * n + 32 + l] = (q[1] & 0xf) | ((q[3] & 0xf) << 4);
        b[o + 128 + 32 * n + l] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
      }
    }
  },
};
