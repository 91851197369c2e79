// The kernel microbenchmark cases (matmul with float weights and with q8_0 / q4_K weights — those timed
// interleaved with the float GEMM —, conv 3×3, attention, groupNorm at SDXL shapes) and the measurement of one case, shared by `pnpm bench:kernels` (bench/kernels.ts, Node) and the browser
// demo's benchmark tab (examples/browser). No Node imports here: this file runs in browsers too.
import { QUANT_BLOCKS, type GpuContext, type QuantizedWeight, type QuantType, type Tensor } from '@ssd/tensor';
import { attention, conv2d, conv2dWinograd, groupNorm, linear, winogradWeightFromOIHW, type WinogradTile } from '@ssd/kernels';
import type { Peer } from './tfjs.js';
import { peakGflops, timeGpu, timeGpuInterleaved } from './timing.js';

export type DType = 'f32' | 'f16';

export interface Case {
  op: 'matmul' | 'conv' | 'attention' | 'groupNorm';
  shape: string;
  /** FLOP per run (compute-bound ops) or bytes moved (memory-bound ones). */
  flop?: number;
  bytes?: number;
  make(ctx: GpuContext, dtype: DType): { run(): Tensor; dispose(): void };
  /** The peer's version; `scale` multiplies its time when it ran a smaller problem (then `note` says so). */
  peer?(p: Peer): { run(): { dispose(): void }; dispose(): void; scale?: number };
  note?: string;
  /** The dtypes the case runs in (default both); `dtypeNote` says why others are left out. */
  dtypes?: readonly DType[];
  dtypeNote?: string;
  /** The float case this one is compared with, timed interleaved with it (quantized GEMMs vs the same shape in f16/f32). */
  baseline?: Case;
}

export interface Row {
  op: string;
  shape: string;
  dtype: DType;
  ms: number;
  gflops?: number;
  gbps?: number;
  fractionOfPeak?: number;
  copyGbps?: number;
  peer?: { name: string; ms: number; gflops?: number; ratio: number } | { name: string; error: string };
  note?: string;
  /** The baseline case's time in the same interleaved run and this row's GFLOP/s over its GFLOP/s. */
  baseline?: { shape: string; ms: number; ratio: number };
}

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

export function matmulCase(m: number, k: number, n: number): Case {
  return {
    op: 'matmul',
    shape: `${m}×${k}×${n}`,
    flop: 2 * m * k * n,
    make(ctx, dtype) {
      const x = ctx.fromData(rand(m * k, 1), [m, k], dtype);
      const w = ctx.fromData(rand(n * k, 2).map((v) => v / Math.sqrt(k)), [n, k], dtype);
      return { run: () => linear(x, w), dispose: () => (x.dispose(), w.dispose()) };
    },
    peer({ tf }) {
      const a = tf.randomUniform([m, k]);
      const b = tf.randomUniform([n, k]);
      return { run: () => tf.matMul(a, b, false, true), dispose: () => (a.dispose(), b.dispose()) };
    },
  };
}

/**
 * `blocks` blocks of `type` with random quants and every f16 scale / min 2⁻⁷ (finite values: what the
 * kernel computes does not depend on them, only that it computes no inf or NaN), as u32-padded bytes.
 */
