// SdxlComponents: the models of a StableDiffusionXLPipeline folder and the policy for holding them —
// loading (byte-accurate progress per component, the fp16 variant / f16 dtype applied consistently),
// memory mode (resident, or 'low': each model loaded for its stage and released after it), the fit
// checks a run must pass before anything is loaded, and the low-memory pool cap. The algorithm
// (run.ts) asks for a stage's model and gives it back; it never decides where models live.
import {
  createContext, DeviceLimitError, InvalidArgumentError, openModelSource, readComponentConfig, readModelIndex, throwIfAborted,
  type GpuContext, type ModelSource,
} from '@ssd/tensor';
import { checkPromptLengthsMatch, checkTokenizerFitsEncoder, parseCLIPTextConfig, type CLIPTextConfig, type CLIPTokenizer } from '@ssd/clip';
import { checkComponentClasses } from './component-classes.js';
import { parseUNetConfig, planUNetMemory, unetConvScratch, unetLoadedElements, type UNet2DConditionConfig, type UNet2DConditionModel, type UNetSpec } from '@ssd/unet';
import { SdxlComponentsLoader } from './component-loader.js';
import type { ComponentSource, ComponentsOptions, TextEncoders, Vae } from './component-types.js';
import { LoraAdapters } from './lora/index.js';
import { PipelineLoras } from './pipeline-loras.js';
import { componentWeightBytes } from './weight-bytes.js';

export type { ComponentLoadProgress, ComponentSource, ComponentsOptions, TextEncoders, Vae } from './component-types.js';

/** The pool's cap during a low-memory run. */
export const LOW_MEMORY_POOL_BYTES = 16 * 2 ** 20;

interface Resident {
  textEncoders: TextEncoders | null;
  unet: UNet2DConditionModel | null;
  vae: Vae | null;
}

interface Init extends Resident {
  ctx: GpuContext;
  ownsContext: boolean;
  source: ModelSource;
  unetSource: ComponentSource;
  vaeSource: ComponentSource;
  dtype: 'f16' | 'f32';
  options: Readonly<ComponentsOptions>;
  tokenizers: readonly [CLIPTokenizer, CLIPTokenizer];
  unetSpec: UNetSpec;
  schedulerConfig: Readonly<Record<string, unknown>>;
  forceZerosForEmptyPrompt: boolean;
  stageWeightBytes: { textEncoders: number; unet: number } | null;
  loadMs: number;
  loras: PipelineLoras;
}

const REQUIRED = ['tokenizer', 'tokenizer_2', 'text_encoder', 'text_encoder_2', 'unet', 'scheduler'];
const poolCaps = new WeakMap<GpuContext, { runs: number; before: number }>();

export class SdxlComponents {
  readonly ctx: GpuContext;
  readonly source: ModelSource;
  readonly dtype: 'f16' | 'f32';
  readonly tokenizers: readonly [CLIPTokenizer, CLIPTokenizer];
  /** The UNet's structure, from its config (also while a low-memory pipeline has it unloaded). */
  readonly unetSpec: UNetSpec;
  /** scheduler/scheduler_config.json as read. */
  readonly schedulerConfig: Readonly<Record<string, unknown>>;
  /** model_index.json's force_zeros_for_empty_prompt (diffusers' default: true). */
  readonly forceZerosForEmptyPrompt: boolean;
  /** Low-memory mode: GPU bytes of each stage's weights, loaded per run (checked before a run starts). */
  readonly stageWeightBytes: { textEncoders: number; unet: number } | null;
  readonly loadMs: number;
  /** The LoRA adapters (loadLoraWeights & co.), in either memory mode. */
  readonly loras: PipelineLoras;
  private readonly resident: Resident;
  /** Low-memory mode: the adapters attached to a model loaded for one stage. */
  private readonly stageAdapters = new WeakMap<object, LoraAdapters>();
  private readonly ownsContext: boolean;
  private readonly unetSource: ComponentSource;
  private readonly vaeSource: ComponentSource;
  private readonly options: Readonly<ComponentsOptions>;
  private disposed = false;

