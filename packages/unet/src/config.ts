// Reads a diffusers UNet2DConditionModel config.json into the per-block numbers our modules need,
// exactly as diffusers' unet_2d_condition.py __init__ interprets it (v0.26). Anything we do not
// implement is a ConfigError naming the key and the value — never a silently different model.
import { ConfigError } from '@ssd/tensor';

/** The block types we implement (unet-2d-blocks.ts builds each by name, as diffusers' get_*_block). */
export const DOWN_BLOCK_TYPES = ['DownBlock2D', 'CrossAttnDownBlock2D'] as const;
export const UP_BLOCK_TYPES = ['UpBlock2D', 'CrossAttnUpBlock2D'] as const;
export const MID_BLOCK_TYPES = ['UNetMidBlock2DCrossAttn', 'UNetMidBlock2D'] as const;
export type DownBlockType = (typeof DOWN_BLOCK_TYPES)[number];
export type UpBlockType = (typeof UP_BLOCK_TYPES)[number];
export type MidBlockType = (typeof MID_BLOCK_TYPES)[number] | null;

/** The raw config keys we read (as in config.json). */
export interface UNet2DConditionConfig {
  in_channels?: number;
  out_channels?: number;
  block_out_channels: number[];
  layers_per_block?: number | number[];
  down_block_types: string[];
  up_block_types: string[];
  mid_block_type?: string | null;
  transformer_layers_per_block?: number | (number | number[])[];
  reverse_transformer_layers_per_block?: (number | number[])[] | null;
  attention_head_dim?: number | number[];
  num_attention_heads?: number | number[] | null;
  cross_attention_dim?: number | number[];
  use_linear_projection?: boolean;
  addition_embed_type?: string | null;
  addition_time_embed_dim?: number | null;
  projection_class_embeddings_input_dim?: number | null;
  time_cond_proj_dim?: number | null;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  norm_num_groups?: number;
  norm_eps?: number;
  act_fn?: string;
  sample_size?: number;
  [key: string]: unknown;
}

export interface DownBlockSpec {
  type: DownBlockType;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  /** Transformer depth per resnet (empty for DownBlock2D). */
  depths: number[];
  heads: number;
  crossAttentionDim: number;
  addDownsample: boolean;
}

export interface UpBlockSpec {
  type: UpBlockType;
  inChannels: number;
  prevOutputChannels: number;
  outChannels: number;
  numLayers: number;
  depths: number[];
  heads: number;
  crossAttentionDim: number;
  addUpsample: boolean;
}

export interface MidBlockSpec {
  type: Exclude<MidBlockType, null>;
  channels: number;
  depth: number;
  heads: number;
  crossAttentionDim: number;
}

export interface UNetSpec {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  timeEmbedDim: number;
  flipSinToCos: boolean;
  freqShift: number;
  normGroups: number;
  normEps: number;
  useLinearProjection: boolean;
  /** Width of the guidance embedding of LCM-distilled UNets (time_embedding.cond_proj), or null. */
  timeCondProjDim: number | null;
  /** text_time additional embedding, or null when addition_embed_type is null. */
  addition: { timeEmbedDim: number; inputDim: number } | null;
  down: DownBlockSpec[];
  mid: MidBlockSpec | null;
  up: UpBlockSpec[];
  sampleSize: number;
}

/** Keys whose only supported value is the given one (diffusers' defaults for SDXL-family UNets). */
const FIXED: Record<string, unknown[]> = {
  act_fn: ['silu', undefined],
  resnet_time_scale_shift: ['default', undefined],
  time_embedding_type: ['positional', undefined],
  class_embed_type: [null, undefined],
  num_class_embeds: [null, undefined],
  encoder_hid_dim: [null, undefined],
  encoder_hid_dim_type: [null, undefined],
  time_embedding_act_fn: [null, undefined],
  timestep_post_act: [null, undefined],
  center_input_sample: [false, undefined],
  dual_cross_attention: [false, undefined],
  class_embeddings_concat: [false, undefined],
  resnet_skip_time_act: [false, undefined],
  resnet_out_scale_factor: [1, 1.0, undefined],
  mid_block_scale_factor: [1, 1.0, undefined],
  conv_in_kernel: [3, undefined],
  conv_out_kernel: [3, undefined],
  downsample_padding: [1, undefined],
  attention_type: ['default', undefined],
  cross_attention_norm: [null, undefined],
  mid_block_only_cross_attention: [null, false, undefined],
  time_embedding_dim: [null, undefined],
};

function fail(key: string, value: unknown, reason: string): never {
  throw new ConfigError(key, value, reason, 'unet/config.json');
}

