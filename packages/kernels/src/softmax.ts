// softmax: out[r, i] = exp(x[r, i] − max_r) / Σ_j exp(x[r, j] − max_r), over the last axis.
// Legend: rows = every index but the last (any rank ≥ 1), N = the last dimension.
// One workgroup of WG invocations per row: each invocation strides over the row keeping an online
// (max, sum) pair (Milakov & Gimelshein 2018: one read for both statistics), the pairs are merged by
// a tree in workgroup memory, then a second read writes the probabilities. Statistics are f32 and
// max-subtracted, so +100 offsets and large magnitudes neither overflow nor lose the small terms.
// f16 or f32 storage, one rounding at the store. Rows past 65,535 fold into y.
import { foldWorkgroups, formatShape, prologue, ShapeError, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectFloat, lastDim, rows } from './validate.js';

export interface SoftmaxSpec {
  readonly dtype: 'f32' | 'f16';
  readonly workgroupSize: number;
}

const UNIFORMS: UniformLayout = [
  ['rows', 'u32'],
  ['n', 'u32'],
];

function wgsl(spec: SoftmaxSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<S>;

var<workgroup> wm: array<A, WG>;
var<workgroup> ws: array<A, WG>;

// (m1, s1) ⊕ (m2, s2): both sums rescaled to the larger max (finite -3e38 start: exp(0) · 0 = 0, no NaN)
fn merge(m1: A, s1: A, m2: A, s2: A) -> vec2<f32> {
  let m = max(m1, m2);
  return vec2<f32>(m, s1 * exp(m1 - m) + s2 * exp(m2 - m));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = linear_workgroup(wid, nwg);
  if (row >= u.rows) { return; }
  let base = row * u.n;
  var m = A(-3.0e38);
  var s = A(0.0);
  for (var i = lid; i < u.n; i += WG) {
    let t = merge(m, s, A(x[base + i]), 1.0);
    m = t.x;
    s = t.y;
  }
  wm[lid] = m;
  ws[lid] = s;
  for (var half = WG / 2u; half > 0u; half /= 2u) {
    workgroupBarrier();
    if (lid < half) {
      let t = merge(wm[lid], ws[lid], wm[lid + half], ws[lid + half]);
      wm[lid] = t.x;
      ws[lid] = t.y;
    }
  }
  workgroupBarrier();
  let mx = wm[0];
  let inv = 1.0 / ws[0];
  for (var i = lid; i < u.n; i += WG) { out[base + i] = S(exp(A(x[base + i]) - mx) * inv); }
}
`
  );
}

/** Row softmax over the last axis, statistics in f32 (max-subtracted). */
export function softmax(x: Tensor): Tensor {
  if (x.rank < 1) throw new ShapeError('softmax', 'x', '[..., N] (rank ≥ 1)', formatShape(x.shape));
  expectFloat('softmax', 'x', x);
  const ctx = x.ctx;
  const spec: SoftmaxSpec = Object.freeze({ dtype: x.dtype as 'f32' | 'f16', workgroupSize: 64 });
  const out = ctx.empty(x.shape, x.dtype, 'softmax');
  const n = lastDim(x);
  const r = rows(x);
  if (out.size === 0) return out;
  ctx.dispatch({
    pipeline: ctx.kernel('softmax', spec, wgsl),
    bindings: [x, out],
    uniforms: { layout: UNIFORMS, values: { rows: r, n } },
    workgroups: foldWorkgroups(r, ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'softmax',
  });
  return out;
}