  private constructor(init: Init) {
    this.ctx = init.ctx;
    this.ownsContext = init.ownsContext;
    this.source = init.source;
    this.unetSource = init.unetSource;
    this.vaeSource = init.vaeSource;
    this.dtype = init.dtype;
    this.options = init.options;
    this.tokenizers = init.tokenizers;
    this.unetSpec = init.unetSpec;
    this.schedulerConfig = init.schedulerConfig;
    this.forceZerosForEmptyPrompt = init.forceZerosForEmptyPrompt;
    this.stageWeightBytes = init.stageWeightBytes;
    this.loadMs = init.loadMs;
    this.loras = init.loras;
    this.resident = { textEncoders: init.textEncoders, unet: init.unet, vae: init.vae };
  }

  /**
   * Loads every component model_index.json lists (in low-memory mode: tokenizers and configs only).
   * Every config is read and checked before any weight: `checkConfigs` (the pipeline's scheduler
   * check) runs then too, so a bad config costs no loading time.
   */
  static async load(source: string | ModelSource, options: ComponentsOptions = {}, checkConfigs?: (c: { schedulerConfig: Record<string, unknown> }) => void): Promise<SdxlComponents> {
    const t0 = performance.now();
    checkMemoryOptions(options);
    const src = openModelSource(source);
    const index = await readModelIndex(src);
    checkComponentClasses(index, `${src.description}/model_index.json`);
    for (const c of REQUIRED) {
      if (!index.components[c]) throw new InvalidArgumentError(`${src.description}/model_index.json lists no "${c}": not an SDXL-family pipeline (components: ${Object.keys(index.components).join(', ')})`);
    }
    if (!options.vae && !index.components.vae) throw new InvalidArgumentError(`${src.description}/model_index.json lists no "vae"; pass one with the vae option`);
    const ctx = options.context ?? (await createContext({ memoryBudgetBytes: options.memoryBudgetBytes }));
    const ownsContext = !options.context;
    const notice = options.onNotice ?? ((m: string) => console.warn(m));
    let dtype = options.dtype ?? (ctx.f16 ? 'f16' : 'f32');
    if (dtype === 'f16' && !ctx.f16) {
      notice('this device has no shader-f16: running in f32 (about twice the memory and bandwidth)');
      dtype = 'f32';
    }
    const vaeSource = options.vae ? { source: openModelSource(options.vae), subfolder: '' } : { source: src, subfolder: 'vae' };
    const unetSource = options.unet ? { source: openModelSource(options.unet), subfolder: '' } : { source: src, subfolder: 'unet' };
    const low = options.memory === 'low';
    const resident: Resident = { textEncoders: null, unet: null, vae: null };
    const loader = new SdxlComponentsLoader(ctx, src, unetSource, vaeSource, dtype, { ...options, onNotice: notice });
    try {
      const schedulerConfig = await readComponentConfig(src, 'scheduler');
      checkConfigs?.({ schedulerConfig });
      // the UNet config is parsed before any weight is read: a config we cannot run fails now
      const unetSpec = parseUNetConfig((await readComponentConfig(unetSource.source, unetSource.subfolder)) as UNet2DConditionConfig);
      const tokenizers = await loader.tokenizers();
      // the text encoders' configs against the tokenizers, before their weights (model_max_length, vocabulary)
      for (const [i, sub] of (['text_encoder', 'text_encoder_2'] as const).entries()) {
        const spec = parseCLIPTextConfig((await readComponentConfig(src, sub)) as CLIPTextConfig, `${sub}/config.json`);
        checkTokenizerFitsEncoder(tokenizers[i], spec, i ? 'tokenizer_2' : 'tokenizer', `${sub}/config.json`);
      }
      checkPromptLengthsMatch(tokenizers[0], tokenizers[1]);
      throwIfAborted(options.signal, 'loading the pipeline');
      // stage weight bytes from the tensor headers: low-memory mode checks each run against them; under
      // a memory budget, resident weights that cannot fit are refused before any is loaded
      const stageBytes = low || Number.isFinite(ctx.memoryBudgetBytes)
        ? {
            textEncoders: (await componentWeightBytes(src, 'text_encoder', options.variant, dtype)) + (await componentWeightBytes(src, 'text_encoder_2', options.variant, dtype)),
            unet: await componentWeightBytes(unetSource.source, unetSource.subfolder, options.variant, dtype, (k, shape) => unetLoadedElements(ctx, k, shape, dtype)),
          }
        : null;
      if (!low) {
        if (stageBytes) checkResidentWeightsFit(ctx, stageBytes);
        resident.textEncoders = await loader.textEncoders(options.signal);
        resident.unet = await loader.unet(options.signal);
      }
      const stageWeightBytes = low ? stageBytes : null;
      if (!low) resident.vae = await loader.vae(options.signal, 'both');
      const loras = new PipelineLoras(
        low ? null : new LoraAdapters({ unet: resident.unet!, text_encoder: resident.textEncoders![0], text_encoder_2: resident.textEncoders![1] }),
        { unet: { ...unetSource, spec: unetSpec }, textEncoders: src, variant: options.variant },
      );
      return new SdxlComponents({
        loras,
        ...resident, ctx, ownsContext, source: src, unetSource, vaeSource, dtype, options: { ...options, onNotice: notice }, tokenizers, unetSpec, schedulerConfig,
        forceZerosForEmptyPrompt: index.extra.force_zeros_for_empty_prompt !== false, stageWeightBytes, loadMs: performance.now() - t0,
      });
    } catch (e) {
      resident.textEncoders?.forEach((m) => m.dispose());
      resident.unet?.dispose();
      resident.vae?.dispose();
      if (ownsContext) ctx.destroy();
      throw e;
    }
  }

