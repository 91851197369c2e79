// A block-quantized GGUF tensor as a TensorEntry: `read` hands out float32 values (dequantized on the
// host, a byte range at a time, so any consumer — a converter, a dequantizing upload — works as with a
// float file), and `quantized` hands out the blocks as stored, for kernels that keep them.
import type { ByteSource } from '../byte-source.js';
import { shapeSize } from '../dtype.js';
import { QUANT_BLOCKS, type QuantType } from '../quantized.js';
import type { TensorEntry } from '../tensor-source.js';
import { dequantizeBlocks } from './dequantize.js';

export function quantizedEntry(source: ByteSource, name: string, type: QuantType, shape: readonly number[], begin: number): TensorEntry {
  const { values, bytes } = QUANT_BLOCKS[type];
  const count = shapeSize(shape);
  const blockBytes = (count / values) * bytes;
  const readBlocks = (offset: number, length: number, signal?: AbortSignal) => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > blockBytes) {
      throw new RangeError(`${source.name}: ${name}: block bytes [${offset}, ${offset + length}) are outside the tensor's ${blockBytes}`);
    }
    return source.read(begin + offset, length, signal);
  };
  return {
    dtype: 'F32', shape, byteLength: count * 4, file: source.name, stored: name,
    async read(offset, length, signal) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > count * 4) {
        throw new RangeError(`${source.name}: ${name}: bytes [${offset}, ${offset + length}) are outside the tensor's ${count * 4} (dequantized f32)`);
      }
      if (length === 0) return new Uint8Array(0);
      // the whole blocks covering the float range, dequantized, then the range cut out
      const b0 = Math.floor(offset / 4 / values);
      const b1 = Math.ceil((offset + length) / 4 / values);
      const floats = dequantizeBlocks(type, await readBlocks(b0 * bytes, (b1 - b0) * bytes, signal));
      const all = new Uint8Array(floats.buffer);
      const from = offset - b0 * values * 4;
      return from === 0 && length === all.byteLength ? all : all.slice(from, from + length);
    },
    quantized: { type, byteLength: blockBytes, read: readBlocks },
  };
}
