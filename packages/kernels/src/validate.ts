// Shape and dtype checks shared by the op functions. Each throws ShapeError / DTypeError naming the
// op, the argument, what was expected and what was found — before anything is recorded.
import { DTypeError, formatShape, ShapeError, type DType, type Tensor } from '@ssd/tensor';

export function expectFloat(op: string, arg: string, t: Tensor): void {
  if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new DTypeError(op, arg, 'f32 or f16', t.dtype);
}

export function expectDtype(op: string, arg: string, t: Tensor, dtype: DType): void {
  if (t.dtype !== dtype) throw new DTypeError(op, arg, dtype, t.dtype);
}

export function expectRank(op: string, arg: string, t: Tensor, rank: number | readonly number[], legend: string): void {
  const ok = typeof rank === 'number' ? t.rank === rank : rank.includes(t.rank);
  if (!ok) throw new ShapeError(op, arg, legend, formatShape(t.shape));
}

export function expectShape(op: string, arg: string, t: Tensor, shape: readonly number[], legend?: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(op, arg, legend ? `${legend} = ${formatShape(shape)}` : formatShape(shape), formatShape(t.shape));
  }
}

/** The last dimension of a tensor (the channel / feature axis in our layouts). */
export function lastDim(t: Tensor): number {
  return t.shape[t.shape.length - 1];
}

/** Product of all dimensions except the last. */
export function rows(t: Tensor): number {
  return t.size / Math.max(1, lastDim(t));
}

/**
 * A convolution's epilogue inputs for an NHWC output `outShape` [B, Ho, Wo, N]: bias [N] or per sample
 * [B, N], residual of the output's shape, both of x's dtype. Returns the bias's batch stride (0 or N).
 */
export function expectConvEpilogue(op: string, x: Tensor, opts: { bias?: Tensor; residual?: Tensor }, outShape: readonly number[]): number {
  const [B, , , N] = outShape;
  let biasBatchStride = 0;
  if (opts.bias) {
    expectDtype(op, 'bias', opts.bias, x.dtype);
    const b = opts.bias.shape;
    if (b.length === 2 && b[0] === B && b[1] === N) biasBatchStride = N;
    else if (!(b.length === 1 && b[0] === N)) throw new ShapeError(op, 'bias', `[${N}] or [${B}, ${N}]`, formatShape(b));
  }
  if (opts.residual) {
    expectDtype(op, 'residual', opts.residual, x.dtype);
    if (formatShape(opts.residual.shape) !== formatShape(outShape)) throw new ShapeError(op, 'residual', formatShape(outShape), formatShape(opts.residual.shape));
  }
  return biasBatchStride;
}
