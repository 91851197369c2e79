// What a single .safetensors file holds, from its key names and a few shapes: an SGM (Stability
// generative-models / A1111 / ComfyUI) SDXL checkpoint or a part of one, a diffusers-named UNet — or
// something we refuse with a message naming what was found: a LoRA, an SDXL refiner, SD 1.x/2.x, a
// ControlNet, another family. Never from the file's name.

import { ModelLoadError } from '../errors.js';
import { CLIP_L_PREFIX, OPEN_CLIP_PREFIX } from './text-encoder-keys.js';

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';

export type SdxlComponent = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';

/** Where each component lives in an SGM checkpoint. */
export const SGM_PREFIXES: Readonly<Record<SdxlComponent, string>> = {
  unet: UNET_PREFIX,
  vae: VAE_PREFIX,
  text_encoder: CLIP_L_PREFIX,
  text_encoder_2: OPEN_CLIP_PREFIX,
};

export interface CheckpointKind {
  /** 'sgm': components under the SGM prefixes; 'diffusers-unet': a UNet under diffusers' own names. */
  layout: 'sgm' | 'diffusers-unet';
  components: SdxlComponent[];
  /** Keys outside every component (training state, sampler buffers): not loaded. */
  ignored: string[];
}

type Shape = readonly number[] | undefined;

/** Classifies a key set; throws ModelLoadError for everything that is not an SDXL-family model. */
export function classifyCheckpoint(keys: readonly string[], shapeOf: (key: string) => Shape, file: string): CheckpointKind {
  const has = (prefix: string) => keys.some((k) => k.startsWith(prefix));
  const examples = (pred: (k: string) => boolean) => keys.filter(pred).slice(0, 3).map((k) => `"${k}"`).join(', ');

  const lora = keys.filter((k) => /(^|[._])lora_(up|down|A|B)\b|\.lora\.(up|down)\.|^lora_(unet|te\d?)_|[._](hada|lokr)_|\.alpha$/.test(k));
  if (lora.length) {
    throw new ModelLoadError(`${file} is a LoRA (${lora.length} of its ${keys.length} tensors are LoRA factors, e.g. ${examples((k) => lora.includes(k))}), not a model: load a base model and apply the LoRA to it`);
  }
  if (has('conditioner.embedders.0.model.') && !has('conditioner.embedders.1.')) {
    throw new ModelLoadError(`${file} is an SDXL refiner checkpoint (its only text encoder is OpenCLIP bigG under "conditioner.embedders.0.model.*", and its UNet is conditioned on an aesthetic score): refiners are not supported, use an SDXL base, SSD-1B or Vega checkpoint`);
  }
  if (has('cond_stage_model.')) {
    const v2 = has('cond_stage_model.model.');
    throw new ModelLoadError(
      `${file} is a Stable Diffusion ${v2 ? '2.x' : '1.x'} checkpoint (text encoder under "cond_stage_model.${v2 ? 'model' : 'transformer'}.*", ${v2 ? "OpenCLIP ViT-H" : "CLIP ViT-L"} only), not an SDXL-family model: @ssd runs SDXL, SSD-1B and Vega`,
    );
  }
  if (has('control_model.')) throw new ModelLoadError(`${file} is a ControlNet checkpoint ("control_model.*"), not a model @ssd can load`);

  if (has(UNET_PREFIX) || has(VAE_PREFIX) || has('conditioner.embedders.')) {
    const components = (Object.keys(SGM_PREFIXES) as SdxlComponent[]).filter((c) => has(SGM_PREFIXES[c]));
    if (components.includes('unet')) checkSdxlUNet(keys, shapeOf, file, UNET_PREFIX);
    const known = Object.values(SGM_PREFIXES);
    const ignored = keys.filter((k) => !known.some((p) => k.startsWith(p)));
    return { layout: 'sgm', components, ignored };
  }
  if (keys.includes('conv_in.weight') && has('down_blocks.')) {
    checkSdxlUNet(keys, shapeOf, file, '');
    return { layout: 'diffusers-unet', components: ['unet'], ignored: [] };
  }
  const prefixes = new Map<string, number>();
  for (const k of keys) prefixes.set(k.split('.').slice(0, 2).join('.'), (prefixes.get(k.split('.').slice(0, 2).join('.')) ?? 0) + 1);
  const top = [...prefixes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([p, n]) => `${p}.* (${n})`).join(', ');
  throw new ModelLoadError(`${file} is not an SDXL-family checkpoint: it has no "model.diffusion_model.*" (SGM) or "conv_in" + "down_blocks.*" (diffusers UNet) keys; found ${top || 'no tensors'}`);
}

/** An SDXL-family UNet has the text_time embedding; SD 1.x/2.x UNets (and other families) do not. */
function checkSdxlUNet(keys: readonly string[], shapeOf: (key: string) => Shape, file: string, prefix: string): void {
  const sgm = prefix !== '';
  const family = ['joint_blocks', 'double_blocks', 'x_embedder', 'transformer_blocks.0.attn.qkv'].find((m) => keys.some((k) => k.startsWith(prefix + m)));
  if (family) throw new ModelLoadError(`${file}: the UNet has "${prefix}${family}*" keys: this is another model family (SD3, Flux, a DiT), not an SDXL-family UNet`);
  const addKey = prefix + (sgm ? 'label_emb.0.0.weight' : 'add_embedding.linear_1.weight');
  if (!shapeOf(addKey)) {
    const ctx = keys.find((k) => k.startsWith(prefix) && /attn2\.to_k\.weight$/.test(k));
    const width = ctx ? shapeOf(ctx)?.[1] : undefined;
    const guess = width === 768 ? ' (cross-attention width 768: Stable Diffusion 1.x)' : width === 1024 ? ' (cross-attention width 1024: Stable Diffusion 2.x)' : '';
    throw new ModelLoadError(`${file}: the UNet has no "${addKey}" (SDXL's text_time embedding of the pooled text embedding and size/crop ids)${guess}: not an SDXL-family UNet`);
  }
  const timeIds = shapeOf(prefix + (sgm ? 'label_emb.0.0.weight' : 'add_embedding.linear_1.weight'))![1];
  const pooledFive = timeIds - 5 * 256;
  if (pooledFive > 0 && (timeIds - 1280) % 6 !== 0 && pooledFive % 64 === 0) {
    throw new ModelLoadError(`${file}: the UNet's text_time embedding takes ${timeIds} = ${pooledFive} + 5 × 256 inputs (5 ids including an aesthetic score): an SDXL refiner UNet, which is not supported`);
  }
}
