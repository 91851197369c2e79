// A sweep: one layer (or a short chain of local layers) run over a whole image in tiles, from a host
// copy of its input to a host copy of its output. Each tile is cut with a halo wide enough for the
// chain's 3×3 convs, so the core that comes back is exactly what an untiled pass computes; the GPU
// holds one tile's tensors. A GroupNorm at the start of the chain normalises with the statistics of
// the whole input (host, float64), passed to the GPU's groupNorm as adjusted affine parameters:
//   (x − μₜ)/σₜ · w' + b' = (x − μ)/σ · w + b   with   w' = w·σₜ/σ,  b' = b + w·(μₜ − μ)/σ
// where (μₜ, σₜ) are the tile's own statistics, which that kernel uses.
import { roundToF16InPlace, throwIfAborted, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { groupNorm, type GroupNorm, type ResnetBlock2D } from '@ssd/kernels';
import { numericalError } from '../numerics.js';
import { cropHost, type HostImage } from './tiling.js';

export interface SweepContext {
  ctx: GpuContext;
  dtype: DType;
  /** "vae decoder", "taesd decoder": the prefix of stage names in errors. */
  what: string;
  signal?: AbortSignal;
  /** Called after every tile. */
  progress?: () => void;
}

export interface SweepStep {
  /** Stage name for errors, e.g. "up_blocks.2.resnets.1 (norm2, conv2)". */
  stage: string;
  /** Same height and width; inputs[0] is the one normalised when `norm` is set. */
  inputs: HostImage[];
  /** Core side of a tile, in input pixels. */
  tile: number;
  /** Halo around each tile, in input pixels: ⌈(3×3 convs in the chain, at the output resolution) / scale⌉. */
  halo: number;
  /** Output pixels per input pixel: 2 when the chain upsamples, 0.5 for a stride-2 conv (then tile, halo and the input size must be even). */
  scale?: number;
  /** GroupNorm (+SiLU) of inputs[0] with the whole input's statistics, handed to `op` as `normed`. */
  norm?: { module: GroupNorm; params: [Float32Array, Float32Array] };
  op: (tiles: Tensor[], normed: Tensor | null) => Tensor;
}

interface Stats {
  mean: Float64Array;
  variance: Float64Array;
}

/** Per-group mean and biased variance of a one-sample image (float64, two passes). */
function groupStats(x: HostImage, groups: number): Stats {
  if (x.shape[0] !== 1) throw new Error('sweep: GroupNorm with global statistics takes one sample at a time');
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

/** Runs one sweep; returns the output image (NHWC f32, the input's batch). */
export async function sweep(sc: SweepContext, s: SweepStep): Promise<HostImage> {
  const { ctx, dtype } = sc;
  const [, hh, ww] = s.inputs[0].shape;
  const T = s.tile;
  const H = s.halo;
  const scale = s.scale ?? 1;
  const norm = s.norm;
  if (scale < 1 && (T % 2 || H % 2 || hh % 2 || ww % 2)) throw new Error(`sweep ${s.stage}: a stride-2 sweep needs an even tile, halo and size (got ${T}, ${H}, ${hh}×${ww})`);
  const global = norm ? groupStats(s.inputs[0], norm.module.groups) : null;
  let out: HostImage | null = null;
  for (let y0 = 0; y0 < hh; y0 += T) {
    for (let x0 = 0; x0 < ww; x0 += T) {
      throwIfAborted(sc.signal, sc.what);
      const y1 = Math.min(hh, y0 + T);
      const x1 = Math.min(ww, x0 + T);
      const hy0 = Math.max(0, y0 - H);
      const hx0 = Math.max(0, x0 - H);
      const hy1 = Math.min(hh, y1 + H);
      const hx1 = Math.min(ww, x1 + H);
      const crops = s.inputs.map((inp) => cropHost(inp, hy0, hx0, hy1 - hy0, hx1 - hx0));
      if (dtype === 'f16') for (const c of crops) roundToF16InPlace(c.data); // what the GPU will hold
      const tiles = crops.map((c) => ctx.fromData(c.data, c.shape, dtype, `sweep ${s.stage}`));
      let normed: Tensor | null = null;
      if (norm && global) {
        const [w, b] = adjustedAffine(norm, groupStats(crops[0], norm.module.groups), global);
        const wt = ctx.fromData(w, [w.length], dtype, 'gn weight (global stats)');
        const bt = ctx.fromData(b, [b.length], dtype, 'gn bias (global stats)');
        normed = groupNorm(tiles[0], wt, bt, { groups: norm.module.groups, eps: norm.module.eps, silu: true });
        wt.dispose();
        bt.dispose();
      }
      let y: Tensor;
      try {
        y = s.op(tiles, normed);
      } finally {
        normed?.dispose();
        for (const t of tiles) t.dispose();
      }
      const shape = y.shape as [number, number, number, number];
      let data: Float32Array;
      try {
        data = (await y.read()) as Float32Array;
      } finally {
        y.dispose();
      }
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) throw numericalError(`${sc.what} ${s.stage} (tile at ${y0},${x0} px)`, dtype, sc.what);
      }
      const [b, th, tw, c] = shape;
      const ow = ww * scale;
      const oh = hh * scale;
      out ??= { data: new Float32Array(b * oh * ow * c), shape: [b, oh, ow, c] };
      const oy = (y0 - hy0) * scale;
      const ox = (x0 - hx0) * scale;
      const rows = (y1 - y0) * scale;
      const cols = (x1 - x0) * scale;
      for (let n = 0; n < b; n++) {
        for (let r = 0; r < rows; r++) {
          const src = ((n * th + oy + r) * tw + ox) * c;
          out.data.set(data.subarray(src, src + cols * c), ((n * oh + y0 * scale + r) * ow + x0 * scale) * c);
        }
      }
      sc.progress?.();
    }
  }
  return out!;
}

