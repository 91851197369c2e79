// Conversions between a diffusers folder and a single SGM checkpoint, streamed tensor by tensor (a
// multi-GB model never sits in memory). Both read through ModelSource + openComponentTensors, so
// either direction starts from a folder, a URL, a SingleFileSource or a layered mix of them.

import { openComponentTensors } from '../component-tensors.js';
import { ModelLoadError } from '../errors.js';
import type { ModelSource } from '../model-source.js';
import { writeSafetensors, type ByteSink, type FolderSink, type WriteProgress } from '../safetensors-stream.js';
import type { TensorEntry, TensorSource } from '../tensor-source.js';
import type { SdxlComponent } from './checkpoint-kind.js';
import { SDXL_COMPONENTS } from './single-file-source.js';
import { pipelineToSgm } from './to-sgm.js';

export interface ConvertOptions {
  /** Store float weights as F16 or F32 (default: as the source holds them). */
  dtype?: 'F16' | 'F32';
  /** Read this weight variant of a folder source (e.g. 'fp16'). */
  sourceVariant?: string;
  signal?: AbortSignal;
  onProgress?: (p: WriteProgress & { file: string }) => void;
  onNotice?: (message: string) => void;
}

export interface FolderConvertOptions extends ConvertOptions {
  /** Name the weight files as this variant (`model.fp16.safetensors`); default: the plain names. */
  variant?: string;
}

const WEIGHT_BASE: Readonly<Record<SdxlComponent, string>> = {
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
  text_encoder: 'model',
  text_encoder_2: 'model',
};

const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json'];

function sorted(src: TensorSource): [string, TensorEntry][] {
  return src.keys().sort().map((k) => [k, src.get(k)!]);
}

/**
 * Writes an SDXL pipeline as a diffusers folder: model_index.json (last, so a folder holding it is
 * complete), scheduler, tokenizers when the source has them, and each component's config and weights
 * (keys sorted, `{"format": "pt"}` metadata as save_pretrained writes).
 */
export async function writeDiffusersFolder(source: ModelSource, out: FolderSink, opts: FolderConvertOptions = {}): Promise<void> {
  if (!(await source.exists('model_index.json'))) throw new ModelLoadError(`${source.description} has no model_index.json: not a pipeline to convert`);
  for (const c of SDXL_COMPONENTS) {
    await out.writeText(`${c}/config.json`, await source.readText(`${c}/config.json`));
    const tensors = await openComponentTensors(source, c, { variant: opts.sourceVariant, onNotice: opts.onNotice });
    const file = `${c}/${WEIGHT_BASE[c]}${opts.variant ? `.${opts.variant}` : ''}.safetensors`;
    try {
      await writeSafetensors(out.openFile(file), sorted(tensors), {
        metadata: { format: 'pt' }, dtype: opts.dtype, signal: opts.signal, onProgress: (p) => opts.onProgress?.({ ...p, file }),
      });
    } finally {
      await tensors.close();
    }
  }
  await out.writeText('scheduler/scheduler_config.json', await source.readText('scheduler/scheduler_config.json'));
  for (const t of ['tokenizer', 'tokenizer_2']) {
    for (const f of TOKENIZER_FILES) if (await source.exists(`${t}/${f}`)) await out.writeText(`${t}/${f}`, await source.readText(`${t}/${f}`));
  }
  await out.writeText('model_index.json', await source.readText('model_index.json'));
}

/**
 * Writes an SDXL pipeline's UNet, VAE and both text encoders as one SGM checkpoint, key for key as
 * diffusers' convert_diffusers_to_original_sdxl.py does (keys sorted, no metadata unless given).
 */
export async function writeSingleFile(source: ModelSource, sink: ByteSink, opts: ConvertOptions & { metadata?: Record<string, string> } = {}): Promise<number> {
  const opened: TensorSource[] = [];
  try {
    const parts: Partial<Record<SdxlComponent, ReadonlyMap<string, TensorEntry>>> = {};
    for (const c of SDXL_COMPONENTS) {
      const t = await openComponentTensors(source, c, { variant: opts.sourceVariant, onNotice: opts.onNotice });
      opened.push(t);
      parts[c] = new Map(t.keys().map((k) => [k, t.get(k)!]));
    }
    return await writeSafetensors(sink, pipelineToSgm(parts), {
      metadata: opts.metadata, dtype: opts.dtype, signal: opts.signal, onProgress: (p) => opts.onProgress?.({ ...p, file: sink.name }),
    });
  } catch (e) {
    await sink.abort().catch(() => {});
    throw e;
  } finally {
    await Promise.all(opened.map((t) => t.close()));
  }
}
