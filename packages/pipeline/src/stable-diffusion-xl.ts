// StableDiffusionXLPipeline: the public face — loading, the scheduler, encodePrompt, text-to-image
// and img2img for SSD-1B, Segmind-Vega, SDXL and custom UNets, matching diffusers v0.26
// (pipelines/stable_diffusion_xl/pipeline_stable_diffusion_xl.py and …_img2img.py). Where models live
// is SdxlComponents' business, the algorithm is run.ts'. Calls on one pipeline run one at a time, in
// the order they were made (a queue).
import { InvalidArgumentError, openModelSource, SingleFileSource, type ByteSource, type GpuContext, type ModelSource, type SingleFileOptions } from '@ssd/tensor';
import { withSdxlTokenizers } from '@ssd/clip';
import { SdxlComponents, type ComponentsOptions } from './components.js';
import { resolveRun, type GenerateOptions, type Img2ImgOptions, type ModelFacts } from './options.js';
import { encodePromptStage, runPipeline, type GenerateResult } from './run.js';
import { applyOverlay } from './image-overlay.js';
import { prepareInpaintLatents } from './inpaint.js';
import { resolveInpaint, type InpaintOptions } from './inpaint-options.js';
import type { PromptEmbeddings } from './prompt-encoding.js';
import type { LoadLoraOptions } from './pipeline-loras.js';
import type { LoadedLora, LoraSource } from './lora/index.js';
import { createScheduler } from './schedulers/index.js';

export interface PipelineOptions extends ComponentsOptions {
  /** Scheduler by CLI name (euler, euler-a, ddpm, ddim, dpm++2m, dpm++2m-karras, unipc, lcm) or diffusers class. */
  scheduler?: string;
}

export type { GenerateResult };

/** encodePrompt's options: the prompt parts of GenerateOptions. */
export type EncodePromptOptions = Pick<GenerateOptions, 'prompt' | 'prompt2' | 'negativePrompt' | 'negativePrompt2' | 'numImagesPerPrompt' | 'clipSkip' | 'loraScale' | 'signal'> & {
  /** diffusers' do_classifier_free_guidance: also encode the negative (default true). */
  doClassifierFreeGuidance?: boolean;
};

export class StableDiffusionXLPipeline {
  /** The models and how they are held (diffusers' `pipe.components`; `components.unet` etc.). */
  readonly components: SdxlComponents;
  private schedulerName: string;
  private schedulerOverrides: Record<string, unknown> = {};
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(components: SdxlComponents, scheduler: string | undefined) {
    this.components = components;
    this.schedulerName = scheduler ?? String(components.schedulerConfig._class_name ?? 'EulerDiscreteScheduler');
    createScheduler(this.schedulerName, components.schedulerConfig); // validates the name now
  }

