// Test helpers for the quantized GEMMs: a QuantizedWeight on the GPU from block bytes (as a GGUF reader
// hands one over: the bytes zero-padded to whole u32 words), and its float64 values.
import type { GpuContext, QuantizedWeight, QuantType } from '@ssd/tensor';
import { dequantizeRef, quantizeRef, randomBlocks } from './reference/quantized.js';
import { randomArray } from '../../../testing/index.js';
import { QUANT_BLOCKS } from '@ssd/tensor';

export function uploadQuantized(ctx: GpuContext, type: QuantType, shape: readonly number[], bytes: Uint8Array): QuantizedWeight {
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  const data = ctx.fromData(new Uint32Array(padded.buffer), [padded.byteLength / 4], 'u32', `${type} weight`);
  return { kind: 'quantized', type, shape, data, dispose: () => data.dispose() };
}

/**
 * A random weight of `shape` in `type` — every field random (`from: 'bits'`) or quantized from values
 * uniform in [-1, 1] (`from: 'values'`) — on the GPU, and its dequantized values (flat, row-major).
 */
export function randomQuantized(ctx: GpuContext, type: QuantType, shape: readonly number[], seed: string, from: 'bits' | 'values' = 'bits'): { w: QuantizedWeight; values: Float64Array } {
  const n = shape.reduce((a, d) => a * d, 1);
  const blocks = n / QUANT_BLOCKS[type].values;
  if (!Number.isInteger(blocks)) throw new Error(`randomQuantized: ${n} values are not whole ${type} blocks`);
  const bytes = from === 'bits' ? randomBlocks(type, blocks, seed) : quantizeRef(type, randomArray(n, seed));
  return { w: uploadQuantized(ctx, type, shape, bytes), values: dequantizeRef(type, bytes) };
}
