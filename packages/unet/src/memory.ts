// An up-front plan of a UNet forward's activation memory, from the config alone: the tensors some op
// must bind whole (attention's fused q/k/v and the up blocks' skip concatenations; GEMMs, norms and
// elementwise ops split into binding windows) —
// each must fit maxStorageBufferBindingSize — and an estimate of the peak activation bytes: the skip
// stack at its fullest plus the largest working set of one layer, counted from what the layers hold
// at once (kernels' ResnetBlock2D, BasicTransformerBlock, Up/Downsample2D free each input once the
// next op is recorded), plus the pool's size-class rounding. It is an upper bound kept close (within
// 1.5× of the measured peak: test/memory-plan.test.ts): the pipeline checks it before a run, so an
// impossible size is a DeviceLimitError at once, and a size that fits is not refused.
import { convScratchBytes } from '@ssd/kernels';
import type { GpuContext } from '@ssd/tensor';
import type { UNetSpec } from './config.js';

export interface WholeBinding {
  what: string;
  bytes: number;
}

export interface UNetMemoryPlan {
  wholeBindings: WholeBinding[];
  /** Bytes of the skip stack at its fullest (end of the down path). */
  skipBytes: number;
  /** Estimated peak bytes of activations (not weights) during one forward. */
  peakActivationBytes: number;
}

/** Bytes a 3×3 stride-1 conv allocates beside its output while it records (Winograd's scratch; 0 when direct). */
export type UNetConvScratch = (inChannels: number, outChannels: number, batch: number, h: number, w: number, upsample: 1 | 2) => number;

/** The pool rounds a buffer up to its size class: at most 1/8 above 64 KiB (tensor pool.ts sizeClass). */
const POOL_ROUNDING = 1.125;
/** Small tensors beside the plan: time embeddings, statistics, the guidance rows, uniforms. */
const SMALL_BYTES = 2 ** 20;

/**
 * `latentH`/`latentW`: the latent size (image / 8); `bytesPerElement`: 2 (f16) or 4 (f32); `scratch`:
 * what the 3×3 convs allocate beside their outputs on this adapter (default none: direct convs).
 */
