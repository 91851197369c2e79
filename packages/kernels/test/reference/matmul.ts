// float64 references for matmul / linear: out[z, m, n] = act(Σ_k a[z, m, k]·b[z, n, k] + bias[n]) + residual[z, m, n].
import { activationRef, type Activation } from '../../src/shader.js';

export interface MatmulRefOptions {
  batches?: number;
  /** a is shared by every batch (rank 2 while b has a batch). */
  sharedA?: boolean;
  /** b is shared by every batch (a PyTorch Linear weight). */
  sharedB?: boolean;
  bias?: ArrayLike<number>;
  activation?: Activation;
  residual?: ArrayLike<number>;
}

export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number, o: MatmulRefOptions = {}): Float64Array {
  const batches = o.batches ?? 1;
  const act = activationRef(o.activation ?? 'none');
  const out = new Float64Array(batches * M * N);
  for (let z = 0; z < batches; z++) {
    const ab = o.sharedA ? 0 : z * M * K;
    const bb = o.sharedB ? 0 : z * N * K;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[ab + m * K + k] * b[bb + n * K + k];
        if (o.bias) s += o.bias[n];
        s = act(s);
        const i = (z * M + m) * N + n;
        if (o.residual) s += o.residual[i];
        out[i] = s;
      }
    }
  }
  return out;
}
