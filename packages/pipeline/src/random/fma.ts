// Fused multiply-add emulated exactly enough to reproduce the compiled C code torch's RNG runs: x86-64
// builds of glibc's logf/sinf/cosf and of ATen's AVX2 kernels contract a*b+c into one FMA, which rounds
// once where JavaScript's a*b+c rounds twice (Dekker's TwoProduct and Knuth's TwoSum recover the error).

const SPLITTER = 134217729; // 2^27 + 1, Veltkamp's splitting constant for doubles
const f32 = Math.fround;

/** The rounding error of a*b (so that a*b = p + err exactly), for finite, non-overflowing a*b. */
function productError(a: number, b: number, p: number): number {
  let t = SPLITTER * a;
  const ahi = t - (t - a);
  const alo = a - ahi;
  t = SPLITTER * b;
  const bhi = t - (t - b);
  const blo = b - bhi;
  return ((ahi * bhi - p) + ahi * blo + alo * bhi) + alo * blo;
}

/**
 * fma(a, b, c) on doubles: a*b + c with (almost always) one rounding. The sum of the three exact
 * parts is rounded twice only when t + err is inexact, ~2^-50 of the time relative to the result.
 */
export function fma64(a: number, b: number, c: number): number {
  const p = a * b;
  if (!Number.isFinite(p) || p === 0) return p + c;
  const err = productError(a, b, p);
  const s = p + c;
  const bb = s - p;
  const t = (p - (s - bb)) + (c - bb); // exact: p + c = s + t
  return s + (t + err);
}

/**
 * fmaf(a, b, c) on float32 values: exact. a*b of two floats is exact in a double, so the only
 * rounding to get right is the final one to float, which double rounding can break at midpoints.
 */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 + 24 significant bits
  const s = p + c;
  const bb = s - p;
  const t = (p - (s - bb)) + (c - bb); // exact: p + c = s + t
  const r = f32(s);
  if (t === 0 || r === s || !Number.isFinite(s)) return r;
  // s is exactly representable as a double; it only misleads fround when it is a float midpoint.
  const other = nextFloatToward(r, s);
  if (s - Math.min(r, other) !== Math.max(r, other) - s) return r;
  const hi = Math.max(r, other);
  const lo = Math.min(r, other);
  return t > 0 ? hi : lo;
}

const view = new DataView(new ArrayBuffer(4));

/** The float32 neighbour of float `x` in the direction of `target`. */
function nextFloatToward(x: number, target: number): number {
  if (x === target) return x;
  view.setFloat32(0, x);
  let bits = view.getUint32(0);
  if (x === 0) {
    bits = target > 0 ? 1 : 0x80000001;
  } else if ((target > x) === (x > 0)) {
    bits += 1;
  } else {
    bits -= 1;
  }
  view.setUint32(0, bits >>> 0);
  return view.getFloat32(0);
}
