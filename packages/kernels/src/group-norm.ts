// groupNorm: y = (x − μ[b,g]) · rsqrt(σ²[b,g] + eps) · weight[c] + bias[c], optionally SiLU(y), as
// torch.nn.GroupNorm (biased variance) on channels-last data.
//
// Legend: x is NHWC [B, H, W, C] or tokens [B, N, C]; N = H·W rows per sample; G groups of Cg = C/G
// channels; V = vector width along C (4, 2 or 1: the widest that divides C); CV = C/V; a chunk is
// R consecutive rows of one sample (R = 256 on CPU adapters, where fewer, longer invocations measured
// ~15% faster than 64 on lavapipe; 32 on GPUs, which want many invocations).
//
// Three passes; GroupNorm is memory-bound (x is read twice and written once):
//   1. stats: one invocation per (b, chunk, channel vector) walks the chunk's rows with Welford's
//      update (one reciprocal per row, every load a full vector, neighbouring invocations read
//      neighbouring vectors of a row). Values are taken relative to K = the group's first element
//      (x[b, 0, g·Cg]), so offset data (x ≈ 100 ± 1) keeps its precision: the f32 mean never has to
//      resolve 100 + small. Writes (mean − K, M2) per (b, chunk, channel), and K per (b, channel).
//   2. finalize: one workgroup per (b, g) merges its chunks × Cg partials with Chan et al.'s pairwise
//      update (strided per invocation, then a workgroup tree) → (K, mean − K, rstd). Exact for offset
//      data: no E[x²] − E[x]² cancellation anywhere.
//   3. normalize: the same (b, chunk, channel vector) invocations load their affine parameters once
//      and walk the rows: y = ((x − K) − (mean − K))·(weight·rstd) + bias (+ SiLU).
// f16 or f32 storage, all math in f32. Workgroups fold over x/y past 65,535.
// Binding limit: when x is larger than maxStorageBufferBindingSize, passes 1 and 3 run per window of
// whole chunks of one sample (x and the output bound from the window's first row); the first window
// of a sample computes K, later ones read it back from the partials (R shrinks so that a window holds
// at least one chunk; only one row must fit). stdPerSample (reduce.ts) reuses passes 1 and 2 with one group per sample.
import { DeviceLimitError, DTYPE_BYTES, foldWorkgroups, InvalidArgumentError, ShapeError, type GpuContext, type Tensor } from '@ssd/tensor';
import {
  FINALIZE_UNIFORMS, finalizeWgsl, NORMALIZE_UNIFORMS, normalizeWgsl, STATS_UNIFORMS, statsWgsl,
  type FinalizeSpec, type NormalizeSpec, type StatsSpec,
} from './group-norm-wgsl.js';
import { expectDtype, expectFloat, expectRank, expectShape } from './validate.js';
import { bindWindow } from './windows.js';

/** Rows each stats / normalize invocation walks: CPU adapters pay per invocation, GPUs want many. */
const CHUNK_ROWS_CPU = 256;
const CHUNK_ROWS_GPU = 32;
const WORKGROUP_SIZE = 64;

function vecWidth(n: number): 1 | 2 | 4 {
  return n % 4 === 0 ? 4 : n % 2 === 0 ? 2 : 1;
}

/** One dispatch of pass 1 or 3: samples [b0, b0 + nb), chunks [chunk0, chunk0 + nc), elements [start, start + count). */
interface RowWindow {
  b0: number;
  nb: number;
  chunk0: number;
  nc: number;
  start: number;
  count: number;
}

/** How x is cut: R rows per chunk, and the dispatches (windows) of passes 1 and 3. */
interface ChunkPlan {
  chunkRows: number;
  chunks: number;
  windows: RowWindow[];
}

/** Everything at once if x fits one binding, else windows of whole chunks of one sample. */
function planChunks(ctx: GpuContext, op: string, x: Tensor, B: number, N: number, C: number, forceRows?: number): ChunkPlan {
  let chunkRows = forceRows ?? (ctx.info.isCpu ? CHUNK_ROWS_CPU : CHUNK_ROWS_GPU);
  if (!Number.isInteger(chunkRows) || chunkRows < 1) throw new InvalidArgumentError(`${op}: force.chunkRows = ${chunkRows} is not a positive integer`);
  const limit = ctx.limits.maxStorageBufferBindingSize;
  if (x.byteSize <= limit) {
    const chunks = Math.ceil(N / chunkRows);
    return { chunkRows, chunks, windows: [{ b0: 0, nb: B, chunk0: 0, nc: chunks, start: 0, count: x.size }] };
  }
  const rowBytes = C * DTYPE_BYTES[x.dtype];
  const fitRows = Math.floor((limit - 256) / rowBytes);
  if (fitRows < 1) throw new DeviceLimitError('maxStorageBufferBindingSize', rowBytes + 256, limit, `${op}: one row of x ${x.dtype} [.., ${C}]`);
  chunkRows = Math.min(chunkRows, fitRows);
  const windowRows = Math.floor(fitRows / chunkRows) * chunkRows;
  const windows: RowWindow[] = [];
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < N; r += windowRows) {
      const rows = Math.min(windowRows, N - r);
      windows.push({ b0: b, nb: 1, chunk0: r / chunkRows, nc: Math.ceil(rows / chunkRows), start: (b * N + r) * C, count: rows * C });
    }
  }
  return { chunkRows, chunks: Math.ceil(N / chunkRows), windows };
}

