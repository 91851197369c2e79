// layerNorm: y = (x − μ[row]) · rsqrt(σ²[row] + eps) · weight[c] + bias[c] over the last axis, as
// torch.nn.LayerNorm (biased variance). CLIP's and the transformer blocks' norms.
//
// Legend: x [..., C] viewed as R rows of C; V = vector width along C (4, 2 or 1); CV = C/V;
// L = lanes per row, a power of two ≤ 64 (a uniform): about CV/16 on GPUs, so each lane owns ~16
// vectors and a row's loads coalesce; 1 on CPU adapters (lavapipe, SwiftShader), where a lane per row
// skips the reduction tree and measured ~30% faster. One workgroup of 64 invocations normalizes 64/L
// rows.
//
// Each lane runs Welford over its strided channel vectors (relative to K = the row's first element,
// so offset data keeps its precision), the L lanes of a row merge (count, mean, M2) with Chan et al.'s
// update in a workgroup tree, then every lane re-reads its vectors (still in cache) and writes
// y = ((x − K) − (mean − K))·rstd·weight + bias. One read for the statistics, one for the output,
// no E[x²] − E[x]² cancellation. f16 or f32 storage, f32 math.
import { foldWorkgroups, InvalidArgumentError, prologue, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype, expectFloat, expectShape } from './validate.js';
import { requireBindable } from './windows.js';

interface LayerNormSpec {
  readonly dtype: DType;
  readonly vec: 1 | 2 | 4;
  readonly workgroupSize: number;
}

const UNIFORMS: UniformLayout = [
  ['rows', 'u32'],
  ['cv', 'u32'],
  ['eps', 'f32'],
  ['lanes', 'u32'], // L: a power of two dividing WG (a uniform: one pipeline serves every width)
  ['half', 'u32'], // L / 2: the tree's first stride (a uniform so that LLVM does not unroll the tree)
];

/** Storage/f32 vector aliases of width V and `collapse`: the V components' stats as one (n, mean, M2). */
function vecHelpers(vec: 1 | 2 | 4): string {
  if (vec === 1) {
    return /* wgsl */ `alias SV = S;
alias AV = A;
fn first(v: A) -> f32 { return v; }
fn collapse(n: f32, mean: A, m2: A) -> vec3<f32> { return vec3<f32>(n, mean, m2); }
`;
  }
  const comps = vec === 4 ? ['x', 'y', 'z', 'w'] : ['x', 'y'];
  const sum = (e: (c: string) => string) => comps.map(e).join(' + ');
  return /* wgsl */ `alias SV = ${vec === 4 ? 'S4' : 'S2'};
alias AV = ${vec === 4 ? 'A4' : 'A2'};
fn first(v: AV) -> f32 { return v.x; }
// V components with equal counts n: pooled mean and M2 (the between-component term added exactly)
fn collapse(n: f32, mean: AV, m2: AV) -> vec3<f32> {
  let m = (${sum((c) => `mean.${c}`)}) / ${vec}.0;
  let d = mean - AV(m);
  return vec3<f32>(n * ${vec}.0, m, (${sum((c) => `m2.${c}`)}) + n * dot(d, d));
}
`;
}

function wgsl(spec: LayerNormSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    vecHelpers(spec.vec) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read> weight: array<SV>;
@group(0) @binding(3) var<storage, read> bias: array<SV>;
@group(0) @binding(4) var<storage, read_write> out: array<SV>;

var<workgroup> red: array<vec3<f32>, WG>;

// Chan, Golub & LeVeque (1979): (count, mean, M2) of the union of two disjoint sets.
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
  let row = linear_workgroup(wid, nwg) * (WG / u.lanes) + lid / u.lanes;
  let lane = lid % u.lanes;
  let valid = row < u.rows;
  let base = row * u.cv;
  var k = 0.0;
  var count = 0.0;
  var mean = AV(0.0);
  var m2 = AV(0.0);
  if (valid) {
    k = first(AV(x[base]));
    for (var j = lane; j < u.cv; j += u.lanes) {
      let v = AV(x[base + j]) - AV(k);
      count += 1.0;
      let d = v - mean;
      mean += d * (1.0 / count);
      m2 += d * (v - mean);
    }
  }
  red[lid] = collapse(count, mean, m2);
  workgroupBarrier();
  for (var s = u.half; s > 0u; s = s / 2u) {
    if (lane < s) { red[lid] = merge(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let st = red[lid - lane];
  if (!valid) { return; }
  let delta = AV(st.y);
  let rstd = 1.0 / sqrt(st.z / st.x + u.eps);
  for (var j = lane; j < u.cv; j += u.lanes) {
    let y = ((AV(x[base + j]) - AV(k)) - delta) * (AV(weight[j]) * rstd) + AV(bias[j]);
    out[base + j] = SV(y);
  }
}
`
  );
}

const WORKGROUP_SIZE = 64;

/** Lanes per row: 1 on CPU adapters, else a power of two near CV/16 (each lane owns ~16 vectors), ≤ 64. */
function lanesFor(ctx: GpuContext, cv: number): number {
  if (ctx.info.isCpu) return 1;
  let l = 1;
  while (l * 2 <= Math.min(WORKGROUP_SIZE, cv / 16)) l *= 2;
  return l;
}

/**
 * LayerNorm over the last axis of x [..., C] with weight/bias [C] and eps; returns x's shape/dtype.
 * `force.lanes` (a power of two ≤ 64) overrides the lanes-per-row choice, for tests and bench.
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, opts: { eps: number; force?: { lanes?: number } }): Tensor {
  const op = 'layerNorm';
  expectFloat(op, 'x', x);
  if (x.rank < 1) throw new InvalidArgumentError(`${op}: x must have at least one axis, got a scalar`);
  expectDtype(op, 'weight', weight, x.dtype);
  expectDtype(op, 'bias', bias, x.dtype);
  const C = x.shape[x.rank - 1];
  expectShape(op, 'weight', weight, [C], '[C]');
  expectShape(op, 'bias', bias, [C], '[C]');
  const { eps } = opts;
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new InvalidArgumentError(`${op}: eps must be a finite number ≥ 0, got ${eps}`);
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const out = ctx.empty(x.shape, x.dtype, op);
  if (x.size === 0) return out;
  const rows = x.size / C;
  const vec = C % 4 === 0 ? 4 : C % 2 === 0 ? 2 : 1;
  const cv = C / vec;
  const lanes = opts.force?.lanes ?? lanesFor(ctx, cv);
  if (!Number.isInteger(Math.log2(lanes)) || lanes > WORKGROUP_SIZE) throw new InvalidArgumentError(`${op}: force.lanes = ${lanes} is not a power of two ≤ ${WORKGROUP_SIZE}`);
  const spec: LayerNormSpec = Object.freeze({ dtype: x.dtype, vec, workgroupSize: WORKGROUP_SIZE });
  ctx.dispatch({
    pipeline: ctx.kernel('layer_norm', spec, wgsl),
    bindings: [x, weight, bias, out],
    uniforms: { layout: UNIFORMS, values: { rows, cv, eps, lanes, half: lanes >> 1 } },
    workgroups: foldWorkgroups(Math.ceil(rows / (WORKGROUP_SIZE / lanes)), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: `layer_norm[${x.dtype} v${vec} L${lanes}]`,
  });
  return out;
}
