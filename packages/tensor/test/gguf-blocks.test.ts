// ggml's block formats: the quantizers and dequantizers against ggml itself (hashes of what ggml-quants.c
// at ggml 8e800ce — stable-diffusion.cpp 97d2990's — produces from the same input, compiled from source:
// quantize_q*(…, NULL) = the reference quantizers, quantize_q*(…, ones) = sd.cpp's convert, and
// dequantize_row_*), and float64 checks of every value: an independent float64 decoder of each layout
// agrees with the f32 dequantizer bit for bit, and each round-tripped value is its grid's nearest point.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dequantizeBlocks, f16BitsToF32, QUANT_BLOCKS, quantizeBlocks, quantizeRowsSdcpp, type QuantType } from '@ssd/tensor';
import { prng, randomArray } from '../../../testing/index.js';

const TYPES: QuantType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_K', 'q5_K', 'q6_K'];

/** 16 rows of 512 values: near-gaussian weights and the inputs that take ggml's other branches. */
function goldenInput(): Float32Array {
  const r = prng('gguf-golden');
  const gauss = () => r() + r() + r() + r() - 2; // Irwin–Hall: arithmetic only, the same bits everywhere
  const x = new Float32Array(16 * 512);
  for (let row = 0; row < 16; row++) {
    for (let i = 0; i < 512; i++) {
      const g = gauss() * 0.03;
      // plain, half zeros, all zero, constant, outliers, positive, negative, tiny
      x[row * 512 + i] = [g, r() < 0.5 ? 0 : g, 0, 0.5, i % 7 ? g * 0.01 : g * 40, Math.abs(g) + 0.1, -Math.abs(g) - 0.1, g * 1e-6][row % 8] * (row < 8 ? 1 : 3.7);
    }
  }
  return x;
}

/** sha256 (first 16 hex digits) of ggml's quantize_q*(x, NULL importance) and of its dequantize_row_* of those blocks. */
const GGML: Record<QuantType, [string, string]> = {
  q8_0: ['7b182e536b697329', '63f99c288367904c'],
  q4_0: ['cbfff296afdf45a1', '34260f90a57c5d23'],
  q4_1: ['cb2e2e10ab21d080', '2796d991efa68956'],
  q5_0: ['de085fe85b0ad904', '55752879d0fb6fbb'],
  q5_1: ['2a3807a1cd51487f', 'c2cd906cc2425c5b'],
  q4_K: ['14181372da937fa2', 'fe3fa883a3e257d8'],
  q5_K: ['4562a1e26914f605', '8d7263ba6c571189'],
  q6_K: ['f4a1f159dad70e61', '34a7e1c0e8e0052f'],
};
/** sha256 of ggml's quantize_q*(x, 512 per row, an importance of ones): stable-diffusion.cpp's convert. */
const GGML_UNIT_IMPORTANCE: Record<QuantType, string> = {
  q8_0: '7b182e536b697329', q4_0: '5ddc441f5a1e4bf2', q4_1: '7064a7c5be1c9e7f', q5_0: '7302dd2ba4072625',
  q5_1: 'ca021c5f3a345287', q4_K: '4e72858107974ee3', q5_K: 'b68b79852b38d3ad', q6_K: '30809d75ba881992',
};
const sha = (b: ArrayBufferView) => createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex').slice(0, 16);

describe("ggml's block formats", () => {
  it.each(TYPES)('%s: quantize and dequantize give the bytes and floats ggml gives', (type) => {
    const blocks = quantizeBlocks(type, goldenInput());
    expect(sha(blocks)).toBe(GGML[type][0]);
    expect(sha(dequantizeBlocks(type, blocks))).toBe(GGML[type][1]);
  });

  it.each(TYPES)("%s: sd.cpp's quantizer (importance of ones) gives ggml's bytes, and no larger an error than the reference one", (type) => {
    const x = goldenInput();
    const q = quantizeRowsSdcpp(type, x, 512);
    expect(sha(q)).toBe(GGML_UNIT_IMPORTANCE[type]);
    const err = (y: Float32Array) => y.reduce((a, v, i) => a + (v - x[i]) ** 2, 0);
    expect(err(dequantizeBlocks(type, q))).toBeLessThanOrEqual(err(dequantizeBlocks(type, quantizeBlocks(type, x))) * 1.001);
  });

  it.each(TYPES)('%s: a float64 decoder agrees with the dequantizer, and every value rounds to its nearest grid point', (type) => {
    const { values, bytes } = QUANT_BLOCKS[type];
    // awkward sizes: 7 blocks (three 32-value rows of 224 for the legacy types, 1792 values for K), mixed scales
    const n = values * 7;
    const x = randomArray(n, `gguf-rt-${type}`);
    for (let i = 0; i < n; i++) x[i] *= [1, 0.01, 30, 1e-4][Math.floor(i / values) % 4];
    const q = quantizeBlocks(type, x);
    expect(q.length).toBe(7 * bytes);
    const poisoned = new Float32Array(n).fill(NaN);
    const y = dequantizeBlocks(type, q, poisoned);
    for (let b = 0; b < 7; b++) {
      const block = q.subarray(b * bytes, (b + 1) * bytes);
      let amax = 0;
      for (let i = 0; i < values; i++) amax = Math.max(amax, Math.abs(x[b * values + i]));
      for (let i = 0; i < values; i++) {
        const at = b * values + i;
        const { value, grid, slack } = decode64(type, block, i, amax);
        expect(y[at]).toBe(Math.fround(value));
        const best = Math.min(...grid.map((g) => Math.abs(x[at] - g)));
        if (!(Math.abs(x[at] - value) <= best + slack)) throw new Error(`${type} block ${b} value ${i}: x ${x[at]} → ${value}, nearest grid point ${best} away`);
      }
    }
  });
});

