// Float64 oracles for attention.ts and softmax.ts: the obvious loops, as torch's
// scaled_dot_product_attention and softmax define them.

export interface RefOperand {
  data: ArrayLike<number>;
  /** Channels per row (the tensor's last dimension). */
  stride: number;
  /** Channel of head 0, dim 0. */
  offset: number;
}

/** softmax(q·kᵀ·scale [+ causal]) · v per batch and head → [B, Nq, H·D] as Float64Array. */
export function attentionRef(q: RefOperand, k: RefOperand, v: RefOperand, B: number, Nq: number, Nk: number, H: number, D: number, scale: number, causal: boolean): Float64Array {
  const out = new Float64Array(B * Nq * H * D);
  const s = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const qi = (b * Nq + i) * q.stride + q.offset + h * D;
        let max = -Infinity;
        for (let j = 0; j < Nk; j++) {
          if (causal && j > i) {
            s[j] = -Infinity;
            continue;
          }
          const kj = (b * Nk + j) * k.stride + k.offset + h * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[qi + d] * k.data[kj + d];
          s[j] = dot * scale;
          if (s[j] > max) max = s[j];
        }
        let sum = 0;
        for (let j = 0; j < Nk; j++) {
          s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - max);
          sum += s[j];
        }
        const oi = (b * Nq + i) * H * D + h * D;
        for (let j = 0; j < Nk; j++) {
          if (s[j] === 0) continue;
          const vj = (b * Nk + j) * v.stride + v.offset + h * D;
          const p = s[j] / sum;
          for (let d = 0; d < D; d++) out[oi + d] += p * v.data[vj + d];
        }
      }
    }
  }
  return out;
}

/** Softmax over the last axis of rows × n values. */
export function softmaxRef(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, x[r * n + i]);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += out[r * n + i] = Math.exp(x[r * n + i] - max);
    for (let i = 0; i < n; i++) out[r * n + i] /= sum;
  }
  return out;
}
