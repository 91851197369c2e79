// diffusers v0.26.3 VaeImageProcessor for inpainting (image_processor.py): the image processor (resize
// with PIL's Lanczos, normalize) and the mask processor (resize, convert_to_grayscale, binarize, no
// normalize), get_crop_region / resize_mode "fill" for padding_mask_crop, and the mask's
// nearest-neighbour downsampling to the latents (F.interpolate in prepare_mask_latents). 8-bit images
// take diffusers' PIL path; float images its numpy path (torch's nearest resize).
import { InvalidArgumentError } from '@ssd/tensor';
import type { InitImage, RgbaImage } from './options.js';
import { blank, crop, paste, toGrayscale, toRgb, type Image8 } from './pil-image.js';
import { pilResize } from './pil-resample.js';

/**
 * An inpainting mask (white repaints, black keeps): RGBA8 (as an RGB/RGBA PIL image: converted to
 * luma, alpha ignored, as diffusers' convert("L")), one 8-bit channel (a PIL "L" image), or one float
 * channel in [0, 1] (diffusers' numpy masks).
 */
export type MaskImage = RgbaImage | { width: number; height: number; data: Uint8Array | Uint8ClampedArray | Float32Array; channels: 1 };

export type CropBox = [number, number, number, number];

/** The mask as PIL would hold it: L (one 8-bit channel) or RGBA; null for a float mask. */
export function maskToImage8(mask: MaskImage): Image8 | null {
  if ('channels' in mask && mask.channels === 1) {
    return mask.data instanceof Float32Array ? null : { width: mask.width, height: mask.height, bands: 1, data: new Uint8Array(mask.data) };
  }
  return { width: mask.width, height: mask.height, bands: 4, data: new Uint8Array((mask as RgbaImage).data) };
}

/** An RGBA8 image as the RGB PIL image diffusers expects (alpha dropped). */
export function rgbaToImage8(img: RgbaImage): Image8 {
  return toRgb({ width: img.width, height: img.height, bands: 4, data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.length) });
}

export function image8ToRgba(img: Image8): RgbaImage {
  const rgb = toRgb(img);
  const data = new Uint8ClampedArray(img.width * img.height * 4);
  for (let p = 0; p < img.width * img.height; p++) {
    data.set(rgb.data.subarray(p * 3, p * 3 + 3), p * 4);
    data[p * 4 + 3] = 255;
  }
  return { width: img.width, height: img.height, data };
}

/**
 * VaeImageProcessor.get_crop_region: the smallest box holding every non-zero mask pixel, padded by
 * `pad`, then grown to the processing aspect width/height (clamped to the mask). (x1, y1, x2, y2).
 */
export function getCropRegion(maskL: Image8, width: number, height: number, pad: number): CropBox {
  const { width: w, height: h, data } = maskL;
  const colEmpty = (x: number) => { for (let y = 0; y < h; y++) if (data[y * w + x]) return false; return true; };
  const rowEmpty = (y: number) => { for (let x = 0; x < w; x++) if (data[y * w + x]) return false; return true; };
  let left = 0;
  while (left < w && colEmpty(left)) left++;
  let right = 0;
  while (right < w && colEmpty(w - 1 - right)) right++;
  let top = 0;
  while (top < h && rowEmpty(top)) top++;
  let bottom = 0;
  while (bottom < h && rowEmpty(h - 1 - bottom)) bottom++;
  let x1 = Math.max(left - pad, 0), y1 = Math.max(top - pad, 0);
  let x2 = Math.min(w - right + pad, w), y2 = Math.min(h - bottom + pad, h);
  const ratioCrop = (x2 - x1) / (y2 - y1);
  const ratioProcessing = width / height;
  if (ratioCrop > ratioProcessing) {
    const diff = Math.trunc((x2 - x1) / ratioProcessing - (y2 - y1));
    y1 -= Math.floor(diff / 2);
    y2 += diff - Math.floor(diff / 2);
    if (y2 >= h) { const d = y2 - h; y2 -= d; y1 -= d; }
    if (y1 < 0) { y2 -= y1; y1 = 0; }
    if (y2 >= h) y2 = h;
  } else {
    const diff = Math.trunc((y2 - y1) * ratioProcessing - (x2 - x1));
    x1 -= Math.floor(diff / 2);
    x2 += diff - Math.floor(diff / 2);
    if (x2 >= w) { const d = x2 - w; x2 -= d; x1 -= d; }
    if (x1 < 0) { x2 -= x1; x1 = 0; }
    if (x2 >= w) x2 = w;
  }
  return [x1, y1, x2, y2];
}

/**
 * _resize_and_fill: fit inside width×height keeping the aspect, centre, fill the rest by stretching
 * the edge rows/columns. RGB. The stretches call PIL's resize without a filter: Pillow's default, bicubic.
 */
