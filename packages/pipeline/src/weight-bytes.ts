// GPU bytes a component's weights take once loaded, from the tensor headers alone (a diffusers folder's
// safetensors headers, a single file's directory): low-memory mode checks a run against them before
// loading anything. Quantized (GGUF) tensors count as their blocks: the layers keep them quantized.
import { DTYPE_BYTES, openComponentTensors, shapeSize, type ModelSource } from '@ssd/tensor';

/**
 * The bytes of `subfolder`'s weights at `dtype`. Local files and URLs read just the headers; a caching
 * source (the browser weight cache) fetches the files into its cache.
 */
export async function componentWeightBytes(
  source: ModelSource,
  subfolder: string,
  variant: string | undefined,
  dtype: 'f16' | 'f32',
  /** Elements of one tensor once loaded, when a layer loads in another layout (the UNet's Winograd convs). */
  loadedElements: (key: string, shape: readonly number[]) => number = (_, shape) => shapeSize(shape),
): Promise<number> {
  const tensors = await openComponentTensors(source, subfolder, { variant, onNotice: () => {} });
  try {
    let bytes = 0;
    for (const k of tensors.keys()) {
      const e = tensors.get(k)!;
      bytes += e.quantized ? Math.ceil(e.quantized.byteLength / 4) * 4 : loadedElements(k, e.shape) * DTYPE_BYTES[dtype];
    }
    return bytes;
  } finally {
    await tensors.close();
  }
}
