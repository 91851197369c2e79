// The WGSL of every GEMM kernel (matmul, linear, conv2d as an implicit GEMM):
//   out[z, m, n] = act(Σ_k A(z, m, k) · B(z, n, k) + bias[n]) + residual[z, m, n]
// Legend: z = batch, M rows, N columns, K reduction; A is x ([M, K] rows, or the im2col view of an
// NHWC image for conv2d), B is the weight in PyTorch Linear layout [N, K] (K contiguous). V = elements
// per load along K: 4 (a vec4), 8 (f16 only: eight halves packed in a vec4<u32>) or 1 (K % 4 ≠ 0).
//
// Three variants share the operand helpers and the epilogue written here:
// - portable (register-blocked, no workgroup memory): LANES invocations per workgroup, lanes over
//   columns; each invocation owns TILE_M rows × TILE_N columns (n0 + lane + LANES·j) of accumulators
//   and streams K through registers with V-wide loads. Every A value is re-read by every lane.
// - subgroups (gemm-subgroup.ts): the same register tile, but each lane loads 1/LANES of the A rows
//   and the others get them with subgroupBroadcast.
// - tiled (the classic GPU kernel): 64×64 output tile per workgroup of 256, a K step of 16 staged in
//   workgroup memory, 4×4 outputs per invocation.
// Why register blocking wins on CPU drivers: lavapipe runs 8 invocations as one SIMD batch and turns
// every storage load whose address is not a compile-time constant into 8 scalar loads, each with a
// bounds check and branches (~40 x86 instructions per lane for a vec4), while an FMA is two vector
// instructions (mul + add) for all 8 lanes. Loads per FMA is the whole game: a TILE_M×TILE_N tile needs
// (TILE_M + TILE_N) loads per 4·TILE_M·TILE_N FMAs (portable) or (TILE_M/LANES + TILE_N) (subgroups).
// Workgroup memory does not help there: its loads are scalarised too. f16 loads eight halves per
// vec4<u32> (V = 8), half the load instructions of a vec4<f16>. Past ~128 accumulators per lane the
// loop body outgrows the instruction cache and LLVM's compile time doubles for no gain; see
// bench/kernels-dev/gemm.ts for the measurements.
//
// The register tile is unrolled here in TypeScript (the `regs*` helpers): WGSL needs a const lane
// index for subgroupBroadcast, and lavapipe keeps a private array that is indexed by a loop variable
// in memory, so the tile must be straight-line code with one variable per accumulator.
// Precision: f16 or f32 storage, f32 accumulation, epilogue in f32, one rounding at the store.
import { prologue, type UniformLayout } from '@ssd/tensor';
import { activationWgsl, type Activation } from './shader.js';

export type GemmVariant = 'portable' | 'subgroups' | 'tiled';

/** Compile-time part of a convolution (everything else travels as uniforms). */
export interface ConvGeometry {
  readonly kh: number;
  readonly kw: number;
  readonly stride: 1 | 2;
  readonly upsample: 1 | 2;
}

/** Everything that changes the WGSL of a GEMM kernel; the pipeline cache key is derived from all of it. */
export interface GemmSpec {
  readonly variant: GemmVariant;
  readonly dtype: 'f32' | 'f16';
  /** Elements per A/B load along K (8: f16 packed in vec4<u32>, register-blocked variants only). */
  readonly vec: 1 | 4 | 8;
  /** portable/subgroups: rows per workgroup; tiled: rows per workgroup (64 or 32). */
  readonly tileM: number;
  /** portable/subgroups: columns per invocation; tiled: columns per workgroup. */
  readonly tileN: number;
  /** portable/subgroups: invocations per workgroup (subgroups: the subgroup size it is built for). */
  readonly lanes: number;
  /** tiled: K per workgroup-memory stage (a multiple of 4); 0 for the register-blocked variants. */
  readonly tileK: number;
  readonly conv: ConvGeometry | null;
  readonly hasBias: boolean;
  readonly activation: Activation;
  readonly hasResidual: boolean;
}

