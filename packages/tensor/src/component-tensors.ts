// A model component's tensors, whatever holds them: the safetensors file(s) of a diffusers folder's
// component (variant first, with fallback), or a ModelSource that maps another format itself (a
// single SGM checkpoint presents itself as a diffusers folder and hands out each component's tensors).

import { openWeightFiles, resolveWeightFiles } from './diffusers.js';
import type { ModelSource } from './model-source.js';
import { mergeTensorSources, type TensorSource } from './tensor-source.js';

export interface ComponentTensorOptions {
  /** Weight variant to prefer, e.g. 'fp16' (diffusers folders; a single file has one dtype). */
  variant?: string;
  /** Told when the variant was not found and the default weights are used instead. */
  onNotice?: (message: string) => void;
}

/** A ModelSource that serves a component's tensors directly instead of safetensors files. */
export interface TensorModelSource extends ModelSource {
  openTensors(subfolder: string, options?: ComponentTensorOptions): Promise<TensorSource>;
}

export function isTensorModelSource(source: ModelSource): source is TensorModelSource {
  return typeof (source as Partial<TensorModelSource>).openTensors === 'function';
}

/** Opens the tensors of `subfolder` ('unet', 'vae', 'text_encoder', …) of any model source. */
export async function openComponentTensors(source: ModelSource, subfolder: string, options: ComponentTensorOptions = {}): Promise<TensorSource> {
  if (isTensorModelSource(source)) return source.openTensors(subfolder, options);
  const found = await resolveWeightFiles(source, subfolder, options.variant);
  if (found.notice) (options.onNotice ?? console.warn)(found.notice);
  const files = await openWeightFiles(source, found);
  return mergeTensorSources(files.map((f) => f.name).join(', '), files);
}
