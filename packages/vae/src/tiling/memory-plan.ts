// Activation memory of one encoder/decoder pass, estimated from the config before anything runs, so
// that the tiling decision is made up front. Each estimator replays the allocation order of the
// forward code (vae.ts, vae-blocks.ts, vae-tiny.ts and the nn blocks they call): which
// tensors are alive together, each rounded to the buffer pool's size class. Kernel-internal scratch
// (GroupNorm statistics, attention row state) is a few KiB and ignored.
import { sizeClass } from '@ssd/tensor';
import type { AutoencoderKLSpec, AutoencoderTinySpec } from '../config.js';

export interface ActivationEstimate {
  /** Highest sum of live activation bytes during the pass (weights excluded), pool-rounded. */
  readonly peakBytes: number;
  /** The largest single activation tensor: it must fit one storage binding. */
  readonly largestTensorBytes: number;
}

/** Live-set bookkeeping in the order the forward code allocates and frees. */
class Tracker {
  private live = 0;
  peak = 0;
  largest = 0;
  constructor(private readonly bytesPerElem: number) {}

  alloc(elems: number): number {
    const bytes = elems * this.bytesPerElem;
    this.largest = Math.max(this.largest, bytes);
    const b = sizeClass(bytes);
    this.live += b;
    this.peak = Math.max(this.peak, this.live);
    return b;
  }

  free(b: number): void {
    this.live -= b;
  }

  get result(): ActivationEstimate {
    return { peakBytes: this.peak, largestTensorBytes: this.largest };
  }
}

/** nn.ResnetBlock2D.forward on a live input of `cin` channels over `px` pixels → its output. */
function resnet(t: Tracker, cin: number, cout: number, px: number): number {
  const h0 = t.alloc(cin * px); // norm1 + SiLU
  const h1 = t.alloc(cout * px); // conv1
  t.free(h0);
  const h2 = t.alloc(cout * px); // norm2 + SiLU
  t.free(h1);
  const skip = cin !== cout ? t.alloc(cout * px) : 0; // conv_shortcut
  const out = t.alloc(cout * px); // conv2 + residual
  t.free(h2);
  t.free(skip);
  return out;
}

/** VaeAttentionBlock.forward on a live input → its output (one head; flash attention, no N×N). */
function attentionBlock(t: Tracker, c: number, px: number): number {
  const normed = t.alloc(c * px);
  const qkv = t.alloc(3 * c * px);
  const h = t.alloc(c * px);
  t.free(qkv);
  const out = t.alloc(c * px); // to_out.0 + residual
  t.free(h);
  t.free(normed);
  return out;
}

/** Replaces the live tensor `x` by `next(x)`: the `scope.then` step of the forward code. */
function step(t: Tracker, x: number, next: () => number): number {
  const y = next();
  t.free(x);
  return y;
}

function midBlock(t: Tracker, c: number, px: number, attention: boolean): number {
  let h = resnet(t, c, c, px);
  if (attention) h = step(t, h, () => attentionBlock(t, c, px));
  return step(t, h, () => resnet(t, c, c, px));
}

/**
 * AutoencoderKL decode of a [batch, h, w] latent tile: post_quant_conv, Decoder, and the cast of the
 * image to f32 when the model runs in f16. The input tile itself is counted.
 */
export function estimateKLDecode(spec: AutoencoderKLSpec, batch: number, h: number, w: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const rev = [...spec.blockOutChannels].reverse();
  let px = batch * h * w;
  t.alloc(spec.latentChannels * px); // the uploaded tile, alive for the whole pass
  if (spec.usePostQuantConv) t.alloc(spec.latentChannels * px); // post_quant_conv, the decoder's input
  let x = t.alloc(rev[0] * px); // conv_in
  x = step(t, x, () => midBlock(t, rev[0], px, spec.midBlockAttention));
  rev.forEach((cout, i) => {
    const cin = i === 0 ? rev[0] : rev[i - 1];
    for (let j = 0; j <= spec.layersPerBlock; j++) x = step(t, x, () => resnet(t, j === 0 ? cin : cout, cout, px));
    if (i < rev.length - 1) {
      x = step(t, x, () => t.alloc(cout * px * 4)); // nearest 2× fused into the conv
      px *= 4;
    }
  });
  const last = rev[rev.length - 1];
  x = step(t, x, () => t.alloc(last * px)); // conv_norm_out + SiLU
  x = step(t, x, () => t.alloc(spec.outChannels * px)); // conv_out
  if (dtypeBytes !== 4) t.alloc((spec.outChannels * px * 4) / dtypeBytes); // cast to f32
  return t.result;
}