/**
 * Uniforms of every GEMM kernel. Offsets and strides are in elements. A, out and residual may be
 * bound as windows (a dispatch per chunk of rows when a tensor exceeds maxStorageBufferBindingSize):
 * *_off is where the chunk starts inside the bound window; B and bias are always bound whole.
 */
export const GEMM_UNIFORMS: UniformLayout = [
  ['M', 'u32'], // rows of this dispatch (per batch)
  ['N', 'u32'],
  ['K', 'u32'],
  ['KV', 'u32'], // matmul loop trip count: K / V (register-blocked variants) or ceil(K / 4) (tiled)
  ['a_off', 'u32'],
  ['a_bs', 'u32'], // A batch stride (0: A shared by every batch)
  ['b_bs', 'u32'], // B batch stride (0: shared weight)
  ['o_off', 'u32'],
  ['r_off', 'u32'],
  ['o_bs', 'u32'], // out / residual batch stride
  ['bias_bs', 'u32'], // 0: one bias row; N: a bias row per batch (conv2d's per-sample bias)
  ['z0', 'u32'], // global index of this dispatch's first batch (B and bias are indexed globally)
  // conv2d only (zero otherwise): input H, W, C; output width; padding; the chunk's first output row
  // and the first input row present in the bound window of x
  ['H', 'u32'],
  ['W', 'u32'],
  ['C', 'u32'],
  ['Wo', 'u32'],
  ['pad_t', 'i32'],
  ['pad_l', 'i32'],
  ['oy0', 'u32'],
  ['iy0', 'u32'],
];

/** Prologue, bindings, activation, operand helpers and the epilogue shared by all variants. */
export function gemmHeader(spec: GemmSpec, consts: Record<string, number>): string {
  const packed = spec.vec === 8;
  const aType = packed ? 'vec4<u32>' : spec.vec === 4 ? 'S4' : 'S';
  let binding = 0;
  const bind = (name: string, type: string, access = 'read') => `@group(0) @binding(${++binding}) var<storage, ${access}> ${name}: array<${type}>;\n`;
  let text = prologue({
    dtype: spec.dtype,
    uniforms: GEMM_UNIFORMS,
    subgroups: spec.variant === 'subgroups',
    consts: { V: spec.vec, ...consts, ...(spec.conv ? { KH: spec.conv.kh, KW: spec.conv.kw, STRIDE: spec.conv.stride, UP: spec.conv.upsample } : {}) },
  });
  text += bind('a', aType) + bind('b', aType);
  if (spec.hasBias) text += bind('bias', 'S');
  if (spec.hasResidual) text += bind('residual', 'S');
  text += bind('out', 'S', 'read_write');
  text += activationWgsl(spec.activation);
  text += loadWgsl(spec) + (spec.conv ? convAddressWgsl() : matmulAddressWgsl()) + generic4Wgsl(spec) + epilogueWgsl(spec);
  return text;
}

/** `ld_a(i)` / `ld_b(i)`: one load unit (V elements) at load-unit index i (f32, A4, or raw halves for V = 8). */
function loadWgsl(spec: GemmSpec): string {
  if (spec.vec === 8) {
    return /* wgsl */ `
alias LV = vec4<u32>;
fn lo4(w: vec4<u32>) -> A4 { return A4(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn hi4(w: vec4<u32>) -> A4 { return A4(unpack2x16float(w.z), unpack2x16float(w.w)); }
fn ld_a(i: u32) -> LV { return a[i]; }
fn ld_b(i: u32) -> LV { return b[i]; }
fn zero_lv() -> LV { return LV(); }
`;
  }
  const lv = spec.vec === 4 ? 'A4' : 'A';
  return /* wgsl */ `
alias LV = ${lv};
fn ld_a(i: u32) -> LV { return LV(a[i]); }
fn ld_b(i: u32) -> LV { return LV(b[i]); }
fn zero_lv() -> LV { return LV(); }
`;
}

