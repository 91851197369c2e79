// SDXL's two text encoders in an SGM checkpoint, and their transformers configs. CLIP-L
// (`conditioner.embedders.0.transformer.`) keeps transformers' names; OpenCLIP bigG
// (`conditioner.embedders.1.model.`) uses open_clip's: fused in_proj (q, k, v stacked by rows), ln_1/2,
// c_fc/c_proj, ln_final, and `text_projection` [hidden, proj] (x·P), which diffusers transposes into
// the Linear weight Pᵀ — and which diffusers' own converter writes back as `text_projection.weight`.

import { ConfigError } from '../errors.js';
import { concatRowsEntry, rowSliceEntry, transposedEntry, type TensorEntry } from '../tensor-source.js';
import type { ShapeOf } from './unet-config.js';

export const CLIP_L_PREFIX = 'conditioner.embedders.0.transformer.';
export const OPEN_CLIP_PREFIX = 'conditioner.embedders.1.model.';

/** open_clip → transformers, applied left to right (diffusers' textenc_conversion_lst, reversed). */
const OPEN_CLIP_RENAMES: [RegExp, string][] = [
  [/^transformer\.resblocks\./, 'text_model.encoder.layers.'],
  [/\.ln_1\./, '.layer_norm1.'],
  [/\.ln_2\./, '.layer_norm2.'],
  [/\.mlp\.c_fc\./, '.mlp.fc1.'],
  [/\.mlp\.c_proj\./, '.mlp.fc2.'],
  [/\.attn\.out_proj\./, '.self_attn.out_proj.'],
  [/^ln_final\./, 'text_model.final_layer_norm.'],
  [/^token_embedding\.weight$/, 'text_model.embeddings.token_embedding.weight'],
  [/^positional_embedding$/, 'text_model.embeddings.position_embedding.weight'],
];

/** transformers → open_clip (diffusers' textenc_conversion_lst). */
const DIFFUSERS_TO_OPEN_CLIP: [RegExp, string][] = [
  [/^text_model\.encoder\.layers\./, 'transformer.resblocks.'],
  [/\.layer_norm1\./, '.ln_1.'],
  [/\.layer_norm2\./, '.ln_2.'],
  [/\.mlp\.fc1\./, '.mlp.c_fc.'],
  [/\.mlp\.fc2\./, '.mlp.c_proj.'],
  [/\.self_attn\.out_proj\./, '.attn.out_proj.'],
  [/^text_model\.final_layer_norm\./, 'ln_final.'],
  [/^text_model\.embeddings\.token_embedding\.weight$/, 'token_embedding.weight'],
  [/^text_model\.embeddings\.position_embedding\.weight$/, 'positional_embedding'],
];

/** Keys of open_clip's text tower that are not text-model weights. */
const OPEN_CLIP_IGNORED = /^(logit_scale|attn_mask)$/;

/**
 * bigG's tensors in diffusers names from its open_clip entries (prefix removed). Unknown keys keep
 * their open_clip name so that loading reports them.
 */
export function openClipToDiffusers(entries: ReadonlyMap<string, TensorEntry>): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const [key, e] of entries) {
    if (OPEN_CLIP_IGNORED.test(key)) continue;
    const fused = /^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$/.exec(key);
    if (fused) {
      if (e.shape[0] % 3) throw new ConfigError(`${OPEN_CLIP_PREFIX}${key}`, e.shape, 'in_proj holds q, k and v stacked: its rows must split in three', e.file);
      const rows = e.shape[0] / 3;
      ['q', 'k', 'v'].forEach((p, i) => out.set(`text_model.encoder.layers.${fused[1]}.self_attn.${p}_proj.${fused[2]}`, rowSliceEntry(e, i * rows, rows)));
      continue;
    }
    if (key === 'text_projection') {
      if (e.shape.length !== 2) throw new ConfigError(`${OPEN_CLIP_PREFIX}${key}`, e.shape, 'must be a [hidden, projection] matrix', e.file);
      out.set('text_projection.weight', transposedEntry(e));
      continue;
    }
    let name = key;
    for (const [re, to] of OPEN_CLIP_RENAMES) name = name.replace(re, to);
    out.set(name, e);
  }
  return out;
}