  /** Low-memory mode: every component is loaded for its stage and released after it. */
  get lowMemory(): boolean {
    return this.options.memory === 'low';
  }

  /** Whether CFG's two halves run as separate UNet calls (options.cfgBatch; low-memory mode's default). */
  get splitCfg(): boolean {
    return (this.options.cfgBatch ?? (this.lowMemory ? 'split' : 'together')) === 'split';
  }

  /** The resident UNet (diffusers' `pipe.unet`). In low-memory mode it is loaded only while denoising. */
  get unet(): UNet2DConditionModel {
    if (!this.resident.unet) throw new InvalidArgumentError('in low-memory mode the UNet is loaded only while denoising');
    return this.resident.unet;
  }

  /** The VAE kept loaded (resident mode), if any. */
  get residentVae(): Vae | null {
    return this.resident.vae;
  }

  /** Image size when none is given: the UNet's sample_size × 8. */
  get defaultSize(): number {
    return this.unetSpec.sampleSize * 8;
  }

  /** Text encoders for one stage (loaded now in low-memory mode; give back with releaseTextEncoders). */
  async acquireTextEncoders(signal?: AbortSignal): Promise<TextEncoders> {
    this.checkLive();
    if (this.resident.textEncoders) return this.resident.textEncoders;
    const encoders = await this.loader().textEncoders(signal);
    return this.withStageAdapters(encoders, { text_encoder: encoders[0], text_encoder_2: encoders[1] }, signal, () => encoders.forEach((e) => e.dispose()));
  }

  releaseTextEncoders(encoders: TextEncoders): void {
    if (encoders === this.resident.textEncoders) return;
    this.dropStageAdapters(encoders);
    for (const e of encoders) e.dispose();
  }

  /** The UNet for one run (loaded now in low-memory mode; give back with releaseUNet). */
  async acquireUNet(signal?: AbortSignal): Promise<UNet2DConditionModel> {
    this.checkLive();
    if (this.resident.unet) return this.resident.unet;
    const unet = await this.loader().unet(signal);
    return this.withStageAdapters(unet, { unet }, signal, () => unet.dispose());
  }

