// Loading the components a StableDiffusionXLPipeline folder lists in model_index.json, with byte-
// accurate progress per component and the fp16 variant / f16 dtype choices applied consistently.
import { allInOrder, DTYPE_BYTES, openWeightFiles, readComponentConfig, resolveWeightFiles, shapeSize, type GpuContext, type LoadProgress, type ModelSource } from '@ssd/tensor';
import { CLIPTextModel, CLIPTokenizer } from '@ssd/clip';
import { UNet2DConditionModel } from '@ssd/unet';
import { AutoencoderKL, AutoencoderTiny } from '@ssd/vae';

export type Vae = AutoencoderKL | AutoencoderTiny;

export interface ComponentLoadProgress extends LoadProgress {
  component: string;
}

export interface LoadCommon {
  context: GpuContext;
  dtype: 'f16' | 'f32';
  variant?: string;
  signal?: AbortSignal;
  onProgress?: (p: ComponentLoadProgress) => void;
  onNotice?: (msg: string) => void;
}

const progress = (o: LoadCommon, component: string) => (p: LoadProgress) => o.onProgress?.({ ...p, component });

/**
 * GPU bytes a component's weights take once loaded at `dtype`, from its safetensors headers alone
 * (low-memory mode checks a run against them before loading anything). Local files and URLs read
 * just the headers; a caching source (the browser weight cache) fetches the files into its cache.
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

export async function loadTokenizers(source: ModelSource): Promise<[CLIPTokenizer, CLIPTokenizer]> {
  return allInOrder<[CLIPTokenizer, CLIPTokenizer]>([CLIPTokenizer.fromPretrained(source, 'tokenizer'), CLIPTokenizer.fromPretrained(source, 'tokenizer_2')]);
}

export async function loadTextEncoders(source: ModelSource, o: LoadCommon): Promise<[CLIPTextModel, CLIPTextModel]> {
  const common = { context: o.context, dtype: o.dtype, variant: o.variant, signal: o.signal, onNotice: o.onNotice };
  const te1 = await CLIPTextModel.fromPretrained(source, 'text_encoder', { ...common, onProgress: progress(o, 'text_encoder') });
  try {
    const te2 = await CLIPTextModel.fromPretrained(source, 'text_encoder_2', { ...common, onProgress: progress(o, 'text_encoder_2') });
    return [te1, te2];
  } catch (e) {
    te1.dispose();
    throw e;
  }
}

export function loadUNet(source: ModelSource, o: LoadCommon): Promise<UNet2DConditionModel> {
  return UNet2DConditionModel.fromPretrained(source, { subfolder: 'unet', context: o.context, dtype: o.dtype, variant: o.variant, signal: o.signal, onNotice: o.onNotice, onProgress: progress(o, 'unet') });
}

/** An AutoencoderKL or AutoencoderTiny folder (decided by its config's _class_name); `parts` loads only the decoder or the encoder. */
export async function loadVae(source: ModelSource, subfolder: string, o: LoadCommon, parts: 'both' | 'decoder' | 'encoder' = 'both'): Promise<Vae> {
  const cfg = await readComponentConfig(source, subfolder);
  const opts = { subfolder, parts, context: o.context, variant: o.variant, signal: o.signal, onNotice: o.onNotice, onProgress: progress(o, 'vae') };
  if (cfg._class_name === 'AutoencoderTiny') return AutoencoderTiny.fromPretrained(source, { ...opts, dtype: o.dtype });
  return AutoencoderKL.fromPretrained(source, opts);
}
