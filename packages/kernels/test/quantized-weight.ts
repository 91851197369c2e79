// Test helpers for the quantized GEMMs: a QuantizedWeight on the GPU from block bytes (as a GGUF reader
// hands one over: the bytes zero-padded to whole u32 words), and its float64 values.
import { QUANT_BLOCKS, type GpuContext, type QuantizedWeight, type QuantType } from '@ssd/tensor';
import type { GemmTile, GemmVariant } from '../src/matmul.js';
import { dequantizeRef, quantizeRef, randomBlocks } from './reference/quantized.js';
import { randomArray } from '../../../testing/index.js';

export const QUANT_TYPES: readonly QuantType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_K', 'q5_K', 'q6_K'];

/** The variants with small tiles (fast lavapipe compiles) that leave ragged edges at the tests' sizes. */
export function quantPaths(ctx: GpuContext): readonly { name: GemmVariant; tile: GemmTile }[] {
  const sg = ctx.info.subgroupMinSize ?? 8;
  return [
    { name: 'portable', tile: { m: 2, n: 2, lanes: 8 } },
    { name: 'subgroups', tile: { m: sg, n: 2, lanes: sg } },
    { name: 'tiled', tile: { m: 32, n: 32 } },
  ];
}

/**
 * Tolerances (rel-L2 vs float64). The weight values are exact in f32 (d·q products of at most 24
 * bits) but for one rounding in q6_K's d·sc·q and the min subtraction, so f32 gets the float GEMM's
 * bound; measured on lavapipe over these tests: ≤ 5.7e-7 (f32) and ≤ 2.4e-4 (f16: the output's rounding).
 */
export const QUANT_TOL: Readonly<Record<'f32' | 'f16', number>> = { f32: 1e-5, f16: 5e-3 };

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
