// Exact tiled decode for AutoencoderTiny (no norms, no attention: only the convs' reach matters).
// DecoderTiny splits into segments at its upsampling convs: segment 0 runs at latent resolution,
// whole (64 channels: a few MiB); each later segment — the 2× conv, its blocks (and the final conv
// and x·2 − 1) — is one sweep (sweep.ts) whose halo covers its 3×3 convs: 10 convs at 2× the input
// resolution need 5 input pixels. The result equals the untiled decode up to rounding.
import { affine } from '@ssd/kernels';
import { withScopeSync, type DType, type GpuContext } from '@ssd/tensor';
import type { AutoencoderTinySpec } from '../config.js';
import { fitTile } from './exact-decode.js';
import { tileBytes } from './memory-plan.js';
import { runLayers, type DecoderTiny, type Layer } from '../vae-tiny.js';
import { sweep } from './sweep.js';
import { mib, type HostImage, type TilePlan } from './tiling.js';

interface Segment {
  /** Indices into DecoderTiny.layers. */
  from: number;
  to: number;
  /** Resolution level of the segment's input (its output is one level up, except segment 0). */
  level: number;
  convs: number;
  channels: number;
  tile: number;
  halo: number;
}

export interface TinyExactPlan {
  segments: Segment[];
  tilePasses: number;
  peakBytes: number;
}

/** Segments of `layers` (upsampling convs start new ones) with 3×3 conv counts. */
function segmentsOf(layers: readonly Layer[], channels: number): Omit<Segment, 'tile' | 'halo'>[] {
  const out: Omit<Segment, 'tile' | 'halo'>[] = [];
  let cur = { from: 0, to: 0, level: 0, convs: 0, channels };
  layers.forEach((l, i) => {
    if (l.kind === 'conv' && l.upsample) {
      cur.to = i;
      out.push(cur);
      cur = { from: i, to: i, level: out.length - 1, convs: 0, channels };
    }
    cur.convs += l.kind === 'block' ? 3 : 1;
  });
  cur.to = layers.length;
  out.push(cur);
  return out;
}

export function planTinyExact(decoder: DecoderTiny, spec: AutoencoderTinySpec, h: number, w: number, dtypeBytes: number, binding: number, budget: number, tileLatentSize?: number): TinyExactPlan {
  const c = spec.decoderBlockOutChannels[0];
  const segments: Segment[] = [];
  let tilePasses = 1;
  let peakBytes = (spec.latentChannels + 3 * c) * h * w * dtypeBytes;
  for (const s of segmentsOf(decoder.layers, c).slice(1)) {
    const halo = Math.ceil(s.convs / 2);
    const side = 2 ** s.level;
    // per input pixel: the input (c), then 2× tensors of c channels (4c each), three alive in a block
    const size = Math.max(h, w) * side;
    const need = (t: number) => tileBytes([c, 4 * c, 4 * c, 4 * c], t, dtypeBytes);
    const tile = fitTile(tileLatentSize !== undefined ? tileLatentSize * side : size, halo, need, binding, budget, size);
    segments.push({ ...s, tile, halo });
    tilePasses += Math.ceil((h * side) / tile) * Math.ceil((w * side) / tile);
    peakBytes = Math.max(peakBytes, need(tile + 2 * halo)[1]);
  }
  return { segments, tilePasses, peakBytes };
}

export function tinyExactTilePlan(p: TinyExactPlan, f: number, reason: string, h: number, w: number): TilePlan {
  const last = p.segments[p.segments.length - 1];
  const side = 2 ** last.level;
  const rows = Math.ceil((h * side) / last.tile);
  const cols = Math.ceil((w * side) / last.tile);
  return {
    mode: 'exact', tiled: true, tileLatentSize: (last.tile * 2) / f, strideLatent: (last.tile * 2) / f, rows, cols, tiles: rows * cols,
    estimate: { peakBytes: p.peakBytes, largestTensorBytes: p.peakBytes, largestWholeBindingBytes: 0 }, sweeps: p.segments.length, tilePasses: p.tilePasses,
    reason: `${reason}; exact: ${p.segments.length} segment sweeps, ${p.tilePasses} tile passes, ~${mib(p.peakBytes)} per tile`,
  };
}

/**
 * Segment 0 by `first` (whole, on the GPU: the caller's checked pass), then one sweep per later
 * segment; returns the image in [-1, 1] (NHWC f32).
 */
export async function sweepDecodeTiny(
  run: { ctx: GpuContext; dtype: DType; signal?: AbortSignal; onTile?: (done: number, total: number) => void },
  decoder: DecoderTiny,
  plan: TinyExactPlan,
  first: (layers: readonly Layer[]) => Promise<HostImage>,
): Promise<HostImage> {
  let done = 0;
  const progress = () => run.onTile?.(++done, plan.tilePasses);
  let x = await first(decoder.layers.slice(0, plan.segments[0]?.from ?? decoder.layers.length));
  progress();
  for (const [i, s] of plan.segments.entries()) {
    const layers = decoder.layers.slice(s.from, s.to);
    const last = i === plan.segments.length - 1;
    x = await sweep({ ctx: run.ctx, dtype: run.dtype, what: 'taesd decoder', signal: run.signal, progress }, {
      stage: `layers.${s.from}-${s.to - 1}`, inputs: [x], tile: s.tile, halo: s.halo, scale: 2,
      op: ([t]) => {
        if (!last) return runLayers(layers, t);
        return withScopeSync((sc) => sc.keep(sc.then(sc.track(runLayers(layers, t)), (y) => affine(y, 2, -1, { outDtype: 'f32' }))));
      },
    });
  }
  return x;
}
