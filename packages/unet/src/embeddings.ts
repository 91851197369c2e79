// TimestepEmbedding (linear_1 → SiLU → linear_2), as diffusers models/embeddings.py; the sinusoidal
// projections (Timesteps) are computed on the host by @ssd/kernels' timestepEmbedding.
import type { Tensor, WeightStore } from '@ssd/tensor';
import { Linear } from '@ssd/kernels';

export class TimestepEmbedding {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(store: WeightStore, prefix: string, inChannels: number, timeEmbedDim: number) {
    this.linear1 = new Linear(store, `${prefix}.linear_1`, inChannels, timeEmbedDim);
    this.linear2 = new Linear(store, `${prefix}.linear_2`, timeEmbedDim, timeEmbedDim);
  }

  /** linear_2(SiLU(linear_1(x))) (+ residual, folded into linear_2's epilogue). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    const h = this.linear1.forward(x, { activation: 'silu' });
    const y = this.linear2.forward(h, { residual });
    h.dispose();
    return y;
  }
}
