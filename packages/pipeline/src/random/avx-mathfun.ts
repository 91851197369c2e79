// float32 ports of log256_ps and sincos256_ps from ATen's avx_mathfun.h (Cephes polynomials), which torch's
// AVX2 normal_fill uses for tensors of ≥ 16 elements. Every operation rounds to float32 as the vector
// instructions do; where GCC contracts a multiply into the add that consumes it (-mfma, statement order),
// fma32 rounds once.
import { fma32 } from './fma.js';

const f32 = Math.fround;
const bits = new DataView(new ArrayBuffer(4));

function floatBits(x: number): number {
  bits.setFloat32(0, x);
  return bits.getUint32(0);
}
function bitsFloat(u: number): number {
  bits.setUint32(0, u >>> 0);
  return bits.getFloat32(0);
}

// The constants are float literals in avx_mathfun.h (_PS256_CONST casts each to float).
const SQRTHF = f32(0.707106781186547524);
const LOG_P = [
  7.0376836292e-2, -1.151461031e-1, 1.167699874e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
  2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
].map(f32);
const LOG_Q1 = f32(-2.12194440e-4);
const LOG_Q2 = f32(0.693359375);

/** log256_ps for one positive, normal float32 x (torch only passes u1 = 1 − u ∈ [2^-24, 1]). */
export function logAvx(xIn: number): number {
  const xb = floatBits(xIn);
  let e = f32((xb >>> 23) - 0x7f + 1);
  let x = bitsFloat((xb & ~0x7f800000) | 0x3f000000); // mantissa in [0.5, 1)
  const below = x < SQRTHF;
  const tmp0 = below ? x : 0;
  x = f32(x - 1);
  if (below) e = f32(e - 1);
  x = f32(x + tmp0);
  const z = f32(x * x);
  let y = LOG_P[0];
  for (let k = 1; k < LOG_P.length; k++) y = fma32(y, x, LOG_P[k]);
  y = f32(y * x);
  y = fma32(y, z, f32(e * LOG_Q1)); // y*z fuses into the add; e*q1 (processed later) stays a multiply
  y = fma32(z, -0.5, y);
  x = f32(x + y);
  return fma32(e, LOG_Q2, x);
}

const DP1 = f32(-0.78515625);
const DP2 = f32(-2.4187564849853515625e-4);
const DP3 = f32(-3.77489497744594108e-8);
const SIN_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1].map(f32);
const COS_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2].map(f32);
const FOPI = f32(1.27323954473516); // 4 / pi

/** sincos256_ps for one float32 x ≥ 0 (torch passes θ = 2π·u ∈ [0, 2π)); returns [sin, cos]. */
export function sinCosAvx(xIn: number): [number, number] {
  let x = Math.abs(xIn);
  let signSin = xIn < 0 || Object.is(xIn, -0);
  let j = Math.trunc(f32(x * FOPI)); // cvttps_epi32
  j = (j + 1) & ~1;
  const y = j; // cvtepi32_ps: exact for these small integers
  if (j & 4) signSin = !signSin;
  const polyMask = (j & 2) === 0;
  const signCos = ((j - 2) & 4) === 0;
  // Extended-precision modular arithmetic x = ((x - y·DP1) - y·DP2) - y·DP3, each product fused.
  x = fma32(y, DP1, x);
  x = fma32(y, DP2, x);
  x = fma32(y, DP3, x);
  const z = f32(x * x);
  let c = fma32(COS_P[0], z, COS_P[1]);
  c = fma32(c, z, COS_P[2]);
  c = f32(c * z);
  c = fma32(c, z, -f32(z * 0.5));
  c = f32(c + 1);
  let s = fma32(SIN_P[0], z, SIN_P[1]);
  s = fma32(s, z, SIN_P[2]);
  s = f32(s * z);
  s = fma32(s, x, x);
  // Select per quadrant: the masked-out lane is subtracted to +0 and added back, so ±0 becomes +0.
  let sin = polyMask ? s + 0 : c + 0;
  let cos = polyMask ? c + 0 : s + 0;
  if (signSin) sin = -sin;
  if (signCos) cos = -cos;
  return [sin, cos];
}
