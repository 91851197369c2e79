// Real-size SDXL-family models with random weights: the published configs (bench/models/configs, from
// ../shared/reference/architecture.md), every component's key list (bench/models/keys, copied from
// ../shared/reference; SDXL base's UNet list is derived from its config by `unetKeys`), synthetic
// safetensors sources over them (in-process, nothing on disk), and the streamed writer behind
// `pnpm make-random-model`. Shared by make-random-model.ts (and its CLI in scripts/) and the bench/*.ts
// model benchmarks.
import { open, readFile, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MemorySource, NodeFileSink, openComponentTensors, pipelineToSgm, safetensorsHeader, SAFETENSORS_DTYPE_BYTES, shapeSize,
  writeSingleFile, type ByteSource, type SdxlComponent, type TensorEntry, type WriteProgress as TensorWriteProgress,
} from '@ssd/tensor';
import { parseKeyList, SyntheticSafetensorsSource, type KeyShape } from '@ssd/tensor/testing';
import { parseUNetConfig, type UNet2DConditionConfig } from '@ssd/unet';

export const ARCHS = ['ssd-1b', 'vega', 'sdxl'] as const;
export type Arch = (typeof ARCHS)[number];

/** Components of an SDXL-family diffusers folder that carry weights, with their weight-file base names. */
export const WEIGHT_COMPONENTS = {
  text_encoder: 'model',
  text_encoder_2: 'model',
  unet: 'diffusion_pytorch_model',
  vae: 'diffusion_pytorch_model',
} as const;
export type WeightComponent = keyof typeof WEIGHT_COMPONENTS;

/** Published parameter counts (architecture.md §0, §6): what the generated models must hold. */
export const EXPECTED_PARAMS: Record<`${Arch}/unet` | 'text_encoder' | 'text_encoder_2' | 'vae', number> = {
  'ssd-1b/unet': 1_331_334_404,
  'vega/unet': 745_225_604,
  'sdxl/unet': 2_567_463_684,
  text_encoder: 123_060_480,
  text_encoder_2: 694_659_840,
  vae: 83_653_863,
};

/** Counted work of one UNet evaluation at 1024² (latent 128², batch 1), architecture.md §6. */
export const UNET_TFLOP_1024: Record<Arch, number> = { 'ssd-1b': 4.21, vega: 2.82, sdxl: 6.76 };

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const modelsDataDir = fileURLToPath(new URL('../models/', import.meta.url));

/** Files copied verbatim into every generated folder: model-relative path → file in bench/models. */
export function staticFiles(arch: Arch): Record<string, string> {
  const c = `${modelsDataDir}configs/`;
  const tok = `${repoRoot}fixtures/tokenizer/`;
  return {
    'model_index.json': `${c}common/model_index.json`,
    'scheduler/scheduler_config.json': `${c}common/scheduler/scheduler_config.json`,
    'text_encoder/config.json': `${c}common/text_encoder/config.json`,
    'text_encoder_2/config.json': `${c}common/text_encoder_2/config.json`,
    'tokenizer/merges.txt': `${tok}merges.txt`,
    'tokenizer/special_tokens_map.json': `${c}common/tokenizer/special_tokens_map.json`,
    'tokenizer/tokenizer_config.json': `${c}common/tokenizer/tokenizer_config.json`,
    'tokenizer/vocab.json': `${tok}vocab.json`,
    'tokenizer_2/merges.txt': `${tok}merges.txt`,
    'tokenizer_2/special_tokens_map.json': `${c}common/tokenizer_2/special_tokens_map.json`,
    'tokenizer_2/tokenizer_config.json': `${c}common/tokenizer_2/tokenizer_config.json`,
    'tokenizer_2/vocab.json': `${tok}vocab.json`,
    'unet/config.json': `${c}${arch}/unet/config.json`,
    'vae/config.json': `${c}common/vae/config.json`,
  };
}

export async function readUNetConfig(arch: Arch): Promise<UNet2DConditionConfig> {
  return JSON.parse(await readFile(staticFiles(arch)['unet/config.json'], 'utf8')) as UNet2DConditionConfig;
}

const KEY_LISTS: Record<string, string> = {
  'ssd-1b/unet': 'unet_keys_ssd1b.txt',
  'vega/unet': 'unet_keys_vega.txt',
  text_encoder: 'text_encoder_keys_clip_l.txt',
  text_encoder_2: 'text_encoder_2_keys_clip_bigg.txt',
  vae: 'vae_keys_sdxl.txt',
};

/** A reference key list from bench/models/keys. */
export async function readKeyList(file: string): Promise<KeyShape[]> {
  return parseKeyList(await readFile(`${modelsDataDir}keys/${file}`, 'utf8'));
}

/** Every tensor (name and PyTorch shape) of one component, in module order. */
export async function componentKeys(arch: Arch, component: WeightComponent): Promise<KeyShape[]> {
  if (component === 'unet') {
    const list = KEY_LISTS[`${arch}/unet`];
    return list ? readKeyList(list) : unetKeys(await readUNetConfig(arch));
  }
  return readKeyList(KEY_LISTS[component]);
}

