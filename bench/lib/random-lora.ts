// Full-size random LoRAs for benchmarks (`pnpm make-random-lora`): the UNet modules LCM-LoRA and
// Segmind-VegaRT patch, at a given rank, in the kohya (diffusers or SGM names) or PEFT key layout,
// generated on read (a ByteSource over a stateless hash, like the synthetic model weights) so a
// 200 MB file streams to disk without being held. With the published ranks the parameter counts are
// the published ones: lcm-lora-ssd-1b (rank 64) 104,902,656; Segmind-VegaRT (rank 128) 119,562,240.
import { resolve } from 'node:path';
import { NodeFileSource, safetensorsHeader, shapeSize, f32BitsToF16Bits, type ByteSource, type SafetensorsDType } from '@ssd/tensor';
import type { KeyShape } from '@ssd/tensor/testing';
import { diffusersToSgm, openLoraFile, resolveLoraFile, sgmBlockTable, targetsFromKeys } from '@ssd/pipeline';
import { parseUNetConfig, type UNetSpec } from '@ssd/unet';
import { componentKeys, readUNetConfig, streamToFile } from './random-model.js';

export const LORA_FILE_LAYOUTS = ['kohya-diffusers', 'sgm', 'peft'] as const;
export type LoraFileLayout = (typeof LORA_FILE_LAYOUTS)[number];

/** The ranks of the published adapters: lcm-lora-ssd-1b and Segmind-VegaRT. */
export const PUBLISHED_RANK = { 'ssd-1b': 64, vega: 128 } as const;

/**
 * The modules an LCM-LoRA patches: diffusers' train_lcm_distill_lora_sdxl.py lora_target_modules
 * (attention projections, proj_in/out, the feed-forward, every resnet conv and time_emb_proj, the
 * down/upsampler convs) — 423 modules in SSD-1B, 233 in Vega.
 */
export const LCM_LORA_TARGETS = /\.(to_q|to_k|to_v|to_out\.0|proj_in|proj_out|ff\.net\.0\.proj|ff\.net\.2|conv1|conv2|conv_shortcut|downsamplers\.0\.conv|upsamplers\.0\.conv|time_emb_proj)$/;

/** alpha = rank / 8: the LoRA's deltas stay small next to the random base weights (outputs finite). */
export const ALPHA_OVER_RANK = 1 / 8;

/** One LoRA tensor: its key, shape, and how its values are drawn. */
export interface LoraTensor extends KeyShape {
  role: 'down' | 'up' | 'alpha';
  /** Uniform in ±scale (alpha: the value). */
  scale: number;
}

/** The tensors of a random LoRA on every LCM-LoRA module of a UNet state-dict key list. */
export function randomLoraTensors(unetKeys: readonly KeyShape[], spec: UNetSpec, layout: LoraFileLayout, rank: number): LoraTensor[] {
  const table = sgmBlockTable(spec);
  const out: LoraTensor[] = [];
  for (const { key, shape } of unetKeys) {
    if (!key.endsWith('.weight')) continue;
    const path = key.slice(0, -'.weight'.length);
    if (!LCM_LORA_TARGETS.test(path) || (shape.length !== 2 && shape.length !== 4)) continue;
    const [o, i] = shape;
    const conv = shape.length === 4;
    const down = conv ? [rank, i, shape[2], shape[3]] : [rank, i];
    const up = conv ? [o, rank, 1, 1] : [o, rank];
    const downScale = 1 / Math.sqrt(shapeSize(down.slice(1)));
    const upScale = 1 / Math.sqrt(rank);
    if (layout === 'peft') {
      // PEFT files carry no alpha: alpha/rank is folded into lora_B (exact: a power of two)
      out.push({ key: `unet.${path}.lora_A.weight`, shape: down, role: 'down', scale: downScale });
      out.push({ key: `unet.${path}.lora_B.weight`, shape: up, role: 'up', scale: upScale * ALPHA_OVER_RANK });
      continue;
    }
    const name = layout === 'sgm' ? diffusersToSgm(path, table) : path.replace(/\./g, '_');
    if (!name) throw new Error(`make-random-lora: ${path} has no SGM name in this structure`);
    out.push({ key: `lora_unet_${name}.alpha`, shape: [], role: 'alpha', scale: rank * ALPHA_OVER_RANK });
    out.push({ key: `lora_unet_${name}.lora_down.weight`, shape: down, role: 'down', scale: downScale });
    out.push({ key: `lora_unet_${name}.lora_up.weight`, shape: up, role: 'up', scale: upScale });
  }
  return out;
}

