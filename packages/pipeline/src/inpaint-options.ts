// Inpainting options: their types, diffusers v0.26.3 StableDiffusionXLInpaintPipeline's defaults
// (strength 0.9999, guidance 7.5) and checks, and the image and mask preprocessed as its
// image_processor / mask_processor do — all on the host, before any model loads or GPU work runs.
import { InvalidArgumentError } from '@ssd/tensor';
import { checkFinite, checkInitImage, checkSize, MAX_SIDE, resolveRun, type GenerateOptions, type InitImage, type ModelFacts, type ResolvedRun, type RgbaImage } from './options.js';
import { getCropRegion, maskToImage8, preprocessImage, preprocessMask, type CropBox, type MaskImage } from './image-processor.js';
import { imagePixels } from './latents.js';
import { toGrayscale } from './pil-image.js';

export type { MaskImage } from './image-processor.js';

export interface InpaintOptions extends GenerateOptions {
  /** The image to edit: RGBA8 (alpha ignored) or NHWC RGB floats in [0, 1]; resized to width×height as diffusers does. */
  image: InitImage;
  /** White repaints, black keeps (binarized at 128 / 0.5); resized to width×height as diffusers does. */
  maskImage: MaskImage;
  /** In (0, 1] (default 0.9999, diffusers'): 1 starts from pure noise, less from the noised image. */
  strength?: number;
  /** diffusers' padding_mask_crop: generate only the mask's bounding box grown by this many pixels (at width×height), then paste it back (8-bit images). */
  paddingMaskCrop?: number;
  /** 9-channel UNets only: the masked image's latents NCHW [1 or batch, 4, height/8, width/8] (scaled), instead of encoding it. */
  maskedImageLatents?: Float32Array;
}

/** What the inpainting run needs beyond a ResolvedRun. */
export interface ResolvedInpaint {
  /** The binarized mask at width×height: 1 repaints, 0 keeps. */
  mask: Float32Array;
  /** diffusers' masked_image = image · (mask < 0.5): NHWC [1, H, W, 3] in [-1, 1]. */
  maskedPixels: Float32Array;
  unetInChannels: number;
  maskedImageLatents?: Float32Array;
  /** padding_mask_crop: the output is composited into the original image (apply_overlay). */
  overlay: { mask: MaskImage; image: RgbaImage; crop: CropBox } | null;
}

/** Image and mask aspects may differ by this factor (rounding, a crop of a few pixels) before it is an error. */
export const MAX_ASPECT_MISMATCH = 1.1;

