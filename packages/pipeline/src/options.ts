// Generation options: the types, diffusers' defaults, and their validation and resolution into one
// ResolvedRun before anything is loaded or run (StableDiffusionXLPipeline.check_inputs and the
// defaults of __call__, diffusers v0.26). Every bad value is an InvalidArgumentError naming the
// option, the value and the fix.
import { InvalidArgumentError, type Tensor } from '@ssd/tensor';
import type { PromptEmbeddings } from './prompt-encoding.js';
import { checkFinite, checkPair, checkSize, checkSteps, parseSeed, promptList, randomSeed, type Seed } from './option-checks.js';

export { checkFinite, checkPair, checkSeed, checkSize, checkSteps, MAX_STEPS, parseSeed, promptList, randomSeed, type Seed } from './option-checks.js';

export interface StepInfo {
  /** 1-based step number. */
  step: number;
  total: number;
  timestep: number;
  elapsedMs: number;
  /** A cheap RGB preview (when asked for with `preview`): of the current latents, or of x̂₀ with preview 'denoised'. */
  preview?: RgbaImage;
}

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA8, row-major. */
  data: Uint8ClampedArray;
}

/** An input image: RGBA8, or NHWC RGB floats in [0, 1]. */
export type InitImage = RgbaImage | { width: number; height: number; data: Float32Array; channels: 3 };

