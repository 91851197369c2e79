// groupNorm: y = (x − μ[b,g]) · rsqrt(σ²[b,g] + eps) · weight[c] + bias[c], optionally SiLU(y), as
// torch.nn.GroupNorm (biased variance) on channels-last data.
//
// Legend: x is NHWC [B, H, W, C] or tokens [B, N, C]; N = H·W rows per sample; G groups of Cg = C/G
// channels; V = vector width along C (4, 2 or 1: the widest that divides C); CV = C/V; a chunk is
// R consecutive rows of one sample (R = 256 on CPU adapters, where fewer, longer invocations measured
// ~15% faster than 64 on lavapipe; 32 on GPUs, which want many invocations).
//
// Three passes; GroupNorm is memory-bound (x is read twice and written once):
//   1. stats: one invocation per (b, chunk, channel vector) walks the chunk's rows with Welford's
//      update (one reciprocal per row, every load a full vector, neighbouring invocations read
//      neighbouring vectors of a row). Values are taken relative to K = the group's first element
//      (x[b, 0, g·Cg]), so offset data (x ≈ 100 ± 1) keeps its precision: the f32 mean never has to
//      resolve 100 + small. Writes (mean − K, M2) per (b, chunk, channel), and K per (b, channel).
//   2. finalize: one workgroup per (b, g) merges its chunks × Cg partials with Chan et al.'s pairwise
//      update (strided per invocation, then a workgroup tree) → (K, mean − K, rstd). Exact for offset
//      data: no E[x²] − E[x]² cancellation anywhere.
//   3. normalize: the same (b, chunk, channel vector) invocations load their affine parameters once
//      and walk the rows: y = ((x − K) − (mean − K))·(weight·rstd) + bias (+ SiLU).
// f16 or f32 storage, all math in f32. Workgroups fold over x/y past 65,535.
// Binding limit: when x is larger than maxStorageBufferBindingSize, passes 1 and 3 run per window of
// whole chunks of one sample (x and the output bound from the window's first row); the first window
// of a sample computes K, later ones read it back from the partials (R shrinks so that a window holds
// at least one chunk; only one row must fit). stdPerSample (reduce.ts) reuses passes 1 and 2 with one group per sample.
import { DeviceLimitError, DTYPE_BYTES, foldWorkgroups, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype, expectFloat, expectRank, expectShape } from './validate.js';
import { bindWindow } from './windows.js';

/** Rows each stats / normalize invocation walks: CPU adapters pay per invocation, GPUs want many. */
const CHUNK_ROWS_CPU = 256;
const CHUNK_ROWS_GPU = 32;
const WORKGROUP_SIZE = 64;

/** `SV`/`AV`: the storage and f32 vector types of width V. */
function vecAliases(vec: 1 | 2 | 4): string {
  return vec === 4 ? 'alias SV = S4;\nalias AV = A4;\n' : vec === 2 ? 'alias SV = S2;\nalias AV = A2;\n' : 'alias SV = S;\nalias AV = A;\n';
}

/**
 * Access to x by global index inside the bound window (x[u.xoff] is global vector u.xstart):
 * `xv(i)` vector i, `elem(i)` scalar element i.
 */
function xAccess(vec: 1 | 2 | 4): string {
  const elem = vec === 1 ? 'return f32(x[i - u.xstart + u.xoff]);' : `let j = i - (u.xstart - u.xoff) * ${vec}u;\n  return f32(x[j / ${vec}u][j % ${vec}u]);`;
  return `fn xv(i: u32) -> AV { return AV(x[i - u.xstart + u.xoff]); }
fn elem(i: u32) -> f32 {
  ${elem}
}
`;
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

/** Uniforms that place one dispatch of pass 1 or 3: samples [b0, b0 + nb) × chunks [chunk0, chunk0 + nc). */
const PLACEMENT: UniformLayout = [
  ['n', 'u32'], // rows per sample
  ['cv', 'u32'], // channel vectors per row (C / V)
  ['cg', 'u32'], // channels per group
  ['chunkRows', 'u32'],
  ['chunks', 'u32'], // chunks per sample
  ['threads', 'u32'], // nb · nc · cv
  ['b0', 'u32'],
  ['nc', 'u32'],
  ['chunk0', 'u32'],
  ['xstart', 'u32'], // global vector index of the window's first vector
  ['xoff', 'u32'], // where that vector sits in the x binding
];

/** Decodes an invocation into (b, chunk, cv) and its rows [r0, r1). */
const PLACE_WGSL = /* wgsl */ `
struct Place { b: u32, chunk: u32, cv: u32, r0: u32, r1: u32 }
fn place(id: u32) -> Place {
  let cv = id % u.cv;
  let t = id / u.cv;
  let chunk = u.chunk0 + t % u.nc;
  let r0 = chunk * u.chunkRows;
  return Place(u.b0 + t / u.nc, chunk, cv, r0, min(r0 + u.chunkRows, u.n));
}
`;

interface StatsSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly workgroupSize: number;
}

