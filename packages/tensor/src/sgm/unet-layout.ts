// An SDXL-family UNet's block structure — per level: resnets, which carry a transformer, resamplers;
// the mid block — from key names alone, SGM (`input_blocks.k.s`, `middle_block.k`, `output_blocks.k.s`)
// or diffusers (`down_blocks.i.resnets.j`), and the module table between the two namings: SGM input
// block k = the k-th module after conv_in counting downsamplers; an up level's upsampler shares its
// last resnet's output block (sub-module 2 after a transformer, else 1), as in Stability's code.

import { ConfigError } from '../errors.js';

export interface UNetLevel {
  /** One entry per resnet: whether a transformer (SpatialTransformer / Transformer2DModel) follows it. */
  attentions: boolean[];
  /** Down levels: ends with a downsampler; up levels: with an upsampler. */
  resample: boolean;
}

export interface UNetLayout {
  down: UNetLevel[];
  /** The mid block's modules in order. */
  mid: ('resnet' | 'attention')[];
  up: UNetLevel[];
}

export type ModuleKind = 'resnet' | 'attention' | 'downsample' | 'upsample' | 'plain';

/** One module in both namings: SGM path (under model.diffusion_model.) ↔ diffusers path. */
export interface ModulePair {
  sgm: string;
  diffusers: string;
  kind: ModuleKind;
}

const FILE = 'UNet keys';

/** The layout from SGM/LDM key names (without the model.diffusion_model. prefix). */
export function layoutFromSgmKeys(keys: readonly string[]): UNetLayout {
  const blocks = (re: RegExp) => {
    const m = new Map<number, Map<number, Set<string>>>();
    for (const k of keys) {
      const r = re.exec(k);
      if (!r) continue;
      const subs = m.get(+r[1]) ?? new Map<number, Set<string>>();
      m.set(+r[1], subs);
      const sub = subs.get(+r[2]) ?? new Set<string>();
      subs.set(+r[2], sub);
      sub.add(r[3]);
    }
    return [...m.entries()].sort((a, b) => a[0] - b[0]);
  };
  const kindOf = (rest: Set<string>): ModuleKind => {
    const any = (re: RegExp) => [...rest].some((r) => re.test(r));
    if (any(/^in_layers\./)) return 'resnet';
    if (any(/^(transformer_blocks\.|proj_in\.|norm\.)/)) return 'attention';
    if (any(/^op\./)) return 'downsample';
    if (any(/^conv\./)) return 'upsample';
    return 'plain';
  };

  const down: UNetLevel[] = [];
  let cur: UNetLevel = { attentions: [], resample: false };
  for (const [k, subs] of blocks(/^input_blocks\.(\d+)\.(\d+)\.(.+)$/)) {
    if (k === 0) continue; // conv_in
    const kinds = [...subs.entries()].sort((a, b) => a[0] - b[0]).map(([, rest]) => kindOf(rest));
    if (kinds[0] === 'downsample' && kinds.length === 1) {
      cur.resample = true;
      down.push(cur);
      cur = { attentions: [], resample: false };
    } else if (kinds[0] === 'resnet' && (kinds.length === 1 || (kinds.length === 2 && kinds[1] === 'attention'))) {
      cur.attentions.push(kinds.length === 2);
    } else {
      throw new ConfigError(`input_blocks.${k}`, kinds, 'is neither a resnet (+ transformer) nor a downsampler: not an SDXL-family UNet', FILE);
    }
  }
  if (cur.attentions.length) down.push(cur);

  const mid: UNetLayout['mid'] = [];
  for (const [k, subs] of blocks(/^middle_block\.(\d+)\.()(.+)$/)) {
    const kind = kindOf(subs.get(0)!);
    if (kind !== 'resnet' && kind !== 'attention') throw new ConfigError(`middle_block.${k}`, kind, 'is neither a resnet nor a transformer', FILE);
    mid.push(kind);
  }

  const up: UNetLevel[] = [];
  cur = { attentions: [], resample: false };
  for (const [k, subs] of blocks(/^output_blocks\.(\d+)\.(\d+)\.(.+)$/)) {
    const kinds = [...subs.entries()].sort((a, b) => a[0] - b[0]).map(([, rest]) => kindOf(rest));
    const attention = kinds[1] === 'attention';
    const upsample = kinds[kinds.length - 1] === 'upsample';
    if (kinds[0] !== 'resnet' || kinds.length !== 1 + (attention ? 1 : 0) + (upsample ? 1 : 0)) {
      throw new ConfigError(`output_blocks.${k}`, kinds, 'is not a resnet (+ transformer) (+ upsampler): not an SDXL-family UNet', FILE);
    }
    cur.attentions.push(attention);
    if (upsample) {
      cur.resample = true;
      up.push(cur);
      cur = { attentions: [], resample: false };
    }
  }
  if (cur.attentions.length) up.push(cur);
  return { down, mid, up };
}

