// Reading a diffusers folder: model_index.json, each component's config, and the weight file(s) of a
// component, preferring the requested variant (`*.fp16.safetensors`) and falling back with a notice.

import { ConfigError, ModelLoadError } from './errors.js';
import type { ModelSource } from './model-source.js';
import { SafetensorsFile } from './safetensors.js';
import { checkShardContents, readShardIndex, type ShardIndex } from './shard-index.js';

export interface ModelIndex {
  className: string;
  /** Component name → [library, class]; entries of [null, null] (absent components) are dropped. */
  components: Record<string, [string, string]>;
  /** Every other key (force_zeros_for_empty_prompt, requires_aesthetics_score, …). */
  extra: Record<string, unknown>;
}

/**
 * JSON.parse that also accepts Python's `NaN`, `Infinity` and `-Infinity` (json.dumps writes them,
 * e.g. a DPM scheduler config's `lambda_min_clipped: -Infinity`).
 */
export function parseJsonLenient<T = unknown>(text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (first) {
    // rewrite the bare tokens outside strings, then map them back
    let out = '';
    let inString = false;
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (inString) {
        out += ch;
        if (ch === '\\') out += text[++i] ?? '';
        else if (ch === '"') inString = false;
        continue;
      }
      if (ch === '"') {
        inString = true;
        out += ch;
        continue;
      }
      const rest = text.slice(i, i + 9);
      const tok = rest.startsWith('-Infinity') ? '-Infinity' : rest.startsWith('Infinity') ? 'Infinity' : rest.startsWith('NaN') ? 'NaN' : null;
      if (tok) {
        out += `"\\u0000${tok}"`;
        i += tok.length - 1;
      } else out += ch;
    }
    const special: Record<string, number> = { '\u0000-Infinity': -Infinity, '\u0000Infinity': Infinity, '\u0000NaN': NaN };
    try {
      return JSON.parse(out, (_k, v) => (typeof v === 'string' && v in special ? special[v] : v)) as T;
    } catch {
      throw first;
    }
  }
}

/**
 * A JSON file of the model whose top level must be an object (every diffusers and transformers JSON
 * file is): invalid JSON is a ModelLoadError, `null`, a list or a scalar a ConfigError.
 */
export async function readJson<T = Record<string, unknown>>(source: ModelSource, path: string): Promise<T> {
  const text = await source.readText(path);
  let value: unknown;
  try {
    value = parseJsonLenient(text);
  } catch (e) {
    throw new ModelLoadError(`${source.description}/${path} is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError('', value, 'must be a JSON object ({ … })', `${source.description}/${path}`);
  }
  return value as T;
}

export async function readModelIndex(source: ModelSource): Promise<ModelIndex> {
  if (!(await source.exists('model_index.json'))) {
    throw new ModelLoadError(`${source.description} is not a diffusers pipeline folder: model_index.json was not found there`);
  }
  const file = `${source.description}/model_index.json`;
  const raw = await readJson(source, 'model_index.json');
  const components: Record<string, [string, string]> = {};
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === '_class_name' || k === '_diffusers_version' || k === '_name_or_path') continue;
    if (Array.isArray(v) && v.length === 2 && (v[0] === null || typeof v[0] === 'string')) {
      if (v[1] !== null && typeof v[1] !== 'string') throw new ConfigError(k, v, 'must be [library, class name] (two strings) or [null, null]', file);
      if (v[0] !== null && v[1] !== null) components[k] = [v[0], v[1]];
    } else extra[k] = v;
  }
  const className = raw._class_name ?? '';
  if (typeof className !== 'string') throw new ConfigError('_class_name', className, 'must be a string (the pipeline class)', file);
  return { className, components, extra };
}

/** A component's config.json (scheduler: scheduler_config.json). */
export async function readComponentConfig(source: ModelSource, subfolder: string): Promise<Record<string, unknown>> {
  const prefix = subfolder ? `${subfolder}/` : '';
  const candidates = [`${prefix}config.json`, `${prefix}scheduler_config.json`];
  for (const c of candidates) if (await source.exists(c)) return readJson(source, c);
  throw new ModelLoadError(`no config for "${subfolder || '.'}" in ${source.description}: looked for ${candidates.join(', ')}`);
}

export interface WeightFiles {
  /** Model-relative paths of the safetensors file(s) (several when sharded). */
  paths: string[];
  /** The variant that was loaded ('' for the default weights). */
  variant: string;
  /** A sentence for the user when the requested variant was not found and we fell back. */
  notice?: string;
  /** The shard index when the weights are sharded (openWeightFiles checks the shards against it). */
  index?: ShardIndex;
}

const BASE_NAMES = ['diffusion_pytorch_model', 'model'];

/** Finds a component's weights, trying the variant first, then the default files. */
export async function resolveWeightFiles(source: ModelSource, subfolder: string, variant?: string): Promise<WeightFiles> {
  const prefix = subfolder ? `${subfolder}/` : '';
  const looked: string[] = [];
  const tryVariant = async (v: string): Promise<{ paths: string[]; index?: ShardIndex } | null> => {
    for (const base of BASE_NAMES) {
      const name = v ? `${base}.${v}.safetensors` : `${base}.safetensors`;
      looked.push(prefix + name);
      if (await source.exists(prefix + name)) return { paths: [prefix + name] };
      const indexPath = `${prefix}${name}.index.json`;
      looked.push(indexPath);
      if (await source.exists(indexPath)) {
        const index = await readShardIndex(source, indexPath, subfolder, await readJson(source, indexPath));
        if (!index.shards.length) throw new ModelLoadError(`${source.description}/${indexPath} lists no shards`);
        return { paths: index.shards, index };
      }
    }
    return null;
  };
  if (variant) {
    const found = await tryVariant(variant);
    if (found) return { ...found, variant };
  }
  const found = await tryVariant('');
  if (found) {
    return {
      ...found,
      variant: '',
      notice: variant ? `${source.description}/${subfolder}: no "${variant}" variant weights, loading ${found.paths.join(', ')} instead` : undefined,
    };
  }
  const bin = `${prefix}diffusion_pytorch_model.bin`;
  let hint = (await source.exists(bin)) ? ` (found ${bin}: PyTorch .bin weights are not supported, convert them to safetensors)` : '';
  // Hub folders of SSD-1B / Vega often hold only the fp16 variant: say so instead of just "not found"
  if (!hint && variant !== 'fp16') {
    for (const base of BASE_NAMES) {
      const fp16 = `${prefix}${base}.fp16.safetensors`;
      if ((await source.exists(fp16)) || (await source.exists(`${fp16}.index.json`))) {
        hint = ` (found ${fp16}: load the "fp16" variant — variant: 'fp16', --variant fp16, ssd convert --source-variant fp16)`;
        break;
      }
    }
  }
  throw new ModelLoadError(`no weights for "${subfolder}" in ${source.description}${hint}; looked for: ${looked.join(', ')}`);
}

/** Opens (and validates the headers of) a component's weight file(s). */
export async function openWeightFiles(source: ModelSource, files: WeightFiles): Promise<SafetensorsFile[]> {
  const out: SafetensorsFile[] = [];
  try {
    for (const p of files.paths) out.push(await SafetensorsFile.open(await source.open(p)));
    if (files.index) checkShardContents(source, files.index, out);
  } catch (e) {
    await Promise.all(out.map((f) => f.source.close()));
    throw e;
  }
  return out;
}