export function parameterCount(keys: readonly KeyShape[]): number {
  return keys.reduce((a, k) => a + shapeSize(k.shape), 0);
}

/**
 * The state-dict keys of a diffusers UNet2DConditionModel with this config, in module (forward)
 * order — what ../shared/reference/unet_keys_*.txt list. Built on @ssd/unet's config parser, so the
 * depths, heads and channel plumbing are the library's reading of the config.
 * diffusers: models/unets/unet_2d_condition.py, unet_2d_blocks.py, resnet.py, transformers/transformer_2d.py.
 */
export function unetKeys(config: UNet2DConditionConfig): KeyShape[] {
  const spec = parseUNetConfig(config);
  const out: KeyShape[] = [];
  const p = (key: string, ...shape: number[]) => out.push({ key, shape });
  const linear = (k: string, o: number, i: number, bias = true) => (p(`${k}.weight`, o, i), bias && p(`${k}.bias`, o));
  const conv = (k: string, o: number, i: number, ks: number) => (p(`${k}.weight`, o, i, ks, ks), p(`${k}.bias`, o));
  const norm = (k: string, c: number) => (p(`${k}.weight`, c), p(`${k}.bias`, c));
  const ted = spec.timeEmbedDim;
  const inKernel = Number(config.conv_in_kernel ?? 3);
  const outKernel = Number(config.conv_out_kernel ?? 3);
  const resnet = (k: string, cin: number, cout: number) => {
    norm(`${k}.norm1`, cin);
    conv(`${k}.conv1`, cout, cin, 3);
    linear(`${k}.time_emb_proj`, cout, ted);
    norm(`${k}.norm2`, cout);
    conv(`${k}.conv2`, cout, cout, 3);
    if (cin !== cout) conv(`${k}.conv_shortcut`, cout, cin, 1);
  };
  const transformer = (k: string, c: number, depth: number, crossDim: number) => {
    norm(`${k}.norm`, c);
    if (spec.useLinearProjection) linear(`${k}.proj_in`, c, c);
    else conv(`${k}.proj_in`, c, c, 1);
    for (let b = 0; b < depth; b++) {
      const t = `${k}.transformer_blocks.${b}`;
      norm(`${t}.norm1`, c);
      for (const [attn, kv] of [['attn1', c], ['attn2', crossDim]] as const) {
        if (attn === 'attn2') norm(`${t}.norm2`, c);
        linear(`${t}.${attn}.to_q`, c, c, false);
        linear(`${t}.${attn}.to_k`, c, kv, false);
        linear(`${t}.${attn}.to_v`, c, kv, false);
        linear(`${t}.${attn}.to_out.0`, c, c);
      }
      norm(`${t}.norm3`, c);
      linear(`${t}.ff.net.0.proj`, 8 * c, c); // GEGLU: value and gate halves of 4C each
      linear(`${t}.ff.net.2`, c, 4 * c);
    }
    if (spec.useLinearProjection) linear(`${k}.proj_out`, c, c);
    else conv(`${k}.proj_out`, c, c, 1);
  };

  conv('conv_in', spec.blockOutChannels[0], spec.inChannels, inKernel);
  linear('time_embedding.linear_1', ted, spec.blockOutChannels[0]);
  linear('time_embedding.linear_2', ted, ted);
  if (spec.addition) {
    linear('add_embedding.linear_1', ted, spec.addition.inputDim);
    linear('add_embedding.linear_2', ted, ted);
  }
  spec.down.forEach((d, i) => {
    for (let j = 0; j < d.numLayers; j++) {
      resnet(`down_blocks.${i}.resnets.${j}`, j === 0 ? d.inChannels : d.outChannels, d.outChannels);
      if (d.type === 'CrossAttnDownBlock2D') transformer(`down_blocks.${i}.attentions.${j}`, d.outChannels, d.depths[j], d.crossAttentionDim);
    }
    if (d.addDownsample) conv(`down_blocks.${i}.downsamplers.0.conv`, d.outChannels, d.outChannels, 3);
  });
  if (spec.mid) {
    const m = spec.mid;
    resnet('mid_block.resnets.0', m.channels, m.channels);
    if (m.type === 'UNetMidBlock2DCrossAttn') {
      transformer('mid_block.attentions.0', m.channels, m.depth, m.crossAttentionDim);
      resnet('mid_block.resnets.1', m.channels, m.channels);
    }
  }
  spec.up.forEach((u, i) => {
    for (let j = 0; j < u.numLayers; j++) {
      // diffusers CrossAttnUpBlock2D/UpBlock2D: [current, skip] concatenated; the last resnet's skip has in_channels
      const skip = j === u.numLayers - 1 ? u.inChannels : u.outChannels;
      const cur = j === 0 ? u.prevOutputChannels : u.outChannels;
      resnet(`up_blocks.${i}.resnets.${j}`, cur + skip, u.outChannels);
      if (u.type === 'CrossAttnUpBlock2D') transformer(`up_blocks.${i}.attentions.${j}`, u.outChannels, u.depths[j], u.crossAttentionDim);
    }
    if (u.addUpsample) conv(`up_blocks.${i}.upsamplers.0.conv`, u.outChannels, u.outChannels, 3);
  });
  norm('conv_norm_out', spec.blockOutChannels[0]);
  conv('conv_out', spec.outChannels, spec.blockOutChannels[0], outKernel);
  return out;
}