/** The layout from diffusers key names. */
export function layoutFromDiffusersKeys(keys: readonly string[]): UNetLayout {
  const levels = (side: 'down' | 'up'): UNetLevel[] => {
    const resnets = new Map<number, Set<number>>();
    const attns = new Map<number, Set<number>>();
    const resample = new Set<number>();
    const sampler = side === 'down' ? 'downsamplers' : 'upsamplers';
    const re = new RegExp(`^${side}_blocks\\.(\\d+)\\.(resnets|attentions|${sampler})\\.(\\d+)\\.`);
    for (const k of keys) {
      const m = re.exec(k);
      if (!m) continue;
      const [i, j] = [+m[1], +m[3]];
      if (m[2] === sampler) resample.add(i);
      else (m[2] === 'resnets' ? resnets : attns).set(i, ((m[2] === 'resnets' ? resnets : attns).get(i) ?? new Set()).add(j));
    }
    const n = Math.max(-1, ...resnets.keys(), ...attns.keys(), ...resample) + 1;
    return Array.from({ length: n }, (_, i) => {
      const r = resnets.get(i)?.size ?? 0;
      const a = attns.get(i) ?? new Set<number>();
      for (const j of a) if (j >= r) throw new ConfigError(`${side}_blocks.${i}.attentions.${j}`, j, `has no resnet ${j} before it (${r} resnets)`, FILE);
      return { attentions: Array.from({ length: r }, (_, j) => a.has(j)), resample: resample.has(i) };
    });
  };
  const midR = new Set<number>();
  const midA = new Set<number>();
  for (const k of keys) {
    const m = /^mid_block\.(resnets|attentions)\.(\d+)\./.exec(k);
    if (m) (m[1] === 'resnets' ? midR : midA).add(+m[2]);
  }
  // diffusers' mid blocks alternate: resnet, (attention, resnet)*
  const mid: UNetLayout['mid'] = [];
  for (let r = 0; r < midR.size; r++) {
    if (r > 0) mid.push('attention');
    mid.push('resnet');
  }
  if (midA.size !== Math.max(0, midR.size - 1)) throw new ConfigError('mid_block', { resnets: midR.size, attentions: midA.size }, 'a mid block holds one transformer between each two resnets', FILE);
  return { down: levels('down'), mid, up: levels('up') };
}

