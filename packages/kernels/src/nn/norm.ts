// nn.GroupNorm (NHWC, optional fused SiLU) and nn.LayerNorm, affine, with their eps.
import type { Tensor, WeightStore } from '@ssd/tensor';
import { groupNorm } from '../group-norm.js';
import { layerNorm } from '../layer-norm.js';

export class GroupNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly groups: number,
    readonly channels: number,
    readonly eps: number,
  ) {
    this.weight = store.take(`${prefix}.weight`, [channels]);
    this.bias = store.take(`${prefix}.bias`, [channels]);
  }

  forward(x: Tensor, opts: { silu?: boolean } = {}): Tensor {
    return groupNorm(x, this.weight, this.bias, { groups: this.groups, eps: this.eps, silu: opts.silu });
  }
}

export class LayerNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly channels: number,
    readonly eps: number,
  ) {
    this.weight = store.take(`${prefix}.weight`, [channels]);
    this.bias = store.take(`${prefix}.bias`, [channels]);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, { eps: this.eps });
  }
}