function perBlock<T>(key: string, value: T | T[] | undefined, n: number, fallback?: T): T[] {
  if (value === undefined || value === null) {
    if (fallback === undefined) fail(key, value, 'is required');
    return Array(n).fill(fallback);
  }
  if (Array.isArray(value)) {
    if (value.length !== n) fail(key, value, `needs one entry per block (${n})`);
    return value;
  }
  return Array(n).fill(value);
}

/**
 * Upper bounds that no SDXL-family UNet comes near (SDXL: 1280 channels, 10 transformer layers, 3
 * blocks, sample_size 128), so that a config asking for 10⁹ of something is refused here instead of
 * building 10⁹ modules or allocating their weights.
 */
const MAX_CHANNELS = 1 << 16;
const MAX_DEPTH = 64;
const MAX_BLOCKS = 16;
/** sample_size × 8 is the default image size, and images are at most 4096 pixels a side. */
const MAX_SAMPLE_SIZE = 512;

function posInt(key: string, v: unknown, max = MAX_CHANNELS): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(key, v, 'must be a positive integer');
  if (v > max) fail(key, v, `must be at most ${max} (no SDXL-family UNet comes near it)`);
  return v;
}

function bool(key: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') fail(key, v, 'must be true or false');
  return v;
}

function finite(key: string, v: unknown, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(key, v, 'must be a finite number');
  return v;
}

/** Depth per resnet of one block from an int or a per-layer list. */
function depthsOf(key: string, v: number | number[], layers: number): number[] {
  if (typeof v === 'number') return Array(layers).fill(posInt(key, v, MAX_DEPTH));
  if (!Array.isArray(v) || v.length !== layers) fail(key, v, `needs ${layers} entries (one per resnet) or one integer`);
  return v.map((d) => posInt(key, d, MAX_DEPTH));
}

