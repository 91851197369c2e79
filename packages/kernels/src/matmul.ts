// matmul / linear: y = act(x · weightᵀ + bias) + residual, as torch.nn.functional.linear followed by
// the activation and a skip add; batched A·Bᵀ with the same epilogue.
//
// Legend: x / a [..., M, K] rows, weight / b [N, K] (PyTorch Linear layout, K contiguous) or [B, N, K];
// out [..., M, N]; B batches. The kernels (gemm-wgsl.ts, gemm-subgroup.ts) are shared with conv2d:
// register-blocked tiles on CPU adapters (portable, or subgroup-broadcast when the adapter has
// subgroups), a workgroup-memory tiled kernel on GPUs — chosen in chooseGemmVariant (gemm.ts), with
// `force` and `tile` for tests and benchmarks. f16 or f32 storage, f32 accumulation, epilogue fused
// (bias before the activation, residual after it). Tensors past maxStorageBufferBindingSize are
// split into row chunks (gemm.ts); a weight past it is a DeviceLimitError. A QuantizedWeight (GGUF
// blocks) runs the quantized kernels of the same variant (quantized-gemm.ts).
import { formatShape, ShapeError, type QuantizedWeight, type QuantType, type Tensor } from '@ssd/tensor';
import { gemmSpec, recordGemm, type GemmTile } from './gemm.js';
import type { GemmVariant } from './gemm-wgsl.js';
import { expectQuantized, isQuantizedWeight, recordQuantizedGemm } from './quantized-gemm.js';
import type { Activation } from './shader.js';
import { expectDtype, expectFloat, expectRank } from './validate.js';

export type { GemmTile, GemmVariant };

export interface MatmulOptions {
  /** [N], added before the activation. */
  bias?: Tensor;
  activation?: Activation;
  /** Same shape as the output, added after the activation. */
  residual?: Tensor;
  /** Kernel variant (tests, bench); default: chooseGemmVariant(ctx). 'tiled' is the GPU kernel. */
  force?: GemmVariant;
  /** Tile specialisation (bench/tuning); see GemmTile. */
  tile?: GemmTile;
}

/**
 * y[..., N] = act(x[..., K] · weightᵀ + bias) + residual. weight is PyTorch Linear layout [N, K], or a
 * QuantizedWeight of shape [N, K] (or a 1×1 conv's [N, K, 1, 1]) dequantized in the kernel.
 */
export function linear(x: Tensor, weight: Tensor | QuantizedWeight, opts: MatmulOptions = {}): Tensor {
  const op = 'linear';
  expectFloat(op, 'x', x);
  if (isQuantizedWeight(weight)) return linearQuantized(x, weight, opts);
  expectDtype(op, 'weight', weight, x.dtype);
  expectRank(op, 'weight', weight, 2, '[N, K]');
  if (x.rank < 1) throw new ShapeError(op, 'x', '[..., K]', formatShape(x.shape));
  const K = x.shape[x.rank - 1];
  const [N, wk] = weight.shape;
  if (wk !== K) throw new ShapeError(op, 'weight', `[N, K] with K = ${K} (the last dim of x ${formatShape(x.shape)})`, formatShape(weight.shape));
  const M = x.size / Math.max(1, K);
  return gemm(op, x, weight, [...x.shape.slice(0, -1), N], { batches: 1, M, N, K, aBatchStride: M * K, bBatchStride: 0 }, opts);
}

/** Batched A·Bᵀ: a [B, M, K] or [M, K]; b [B, N, K] or [N, K] (shared by every batch); same epilogue. */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const op = 'matmul';
  expectFloat(op, 'a', a);
  expectDtype(op, 'b', b, a.dtype);
  expectRank(op, 'a', a, [2, 3], '[B, M, K] or [M, K]');
  expectRank(op, 'b', b, [2, 3], '[B, N, K] or [N, K]');
  const [M, K] = a.shape.slice(-2);
  const [N, bk] = b.shape.slice(-2);
  if (bk !== K) throw new ShapeError(op, 'b', `[..., N, K] with K = ${K} (from a ${formatShape(a.shape)})`, formatShape(b.shape));
  const aB = a.rank === 3 ? a.shape[0] : 1;
  const bB = b.rank === 3 ? b.shape[0] : 1;
  if (a.rank === 3 && b.rank === 3 && aB !== bB) throw new ShapeError(op, 'b', `[${aB}, N, K] (the batch of a)`, formatShape(b.shape));
  const batches = Math.max(aB, bB);
  const outShape = a.rank === 3 || b.rank === 3 ? [batches, M, N] : [M, N];
  return gemm(op, a, b, outShape, { batches, M, N, K, aBatchStride: a.rank === 3 ? M * K : 0, bBatchStride: b.rank === 3 ? N * K : 0 }, opts);
}

interface Dims {
  batches: number;
  M: number;
  N: number;
  K: number;
  aBatchStride: number;
  bBatchStride: number;
}

function linearQuantized(x: Tensor, weight: QuantizedWeight, opts: MatmulOptions): Tensor {
  const op = 'linear';
  const [N, wk, ...rest] = weight.shape;
  const K = x.rank ? x.shape[x.rank - 1] : 0;
  if (x.rank < 1 || wk !== K || !(rest.length === 0 || (rest.length === 2 && rest[0] === 1 && rest[1] === 1))) {
    throw new ShapeError(op, 'weight', `[N, K] or [N, K, 1, 1] with K = ${K} (the last dim of x ${formatShape(x.shape)})`, formatShape(weight.shape));
  }
  expectQuantized(op, 'weight', weight, N, K);
  const M = x.size / K;
  return gemm(op, x, weight.data, [...x.shape.slice(0, -1), N], { batches: 1, M, N, K, aBatchStride: M * K, bBatchStride: 0 }, opts, weight.type);
}

function gemm(op: string, a: Tensor, b: Tensor, outShape: number[], d: Dims, opts: MatmulOptions, quant?: QuantType): Tensor {
  if (opts.bias) {
    expectDtype(op, 'bias', opts.bias, a.dtype);
    if (opts.bias.rank !== 1 || opts.bias.shape[0] !== d.N) throw new ShapeError(op, 'bias', `[N] = [${d.N}]`, formatShape(opts.bias.shape));
  }
  if (opts.residual) {
    expectDtype(op, 'residual', opts.residual, a.dtype);
    if (formatShape(opts.residual.shape) !== formatShape(outShape)) throw new ShapeError(op, 'residual', `the output shape ${formatShape(outShape)}`, formatShape(opts.residual.shape));
  }
  if (d.K === 0) throw new ShapeError(op, 'a', '[..., K] with K ≥ 1', formatShape(a.shape));
  const ctx = a.ctx;
  const out = ctx.empty(outShape, a.dtype, op);
  if (out.size === 0) return out;
  const problem = { op, a, b, bias: opts.bias, residual: opts.residual, out, ...d, biasBatchStride: 0, activation: opts.activation ?? 'none' };
  try {
    if (quant) recordQuantizedGemm(ctx, problem, quant, opts);
    else recordGemm(ctx, problem, gemmSpec(ctx, problem, opts));
  } catch (e) {
    out.dispose();
    throw e;
  }
  return out;
}
