// Exact tiled decode: the same image as an untiled decode (up to rounding), with a GPU working set of
// one tile. Why not diffusers' blended tiles: each tile then has its own GroupNorm statistics and
// mid-block attention, and on the fixture VAE that moves pixels by tens of levels (see tiling.test).
//
// 1. The latent-resolution stage runs whole: post_quant_conv, conv_in, mid_block (its attention sees
//    every token) and up_blocks.0's resnets. At 1024² that is 128² × 512 channels (32 MiB in f32).
// 2. Every later layer is a sweep (sweep.ts) over the image in tiles with a 1-pixel halo: one 3×3
//    conv with what precedes it (GroupNorm+SiLU, with the whole layer's statistics) and its residual.
//    A resnet is two sweeps, an upsampler one, the final conv_norm_out + conv_out one.
// Cost: one extra upload and readback per layer (host memory holds two or three layer outputs: up to
// ~2 GiB for a 1024² image in f32), no extra arithmetic beyond the 1-pixel halos.
import { throwIfAborted, type DType, type GpuContext } from '@ssd/tensor';
import type { Upsample2D } from '@ssd/kernels';
import type { AutoencoderKLSpec } from '../config.js';
import { estimateKLDecodeLatentStage, NO_CONV_SCRATCH, resnetHalfTileBytes, tileBytes, type ActivationEstimate, type ConvScratch } from './memory-plan.js';
import { normParams, sweep, sweepResnetHalf, type SweepContext } from './sweep.js';
import { mib, type HostImage, type TilePlan } from './tiling.js';
import type { Decoder } from '../vae.js';

/** One sweep of the plan: its layer, the channels it reads and writes, and its tile side (input px). */
interface SweepPlan {
  kind: 'resnet.conv1' | 'resnet.conv2' | 'upsample' | 'final';
  block: number;
  resnet: number;
  cin: number;
  cout: number;
  /** Resolution level: the input is 2^level × the latent size. */
  level: number;
  tile: number;
}

export interface ExactDecodePlan {
  sweeps: SweepPlan[];
  latentStage: ActivationEstimate;
  /** Largest per-tile working set over all sweeps. */
  sweepPeakBytes: number;
  tilePasses: number;
  /** Tile side (px) and grid of the final, full-resolution sweep. */
  finalTile: number;
  finalRows: number;
  finalCols: number;
}

/**
 * The tile core side (input px) of a sweep: the largest square whose tile — core plus `halo` on each
 * side — keeps every tensor within the binding limit and all of them within the budget, at most
 * `start`; `need(side)` gives the bytes of [the largest tensor, all live tensors] of a tile of that
 * side (halo included). When `start` covers the image side `size`, the side is then evened out over
 * the fewest tiles.
 */
export function fitTile(start: number, halo: number, need: (side: number) => readonly [number, number], binding: number, budget: number, size = start): number {
  const fits = (t: number) => {
    const [largest, total] = need(t + 2 * halo);
    return largest <= binding && total <= budget;
  };
  if (fits(start)) return start;
  let lo = 8;
  let hi = start;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return start >= size ? Math.ceil(size / Math.ceil(size / lo)) : lo;
}

/**
 * Bytes of [the largest tensor, all live tensors] of a sweep's tile of `side` px. A resnet half: see
 * resnetHalfTileBytes. An upsampler: its input and 2×-upsampled output, and its conv's scratch. The final
 * sweep: the input, SiLU(conv_norm_out(x)), conv_out's output, the GroupNorm's affine vectors, the scratch.
 */
function sweepNeed(s: Omit<SweepPlan, 'tile'>, side: number, dtypeBytes: number, scratch: ConvScratch): [number, number] {
  switch (s.kind) {
    case 'resnet.conv1':
    case 'resnet.conv2':
      return resnetHalfTileBytes(s.kind === 'resnet.conv1' ? 'conv1' : 'conv2', s.cin, s.cout, side, dtypeBytes, scratch);
    case 'upsample':
      return tileBytes([s.cin, 4 * s.cin], side, dtypeBytes, scratch(s.cin, s.cin, 1, side, side, 2));
    case 'final':
      return tileBytes([s.cin, s.cin, s.cout], side, dtypeBytes, [...scratch(s.cin, s.cout, 1, side, side), s.cin * dtypeBytes, s.cin * dtypeBytes]);
  }
}

/** What an exact plan must respect: the model's element size, the device's limits and the budget. */
export interface ExactPlanBounds {
  dtypeBytes: number;
  /** maxStorageBufferBindingSize: the latent stage's attention binds its operands whole. */
  binding: number;
  /** maxBufferSize: every other tensor is bound in windows (the sweeps' kernels all window). */
  maxBuffer: number;
  budget: number;
  scratch?: ConvScratch;
}

/**
 * The sweeps of an exact decode of an h × w latent and their tile sides: the largest square core
 * whose tile (core + 2-pixel halo ring) keeps every tensor within one buffer and the working set,
 * conv scratch included, within the budget — or, with `tileLatentSize`, that many latent pixels at
 * every level. Returns null when the latent stage itself does not fit (then the caller blends instead).
 */