  releaseUNet(unet: UNet2DConditionModel): void {
    if (unet === this.resident.unet) return;
    this.dropStageAdapters(unet);
    unet.dispose();
  }

  /** The VAE for one stage: the resident one, or (low-memory mode) just the part the stage needs. */
  async acquireVae(signal?: AbortSignal, part: 'decoder' | 'encoder' = 'decoder'): Promise<Vae> {
    this.checkLive();
    return this.resident.vae ?? this.loader().vae(signal, part);
  }

  releaseVae(vae: Vae): void {
    if (vae !== this.resident.vae) vae.dispose();
  }

  /**
   * Refuses up front a size the device cannot run: a tensor some op must bind whole above
   * maxStorageBufferBindingSize, or activations beyond the context's memory budget (in low-memory
   * mode: a stage's weights, or the UNet's weights plus its activations, beyond it).
   */
  checkFits(rows: number, width: number, height: number, images = rows): void {
    const ctx = this.ctx;
    const el = this.dtype === 'f16' ? 2 : 4;
    const plan = planUNetMemory(this.unetSpec, rows, height / 8, width / 8, el, unetConvScratch(ctx, this.dtype));
    const limit = ctx.limits.maxStorageBufferBindingSize;
    const worst = plan.wholeBindings.reduce((a, x) => (x.bytes > a.bytes ? x : a), { what: '', bytes: 0 });
    if (worst.bytes > limit) {
      throw new DeviceLimitError('maxStorageBufferBindingSize', worst.bytes, limit, `${width}×${height} (UNet batch ${rows}, ${this.dtype}) needs ${worst.what} in one binding; choose a smaller size${el === 4 && ctx.f16 ? ' or dtype f16' : ''}`);
    }
    const free = ctx.memoryBudgetBytes - ctx.memory.liveBytes;
    const stages = this.stageWeightBytes;
    if (stages) {
      // low-memory mode: nothing of the model is loaded yet; the largest stage must fit on its own
      if (stages.textEncoders > free) {
        throw new DeviceLimitError('GPU memory budget (bytes)', stages.textEncoders, Math.max(0, Math.round(free)), 'the two text encoders\' weights (low-memory mode loads them for the text stage)');
      }
      const unetStage = stages.unet + plan.peakActivationBytes;
      if (unetStage > free) {
        throw new DeviceLimitError('GPU memory budget (bytes)', Math.round(unetStage), Math.max(0, Math.round(free)), `${width}×${height} (UNet batch ${rows}): the UNet's weights (${stages.unet.toLocaleString('en-US')} bytes) plus its estimated activations; choose a smaller size or fewer images`);
      }
      return;
    }
    if (plan.peakActivationBytes > free) {
      throw new DeviceLimitError('GPU memory budget (bytes)', Math.round(plan.peakActivationBytes), Math.max(0, Math.round(free)), `${width}×${height} (UNet batch ${rows}): estimated UNet activations beyond the weights already loaded; choose a smaller size or fewer images`);
    }
    // under a budget, the resident VAE's decode (tiled as far as it must) has to fit what the weights leave:
    // refused now (planDecode's DeviceLimitError), not after the denoising
    const vae = this.resident.vae;
    if (vae && Number.isFinite(ctx.memoryBudgetBytes)) {
      try {
        vae.planDecode(images, height / vae.vaeScaleFactor, width / vae.vaeScaleFactor);
      } catch (e) {
        if (e instanceof DeviceLimitError) throw new DeviceLimitError(e.limit, e.required, e.available, `${width}×${height}: the VAE decode after the denoising cannot fit beside the resident weights (checked before the first step; memory: 'low' frees the UNet for it)`);
        throw e;
      }
    }
  }

