// ResnetBlock2D, Downsample2D and Upsample2D (diffusers models/resnet.py, downsampling.py,
// upsampling.py) in NHWC, shared by the UNet and the VAE. The time embedding is folded into conv1 as
// a per-sample bias and the skip connection into conv2's epilogue, so a resnet is GN+SiLU, conv,
// GN+SiLU, conv — four kernels (plus the shortcut conv when the width changes).
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { add } from '../elementwise.js';
import { upsampleNearest } from '../resize.js';
import type { ConvAlgorithm } from '../conv2d-algorithm.js';
import { Conv2d } from './conv2d.js';
import { Linear } from './linear.js';
import { GroupNorm } from './norm.js';

export interface ResnetConfig {
  inChannels: number;
  outChannels: number;
  /** Width of the time embedding; null for the VAE's resnets (no time_emb_proj). */
  tembChannels: number | null;
  groups: number;
  eps: number;
  /** conv1's and conv2's algorithm (nn.Conv2d's `algorithm`; default direct). */
  convAlgorithm?: ConvAlgorithm | 'auto';
}

export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;

  constructor(store: WeightStore, prefix: string, readonly config: ResnetConfig) {
    const { inChannels: cin, outChannels: cout, groups, eps } = config;
    this.norm1 = new GroupNorm(store, `${prefix}.norm1`, groups, cin, eps);
    this.conv1 = new Conv2d(store, `${prefix}.conv1`, cin, cout, { kernelSize: 3, padding: 1, algorithm: config.convAlgorithm });
    this.time_emb_proj = config.tembChannels === null ? null : new Linear(store, `${prefix}.time_emb_proj`, config.tembChannels, cout);
    this.norm2 = new GroupNorm(store, `${prefix}.norm2`, groups, cout, eps);
    this.conv2 = new Conv2d(store, `${prefix}.conv2`, cout, cout, { kernelSize: 3, padding: 1, algorithm: config.convAlgorithm });
    this.conv_shortcut = cin !== cout ? new Conv2d(store, `${prefix}.conv_shortcut`, cin, cout, { kernelSize: 1 }) : null;
  }

  /**
   * x [B, H, W, Cin] → [B, H, W, Cout]. `tembAct` is SiLU(temb) [B, T], shared by every resnet of a
   * forward (diffusers applies the nonlinearity inside each block; the result is the same).
   */
  forward(x: Tensor, tembAct: Tensor | null): Tensor {
    return withScopeSync((s) => {
      let conv1Bias: Tensor | undefined;
      if (this.time_emb_proj && tembAct) {
        // time_emb_proj(SiLU(temb)) + conv1.bias → a per-sample bias [B, Cout] for conv1
        conv1Bias = s.track(this.time_emb_proj.forward(tembAct));
        const b = this.conv1.bias;
        if (b) conv1Bias = s.then(conv1Bias, (t) => add(t, b));
      }
      const h1 = s.then(s.track(this.norm1.forward(x, { silu: true })), (h0) => this.conv1.forward(h0, { bias: conv1Bias }));
      s.drop(conv1Bias);
      const h2 = s.then(h1, (h) => this.norm2.forward(h, { silu: true }));
      const skip = this.conv_shortcut ? s.track(this.conv_shortcut.forward(x)) : x;
      return this.conv2.forward(h2, { residual: skip }); // h2 and the shortcut are freed once it is recorded
    });
  }
}

/** Conv 3×3, stride 2, padding 1 (the UNet's Downsample2D with use_conv and padding=1). */
export class Downsample2D {
  readonly conv: Conv2d;
  constructor(store: WeightStore, prefix: string, channels: number, padding: number | readonly [number, number, number, number] = 1) {
    this.conv = new Conv2d(store, `${prefix}.conv`, channels, channels, { kernelSize: 3, stride: 2, padding });
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/**
 * Nearest 2× upsampling then conv 3×3 (Upsample2D with use_conv). The exact 2× case is fused into the
 * conv's input gather; an explicit output size (odd latent sizes) takes a separate resize.
 */
export class Upsample2D {
  readonly conv: Conv2d;
  constructor(store: WeightStore, prefix: string, channels: number, algorithm?: ConvAlgorithm | 'auto') {
    this.conv = new Conv2d(store, `${prefix}.conv`, channels, channels, { kernelSize: 3, padding: 1, algorithm });
  }
  forward(x: Tensor, outputSize?: readonly [number, number]): Tensor {
    const [, h, w] = x.shape;
    if (!outputSize || (outputSize[0] === 2 * h && outputSize[1] === 2 * w)) return this.conv.forward(x, { upsample: 2 });
    const up = upsampleNearest(x, outputSize[0], outputSize[1]);
    const y = this.conv.forward(up);
    up.dispose();
    return y;
  }
}
