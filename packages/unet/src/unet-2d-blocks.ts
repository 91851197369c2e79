// The UNet's down, mid and up blocks (diffusers models/unets/unet_2d_blocks.py): DownBlock2D,
// CrossAttnDownBlock2D, UNetMidBlock2D (one resnet when num_layers=0, as in SSD-1B and Vega),
// UNetMidBlock2DCrossAttn, UpBlock2D and CrossAttnUpBlock2D.
//
// Ownership: a block's forward never disposes its input; it returns new tensors. Down blocks push
// every output they produce onto the skip stack (which owns them); up blocks pop and dispose them.
import type { Tensor, WeightStore } from '@ssd/tensor';
import { concatChannels, Downsample2D, ResnetBlock2D, Upsample2D } from '@ssd/kernels';
import type { DownBlockSpec, MidBlockSpec, UNetSpec, UpBlockSpec } from './config.js';
import { Transformer2DModel } from './transformer-2d.js';

export class DownBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly downsampler: Downsample2D | null;

  constructor(store: WeightStore, prefix: string, readonly spec: DownBlockSpec, unet: UNetSpec) {
    for (let j = 0; j < spec.numLayers; j++) {
      const cin = j === 0 ? spec.inChannels : spec.outChannels;
      this.resnets.push(new ResnetBlock2D(store, `${prefix}.resnets.${j}`, { inChannels: cin, outChannels: spec.outChannels, tembChannels: unet.timeEmbedDim, groups: unet.normGroups, eps: unet.normEps }));
      if (spec.type === 'CrossAttnDownBlock2D') {
        this.attentions.push(
          new Transformer2DModel(store, `${prefix}.attentions.${j}`, {
            channels: spec.outChannels,
            heads: spec.heads,
            depth: spec.depths[j],
            crossAttentionDim: spec.crossAttentionDim,
            groups: unet.normGroups,
            useLinearProjection: unet.useLinearProjection,
          }),
        );
      }
    }
    this.downsampler = spec.addDownsample ? new Downsample2D(store, `${prefix}.downsamplers.0`, spec.outChannels) : null;
  }

  /** Runs the block on x (not disposed); pushes each output onto `skips`; returns the last one. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[]): Tensor {
    let h = x;
    this.resnets.forEach((resnet, j) => {
      const r = resnet.forward(h, tembAct);
      const attn = this.attentions[j];
      if (attn) {
        h = attn.forward(r, context);
        r.dispose();
      } else h = r;
      skips.push(h);
    });
    if (this.downsampler) {
      h = this.downsampler.forward(h);
      skips.push(h);
    }
    return h;
  }
}

export class MidBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];

  constructor(store: WeightStore, prefix: string, readonly spec: MidBlockSpec, unet: UNetSpec) {
    const res = (j: number) => new ResnetBlock2D(store, `${prefix}.resnets.${j}`, { inChannels: spec.channels, outChannels: spec.channels, tembChannels: unet.timeEmbedDim, groups: unet.normGroups, eps: unet.normEps });
    this.resnets.push(res(0));
    if (spec.type === 'UNetMidBlock2DCrossAttn') {
      this.attentions.push(
        new Transformer2DModel(store, `${prefix}.attentions.0`, {
          channels: spec.channels,
          heads: spec.heads,
          depth: spec.depth,
          crossAttentionDim: spec.crossAttentionDim,
          groups: unet.normGroups,
          useLinearProjection: unet.useLinearProjection,
        }),
      );
      this.resnets.push(res(1));
    }
  }

  /** x is not disposed. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor): Tensor {
    let h = this.resnets[0].forward(x, tembAct);
    if (this.attentions.length) {
      const a = this.attentions[0].forward(h, context);
      h.dispose();
      h = this.resnets[1].forward(a, tembAct);
      a.dispose();
    }
    return h;
  }
}

export class UpBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly upsampler: Upsample2D | null;

  constructor(store: WeightStore, prefix: string, readonly spec: UpBlockSpec, unet: UNetSpec) {
    for (let j = 0; j < spec.numLayers; j++) {
      const resSkip = j === spec.numLayers - 1 ? spec.inChannels : spec.outChannels;
      const resIn = j === 0 ? spec.prevOutputChannels : spec.outChannels;
      this.resnets.push(new ResnetBlock2D(store, `${prefix}.resnets.${j}`, { inChannels: resIn + resSkip, outChannels: spec.outChannels, tembChannels: unet.timeEmbedDim, groups: unet.normGroups, eps: unet.normEps }));
      if (spec.type === 'CrossAttnUpBlock2D') {
        this.attentions.push(
          new Transformer2DModel(store, `${prefix}.attentions.${j}`, {
            channels: spec.outChannels,
            heads: spec.heads,
            depth: spec.depths[j],
            crossAttentionDim: spec.crossAttentionDim,
            groups: unet.normGroups,
            useLinearProjection: unet.useLinearProjection,
          }),
        );
      }
    }
    this.upsampler = spec.addUpsample ? new Upsample2D(store, `${prefix}.upsamplers.0`, spec.outChannels) : null;
  }

  /**
   * x is not disposed; pops numLayers skips (disposing them). `upsampleSize` is the spatial size of
   * the next skip when the latent is not a multiple of the overall down factor (diffusers'
   * forward_upsample_size).
   */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[], upsampleSize?: readonly [number, number]): Tensor {
    let h = x;
    this.resnets.forEach((resnet, j) => {
      const skip = skips.pop()!;
      const cat = concatChannels(h, skip); // [current, skip], as torch.cat([hidden_states, res_hidden_states], dim=1)
      if (h !== x) h.dispose();
      skip.dispose();
      const r = resnet.forward(cat, tembAct);
      cat.dispose();
      const attn = this.attentions[j];
      if (attn) {
        h = attn.forward(r, context);
        r.dispose();
      } else h = r;
    });
    if (this.upsampler) {
      const u = this.upsampler.forward(h, upsampleSize);
      if (h !== x) h.dispose();
      h = u;
    }
    return h;
  }
}
