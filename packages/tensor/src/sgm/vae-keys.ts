// The SDXL VAE (AutoencoderKL) in LDM names (`first_stage_model.` of an SGM checkpoint) and in
// diffusers names, both ways, and its config.json read off the shapes. LDM numbers the decoder's up
// levels from the bottom (`decoder.up.{n-1-i}` = diffusers `decoder.up_blocks.i`) and stores the mid
// attention's q/k/v/proj_out as 1×1 convs [C, C, 1, 1] where diffusers has linears [C, C] — the same
// bytes (diffusers' convert_diffusers_to_original_sdxl.py, reshape_weight_for_sd).

import { ConfigError } from '../errors.js';
import { DIFFUSERS_VERSION, normGroups } from './sdxl-defaults.js';
import type { ShapeOf } from './unet-config.js';
import type { ModulePair } from './unet-layout.js';

export interface VaeLayout {
  /** Resnets per encoder level (and whether it downsamples), bottom (input side) first. */
  encoder: { resnets: number; resample: boolean }[];
  /** Resnets per decoder level in diffusers order (up_blocks.0 = the deepest). */
  decoder: { resnets: number; resample: boolean }[];
}

const ATTN_SGM_TO_DIFFUSERS: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };
const ATTN_DIFFUSERS_TO_SGM = Object.fromEntries(Object.entries(ATTN_SGM_TO_DIFFUSERS).map(([a, b]) => [b, a]));
/** Mid-attention weights stored as 1×1 convs in LDM files. */
export const VAE_CONV_AS_LINEAR_SGM = /^(encoder|decoder)\.mid\.attn_1\.(q|k|v|proj_out)\.weight$/;
export const VAE_CONV_AS_LINEAR_DIFFUSERS = /^(encoder|decoder)\.mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/;

function count(keys: readonly string[], re: RegExp): Map<number, Set<number>> {
  const m = new Map<number, Set<number>>();
  for (const k of keys) {
    const r = re.exec(k);
    if (r) m.set(+r[1], (m.get(+r[1]) ?? new Set()).add(r[2] === undefined ? -1 : +r[2]));
  }
  return m;
}

function levels(resnets: Map<number, Set<number>>, resample: Map<number, Set<number>>, order: (i: number, n: number) => number): VaeLayout['encoder'] {
  const n = Math.max(-1, ...resnets.keys()) + 1;
  return Array.from({ length: n }, (_, i) => {
    const s = order(i, n);
    return { resnets: resnets.get(s)?.size ?? 0, resample: resample.has(s) };
  });
}

export function vaeLayoutFromSgmKeys(keys: readonly string[]): VaeLayout {
  return {
    encoder: levels(count(keys, /^encoder\.down\.(\d+)\.block\.(\d+)\./), count(keys, /^encoder\.down\.(\d+)\.downsample\./), (i) => i),
    decoder: levels(count(keys, /^decoder\.up\.(\d+)\.block\.(\d+)\./), count(keys, /^decoder\.up\.(\d+)\.upsample\./), (i, n) => n - 1 - i),
  };
}

export function vaeLayoutFromDiffusersKeys(keys: readonly string[]): VaeLayout {
  return {
    encoder: levels(count(keys, /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\./), count(keys, /^encoder\.down_blocks\.(\d+)\.downsamplers\./), (i) => i),
    decoder: levels(count(keys, /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\./), count(keys, /^decoder\.up_blocks\.(\d+)\.upsamplers\./), (i) => i),
  };
}

/** Every module in both namings ('attention' pairs rename their inner q/k/v/norm/proj_out). */
export function vaeModulePairs(layout: VaeLayout): ModulePair[] {
  const pairs: ModulePair[] = [];
  for (const side of ['encoder', 'decoder'] as const) {
    for (const m of ['conv_in', 'conv_out']) pairs.push({ sgm: `${side}.${m}`, diffusers: `${side}.${m}`, kind: 'plain' });
    pairs.push({ sgm: `${side}.norm_out`, diffusers: `${side}.conv_norm_out`, kind: 'plain' });
    pairs.push({ sgm: `${side}.mid.block_1`, diffusers: `${side}.mid_block.resnets.0`, kind: 'resnet' });
    pairs.push({ sgm: `${side}.mid.block_2`, diffusers: `${side}.mid_block.resnets.1`, kind: 'resnet' });
    pairs.push({ sgm: `${side}.mid.attn_1`, diffusers: `${side}.mid_block.attentions.0`, kind: 'attention' });
  }
  layout.encoder.forEach((l, i) => {
    for (let j = 0; j < l.resnets; j++) pairs.push({ sgm: `encoder.down.${i}.block.${j}`, diffusers: `encoder.down_blocks.${i}.resnets.${j}`, kind: 'resnet' });
    if (l.resample) pairs.push({ sgm: `encoder.down.${i}.downsample`, diffusers: `encoder.down_blocks.${i}.downsamplers.0`, kind: 'plain' });
  });
  const n = layout.decoder.length;
  layout.decoder.forEach((l, i) => {
    for (let j = 0; j < l.resnets; j++) pairs.push({ sgm: `decoder.up.${n - 1 - i}.block.${j}`, diffusers: `decoder.up_blocks.${i}.resnets.${j}`, kind: 'resnet' });
    if (l.resample) pairs.push({ sgm: `decoder.up.${n - 1 - i}.upsample`, diffusers: `decoder.up_blocks.${i}.upsamplers.0`, kind: 'plain' });
  });
  for (const m of ['quant_conv', 'post_quant_conv']) pairs.push({ sgm: m, diffusers: m, kind: 'plain' });
  return pairs;
}