export interface GenerateOptions {
  /** The prompt(s); or give `promptEmbeds` + `pooledPromptEmbeds` instead (from `encodePrompt`). */
  prompt?: string | string[];
  /** Prompt for the second text encoder (defaults to `prompt`). */
  prompt2?: string | string[];
  negativePrompt?: string | string[];
  negativePrompt2?: string | string[];
  /** diffusers' prompt_embeds [B, 77, 2048]-like, instead of `prompt` (a tensor of this pipeline's context; not freed). */
  promptEmbeds?: Tensor;
  /** diffusers' pooled_prompt_embeds [B, 1280]-like; required with promptEmbeds. */
  pooledPromptEmbeds?: Tensor;
  negativePromptEmbeds?: Tensor;
  /** Required with negativePromptEmbeds. */
  negativePooledPromptEmbeds?: Tensor;
  /** diffusers' clip_skip: CLIP layers skipped from the end for the prompt's embeddings (not the negative's). */
  clipSkip?: number;
  /** Classifier-free guidance scale (default 5.0); guidance is on when > 1 (and the UNet has no guidance embedding). */
  guidanceScale?: number;
  /** diffusers' guidance_rescale φ (default 0). */
  guidanceRescale?: number;
  /** Default 50. */
  numInferenceSteps?: number;
  /** diffusers' denoising_end: stop after this fraction of the schedule (0 < x < 1), e.g. to hand over to a refiner. */
  denoisingEnd?: number;
  /** Default: the UNet's sample_size × 8 (1024 for SSD-1B / Vega / SDXL). Multiples of 8. */
  width?: number;
  height?: number;
  /**
   * Seeds torch.Generator("cpu").manual_seed(seed): the same seed gives diffusers' noise. Any integer
   * in 0 … 2^64 − 1 (a bigint or decimal string above 2^53). Random if omitted (reported back).
   */
  seed?: Seed;
  /** Initial latents NCHW [batch, 4, height/8, width/8] (unscaled, as diffusers' `latents=`). */
  latents?: Float32Array;
  numImagesPerPrompt?: number;
  /** DDIM's η (diffusers' eta, default 0); ignored by the other schedulers. */
  eta?: number;
  originalSize?: readonly [number, number];
  cropsCoordsTopLeft?: readonly [number, number];
  targetSize?: readonly [number, number];
  negativeOriginalSize?: readonly [number, number];
  negativeCropsCoordsTopLeft?: readonly [number, number];
  negativeTargetSize?: readonly [number, number];
  /** 'rgba' (default): RGBA8 images; 'float': NHWC floats in [0,1]; 'latent': the final latents only. */
  outputType?: 'rgba' | 'float' | 'latent';
  /** Called after every step. */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** Include a preview in onStep: true / 'latents' (the current latents) or 'denoised' (the scheduler's x̂₀ estimate, where it has one). */
  preview?: boolean | 'latents' | 'denoised';
  /** Preview every this many steps (default 1). */
  previewEvery?: number;
  /** Aborts between steps (and between stages) with an AbortError; the run's GPU memory is freed. */
  signal?: AbortSignal;
  /** Keep a constant or saturated result instead of raising NumericalError (default false). */
  allowDegenerate?: boolean;
  /**
   * The LoRA scale of this call (diffusers' cross_attention_kwargs={"scale": s}, default 1): scales the
   * active adapters in the UNet and, as diffusers v0.26 does through encode_prompt(lora_scale), the text
   * encoders; fused adapters are not affected.
   */
  loraScale?: number;
}

export interface Img2ImgOptions extends GenerateOptions {
  /** RGBA8 or RGB8 image of exactly width×height (defaults to the image's size), or NHWC floats in [0,1]. */
  image: InitImage;
  /** How much to transform the image, in (0, 1] (default 0.3, as diffusers' img2img). */
  strength?: number;
}

/** What resolving options needs to know about the loaded model. */
export interface ModelFacts {
  defaultSize: number;
  /** Channels of the latents (the VAE's latent channels; 4 for the SDXL family). */
  latentChannels: number;
  /** The UNet embeds the guidance scale (time_cond_proj_dim: LCM-distilled UNets): no CFG batch then. */
  guidanceEmbedding: boolean;
  /**
   * The UNet's in_channels: latentChannels, or 9 for an inpainting UNet (latents + mask + masked-image
   * latents), which only `inpaint` can feed (default: latentChannels).
   */
  unetInChannels?: number;
}

/** Where the prompt's embeddings come from. */
export type PromptSource =
  | { kind: 'text'; prompt: string[]; prompt2?: string[]; negativePrompt?: string[]; negativePrompt2?: string[] }
  | { kind: 'embeds'; embeds: Omit<PromptEmbeddings, 'dispose' | 'truncated'>; negativePrompt?: string[]; negativePrompt2?: string[] };

export interface ResolvedRun {
  prompt: PromptSource;
  clipSkip?: number;
  /** Images per prompt. */
  numImagesPerPrompt: number;
  /** Rows of the latents: prompts × numImagesPerPrompt. */
  batch: number;
  steps: number;
  guidanceScale: number;
  guidanceRescale: number;
  /** Classifier-free guidance: the UNet batch is [uncond × batch, cond × batch]. */
  guided: boolean;
  width: number;
  height: number;
  /** NHWC [batch, height/8, width/8, channels]. */
  latentShape: [number, number, number, number];
  seed: number | bigint;
  latents?: Float32Array;
  eta: number;
  denoisingEnd?: number;
  /** add_time_ids rows as the UNet gets them (negative rows first when guided). */
  timeIds: number[][];
  outputType: 'rgba' | 'float' | 'latent';
  preview: false | 'latents' | 'denoised';
  previewEvery: number;
  onStep?: GenerateOptions['onStep'];
  signal?: AbortSignal;
  allowDegenerate: boolean;
  loraScale?: number;
  /** img2img: the image and strength (strength is 1 for text-to-image). */
  image?: InitImage;
  strength: number;
}

export const MAX_SIDE = 4096;
const MAX_IMAGES = 64;

/**
 * Validates `o` and applies diffusers' defaults; nothing is loaded or run. `inpainting`: the call is
 * pipe.inpaint (which resolves its image and mask itself and passes the processed image as img2img's).
 */
export function resolveRun(o: GenerateOptions, model: ModelFacts, img2img: Img2ImgOptions | null, inpainting = false): ResolvedRun {
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('generate: options must be an object ({ prompt, … })');
  const unetIn = model.unetInChannels ?? model.latentChannels;
  if (unetIn !== model.latentChannels && !inpainting) {
    throw new InvalidArgumentError(
      `this UNet takes ${unetIn} input channels (an inpainting UNet: ${model.latentChannels} latent + 1 mask + ${model.latentChannels} masked-image channels), so it needs an image and a mask: ` +
        `call pipe.inpaint({ image, maskImage, … }) (CLI: --init-image and --mask), or load a text-to-image UNet`,
    );
  }
  const prompt = resolvePrompt(o);
  const steps = checkSteps(o.numInferenceSteps ?? 50);
  const guidanceScale = checkFinite('guidanceScale', o.guidanceScale ?? 5.0);
  const guidanceRescale = checkFinite('guidanceRescale', o.guidanceRescale ?? 0, 0);
  if (guidanceRescale > 1) throw new InvalidArgumentError(`guidanceRescale = ${guidanceRescale}: must be in [0, 1]`);
  const width = checkSize('width', o.width ?? img2img?.image?.width ?? model.defaultSize, MAX_SIDE);
  const height = checkSize('height', o.height ?? img2img?.image?.height ?? model.defaultSize, MAX_SIDE);
  const n = o.numImagesPerPrompt ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_IMAGES) throw new InvalidArgumentError(`numImagesPerPrompt = ${n}: must be an integer in 1..${MAX_IMAGES}`);
  const seed = o.seed === undefined ? randomSeed() : parseSeed(o.seed);
  const clipSkip = o.clipSkip;
  if (clipSkip !== undefined && (!Number.isInteger(clipSkip) || clipSkip < 0)) throw new InvalidArgumentError(`clipSkip = ${clipSkip}: must be an integer ≥ 0`);
  const eta = checkFinite('eta', o.eta ?? 0, 0);
  const loraScale = o.loraScale === undefined ? undefined : checkFinite('loraScale', o.loraScale);
  const denoisingEnd = o.denoisingEnd === undefined ? undefined : checkFinite('denoisingEnd', o.denoisingEnd);
  if (denoisingEnd !== undefined && !(denoisingEnd > 0 && denoisingEnd < 1)) throw new InvalidArgumentError(`denoisingEnd = ${denoisingEnd}: must be in (0, 1) (a fraction of the schedule)`);
  const strength = img2img ? checkFinite('strength', img2img.strength ?? 0.3) : 1;
  if (img2img && !(strength > 0 && strength <= 1)) throw new InvalidArgumentError(`strength = ${strength}: must be in (0, 1]`);
  if (img2img) checkInitImage(img2img.image, width, height);
  const outputType = o.outputType ?? 'rgba';
  if (!['rgba', 'float', 'latent'].includes(outputType)) throw new InvalidArgumentError(`outputType = ${JSON.stringify(outputType)}: use 'rgba', 'float' or 'latent'`);
  const preview = o.preview === true ? 'latents' : o.preview === undefined || o.preview === false ? false : o.preview;
  if (preview !== false && preview !== 'latents' && preview !== 'denoised') throw new InvalidArgumentError(`preview = ${JSON.stringify(o.preview)}: use true, 'latents' or 'denoised'`);
  const previewEvery = o.previewEvery ?? 1;
  if (!Number.isInteger(previewEvery) || previewEvery < 1) throw new InvalidArgumentError(`previewEvery = ${previewEvery}: must be an integer ≥ 1`);
  const prompts = prompt.kind === 'text' ? prompt.prompt.length : prompt.embeds.promptEmbeds.shape[0];
  const batch = prompts * n;
  const h = height / 8;
  const w = width / 8;
  const c = model.latentChannels;
  if (o.latents !== undefined) {
    if (!(o.latents instanceof Float32Array)) throw new InvalidArgumentError('latents: must be a Float32Array (NCHW)');
    if (o.latents.length !== batch * c * h * w) {
      throw new InvalidArgumentError(`latents has ${o.latents.length} values; expected ${batch}×${c}×${h}×${w} = ${batch * c * h * w} (NCHW for ${width}×${height})`);
    }
  }
  // diffusers: do_classifier_free_guidance = guidance_scale > 1 and unet.config.time_cond_proj_dim is None
  const guided = guidanceScale > 1 && !model.guidanceEmbedding;
  return {
    prompt, clipSkip, numImagesPerPrompt: n, batch, steps, guidanceScale, guidanceRescale, guided, width, height, latentShape: [batch, h, w, c], seed,
    latents: o.latents, eta, denoisingEnd, timeIds: addTimeIds(o, width, height, batch, guided), outputType, preview, previewEvery, onStep: o.onStep,
    signal: o.signal, image: img2img?.image, strength, allowDegenerate: o.allowDegenerate === true, loraScale,
  };
}

