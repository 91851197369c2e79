// Image helpers on the host: the decoders' NHWC image in [-1, 1] → floats in [0, 1] and 8-bit
// pixels exactly as diffusers' VaeImageProcessor.postprocess does: `(x / 2 + 0.5).clamp(0, 1)` in
// f32, then numpy_to_pil's `(images * 255).round().astype("uint8")` (numpy rounds half to even).
// A decoded image is small next to the work that made it, so this runs after one readback.
import { InvalidArgumentError, ShapeError, formatShape, type Tensor } from '@ssd/tensor';

/** One image: row-major pixels, `channels` values per pixel. */
export interface ImageData8 {
  width: number;
  height: number;
  /** RGBA8 (alpha 255), width·height·4 bytes. */
  data: Uint8ClampedArray;
}

export interface ImageFloat {
  width: number;
  height: number;
  /** RGB in [0, 1], width·height·3 floats. */
  data: Float32Array;
}

/** `(x / 2 + 0.5).clamp(0, 1)` elementwise, in f32 as torch computes it. NaN stays NaN. */
export function denormalize(x: ArrayLike<number>): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Math.fround(Math.fround(x[i] / 2) + 0.5);
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return out;
}

/** numpy's round (half to even) of a non-negative value. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** [0, 1] RGB floats (H·W·3) → RGBA8 with alpha 255: `(x * 255).round()` in f32, ties to even. */
export function toRgba8(unit: Float32Array, width: number, height: number): ImageData8 {
  if (unit.length !== width * height * 3) throw new InvalidArgumentError(`toRgba8: ${unit.length} values for a ${width}×${height} RGB image (needs ${width * height * 3})`);
  const data = new Uint8ClampedArray(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < 3; c++) data[p * 4 + c] = roundHalfEven(Math.fround(unit[p * 3 + c] * 255));
    data[p * 4 + 3] = 255;
  }
  return { width, height, data };
}

async function readImages(sample: Tensor, op: string): Promise<{ data: Float32Array; b: number; h: number; w: number }> {
  if (sample.rank !== 4 || sample.shape[3] !== 3) throw new ShapeError(op, 'sample', '[B, H, W, 3] (NHWC)', formatShape(sample.shape));
  const [b, h, w] = sample.shape;
  return { data: (await sample.read()) as Float32Array, b, h, w };
}

/** A decoder's NHWC [B, H, W, 3] image in [-1, 1] → one [0, 1] float image per batch entry. */
export async function imagesToFloat(sample: Tensor): Promise<ImageFloat[]> {
  const { data, b, h, w } = await readImages(sample, 'imagesToFloat');
  const per = h * w * 3;
  return Array.from({ length: b }, (_, k) => ({ width: w, height: h, data: denormalize(data.subarray(k * per, (k + 1) * per)) }));
}

/** A decoder's NHWC [B, H, W, 3] image in [-1, 1] → one RGBA8 image per batch entry (what diffusers' PIL output holds). */
export async function imagesToRgba8(sample: Tensor): Promise<ImageData8[]> {
  return (await imagesToFloat(sample)).map((f) => toRgba8(f.data, f.width, f.height));
}
