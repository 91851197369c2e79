// GPU bytes a component's weights take once loaded, from its safetensors headers alone: low-memory
// mode checks a run against them before loading anything.
import { DTYPE_BYTES, openWeightFiles, resolveWeightFiles, shapeSize, type ModelSource } from '@ssd/tensor';

/**
 * The bytes of `subfolder`'s weights at `dtype`. Local files and URLs read just the headers; a caching
 * source (the browser weight cache) fetches the files into its cache.
 */
export async function componentWeightBytes(source: ModelSource, subfolder: string, variant: string | undefined, dtype: 'f16' | 'f32'): Promise<number> {
  const files = await openWeightFiles(source, await resolveWeightFiles(source, subfolder, variant));
  try {
    let elements = 0;
    for (const f of files) for (const t of f.tensors.values()) elements += shapeSize(t.shape);
    return elements * DTYPE_BYTES[dtype];
  } finally {
    await Promise.all(files.map((f) => f.source.close()));
  }
}
