// Image conversions on the host: the decoder's NHWC image in [-1, 1] → floats in [0, 1] and RGBA8
// exactly as diffusers' VaeImageProcessor does ((x/2 + 0.5).clamp(0, 1), ×255, round half to even as
// numpy), and the cheap linear latent → RGB preview.
import type { RgbaImage } from './options.js';

/** NHWC [-1, 1] (one image, H·W·3 floats) → [0, 1] floats, in place into a new array. */
export function toUnitFloat(img: Float32Array): Float32Array {
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) {
    const v = Math.fround(Math.fround(img[i] / 2) + 0.5);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return out;
}

/** [0, 1] floats, H·W·3 → RGBA8 (numpy's `(x * 255).round()`: ties to even). */
export function toRgba8(unit: Float32Array, width: number, height: number): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) data[p * 4 + c] = roundHalfEven(Math.fround(unit[p * 3 + c] * 255));
    data[p * 4 + 3] = 255;
  }
  return { width, height, data };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** SDXL latent → RGB factors (the widely used linear approximation, e.g. ComfyUI's SDXL latent format). */
const SDXL_RGB = [
  [0.3651, 0.4232, 0.4341],
  [-0.2533, -0.0042, 0.1068],
  [0.1076, 0.1111, -0.0362],
  [-0.3165, -0.2492, -0.2188],
];
const SDXL_RGB_BIAS = [0.1084, -0.0175, -0.0011];

/** A preview at latent resolution from NHWC latents of one image (h·w·4 floats). */
export function latentPreview(latents: Float32Array, width: number, height: number, channels = 4): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) {
      let v = SDXL_RGB_BIAS[c];
      for (let k = 0; k < Math.min(4, channels); k++) v += latents[p * channels + k] * SDXL_RGB[k][c];
      data[p * 4 + c] = Math.round(Math.min(1, Math.max(0, (v + 1) / 2)) * 255);
    }
    data[p * 4 + 3] = 255;
  }
  return { width, height, data };
}
