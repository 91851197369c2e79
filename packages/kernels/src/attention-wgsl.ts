// The WGSL of both attention kernels (the math, legend and variants are described in attention.ts):
// the spec, the uniform struct, the header both variants use (prologue, bindings, row addresses, K/V
// load units, the partial-score exchange) and the portable workgroup-memory algorithm, which the
// subgroup kernel (attention-subgroup.ts) falls back to. Here, not in attention.ts, so that the op
// imports both kernels and neither kernel imports the op.
import { prologue, type UniformLayout } from '@ssd/tensor';

export type AttentionVariant = 'portable' | 'subgroups';

/** Everything that changes the WGSL; the pipeline cache key is derived from all of it. */
export interface AttentionSpec {
  readonly variant: AttentionVariant;
  readonly dtype: 'f32' | 'f16';
  /** D, and its split: P parts of DC = D/P channels, one part per group of LANES invocations. */
  readonly headDim: number;
  readonly parts: number;
  readonly lanes: number;
  /** R: query rows per invocation (a workgroup covers R·LANES rows). */
  readonly rows: number;
  /** KB: keys per block (subgroups: = lanes, one key per lane; portable: the workgroup-memory tile). */
  readonly keyBlock: number;
  /** Elements per Q/K/V load: 1, 4 (vec4) or 8 (f16 packed in vec4<u32>). */
  readonly vec: 1 | 4 | 8;
  /**
   * The tile loops of attend_tiles run to uniforms instead of constants. lavapipe unrolls constant
   * loops and scalarises each workgroup-memory load in them into per-lane branches, which took LLVM
   * minutes for small head dims; GPU compilers want the constants to keep the tile in registers.
   */
  readonly dynamicLoops: boolean;
}

export const ATTENTION_UNIFORMS: UniformLayout = [
  ['nq', 'u32'],
  ['nk', 'u32'],
  ['heads', 'u32'],
  ['tiles', 'u32'], // row tiles per (batch, head)
  ['groups', 'u32'], // B · heads · tiles
  ['q_stride', 'u32'],
  ['k_stride', 'u32'],
  ['v_stride', 'u32'],
  ['q_off', 'u32'],
  ['k_off', 'u32'],
  ['v_off', 'u32'],
  ['scale', 'f32'], // scale · log2(e)
  ['causal', 'u32'], // a uniform, not a constant: CLIP and the UNet share one pipeline per head dim
  ['dc', 'u32'], // DC and KT again, as loop bounds the compiler cannot unroll (spec.dynamicLoops)
  ['kt', 'u32'],
  ['parts', 'u32'],
];

