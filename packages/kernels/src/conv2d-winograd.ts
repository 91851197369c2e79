// conv2dWinograd: the 3×3, stride-1 conv2d (any zero padding, optional fused nearest 2× upsampling, bias,
// activation, residual) computed as Winograd F(m×m, 3×3): input transform → T batched GEMMs over the
// channels → output transform with conv2d's epilogue (winograd-wgsl.ts, the GEMM of gemm.ts).
//
// Legend: x [B, H, W, C] NHWC; weight [T, N, C] from winogradWeightFromOIHW (T = 16: m = 2; T = 36:
// m = 4); out [B, Ho, Wo, N] as conv2d's; tiles of m×m outputs, th = ⌈Ho/m⌉ rows of tw = ⌈Wo/m⌉.
// V [T, Mb, C] and Mt [T, Mb, N] are scratch tensors for one band of Mb tiles; Mt[ξ] = V[ξ] · U[ξ]ᵀ.
//
// Bands: V and Mt of the whole image are (m+2)²/m² times x and out (4× for F(2×2), 2.25× for F(4×4)).
// So that a conv never needs more scratch than twice its larger operand or 2 × 16 MiB, whichever is
// more (memory plans count on that: V + Mt ≤ 2·max(x, out, WINOGRAD_SCRATCH_FLOOR_BYTES), or one row
// of tiles if more), and no binding exceeds maxStorageBufferBindingSize, the samples and then the tile
// rows of each sample are processed in bands (three dispatches each); the bands' windows of x, out and
// residual are bound as conv2d's chunks are. The floor keeps small images whole: bands of a few tiles
// would leave most rows of the GEMM's register tile empty and stream the weight once per band
// (measured on lavapipe: an SSD-1B step at 256² gained 3% instead of the conv share's worth).
// Precision: V and Mt are stored in the activations' dtype (f16 storage: the f16 GEMM), f32 inside
// each kernel. F(4×4) is for f32 (see winograd-weights.ts); this op runs what it is given.
import { DeviceLimitError, DTYPE_BYTES, foldWorkgroups, formatShape, InvalidArgumentError, ShapeError, type DType, type GpuContext, type Tensor } from '@ssd/tensor';
import { gemmSpec, recordGemm, type GemmProblem, type GemmTile } from './gemm.js';
import type { GemmVariant } from './gemm-wgsl.js';
import type { Activation } from './shader.js';
import { expectConvEpilogue, expectDtype, expectFloat, expectRank } from './validate.js';
import { bindWindow } from './windows.js';
import { WINOGRAD_INPUT_UNIFORMS, WINOGRAD_OUTPUT_UNIFORMS, WINOGRAD_WG, winogradInputWgsl, winogradOutputWgsl, type WinogradInputSpec, type WinogradOutputSpec } from './winograd-wgsl.js';
import type { WinogradTile } from './winograd-weights.js';

export interface Conv2dWinogradOptions {
  /** [Cout], or [B, Cout]: a per-sample bias. */
  bias?: Tensor;
  /** Zero padding: all sides, or [top, left, bottom, right]. */
  padding?: number | readonly [top: number, left: number, bottom: number, right: number];
  /** [B, Ho, Wo, Cout], added after the activation. */
  residual?: Tensor;
  activation?: Activation;
  /** Nearest-neighbour 2× upsampling of x fused into the input transform. */
  upsample?: 1 | 2;
  /** The batched GEMM's variant and tile (tests, bench); default: the GEMM's choice for the adapter. */
  gemm?: { force?: GemmVariant; tile?: GemmTile };
  /**
   * Largest scratch tensor (V or Mt) in bytes; default winogradScratchCap's (at least one row of
   * tiles), never past maxStorageBufferBindingSize. Tests of the banding set it small.
   */
  maxScratchBytes?: number;
}

interface Geometry {
  B: number;
  H: number;
  W: number;
  C: number;
  N: number;
  Ho: number;
  Wo: number;
  m: WinogradTile;
  T: number;
  th: number;
  tw: number;
  pt: number;
  pl: number;
  up: 1 | 2;
}

/** A band: samples z0..z0+zs, tile rows r0..r0+rs of each. */
interface Band {
  z0: number;
  zs: number;
  r0: number;
  rs: number;
}