export function randomQuantizedBytes(type: QuantType, blocks: number): Uint8Array {
  const { bytes: size } = QUANT_BLOCKS[type];
  const b = new Uint8Array(Math.ceil((blocks * size) / 4) * 4);
  let s = 7;
  for (let i = 0; i < blocks * size; i++) b[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  const halves = type === 'q6_K' ? [208] : type === 'q8_0' || type === 'q4_0' || type === 'q5_0' ? [0] : [0, 2];
  for (let i = 0; i < blocks; i++) for (const h of halves) (b[i * size + h] = 0x00), (b[i * size + h + 1] = 0x20); // f16 2⁻⁷
  return b;
}

/** A linear layer with a `type` weight, timed interleaved with matmulCase's float one (bench:kernels' quantized rows). */
export function quantizedMatmulCase(m: number, k: number, n: number, type: QuantType): Case {
  return {
    op: 'matmul',
    shape: `${m}×${k}×${n} ${type}`,
    flop: 2 * m * k * n,
    baseline: matmulCase(m, k, n),
    make(ctx, dtype) {
      const x = ctx.fromData(rand(m * k, 1), [m, k], dtype);
      const bytes = randomQuantizedBytes(type, (n * k) / QUANT_BLOCKS[type].values);
      const data = ctx.fromData(new Uint32Array(bytes.buffer), [bytes.byteLength / 4], 'u32', `${type} weight`);
      const w: QuantizedWeight = { kind: 'quantized', type, shape: [n, k], data, dispose: () => data.dispose() };
      return { run: () => linear(x, w), dispose: () => (x.dispose(), w.dispose()) };
    },
  };
}

export function convCase(h: number, w: number, cin: number, cout: number): Case {
  return {
    op: 'conv',
    shape: `${h}×${w}×${cin}→${cout} 3×3`,
    flop: 2 * h * w * cin * cout * 9,
    make(ctx, dtype) {
      const x = ctx.fromData(rand(h * w * cin, 3), [1, h, w, cin], dtype);
      // conv2d's own weight layout (OHWI); the values do not matter for timing
      const wt = ctx.fromData(rand(cout * 9 * cin, 4).map((v) => v / Math.sqrt(9 * cin)), [cout, 3, 3, cin], dtype);
      return { run: () => conv2d(x, wt, { padding: 1 }), dispose: () => (x.dispose(), wt.dispose()) };
    },
    peer({ tf }) {
      const x = tf.randomUniform([1, h, w, cin]);
      const f = tf.randomUniform([3, 3, cin, cout]);
      return { run: () => tf.conv2d(x as never, f as never, 1, 'same'), dispose: () => (x.dispose(), f.dispose()) };
    },
  };
}

/**
 * The same 3×3 conv as convCase through conv2dWinograd F(m×m, 3×3), its weight transformed at setup
 * (as nn.Conv2d does at load). `flop` is the direct conv's: GFLOP/s-equivalent, comparable row to row.
 */
export function winogradCase(h: number, w: number, cin: number, cout: number, tile: WinogradTile): Case {
  return {
    op: 'conv',
    shape: `${h}×${w}×${cin}→${cout} 3×3 Winograd F(${tile}×${tile})`,
    flop: 2 * h * w * cin * cout * 9,
    note: 'GFLOP/s-equivalent: the direct conv\'s FLOPs / time',
    ...(tile === 4 ? { dtypes: ['f32'] as const, dtypeNote: 'F(4×4) is f32-only (its f16 error is 4e-3)' } : {}),
    make(ctx, dtype) {
      const x = ctx.fromData(rand(h * w * cin, 3), [1, h, w, cin], dtype);
      const u = winogradWeightFromOIHW(rand(cout * cin * 9, 4).map((v) => v / Math.sqrt(9 * cin)), [cout, cin, 3, 3], tile);
      const wt = ctx.fromData(u.data, u.shape, dtype);
      return { run: () => conv2dWinograd(x, wt, { padding: 1 }), dispose: () => (x.dispose(), wt.dispose()) };
    },
  };
}

export function attentionCase(nq: number, nk: number, heads: number, d: number, peerTokens?: number): Case {
  const c = heads * d;
  return {
    op: 'attention',
    shape: `${nq}×${nk} keys, ${heads}×${d}${nq === nk ? ' self' : ' cross'}`,
    flop: 4 * heads * nq * nk * d,
    note: peerTokens && peerTokens !== nq ? `peer measured at ${peerTokens} tokens (its N×N scores exceed a binding at ${nq}) and scaled by FLOP` : undefined,
    make(ctx, dtype) {
      const q = ctx.fromData(rand(nq * c, 5), [1, nq, c], dtype);
      const k = ctx.fromData(rand(nk * c, 6), [1, nk, c], dtype);
      const v = ctx.fromData(rand(nk * c, 7), [1, nk, c], dtype);
      return { run: () => attention(q, k, v, { heads }), dispose: () => (q.dispose(), k.dispose(), v.dispose()) };
    },
    peer({ tf }) {
      const pq = peerTokens ?? nq;
      const pk = nq === nk ? pq : nk;
      const q = tf.randomUniform([heads, pq, d]);
      const k = tf.randomUniform([heads, pk, d]);
      const v = tf.randomUniform([heads, pk, d]);
      // the unfused graph: scores, softmax, weighted sum
      return {
        run: () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d))), v)),
        dispose: () => (q.dispose(), k.dispose(), v.dispose()),
        scale: (nq * nk) / (pq * pk),
      };
    },
  };
}

export function groupNormCase(b: number, h: number, w: number, c: number): Case {
  return {
    op: 'groupNorm',
    shape: `${b}×${h}×${w}×${c} 32 groups`,
    bytes: 0, // set per dtype in measureCase
    make(ctx, dtype) {
      const x = ctx.fromData(rand(b * h * w * c, 8), [b, h, w, c], dtype);
      const g = ctx.fromData(rand(c, 9), [c], dtype);
      const be = ctx.fromData(rand(c, 10), [c], dtype);
      return { run: () => groupNorm(x, g, be, { groups: 32, eps: 1e-5, silu: true }), dispose: () => (x.dispose(), g.dispose(), be.dispose()) };
    },
  };
}

