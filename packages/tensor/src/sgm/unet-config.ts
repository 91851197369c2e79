// A diffusers UNet2DConditionModel config.json read off a UNet's diffusers-named keys and shapes:
// levels, widths, resnets and transformer depths per block (SDXL, SSD-1B's and Vega's pruning, any
// other), cross-attention width, linear or conv projections, the text_time embedding. What shapes
// cannot say (head count, GroupNorm groups, sample size) comes from sdxl-defaults.ts.

import { ConfigError } from '../errors.js';
import { DIFFUSERS_VERSION, headDim, normGroups, unetSampleSize } from './sdxl-defaults.js';
import type { UNetLayout } from './unet-layout.js';

export type ShapeOf = (key: string) => readonly number[] | undefined;

export interface UNetConfigHints {
  /** Width of the pooled text embedding the UNet's text_time embedding takes (text_encoder_2's projection_dim). */
  pooledDim?: number;
  /** addition_time_embed_dim when known (a config override): then the pooled width follows from it. */
  additionTimeEmbedDim?: number;
  /** Where the keys came from, for messages. */
  file?: string;
}

export function inferUNetConfig(layout: UNetLayout, shapeOf: ShapeOf, hints: UNetConfigHints = {}): Record<string, unknown> {
  const file = hints.file ?? 'UNet';
  const need = (key: string, rank?: number): readonly number[] => {
    const s = shapeOf(key);
    if (!s || (rank !== undefined && s.length !== rank)) throw new ConfigError(key, s ?? null, `a UNet needs this tensor${rank ? ` (rank ${rank})` : ''} to infer its architecture`, file);
    return s;
  };
  const convIn = need('conv_in.weight', 4);
  const convOut = need('conv_out.weight', 4);
  const n = layout.down.length;
  if (!n) throw new ConfigError('down_blocks', 0, 'the UNet has no down blocks', file);
  if (layout.up.length !== n) throw new ConfigError('up_blocks', layout.up.length, `a UNet has as many up levels as down levels (${n})`, file);
  const boc = layout.down.map((_, i) => need(`down_blocks.${i}.resnets.0.conv1.weight`, 4)[0]);
  const layers = layout.down.map((l) => l.attentions.length);
  layout.down.forEach((l, i) => {
    if (l.resample !== i < n - 1) throw new ConfigError(`down_blocks.${i}.downsamplers`, l.resample, `every level but the last downsamples (${n} levels)`, file);
  });
  layout.up.forEach((l, i) => {
    if (l.attentions.length !== layers[n - 1 - i] + 1) {
      throw new ConfigError(`up_blocks.${i}.resnets`, l.attentions.length, `up level ${i} must hold layers_per_block + 1 = ${layers[n - 1 - i] + 1} resnets (down level ${n - 1 - i} holds ${layers[n - 1 - i]})`, file);
    }
    if (l.resample !== i < n - 1) throw new ConfigError(`up_blocks.${i}.upsamplers`, l.resample, `every up level but the last upsamples (${n} levels)`, file);
  });

  // transformer depth per resnet: the number of transformer_blocks.t under each attention
  const depth = (prefix: string): number => {
    let d = 0;
    while (shapeOf(`${prefix}.transformer_blocks.${d}.norm1.weight`)) d++;
    if (!d) throw new ConfigError(`${prefix}.transformer_blocks`, 0, 'a transformer without blocks', file);
    return d;
  };
  const levelDepths = (side: 'down' | 'up', i: number, attentions: boolean[]): number | number[] => {
    if (!attentions.some(Boolean)) return 1;
    if (!attentions.every(Boolean)) throw new ConfigError(`${side}_blocks.${i}.attentions`, attentions, 'a diffusers block has a transformer after every resnet or after none', file);
    return attentions.map((_, j) => depth(`${side}_blocks.${i}.attentions.${j}`));
  };
  const tlpb = layout.down.map((l, i) => levelDepths('down', i, l.attentions));
  const rtlpb = layout.up.map((l, i) => levelDepths('up', i, l.attentions));

  // the transformers' widths: cross-attention input, linear or 1×1-conv projections
  const attnPrefixes = [
    ...layout.down.flatMap((l, i) => l.attentions.flatMap((a, j) => (a ? [`down_blocks.${i}.attentions.${j}`] : []))),
    ...(layout.mid.includes('attention') ? ['mid_block.attentions.0'] : []),
    ...layout.up.flatMap((l, i) => l.attentions.flatMap((a, j) => (a ? [`up_blocks.${i}.attentions.${j}`] : []))),
  ];
  const crossDims = [...new Set(attnPrefixes.map((p) => need(`${p}.transformer_blocks.0.attn2.to_k.weight`, 2)[1]))];
  if (crossDims.length > 1) throw new ConfigError('cross_attention_dim', crossDims, 'the transformers take text embeddings of different widths', file);
  const projRanks = new Set(attnPrefixes.map((p) => need(`${p}.proj_in.weight`).length));
  if (projRanks.size > 1) throw new ConfigError('use_linear_projection', [...projRanks], 'some transformers project with linear layers, others with 1×1 convs', file);

  let midType: string | null = null;
  const mid = layout.mid.join(',');
  if (mid === 'resnet') midType = 'UNetMidBlock2D';
  else if (mid === 'resnet,attention,resnet') {
    midType = 'UNetMidBlock2DCrossAttn';
    const last = tlpb[n - 1];
    const want = Array.isArray(last) ? last[0] : last;
    const got = depth('mid_block.attentions.0');
    if (got !== want) throw new ConfigError('mid_block.attentions.0', got, `diffusers gives the mid transformer the depth of the last down level's first (${want})`, file);
  } else if (mid !== '') throw new ConfigError('mid_block', layout.mid, 'supported mid blocks: resnet (UNetMidBlock2D), resnet + transformer + resnet (UNetMidBlock2DCrossAttn), none', file);

  const timeDim = need('time_embedding.linear_1.weight', 2)[0];
  const add = shapeOf('add_embedding.linear_1.weight');
  let additionTimeEmbedDim: number | null = null;
  if (add) {
    // projection_class_embeddings_input_dim = pooled text embedding + 6 time ids × addition_time_embed_dim
    const pooled = hints.pooledDim ?? 1280;
    additionTimeEmbedDim = hints.additionTimeEmbedDim ?? (add[1] - pooled) / 6;
    if (!Number.isInteger(additionTimeEmbedDim) || additionTimeEmbedDim <= 0) {
      throw new ConfigError('projection_class_embeddings_input_dim', add[1], `is not ${pooled} (pooled text embedding) + 6 × addition_time_embed_dim; give the text encoders (a folder) or the UNet config`, file);
    }
  }
  const condProj = shapeOf('time_embedding.cond_proj.weight');
  const hd = headDim(boc);
  return {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: 'silu',
    addition_embed_type: add ? 'text_time' : null,
    addition_embed_type_num_heads: 64,
    addition_time_embed_dim: additionTimeEmbedDim,
    attention_head_dim: boc.map((c) => c / hd),
    attention_type: 'default',
    block_out_channels: boc,
    center_input_sample: false,
    class_embed_type: null,
    class_embeddings_concat: false,
    conv_in_kernel: convIn[2],
    conv_out_kernel: convOut[2],
    cross_attention_dim: crossDims[0] ?? 2048,
    cross_attention_norm: null,
    down_block_types: layout.down.map((l) => (l.attentions.some(Boolean) ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    downsample_padding: 1,
    dropout: 0.0,
    dual_cross_attention: false,
    encoder_hid_dim: null,
    encoder_hid_dim_type: null,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: convIn[1],
    layers_per_block: layers.every((l) => l === layers[0]) ? layers[0] : layers,
    mid_block_only_cross_attention: null,
    mid_block_scale_factor: 1,
    mid_block_type: midType,
    norm_eps: 1e-5,
    norm_num_groups: normGroups(boc),
    num_attention_heads: null,
    num_class_embeds: null,
    only_cross_attention: false,
    out_channels: convOut[0],
    projection_class_embeddings_input_dim: add ? add[1] : null,
    resnet_out_scale_factor: 1.0,
    resnet_skip_time_act: false,
    resnet_time_scale_shift: 'default',
    reverse_transformer_layers_per_block: rtlpb,
    sample_size: unetSampleSize(boc),
    time_cond_proj_dim: condProj ? condProj[1] : null,
    time_embedding_act_fn: null,
    time_embedding_dim: timeDim === 4 * boc[0] ? null : timeDim,
    time_embedding_type: 'positional',
    timestep_post_act: null,
    transformer_layers_per_block: tlpb,
    up_block_types: layout.up.map((l) => (l.attentions.some(Boolean) ? 'CrossAttnUpBlock2D' : 'UpBlock2D')),
    upcast_attention: false,
    use_linear_projection: projRanks.size ? projRanks.has(2) : true,
  };
}
