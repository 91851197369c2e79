// Which algorithm a 3×3 convolution layer gets: the direct implicit GEMM (conv2d) or Winograd F(2×2) /
// F(4×4) (conv2dWinograd). The choice is made once per layer, at load, because it fixes the weight's
// layout ([Cout, 3, 3, Cin] or [T, Cout, Cin]); it depends on the adapter, the dtype and the channels,
// not on the image size (which changes from call to call and moves the balance little: see the table).
//
// The table is keyed by adapter properties, first matching row wins. Numbers measured with
// bench/kernels-dev/winograd.ts (direct vs Winograd interleaved; GFLOP/s-equivalent = direct FLOPs / time):
// - CPU adapters (ctx.info.isCpu: lavapipe and SwiftShader measured; WARP shares their shape — SIMD
//   across invocations, FLOP-bound GEMMs, cheap memory-bound transforms). SwiftShader in Chromium (f32
//   only; bench/results/winograd-swiftshader.json): F(4×4) 2.0–3.8×, F(2×2) 1.7–2.0× at the bench's shapes. Winograd cuts the GEMM's FLOPs 2.25×
//   (F(2×2)) or 4× (F(4×4)) at 16 resp. 36 GEMMs of K = Cin instead of one of K = 9·Cin. Lavapipe,
//   process-CPU-time speedups measured under load (bench/results/winograd-lavapipe.json): F(4×4) f32
//   1.8–3.3× at Cin 128–640 (the VAE's 128–512 and the bench's 320/640); F(2×2) f16 1.65–2.1× at the
//   UNet's convs (Cin 320–1280, 8²–64² latents, batch 2) but 1.35× at Cin = 128; at Cin = Cout = 32
//   F(2×2) loses (0.6–1.0×) and F(4×4) wins; with Cin = 4 (conv_in) both lose (0.4–0.75×); with
//   Cout = 4 (conv_out) F(2×2) gains nothing. F(4×4) only in f32: its f16 error is 4e-3 (direct 2e-4),
//   and in f32 its error grows with Cin (2e-6 at 64, 5e-6 at 640; direct 1e-6), so Cin ≤ 640.
// - Every other adapter (GPUs): direct. Winograd has not been measured on a GPU yet; the tiled GEMM it
//   would run is the GPU kernel, so measuring it there is a bench run (bench:kernels), not new code.
// $SSD_CONV_ALGORITHM (direct | winograd2 | winograd4) replaces the table for every layer that asks for
// the adapter's choice: whole-model A/B runs (bench:unet) without rebuilding a model.
import { DTYPE_BYTES, envVar, InvalidArgumentError, type GpuContext } from '@ssd/tensor';
import { conv2dWinogradScratch } from './conv2d-winograd.js';
import { WINOGRAD, type WinogradTile } from './winograd-weights.js';

export type ConvAlgorithm = 'direct' | 'winograd2' | 'winograd4';

/** The layer the choice is for (the image size does not enter: see the header). */
export interface ConvLayer {
  readonly dtype: 'f32' | 'f16';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
}

interface Row {
  /** Which adapters the row is for, in words (reports, bench output). */
  readonly adapters: string;
  readonly matches: (ctx: GpuContext) => boolean;
  readonly choose: (layer: ConvLayer) => ConvAlgorithm;
}

const TABLE: readonly Row[] = [
  {
    adapters: 'CPU adapters (measured on lavapipe)',
    matches: (ctx) => ctx.info.isCpu,
    choose: (l) => {
      if (l.outChannels < 32 || l.inChannels < 32) return 'direct';
      if (l.dtype === 'f32' && l.inChannels <= 640) return 'winograd4';
      return l.inChannels >= 256 ? 'winograd2' : 'direct';
    },
  },
  { adapters: 'GPUs (Winograd not measured yet)', matches: () => true, choose: () => 'direct' },
];