export type WeightDType = 'F16' | 'F32';

/** Seeds per component, so the four files differ. */
const SEEDS: Record<WeightComponent, number> = { text_encoder: 11, text_encoder_2: 12, unet: 13, vae: 14 };

/** The synthetic safetensors file of one component (random-access, generated on read). */
export async function syntheticWeights(arch: Arch, component: WeightComponent, dtype: WeightDType): Promise<SyntheticSafetensorsSource> {
  const file = weightFileName(component, dtype);
  return new SyntheticSafetensorsSource(`${component}/${file}`, await componentKeys(arch, component), dtype, SEEDS[component]);
}

/** diffusers' names: `*.safetensors` for the default weights, `*.fp16.safetensors` for the fp16 variant. */
export function weightFileName(component: WeightComponent, dtype: WeightDType): string {
  return `${WEIGHT_COMPONENTS[component]}${dtype === 'F16' ? '.fp16' : ''}.safetensors`;
}

/**
 * An in-memory diffusers folder (MemorySource) with the real configs and synthetic weights for the
 * components asked for: what `make-random-model` would write, without writing it.
 */
export async function syntheticModelSource(arch: Arch, dtype: WeightDType, components: readonly WeightComponent[] = Object.keys(WEIGHT_COMPONENTS) as WeightComponent[]): Promise<MemorySource> {
  const files = new Map<string, string | ByteSource>();
  for (const [rel, from] of Object.entries(staticFiles(arch))) files.set(rel, await readFile(from, 'utf8'));
  for (const c of components) files.set(`${c}/${weightFileName(c, dtype)}`, await syntheticWeights(arch, c, dtype));
  return new MemorySource(files, `synthetic ${arch} (${dtype})`);
}

export interface WriteProgress {
  file: string;
  writtenBytes: number;
  totalBytes: number;
}

/**
 * Streams a ByteSource (a synthetic safetensors file) to `path` in `chunkBytes` pieces: generation of
 * the next chunk overlaps the write of the previous one, and at most two chunks are in memory. The
 * data goes to `path + '.partial'` and is renamed at the end, so a present file is always complete.
 */
export async function streamToFile(source: ByteSource, path: string, opts: { chunkBytes?: number; onProgress?: (p: WriteProgress) => void } = {}): Promise<number> {
  const chunk = opts.chunkBytes ?? 16 << 20;
  const total = await source.size();
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.partial`;
  const fh = await open(tmp, 'w');
  try {
    let pending: Promise<unknown> = Promise.resolve();
    for (let off = 0; off < total; off += chunk) {
      const bytes = await source.read(off, Math.min(chunk, total - off));
      await pending;
      const at = off;
      pending = fh.write(bytes, 0, bytes.length, at).then(() => opts.onProgress?.({ file: path, writtenBytes: at + bytes.length, totalBytes: total }));
    }
    await pending;
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return total;
}

/** The synthetic model's tensors under SGM names (sorted, nothing read yet), their count, parameters and file size. */
export async function singleFileTensors(arch: Arch, dtype: WeightDType): Promise<{ tensors: [string, TensorEntry][]; count: number; params: number; size: number }> {
  const folder = await syntheticModelSource(arch, dtype);
  const parts: Partial<Record<SdxlComponent, Map<string, TensorEntry>>> = {};
  for (const c of Object.keys(WEIGHT_COMPONENTS) as WeightComponent[]) {
    const t = await openComponentTensors(folder, c, { variant: dtype === 'F16' ? 'fp16' : undefined });
    parts[c] = new Map(t.keys().map((k) => [k, t.get(k)!]));
  }
  const tensors = pipelineToSgm(parts);
  const params = tensors.reduce((a, [, e]) => a + e.byteLength / SAFETENSORS_DTYPE_BYTES[e.dtype], 0);
  const size = safetensorsHeader(tensors.map(([k, e]) => [k, e])).length + tensors.reduce((a, [, e]) => a + e.byteLength, 0);
  return { tensors, count: tensors.length, params, size };
}

/**
 * Streams the synthetic model to `path` as one SGM checkpoint (what `make-random-model --single-file`
 * writes), through the same converter as a real folder (@ssd/tensor writeSingleFile).
 */
export async function writeRandomSingleFile(arch: Arch, dtype: WeightDType, path: string, opts: { onProgress?: (p: TensorWriteProgress) => void } = {}): Promise<number> {
  return writeSingleFile(await syntheticModelSource(arch, dtype), new NodeFileSink(path), { sourceVariant: dtype === 'F16' ? 'fp16' : undefined, onProgress: opts.onProgress });
}
