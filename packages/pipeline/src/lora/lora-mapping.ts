// A LoRA file's modules onto a model's layers: names resolved against the layers the model actually
// has (UNet2DConditionModel / CLIPTextModel namedLinearLayers + namedConv2dLayers), shapes checked
// against each layer, then one low-rank pair per layer built on the host — parts of a stacked
// projection (to_q/to_k/to_v) side by side, alpha/rank folded into the up rows — and uploaded.
import {
  conv2dWeightFromOIHW, type LoraTarget, type LoraWeight, type LowRankPair,
} from '@ssd/kernels';
import { f32ArrayToF16, formatShape, throwIfAborted, type CheckpointProblem, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import type { CLIPTextModel } from '@ssd/clip';
import type { UNet2DConditionModel } from '@ssd/unet';
import type { LoraComponent } from './layouts.js';
import { loraCheckpointError, type LoraFile, type LoraModuleKeys } from './lora-file.js';
import { sgmBlockTable, sgmToDiffusers, type SgmBlockTable } from './sgm-names.js';

/** The models a LoRA can patch (any may be absent). */
export interface LoraModels {
  unet?: UNet2DConditionModel;
  text_encoder?: CLIPTextModel;
  text_encoder_2?: CLIPTextModel;
}

/** What name resolution and the shape checks need of a layer: a LoraTarget, or one described by a key list. */
export type TargetShape = Pick<LoraTarget, 'path' | 'kind' | 'inFeatures' | 'outFeatures' | 'kernelSize'>;

/** One component's layers by module path, and (UNet) its SGM block table. */
export interface ComponentTargets<T extends TargetShape = LoraTarget> {
  readonly targets: ReadonlyMap<string, T>;
  readonly sgm: SgmBlockTable | null;
}

/** One file module resolved to a layer. */
export interface MappedModule<T extends TargetShape = LoraTarget> {
  readonly keys: LoraModuleKeys;
  readonly target: T;
  readonly rank: number;
  /** alpha / rank (1 without an alpha key), as diffusers' network_alphas. */
  readonly multiplier: number;
}

/** The layers of the given models, per component. */
export function modelTargets(models: LoraModels): Partial<Record<LoraComponent, ComponentTargets>> {
  const out: Partial<Record<LoraComponent, ComponentTargets>> = {};
  if (models.unet) out.unet = { targets: new Map([...models.unet.namedLinearLayers(), ...models.unet.namedConv2dLayers()]), sgm: sgmBlockTable(models.unet.spec) };
  if (models.text_encoder) out.text_encoder = { targets: models.text_encoder.namedLinearLayers(), sgm: null };
  if (models.text_encoder_2) out.text_encoder_2 = { targets: models.text_encoder_2.namedLinearLayers(), sgm: null };
  return out;
}

/**
 * The layers a state-dict key list describes (every `<module>.weight` of rank 2 or 4), as the model
 * built from it names them: 1×1 convs are conv2d layers except proj_in/proj_out, which the model runs
 * as linear layers whatever their stored shape. For checking a LoRA against a model's structure
 * without building it (make-random-lora).
 */
export function targetsFromKeys(keys: readonly { key: string; shape: readonly number[] }[]): Map<string, TargetShape> {
  const out = new Map<string, TargetShape>();
  for (const { key, shape } of keys) {
    if (!key.endsWith('.weight') || (shape.length !== 2 && shape.length !== 4)) continue;
    const path = key.slice(0, -'.weight'.length);
    const conv = shape.length === 4 && !/\.proj_(in|out)$/.test(path);
    out.set(path, { path, kind: conv ? 'conv2d' : 'linear', inFeatures: shape[1], outFeatures: shape[0], kernelSize: conv ? shape[2] : 1 });
  }
  return out;
}

function flatIndex(targets: ReadonlyMap<string, TargetShape>): Map<string, string | null> {
  const flat = new Map<string, string | null>();
  for (const path of targets.keys()) {
    const f = path.replace(/\./g, '_');
    flat.set(f, flat.has(f) ? null : path); // an ambiguous flat name resolves to nothing
  }
  return flat;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Resolves every module of the file onto the models' layers and checks its shapes (see resolveLoraFile). */
export function mapLoraFile(lora: LoraFile, models: LoraModels, skip: readonly LoraComponent[] = []): Promise<MappedModule[]> {
  return resolveLoraFile(lora, modelTargets(models), skip);
}

/**
 * Resolves every module of the file and checks its shapes. Components in `skip` are not loaded; any
 * other module that maps to no layer, or whose shapes do not fit it, is a CheckpointError listing the
 * first keys and the layout assumed.
 */
export async function resolveLoraFile<T extends TargetShape>(lora: LoraFile, components: Partial<Record<LoraComponent, ComponentTargets<T>>>, skip: readonly LoraComponent[] = []): Promise<MappedModule<T>[]> {
  const { file, layout } = lora;
  const flats = new Map<LoraComponent, Map<string, string | null>>();
  const problems: CheckpointProblem[] = [];
  const mapped: MappedModule<T>[] = [];
  for (const keys of lora.modules) {
    if (skip.includes(keys.component)) continue;
    const comp = components[keys.component];
    const down = file.info(keys.down!).shape;
    const up = file.info(keys.up!).shape;
    let target: T | undefined;
    if (comp && keys.naming === 'path') target = comp.targets.get(keys.module);
    else if (comp) {
      if (!flats.has(keys.component)) flats.set(keys.component, flatIndex(comp.targets));
      const flatName = keys.naming === 'sgm' ? (comp.sgm ? sgmToDiffusers(keys.module, comp.sgm) : null) : keys.module;
      const path = flatName === null ? null : flats.get(keys.component)!.get(flatName);
      target = path ? comp.targets.get(path) : undefined;
    }
    if (!target) {
      const why = comp ? 'maps to no layer of the model' : `no ${keys.component} was given to load it into`;
      problems.push({ key: `${keys.down} (module ${keys.component}.${keys.module}: ${why})`, kind: 'unexpected', actual: formatShape(down) });
      continue;
    }
    const r = down[0];
    const k = target.kernelSize;
    const downOk = target.kind === 'conv2d' ? same(down, [r, target.inFeatures, k, k]) : same(down, [r, target.inFeatures]) || same(down, [r, target.inFeatures, 1, 1]);
    if (!downOk || r < 1) {
      const want = target.kind === 'conv2d' ? `[rank, ${target.inFeatures}, ${k}, ${k}]` : `[rank, ${target.inFeatures}]`;
      problems.push({ key: keys.down!, kind: 'shape', expected: `${want} for ${keys.component}.${target.path}`, actual: formatShape(down) });
      continue;
    }
    if (!same(up, [target.outFeatures, r]) && !same(up, [target.outFeatures, r, 1, 1])) {
      problems.push({ key: keys.up!, kind: 'shape', expected: `[${target.outFeatures}, ${r}] or [${target.outFeatures}, ${r}, 1, 1] for ${keys.component}.${target.path}`, actual: formatShape(up) });
      continue;
    }
    let multiplier = 1;
    if (keys.alpha) {
      const a = await file.readFloat32(keys.alpha);
      if (a.length !== 1 || !Number.isFinite(a[0])) {
        problems.push({ key: keys.alpha, kind: 'shape', expected: 'one finite value', actual: `${formatShape(file.info(keys.alpha).shape)} = ${[...a.slice(0, 4)].join(', ')}` });
        continue;
      }
      multiplier = a[0] / r;
    }
    mapped.push({ keys, target, rank: r, multiplier });
  }
  const seen = new Map<T, MappedModule<T>>();
  for (const m of mapped) {
    const prev = seen.get(m.target);
    if (prev) problems.push({ key: `${m.keys.down} (the same layer as ${prev.keys.down}: ${m.keys.component}.${m.target.path})`, kind: 'unexpected', actual: formatShape(file.info(m.keys.down!).shape) });
    seen.set(m.target, m);
  }
  if (problems.length) throw loraCheckpointError(file.name, layout, problems);
  return mapped;
}

/** Every mapped module grouped by the layer weight it patches, in file order. */
export function groupByWeight(mapped: readonly MappedModule[]): Map<LoraWeight, MappedModule[]> {
  const groups = new Map<LoraWeight, MappedModule[]>();
  for (const m of mapped) {
    const g = groups.get(m.target.weight);
    if (g) g.push(m);
    else groups.set(m.target.weight, [m]);
  }
  return groups;
}

/**
 * The pair of one layer: down = the modules' down rows stacked [R, K] (convs re-laid OIHW → OHWI),
 * up = [N, R] with each module's up · alpha/rank in its own rows and columns, zero elsewhere.
 */
export async function buildPair(lora: LoraFile, weight: LoraWeight, modules: readonly MappedModule[], signal?: AbortSignal): Promise<LowRankPair> {
  const R = modules.reduce((a, m) => a + m.rank, 0);
  const K = weight.reduceSize;
  const N = weight.outFeatures;
  const down = new Float32Array(R * K);
  const up = new Float32Array(N * R);
  let col = 0;
  for (const m of modules) {
    throwIfAborted(signal, 'loading the LoRA');
    const d = await lora.file.readFloat32(m.keys.down!, signal);
    const fileShape = lora.file.info(m.keys.down!).shape;
    down.set(weight.kind === 'conv2d' ? conv2dWeightFromOIHW(d, fileShape).data : d, col * K);
    const u = await lora.file.readFloat32(m.keys.up!, signal);
    const { rowOffset, rows } = m.target.part;
    for (let i = 0; i < rows; i++) for (let j = 0; j < m.rank; j++) up[(rowOffset + i) * R + col + j] = u[i * m.rank + j] * m.multiplier;
    col += m.rank;
  }
  const ctx = weight.ctx;
  const dtype = weight.dtype;
  const downShape = weight.downShape(R);
  return { down: upload(ctx, down, downShape, dtype, 'lora down'), up: upload(ctx, up, [N, R], dtype, 'lora up') };
}

/** A long-lived (unpooled) tensor holding f32 values in the layer dtype. */
function upload(ctx: GpuContext, values: Float32Array, shape: number[], dtype: DType, label: string): Tensor {
  const t = ctx.weight(shape, dtype, label);
  const data = dtype === 'f16' ? f32ArrayToF16(values) : values;
  let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4) {
    const padded = new Uint8Array(bytes.byteLength + 2);
    padded.set(bytes);
    bytes = padded;
  }
  ctx.write(t, bytes, 0);
  return t;
}