/** Prologue, bindings and the helpers both variants use: row addresses, K/V load units, the store. */
export function attentionHeader(spec: AttentionSpec): string {
  const DC = spec.headDim / spec.parts;
  const kt = tileKeys(spec);
  const unit = spec.vec === 8 ? 'vec4<u32>' : spec.vec === 4 ? 'S4' : 'S';
  const load =
    spec.vec === 8
      ? `fn lo4(w: vec4<u32>) -> A4 { return A4(unpack2x16float(w.x), unpack2x16float(w.y)); }
fn hi4(w: vec4<u32>) -> A4 { return A4(unpack2x16float(w.z), unpack2x16float(w.w)); }
fn q_elem(i: u32) -> A { let w = q[i / 8u]; return unpack2x16float(w[(i / 2u) % 4u])[i % 2u]; }
fn k_elem(i: u32) -> A { let w = k[i / 8u]; return unpack2x16float(w[(i / 2u) % 4u])[i % 2u]; }
fn v_elem(i: u32) -> A { let w = v[i / 8u]; return unpack2x16float(w[(i / 2u) % 4u])[i % 2u]; }`
      : spec.vec === 4
        ? ['q', 'k', 'v'].map((b) => `fn ${b}_elem(i: u32) -> A { return A(${b}[i / 4u][i % 4u]); }`).join('\n')
        : ['q', 'k', 'v'].map((b) => `fn ${b}_elem(i: u32) -> A { return A(${b}[i]); }`).join('\n');
  return (
    prologue({
      dtype: spec.dtype,
      uniforms: ATTENTION_UNIFORMS,
      subgroups: spec.variant === 'subgroups',
      consts: { D: spec.headDim, P: spec.parts, DC, LANES: spec.lanes, R: spec.rows, KB: spec.keyBlock, KT: kt, PARTIAL: partialSize(spec, kt), V: spec.vec, WG: spec.parts * spec.lanes, TILE: spec.rows * spec.lanes, DYNAMIC: spec.dynamicLoops },
    }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> q: array<${unit}>;
@group(0) @binding(2) var<storage, read> k: array<${unit}>;
@group(0) @binding(3) var<storage, read> v: array<${unit}>;
@group(0) @binding(4) var<storage, read_write> out: array<S>;

const NEG: f32 = -1.0e30;
${load}
// where this workgroup works: batch b, head h, first row
struct Work { b: u32, h: u32, row0: u32, kend: u32 }
fn work_of(g: u32) -> Work {
  let bh = g / u.tiles;
  let row0 = (g % u.tiles) * TILE;
  // causal: rows < row0 + TILE see no key past them
  let kend = select(u.nk, min(u.nk, row0 + TILE), u.causal != 0u);
  return Work(bh / u.heads, bh % u.heads, row0, kend);
}
// element index of channel 0 of head h (part p) in row n of each operand (rows clamped in range)
fn q_at(w: Work, n: u32, p: u32) -> u32 { return (w.b * u.nq + min(n, u.nq - 1u)) * u.q_stride + u.q_off + w.h * D + p * DC; }
fn k_at(w: Work, n: u32, p: u32) -> u32 { return (w.b * u.nk + min(n, u.nk - 1u)) * u.k_stride + u.k_off + w.h * D + p * DC; }
fn v_at(w: Work, n: u32, p: u32) -> u32 { return (w.b * u.nk + min(n, u.nk - 1u)) * u.v_stride + u.v_off + w.h * D + p * DC; }
fn out_at(w: Work, n: u32, p: u32) -> u32 { return (w.b * u.nq + n) * u.heads * D + w.h * D + p * DC; }
// key j is visible from query row i
fn visible(j: u32, i: u32) -> bool { return j < u.nk && (u.causal == 0u || j <= i); }
// partial scores of part p for (row r, key c of a block of nb keys), and their sum over the parts
var<workgroup> partial: array<A, PARTIAL>;
fn part_ix(p: u32, r: u32, c: u32, lane: u32, nb: u32) -> u32 { return ((p * R + r) * nb + c) * LANES + lane; }
fn sum_parts(r: u32, c: u32, lane: u32, nb: u32) -> A {
  var acc = A(0.0);
  for (var p = 0u; p < select(P, u.parts, DYNAMIC); p++) { acc += partial[part_ix(p, r, c, lane, nb)]; }
  return acc;
}
`
  );
}

/**
 * The portable algorithm, as a function so that the subgroup kernel can fall back to it: per block,
 * the workgroup stages KT keys × D of K and V in workgroup memory; invocation (part p, lane l) owns
 * rows row0 + l + LANES·r and channels [p·DC, (p+1)·DC). With P > 1 each part's partial scores are
 * summed through workgroup memory. Every barrier sits in workgroup-uniform control flow.
 */
export const TILES_WGSL = /* wgsl */ `
var<workgroup> kt: array<A, KT * D>;
var<workgroup> vt: array<A, KT * D>;

fn attend_tiles(g: u32, lid: u32) {
  let dc = select(DC, u.dc, DYNAMIC);
  let nkt = select(KT, u.kt, DYNAMIC);
  let w = work_of(g);
  let lane = lid % LANES;
  let p = lid / LANES;
  var qr: array<array<A, DC>, R>;
  var o: array<array<A, DC>, R>;
  var m: array<A, R>;
  var l: array<A, R>;
  var s: array<array<A, KT>, R>;
  for (var r = 0u; r < R; r++) {
    let qa = q_at(w, w.row0 + r * LANES + lane, p);
    for (var d = 0u; d < dc; d++) { qr[r][d] = q_elem(qa + d) * u.scale; o[r][d] = 0.0; }
    m[r] = NEG;
    l[r] = 0.0;
  }
  for (var j0 = 0u; j0 < w.kend; j0 += KT) {
    for (var e = lid; e < KT * D; e += WG) {
      let c = e / D;
      let d = e % D;
      kt[e] = k_elem(k_at(w, j0 + c, 0u) + d);
      vt[e] = v_elem(v_at(w, j0 + c, 0u) + d);
    }
    workgroupBarrier();
    for (var r = 0u; r < R; r++) {
      for (var c = 0u; c < nkt; c++) {
        var acc = A(0.0);
        for (var d = 0u; d < dc; d++) { acc = fma(qr[r][d], kt[c * D + p * DC + d], acc); }
        s[r][c] = acc;
      }
    }
    if (P > 1u) {
      for (var r = 0u; r < R; r++) {
        for (var c = 0u; c < nkt; c++) { partial[part_ix(p, r, c, lane, KT)] = s[r][c]; }
      }
      workgroupBarrier();
      for (var r = 0u; r < R; r++) {
        for (var c = 0u; c < nkt; c++) { s[r][c] = sum_parts(r, c, lane, KT); }
      }
    }
    for (var r = 0u; r < R; r++) {
      let row = w.row0 + r * LANES + lane;
      var mx = m[r];
      for (var c = 0u; c < nkt; c++) {
        s[r][c] = select(NEG, s[r][c], visible(j0 + c, row));
        mx = max(mx, s[r][c]);
      }
      let alpha = exp2(m[r] - mx);
      m[r] = mx;
      var sum = A(0.0);
      for (var c = 0u; c < nkt; c++) { s[r][c] = exp2(s[r][c] - mx); sum += s[r][c]; }
      l[r] = l[r] * alpha + sum;
      for (var d = 0u; d < dc; d++) {
        var acc = o[r][d] * alpha;
        for (var c = 0u; c < nkt; c++) { acc = fma(s[r][c], vt[c * D + p * DC + d], acc); }
        o[r][d] = acc;
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < R; r++) {
    let row = w.row0 + r * LANES + lane;
    if (row < u.nq) {
      let oa = out_at(w, row, p);
      let inv = 1.0 / l[r];
      for (var d = 0u; d < dc; d++) { out[oa + d] = S(o[r][d] * inv); }
    }
  }
}
`;

export function portableWgsl(spec: AttentionSpec): string {
  return (
    attentionHeader(spec) +
    TILES_WGSL +
    /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = linear_workgroup(wid, nwg);
  if (g >= u.groups) { return; }
  attend_tiles(g, lid);
}
`
  );
}


/** Keys per workgroup-memory tile: K and V tiles plus the partial scores within 16 KiB (WebGPU's default). */
export function tileKeys(spec: AttentionSpec): number {
  const fits = (kt: number) => (2 * kt * spec.headDim + partialSize(spec, kt)) * 4 <= 16384;
  let kt = spec.variant === 'portable' ? spec.keyBlock : 32;
  while (kt > 1 && !fits(kt)) kt >>= 1;
  if (!fits(kt)) throw new RangeError(`attention: no key tile fits 16 KiB of workgroup memory for ${JSON.stringify(spec)}`);
  return kt;
}

/** Elements of the partial-score exchange (P > 1 only; WGSL arrays cannot be empty). */
function partialSize(spec: AttentionSpec, kt: number): number {
  return spec.parts > 1 ? spec.parts * spec.rows * Math.max(kt, spec.keyBlock) * spec.lanes : 1;
}

