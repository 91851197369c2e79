// Tensor dtypes and exact CPU conversions between f32, f16 and bf16.
// f32 → f16 rounds to nearest, ties to even, with subnormals, overflow to ±inf and NaN preserved
// (quiet, sign kept), exactly as IEEE 754 binaryconvert and as torch's `.half()` on CPU.
import { InvalidArgumentError } from './errors.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, i32: 4, u32: 4 };

/** The typed array a tensor of this dtype reads back as (f16 reads back as f32 values). */
export type HostArray<D extends DType = DType> = D extends 'i32' ? Int32Array : D extends 'u32' ? Uint32Array : Float32Array;

export function isFloat(dtype: DType): dtype is 'f32' | 'f16' {
  return dtype === 'f32' || dtype === 'f16';
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Bits of the f16 nearest to `value` (round to nearest even). */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  return f32BitsToF16Bits(u32Scratch[0]);
}

/** f32 bit pattern → f16 bit pattern, round to nearest even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // inf stays inf; NaN stays a quiet NaN carrying the top payload bits
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // subnormal f16 (or zero): shift the full significand (with the implicit 1) right
    if (e < -10) return sign; // below half the smallest subnormal → ±0
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r += 1;
    return sign | r; // a carry into bit 10 correctly yields the smallest normal
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r += 1; // carry may overflow into inf: correct
  return sign | r;
}

const F16_TO_F32 = buildF16Table();

function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  const u = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24
      t[h] = (mant / 16777216) * (sign ? -1 : 1);
      if (mant === 0) u[h] = sign;
    } else if (exp === 0x1f) {
      u[h] = sign | 0x7f800000 | (mant << 13);
    } else {
      u[h] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
  }
  return t;
}

/** f16 bits → the exact f32 value. */
export function f16BitsToF32(h: number): number {
  return F16_TO_F32[h & 0xffff];
}

/** bf16 bits → the exact f32 value. */
export function bf16BitsToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0];
}

/** Converts f32 values to f16 bits; `out` may be given to avoid an allocation. */
export function f32ArrayToF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

export function f16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) out[i] = F16_TO_F32[src[i]];
  return out;
}

export function bf16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i] << 16;
  return out;
}

export function bf16ArrayToF16(src: Uint16Array, out = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(src[i] << 16);
  return out;
}

/** Rounds every value of an f32 array to its nearest f16 value, in place (for CPU references). */
export function roundToF16InPlace(a: Float32Array): Float32Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < a.length; i++) a[i] = F16_TO_F32[f32BitsToF16Bits(bits[i])];
  return a;
}

export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Host values as the bytes of a `dtype` tensor (f16: f32 values rounded, or f16 bit patterns as a Uint16Array; padded to 4 bytes). */
export function toDtypeBytes(
  data: Float32Array | Float64Array | Int32Array | Uint32Array | Uint16Array | readonly number[],
  dtype: DType,
): ArrayBufferView {
  if (dtype === 'f16') {
    if (data instanceof Uint16Array) return padTo4(data);
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    return padTo4(f32ArrayToF16(f32));
  }
  if (data instanceof Uint16Array) throw new InvalidArgumentError(`Uint16Array data is only accepted for f16 tensors (got ${dtype})`);
  if (dtype === 'f32') return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
  if (dtype === 'i32') return data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
  return data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
}

function padTo4(a: Uint16Array): Uint16Array {
  if (a.length % 2 === 0) return a;
  const p = new Uint16Array(a.length + 1);
  p.set(a);
  return p;
}