/** AutoencoderKL encode of a [batch, H, W] image tile: Encoder and quant_conv. */
export function estimateKLEncode(spec: AutoencoderKLSpec, batch: number, height: number, width: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const boc = spec.blockOutChannels;
  let hh = height;
  let ww = width;
  let x = t.alloc(spec.inChannels * batch * hh * ww); // the uploaded tile
  const input = x;
  x = t.alloc(boc[0] * batch * hh * ww); // conv_in (the input stays alive until the pass ends)
  boc.forEach((cout, i) => {
    const cin = i === 0 ? boc[0] : boc[i - 1];
    const px = batch * hh * ww;
    for (let j = 0; j < spec.layersPerBlock; j++) x = step(t, x, () => resnet(t, j === 0 ? cin : cout, cout, px));
    if (i < boc.length - 1) {
      hh = Math.floor(hh / 2);
      ww = Math.floor(ww / 2);
      x = step(t, x, () => t.alloc(cout * batch * hh * ww));
    }
  });
  const top = boc[boc.length - 1];
  const px = batch * hh * ww;
  x = step(t, x, () => midBlock(t, top, px, spec.midBlockAttention));
  x = step(t, x, () => t.alloc(top * px)); // conv_norm_out + SiLU
  x = step(t, x, () => t.alloc(2 * spec.latentChannels * px)); // conv_out
  if (spec.useQuantConv) x = step(t, x, () => t.alloc(2 * spec.latentChannels * px));
  t.free(input);
  return t.result;
}

/** AutoencoderTinyBlock on a live input: conv, ReLU, conv, ReLU, conv + skip, ReLU (separate passes). */
function tinyBlock(t: Tracker, c: number, px: number): number {
  let h = t.alloc(c * px);
  for (let k = 0; k < 5; k++) h = step(t, h, () => t.alloc(c * px));
  return h;
}

/** AutoencoderTiny decode of a [batch, h, w] latent tile (DecoderTiny, then the f32 cast). */
export function estimateTinyDecode(spec: AutoencoderTinySpec, batch: number, h: number, w: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const ch = spec.decoderBlockOutChannels;
  let px = batch * h * w;
  t.alloc(spec.latentChannels * px); // the uploaded tile, alive for the whole pass
  let x = t.alloc(ch[0] * px); // conv
  x = step(t, x, () => t.alloc(ch[0] * px)); // ReLU
  spec.numDecoderBlocks.forEach((n, i) => {
    for (let j = 0; j < n; j++) x = step(t, x, () => tinyBlock(t, ch[i], px));
    const last = i === spec.numDecoderBlocks.length - 1;
    if (!last) {
      x = step(t, x, () => t.alloc(ch[i] * px * 4)); // nearest 2× fused into the conv
      px *= 4;
    } else x = step(t, x, () => t.alloc(spec.outChannels * px));
  });
  t.alloc((spec.outChannels * px * 4) / dtypeBytes); // x·2 − 1, stored as f32
  return t.result;
}

/** AutoencoderTiny encode of a [batch, H, W] image tile (EncoderTiny). */
export function estimateTinyEncode(spec: AutoencoderTinySpec, batch: number, height: number, width: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const ch = spec.encoderBlockOutChannels;
  let hh = height;
  let ww = width;
  let x = t.alloc(spec.inChannels * batch * hh * ww);
  spec.numEncoderBlocks.forEach((n, i) => {
    if (i > 0) {
      hh = Math.ceil(hh / 2); // conv 3×3 stride 2 padding 1
      ww = Math.ceil(ww / 2);
    }
    x = step(t, x, () => t.alloc(ch[i] * batch * hh * ww));
    for (let j = 0; j < n; j++) x = step(t, x, () => tinyBlock(t, ch[i], batch * hh * ww));
  });
  x = step(t, x, () => t.alloc(spec.latentChannels * batch * hh * ww));
  return t.result;
}

/**
 * The latent-resolution stage of an exact tiled decode, run whole: post_quant_conv, conv_in,
 * mid_block (global attention) and the first up block's resnets.
 */
export function estimateKLDecodeLatentStage(spec: AutoencoderKLSpec, h: number, w: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const c0 = spec.blockOutChannels[spec.blockOutChannels.length - 1];
  const px = h * w;
  t.alloc(spec.latentChannels * px);
  if (spec.usePostQuantConv) t.alloc(spec.latentChannels * px);
  let x = t.alloc(c0 * px);
  x = step(t, x, () => midBlock(t, c0, px, spec.midBlockAttention));
  for (let j = 0; j <= spec.layersPerBlock; j++) x = step(t, x, () => resnet(t, c0, c0, px));
  return t.result;
}

/**
 * The latent-resolution stage of an exact tiled encode, run whole: the last down block's resnets,
 * mid_block, conv_norm_out + SiLU, conv_out and quant_conv.
 */
export function estimateKLEncodeLatentStage(spec: AutoencoderKLSpec, h: number, w: number, dtypeBytes: number): ActivationEstimate {
  const t = new Tracker(dtypeBytes);
  const boc = spec.blockOutChannels;
  const top = boc[boc.length - 1];
  const cin = boc.length > 1 ? boc[boc.length - 2] : boc[0];
  const px = h * w;
  let x = t.alloc(cin * px); // the uploaded map
  for (let j = 0; j < spec.layersPerBlock; j++) x = step(t, x, () => resnet(t, j === 0 ? cin : top, top, px));
  x = step(t, x, () => midBlock(t, top, px, spec.midBlockAttention));
  x = step(t, x, () => t.alloc(top * px));
  x = step(t, x, () => t.alloc(2 * spec.latentChannels * px));
  if (spec.useQuantConv) step(t, x, () => t.alloc(2 * spec.latentChannels * px));
  return t.result;
}
