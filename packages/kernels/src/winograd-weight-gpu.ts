// winogradWeightTransform: U = G g Gᵀ on the GPU, for weights that are made on the GPU rather than
// loaded (a LoRA delta merged into a Winograd layer: U' = U + G (Σ cᵢ·Bᵢ·Aᵢ) Gᵀ).
// Legend: w OHWI [N, 3, 3, C]; out [T, N, C] (T = 16 or 36), optionally + residual [T, N, C] (same layout).
// One invocation per (n, c): nine loads, the transform in f32 (straight-line from winograd-weights.ts's
// G, as the activation transforms are), T stores — one rounding each. Bound whole: a weight past
// maxStorageBufferBindingSize is a DeviceLimitError from the dispatch.
import { foldWorkgroups, formatShape, prologue, ShapeError, type DType, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype, expectFloat, expectRank } from './validate.js';
import { sandwich } from './winograd-wgsl.js';
import { WINOGRAD, type WinogradTile } from './winograd-weights.js';

interface WeightSpec {
  readonly dtype: DType;
  readonly tile: WinogradTile;
  readonly hasResidual: boolean;
}

const WG = 64;
const UNIFORMS: UniformLayout = [
  ['count', 'u32'], // N · C
  ['nc', 'u32'],
];

function weightWgsl(spec: WeightSpec): string {
  const { n, G } = WINOGRAD[spec.tile];
  const loads: string[] = [];
  for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) loads.push(`let w${ky}_${kx} = f32(w[i / u.nc * u.nc * 9u + (${ky * 3 + kx}u * u.nc) + i % u.nc]);`);
  const stores: string[] = [];
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) stores.push(`out[${a * n + b}u * u.count + i] = S(u${a}_${b}${spec.hasResidual ? ` + f32(residual[${a * n + b}u * u.count + i])` : ''});`);
  }
  return `${prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG } })}alias LV = A;
@group(0) @binding(1) var<storage, read> w: array<S>;
${spec.hasResidual ? '@group(0) @binding(2) var<storage, read> residual: array<S>;\n@group(0) @binding(3)' : '@group(0) @binding(2)'} var<storage, read_write> out: array<S>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_workgroup(wid, nwg) * WG + lid; // n · C + c
  if (i >= u.count) { return; }
  ${loads.join('\n  ')}
  ${sandwich(G, 3, 'w', 'u').join('\n  ')}
  ${stores.join('\n  ')}
}
`;
}

/** w OHWI [N, 3, 3, C] → [T, N, C] (+ residual [T, N, C]), the layout conv2dWinograd reads. */
export function winogradWeightTransform(w: Tensor, tile: WinogradTile, opts: { residual?: Tensor } = {}): Tensor {
  const op = 'winogradWeightTransform';
  expectFloat(op, 'w', w);
  expectRank(op, 'w', w, 4, '[N, 3, 3, C] (OHWI)');
  const [N, kh, kw, C] = w.shape;
  if (kh !== 3 || kw !== 3) throw new ShapeError(op, 'w', '[N, 3, 3, C] (OHWI)', formatShape(w.shape));
  const T = WINOGRAD[tile].n ** 2;
  if (opts.residual) {
    expectDtype(op, 'residual', opts.residual, w.dtype);
    if (formatShape(opts.residual.shape) !== formatShape([T, N, C])) throw new ShapeError(op, 'residual', formatShape([T, N, C]), formatShape(opts.residual.shape));
  }
  const ctx = w.ctx;
  const out = ctx.empty([T, N, C], w.dtype, op);
  if (out.size === 0) return out;
  const spec: WeightSpec = Object.freeze({ dtype: w.dtype, tile, hasResidual: !!opts.residual });
  ctx.dispatch({
    pipeline: ctx.kernel('kernels.winograd.weight', spec, weightWgsl),
    bindings: opts.residual ? [w, opts.residual, out] : [w, out],
    uniforms: { layout: UNIFORMS, values: { count: N * C, nc: C } },
    workgroups: foldWorkgroups(Math.ceil((N * C) / WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: op,
  });
  return out;
}