  /**
   * Memory policy for one run. Low-memory mode caps the pool until the returned function is called: a
   * large pool holds buffers of many size classes at once — SSD-1B at 1024²: 255 MiB of live UNet
   * activations but 629 MiB with the default 512 MiB pool, 268 MiB with this cap — at the cost of
   * creating the large buffers again every step. Runs of two pipelines sharing a context may overlap.
   */
  beginRun(): () => void {
    if (!this.lowMemory) return () => {};
    const ctx = this.ctx;
    const cap = poolCaps.get(ctx) ?? { runs: 0, before: ctx.maxPooledBytes };
    if (cap.runs++ === 0) poolCaps.set(ctx, cap);
    ctx.maxPooledBytes = Math.min(cap.before, LOW_MEMORY_POOL_BYTES);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--cap.runs === 0) {
        poolCaps.delete(ctx);
        ctx.maxPooledBytes = cap.before;
      }
    };
  }

  /** Start of a stage: in low-memory mode the buffers the last stage pooled are freed, so each stage's peak is its own. */
  beginStage(): void {
    if (this.lowMemory) this.ctx.trim();
    this.ctx.resetPeak();
  }

  /** Frees every resident model (and the context, when these components made it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.loras.unload();
    this.resident.textEncoders?.forEach((e) => e.dispose());
    this.resident.unet?.dispose();
    this.resident.vae?.dispose();
    if (this.ownsContext) this.ctx.destroy();
  }

  /** Low-memory mode: the LoRA adapters on a model loaded for one stage (the model is freed if that fails). */
  private async withStageAdapters<T extends object>(model: T, models: Parameters<PipelineLoras['attach']>[0], signal: AbortSignal | undefined, free: () => void): Promise<T> {
    try {
      const adapters = await this.loras.attach(models, signal);
      if (adapters) this.stageAdapters.set(model, adapters);
      return model;
    } catch (e) {
      free();
      throw e;
    }
  }

  private dropStageAdapters(model: object): void {
    this.loras.detach(this.stageAdapters.get(model) ?? null);
    this.stageAdapters.delete(model);
  }

  private checkLive(): void {
    if (this.disposed) throw new InvalidArgumentError('the pipeline was disposed');
  }

  private loader(): SdxlComponentsLoader {
    return new SdxlComponentsLoader(this.ctx, this.source, this.unetSource, this.vaeSource, this.dtype, this.options);
  }
}

/** Resident mode under a memory budget: the text encoders' and UNet's weights (the VAE's come on top) must fit in it. */
function checkResidentWeightsFit(ctx: GpuContext, stages: { textEncoders: number; unet: number }): void {
  const weights = stages.textEncoders + stages.unet;
  const free = ctx.memoryBudgetBytes - ctx.memory.liveBytes;
  if (weights > free) {
    throw new DeviceLimitError('GPU memory budget (bytes)', weights, Math.max(0, Math.round(free)), `the text encoders' (${stages.textEncoders.toLocaleString('en-US')} bytes) and the UNet's (${stages.unet.toLocaleString('en-US')} bytes) weights held resident, the VAE's still to come (memory: 'low' / --low-memory, or a quantized model from ssd quantize, holds less)`);
  }
}

function checkMemoryOptions(options: ComponentsOptions): void {
  const budget = options.memoryBudgetBytes;
  if (budget !== undefined) {
    if (typeof budget !== 'number' || Number.isNaN(budget) || budget <= 0) throw new InvalidArgumentError(`memoryBudgetBytes: ${String(budget)} is not a positive number of bytes`);
    if (options.context) throw new InvalidArgumentError('memoryBudgetBytes with a shared context: set the context\'s memoryBudgetBytes instead');
  }
  if (options.memory !== undefined && options.memory !== 'resident' && options.memory !== 'low') {
    throw new InvalidArgumentError(`memory: ${JSON.stringify(options.memory)} is not a memory mode; use 'resident' or 'low'`);
  }
  if (options.cfgBatch !== undefined && options.cfgBatch !== 'together' && options.cfgBatch !== 'split') {
    throw new InvalidArgumentError(`cfgBatch: ${JSON.stringify(options.cfgBatch)}; use 'together' or 'split'`);
  }
}
