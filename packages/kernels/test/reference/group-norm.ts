// float64 oracle for groupNorm (torch.nn.GroupNorm: biased variance, two-pass), on channels-last
// data viewed as [B, N, C].

/** GroupNorm over x [B, N, C] with `groups` groups; optional SiLU on the result. */
export function groupNormRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, B: number, N: number, C: number, groups: number, eps: number, silu: boolean): Float64Array {
  const out = new Float64Array(B * N * C);
  const cg = C / groups;
  for (let bi = 0; bi < B; bi++) {
    for (let g = 0; g < groups; g++) {
      let sum = 0;
      for (let n = 0; n < N; n++) for (let j = 0; j < cg; j++) sum += x[(bi * N + n) * C + g * cg + j];
      const count = N * cg;
      const mean = sum / count;
      let sq = 0;
      for (let n = 0; n < N; n++) for (let j = 0; j < cg; j++) sq += (x[(bi * N + n) * C + g * cg + j] - mean) ** 2;
      const rstd = 1 / Math.sqrt(sq / count + eps);
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < cg; j++) {
          const c = g * cg + j;
          const i = (bi * N + n) * C + c;
          const y = (x[i] - mean) * rstd * w[c] + b[c];
          out[i] = silu ? y / (1 + Math.exp(-y)) : y;
        }
      }
    }
  }
  return out;
}
