// Host-side tensor data in the safetensors dtypes: raw little-endian bytes → typed arrays, and
// conversion to the GPU dtypes (f32, f16 bits, i32). Shared by every source of named tensors.

import { bf16ArrayToF16, bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16, type DType } from './dtype.js';
import { SafetensorsError } from './errors.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Typed array a tensor decodes to: f16/bf16 as raw Uint16Array bits. */
export type SafetensorsArray = Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** What conversions need to know about a tensor, and to name it in messages. */
export interface TensorTag {
  readonly name: string;
  readonly dtype: SafetensorsDType;
}

export function decodeTensorBytes(dtype: SafetensorsDType, bytes: Uint8Array): SafetensorsArray {
  // copy to an aligned buffer when needed (typed arrays need element-aligned offsets)
  const el = SAFETENSORS_DTYPE_BYTES[dtype];
  const b = bytes.byteOffset % el === 0 ? bytes : bytes.slice();
  const n = b.byteLength / el;
  switch (dtype) {
    case 'F64': return new Float64Array(b.buffer, b.byteOffset, n);
    case 'F32': return new Float32Array(b.buffer, b.byteOffset, n);
    case 'F16':
    case 'BF16': return new Uint16Array(b.buffer, b.byteOffset, n);
    case 'I64': return new BigInt64Array(b.buffer, b.byteOffset, n);
    case 'I32': return new Int32Array(b.buffer, b.byteOffset, n);
    case 'I16': return new Int16Array(b.buffer, b.byteOffset, n);
    case 'I8': return new Int8Array(b.buffer, b.byteOffset, n);
    case 'U8':
    case 'BOOL': return b;
  }
}

export function toFloat32(dtype: SafetensorsDType, a: SafetensorsArray): Float32Array {
  if (dtype === 'F32') return a as Float32Array;
  if (dtype === 'F16') return f16ArrayToF32(a as Uint16Array);
  if (dtype === 'BF16') return bf16ArrayToF32(a as Uint16Array);
  if (dtype === 'I64') return Float32Array.from(a as BigInt64Array, (v) => Number(v));
  return Float32Array.from(a as ArrayLike<number>);
}

export function checkConvertible(file: string, t: TensorTag, to: DType): void {
  const float = t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F64';
  const int = t.dtype === 'I64' || t.dtype === 'I32';
  if ((to === 'f32' || to === 'f16') && float) return;
  if (to === 'i32' && int) return;
  throw new SafetensorsError(file, `dtype ${t.dtype} cannot be loaded as ${to}`, t.name);
}

export function convertTensorData(file: string, t: TensorTag, a: SafetensorsArray, to: DType): Float32Array | Uint16Array | Int32Array {
  checkConvertible(file, t, to);
  if (to === 'f16') {
    if (t.dtype === 'F16') return a as Uint16Array;
    if (t.dtype === 'BF16') return bf16ArrayToF16(a as Uint16Array);
    return f32ArrayToF16(t.dtype === 'F32' ? (a as Float32Array) : Float32Array.from(a as Float64Array));
  }
  if (to === 'f32') return toFloat32(t.dtype, a);
  if (t.dtype === 'I32') return a as Int32Array;
  const big = a as BigInt64Array;
  const out = new Int32Array(big.length);
  for (let i = 0; i < big.length; i++) {
    const v = big[i];
    if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(file, `value ${v} at index ${i} does not fit in i32`, t.name);
    out[i] = Number(v);
  }
  return out;
}

export function padBytesTo4(v: Uint8Array): Uint8Array {
  const p = new Uint8Array(Math.ceil(v.byteLength / 4) * 4);
  p.set(v);
  return p;
}
