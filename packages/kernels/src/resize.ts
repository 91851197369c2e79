// upsampleNearest: NHWC nearest-neighbour resize to an explicit size, as torch's
// F.interpolate(mode="nearest", size=...): src = min(floor(dst · (in/out)), in − 1) with the scale in
// f32. Used by Upsample2D when the latent is not a multiple of the UNet's overall down factor (the
// exact 2× case is fused into conv2d's input gather instead). One invocation per output vec of C.
import { foldWorkgroups, prologue, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectFloat, expectRank } from './validate.js';

interface ResizeSpec {
  readonly dtype: 'f32' | 'f16';
}

const UNIFORMS: UniformLayout = [
  ['n', 'u32'], ['c', 'u32'], ['hin', 'u32'], ['win', 'u32'], ['hout', 'u32'], ['wout', 'u32'], ['sh', 'f32'], ['sw', 'f32'],
];

function wgsl(spec: ResizeSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UNIFORMS, consts: { WG: 64 } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<S>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = linear_workgroup(wid, nwg) * WG + lid;
  if (i >= u.n) { return; }
  let ch = i % u.c;
  let p = i / u.c;
  let ox = p % u.wout;
  let q = p / u.wout;
  let oy = q % u.hout;
  let b = q / u.hout;
  let iy = min(u32(floor(f32(oy) * u.sh)), u.hin - 1u);
  let ix = min(u32(floor(f32(ox) * u.sw)), u.win - 1u);
  out[i] = x[((b * u.hin + iy) * u.win + ix) * u.c + ch];
}
`
  );
}

/** x [B, H, W, C] → [B, outH, outW, C], nearest neighbour as torch. */
export function upsampleNearest(x: Tensor, outH: number, outW: number): Tensor {
  expectRank('upsampleNearest', 'x', x, 4, '[B, H, W, C]');
  expectFloat('upsampleNearest', 'x', x);
  const [b, h, w, c] = x.shape;
  const ctx = x.ctx;
  const out = ctx.empty([b, outH, outW, c], x.dtype, 'upsampleNearest');
  const n = out.size;
  ctx.dispatch({
    pipeline: ctx.kernel('resize.nearest', { dtype: x.dtype } as ResizeSpec, wgsl),
    bindings: [x, out],
    uniforms: { layout: UNIFORMS, values: { n, c, hin: h, win: w, hout: outH, wout: outW, sh: Math.fround(h / outH), sw: Math.fround(w / outW) } },
    workgroups: foldWorkgroups(Math.ceil(n / 64), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'upsampleNearest',
  });
  return out;
}