export function parseUNetConfig(raw: UNet2DConditionConfig): UNetSpec {
  for (const [key, allowed] of Object.entries(FIXED)) {
    if (!allowed.some((a) => a === raw[key])) fail(key, raw[key], `only ${allowed.filter((a) => a !== undefined).map((a) => JSON.stringify(a)).join(' or ')} is supported`);
  }
  const oca = raw.only_cross_attention;
  if (oca !== undefined && oca !== false && !(Array.isArray(oca) && oca.every((x) => x === false))) {
    fail('only_cross_attention', oca, 'only false is supported');
  }
  const boc = raw.block_out_channels;
  if (!Array.isArray(boc) || !boc.length || boc.length > MAX_BLOCKS) fail('block_out_channels', boc, `must be a list of 1 to ${MAX_BLOCKS} channel counts`);
  boc.forEach((c) => posInt('block_out_channels', c));
  const n = boc.length;
  const downTypes = raw.down_block_types;
  const upTypes = raw.up_block_types;
  if (!Array.isArray(downTypes) || downTypes.length !== n) fail('down_block_types', downTypes, `needs ${n} entries (one per block_out_channels entry)`);
  if (!Array.isArray(upTypes) || upTypes.length !== n) fail('up_block_types', upTypes, `needs ${n} entries`);
  const known = (list: readonly string[], t: unknown) => list.includes(t as string);
  for (const t of downTypes) if (!known(DOWN_BLOCK_TYPES, t)) fail('down_block_types', t, `supported: ${DOWN_BLOCK_TYPES.join(', ')}`);
  for (const t of upTypes) if (!known(UP_BLOCK_TYPES, t)) fail('up_block_types', t, `supported: ${UP_BLOCK_TYPES.join(', ')}`);
  const midType = (raw.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : raw.mid_block_type) as MidBlockType;
  if (midType !== null && !known(MID_BLOCK_TYPES, midType)) fail('mid_block_type', midType, `supported: ${MID_BLOCK_TYPES.join(', ')}, null`);

  // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the latter was misnamed)
  const headsRaw = raw.num_attention_heads ?? raw.attention_head_dim ?? 8;
  const heads = perBlock('num_attention_heads', headsRaw, n).map((h) => posInt('attention_head_dim', h));
  const layers = perBlock('layers_per_block', raw.layers_per_block, n, 2).map((l) => posInt('layers_per_block', l, MAX_DEPTH));
  const cross = perBlock('cross_attention_dim', raw.cross_attention_dim, n, 1280).map((c) => posInt('cross_attention_dim', c));
  const tlpb = perBlock<number | number[]>('transformer_layers_per_block', raw.transformer_layers_per_block, n, 1);
  const rev = raw.reverse_transformer_layers_per_block;
  if (tlpb.some((t) => Array.isArray(t)) && (rev === undefined || rev === null)) {
    fail('reverse_transformer_layers_per_block', rev, 'must be given when transformer_layers_per_block has per-layer lists (as diffusers requires)');
  }
  if (rev !== undefined && rev !== null && (!Array.isArray(rev) || rev.length !== n)) fail('reverse_transformer_layers_per_block', rev, `needs ${n} entries`);
  const normGroups = posInt('norm_num_groups', raw.norm_num_groups ?? 32);
  // every GroupNorm here normalises a block's channels (or a concatenation of them) in normGroups groups
  const undivided = boc.find((c) => c % normGroups);
  if (undivided !== undefined) fail('norm_num_groups', normGroups, `must divide every block_out_channels entry (${undivided} does not split into ${normGroups} groups)`);
  const normEps = raw.norm_eps ?? 1e-5;
  if (typeof normEps !== 'number' || !(normEps > 0) || !Number.isFinite(normEps)) fail('norm_eps', normEps, 'must be a positive finite number');
  const sampleSize = posInt('sample_size', raw.sample_size ?? 128, MAX_SAMPLE_SIZE);

  const down: DownBlockSpec[] = [];
  let out = boc[0];
  for (let i = 0; i < n; i++) {
    const inCh = out;
    out = boc[i];
    const type = downTypes[i] as DownBlockType;
    const cross_ = type === 'CrossAttnDownBlock2D';
    if (cross_ && out % heads[i]) fail('attention_head_dim', headsRaw, `block ${i}: ${out} channels do not split into ${heads[i]} heads`);
    down.push({
      type,
      inChannels: inCh,
      outChannels: out,
      numLayers: layers[i],
      depths: cross_ ? depthsOf(`transformer_layers_per_block[${i}]`, tlpb[i], layers[i]) : [],
      heads: heads[i],
      crossAttentionDim: cross[i],
      addDownsample: i < n - 1,
    });
  }

  let mid: MidBlockSpec | null = null;
  if (midType) {
    const last = tlpb[n - 1];
    mid = {
      type: midType,
      channels: boc[n - 1],
      depth: midType === 'UNetMidBlock2DCrossAttn' ? posInt('transformer_layers_per_block', Array.isArray(last) ? last[0] : last, MAX_DEPTH) : 0,
      heads: heads[n - 1],
      crossAttentionDim: cross[n - 1],
    };
  }

  const rboc = [...boc].reverse();
  const rheads = [...heads].reverse();
  const rlayers = [...layers].reverse();
  const rcross = [...cross].reverse();
  const rtlpb = rev ?? [...tlpb].reverse();
  const up: UpBlockSpec[] = [];
  let upOut = rboc[0];
  for (let i = 0; i < n; i++) {
    const prev = upOut;
    upOut = rboc[i];
    const type = upTypes[i] as UpBlockType;
    const cross_ = type === 'CrossAttnUpBlock2D';
    const numLayers = rlayers[i] + 1;
    if (cross_ && upOut % rheads[i]) fail('attention_head_dim', headsRaw, `up block ${i}: ${upOut} channels do not split into ${rheads[i]} heads`);
    up.push({
      type,
      inChannels: rboc[Math.min(i + 1, n - 1)],
      prevOutputChannels: prev,
      outChannels: upOut,
      numLayers,
      depths: cross_ ? depthsOf(`reverse_transformer_layers_per_block[${i}]`, rtlpb[i] as number | number[], numLayers) : [],
      heads: rheads[i],
      crossAttentionDim: rcross[i],
      addUpsample: i < n - 1,
    });
  }

  let addition: UNetSpec['addition'] = null;
  const aet = raw.addition_embed_type ?? null;
  if (aet === 'text_time') {
    addition = {
      timeEmbedDim: posInt('addition_time_embed_dim', raw.addition_time_embed_dim),
      inputDim: posInt('projection_class_embeddings_input_dim', raw.projection_class_embeddings_input_dim),
    };
  } else if (aet !== null) fail('addition_embed_type', aet, 'supported: "text_time" or null');

  return {
    inChannels: posInt('in_channels', raw.in_channels ?? 4),
    outChannels: posInt('out_channels', raw.out_channels ?? 4),
    blockOutChannels: [...boc],
    timeEmbedDim: boc[0] * 4,
    flipSinToCos: bool('flip_sin_to_cos', raw.flip_sin_to_cos, true),
    freqShift: finite('freq_shift', raw.freq_shift, 0),
    normGroups,
    normEps,
    useLinearProjection: bool('use_linear_projection', raw.use_linear_projection, false),
    timeCondProjDim: raw.time_cond_proj_dim === undefined || raw.time_cond_proj_dim === null ? null : posInt('time_cond_proj_dim', raw.time_cond_proj_dim),
    addition,
    down,
    mid,
    up,
    sampleSize,
  };
}
