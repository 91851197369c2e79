// Quantizing float32 values into ggml blocks with ggml's reference quantizers (quantize_row_*_ref):
// the deterministic algorithm ggml keeps "for deterministic creation of model files".
import { QUANT_BLOCKS, type QuantType } from '../quantized.js';
import { quantizeQ4_K, quantizeQ5_K, quantizeQ6_K } from './quantize-k.js';
import { quantizeQ4_0, quantizeQ4_1, quantizeQ5_0, quantizeQ5_1, quantizeQ8_0, type BlockQuantizer } from './quantize-legacy.js';

const QUANTIZERS: Record<QuantType, BlockQuantizer> = {
  q8_0: quantizeQ8_0,
  q4_0: quantizeQ4_0,
  q4_1: quantizeQ4_1,
  q5_0: quantizeQ5_0,
  q5_1: quantizeQ5_1,
  q4_K: quantizeQ4_K,
  q5_K: quantizeQ5_K,
  q6_K: quantizeQ6_K,
};

/** Quantizes `x` (a whole number of blocks: rows laid end to end) into `type`'s blocks. */
export function quantizeBlocks(type: QuantType, x: Float32Array, out?: Uint8Array): Uint8Array {
  const { values, bytes } = QUANT_BLOCKS[type];
  if (x.length % values) throw new RangeError(`quantizeBlocks: ${x.length} values are not whole ${type} blocks of ${values}`);
  const nb = x.length / values;
  const y = out ?? new Uint8Array(nb * bytes);
  const q = QUANTIZERS[type];
  for (let i = 0; i < nb; i++) q(x, i * values, y, i * bytes);
  return y;
}