/** diffusers _get_add_time_ids: (original size, crop top-left, target size) per row, negative rows first when guided. */
function addTimeIds(o: GenerateOptions, width: number, height: number, batch: number, guided: boolean): number[][] {
  const originalSize = o.originalSize ? checkPair('originalSize', o.originalSize) : [height, width];
  const crops = o.cropsCoordsTopLeft ? checkPair('cropsCoordsTopLeft', o.cropsCoordsTopLeft) : [0, 0];
  const targetSize = o.targetSize ? checkPair('targetSize', o.targetSize) : [height, width];
  const negOriginal = o.negativeOriginalSize ? checkPair('negativeOriginalSize', o.negativeOriginalSize) : originalSize;
  const negCrops = o.negativeCropsCoordsTopLeft ? checkPair('negativeCropsCoordsTopLeft', o.negativeCropsCoordsTopLeft) : crops;
  const negTarget = o.negativeTargetSize ? checkPair('negativeTargetSize', o.negativeTargetSize) : targetSize;
  const pos = [...originalSize, ...crops, ...targetSize];
  const neg = [...negOriginal, ...negCrops, ...negTarget];
  return [...(guided ? Array.from({ length: batch }, () => neg) : []), ...Array.from({ length: batch }, () => pos)];
}

/** Text prompts or precomputed embeddings (diffusers' check_inputs rules). */
function resolvePrompt(o: GenerateOptions): PromptSource {
  const hasEmbeds = o.promptEmbeds !== undefined;
  if (hasEmbeds && o.prompt !== undefined) throw new InvalidArgumentError('give either prompt or promptEmbeds, not both');
  if (!hasEmbeds) {
    if (o.pooledPromptEmbeds !== undefined) throw new InvalidArgumentError('pooledPromptEmbeds needs promptEmbeds');
    if (o.negativePromptEmbeds !== undefined || o.negativePooledPromptEmbeds !== undefined) {
      throw new InvalidArgumentError('negativePromptEmbeds / negativePooledPromptEmbeds need promptEmbeds (give negativePrompt with a text prompt)');
    }
    return {
      kind: 'text',
      prompt: promptList('prompt', o.prompt, true)!,
      prompt2: promptList('prompt2', o.prompt2, false),
      negativePrompt: promptList('negativePrompt', o.negativePrompt, false),
      negativePrompt2: promptList('negativePrompt2', o.negativePrompt2, false),
    };
  }
  if (o.prompt2 !== undefined) throw new InvalidArgumentError('give either prompt2 or promptEmbeds, not both');
  if ((o.negativePrompt !== undefined || o.negativePrompt2 !== undefined) && o.negativePromptEmbeds !== undefined) {
    throw new InvalidArgumentError('give either negativePrompt or negativePromptEmbeds, not both');
  }
  if (o.clipSkip !== undefined) throw new InvalidArgumentError('clipSkip applies to text prompts; with promptEmbeds pass it to encodePrompt');
  const pe = checkEmbed('promptEmbeds', o.promptEmbeds, 3);
  if (o.pooledPromptEmbeds === undefined) throw new InvalidArgumentError('promptEmbeds needs pooledPromptEmbeds too (diffusers: pooled_prompt_embeds); encodePrompt returns both');
  const pooled = checkEmbed('pooledPromptEmbeds', o.pooledPromptEmbeds, 2);
  if (pooled.shape[0] !== pe.shape[0]) throw new InvalidArgumentError(`pooledPromptEmbeds has ${pooled.shape[0]} rows, promptEmbeds ${pe.shape[0]}`);
  const hasNeg = o.negativePromptEmbeds !== undefined;
  if (hasNeg !== (o.negativePooledPromptEmbeds !== undefined)) {
    throw new InvalidArgumentError('negativePromptEmbeds and negativePooledPromptEmbeds go together (diffusers: negative_pooled_prompt_embeds)');
  }
  let neg: Tensor | null = null;
  let negPooled: Tensor | null = null;
  if (hasNeg) {
    neg = checkEmbed('negativePromptEmbeds', o.negativePromptEmbeds, 3);
    negPooled = checkEmbed('negativePooledPromptEmbeds', o.negativePooledPromptEmbeds, 2);
    if (neg.shape.join() !== pe.shape.join()) throw new InvalidArgumentError(`negativePromptEmbeds is [${neg.shape}] but promptEmbeds is [${pe.shape}]: they must match (diffusers check_inputs)`);
    if (negPooled.shape.join() !== pooled.shape.join()) throw new InvalidArgumentError(`negativePooledPromptEmbeds is [${negPooled.shape}] but pooledPromptEmbeds is [${pooled.shape}]`);
  }
  return {
    kind: 'embeds',
    embeds: { promptEmbeds: pe, pooledPromptEmbeds: pooled, negativePromptEmbeds: neg, negativePooledPromptEmbeds: negPooled },
    negativePrompt: promptList('negativePrompt', o.negativePrompt, false),
    negativePrompt2: promptList('negativePrompt2', o.negativePrompt2, false),
  };
}

