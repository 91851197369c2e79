// The VAE's blocks from diffusers models/unets/unet_2d_blocks.py — UNetMidBlock2D (resnet, attention,
// resnet; temb None), DownEncoderBlock2D and UpDecoderBlock2D — plus the mid-block's Attention with
// its group_norm and residual (attention_processor.py, AttnProcessor2_0 with `group_norm`,
// residual_connection=True, one head of the full width). NHWC; each forward frees what it consumed
// (a TensorScope, each intermediate as soon as the next op has read it) except its input, which the
// caller owns.
import { withScopeSync, type Tensor, type WeightStore } from '@ssd/tensor';
import { Attention, Downsample2D, GroupNorm, ResnetBlock2D, Upsample2D, type ConvAlgorithm } from '@ssd/kernels';

/** Called with a stage's output (e.g. "up_blocks.2.resnets.1"); used to localise non-finite values. */
export type Probe = (stage: string, t: Tensor) => void;

export interface VaeBlockConfig {
  groups: number;
  eps: number;
  /** The 3×3 stride-1 convs' algorithm (nn.Conv2d's): 'auto' takes the adapter's table. */
  convAlgorithm: ConvAlgorithm | 'auto';
}


/**
 * diffusers Attention as the VAE builds it: GroupNorm → tokens [B, HW, C] → to_q/to_k/to_v (bias) →
 * one head of width C, scale 1/√C → to_out.0 → + residual. Legacy weight names
 * (query/key/value/proj_attn) and 1×1-conv shapes are accepted by nn.Attention.
 */
export class VaeAttentionBlock {
  readonly group_norm: GroupNorm;
  readonly attention: Attention;

  constructor(store: WeightStore, prefix: string, readonly channels: number, cfg: VaeBlockConfig) {
    this.group_norm = new GroupNorm(store, `${prefix}.group_norm`, cfg.groups, channels, cfg.eps);
    this.attention = new Attention(store, prefix, { queryDim: channels, heads: 1, dimHead: channels, bias: true });
  }

  forward(x: Tensor): Tensor {
    const [b, h, w, c] = x.shape;
    return withScopeSync((s) => {
      const tokens = s.then(s.track(this.group_norm.forward(x)), (n) => n.reshape([b, h * w, c]));
      const residual = s.track(x.reshape([b, h * w, c])); // a view: frees nothing
      const out = s.then(tokens, (t) => this.attention.forward(t, undefined, { residual }));
      return s.keep(s.then(out, (o) => o.reshape([b, h, w, c])));
    });
  }
}

/** UNetMidBlock2D with temb_channels=None: resnets.0 → attentions.0 (optional) → resnets.1. */
export class UNetMidBlock2D {
  readonly resnets: [ResnetBlock2D, ResnetBlock2D];
  readonly attentions: VaeAttentionBlock[];

  constructor(store: WeightStore, prefix: string, channels: number, cfg: VaeBlockConfig & { attention: boolean }) {
    const rc = { inChannels: channels, outChannels: channels, tembChannels: null, groups: cfg.groups, eps: cfg.eps, convAlgorithm: cfg.convAlgorithm };
    this.resnets = [new ResnetBlock2D(store, `${prefix}.resnets.0`, rc), new ResnetBlock2D(store, `${prefix}.resnets.1`, rc)];
    this.attentions = cfg.attention ? [new VaeAttentionBlock(store, `${prefix}.attentions.0`, channels, cfg)] : [];
  }

  forward(x: Tensor, probe?: Probe, name = 'mid_block'): Tensor {
    return withScopeSync((s) => {
      let h = s.track(this.resnets[0].forward(x, null));
      probe?.(`${name}.resnets.0`, h);
      for (const [i, attn] of this.attentions.entries()) {
        h = s.then(h, (t) => attn.forward(t));
        probe?.(`${name}.attentions.${i}`, h);
      }
      h = s.then(h, (t) => this.resnets[1].forward(t, null));
      probe?.(`${name}.resnets.1`, h);
      return s.keep(h);
    });
  }
}

/** DownEncoderBlock2D: `layers` resnets, then (not in the last block) F.pad(0,1,0,1) + conv 3×3 stride 2. */
export class DownEncoderBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly downsamplers: Downsample2D[];

  constructor(store: WeightStore, prefix: string, cin: number, cout: number, layers: number, addDownsample: boolean, cfg: VaeBlockConfig) {
    this.resnets = Array.from({ length: layers }, (_, j) =>
      new ResnetBlock2D(store, `${prefix}.resnets.${j}`, { inChannels: j === 0 ? cin : cout, outChannels: cout, tembChannels: null, groups: cfg.groups, eps: cfg.eps, convAlgorithm: cfg.convAlgorithm }),
    );
    // diffusers Downsample2D(padding=0): F.pad(x, (0, 1, 0, 1)) then conv stride 2, padding 0 — the
    // asymmetric [top, left, bottom, right] = [0, 0, 1, 1] padding of the conv itself
    this.downsamplers = addDownsample ? [new Downsample2D(store, `${prefix}.downsamplers.0`, cout, [0, 0, 1, 1])] : [];
  }

  forward(x: Tensor, probe?: Probe, name = 'down_block'): Tensor {
    return withScopeSync((s) => {
      let h = x;
      for (const [j, r] of this.resnets.entries()) {
        const next = s.track(r.forward(h, null));
        if (s.owns(h)) s.drop(h); // not x: the caller's
        h = next;
        probe?.(`${name}.resnets.${j}`, h);
      }
      for (const d of this.downsamplers) {
        const next = s.track(d.forward(h));
        if (s.owns(h)) s.drop(h);
        h = next;
        probe?.(`${name}.downsamplers.0`, h);
      }
      return s.owns(h) ? s.keep(h) : h;
    });
  }
}

/** UpDecoderBlock2D: `layers` resnets (layers_per_block + 1), then (not in the last block) nearest 2× + conv. */
export class UpDecoderBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly upsamplers: Upsample2D[];

  constructor(store: WeightStore, prefix: string, cin: number, cout: number, layers: number, addUpsample: boolean, cfg: VaeBlockConfig) {
    this.resnets = Array.from({ length: layers }, (_, j) =>
      new ResnetBlock2D(store, `${prefix}.resnets.${j}`, { inChannels: j === 0 ? cin : cout, outChannels: cout, tembChannels: null, groups: cfg.groups, eps: cfg.eps, convAlgorithm: cfg.convAlgorithm }),
    );
    this.upsamplers = addUpsample ? [new Upsample2D(store, `${prefix}.upsamplers.0`, cout, cfg.convAlgorithm)] : [];
  }

  /** The block; `resnetsOnly` stops before the upsampler (the latent stage of an exact tiled decode). */
  forward(x: Tensor, probe?: Probe, name = 'up_block', resnetsOnly = false): Tensor {
    return withScopeSync((s) => {
      let h = x;
      for (const [j, r] of this.resnets.entries()) {
        const next = s.track(r.forward(h, null));
        if (s.owns(h)) s.drop(h); // not x: the caller's
        h = next;
        probe?.(`${name}.resnets.${j}`, h);
      }
      for (const u of resnetsOnly ? [] : this.upsamplers) {
        const next = s.track(u.forward(h));
        if (s.owns(h)) s.drop(h);
        h = next;
        probe?.(`${name}.upsamplers.0`, h);
      }
      return s.owns(h) ? s.keep(h) : h;
    });
  }
}
