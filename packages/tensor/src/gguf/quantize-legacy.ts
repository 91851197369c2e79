// ggml's reference quantizers for the 32-value block types (quantize_row_q8_0_ref, _q4_0_ref, _q4_1_ref,
// _q5_0_ref, _q5_1_ref in ggml-quants.c), transcribed operation for operation: every float operation
// rounds to f32 (Math.fround), roundf rounds half away from zero, casts truncate, so the bytes are ggml's.
import { f32ToF16Bits } from '../dtype.js';

const f = Math.fround;

/** C's roundf: half away from zero. */
export function roundf(v: number): number {
  return v >= 0 ? Math.floor(v + 0.5) : -Math.floor(-v + 0.5);
}

export function putHalf(y: Uint8Array, o: number, v: number): void {
  const h = f32ToF16Bits(v);
  y[o] = h & 0xff;
  y[o + 1] = h >> 8;
}

function putU32(y: Uint8Array, o: number, v: number): void {
  y[o] = v & 0xff;
  y[o + 1] = (v >>> 8) & 0xff;
  y[o + 2] = (v >>> 16) & 0xff;
  y[o + 3] = (v >>> 24) & 0xff;
}

/** The value of largest magnitude (the first of equals), as ggml's `amax < fabsf(v)` scan finds it. */
function signedMax(x: Float32Array, at: number, n: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[at + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

function minMax(x: Float32Array, at: number, n: number): [number, number] {
  let min = Infinity; // FLT_MAX: the first value replaces either
  let max = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[at + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** One block of 32 values at x[at] into y[o]. */
export type BlockQuantizer = (x: Float32Array, at: number, y: Uint8Array, o: number) => void;

// block_q8_0: d = amax / 127, qs = roundf(x / d)
export const quantizeQ8_0: BlockQuantizer = (x, at, y, o) => {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[at + j]));
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  putHalf(y, o, d);
  for (let j = 0; j < 32; j++) y[o + 2 + j] = roundf(f(x[at + j] * id)) & 0xff;
};

// block_q4_0: d = max / -8 (the signed value of largest magnitude maps to -8), q = min(15, (int8)(x/d + 8.5))
export const quantizeQ4_0: BlockQuantizer = (x, at, y, o) => {
  const d = f(signedMax(x, at, 32) / -8);
  const id = d ? f(1 / d) : 0;
  putHalf(y, o, d);
  for (let j = 0; j < 16; j++) {
    const x0 = f(x[at + j] * id);
    const x1 = f(x[at + 16 + j] * id);
    const q0 = Math.min(15, Math.trunc(f(x0 + 8.5)));
    const q1 = Math.min(15, Math.trunc(f(x1 + 8.5)));
    y[o + 2 + j] = q0 | (q1 << 4);
  }
};

// block_q4_1: d = (max - min) / 15, m = min, q = min(15, (int8)((x - min)/d + 0.5))
export const quantizeQ4_1: BlockQuantizer = (x, at, y, o) => {
  const [min, max] = minMax(x, at, 32);
  const d = f(f(max - min) / 15);
  const id = d ? f(1 / d) : 0;
  putHalf(y, o, d);
  putHalf(y, o + 2, min);
  for (let j = 0; j < 16; j++) {
    const x0 = f(f(x[at + j] - min) * id);
    const x1 = f(f(x[at + 16 + j] - min) * id);
    const q0 = Math.min(15, Math.trunc(f(x0 + 0.5)));
    const q1 = Math.min(15, Math.trunc(f(x1 + 0.5)));
    y[o + 4 + j] = q0 | (q1 << 4);
  }
};

// block_q5_0: d = max / -16, q = min(31, (int8)(x/d + 16.5)); the 5th bits go to qh
export const quantizeQ5_0: BlockQuantizer = (x, at, y, o) => {
  const d = f(signedMax(x, at, 32) / -16);
  const id = d ? f(1 / d) : 0;
  putHalf(y, o, d);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = Math.min(31, Math.trunc(f(f(x[at + j] * id) + 16.5)));
    const q1 = Math.min(31, Math.trunc(f(f(x[at + 16 + j] * id) + 16.5)));
    y[o + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    qh |= ((q0 & 0x10) >> 4) << j;
    qh |= ((q1 & 0x10) >> 4) << (j + 16);
  }
  putU32(y, o + 2, qh >>> 0);
};

// block_q5_1: d = (max - min) / 31, m = min, q = (uint8)((x - min)/d + 0.5)
export const quantizeQ5_1: BlockQuantizer = (x, at, y, o) => {
  const [min, max] = minMax(x, at, 32);
  const d = f(f(max - min) / 31);
  const id = d ? f(1 / d) : 0;
  putHalf(y, o, d);
  putHalf(y, o + 2, min);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = Math.trunc(f(f(f(x[at + j] - min) * id) + 0.5)) & 0xff;
    const q1 = Math.trunc(f(f(f(x[at + 16 + j] - min) * id) + 0.5)) & 0xff;
    y[o + 8 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
    qh |= ((q0 & 0x10) >> 4) << j;
    qh |= ((q1 & 0x10) >> 4) << (j + 16);
  }
  putU32(y, o + 4, qh >>> 0);
};