/**
 * bigG's diffusers tensors under open_clip names, as diffusers' convert_diffusers_to_original_sdxl.py
 * (v0.26.3) writes them: q/k/v stacked into in_proj, text_projection.weight kept as is.
 */
export function openClipFromDiffusers(entries: ReadonlyMap<string, TensorEntry>): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  const qkv = new Map<string, (TensorEntry | undefined)[]>();
  for (const [key, e] of entries) {
    if (key === 'text_model.embeddings.position_ids') continue; // a buffer, not a weight
    const m = /^text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$/.exec(key);
    if (m) {
      const k = `transformer.resblocks.${m[1]}.attn.in_proj_${m[3]}`;
      const parts = qkv.get(k) ?? [undefined, undefined, undefined];
      parts['qkv'.indexOf(m[2])] = e;
      qkv.set(k, parts);
      continue;
    }
    let name = key;
    for (const [re, to] of DIFFUSERS_TO_OPEN_CLIP) name = name.replace(re, to);
    out.set(name, e);
  }
  for (const [k, parts] of qkv) {
    if (parts.some((p) => !p)) throw new ConfigError(k, parts.map((p) => !!p), 'q, k and v projections must all be present to stack them into in_proj', 'text_encoder_2');
    out.set(k, concatRowsEntry(parts as TensorEntry[]));
  }
  return out;
}

export interface TextEncoderConfigHints {
  /** Channels per head (both encoders share it; see sdxl-defaults.ts headDim). */
  headDim: number;
  file?: string;
}

/** transformers CLIPTextConfig from diffusers-named keys and shapes. */
export function inferClipTextConfig(shapeOf: ShapeOf, withProjection: boolean, hints: TextEncoderConfigHints): Record<string, unknown> {
  const file = hints.file ?? (withProjection ? 'text_encoder_2' : 'text_encoder');
  const need = (key: string): readonly number[] => {
    const s = shapeOf(key);
    if (!s || s.length !== 2) throw new ConfigError(key, s ?? null, 'a CLIP text model needs this tensor (rank 2) to infer its architecture', file);
    return s;
  };
  const [vocab, hidden] = need('text_model.embeddings.token_embedding.weight');
  let layers = 0;
  while (shapeOf(`text_model.encoder.layers.${layers}.mlp.fc1.weight`)) layers++;
  if (!layers) throw new ConfigError('text_model.encoder.layers', 0, 'a CLIP text model without layers', file);
  if (hidden % hints.headDim) throw new ConfigError('num_attention_heads', hidden / hints.headDim, `hidden_size ${hidden} does not split into heads of ${hints.headDim}`, file);
  return {
    architectures: [withProjection ? 'CLIPTextModelWithProjection' : 'CLIPTextModel'],
    attention_dropout: 0.0,
    bos_token_id: 0,
    dropout: 0.0,
    eos_token_id: 2,
    // OpenAI's CLIP-L was trained with quick_gelu, OpenCLIP's bigG with exact gelu
    hidden_act: withProjection ? 'gelu' : 'quick_gelu',
    hidden_size: hidden,
    initializer_factor: 1.0,
    initializer_range: 0.02,
    intermediate_size: need('text_model.encoder.layers.0.mlp.fc1.weight')[0],
    layer_norm_eps: 1e-5,
    max_position_embeddings: need('text_model.embeddings.position_embedding.weight')[0],
    model_type: 'clip_text_model',
    num_attention_heads: hidden / hints.headDim,
    num_hidden_layers: layers,
    pad_token_id: 1,
    // CLIP-L's projection is not in SDXL checkpoints: SDXL's config says 768 (its hidden size)
    projection_dim: withProjection ? need('text_projection.weight')[0] : Math.min(768, hidden),
    torch_dtype: 'float32',
    transformers_version: '4.37.0',
    vocab_size: vocab,
  };
}
