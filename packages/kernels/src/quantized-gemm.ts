// The quantized GEMM's host side: checks a QuantizedWeight against the problem, builds the spec (the
// float GEMM's variant and tile, plus the block format) and records it through gemm.ts's chunked
// recorder. linear and conv2d route here when handed a QuantizedWeight (matmul.ts, conv2d.ts).
//
// A weight's K (Linear: in; conv: I·KH·KW in OIHW order) must be a multiple of 32, the group the
// kernels decode; rows need not end on a block boundary (a K-quant row of 640 or 2880 values, as
// ComfyUI-GGUF reshapes such tensors), as long as the whole tensor is whole blocks.
import { DTypeError, formatShape, InvalidArgumentError, QUANT_BLOCKS, ShapeError, type GpuContext, type QuantizedWeight, type QuantType } from '@ssd/tensor';
import { gemmSpec, recordGemm, type GemmChoice, type GemmProblem } from './gemm.js';
import { quantizedRegisterWgsl, quantizedTiledWgsl, type QuantizedGemmSpec } from './quantized-gemm-wgsl.js';

/** The values one group of the kernels holds (a block, or a K-quant sub-block). */
export const QUANT_GROUP = 32;

/** True for a QuantizedWeight (the GGUF block bytes of a weight), false for a Tensor. */
export function isQuantizedWeight(w: unknown): w is QuantizedWeight {
  return typeof w === 'object' && w !== null && (w as { kind?: unknown }).kind === 'quantized';
}

/**
 * Checks that `w` holds `rows` weight rows of `rowLen` values in its format: K a multiple of 32, the
 * tensor whole blocks, and its u32 data at least that many bytes. Throws DTypeError / ShapeError.
 */
export function expectQuantized(op: string, arg: string, w: QuantizedWeight, rows: number, rowLen: number): void {
  const block = QUANT_BLOCKS[w.type as QuantType];
  if (!block) throw new InvalidArgumentError(`${op}: ${arg} has quantization type "${w.type}"; the kernels read ${Object.keys(QUANT_BLOCKS).join(', ')}`);
  if (w.data.dtype !== 'u32') throw new DTypeError(op, `${arg}.data`, 'u32 (the GGUF block bytes)', w.data.dtype);
  if (rowLen % QUANT_GROUP !== 0) {
    throw new ShapeError(op, arg, `rows of a multiple of ${QUANT_GROUP} values (the groups ${w.type} is decoded in; a row here has ${rowLen})`, formatShape(w.shape));
  }
  const values = rows * rowLen;
  if (values % block.values !== 0) throw new ShapeError(op, arg, `whole ${block.values}-value ${w.type} blocks (${values} values)`, formatShape(w.shape));
  const bytes = (values / block.values) * block.bytes;
  if (w.data.byteSize < bytes) {
    throw new ShapeError(op, `${arg}.data`, `${Math.ceil(bytes / 4)} u32 words (${bytes} bytes of ${w.type} for ${formatShape(w.shape)})`, formatShape(w.data.shape));
  }
}

/** The spec of a quantized problem on this context: the float GEMM's variant and tile, K steps of 8, K stages of 32. */
export function quantizedGemmSpec(ctx: GpuContext, p: GemmProblem, quant: QuantType, choice: GemmChoice = {}): QuantizedGemmSpec {
  const base = gemmSpec(ctx, p, choice);
  return Object.freeze({ ...base, vec: 8 as const, tileK: base.variant === 'tiled' ? QUANT_GROUP : 0, quant });
}

function wgslOf(spec: QuantizedGemmSpec): string {
  return spec.variant === 'tiled' ? quantizedTiledWgsl(spec) : quantizedRegisterWgsl(spec);
}

/** Records the problem (p.b = the weight's data) with the quantized kernel of `quant`. */
export function recordQuantizedGemm(ctx: GpuContext, p: GemmProblem, quant: QuantType, choice: GemmChoice = {}): void {
  const spec = quantizedGemmSpec(ctx, p, quant, choice);
  const pipeline = ctx.kernel(`kernels.gemm-quantized.${spec.variant}`, spec, wgslOf);
  recordGemm(ctx, p, spec, { pipeline, kv: p.K / QUANT_GROUP });
}
