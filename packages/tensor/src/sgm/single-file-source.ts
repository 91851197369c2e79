// A single-file SDXL-family checkpoint (.safetensors or .gguf; SGM / A1111 / ComfyUI / stable-diffusion.cpp
// names, or a lone diffusers-named UNet) presented as a diffusers folder: model_index.json, each component's config.json read off keys and
// shapes, SDXL's scheduler unless __metadata__ says otherwise, and each component's tensors under
// diffusers names (openTensors) — mapped once, here; models never see the format. Only the header is
// read at open time; tensors stream from the file (a path, URL or Blob; any size) when loaded.

import { BlobSource, DenoFileSource, HttpRangeSource, NodeFileSource, type ByteSource, type HttpOptions } from '../byte-source.js';
import { openComponentTensors, type ComponentTensorOptions, type TensorModelSource } from '../component-tensors.js';
import { readJson } from '../diffusers.js';
import { ConfigError, InvalidArgumentError, ModelLoadError } from '../errors.js';
import { isNode } from '../gpu-provider.js';
import type { ModelSource } from '../model-source.js';
import { GgufFile } from '../gguf/gguf-file.js';
import { SafetensorsFile } from '../safetensors.js';
import { reshapedEntry, TensorMap, type TensorEntry, type TensorSource } from '../tensor-source.js';
import { classifyCheckpoint, SGM_PREFIXES, type CheckpointKind, type SdxlComponent } from './checkpoint-kind.js';
import { headDim, schedulerConfigFromMetadata, sdxlModelIndex } from './sdxl-defaults.js';
import { toSgmNames } from './sdcpp-names.js';
import { inferClipTextConfig, openClipToDiffusers } from './text-encoder-keys.js';
import { inferUNetConfig } from './unet-config.js';
import { keyRenamer, layoutFromDiffusersKeys, layoutFromSgmKeys, unetModulePairs } from './unet-layout.js';
import { inferVaeConfig, VAE_CONV_AS_LINEAR_SGM, vaeKeyRenamer, vaeLayoutFromDiffusersKeys, vaeLayoutFromSgmKeys, vaeModulePairs } from './vae-keys.js';

export const SDXL_COMPONENTS: readonly SdxlComponent[] = ['unet', 'vae', 'text_encoder', 'text_encoder_2'];

export interface SingleFileOptions {
  /** Where the components the file lacks come from (a UNet-only file + a folder), and the tokenizers. */
  base?: ModelSource;
  /** Fields replacing inferred config values, per component ('scheduler' too): what shapes cannot say. */
  configs?: Partial<Record<SdxlComponent | 'scheduler', Record<string, unknown>>>;
  /** 'pipeline' (default): all four model components must be found (file or base); 'unet': a UNet suffices. */
  require?: 'pipeline' | 'unet';
  /** Headers or fetch for a URL. */
  http?: HttpOptions;
  /** Told about keys that are not loaded (training state, sampler buffers). */
  onNotice?: (message: string) => void;
}

