// Planning and recording of one GEMM (shared by matmul, linear and conv2d): which variant and tile
// an adapter gets, the spec, and the dispatches — one, or one per chunk of rows (and batch) when A,
// the output or the residual would bind more than maxStorageBufferBindingSize. Chunks bind windows of
// those tensors; window offsets are rounded down to the offset alignment (≥ 16 bytes, so vector loads
// stay aligned) and the remainder travels as an element offset. B (the weight) and the bias are always
// bound whole: a weight above the limit is a DeviceLimitError from ctx.dispatch naming the op and tensor.
import { DeviceLimitError, DTYPE_BYTES, type DispatchBinding, type GpuContext, type Tensor } from '@ssd/tensor';
import { GEMM_UNIFORMS, portableWgsl, tiledWgsl, type ConvGeometry, type GemmSpec, type GemmVariant } from './gemm-wgsl.js';
import { subgroupWgsl } from './gemm-subgroup.js';
import type { Activation } from './shader.js';

/**
 * Tile specialisation (bench/tuning). portable/subgroups: m rows per workgroup, n columns per lane,
 * `lanes` invocations per workgroup (subgroups: the subgroup size the kernel assumes). tiled: m × n
 * outputs per workgroup (32 or 64 each) and k (a multiple of 4) per workgroup-memory stage.
 */
export interface GemmTile {
  readonly m?: number;
  readonly n?: number;
  readonly lanes?: number;
  readonly k?: number;
}

/**
 * The variant an adapter gets. CPU drivers run invocations as SIMD batches whose every non-constant
 * load is scalarised per lane: register-blocked tiles, and with subgroups the broadcast variant
 * (~3× the portable one on lavapipe). GPUs get the workgroup-memory tiled kernel; subgroup broadcast
 * has not been measured on a GPU, so it is not chosen there.
 */
export function chooseGemmVariant(ctx: GpuContext): GemmVariant {
  if (!ctx.info.isCpu) return 'tiled';
  return ctx.subgroups ? 'subgroups' : 'portable';
}

/**
 * Default tiles, measured on lavapipe (bench/kernels-dev/gemm.ts): more accumulators cut loads per
 * FMA until register spills and LLVM compile time (seconds for 256 accumulators) take over.
 */
function defaultTile(ctx: GpuContext, variant: GemmVariant): Required<GemmTile> {
  if (variant === 'tiled') return { m: 64, n: 64, lanes: 256, k: 16 };
  if (variant === 'subgroups') {
    const lanes = ctx.info.subgroupMinSize ?? 8;
    return { m: Math.max(lanes, 32 - (32 % lanes)), n: 4, lanes, k: 0 };
  }
  return ctx.info.isCpu ? { m: 8, n: 8, lanes: 8, k: 0 } : { m: 4, n: 4, lanes: 64, k: 0 };
}

/** The shape of one GEMM problem (all in elements). */
export interface GemmProblem {
  readonly op: string;
  readonly a: Tensor;
  readonly b: Tensor;
  readonly bias?: Tensor;
  readonly residual?: Tensor;
  readonly out: Tensor;
  readonly batches: number;
  /** Rows per batch (conv2d: Ho·Wo). */
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly aBatchStride: number;
  readonly bBatchStride: number;
  readonly biasBatchStride: number;
  readonly activation: Activation;
  readonly conv?: ConvGeometry & { readonly H: number; readonly W: number; readonly C: number; readonly Ho: number; readonly Wo: number; readonly padT: number; readonly padL: number };
}

export interface GemmChoice {
  readonly force?: GemmVariant;
  readonly tile?: GemmTile;
}

