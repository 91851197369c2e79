// Sample clipping for the DDPM/DDIM schedulers (diffusers schedulers/scheduling_ddim.py):
// `clamp` — out = min(max(x, lo), hi) (clip_sample); `thresholdSample` — dynamic thresholding
// (Saharia et al. 2022, Imagen §2.3): per sample s = clamp(quantile(|x|, ratio), 1, maxValue), then
// out = clamp(x, −s, s) / s, exactly as diffusers' _threshold_sample with torch.quantile's 'linear'
// interpolation. Shapes: x [B, ...] f32 (the latents); the quantile is over each sample's P elements.
//
// The quantile runs on the GPU with no readback: one workgroup per sample selects the k-th smallest
// |x| by radix select over the f32 bit pattern (for x ≥ 0 the u32 order of the bits is the numeric
// order): four passes of an 8-bit digit histogram in workgroup memory, each narrowing the prefix.
// It selects ranks ⌊r⌋ and ⌈r⌉ (r = ratio·(P − 1) in f32, as torch) and lerps as torch.lerp does.
import { formatShape, InvalidArgumentError, prologue, ShapeError, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectDtype } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_WG, flatUniforms, requireBindable } from './windows.js';

const CLAMP_UNIFORMS = flatUniforms(1, [['lo', 'f32'], ['hi', 'f32']]);

function clampWgsl(): string {
  return (
    prologue({ dtype: 'f32', uniforms: CLAMP_UNIFORMS, consts: { WG: FLAT_WG } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
fn apply(i: u32) { out[i] = min(max(x[i + u.off0], u.lo), u.hi); }
` +
    FLAT_MAIN_WGSL
  );
}

/** min(max(x, lo), hi) elementwise (torch.clamp), f32. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  expectDtype('clamp', 'x', x, 'f32');
  if (!(lo <= hi)) throw new InvalidArgumentError(`clamp: lo = ${lo} must be ≤ hi = ${hi}`);
  const ctx = x.ctx;
  const out = ctx.empty(x.shape, 'f32', 'clamp');
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('threshold.clamp', Object.freeze({}), clampWgsl),
    label: 'threshold.clamp',
    n: x.size,
    vec: 1,
    inputs: [{ t: x }],
    out,
    layout: CLAMP_UNIFORMS,
    values: { lo, hi },
  });
  return out;
}

const SELECT_WG = 256;
const SELECT_UNIFORMS: UniformLayout = [['p', 'u32'], ['k_lo', 'u32'], ['k_hi', 'u32'], ['weight', 'f32'], ['max_value', 'f32']];

function selectWgsl(): string {
  return (
    prologue({ dtype: 'f32', uniforms: SELECT_UNIFORMS, consts: { WG: SELECT_WG } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> state: vec2<u32>; // (prefix, remaining rank)

// The bits of the k-th smallest |x| (0-based) of the sample starting at element base.
fn select_rank(base: u32, k: u32, lid: u32) -> u32 {
  if (lid == 0u) { state = vec2<u32>(0u, k); }
  var mask = 0u;
  for (var digit = 0u; digit < 4u; digit++) {
    let shift = 24u - 8u * digit;
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    let prefix = state.x;
    for (var i = lid; i < u.p; i += WG) {
      let b = bitcast<u32>(abs(x[base + i]));
      if ((b & mask) == prefix) { atomicAdd(&hist[(b >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var rank = state.y;
      var d = 0u;
      loop {
        let c = atomicLoad(&hist[d]);
        if (rank < c || d == 255u) { break; }
        rank -= c;
        d++;
      }
      state = vec2<u32>(state.x | (d << shift), rank);
    }
    mask |= 255u << shift;
    workgroupBarrier();
  }
  return state.x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let base = wid.x * u.p;
  let lo = bitcast<f32>(select_rank(base, u.k_lo, lid));
  workgroupBarrier();
  let hi = bitcast<f32>(select_rank(base, u.k_hi, lid));
  if (lid == 0u) {
    // torch.lerp: self + w·(end − self) for |w| < 0.5, else end − (end − self)·(1 − w)
    var q: f32;
    if (abs(u.weight) < 0.5) { q = lo + u.weight * (hi - lo); } else { q = hi - (hi - lo) * (1.0 - u.weight); }
    s[wid.x] = min(max(q, 1.0), u.max_value);
  }
}
`
  );
}

const APPLY_UNIFORMS = flatUniforms(2, [['p', 'u32'], ['start', 'u32']]);

function applyWgsl(): string {
  return (
    prologue({ dtype: 'f32', uniforms: APPLY_UNIFORMS, consts: { WG: FLAT_WG } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
fn apply(i: u32) {
  let v = s[(i + u.start) / u.p];
  out[i] = min(max(x[i + u.off0], -v), v) / v;
}
` +
    FLAT_MAIN_WGSL
  );
}

/** torch.quantile's rank of `ratio` among p sorted values: the two neighbouring ranks and the lerp weight (f32). */
export function quantileRanks(ratio: number, p: number): { lo: number; hi: number; weight: number } {
  const r = Math.fround(Math.fround(ratio) * (p - 1));
  const lo = Math.floor(r);
  return { lo, hi: Math.ceil(r), weight: Math.fround(r - lo) };
}

/**
 * diffusers' dynamic thresholding of x [B, ...] (f32): s_b = clamp(quantile(|x_b|, ratio), 1, maxValue),
 * out = clamp(x, −s_b, s_b) / s_b.
 */
export function thresholdSample(x: Tensor, ratio: number, maxValue: number): Tensor {
  const op = 'thresholdSample';
  expectDtype(op, 'x', x, 'f32');
  if (x.rank < 2 || x.size === 0) throw new ShapeError(op, 'x', '[B, ...] with ≥ 1 element per sample', formatShape(x.shape));
  if (!(ratio >= 0 && ratio <= 1)) throw new InvalidArgumentError(`${op}: ratio = ${ratio} must be in [0, 1] (dynamic_thresholding_ratio)`);
  // below 1, torch.clamp(s, min=1, max=maxValue) gives maxValue for every sample; the kernel's min(max(q, 1), maxValue) too
  if (!(maxValue > 0) || !Number.isFinite(maxValue)) throw new InvalidArgumentError(`${op}: maxValue = ${maxValue} must be a finite number > 0 (sample_max_value)`);
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const B = x.shape[0];
  const P = x.size / B;
  const r = quantileRanks(ratio, P);
  const s = ctx.empty([B], 'f32', 'threshold.s');
  ctx.dispatch({
    pipeline: ctx.kernel('threshold.select', Object.freeze({}), selectWgsl),
    bindings: [x, s],
    uniforms: { layout: SELECT_UNIFORMS, values: { p: P, k_lo: r.lo, k_hi: r.hi, weight: r.weight, max_value: maxValue } },
    workgroups: [B],
    label: 'threshold.select',
  });
  const out = ctx.empty(x.shape, 'f32', op);
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('threshold.apply', Object.freeze({}), applyWgsl),
    label: 'threshold.apply',
    n: x.size,
    vec: 1,
    inputs: [{ t: x }, { t: s, whole: true }],
    out,
    layout: APPLY_UNIFORMS,
    values: { p: P },
  });
  s.dispose();
  return out;
}