const STATS_UNIFORMS: UniformLayout = [...PLACEMENT, ['shiftAt', 'u32']]; // K's region in partials (in vectors)

function statsWgsl(spec: StatsSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: STATS_UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    vecAliases(spec.vec) +
    xAccess(spec.vec) +
    shiftOf(spec.vec) +
    PLACE_WGSL +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
// [B, chunks, 2 (mean − K, M2), cv] then K as [B, cv]
@group(0) @binding(2) var<storage, read_write> partials: array<AV>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let id = linear_workgroup(wid, nwg) * WG + lid;
  if (id >= u.threads) { return; }
  let p = place(id);
  let shift = u.shiftAt + p.b * u.cv + p.cv;
  var k: AV;
  if (u.chunk0 == 0u) {
    // this window holds row 0 of the sample: K from x (and kept for the windows that follow)
    k = shift_of(p.b, p.cv);
    if (p.chunk == 0u) { partials[shift] = k; }
  } else {
    k = partials[shift];
  }
  // Welford over this channel vector's rows of the chunk, relative to K
  var mean = AV(0.0);
  var m2 = AV(0.0);
  var count = 0.0;
  for (var r = p.r0; r < p.r1; r++) {
    let v = xv((p.b * u.n + r) * u.cv + p.cv) - k;
    count += 1.0;
    let d = v - mean;
    mean += d * (1.0 / count);
    m2 += d * (v - mean);
  }
  let bc = p.b * u.chunks + p.chunk;
  partials[bc * 2u * u.cv + p.cv] = mean;
  partials[(bc * 2u + 1u) * u.cv + p.cv] = m2;
}
`
  );
}

interface FinalizeSpec {
  /** 'rstd': (K, mean − K, 1/sqrt(M2/n + eps), 0) per (b, g); 'std': the unbiased std per b (G = 1). */
  readonly mode: 'rstd' | 'std';
  readonly workgroupSize: number;
}

const FINALIZE_UNIFORMS: UniformLayout = [
  ['n', 'u32'],
  ['c', 'u32'],
  ['cg', 'u32'],
  ['groups', 'u32'],
  ['chunkRows', 'u32'],
  ['chunks', 'u32'],
  ['pairs', 'u32'], // B · G
  ['shiftAt', 'u32'], // K's region in partials (in scalars)
  ['eps', 'f32'],
  ['half', 'u32'], // WG / 2: the tree's first stride, a uniform so that LLVM does not unroll the tree
];

function finalizeWgsl(spec: FinalizeSpec): string {
  const store =
    spec.mode === 'rstd'
      ? /* wgsl */ `@group(0) @binding(2) var<storage, read_write> stats: array<vec4<f32>>;
fn store(i: u32, k: f32, s: vec3<f32>) { stats[i] = vec4<f32>(k, s.y, 1.0 / sqrt(s.z / s.x + u.eps), 0.0); }`
      : /* wgsl */ `@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