/** matmul: element index of A row m (of batch z) and of B row n. */
function matmulAddressWgsl(): string {
  return /* wgsl */ `
fn a_row(z: u32, m: u32) -> u32 { return u.a_off + z * u.a_bs + min(m, u.M - 1u) * u.K; }
fn b_row(z: u32, n: u32) -> u32 { return (u.z0 + z) * u.b_bs + min(n, u.N - 1u) * u.K; }
`;
}

/**
 * conv2d: output row m = (oy, ox) reads input pixel (oy·STRIDE + ky − pad_t, ox·STRIDE + kx − pad_l)
 * of the (optionally 2× nearest-upsampled) image for tap (ky, kx); outside the image it reads zeros.
 * `pix(z, m, tap)` gives the element index of that pixel's channel 0, or PAD for padding.
 */
function convAddressWgsl(): string {
  return /* wgsl */ `
const PAD = 0xffffffffu;
fn pix(z: u32, m: u32, tap: u32) -> u32 {
  let mm = min(m, u.M - 1u);
  let oy = mm / u.Wo + u.oy0;
  let ox = mm % u.Wo;
  let iy = i32(oy * STRIDE + tap / KW) - u.pad_t;
  let ix = i32(ox * STRIDE + tap % KW) - u.pad_l;
  if (iy < 0 || ix < 0 || iy >= i32(u.H * UP) || ix >= i32(u.W * UP)) { return PAD; }
  return u.a_off + z * u.a_bs + ((u32(iy) / UP - u.iy0) * u.W + u32(ix) / UP) * u.C;
}
fn b_row(z: u32, n: u32) -> u32 { return (u.z0 + z) * u.b_bs + min(n, u.N - 1u) * u.K; }
`;
}

/**
 * `load_a4(z, m, q)` / `load_b4(z, n, q)`: elements 4q..4q+3 of row m of A / row n of B as an A4
 * (zeros past K and in conv padding), for any V. Used by the tiled kernel and the subgroup fallback.
 */
function generic4Wgsl(spec: GemmSpec): string {
  // one element of A or B at element index i, whatever the binding's vector type
  const elem =
    spec.vec === 8
      ? 'fn a_elem(i: u32) -> f32 { let w = a[i / 8u]; let h = (i / 2u) % 4u; return unpack2x16float(w[h])[i % 2u]; }\nfn b_elem(i: u32) -> f32 { let w = b[i / 8u]; let h = (i / 2u) % 4u; return unpack2x16float(w[h])[i % 2u]; }'
      : spec.vec === 4
        ? 'fn a_elem(i: u32) -> f32 { return f32(a[i / 4u][i % 4u]); }\nfn b_elem(i: u32) -> f32 { return f32(b[i / 4u][i % 4u]); }'
        : 'fn a_elem(i: u32) -> f32 { return f32(a[i]); }\nfn b_elem(i: u32) -> f32 { return f32(b[i]); }';
  // a group of 4 elements at an index that is a multiple of 4 (always true when V ≥ 4)
  const quad =
    spec.vec === 8
      ? 'fn a_quad(i: u32) -> A4 { let w = a[i / 8u]; return select(lo4(w), hi4(w), i % 8u == 4u); }\nfn b_quad(i: u32) -> A4 { let w = b[i / 8u]; return select(lo4(w), hi4(w), i % 8u == 4u); }'
      : spec.vec === 4
        ? 'fn a_quad(i: u32) -> A4 { return A4(a[i / 4u]); }\nfn b_quad(i: u32) -> A4 { return A4(b[i / 4u]); }'
        : 'fn a_quad(i: u32) -> A4 { return A4(a_elem(i), a_elem(i + 1u), a_elem(i + 2u), a_elem(i + 3u)); }\nfn b_quad(i: u32) -> A4 { return A4(b_elem(i), b_elem(i + 1u), b_elem(i + 2u), b_elem(i + 3u)); }';
  const vecK = spec.vec !== 1; // K (matmul) or C (conv) is a multiple of 4
  const loadB = vecK
    ? 'if (4u * q >= u.K) { return A4(); }\n  return b_quad(b_row(z, n) + 4u * q);'
    : 'var v = A4();\n  let r = b_row(z, n);\n  for (var c = 0u; c < 4u; c++) { let k = 4u * q + c; if (k < u.K) { v[c] = b_elem(r + k); } }\n  return v;';
  let loadA: string;
  if (!spec.conv) {
    loadA = vecK
      ? 'if (4u * q >= u.K) { return A4(); }\n  return a_quad(a_row(z, m) + 4u * q);'
      : 'var v = A4();\n  let r = a_row(z, m);\n  for (var c = 0u; c < 4u; c++) { let k = 4u * q + c; if (k < u.K) { v[c] = a_elem(r + k); } }\n  return v;';
  } else {
    loadA = vecK
      ? 'let k = 4u * q;\n  if (k >= u.K) { return A4(); }\n  let p = pix(z, m, k / u.C);\n  if (p == PAD) { return A4(); }\n  return a_quad(p + k % u.C);'
      : 'var v = A4();\n  for (var c = 0u; c < 4u; c++) {\n    let k = 4u * q + c;\n    if (k < u.K) { let p = pix(z, m, k / u.C); if (p != PAD) { v[c] = a_elem(p + k % u.C); } }\n  }\n  return v;';
  }
  return `${elem}\n${quad}\nfn load_a4(z: u32, m: u32, q: u32) -> A4 {\n  ${loadA}\n}\nfn load_b4(z: u32, n: u32, q: u32) -> A4 {\n  ${loadB}\n}\n`;
}

