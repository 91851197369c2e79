// TimestepEmbedding (linear_1 → SiLU → linear_2), as diffusers models/embeddings.py; the sinusoidal
// projections (Timesteps) are computed on the host by @ssd/kernels' timestepEmbedding.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { Linear } from '@ssd/kernels';

export class TimestepEmbedding {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  constructor(store: WeightStore, prefix: string, inChannels: number, timeEmbedDim: number) {
    this.linear_1 = new Linear(store, `${prefix}.linear_1`, inChannels, timeEmbedDim);
    this.linear_2 = new Linear(store, `${prefix}.linear_2`, timeEmbedDim, timeEmbedDim);
  }

  /** linear_2(SiLU(linear_1(x))) (+ residual, folded into linear_2's epilogue). */
  forward(x: Tensor, residual?: Tensor): Tensor {
    return withScopeSync((s) => this.linear_2.forward(s.track(this.linear_1.forward(x, { activation: 'silu' })), { residual }));
  }
}
