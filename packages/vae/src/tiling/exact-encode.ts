// Exact tiled encode for AutoencoderKL, the mirror of exact-decode.ts: every layer above latent
// resolution is a sweep (sweep.ts) — conv_in, each resnet as two sweeps (norm1+conv1, norm2+conv2 with
// the residual), each downsampler as a stride-2 sweep (F.pad(0,1,0,1) + conv: a 2-pixel halo keeps
// the tile's origin even and covers the bottom/right tap) — with GroupNorm normalised by the whole
// layer's statistics; then the latent-resolution stage (the last block's resnets, mid_block with its
// global attention, conv_norm_out, conv_out, quant_conv) runs whole. Same result as an untiled encode
// up to rounding; the GPU holds one tile.
import { throwIfAborted, type DType, type GpuContext } from '@ssd/tensor';
import type { AutoencoderKLSpec } from '../config.js';
import { fitTile, type ExactPlanBounds } from './exact-decode.js';
import { estimateKLEncodeLatentStage, NO_CONV_SCRATCH, resnetHalfTileBytes, tileBytes, type ActivationEstimate, type ConvScratch } from './memory-plan.js';
import { normParams, sweep, sweepResnetHalf, type SweepContext } from './sweep.js';
import { mib, type HostImage, type TilePlan } from './tiling.js';
import type { Encoder } from '../vae.js';

interface EncodeSweep {
  kind: 'conv_in' | 'resnet.conv1' | 'resnet.conv2' | 'downsample';
  block: number;
  resnet: number;
  cin: number;
  cout: number;
  /** The input is image size / 2^level. */
  level: number;
  tile: number;
}

export interface ExactEncodePlan {
  sweeps: EncodeSweep[];
  latentStage: ActivationEstimate;
  sweepPeakBytes: number;
  tilePasses: number;
  /** Tile side (image px) and grid of the first, full-resolution sweeps. */
  firstTile: number;
  firstRows: number;
  firstCols: number;
}

/**
 * Bytes of [the largest tensor, all live tensors] of a sweep's tile of `side` px. conv_in: its input and
 * output, and its scratch; a resnet half: resnetHalfTileBytes; the stride-2 downsampler (direct, no
 * scratch): its input and the half-size output.
 */
function need(s: Omit<EncodeSweep, 'tile'>, side: number, dtypeBytes: number, scratch: ConvScratch): [number, number] {
  switch (s.kind) {
    case 'conv_in':
      return tileBytes([s.cin, s.cout], side, dtypeBytes, scratch(s.cin, s.cout, 1, side, side));
    case 'resnet.conv1':
    case 'resnet.conv2':
      return resnetHalfTileBytes(s.kind === 'resnet.conv1' ? 'conv1' : 'conv2', s.cin, s.cout, side, dtypeBytes, scratch);
    case 'downsample':
      return tileBytes([s.cin, 0.25 * s.cin], side, dtypeBytes);
  }
}

