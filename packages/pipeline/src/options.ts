// Generation options: types, defaults (as diffusers' StableDiffusionXLPipeline) and validation.
// Every bad value is an InvalidArgumentError that names the option, the value and the fix.
import { InvalidArgumentError } from '@ssd/tensor';

export interface StepInfo {
  /** 1-based step number. */
  step: number;
  total: number;
  timestep: number;
  elapsedMs: number;
  /** A cheap RGB preview of the current latents (when asked for with `preview`). */
  preview?: RgbaImage;
}

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA8, row-major. */
  data: Uint8ClampedArray;
}

export interface GenerateOptions {
  prompt: string | string[];
  /** Prompt for the second text encoder (defaults to `prompt`). */
  prompt2?: string | string[];
  negativePrompt?: string | string[];
  negativePrompt2?: string | string[];
  /** Classifier-free guidance scale (default 5.0); guidance is on when > 1. */
  guidanceScale?: number;
  /** diffusers' guidance_rescale φ (default 0). */
  guidanceRescale?: number;
  /** Default 50. */
  numInferenceSteps?: number;
  /** Default: the UNet's sample_size × 8 (1024 for SSD-1B / Vega / SDXL). Multiples of 8. */
  width?: number;
  height?: number;
  /** Seeds torch.Generator("cpu").manual_seed(seed): the same seed gives diffusers' noise. Random if omitted (reported back). */
  seed?: number;
  /** Initial latents NCHW [batch, 4, height/8, width/8] (unscaled, as diffusers' `latents=`). */
  latents?: Float32Array;
  numImagesPerPrompt?: number;
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
  /** Include a preview image in onStep (every `previewEvery` steps; default 1). */
  preview?: boolean;
  previewEvery?: number;
  /** Aborts between steps (and between stages) with an AbortError; the run's GPU memory is freed. */
  signal?: AbortSignal;
}

export interface Img2ImgOptions extends GenerateOptions {
  /** RGBA8 or RGB8 image of exactly width×height (defaults to the image's size), or NHWC floats in [0,1]. */
  image: RgbaImage | { width: number; height: number; data: Float32Array; channels: 3 };
  /** How much to transform the image, in (0, 1] (default 0.3, as diffusers' img2img). */
  strength?: number;
}

export const MAX_STEPS = 1000;

function fail(option: string, value: unknown, fix: string): never {
  throw new InvalidArgumentError(`${option} = ${typeof value === 'string' ? JSON.stringify(value) : String(value)}: ${fix}`);
}

export function checkSize(option: string, v: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, v, 'must be a number');
  if (!Number.isInteger(v) || v <= 0) fail(option, v, 'must be a positive integer');
  if (v % 8) {
    const lo = Math.max(8, Math.floor(v / 8) * 8);
    fail(option, v, `must be a multiple of 8 (the VAE downsamples 8×); nearest valid: ${lo} or ${lo + 8}`);
  }
  if (v > max) fail(option, v, `is larger than ${max}, the largest size supported here`);
  return v;
}

export function checkSteps(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail('numInferenceSteps', v, 'must be an integer ≥ 1');
  if (v > MAX_STEPS) fail('numInferenceSteps', v, `must be at most ${MAX_STEPS} (the scheduler's training timesteps)`);
  return v;
}

export function checkFinite(option: string, v: unknown, lo = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(option, v, 'must be a finite number');
  if (v < lo) fail(option, v, `must be ≥ ${lo}`);
  return v;
}

export function checkSeed(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail('seed', v, 'must be an integer in [0, 2^53)');
  return v;
}

export function checkPair(option: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(option, v, 'must be a pair of finite numbers [height, width]');
  return [v[0], v[1]];
}

/** Prompts as a list; each must be a string (control characters and lone surrogates are the tokenizer's business). */
export function promptList(option: string, v: unknown, required: boolean): string[] | undefined {
  if (v === undefined || v === null) {
    if (required) fail(option, v, 'is required');
    return undefined;
  }
  const list = Array.isArray(v) ? v : [v];
  if (!list.length) fail(option, '[]', 'needs at least one prompt');
  for (const p of list) if (typeof p !== 'string') fail(option, p, 'must be a string');
  return list as string[];
}

/** A random seed when the caller gives none (reported back so the image can be reproduced). */
export function randomSeed(): number {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.getRandomValues) {
    const a = new Uint32Array(2);
    c.getRandomValues(a);
    return (a[0] & 0x1fffff) * 2 ** 32 + a[1];
  }
  return Math.floor(Math.random() * 2 ** 32);
}