/** The recorded benchmark: SDXL / SSD-1B shapes at 1024² (latents 128², attention at 64² and 32²). */
export const CASES: readonly Case[] = [
  ...[
    [1024, 640, 640],
    [4096, 640, 640],
    [1024, 1280, 5120],
    [4096, 640, 5120],
    [77, 2048, 1280],
  ].flatMap(([m, k, n]) => [matmulCase(m, k, n), quantizedMatmulCase(m, k, n, 'q8_0'), quantizedMatmulCase(m, k, n, 'q4_K')]),
  // each 3×3 conv direct, then Winograd F(2×2) and F(4×4) beside it
  ...([[32, 32, 320, 320], [32, 32, 640, 640], [64, 64, 128, 128], [64, 64, 320, 320]] as const).flatMap(([h, w, ci, co]) => [convCase(h, w, ci, co), winogradCase(h, w, ci, co, 2), winogradCase(h, w, ci, co, 4)]),
  attentionCase(4096, 4096, 10, 64, 1024),
  attentionCase(1024, 1024, 20, 64),
  attentionCase(1024, 77, 20, 64),
  groupNormCase(2, 32, 32, 640),
  groupNormCase(2, 64, 64, 320),
];

/**
 * One small case per op (about 1/50 of the work of the smallest recorded case): a quick check that
 * every kernel runs on an adapter, for CPU adapters and the browser tests. Not for comparing GPUs.
 */
export const SMOKE_CASES: readonly Case[] = [
  matmulCase(256, 320, 320),
  quantizedMatmulCase(256, 320, 320, 'q8_0'),
  convCase(16, 16, 64, 64),
  winogradCase(16, 16, 64, 64, 2),
  winogradCase(16, 16, 64, 64, 4),
  attentionCase(256, 256, 4, 64),
  attentionCase(256, 77, 4, 64),
  groupNormCase(1, 16, 16, 320),
];

export interface MeasureOptions {
  runs: number;
  /** Replaces the adapter's peak GFLOP/s (bench:kernels' --peak-gflops). */
  peakOverride?: number;
}

async function copyGbps(ctx: GpuContext, bytes: number, runs: number): Promise<number> {
  const a = ctx.empty([bytes / 4], 'f32');
  const b = ctx.empty([bytes / 4], 'f32');
  const t = await timeGpu(ctx, () => ctx.copyBuffer(a.buffer, 0, b.buffer, 0, bytes), runs);
  a.dispose();
  b.dispose();
  return (2 * bytes) / (t.ms / 1000) / 1e9;
}

/** Times one case at one dtype: warm-up, then the median of `runs`; GFLOP/s or GB/s (with a copy's GB/s beside it). */
export async function measureCase(ctx: GpuContext, c: Case, dtype: DType, o: MeasureOptions): Promise<Row> {
  const inst = c.make(ctx, dtype);
  const base = c.baseline?.make(ctx, dtype);
  const [t, tb] = base ? await timeGpuInterleaved(ctx, [() => inst.run(), () => base.run()], o.runs) : [await timeGpu(ctx, () => inst.run(), o.runs)];
  inst.dispose();
  base?.dispose();
  const row: Row = { op: c.op, shape: c.shape, dtype, ms: t.ms, note: c.note };
  if (tb) row.baseline = { shape: `${c.baseline!.shape} ${dtype}`, ms: tb.ms, ratio: tb.ms / t.ms };
  const peak = peakGflops(ctx.info.description, dtype, o.peakOverride);
  if (c.flop) {
    row.gflops = c.flop / (t.ms / 1000) / 1e9;
    if (peak) row.fractionOfPeak = row.gflops / peak;
  } else {
    const [b, h, w, ch] = c.shape.split(' ')[0].split('×').map(Number);
    const bytes = b * h * w * ch * (dtype === 'f16' ? 2 : 4);
    row.gbps = (2 * bytes) / (t.ms / 1000) / 1e9; // one read and one write of the tensor at least
    row.copyGbps = await copyGbps(ctx, bytes, o.runs);
  }
  return row;
}

/** "12.3 GFLOP/s (4.2% of peak)", "… ×0.97 of f16 (interleaved)" or "1.23 GB/s (copy 4.56 GB/s)". */
export function formatPerf(row: Row): string {
  const vs = row.baseline ? ` ×${row.baseline.ratio.toFixed(2)} of ${row.dtype} (interleaved)` : '';
  return row.gflops !== undefined
    ? `${row.gflops.toFixed(1)} GFLOP/s${row.fractionOfPeak ? ` (${(row.fractionOfPeak * 100).toFixed(1)}% of peak)` : ''}${vs}`
    : `${row.gbps!.toFixed(2)} GB/s (copy ${row.copyGbps!.toFixed(2)} GB/s)`;
}