function resizeAndFill(img: Image8, width: number, height: number): Image8 {
  const ratio = width / height;
  const srcRatio = img.width / img.height;
  const srcW = ratio < srcRatio ? width : Math.floor((img.width * height) / img.height);
  const srcH = ratio >= srcRatio ? height : Math.floor((img.height * width) / img.width);
  const resized = pilResize(img, srcW, srcH);
  const res = blank(width, height, 3);
  paste(res, resized, Math.floor(width / 2) - Math.floor(srcW / 2), Math.floor(height / 2) - Math.floor(srcH / 2));
  if (ratio < srcRatio) {
    const fill = Math.floor(height / 2) - Math.floor(srcH / 2);
    if (fill > 0) {
      paste(res, pilResize(resized, width, fill, [0, 0, width, 0], 'bicubic'), 0, 0);
      paste(res, pilResize(resized, width, fill, [0, resized.height, width, resized.height], 'bicubic'), 0, fill + srcH);
    }
  } else if (ratio > srcRatio) {
    const fill = Math.floor(width / 2) - Math.floor(srcW / 2);
    if (fill > 0) {
      paste(res, pilResize(resized, fill, height, [0, 0, 0, height], 'bicubic'), 0, 0);
      paste(res, pilResize(resized, fill, height, [resized.width, 0, resized.width, height], 'bicubic'), fill + srcW, 0);
    }
  }
  return res;
}

/** _resize_and_crop: cover width×height keeping the aspect, centred, the excess cropped. RGB. */
export function resizeAndCrop(img: Image8, width: number, height: number): Image8 {
  const ratio = width / height;
  const srcRatio = img.width / img.height;
  const srcW = ratio > srcRatio ? width : Math.floor((img.width * height) / img.height);
  const srcH = ratio <= srcRatio ? height : Math.floor((img.height * width) / img.width);
  const res = blank(width, height, 3);
  paste(res, pilResize(img, srcW, srcH), Math.floor(width / 2) - Math.floor(srcW / 2), Math.floor(height / 2) - Math.floor(srcH / 2));
  return res;
}

/** The PIL path of preprocess: crop, then resize ('default': stretch with Lanczos; 'fill' with padding_mask_crop). */
function pilPreprocess(img: Image8, width: number, height: number, box: CropBox | null): Image8 {
  const cropped = box ? crop(img, box) : img;
  return box ? resizeAndFill(cropped, width, height) : pilResize(cropped, width, height);
}

/** torch.nn.functional.interpolate(mode="nearest") source index (legacy nearest, float scale). */
export function nearestIndex(out: number, inSize: number, outSize: number): number {
  if (outSize === inSize) return out;
  if (outSize === 2 * inSize) return out >> 1;
  const scale = Math.fround(inSize / outSize);
  return Math.min(Math.floor(Math.fround(out * scale)), inSize - 1);
}

/** Nearest resize of interleaved float channels (diffusers' numpy/tensor resize). */
function nearestResize(data: Float32Array, w: number, h: number, ch: number, outW: number, outH: number): Float32Array {
  if (w === outW && h === outH) return data;
  const out = new Float32Array(outW * outH * ch);
  for (let y = 0; y < outH; y++) {
    const sy = nearestIndex(y, h, outH);
    for (let x = 0; x < outW; x++) {
      const sx = nearestIndex(x, w, outW);
      for (let c = 0; c < ch; c++) out[(y * outW + x) * ch + c] = data[(sy * w + sx) * ch + c];
    }
  }
  return out;
}

/** image_processor.preprocess up to (not including) normalize: the image at width×height. */
export function preprocessImage(image: InitImage, width: number, height: number, box: CropBox | null): InitImage {
  if (image.data instanceof Float32Array) {
    if (box) throw new InvalidArgumentError('paddingMaskCrop needs an 8-bit image (diffusers: a PIL image), not float data');
    return { width, height, channels: 3, data: nearestResize(image.data, image.width, image.height, 3, width, height) };
  }
  return image8ToRgba(pilPreprocess(rgbaToImage8(image as RgbaImage), width, height, box));
}

/**
 * mask_processor.preprocess: crop, resize, convert("L"), /255, binarize (< 0.5 → 0, else 1). Returns
 * the [height, width] mask of 0s and 1s (diffusers' float32 [1, 1, H, W]).
 */
export function preprocessMask(mask: MaskImage, width: number, height: number, box: CropBox | null): Float32Array {
  const img = maskToImage8(mask);
  const out = new Float32Array(width * height);
  if (!img) {
    if (box) throw new InvalidArgumentError('paddingMaskCrop needs an 8-bit mask (diffusers: a PIL image), not float data');
    const v = nearestResize(mask.data as Float32Array, mask.width, mask.height, 1, width, height);
    for (let i = 0; i < v.length; i++) out[i] = Math.fround(v[i]) < 0.5 ? 0 : 1;
    return out;
  }
  const gray = toGrayscale(pilPreprocess(img, width, height, box));
  // uint8 / 255 in float32 is < 0.5 exactly for 0..127
  for (let i = 0; i < out.length; i++) out[i] = gray.data[i] >= 128 ? 1 : 0;
  return out;
}

/** prepare_mask_latents' F.interpolate(mask, size=(H/8, W/8)) (nearest: pixel (8i, 8j)). */
export function latentMask(mask: Float32Array, width: number, height: number, factor = 8): Float32Array {
  return nearestResize(mask, width, height, 1, width / factor, height / factor);
}
