// Oracles for the embedding ops: plain table lookups, row gathers, and diffusers'
// get_timestep_embedding (models/embeddings.py) written step by step with torch's float32 roundings
// (Math.fround after every torch op), transcendental functions in float64.

export function embeddingRef(ids: ArrayLike<number>, table: ArrayLike<number>, D: number, T: number, positions?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(ids.length * D);
  for (let r = 0; r < ids.length; r++) for (let j = 0; j < D; j++) out[r * D + j] = table[ids[r] * D + j] + (positions ? positions[(r % T) * D + j] : 0);
  return out;
}

export function gatherRowsRef(x: ArrayLike<number>, index: ArrayLike<number>, N: number, C: number): Float64Array {
  const out = new Float64Array(index.length * C);
  for (let b = 0; b < index.length; b++) for (let c = 0; c < C; c++) out[b * C + c] = x[(b * N + index[b]) * C + c];
  return out;
}

/** get_timestep_embedding(timesteps, dim, flip_sin_to_cos, downscale_freq_shift, scale=1, max_period=10000). */
export function timestepEmbeddingRef(timesteps: ArrayLike<number>, dim: number, flip: boolean, shift: number): Float64Array {
  const f32 = Math.fround;
  const half = Math.floor(dim / 2);
  // exponent = -math.log(max_period) * torch.arange(0, half, dtype=float32); exponent / (half - shift)
  const exponent: number[] = [];
  for (let i = 0; i < half; i++) exponent.push(f32(f32(f32(-Math.log(10000)) * i) / f32(half - shift)));
  const emb = exponent.map((e) => f32(Math.exp(e))); // torch.exp in float32
  const out = new Float64Array(timesteps.length * dim);
  for (let b = 0; b < timesteps.length; b++) {
    const args = emb.map((e) => f32(f32(timesteps[b]) * e)); // timesteps[:, None].float() * emb[None, :]
    const sin = args.map(Math.sin);
    const cos = args.map(Math.cos);
    const row = flip ? [...cos, ...sin] : [...sin, ...cos]; // torch.cat, then the flip
    for (let k = 0; k < row.length; k++) out[b * dim + k] = row[k]; // odd dim: the pad stays 0
  }
  return out;
}

/** y = x Wᵀ + b for x [R, I], W [O, I] (torch.nn.Linear), in float64. */
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, R: number, I: number, O: number): Float64Array {
  const out = new Float64Array(R * O);
  for (let r = 0; r < R; r++) {
    for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let i = 0; i < I; i++) s += x[r * I + i] * w[o * I + i];
      out[r * O + o] = s;
    }
  }
  return out;
}
