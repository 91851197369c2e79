// float64 oracles for the reductions: stdPerSample, argmax, nonFiniteFlag.

/** Unbiased standard deviation of each sample of x [B, P] (torch.std over all dims but the first). */
export function stdPerSampleRef(x: ArrayLike<number>, B: number, P: number): Float64Array {
  const out = new Float64Array(B);
  for (let bi = 0; bi < B; bi++) {
    let sum = 0;
    for (let i = 0; i < P; i++) sum += x[bi * P + i];
    const mean = sum / P;
    let sq = 0;
    for (let i = 0; i < P; i++) sq += (x[bi * P + i] - mean) ** 2;
    out[bi] = Math.sqrt(sq / (P - 1));
  }
  return out;
}

/** Index of the maximum of each row of length L: first on ties, NaN counts as the maximum (torch). */
export function argmaxRef(x: ArrayLike<number>, L: number): Int32Array {
  const rows = x.length / L;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < L; j++) {
      const v = x[r * L + j];
      const b = x[r * L + best];
      if (Number.isNaN(b)) break;
      if (Number.isNaN(v) || v > b) best = j;
    }
    out[r] = best;
  }
  return out;
}