/** GroupNorm's weight and bias for a tile whose own statistics are `local`, so that it normalises with `global`. */
function adjustedAffine(norm: NonNullable<SweepStep['norm']>, local: Stats, global: Stats): [Float32Array, Float32Array] {
  const [w, b] = norm.params;
  const { groups, eps } = norm.module;
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

/** A GroupNorm's affine parameters read back once per decode/encode, for every sweep that normalises with it. */
export function normParams(): (module: GroupNorm) => Promise<NonNullable<SweepStep['norm']>> {
  const affine = new Map<GroupNorm, [Float32Array, Float32Array]>();
  return async (module) => {
    let params = affine.get(module);
    if (!params) affine.set(module, (params = [(await module.weight.read()) as Float32Array, (await module.bias.read()) as Float32Array]));
    return { module, params };
  };
}

/**
 * One half of a ResnetBlock2D as a sweep (its two 3×3 convs each need the whole input's GroupNorm
 * statistics first): 'conv1' returns h1 = conv1(SiLU(norm1(x))); 'conv2' returns
 * conv2(SiLU(norm2(h1))) + shortcut(x), the block's output.
 */
export async function sweepResnetHalf(
  sc: SweepContext,
  norm: ReturnType<typeof normParams>,
  r: ResnetBlock2D,
  name: string,
  half: 'conv1' | 'conv2',
  tile: number,
  x: HostImage,
  h1: HostImage | null,
): Promise<HostImage> {
  if (half === 'conv1') {
    return sweep(sc, { stage: `${name} (norm1, conv1)`, inputs: [x], tile, halo: 1, norm: await norm(r.norm1), op: (_, normed) => r.conv1.forward(normed!) });
  }
  if (!h1) throw new Error(`sweep ${name}: conv2 before conv1`);
  return sweep(sc, {
    stage: `${name} (norm2, conv2)`, inputs: [h1, x], tile, halo: 1, norm: await norm(r.norm2),
    op: ([, xt], normed) => {
      const skip = r.conv_shortcut ? r.conv_shortcut.forward(xt) : xt;
      const out = r.conv2.forward(normed!, { residual: skip });
      if (skip !== xt) skip.dispose();
      return out;
    },
  });
}
