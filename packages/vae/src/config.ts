// config.json → the structure of an AutoencoderKL or AutoencoderTiny, validated once. Every key is
// read the way diffusers reads it (models/autoencoders/autoencoder_kl.py, autoencoder_tiny.py); a
// value we cannot run is a ConfigError naming the key and the value, never a silent fallback.
import { ConfigError } from '@ssd/tensor';

/** AutoencoderKL's config.json, as diffusers writes it (keys we read; others are ignored). */
export interface AutoencoderKLConfig {
  _class_name?: string;
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  block_out_channels?: number[];
  layers_per_block?: number;
  act_fn?: string;
  latent_channels?: number;
  norm_num_groups?: number;
  sample_size?: number | number[];
  scaling_factor?: number;
  shift_factor?: number | null;
  latents_mean?: number[] | null;
  latents_std?: number[] | null;
  force_upcast?: boolean;
  use_quant_conv?: boolean;
  use_post_quant_conv?: boolean;
  mid_block_add_attention?: boolean;
  [key: string]: unknown;
}

/**
 * Pipeline (UNet) latents ↔ the VAE's latents, per channel c, as diffusers' pipelines convert them:
 * `vae = unet · std[c] / scalingFactor + shift[c]` and `unet = (vae − shift[c]) · scalingFactor / std[c]`.
 * std = latents_std and shift = latents_mean when both are in the config (std null otherwise, i.e. 1);
 * else shift = shift_factor, else 0.
 */
export interface LatentScaling {
  readonly scalingFactor: number;
  readonly std: readonly number[] | null;
  readonly shift: readonly number[];
}

export interface AutoencoderKLSpec {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly latentChannels: number;
  readonly blockOutChannels: readonly number[];
  readonly layersPerBlock: number;
  readonly normGroups: number;
  /** GroupNorm eps everywhere in the VAE (diffusers hard-codes 1e-6 in Encoder and Decoder). */
  readonly normEps: number;
  readonly midBlockAttention: boolean;
  readonly useQuantConv: boolean;
  readonly usePostQuantConv: boolean;
  readonly scalingFactor: number;
  readonly latentScaling: LatentScaling;
  readonly forceUpcast: boolean;
  /** Image pixels per latent pixel along each axis: 2^(len(block_out_channels) − 1). */
  readonly downFactor: number;
}

const KL_BLOCKS = { down: 'DownEncoderBlock2D', up: 'UpDecoderBlock2D' } as const;

export function parseAutoencoderKLConfig(config: AutoencoderKLConfig, file?: string): AutoencoderKLSpec {
  const c = config;
  if (c._class_name !== undefined && c._class_name !== 'AutoencoderKL') {
    throw new ConfigError('_class_name', c._class_name, 'this folder is not an AutoencoderKL (use loadAutoencoder(), which picks the class from _class_name)', file);
  }
  const boc = intList(c, 'block_out_channels', [64], file);
  const downTypes = c.down_block_types ?? [KL_BLOCKS.down];
  const upTypes = c.up_block_types ?? [KL_BLOCKS.up];
  for (const [key, types, want] of [['down_block_types', downTypes, KL_BLOCKS.down], ['up_block_types', upTypes, KL_BLOCKS.up]] as const) {
    if (!Array.isArray(types) || types.length !== boc.length) {
      throw new ConfigError(key, types, `must list one block type per block_out_channels entry (${boc.length})`, file);
    }
    const bad = types.find((t) => t !== want);
    if (bad !== undefined) throw new ConfigError(key, types, `block type ${JSON.stringify(bad)} is not supported: a VAE here is built from ${want} only`, file);
  }
  const act = c.act_fn ?? 'silu';
  if (act !== 'silu') throw new ConfigError('act_fn', act, 'only "silu" is supported (the SDXL-family VAEs)', file);
  const groups = posInt(c, 'norm_num_groups', 32, file);
  for (const ch of boc) {
    if (ch % groups) throw new ConfigError('norm_num_groups', groups, `must divide every block_out_channels entry (${ch} does not)`, file);
  }
  const latentChannels = posInt(c, 'latent_channels', 4, file);
  checkSampleSize(c, file);
  const sf = c.scaling_factor ?? 0.18215;
  if (typeof sf !== 'number' || !(sf > 0) || !Number.isFinite(sf)) throw new ConfigError('scaling_factor', sf, 'must be a positive number', file);
  return {
    inChannels: posInt(c, 'in_channels', 3, file),
    outChannels: posInt(c, 'out_channels', 3, file),
    latentChannels,
    blockOutChannels: boc,
    layersPerBlock: posInt(c, 'layers_per_block', 1, file, MAX_LAYERS),
    normGroups: groups,
    normEps: 1e-6,
    midBlockAttention: bool(c, 'mid_block_add_attention', true, file),
    useQuantConv: bool(c, 'use_quant_conv', true, file),
    usePostQuantConv: bool(c, 'use_post_quant_conv', true, file),
    scalingFactor: sf,
    latentScaling: latentScaling(c, sf, latentChannels, file),
    forceUpcast: bool(c, 'force_upcast', true, file),
    downFactor: 2 ** (boc.length - 1),
  };
}

