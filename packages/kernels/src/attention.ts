// attention: out[b, i, h·D + d] = Σ_j softmax_j(scale · q[b,i,h]·k[b,j,h] [+ causal mask]) · v[b, j, h·D + d]
// Legend: B batch, Nq queries, Nk keys, H heads, D head dim; q/k/v rows are [B, N, rowStride] with a
// head's D channels at channelOffset + h·D (a fused QKV projection [B, N, 3C] is read in place).
// Flash-style: keys stream in blocks through an online softmax (running max m, sum l, rescaled
// accumulator o), so the Nq×Nk scores never exist. The scale, times log2(e), is folded into Q and the
// softmax uses exp2. Masked and out-of-range keys score -1e30 (finite: exp2(-1e30 - m) is 0 and never
// NaN); every row sees key 0 in the first block, so m is a real score after it.
//
// Both variants give each invocation R query rows and a chunk DC = D/P of the head dim; P groups of
// LANES invocations form a workgroup (P > 1 for D > 64: the VAE's D = 512 runs as 8 × 64, partial
// scores summed through workgroup memory) so q and o stay within DC registers per row.
// - portable (this file): K and V tiles of KT keys in workgroup memory and loops over them (constant
//   bounds that GPU compilers unroll; uniform bounds on CPU adapters, see AttentionSpec.dynamicLoops).
// - subgroups (attention-subgroup.ts): unrolled register tiles; lane l loads key j0 + l and the
//   others take it with subgroupBroadcast — lavapipe turns every storage or workgroup load into 8
//   scalar loads, so sharing loads through register shuffles is what makes it ~10× faster there.
// Precision: f16 or f32 storage, f32 scores/statistics/accumulators, one rounding at the store.
// Source: Dao et al., FlashAttention (2022), Algorithm 1; Milakov & Gimelshein, online softmax (2018).
import { DeviceLimitError, DTypeError, DTYPE_BYTES, InvalidArgumentError, foldWorkgroups, formatShape, prologue, ShapeError, Tensor, type GpuContext, type UniformLayout } from '@ssd/tensor';
import { subgroupAttentionWgsl } from './attention-subgroup.js';
import { isCpuAdapter } from './gemm.js';
import { expectFloat, expectRank } from './validate.js';

export type AttentionVariant = 'portable' | 'subgroups';

/** A q/k/v operand: a tensor [B, N, rowStride] holding heads×headDim channels starting at channelOffset (lets a fused QKV projection [B, N, 3C] be read in place: offsets 0, C, 2C). */
export type AttentionOperand = Tensor | { tensor: Tensor; channelOffset: number };

/** Tile specialisation (tests, bench): rows per invocation, lanes per part, parts of D, keys per block. */
export interface AttentionTile {
  readonly rows?: number;
  readonly lanes?: number;
  readonly parts?: number;
  readonly keyBlock?: number;
}

export interface AttentionOptions {
  /** Head h uses channels [h·D, (h+1)·D) of the operand (diffusers/transformers split heads into contiguous chunks). */
  heads: number;
  /** Default: (q channels)/heads for a plain Tensor; required with channelOffset operands. */
  headDim?: number;
  /** Default 1/sqrt(D); folded into Q. */
  scale?: number;
  /** CLIP's causal mask: query i attends to keys j ≤ i. */
  causal?: boolean;
  /** Force a variant (tests, bench); default: chooseAttentionVariant(ctx). */
  force?: AttentionVariant;
  tile?: AttentionTile;
}

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

