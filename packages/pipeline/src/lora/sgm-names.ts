// kohya's SGM/LDM UNet names (input_blocks_4_1_…, middle_block_0_in_layers_2, output_blocks_2_2_conv)
// ↔ diffusers module names, on the model's actual block structure: where diffusers'
// _maybe_map_sgm_blocks_to_diffusers (v0.26.3) derives indices from layers_per_block, every block index
// is enumerated from the parsed config as the LDM UNet builds them — the same numbers for SDXL and pruned
// UNets (SSD-1B/Vega lose transformer blocks, not block indices), plus per-level layers_per_block.
import type { UNetSpec } from '@ssd/unet';

/** Per SGM block index: the diffusers module of each of its inner indices. */
export interface SgmBlockTable {
  readonly input: ReadonlyMap<number, readonly string[]>;
  readonly middle: ReadonlyMap<number, string>;
  readonly output: ReadonlyMap<number, readonly string[]>;
}

export function sgmBlockTable(spec: UNetSpec): SgmBlockTable {
  const input = new Map<number, string[]>();
  let n = 1; // input_blocks.0 is conv_in
  spec.down.forEach((d, i) => {
    for (let j = 0; j < d.numLayers; j++) {
      const inner = [`down_blocks.${i}.resnets.${j}`];
      if (d.type === 'CrossAttnDownBlock2D') inner.push(`down_blocks.${i}.attentions.${j}`);
      input.set(n++, inner);
    }
    if (d.addDownsample) input.set(n++, [`down_blocks.${i}.downsamplers.0`]);
  });
  const middle = new Map<number, string>([[0, 'mid_block.resnets.0']]);
  if (spec.mid?.type === 'UNetMidBlock2DCrossAttn') {
    middle.set(1, 'mid_block.attentions.0');
    middle.set(2, 'mid_block.resnets.1');
  }
  const output = new Map<number, string[]>();
  n = 0;
  spec.up.forEach((u, i) => {
    for (let j = 0; j < u.numLayers; j++) {
      const inner = [`up_blocks.${i}.resnets.${j}`];
      if (u.type === 'CrossAttnUpBlock2D') inner.push(`up_blocks.${i}.attentions.${j}`);
      if (u.addUpsample && j === u.numLayers - 1) inner.push(`up_blocks.${i}.upsamplers.0`);
      output.set(n++, inner);
    }
  });
  return { input, middle, output };
}

// inside a ResBlock: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU, Linear], out_layers =
// [GroupNorm, SiLU, Dropout, conv]; Downsample's conv is `op`, Upsample's `conv`
const RESNET_INNER: Record<string, string> = {
  in_layers_0: 'norm1',
  in_layers_2: 'conv1',
  emb_layers_1: 'time_emb_proj',
  out_layers_0: 'norm2',
  out_layers_3: 'conv2',
  skip_connection: 'conv_shortcut',
};

// modules outside the blocks (diffusers' converter stops at these; they map one to one)
const TOP_LEVEL: Record<string, string> = {
  time_embed_0: 'time_embedding.linear_1',
  time_embed_2: 'time_embedding.linear_2',
  label_emb_0_0: 'add_embedding.linear_1',
  label_emb_0_2: 'add_embedding.linear_2',
  input_blocks_0_0: 'conv_in',
  out_0: 'conv_norm_out',
  out_2: 'conv_out',
};

const flat = (path: string) => path.replace(/\./g, '_');

/** The '_'-joined diffusers name of an '_'-joined SGM module name, or null when the structure has no such block. */
export function sgmToDiffusers(name: string, table: SgmBlockTable): string | null {
  if (TOP_LEVEL[name]) return flat(TOP_LEVEL[name]);
  const mid = /^middle_block_(\d+)(?:_(.+))?$/.exec(name); // the middle block has no inner index
  const m = mid ? null : /^(input_blocks|output_blocks)_(\d+)_(\d+)(?:_(.+))?$/.exec(name);
  let module: string | undefined;
  let rest = '';
  if (mid) {
    module = table.middle.get(Number(mid[1]));
    rest = mid[2] ?? '';
  } else if (m) {
    module = (m[1] === 'input_blocks' ? table.input : table.output).get(Number(m[2]))?.[Number(m[3])];
    rest = m[4] ?? '';
  }
  if (!module) return null;
  let tail = rest;
  if (/\.resnets\.\d+$/.test(module)) tail = RESNET_INNER[rest] ?? rest;
  else if (/\.downsamplers\.0$/.test(module)) tail = rest === 'op' ? 'conv' : rest;
  return tail ? `${flat(module)}_${tail}` : flat(module);
}

/** The inverse: a dotted diffusers module path → its '_'-joined SGM name (writing kohya SGM files), or null. */
export function diffusersToSgm(path: string, table: SgmBlockTable): string | null {
  const top = Object.entries(TOP_LEVEL).find(([, d]) => d === path);
  if (top) return top[0];
  const blocks: [string, string][] = [];
  for (const [n, inner] of table.input) inner.forEach((m, i) => blocks.push([m, `input_blocks_${n}_${i}`]));
  for (const [n, m] of table.middle) blocks.push([m, `middle_block_${n}`]);
  for (const [n, inner] of table.output) inner.forEach((m, i) => blocks.push([m, `output_blocks_${n}_${i}`]));
  const hit = blocks.find(([m]) => path.startsWith(`${m}.`));
  if (!hit) return null;
  const [module, sgm] = hit;
  let rest = flat(path.slice(module.length + 1));
  if (/\.resnets\.\d+$/.test(module)) rest = Object.entries(RESNET_INNER).find(([, d]) => d === rest)?.[0] ?? rest;
  else if (/\.downsamplers\.0$/.test(module) && rest === 'conv') rest = 'op';
  return `${sgm}_${rest}`;
}
