// The few other Pillow operations diffusers' VaeImageProcessor applies to PIL images — convert("L"),
// crop, paste (plain and through an "L" mask), invert and alpha_composite — with Pillow's integer
// arithmetic (Convert.c, Paste.c, AlphaComposite.c), so that masks and overlays match diffusers exactly.
import { div255, type Image8 } from './pil-resample.js';

export type { Image8 } from './pil-resample.js';

/** A new image filled with zeros (PIL's Image.new(mode, size)). */
export function blank(width: number, height: number, bands: 1 | 3 | 4): Image8 {
  return { width, height, bands, data: new Uint8Array(width * height * bands) };
}

/** convert("L"): ITU-R 601-2 luma in Pillow's 16-bit fixed point (L24 >> 16); alpha is ignored. */
export function toGrayscale(img: Image8): Image8 {
  if (img.bands === 1) return img;
  const out = blank(img.width, img.height, 1);
  const d = img.data;
  for (let p = 0; p < img.width * img.height; p++) {
    const s = p * img.bands;
    out.data[p] = (d[s] * 19595 + d[s + 1] * 38470 + d[s + 2] * 7471 + 0x8000) >> 16;
  }
  return out;
}

/** convert("RGB") from L (replicated), RGB (copy) or RGBA (alpha dropped). */
export function toRgb(img: Image8): Image8 {
  if (img.bands === 3) return img;
  const out = blank(img.width, img.height, 3);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let c = 0; c < 3; c++) out.data[p * 3 + c] = img.data[p * img.bands + (img.bands === 1 ? 0 : c)];
  }
  return out;
}

/** convert("RGBA"): alpha 255 added to L or RGB. */
export function toRgba(img: Image8): Image8 {
  if (img.bands === 4) return img;
  const out = blank(img.width, img.height, 4);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let c = 0; c < 3; c++) out.data[p * 4 + c] = img.data[p * img.bands + (img.bands === 1 ? 0 : c)];
    out.data[p * 4 + 3] = 255;
  }
  return out;
}

/** crop((x0, y0, x1, y1)): integer box; outside the image reads as zeros, as in PIL. */
export function crop(img: Image8, box: readonly [number, number, number, number]): Image8 {
  const [x0, y0, x1, y1] = box;
  const out = blank(x1 - x0, y1 - y0, img.bands);
  paste(out, img, -x0, -y0);
  return out;
}

/**
 * dst.paste(src, (dx, dy)[, mask]) in place: the overlapping rectangle is copied, or blended through
 * an L mask with Pillow's BLEND (DIV255(dst·(255 − m) + src·m)). A source of another band count is
 * converted to the destination's first (PIL converts to the destination mode; an RGBA source pasted
 * into RGB loses its alpha).
 */
export function paste(dst: Image8, src: Image8, dx: number, dy: number, mask?: Image8): void {
  const s = src.bands === dst.bands ? src : dst.bands === 1 ? toGrayscale(src) : dst.bands === 3 ? toRgb(src) : toRgba(src);
  const bands = dst.bands;
  for (let y = Math.max(0, dy); y < Math.min(dst.height, dy + s.height); y++) {
    for (let x = Math.max(0, dx); x < Math.min(dst.width, dx + s.width); x++) {
      const sp = (y - dy) * s.width + (x - dx);
      const dp = y * dst.width + x;
      const m = mask ? mask.data[sp] : 255;
      for (let c = 0; c < bands; c++) {
        const v = s.data[sp * bands + c];
        dst.data[dp * bands + c] = m === 255 ? v : div255(dst.data[dp * bands + c] * (255 - m) + v * m);
      }
    }
  }
}

/** ImageOps.invert of an L image. */
export function invert(img: Image8): Image8 {
  return { ...img, data: img.data.map((v) => 255 - v) };
}

/**
 * Image.alpha_composite(dst, src) for RGBA images of one size (AlphaComposite.c: 7 extra bits of
 * precision, rounded divisions by 255).
 */
export function alphaComposite(dst: Image8, src: Image8): Image8 {
  const out = blank(dst.width, dst.height, 4);
  const SHIFT = (a: number) => ((a >>> 8) + a) >>> 8;
  for (let p = 0; p < dst.width * dst.height; p++) {
    const i = p * 4;
    const sa = src.data[i + 3];
    if (sa === 0) {
      out.data.set(dst.data.subarray(i, i + 4), i);
      continue;
    }
    const blend = dst.data[i + 3] * (255 - sa);
    const outa255 = sa * 255 + blend;
    const coef1 = Math.floor((sa * 255 * 255 * 128) / outa255);
    const coef2 = 255 * 128 - coef1;
    for (let c = 0; c < 3; c++) out.data[i + c] = SHIFT(src.data[i + c] * coef1 + dst.data[i + c] * coef2 + (0x80 << 7)) >>> 7;
    out.data[i + 3] = SHIFT(outa255 + 0x80);
  }
  return out;
}
