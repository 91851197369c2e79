// Encoder and Decoder of the KL autoencoder (diffusers models/autoencoders/vae.py), NHWC. Built from
// the parsed config; every stage reports its output to an optional probe, which is how a non-finite
// output is traced back to the stage that produced it.
import { withScopeSync, type Tensor, type TensorScope, type WeightStore } from '@ssd/tensor';
import { Conv2d, GroupNorm, type ConvAlgorithm } from '@ssd/kernels';
import type { AutoencoderKLSpec } from './config.js';
import { DownEncoderBlock2D, UNetMidBlock2D, UpDecoderBlock2D, type Probe } from './vae-blocks.js';

/** diffusers Encoder(double_z=True): conv_in → down_blocks → mid_block → GN+SiLU → conv_out (2·latent). */
export class Encoder {
  readonly conv_in: Conv2d;
  readonly down_blocks: DownEncoderBlock2D[];
  readonly mid_block: UNetMidBlock2D;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  /** `convAlgorithm`: the 3×3 stride-1 convs' (nn.Conv2d's `algorithm`; the downsamplers stay direct). */
  constructor(store: WeightStore, prefix: string, spec: AutoencoderKLSpec, convAlgorithm: ConvAlgorithm | 'auto' = 'direct') {
    const boc = spec.blockOutChannels;
    const cfg = { groups: spec.normGroups, eps: spec.normEps, convAlgorithm };
    this.conv_in = new Conv2d(store, `${prefix}.conv_in`, spec.inChannels, boc[0], { kernelSize: 3, padding: 1, algorithm: convAlgorithm });
    this.down_blocks = boc.map((cout, i) => {
      const cin = i === 0 ? boc[0] : boc[i - 1];
      return new DownEncoderBlock2D(store, `${prefix}.down_blocks.${i}`, cin, cout, spec.layersPerBlock, i < boc.length - 1, cfg);
    });
    const top = boc[boc.length - 1];
    this.mid_block = new UNetMidBlock2D(store, `${prefix}.mid_block`, top, { ...cfg, attention: spec.midBlockAttention });
    this.conv_norm_out = new GroupNorm(store, `${prefix}.conv_norm_out`, spec.normGroups, top, spec.normEps);
    this.conv_out = new Conv2d(store, `${prefix}.conv_out`, top, 2 * spec.latentChannels, { kernelSize: 3, padding: 1, algorithm: convAlgorithm });
  }

  /** The last down block's resnets, mid_block, norm and conv_out: everything at latent resolution. Keeps `x`. */
  forwardLatentStage(x: Tensor, probe?: Probe): Tensor {
    const last = this.down_blocks.length - 1;
    return withScopeSync((s) => s.keep(this.forwardTail(s, s.track(this.down_blocks[last].forward(x, probe, `down_blocks.${last}`)), probe)));
  }

  /** image [B, H, W, in_channels] → moments before quant_conv [B, H/f, W/f, 2·latent]. Keeps `x`. */
  forward(x: Tensor, probe?: Probe): Tensor {
    return withScopeSync((s) => {
      let h = s.track(this.conv_in.forward(x));
      probe?.('conv_in', h);
      for (const [i, block] of this.down_blocks.entries()) h = s.then(h, (t) => block.forward(t, probe, `down_blocks.${i}`));
      return s.keep(this.forwardTail(s, h, probe));
    });
  }

  /** mid_block → GN+SiLU → conv_out on `h` (owned by `s`, freed), each output owned by `s`. */
  private forwardTail(s: TensorScope, h: Tensor, probe?: Probe): Tensor {
    h = s.then(h, (t) => this.mid_block.forward(t, probe));
    h = s.then(h, (t) => this.conv_norm_out.forward(t, { silu: true }));
    probe?.('conv_norm_out', h);
    h = s.then(h, (t) => this.conv_out.forward(t));
    probe?.('conv_out', h);
    return h;
  }
}

/** diffusers Decoder(norm_type="group"): conv_in → mid_block → up_blocks → GN+SiLU → conv_out. */
export class Decoder {
  readonly conv_in: Conv2d;
  readonly mid_block: UNetMidBlock2D;
  readonly up_blocks: UpDecoderBlock2D[];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  /** `convAlgorithm`: the 3×3 convs' (nn.Conv2d's `algorithm`), the upsamplers' included. */
  constructor(store: WeightStore, prefix: string, spec: AutoencoderKLSpec, convAlgorithm: ConvAlgorithm | 'auto' = 'direct') {
    const rev = [...spec.blockOutChannels].reverse();
    const cfg = { groups: spec.normGroups, eps: spec.normEps, convAlgorithm };
    this.conv_in = new Conv2d(store, `${prefix}.conv_in`, spec.latentChannels, rev[0], { kernelSize: 3, padding: 1, algorithm: convAlgorithm });
    this.mid_block = new UNetMidBlock2D(store, `${prefix}.mid_block`, rev[0], { ...cfg, attention: spec.midBlockAttention });
    this.up_blocks = rev.map((cout, i) => {
      const cin = i === 0 ? rev[0] : rev[i - 1];
      return new UpDecoderBlock2D(store, `${prefix}.up_blocks.${i}`, cin, cout, spec.layersPerBlock + 1, i < rev.length - 1, cfg);
    });
    const last = rev[rev.length - 1];
    this.conv_norm_out = new GroupNorm(store, `${prefix}.conv_norm_out`, spec.normGroups, last, spec.normEps);
    this.conv_out = new Conv2d(store, `${prefix}.conv_out`, last, spec.outChannels, { kernelSize: 3, padding: 1, algorithm: convAlgorithm });
  }

  /** z [B, h, w, latent] (after post_quant_conv) → image [B, h·f, w·f, out_channels]. Keeps `z`. */
  forward(z: Tensor, probe?: Probe): Tensor {
    return withScopeSync((s) => {
      let h = s.track(this.conv_in.forward(z));
      probe?.('conv_in', h);
      h = s.then(h, (t) => this.mid_block.forward(t, probe));
      for (const [i, block] of this.up_blocks.entries()) h = s.then(h, (t) => block.forward(t, probe, `up_blocks.${i}`));
      h = s.then(h, (t) => this.conv_norm_out.forward(t, { silu: true }));
      probe?.('conv_norm_out', h);
      h = s.then(h, (t) => this.conv_out.forward(t));
      probe?.('conv_out', h);
      return s.keep(h);
    });
  }

  /** conv_in, mid_block and up_blocks.0's resnets: everything at latent resolution. Keeps `z`. */
  forwardLatentStage(z: Tensor, probe?: Probe): Tensor {
    return withScopeSync((s) => {
      let h = s.track(this.conv_in.forward(z));
      probe?.('conv_in', h);
      h = s.then(h, (t) => this.mid_block.forward(t, probe));
      return s.keep(s.then(h, (t) => this.up_blocks[0].forward(t, probe, 'up_blocks.0', true)));
    });
  }
}