/** AutoencoderTiny's config.json (TAESD / TAESDXL in diffusers layout). */
export interface AutoencoderTinyConfig {
  _class_name?: string;
  in_channels?: number;
  out_channels?: number;
  encoder_block_out_channels?: number[];
  decoder_block_out_channels?: number[];
  act_fn?: string;
  upsample_fn?: string;
  latent_channels?: number;
  upsampling_scaling_factor?: number;
  num_encoder_blocks?: number[];
  num_decoder_blocks?: number[];
  latent_magnitude?: number;
  latent_shift?: number;
  force_upcast?: boolean;
  scaling_factor?: number;
  shift_factor?: number | null;
  [key: string]: unknown;
}

export interface AutoencoderTinySpec {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly latentChannels: number;
  readonly encoderBlockOutChannels: readonly number[];
  readonly decoderBlockOutChannels: readonly number[];
  readonly numEncoderBlocks: readonly number[];
  readonly numDecoderBlocks: readonly number[];
  /** Only used by diffusers' uint8 latent packing (scale_latents), not by encode or decode. */
  readonly latentMagnitude: number;
  readonly latentShift: number;
  readonly scalingFactor: number;
  readonly latentScaling: LatentScaling;
  readonly forceUpcast: boolean;
  readonly downFactor: number;
}

export function parseAutoencoderTinyConfig(config: AutoencoderTinyConfig, file?: string): AutoencoderTinySpec {
  const c = config;
  if (c._class_name !== undefined && c._class_name !== 'AutoencoderTiny') {
    throw new ConfigError('_class_name', c._class_name, 'this folder is not an AutoencoderTiny (use loadAutoencoder(), which picks the class from _class_name)', file);
  }
  const enc = intList(c, 'encoder_block_out_channels', [64, 64, 64, 64], file);
  const dec = intList(c, 'decoder_block_out_channels', [64, 64, 64, 64], file);
  const numEnc = intList(c, 'num_encoder_blocks', [1, 3, 3, 3], file, 0, MAX_LAYERS);
  const numDec = intList(c, 'num_decoder_blocks', [3, 3, 3, 1], file, 0, MAX_LAYERS);
  if (numEnc.length !== enc.length) throw new ConfigError('num_encoder_blocks', numEnc, `must have one entry per encoder_block_out_channels entry (${enc.length})`, file);
  if (numDec.length !== dec.length) throw new ConfigError('num_decoder_blocks', numDec, `must have one entry per decoder_block_out_channels entry (${dec.length})`, file);
  // diffusers' EncoderTiny builds its stride-2 convs as Conv2d(c_i, c_i) and DecoderTiny its blocks
  // as AutoencoderTinyBlock(c_i, c_i): widths that change between stages do not build there either
  for (const [key, list] of [['encoder_block_out_channels', enc], ['decoder_block_out_channels', dec]] as const) {
    if (list.some((v) => v !== list[0])) throw new ConfigError(key, list, 'stages of different widths are not supported (diffusers cannot build them either)', file);
  }
  const act = c.act_fn ?? 'relu';
  if (act !== 'relu') throw new ConfigError('act_fn', act, 'only "relu" is supported (TAESD / TAESDXL)', file);
  const up = c.upsample_fn ?? 'nearest';
  if (up !== 'nearest') throw new ConfigError('upsample_fn', up, 'only "nearest" is supported', file);
  const factor = c.upsampling_scaling_factor ?? 2;
  if (factor !== 2) throw new ConfigError('upsampling_scaling_factor', factor, 'only 2 is supported', file);
  const latentChannels = posInt(c, 'latent_channels', 4, file);
  checkSampleSize(c, file);
  const sf = c.scaling_factor ?? 1.0;
  if (typeof sf !== 'number' || !(sf > 0) || !Number.isFinite(sf)) throw new ConfigError('scaling_factor', sf, 'must be a positive number', file);
  return {
    inChannels: posInt(c, 'in_channels', 3, file),
    outChannels: posInt(c, 'out_channels', 3, file),
    latentChannels,
    encoderBlockOutChannels: enc,
    decoderBlockOutChannels: dec,
    numEncoderBlocks: numEnc,
    numDecoderBlocks: numDec,
    latentMagnitude: num(c, 'latent_magnitude', 3, file),
    latentShift: num(c, 'latent_shift', 0.5, file),
    scalingFactor: sf,
    latentScaling: latentScaling(c, sf, latentChannels, file),
    forceUpcast: bool(c, 'force_upcast', false, file),
    downFactor: 2 ** (dec.length - 1),
  };
}