/** `finish(z, m, n, acc)`: bias, activation, residual, one rounding to S, store (rows/cols past the edge are dropped). */
export function epilogueWgsl(spec: Pick<GemmSpec, 'hasBias' | 'hasResidual'>): string {
  const bias = spec.hasBias ? '\n  v += f32(bias[(u.z0 + z) * u.bias_bs + n]);' : '';
  const res = spec.hasResidual ? '\n  v += f32(residual[u.r_off + z * u.o_bs + m * u.N + n]);' : '';
  return /* wgsl */ `
fn finish(z: u32, m: u32, n: u32, acc: f32) {
  if (m >= u.M || n >= u.N) { return; }
  var v = acc;${bias}
  v = activate(v);${res}
  out[u.o_off + z * u.o_bs + m * u.N + n] = S(v);
}
`;
}

// ---------------------------------------------------------------- register tile (unrolled)

/** Names of the f32 vectors (or scalars for V = 1) one load unit of operand `x` row r expands to. */
export function unitParts(spec: GemmSpec, x: string): string[] {
  return spec.vec === 8 ? [`${x}l`, `${x}h`] : [x];
}

/** `let` statements expanding a loaded unit (named `raw`) into its f32 parts (see unitParts). */
export function expandUnit(spec: GemmSpec, x: string, raw: string): string {
  return spec.vec === 8 ? `let ${x}l = lo4(${raw}); let ${x}h = hi4(${raw});` : `let ${x} = ${raw};`;
}

/** The components of one part (x, y, z, w of an A4; the scalar itself for V = 1). */
export function comps(spec: GemmSpec, part: string): string[] {
  return spec.vec === 1 ? [part] : ['x', 'y', 'z', 'w'].map((c) => `${part}.${c}`);
}

/** Accumulator declarations c{i}_{j} = 0. */
export function regsDecl(tileM: number, tileN: number): string {
  const lines: string[] = [];
  for (let i = 0; i < tileM; i++) lines.push(Array.from({ length: tileN }, (_, j) => `var c${i}_${j} = 0.0;`).join(' '));
  return lines.join('\n  ');
}

/**
 * The stores: the accumulators go to a private array and one rolled loop runs the epilogue, so the
 * epilogue is compiled once rather than TILE_M·TILE_N times (lavapipe's LLVM time grows with code
 * size); the trip count is hidden from the unroller (select on a uniform) for the same reason.
 */
