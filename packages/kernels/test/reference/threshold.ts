// float64 oracles for clamp and diffusers' dynamic thresholding (_threshold_sample with torch.quantile).

/** torch.clamp. */
export function clampRef(x: ArrayLike<number>, lo: number, hi: number): Float64Array {
  return Float64Array.from(x, (v) => Math.min(Math.max(v, lo), hi));
}

/**
 * _threshold_sample on x [B, P]: s = clamp(quantile(|x_b|, ratio, 'linear'), 1, maxValue);
 * out = clamp(x, −s, s) / s. The quantile's position r = ratio·(P − 1) is taken in float32 and the
 * lerp weight r − ⌊r⌋ too, as torch.quantile does on a float32 tensor; the rest in float64.
 */
export function thresholdRef(x: ArrayLike<number>, B: number, P: number, ratio: number, maxValue: number): { out: Float64Array; s: Float64Array } {
  const out = new Float64Array(B * P);
  const s = new Float64Array(B);
  const r = Math.fround(Math.fround(ratio) * (P - 1));
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  const w = Math.fround(r - lo);
  for (let b = 0; b < B; b++) {
    const sorted = Array.from({ length: P }, (_, i) => Math.abs(x[b * P + i])).sort((p, q) => p - q);
    const q = sorted[lo] + w * (sorted[hi] - sorted[lo]);
    const sb = Math.min(Math.max(q, 1), maxValue); // torch.clamp(min=1, max): max wins when max < 1
    s[b] = sb;
    for (let i = 0; i < P; i++) out[b * P + i] = Math.min(Math.max(x[b * P + i], -sb), sb) / sb;
  }
  return { out, s };
}
