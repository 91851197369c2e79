// Linear combinations and dtype casts: combine (Σ coefᵢ·xᵢ over ≤ 4 same-shape tensors: scheduler
// steps, CFG's (1 − g)·uncond + g·cond), guidance (uncond + g·(cond − uncond) read straight from the
// UNet's batched [2B, ...] output, no copies) and cast (f32 ⇄ f16).
//
// All three are flat ops (windows.ts): vec4 when the element count allows, FLAT_PER vectors per
// invocation, windowed past maxStorageBufferBindingSize. Inputs may mix f16 and f32 (each binding is
// declared with its own type); the math is f32 and the output dtype is chosen by the caller.
import { DeviceLimitError, DTypeError, formatShape, InvalidArgumentError, prologue, ShapeError, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { expectFloat } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_WG, flatUniforms } from './windows.js';

type FloatDType = 'f32' | 'f16';

/** f16 storage needs shader-f16 in every kernel that touches it. */
function requireF16(ctx: GpuContext, op: string, dtypes: readonly DType[]): void {
  if (dtypes.includes('f16') && !ctx.f16) throw new DeviceLimitError('feature shader-f16', 'present', 'absent', `${op} on f16 tensors`);
}

function storageType(dtype: DType, vec: 1 | 4): string {
  return vec === 4 ? `vec4<${dtype}>` : dtype;
}

// ---------------------------------------------------------------------------------------- combine

const MAX_TERMS = 4;

interface CombineSpec {
  readonly dtypes: readonly DType[];
  readonly outDtype: DType;
  readonly vec: 1 | 4;
}

const COMBINE_UNIFORMS = flatUniforms(MAX_TERMS, [...Array(MAX_TERMS).keys()].map((k) => [`c${k}`, 'f32'] as const));

function combineWgsl(spec: CombineSpec): string {
  const av = spec.vec === 4 ? 'A4' : 'A';
  const decls = spec.dtypes.map((d, k) => `@group(0) @binding(${k + 1}) var<storage, read> x${k}: array<${storageType(d, spec.vec)}>;`);
  const terms = spec.dtypes.map((_, k) => `${av}(x${k}[i + u.off${k}]) * u.c${k}`);
  return (
    prologue({ dtype: spec.outDtype, uniforms: COMBINE_UNIFORMS, consts: { WG: FLAT_WG }, f16: spec.dtypes.includes('f16') }) +
    decls.join('\n') +
    `\n@group(0) @binding(${spec.dtypes.length + 1}) var<storage, read_write> out: array<${spec.vec === 4 ? 'S4' : 'S'}>;\n` +
    `fn apply(i: u32) { out[i] = ${spec.vec === 4 ? 'S4' : 'S'}(${terms.join(' + ')}); }\n` +
    FLAT_MAIN_WGSL
  );
}

/**
 * Σ coefᵢ·xᵢ over 1–4 same-shape tensors (f16 and f32 may mix), in f32. The output dtype is
 * `opts.outDtype`, else the first term's dtype. Coefficients are rounded to f32.
 */
export function combine(terms: ReadonlyArray<readonly [Tensor, number]>, opts: { outDtype?: DType } = {}): Tensor {
  const op = 'combine';
  if (terms.length < 1 || terms.length > MAX_TERMS) throw new InvalidArgumentError(`${op}: takes 1 to ${MAX_TERMS} terms, got ${terms.length}`);
  const first = terms[0][0];
  terms.forEach(([t, c], k) => {
    expectFloat(op, `terms[${k}]`, t);
    if (formatShape(t.shape) !== formatShape(first.shape)) throw new ShapeError(op, `terms[${k}]`, formatShape(first.shape), formatShape(t.shape));
    if (!Number.isFinite(c)) throw new InvalidArgumentError(`${op}: coefficient ${k} is ${c}`);
  });
  const outDtype = opts.outDtype ?? first.dtype;
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new DTypeError(op, 'outDtype', 'f32 or f16', outDtype);
  const ctx = first.ctx;
  const dtypes = terms.map(([t]) => t.dtype);
  requireF16(ctx, op, [...dtypes, outDtype]);
  const out = ctx.empty(first.shape, outDtype, op);
  if (out.size === 0) return out;
  const vec = out.size % 4 === 0 ? 4 : 1;
  const spec: CombineSpec = Object.freeze({ dtypes, outDtype, vec });
  const values: Record<string, number> = {};
  for (let k = 0; k < MAX_TERMS; k++) values[`c${k}`] = terms[k]?.[1] ?? 0;
  for (let k = terms.length; k < MAX_TERMS; k++) values[`off${k}`] = 0;
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('combine', spec, combineWgsl),
    label: `combine[${dtypes.join(',')}→${outDtype} v${vec}]`,
    n: out.size,
    vec,
    inputs: terms.map(([t]) => ({ t })),
    out,
    layout: COMBINE_UNIFORMS,
    values,
  });
  return out;
}