function portableWgsl(spec: AttentionSpec): string {
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

/**
 * The variant an adapter gets. CPU drivers (lavapipe, SwiftShader) scalarise every load per SIMD lane,
 * so sharing K/V through subgroupBroadcast pays there (~10× on lavapipe, bench/kernels-dev/attention.ts).
 * GPUs get the workgroup-memory kernel: the subgroup one has not been measured on a GPU.
 */
export function chooseAttentionVariant(ctx: GpuContext): AttentionVariant {
  return ctx.subgroups && isCpuAdapter(ctx) && (ctx.info.subgroupMinSize ?? 0) >= 4 ? 'subgroups' : 'portable';
}

/** Keys per workgroup-memory tile: K and V tiles plus the partial scores within 16 KiB (WebGPU's default). */
function tileKeys(spec: AttentionSpec): number {
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

/** Smallest P with D % P == 0 and D/P ≤ 64 (64 channels per invocation keep q and o in registers). */
function defaultParts(D: number): number {
  let p = Math.ceil(D / 64);
  while (D % p) p++;
  return p;
}

/** The spec for one problem on this context. */
export function attentionSpec(ctx: GpuContext, dtype: 'f32' | 'f16', D: number, aligned: (n: number) => boolean, opts: { force?: AttentionVariant; tile?: AttentionTile } = {}): AttentionSpec {
  const variant = opts.force ?? chooseAttentionVariant(ctx);
  const t = opts.tile ?? {};
  const parts = t.parts ?? defaultParts(D);
  if (!Number.isInteger(parts) || parts < 1 || D % parts) throw new RangeError(`attention: tile.parts ${parts} must divide the head dim ${D}`);
  const DC = D / parts;
  const vec = dtype === 'f16' && aligned(8) && DC % 8 === 0 ? 8 : aligned(4) && DC % 4 === 0 ? 4 : 1;
  if (variant === 'subgroups') {
    const lanes = t.lanes ?? ctx.info.subgroupMinSize ?? 8;
    // 4 rows × 64 channels per lane: more rows share each broadcast but spill (bench/kernels-dev/attention.ts)
    const rows = t.rows ?? (DC <= 32 ? 8 : DC <= 64 ? 4 : 2);
    return Object.freeze({ variant, dtype, headDim: D, parts, lanes, rows, keyBlock: lanes, vec, dynamicLoops: true });
  }
  const lanes = t.lanes ?? (isCpuAdapter(ctx) ? 8 : Math.max(8, 64 / parts));
  const rows = t.rows ?? 1;
  const spec: AttentionSpec = Object.freeze({ variant, dtype, headDim: D, parts, lanes, rows, keyBlock: t.keyBlock ?? 32, vec, dynamicLoops: isCpuAdapter(ctx) });
  // K and V tiles plus the partial scores stay within 16 KiB (WebGPU's default workgroup storage)
  return Object.freeze({ ...spec, keyBlock: tileKeys(spec) });
}

function operand(x: AttentionOperand): { t: Tensor; off: number; explicit: boolean } {
  return x instanceof Tensor ? { t: x, off: 0, explicit: false } : { t: x.tensor, off: x.channelOffset, explicit: true };
}

/** softmax(Q·Kᵀ·scale [+ causal mask])·V per head, flash-style (online softmax), never materialising the Nq×Nk scores. q [B, Nq, ·], k/v [B, Nk, ·] → out [B, Nq, heads·D] (dtype of q). */
export function attention(q: AttentionOperand, k: AttentionOperand, v: AttentionOperand, opts: AttentionOptions): Tensor {
  const op = 'attention';
  const Q = operand(q);
  const K = operand(k);
  const V = operand(v);
  const legend = '[B, N, channels]';
  expectRank(op, 'q', Q.t, 3, legend);
  expectRank(op, 'k', K.t, 3, legend);
  expectRank(op, 'v', V.t, 3, legend);
  expectFloat(op, 'q', Q.t);
  for (const [name, x] of [['k', K], ['v', V]] as const) {
    if (x.t.dtype !== Q.t.dtype) throw new DTypeError(op, name, `${Q.t.dtype} (the dtype of q)`, x.t.dtype);
  }
  const H = opts.heads;
  if (!Number.isInteger(H) || H < 1) throw new InvalidArgumentError(`${op}: heads must be a positive integer, got ${H}`);
  let D = opts.headDim;
  if (D === undefined) {
    if (Q.explicit) throw new InvalidArgumentError(`${op}: headDim must be given with channelOffset operands`);
    D = Q.t.shape[2] / H;
  }
  if (!Number.isInteger(D) || D < 1) throw new InvalidArgumentError(`${op}: headDim must be a positive integer, got ${D} (q channels ${Q.t.shape[2]} / heads ${H}; pass headDim)`);
  const [B, Nq] = Q.t.shape;
  const Nk = K.t.shape[1];
  if (K.t.shape[0] !== B) throw new ShapeError(op, 'k', `[${B}, Nk, channels] (batch of q)`, formatShape(K.t.shape));
  if (formatShape(V.t.shape.slice(0, 2)) !== formatShape(K.t.shape.slice(0, 2))) throw new ShapeError(op, 'v', `[${B}, ${Nk}, channels] (batch and keys of k)`, formatShape(V.t.shape));
  if (Nk < 1) throw new ShapeError(op, 'k', '[B, Nk ≥ 1, channels]', formatShape(K.t.shape));
  for (const [name, x] of [['q', Q], ['k', K], ['v', V]] as const) {
    if (!Number.isInteger(x.off) || x.off < 0 || x.off + H * D > x.t.shape[2]) {
      throw new ShapeError(op, name, `[B, N, ≥ channelOffset ${x.off} + heads ${H} × headDim ${D}]`, formatShape(x.t.shape));
    }
  }
  const ctx = Q.t.ctx;
  const dtype = Q.t.dtype as 'f32' | 'f16';
  const out = ctx.empty([B, Nq, H * D], dtype, op);
  if (out.size === 0) return out;
  // Q, K and V are read in load units of `vec` elements: every row start and head offset must align
  const aligned = (n: number) => [Q, K, V].every((x) => x.t.shape[2] % n === 0 && x.off % n === 0) && D % n === 0;
  const spec = attentionSpec(ctx, dtype, D, aligned, opts);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  for (const [name, t] of [['q', Q.t], ['k', K.t], ['v', V.t], ['out', out]] as const) {
    const bytes = t.size * DTYPE_BYTES[t.dtype];
    if (bytes > limit) {
      out.dispose();
      throw new DeviceLimitError('maxStorageBufferBindingSize', bytes, limit, `${op}: ${name} ${formatShape(t.shape)} ${t.dtype} (split the batch or the queries)`);
    }
  }
  const tiles = Math.ceil(Nq / (spec.rows * spec.lanes));
  const groups = B * H * tiles;
  const wgsl = spec.variant === 'subgroups' ? subgroupAttentionWgsl : portableWgsl;
  const label = `attention.${spec.variant}`;
  ctx.dispatch({
    pipeline: ctx.kernel(label, spec, wgsl),
    bindings: [Q.t, K.t, V.t, out],
    uniforms: {
      layout: ATTENTION_UNIFORMS,
      values: {
        nq: Nq, nk: Nk, heads: H, tiles, groups,
        q_stride: Q.t.shape[2], k_stride: K.t.shape[2], v_stride: V.t.shape[2],
        q_off: Q.off, k_off: K.off, v_off: V.off,
        scale: (opts.scale ?? 1 / Math.sqrt(D)) * Math.LOG2E,
        causal: opts.causal ? 1 : 0,
        dc: D / spec.parts,
        kt: tileKeys(spec),
        parts: spec.parts,
      },
    },
    workgroups: foldWorkgroups(groups, ctx.limits.maxComputeWorkgroupsPerDimension),
    label,
  });
  return out;
}