export function regsStore(tileM: number, tileN: number): string {
  const lines: string[] = [`var acc: array<f32, ${tileM * tileN}>;`];
  for (let i = 0; i < tileM; i++) lines.push(Array.from({ length: tileN }, (_, j) => `acc[${i * tileN + j}] = c${i}_${j};`).join(' '));
  lines.push(`let stores = select(${tileM * tileN}u, 0u, u.M == 0u);`);
  lines.push(`for (var t = 0u; t < stores; t++) { finish(z, m0 + t / ${tileN}u, n0 + (t % ${tileN}u) * LANES, acc[t]); }`);
  return lines.join('\n  ');
}

/**
 * FMAs of one K step for row i: the f32 parts of row i's A unit (aParts) times every column's B parts
 * (`bv{j}` expanded by expandUnit), chained per accumulator so each stays in a register.
 */
export function regsFma(spec: GemmSpec, i: number, aParts: string[], tileN: number): string {
  const lines: string[] = [];
  for (let j = 0; j < tileN; j++) {
    const bParts = unitParts(spec, `bv${j}`);
    let e = `c${i}_${j}`;
    aParts.forEach((ap, p) => {
      const ac = comps(spec, ap);
      const bc = comps(spec, bParts[p]);
      ac.forEach((x, c) => (e = `fma(${x}, ${bc[c]}, ${e})`));
    });
    lines.push(`c${i}_${j} = ${e};`);
  }
  return lines.join('\n      ');
}

/** B loads of one K step: column j's unit at b_row offset `bo{j}` + `step`. */
export function regsLoadB(spec: GemmSpec, tileN: number, step: string): string {
  return Array.from({ length: tileN }, (_, j) => expandUnit(spec, `bv${j}`, `ld_b(bo${j} + ${step})`)).join('\n      ');
}

/** Load-unit offsets of the B rows (output columns) this invocation reads: bo{j}. */
export function regsBOffsets(tileN: number): string {
  return Array.from({ length: tileN }, (_, j) => `let bo${j} = b_row(z, n0 + ${j}u * LANES) / V;`).join('\n  ');
}

// ---------------------------------------------------------------- portable variant

/** The portable register-blocked kernel (see the header). */
export function portableWgsl(spec: GemmSpec): string {
  const { tileM, tileN } = spec;
  const head = gemmHeader(spec, { LANES: spec.lanes, TILE_M: tileM, TILE_N: tileN });
  const rows = Array.from({ length: tileM }, (_, i) => i);
  let loop: string;
  if (!spec.conv) {
    const aOff = rows.map((i) => `let ao${i} = a_row(z, m0 + ${i}u) / V;`).join('\n  ');
    const body = rows.map((i) => `${expandUnit(spec, `av${i}`, `ld_a(ao${i} + k)`)}\n      ${regsFma(spec, i, unitParts(spec, `av${i}`), tileN)}`).join('\n      ');
    loop = `${aOff}
  for (var k = 0u; k < u.KV; k++) {
      ${regsLoadB(spec, tileN, 'k')}
      ${body}
  }`;
  } else {
    // per tap: each row's pixel (or padding), then the channels of that pixel
    const pix = rows.map((i) => `let p${i} = pix(z, m0 + ${i}u, tap); let ok${i} = p${i} != PAD; let ao${i} = select(0u, p${i}, ok${i}) / V;`).join('\n    ');
    const body = rows
      .map((i) => `${expandUnit(spec, `av${i}`, `select(zero_lv(), ld_a(ao${i} + c), ok${i})`)}\n      ${regsFma(spec, i, unitParts(spec, `av${i}`), tileN)}`)
      .join('\n      ');
    loop = `let cv = u.C / V;
  for (var tap = 0u; tap < KH * KW; tap++) {
    ${pix}
    let bt = tap * cv;
    for (var c = 0u; c < cv; c++) {
      ${regsLoadB(spec, tileN, 'bt + c')}
      ${body}
    }
  }`;
  }
  return `${head}
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let z = wid.z;
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * (LANES * TILE_N) + lid;
  ${regsBOffsets(tileN)}
  ${regsDecl(tileM, tileN)}
  ${loop}
  ${regsStore(tileM, tileN)}
}
`;
}

