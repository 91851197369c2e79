// The WGSL of the GEMMs whose weight stays in a ggml block format (QuantizedWeight):
//   out[z, m, n] = act(Σ_k A(z, m, k) · W(n, k) + bias[n]) + residual[z, m, n]
// W is dequantized in the kernel, 32 values (one group: a block, or a K-quant sub-block) at a time,
// from its GGUF bytes (quant-decode-wgsl.ts); no dequantized copy exists outside registers / one
// workgroup tile. Legend as gemm-wgsl.ts: z batch, M rows, N columns (weight rows), K = the weight's
// row length. A is x [M, K] (linear) or, for conv2d, the im2col view of an NHWC image in GGUF's K
// order — k = c·KH·KW + ky·KW + kx (the OIHW row), so every weight value is used where the file puts it.
//
// Variants (as the float GEMM's, same choice): portable and subgroups are the register tiles of
// gemm-wgsl.ts / matmul-subgroup.ts with a K step of 8 values — per column, 8 dequantized values in two
// A4s (the shape of f16's unit, so the FMA code is shared) — and the group's scales read once per 32
// values; tiled stages a dequantized 32 × TILE_N slice of W (and the A slice) in workgroup memory.
// On a CPU driver the FMAs dominate (TILE_M of them per weight value) and decoding adds a few ALU ops
// and loads per 4 weight values, so q8_0 runs near the f16 GEMM; conv2d gathers A element by element
// (channels are not contiguous along GGUF's K), which costs more loads than the float conv's vectors.
// Precision: f16 or f32 activations, f32 dequantization and accumulation, one rounding at the store.
import { prologue, type QuantType } from '@ssd/tensor';
import { epilogueWgsl, GEMM_UNIFORMS, regsDecl, regsFma, regsStore, unitParts, type GemmSpec } from './gemm-wgsl.js';
import { quantDecodeWgsl } from './quant-decode-wgsl.js';
import { activationWgsl } from './shader.js';

/** A GemmSpec plus the weight's block format; `vec` is always 8 (the K step) and `tileK` 32 (tiled). */
export interface QuantizedGemmSpec extends GemmSpec {
  readonly quant: QuantType;
}

function header(spec: QuantizedGemmSpec, consts: Record<string, number>): string {
  const f16 = spec.dtype === 'f16';
  const c = spec.conv;
  let binding = 0;
  const bind = (name: string, type: string, access = 'read') => `@group(0) @binding(${++binding}) var<storage, ${access}> ${name}: array<${type}>;\n`;
  let text = prologue({
    dtype: spec.dtype,
    uniforms: GEMM_UNIFORMS,
    subgroups: spec.variant === 'subgroups',
    consts: { ...consts, ...(c ? { KH: c.kh, KW: c.kw, KK: c.kh * c.kw, STRIDE: c.stride, UP: c.upsample } : {}) },
  });
  // linear reads A in vectors (8 halves per vec4<u32>, or a vec4<f32>); conv2d element by element
  text += bind('a', c ? 'S' : f16 ? 'vec4<u32>' : 'S4') + bind('b', 'u32');
  if (spec.hasBias) text += bind('bias', 'S');
  if (spec.hasResidual) text += bind('residual', 'S');
  text += bind('out', 'S', 'read_write');
  text += activationWgsl(spec.activation) + quantDecodeWgsl(spec.quant) + (c ? convAWgsl() : linearAWgsl(f16)) + epilogueWgsl(spec);
  // the first group of weight row n (rows past N repeat the last one; their outputs are dropped)
  text += 'fn b_group(n: u32) -> u32 { return min(n, u.N - 1u) * u.KV; }\n';
  return text;
}

/** linear: `a_row(z, m)` (element index of row m) and `a_quad(z, m, k)`: elements k … k+3 of it. */
function linearAWgsl(f16: boolean): string {
  const quad = f16
    ? 'let i = a_row(z, m) + k;\n  let w = a[i / 8u];\n  return select(A4(unpack2x16float(w.x), unpack2x16float(w.y)), A4(unpack2x16float(w.z), unpack2x16float(w.w)), (i & 4u) != 0u);'
    : 'return A4(a[(a_row(z, m) + k) / 4u]);';
  return /* wgsl */ `
fn a_row(z: u32, m: u32) -> u32 { return u.a_off + z * u.a_bs + min(m, u.M - 1u) * u.K; }
fn a_quad(z: u32, m: u32, k: u32) -> A4 {
  ${quad}
}
`;
}

/**
 * conv2d in GGUF order: column k of output row m is channel k / KK of tap k % KK. `a_org(m)` is the
 * input coordinate of tap (0, 0) (before the 2× upsampling, which divides it by UP); `a_at(z, y, x, c)`
 * reads one channel of one (upsampled) pixel, zero outside the image.
 */