/** Every module of a layout in both namings. */
export function unetModulePairs(layout: UNetLayout): ModulePair[] {
  const pairs: ModulePair[] = [
    { sgm: 'time_embed.0', diffusers: 'time_embedding.linear_1', kind: 'plain' },
    { sgm: 'time_embed.2', diffusers: 'time_embedding.linear_2', kind: 'plain' },
    { sgm: 'label_emb.0.0', diffusers: 'add_embedding.linear_1', kind: 'plain' },
    { sgm: 'label_emb.0.2', diffusers: 'add_embedding.linear_2', kind: 'plain' },
    { sgm: 'input_blocks.0.0', diffusers: 'conv_in', kind: 'plain' },
    { sgm: 'out.0', diffusers: 'conv_norm_out', kind: 'plain' },
    { sgm: 'out.2', diffusers: 'conv_out', kind: 'plain' },
  ];
  let k = 1;
  layout.down.forEach((level, i) => {
    level.attentions.forEach((attn, j) => {
      pairs.push({ sgm: `input_blocks.${k}.0`, diffusers: `down_blocks.${i}.resnets.${j}`, kind: 'resnet' });
      if (attn) pairs.push({ sgm: `input_blocks.${k}.1`, diffusers: `down_blocks.${i}.attentions.${j}`, kind: 'attention' });
      k++;
    });
    if (level.resample) pairs.push({ sgm: `input_blocks.${k++}.0`, diffusers: `down_blocks.${i}.downsamplers.0`, kind: 'downsample' });
  });
  let r = 0;
  let a = 0;
  layout.mid.forEach((kind, m) => {
    pairs.push({ sgm: `middle_block.${m}`, diffusers: kind === 'resnet' ? `mid_block.resnets.${r++}` : `mid_block.attentions.${a++}`, kind });
  });
  k = 0;
  layout.up.forEach((level, i) => {
    level.attentions.forEach((attn, j) => {
      pairs.push({ sgm: `output_blocks.${k}.0`, diffusers: `up_blocks.${i}.resnets.${j}`, kind: 'resnet' });
      if (attn) pairs.push({ sgm: `output_blocks.${k}.1`, diffusers: `up_blocks.${i}.attentions.${j}`, kind: 'attention' });
      if (level.resample && j === level.attentions.length - 1) {
        pairs.push({ sgm: `output_blocks.${k}.${attn ? 2 : 1}`, diffusers: `up_blocks.${i}.upsamplers.0`, kind: 'upsample' });
      }
      k++;
    });
  });
  return pairs;
}

/** Parameter names inside a resnet: SGM → diffusers. */
const RESNET_SGM_TO_DIFFUSERS: Record<string, string> = {
  'in_layers.0': 'norm1', 'in_layers.2': 'conv1', 'emb_layers.1': 'time_emb_proj', 'out_layers.0': 'norm2', 'out_layers.3': 'conv2', skip_connection: 'conv_shortcut',
};
const RESNET_DIFFUSERS_TO_SGM = Object.fromEntries(Object.entries(RESNET_SGM_TO_DIFFUSERS).map(([a, b]) => [b, a]));

/** A parameter path inside a module, renamed for the other naming (resnet internals, op ↔ conv). */
export function renameInner(kind: ModuleKind, rest: string, to: 'sgm' | 'diffusers'): string {
  if (kind === 'resnet') {
    const table = to === 'diffusers' ? RESNET_SGM_TO_DIFFUSERS : RESNET_DIFFUSERS_TO_SGM;
    const cut = rest.lastIndexOf('.');
    const mod = rest.slice(0, cut);
    return mod in table ? `${table[mod]}${rest.slice(cut)}` : rest;
  }
  if (kind === 'downsample') return to === 'diffusers' ? rest.replace(/^op\./, 'conv.') : rest.replace(/^conv\./, 'op.');
  return rest;
}

/**
 * A key renamer from a module table: the longest module path that prefixes the key decides. Keys
 * under no known module come back as null (the caller reports them).
 */
export function keyRenamer(pairs: readonly ModulePair[], to: 'sgm' | 'diffusers'): (key: string) => string | null {
  const table = new Map(pairs.map((p) => [to === 'diffusers' ? p.sgm : p.diffusers, p]));
  return (key) => {
    const parts = key.split('.');
    for (let n = parts.length - 1; n >= 1; n--) {
      const pair = table.get(parts.slice(0, n).join('.'));
      if (!pair) continue;
      const rest = parts.slice(n).join('.');
      return `${to === 'diffusers' ? pair.diffusers : pair.sgm}.${renameInner(pair.kind, rest, to)}`;
    }
    return null;
  };
}
