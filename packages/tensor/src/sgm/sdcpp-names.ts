// The other names SDXL single files are written under, mapped to the SGM names the rest of sgm/ reads:
// stable-diffusion.cpp's own (`sd -M convert --convert-name`: CLIP-L under `cond_stage_model.transformer.`,
// bigG in transformers' names under `cond_stage_model.1.transformer.`, its q/k/v fused as
// `self_attn.in_proj`, the projection as `text_model.text_projection` in Linear layout), and UNet-only
// files whose SGM keys lost their `model.diffusion_model.` prefix (ComfyUI-GGUF's, `diffusion_model.*`).
import type { TensorEntry } from '../tensor-source.js';
import { UNET_PREFIX } from './checkpoint-kind.js';
import { CLIP_L_PREFIX, OPEN_CLIP_PREFIX } from './text-encoder-keys.js';

const SDCPP_CLIP_L = 'cond_stage_model.transformer.';
const SDCPP_BIGG = 'cond_stage_model.1.transformer.';
/** Top-level modules of an SGM UNet. */
const BARE_UNET = /^(input_blocks|middle_block|output_blocks|time_embed|label_emb|out)\./;

/** `entries` under SGM names (the same map when it already is: SGM files, diffusers UNets, other families). */
export function toSgmNames(entries: ReadonlyMap<string, TensorEntry>): ReadonlyMap<string, TensorEntry> {
  const keys = [...entries.keys()];
  // sd.cpp names: only with SDXL's second encoder (a lone cond_stage_model.* is SD 1.x/2.x: reported as such)
  const sdcpp = keys.some((k) => k.startsWith(SDCPP_BIGG));
  const bare = !keys.some((k) => k.startsWith(UNET_PREFIX)) && keys.includes('input_blocks.0.0.weight');
  const prefixed = !keys.some((k) => k.startsWith(UNET_PREFIX)) && keys.includes('diffusion_model.input_blocks.0.0.weight');
  if (!sdcpp && !bare && !prefixed) return entries;
  const hidden = entries.get(`${SDCPP_BIGG}text_model.embeddings.token_embedding.weight`)?.shape[1];
  const out = new Map<string, TensorEntry>();
  for (const [k, e] of entries) {
    let name = k;
    if (sdcpp && k.startsWith(SDCPP_CLIP_L)) name = CLIP_L_PREFIX + k.slice(SDCPP_CLIP_L.length);
    else if (sdcpp && k.startsWith(SDCPP_BIGG)) name = OPEN_CLIP_PREFIX + bigGName(k.slice(SDCPP_BIGG.length), e, hidden);
    else if (bare && BARE_UNET.test(k)) name = UNET_PREFIX + k;
    else if (prefixed && k.startsWith('diffusion_model.')) name = `model.${k}`;
    out.set(name, e);
  }
  return out;
}

/**
 * bigG's key (after the sd.cpp prefix) as openClipToDiffusers reads it: transformers' names pass
 * through, the fused in_proj becomes open_clip's (which it splits into q, k, v), and the projection
 * `text_model.text_projection` — sd.cpp multiplies it as a Linear weight [proj, hidden] — becomes
 * `text_projection.weight`; only when its shape shows open_clip's [hidden, proj] is it transposed.
 */
function bigGName(k: string, e: TensorEntry, hidden: number | undefined): string {
  const fused = /^text_model\.encoder\.layers\.(\d+)\.self_attn\.in_proj\.(weight|bias)$/.exec(k);
  if (fused) return `transformer.resblocks.${fused[1]}.attn.in_proj_${fused[2]}`;
  if (k === 'text_model.text_projection') {
    const openClipLayout = e.shape.length === 2 && e.shape[0] !== e.shape[1] && e.shape[0] === hidden;
    return openClipLayout ? 'text_projection' : 'text_projection.weight';
  }
  return k;
}