export function planUNetMemory(spec: UNetSpec, batch: number, latentH: number, latentW: number, bytesPerElement: number, scratch: UNetConvScratch = () => 0): UNetMemoryPlan {
  const el = bytesPerElement;
  const whole: WholeBinding[] = [];
  const skips: number[] = [];
  let h = latentH;
  let w = latentW;
  let working = 0;
  const act = (c: number, hh = h, ww = w) => batch * hh * ww * c * el;
  // one ResnetBlock2D: x, norm1(x), conv1 — then x, norm2, the shortcut and conv2's output
  const resnet = (cin: number, cout: number, hh: number, ww: number) =>
    Math.max(act(2 * cin + cout, hh, ww) + scratch(cin, cout, batch, hh, ww, 1), act(cin + 3 * cout, hh, ww) + scratch(cout, cout, batch, hh, ww, 1));
  // one Transformer2DModel: its input, the residual stream, a norm, and the feed-forward's GEGLU
  // projection (8C) beside its output (4C); attention's fused q/k/v (3C) and output hold less
  const transformer = (c: number, hh: number, ww: number) => act(15 * c, hh, ww);
  const note = (bytes: number) => {
    working = Math.max(working, bytes);
  };
  skips.push(act(spec.blockOutChannels[0]));
  const down: { h: number; w: number }[] = [];
  spec.down.forEach((d, i) => {
    down.push({ h, w });
    for (let j = 0; j < d.numLayers; j++) {
      skips.push(act(d.outChannels));
      note(resnet(j === 0 ? d.inChannels : d.outChannels, d.outChannels, h, w));
      if ((d.depths[j] ?? 0) > 0) note(transformer(d.outChannels, h, w));
      if (d.type === 'CrossAttnDownBlock2D') {
        whole.push({ what: `down_blocks.${i} self-attention q/k/v (${h}×${w} tokens × 3·${d.outChannels})`, bytes: act(3 * d.outChannels) });
      }
    }
    if (d.addDownsample) {
      const [ih, iw] = [h, w];
      h = Math.ceil(h / 2);
      w = Math.ceil(w / 2);
      skips.push(act(d.outChannels));
      note(act(d.outChannels, ih, iw) + act(d.outChannels)); // stride-2 conv: its input and output
    }
  });
  if (spec.mid) {
    note(resnet(spec.mid.channels, spec.mid.channels, h, w));
    if (spec.mid.type === 'UNetMidBlock2DCrossAttn' && spec.mid.depth > 0) note(transformer(spec.mid.channels, h, w));
  }
  if (spec.mid?.type === 'UNetMidBlock2DCrossAttn') {
    whole.push({ what: `mid_block self-attention q/k/v (${h}×${w} tokens × 3·${spec.mid.channels})`, bytes: act(3 * spec.mid.channels) });
  }
  const skipBytes = skips.reduce((a, b) => a + b, 0);
  // up path: each resnet concatenates [current, skip]
  let cur = spec.mid ? spec.mid.channels : spec.down[spec.down.length - 1].outChannels;
  const skipCh: number[] = [spec.blockOutChannels[0]];
  spec.down.forEach((d) => {
    for (let j = 0; j < d.numLayers; j++) skipCh.push(d.outChannels);
    if (d.addDownsample) skipCh.push(d.outChannels);
  });
  const res = [...down].reverse();
  spec.up.forEach((u, i) => {
    const { h: uh, w: uw } = res[i] ?? { h, w };
    // the up block runs at the resolution of the matching down block's output
    const bh = i === 0 ? h : uh;
    const bw = i === 0 ? w : uw;
    for (let j = 0; j < u.numLayers; j++) {
      const skip = skipCh.pop() ?? 0;
      whole.push({ what: `up_blocks.${i}.resnets.${j} skip concatenation (${bh}×${bw} × ${cur + skip})`, bytes: batch * bh * bw * (cur + skip) * el });
      // the concatenation beside its two inputs, then the resnet on it (the inputs freed)
      note(Math.max(act(2 * (cur + skip), bh, bw), resnet(cur + skip, u.outChannels, bh, bw)));
      if ((u.depths[j] ?? 0) > 0) note(transformer(u.outChannels, bh, bw));
      cur = u.outChannels;
      if (u.type === 'CrossAttnUpBlock2D') {
        whole.push({ what: `up_blocks.${i} self-attention q/k/v (${bh}×${bw} tokens × 3·${u.outChannels})`, bytes: batch * bh * bw * 3 * u.outChannels * el });
      }
    }
    if (u.addUpsample) {
      // nearest 2× fused into the conv's gather: its input and the output at the next resolution
      const next = res[i + 1] ?? { h: 2 * bh, w: 2 * bw };
      note(act(u.outChannels, bh, bw) + act(u.outChannels, next.h, next.w) + scratch(u.outChannels, u.outChannels, batch, bh, bw, 2));
    }
  });
  // conv_in, and conv_norm_out → conv_out at the latent size
  note(act(spec.inChannels + spec.blockOutChannels[0], latentH, latentW));
  note(act(2 * spec.blockOutChannels[0] + spec.outChannels, latentH, latentW));
  // the conditioning beside it all: encoder_hidden_states (77 tokens) and cross-attention's keys/values
  const cross = Math.max(0, ...spec.down.map((d) => d.crossAttentionDim), ...spec.up.map((u) => u.crossAttentionDim));
  const widest = Math.max(...spec.blockOutChannels);
  const conditioning = batch * 77 * (cross + 2 * widest) * el;
  return { wholeBindings: whole, skipBytes, peakActivationBytes: Math.ceil((skipBytes + working + conditioning) * POOL_ROUNDING) + SMALL_BYTES };
}

/**
 * The scratch of this UNet's 3×3 convs on `ctx`: the resnets' and upsamplers' convs take the adapter's
 * algorithm (unet-2d-blocks.ts), and Winograd's V and Mt live beside the output while it records.
 */
export function unetConvScratch(ctx: GpuContext, dtype: 'f16' | 'f32'): UNetConvScratch {
  return (cin, cout, batch, h, w, upsample) => convScratchBytes(ctx, { dtype, inChannels: cin, outChannels: cout }, batch, h, w, upsample).reduce((a, b) => a + b, 0);
}