/** Validates an inpainting call and preprocesses its image and mask; nothing is loaded or run. */
export function resolveInpaint(o: InpaintOptions, model: ModelFacts): { run: ResolvedRun; inpaint: ResolvedInpaint } {
  if (!o || typeof o !== 'object') throw new InvalidArgumentError('inpaint: options must be an object ({ prompt, image, maskImage, … })');
  const unetIn = model.unetInChannels ?? model.latentChannels;
  if (unetIn !== model.latentChannels && unetIn !== 2 * model.latentChannels + 1) {
    throw new InvalidArgumentError(`inpaint: the UNet takes ${unetIn} input channels; inpainting needs ${model.latentChannels} (a text-to-image UNet) or ${2 * model.latentChannels + 1} (an inpainting UNet)`);
  }
  const image = o.image;
  if (!image || typeof image !== 'object' || !('data' in image)) throw new InvalidArgumentError('inpaint: image is required ({ width, height, data }: RGBA8 or float RGB)');
  checkInitImage(image, image.width, image.height, 'image');
  checkMask(o.maskImage);
  const mask = o.maskImage;
  const ratio = image.width / image.height / (mask.width / mask.height);
  if (Math.max(ratio, 1 / ratio) > MAX_ASPECT_MISMATCH) {
    throw new InvalidArgumentError(
      `maskImage is ${mask.width}×${mask.height} but image is ${image.width}×${image.height}: their aspect ratios differ by ${Math.max(ratio, 1 / ratio).toFixed(2)}× (more than ${MAX_ASPECT_MISMATCH}×), so the mask would be stretched over the wrong part of the image — was it drawn for another image?`,
    );
  }
  const width = checkSize('width', o.width ?? floor8(image.width), MAX_SIDE);
  const height = checkSize('height', o.height ?? floor8(image.height), MAX_SIDE);
  const strength = checkFinite('strength', o.strength ?? 0.9999);
  if (!(strength > 0 && strength <= 1)) throw new InvalidArgumentError(`strength = ${strength}: must be in (0, 1]`);
  if (o.maskedImageLatents !== undefined && unetIn === model.latentChannels) {
    throw new InvalidArgumentError(`maskedImageLatents: only an inpainting UNet (${2 * model.latentChannels + 1} input channels) uses them; this UNet takes ${unetIn} (the 4-channel path blends the image's own latents back every step)`);
  }
  let crop: CropBox | null = null;
  if (o.paddingMaskCrop !== undefined) {
    const pad = o.paddingMaskCrop;
    if (!Number.isInteger(pad) || pad < 0) throw new InvalidArgumentError(`paddingMaskCrop = ${pad}: must be an integer ≥ 0 (pixels of margin around the mask)`);
    if ((o.outputType ?? 'rgba') !== 'rgba') throw new InvalidArgumentError(`paddingMaskCrop needs outputType 'rgba' (diffusers: output_type "pil"), got ${JSON.stringify(o.outputType)}`);
    const m8 = maskToImage8(mask);
    if (!m8 || image.data instanceof Float32Array) throw new InvalidArgumentError('paddingMaskCrop needs an 8-bit image and mask (diffusers: PIL images), not float data');
    crop = getCropRegion(toGrayscale(m8), width, height, pad);
  }
  const processed = preprocessImage(image, width, height, crop);
  const maskBin = preprocessMask(mask, width, height, crop);
  if (!maskBin.some((v) => v === 1)) {
    throw new InvalidArgumentError(`maskImage: nothing to repaint — no pixel of the mask${crop ? '' : ` (at ${width}×${height})`} is white (≥ 128 of 255, or ≥ 0.5); white repaints, black keeps`);
  }
  const masked = imagePixels(processed);
  for (let p = 0; p < width * height; p++) if (maskBin[p] !== 0) masked.fill(0, p * 3, p * 3 + 3);
  const run = resolveRun({ ...o, guidanceScale: o.guidanceScale ?? 7.5, width, height, negativeCropsCoordsTopLeft: undefined }, model, { ...o, image: processed, strength }, true);
  if (o.maskedImageLatents !== undefined) checkMaskedLatents(o.maskedImageLatents, run);
  return {
    run,
    inpaint: { mask: maskBin, maskedPixels: masked, unetInChannels: unetIn, maskedImageLatents: o.maskedImageLatents, overlay: crop ? { mask, image: image as RgbaImage, crop } : null },
  };
}

const floor8 = (v: number) => v - (v % 8);

/** "mask not an image": the shapes diffusers' mask_processor accepts, checked up front. */
function checkMask(m: unknown): asserts m is MaskImage {
  const fix = 'maskImage must be an image: { width, height, data } RGBA8 (e.g. decodePng), or { width, height, data, channels: 1 } with one 8-bit or float value per pixel (white / 1 repaints)';
  if (!m || typeof m !== 'object' || !('data' in m) || !('width' in m) || !('height' in m)) throw new InvalidArgumentError(`inpaint: ${fix}`);
  const { width, height, data } = m as { width: unknown; height: unknown; data: unknown };
  if (!Number.isInteger(width) || !Number.isInteger(height) || (width as number) < 1 || (height as number) < 1) throw new InvalidArgumentError(`inpaint: maskImage is ${String(width)}×${String(height)}: ${fix}`);
  const single = (m as { channels?: number }).channels === 1;
  const ok = data instanceof Uint8ClampedArray || data instanceof Uint8Array || (single && data instanceof Float32Array);
  if (!ok) throw new InvalidArgumentError(`inpaint: maskImage.data is ${Object.prototype.toString.call(data)}: ${fix}`);
  const want = (width as number) * (height as number) * (single ? 1 : 4);
  if ((data as ArrayLike<number>).length !== want) {
    throw new InvalidArgumentError(`inpaint: maskImage data has ${(data as ArrayLike<number>).length} values; a ${String(width)}×${String(height)} ${single ? 'one-channel' : 'RGBA8'} mask has ${want}`);
  }
  if (data instanceof Float32Array && !data.every(Number.isFinite)) throw new InvalidArgumentError('inpaint: maskImage has NaN or infinite values');
}

function checkMaskedLatents(v: Float32Array, r: ResolvedRun): void {
  const [b, h, w, c] = r.latentShape;
  const per = c * h * w;
  if (!(v instanceof Float32Array) || (v.length !== per && v.length !== b * per)) {
    throw new InvalidArgumentError(`maskedImageLatents: expected a Float32Array of 1×${c}×${h}×${w} or ${b}×${c}×${h}×${w} values (NCHW for ${r.width}×${r.height}), got ${(v as ArrayLike<number>)?.length}`);
  }
}
