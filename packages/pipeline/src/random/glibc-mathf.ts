// Ports of glibc's logf, sinf and cosf (sysdeps/ieee754/flt-32: e_logf.c, s_sinf.c, s_cosf.c, s_sincosf.h,
// from ARM optimized-routines) as the x86-64 FMA variants compute them. torch's scalar normal_fill (every
// non-AVX2 build) calls these through std::log/cos/sin on floats; they are not correctly rounded, so
// Math.log etc. differ from them in the last bit of ~1.5% of draws. Only the input ranges torch uses
// (finite x ≥ 0, |x| < 120 for sin/cos) are handled.
import { fma64 } from './fma.js';

const f32 = Math.fround;
const hex = (s: string): number => {
  // C hexadecimal float literal → number (exact).
  const m = /^(-?)0x([0-9a-f]+)(?:\.([0-9a-f]*))?p([+-]?\d+)$/i.exec(s);
  if (!m) throw new Error(`bad hex float ${s}`);
  const frac = m[3] ?? '';
  const mant = parseInt(m[2] + frac, 16);
  const v = mant * 2 ** (parseInt(m[4], 10) - 4 * frac.length);
  return m[1] ? -v : v;
};

// e_logf_data.c
const LOGF_TAB: ReadonlyArray<readonly [number, number]> = [
  ['0x1.661ec79f8f3bep+0', '-0x1.57bf7808caadep-2'], ['0x1.571ed4aaf883dp+0', '-0x1.2bef0a7c06ddbp-2'],
  ['0x1.49539f0f010bp+0', '-0x1.01eae7f513a67p-2'], ['0x1.3c995b0b80385p+0', '-0x1.b31d8a68224e9p-3'],
  ['0x1.30d190c8864a5p+0', '-0x1.6574f0ac07758p-3'], ['0x1.25e227b0b8eap+0', '-0x1.1aa2bc79c81p-3'],
  ['0x1.1bb4a4a1a343fp+0', '-0x1.a4e76ce8c0e5ep-4'], ['0x1.12358f08ae5bap+0', '-0x1.1973c5a611cccp-4'],
  ['0x1.0953f419900a7p+0', '-0x1.252f438e10c1ep-5'], ['0x1p+0', '0x0p+0'],
  ['0x1.e608cfd9a47acp-1', '0x1.aa5aa5df25984p-5'], ['0x1.ca4b31f026aap-1', '0x1.c5e53aa362eb4p-4'],
  ['0x1.b2036576afce6p-1', '0x1.526e57720db08p-3'], ['0x1.9c2d163a1aa2dp-1', '0x1.bc2860d22477p-3'],
  ['0x1.886e6037841edp-1', '0x1.1058bc8a07ee1p-2'], ['0x1.767dcf5534862p-1', '0x1.4043057b6ee09p-2'],
].map(([a, b]) => [hex(a), hex(b)] as const);
const LOGF_LN2 = hex('0x1.62e42fefa39efp-1');
const LOGF_A = ['-0x1.00ea348b88334p-2', '0x1.5575b0be00b6ap-2', '-0x1.ffffef20a4123p-2'].map(hex);
const LOGF_OFF = 0x3f330000;

const view = new DataView(new ArrayBuffer(4));
function asUint(x: number): number {
  view.setFloat32(0, x);
  return view.getUint32(0);
}
function asFloat(u: number): number {
  view.setUint32(0, u >>> 0);
  return view.getFloat32(0);
}

/** glibc logf (FMA build) for a positive, normal, finite float32. */
export function logfGlibc(x: number): number {
  const ix = asUint(x);
  if (ix === 0x3f800000) return 0;
  if (ix - 0x00800000 >= 0x7f800000 - 0x00800000) {
    if (x === 0) return -Infinity;
    if (ix === 0x7f800000) return x;
    if (ix & 0x80000000 || ix * 2 >= 0xff000000) return NaN;
    throw new RangeError(`logfGlibc: subnormal input ${x} is outside torch's range`);
  }
  const tmp = (ix - LOGF_OFF) >>> 0;
  const i = (tmp >>> (23 - 4)) % 16;
  const k = (tmp | 0) >> 23; // arithmetic shift
  const iz = (ix - (tmp & 0xff800000)) >>> 0;
  const [invc, logc] = LOGF_TAB[i];
  const z = asFloat(iz);
  const r = fma64(z, invc, -1);
  const y0 = fma64(k, LOGF_LN2, logc);
  const r2 = r * r;
  let y = fma64(LOGF_A[1], r, LOGF_A[2]);
  y = fma64(LOGF_A[0], r2, y);
  y = fma64(y, r2, y0 + r);
  return f32(y);
}