/** The sweeps of an exact encode of an image of height × width (multiples of the down factor), or null when the latent stage does not fit whole. */
export function planExactEncode(spec: AutoencoderKLSpec, height: number, width: number, bounds: ExactPlanBounds, tileLatentSize?: number): ExactEncodePlan | null {
  const { dtypeBytes, binding, maxBuffer, budget } = bounds;
  const scratch = bounds.scratch ?? NO_CONV_SCRATCH;
  const f = spec.downFactor;
  const latentStage = estimateKLEncodeLatentStage(spec, height / f, width / f, dtypeBytes, scratch);
  if (latentStage.largestWholeBindingBytes > binding || latentStage.largestTensorBytes > maxBuffer || latentStage.peakBytes > budget) return null;
  const boc = spec.blockOutChannels;
  const sweeps: EncodeSweep[] = [];
  const add = (s: Omit<EncodeSweep, 'tile'>, halo: number) => {
    const size = Math.max(height, width) / 2 ** s.level;
    const start = tileLatentSize !== undefined ? (tileLatentSize * f) / 2 ** s.level : size;
    let tile = fitTile(start, halo, (t) => need(s, t, dtypeBytes, scratch), maxBuffer, budget, size);
    tile -= tile % 2; // stride-2 sweeps need even tiles; keep every level even
    sweeps.push({ ...s, tile: Math.max(2, tile) });
  };
  add({ kind: 'conv_in', block: -1, resnet: -1, cin: spec.inChannels, cout: boc[0], level: 0 }, 1);
  for (let i = 0; i < boc.length - 1; i++) {
    const cin = i === 0 ? boc[0] : boc[i - 1];
    for (let j = 0; j < spec.layersPerBlock; j++) {
      const rc = { block: i, resnet: j, cin: j === 0 ? cin : boc[i], cout: boc[i], level: i };
      add({ kind: 'resnet.conv1', ...rc }, 1);
      add({ kind: 'resnet.conv2', ...rc }, 1);
    }
    add({ kind: 'downsample', block: i, resnet: -1, cin: boc[i], cout: boc[i], level: i }, 2);
  }
  let tilePasses = 0;
  let sweepPeakBytes = 0;
  for (const s of sweeps) {
    const d = 2 ** s.level;
    tilePasses += Math.ceil(height / d / s.tile) * Math.ceil(width / d / s.tile);
    sweepPeakBytes = Math.max(sweepPeakBytes, need(s, s.tile + 4, dtypeBytes, scratch)[1]);
  }
  const first = sweeps[0];
  return { sweeps, latentStage, sweepPeakBytes, tilePasses: tilePasses + 1, firstTile: first.tile, firstRows: Math.ceil(height / first.tile), firstCols: Math.ceil(width / first.tile) };
}

export function exactEncodeTilePlan(p: ExactEncodePlan, f: number, reason: string): TilePlan {
  return {
    mode: 'exact', tiled: true, tileLatentSize: p.firstTile / f, strideLatent: p.firstTile / f, rows: p.firstRows, cols: p.firstCols, tiles: p.firstRows * p.firstCols,
    estimate: { peakBytes: Math.max(p.latentStage.peakBytes, p.sweepPeakBytes), largestTensorBytes: p.latentStage.largestTensorBytes, largestWholeBindingBytes: p.latentStage.largestWholeBindingBytes },
    sweeps: p.sweeps.length, tilePasses: p.tilePasses,
    reason: `${reason}; exact: ${p.sweeps.length} layer sweeps, ${p.tilePasses} tile passes, latent stage whole (${mib(p.latentStage.peakBytes)})`,
  };
}

/**
 * The sweeps over one image (NHWC, batch 1), then `latentStage` on the latent-resolution map it
 * leaves; returns the moments [1, h, w, 2·latent].
 */
export async function sweepEncode(
  run: { ctx: GpuContext; dtype: DType; signal?: AbortSignal; onTile?: (done: number, total: number) => void },
  encoder: Encoder,
  image: HostImage,
  plan: ExactEncodePlan,
  latentStage: (x: HostImage) => Promise<HostImage>,
): Promise<HostImage> {
  const norm = normParams();
  let done = 0;
  const progress = () => run.onTile?.(++done, plan.tilePasses);
  const sc: SweepContext = { ctx: run.ctx, dtype: run.dtype, what: 'vae encoder', signal: run.signal, progress };
  let x = image;
  let h1: HostImage | null = null;
  for (const s of plan.sweeps) {
    throwIfAborted(run.signal, 'vae encode');
    if (s.kind === 'conv_in') {
      x = await sweep(sc, { stage: 'conv_in', inputs: [x], tile: s.tile, halo: 1, op: ([t]) => encoder.conv_in.forward(t) });
      continue;
    }
    const block = encoder.down_blocks[s.block];
    const name = `down_blocks.${s.block}.resnets.${s.resnet}`;
    if (s.kind === 'resnet.conv1') {
      h1 = await sweepResnetHalf(sc, norm, block.resnets[s.resnet], name, 'conv1', s.tile, x, null);
    } else if (s.kind === 'resnet.conv2') {
      x = await sweepResnetHalf(sc, norm, block.resnets[s.resnet], name, 'conv2', s.tile, x, h1);
      h1 = null;
    } else {
      const d = block.downsamplers[0];
      x = await sweep(sc, { stage: `down_blocks.${s.block}.downsamplers.0`, inputs: [x], tile: s.tile, halo: 2, scale: 0.5, op: ([t]) => d.forward(t) });
    }
  }
  const moments = await latentStage(x);
  progress();
  return moments;
}
