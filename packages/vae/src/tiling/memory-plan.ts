// Activation memory of one encoder/decoder pass, estimated from the config before anything runs, so
// that the tiling decision is made up front. Each estimator replays the allocation order of the
// forward code (vae.ts, vae-blocks.ts, vae-tiny.ts and the nn blocks they call): which
// tensors are alive together, each rounded to the buffer pool's size class. A Winograd 3×3 conv's
// scratch (V and Mt, up to twice its larger operand) is counted through a ConvScratch; other
// kernel-internal scratch (GroupNorm statistics, attention row state) is a few KiB and ignored.
import { sizeClass } from '@ssd/tensor';
import type { AutoencoderKLSpec, AutoencoderTinySpec } from '../config.js';

export interface ActivationEstimate {
  /** Highest sum of live activation bytes during the pass (weights excluded), pool-rounded. */
  readonly peakBytes: number;
  /**
   * The largest single activation tensor: it must fit one storage binding — or, for a pass whose
   * kernels bind windows of larger tensors (PlanInput.windowed), one buffer.
   */
  readonly largestTensorBytes: number;
  /** The largest tensor a kernel binds whole even so (attention's q/k/v and output): it must fit one binding. */
  readonly largestWholeBindingBytes: number;
}

/**
 * Bytes of the scratch tensors a 3×3 stride-1 conv (padding 1) of x [b, h, w, cin] → cout allocates
 * beside its output and frees once recorded — Winograd's V and Mt (kernels' conv2dWinogradScratch) —
 * one entry per tensor; none for a direct conv. `upsample` 2: the Upsample2D conv (nearest 2× fused).
 */
export type ConvScratch = (cin: number, cout: number, b: number, h: number, w: number, upsample?: 1 | 2) => readonly number[];

/** Every conv direct: no scratch. */
export const NO_CONV_SCRATCH: ConvScratch = () => [];

/**
 * [the largest tensor, all of them] in bytes, for one tile of a sweep whose live tensors hold
 * `channels[i]` channels per pixel of a `side`² tile: each as the pool allocates it (size classes, up
 * to 12.5% above the bytes asked for), with `extra` buffers beside them (conv scratch, GroupNorm affine).
 */
export function tileBytes(channels: readonly number[], side: number, dtypeBytes: number, extra: readonly number[] = []): [number, number] {
  const tensors = channels.map((c) => c * side * side * dtypeBytes);
  return [Math.max(...tensors), [...tensors, ...extra].reduce((a, b) => a + sizeClass(b), 0)];
}

/**
 * [largest, all] bytes of one tile of a resnet half swept with global GroupNorm statistics (sweep.ts
 * sweepResnetHalf), decode and encode alike. conv1: x, SiLU(norm1(x)), conv1's output; conv2: h1, x,
 * SiLU(norm2(h1)), the output (and conv_shortcut(x) when the channels change) — plus the GroupNorm's two
 * adjusted affine vectors and the conv's scratch.
 */
export function resnetHalfTileBytes(half: 'conv1' | 'conv2', cin: number, cout: number, side: number, dtypeBytes: number, scratch: ConvScratch): [number, number] {
  const normed = half === 'conv1' ? cin : cout;
  const tensors = half === 'conv1' ? [cin, cin, cout] : [cout, cin, cout, cout, ...(cin !== cout ? [cout] : [])];
  return tileBytes(tensors, side, dtypeBytes, [...scratch(normed, cout, 1, side, side), normed * dtypeBytes, normed * dtypeBytes]);
}

/** Live-set bookkeeping in the order the forward code allocates and frees. */
class Tracker {
  private live = 0;
  peak = 0;
  largest = 0;
  largestWhole = 0;
  constructor(
    private readonly bytesPerElem: number,
    readonly scratch: ConvScratch = NO_CONV_SCRATCH,
  ) {}

  /** `bindsWhole`: some kernel binds the tensor whole (no windows). */
  alloc(elems: number, bindsWhole = false): number {
    const bytes = elems * this.bytesPerElem;
    this.largest = Math.max(this.largest, bytes);
    if (bindsWhole) this.largestWhole = Math.max(this.largestWhole, bytes);
    const b = sizeClass(bytes);
    this.live += b;
    this.peak = Math.max(this.peak, this.live);
    return b;
  }

  free(b: number): void {
    this.live -= b;
  }

