// conv2d: out = act(conv(x, weight) + bias) + residual on NHWC images, as torch.nn.functional.conv2d
// (zero padding, dilation 1, groups 1) with an optional nearest 2× upsampling of x read on the fly.
//
// Legend: x [B, H, W, C] (C = Cin), weight OHWI [N, KH, KW, C] (N = Cout; conv2dWeightFromOIHW makes
// it from PyTorch's OIHW), out [B, Ho, Wo, N]; with upsample u the image read is (u·H) × (u·W);
// Ho = ⌊(u·H + pad_t + pad_b − KH) / stride⌋ + 1 (Wo alike).
//
// An implicit GEMM per sample: M = Ho·Wo output pixels, K = KH·KW·C, B = the weight rows. The kernels
// are matmul's (gemm-wgsl.ts): the A "row" of output pixel (oy, ox) is gathered tap by tap from x —
// for each tap one pixel address (or padding) per row, then the C channels of that pixel stream
// through the register tile with vector loads. The 2× upsampling is folded into that address
// (source pixel = upsampled pixel / 2), so the 4× larger image never exists. A 1×1, stride-1,
// unpadded conv is the plain matmul kernel (same math, no address arithmetic).
//
// Fusions: bias [N] or per-sample [B, N] (ResnetBlock2D folds its time embedding into conv1's bias),
// activation, residual [B, Ho, Wo, N] added last (the block's skip). Past maxStorageBufferBindingSize,
// x / out / residual are split into chunks of output rows, each binding the input rows it reads.
// A QuantizedWeight keeps GGUF's OIHW rows: its kernels walk K channel-major (quantized-gemm-wgsl.ts).
import { formatShape, InvalidArgumentError, ShapeError, type QuantizedWeight, type Tensor } from '@ssd/tensor';
import { gemmSpec, recordGemm, type GemmProblem, type GemmTile } from './gemm.js';
import type { GemmVariant } from './gemm-wgsl.js';
import { expectQuantized, isQuantizedWeight, recordQuantizedGemm } from './quantized-gemm.js';
import type { Activation } from './shader.js';
import { expectConvEpilogue, expectDtype, expectFloat, expectRank } from './validate.js';

export { conv2dWeightFromOIHW, conv2dWeightShape } from './conv2d-weights.js';

export interface Conv2dOptions {
  /** [Cout], or [B, Cout]: a per-sample bias. */
  bias?: Tensor;
  stride?: 1 | 2;
  /** Zero padding: all sides, or [top, left, bottom, right]. */
  padding?: number | readonly [top: number, left: number, bottom: number, right: number];
  /** [B, Ho, Wo, Cout], added after the activation. */
  residual?: Tensor;
  activation?: Activation;
  /** Nearest-neighbour 2× upsampling of x (Upsample2D → conv) fused into the gather. */
  upsample?: 1 | 2;
  /** Kernel variant (tests, bench); default: chooseGemmVariant(ctx). */
  force?: GemmVariant;
  /** Tile specialisation (bench/tuning). */
  tile?: GemmTile;
}

/**
 * NHWC implicit-GEMM convolution. x [B, H, W, Cin]; weight OHWI [Cout, KH, KW, Cin], or a QuantizedWeight
 * in its file's OIHW shape [Cout, Cin, KH, KW] (dequantized in the kernel, K in OIHW order); out [B, Ho, Wo, Cout].
 */
export function conv2d(x: Tensor, weight: Tensor | QuantizedWeight, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  expectFloat(op, 'x', x);
  expectRank(op, 'x', x, 4, '[B, H, W, Cin]');
  const [B, H, W, C] = x.shape;
  const quant = isQuantizedWeight(weight) ? weight.type : undefined;
  let N: number, kh: number, kw: number;
  if (isQuantizedWeight(weight)) {
    [N, , kh, kw] = weight.shape;
    if (weight.shape.length !== 4 || weight.shape[1] !== C) throw new ShapeError(op, 'weight', `OIHW [Cout, ${C}, KH, KW] (Cin of x ${formatShape(x.shape)})`, formatShape(weight.shape));
    expectQuantized(op, 'weight', weight, N, C * kh * kw);
  } else {
    expectDtype(op, 'weight', weight, x.dtype);
    expectRank(op, 'weight', weight, 4, '[Cout, KH, KW, Cin] (conv2dWeightFromOIHW)');
    let wc: number;
    [N, kh, kw, wc] = weight.shape;
    if (wc !== C) throw new ShapeError(op, 'weight', `[Cout, KH, KW, ${C}] (Cin of x ${formatShape(x.shape)})`, formatShape(weight.shape));
  }
  const stride = opts.stride ?? 1;
  const up = opts.upsample ?? 1;
  if (stride !== 1 && stride !== 2) throw new InvalidArgumentError(`conv2d: stride must be 1 or 2, got ${stride}`);
  if (up !== 1 && up !== 2) throw new InvalidArgumentError(`conv2d: upsample must be 1 or 2, got ${up}`);
  const pad = typeof opts.padding === 'number' || opts.padding === undefined ? Array(4).fill(opts.padding ?? 0) : [...opts.padding];
  if (pad.length !== 4 || pad.some((p) => !Number.isInteger(p) || p < 0)) throw new InvalidArgumentError(`conv2d: padding must be a non-negative integer or [top, left, bottom, right], got ${JSON.stringify(opts.padding)}`);
  const [pt, pl, pb, pr] = pad;
  const Ho = Math.floor((up * H + pt + pb - kh) / stride) + 1;
  const Wo = Math.floor((up * W + pl + pr - kw) / stride) + 1;
  if (Ho < 1 || Wo < 1) throw new ShapeError(op, 'x', `an image of at least ${kh}×${kw} after upsampling and padding`, formatShape(x.shape));
  const outShape = [B, Ho, Wo, N];
  const biasBatchStride = expectConvEpilogue(op, x, opts, outShape);
  if (C === 0) throw new ShapeError(op, 'x', '[B, H, W, Cin] with Cin ≥ 1', formatShape(x.shape));

  const ctx = x.ctx;
  const out = ctx.empty(outShape, x.dtype, op);
  if (out.size === 0) return out;
  const common = { op, a: x, b: isQuantizedWeight(weight) ? weight.data : weight, bias: opts.bias, residual: opts.residual, out, batches: B, N, bBatchStride: 0, biasBatchStride, activation: opts.activation ?? 'none' };
  const pointwise = kh === 1 && kw === 1 && stride === 1 && up === 1 && pt + pl + pb + pr === 0;
  const problem: GemmProblem = pointwise
    ? { ...common, M: H * W, K: C, aBatchStride: H * W * C }
    : { ...common, M: Ho * Wo, K: kh * kw * C, aBatchStride: H * W * C, conv: { kh, kw, stride, upsample: up, H, W, C, Ho, Wo, padT: pt, padL: pl } };
  try {
    if (quant) recordQuantizedGemm(ctx, problem, quant, opts);
    else recordGemm(ctx, problem, gemmSpec(ctx, problem, opts));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
