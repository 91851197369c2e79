// nn.Conv2d for NHWC activations. The PyTorch OIHW weight is re-laid once, at load, into the layout its
// algorithm reads — OHWI for the direct implicit GEMM (conv2dWeightFromOIHW), or the Winograd transform
// [T, Cout, Cin] (winogradWeightFromOIHW); the file's shape is still validated as OIHW. Only the chosen
// layout is kept. `algorithm: 'auto'` takes chooseConvAlgorithm's pick for the adapter, dtype and
// channels; the default is direct, because Winograd needs scratch (up to 2× the larger of the conv's
// input and output, or 32 MiB; see conv2d-winograd.ts) that a model's memory plan must count before it opts in.
// LoRA adapters (LoCon: a k×k down conv and a 1×1 up conv) run through `lora`. A quantized entry stays
// as stored (OIHW rows of blocks, which only the direct kernels read: conv2d walks K in that order).
import type { QuantizedWeight, Tensor, WeightStore } from '@ssd/tensor';
import { chooseConvAlgorithm, winogradTileOf, type ConvAlgorithm } from '../conv2d-algorithm.js';
import { conv2dWeightFromOIHW, conv2dWeightShape, type Conv2dOptions } from '../conv2d.js';
import type { Activation } from '../shader.js';
import { winogradWeightFromOIHW, winogradWeightShape } from '../winograd-weights.js';
import { LoraWeight } from './lora-weight.js';

export interface Conv2dConfig {
  kernelSize: number;
  stride?: 1 | 2;
  /** Symmetric padding, or [top, left, bottom, right]. */
  padding?: number | readonly [number, number, number, number];
  bias?: boolean;
  /**
   * 'auto': the adapter's choice (chooseConvAlgorithm); or one algorithm (tests, bench) — where Winograd
   * does not apply (not 3×3 stride 1) the layer runs direct. Default 'direct'.
   */
  algorithm?: ConvAlgorithm | 'auto';
}

export class Conv2d {
  /** OHWI [Cout, KH, KW, Cin] (direct), [T, Cout, Cin] (Winograd), or the file's OIHW blocks (quantized). */
  readonly weight: Tensor | QuantizedWeight;
  readonly bias: Tensor | null;
  /** LoRA adapters on this layer (module path = prefix). */
  readonly lora: LoraWeight;
  readonly algorithm: ConvAlgorithm;

  constructor(
    store: WeightStore,
    readonly prefix: string,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly config: Conv2dConfig,
  ) {
    const k = config.kernelSize;
    const oihw = [outChannels, inChannels, k, k];
    const dtype = store.dtype === 'f16' ? 'f16' : 'f32';
    const want = config.algorithm ?? 'direct';
    const quantized = !!store.info(`${prefix}.weight`)?.quantized;
    this.algorithm = quantized ? 'direct' : chooseConvAlgorithm(store.ctx, { dtype, inChannels, outChannels, kernelSize: k, stride: config.stride ?? 1 }, want === 'auto' ? undefined : want);
    const tile = winogradTileOf(this.algorithm);
    this.weight =
      tile === null
        ? store.take(`${prefix}.weight`, conv2dWeightShape(oihw), { fileShape: oihw, transform: (data, shape) => conv2dWeightFromOIHW(data as Float32Array | Uint16Array, shape).data, allowQuantized: true })
        : store.take(`${prefix}.weight`, winogradWeightShape(oihw, tile), { fileShape: oihw, transform: (data, shape) => winogradWeightFromOIHW(data as Float32Array | Uint16Array, shape, tile).data });
    this.bias = config.bias === false ? null : store.take(`${prefix}.bias`, [outChannels]);
    this.lora = new LoraWeight(this.weight, 'conv2d', [{ path: prefix, rowOffset: 0, rows: outChannels }], tile, store.dtype);
  }

  /**
   * x [B, H, W, Cin] → [B, Ho, Wo, Cout]. `bias` overrides the layer's own (a per-sample [B, Cout]
   * bias with the time embedding folded in); `upsample: 2` reads the input nearest-upsampled 2×.
   */
  forward(x: Tensor, opts: { bias?: Tensor; residual?: Tensor; activation?: Activation; upsample?: 1 | 2 } = {}): Tensor {
    const o: Conv2dOptions = {
      bias: opts.bias ?? this.bias ?? undefined,
      stride: this.config.stride ?? 1,
      padding: this.config.padding ?? 0,
      residual: opts.residual,
      activation: opts.activation,
      upsample: opts.upsample,
    };
    return this.lora.conv2d(x, o);
  }
}
