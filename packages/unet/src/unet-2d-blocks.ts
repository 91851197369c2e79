// The UNet's down, mid and up blocks (diffusers models/unets/unet_2d_blocks.py): DownBlock2D,
// CrossAttnDownBlock2D, UNetMidBlock2D (one resnet: diffusers' get_mid_block builds it with
// num_layers=0, as SSD-1B and Vega use it), UNetMidBlock2DCrossAttn, UpBlock2D and CrossAttnUpBlock2D,
// each chosen from the config's block-type string by one switch per family (getDownBlock, getMidBlock,
// getUpBlock), as diffusers' get_down_block / get_mid_block / get_up_block.
//
// Ownership: a block's forward never disposes its input; it returns new tensors. Down blocks push
// every output they produce onto the skip stack (which owns them); up blocks pop and dispose them.
// Within a forward, a TensorScope frees each intermediate as soon as the next op has read it.
import { ConfigError, withScopeSync, type Tensor, type TensorScope, type WeightStore } from '@ssd/tensor';
import { concatChannels, Downsample2D, ResnetBlock2D, Upsample2D } from '@ssd/kernels';
import { DOWN_BLOCK_TYPES, MID_BLOCK_TYPES, UP_BLOCK_TYPES, type DownBlockSpec, type MidBlockSpec, type UNetSpec, type UpBlockSpec } from './config.js';
import { Transformer2DModel } from './transformer-2d.js';

// The resnets' and upsamplers' 3×3 convs take the adapter's algorithm (Winograd on CPU adapters): its
// scratch (≤ twice a conv's larger operand, or 32 MiB) stays inside memory.ts's six largest activations per
// block. Their checkpoint keys are CONV_KEY's, so plans made from file headers (weight-bytes.ts) find them.
const CONV = 'auto' as const;
export const CONV_ALGORITHM_BY_KEY: readonly (readonly [RegExp, typeof CONV])[] = [[/(^|\.)(resnets\.\d+\.conv[12]|upsamplers\.0\.conv)\.weight$/, CONV]];

export type DownBlock = DownBlock2D | CrossAttnDownBlock2D;
export type MidBlock = UNetMidBlock2D | UNetMidBlock2DCrossAttn;
export type UpBlock = UpBlock2D | CrossAttnUpBlock2D;

/** diffusers get_down_block: the class named by down_block_types[i]. */
export function getDownBlock(store: WeightStore, prefix: string, spec: DownBlockSpec, unet: UNetSpec): DownBlock {
  switch (spec.type) {
    case 'DownBlock2D':
      return new DownBlock2D(store, prefix, spec, unet);
    case 'CrossAttnDownBlock2D':
      return new CrossAttnDownBlock2D(store, prefix, spec, unet);
    default:
      return unknownType('down_block_types', spec.type, DOWN_BLOCK_TYPES);
  }
}

/** diffusers get_mid_block: the class named by mid_block_type. */
export function getMidBlock(store: WeightStore, prefix: string, spec: MidBlockSpec, unet: UNetSpec): MidBlock {
  switch (spec.type) {
    case 'UNetMidBlock2D':
      return new UNetMidBlock2D(store, prefix, spec, unet);
    case 'UNetMidBlock2DCrossAttn':
      return new UNetMidBlock2DCrossAttn(store, prefix, spec, unet);
    default:
      return unknownType('mid_block_type', spec.type, MID_BLOCK_TYPES);
  }
}

/** diffusers get_up_block: the class named by up_block_types[i]. */
export function getUpBlock(store: WeightStore, prefix: string, spec: UpBlockSpec, unet: UNetSpec): UpBlock {
  switch (spec.type) {
    case 'UpBlock2D':
      return new UpBlock2D(store, prefix, spec, unet);
    case 'CrossAttnUpBlock2D':
      return new CrossAttnUpBlock2D(store, prefix, spec, unet);
    default:
      return unknownType('up_block_types', spec.type, UP_BLOCK_TYPES);
  }
}

/** The default of an exhaustive switch: a spec built by hand (parseUNetConfig already refuses these). */
function unknownType(key: string, type: never, supported: readonly string[]): never {
  throw new ConfigError(key, type, `${JSON.stringify(type)} does not exist; supported: ${supported.join(', ')}`, 'unet/config.json');
}

