// StableDiffusionXLPipeline: text-to-image and img2img for SSD-1B, Segmind-Vega, SDXL and custom
// UNets, matching diffusers v0.26 (pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl.py
// and …_img2img.py): prompt encoding, add_time_ids, classifier-free guidance with [uncond, cond],
// guidance_rescale, torch-compatible seeded noise, any of six schedulers, VAE decode, and progress,
// previews, abort and per-stage timing/memory reports. Calls on one pipeline run one at a time, in
// the order they were made (a queue).
import {
  AbortError, createContext, InvalidArgumentError, openModelSource, readComponentConfig, readModelIndex, throwIfAborted,
  type GpuContext, type ModelSource, type Tensor,
} from '@ssd/tensor';
import type { CLIPTextModel, CLIPTokenizer } from '@ssd/clip';
import { parseUNetConfig, type UNet2DConditionConfig, type UNet2DConditionModel, type UNetSpec } from '@ssd/unet';
import { componentWeightBytes, loadTextEncoders, loadTokenizers, loadUNet, loadVae, type ComponentLoadProgress, type Vae } from './components.js';
import type { GenerateOptions, Img2ImgOptions, RgbaImage } from './options.js';
import { runDenoise, type RunReport, type RunResult } from './run.js';
import { createScheduler, type Scheduler } from './schedulers/index.js';

export interface PipelineOptions {
  /** 'f16' (default when the device has shader-f16) or 'f32'. The VAE decodes in f32 unless its config allows f16. */
  dtype?: 'f16' | 'f32';
  /** Weight variant to prefer, e.g. 'fp16' (falls back to the full weights with a notice). */
  variant?: string;
  /** Scheduler by CLI name (euler, euler-a, ddpm, ddim, dpm++2m, dpm++2m-karras, unipc) or diffusers class. */
  scheduler?: string;
  /** Another VAE (AutoencoderKL such as the fp16-fix VAE, or AutoencoderTiny/TAESDXL): a folder, URL or source. */
  vae?: string | ModelSource;
  /**
   * 'low': each component is loaded for its stage and released after it — text encoders, then the
   * UNet, then the VAE (decoder only) — and the buffer pool is capped at 16 MiB while a run lasts, so
   * the peak is the largest single stage (SSD-1B at 1024²: the UNet's 2.66 GB of fp16 weights plus
   * its live activations). Every call re-reads the weights.
   */
  memory?: 'resident' | 'low';
  /** A context to share (default: a new one). */
  context?: GpuContext;
  onLoadProgress?: (p: ComponentLoadProgress) => void;
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
}

export interface GenerateResult {
  /** RGBA8 images ('rgba'), in batch order. */
  images: RgbaImage[];
  /** NHWC floats in [0, 1] per image ('float'). */
  floats?: { width: number; height: number; data: Float32Array }[];
  /** Final latents, NCHW float32 [batch, 4, h, w], as diffusers' output_type="latent" (always given). */
  latents: { shape: [number, number, number, number]; data: Float32Array };
  seed: number;
  report: RunReport;
}

export class StableDiffusionXLPipeline {
  private queue: Promise<unknown> = Promise.resolve();
  private schedulerName: string;
  private schedulerOverrides: Record<string, unknown> = {};
  private disposed = false;
  private textEncoders: [CLIPTextModel, CLIPTextModel] | null;
  private vaeModel: Vae | null;
  private unetModel: UNet2DConditionModel | null;

  private constructor(
    readonly ctx: GpuContext,
    readonly source: ModelSource,
    private readonly ownsContext: boolean,
    readonly options: Readonly<PipelineOptions>,
    readonly dtype: 'f16' | 'f32',
    readonly tokenizers: [CLIPTokenizer, CLIPTokenizer],
    textEncoders: [CLIPTextModel, CLIPTextModel] | null,
    unet: UNet2DConditionModel | null,
    /** The UNet's structure, from its config (also while a low-memory pipeline has it unloaded). */
    readonly unetSpec: UNetSpec,
    vae: Vae | null,
    readonly vaeSource: { source: ModelSource; subfolder: string },
    readonly schedulerConfig: Record<string, unknown>,
    readonly forceZerosForEmptyPrompt: boolean,
    readonly loadMs: number,
    /** Low-memory mode: GPU bytes of each stage's weights, loaded per run (checked before a run starts). */
    readonly stageWeightBytes: { textEncoders: number; unet: number } | null,
  ) {
    this.textEncoders = textEncoders;
    this.vaeModel = vae;
    this.unetModel = unet;
    this.schedulerName = options.scheduler ?? String(schedulerConfig._class_name ?? 'EulerDiscreteScheduler');
    createScheduler(this.schedulerName, schedulerConfig); // validates the name now
  }

