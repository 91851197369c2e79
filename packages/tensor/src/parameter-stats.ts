// Parameter counts of loaded models: a weight tensor may hold the file's values in another form (a
// quantized weight's block words, a Winograd-transformed conv kernel), so the count comes from the file.
import type { Tensor } from './tensor.js';

/**
 * The file's parameters behind a weight tensor stored in another form: a quantized weight's block
 * words, a Winograd-transformed conv kernel (4× its 3×3 for F(4×4)).
 */
const LOADED_PARAMETERS = new WeakMap<Tensor, number>();

/** Parameter count (the file's elements) and GPU bytes (as loaded) of a model's weight tensors. */
export function parameterStats(params: readonly Tensor[]): { count: number; bytes: number } {
  return { count: params.reduce((a, t) => a + (LOADED_PARAMETERS.get(t) ?? t.size), 0), bytes: params.reduce((a, t) => a + t.byteSize, 0) };
}

/** Notes that `t` holds `parameters` of the file's values in another layout (WeightStore, when it allocates one). */
export function recordFileParameters(t: Tensor, parameters: number): void {
  LOADED_PARAMETERS.set(t, parameters);
}