/** x [B, H, W, Cin]; weight [T, Cout, Cin] (winogradWeightFromOIHW); out [B, Ho, Wo, Cout] (stride 1, 3×3). */
export function conv2dWinograd(x: Tensor, weight: Tensor, opts: Conv2dWinogradOptions = {}): Tensor {
  const op = 'conv2dWinograd';
  expectFloat(op, 'x', x);
  expectRank(op, 'x', x, 4, '[B, H, W, Cin]');
  expectDtype(op, 'weight', weight, x.dtype);
  expectRank(op, 'weight', weight, 3, '[T, Cout, Cin] (winogradWeightFromOIHW)');
  const [B, H, W, C] = x.shape;
  const [T, N, wc] = weight.shape;
  if ((T !== 16 && T !== 36) || wc !== C) throw new ShapeError(op, 'weight', `[16 or 36, Cout, ${C}] (Cin of x ${formatShape(x.shape)})`, formatShape(weight.shape));
  if (C === 0) throw new ShapeError(op, 'x', '[B, H, W, Cin] with Cin ≥ 1', formatShape(x.shape));
  const up = opts.upsample ?? 1;
  if (up !== 1 && up !== 2) throw new InvalidArgumentError(`conv2dWinograd: upsample must be 1 or 2, got ${up}`);
  const pad = typeof opts.padding === 'number' || opts.padding === undefined ? Array(4).fill(opts.padding ?? 0) : [...opts.padding];
  if (pad.length !== 4 || pad.some((p) => !Number.isInteger(p) || p < 0)) throw new InvalidArgumentError(`conv2dWinograd: padding must be a non-negative integer or [top, left, bottom, right], got ${JSON.stringify(opts.padding)}`);
  const [pt, pl, pb, pr] = pad;
  const Ho = up * H + pt + pb - 2;
  const Wo = up * W + pl + pr - 2;
  if (Ho < 1 || Wo < 1) throw new ShapeError(op, 'x', 'an image of at least 3×3 after upsampling and padding', formatShape(x.shape));
  const outShape = [B, Ho, Wo, N];
  const biasBatchStride = expectConvEpilogue(op, x, opts, outShape);
  const ctx = x.ctx;
  // the GEMM binds the weight whole (a DeviceLimitError now rather than from the first dispatch)
  if (weight.byteSize > ctx.limits.maxStorageBufferBindingSize) throw new DeviceLimitError('maxStorageBufferBindingSize', weight.byteSize, ctx.limits.maxStorageBufferBindingSize, `${op}: the transformed weight "${weight.label}" ${formatShape(weight.shape)} (use conv2d)`);
  const m: WinogradTile = T === 16 ? 2 : 4;
  const g: Geometry = { B, H, W, C, N, Ho, Wo, m, T, th: Math.ceil(Ho / m), tw: Math.ceil(Wo / m), pt, pl, up };
  const bands = planBands(ctx, g, x.dtype, opts.maxScratchBytes, `"${x.label}" ${formatShape(x.shape)}`);
  const out = ctx.empty(outShape, x.dtype, op);
  if (out.size === 0) return out;
  const mbMax = Math.max(...bands.map((b) => b.zs * b.rs * g.tw));
  const v = ctx.empty([T, mbMax, C], x.dtype, `${op} V`);
  const mt = ctx.empty([T, mbMax, N], x.dtype, `${op} Mt`);
  try {
    for (const band of bands) recordBand(ctx, g, band, { x, weight, v, mt, out, biasBatchStride, opts });
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    v.dispose();
    mt.dispose();
  }
  return out;
}

/** Scratch bytes under which no band is split off (see the header): small convs run whole. */
export const WINOGRAD_SCRATCH_FLOOR_BYTES = 16 * 2 ** 20;

/** The default bound on each of V and Mt for a conv whose x and out take these bytes. */
export function winogradScratchCap(xBytes: number, outBytes: number): number {
  return Math.max(xBytes, outBytes, WINOGRAD_SCRATCH_FLOOR_BYTES);
}

