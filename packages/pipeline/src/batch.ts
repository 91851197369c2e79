// Batch assembly on the GPU with buffer copies: rows of a [N, ...] tensor gathered (and repeated) into
// a new batch. Used for classifier-free guidance ([uncond…, cond…]) and num_images_per_prompt.
import { InvalidArgumentError, type Tensor } from '@ssd/tensor';

/** out[i] = sources[picks[i].from][picks[i].row] for tensors with equal trailing shapes and dtype. */
export function gatherBatch(sources: readonly Tensor[], picks: readonly { from: number; row: number }[], label = 'batch'): Tensor {
  const first = sources[0];
  const rowShape = first.shape.slice(1);
  for (const s of sources) {
    if (s.dtype !== first.dtype || s.shape.length !== first.shape.length || s.shape.slice(1).some((d, i) => d !== rowShape[i])) {
      throw new InvalidArgumentError(`gatherBatch: tensors ${first} and ${s} do not share a row shape and dtype`);
    }
  }
  const ctx = first.ctx;
  const rowBytes = first.byteSize / first.shape[0];
  if (rowBytes % 4) throw new InvalidArgumentError(`gatherBatch: rows of ${rowBytes} bytes are not 4-byte aligned`);
  const out = ctx.empty([picks.length, ...rowShape], first.dtype, label);
  picks.forEach((p, i) => {
    const src = sources[p.from];
    if (p.row < 0 || p.row >= src.shape[0]) throw new InvalidArgumentError(`gatherBatch: row ${p.row} of a batch of ${src.shape[0]}`);
    ctx.copyBuffer(src.buffer, p.row * rowBytes, out.buffer, i * rowBytes, rowBytes);
  });
  return out;
}

/** A zero-filled tensor (fresh data upload). */
export function zerosLike(t: Tensor, label = 'zeros'): Tensor {
  return t.ctx.fromData(new Float32Array(t.size), t.shape, t.dtype, label);
}
