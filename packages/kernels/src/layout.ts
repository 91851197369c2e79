// Layout ops: nearest 2× upsampling (diffusers' Upsample2D before its conv), channel concat (the
// UNet's skip connections: current first, skip second), batch concat (CFG's [uncond, cond]) and the
// NCHW ⇄ NHWC transposes used at the API edge (latents in/out, fixtures).
//
// Legend: B batch, H/W spatial, C channels; V = vector width along C (4, 2 or 1, the widest dividing
// every channel count involved); CV = C/V. All are pure data movement in any dtype (f32, f16, i32,
// u32), one invocation per FLAT_PER vectors (windows.ts's entry point): upsampling reads one
// vector and writes its 2×2 copies; concat writes one output vector per step; the transposes move
// scalars. Batch concat is a buffer copy (a kernel only when an f16 part is not 4-byte aligned).
import { DeviceLimitError, DTYPE_BYTES, DTypeError, formatShape, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor, type UniformLayout } from '@ssd/tensor';
import { expectRank } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_PER, FLAT_WG, flatUniforms, requireBindable } from './windows.js';

type Vec = 1 | 2 | 4;

function vecFor(...channels: number[]): Vec {
  return channels.every((c) => c % 4 === 0) ? 4 : channels.every((c) => c % 2 === 0) ? 2 : 1;
}

function storage(vec: Vec): string {
  return vec === 4 ? 'S4' : vec === 2 ? 'S2' : 'S';
}

/** f16 storage needs shader-f16 in every kernel that touches it. */
function requireF16(ctx: GpuContext, op: string, dtype: DType): void {
  if (dtype === 'f16' && !ctx.f16) throw new DeviceLimitError('feature shader-f16', 'present', 'absent', `${op} on f16 tensors`);
}

// ---------------------------------------------------------------------------------------- upsample

interface UpsampleSpec {
  readonly dtype: DType;
  readonly vec: Vec;
}

const UPSAMPLE_UNIFORMS: UniformLayout = flatUniforms(1, [['h', 'u32'], ['w', 'u32'], ['cv', 'u32'], ['start', 'u32']]);

function upsampleWgsl(spec: UpsampleSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: UPSAMPLE_UNIFORMS, consts: { WG: FLAT_WG } }) +
    `alias SV = ${storage(spec.vec)};\n` +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<SV>;
@group(0) @binding(2) var<storage, read_write> out: array<SV>;
// i indexes input vectors (b, y, x, cv); out[b, 2y + dy, 2x + dx, cv] = x[b, y, x, cv]
fn apply(i: u32) {
  let v = x[i];
  let cv = i % u.cv;
  let p = i / u.cv;
  let xx = p % u.w;
  let q = p / u.w; // b · H + y
  let row = u.w * 2u * u.cv;
  let o = (q * 2u * row) + (xx * 2u) * u.cv + cv;
  out[o] = v;
  out[o + u.cv] = v;
  out[o + row] = v;
  out[o + row + u.cv] = v;
}
` +
    FLAT_MAIN_WGSL
  );
}

/** Nearest-neighbour 2× upsampling of NHWC x [B, H, W, C] → [B, 2H, 2W, C] (F.interpolate, scale 2). */
export function upsampleNearest2x(x: Tensor): Tensor {
  const op = 'upsampleNearest2x';
  expectRank(op, 'x', x, 4, '[B, H, W, C]');
  requireF16(x.ctx, op, x.dtype);
  const [B, H, W, C] = x.shape;
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize], ['the output', 4 * x.byteSize]]);
  const out = ctx.empty([B, 2 * H, 2 * W, C], x.dtype, op);
  if (x.size === 0) return out;
  const vec = vecFor(C);
  const spec: UpsampleSpec = Object.freeze({ dtype: x.dtype, vec });
  // one step per input vector; x and out are bound whole (out is 4× x)
  const pipeline = ctx.kernel('layout.upsample_nearest2x', spec, upsampleWgsl);
  const n = x.size / vec;
  ctx.dispatch({
    pipeline,
    bindings: [x, out],
    uniforms: { layout: UPSAMPLE_UNIFORMS, values: { n, per: FLAT_PER, off0: 0, h: H, w: W, cv: C / vec, start: 0 } },
    workgroups: flatWorkgroups(ctx, n),
    label: `layout.upsample_nearest2x[${x.dtype} v${vec}]`,
  });
  return out;
}

function flatWorkgroups(ctx: GpuContext, n: number): [number, number, number] {
  const count = Math.ceil(n / (FLAT_WG * FLAT_PER));
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (count <= max) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / max);
  return [Math.ceil(count / y), y, 1];
}

// ---------------------------------------------------------------------------------------- concat

interface ConcatSpec {
  readonly dtype: DType;
  readonly vec: Vec;
}

const CONCAT_UNIFORMS: UniformLayout = flatUniforms(2, [['ca', 'u32'], ['cb', 'u32'], ['start', 'u32']]);

function concatWgsl(spec: ConcatSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: CONCAT_UNIFORMS, consts: { WG: FLAT_WG } }) +
    `alias SV = ${storage(spec.vec)};\n` +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> a: array<SV>;
@group(0) @binding(2) var<storage, read> b: array<SV>;
@group(0) @binding(3) var<storage, read_write> out: array<SV>;
// out[r, j] = a[r, j] for j < Ca, else b[r, j − Ca] (in vectors; a and b bound whole)
fn apply(i: u32) {
  let g = i + u.start;
  let co = u.ca + u.cb;
  let r = g / co;
  let j = g % co;
  if (j < u.ca) {
    out[i] = a[r * u.ca + j];
  } else {
    out[i] = b[r * u.cb + (j - u.ca)];
  }
}
` +
    FLAT_MAIN_WGSL
  );
}