/** The byte source for a path (Node, Deno), a URL, a Blob/File, or a ByteSource as is. */
export function openByteSource(file: string | Blob | ByteSource, http: HttpOptions = {}): ByteSource {
  if (typeof file !== 'string') return typeof Blob !== 'undefined' && file instanceof Blob ? new BlobSource(file) : (file as ByteSource);
  if (!file) throw new InvalidArgumentError('checkpoint file is an empty string');
  if (/^https?:\/\//i.test(file)) return new HttpRangeSource(file, http);
  if (isNode()) return new NodeFileSource(file);
  if ((globalThis as { Deno?: unknown }).Deno) return new DenoFileSource(file);
  const loc = (globalThis as { location?: { href: string } }).location;
  if (loc) return new HttpRangeSource(new URL(file, loc.href).href, http);
  throw new InvalidArgumentError(`cannot open checkpoint "${file}" here: pass a URL, a Blob or a ByteSource`);
}

export class SingleFileSource implements TensorModelSource {
  private users = 0;

  private constructor(
    /** The file itself: a SafetensorsFile or a GgufFile. */
    readonly file: TensorSource,
    readonly kind: CheckpointKind,
    /** Each component the file holds: its tensors under diffusers names. */
    private readonly tensors: ReadonlyMap<SdxlComponent, ReadonlyMap<string, TensorEntry>>,
    /** config.json text (and scheduler_config.json, model_index.json) by model-relative path. */
    private readonly texts: ReadonlyMap<string, string>,
    readonly base: ModelSource | undefined,
  ) {}

  get description(): string {
    return this.file.name;
  }

  /** The components the file itself holds. */
  get components(): readonly SdxlComponent[] {
    return [...this.tensors.keys()];
  }

  /** A config as served (inferred, with overrides applied). */
  config(path: 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2' | 'scheduler' | 'model_index'): Record<string, unknown> {
    const text = this.texts.get(path === 'model_index' ? 'model_index.json' : path === 'scheduler' ? 'scheduler/scheduler_config.json' : `${path}/config.json`);
    if (text === undefined) throw new ModelLoadError(`${this.description} holds no "${path}"`);
    return JSON.parse(text) as Record<string, unknown>;
  }

  /** Opens a checkpoint file: reads its header, refuses what is not SDXL-family, maps names, infers configs. */
  static async open(file: string | Blob | ByteSource, options: SingleFileOptions = {}): Promise<SingleFileSource> {
    const bytes = openByteSource(file, options.http);
    let st: TensorSource;
    try {
      st = await openTensorFile(bytes);
    } catch (e) {
      await bytes.close();
      throw e;
    }
    try {
      const b = await build(st, options);
      return new SingleFileSource(st, b.kind, b.tensors, b.texts, options.base);
    } catch (e) {
      await st.close();
      throw e;
    }
  }

  async exists(path: string): Promise<boolean> {
    return this.texts.has(path) || (!!this.base && (await this.base.exists(path)));
  }

  async readText(path: string): Promise<string> {
    const t = this.texts.get(path);
    if (t !== undefined) return t;
    if (this.base && (await this.base.exists(path))) return this.base.readText(path);
    throw new ModelLoadError(`file not found: ${path}: ${this.description} is a single-file checkpoint${this.base ? ` and ${this.base.description} has no such file` : ''}`);
  }

  async open(path: string): Promise<ByteSource> {
    if (this.base && (await this.base.exists(path))) return this.base.open(path);
    throw new ModelLoadError(`file not found: ${path}: ${this.description} is a single-file checkpoint (its weights are read with openTensors)`);
  }

  async openTensors(subfolder: string, options?: ComponentTensorOptions): Promise<TensorSource> {
    const entries = this.tensors.get(subfolder as SdxlComponent);
    if (!entries) {
      if (this.base) return openComponentTensors(this.base, subfolder, options);
      throw new ModelLoadError(`${this.description} holds no "${subfolder}" (it holds ${this.components.join(', ')})`);
    }
    // the file is closed when the last component loaded from it is (it reopens on demand)
    this.users++;
    let closed = false;
    return new TensorMap(`${this.description} (${subfolder})`, entries, this.file.metadata, async () => {
      if (closed) return;
      closed = true;
      if (--this.users === 0) await this.file.close();
    });
  }

  /** Closes the file (components loaded later reopen it). */
  close(): Promise<void> {
    return this.file.close();
  }
}

interface Built {
  kind: CheckpointKind;
  tensors: Map<SdxlComponent, Map<string, TensorEntry>>;
  texts: Map<string, string>;
}

/** A tensor file by its first bytes: GGUF ("GGUF" magic) or safetensors. */
export async function openTensorFile(bytes: ByteSource): Promise<TensorSource> {
  const size = await bytes.size();
  return size >= 4 && GgufFile.sniff(await bytes.read(0, 4)) ? GgufFile.open(bytes) : SafetensorsFile.open(bytes);
}

async function build(st: TensorSource, options: SingleFileOptions): Promise<Built> {
  const name = st.name;
  const all = toSgmNames(new Map(st.keys().map((k) => [k, st.get(k)!])));
  const shapeOf = (k: string) => all.get(k)?.shape;
  const kind = classifyCheckpoint([...all.keys()], shapeOf, name);
  if (kind.ignored.length) {
    (options.onNotice ?? console.warn)(`${name}: ${kind.ignored.length} tensors outside the SDXL components are not loaded (e.g. ${kind.ignored.slice(0, 3).join(', ')})`);
  }
  const sgmEntries = (c: SdxlComponent): Map<string, TensorEntry> => {
    const prefix = kind.layout === 'sgm' ? SGM_PREFIXES[c] : '';
    const m = new Map<string, TensorEntry>();
    for (const [k, e] of all) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), e);
    return m;
  };
  const tensors = new Map<SdxlComponent, Map<string, TensorEntry>>();
  for (const c of kind.components) {
    const raw = sgmEntries(c);
    if (kind.layout === 'diffusers-unet') tensors.set(c, raw);
    else if (c === 'unet') tensors.set(c, rename(raw, keyRenamer(unetModulePairs(layoutFromSgmKeys([...raw.keys()])), 'diffusers'), SGM_PREFIXES.unet));
    else if (c === 'vae') tensors.set(c, vaeFromSgm(raw));
    else if (c === 'text_encoder') tensors.set(c, raw);
    else tensors.set(c, openClipToDiffusers(raw));
  }

  // What the file lacks must come from the base folder.
  const base = options.base;
  const inBase = async (c: string) => !!base && (await base.exists(`${c}/config.json`));
  const required: readonly SdxlComponent[] = (options.require ?? 'pipeline') === 'pipeline' ? SDXL_COMPONENTS : ['unet'];
  const missing: SdxlComponent[] = [];
  for (const c of required) if (!tensors.has(c) && !(await inBase(c))) missing.push(c);
  if (missing.length) {
    const what = missing.map((c) => (kind.layout === 'sgm' ? `${c} ("${SGM_PREFIXES[c]}*")` : c)).join(', ');
    throw new ModelLoadError(
      `${name} holds ${kind.components.length ? kind.components.join(', ') : 'no SDXL component'} but no ${what}${base ? ` and ${base.description} has none either` : ''}: ` +
        (kind.components.length === 1 && kind.components[0] === 'unet' ? 'a UNet-only file needs a diffusers folder for the text encoders and the VAE (`base`)' : 'the checkpoint is incomplete; give a diffusers folder with the missing components (`base`)'),
    );
  }

  // Configs: text encoders first (their widths size the UNet's conditioning), then UNet, VAE.
  const texts = new Map<string, string>();
  const configs: Partial<Record<SdxlComponent, Record<string, unknown>>> = {};
  const baseConfig = async (c: SdxlComponent) => ((await inBase(c)) ? readJson<Record<string, unknown>>(base!, `${c}/config.json`) : undefined);
  const shapes = (c: SdxlComponent) => (k: string) => tensors.get(c)?.get(k)?.shape;
  const hidden = (['text_encoder', 'text_encoder_2'] as const).flatMap((c) => shapes(c)('text_model.embeddings.token_embedding.weight')?.[1] ?? []);
  for (const c of ['text_encoder', 'text_encoder_2'] as const) {
    if (tensors.has(c)) configs[c] = { ...inferClipTextConfig(shapes(c), c === 'text_encoder_2', { headDim: headDim(hidden), file: `${name} (${c})` }), ...options.configs?.[c] };
    else configs[c] = await baseConfig(c);
  }
  const pooledDim = configs.text_encoder_2?.projection_dim as number | undefined;
  if (tensors.has('unet')) {
    const keys = [...tensors.get('unet')!.keys()];
    const override = options.configs?.unet;
    const additionTimeEmbedDim = typeof override?.addition_time_embed_dim === 'number' ? override.addition_time_embed_dim : undefined;
    configs.unet = { ...inferUNetConfig(layoutFromDiffusersKeys(keys), shapes('unet'), { pooledDim, additionTimeEmbedDim, file: `${name} (unet)` }), ...override };
  } else configs.unet = await baseConfig('unet');
  if (tensors.has('vae')) {
    const keys = [...tensors.get('vae')!.keys()];
    const latentSampleSize = configs.unet?.sample_size as number | undefined;
    configs.vae = { ...inferVaeConfig(vaeLayoutFromDiffusersKeys(keys), shapes('vae'), { latentSampleSize, file: `${name} (vae)` }), ...options.configs?.vae };
  }
  checkConditioning(configs, name);
  for (const c of tensors.keys()) texts.set(`${c}/config.json`, `${JSON.stringify(sortKeys(configs[c]!), null, 2)}\n`);

  const metaSays = Object.keys(st.metadata).some((k) => k === 'scheduler_config' || k === 'modelspec.prediction_type' || k === 'ss_v_parameterization');
  let scheduler: Record<string, unknown> | undefined;
  if (!metaSays && base && (await base.exists('scheduler/scheduler_config.json'))) scheduler = await readJson(base, 'scheduler/scheduler_config.json');
  scheduler = { ...(scheduler ?? schedulerConfigFromMetadata(st.metadata, name)), ...options.configs?.scheduler };
  texts.set('scheduler/scheduler_config.json', `${JSON.stringify(sortKeys(scheduler), null, 2)}\n`);
  texts.set('model_index.json', `${JSON.stringify(sdxlModelIndex(String(scheduler._class_name)), null, 2)}\n`);
  return { kind, tensors, texts };
}