// ---------------------------------------------------------------------------------------- guidance

interface GuidanceSpec {
  readonly dtype: DType;
  readonly outDtype: DType;
  readonly vec: 1 | 4;
}

const GUIDANCE_UNIFORMS = flatUniforms(2, [['g', 'f32']]);

function guidanceWgsl(spec: GuidanceSpec): string {
  const [av, sv] = spec.vec === 4 ? ['A4', 'S4'] : ['A', 'S'];
  return (
    prologue({ dtype: spec.outDtype, uniforms: GUIDANCE_UNIFORMS, consts: { WG: FLAT_WG }, f16: spec.dtype === 'f16' }) +
    `alias XV = ${storageType(spec.dtype, spec.vec)};\nalias AV = ${av};\nalias SV = ${sv};\n` +
    /* wgsl */ `
// the same buffer bound twice (both read-only): the uncond half and the cond half of x
@group(0) @binding(1) var<storage, read> uncond: array<XV>;
@group(0) @binding(2) var<storage, read> cond: array<XV>;
@group(0) @binding(3) var<storage, read_write> out: array<SV>;
fn apply(i: u32) {
  let un = AV(uncond[i + u.off0]);
  out[i] = SV(un + u.g * (AV(cond[i + u.off1]) - un));
}
` +
    FLAT_MAIN_WGSL
  );
}

/**
 * Classifier-free guidance on a batched model output x [2B, ...] = [uncond; cond]:
 * uncond + g·(cond − uncond) → [B, ...], in f32 (diffusers' StableDiffusionXLPipeline.__call__).
 * The output dtype is `opts.outDtype`, else x's.
 */
export function guidance(x: Tensor, g: number, opts: { outDtype?: DType } = {}): Tensor {
  const op = 'guidance';
  expectFloat(op, 'x', x);
  if (x.rank < 1 || x.shape[0] % 2 !== 0) throw new ShapeError(op, 'x', '[2B, ...] (uncond then cond)', formatShape(x.shape));
  if (!Number.isFinite(g)) throw new InvalidArgumentError(`${op}: guidance scale is ${g}`);
  const outDtype = opts.outDtype ?? x.dtype;
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new DTypeError(op, 'outDtype', 'f32 or f16', outDtype);
  const ctx = x.ctx;
  requireF16(ctx, op, [x.dtype, outDtype]);
  const out = ctx.empty([x.shape[0] / 2, ...x.shape.slice(1)], outDtype, op);
  const half = out.size;
  if (half === 0) return out;
  const vec = half % 4 === 0 ? 4 : 1;
  const spec: GuidanceSpec = Object.freeze({ dtype: x.dtype, outDtype, vec });
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('guidance', spec, guidanceWgsl),
    label: `guidance[${x.dtype}→${outDtype} v${vec}]`,
    n: half,
    vec,
    inputs: [{ t: x }, { t: x, base: half }],
    out,
    layout: GUIDANCE_UNIFORMS,
    values: { g },
  });
  return out;
}

// ---------------------------------------------------------------------------------------- cast

interface CastSpec {
  readonly from: DType;
  readonly to: DType;
  readonly vec: 1 | 4;
}

const CAST_UNIFORMS = flatUniforms(1);

function castWgsl(spec: CastSpec): string {
  return (
    prologue({ dtype: spec.to, uniforms: CAST_UNIFORMS, consts: { WG: FLAT_WG }, f16: spec.from === 'f16' }) +
    `alias XV = ${storageType(spec.from, spec.vec)};\nalias SV = ${spec.vec === 4 ? 'S4' : 'S'};\n` +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<XV>;
@group(0) @binding(2) var<storage, read_write> out: array<SV>;
fn apply(i: u32) { out[i] = SV(x[i + u.off0]); }
` +
    FLAT_MAIN_WGSL
  );
}

/**
 * x converted to `dtype` (f32 → f16 rounds to nearest even; beyond ±65504 gives ±inf as torch's
 * `.half()`). The same dtype gives a copy.
 */
export function cast(x: Tensor, dtype: FloatDType): Tensor {
  const op = 'cast';
  expectFloat(op, 'x', x);
  if (dtype !== 'f32' && dtype !== 'f16') throw new DTypeError(op, 'dtype', 'f32 or f16', dtype);
  const ctx = x.ctx;
  if (dtype === x.dtype) return ctx.clone(x, op);
  requireF16(ctx, op, [x.dtype, dtype]);
  const out = ctx.empty(x.shape, dtype, op);
  if (out.size === 0) return out;
  const vec = x.size % 4 === 0 ? 4 : 1;
  const spec: CastSpec = Object.freeze({ from: x.dtype, to: dtype, vec });
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('cast', spec, castWgsl),
    label: `cast[${x.dtype}→${dtype} v${vec}]`,
    n: x.size,
    vec,
    inputs: [{ t: x }],
    out,
    layout: CAST_UNIFORMS,
  });
  return out;
}
