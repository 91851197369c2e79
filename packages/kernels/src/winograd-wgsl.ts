// The WGSL of the Winograd convolution's two transforms (conv2d-winograd.ts runs them around a batched GEMM).
// Legend: x [B, H, W, C] NHWC (read through an optional nearest 2× upsampling), tiles of m×m outputs
// (tw per row, th rows in this band), n = m + 2, T = n² points ξ; V [T, Mb, C] and Mt [T, Mb, N] with
// Mb = the band's tiles (sample-major, then tile row, then tile column); vectors of VEC (4 or 1) channels.
// - input: one invocation per (tile, channel vector): loads the n×n input patch (zeros outside the
//   padded image), computes Bᵀ d B in f32 and stores its T points to V.
// - output: one invocation per (tile, output-channel vector): loads the T points of Mt, computes
//   Aᵀ M A, and runs conv2d's epilogue (bias, activation, residual, one rounding) on the m×m pixels.
// The transforms are straight-line code generated from the matrices in winograd-weights.ts (zeros
// skipped, ±1 as adds), so the matrices have one source. Memory-bound; the GEMM is the work.
import { prologue, type DType, type UniformLayout } from '@ssd/tensor';
import { activationWgsl, type Activation } from './shader.js';
import { WINOGRAD, type WinogradTile } from './winograd-weights.js';

export interface WinogradInputSpec {
  readonly dtype: DType;
  readonly tile: WinogradTile;
  readonly vec: 1 | 4;
  readonly upsample: 1 | 2;
}

export interface WinogradOutputSpec {
  readonly dtype: DType;
  readonly tile: WinogradTile;
  readonly vec: 1 | 4;
  readonly hasBias: boolean;
  readonly activation: Activation;
  readonly hasResidual: boolean;
}

/** Invocations per workgroup of both transforms. */
export const WINOGRAD_WG = 64;

// Offsets and strides in vectors. ty0: the band's first tile row; iy0: the first source row present
// in the bound window of x; oy0: the first output row present in the bound window of out/residual.
export const WINOGRAD_INPUT_UNIFORMS: UniformLayout = [
  ['count', 'u32'], // invocations: Mb · cv
  ['cv', 'u32'],
  ['tw', 'u32'],
  ['th', 'u32'],
  ['mb', 'u32'],
  ['ty0', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['pad_t', 'i32'],
  ['pad_l', 'i32'],
  ['iy0', 'u32'],
  ['x_off', 'u32'],
  ['x_bs', 'u32'],
];

export const WINOGRAD_OUTPUT_UNIFORMS: UniformLayout = [
  ['count', 'u32'], // invocations: Mb · nv
  ['nv', 'u32'],
  ['tw', 'u32'],
  ['th', 'u32'],
  ['mb', 'u32'],
  ['ty0', 'u32'],
  ['Ho', 'u32'],
  ['Wo', 'u32'],
  ['oy0', 'u32'],
  ['o_off', 'u32'],
  ['r_off', 'u32'],
  ['o_bs', 'u32'],
  ['z0', 'u32'],
  ['bias_bs', 'u32'],
];

/** Σ coeffs[k] · terms[k] as WGSL (zeros skipped, ±1 as a sign), or `LV()` when every coefficient is 0. */
function combo(coeffs: readonly number[], terms: readonly string[]): string {
  let e = '';
  coeffs.forEach((c, k) => {
    if (c === 0) return;
    const mag = Math.abs(c);
    const t = mag === 1 ? terms[k] : `${Number.isInteger(mag) ? mag.toFixed(1) : mag} * ${terms[k]}`;
    e += e === '' ? (c < 0 ? `-${t}` : t) : c < 0 ? ` - ${t}` : ` + ${t}`;
  });
  return e === '' ? 'LV()' : e;
}

/**
 * `let` lines computing out[i][j] = Σ_{a,b} L[i][a] · in[a][b] · L[j][b] (L = Bᵀ or Aᵀ) in two passes,
 * names `${inName}{a}_{b}` → `${outName}{i}_{j}` via `${outName}r{i}_{b}`.
 */
export function sandwich(L: readonly (readonly number[])[], n: number, inName: string, outName: string): string[] {
  const lines: string[] = [];
  const rows = L.length;
  for (let i = 0; i < rows; i++) {
    for (let b = 0; b < n; b++) lines.push(`let ${outName}r${i}_${b} = ${combo(L[i], Array.from({ length: n }, (_, a) => `${inName}${a}_${b}`))};`);
  }
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < rows; j++) lines.push(`let ${outName}${i}_${j} = ${combo(L[j], Array.from({ length: n }, (_, b) => `${outName}r${i}_${b}`))};`);
  }
  return lines;
}