/** Placement uniforms of one window; x (and out) bound from the window's first element. */
function placement(plan: ChunkPlan, w: RowWindow, vec: number, N: number, C: number, x: Tensor): { values: Record<string, number>; binding: ReturnType<typeof bindWindow> } {
  const binding = bindWindow(x, w.start, w.count);
  const cv = C / vec;
  return {
    binding,
    values: { n: N, cv, chunkRows: plan.chunkRows, chunks: plan.chunks, threads: w.nb * w.nc * cv, b0: w.b0, nc: w.nc, chunk0: w.chunk0, xstart: w.start / vec, xoff: binding.offsetElems / vec },
  };
}

/**
 * Passes 1 and 2 over x viewed as [B, N, C] with G groups: per-(b, g) statistics as a new f32 tensor —
 * [B·G, 4] (K, mean − K, rstd, 0) for mode 'rstd', [B] unbiased std for mode 'std' (G must be 1).
 */
export function groupStats(x: Tensor, B: number, N: number, C: number, groups: number, mode: 'rstd' | 'std', eps: number, op: string, plan = planChunks(x.ctx, op, x, B, N, C)): Tensor {
  const ctx = x.ctx;
  const vec = vecWidth(C);
  const cg = C / groups;
  const { chunks, chunkRows } = plan;
  const maxWg = ctx.limits.maxComputeWorkgroupsPerDimension;
  const shiftAt = B * chunks * 2 * C; // scalars
  const partials = ctx.empty([shiftAt + B * C], 'f32', `${op}.partials`);
  const statsPipeline = ctx.kernel('group_norm.stats', Object.freeze<StatsSpec>({ dtype: x.dtype, vec, workgroupSize: WORKGROUP_SIZE }), statsWgsl);
  for (const w of plan.windows) {
    const { values, binding } = placement(plan, w, vec, N, C, x);
    ctx.dispatch({
      pipeline: statsPipeline,
      bindings: [binding.binding, partials],
      uniforms: { layout: STATS_UNIFORMS, values: { ...values, cg, shiftAt: shiftAt / vec } },
      workgroups: foldWorkgroups(Math.ceil(values.threads / WORKGROUP_SIZE), maxWg),
      label: `group_norm.stats[${x.dtype} v${vec}]`,
    });
  }
  const pairs = B * groups;
  const stats = ctx.empty(mode === 'rstd' ? [pairs, 4] : [B], 'f32', `${op}.stats`);
  ctx.dispatch({
    pipeline: ctx.kernel('group_norm.finalize', Object.freeze<FinalizeSpec>({ mode, workgroupSize: WORKGROUP_SIZE }), finalizeWgsl),
    bindings: [partials, stats],
    uniforms: { layout: FINALIZE_UNIFORMS, values: { n: N, c: C, cg, groups, chunkRows, chunks, pairs, shiftAt, eps, half: WORKGROUP_SIZE / 2 } },
    workgroups: foldWorkgroups(pairs, maxWg),
    label: `group_norm.finalize[${mode}]`,
  });
  partials.dispose();
  return stats;
}

/**
 * GroupNorm over NHWC x [B, H, W, C] (or tokens [B, N, C]) with `groups` groups of C/groups channels,
 * affine weight/bias [C] and optional fused SiLU (diffusers' ResnetBlock2D norm + nonlinearity).
 * eps as given: UNet 1e-5, VAE and Transformer2DModel 1e-6. Returns a new tensor of x's shape/dtype.
 * x may exceed maxStorageBufferBindingSize (it is then processed in row windows). `force.chunkRows`
 * overrides the rows per invocation (tests and bench).
 */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, opts: { groups: number; eps: number; silu?: boolean; force?: { chunkRows?: number } }): Tensor {
  const op = 'groupNorm';
  expectFloat(op, 'x', x);
  expectRank(op, 'x', x, [3, 4], '[B, H, W, C] or [B, N, C]');
  expectDtype(op, 'weight', weight, x.dtype);
  expectDtype(op, 'bias', bias, x.dtype);
  const B = x.shape[0];
  const C = x.shape[x.rank - 1];
  const N = x.rank === 4 ? x.shape[1] * x.shape[2] : x.shape[1];
  expectShape(op, 'weight', weight, [C], '[C]');
  expectShape(op, 'bias', bias, [C], '[C]');
  const { groups, eps } = opts;
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new ShapeError(op, 'x', `a channel count divisible by groups = ${groups}`, `C = ${C}`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new InvalidArgumentError(`${op}: eps must be a finite number ≥ 0, got ${eps}`);
  const ctx = x.ctx;
  const plan = planChunks(ctx, op, x, B, N, C, opts.force?.chunkRows); // throws before allocating
  const out = ctx.empty(x.shape, x.dtype, op);
  if (x.size === 0) return out;
  const stats = groupStats(x, B, N, C, groups, 'rstd', eps, op, plan);
  const vec = vecWidth(C);
  const spec: NormalizeSpec = Object.freeze({ dtype: x.dtype, vec, silu: !!opts.silu, workgroupSize: WORKGROUP_SIZE });
  const pipeline = ctx.kernel('group_norm.normalize', spec, normalizeWgsl);
  for (const w of plan.windows) {
    const { values, binding } = placement(plan, w, vec, N, C, x);
    const o = bindWindow(out, w.start, w.count);
    ctx.dispatch({
      pipeline,
      bindings: [binding.binding, stats, weight, bias, o.binding],
      uniforms: { layout: NORMALIZE_UNIFORMS, values: { ...values, cg: C / groups, groups, ooff: o.offsetElems / vec } },
      workgroups: foldWorkgroups(Math.ceil(values.threads / WORKGROUP_SIZE), ctx.limits.maxComputeWorkgroupsPerDimension),
      label: `group_norm.normalize[${x.dtype} v${vec}${opts.silu ? ' silu' : ''}]`,
    });
  }
  stats.dispose();
  return out;
}