/** Builds the spec for a problem on this context (variant, tile, load width). */
export function gemmSpec(ctx: GpuContext, p: GemmProblem, choice: GemmChoice = {}): GemmSpec {
  const variant = choice.force ?? chooseGemmVariant(ctx);
  if (variant === 'subgroups' && !ctx.subgroups) {
    throw new DeviceLimitError('the subgroups feature', 'subgroups', 'none', `${p.op}: force 'subgroups'`);
  }
  const d = defaultTile(ctx, variant);
  const tile = { m: choice.tile?.m ?? d.m, n: choice.tile?.n ?? d.n, lanes: choice.tile?.lanes ?? d.lanes, k: choice.tile?.k ?? d.k };
  if (variant === 'subgroups' && choice.tile?.lanes && !choice.tile.m) tile.m = Math.max(tile.lanes, tile.m - (tile.m % tile.lanes));
  if (variant === 'tiled' && (![32, 64].includes(tile.m) || ![32, 64].includes(tile.n) || tile.k % 4 !== 0 || tile.k < 4)) {
    throw new RangeError(`${p.op}: tiled GEMM tiles are 32 or 64 rows/columns and a K stage that is a multiple of 4, got ${tile.m}×${tile.n}×${tile.k}`);
  }
  const dtype = p.out.dtype as 'f32' | 'f16';
  const reduce = p.conv ? p.conv.C : p.K; // loads run along K (matmul) or along the channels of one tap (conv)
  let vec: 1 | 4 | 8 = reduce % 4 === 0 ? 4 : 1;
  if (dtype === 'f16' && variant !== 'tiled' && reduce % 8 === 0) vec = 8;
  return Object.freeze({
    variant,
    dtype,
    vec,
    tileM: tile.m,
    tileN: tile.n,
    lanes: variant === 'tiled' ? (tile.m / 4) * (tile.n / 4) : tile.lanes,
    tileK: variant === 'tiled' ? tile.k : 0,
    conv: p.conv ? Object.freeze({ kh: p.conv.kh, kw: p.conv.kw, stride: p.conv.stride, upsample: p.conv.upsample }) : null,
    hasBias: !!p.bias,
    activation: p.activation,
    hasResidual: !!p.residual,
  });
}

function wgslOf(spec: GemmSpec): string {
  return spec.variant === 'tiled' ? tiledWgsl(spec) : spec.variant === 'subgroups' ? subgroupWgsl(spec) : portableWgsl(spec);
}

/** A binding of elements [start, start + count) of t, and the element offset of `start` inside it. */
function bindWindow(t: Tensor, start: number, count: number): { binding: Tensor | DispatchBinding; off: number } {
  if (start === 0 && count >= t.size) return { binding: t, off: 0 };
  const eb = DTYPE_BYTES[t.dtype];
  const align = Math.max(16, t.ctx.limits.minStorageBufferOffsetAlignment);
  const offset = Math.floor((start * eb) / align) * align;
  const off = (start * eb - offset) / eb;
  const size = Math.min(t.buffer.size - offset, Math.ceil(((off + count) * eb) / 16) * 16);
  return { binding: { buffer: t.buffer, offset, size }, off };
}

interface Chunk {
  z0: number;
  zs: number;
  /** First row (conv2d: first output image row) and row count of the chunk. */
  r0: number;
  rs: number;
}

/**
 * Chunks of (batches, rows) such that every windowed binding fits the limit with room for the
 * alignment slack, and no dispatch dimension exceeds maxComputeWorkgroupsPerDimension.
 */
function planChunks(ctx: GpuContext, p: GemmProblem, spec: GemmSpec): Chunk[] {
  const limit = ctx.limits.maxStorageBufferBindingSize;
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const slack = Math.max(16, ctx.limits.minStorageBufferOffsetAlignment) + 16;
  const ea = DTYPE_BYTES[p.a.dtype];
  const eo = DTYPE_BYTES[p.out.dtype];
  const c = p.conv;
  const rowsTotal = c ? c.Ho : p.M; // conv2d chunks whole output image rows
  const mPerRow = c ? c.Wo : 1;
  const outRowBytes = mPerRow * p.N * eo;
  // A bytes for `rs` chunk rows (conv2d: the input rows they read, one extra for the alignment slack)
  const aBytes = (rs: number) => (c ? Math.min(c.H, Math.floor(((rs - 1) * c.stride + c.kh - 1) / c.upsample) + 2) * c.W * c.C * ea : rs * p.K * ea);
  const aWhole = p.a.byteSize;
  const outWhole = p.out.byteSize;
  const fitsWhole = aWhole <= limit && outWhole <= limit && Math.ceil(rowsTotal * mPerRow / spec.tileM) <= maxDim && p.batches <= maxDim;
  if (fitsWhole) return [{ z0: 0, zs: p.batches, r0: 0, rs: rowsTotal }];
  let rs = rowsTotal;
  const fits = (r: number) => (p.aBatchStride === 0 ? aWhole <= limit : aBytes(r) + slack <= limit) && r * outRowBytes + slack <= limit && Math.ceil((r * mPerRow) / spec.tileM) <= maxDim;
  while (rs > 1 && !fits(rs)) rs = Math.max(1, Math.min(rs - 1, Math.floor(rs * 0.9)));
  if (!fits(rs)) {
    const need = Math.max(aBytes(1), outRowBytes) + slack;
    throw new DeviceLimitError('maxStorageBufferBindingSize', need, limit, `${p.op}: one ${c ? 'output image row' : 'row'} of "${p.a.label}" ${JSON.stringify(p.a.shape)} / "${p.out.label}"`);
  }
  const chunks: Chunk[] = [];
  for (let z = 0; z < p.batches; z++) for (let r0 = 0; r0 < rowsTotal; r0 += rs) chunks.push({ z0: z, zs: 1, r0, rs: Math.min(rs, rowsTotal - r0) });
  return chunks;
}