  /** Loads every component listed in model_index.json (tokenizers, text encoders, UNet, VAE, scheduler). */
  static async fromPretrained(source: string | ModelSource, options: PipelineOptions = {}): Promise<StableDiffusionXLPipeline> {
    const t0 = performance.now();
    const src = openModelSource(source);
    const index = await readModelIndex(src);
    for (const c of ['tokenizer', 'tokenizer_2', 'text_encoder', 'text_encoder_2', 'unet', 'scheduler']) {
      if (!index.components[c]) throw new InvalidArgumentError(`${src.description}/model_index.json lists no "${c}": not an SDXL-family pipeline (components: ${Object.keys(index.components).join(', ')})`);
    }
    const ctx = options.context ?? (await createContext());
    const owns = !options.context;
    const notice = options.onNotice ?? ((m: string) => console.warn(m));
    let dtype = options.dtype ?? (ctx.f16 ? 'f16' : 'f32');
    if (dtype === 'f16' && !ctx.f16) {
      notice('this device has no shader-f16: running in f32 (about twice the memory and bandwidth)');
      dtype = 'f32';
    }
    const common = { context: ctx, dtype, variant: options.variant, signal: options.signal, onProgress: options.onLoadProgress, onNotice: notice };
    const vaeSource = options.vae ? { source: openModelSource(options.vae), subfolder: '' } : { source: src, subfolder: 'vae' };
    if (!options.vae && !index.components.vae) throw new InvalidArgumentError(`${src.description}/model_index.json lists no "vae"; pass one with the vae option`);
    const low = options.memory === 'low';
    const cleanup: { dispose(): void }[] = [];
    try {
      const schedulerConfig = await readComponentConfig(src, 'scheduler');
      const tokenizers = await loadTokenizers(src);
      throwIfAborted(options.signal, 'loading the pipeline');
      const textEncoders = low ? null : await loadTextEncoders(src, common);
      if (textEncoders) cleanup.push(...textEncoders);
      const unet = low ? null : await loadUNet(src, common);
      if (unet) cleanup.push(unet);
      // low-memory mode loads the UNet per run: a config we cannot run fails now all the same
      const unetSpec = unet?.spec ?? parseUNetConfig((await readComponentConfig(src, 'unet')) as UNet2DConditionConfig);
      const stageWeightBytes = low
        ? {
            textEncoders: (await componentWeightBytes(src, 'text_encoder', options.variant, dtype)) + (await componentWeightBytes(src, 'text_encoder_2', options.variant, dtype)),
            unet: await componentWeightBytes(src, 'unet', options.variant, dtype),
          }
        : null;
      const vae = low ? null : await loadVae(vaeSource.source, vaeSource.subfolder, common);
      if (vae) cleanup.push(vae);
      const pipe = new StableDiffusionXLPipeline(ctx, src, owns, options, dtype, tokenizers, textEncoders, unet, unetSpec, vae, vaeSource, schedulerConfig, index.extra.force_zeros_for_empty_prompt !== false, performance.now() - t0, stageWeightBytes);
      return pipe;
    } catch (e) {
      for (const c of cleanup) c.dispose();
      if (owns) ctx.destroy();
      throw e;
    }
  }

  /** The scheduler used by the next calls (CLI name or diffusers class name). */
  get scheduler(): string {
    return this.schedulerName;
  }

