// diffusers FeedForward with GEGLU (attention.py): net.0.proj Linear(C → 2·inner), a·gelu(g), then
// net.2 Linear(inner → C) with the block's residual folded into its epilogue.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { geglu } from '../elementwise.js';
import { Linear } from './linear.js';

export class FeedForward {
  readonly proj: Linear;
  readonly out: Linear;

  constructor(store: WeightStore, prefix: string, dim: number, mult = 4) {
    const inner = dim * mult;
    this.proj = new Linear(store, `${prefix}.net.0.proj`, dim, inner * 2);
    this.out = new Linear(store, `${prefix}.net.2`, inner, dim);
  }

  forward(x: Tensor, residual?: Tensor): Tensor {
    return withScopeSync((s) => {
      const g = s.then(s.track(this.proj.forward(x)), geglu);
      return this.out.forward(g, { residual }); // g is freed once it is recorded
    });
  }
}