/** Concatenates along the last axis: a [..., Ca] ++ b [..., Cb] → [..., Ca + Cb] (same leading shape and dtype). */
export function concatChannels(a: Tensor, b: Tensor): Tensor {
  const op = 'concatChannels';
  if (a.rank < 1) throw new ShapeError(op, 'a', '[..., Ca]', formatShape(a.shape));
  if (b.dtype !== a.dtype) throw new DTypeError(op, 'b', a.dtype, b.dtype);
  requireF16(a.ctx, op, a.dtype);
  const lead = a.shape.slice(0, -1);
  if (b.rank !== a.rank || b.shape.slice(0, -1).some((d, i) => d !== lead[i])) {
    throw new ShapeError(op, 'b', `[${[...lead, 'Cb'].join(', ')}]`, formatShape(b.shape));
  }
  const ca = a.shape[a.rank - 1];
  const cb = b.shape[b.rank - 1];
  const ctx = a.ctx;
  requireBindable(ctx, op, [['a', a.byteSize], ['b', b.byteSize]]);
  const out = ctx.empty([...lead, ca + cb], a.dtype, op);
  if (out.size === 0) return out;
  const vec = vecFor(ca, cb);
  const spec: ConcatSpec = Object.freeze({ dtype: a.dtype, vec });
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('layout.concat_channels', spec, concatWgsl),
    label: `layout.concat_channels[${a.dtype} v${vec}]`,
    n: out.size,
    vec,
    inputs: [
      { t: a, whole: true },
      { t: b, whole: true },
    ],
    out,
    layout: CONCAT_UNIFORMS,
    values: { ca: ca / vec, cb: cb / vec },
  });
  return out;
}

interface PlaceSpec {
  readonly dtype: DType;
}

const PLACE_UNIFORMS: UniformLayout = flatUniforms(1, [['dst', 'u32']]);

