// The numpy 1.24 operations diffusers v0.26 uses to place timesteps and sigmas, reproduced to the bit:
// float arange/linspace, round-half-to-even, interp, the AVX2 float32 log, and scalar/array type promotion
// in _sigma_to_t. Timesteps must equal diffusers' exactly, and one of them is a float32 fraction.
import { fma32 } from '../random/fma.js';

const f32 = Math.fround;

/** numpy's round / around: half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * np.arange(start, stop, step) with a float step: length ceil((stop − start)/step); element i is
 * start + i·δ where δ = (start + step) − start (numpy fills from the first two elements).
 */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  const out = new Float64Array(length);
  if (length === 0) return out;
  out[0] = start;
  if (length === 1) return out;
  out[1] = start + step;
  const delta = out[1] - start;
  for (let i = 2; i < length; i++) out[i] = start + i * delta;
  return out;
}

/** np.linspace(start, stop, num) in float64 (endpoint included, last element exactly `stop`). */
export function npLinspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const div = num - 1;
  const delta = stop - start;
  if (div > 0) {
    const step = delta / div;
    for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
    out[num - 1] = stop;
  } else {
    for (let i = 0; i < num; i++) out[i] = i * delta + start;
  }
  return out;
}

/** np.interp(x, arange(len(fp)), fp) for x inside [0, len − 1]. */
export function npInterp(x: number, fp: ArrayLike<number>): number {
  const last = fp.length - 1;
  if (x <= 0) return fp[0];
  if (x >= last) return fp[last];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = (fp[j + 1] - fp[j]) / 1;
  return slope * (x - j) + fp[j];
}

// numpy/core/src/umath/loops_exponent_log.dispatch.c.src: the AVX2/AVX512F float32 log (P/Q rational
// approximation, max error 3.83 ulp) that np.log runs on contiguous float32 arrays on such CPUs.
const LOG_P = [
  0.0, 9.999999999999998702752e-1, 2.112677543073053063722, 1.480000633576506585156,
  3.808837741388407920751e-1, 2.589979117907922693523e-2,
].map(f32);
const LOG_Q = [
  1.0, 2.612677543073109236779, 2.453006071784736363091, 9.864942958519418960339e-1,
  1.546476374983906719538e-1, 5.875095403124574342950e-3,
].map(f32);
const SQRT1_2 = f32(0.707106781186547524400844362104849039);
const LN2 = f32(0.693147180559945309417232121458176568);
const view = new DataView(new ArrayBuffer(4));

/** np.log of a positive normal float32 as numpy's AVX2 (FMA3) kernel computes it. */
export function npLogF32(x: number): number {
  view.setFloat32(0, x);
  const b = view.getUint32(0);
  let e = (b >>> 23) - 126;
  view.setUint32(0, (b & 0x7fffff) | (126 << 23));
  let m = view.getFloat32(0); // mantissa in [0.5, 1)
  if (m <= SQRT1_2) {
    m = f32(m + m);
    e -= 1;
  }
  const r = f32(m - 1);
  let num = fma32(LOG_P[5], r, LOG_P[4]);
  let den = fma32(LOG_Q[5], r, LOG_Q[4]);
  for (let k = 3; k >= 0; k--) {
    num = fma32(num, r, LOG_P[k]);
    den = fma32(den, r, LOG_Q[k]);
  }
  return fma32(e, LN2, f32(num / den));
}

/**
 * k-diffusion's Karras schedule as diffusers' _convert_to_karras computes it (numpy float64, ρ = 7):
 * (σmax^{1/ρ} + ramp·(σmin^{1/ρ} − σmax^{1/ρ}))^ρ with ramp = linspace(0, 1, n).
 */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): Float64Array {
  const rho = 7.0;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  const diff = minInvRho - maxInvRho;
  const ramp = npLinspace(0, 1, n);
  return ramp.map((r) => (maxInvRho + r * diff) ** rho);
}

/**
 * diffusers' _sigma_to_t (scheduling_euler_discrete.py): the fractional training timestep whose
 * log-sigma interpolates `sigma`. `logSigmas` is np.log of the float32 sigma table (float32); numpy 1.x
 * value-based casting keeps every step before the final blend in float32.
 */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = f32(Math.log(Math.max(sigma, 1e-10)));
  let lowIdx = 0;
  for (let j = 0; j < logSigmas.length; j++) if (f32(logSigma - logSigmas[j]) >= 0) lowIdx = j;
  lowIdx = Math.min(lowIdx, logSigmas.length - 2);
  const low = logSigmas[lowIdx];
  const high = logSigmas[lowIdx + 1];
  let w = f32(f32(low - logSigma) / f32(low - high));
  w = Math.min(Math.max(w, 0), 1);
  return f32(1 - w) * lowIdx + w * (lowIdx + 1);
}
