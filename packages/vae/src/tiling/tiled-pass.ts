// Running an encoder or decoder pass over a host-staged input, whole or in tiles, with the
// non-finite check at the output. Shared by AutoencoderKL and AutoencoderTiny, decode and encode.
import { throwIfAborted, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { cast } from '@ssd/kernels';
import { firstNonFinite, hasNonFinite, locateNonFinite, numericalError } from '../numerics.js';
import { blendTiles, cropHost, tileStarts, TILE_OVERLAP_FACTOR, type HostImage, type TilePlan } from './tiling.js';
import type { Probe } from '../vae-blocks.js';

export interface PassSpec {
  ctx: GpuContext;
  /** The model's dtype (the input is uploaded in it). */
  dtype: DType;
  /** "vae decoder", "vae encoder", … — the prefix of stage names in errors. */
  what: string;
  /** Input pixels per latent pixel (1 for a decode, f for an encode). */
  inUnit: number;
  /** Output pixels per latent pixel (f for a decode, 1 for an encode). */
  outUnit: number;
  /** model-dtype input → model-dtype output. Frees its intermediates, keeps its input. */
  run: (x: Tensor, probe?: Probe) => Tensor;
  signal?: AbortSignal;
  /** Called after each tile with (tiles done, tiles in all). */
  onTile?: (done: number, total: number) => void;
}

/** The whole input in one pass; the output stays on the GPU (f32) and is checked there. */
export async function runWhole(spec: PassSpec, input: HostImage): Promise<Tensor> {
  const { ctx } = spec;
  throwIfAborted(spec.signal, spec.what);
  const x = ctx.fromData(input.data, input.shape, spec.dtype, `${spec.what} input`);
  let out: Tensor;
  try {
    out = spec.run(x);
  } finally {
    x.dispose();
  }
  if (await hasNonFinite(out)) {
    out.dispose();
    throw await localise(spec, input);
  }
  if (out.dtype === 'f32') return out;
  const f32 = cast(out, 'f32');
  out.dispose();
  return f32;
}

/**
 * The input in the plan's tiles (one tile when untiled), each read back to the host, checked there
 * and blended into the output.
 */
export async function runOnHost(spec: PassSpec, input: HostImage, plan: TilePlan): Promise<HostImage> {
  const [, hin, win] = input.shape;
  const { inUnit, outUnit } = spec;
  const tileIn = plan.tiled ? plan.tileLatentSize * inUnit : Math.max(hin, win);
  const strideIn = plan.tiled ? plan.strideLatent * inUnit : Math.max(hin, win);
  const ys = tileStarts(hin, strideIn);
  const xs = tileStarts(win, strideIn);
  const total = ys.length * xs.length;
  const grid: HostImage[][] = [];
  let done = 0;
  for (const y0 of ys) {
    const row: HostImage[] = [];
    for (const x0 of xs) {
      throwIfAborted(spec.signal, spec.what);
      const tileInput = ys.length * xs.length === 1 ? input : cropHost(input, y0, x0, Math.min(tileIn, hin - y0), Math.min(tileIn, win - x0));
      row.push(await runTile(spec, tileInput, total > 1 ? ` (tile at ${y0 / inUnit},${x0 / inUnit} latent px)` : ''));
      spec.onTile?.(++done, total);
    }
    grid.push(row);
  }
  if (total === 1) return grid[0][0];
  const tileOut = plan.tileLatentSize * outUnit;
  const extent = Math.floor(tileOut * TILE_OVERLAP_FACTOR);
  return blendTiles(grid, extent, tileOut - extent);
}

async function runTile(spec: PassSpec, input: HostImage, where: string): Promise<HostImage> {
  const x = spec.ctx.fromData(input.data, input.shape, spec.dtype, `${spec.what} tile`);
  let out: Tensor;
  try {
    out = spec.run(x);
  } finally {
    x.dispose();
  }
  let data: Float32Array;
  const shape = out.shape as [number, number, number, number];
  try {
    data = (await out.read()) as Float32Array;
  } finally {
    out.dispose();
  }
  if (firstNonFinite(data) >= 0) throw await localise(spec, input, where);
  return { data, shape };
}

async function localise(spec: PassSpec, input: HostImage, where = ''): Promise<Error> {
  const x = spec.ctx.fromData(input.data, input.shape, spec.dtype, `${spec.what} input`);
  try {
    const stage = await locateNonFinite((probe) => spec.run(x, probe));
    return numericalError(`${spec.what} ${stage ?? 'output (did not reproduce stage by stage)'}${where}`, spec.dtype, spec.what);
  } finally {
    x.dispose();
  }
}
