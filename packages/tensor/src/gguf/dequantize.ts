// ggml's block formats decoded to float32, value for value as ggml's dequantize_row_* (ggml-quants.c):
// each product of an f16 scale and small integers is exact in f32, and the one rounding ggml does
// (a subtraction, an addition, q6_K's last multiply) is Math.fround here — so the values are ggml's bits.
import { f16BitsToF32 } from '../dtype.js';
import { QUANT_BLOCKS, type QuantType } from '../quantized.js';

const f = Math.fround;

/** Dequantizes whole blocks: `bytes` holds n blocks of `type`, the result n × values floats. */
export function dequantizeBlocks(type: QuantType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const { values, bytes: size } = QUANT_BLOCKS[type];
  if (bytes.byteLength % size) throw new RangeError(`dequantizeBlocks: ${bytes.byteLength} bytes are not whole ${type} blocks of ${size}`);
  const nb = bytes.byteLength / size;
  const y = out ?? new Float32Array(nb * values);
  if (y.length < nb * values) throw new RangeError(`dequantizeBlocks: the output holds ${y.length} values, ${nb * values} needed`);
  const decode = DECODERS[type];
  for (let i = 0; i < nb; i++) decode(bytes, i * size, y, i * values);
  return y;
}

type Decoder = (b: Uint8Array, o: number, y: Float32Array, at: number) => void;

const half = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

/** ggml's get_scale_min_k4: 6-bit scale and min j of a K-quant super-block's 12 scale bytes at `s`. */
export function scaleMinK4(j: number, b: Uint8Array, s: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

const DECODERS: Record<QuantType, Decoder> = {
  // block_q8_0: d, qs[32] (int8)
  q8_0(b, o, y, at) {
    const d = half(b, o);
    for (let j = 0; j < 32; j++) y[at + j] = ((b[o + 2 + j] << 24) >> 24) * d;
  },
  // block_q4_0: d, qs[16]; low nibbles are values 0..15, high nibbles 16..31
  q4_0(b, o, y, at) {
    const d = half(b, o);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      y[at + j] = ((q & 0xf) - 8) * d;
      y[at + j + 16] = ((q >> 4) - 8) * d;
    }
  },
  // block_q4_1: d, m, qs[16]
  q4_1(b, o, y, at) {
    const d = half(b, o);
    const m = half(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j];
      y[at + j] = f((q & 0xf) * d + m);
      y[at + j + 16] = f((q >> 4) * d + m);
    }
  },
  // block_q5_0: d, qh[4] (the 5th bits), qs[16]
  q5_0(b, o, y, at) {
    const d = half(b, o);
    const qh = u32(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 6 + j];
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      y[at + j] = (((q & 0xf) | h0) - 16) * d;
      y[at + j + 16] = (((q >> 4) | h1) - 16) * d;
    }
  },
  // block_q5_1: d, m, qh[4], qs[16]
  q5_1(b, o, y, at) {
    const d = half(b, o);
    const m = half(b, o + 2);
    const qh = u32(b, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 8 + j];
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      y[at + j] = f(((q & 0xf) | h0) * d + m);
      y[at + j + 16] = f(((q >> 4) | h1) * d + m);
    }
  },
  // block_q4_K: d, dmin, scales[12], qs[128]; 8 sub-blocks of 32 with 6-bit scales and mins
  q4_K(b, o, y, at) {
    const d = half(b, o);
    const min = half(b, o + 2);
    let q = o + 16;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
      const [sc1, m1] = scaleMinK4(is, b, o + 4);
      const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
      const d1 = d * sc1, dm1 = min * m1, d2 = d * sc2, dm2 = min * m2;
      for (let l = 0; l < 32; l++) y[at + j + l] = f(d1 * (b[q + l] & 0xf) - dm1);
      for (let l = 0; l < 32; l++) y[at + j + 32 + l] = f(d2 * (b[q + l] >> 4) - dm2);
    }
  },
  // block_q5_K: d, dmin, scales[12], qh[32], qs[128]
  q5_K(b, o, y, at) {
    const d = half(b, o);
    const min = half(b, o + 2);
    const qh = o + 16;
    let ql = o + 48;
    let u1 = 1, u2 = 2;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      const [sc1, m1] = scaleMinK4(is, b, o + 4);
      const [sc2, m2] = scaleMinK4(is + 1, b, o + 4);
      const d1 = d * sc1, dm1 = min * m1, d2 = d * sc2, dm2 = min * m2;
      for (let l = 0; l < 32; l++) y[at + j + l] = f(d1 * ((b[ql + l] & 0xf) + (b[qh + l] & u1 ? 16 : 0)) - dm1);
      for (let l = 0; l < 32; l++) y[at + j + 32 + l] = f(d2 * ((b[ql + l] >> 4) + (b[qh + l] & u2 ? 16 : 0)) - dm2);
    }
  },
  // block_q6_K: ql[128], qh[64], scales[16] (int8), d — the scale last
  q6_K(b, o, y, at) {
    const d = half(b, o + 208);
    for (let n = 0; n < 256; n += 128) {
      const ql = o + n / 2;
      const qh = o + 128 + n / 4;
      const sc = o + 192 + n / 16;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l];
        const q1 = ((b[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        const s = (k: number) => (b[sc + is + k] << 24) >> 24;
        y[at + n + l] = f(d * s(0) * q1);
        y[at + n + l + 32] = f(d * s(2) * q2);
        y[at + n + l + 64] = f(d * s(4) * q3);
        y[at + n + l + 96] = f(d * s(6) * q4);
      }
    }
  },
};
