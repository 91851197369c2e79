// float64 oracle for layerNorm (torch.nn.LayerNorm over the last axis: biased variance, two-pass).

/** LayerNorm over the last axis of x [R, C]. */
export function layerNormRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, R: number, C: number, eps: number): Float64Array {
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    let sum = 0;
    for (let c = 0; c < C; c++) sum += x[r * C + c];
    const mean = sum / C;
    let sq = 0;
    for (let c = 0; c < C; c++) sq += (x[r * C + c] - mean) ** 2;
    const rstd = 1 / Math.sqrt(sq / C + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] - mean) * rstd * w[c] + b[c];
  }
  return out;
}
