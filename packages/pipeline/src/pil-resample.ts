// Pillow's Image.resize for 8-bit images, Lanczos and bicubic, bit for bit: diffusers' VaeImageProcessor
// resizes PIL images (init images, masks) with PIL_INTERPOLATION["lanczos"] (resize_mode "fill" stretches
// edges with Pillow's default, bicubic), so a mask of another size binarizes exactly as there. Follows
// Pillow's Resample.c (precompute_coeffs, 22-bit fixed-point coefficients, horizontal then vertical
// pass, clip8) and Image.resize (RGBA resampled premultiplied, as RGBa).
import { InvalidArgumentError } from '@ssd/tensor';

/** An 8-bit PIL-like image: `bands` interleaved channels per pixel, rows top to bottom. */
export interface Image8 {
  width: number;
  height: number;
  /** 1 (L), 3 (RGB) or 4 (RGBA). */
  bands: 1 | 3 | 4;
  data: Uint8Array;
}

/** Pillow's (x0, y0, x1, y1) source box; may be fractional, as Image.resize's `box`. */
export type ResizeBox = readonly [number, number, number, number];

const PRECISION_BITS = 32 - 8 - 2;

export type ResampleFilter = 'lanczos' | 'bicubic';

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x: number): number {
  return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

/** Keys' cubic convolution with a = −0.5 (Pillow's bicubic_filter). */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

const FILTERS: Record<ResampleFilter, { fn: (x: number) => number; support: number }> = {
  lanczos: { fn: lanczos, support: 3 },
  bicubic: { fn: bicubic, support: 2 },
};

interface Coeffs {
  ksize: number;
  /** [xmin, count] per output pixel. */
  bounds: Int32Array;
  /** Fixed-point weights, ksize per output pixel. */
  k: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc: in0/in1 are C floats, the arithmetic C doubles. */
function coeffs(inSize: number, in0: number, in1: number, outSize: number, filter: ResampleFilter): Coeffs {
  const f = FILTERS[filter];
  const scale = Math.fround(Math.fround(in1) - Math.fround(in0)) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = f.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const invFilterscale = 1 / filterscale;
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = Math.fround(in0) + (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = f.fn((x + xmin - center + 0.5) * invFilterscale);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass along x (rows) or y (columns) of an interleaved 8-bit image. */
function pass(src: Uint8Array, w: number, bands: number, c: Coeffs, outW: number, outH: number, horizontal: boolean): Uint8Array {
  const out = new Uint8Array(outW * outH * bands);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      const min = c.bounds[o * 2];
      const n = c.bounds[o * 2 + 1];
      const kOff = o * c.ksize;
      for (let b = 0; b < bands; b++) {
        let ss = half;
        for (let i = 0; i < n; i++) {
          const at = horizontal ? (y * w + min + i) * bands + b : ((min + i) * w + x) * bands + b;
          ss += src[at] * c.k[kOff + i];
        }
        out[(y * outW + x) * bands + b] = clip8(ss);
      }
    }
  }
  return out;
}

/** ImagingResample, per band (no premultiplication). */
function resampleBands(img: Image8, width: number, height: number, box: ResizeBox, filter: ResampleFilter): Uint8Array {
  const needH = width !== img.width || box[0] !== 0 || box[2] !== width;
  const needV = height !== img.height || box[1] !== 0 || box[3] !== height;
  let data = img.data;
  let w = img.width;
  if (needH) {
    data = pass(data, w, img.bands, coeffs(img.width, box[0], box[2], width, filter), width, img.height, true);
    w = width;
  }
  if (needV) data = pass(data, w, img.bands, coeffs(img.height, box[1], box[3], height, filter), w, height, false);
  return data === img.data ? new Uint8Array(img.data) : data;
}

/**
 * PIL's `image.resize((width, height), filter, box)` (Lanczos unless said: what diffusers asks for;
 * Pillow's own default is bicubic). The same size and the whole box is a copy; RGBA is resampled
 * premultiplied (Pillow converts to RGBa and back).
 */
export function pilResize(img: Image8, width: number, height: number, box: ResizeBox = [0, 0, img.width, img.height], filter: ResampleFilter = 'lanczos'): Image8 {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) throw new InvalidArgumentError(`resize: size ${width}×${height} must be positive integers`);
  if (width === img.width && height === img.height && box[0] === 0 && box[1] === 0 && box[2] === img.width && box[3] === img.height) {
    return { ...img, data: new Uint8Array(img.data) };
  }
  if (img.bands === 4) {
    const pre = premultiply(img);
    return unpremultiply({ width, height, bands: 4, data: resampleBands(pre, width, height, box, filter) });
  }
  return { width, height, bands: img.bands, data: resampleBands(img, width, height, box, filter) };
}

/** Pillow's MULDIV255 and DIV255 (rounded division by 255 in integers). */
export const div255 = (a: number): number => {
  const t = a + 128;
  return ((t >> 8) + t) >> 8;
};

/** RGBA → RGBa (Convert.c rgbA2rgba). */
export function premultiply(img: Image8): Image8 {
  const d = new Uint8Array(img.data.length);
  for (let p = 0; p < img.width * img.height; p++) {
    const a = img.data[p * 4 + 3];
    for (let c = 0; c < 3; c++) d[p * 4 + c] = div255(img.data[p * 4 + c] * a);
    d[p * 4 + 3] = a;
  }
  return { ...img, data: d };
}

/** RGBa → RGBA (Convert.c rgba2rgbA: integer division, clipped). */
export function unpremultiply(img: Image8): Image8 {
  const d = new Uint8Array(img.data.length);
  for (let p = 0; p < img.width * img.height; p++) {
    const a = img.data[p * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = img.data[p * 4 + c];
      d[p * 4 + c] = a === 255 || a === 0 ? v : Math.min(255, Math.floor((255 * v) / a));
    }
    d[p * 4 + 3] = a;
  }
  return { ...img, data: d };
}
