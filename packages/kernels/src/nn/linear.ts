// nn.Linear with PyTorch's weight layout [out, in]; y = act(x·Wᵀ + b) (+ residual), in one kernel
// (plus the low-rank terms of any LoRA adapters on `lora`). A quantized checkpoint entry stays
// quantized (a QuantizedWeight, dequantized inside the GEMM).
import type { QuantizedWeight, Tensor, WeightStore } from '@ssd/tensor';
import type { Activation } from '../shader.js';
import { LoraWeight } from './lora-weight.js';

export class Linear {
  readonly weight: Tensor | QuantizedWeight;
  readonly bias: Tensor | null;
  /** LoRA adapters on this layer (module path = prefix). */
  readonly lora: LoraWeight;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    // a 1×1 conv stores the same matrix as [out, in, 1, 1] (proj_in/out without linear projection, legacy VAE attention)
    this.weight = store.take(`${prefix}.weight`, [outFeatures, inFeatures], { alternateShapes: [[outFeatures, inFeatures, 1, 1]], allowQuantized: true });
    this.bias = opts.bias === false ? null : store.take(`${prefix}.bias`, [outFeatures]);
    this.lora = new LoraWeight(this.weight, 'linear', [{ path: prefix, rowOffset: 0, rows: outFeatures }], null, store.dtype);
  }

  forward(x: Tensor, opts: { activation?: Activation; residual?: Tensor } = {}): Tensor {
    return this.lora.linear(x, { bias: this.bias ?? undefined, activation: opts.activation, residual: opts.residual });
  }
}
