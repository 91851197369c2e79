// diffusers v0.26.3 VaeImageProcessor.apply_overlay: the inpainting output pasted back into the
// original image — the original shows through where the (soft) mask is black — with Pillow's integer
// paste, premultiplication and alpha_composite. diffusers' SDXL inpaint pipeline applies it only with
// padding_mask_crop (the generated crop placed back at its box); it is exported for callers that want
// the unmasked region of their image kept pixel for pixel.
import type { RgbaImage } from './options.js';
import { image8ToRgba, maskToImage8, resizeAndCrop, rgbaToImage8, type CropBox, type MaskImage } from './image-processor.js';
import { alphaComposite, blank, invert, paste, toGrayscale, toRgb, toRgba } from './pil-image.js';
import { pilResize, premultiply, unpremultiply } from './pil-resample.js';
import { InvalidArgumentError } from '@ssd/tensor';

/**
 * apply_overlay(mask, initImage, image, cropCoords): `image` (the pipeline's output) with `initImage`
 * composited over it through the inverted mask; with `cropCoords` the output is first resized (cover,
 * centred) into that box of a black canvas the size of `image`. 8-bit images and masks only.
 */
export function applyOverlay(mask: MaskImage, initImage: RgbaImage, image: RgbaImage, cropCoords: CropBox | null = null): RgbaImage {
  const m8 = maskToImage8(mask);
  if (!m8) throw new InvalidArgumentError('applyOverlay: the mask must be 8-bit (a PIL image in diffusers), not float data');
  const { width, height } = image;
  const init = pilResize(rgbaToImage8(initImage), width, height);
  const alpha = invert(toGrayscale(pilResize(m8, width, height)));
  const masked = blank(width, height, 4); // mode "RGBa", premultiplied
  paste(masked, premultiply(toRgba(init)), 0, 0, alpha);
  let out = rgbaToImage8(image);
  if (cropCoords) {
    const [x, y, x2, y2] = cropCoords;
    const base = blank(width, height, 4);
    paste(base, resizeAndCrop(out, x2 - x, y2 - y), x, y);
    out = toRgb(base);
  }
  return image8ToRgba(alphaComposite(toRgba(out), unpremultiply(masked)));
}
