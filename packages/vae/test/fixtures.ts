// Fixture access for the VAE tests: the reference JSON's case lists (iterated, never hard-coded: an
// acceptance set has other cases), reference tensors as NHWC host arrays, the fixture model folders,
// and rewritten copies of a model (renamed, reshaped or missing tensors) served from memory.
import { readFile } from 'node:fs/promises';
import { encodeSafetensors, MemorySource, NodeFileSource, SafetensorsFile, type SafetensorsDType, type TensorToWrite } from '@ssd/tensor';
import { fixturesDir } from '../../../testing/index.js';

export interface CaseList {
  model?: string;
  scaling_factor?: number;
  decode_cases?: { name: string }[];
  encode_cases?: { name: string }[];
  tensors: { name: string; shape: number[] }[];
}

export async function referenceJson(name: string): Promise<CaseList> {
  return JSON.parse(await readFile(`${fixturesDir}/reference/${name}.json`, 'utf8')) as CaseList;
}

export async function referenceFile(name: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(new NodeFileSource(`${fixturesDir}/reference/${name}.safetensors`));
}

export interface Nhwc {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** A reference tensor (NCHW in the file) as NHWC. */
export async function readNhwc(file: SafetensorsFile, name: string): Promise<Nhwc> {
  const [b, c, h, w] = file.info(name).shape;
  return { data: nchwToNhwc(await file.readFloat32(name), b, c, h, w), shape: [b, h, w, c] };
}

export function nchwToNhwc(src: Float32Array, b: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let n = 0; n < b; n++) for (let k = 0; k < c; k++) for (let p = 0; p < h * w; p++) out[(n * h * w + p) * c + k] = src[(n * c + k) * h * w + p];
  return out;
}

export const klModelDir = (json: CaseList) => `${fixturesDir}/${json.model ?? 'models/tiny-ssd1b/vae'}`;
export const taesdModelDir = `${fixturesDir}/models/tiny-taesd`;

/** Every tensor of a safetensors file, as writable entries (data copied as stored). */
export async function readAllTensors(path: string): Promise<Record<string, TensorToWrite>> {
  const file = await SafetensorsFile.open(new NodeFileSource(path));
  const out: Record<string, TensorToWrite> = {};
  for (const key of file.keys()) {
    const info = file.info(key);
    out[key] = { dtype: info.dtype as SafetensorsDType, shape: [...info.shape], data: await file.readBytes(key) };
  }
  await file.source.close();
  return out;
}

/**
 * A model folder in memory: the config of `dir` and its weights after `edit` (which may rename,
 * reshape or delete entries). Served as the source's root (subfolder '').
 */
export async function editedModel(dir: string, edit: (t: Record<string, TensorToWrite>) => Record<string, TensorToWrite>, configEdit?: (c: Record<string, unknown>) => Record<string, unknown>): Promise<MemorySource> {
  const config = JSON.parse(await readFile(`${dir}/config.json`, 'utf8')) as Record<string, unknown>;
  const tensors = edit(await readAllTensors(`${dir}/diffusion_pytorch_model.safetensors`));
  return new MemorySource({
    'config.json': JSON.stringify(configEdit ? configEdit(config) : config),
    'diffusion_pytorch_model.safetensors': encodeSafetensors(tensors),
  }, `edited copy of ${dir}`);
}