function convAWgsl(): string {
  return /* wgsl */ `
fn a_org(m: u32) -> vec2<i32> {
  let mm = min(m, u.M - 1u);
  return vec2<i32>(i32((mm / u.Wo + u.oy0) * STRIDE) - u.pad_t, i32((mm % u.Wo) * STRIDE) - u.pad_l);
}
fn a_at(z: u32, y: i32, x: i32, c: u32) -> f32 {
  let inside = y >= 0 && x >= 0 && y < i32(u.H * UP) && x < i32(u.W * UP);
  let i = u.a_off + z * u.a_bs + ((u32(y) / UP - u.iy0) * u.W + u32(x) / UP) * u.C + c;
  return select(0.0, f32(a[select(0u, i, inside)]), inside);
}
fn a_tap(z: u32, o: vec2<i32>, k: u32) -> f32 {
  let t = k % KK;
  return a_at(z, o.x + i32(t / KW), o.y + i32(t % KW), k / KK);
}
fn a_quad(z: u32, m: u32, k: u32) -> A4 {
  let o = a_org(m);
  return A4(a_tap(z, o, k), a_tap(z, o, k + 1u), a_tap(z, o, k + 2u), a_tap(z, o, k + 3u));
}
`;
}

// ---------------------------------------------------------------- register tiles (portable, subgroups)

/**
 * Statements loading 8 values of A row `row` at K offset 32·g + 8·s into `<x>l`, `<x>h` (A4 each).
 * linear: one vec4<u32> (f16) or two vec4<f32> at the row's precomputed vector index `ao<r>`;
 * conv2d: eight gathers at the row's tap-(0, 0) coordinate `org<r>` (the step's channels and taps
 * `kc<t>`, `ky<t>`, `kx<t>` are shared by every row).
 */
function loadA(spec: QuantizedGemmSpec, r: number, x: string): string {
  if (spec.conv) {
    const e = (t: number) => `a_at(z, org${r}.x + ky${t}, org${r}.y + kx${t}, kc${t})`;
    return `let ${x}l = A4(${[0, 1, 2, 3].map(e).join(', ')}); let ${x}h = A4(${[4, 5, 6, 7].map(e).join(', ')});`;
  }
  if (spec.dtype === 'f16') return `let ${x}w = a[ao${r} + 4u * g + s]; let ${x}l = A4(unpack2x16float(${x}w.x), unpack2x16float(${x}w.y)); let ${x}h = A4(unpack2x16float(${x}w.z), unpack2x16float(${x}w.w));`;
  return `let ${x}l = A4(a[ao${r} + 8u * g + 2u * s]); let ${x}h = A4(a[ao${r} + 8u * g + 2u * s + 1u]);`;
}

/** Per-row set-up before the K loop: the vector index of the row (linear) or its tap-(0, 0) coordinate (conv2d). */
function rowSetup(spec: QuantizedGemmSpec, r: number, m: string): string {
  if (spec.conv) return `let org${r} = a_org(${m});`;
  return `let ao${r} = a_row(z, ${m}) / ${spec.dtype === 'f16' ? 8 : 4}u;`;
}

/** conv2d: the channel and tap offsets of the step's 8 values (k = 32·g + 8·s + t). */
function convStepSetup(spec: QuantizedGemmSpec): string {
  if (!spec.conv) return '';
  return Array.from({ length: 8 }, (_, t) => `let k${t} = 32u * g + 8u * s + ${t}u; let kc${t} = k${t} / KK; let ky${t} = i32((k${t} % KK) / KW); let kx${t} = i32(k${t} % KW);`).join('\n        ');
}

/**
 * The portable (every lane loads its TILE_M rows) or subgroup (lane l loads rows l + LANES·r and the
 * others take them by subgroupBroadcast) register-tiled quantized GEMM.
 */