// ---------------------------------------------------------------- tiled variant (GPUs)

/**
 * Workgroup-memory tiling for GPUs: a TILE_M × TILE_N output tile per workgroup of
 * (TILE_M/4)·(TILE_N/4) invocations, each owning 4×4 outputs; K advances BK (16) at a time, the A and B
 * slices stored k-major in workgroup memory so the inner loop reads 4 consecutive rows (columns) of
 * one k — neighbouring invocations read neighbouring words.
 */
export function tiledWgsl(spec: GemmSpec): string {
  const tx = spec.tileN / 4;
  const ty = spec.tileM / 4;
  const head = gemmHeader(spec, { TILE_M: spec.tileM, TILE_N: spec.tileN, TX: tx, TY: ty, THREADS: tx * ty, BK: spec.tileK, BQ: spec.tileK / 4 });
  return `${head}
var<workgroup> sa: array<f32, BK * TILE_M>; // [k][m]
var<workgroup> sb: array<f32, BK * TILE_N>; // [k][n]

fn quad_a(i: u32) -> A4 { return A4(sa[i], sa[i + 1u], sa[i + 2u], sa[i + 3u]); }
fn quad_b(i: u32) -> A4 { return A4(sb[i], sb[i + 1u], sb[i + 2u], sb[i + 3u]); }

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let z = wid.z;
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * TILE_N;
  let tn = lid % TX;
  let tm = lid / TX;
  var acc0 = A4();
  var acc1 = A4();
  var acc2 = A4();
  var acc3 = A4();
  for (var q0 = 0u; q0 < u.KV; q0 += BQ) {
    // stage BK k of TILE_M rows of A and TILE_N rows of B, transposed to k-major
    for (var t = lid; t < BQ * TILE_M; t += THREADS) {
      let r = t / BQ;
      let k = (t % BQ) * 4u;
      let v = load_a4(z, m0 + r, q0 + t % BQ);
      sa[k * TILE_M + r] = v.x;
      sa[(k + 1u) * TILE_M + r] = v.y;
      sa[(k + 2u) * TILE_M + r] = v.z;
      sa[(k + 3u) * TILE_M + r] = v.w;
    }
    for (var t = lid; t < BQ * TILE_N; t += THREADS) {
      let r = t / BQ;
      let k = (t % BQ) * 4u;
      let v = load_b4(z, n0 + r, q0 + t % BQ);
      sb[k * TILE_N + r] = v.x;
      sb[(k + 1u) * TILE_N + r] = v.y;
      sb[(k + 2u) * TILE_N + r] = v.z;
      sb[(k + 3u) * TILE_N + r] = v.w;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      let av = quad_a(k * TILE_M + tm * 4u);
      let bv = quad_b(k * TILE_N + tn * 4u);
      acc0 = fma(A4(av.x), bv, acc0);
      acc1 = fma(A4(av.y), bv, acc1);
      acc2 = fma(A4(av.z), bv, acc2);
      acc3 = fma(A4(av.w), bv, acc3);
    }
    workgroupBarrier();
  }
  var rows = array<A4, 4>(acc0, acc1, acc2, acc3);
  // 16 stores; a trip count the compiler cannot see keeps the epilogue rolled (compiled once: on a
  // CPU driver 16 inlined copies cost more compile time than this kernel's whole K loop)
  let stores = select(16u, 0u, u.M == 0u);
  for (var t = 0u; t < stores; t++) { finish(z, m0 + tm * 4u + t / 4u, n0 + tn * 4u + t % 4u, rows[t / 4u][t % 4u]); }
}
`;
}
