// The contract between quantized checkpoints (GGUF, @ssd/tensor) and the kernels that run them
// (@ssd/kernels): a weight that stays in its GGUF block format on the GPU and is dequantized inside the
// GEMM / conv tile load. Block layouts are ggml's (ggml-common.h): Q8_0 and Q4_0/Q4_1/Q5_0/Q5_1 in
// blocks of 32 values, the K-quants Q4_K/Q5_K/Q6_K in super-blocks of 256.
import type { Tensor } from './tensor.js';

export type QuantType = 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_K' | 'q5_K' | 'q6_K';

/** Values per block and bytes per block of each type (ggml's QK_* and sizeof(block_*)). */
export const QUANT_BLOCKS: Readonly<Record<QuantType, { readonly values: number; readonly bytes: number }>> = {
  q8_0: { values: 32, bytes: 34 },
  q4_0: { values: 32, bytes: 18 },
  q4_1: { values: 32, bytes: 20 },
  q5_0: { values: 32, bytes: 22 },
  q5_1: { values: 32, bytes: 24 },
  q4_K: { values: 256, bytes: 144 },
  q5_K: { values: 256, bytes: 176 },
  q6_K: { values: 256, bytes: 210 },
};

export interface QuantizedWeight {
  readonly kind: 'quantized';
  readonly type: QuantType;
  /** The PyTorch shape: [out, in] (Linear) or [O, I, kh, kw] (Conv2d). */
  readonly shape: readonly number[];
  /**
   * The tensor's bytes exactly as GGUF stores them — ggml order: the values of the PyTorch shape
   * flattened row-major (a conv's rows in OIHW order) and cut into consecutive blocks — zero-padded to a
   * multiple of 4 bytes, as a 'u32' tensor. The kernels address values by position over the whole
   * tensor, so a row may end inside a block (ComfyUI-GGUF's reshaped tensors); a row's length must be a
   * multiple of 32.
   */
  readonly data: Tensor;
  dispose(): void;
}

/** Bytes of a quantized tensor of `shape` whose rows (shape[0] of them) are whole blocks each. */
export function quantizedByteSize(type: QuantType, shape: readonly number[]): number {
  const { values, bytes } = QUANT_BLOCKS[type];
  const rowLen = shape.slice(1).reduce((a, b) => a * b, 1);
  if (rowLen % values) throw new RangeError(`quantizedByteSize: a ${type} row of ${rowLen} values is not a whole number of ${values}-value blocks`);
  return shape[0] * (rowLen / values) * bytes;
}
