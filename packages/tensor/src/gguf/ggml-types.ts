// ggml's tensor types as GGUF stores them (ggml.h `enum ggml_type`, ggml-common.h block sizes): the
// ids, names, values per block and bytes per block, and what each becomes here — a plain safetensors
// dtype (F32/F16/BF16, integers) or a QuantType whose blocks stay as they are.
import type { QuantType } from '../quantized.js';
import type { SafetensorsDType } from '../tensor-data.js';

export interface GgmlType {
  readonly id: number;
  /** ggml_type_name(): 'f32', 'q8_0', 'q4_K', … */
  readonly name: string;
  /** Values per block (1 for plain types) and bytes per block. */
  readonly blockValues: number;
  readonly blockBytes: number;
  /** Plain types: the safetensors dtype of the same bytes. */
  readonly dtype?: SafetensorsDType;
  /** Block-quantized types read here. */
  readonly quant?: QuantType;
}

const plain = (id: number, name: string, bytes: number, dtype: SafetensorsDType): GgmlType => ({ id, name, blockValues: 1, blockBytes: bytes, dtype });
const quant = (id: number, name: QuantType, values: number, bytes: number): GgmlType => ({ id, name, blockValues: values, blockBytes: bytes, quant: name });

/** The types this reader handles, by ggml id. */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map([
  plain(0, 'f32', 4, 'F32'),
  plain(1, 'f16', 2, 'F16'),
  quant(2, 'q4_0', 32, 18),
  quant(3, 'q4_1', 32, 20),
  quant(6, 'q5_0', 32, 22),
  quant(7, 'q5_1', 32, 24),
  quant(8, 'q8_0', 32, 34),
  quant(12, 'q4_K', 256, 144),
  quant(13, 'q5_K', 256, 176),
  quant(14, 'q6_K', 256, 210),
  plain(24, 'i8', 1, 'I8'),
  plain(25, 'i16', 2, 'I16'),
  plain(26, 'i32', 4, 'I32'),
  plain(27, 'i64', 8, 'I64'),
  plain(28, 'f64', 8, 'F64'),
  plain(30, 'bf16', 2, 'BF16'),
].map((t) => [t.id, t]));

/** Names of the ggml types this reader does not handle, for messages (ggml.h at ggml 8e800ce). */
export const OTHER_GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  4: 'q4_2 (removed from ggml)', 5: 'q4_3 (removed from ggml)', 9: 'q8_1', 10: 'q2_K', 11: 'q3_K', 15: 'q8_K',
  16: 'iq2_xxs', 17: 'iq2_xs', 18: 'iq3_xxs', 19: 'iq1_s', 20: 'iq4_nl', 21: 'iq3_s', 22: 'iq2_s', 23: 'iq4_xs',
  29: 'iq1_m', 31: 'q4_0_4_4', 32: 'q4_0_4_8', 33: 'q4_0_8_8', 34: 'tq1_0', 35: 'tq2_0', 39: 'mxfp4', 40: 'nvfp4', 41: 'q1_0', 42: 'q2_0',
};

/** The ggml type of a name ('f16', 'q8_0', 'q4_K', …), for the writer. */
export function ggmlTypeByName(name: string): GgmlType | undefined {
  for (const t of GGML_TYPES.values()) if (t.name === name) return t;
  return undefined;
}

/** The type a QuantType is stored as. */
export function ggmlTypeOfQuant(q: QuantType): GgmlType {
  return ggmlTypeByName(q)!;
}

/** Bytes of `count` values of type `t` (count a multiple of the block size). */
export function ggmlBytes(t: GgmlType, count: number): number {
  return (count / t.blockValues) * t.blockBytes;
}
