// The WGSL of groupNorm's three passes (stats, finalize, normalize; see group-norm.ts for the math,
// the legend and the binding windows): their specs, uniform layouts and sources, and the x access and
// placement helpers they share. Here so that group-norm.ts holds the planning and the ops.
import { prologue, type DType, type UniformLayout } from '@ssd/tensor';

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

export interface StatsSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly workgroupSize: number;
}

export const STATS_UNIFORMS: UniformLayout = [...PLACEMENT, ['shiftAt', 'u32']]; // K's region in partials (in vectors)

export function statsWgsl(spec: StatsSpec): string {
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

export interface FinalizeSpec {
  /** 'rstd': (K, mean − K, 1/sqrt(M2/n + eps), 0) per (b, g); 'std': the unbiased std per b (G = 1). */
  readonly mode: 'rstd' | 'std';
  readonly workgroupSize: number;
}

export const FINALIZE_UNIFORMS: UniformLayout = [
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

export function finalizeWgsl(spec: FinalizeSpec): string {
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

export interface NormalizeSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly silu: boolean;
  readonly workgroupSize: number;
}

export const NORMALIZE_UNIFORMS: UniformLayout = [...PLACEMENT, ['groups', 'u32'], ['ooff', 'u32']]; // ooff: u.xstart's place in out

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

export function normalizeWgsl(spec: NormalizeSpec): string {
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
