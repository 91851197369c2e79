// nn.Linear with PyTorch's weight layout [out, in]; y = act(x·Wᵀ + b) (+ residual), in one kernel.
import type { Tensor, WeightStore } from '@ssd/tensor';
import { linear } from '../matmul.js';
import type { Activation } from '../shader.js';

export class Linear {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    // a 1×1 conv stores the same matrix as [out, in, 1, 1] (proj_in/out without linear projection, legacy VAE attention)
    this.weight = store.take(`${prefix}.weight`, [outFeatures, inFeatures], { alternateShapes: [[outFeatures, inFeatures, 1, 1]] });
    this.bias = opts.bias === false ? null : store.take(`${prefix}.bias`, [outFeatures]);
  }

  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    return linear(x, this.weight, { bias: this.bias ?? undefined, activation: opts.activation, residual: opts.residual });
  }
}
