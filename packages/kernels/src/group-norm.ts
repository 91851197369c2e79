// groupNorm: y = (x − μ[b,g]) · rsqrt(σ²[b,g] + eps) · weight[c] + bias[c], optionally SiLU(y), as
// torch.nn.GroupNorm (biased variance) on channels-last data.
//
// Legend: x is NHWC [B, H, W, C] or tokens [B, N, C]; N = H·W rows per sample; G groups of Cg = C/G
// channels; V = vector width along C (4, 2 or 1: the widest that divides C); CV = C/V; a chunk is
// CHUNK_ROWS consecutive rows of one sample.
//
// Three dispatches; GroupNorm is memory-bound (x is read twice and written once):
//   1. stats: one invocation per (b, chunk, channel vector) walks the chunk's rows with Welford's
//      update (no division per element beyond one reciprocal per row, every load a full vector, and
//      8 neighbouring invocations read neighbouring vectors of a row). Values are taken relative to K
//      = the group's first element, so offset data (x ≈ 100 ± 1) keeps its precision: the f32 mean
//      never has to resolve 100 + small. Writes (mean − K, M2) per (b, chunk, channel).
//   2. finalize: one workgroup per (b, g) merges its chunks × Cg partials with Chan et al.'s pairwise
//      update (strided per thread, then a workgroup tree) → (K, mean − K, rstd). Exact for offset
//      data: no E[x²] − E[x]² cancellation anywhere.
//   3. normalize: the same (b, chunk, channel vector) invocations load their affine parameters once
//      and walk the rows: y = ((x − K) − (mean − K))·(weight·rstd) + bias (+ SiLU).
// f16 or f32 storage, all math in f32. Workgroups fold over x/y past 65,535. x must fit one storage
// binding (ctx.dispatch throws DeviceLimitError otherwise).
// stdPerSample (reduce.ts) reuses passes 1 and 2 with one group per sample.
import { foldWorkgroups, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype, expectFloat, expectRank, expectShape } from './validate.js';
import { requireBindable } from './windows.js';

/** Rows each stats / normalize invocation walks (lavapipe pays per workgroup and per invocation). */
const CHUNK_ROWS = 64;
const WORKGROUP_SIZE = 64;

/** `SV`/`AV`: the storage and f32 vector types of width V; `elem(i)`: scalar element i of x. */
function vecAliases(vec: 1 | 2 | 4): string {
  const alias = vec === 4 ? 'alias SV = S4;\nalias AV = A4;' : vec === 2 ? 'alias SV = S2;\nalias AV = A2;' : 'alias SV = S;\nalias AV = A;';
  const elem = vec === 1 ? 'fn elem(i: u32) -> f32 { return f32(x[i]); }' : `fn elem(i: u32) -> f32 { return f32(x[i / ${vec}u][i % ${vec}u]); }`;
  return `${alias}\n${elem}\n`;
}

/** The V group-first elements (the shift K) of channel vector cv of sample b, as an AV. */
function shiftOf(vec: 1 | 2 | 4): string {
  const lanes = [...Array(vec).keys()].map((k) => `elem(base + ((c + ${k}u) / u.cg) * u.cg)`);
  return `fn shift_of(b: u32, cv: u32) -> AV {
  let base = b * u.n * u.cv * ${vec}u;
  let c = cv * ${vec}u;
  return AV(${lanes.join(', ')});
}
`;
}

interface StatsSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly workgroupSize: number;
}

const STATS_UNIFORMS: UniformLayout = [
  ['n', 'u32'], // rows per sample
  ['cv', 'u32'], // channel vectors per row (C / V)
  ['cg', 'u32'], // channels per group
  ['chunkRows', 'u32'],
  ['chunks', 'u32'],
  ['threads', 'u32'], // B · chunks · cv
];