/** The Winograd output tile of an algorithm (null: direct). */
export function winogradTileOf(algorithm: ConvAlgorithm): WinogradTile | null {
  return algorithm === 'winograd2' ? 2 : algorithm === 'winograd4' ? 4 : null;
}

/**
 * Whether conv2dWinograd can run the layer: a 3×3, stride-1 kernel whose transformed weight binds
 * whole (the GEMM's B operand is never split).
 */
export function winogradApplies(ctx: GpuContext, layer: ConvLayer, tile: WinogradTile): boolean {
  const n = WINOGRAD[tile].n;
  const weightBytes = n * n * layer.outChannels * layer.inChannels * DTYPE_BYTES[layer.dtype];
  return layer.kernelSize === 3 && layer.stride === 1 && weightBytes <= ctx.limits.maxStorageBufferBindingSize;
}

/**
 * The algorithm of a conv layer on this adapter: `force` when given and applicable (else direct),
 * otherwise the table's, falling back to direct where Winograd does not apply.
 */
export function chooseConvAlgorithm(ctx: GpuContext, layer: ConvLayer, force?: ConvAlgorithm): ConvAlgorithm {
  const want = force ?? envAlgorithm() ?? TABLE.find((r) => r.matches(ctx))!.choose(layer);
  const tile = winogradTileOf(want);
  return tile === null || winogradApplies(ctx, layer, tile) ? want : 'direct';
}

const ALGORITHMS: readonly ConvAlgorithm[] = ['direct', 'winograd2', 'winograd4'];

function envAlgorithm(): ConvAlgorithm | undefined {
  const v = envVar('SSD_CONV_ALGORITHM');
  if (v === undefined) return undefined;
  if (!ALGORITHMS.includes(v as ConvAlgorithm)) throw new InvalidArgumentError(`SSD_CONV_ALGORITHM=${JSON.stringify(v)}: use ${ALGORITHMS.join(', ')} (or leave it unset for the adapter's table)`);
  return v as ConvAlgorithm;
}

/**
 * Elements of a conv layer's weight as nn.Conv2d loads it with this algorithm request ('auto': the
 * table's): Cout·k²·Cin direct, (m+2)²·Cout·Cin Winograd — for memory plans made from file headers.
 */
export function convWeightElements(ctx: GpuContext, layer: ConvLayer, algorithm: ConvAlgorithm | 'auto' = 'direct'): number {
  const tile = winogradTileOf(chooseConvAlgorithm(ctx, layer, algorithm === 'auto' ? undefined : algorithm));
  const taps = tile === null ? layer.kernelSize ** 2 : WINOGRAD[tile].n ** 2;
  return taps * layer.outChannels * layer.inChannels;
}

/** The table row that decides for this adapter, in words. */
export function convAlgorithmSource(ctx: GpuContext): string {
  return TABLE.find((r) => r.matches(ctx))!.adapters;
}

/**
 * The scratch bytes ([V, Mt]; [] when direct) a 3×3, stride-1, padding-1 conv layer that takes
 * chooseConvAlgorithm's choice allocates beside its output for an input [batch, h, w, inChannels]:
 * what a memory plan adds to the conv's live set.
 */
export function convScratchBytes(ctx: GpuContext, layer: Pick<ConvLayer, 'dtype' | 'inChannels' | 'outChannels'>, batch: number, h: number, w: number, upsample: 1 | 2 = 1, force?: ConvAlgorithm): readonly number[] {
  const tile = winogradTileOf(chooseConvAlgorithm(ctx, { ...layer, kernelSize: 3, stride: 1 }, force));
  if (tile === null) return [];
  const { v, mt } = conv2dWinogradScratch(ctx, { x: [batch, h, w, layer.inChannels], outChannels: layer.outChannels, tile, dtype: layer.dtype, padding: 1, upsample });
  return [v * DTYPE_BYTES[layer.dtype], mt * DTYPE_BYTES[layer.dtype]];
}