  /** A 3×3 conv's output (elements) over x [b, h, w, cin], its scratch alive with it while it records. */
  conv3(outElems: number, cin: number, cout: number, b: number, h: number, w: number, upsample: 1 | 2 = 1): number {
    const out = this.alloc(outElems);
    const held = this.scratch(cin, cout, b, h, w, upsample).map((bytes) => {
      const r = sizeClass(bytes);
      this.live += r;
      return r;
    });
    this.peak = Math.max(this.peak, this.live);
    for (const r of held) this.free(r);
    return out;
  }

  get result(): ActivationEstimate {
    return { peakBytes: this.peak, largestTensorBytes: this.largest, largestWholeBindingBytes: this.largestWhole };
  }
}

/** An image's geometry: batch, height, width. */
interface Geo {
  b: number;
  h: number;
  w: number;
}

const pixels = (g: Geo) => g.b * g.h * g.w;

/** nn.ResnetBlock2D.forward on a live input of `cin` channels → its output. */
function resnet(t: Tracker, cin: number, cout: number, g: Geo): number {
  const px = pixels(g);
  const h0 = t.alloc(cin * px); // norm1 + SiLU
  const h1 = t.conv3(cout * px, cin, cout, g.b, g.h, g.w); // conv1
  t.free(h0);
  const h2 = t.alloc(cout * px); // norm2 + SiLU
  t.free(h1);
  const skip = cin !== cout ? t.alloc(cout * px) : 0; // conv_shortcut
  const out = t.conv3(cout * px, cout, cout, g.b, g.h, g.w); // conv2 + residual
  t.free(h2);
  t.free(skip);
  return out;
}

