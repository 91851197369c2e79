// Exact tiled decode: the same image as an untiled decode (up to rounding), with a GPU working set of
// one tile. Why not diffusers' blended tiles: each tile then has its own GroupNorm statistics and
// mid-block attention, and on the fixture VAE that moves pixels by tens of levels (see tiling.test).
//
// 1. The latent-resolution stage runs whole: post_quant_conv, conv_in, mid_block (its attention sees
//    every token) and up_blocks.0's resnets. At 1024² that is 128² × 512 channels (32 MiB in f32).
// 2. Every later layer is a *sweep* over the image in tiles: a tile with a 1-pixel halo goes up, one
//    3×3 conv (with what precedes it: GroupNorm+SiLU; and the residual) runs, the tile's core comes
//    back to a host copy of the layer's output. A resnet is two sweeps, an upsampler one, the final
//    conv_norm_out + conv_out one.
// 3. GroupNorm uses the statistics of the whole layer, computed on the host (float64) from that
//    host copy. The GPU's groupNorm normalises a tile with the tile's own statistics (μₜ, σₜ), so the
//    affine parameters are adjusted per tile to turn that into the global normalisation:
//      (x − μₜ)/σₜ · w' + b' = (x − μ)/σ · w + b   with   w' = w·σₜ/σ,  b' = b + w·(μₜ − μ)/σ.
// Cost: one extra upload and readback per layer (host memory holds two or three layer outputs: up to
// ~2 GiB for a 1024² image in f32), no extra arithmetic beyond the 1-pixel halos.
import { roundToF16InPlace, throwIfAborted, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { groupNorm, type GroupNorm, type ResnetBlock2D, type Upsample2D } from '@ssd/kernels';
import type { AutoencoderKLSpec } from './config.js';
import { estimateKLDecodeLatentStage, type ActivationEstimate } from './memory-plan.js';
import { numericalError } from './numerics.js';
import { cropHost, mib, type HostImage, type TilePlan } from './tiling.js';
import type { Decoder } from './vae.js';

/** One sweep of the plan: its layer, the channels it reads and writes, and its tile side (input px). */
interface SweepPlan {
  kind: 'resnet.conv1' | 'resnet.conv2' | 'upsample' | 'final';
  block: number;
  resnet: number;
  cin: number;
  cout: number;
  /** Extra input of resnet.conv2: the resnet's input x (cin channels) for the residual. */
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

/** Live channels (per input pixel) of one tile of a sweep: [largest tensor, all together]. */
function sweepChannels(s: Pick<SweepPlan, 'kind' | 'cin' | 'cout'>): [number, number] {
  switch (s.kind) {
    case 'resnet.conv1':
      return [Math.max(s.cin, s.cout), 2 * s.cin + s.cout];
    case 'resnet.conv2':
      return [Math.max(s.cin, s.cout), s.cin + 3 * s.cout + (s.cin !== s.cout ? s.cout : 0)];
    case 'upsample':
      return [4 * s.cin, 5 * s.cin];
    case 'final':
      return [s.cin, 2 * s.cin + s.cout];
  }
}

/**
 * The sweeps of an exact decode of an h × w latent and their tile sides: the largest square core
 * whose tile (core + 2-pixel halo ring) keeps every tensor within the binding limit and the working
 * set within the budget — or, with `tileLatentSize`, that many latent pixels at every level.
 * Returns null when the latent stage itself does not fit (then the caller blends instead).
 */
export function planExactDecode(spec: AutoencoderKLSpec, h: number, w: number, dtypeBytes: number, binding: number, budget: number, tileLatentSize?: number): ExactDecodePlan | null {
  const latentStage = estimateKLDecodeLatentStage(spec, h, w, dtypeBytes);
  if (latentStage.largestTensorBytes > binding || latentStage.peakBytes > budget) return null;
  const rev = [...spec.blockOutChannels].reverse();
  const sweeps: SweepPlan[] = [];
  const add = (s: Omit<SweepPlan, 'tile'>) => {
    const [one, all] = sweepChannels(s);
    const side = 2 ** s.level;
    let tile = tileLatentSize !== undefined ? tileLatentSize * side : Math.max(h, w) * side;
    const fits = (t: number) => (t + 2) ** 2 * one * dtypeBytes <= binding && (t + 2) ** 2 * all * dtypeBytes <= budget;
    while (tile > 8 && !fits(tile)) tile = Math.max(8, Math.floor(tile * 0.9));
    sweeps.push({ ...s, tile });
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
    sweepPeakBytes = Math.max(sweepPeakBytes, (s.tile + 2) ** 2 * sweepChannels(s)[1] * dtypeBytes);
  }
  const last = sweeps[sweeps.length - 1];
  const full = 2 ** last.level;
  return { sweeps, latentStage, sweepPeakBytes, tilePasses, finalTile: last.tile, finalRows: Math.ceil((h * full) / last.tile), finalCols: Math.ceil((w * full) / last.tile) };
}

export function exactTilePlan(p: ExactDecodePlan, f: number, reason: string): TilePlan {
  return {
    mode: 'exact', tiled: true, tileLatentSize: p.finalTile / f, strideLatent: p.finalTile / f, rows: p.finalRows, cols: p.finalCols, tiles: p.finalRows * p.finalCols,
    estimate: { peakBytes: Math.max(p.latentStage.peakBytes, p.sweepPeakBytes), largestTensorBytes: p.latentStage.largestTensorBytes },
    sweeps: p.sweeps.length, tilePasses: p.tilePasses,
    reason: `${reason}; exact: latent stage whole (${mib(p.latentStage.peakBytes)}), ${p.sweeps.length} layer sweeps, ${p.tilePasses} tile passes`,
  };
}

/** Per-group mean and biased variance of one sample (float64, two passes). */
function groupStats(x: HostImage, groups: number): { mean: Float64Array; variance: Float64Array } {
  const c = x.shape[3];
  const cg = c / groups;
  const d = x.data;
  const n = (d.length / c) * cg;
  const sum = new Float64Array(groups);
  for (let i = 0; i < d.length; i += c) for (let k = 0; k < c; k++) sum[(k / cg) | 0] += d[i + k];
  const mean = sum.map((s) => s / n);
  const m2 = new Float64Array(groups);
  for (let i = 0; i < d.length; i += c) {
    for (let k = 0; k < c; k++) {
      const e = d[i + k] - mean[(k / cg) | 0];
      m2[(k / cg) | 0] += e * e;
    }
  }
  return { mean, variance: m2.map((m) => m / n) };
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
  const affine = new Map<GroupNorm, [Float32Array, Float32Array]>();
  const params = async (n: GroupNorm) => {
    let p = affine.get(n);
    if (!p) affine.set(n, (p = [(await n.weight.read()) as Float32Array, (await n.bias.read()) as Float32Array]));
    return p;
  };
  let done = 0;
  const progress = () => run.onTile?.(++done, plan.tilePasses);
  let x = f;
  let h1: HostImage | null = null;
  for (const s of plan.sweeps) {
    throwIfAborted(run.signal, 'vae decode');
    const block = decoder.up_blocks[s.block];
    const name = s.kind === 'final' ? 'conv_norm_out' : s.kind === 'upsample' ? `up_blocks.${s.block}.upsamplers.0` : `up_blocks.${s.block}.resnets.${s.resnet}`;
    if (s.kind === 'resnet.conv1') {
      const r: ResnetBlock2D = block.resnets[s.resnet];
      h1 = await sweep(run, s, `${name} (norm1, conv1)`, [x], { norm: r.norm1, params: await params(r.norm1) }, ([], normed) => r.conv1.forward(normed!), progress);
    } else if (s.kind === 'resnet.conv2') {
      const r: ResnetBlock2D = block.resnets[s.resnet];
      x = await sweep(run, s, `${name} (norm2, conv2)`, [h1!, x], { norm: r.norm2, params: await params(r.norm2) }, ([, xt], normed) => {
        const skip = r.convShortcut ? r.convShortcut.forward(xt) : xt;
        const out = r.conv2.forward(normed!, { residual: skip });
        if (skip !== xt) skip.dispose();
        return out;
      }, progress);
      h1 = null;
    } else if (s.kind === 'upsample') {
      const u: Upsample2D = block.upsamplers[0];
      x = await sweep(run, s, name, [x], null, ([xt]) => u.forward(xt), progress, 2);
    } else {
      x = await sweep(run, s, 'conv_norm_out, conv_out', [x], { norm: decoder.conv_norm_out, params: await params(decoder.conv_norm_out) }, ([], normed) => decoder.conv_out.forward(normed!), progress);
    }
  }
  return x;
}

interface NormStep {
  norm: GroupNorm;
  /** The layer's weight and bias on the host. */
  params: [Float32Array, Float32Array];
}

/**
 * One layer over the whole image in tiles: inputs[0] (and inputs[1], same size) cropped with a
 * 1-pixel halo, normalised with the global statistics of inputs[0] when `gn` is given, `op` run, and
 * the tile's core copied into the output (scale × the input size).
 */
async function sweep(
  run: ExactRun,
  s: SweepPlan,
  stage: string,
  inputs: HostImage[],
  gn: NormStep | null,
  op: (tiles: Tensor[], normed: Tensor | null) => Tensor,
  progress: () => void,
  scale = 1,
): Promise<HostImage> {
  const { ctx, dtype } = run;
  const [, hh, ww] = inputs[0].shape;
  const T = s.tile;
  const global = gn ? groupStats(inputs[0], gn.norm.groups) : null;
  let out: HostImage | null = null;
  for (let y0 = 0; y0 < hh; y0 += T) {
    for (let x0 = 0; x0 < ww; x0 += T) {
      throwIfAborted(run.signal, 'vae decode');
      const y1 = Math.min(hh, y0 + T);
      const x1 = Math.min(ww, x0 + T);
      const hy0 = Math.max(0, y0 - 1);
      const hx0 = Math.max(0, x0 - 1);
      const hy1 = Math.min(hh, y1 + 1);
      const hx1 = Math.min(ww, x1 + 1);
      const crops = inputs.map((inp) => cropHost(inp, hy0, hx0, hy1 - hy0, hx1 - hx0));
      if (dtype === 'f16') for (const c of crops) roundToF16InPlace(c.data); // what the GPU will hold
      const tiles = crops.map((c) => ctx.fromData(c.data, c.shape, dtype, `sweep ${stage}`));
      let normed: Tensor | null = null;
      if (gn && global) {
        const [w, b] = adjustedAffine(gn, groupStats(crops[0], gn.norm.groups), global);
        const wt = ctx.fromData(w, [w.length], dtype, 'gn weight (global stats)');
        const bt = ctx.fromData(b, [b.length], dtype, 'gn bias (global stats)');
        normed = groupNorm(tiles[0], wt, bt, { groups: gn.norm.groups, eps: gn.norm.eps, silu: true });
        wt.dispose();
        bt.dispose();
      }
      const y = op(tiles, normed);
      normed?.dispose();
      for (const t of tiles) t.dispose();
      const shape = y.shape as [number, number, number, number];
      let data: Float32Array;
      try {
        data = (await y.read()) as Float32Array;
      } finally {
        y.dispose();
      }
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) throw numericalError(`vae decoder ${stage} (tile at ${y0},${x0} px)`, dtype, 'vae decoder');
      }
      const c = shape[3];
      out ??= { data: new Float32Array(hh * scale * ww * scale * c), shape: [1, hh * scale, ww * scale, c] };
      const oy = (y0 - hy0) * scale;
      const ox = (x0 - hx0) * scale;
      const rows = (y1 - y0) * scale;
      const cols = (x1 - x0) * scale;
      const ow = ww * scale;
      for (let r = 0; r < rows; r++) {
        const src = ((oy + r) * shape[2] + ox) * c;
        out.data.set(data.subarray(src, src + cols * c), ((y0 * scale + r) * ow + x0 * scale) * c);
      }
      progress();
    }
  }
  return out!;
}

/** GroupNorm's weight and bias for a tile whose own statistics are `local`, so that it normalises with `global`. */
function adjustedAffine(gn: NormStep, local: { mean: Float64Array; variance: Float64Array }, global: { mean: Float64Array; variance: Float64Array }): [Float32Array, Float32Array] {
  const [w, b] = gn.params;
  const { groups, eps } = gn.norm;
  const cg = w.length / groups;
  const w2 = new Float32Array(w.length);
  const b2 = new Float32Array(w.length);
  for (let k = 0; k < w.length; k++) {
    const g = (k / cg) | 0;
    const sdLocal = Math.sqrt(local.variance[g] + eps);
    const sdGlobal = Math.sqrt(global.variance[g] + eps);
    w2[k] = (w[k] * sdLocal) / sdGlobal;
    b2[k] = b[k] + (w[k] * (local.mean[g] - global.mean[g])) / sdGlobal;
  }
  return [w2, b2];
}