function vecAliases(vec: 1 | 4): string {
  return vec === 4 ? 'alias LV = A4;\nalias SV = S4;\n' : 'alias LV = A;\nalias SV = S;\n';
}

/** Entry point preamble: the invocation index (workgroups folded into y when there are many). */
const MAIN = `@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_workgroup(wid, nwg) * WG + lid;
  if (i >= u.count) { return; }`;

export function winogradInputWgsl(spec: WinogradInputSpec): string {
  const { n, m, BT } = WINOGRAD[spec.tile];
  const loads: string[] = [];
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) loads.push(`let d${a}_${b} = ld(z, iy + ${a}, ix + ${b}, cv);`);
  const stores: string[] = [];
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) stores.push(`v[(${a * n + b}u * u.mb + mi) * u.cv + cv] = SV(t${a}_${b});`);
  return (
    prologue({ dtype: spec.dtype, uniforms: WINOGRAD_INPUT_UNIFORMS, consts: { WG: WINOGRAD_WG, TM: m, UP: spec.upsample } }) +
    vecAliases(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read_write> v: array<SV>;

// the channel vector cv of (upsampled, padded) input pixel (iy, ix) of sample z; zeros outside the image
fn ld(z: u32, iy: i32, ix: i32, cv: u32) -> LV {
  if (iy < 0 || ix < 0 || iy >= i32(u.H * UP) || ix >= i32(u.W * UP)) { return LV(); }
  return LV(x[u.x_off + z * u.x_bs + ((u32(iy) / UP - u.iy0) * u.W + u32(ix) / UP) * u.cv + cv]);
}

${MAIN}
  let cv = i % u.cv;
  let mi = i / u.cv;
  let tx = mi % u.tw;
  let q = mi / u.tw;
  let z = q / u.th;
  let iy = i32((u.ty0 + q % u.th) * TM) - u.pad_t;
  let ix = i32(tx * TM) - u.pad_l;
  ${loads.join('\n  ')}
  ${sandwich(BT, n, 'd', 't').join('\n  ')}
  ${stores.join('\n  ')}
}
`
  );
}

export function winogradOutputWgsl(spec: WinogradOutputSpec): string {
  const { n, m, AT } = WINOGRAD[spec.tile];
  let binding = 0;
  const bind = (name: string, access = 'read') => `@group(0) @binding(${++binding}) var<storage, ${access}> ${name}: array<SV>;\n`;
  let decls = bind('mt');
  if (spec.hasBias) decls += bind('bias');
  if (spec.hasResidual) decls += bind('residual');
  decls += bind('out', 'read_write');
  const loads: string[] = [];
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) loads.push(`let p${a}_${b} = LV(mt[(${a * n + b}u * u.mb + mi) * u.nv + nv]);`);
  const stores: string[] = [];
  for (let a = 0; a < m; a++) for (let b = 0; b < m; b++) stores.push(`put(z, oy + ${a}u, ox + ${b}u, nv, y${a}_${b});`);
  const act = spec.vec === 4 ? 'LV(activate(r.x), activate(r.y), activate(r.z), activate(r.w))' : 'activate(r)';
  return (
    prologue({ dtype: spec.dtype, uniforms: WINOGRAD_OUTPUT_UNIFORMS, consts: { WG: WINOGRAD_WG, TM: m } }) +
    vecAliases(spec.vec) +
    decls +
    activationWgsl(spec.activation) +
    /* wgsl */ `
// conv2d's epilogue for output pixel (oy, ox) of sample z (pixels past the image are dropped)
fn put(z: u32, oy: u32, ox: u32, nv: u32, y: LV) {
  if (oy >= u.Ho || ox >= u.Wo) { return; }
  let o = z * u.o_bs + ((oy - u.oy0) * u.Wo + ox) * u.nv + nv;
  var r = y;${spec.hasBias ? '\n  r += LV(bias[(u.z0 + z) * u.bias_bs + nv]);' : ''}
  r = ${spec.activation === 'none' ? 'r' : act};${spec.hasResidual ? '\n  r += LV(residual[u.r_off + o]);' : ''}
  out[u.o_off + o] = SV(r);
}

${MAIN}
  let nv = i % u.nv;
  let mi = i / u.nv;
  let q = mi / u.tw;
  let z = q / u.th;
  let oy = (u.ty0 + q % u.th) * TM;
  let ox = (mi % u.tw) * TM;
  ${loads.join('\n  ')}
  ${sandwich(AT, n, 'p', 'y').join('\n  ')}
  ${stores.join('\n  ')}
}
`
  );
}