/** VaeAttentionBlock.forward on a live input → its output (one head; flash attention, no N×N). */
function attentionBlock(t: Tracker, c: number, px: number): number {
  const normed = t.alloc(c * px);
  const qkv = t.alloc(3 * c * px, true); // attention reads q, k and v from it in place
  const h = t.alloc(c * px, true);
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

/**
 * An Up/DownEncoderBlock2D on a live input `x`: its layers in turn, each freeing the one before — but
 * not `x`, the caller's, which stays live until the block returns (then the caller's `step` frees it).
 */
function block(t: Tracker, x: number, layers: readonly (() => number)[]): number {
  let h = x;
  layers.forEach((layer, k) => {
    const y = layer();
    if (k > 0) t.free(h);
    h = y;
  });
  return h;
}

function midBlock(t: Tracker, c: number, g: Geo, attention: boolean): number {
  let h = resnet(t, c, c, g);
  if (attention) h = step(t, h, () => attentionBlock(t, c, pixels(g)));
  return step(t, h, () => resnet(t, c, c, g));
}

/**
 * AutoencoderKL decode of a [batch, h, w] latent tile: post_quant_conv, Decoder, and the cast of the
 * image to f32 when the model runs in f16. The input tile itself is counted.
 */
export function estimateKLDecode(spec: AutoencoderKLSpec, batch: number, h: number, w: number, dtypeBytes: number, scratch: ConvScratch = NO_CONV_SCRATCH): ActivationEstimate {
  const t = new Tracker(dtypeBytes, scratch);
  const rev = [...spec.blockOutChannels].reverse();
  const g: Geo = { b: batch, h, w };
  let px = pixels(g);
  t.alloc(spec.latentChannels * px); // the uploaded tile, alive for the whole pass
  if (spec.usePostQuantConv) t.alloc(spec.latentChannels * px); // post_quant_conv, the decoder's input
  let x = t.conv3(rev[0] * px, spec.latentChannels, rev[0], g.b, g.h, g.w); // conv_in
  x = step(t, x, () => midBlock(t, rev[0], g, spec.midBlockAttention));
  rev.forEach((cout, i) => {
    const cin = i === 0 ? rev[0] : rev[i - 1];
    const layers = Array.from({ length: spec.layersPerBlock + 1 }, (_, j) => () => resnet(t, j === 0 ? cin : cout, cout, g));
    if (i < rev.length - 1) {
      layers.push(() => {
        const up = t.conv3(cout * px * 4, cout, cout, g.b, g.h, g.w, 2); // nearest 2× fused into the conv
        g.h *= 2;
        g.w *= 2;
        px = pixels(g);
        return up;
      });
    }
    x = step(t, x, () => block(t, x, layers));
  });
  const last = rev[rev.length - 1];
  x = step(t, x, () => t.alloc(last * px)); // conv_norm_out + SiLU
  x = step(t, x, () => t.conv3(spec.outChannels * px, last, spec.outChannels, g.b, g.h, g.w)); // conv_out
  if (dtypeBytes !== 4) t.alloc((spec.outChannels * px * 4) / dtypeBytes); // cast to f32
  return t.result;
}

/** AutoencoderKL encode of a [batch, H, W] image tile: Encoder and quant_conv. */
export function estimateKLEncode(spec: AutoencoderKLSpec, batch: number, height: number, width: number, dtypeBytes: number, scratch: ConvScratch = NO_CONV_SCRATCH): ActivationEstimate {
  const t = new Tracker(dtypeBytes, scratch);
  const boc = spec.blockOutChannels;
  const g: Geo = { b: batch, h: height, w: width };
  let x = t.alloc(spec.inChannels * pixels(g)); // the uploaded tile
  const input = x;
  x = t.conv3(boc[0] * pixels(g), spec.inChannels, boc[0], g.b, g.h, g.w); // conv_in (the input stays alive until the pass ends)
  boc.forEach((cout, i) => {
    const cin = i === 0 ? boc[0] : boc[i - 1];
    const layers = Array.from({ length: spec.layersPerBlock }, (_, j) => () => resnet(t, j === 0 ? cin : cout, cout, g));
    if (i < boc.length - 1) {
      layers.push(() => {
        g.h = Math.floor(g.h / 2);
        g.w = Math.floor(g.w / 2);
        return t.alloc(cout * pixels(g)); // stride 2: direct
      });
    }
    x = step(t, x, () => block(t, x, layers));
  });
  const top = boc[boc.length - 1];
  const px = pixels(g);
  x = step(t, x, () => midBlock(t, top, g, spec.midBlockAttention));
  x = step(t, x, () => t.alloc(top * px)); // conv_norm_out + SiLU
  x = step(t, x, () => t.conv3(2 * spec.latentChannels * px, top, 2 * spec.latentChannels, g.b, g.h, g.w)); // conv_out
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
export function estimateKLDecodeLatentStage(spec: AutoencoderKLSpec, h: number, w: number, dtypeBytes: number, scratch: ConvScratch = NO_CONV_SCRATCH): ActivationEstimate {
  const t = new Tracker(dtypeBytes, scratch);
  const c0 = spec.blockOutChannels[spec.blockOutChannels.length - 1];
  const g: Geo = { b: 1, h, w };
  const px = h * w;
  t.alloc(spec.latentChannels * px);
  if (spec.usePostQuantConv) t.alloc(spec.latentChannels * px);
  let x = t.conv3(c0 * px, spec.latentChannels, c0, 1, h, w);
  x = step(t, x, () => midBlock(t, c0, g, spec.midBlockAttention));
  x = step(t, x, () => block(t, x, Array.from({ length: spec.layersPerBlock + 1 }, () => () => resnet(t, c0, c0, g)))); // up_blocks.0's resnets
  return t.result;
}

/**
 * The latent-resolution stage of an exact tiled encode, run whole: the last down block's resnets,
 * mid_block, conv_norm_out + SiLU, conv_out and quant_conv.
 */
export function estimateKLEncodeLatentStage(spec: AutoencoderKLSpec, h: number, w: number, dtypeBytes: number, scratch: ConvScratch = NO_CONV_SCRATCH): ActivationEstimate {
  const t = new Tracker(dtypeBytes, scratch);
  const boc = spec.blockOutChannels;
  const top = boc[boc.length - 1];
  const cin = boc.length > 1 ? boc[boc.length - 2] : boc[0];
  const g: Geo = { b: 1, h, w };
  const px = h * w;
  let x = t.alloc(cin * px); // the uploaded map
  x = step(t, x, () => block(t, x, Array.from({ length: spec.layersPerBlock }, (_, j) => () => resnet(t, j === 0 ? cin : top, top, g)))); // the last down block's resnets
  x = step(t, x, () => midBlock(t, top, g, spec.midBlockAttention));
  x = step(t, x, () => t.alloc(top * px));
  x = step(t, x, () => t.conv3(2 * spec.latentChannels * px, top, 2 * spec.latentChannels, 1, h, w));
  if (spec.useQuantConv) step(t, x, () => t.alloc(2 * spec.latentChannels * px));
  return t.result;
}
