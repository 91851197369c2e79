// Finite but useless results are errors, not images: a decoded image that is one flat colour (an
// all-zero VAE, a UNet whose latents collapsed) or saturated almost everywhere (a VAE bias of 1e30,
// guidance of 1e38), and final latents that are constant. NaN/∞ are caught earlier (non-finite flags).
import { NumericalError } from '@ssd/tensor';

/** Share of values clipped at −1 or +1 from which a decoded image counts as saturated. */
export const SATURATED_SHARE = 0.999;
/** A decoded image whose values span at most this (in [−1, 1] units: one 8-bit level) counts as constant. */
const FLAT_RANGE = 2 / 255;

const HINT = 'Check the model weights (a corrupt or all-zero file?) and guidanceScale; pass allowDegenerate: true (CLI --allow-degenerate) to keep such a result.';

/** Throws NumericalError when image `index` (NHWC RGB in the VAE's [−1, 1] range) is flat or saturated. */
export function checkDecodedImage(data: Float32Array, index: number, count: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  let clipped = 0;
  for (const v of data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
    if (v <= -1 || v >= 1) clipped++;
  }
  const stage = count > 1 ? `the VAE decode of image ${index + 1} of ${count}` : 'the VAE decode';
  if (clipped >= SATURATED_SHARE * data.length) {
    throw new NumericalError(stage, HINT, `a saturated image (${((100 * clipped) / data.length).toFixed(2)}% of values clipped to black or white) came out of`);
  }
  const clampedRange = Math.min(hi, 1) - Math.max(lo, -1);
  if (clampedRange <= FLAT_RANGE) {
    const level = Math.round(((Math.min(Math.max(lo, -1), 1) + 1) / 2) * 255);
    throw new NumericalError(stage, HINT, `a constant image (every pixel at level ${level}/255) came out of`);
  }
}

/** Throws NumericalError when the final latents are constant (every value equal). */
export function checkFinalLatents(data: Float32Array): void {
  if (data.length > 1 && data.every((v) => v === data[0])) {
    throw new NumericalError('the denoising loop', HINT, `constant latents (every value ${data[0]}) came out of`);
  }
}
