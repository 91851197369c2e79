// Outpainting is inpainting of a padded image: padForOutpaint grows the canvas by the given margins
// (to multiples of 8, the VAE's factor), fills the new border by repeating the edge pixels (a 4-channel
// UNet starts from the noised image there) and returns the mask that repaints exactly that border.
import { InvalidArgumentError } from '@ssd/tensor';
import type { RgbaImage } from './options.js';
import type { MaskImage } from './image-processor.js';

export interface OutpaintPadding {
  left?: number;
  right?: number;
  top?: number;
  bottom?: number;
}

export interface PaddedImage {
  /** The padded image (RGBA8, opaque). */
  image: RgbaImage;
  /** One 8-bit channel: 255 on the new border (repaint), 0 over the original image (keep). */
  mask: MaskImage & { channels: 1; data: Uint8Array };
  /** The margins applied: as asked, plus whatever made the size a multiple of 8 (added right and bottom). */
  padding: Required<OutpaintPadding>;
}

/** Pads `image` by the margins (pixels) for outpainting; see PaddedImage. */
export function padForOutpaint(image: RgbaImage, padding: OutpaintPadding): PaddedImage {
  const d: unknown = image?.data;
  if (!image || !(d instanceof Uint8ClampedArray || d instanceof Uint8Array) || image.data.length !== image.width * image.height * 4 || !(image.width > 0 && image.height > 0)) {
    throw new InvalidArgumentError('padForOutpaint: image must be an RGBA8 image { width, height, data } (e.g. from decodePng)');
  }
  const pad = { left: 0, right: 0, top: 0, bottom: 0 };
  for (const side of ['left', 'right', 'top', 'bottom'] as const) {
    const v = padding?.[side] ?? 0;
    if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`padForOutpaint: ${side} = ${String(v)}: must be an integer ≥ 0 (pixels)`);
    pad[side] = v;
  }
  if (!(pad.left + pad.right + pad.top + pad.bottom)) throw new InvalidArgumentError('padForOutpaint: all four margins are 0: nothing to outpaint');
  pad.right += (8 - ((image.width + pad.left + pad.right) % 8)) % 8;
  pad.bottom += (8 - ((image.height + pad.top + pad.bottom) % 8)) % 8;
  const width = image.width + pad.left + pad.right;
  const height = image.height + pad.top + pad.bottom;
  const data = new Uint8ClampedArray(width * height * 4);
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(Math.max(y - pad.top, 0), image.height - 1);
    for (let x = 0; x < width; x++) {
      const sx = Math.min(Math.max(x - pad.left, 0), image.width - 1);
      const inside = y - pad.top === sy && x - pad.left === sx;
      const o = (y * width + x) * 4;
      const s = (sy * image.width + sx) * 4;
      data[o] = image.data[s];
      data[o + 1] = image.data[s + 1];
      data[o + 2] = image.data[s + 2];
      data[o + 3] = 255;
      mask[y * width + x] = inside ? 0 : 255;
    }
  }
  return { image: { width, height, data }, mask: { width, height, data: mask, channels: 1 }, padding: pad };
}