fn store(i: u32, k: f32, s: vec3<f32>) { stats[i] = sqrt(s.z / (s.x - 1.0)); }`;
  return (
    prologue({ uniforms: FINALIZE_UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> partials: array<f32>;
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
  var acc = vec3<f32>(0.0);
  for (var e = lid; e < u.chunks * u.cg; e += WG) {
    let chunk = e / u.cg;
    let at = (b * u.chunks + chunk) * 2u * u.c + g * u.cg + e % u.cg;
    let rows = min(u.chunkRows, u.n - chunk * u.chunkRows);
    acc = merge(acc, vec3<f32>(f32(rows), partials[at], partials[at + u.c]));
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var s = u.half; s > 0u; s = s / 2u) {
    if (lid < s) { red[lid] = merge(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  if (lid == 0u) { store(pair, partials[u.shiftAt + b * u.c + g * u.cg], red[0]); }
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

const NORMALIZE_UNIFORMS: UniformLayout = [...PLACEMENT, ['groups', 'u32'], ['ooff', 'u32']]; // ooff: u.xstart's place in out

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
    PLACE_WGSL +
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
  let p = place(id);
  let st = stats_of(p.b, p.cv);
  let scale = AV(weight[p.cv]) * st.rstd;
  let shift = AV(bias[p.cv]);
  for (var r = p.r0; r < p.r1; r++) {
    let i = (p.b * u.n + r) * u.cv + p.cv - u.xstart; // inside the window
    var y = ((AV(x[i + u.xoff]) - st.k) - st.delta) * scale + shift;
    if (SILU) { y = y / (AV(1.0) + exp(-y)); }
    out[i + u.ooff] = SV(y);
  }
}
`
  );
}

/** The widest vector (4, 2, 1) that divides n. */
function vecWidth(n: number): 1 | 2 | 4 {
  return n % 4 === 0 ? 4 : n % 2 === 0 ? 2 : 1;
}

/** One dispatch of pass 1 or 3: samples [b0, b0 + nb), chunks [chunk0, chunk0 + nc), elements [start, start + count). */
interface RowWindow {
  b0: number;
  nb: number;
  chunk0: number;
  nc: number;
  start: number;
  count: number;
}

/** How x is cut: R rows per chunk, and the dispatches (windows) of passes 1 and 3. */
interface ChunkPlan {
  chunkRows: number;
  chunks: number;
  windows: RowWindow[];
}

/** Everything at once if x fits one binding, else windows of whole chunks of one sample. */
function planChunks(ctx: GpuContext, op: string, x: Tensor, B: number, N: number, C: number, forceRows?: number): ChunkPlan {
  let chunkRows = forceRows ?? (ctx.info.isCpu ? CHUNK_ROWS_CPU : CHUNK_ROWS_GPU);
  if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new InvalidArgumentError(`${op}: force.chunkRows = ${chunkRows} is not a positive integer`);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  if (x.byteSize <= limit) {
    const chunks = Math.ceil(N / chunkRows);
    return { chunkRows, chunks, windows: [{ b0: 0, nb: B, chunk0: 0, nc: chunks, start: 0, count: x.size }] };
  }
  const rowBytes = C * DTYPE_BYTES[x.dtype];
  const fitRows = Math.floor((limit - 256) / rowBytes);
  if (fitRows < 1) throw new DeviceLimitError('maxStorageBufferBindingSize', rowBytes + 256, limit, `${op}: one row of x ${x.dtype} [.., ${C}]`);
  chunkRows = Math.min(chunkRows, fitRows);
  const windowRows = Math.floor(fitRows / chunkRows) * chunkRows;
  const windows: RowWindow[] = [];
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < N; r += windowRows) {
      const rows = Math.min(windowRows, N - r);
      windows.push({ b0: b, nb: 1, chunk0: r / chunkRows, nc: Math.ceil(rows / chunkRows), start: (b * N + r) * C, count: rows * C });
    }
  }
  return { chunkRows, chunks: Math.ceil(N / chunkRows), windows };
}

/** Placement uniforms of one window; x (and out) bound from the window's first element. */
function placement(plan: ChunkPlan, w: RowWindow, vec: number, N: number, C: number, x: Tensor): { values: Record<string, number>; binding: ReturnType<typeof bindWindow> } {
  const binding = bindWindow(x, w.start, w.count);
  const cv = C / vec;
  return {
    binding,
    values: { n: N, cv, chunkRows: plan.chunkRows, chunks: plan.chunks, threads: w.nb * w.nc * cv, b0: w.b0, nc: w.nc, chunk0: w.chunk0, xstart: w.start / vec, xoff: binding.offsetElems / vec },
  };
}