const half = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));
const bit = (b: Uint8Array, o: number, i: number) => (b[o + (i >> 3)] >> (i & 7)) & 1;
const range = (lo: number, hi: number) => Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);

/** Value i of a block in float64, read off the layout (ggml-common.h) independently of dequantize.ts, with its grid. */
function decode64(type: QuantType, b: Uint8Array, i: number, amax: number): { value: number; grid: number[]; slack: number } {
  // legacy types pick levels with the unrounded scale and min: allow their f16 rounding (2⁻¹¹ relative,
  // 2⁻²⁵ absolute where subnormal) times the largest level
  const f16err = (v: number) => Math.abs(v) * 2 ** -10 + 2 ** -24;
  const legacyD = (levels: number, d: number, m = 0) => levels * f16err(d) + (m ? f16err(m) : 0) + amax * 2 ** -20;
  const nib = (o: number) => (i < 16 ? b[o + i] & 15 : b[o + i - 16] >> 4);
  switch (type) {
    case 'q8_0': {
      const d = half(b, 0);
      return { value: ((b[2 + i] << 24) >> 24) * d, grid: range(-128, 127).map((k) => k * d), slack: legacyD(127, d) };
    }
    case 'q4_0': {
      const d = half(b, 0);
      return { value: (nib(2) - 8) * d, grid: range(-8, 7).map((k) => k * d), slack: legacyD(8, d) };
    }
    case 'q5_0': {
      const d = half(b, 0);
      return { value: ((nib(6) | (bit(b, 2, i) << 4)) - 16) * d, grid: range(-16, 15).map((k) => k * d), slack: legacyD(16, d) };
    }
    case 'q4_1': {
      const [d, m] = [half(b, 0), half(b, 2)];
      return { value: nib(4) * d + m, grid: range(0, 15).map((k) => k * d + m), slack: legacyD(15, d, m) };
    }
    case 'q5_1': {
      const [d, m] = [half(b, 0), half(b, 2)];
      return { value: (nib(8) | (bit(b, 4, i) << 4)) * d + m, grid: range(0, 31).map((k) => k * d + m), slack: legacyD(31, d, m) };
    }
    case 'q4_K':
    case 'q5_K': {
      const [d, dmin] = [half(b, 0), half(b, 2)];
      const j = i >> 5; // sub-block of 32: chunk j >> 1 of 64 values, low (even j) or high nibbles
      const s = (k: number) => b[4 + k];
      const [sc, m] = j < 4 ? [s(j) & 63, s(j + 4) & 63] : [(s(j + 4) & 15) | ((s(j - 4) >> 6) << 4), (s(j + 4) >> 4) | ((s(j) >> 6) << 4)];
      const qs = type === 'q4_K' ? 16 : 48;
      const byte = b[qs + 32 * (j >> 1) + (i & 31)];
      let level = j & 1 ? byte >> 4 : byte & 15;
      if (type === 'q5_K') level |= bit(b, 16, (i & 31) * 8 + j) << 4;
      const nmax = type === 'q4_K' ? 15 : 31;
      const grid = sc ? range(0, nmax).map((k) => d * sc * k - dmin * m) : [-dmin * m];
      return { value: d * sc * level - dmin * m, grid, slack: 1e-6 * (Math.abs(d * sc) + amax) };
    }
    case 'q6_K': {
      const d = half(b, 208);
      const n = i >> 7, k = (i & 127) >> 5, l = i & 31; // 128-value half, quarter, lane
      const lowByte = b[64 * n + l + (k & 1 ? 32 : 0)];
      const level = (k >= 2 ? lowByte >> 4 : lowByte & 15) | (((b[128 + 32 * n + l] >> (2 * k)) & 3) << 4);
      const sc = (b[192 + 8 * n + (l >> 4) + 2 * k] << 24) >> 24;
      const grid = sc ? range(-32, 31).map((q) => d * sc * q) : [0];
      return { value: d * sc * (level - 32), grid, slack: 1e-6 * (Math.abs(d * sc) + amax) };
    }
  }
}