function resnet(store: WeightStore, key: string, inChannels: number, outChannels: number, unet: UNetSpec): ResnetBlock2D {
  return new ResnetBlock2D(store, key, { inChannels, outChannels, tembChannels: unet.timeEmbedDim, groups: unet.normGroups, eps: unet.normEps, convAlgorithm: CONV });
}

function transformer(store: WeightStore, key: string, channels: number, depth: number, spec: { heads: number; crossAttentionDim: number }, unet: UNetSpec): Transformer2DModel {
  return new Transformer2DModel(store, key, { channels, heads: spec.heads, depth, crossAttentionDim: spec.crossAttentionDim, groups: unet.normGroups, useLinearProjection: unet.useLinearProjection });
}

/**
 * The layers of a down or up block, in checkpoint order: resnets.j, then (cross-attention blocks)
 * attentions.j. `resnetIn(j)` is resnet j's input width.
 */
function buildLayers(store: WeightStore, prefix: string, spec: DownBlockSpec | UpBlockSpec, unet: UNetSpec, resnetIn: (j: number) => number, cross: boolean) {
  const resnets: ResnetBlock2D[] = [];
  const attentions: Transformer2DModel[] = [];
  for (let j = 0; j < spec.numLayers; j++) {
    resnets.push(resnet(store, `${prefix}.resnets.${j}`, resnetIn(j), spec.outChannels, unet));
    if (cross) attentions.push(transformer(store, `${prefix}.attentions.${j}`, spec.outChannels, spec.depths[j], spec, unet));
  }
  return { resnets, attentions };
}

/** `r` (owned by `s`), through attentions.j when the block has one (then `r` is freed). */
function layer(s: TensorScope, r: Tensor, attn: Transformer2DModel | undefined, context: Tensor): Tensor {
  return attn ? s.then(r, (t) => attn.forward(t, context)) : r;
}

/** A down block's forward: x is not disposed; each output goes onto `skips`; returns the last. */
function downForward(block: DownBlock, x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[]): Tensor {
  const attentions: readonly Transformer2DModel[] = block instanceof CrossAttnDownBlock2D ? block.attentions : [];
  return withScopeSync((s) => {
    let h = x;
    block.resnets.forEach((r, j) => {
      h = s.keep(layer(s, s.track(r.forward(h, tembAct)), attentions[j], context));
      skips.push(h); // the skip stack owns it now
    });
    for (const d of block.downsamplers) {
      h = d.forward(h);
      skips.push(h);
    }
    return h;
  });
}

export class DownBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly downsamplers: Downsample2D[];

  constructor(store: WeightStore, prefix: string, readonly spec: DownBlockSpec, unet: UNetSpec) {
    ({ resnets: this.resnets } = buildLayers(store, prefix, spec, unet, (j) => (j === 0 ? spec.inChannels : spec.outChannels), false));
    this.downsamplers = spec.addDownsample ? [new Downsample2D(store, `${prefix}.downsamplers.0`, spec.outChannels)] : [];
  }

  /** Runs the block on x (not disposed); pushes each output onto `skips`; returns the last one. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[]): Tensor {
    return downForward(this, x, tembAct, context, skips);
  }
}

export class CrossAttnDownBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];
  readonly downsamplers: Downsample2D[];

  constructor(store: WeightStore, prefix: string, readonly spec: DownBlockSpec, unet: UNetSpec) {
    ({ resnets: this.resnets, attentions: this.attentions } = buildLayers(store, prefix, spec, unet, (j) => (j === 0 ? spec.inChannels : spec.outChannels), true));
    this.downsamplers = spec.addDownsample ? [new Downsample2D(store, `${prefix}.downsamplers.0`, spec.outChannels)] : [];
  }

  /** Runs the block on x (not disposed); pushes each output onto `skips`; returns the last one. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[]): Tensor {
    return downForward(this, x, tembAct, context, skips);
  }
}

/** UNetMidBlock2D as get_mid_block builds it for the UNet (num_layers=0): one resnet. */
export class UNetMidBlock2D {
  readonly resnets: [ResnetBlock2D];

  constructor(store: WeightStore, prefix: string, readonly spec: MidBlockSpec, unet: UNetSpec) {
    this.resnets = [resnet(store, `${prefix}.resnets.0`, spec.channels, spec.channels, unet)];
  }