function checkEmbed(option: string, t: unknown, rank: number): Tensor {
  const x = t as Tensor;
  if (!x || typeof x !== 'object' || !Array.isArray(x.shape) || typeof x.dispose !== 'function') throw new InvalidArgumentError(`${option}: must be a Tensor (as encodePrompt returns)`);
  if (x.disposed) throw new InvalidArgumentError(`${option}: the tensor was disposed`);
  if (x.shape.length !== rank || x.shape[0] < 1) throw new InvalidArgumentError(`${option}: expected a rank-${rank} tensor with ≥ 1 row, got shape [${x.shape}]`);
  return x;
}

export function checkInitImage(image: InitImage, width: number, height: number, option = 'image'): void {
  if (!image || typeof image !== 'object' || !('data' in image)) throw new InvalidArgumentError(`${option}: must be { width, height, data } (RGBA8 or float RGB)`);
  if (image.width !== width || image.height !== height) {
    throw new InvalidArgumentError(`${option} is ${image.width}×${image.height} but the output size is ${width}×${height}: resize the image or pass width/height equal to it`);
  }
  const isFloat = image.data instanceof Float32Array;
  const want = width * height * (isFloat ? 3 : 4);
  if (image.data.length !== want) {
    throw new InvalidArgumentError(`${option} data has ${image.data.length} values; a ${width}×${height} ${isFloat ? 'RGB float' : 'RGBA8'} image has ${want}`);
  }
}