function statsWgsl(spec: StatsSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: STATS_UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    vecAliases(spec.vec) +
    shiftOf(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read_write> partials: array<AV>; // [B, chunks, 2 (mean − K, M2), cv]

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let id = linear_workgroup(wid, nwg) * WG + lid;
  if (id >= u.threads) { return; }
  let cv = id % u.cv;
  let bc = id / u.cv; // b · chunks + chunk
  let b = bc / u.chunks;
  let r0 = (bc % u.chunks) * u.chunkRows;
  let r1 = min(r0 + u.chunkRows, u.n);
  let k = shift_of(b, cv);
  // Welford over this channel vector's rows of the chunk, relative to K
  var mean = AV(0.0);
  var m2 = AV(0.0);
  var count = 0.0;
  for (var r = r0; r < r1; r++) {
    let v = AV(x[(b * u.n + r) * u.cv + cv]) - k;
    count += 1.0;
    let d = v - mean;
    mean += d * (1.0 / count);
    m2 += d * (v - mean);
  }
  partials[bc * 2u * u.cv + cv] = mean;
  partials[(bc * 2u + 1u) * u.cv + cv] = m2;
}
`
  );
}

interface FinalizeSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  /** 'rstd': (K, mean − K, 1/sqrt(M2/n + eps), 0) per (b, g); 'std': the unbiased std per b (G = 1). */
  readonly mode: 'rstd' | 'std';
  readonly workgroupSize: number;
}

const FINALIZE_UNIFORMS: UniformLayout = [
  ['n', 'u32'],
  ['cv', 'u32'],
  ['cg', 'u32'],
  ['groups', 'u32'],
  ['chunkRows', 'u32'],
  ['chunks', 'u32'],
  ['pairs', 'u32'], // B · G
  ['eps', 'f32'],
  ['half', 'u32'], // WG / 2: the tree's first stride, a uniform so that LLVM does not unroll the tree
];

function finalizeWgsl(spec: FinalizeSpec): string {
  const store =
    spec.mode === 'rstd'
      ? /* wgsl */ `@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>;
fn store(i: u32, k: f32, s: vec3<f32>) { stats[i] = vec4<f32>(k, s.y, 1.0 / sqrt(s.z / s.x + u.eps), 0.0); }`
      : /* wgsl */ `@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
fn store(i: u32, k: f32, s: vec3<f32>) { stats[i] = sqrt(s.z / (s.x - 1.0)); }`;
  return (
    prologue({ dtype: spec.dtype, uniforms: FINALIZE_UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    vecAliases(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;
${store}
var<workgroup> red: array<vec3<f32>, WG>;

// Chan, Golub & LeVeque (1979): (count, mean, M2) of the union of two disjoint sets, exactly.
fn merge(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
  if (b.x == 0.0) { return a; }
  if (a.x == 0.0) { return b; }
  let n = a.x + b.x;
  let d = b.y - a.y;
  return vec3<f32>(n, a.y + d * (b.x / n), a.z + b.z + d * d * (a.x * b.x / n));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let pair = linear_workgroup(wid, nwg);
  if (pair >= u.pairs) { return; }
  let g = pair % u.groups;
  let b = pair / u.groups;
  let c = u.cv * ${spec.vec}u;
  var acc = vec3<f32>(0.0);
  for (var e = lid; e < u.chunks * u.cg; e += WG) {
    let chunk = e / u.cg;
    let ch = g * u.cg + e % u.cg;
    let at = (b * u.chunks + chunk) * 2u * c + ch;
    let rows = min(u.chunkRows, u.n - chunk * u.chunkRows);
    acc = merge(acc, vec3<f32>(f32(rows), partials[at], partials[at + c]));
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = u.half; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = merge(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { store(pair, elem(b * u.n * c + g * u.cg), red[0]); }
}
`
  );
}

interface NormalizeSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly silu: boolean;
  readonly workgroupSize: number;
}

const NORMALIZE_UNIFORMS: UniformLayout = [
  ['n', 'u32'],
  ['cv', 'u32'],
  ['cg', 'u32'],
  ['groups', 'u32'],
  ['chunkRows', 'u32'],
  ['chunks', 'u32'],
  ['threads', 'u32'],
];

/** K, mean − K and rstd of the V channels of one channel vector (they may straddle two groups). */
function statsGather(vec: 1 | 2 | 4): string {
  const lanes = [...Array(vec).keys()];
  const loads = lanes.map((k) => `  let s${k} = stats[b * u.groups + (c + ${k}u) / u.cg];`).join('\n');
  const ctor = (f: string) => (vec === 1 ? `s0.${f}` : `AV(${lanes.map((k) => `s${k}.${f}`).join(', ')})`);
  return `struct GroupStats { k: AV, delta: AV, rstd: AV }
fn stats_of(b: u32, cv: u32) -> GroupStats {
  let c = cv * ${vec}u;
${loads}
  return GroupStats(${ctor('x')}, ${ctor('y')}, ${ctor('z')});
}
`;
}