/** Bands whose every binding fits (one band of everything when it all fits); `what` names x in errors. */
function planBands(ctx: GpuContext, g: Geometry, dtype: DType, maxScratchBytes: number | undefined, what: string): Band[] {
  const limit = ctx.limits.maxStorageBufferBindingSize;
  const slack = Math.max(16, ctx.limits.minStorageBufferOffsetAlignment) + 16;
  const eb = DTYPE_BYTES[dtype];
  const scratchBytes = (zs: number, rs: number) => g.T * zs * rs * g.tw * Math.max(g.C, g.N) * eb;
  const xBytes = g.B * g.H * g.W * g.C * eb;
  const outBytes = g.B * g.Ho * g.Wo * g.N * eb;
  const scratch = Math.min(limit, maxScratchBytes ?? Math.max(winogradScratchCap(xBytes, outBytes), scratchBytes(1, 1)));
  if (scratchBytes(g.B, g.th) <= scratch && xBytes <= limit && outBytes <= limit) return [{ z0: 0, zs: g.B, r0: 0, rs: g.th }];
  // per sample: the input rows a band of rs tile rows reads (+1 for the window's alignment), its output rows
  const inRows = (rs: number) => Math.min(g.H, Math.floor((rs * g.m + 1) / g.up) + 2);
  const fits = (rs: number) => scratchBytes(1, rs) <= scratch && inRows(rs) * g.W * g.C * eb + slack <= limit && rs * g.m * g.Wo * g.N * eb + slack <= limit;
  let rs = g.th;
  while (rs > 1 && !fits(rs)) rs = Math.max(1, Math.min(rs - 1, Math.floor(rs * 0.9)));
  if (!fits(rs)) {
    throw new DeviceLimitError('maxStorageBufferBindingSize', Math.max(scratchBytes(1, 1), inRows(1) * g.W * g.C * eb + slack), scratch, `conv2dWinograd: one row of ${g.m}×${g.m} tiles of ${what} (its scratch or input rows; conv2d splits finer)`);
  }
  const bands: Band[] = [];
  for (let z = 0; z < g.B; z++) for (let r0 = 0; r0 < g.th; r0 += rs) bands.push({ z0: z, zs: 1, r0, rs: Math.min(rs, g.th - r0) });
  return bands;
}

/** A conv2dWinograd call by its shapes, for conv2dWinogradScratch. */
export interface WinogradConvShape {
  /** x [B, H, W, Cin]. */
  readonly x: readonly [number, number, number, number];
  readonly outChannels: number;
  readonly tile: WinogradTile;
  readonly dtype: 'f16' | 'f32';
  readonly padding?: Conv2dWinogradOptions['padding'];
  readonly upsample?: 1 | 2;
}

/**
 * Elements of the two scratch tensors (V, Mt) conv2dWinograd allocates for this call, beside its
 * output and for as long as it records: what a memory plan adds to a Winograd conv's live set.
 */
export function conv2dWinogradScratch(ctx: GpuContext, c: WinogradConvShape): { v: number; mt: number } {
  const [B, H, W, C] = c.x;
  const pad = typeof c.padding === 'number' || c.padding === undefined ? [c.padding ?? 0, c.padding ?? 0, c.padding ?? 0, c.padding ?? 0] : c.padding;
  const up = c.upsample ?? 1;
  const Ho = up * H + pad[0] + pad[2] - 2;
  const Wo = up * W + pad[1] + pad[3] - 2;
  const m = c.tile;
  const T = (m + 2) ** 2;
  const g: Geometry = { B, H, W, C, N: c.outChannels, Ho, Wo, m, T, th: Math.ceil(Ho / m), tw: Math.ceil(Wo / m), pt: pad[0], pl: pad[1], up };
  const mb = Math.max(...planBands(ctx, g, c.dtype, undefined, `x [${c.x.join(', ')}]`).map((b) => b.zs * b.rs * g.tw));
  return { v: T * mb * C, mt: T * mb * g.N };
}

interface BandTensors {
  x: Tensor;
  weight: Tensor;
  v: Tensor;
  mt: Tensor;
  out: Tensor;
  biasBatchStride: number;
  opts: Conv2dWinogradOptions;
}