/**
 * Passes 1 and 2 over x viewed as [B, N, C] with G groups: per-(b, g) statistics as a new f32 tensor —
 * [B·G, 4] (K, mean − K, rstd, 0) for mode 'rstd', [B] unbiased std for mode 'std' (G must be 1).
 */
export function groupStats(x: Tensor, B: number, N: number, C: number, groups: number, mode: 'rstd' | 'std', eps: number, op: string, plan = planChunks(x.ctx, op, x, B, N, C)): Tensor {
  const ctx = x.ctx;
  const vec = vecWidth(C);
  const cg = C / groups;
  const { chunks, chunkRows } = plan;
  const maxWg = ctx.limits.maxComputeWorkgroupsPerDimension;
  const shiftAt = B * chunks * 2 * C; // scalars
  const partials = ctx.empty([shiftAt + B * C], 'f32', `${op}.partials`);
  const statsPipeline = ctx.kernel('group_norm.stats', Object.freeze<StatsSpec>({ dtype: x.dtype, vec, workgroupSize: WORKGROUP_SIZE }), statsWgsl);
  for (const w of plan.windows) {
    const { values, binding } = placement(plan, w, vec, N, C, x);
    ctx.dispatch({
      pipeline: statsPipeline,
      bindings: [binding.binding, partials],
      uniforms: { layout: STATS_UNIFORMS, values: { ...values, cg, shiftAt: shiftAt / vec } },
      workgroups: foldWorkgroups(Math.ceil(values.threads / WORKGROUP_SIZE), maxWg),
      label: `group_norm.stats[${x.dtype} v${vec}]`,
    });
  }
  const pairs = B * groups;
  const stats = ctx.empty(mode === 'rstd' ? [pairs, 4] : [B], 'f32', `${op}.stats`);
  ctx.dispatch({
    pipeline: ctx.kernel('group_norm.finalize', Object.freeze<FinalizeSpec>({ mode, workgroupSize: WORKGROUP_SIZE }), finalizeWgsl),
    bindings: [partials, stats],
    uniforms: { layout: FINALIZE_UNIFORMS, values: { n: N, c: C, cg, groups, chunkRows, chunks, pairs, shiftAt, eps, half: WORKGROUP_SIZE / 2 } },
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
 * x may exceed maxStorageBufferBindingSize (it is then processed in row windows). `force.chunkRows`
 * overrides the rows per invocation (tests and bench).
 */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, opts: { groups: number; eps: number; silu?: boolean; force?: { chunkRows?: number } }): Tensor {
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
  const plan = planChunks(ctx, op, x, B, N, C, opts.force?.chunkRows); // throws before allocating
  const out = ctx.empty(x.shape, x.dtype, op);
  if (x.size === 0) return out;
  const stats = groupStats(x, B, N, C, groups, 'rstd', eps, op, plan);
  const vec = vecWidth(C);
  const spec: NormalizeSpec = Object.freeze({ dtype: x.dtype, vec, silu: !!opts.silu, workgroupSize: WORKGROUP_SIZE });
  const pipeline = ctx.kernel('group_norm.normalize', spec, normalizeWgsl);
  for (const w of plan.windows) {
    const { values, binding } = placement(plan, w, vec, N, C, x);
    const o = bindWindow(out, w.start, w.count);
    ctx.dispatch({
      pipeline,
      bindings: [binding.binding, stats, weight, bias, o.binding],
      uniforms: { layout: NORMALIZE_UNIFORMS, values: { ...values, cg: C / groups, groups, ooff: o.offsetElems / vec } },
      workgroups: foldWorkgroups(Math.ceil(values.threads / WORKGROUP_SIZE), ctx.limits.maxComputeWorkgroupsPerDimension),
      label: `group_norm.normalize[${x.dtype} v${vec}${opts.silu ? ' silu' : ''}]`,
    });
  }
  stats.dispose();
  return out;
}