// s_sincosf_data.c: __sincosf_table[0]; entry [1] negates the cosine polynomial (c0..c4).
interface SinCosTable {
  hpiInv: number;
  hpi: number;
  c: readonly number[];
  s: readonly number[];
}
const HPI_INV = hex('0x1.45F306DC9C883p+23'); // 2/pi scaled by 2^24 (TOINT_INTRINSICS is 0 on x86-64)
const HPI = hex('0x1.921FB54442D18p0');
const COS_C = ['0x1p0', '-0x1.ffffffd0c621cp-2', '0x1.55553e1068f19p-5', '-0x1.6c087e89a359dp-10', '0x1.99343027bf8c3p-16'].map(hex);
const SIN_S = ['-0x1.555545995a603p-3', '0x1.1107605230bc4p-7', '-0x1.994eb3774cf24p-13'].map(hex);
const TABLES: readonly [SinCosTable, SinCosTable] = [
  { hpiInv: HPI_INV, hpi: HPI, c: COS_C, s: SIN_S },
  { hpiInv: HPI_INV, hpi: HPI, c: COS_C.map((v) => -v), s: SIN_S },
];
const SIGNS = [1, -1, -1, 1];
const ABSTOP_PIO4 = abstop12(f32(0.78539816339744830962)); // pio4f
const ABSTOP_TINY = abstop12(2 ** -12);
const ABSTOP_120 = abstop12(120);

function abstop12(x: number): number {
  return (asUint(x) >>> 20) & 0x7ff;
}

/** sinf_poly: the sine (n even) or cosine (n odd) polynomial, evaluated in double with FMAs. */
function sinfPoly(x: number, x2: number, p: SinCosTable, n: number): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = fma64(x2, p.s[2], p.s[1]);
    const x7 = x3 * x2;
    const s = fma64(x3, p.s[0], x);
    return f32(fma64(x7, s1, s));
  }
  const x4 = x2 * x2;
  const c2 = fma64(x2, p.c[4], p.c[3]);
  const c1 = fma64(x2, p.c[1], p.c[0]);
  const x6 = x4 * x2;
  const c = fma64(x4, p.c[2], c1);
  return f32(fma64(x6, c2, c));
}

/** reduce_fast: x − n·π/2 with the quadrant n; accurate for |x| ≤ 120. */
function reduceFast(x: number, p: SinCosTable): [number, number] {
  const r = x * p.hpiInv;
  const n = ((Math.trunc(r) | 0) + 0x800000) >> 24;
  return [fma64(-n, p.hpi, x), n];
}

/** glibc sinf (FMA build) for float32 |y| < 120. */
export function sinfGlibc(y: number): number {
  const top = abstop12(y);
  if (top < ABSTOP_PIO4) {
    if (top < ABSTOP_TINY) return y;
    return sinfPoly(y, y * y, TABLES[0], 0);
  }
  if (top >= ABSTOP_120) throw new RangeError(`sinfGlibc: |${y}| ≥ 120 is outside torch's range`);
  const [x, n] = reduceFast(y, TABLES[0]);
  const s = SIGNS[n & 3];
  const p = n & 2 ? TABLES[1] : TABLES[0];
  return sinfPoly(x * s, x * x, p, n);
}

/** glibc cosf (FMA build) for float32 |y| < 120. */
export function cosfGlibc(y: number): number {
  const top = abstop12(y);
  if (top < ABSTOP_PIO4) {
    if (top < ABSTOP_TINY) return 1;
    return sinfPoly(y, y * y, TABLES[0], 1);
  }
  if (top >= ABSTOP_120) throw new RangeError(`cosfGlibc: |${y}| ≥ 120 is outside torch's range`);
  const [x, n] = reduceFast(y, TABLES[0]);
  const s = SIGNS[n & 3];
  const p = n & 2 ? TABLES[1] : TABLES[0];
  return sinfPoly(x * s, x * x, p, n ^ 1);
}