function normalizeWgsl(spec: NormalizeSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: NORMALIZE_UNIFORMS, consts: { WG: spec.workgroupSize, SILU: spec.silu } }) +
    vecAliases(spec.vec) +
    statsGather(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> weight: array<SV>;
@group(0) @binding(4) var<storage, read> bias: array<SV>;
@group(0) @binding(5) var<storage, read_write> out: array<SV>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let id = linear_workgroup(wid, nwg) * WG + lid;
  if (id >= u.threads) { return; }
  let cv = id % u.cv;
  let bc = id / u.cv;
  let b = bc / u.chunks;
  let r0 = (bc % u.chunks) * u.chunkRows;
  let r1 = min(r0 + u.chunkRows, u.n);
  let st = stats_of(b, cv);
  let scale = AV(weight[cv]) * st.rstd;
  let shift = AV(bias[cv]);
  for (var r = r0; r < r1; r++) {
    let i = (b * u.n + r) * u.cv + cv;
    var y = ((AV(x[i]) - st.k) - st.delta) * scale + shift;
    if (SILU) { y = y / (AV(1.0) + exp(-y)); }
    out[i] = SV(y);
  }
}
`
  );
}

/** The widest vector (4, 2, 1) that divides n. */
function vecWidth(n: number): 1 | 2 | 4 {
  return n % 4 === 0 ? 4 : n % 2 === 0 ? 2 : 1;
}

/**
 * Passes 1 and 2 over x viewed as [B, N, C] with G groups: per-(b, g) statistics as a new f32 tensor —
 * [B·G, 4] (K, mean − K, rstd, 0) for mode 'rstd', [B] unbiased std for mode 'std' (G must be 1).
 */
export function groupStats(x: Tensor, B: number, N: number, C: number, groups: number, mode: 'rstd' | 'std', eps: number, op: string): Tensor {
  const ctx = x.ctx;
  const vec = vecWidth(C);
  const cv = C / vec;
  const cg = C / groups;
  const chunks = Math.ceil(N / CHUNK_ROWS);
  const threads = B * chunks * cv;
  const maxWg = ctx.limits.maxComputeWorkgroupsPerDimension;
  const partials = ctx.empty([B, chunks, 2, C], 'f32', `${op}.partials`);
  const dims = { n: N, cv, cg, chunkRows: CHUNK_ROWS, chunks };
  ctx.dispatch({
    pipeline: ctx.kernel('group_norm.stats', Object.freeze<StatsSpec>({ dtype: x.dtype, vec, workgroupSize: WORKGROUP_SIZE }), statsWgsl),
    bindings: [x, partials],
    uniforms: { layout: STATS_UNIFORMS, values: { ...dims, threads } },
    workgroups: foldWorkgroups(Math.ceil(threads / WORKGROUP_SIZE), maxWg),
    label: `group_norm.stats[${x.dtype} v${vec}]`,
  });
  const pairs = B * groups;
  const stats = ctx.empty(mode === 'rstd' ? [pairs, 4] : [B], 'f32', `${op}.stats`);
  const finalizeSpec: FinalizeSpec = Object.freeze({ dtype: x.dtype, vec, mode, workgroupSize: WORKGROUP_SIZE });
  ctx.dispatch({
    pipeline: ctx.kernel('group_norm.finalize', finalizeSpec, finalizeWgsl),
    bindings: [x, partials, stats],
    uniforms: { layout: FINALIZE_UNIFORMS, values: { ...dims, groups, pairs, eps, half: WORKGROUP_SIZE / 2 } },
    workgroups: foldWorkgroups(pairs, maxWg),
    label: `group_norm.finalize[${mode}]`,
  });
  partials.dispose();
  return stats;
}

/**
 * GroupNorm over NHWC x [B, H, W, C] (or tokens [B, N, C]) with `groups` groups of C/groups channels,
 * affine weight/bias [C] and optional fused SiLU (diffusers' ResnetBlock2D norm + nonlinearity).
 * eps as given: UNet 1e-5, VAE and Transformer2DModel 1e-6. Returns a new tensor of x's shape/dtype.
 */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, opts: { groups: number; eps: number; silu?: boolean }): Tensor {
  const op = 'groupNorm';
  expectFloat(op, 'x', x);
  expectRank(op, 'x', x, [3, 4], '[B, H, W, C] or [B, N, C]');
  expectDtype(op, 'weight', weight, x.dtype);
  expectDtype(op, 'bias', bias, x.dtype);
  const B = x.shape[0];
  const C = x.shape[x.rank - 1];
  const N = x.rank === 4 ? x.shape[1] * x.shape[2] : x.shape[1];
  expectShape(op, 'weight', weight, [C], '[C]');
  expectShape(op, 'bias', bias, [C], '[C]');
  const { groups, eps } = opts;
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new ShapeError(op, 'x', `a channel count divisible by groups = ${groups}`, `C = ${C}`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new InvalidArgumentError(`${op}: eps must be a finite number ≥ 0, got ${eps}`);
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const out = ctx.empty(x.shape, x.dtype, op);
  if (x.size === 0) return out;
  const stats = groupStats(x, B, N, C, groups, 'rstd', eps, op);
  normalize(ctx, x, stats, weight, bias, out, { B, N, C, groups, silu: !!opts.silu });
  stats.dispose();
  return out;
}

function normalize(
  ctx: GpuContext,
  x: Tensor,
  stats: Tensor,
  weight: Tensor,
  bias: Tensor,
  out: Tensor,
  d: { B: number; N: number; C: number; groups: number; silu: boolean },
): void {
  const vec = vecWidth(d.C);
  const cv = d.C / vec;
  const chunks = Math.ceil(d.N / CHUNK_ROWS);
  const threads = d.B * chunks * cv;
  const spec: NormalizeSpec = Object.freeze({ dtype: x.dtype, vec, silu: d.silu, workgroupSize: WORKGROUP_SIZE });
  ctx.dispatch({
    pipeline: ctx.kernel('group_norm.normalize', spec, normalizeWgsl),
    bindings: [x, stats, weight, bias, out],
    uniforms: { layout: NORMALIZE_UNIFORMS, values: { n: d.N, cv, cg: d.C / d.groups, groups: d.groups, chunkRows: CHUNK_ROWS, chunks, threads } },
    workgroups: foldWorkgroups(Math.ceil(threads / WORKGROUP_SIZE), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: `group_norm.normalize[${x.dtype} v${vec}${d.silu ? ' silu' : ''}]`,
  });
}