  /**
   * Swaps the scheduler (validated now; built fresh for every call from the model's scheduler config
   * with `overrides` on top, as diffusers' `Scheduler.from_config(pipe.scheduler.config, **overrides)`).
   */
  setScheduler(nameOrClass: string, overrides: Record<string, unknown> = {}): void {
    createScheduler(nameOrClass, { ...this.schedulerConfig, ...overrides });
    this.schedulerName = nameOrClass;
    this.schedulerOverrides = { ...overrides };
  }

  /** A new scheduler instance for one run. */
  makeScheduler(): Scheduler {
    return createScheduler(this.schedulerName, { ...this.schedulerConfig, ...this.schedulerOverrides });
  }

  /** Default image size: the UNet's sample_size × 8. */
  get defaultSize(): number {
    return this.unetSpec.sampleSize * 8;
  }

  /** Text-to-image. */
  generate(options: GenerateOptions): Promise<GenerateResult> {
    return this.enqueue(() => this.run(options, null));
  }

  /** Image-to-image: encode the image, noise it to the strength's timestep, denoise from there. */
  img2img(options: Img2ImgOptions): Promise<GenerateResult> {
    return this.enqueue(() => this.run(options, options));
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new InvalidArgumentError('the pipeline was disposed'));
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  private async run(options: GenerateOptions, img2img: Img2ImgOptions | null): Promise<GenerateResult> {
    if (this.disposed) throw new InvalidArgumentError('the pipeline was disposed');
    const r: RunResult = await runDenoise(this, options, img2img);
    return r;
  }

  /** The resident UNet. In low-memory mode it is loaded only while denoising (acquireUNet). */
  get unet(): UNet2DConditionModel {
    if (!this.unetModel) throw new InvalidArgumentError('in low-memory mode the UNet is loaded only while denoising');
    return this.unetModel;
  }

  /** The UNet for one run (loaded now in low-memory mode; release with releaseUNet). */
  async acquireUNet(signal?: AbortSignal): Promise<UNet2DConditionModel> {
    return this.unetModel ?? loadUNet(this.source, this.loadCommon(signal));
  }

  releaseUNet(unet: UNet2DConditionModel): void {
    if (unet !== this.unetModel) unet.dispose();
  }

  /** Low-memory mode: every component is loaded for its stage and released after it. */
  get lowMemory(): boolean {
    return this.options.memory === 'low';
  }

  /** The VAE kept loaded (resident mode), if any. */
  get residentVae(): Vae | null {
    return this.vaeModel;
  }

  /** Text encoders for one run (loaded now in low-memory mode; release with releaseTextEncoders). */
  async acquireTextEncoders(signal?: AbortSignal): Promise<[CLIPTextModel, CLIPTextModel]> {
    if (this.textEncoders) return this.textEncoders;
    return loadTextEncoders(this.source, this.loadCommon(signal));
  }

  releaseTextEncoders(encoders: [CLIPTextModel, CLIPTextModel]): void {
    if (encoders !== this.textEncoders) for (const e of encoders) e.dispose();
  }

  /** The VAE for one stage: the resident one, or (low-memory mode) just the part the stage needs. */
  async acquireVae(signal?: AbortSignal, part: 'decoder' | 'encoder' = 'decoder'): Promise<Vae> {
    if (this.vaeModel) return this.vaeModel;
    return loadVae(this.vaeSource.source, this.vaeSource.subfolder, this.loadCommon(signal), part);
  }

  releaseVae(vae: Vae): void {
    if (vae !== this.vaeModel) vae.dispose();
  }

  private loadCommon(signal?: AbortSignal) {
    return { context: this.ctx, dtype: this.dtype, variant: this.options.variant, signal, onProgress: this.options.onLoadProgress, onNotice: this.options.onNotice ?? ((m: string) => console.warn(m)) };
  }

  /** Frees every component (and the context, when the pipeline made it). Pending calls finish first. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => {});
    this.textEncoders?.forEach((e) => e.dispose());
    this.unetModel?.dispose();
    this.vaeModel?.dispose();
    if (this.ownsContext) this.ctx.destroy();
  }

  /** Throws AbortError when the signal fired (used between stages). */
  static checkAbort(signal: AbortSignal | undefined, stage: string): void {
    if (signal?.aborted) throw new AbortError(`generation aborted during ${stage}`, { cause: signal.reason });
  }
}

export type { Tensor };