function recordBand(ctx: GpuContext, g: Geometry, band: Band, t: BandTensors): void {
  const { opts } = t;
  const dtype = t.x.dtype;
  const mb = band.zs * band.rs * g.tw;
  const whole = band.zs === g.B && band.rs === g.th;
  // 1. input transform: x window (the source rows this band reads) → V
  const inVec: 1 | 4 = g.C % 4 === 0 ? 4 : 1;
  const inSpec: WinogradInputSpec = Object.freeze({ dtype, tile: g.m, vec: inVec, upsample: g.up });
  const xBs = g.H * g.W * g.C;
  let iy0 = 0;
  let xStart = band.z0 * xBs;
  let xCount = band.zs * xBs;
  if (!whole) {
    iy0 = Math.max(0, Math.floor((band.r0 * g.m - g.pt) / g.up));
    const iy1 = Math.min(g.H, Math.floor(((band.r0 + band.rs) * g.m + 1 - g.pt) / g.up) + 1);
    xStart += iy0 * g.W * g.C;
    xCount = Math.max(1, iy1 - iy0) * g.W * g.C;
  }
  const xw = bindWindow(t.x, xStart, xCount);
  const inCount = mb * (g.C / inVec);
  ctx.dispatch({
    pipeline: ctx.kernel('kernels.winograd.input', inSpec, winogradInputWgsl),
    bindings: [xw.binding, t.v],
    uniforms: {
      layout: WINOGRAD_INPUT_UNIFORMS,
      values: { count: inCount, cv: g.C / inVec, tw: g.tw, th: band.rs, mb, ty0: band.r0, H: g.H, W: g.W, pad_t: g.pt, pad_l: g.pl, iy0, x_off: xw.offsetElems / inVec, x_bs: xBs / inVec },
    },
    workgroups: foldWorkgroups(Math.ceil(inCount / WINOGRAD_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'conv2dWinograd.input',
  });
  // 2. T GEMMs: Mt[ξ] = V[ξ] · U[ξ]ᵀ
  const problem: GemmProblem = { op: 'conv2dWinograd', a: t.v, b: t.weight, out: t.mt, batches: g.T, M: mb, N: g.N, K: g.C, aBatchStride: mb * g.C, bBatchStride: g.N * g.C, biasBatchStride: 0, activation: 'none' };
  recordGemm(ctx, problem, gemmSpec(ctx, problem, opts.gemm ?? {}));
  // 3. output transform + epilogue: Mt → out window (the output rows of this band)
  const outVec: 1 | 4 = g.N % 4 === 0 ? 4 : 1;
  const outSpec: WinogradOutputSpec = Object.freeze({ dtype, tile: g.m, vec: outVec, hasBias: !!opts.bias, activation: opts.activation ?? 'none', hasResidual: !!opts.residual });
  const oBs = g.Ho * g.Wo * g.N;
  const oy0 = whole ? 0 : band.r0 * g.m;
  const oStart = band.z0 * oBs + oy0 * g.Wo * g.N;
  const oCount = whole ? t.out.size : (Math.min(g.Ho, (band.r0 + band.rs) * g.m) - oy0) * g.Wo * g.N;
  const ow = bindWindow(t.out, oStart, oCount);
  const rw = opts.residual ? bindWindow(opts.residual, oStart, oCount) : null;
  const bindings = [t.mt, ...(opts.bias ? [opts.bias] : []), ...(rw ? [rw.binding] : []), ow.binding];
  const outCount = mb * (g.N / outVec);
  ctx.dispatch({
    pipeline: ctx.kernel('kernels.winograd.output', outSpec, winogradOutputWgsl),
    bindings,
    uniforms: {
      layout: WINOGRAD_OUTPUT_UNIFORMS,
      values: {
        count: outCount,
        nv: g.N / outVec,
        tw: g.tw,
        th: band.rs,
        mb,
        ty0: band.r0,
        Ho: g.Ho,
        Wo: g.Wo,
        oy0,
        o_off: ow.offsetElems / outVec,
        r_off: rw ? rw.offsetElems / outVec : 0,
        o_bs: oBs / outVec,
        z0: band.z0,
        bias_bs: t.biasBatchStride / outVec,
      },
    },
    workgroups: foldWorkgroups(Math.ceil(outCount / WINOGRAD_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    label: 'conv2dWinograd.output',
  });
}