  /**
   * Loads every component listed in model_index.json (tokenizers, text encoders, UNet, VAE, scheduler).
   * A path or URL ending in .safetensors or .gguf is a single-file checkpoint: see fromSingleFile.
   */
  static async fromPretrained(source: string | ModelSource, options: PipelineOptions = {}): Promise<StableDiffusionXLPipeline> {
    if (typeof source === 'string' && /\.(safetensors|gguf)$/i.test(source.split(/[?#]/)[0])) return StableDiffusionXLPipeline.fromSingleFile(source, options);
    // the scheduler (name and config) is checked before any weight is loaded
    const components = await SdxlComponents.load(source, options, ({ schedulerConfig }) => {
      createScheduler(options.scheduler ?? String(schedulerConfig._class_name ?? 'EulerDiscreteScheduler'), schedulerConfig);
    });
    try {
      return new StableDiffusionXLPipeline(components, options.scheduler);
    } catch (e) {
      components.dispose();
      throw e;
    }
  }

  /**
   * Loads a single-file checkpoint (A1111 / ComfyUI / Segmind `.safetensors` in SGM layout, or a GGUF —
   * stable-diffusion.cpp's, `ssd quantize`'s — whose quantized weights stay quantized where the layers
   * take them: UNet, VAE and both text encoders in one file; the architecture is read from its keys
   * and shapes), with SDXL's
   * tokenizers from @ssd/clip. A UNet-only file needs `base`: a diffusers folder (path, URL or source)
   * for the other components.
   */
  static async fromSingleFile(file: string | Blob | ByteSource, options: PipelineOptions & { base?: string | ModelSource; singleFile?: Omit<SingleFileOptions, 'base'> } = {}): Promise<StableDiffusionXLPipeline> {
    const { base, singleFile, ...rest } = options;
    const source = await SingleFileSource.open(file, { onNotice: rest.onNotice, ...singleFile, base: base === undefined ? undefined : openModelSource(base) });
    return StableDiffusionXLPipeline.fromPretrained(withSdxlTokenizers(source), rest);
  }

  get ctx(): GpuContext {
    return this.components.ctx;
  }

  /** The compute dtype of the UNet and text encoders. */
  get dtype(): 'f16' | 'f32' {
    return this.components.dtype;
  }

  /** Image size when none is given: the UNet's sample_size × 8. */
  get defaultSize(): number {
    return this.components.defaultSize;
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
    createScheduler(nameOrClass, { ...this.components.schedulerConfig, ...overrides });
    this.schedulerName = nameOrClass;
    this.schedulerOverrides = { ...overrides };
  }

  /**
   * diffusers' encode_prompt: { promptEmbeds, negativePromptEmbeds, pooledPromptEmbeds,
   * negativePooledPromptEmbeds } (negatives null without guidance), tensors the caller frees with
   * `dispose()`. Pass them to generate/img2img instead of prompts to encode once and reuse.
   */
  encodePrompt(options: EncodePromptOptions): Promise<PromptEmbeddings> {
    return this.enqueue(() => {
      const guided = options.doClassifierFreeGuidance ?? true;
      const r = resolveRun({ ...options, guidanceScale: guided ? 2 : 1, numInferenceSteps: 1 }, { ...this.modelFacts(), guidanceEmbedding: false, unetInChannels: undefined }, null);
      this.components.loras.beginCall(r.loraScale);
      return encodePromptStage(this.components, r).finally(() => this.components.loras.endCall());
    });
  }

  /**
   * diffusers' load_lora_weights: one LoRA `.safetensors` (a path, URL, File/Blob or ModelSource +
   * path) in any layout people ship — kohya (SGM or diffusers names), PEFT, old diffusers; UNet and text
   * encoders, LoCon convs. The first adapter loaded is active at weight 1; `scale` activates this one
   * at that weight beside the others. Nothing of the base model is reloaded or written.
   */
  loadLoraWeights(source: LoraSource, options: LoadLoraOptions = {}): Promise<LoadedLora> {
    return this.enqueue(() => this.components.loras.load(source, options));
  }

  /** diffusers' set_adapters: only these adapters run, each at its weight (default 1). */
  setAdapters(names: string | readonly string[], weights?: number | readonly number[]): Promise<void> {
    return this.enqueue(async () => this.components.loras.setAdapters(names, weights));
  }

  /** diffusers' fuse_lora: the active adapters merged, at loraScale, into copies of the weights they patch. */
  fuseLora(options: { loraScale?: number } = {}): Promise<void> {
    return this.enqueue(async () => this.components.loras.fuse(options.loraScale));
  }

  /** diffusers' unfuse_lora: the base weights again (bit for bit), adapters live. */
  unfuseLora(): Promise<void> {
    return this.enqueue(async () => this.components.loras.unfuse());
  }

  /** diffusers' unload_lora_weights (all) / delete_adapters (named): with none left, the base model, bit for bit. */
  unloadLoraWeights(names?: string | readonly string[]): Promise<void> {
    return this.enqueue(async () => this.components.loras.unload(names));
  }

  /** Text-to-image. */
  generate(options: GenerateOptions): Promise<GenerateResult> {
    return this.enqueue(() => this.run(options, null));
  }

  /** Image-to-image: encode the image, noise it to the strength's timestep, denoise from there. */
  img2img(options: Img2ImgOptions): Promise<GenerateResult> {
    return this.enqueue(() => this.run(options, options));
  }

  /**
   * Inpainting (diffusers' StableDiffusionXLInpaintPipeline): repaint where `maskImage` is white. A
   * 4-channel UNet blends the kept region back every step; a 9-channel inpainting UNet gets the mask
   * and the masked image's latents as extra input channels.
   */
  inpaint(options: InpaintOptions): Promise<GenerateResult> {
    return this.enqueue(async () => {
      const { run: r, inpaint } = resolveInpaint(options, this.modelFacts());
      const scheduler = createScheduler(this.schedulerName, { ...this.components.schedulerConfig, ...this.schedulerOverrides });
      const result = await runPipeline(this.components, r, { scheduler, schedulerName: this.schedulerName, latents: (s) => prepareInpaintLatents(s, inpaint) });
      const o = inpaint.overlay;
      // padding_mask_crop: the generated crop goes back into the original image (diffusers' apply_overlay)
      return o ? { ...result, images: result.images.map((img) => applyOverlay(o.mask, o.image, img, o.crop)) } : result;
    });
  }

  /** Frees every component (and the context, when the pipeline made it). Pending calls finish first. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => {});
    this.components.dispose();
  }

  private modelFacts(): ModelFacts {
    const spec = this.components.unetSpec;
    return { defaultSize: this.components.defaultSize, latentChannels: spec.outChannels, guidanceEmbedding: spec.timeCondProjDim !== null, unetInChannels: spec.inChannels };
  }

  private run(options: GenerateOptions, img2img: Img2ImgOptions | null): Promise<GenerateResult> {
    const r = resolveRun(options, this.modelFacts(), img2img);
    const scheduler = createScheduler(this.schedulerName, { ...this.components.schedulerConfig, ...this.schedulerOverrides });
    return runPipeline(this.components, r, { scheduler, schedulerName: this.schedulerName });
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new InvalidArgumentError('the pipeline was disposed'));
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}
