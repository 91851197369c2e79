// Pointwise maps of the image autoencoders that elementwise.ts does not offer:
//   relu(x)            = max(x, 0), NaN kept  TAESD's act_fn (AutoencoderTinyBlock, DecoderTiny)
//   affine(x, a, b)    = a·x + b              range changes: TAESD's `x·2 − 1` image output, `(x + 1)/2`
// Legend: x any shape, n = its element count. Flat ops (windows.ts): vec4 when n % 4 == 0, FLAT_PER
// vectors per invocation, split into windows past maxStorageBufferBindingSize. f16 or f32 storage,
// f32 math, one rounding at the store; affine's output dtype may differ from its input's (the f32
// image straight from an f16 decoder, with no separate cast).
import { DeviceLimitError, InvalidArgumentError, prologue, type DType, type Tensor } from '@ssd/tensor';
import { expectFloat } from './validate.js';
import { dispatchFlat, FLAT_MAIN_WGSL, FLAT_PER, FLAT_WG, flatUniforms } from './windows.js';

type FloatDType = 'f32' | 'f16';

interface PointwiseSpec {
  readonly op: 'relu' | 'affine';
  readonly inDtype: FloatDType;
  readonly outDtype: FloatDType;
  readonly vec: 1 | 4;
}

const UNIFORMS = flatUniforms(1, [['a', 'f32'], ['b', 'f32']]);

function wgsl(spec: PointwiseSpec): string {
  const t = (d: FloatDType) => (spec.vec === 4 ? `vec4<${d}>` : d);
  const av = spec.vec === 4 ? 'A4' : 'A';
  const uv = spec.vec === 4 ? 'vec4<u32>' : 'u32';
  // relu keeps NaN as torch does (max(NaN, 0) is 0 or NaN depending on the driver): a NaN must
  // survive to the output check that reports it, never turn into a plausible-looking pixel
  const body = spec.op === 'relu' ? `select(max(v, ${av}(0.0)), v, (bitcast<${uv}>(v) & ${uv}(0x7fffffffu)) > ${uv}(0x7f800000u))` : 'v * u.a + u.b';
  return (
    prologue({ dtype: spec.outDtype, uniforms: UNIFORMS, consts: { WG: FLAT_WG, PER: FLAT_PER }, f16: spec.inDtype === 'f16' }) +
    /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<${t(spec.inDtype)}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t(spec.outDtype)}>;
fn apply(i: u32) {
  let v = ${av}(x[i + u.off0]);
  out[i] = ${t(spec.outDtype)}(${body});
}
` +
    FLAT_MAIN_WGSL
  );
}

function pointwise(op: PointwiseSpec['op'], x: Tensor, outDtype: FloatDType, a: number, b: number): Tensor {
  expectFloat(op, 'x', x);
  const ctx = x.ctx;
  if ((x.dtype === 'f16' || outDtype === 'f16') && !ctx.f16) throw new DeviceLimitError('feature shader-f16', 'present', 'absent', `${op} on f16 tensors`);
  const vec = x.size % 4 === 0 ? 4 : 1;
  const spec: PointwiseSpec = Object.freeze({ op, inDtype: x.dtype as FloatDType, outDtype, vec });
  const out = ctx.empty(x.shape, outDtype, op);
  dispatchFlat(ctx, {
    pipeline: ctx.kernel('image.pointwise', spec, wgsl),
    label: `image.${op}[${x.dtype}→${outDtype} v${vec}]`,
    n: x.size,
    vec,
    inputs: [{ t: x }],
    out,
    layout: UNIFORMS,
    values: { a, b },
  });
  return out;
}

/** max(x, 0), elementwise, in x's dtype. */
export function relu(x: Tensor): Tensor {
  return pointwise('relu', x, x.dtype as FloatDType, 1, 0);
}

/** a·x + b, elementwise (a and b rounded to f32), computed in f32 and stored as `outDtype` (default x's). */
export function affine(x: Tensor, a: number, b: number, opts: { outDtype?: DType } = {}): Tensor {
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new InvalidArgumentError(`affine: a and b must be finite, got a=${a}, b=${b}`);
  const outDtype = opts.outDtype ?? x.dtype;
  if (outDtype !== 'f32' && outDtype !== 'f16') throw new InvalidArgumentError(`affine: outDtype must be f32 or f16, got ${outDtype}`);
  return pointwise('affine', x, outDtype, a, b);
}