export function quantizedRegisterWgsl(spec: QuantizedGemmSpec): string {
  const { tileM, tileN, lanes } = spec;
  const sub = spec.variant === 'subgroups';
  if (sub && tileM % lanes !== 0) throw new RangeError(`quantized subgroup GEMM: tileM ${tileM} must be a multiple of the lanes ${lanes}`);
  const head = header(spec, { LANES: lanes, TILE_M: tileM, TILE_N: tileN });
  const cols = Array.from({ length: tileN }, (_, j) => j);
  const loaded = Array.from({ length: sub ? tileM / lanes : tileM }, (_, r) => r);
  const rowOf = (r: number) => (sub ? `m0 + lid + ${r}u * LANES` : `m0 + ${r}u`);

  const setup = [...cols.map((j) => `let bg${j} = b_group(n0 + ${j}u * LANES);`), ...loaded.map((r) => rowSetup(spec, r, rowOf(r)))].join('\n    ');
  const heads = cols.map((j) => `let h${j} = qhead(bg${j} + g);`).join('\n      ');
  const bvals = cols.map((j) => `let bv${j} = qoct(h${j}, s); let bv${j}l = bv${j}.l; let bv${j}h = bv${j}.h;`).join('\n        ');
  const aloads = loaded.map((r) => loadA(spec, r, `ar${r}`)).join('\n        ');
  const fmas: string[] = [];
  for (let i = 0; i < tileM; i++) {
    if (!sub) {
      fmas.push(regsFma(spec, i, unitParts(spec, `ar${i}`), tileN));
      continue;
    }
    const r = Math.floor(i / lanes);
    const l = i % lanes;
    const parts = unitParts(spec, `ar${r}`).map((p, q) => {
      fmas.push(`let s${i}_${q} = subgroupBroadcast(${p}, ${l}u);`);
      return `s${i}_${q}`;
    });
    fmas.push(regsFma(spec, i, parts, tileN));
  }
  const tile = `${setup}
    ${regsDecl(tileM, tileN).replace(/\n {2}/g, '\n    ')}
    for (var g = 0u; g < u.KV; g++) {
      ${heads}
      for (var s = 0u; s < 4u; s++) {
        ${convStepSetup(spec)}
        ${bvals}
        ${aloads}
        ${fmas.join('\n        ')}
      }
    }
    ${regsStore(tileM, tileN).replace(/\n {2}/g, '\n    ')}`;

  if (!sub) {
    return `${head}
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let z = wid.z;
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * (LANES * TILE_N) + lid;
  {
    ${tile}
  }
}
`;
  }
  return `${head}
// oneSubgroup is uniform in fact (see matmul-subgroup.ts), which the uniformity analysis cannot know
@diagnostic(off, subgroup_uniformity)
@compute @workgroup_size(LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
        @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) ssize: u32) {
  let z = wid.z;
  let m0 = wid.y * TILE_M;
  let n0 = wid.x * (LANES * TILE_N) + lid;
  // the broadcasts need this workgroup to be one subgroup whose lane i is invocation i
  let oneSubgroup = ssize >= LANES && subgroupAll(sid == lid);
  if (oneSubgroup) {
    ${tile}
  } else {
    // another subgroup size: the same outputs, every lane reading A itself
    for (var t = 0u; t < TILE_M * TILE_N; t++) {
      let m = m0 + t / TILE_N;
      let n = n0 + (t % TILE_N) * LANES;
      let bg = b_group(n);
      var acc = 0.0;
      for (var g = 0u; g < u.KV; g++) {
        let h = qhead(bg + g);
        for (var q = 0u; q < 8u; q++) { acc += dot(a_quad(z, m, 32u * g + 4u * q), qquad(h, q)); }
      }
      finish(z, m, n, acc);
    }
  }
}
`;
}

// ---------------------------------------------------------------- tiled variant (GPUs)

/**
 * Workgroup-memory tiling: per group of 32 K values, the workgroup stages A (TILE_M × 32) and the
 * dequantized W (TILE_N × 32) k-major, then each of its (TILE_M/4)·(TILE_N/4) invocations accumulates
 * 4×4 outputs from them (as tiledWgsl in gemm-wgsl.ts, with a K stage of one group).
 */
export function quantizedTiledWgsl(spec: QuantizedGemmSpec): string {
  const tx = spec.tileN / 4;
  const ty = spec.tileM / 4;
  const head = header(spec, { TILE_M: spec.tileM, TILE_N: spec.tileN, TX: tx, TY: ty, THREADS: tx * ty });
  return `${head}
var<workgroup> sa: array<f32, 32 * TILE_M>; // [k][m]
var<workgroup> sb: array<f32, 32 * TILE_N>; // [k][n]

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
  for (var g = 0u; g < u.KV; g++) {
    for (var t = lid; t < 8u * TILE_M; t += THREADS) {
      let r = t / 8u;
      let q = t % 8u;
      let v = a_quad(z, m0 + r, 32u * g + 4u * q);
      for (var c = 0u; c < 4u; c++) { sa[(4u * q + c) * TILE_M + r] = v[c]; }
    }
    for (var t = lid; t < 8u * TILE_N; t += THREADS) {
      let r = t / 8u;
      let q = t % 8u;
      let v = qquad(qhead(b_group(n0 + r) + g), q);
      for (var c = 0u; c < 4u; c++) { sb[(4u * q + c) * TILE_N + r] = v[c]; }
    }
    workgroupBarrier();
    for (var k = 0u; k < 32u; k++) {
      let i = k * TILE_M + tm * 4u;
      let j = k * TILE_N + tn * 4u;
      let bv = A4(sb[j], sb[j + 1u], sb[j + 2u], sb[j + 3u]);
      acc0 = fma(A4(sa[i]), bv, acc0);
      acc1 = fma(A4(sa[i + 1u]), bv, acc1);
      acc2 = fma(A4(sa[i + 2u]), bv, acc2);
      acc3 = fma(A4(sa[i + 3u]), bv, acc3);
    }
    workgroupBarrier();
  }
  var rows = array<A4, 4>(acc0, acc1, acc2, acc3);
  // a trip count the compiler cannot see keeps the epilogue rolled (see tiledWgsl)
  let stores = select(16u, 0u, u.M == 0u);
  for (var t = 0u; t < stores; t++) { finish(z, m0 + tm * 4u + t / 4u, n0 + tn * 4u + t % 4u, rows[t / 4u][t % 4u]); }
}
`;
}
