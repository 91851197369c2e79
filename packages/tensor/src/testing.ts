/**
 * @ssd/tensor/testing — helpers for tests, benchmarks and tools, kept off the runtime face
 * (`@ssd/tensor`): synthetic safetensors files generated from a key list (real-size models without
 * the weights) and the parser of the reference key lists.
 */
export { parseKeyList, SyntheticSafetensorsSource, type KeyShape } from './synthetic.js';