/** Renames every key; keys under no known module keep their full SGM name (loading reports them). */
function rename(entries: ReadonlyMap<string, TensorEntry>, renamer: (k: string) => string | null, prefix: string): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const [k, e] of entries) out.set(renamer(k) ?? prefix + k, e);
  return out;
}

function vaeFromSgm(raw: ReadonlyMap<string, TensorEntry>): Map<string, TensorEntry> {
  const renamer = vaeKeyRenamer(vaeModulePairs(vaeLayoutFromSgmKeys([...raw.keys()])), 'diffusers');
  const out = new Map<string, TensorEntry>();
  for (const [k, e] of raw) {
    // LDM's 1×1-conv attention projections are diffusers' linears: the same bytes
    const linear = VAE_CONV_AS_LINEAR_SGM.test(k) && e.shape.length === 4 && e.shape[2] === 1 && e.shape[3] === 1;
    out.set(renamer(k) ?? SGM_PREFIXES.vae + k, linear ? reshapedEntry(e, e.shape.slice(0, 2)) : e);
  }
  return out;
}

/** SDXL's UNet cross-attends to both encoders' hidden states side by side. */
function checkConditioning(configs: Partial<Record<SdxlComponent, Record<string, unknown>>>, file: string): void {
  const [u, t1, t2] = [configs.unet, configs.text_encoder, configs.text_encoder_2];
  if (!u || !t1 || !t2) return;
  const want = (t1.hidden_size as number) + (t2.hidden_size as number);
  if (u.cross_attention_dim !== want) {
    throw new ConfigError('cross_attention_dim', u.cross_attention_dim, `the UNet must attend to both text encoders' hidden states side by side (${t1.hidden_size} + ${t2.hidden_size} = ${want})`, `${file} (unet)`);
  }
  if (u.addition_embed_type === 'text_time' && (u.projection_class_embeddings_input_dim as number) !== (t2.projection_dim as number) + 6 * (u.addition_time_embed_dim as number)) {
    throw new ConfigError('projection_class_embeddings_input_dim', u.projection_class_embeddings_input_dim, `must be text_encoder_2's projection_dim ${t2.projection_dim} + 6 × addition_time_embed_dim ${u.addition_time_embed_dim}`, `${file} (unet)`);
  }
}

/** Keys sorted as diffusers' save_config writes them. */
function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