export function planExactDecode(spec: AutoencoderKLSpec, h: number, w: number, bounds: ExactPlanBounds, tileLatentSize?: number): ExactDecodePlan | null {
  const { dtypeBytes, binding, maxBuffer, budget } = bounds;
  const scratch = bounds.scratch ?? NO_CONV_SCRATCH;
  const latentStage = estimateKLDecodeLatentStage(spec, h, w, dtypeBytes, scratch);
  if (latentStage.largestWholeBindingBytes > binding || latentStage.largestTensorBytes > maxBuffer || latentStage.peakBytes > budget) return null;
  const rev = [...spec.blockOutChannels].reverse();
  const sweeps: SweepPlan[] = [];
  const add = (s: Omit<SweepPlan, 'tile'>) => {
    const side = 2 ** s.level;
    const size = Math.max(h, w) * side;
    sweeps.push({ ...s, tile: fitTile(tileLatentSize !== undefined ? tileLatentSize * side : size, 1, (t) => sweepNeed(s, t, dtypeBytes, scratch), maxBuffer, budget, size) });
  };
  rev.forEach((cout, i) => {
    if (i > 0) {
      for (let j = 0; j <= spec.layersPerBlock; j++) {
        const cin = j === 0 ? rev[i - 1] : cout;
        add({ kind: 'resnet.conv1', block: i, resnet: j, cin, cout, level: i });
        add({ kind: 'resnet.conv2', block: i, resnet: j, cin, cout, level: i });
      }
    }
    if (i < rev.length - 1) add({ kind: 'upsample', block: i, resnet: -1, cin: cout, cout, level: i });
  });
  add({ kind: 'final', block: rev.length - 1, resnet: -1, cin: rev[rev.length - 1], cout: spec.outChannels, level: rev.length - 1 });
  let tilePasses = 0;
  let sweepPeakBytes = 0;
  for (const s of sweeps) {
    const side = 2 ** s.level;
    tilePasses += Math.ceil((h * side) / s.tile) * Math.ceil((w * side) / s.tile);
    sweepPeakBytes = Math.max(sweepPeakBytes, sweepNeed(s, s.tile + 2, dtypeBytes, scratch)[1]);
  }
  const last = sweeps[sweeps.length - 1];
  const full = 2 ** last.level;
  return { sweeps, latentStage, sweepPeakBytes, tilePasses, finalTile: last.tile, finalRows: Math.ceil((h * full) / last.tile), finalCols: Math.ceil((w * full) / last.tile) };
}

export function exactTilePlan(p: ExactDecodePlan, f: number, reason: string): TilePlan {
  return {
    mode: 'exact', tiled: true, tileLatentSize: p.finalTile / f, strideLatent: p.finalTile / f, rows: p.finalRows, cols: p.finalCols, tiles: p.finalRows * p.finalCols,
    estimate: { peakBytes: Math.max(p.latentStage.peakBytes, p.sweepPeakBytes), largestTensorBytes: p.latentStage.largestTensorBytes, largestWholeBindingBytes: p.latentStage.largestWholeBindingBytes },
    sweeps: p.sweeps.length, tilePasses: p.tilePasses,
    reason: `${reason}; exact: latent stage whole (${mib(p.latentStage.peakBytes)}), ${p.sweeps.length} layer sweeps, ${p.tilePasses} tile passes`,
  };
}

interface ExactRun {
  ctx: GpuContext;
  dtype: DType;
  decoder: Decoder;
  signal?: AbortSignal;
  onTile?: (done: number, total: number) => void;
}

/**
 * Decodes one sample's output of the latent stage `f` (NHWC, batch 1) through the sweeps of `plan`;
 * returns the image (NHWC f32, batch 1).
 */
export async function sweepDecode(run: ExactRun, f: HostImage, plan: ExactDecodePlan): Promise<HostImage> {
  const { decoder } = run;
  const norm = normParams();
  let done = 0;
  const sc: SweepContext = { ctx: run.ctx, dtype: run.dtype, what: 'vae decoder', signal: run.signal, progress: () => run.onTile?.(++done, plan.tilePasses) };
  let x = f;
  let h1: HostImage | null = null;
  for (const s of plan.sweeps) {
    throwIfAborted(run.signal, 'vae decode');
    const block = decoder.up_blocks[s.block];
    const name = `up_blocks.${s.block}.resnets.${s.resnet}`;
    if (s.kind === 'resnet.conv1') {
      h1 = await sweepResnetHalf(sc, norm, block.resnets[s.resnet], name, 'conv1', s.tile, x, null);
    } else if (s.kind === 'resnet.conv2') {
      x = await sweepResnetHalf(sc, norm, block.resnets[s.resnet], name, 'conv2', s.tile, x, h1);
      h1 = null;
    } else if (s.kind === 'upsample') {
      const u: Upsample2D = block.upsamplers[0];
      x = await sweep(sc, { stage: `up_blocks.${s.block}.upsamplers.0`, inputs: [x], tile: s.tile, halo: 1, scale: 2, op: ([xt]) => u.forward(xt) });
    } else {
      x = await sweep(sc, { stage: 'conv_norm_out, conv_out', inputs: [x], tile: s.tile, halo: 1, norm: await norm(decoder.conv_norm_out), op: (_, normed) => decoder.conv_out.forward(normed!) });
    }
  }
  return x;
}
