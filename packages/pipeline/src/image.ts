// The cheap linear latent → RGB preview (the decoder's image → [0, 1] floats and RGBA8 conversions
// are @ssd/vae's denormalize / toRgba8).
import type { RgbaImage } from './options.js';

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
