// Reductions: argmax along the last axis (CLIP's EOS position), a non-finite check that stays on the
// GPU, and the per-sample standard deviation of diffusers' rescale_noise_cfg.
//
// Legend: R rows of L elements (argmax); n elements (nonFiniteFlag); B samples of P elements (std).
// argmax: one workgroup of 64 per row, each invocation scans a strided slice keeping (value, first
//   index), then a workgroup tree; NaN counts as the maximum (torch.argmax propagates NaN).
// nonFiniteFlag: pure integer tests on the bit patterns (a compiler may fold `x != x` away): f32
//   words with all exponent bits set, f16 halves likewise (x bound as u32 words). A clear dispatch
//   zeroes the flag, then invocations that see a NaN/inf atomicOr it; windowed past the binding limit.
// stdPerSample: group-norm.ts's stats passes with one group per sample (Welford + Chan, exact for
//   offset data; windowed past the binding limit), finalised as sqrt(M2 / (P − 1)).
import { DeviceLimitError, formatShape, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { groupStats } from './group-norm.js';
import { expectFloat } from './validate.js';
import { bindWindow, FLAT_PER, FLAT_WG, planWindows, requireBindable } from './windows.js';

function requireF16(ctx: GpuContext, op: string, dtype: DType): void {
  if (dtype === 'f16' && !ctx.f16) throw new DeviceLimitError('feature shader-f16', 'present', 'absent', `${op} on f16 tensors`);
}

// ---------------------------------------------------------------------------------------- argmax

interface ArgmaxSpec {
  readonly dtype: DType;
  readonly workgroupSize: number;
}

const ARGMAX_UNIFORMS: UniformLayout = [
  ['rows', 'u32'],
  ['len', 'u32'],
  ['half', 'u32'], // WG / 2: the tree's first stride, a uniform so that LLVM does not unroll the tree
];

function argmaxWgsl(spec: ArgmaxSpec): string {
  const isInt = spec.dtype === 'i32' || spec.dtype === 'u32';
  // K: the comparison type; is_nan via the f32 bit pattern (f16 converts exactly, NaN stays NaN)
  const key = isInt
    ? `alias K = S;\nfn is_nan(v: K) -> bool { return false; }\nconst LOWEST = K(0);`
    : `alias K = f32;\nfn is_nan(v: K) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }\nconst LOWEST = -3.4028234663852886e38;`;
  return (
    prologue({ dtype: spec.dtype, uniforms: ARGMAX_UNIFORMS, consts: { WG: spec.workgroupSize } }) +
    key +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
var<workgroup> best_v: array<K, WG>;
var<workgroup> best_i: array<u32, WG>;

// (va, ia) beats (vb, ib): NaN first, then larger, then the smaller index
fn beats(va: K, ia: u32, vb: K, ib: u32) -> bool {
  if (is_nan(va) || is_nan(vb)) { return is_nan(va) && (!is_nan(vb) || ia < ib); }
  return va > vb || (va == vb && ia < ib);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = linear_workgroup(wid, nwg);
  if (row >= u.rows) { return; }
  var bv = K(LOWEST);
  var bi = 0xffffffffu;
  for (var j = lid; j < u.len; j += WG) {
    let v = K(x[row * u.len + j]);
    if (bi == 0xffffffffu || beats(v, j, bv, bi)) { bv = v; bi = j; }
  }
  best_v[lid] = bv;
  best_i[lid] = bi;
  workgroupBarrier();
  for (var s = u.half; s > 0u; s = s / 2u) {
    if (lid < s && best_i[lid + s] != 0xffffffffu) {
      if (best_i[lid] == 0xffffffffu || beats(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
        best_v[lid] = best_v[lid + s];
        best_i[lid] = best_i[lid + s];
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = i32(best_i[0]); }
}
`
  );
}

/** Index of the maximum along the last axis (the first one on ties; NaN wins, as torch.argmax) → i32 [...]. */
export function argmax(x: Tensor): Tensor {
  const op = 'argmax';
  if (x.rank < 1 || x.shape[x.rank - 1] === 0) throw new ShapeError(op, 'x', '[..., L ≥ 1]', formatShape(x.shape));
  requireF16(x.ctx, op, x.dtype);
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const len = x.shape[x.rank - 1];
  const rows = x.size / len;
  const out = ctx.empty(x.shape.slice(0, -1), 'i32', op);
  if (rows === 0) return out;
  const workgroupSize = 64;
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  const y = Math.ceil(rows / max);
  ctx.dispatch({
    pipeline: ctx.kernel('argmax', Object.freeze<ArgmaxSpec>({ dtype: x.dtype, workgroupSize }), argmaxWgsl),
    bindings: [x, out],
    uniforms: { layout: ARGMAX_UNIFORMS, values: { rows, len, half: workgroupSize >> 1 } },
    workgroups: [Math.ceil(rows / y), y, 1],
    label: `argmax[${x.dtype}]`,
  });
  return out;
}

// ---------------------------------------------------------------------------------------- nonFiniteFlag

interface NonFiniteSpec {
  readonly dtype: 'f32' | 'f16';
  readonly clear: boolean;
}

const NON_FINITE_UNIFORMS: UniformLayout = [
  ['n', 'u32'], // words in this window
  ['per', 'u32'], // words per invocation (a uniform so that the loop is not unrolled)
  ['elems', 'u32'], // elements in this window
  ['off', 'u32'], // first word inside the binding
];

function nonFiniteWgsl(spec: NonFiniteSpec): string {
  if (spec.clear) {
    return (
      prologue({ uniforms: [['n', 'u32']] }) +
      /* wgsl */ `
@group(0) @binding(1) var<storage, read_write> flag: array<u32>;
@compute @workgroup_size(1)
fn main() { flag[0] = u.n; }
`
    );
  }
  // f32: one element per word. f16: two per word; the high half of the last word may be padding
  const test =
    spec.dtype === 'f32'
      ? 'fn bad(w: u32, i: u32) -> bool { return (w & 0x7f800000u) == 0x7f800000u; }'
      : `fn bad(w: u32, i: u32) -> bool {
  let lo = (w & 0x7c00u) == 0x7c00u;
  let hi = (w & 0x7c000000u) == 0x7c000000u && 2u * i + 1u < u.elems;
  return lo || hi;
}`;
  return (
    prologue({ uniforms: NON_FINITE_UNIFORMS, consts: { WG: FLAT_WG } }) +
    test +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> flag: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let base = linear_workgroup(wid, nwg) * (WG * u.per) + lid;
  var found = false;
  for (var k = 0u; k < u.per; k++) {
    let i = base + k * WG;
    if (i < u.n && bad(x[i + u.off], i)) { found = true; }
  }
  if (found) { atomicOr(&flag[0], 1u); }
}
`
  );
}

/** 1 if any element of x is NaN or ±inf, else 0, as a u32 [1] tensor; nothing is read back. */
export function nonFiniteFlag(x: Tensor): Tensor {
  const op = 'nonFiniteFlag';
  expectFloat(op, 'x', x);
  const ctx = x.ctx;
  const dtype = x.dtype as 'f32' | 'f16';
  const flag = ctx.empty([1], 'u32', op);
  ctx.dispatch({
    pipeline: ctx.kernel('non_finite.clear', Object.freeze<NonFiniteSpec>({ dtype: 'f32', clear: true }), nonFiniteWgsl),
    bindings: [flag],
    uniforms: { layout: [['n', 'u32']], values: { n: 0 } },
    workgroups: [1],
    label: 'non_finite.clear',
  });
  if (x.size === 0) return flag;
  const pipeline = ctx.kernel('non_finite', Object.freeze<NonFiniteSpec>({ dtype, clear: false }), nonFiniteWgsl);
  const perWord = dtype === 'f16' ? 2 : 1;
  for (const w of planWindows(ctx, op, x.size, [dtype === 'f16' ? 2 : 4])) {
    const b = bindWindow(x, w.start, w.count);
    const words = Math.ceil(w.count / perWord);
    const max = ctx.limits.maxComputeWorkgroupsPerDimension;
    const groups = Math.ceil(words / (FLAT_WG * FLAT_PER));
    const y = Math.ceil(groups / max);
    ctx.dispatch({
      pipeline,
      bindings: [b.binding, flag],
      uniforms: { layout: NON_FINITE_UNIFORMS, values: { n: words, per: FLAT_PER, elems: w.count, off: b.offsetElems / perWord } },
      workgroups: [Math.max(1, Math.ceil(groups / y)), y, 1],
      label: `non_finite[${dtype}]`,
    });
  }
  return flag;
}

// ---------------------------------------------------------------------------------------- stdPerSample

/** Unbiased std over all axes but the first (torch.std(dim=1..)), for rescale_noise_cfg: x [B, ...] → f32 [B]. */
export function stdPerSample(x: Tensor): Tensor {
  const op = 'stdPerSample';
  expectFloat(op, 'x', x);
  if (x.rank < 2 || x.size === 0) throw new ShapeError(op, 'x', '[B, ...] with ≥ 1 element per sample', formatShape(x.shape));
  requireF16(x.ctx, op, x.dtype);
  const B = x.shape[0];
  const P = x.size / B;
  if (P < 2) throw new InvalidArgumentError(`${op}: the unbiased std needs ≥ 2 elements per sample, got ${P}`);
  // view each sample as [P / C, C] with C the largest of 256, 128, … dividing P: the stats pass
  // then reads whole vectors and runs one invocation per (chunk of rows, channel vector)
  let C = 256;
  while (P % C !== 0) C /= 2;
  return groupStats(x, B, P / C, C, 1, 'std', 0, op);
}