/** A VAE key renamer (null for keys under no known module). */
export function vaeKeyRenamer(pairs: readonly ModulePair[], to: 'sgm' | 'diffusers'): (key: string) => string | null {
  const table = new Map(pairs.map((p) => [to === 'diffusers' ? p.sgm : p.diffusers, p]));
  return (key) => {
    const parts = key.split('.');
    for (let n = parts.length - 1; n >= 1; n--) {
      const pair = table.get(parts.slice(0, n).join('.'));
      if (!pair) continue;
      let rest = parts.slice(n).join('.');
      if (pair.kind === 'resnet') rest = to === 'diffusers' ? rest.replace(/^nin_shortcut\./, 'conv_shortcut.') : rest.replace(/^conv_shortcut\./, 'nin_shortcut.');
      if (pair.kind === 'attention') {
        const table2 = to === 'diffusers' ? ATTN_SGM_TO_DIFFUSERS : ATTN_DIFFUSERS_TO_SGM;
        const cut = rest.lastIndexOf('.');
        const mod = rest.slice(0, cut);
        if (mod in table2) rest = `${table2[mod]}${rest.slice(cut)}`;
      }
      return `${to === 'diffusers' ? pair.diffusers : pair.sgm}.${rest}`;
    }
    return null;
  };
}

export interface VaeConfigHints {
  /** The UNet's latent sample size: the VAE's is that × its downsampling factor (SDXL: 128 × 8 = 1024). */
  latentSampleSize?: number;
  file?: string;
}

/** AutoencoderKL config.json from diffusers-named keys and shapes. */
export function inferVaeConfig(layout: VaeLayout, shapeOf: ShapeOf, hints: VaeConfigHints = {}): Record<string, unknown> {
  const file = hints.file ?? 'VAE';
  const need = (key: string, rank: number): readonly number[] => {
    const s = shapeOf(key);
    if (!s || s.length !== rank) throw new ConfigError(key, s ?? null, `an AutoencoderKL needs this tensor (rank ${rank}) to infer its architecture`, file);
    return s;
  };
  const n = layout.encoder.length;
  if (!n || layout.decoder.length !== n) throw new ConfigError('decoder.up_blocks', layout.decoder.length, `an AutoencoderKL has as many decoder levels as encoder levels (${n})`, file);
  const layers = layout.encoder[0].resnets;
  layout.encoder.forEach((l, i) => {
    if (l.resnets !== layers || l.resample !== i < n - 1) throw new ConfigError(`encoder.down_blocks.${i}`, l, `every encoder level holds layers_per_block = ${layers} resnets and all but the last downsample`, file);
  });
  layout.decoder.forEach((l, i) => {
    if (l.resnets !== layers + 1 || l.resample !== i < n - 1) throw new ConfigError(`decoder.up_blocks.${i}`, l, `every decoder level holds layers_per_block + 1 = ${layers + 1} resnets and all but the last upsample`, file);
  });
  const boc = layout.encoder.map((_, i) => need(`encoder.down_blocks.${i}.resnets.0.conv1.weight`, 4)[0]);
  const latent = need('decoder.conv_in.weight', 4)[1];
  return {
    _class_name: 'AutoencoderKL',
    _diffusers_version: DIFFUSERS_VERSION,
    act_fn: 'silu',
    block_out_channels: boc,
    down_block_types: boc.map(() => 'DownEncoderBlock2D'),
    force_upcast: true,
    in_channels: need('encoder.conv_in.weight', 4)[1],
    latent_channels: latent,
    layers_per_block: layers,
    norm_num_groups: normGroups(boc),
    out_channels: need('decoder.conv_out.weight', 4)[0],
    sample_size: (hints.latentSampleSize ?? 128) * 2 ** (n - 1),
    scaling_factor: 0.13025, // SDXL's VAE (SD 1.x's was 0.18215)
    up_block_types: boc.map(() => 'UpDecoderBlock2D'),
  };
}
