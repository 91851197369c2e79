// Tiled decode and encode, following diffusers' AutoencoderKL.tiled_decode / tiled_encode
// (models/autoencoders/autoencoder_kl.py): tiles of T latent pixels start every ⌊0.75·T⌋; each output
// tile is blended into the one above (blend_v) and the one to its left (blend_h) with linear weights
// over ⌊0.25·tile⌋ rows/columns, in place and in diffusers' order, then cropped to the stride.
//
// Differences, both deliberate: T is a multiple of 4 so that 0.75·T·f is exactly the output stride
// (diffusers relies on sample_size = T·f for that), and a last tile shorter than the blend region is
// blended with the rows of the tile above that it actually overlaps (diffusers takes that tile's last
// rows, which lie elsewhere in the image whenever the last tile is short).
//
// Tiles are cut from, and blended into, host arrays: the latents are small, and an output tile is
// read back once; the GPU holds one tile's activations at a time.
import { DeviceLimitError, InvalidArgumentError, type GpuContext } from '@ssd/tensor';
import type { ActivationEstimate } from './memory-plan.js';

export type TilingMode = 'auto' | 'always' | 'never';

export interface TilingOptions {
  /**
   * 'auto' (default): tile only when the whole image would exceed the device's storage-binding limit
   * or the memory budget; 'always': tile even when it fits (one tile when the image is smaller than
   * a tile); 'never': run whole, or throw DeviceLimitError when a tensor cannot be bound.
   */
  tiling?: TilingMode;
  /** Tile edge in latent pixels, a multiple of 4 (≥ 4). Default: the largest that fits the budget. */
  tileLatentSize?: number;
  /** Activation bytes one pass (whole image or one tile) may use. Default 1 GiB (and ctx.memoryBudgetBytes). */
  tileBudgetBytes?: number;
  /** How a tiled decode is done: 'exact' (default for AutoencoderKL) or diffusers' 'blend'. Encodes always blend. */
  tileMode?: 'exact' | 'blend';
}

/** How a decode or encode is (or was) split. Sizes are in latent pixels. */
export interface TilePlan {
  /**
   * 'whole': one pass. 'blend': diffusers' overlapping tiles blended at the seams (approximate: each
   * tile has its own GroupNorm statistics and attention). 'exact': the latent-resolution stage whole,
   * then every later layer swept over halo tiles with the image's global GroupNorm statistics —
   * the same result as 'whole' up to rounding (decode only; see exact-decode.ts).
   */
  readonly mode: 'whole' | 'blend' | 'exact';
  readonly tiled: boolean;
  /** Tile edge (the whole latent's larger side when untiled). */
  readonly tileLatentSize: number;
  /** Distance between tile starts: ⌊0.75·tile⌋ (the whole size when untiled). */
  readonly strideLatent: number;
  readonly rows: number;
  readonly cols: number;
  readonly tiles: number;
  /** Estimated activation memory of one pass (a full tile when tiled). */
  readonly estimate: ActivationEstimate;
  /** 'exact': layer sweeps after the latent stage, and tile passes over all of them. */
  readonly sweeps?: number;
  readonly tilePasses?: number;
  /** Why this plan was chosen, for logs and benchmarks. */
  readonly reason: string;
}

/** 1 GiB: with the pool's cached buffers this keeps a 1024² decode within 1.5 GB beyond the weights. */
export const DEFAULT_TILE_BUDGET_BYTES = 1 << 30;
export const TILE_OVERLAP_FACTOR = 0.25;

export interface PlanInput {
  op: string;
  /** Latent height and width of the whole image. */
  h: number;
  w: number;
  /** diffusers' tile_latent_min_size (sample_size / f), the tile of tiling: 'always' when it fits. */
  defaultTile: number;
  /** Estimate for a pass over an h × w latent region. */
  estimate: (h: number, w: number) => ActivationEstimate;
  /**
   * Every kernel of the pass binds windows of a tensor larger than maxStorageBufferBindingSize (conv,
   * Winograd, GroupNorm, GEMM, elementwise, the non-finite check): then only the tensors bound whole
   * (estimate.largestWholeBindingBytes: attention's) must fit one binding, the others one buffer.
   */
  windowed?: boolean;
}

/** A device limit a pass's tensors exceed. */
export interface BindingProblem {
  limit: 'maxStorageBufferBindingSize' | 'maxBufferSize';
  required: number;
  available: number;
  what: string;
}