  /** x is not disposed. */
  forward(x: Tensor, tembAct: Tensor, _context: Tensor): Tensor {
    return this.resnets[0].forward(x, tembAct);
  }
}

/** UNetMidBlock2DCrossAttn (num_layers=1): resnets.0 → attentions.0 → resnets.1. */
export class UNetMidBlock2DCrossAttn {
  readonly resnets: [ResnetBlock2D, ResnetBlock2D];
  readonly attentions: [Transformer2DModel];

  constructor(store: WeightStore, prefix: string, readonly spec: MidBlockSpec, unet: UNetSpec) {
    const r0 = resnet(store, `${prefix}.resnets.0`, spec.channels, spec.channels, unet);
    this.attentions = [transformer(store, `${prefix}.attentions.0`, spec.channels, spec.depth, spec, unet)];
    this.resnets = [r0, resnet(store, `${prefix}.resnets.1`, spec.channels, spec.channels, unet)];
  }

  /** x is not disposed. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor): Tensor {
    return withScopeSync((s) => {
      const h = layer(s, s.track(this.resnets[0].forward(x, tembAct)), this.attentions[0], context);
      return this.resnets[1].forward(h, tembAct); // h is freed once it is recorded
    });
  }
}

/**
 * An up block's forward: x is not disposed; pops numLayers skips (disposing them). `upsampleSize` is
 * the spatial size of the next skip when the latent is not a multiple of the overall down factor
 * (diffusers' forward_upsample_size).
 */
function upForward(block: UpBlock, x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[], upsampleSize?: readonly [number, number]): Tensor {
  const attentions: readonly Transformer2DModel[] = block instanceof CrossAttnUpBlock2D ? block.attentions : [];
  return withScopeSync((s) => {
    let h = x; // the caller's until the first layer replaces it
    block.resnets.forEach((r, j) => {
      const skip = s.track(skips.pop()!); // popped: ours to free
      const cat = s.track(concatChannels(h, skip)); // [current, skip], as torch.cat([hidden_states, res_hidden_states], dim=1)
      if (s.owns(h)) s.drop(h);
      s.drop(skip);
      h = layer(s, s.then(cat, (c) => r.forward(c, tembAct)), attentions[j], context);
    });
    for (const u of block.upsamplers) {
      const next = s.track(u.forward(h, upsampleSize));
      if (s.owns(h)) s.drop(h);
      h = next;
    }
    return s.owns(h) ? s.keep(h) : h;
  });
}

/** Resnet j of an up block reads [current, skip]: its input width. */
function upResnetIn(spec: UpBlockSpec): (j: number) => number {
  return (j) => (j === 0 ? spec.prevOutputChannels : spec.outChannels) + (j === spec.numLayers - 1 ? spec.inChannels : spec.outChannels);
}

export class UpBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly upsamplers: Upsample2D[];

  constructor(store: WeightStore, prefix: string, readonly spec: UpBlockSpec, unet: UNetSpec) {
    ({ resnets: this.resnets } = buildLayers(store, prefix, spec, unet, upResnetIn(spec), false));
    this.upsamplers = spec.addUpsample ? [new Upsample2D(store, `${prefix}.upsamplers.0`, spec.outChannels, CONV)] : [];
  }

  /** See upForward: x is not disposed; pops (and disposes) numLayers skips. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[], upsampleSize?: readonly [number, number]): Tensor {
    return upForward(this, x, tembAct, context, skips, upsampleSize);
  }
}

export class CrossAttnUpBlock2D {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];
  readonly upsamplers: Upsample2D[];

  constructor(store: WeightStore, prefix: string, readonly spec: UpBlockSpec, unet: UNetSpec) {
    ({ resnets: this.resnets, attentions: this.attentions } = buildLayers(store, prefix, spec, unet, upResnetIn(spec), true));
    this.upsamplers = spec.addUpsample ? [new Upsample2D(store, `${prefix}.upsamplers.0`, spec.outChannels, CONV)] : [];
  }

  /** See upForward: x is not disposed; pops (and disposes) numLayers skips. */
  forward(x: Tensor, tembAct: Tensor, context: Tensor, skips: Tensor[], upsampleSize?: readonly [number, number]): Tensor {
    return upForward(this, x, tembAct, context, skips, upsampleSize);
  }
}