function latentScaling(c: Record<string, unknown>, sf: number, channels: number, file?: string): LatentScaling {
  const mean = c.latents_mean ?? null;
  const std = c.latents_std ?? null;
  const perChannel = (key: string, v: unknown): number[] | null => {
    if (v === null) return null;
    if (!Array.isArray(v) || v.length !== channels || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new ConfigError(key, v, `must be null or ${channels} numbers (one per latent channel)`, file);
    }
    return v as number[];
  };
  const m = perChannel('latents_mean', mean);
  const s = perChannel('latents_std', std);
  const shiftFactor = c.shift_factor ?? null;
  if (shiftFactor !== null && (typeof shiftFactor !== 'number' || !Number.isFinite(shiftFactor))) throw new ConfigError('shift_factor', shiftFactor, 'must be null or a number', file);
  // diffusers' SDXL pipeline uses latents_mean/std only when both are present
  const useStats = m !== null && s !== null;
  return {
    scalingFactor: sf,
    std: useStats ? s : null,
    shift: Array.from({ length: channels }, (_, i) => (useStats ? m![i] : ((shiftFactor as number | null) ?? 0))),
  };
}

/**
 * Bounds no SDXL-family VAE comes near (512 channels, 4 blocks, 2–3 layers), so that a config asking
 * for 10⁹ of something is refused here instead of building that many modules or weights.
 */
const MAX_CHANNELS = 1 << 16;
const MAX_BLOCKS = 8;
const MAX_LAYERS = 64;

function posInt(c: Record<string, unknown>, key: string, dflt: number, file?: string, max = MAX_CHANNELS): number {
  const v = c[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ConfigError(key, v, 'must be a positive integer', file);
  if (v > max) throw new ConfigError(key, v, `must be at most ${max} (no SDXL-family VAE comes near it)`, file);
  return v;
}

/** sample_size (an int or [h, w]): only a default image size for diffusers, but never a string or 10⁹. */
function checkSampleSize(c: Record<string, unknown>, file?: string): void {
  const v = c.sample_size;
  if (v === undefined || v === null) return;
  const ok = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 16384;
  if (!(ok(v) || (Array.isArray(v) && v.length === 2 && v.every(ok)))) {
    throw new ConfigError('sample_size', v, 'must be an integer in [1, 16384] or a list of two', file);
  }
}

function num(c: Record<string, unknown>, key: string, dflt: number, file?: string): number {
  const v = c[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(key, v, 'must be a number', file);
  return v;
}

function bool(c: Record<string, unknown>, key: string, dflt: boolean, file?: string): boolean {
  const v = c[key] ?? dflt;
  if (typeof v !== 'boolean') throw new ConfigError(key, v, 'must be true or false', file);
  return v;
}

function intList(c: Record<string, unknown>, key: string, dflt: number[], file?: string, min = 1, max = MAX_CHANNELS): number[] {
  const v = c[key] ?? dflt;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_BLOCKS || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max)) {
    throw new ConfigError(key, v, `must be a list of 1 to ${MAX_BLOCKS} integers in [${min}, ${max}]`, file);
  }
  return v as number[];
}