/** Which limit a pass's tensors exceed on this device, or null when they can be bound. */
export function bindingProblem(ctx: GpuContext, e: ActivationEstimate, windowed: boolean): BindingProblem | null {
  const binding = ctx.limits.maxStorageBufferBindingSize;
  if (!windowed) return e.largestTensorBytes > binding ? { limit: 'maxStorageBufferBindingSize', required: e.largestTensorBytes, available: binding, what: 'its largest tensor' } : null;
  if (e.largestWholeBindingBytes > binding) return { limit: 'maxStorageBufferBindingSize', required: e.largestWholeBindingBytes, available: binding, what: 'the attention operands, bound whole' };
  const maxBuffer = ctx.limits.maxBufferSize;
  return e.largestTensorBytes > maxBuffer ? { limit: 'maxBufferSize', required: e.largestTensorBytes, available: maxBuffer, what: 'its largest tensor' } : null;
}

/** The budget a pass may use: the option (default 1 GiB), capped by the context's memory budget. */
export function tileBudget(ctx: GpuContext, op: string, opts: TilingOptions): number {
  let budget = opts.tileBudgetBytes ?? DEFAULT_TILE_BUDGET_BYTES;
  if (!(budget > 0)) throw new InvalidArgumentError(`${op}: tileBudgetBytes must be positive, got ${budget}`);
  if (Number.isFinite(ctx.memoryBudgetBytes)) budget = Math.min(budget, ctx.memoryBudgetBytes - ctx.memory.liveBytes);
  return budget;
}

/** Whether a pass needs tiling, and diffusers' blend grid for it. */
export function planTiles(ctx: GpuContext, input: PlanInput, opts: TilingOptions = {}): TilePlan {
  const mode = opts.tiling ?? 'auto';
  if (mode !== 'auto' && mode !== 'always' && mode !== 'never') throw new InvalidArgumentError(`${input.op}: tiling must be 'auto', 'always' or 'never', got ${JSON.stringify(mode)}`);
  const binding = ctx.limits.maxStorageBufferBindingSize;
  const budget = tileBudget(ctx, input.op, opts);
  const { h, w } = input;
  const windowed = input.windowed ?? false;
  const fits = (e: ActivationEstimate) => !bindingProblem(ctx, e, windowed) && e.peakBytes <= budget;
  const whole = input.estimate(h, w);
  const untiled = (reason: string): TilePlan => ({ mode: 'whole', tiled: false, tileLatentSize: Math.max(h, w), strideLatent: Math.max(h, w), rows: 1, cols: 1, tiles: 1, estimate: whole, reason });

  if (mode === 'never') {
    const problem = bindingProblem(ctx, whole, windowed);
    if (problem) throw new DeviceLimitError(problem.limit, problem.required, problem.available, `${input.op} of a ${h}×${w} latent without tiling (use tiling: 'auto'): ${problem.what}`);
    return untiled("tiling: 'never'");
  }
  if (mode === 'auto' && fits(whole)) return untiled(`fits: ${mib(whole.peakBytes)} peak, largest tensor ${mib(whole.largestTensorBytes)}`);

  let tile = opts.tileLatentSize;
  if (tile !== undefined) {
    if (!Number.isInteger(tile) || tile < 4 || tile % 4) throw new InvalidArgumentError(`${input.op}: tileLatentSize must be a multiple of 4, ≥ 4; got ${tile}`);
    const e = input.estimate(Math.min(tile, h), Math.min(tile, w));
    const problem = bindingProblem(ctx, e, windowed);
    if (problem) throw new DeviceLimitError(problem.limit, problem.required, problem.available, `${input.op} with tileLatentSize ${tile} (choose a smaller tile or leave it unset): ${problem.what}`);
  } else {
    tile = largestFittingTile(input, fits);
    if (tile === 0) {
      const e = input.estimate(Math.min(4, h), Math.min(4, w));
      throw new DeviceLimitError('memory for one 4×4 latent tile (bytes)', e.peakBytes, budget, `${input.op}: even the smallest tile does not fit the budget or the binding limit`);
    }
    if (mode === 'always') tile = Math.min(tile, Math.max(4, input.defaultTile - (input.defaultTile % 4)));
  }
  const stride = Math.floor(tile * (1 - TILE_OVERLAP_FACTOR));
  const rows = Math.ceil(h / stride);
  const cols = Math.ceil(w / stride);
  const reason = mode === 'always' ? "tiling: 'always'" : `whole image needs ${mib(whole.peakBytes)} (largest tensor ${mib(whole.largestTensorBytes)}); binding limit ${mib(binding)}, budget ${mib(budget)}`;
  return { mode: 'blend', tiled: true, tileLatentSize: tile, strideLatent: stride, rows, cols, tiles: rows * cols, estimate: input.estimate(Math.min(tile, h), Math.min(tile, w)), reason };
}