function placeWgsl(spec: PlaceSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: PLACE_UNIFORMS, consts: { WG: FLAT_WG } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<S>;
fn apply(i: u32) { out[u.dst + i] = x[i]; }
` +
    FLAT_MAIN_WGSL
  );
}

/** Concatenates along axis 0 (same trailing shape and dtype): CFG's [uncond, cond] batch. */
export function concatBatch(tensors: Tensor[]): Tensor {
  const op = 'concatBatch';
  if (tensors.length === 0) throw new InvalidArgumentError(`${op}: needs at least one tensor`);
  const first = tensors[0];
  if (first.rank < 1) throw new ShapeError(op, 'tensors[0]', '[B, ...]', formatShape(first.shape));
  const tail = first.shape.slice(1);
  tensors.forEach((t, k) => {
    if (t.dtype !== first.dtype) throw new DTypeError(op, `tensors[${k}]`, first.dtype, t.dtype);
    if (t.rank !== first.rank || t.shape.slice(1).some((d, i) => d !== tail[i])) {
      throw new ShapeError(op, `tensors[${k}]`, `[B${k}, ${tail.join(', ')}]`, formatShape(t.shape));
    }
  });
  const ctx = first.ctx;
  const out = ctx.empty([tensors.reduce((s, t) => s + t.shape[0], 0), ...tail], first.dtype, op);
  const bytes = DTYPE_BYTES[first.dtype];
  let at = 0;
  for (const t of tensors) {
    const size = t.byteSize;
    if ((at * bytes) % 4 === 0 && size % 4 === 0) {
      if (size > 0) ctx.copyBuffer(t.buffer, 0, out.buffer, at * bytes, size);
    } else {
      // an f16 part of odd size: copy buffers work in 4-byte units, so place it with a kernel
      requireF16(ctx, op, first.dtype);
      const n = t.size;
      ctx.dispatch({
        pipeline: ctx.kernel('layout.place', Object.freeze<PlaceSpec>({ dtype: first.dtype }), placeWgsl),
        bindings: [t, out],
        uniforms: { layout: PLACE_UNIFORMS, values: { n, per: FLAT_PER, off0: 0, dst: at } },
        workgroups: flatWorkgroups(ctx, n),
        label: `layout.place[${first.dtype}]`,
      });
    }
    at += t.size;
  }
  return out;
}

// ---------------------------------------------------------------------------------------- transpose

interface TransposeSpec {
  readonly dtype: DType;
}

const TRANSPOSE_UNIFORMS: UniformLayout = flatUniforms(1, [['rows', 'u32'], ['cols', 'u32'], ['start', 'u32']]);

function transposeWgsl(spec: TransposeSpec): string {
  return (
    prologue({ dtype: spec.dtype, uniforms: TRANSPOSE_UNIFORMS, consts: { WG: FLAT_WG } }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<S>;
@group(0) @binding(2) var<storage, read_write> out: array<S>;
// per sample: out[c, r] = x[r, c] for x [rows, cols]; i indexes out (x bound whole)
fn apply(i: u32) {
  let g = i + u.start;
  let per = u.rows * u.cols;
  let b = g / per;
  let e = g % per;
  let r = e % u.rows;
  let c = e / u.rows;
  out[i] = x[b * per + r * u.cols + c];
}
` +
    FLAT_MAIN_WGSL
  );
}

function transpose(op: string, x: Tensor, rows: number, cols: number, outShape: number[]): Tensor {
  requireF16(x.ctx, op, x.dtype);
  const ctx = x.ctx;
  requireBindable(ctx, op, [['x', x.byteSize]]);
  const out = ctx.empty(outShape, x.dtype, op);
  if (out.size === 0) return out;
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('layout.transpose', Object.freeze<TransposeSpec>({ dtype: x.dtype }), transposeWgsl),
    label: `layout.${op}[${x.dtype}]`,
    n: out.size,
    vec: 1,
    inputs: [{ t: x, whole: true }],
    out,
    layout: TRANSPOSE_UNIFORMS,
    values: { rows, cols },
  });
  return out;
}

/** NCHW [B, C, H, W] → NHWC [B, H, W, C]. */
export function nchwToNhwc(x: Tensor): Tensor {
  expectRank('nchwToNhwc', 'x', x, 4, '[B, C, H, W]');
  const [B, C, H, W] = x.shape;
  // per sample x is [C, H·W]; out[p, c] = x[c, p]
  return transpose('nchwToNhwc', x, C, H * W, [B, H, W, C]);
}

/** NHWC [B, H, W, C] → NCHW [B, C, H, W]. */
export function nhwcToNchw(x: Tensor): Tensor {
  expectRank('nhwcToNchw', 'x', x, 4, '[B, H, W, C]');
  const [B, H, W, C] = x.shape;
  return transpose('nhwcToNchw', x, H * W, C, [B, C, H, W]);
}