/** Parameters of the down/up tensors (what model cards quote). */
export function loraParameterCount(tensors: readonly LoraTensor[]): number {
  return tensors.reduce((a, t) => a + (t.role === 'alpha' ? 0 : shapeSize(t.shape)), 0);
}

/** A random-access safetensors file of these tensors (F16 or F32), values from a hash of (seed, tensor, element). */
export class RandomLoraSource implements ByteSource {
  private readonly header: Uint8Array;
  private readonly starts: number[] = [];
  private readonly total: number;
  private readonly el: number;

  constructor(
    readonly name: string,
    private readonly tensors: readonly LoraTensor[],
    readonly dtype: 'F16' | 'F32' = 'F16',
    readonly seed = 17,
  ) {
    this.el = dtype === 'F16' ? 2 : 4;
    this.header = safetensorsHeader(tensors.map((t) => [t.key, { dtype: dtype as SafetensorsDType, shape: t.shape }]), { format: 'pt', generator: '@ssd make-random-lora' });
    let off = this.header.length;
    for (const t of tensors) {
      this.starts.push(off);
      off += shapeSize(t.shape) * this.el;
    }
    this.total = off;
  }

  async size(): Promise<number> {
    return this.total;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.total) throw new RangeError(`${this.name}: read of ${length} bytes at ${offset} past ${this.total}`);
    const out = new Uint8Array(length);
    const end = offset + length;
    if (offset < this.header.length) out.set(this.header.subarray(offset, Math.min(end, this.header.length)));
    const dv = new DataView(new ArrayBuffer(4));
    for (let ti = 0; ti < this.tensors.length; ti++) {
      const a = this.starts[ti];
      const t = this.tensors[ti];
      const b = a + shapeSize(t.shape) * this.el;
      if (b <= offset || a >= end) continue;
      const salt = hash32(ti * 0x9e3779b1 + this.seed);
      for (let idx = Math.floor((Math.max(a, offset) - a) / this.el); a + idx * this.el < Math.min(b, end); idx++) {
        const v = t.role === 'alpha' ? t.scale : t.scale * (2 * (hash32((idx * 0x85ebca6b) ^ salt) / 4294967296) - 1);
        if (this.el === 2) dv.setUint16(0, f32BitsToF16Bits(f32Bits(v)), true);
        else dv.setFloat32(0, v, true);
        for (let k = 0; k < this.el; k++) {
          const p = a + idx * this.el + k;
          if (p >= offset && p < end) out[p - offset] = dv.getUint8(k);
        }
      }
    }
    return out;
  }

  async close(): Promise<void> {}
}

export interface MakeLoraOptions {
  arch: keyof typeof PUBLISHED_RANK;
  out: string;
  rank?: number;
  layout?: LoraFileLayout;
  dtype?: 'F16' | 'F32';
  log?: (line: string) => void;
}

export interface MakeLoraResult {
  path: string;
  bytes: number;
  parameters: number;
  modules: number;
  layout: string;
  ms: number;
}

/** Writes the LoRA and checks that it maps onto the architecture; see the header. */
export async function makeRandomLora(o: MakeLoraOptions): Promise<MakeLoraResult> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const rank = o.rank ?? PUBLISHED_RANK[o.arch];
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`--rank must be a positive integer, got ${o.rank}`);
  const layout = o.layout ?? 'kohya-diffusers';
  const keys = await componentKeys(o.arch, 'unet');
  const spec = parseUNetConfig(await readUNetConfig(o.arch));
  const tensors = randomLoraTensors(keys, spec, layout, rank);
  const source = new RandomLoraSource(o.out, tensors, o.dtype ?? 'F16');
  const path = resolve(o.out);
  const bytes = await streamToFile(source, path);
  const parameters = loraParameterCount(tensors);
  log(`wrote ${path}: ${o.arch} UNet LoRA, rank ${rank}, layout ${layout}, ${parameters.toLocaleString('en-US')} parameters, ${(bytes / 2 ** 20).toFixed(0)} MiB`);
  // the check: the file as the loader reads it, against the structure the UNet would have
  const lora = await openLoraFile(new NodeFileSource(path));
  try {
    const mapped = await resolveLoraFile(lora, { unet: { targets: targetsFromKeys(keys), sgm: sgmBlockTable(spec) } });
    log(`checked: every key maps onto the ${o.arch} UNet (${mapped.length} modules, read as layout "${lora.layout}")`);
    return { path, bytes, parameters, modules: mapped.length, layout: lora.layout, ms: performance.now() - t0 };
  } finally {
    await lora.file.source.close();
  }
}

function hash32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function f32Bits(v: number): number {
  f32[0] = v;
  return u32[0];
}
