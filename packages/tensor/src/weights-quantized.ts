// The WeightStore's side of quantized checkpoints: when a module asks for it (`allowQuantized`), a
// tensor the file stores as ggml blocks is handed over as a QuantizedWeight — its blocks copied as they
// are into a 'u32' GPU tensor, streamed in bounded chunks — instead of being dequantized on the host.
import { throwIfAborted } from './errors.js';
import type { QuantizedWeight, QuantType } from './quantized.js';
import type { QuantizedBlocks } from './tensor-source.js';
import type { Tensor } from './tensor.js';

/** A QuantizedWeight over `data`, a u32 tensor sized for the blocks (zero-padded to 4 bytes). */
export function allocQuantizedWeight(type: QuantType, shape: readonly number[], data: Tensor): QuantizedWeight {
  return { kind: 'quantized', type, shape: [...shape], data, dispose: () => data.dispose() };
}

export interface BlockUploadOptions {
  signal?: AbortSignal;
  chunkBytes?: number;
  onBytes?: (bytes: number) => void;
  drain?: (bytesWritten: number) => Promise<void>;
}

/** Copies `blocks` byte for byte into `target` (a u32 tensor at least that large), a chunk at a time. */
export async function uploadBlocksInto(blocks: QuantizedBlocks, key: string, target: Tensor, opts: BlockUploadOptions = {}): Promise<void> {
  if (target.byteSize < blocks.byteLength) throw new RangeError(`uploadBlocksInto: ${key}: ${blocks.byteLength} bytes of ${blocks.type} blocks do not fit the ${target.byteSize}-byte tensor`);
  const chunk = Math.max(4, Math.floor((opts.chunkBytes ?? 8 << 20) / 4) * 4); // chunks start 4-byte aligned
  for (let off = 0; off < blocks.byteLength; off += chunk) {
    throwIfAborted(opts.signal, `loading ${key}`);
    const n = Math.min(chunk, blocks.byteLength - off);
    let bytes = await blocks.read(off, n, opts.signal);
    if (n % 4) {
      const padded = new Uint8Array(Math.ceil(n / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    target.ctx.write(target, bytes, off);
    opts.onBytes?.(n);
    if (opts.drain) await opts.drain(bytes.byteLength);
  }
}