/**
 * Records the GEMM into ctx (one dispatch per chunk). `kernel` replaces the float kernel with another
 * of the same bindings, uniforms and dispatch shape (the quantized GEMM: its pipeline and K trip count).
 */
export function recordGemm(ctx: GpuContext, p: GemmProblem, spec: GemmSpec, kernel?: { pipeline: GPUComputePipeline; kv: number }): void {
  const pipeline = kernel?.pipeline ?? ctx.kernel(`kernels.gemm.${spec.variant}`, spec, wgslOf);
  const c = p.conv;
  const colsPerWg = spec.variant === 'tiled' ? spec.tileN : spec.lanes * spec.tileN;
  const mPerRow = c ? c.Wo : 1;
  const oBatch = p.M * p.N;
  for (const ch of planChunks(ctx, p, spec)) {
    const M = ch.rs * mPerRow;
    // A window: rows r0.. of batch z0.. (conv2d: the input rows the output rows read)
    let aStart = ch.z0 * p.aBatchStride;
    let aCount = ch.zs * p.aBatchStride || p.a.size;
    let iy0 = 0;
    if (c && ch.rs < c.Ho) {
      iy0 = Math.max(0, Math.floor((ch.r0 * c.stride - c.padT) / c.upsample));
      const iy1 = Math.min(c.H, Math.floor(((ch.r0 + ch.rs - 1) * c.stride - c.padT + c.kh - 1) / c.upsample) + 1);
      aStart += iy0 * c.W * c.C;
      aCount = Math.max(1, iy1 - iy0) * c.W * c.C;
    } else if (!c && ch.rs < p.M) {
      aStart += ch.r0 * p.K;
      aCount = ch.rs * p.K;
    }
    const aWin = p.aBatchStride === 0 && !c ? { binding: p.a, off: 0 } : bindWindow(p.a, aStart, aCount);
    const oStart = ch.z0 * oBatch + ch.r0 * mPerRow * p.N;
    const oCount = ch.zs * (ch.rs === (c ? c.Ho : p.M) ? oBatch : M * p.N);
    const oWin = bindWindow(p.out, oStart, oCount);
    const rWin = p.residual ? bindWindow(p.residual, oStart, oCount) : null;
    const bindings: (Tensor | DispatchBinding)[] = [aWin.binding, p.b];
    if (p.bias) bindings.push(p.bias);
    if (rWin) bindings.push(rWin.binding);
    bindings.push(oWin.binding);
    const kv = kernel?.kv ?? (spec.variant === 'tiled' ? Math.ceil(p.K / 4) : p.K / spec.vec);
    ctx.dispatch({
      pipeline,
      bindings,
      uniforms: {
        layout: GEMM_UNIFORMS,
        values: {
          M,
          N: p.N,
          K: p.K,
          KV: Math.ceil(kv),
          a_off: aWin.off,
          a_bs: p.aBatchStride,
          b_bs: p.bBatchStride,
          o_off: oWin.off,
          r_off: rWin ? rWin.off : 0,
          o_bs: oBatch,
          bias_bs: p.biasBatchStride,
          z0: ch.z0,
          H: c?.H ?? 0,
          W: c?.W ?? 0,
          C: c?.C ?? 0,
          Wo: c?.Wo ?? 1,
          pad_t: c?.padT ?? 0,
          pad_l: c?.padL ?? 0,
          oy0: c ? ch.r0 : 0,
          iy0,
        },
      },
      workgroups: [Math.ceil(p.N / colsPerWg), Math.ceil(M / spec.tileM), ch.zs],
      label: `${p.op}.${spec.variant}`,
    });
  }
}