/** The largest multiple of 4 (up to the image's larger side, rounded up) whose tile fits, or 0. */
function largestFittingTile(input: PlanInput, fits: (e: ActivationEstimate) => boolean): number {
  const max = Math.ceil(Math.max(input.h, input.w) / 4) * 4;
  for (let t = max; t >= 4; t -= 4) if (fits(input.estimate(Math.min(t, input.h), Math.min(t, input.w)))) return t;
  return 0;
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** An NHWC host image. */
export interface HostImage {
  data: Float32Array;
  /** [B, H, W, C] */
  shape: [number, number, number, number];
}

/** Rows [y0, y0 + th) and columns [x0, x0 + tw) of an NHWC host array. */
export function cropHost(src: HostImage, y0: number, x0: number, th: number, tw: number): HostImage {
  if (y0 === 0 && x0 === 0 && th === src.shape[1] && tw === src.shape[2]) return { data: src.data.slice(), shape: [...src.shape] };
  const [b, h, w, c] = src.shape;
  if (y0 < 0 || x0 < 0 || y0 + th > h || x0 + tw > w) throw new InvalidArgumentError(`crop [${y0}:${y0 + th}, ${x0}:${x0 + tw}] is outside ${h}×${w}`);
  const out = new Float32Array(b * th * tw * c);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < th; y++) {
      const s = ((n * h + y0 + y) * w + x0) * c;
      out.set(src.data.subarray(s, s + tw * c), (n * th + y) * tw * c);
    }
  }
  return { data: out, shape: [b, th, tw, c] };
}

/** The tile grid over an axis of `size` (input units): starts at every multiple of `stride`. */
export function tileStarts(size: number, stride: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < size; s += stride) out.push(s);
  return out;
}

/**
 * Blends a grid of output tiles (row-major, each NHWC) into one image, as diffusers does: `extent`
 * is the blend width and `limit` the crop (the stride), in output pixels.
 */
export function blendTiles(grid: HostImage[][], extent: number, limit: number): HostImage {
  const [b, , , c] = grid[0][0].shape;
  for (let i = 0; i < grid.length; i++) {
    for (let j = 0; j < grid[i].length; j++) {
      const tile = grid[i][j];
      if (i > 0) blendV(grid[i - 1][j], tile, extent, limit);
      if (j > 0) blendH(grid[i][j - 1], tile, extent, limit);
    }
  }
  const heights = grid.map((row) => Math.min(limit, row[0].shape[1]));
  const widths = grid[0].map((t) => Math.min(limit, t.shape[2]));
  const outH = heights.reduce((a, v) => a + v, 0);
  const outW = widths.reduce((a, v) => a + v, 0);
  const out = new Float32Array(b * outH * outW * c);
  let y0 = 0;
  grid.forEach((row, i) => {
    let x0 = 0;
    row.forEach((t, j) => {
      const [, th, tw] = t.shape;
      const hh = heights[i];
      const ww = widths[j];
      for (let n = 0; n < b; n++) {
        for (let y = 0; y < hh; y++) {
          const s = ((n * th + y) * tw) * c;
          out.set(t.data.subarray(s, s + ww * c), ((n * outH + y0 + y) * outW + x0) * c);
        }
      }
      x0 += ww;
    });
    y0 += heights[i];
  });
  return { data: out, shape: [b, outH, outW, c] };
}

/** diffusers blend_v: b's first rows fade in from a's rows that cover the same pixels. In place on b. */
function blendV(a: HostImage, bt: HostImage, extent: number, limit: number): void {
  const [nb, ah, aw, c] = a.shape;
  const [, bh, bw] = bt.shape;
  const e = Math.min(extent, bh, ah - limit);
  const cols = Math.min(aw, bw);
  for (let n = 0; n < nb; n++) {
    for (let y = 0; y < e; y++) {
      const wb = y / e;
      const wa = 1 - wb;
      const ra = ((n * ah + limit + y) * aw) * c;
      const rb = ((n * bh + y) * bw) * c;
      for (let k = 0; k < cols * c; k++) bt.data[rb + k] = a.data[ra + k] * wa + bt.data[rb + k] * wb;
    }
  }
}

/** diffusers blend_h: the same along the columns. In place on b. */
function blendH(a: HostImage, bt: HostImage, extent: number, limit: number): void {
  const [nb, ah, aw, c] = a.shape;
  const [, bh, bw] = bt.shape;
  const e = Math.min(extent, bw, aw - limit);
  const rows = Math.min(ah, bh);
  for (let n = 0; n < nb; n++) {
    for (let y = 0; y < rows; y++) {
      const ra = ((n * ah + y) * aw + limit) * c;
      const rb = ((n * bh + y) * bw) * c;
      for (let x = 0; x < e; x++) {
        const wb = x / e;
        const wa = 1 - wb;
        for (let k = 0; k < c; k++) bt.data[rb + x * c + k] = a.data[ra + x * c + k] * wa + bt.data[rb + x * c + k] * wb;
      }
    }
  }
}
