// add: out = a + b, elementwise, same shape and dtype. The smallest kernel that exercises the whole
// path (spec → WGSL → cached pipeline → uniforms → dispatch) and the pattern @ssd/kernels follows.
// Each invocation handles one element; workgroups fold over x/y past 65,535.

import { DTypeError, ShapeError } from '../errors.js';
import { formatShape, type DType } from '../dtype.js';
import { foldWorkgroups, prologue, type UniformLayout } from '../program.js';
import type { Tensor } from '../tensor.js';

interface AddSpec {
  readonly dtype: DType;
  readonly workgroupSize: number;
}

const UNIFORMS: UniformLayout = [['n', 'u32']];

function wgsl(spec: AddSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> a: array<S>;
@group(0) @binding(2) var<storage, read> b: array<S>;
@group(0) @binding(3) var<storage, read_write> out: array<S>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = linear_workgroup(wid, nwg) * WG + lid;
  if (i >= u.n) { return; }
  out[i] = a[i] + b[i];
}
`
  );
}

/** a + b for two tensors of the same shape and float dtype. */
export function add(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) throw new DTypeError('add', 'b', a.dtype, b.dtype);
  if (a.dtype !== 'f32' && a.dtype !== 'f16' && a.dtype !== 'i32' && a.dtype !== 'u32') throw new DTypeError('add', 'a', 'f32|f16|i32|u32', a.dtype);
  if (formatShape(a.shape) !== formatShape(b.shape)) throw new ShapeError('add', 'b', formatShape(a.shape), formatShape(b.shape));
  const ctx = a.ctx;
  const spec: AddSpec = Object.freeze({ dtype: a.dtype, workgroupSize: 64 });
  const pipeline = ctx.kernel('tensor.add', spec, wgsl);
  const out = ctx.empty(a.shape, a.dtype, 'add');
  ctx.dispatch({
    pipeline,
    bindings: [a, b, out],
    uniforms: { layout: UNIFORMS, values: { n: a.size } },
    workgroups: foldWorkgroups(Math.ceil(a.size / spec.workgroupSize), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'add',
  });
  return out;
}
